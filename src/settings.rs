//! The extension's settings (GUCs), all under the reserved prefix `pg_distcount.`.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;
use std::ffi::CString;

/// Overrides the local node id of `distcount.node_id()`. Superuser-only: two writers sharing
/// one id silently lose increments, so choosing an id is an administrator's decision.
pub static NODE_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// What `node_id()` does in a copied data directory (see `crdt::node`).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnNodeCopy {
    #[name = c"error"]
    Error,
    #[name = c"rotate"]
    Rotate,
}

pub static ON_NODE_COPY: GucSetting<OnNodeCopy> = GucSetting::<OnNodeCopy>::new(OnNodeCopy::Error);

pub fn register() {
    GucRegistry::define_string_guc(
        c"pg_distcount.node_id",
        c"Node id that gcounter_inc and pncounter_inc write under (1 to 63 bytes).",
        c"Empty means the id kept in distcount.node, made at CREATE EXTENSION.",
        &NODE_ID,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_distcount.on_node_copy",
        c"What node_id() does when this database is a copy of the one that made its node id.",
        c"error refuses to write under the original's id; rotate makes a new id automatically.",
        &ON_NODE_COPY,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_distcount".as_ptr()) };
}
