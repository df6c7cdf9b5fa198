//! The extension's settings (GUCs), all under the reserved prefix `pg_distcount.`.

use pgrx::PostgresGucEnum;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
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

/// Shard count of a counter that `counter_add` creates on first use.
pub static DEFAULT_SHARDS: GucSetting<i32> = GucSetting::<i32>::new(16);

/// Milliseconds between two roll-up passes of the background worker; 0 pauses it.
pub static ROLLUP_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// Database the roll-up worker connects to (it runs only with shared_preload_libraries).
pub static ROLLUP_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

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
    GucRegistry::define_int_guc(
        c"pg_distcount.default_shards",
        c"Shard count of a sharded counter that counter_add creates on first use (1 to 1024).",
        c"Pick at least the number of sessions that write one counter at the same time.",
        &DEFAULT_SHARDS,
        1,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_distcount.rollup_interval",
        c"Time between two passes of the sharded-counter roll-up worker; 0 pauses it.",
        c"The worker runs only when pg_distcount is in shared_preload_libraries.",
        &ROLLUP_INTERVAL,
        0,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    // PostgreSQL accepts postmaster-context settings only from shared_preload_libraries,
    // which is also the only case in which the worker exists.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_string_guc(
            c"pg_distcount.rollup_database",
            c"Database in which the sharded-counter roll-up worker runs counter_rollup().",
            c"The worker runs only when pg_distcount is in shared_preload_libraries.",
            &ROLLUP_DATABASE,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_distcount".as_ptr()) };
}
