//! Counter writes on a Citus node that holds the counter's shard, straight into the shard
//! tables (`distcount.counter_<shard>`, `distcount.counter_slot_<shard>`), without Citus's
//! planner and executor: a routed increment cost 4.2 to 4.8 times a plain node's CPU, a direct
//! one 1.7 times (README, Sharded counters on Citus). The shard is found, locked and its
//! placement checked without a statement (a statement for that cost a third of the call).
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
    /// Where the counter shards are (None when not usable), and until when to trust it.
    static SHARD_MAP: RefCell<Option<(Option<ShardMap>, Instant)>> = const { RefCell::new(None) };
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

/// The upsert into one pair of co-located shards, as counter_add's statement on a plain node.
/// Shard ids are integers; Citus names a shard's constraints after it too.
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
         ON CONFLICT ON CONSTRAINT counter_slot_pkey_{slot_shard} \
         DO UPDATE SET value = s.value OPERATOR(pg_catalog.+) EXCLUDED.value"
    );
    kept_statement(client, &sql, &[TEXT, INT4, INT8])
}

/// Whether Citus's local execution is on: when off, a routed statement of the same
/// transaction would reach the shard through another connection.
fn local_execution_on() -> bool {
    let value =
        unsafe { pg_sys::GetConfigOption(c"citus.enable_local_execution".as_ptr(), true, false) };
    !value.is_null() && unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() == b"on"
}

/// Whether node group `group` holds every shard of `shards`, read from `pg_dist_placement` in
/// a snapshot taken now (after the shard's metadata lock: a move that switched the placement
/// committed before the lock was granted). One index probe per shard.
fn placed_here(catalog: &PlacementCatalog, shards: [i64; 2], group: i32) -> bool {
    // Citus 13.2's pg_dist_placement: (placementid, shardid, shardstate, shardlength, groupid).
    const SHARDID: i16 = 2;
    const GROUPID: usize = 4;
    const COLUMNS: usize = 5;
    unsafe {
        let relation =
            pg_sys::table_open(catalog.table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        if (*(*relation).rd_att).natts as usize != COLUMNS {
            pg_sys::table_close(relation, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            return false;
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let mut all_here = true;
        for shard in shards {
            let mut key = std::mem::zeroed::<pg_sys::ScanKeyData>();
            pg_sys::ScanKeyInit(
                &mut key,
                SHARDID,
                pg_sys::BTEqualStrategyNumber as u16,
                pg_sys::Oid::from(pg_sys::F_INT8EQ),
                pg_sys::Datum::from(shard),
            );
            let scan = pg_sys::systable_beginscan(
                relation,
                catalog.shard_index,
                true,
                snapshot,
                1,
                &mut key,
            );
            let mut here = false;
            loop {
                let tuple = pg_sys::systable_getnext(scan);
                if tuple.is_null() {
                    break;
                }
                let mut values = [pg_sys::Datum::from(0usize); COLUMNS];
                let mut nulls = [true; COLUMNS];
                pg_sys::heap_deform_tuple(
                    tuple,
                    (*relation).rd_att,
                    values.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                );
                if !nulls[GROUPID] && values[GROUPID].value() as i32 == group {
                    here = true;
                }
            }
            pg_sys::systable_endscan(scan);
            if !here {
                all_here = false;
                break;
            }
        }
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(relation, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        all_here
    }
}

/// Citus's placement catalog and its index by shard id.
#[derive(Clone, Copy)]
struct PlacementCatalog {
    table: pg_sys::Oid,
    shard_index: pg_sys::Oid,
}

/// Where the counter shards are, as this session last read it from Citus's metadata: the
/// co-location group of the counter tables, and per shard index (Citus orders a table's shards
/// by their hash range) the range, the two co-located shard ids and whether this node holds
/// them. Only a shortcut: the placements are read again after the lock, so a stale map
/// costs a lock and a routed write (a shard moved here is written the routed way until the
/// next read). Shard ids are never reused: a split or a new shard count makes new ones.
struct ShardMap {
    colocation: u32,
    shards: Vec<CounterShard>,
    /// This node's group, and where to read placements.
    group: i32,
    catalog: PlacementCatalog,
}

struct CounterShard {
    min_hash: i32,
    max_hash: i32,
    shard: i64,
    slot_shard: i64,
    here: bool,
}

impl ShardMap {
    /// Read from Citus's metadata; None when the two counter tables are not co-located in
    /// hash ranges that match (no direct writes then).
    fn read(client: &mut SpiClient<'_>) -> Option<ShardMap> {
        let node = client
            .select(
                "SELECT (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g), \
                        pg_catalog.to_regclass('pg_catalog.pg_dist_placement')::pg_catalog.oid, \
                        pg_catalog.to_regclass('pg_catalog.pg_dist_placement_shardid_index')::pg_catalog.oid",
                Some(1),
                &[],
            )
            .unwrap_or_else(|e| error!("counter_add_direct: {e}"));
        let node = node.first();
        let group = node.get::<i32>(1).ok()??;
        let catalog = PlacementCatalog {
            table: node.get::<pg_sys::Oid>(2).ok()??,
            shard_index: node.get::<pg_sys::Oid>(3).ok()??,
        };
        let rows = client
            .select(
                "SELECT (SELECT p.colocationid FROM pg_catalog.pg_dist_partition p \
                          WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter'::pg_catalog.regclass), \
                        (SELECT p.colocationid FROM pg_catalog.pg_dist_partition p \
                          WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter_slot'::pg_catalog.regclass), \
                        s.shardid, s.shardminvalue::pg_catalog.int4, s.shardmaxvalue::pg_catalog.int4, \
                        t.shardid, t.shardminvalue::pg_catalog.int4, t.shardmaxvalue::pg_catalog.int4, \
                        (SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_placement p \
                          WHERE p.shardid OPERATOR(pg_catalog.=) ANY (ARRAY[s.shardid, t.shardid]) \
                            AND p.groupid OPERATOR(pg_catalog.=) $1) \
                        OPERATOR(pg_catalog.=) 2 \
                   FROM (SELECT *, pg_catalog.row_number() OVER (ORDER BY x.shardminvalue::pg_catalog.int4) AS i \
                           FROM pg_catalog.pg_dist_shard x \
                          WHERE x.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter'::pg_catalog.regclass) s \
                   FULL JOIN (SELECT *, pg_catalog.row_number() OVER (ORDER BY x.shardminvalue::pg_catalog.int4) AS i \
                           FROM pg_catalog.pg_dist_shard x \
                          WHERE x.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter_slot'::pg_catalog.regclass) t \
                     ON t.i OPERATOR(pg_catalog.=) s.i \
                  ORDER BY s.i",
                None,
                &[group.into()],
            )
            .unwrap_or_else(|e| error!("counter_add_direct: {e}"));
        let mut colocation = None;
        let mut shards = Vec::with_capacity(rows.len());
        for row in rows {
            let (Some(counter_group), Some(slot_group)) =
                (row.get::<i32>(1).ok()?, row.get::<i32>(2).ok()?)
            else {
                return None;
            };
            if counter_group != slot_group {
                return None;
            }
            if counter_group == 0 {
                return None; // not co-located: Citus would lock by shard id
            }
            colocation = Some(counter_group as u32);
            let shard = CounterShard {
                shard: row.get::<i64>(3).ok()??,
                min_hash: row.get::<i32>(4).ok()??,
                max_hash: row.get::<i32>(5).ok()??,
                slot_shard: row.get::<i64>(6).ok()??,
                here: row.get::<bool>(9).ok()??,
            };
            let same_range = row.get::<i32>(7).ok()?? == shard.min_hash
                && row.get::<i32>(8).ok()?? == shard.max_hash;
            if !same_range {
                return None;
            }
            shards.push(shard);
        }
        Some(ShardMap {
            colocation: colocation?,
            shards,
            group,
            catalog,
        })
    }

    /// The shards of `name`, locked as Citus's router writes lock them and held by this node
    /// (read after the lock); None, having locked nothing, where the map says they are
    /// elsewhere, and None, `moved` set, where the placement read after the lock says so.
    fn lock_local_shards(&self, name: &str, moved: &mut bool) -> Option<(i64, i64)> {
        let (index, shard) = self.local_shards(name)?;
        lock_shard_metadata(self.colocation, index);
        if !placed_here(&self.catalog, [shard.shard, shard.slot_shard], self.group) {
            *moved = true;
            return None;
        }
        Some((shard.shard, shard.slot_shard))
    }

    /// The shard index and shards of `name`, when this node seems to hold them: Citus hashes
    /// a text distribution value with `hashtext` under the column's collation (the default).
    fn local_shards(&self, name: &str) -> Option<(u32, &CounterShard)> {
        let hash = unsafe {
            let text = pg_sys::cstring_to_text_with_len(name.as_ptr().cast(), name.len() as i32);
            let datum = pg_sys::OidFunctionCall1Coll(
                pg_sys::Oid::from(pg_sys::F_HASHTEXT),
                pg_sys::DEFAULT_COLLATION_OID,
                pg_sys::Datum::from(text),
            );
            pg_sys::pfree(text.cast());
            datum.value() as i32
        };
        let index = self.shards.partition_point(|s| s.max_hash < hash);
        let shard = self.shards.get(index)?;
        (shard.min_hash <= hash && shard.here).then_some((index as u32, shard))
    }
}

/// How long a shard map is trusted; after a shard was found moved away, it is read again
/// sooner, but not more often than this.
const MAP_LIFETIME: Duration = Duration::from_secs(10);
const MAP_REREAD_AFTER_MISS: Duration = Duration::from_secs(1);

/// The shard's metadata lock in share mode, as Citus's router writes take it
/// (`LockShardDistributionMetadata`): for a hash-distributed table in a co-location group, one
/// advisory lock per shard index and group, which covers the co-located shards; a shard move
/// takes it exclusively on every node before it switches the placements.
fn lock_shard_metadata(colocation: u32, shard_index: u32) {
    // SET_LOCKTAG_COLOCATED_SHARDS_METADATA_RESOURCE of Citus 13.2's resource_lock.h: class 8.
    const COLOCATED_SHARDS_METADATA: u16 = 8;
    let tag = super::advisory_lock_tag(shard_index, colocation, COLOCATED_SHARDS_METADATA);
    unsafe {
        pg_sys::LockAcquire(&tag, pg_sys::ShareLock as pg_sys::LOCKMODE, false, false);
    }
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
        || !local_execution_on()
    {
        return false;
    }
    Spi::connect_mut(|client| {
        let (shard, slot_shard) = SHARD_MAP.with(|cell| {
            let mut cell = cell.borrow_mut();
            let now = Instant::now();
            if !matches!(&*cell, Some((_, until)) if now < *until) {
                *cell = Some((ShardMap::read(client), now + MAP_LIFETIME));
            }
            let (map, until) = cell.as_mut()?;
            let mut moved = false;
            let found = map.as_ref()?.lock_local_shards(name, &mut moved);
            if moved {
                *until = (*until).min(now + MAP_REREAD_AFTER_MISS);
            }
            found
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
                return None; // no such counter in mode slots
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
