//! The extension's settings (GUCs), all under the reserved prefix `pg_distcount.`.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// Overrides the local node id of `distcount.node_id()`. Superuser-only: two writers sharing
/// one id silently lose increments, so choosing an id is an administrator's decision.
pub static NODE_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn register() {
    GucRegistry::define_string_guc(
        c"pg_distcount.node_id",
        c"Node id that gcounter_inc and pncounter_inc write under (1 to 63 bytes).",
        c"Empty means the random id made at CREATE EXTENSION, kept in distcount.node.",
        &NODE_ID,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_distcount".as_ptr()) };
}
