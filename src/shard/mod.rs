//! Sharded counters: one logical counter over N slot rows or append-only delta rows.
//!
//! `shard.sql` holds the tables and the PL/pgSQL functions (plans cached per session by
//! PL/pgSQL); Rust supplies what SQL cannot reach (the backend's dense slot number, the
//! default shard count setting) and the background worker that rolls counters up.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use std::time::Duration;

use crate::settings::{DEFAULT_SHARDS, ROLLUP_DATABASE, ROLLUP_INTERVAL};

pgrx::extension_sql_file!("shard.sql", name = "shard");

/// This backend's dense slot number, from 0. Sessions alive at the same time have different
/// numbers, and the numbers are reused from the bottom, so `backend_slot() % shards` spreads
/// concurrent writers over different slots (a hashed pid collides; see the research note).
#[pg_extern(sql = false)]
fn backend_slot() -> i32 {
    dense_backend_slot()
}

#[cfg(any(feature = "pg15", feature = "pg16"))]
fn dense_backend_slot() -> i32 {
    // BackendId is 1-based; InvalidBackendId (-1) only outside a regular backend.
    (unsafe { pg_sys::MyBackendId } - 1).max(0)
}

#[cfg(not(any(feature = "pg15", feature = "pg16")))]
fn dense_backend_slot() -> i32 {
    // PostgreSQL 17 renamed it: MyProcNumber, 0-based.
    unsafe { pg_sys::MyProcNumber }.max(0)
}

/// The shard count that `counter_add` gives a counter it creates.
#[pg_extern(sql = false)]
fn counter_default_shards() -> i32 {
    DEFAULT_SHARDS.get()
}

/// Registers the roll-up worker; called from `_PG_init` only while the library is being
/// loaded by `shared_preload_libraries`.
pub fn register_worker() {
    BackgroundWorkerBuilder::new("pg_distcount counter roll-up")
        .set_type("pg_distcount rollup")
        .set_function("distcount_rollup_worker_main")
        .set_library("pg_distcount")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// One roll-up pass in its own transaction: `counter_rollup()` when the extension exists in
/// this database. An error is logged and the transaction aborted; the loop goes on.
fn rollup_pass() {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let ok = PgTryBuilder::new(|| {
        let installed = Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_distcount')",
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if installed {
            if let Err(e) = Spi::run("SELECT distcount.counter_rollup()") {
                pgrx::warning!("pg_distcount roll-up failed: {e}");
                return false;
            }
        }
        true
    })
    .catch_others(|e| {
        let message = match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
            pg_sys::panic::CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
        };
        pgrx::warning!("pg_distcount roll-up failed: {message}");
        false
    })
    .execute();
    unsafe {
        if ok {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        } else {
            pg_sys::AbortCurrentTransaction();
        }
    }
}

fn interval() -> Option<Duration> {
    match ROLLUP_INTERVAL.get() {
        // 0 disables the passes; wake up now and then for a reload or a shutdown.
        0 => Some(Duration::from_secs(60)),
        ms => Some(Duration::from_millis(ms as u64)),
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn distcount_rollup_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = ROLLUP_DATABASE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres".to_string());
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("pg_distcount roll-up worker started in database \"{database}\"");
    while BackgroundWorker::wait_latch(interval()) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if ROLLUP_INTERVAL.get() > 0 {
            rollup_pass();
        }
    }
}
