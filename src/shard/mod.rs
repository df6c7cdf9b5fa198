//! Sharded counters: one logical counter over N slot rows or append-only delta rows.
//!
//! `shard.sql` holds the tables and the PL/pgSQL functions (plans cached per session by
//! PL/pgSQL); Rust supplies what SQL cannot reach (the session's dense slot number, the
//! default shard count setting) and the background worker that rolls counters up.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use std::time::Duration;

use crate::settings::{DEFAULT_SHARDS, ROLLUP_DATABASE, ROLLUP_INTERVAL};

mod citus_direct;

pgrx::extension_sql_file!("shard.sql", name = "shard");

/// This session's slot number, from 0: the lowest number no other live session of this
/// database holds, claimed on first use and held for the session's life, so
/// `backend_slot() % shards` spreads concurrent writers over different slots (a hashed pid
/// collides; see the research note), on every major (the backend numbers are not reused from
/// the bottom on PostgreSQL 17 and later).
#[pg_extern(sql = false)]
fn backend_slot() -> i32 {
    claimed_slot()
}

/// The advisory lock class of the slots: a session holds the session-level advisory lock
/// (SLOT_LOCK_CLASS, slot) on its slot, visible in `pg_locks` as locktype `advisory`, classid
/// 1684632436, objid the slot, objsubid 2. The two-key form keeps clear of bigint-keyed locks.
const SLOT_LOCK_CLASS: u32 = u32::from_be_bytes(*b"dist");

thread_local! {
    static SLOT: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

/// An advisory lock's tag in this database, as PostgreSQL's SET_LOCKTAG_ADVISORY builds it.
fn advisory_lock_tag(key1: u32, key2: u32, kind: u16) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: key1,
        locktag_field3: key2,
        locktag_field4: kind,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// (SLOT_LOCK_CLASS, slot) with kind 2, as pg_try_advisory_lock(int4, int4) builds it.
fn slot_lock_tag(slot: i32) -> pg_sys::LOCKTAG {
    advisory_lock_tag(SLOT_LOCK_CLASS, slot as u32, 2)
}

fn holds_slot_lock(slot: i32) -> bool {
    let tag = slot_lock_tag(slot);
    let mode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    unsafe {
        pg_sys::LockHeldByMe(&tag, mode)
    }
    #[cfg(not(any(feature = "pg15", feature = "pg16")))]
    unsafe {
        pg_sys::LockHeldByMe(&tag, mode, false)
    }
}

/// The slot this session holds. The lock goes with `pg_advisory_unlock_all()` and `DISCARD
/// ALL`; every call checks that it is still held (a lookup in the backend's own lock table), so
/// the next call then claims the lowest free slot again, maybe another one. Counts stay exact
/// either way: a write adds to whichever row it lands in.
fn claimed_slot() -> i32 {
    if let Some(slot) = SLOT.get()
        && holds_slot_lock(slot)
    {
        return slot;
    }
    if unsafe { pg_sys::IsInParallelMode() } {
        // No lock may be taken during a parallel operation (as pg_try_advisory_lock refuses).
        return backend_number();
    }
    // Each live session holds at most one slot, so one of the first MaxBackends + 1 is free
    // unless someone else takes locks of this class; then fall back to the backend number.
    let limit = unsafe { pg_sys::MaxBackends }.max(0);
    let slot = (0..=limit)
        .find(|&slot| {
            let tag = slot_lock_tag(slot);
            let result = unsafe {
                pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, true, true)
            };
            result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
        })
        .unwrap_or_else(backend_number);
    SLOT.set(Some(slot));
    slot
}

#[cfg(any(feature = "pg15", feature = "pg16"))]
fn backend_number() -> i32 {
    // BackendId is 1-based; InvalidBackendId (-1) only outside a regular backend.
    (unsafe { pg_sys::MyBackendId } - 1).max(0)
}

#[cfg(not(any(feature = "pg15", feature = "pg16")))]
fn backend_number() -> i32 {
    // PostgreSQL 17 renamed it: MyProcNumber, 0-based.
    unsafe { pg_sys::MyProcNumber }.max(0)
}

/// The shard count that `counter_add` gives a counter it creates.
#[pg_extern(sql = false)]
fn counter_default_shards() -> i32 {
    DEFAULT_SHARDS.get()
}

thread_local! {
    static ON_CITUS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the counter tables are distributed by Citus. Without Citus in this database (no
/// `pg_catalog.pg_dist_partition`: one syscache lookup) false; once they are distributed, true
/// for the rest of the session; on a Citus node before `citus_setup()` an ERROR, as counters
/// written there would be a count of that node alone.
#[pg_extern(sql = false)]
fn counter_on_citus() -> bool {
    if ON_CITUS.get() {
        return true;
    }
    let catalog = unsafe {
        pg_sys::get_relname_relid(
            c"pg_dist_partition".as_ptr(),
            pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
        )
    };
    if catalog == pg_sys::InvalidOid {
        return false;
    }
    let distributed = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p \
          WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter'::pg_catalog.regclass)",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if distributed {
        ON_CITUS.set(true);
        return true;
    }
    pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "sharded counters are not set up for Citus in this database",
        "pg_distcount",
    )
    .set_detail(
        "Citus is installed, and distcount.counter is not distributed: each node would keep a \
         count of its own.",
    )
    .set_hint("Call SELECT distcount.citus_setup() on the coordinator once (README, Citus).")
    .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
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

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn slot_locks() -> i64 {
        Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                AND classid = 1684632436 AND objsubid = 2 AND granted",
        )
        .expect("query runs")
        .unwrap()
    }

    #[pg_test]
    fn backend_slot_is_held_for_the_session_and_claimed_again_after_unlock_all() {
        let slot = Spi::get_one::<i32>("SELECT distcount.backend_slot()")
            .unwrap()
            .unwrap();
        assert!(slot >= 0);
        assert_eq!(slot_locks(), 1);
        assert_eq!(
            Spi::get_one::<i32>("SELECT distcount.backend_slot()").unwrap(),
            Some(slot)
        );
        assert_eq!(slot_locks(), 1, "a second call claims nothing more");
        Spi::run("SELECT pg_advisory_unlock_all()").unwrap();
        assert_eq!(slot_locks(), 0);
        let again = Spi::get_one::<i32>("SELECT distcount.backend_slot()")
            .unwrap()
            .unwrap();
        assert_eq!(slot_locks(), 1, "the next call holds a slot again");
        assert!(again >= 0);
    }
}
