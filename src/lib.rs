//! pg_distcount: counting at scale inside PostgreSQL.
//!
//! One folder per family; inside each, the pure algorithm (no pgrx) is apart from its SQL
//! binding. Shared pieces live in `common`. Everything is created in schema `distcount`
//! (fixed by the control file).

use pgrx::prelude::*;

pub mod cms;
pub mod common;
pub mod crdt;
pub mod hll;
pub mod outbox;
mod settings;
pub mod shard;
pub mod topk;

pgrx::pg_module_magic!();

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // pgrx captures a Rust backtrace on every caught error and shows it in the error's DETAIL
    // when RUST_BACKTRACE is set in the server's environment: users see PostgreSQL's message
    // only. std reads RUST_LIB_BACKTRACE first (and once); a backend has one thread.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    settings::register();
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        shard::register_worker();
    }
}

/// Hooks for `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
