//! Counter writes on a Citus node that holds the counter's shard, straight into the shard
//! tables (`distcount.counter_<shard>`, `distcount.counter_slot_<shard>`), without Citus's
//! planner and executor: a routed increment cost 4.2 to 4.8 times a plain node's CPU, a direct
//! one 2.5 to 2.7 times (README, Sharded counters on Citus).
//!
//! Safe against shard moves as Citus's own router writes are: the shard's metadata lock is
//! taken in share mode first (a move takes it exclusively, on every node, before it switches
//! the placement), and only then is the placement read, in a new snapshot. Without the lock a
//! move lost increments written to the old placement after its copy began (measured by hand).
//! The transaction is marked for two-phase commit, as Citus marks its own local writes, so that
//! a transaction that also writes another node commits on both or neither: through Citus's
//! `Use2PCForCoordinatedTransaction` where the citus library exports it (built for 15), else, as
//! PostgreSQL 16 and later build extensions with hidden symbols, at pre-commit: if Citus then
//! coordinates a distributed transaction, a write that matches no row of the counter's shard is
//! sent through Citus's local executor, which marks it as it marks any local write.

use ahash::AHashMap as HashMap;
use pgrx::PgOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

type Use2pc = unsafe extern "C-unwind" fn();

thread_local! {
    /// Citus's `Use2PCForCoordinatedTransaction`, looked up once (None: not found).
    static USE_2PC: Cell<Option<Option<Use2pc>>> = const { Cell::new(None) };
    /// The statement that finds and locks the counter's shard.
    static FIND: RefCell<Option<OwnedPreparedStatement>> = const { RefCell::new(None) };
    /// Whether this node held a shard of distcount.counter when last asked, and when to ask
    /// again: a node without one (the coordinator) takes the routed path without a lookup.
    static HOLDS_SHARDS: Cell<Option<(bool, Instant)>> = const { Cell::new(None) };
    /// The upsert into one pair of co-located shards, by (counter shard, slot shard).
    static UPSERTS: RefCell<HashMap<(i64, i64), OwnedPreparedStatement>> = RefCell::new(HashMap::new());
    /// Without Citus's symbol: a counter written directly in this transaction and the role that
    /// wrote it (counter_add's owner), for the two-phase-commit mark at pre-commit.
    static MARK_AT_PRE_COMMIT: RefCell<Option<(String, pg_sys::Oid)>> = const { RefCell::new(None) };
    /// Whether the pre-commit callback is registered (once per backend).
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// The pre-commit mark's two statements.
    static MARK_STATEMENTS: RefCell<Option<(OwnedPreparedStatement, OwnedPreparedStatement)>> = const { RefCell::new(None) };
}

fn use_2pc() -> Option<Use2pc> {
    if let Some(found) = USE_2PC.get() {
        return found;
    }
    let symbol = unsafe {
        pg_sys::load_external_function(
            c"citus".as_ptr(),
            c"Use2PCForCoordinatedTransaction".as_ptr(),
            false,
            std::ptr::null_mut(),
        )
    };
    let found = (!symbol.is_null())
        .then(|| unsafe { std::mem::transmute::<*mut std::ffi::c_void, Use2pc>(symbol) });
    USE_2PC.set(Some(found));
    found
}

/// Where Citus's symbol is not found: the two-phase-commit mark is made at pre-commit, for the
/// counter `name` just written directly. The callback is registered after Citus's (a preloaded
/// library), and PostgreSQL calls the later registered first, so Citus sees the mark when it
/// decides how to commit.
fn mark_2pc_at_pre_commit(name: &str) {
    MARK_AT_PRE_COMMIT.with(|cell| {
        let mut pending = cell.borrow_mut();
        if pending.is_none() {
            *pending = Some((name.to_owned(), unsafe { pg_sys::GetUserId() }));
        }
    });
    if !CALLBACK_REGISTERED.get() {
        unsafe { pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut()) };
        CALLBACK_REGISTERED.set(true);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT {
        if let Some((name, owner)) = MARK_AT_PRE_COMMIT.with(|cell| cell.borrow_mut().take()) {
            mark_2pc_through_citus(&name, owner);
        }
    } else if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
    ) {
        MARK_AT_PRE_COMMIT.with(|cell| cell.borrow_mut().take());
    }
}

/// If Citus coordinates a distributed transaction here (it has a distributed transaction id:
/// this node started remote work, or takes part in another node's), a DELETE that matches no
/// row of the counter's shard, through Citus: the shard is still on this node (its metadata
/// lock is held since the direct write), so Citus's local executor runs it and marks the
/// transaction for two-phase commit. As counter_add's owner: the caller may not write the table.
fn mark_2pc_through_citus(name: &str, owner: pg_sys::Oid) {
    let (mut saved_user, mut saved_context) = (pg_sys::Oid::INVALID, 0);
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
        // No portal is active at pre-commit, so no snapshot either: SPI needs one.
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    Spi::connect_mut(|client| {
        MARK_STATEMENTS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (coordinated, mark) = cell.get_or_insert_with(|| {
                let coordinated = kept_statement(
                    client,
                    "SELECT (pg_catalog.get_current_transaction_id()).transaction_number \
                                OPERATOR(pg_catalog.<>) 0",
                    &[],
                );
                let mark = kept_statement(
                    client,
                    "DELETE FROM distcount.counter \
                          WHERE name OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.<>) id",
                    &[TEXT],
                );
                (coordinated, mark)
            });
            let in_distributed_transaction = client
                .select(&*coordinated, Some(1), &[])
                .ok()
                .and_then(|t| t.first().get_one::<bool>().ok().flatten())
                .unwrap_or(true);
            if in_distributed_transaction {
                client
                    .update(&*mark, None, &[name.into()])
                    .unwrap_or_else(|e| error!("counter_add_direct: {e}"));
            }
        })
    });
    unsafe {
        pg_sys::PopActiveSnapshot();
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
    }
}

/// `sql` prepared and kept for the session; a failure is this function's error.
fn kept_statement(
    client: &mut SpiClient<'_>,
    sql: &str,
    types: &[PgOid],
) -> OwnedPreparedStatement {
    client
        .prepare_mut(sql, types)
        .unwrap_or_else(|e| error!("counter_add_direct: {e}"))
        .keep()
}

const TEXT: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID);
const INT8: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT8OID);
const INT4: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID);

/// The counter's shard and its co-located slot shard, and, when this node seems to hold them
/// (read before the lock; the upsert reads it again after), the shard's metadata lock in share
/// mode (5), as Citus's router writes take it: one lock covers the co-located shards.
fn find_statement(client: &mut SpiClient<'_>) -> OwnedPreparedStatement {
    kept_statement(
        client,
        "SELECT s.shard, s.slot_shard, \
                    CASE WHEN s.here THEN pg_catalog.lock_shard_metadata(5, ARRAY[s.shard]) IS NULL END \
               FROM (SELECT c.shard, c.slot_shard, EXISTS ( \
                            SELECT FROM pg_catalog.pg_dist_placement p \
                             WHERE p.shardid OPERATOR(pg_catalog.=) c.shard \
                               AND p.groupid OPERATOR(pg_catalog.=) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)) AS here \
                       FROM (SELECT pg_catalog.get_shard_id_for_distribution_column('distcount.counter'::pg_catalog.regclass, $1) AS shard, \
                                    pg_catalog.get_shard_id_for_distribution_column('distcount.counter_slot'::pg_catalog.regclass, $1) AS slot_shard) c) s",
        &[TEXT],
    )
}

/// The upsert into one pair of co-located shards, as counter_add's statement on a plain node,
/// guarded by the placements read again (a statement after the lock's, so a new snapshot) and
/// by Citus's local execution being on (else a routed statement of the same transaction would
/// reach these shards through another connection). Shard ids are integers; Citus names a
/// shard's constraints after it too.
fn upsert_statement(
    client: &mut SpiClient<'_>,
    shard: i64,
    slot_shard: i64,
) -> OwnedPreparedStatement {
    let sql = format!(
        "INSERT INTO distcount.counter_slot_{slot_shard} AS s (id, slot, value, name) \
         SELECT c.id, $2 OPERATOR(pg_catalog.%) c.shards, $3, c.name \
           FROM distcount.counter_{shard} c \
          WHERE c.name OPERATOR(pg_catalog.=) $1 AND c.mode OPERATOR(pg_catalog.=) 'slots' \
            AND pg_catalog.current_setting('citus.enable_local_execution')::pg_catalog.bool \
            AND (SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_placement p \
                  WHERE p.shardid OPERATOR(pg_catalog.=) ANY (ARRAY[{shard}, {slot_shard}]::pg_catalog.int8[]) \
                    AND p.groupid OPERATOR(pg_catalog.=) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)) \
                OPERATOR(pg_catalog.=) 2 \
         ON CONFLICT ON CONSTRAINT counter_slot_pkey_{slot_shard} \
         DO UPDATE SET value = s.value OPERATOR(pg_catalog.+) EXCLUDED.value"
    );
    kept_statement(client, &sql, &[TEXT, INT4, INT8])
}

/// Whether this node holds any shard of distcount.counter, asked at most every 10 seconds. Only
/// a shortcut: a stale answer either way costs a lookup or sends a write the routed way, both
/// correct.
fn holds_shards(client: &mut SpiClient<'_>) -> bool {
    let now = Instant::now();
    if let Some((holds, until)) = HOLDS_SHARDS.get()
        && now < until
    {
        return holds;
    }
    let holds = client
        .select(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_placement p \
                     JOIN pg_catalog.pg_dist_shard s ON s.shardid OPERATOR(pg_catalog.=) p.shardid \
                    WHERE s.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter'::pg_catalog.regclass \
                      AND p.groupid OPERATOR(pg_catalog.=) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g))",
            Some(1),
            &[],
        )
        .ok()
        .and_then(|t| t.first().get_one::<bool>().ok().flatten())
        .unwrap_or(false);
    HOLDS_SHARDS.set(Some((holds, now + Duration::from_secs(10))));
    holds
}

/// `counter_add_direct(name, delta, slot)`: adds delta to slot `slot % shards` of counter
/// `name` in the shard tables of this node, and returns true; returns false, having written
/// nothing, where the caller must take another path: no Citus, the shard on another node, no
/// such counter or one in mode deltas, a transaction that is not READ COMMITTED (the placement
/// must be read in a snapshot taken after the lock), Citus's local execution off (a routed
/// statement of the same transaction would then reach this shard through another connection).
/// The transaction is marked for two-phase commit, through Citus's switch or at pre-commit.
#[pg_extern(sql = false)]
fn counter_add_direct(name: &str, delta: i64, slot: i32) -> bool {
    if !super::counter_on_citus()
        || unsafe { pg_sys::XactIsoLevel } != pg_sys::XACT_READ_COMMITTED as i32
    {
        return false;
    }
    Spi::connect_mut(|client| {
        if !holds_shards(client) {
            return None;
        }
        // `update`, not `select`: each statement then runs in a new snapshot.
        let (shard, slot_shard) = FIND.with(|cell| {
            let mut cell = cell.borrow_mut();
            let find = cell.get_or_insert_with(|| find_statement(client));
            let found = client
                .update(&*find, Some(1), &[name.into()])
                .unwrap_or_else(|e| error!("counter_add_direct: {e}"));
            let row = found.first();
            let locked = row.get::<bool>(3).ok().flatten().is_some();
            locked.then_some(())?;
            Some((
                row.get::<i64>(1).ok().flatten()?,
                row.get::<i64>(2).ok().flatten()?,
            ))
        })?;
        UPSERTS.with(|cell| {
            let mut upserts = cell.borrow_mut();
            let upsert = upserts
                .entry((shard, slot_shard))
                .or_insert_with(|| upsert_statement(client, shard, slot_shard));
            let written = client
                .update(&*upsert, None, &[name.into(), slot.into(), delta.into()])
                .unwrap_or_else(|e| error!("counter_add_direct: {e}"));
            if written.is_empty() {
                return None; // moved away, or no such counter in mode slots
            }
            match use_2pc() {
                Some(use_2pc) => unsafe { use_2pc() },
                None => mark_2pc_at_pre_commit(name),
            }
            Some(())
        })
    })
    .is_some()
}
