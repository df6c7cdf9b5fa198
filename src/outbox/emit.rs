//! Writing one event: a row in `distcount.outbox` (written directly, see `direct`, or by a
//! cached SPI plan), a transactional logical decoding message (straight into the WAL), or both
//! with the same id.

use super::direct::{OutboxRow, insert_outbox_row};
use super::event::{
    Envelope, IdGenerator, Mode, PayloadShape, TimedIds, old_new_payload, uuid_text,
};
use super::row_json::{row_json, row_jsonb};
use crate::common::varlena::{jsonb_from_text, jsonb_to_text, to_cstring};
use crate::settings::{
    OUTBOX_HEADERS, OUTBOX_MESSAGE_PREFIX, OUTBOX_MODE, OUTBOX_NOTIFY, OUTBOX_TRACING,
};
use ahash::AHashMap as HashMap;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};

/// Where the payload comes from.
pub enum Payload {
    /// The trigger's OLD and NEW rows, of `tupdesc`.
    Rows {
        tupdesc: pg_sys::TupleDesc,
        shape: PayloadShape,
        old: Option<pg_sys::HeapTuple>,
        new: Option<pg_sys::HeapTuple>,
    },
    /// A `jsonb` value (`outbox_emit`), or None for a null payload.
    Jsonb(Option<pg_sys::Datum>),
}

/// One event to write.
pub struct Event<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub event_type: &'a str,
    pub payload: Payload,
}

/// The mode of the trigger or call, or the setting `pg_distcount.outbox_mode`.
pub fn effective_mode(explicit: Option<Mode>) -> Mode {
    explicit.unwrap_or_else(|| match OUTBOX_MODE.get() {
        crate::settings::OutboxMode::Table => Mode::Table,
        crate::settings::OutboxMode::Message => Mode::Message,
        crate::settings::OutboxMode::Both => Mode::Both,
    })
}

/// Writes `event` as `mode` says and returns its id (16 bytes).
pub fn write_event(event: &Event, mode: Mode) -> [u8; 16] {
    if mode.writes_message() {
        require_logical_wal();
    }
    let id_bytes = next_id();
    let id_text = uuid_text(&id_bytes);
    let headers = session_headers();
    let tracing = session_tracing();
    if mode.writes_table() {
        insert_row(event, &id_bytes, headers.as_deref(), tracing.as_deref());
        notify_relay();
    }
    if mode.writes_message() {
        let payload = payload_json(&event.payload);
        let body = Envelope {
            id: &id_text,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            event_type: event.event_type,
            payload: payload.as_deref(),
            headers: headers.as_deref(),
            tracing_span_context: tracing.as_deref(),
        }
        .to_json();
        emit_message(&message_prefix(), body.as_bytes(), true);
    }
    id_bytes
}

/// A message nobody can decode is a lost event: refuse it instead.
pub fn require_logical_wal() {
    if unsafe { pg_sys::wal_level } < pg_sys::WalLevel::WAL_LEVEL_LOGICAL as i32 {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "outbox message mode needs wal_level = logical",
            "Set wal_level = logical and restart, or use mode table."
        );
    }
}

/// Longest prefix of a logical decoding message the outbox writes: a prefix is a label that
/// CDC tools filter on, and every message repeats it in the WAL.
pub const MAX_PREFIX_BYTES: usize = 128;

/// Refuses an empty or oversized message prefix (`what` names where it came from).
pub fn check_prefix(prefix: &[u8], what: &str) {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{what} must be 1 to {MAX_PREFIX_BYTES} bytes, got {}",
                prefix.len()
            )
        );
    }
}

/// The outbox's message prefix: pg_distcount.outbox_message_prefix (default distcount.outbox).
pub fn message_prefix() -> CString {
    let prefix = OUTBOX_MESSAGE_PREFIX
        .get()
        .unwrap_or_else(|| c"distcount.outbox".to_owned());
    check_prefix(prefix.as_bytes(), "pg_distcount.outbox_message_prefix");
    prefix
}

// replication/message.h, which pgrx does not bind.
unsafe extern "C-unwind" {
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    fn LogLogicalMessage(
        prefix: *const std::ffi::c_char,
        message: *const std::ffi::c_char,
        size: usize,
        transactional: bool,
    ) -> pg_sys::XLogRecPtr;
    #[cfg(not(any(feature = "pg15", feature = "pg16")))]
    fn LogLogicalMessage(
        prefix: *const std::ffi::c_char,
        message: *const std::ffi::c_char,
        size: usize,
        transactional: bool,
        flush: bool,
    ) -> pg_sys::XLogRecPtr;
}

/// Writes a logical decoding message straight into the WAL; returns its LSN.
pub fn emit_message(prefix: &CStr, body: &[u8], transactional: bool) -> pg_sys::XLogRecPtr {
    let message = body.as_ptr() as *const std::ffi::c_char;
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| {
            #[cfg(any(feature = "pg15", feature = "pg16"))]
            let lsn = LogLogicalMessage(prefix.as_ptr(), message, body.len(), transactional);
            #[cfg(not(any(feature = "pg15", feature = "pg16")))]
            let lsn = LogLogicalMessage(prefix.as_ptr(), message, body.len(), transactional, false);
            lsn
        })
    }
}

thread_local! {
    static IDS: RefCell<Option<TimedIds>> = const { RefCell::new(None) };
}

/// The next event id of this session (README, Outbox: time-ordered, UUID version 7); the
/// random part's generator is seeded on first use in the session.
pub(super) fn next_id() -> [u8; 16] {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        let generator = ids.get_or_insert_with(|| {
            let mut seed = [0u8; 32];
            if !unsafe { pg_sys::pg_strong_random(seed.as_mut_ptr().cast(), seed.len()) } {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "could not seed the outbox event ids"
                );
            }
            TimedIds::new(IdGenerator::from_seed(seed))
        });
        generator.next_bytes(now_ms)
    })
}

/// The channel a relay LISTENs on (README, The relay).
pub const NOTIFY_CHANNEL: &CStr = c"distcount_outbox";

// commands/async.h, which pgrx does not bind.
unsafe extern "C-unwind" {
    fn Async_Notify(channel: *const std::ffi::c_char, payload: *const std::ffi::c_char);
}

/// Whether this session is Citus's connection running part of a distributed transaction (its
/// application_name): such a transaction may end in PREPARE TRANSACTION, which PostgreSQL
/// refuses after a NOTIFY. The relay over Citus nodes polls instead.
fn citus_participant() -> bool {
    let name = unsafe { pg_sys::application_name };
    !name.is_null()
        && unsafe { CStr::from_ptr(name) }
            .to_bytes()
            .starts_with(b"citus_internal gpid=")
}

thread_local! {
    /// The subtransaction that last decided whether to notify in the current transaction (0:
    /// none yet); reset at the end of each transaction.
    static NOTIFIED_IN: Cell<pg_sys::SubTransactionId> = const { Cell::new(0) };
    static NOTIFY_CALLBACK: Cell<bool> = const { Cell::new(false) };
    /// Whether this session holds the idle-relay lock (`outbox_relay_idle`).
    static RELAY_IDLE: Cell<bool> = const { Cell::new(false) };
}

/// The lock a relay holds, in share mode and at session level, while it waits for a
/// notification (`outbox_relay_idle`): advisory, per database, class 1684632436 (as the
/// counters' slot locks) with objsubid 3, which the SQL advisory-lock functions cannot name.
fn relay_idle_tag() -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: 1_684_632_436,
        locktag_field3: 0,
        locktag_field4: 3,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Whether a relay waits for a notification: a writer's row-exclusive request, which writers
/// share with each other, conflicts with a waiting relay's share lock. Asked without waiting
/// and released at once.
fn relay_waiting() -> bool {
    let tag = relay_idle_tag();
    let mode = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
    unsafe {
        if pg_sys::LockAcquire(&tag, mode, false, true)
            == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
        {
            return true;
        }
        pg_sys::LockRelease(&tag, mode, false);
    }
    false
}

/// `outbox_relay_idle(idle)`: true takes the idle-relay lock (writers then notify), false
/// releases it; either is a no-op when the session is already so.
#[pg_extern(sql = false)]
fn outbox_relay_idle(idle: bool) {
    if RELAY_IDLE.with(|held| held.get()) == idle {
        return;
    }
    let tag = relay_idle_tag();
    let mode = pg_sys::ShareLock as pg_sys::LOCKMODE;
    unsafe {
        if idle {
            pg_sys::LockAcquire(&tag, mode, true, false);
        } else {
            pg_sys::LockRelease(&tag, mode, true);
        }
    }
    RELAY_IDLE.with(|held| held.set(idle));
}

#[pg_guard]
unsafe extern "C-unwind" fn reset_notified(
    _event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    NOTIFIED_IN.with(|n| n.set(0));
}

/// Wakes waiting relays when this transaction commits: one NOTIFY per transaction, not per
/// event, and only when a relay waits (`outbox_relay_idle`), asked at the (sub)transaction's
/// first event: every notifying commit holds PostgreSQL's notification lock to its end, which
/// would serialise the commits of all writers. PostgreSQL delivers a NOTIFY only on commit and
/// folds duplicates within a transaction; a rolled-back subtransaction drops its own, so each
/// subtransaction decides anew.
pub fn notify_relay() {
    if !OUTBOX_NOTIFY.get() || citus_participant() {
        return;
    }
    unsafe {
        if !NOTIFY_CALLBACK.with(|c| c.replace(true)) {
            pg_sys::RegisterXactCallback(Some(reset_notified), std::ptr::null_mut());
        }
        let sub = pg_sys::GetCurrentSubTransactionId();
        if NOTIFIED_IN.with(|n| n.get()) == sub {
            return;
        }
        NOTIFIED_IN.with(|n| n.set(sub));
        if relay_waiting() {
            pg_sys::ffi::pg_guard_ffi_boundary(|| {
                Async_Notify(NOTIFY_CHANNEL.as_ptr(), c"".as_ptr())
            });
        }
    }
}

thread_local! {
    /// The last `pg_distcount.outbox_headers` text that parsed as a JSON object.
    static CHECKED_HEADERS: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// `pg_distcount.outbox_headers` (JSON object text) when set; checked once per distinct value,
/// because a message embeds it verbatim.
pub fn session_headers() -> Option<String> {
    let text = OUTBOX_HEADERS.get()?.to_string_lossy().into_owned();
    if text.trim().is_empty() {
        return None;
    }
    let known = CHECKED_HEADERS.with(|c| c.borrow().as_deref() == Some(text.as_str()));
    if !known {
        // jsonb_in raises 22P02 with the position of the error.
        jsonb_from_text(&text);
        // Valid JSON that starts with a brace is an object.
        let is_object = text.trim_start().starts_with('{');
        if !is_object {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "pg_distcount.outbox_headers must be a JSON object",
                format!("Got: {text}")
            );
        }
        CHECKED_HEADERS.with(|c| *c.borrow_mut() = Some(text.clone()));
    }
    Some(text)
}

/// `pg_distcount.outbox_tracingspancontext` when set.
pub fn session_tracing() -> Option<String> {
    OUTBOX_TRACING
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// JSON text of the payload, for a message.
fn payload_json(payload: &Payload) -> Option<String> {
    match payload {
        Payload::Rows {
            tupdesc,
            shape,
            old,
            new,
            ..
        } => {
            let json = |t: pg_sys::HeapTuple| unsafe { row_json(t, *tupdesc) };
            match shape {
                PayloadShape::New => new.or(*old).map(json),
                PayloadShape::OldNew => Some(old_new_payload(
                    old.map(json).as_deref(),
                    new.map(json).as_deref(),
                )),
            }
        }
        Payload::Jsonb(value) => value.map(jsonb_to_text),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum PlanKey {
    /// payload $5 (jsonb)
    Jsonb,
    /// payload {"old": $5, "new": $6} (jsonb)
    OldNew,
}

thread_local! {
    /// Saved INSERT plans, per payload shape (the plan cache replans them when the outbox
    /// table changes). Row payloads come as jsonb built from the cached column information.
    static PLANS: RefCell<HashMap<PlanKey, usize>> = RefCell::new(HashMap::new());
}

const INSERT_HEAD: &str = "INSERT INTO distcount.outbox \
     (id, aggregatetype, aggregateid, type, payload, headers, tracingspancontext) \
     VALUES ($1, $2, $3, $4, ";

fn insert_plan(key: PlanKey) -> pg_sys::SPIPlanPtr {
    if let Some(plan) = PLANS.with(|p| p.borrow().get(&key).copied()) {
        return plan as pg_sys::SPIPlanPtr;
    }
    let payload_expr = match key {
        PlanKey::OldNew => "pg_catalog.jsonb_build_object('old', $5, 'new', $6)",
        PlanKey::Jsonb => "$5",
    };
    let sql = format!("{INSERT_HEAD}{payload_expr}, $7::pg_catalog.jsonb, $8)");
    let sql = to_cstring(sql);
    let mut types = [
        pg_sys::UUIDOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::JSONBOID,
        pg_sys::JSONBOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
    ];
    let plan = kept_plan(&sql, &mut types);
    PLANS.with(|p| p.borrow_mut().insert(key, plan as usize));
    plan
}

/// `sql` prepared with parameters of `types` and kept for the session (the caller saves it).
pub(super) fn kept_plan(sql: &CStr, types: &mut [pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
    unsafe {
        let plan = pg_sys::SPI_prepare(sql.as_ptr(), types.len() as i32, types.as_mut_ptr());
        if plan.is_null() {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "could not prepare the outbox insert"
            );
        }
        pg_sys::SPI_keepplan(plan);
        plan
    }
}

/// A text datum in the current memory context.
pub fn text_datum(s: &str) -> pg_sys::Datum {
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            s.as_ptr() as *const std::ffi::c_char,
            s.len() as i32,
        ))
    }
}

/// SPI parameter values and their null flags.
pub fn spi_params<const N: usize>(
    params: [Option<pg_sys::Datum>; N],
) -> ([pg_sys::Datum; N], [std::ffi::c_char; N]) {
    let values = params.map(|p| p.unwrap_or(pg_sys::Datum::from(0usize)));
    let nulls = params.map(|p| if p.is_some() { b' ' } else { b'n' } as std::ffi::c_char);
    (values, nulls)
}

/// Runs `f` connected to SPI; `what` names the statement in the error of a failed run
/// (`f` returns the SPI result code, negative on failure).
pub unsafe fn run_in_spi(what: &str, f: impl FnOnce() -> i32) {
    unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "SPI_connect failed in the outbox"
            );
        }
        let rc = f();
        if rc < 0 {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("{what} failed (SPI code {rc})")
            );
        }
        pg_sys::SPI_finish();
    }
}

fn insert_row(event: &Event, id: &[u8; 16], headers: Option<&str>, tracing: Option<&str>) {
    let (key, payload_a, payload_b) = match &event.payload {
        Payload::Rows {
            tupdesc,
            shape,
            old,
            new,
            ..
        } => {
            let datum = |t: pg_sys::HeapTuple| unsafe { row_jsonb(t, *tupdesc) };
            match shape {
                PayloadShape::New => (PlanKey::Jsonb, new.or(*old).map(datum), None),
                PayloadShape::OldNew => (PlanKey::OldNew, old.map(datum), new.map(datum)),
            }
        }
        Payload::Jsonb(value) => (PlanKey::Jsonb, *value, None),
    };
    let id_datum = unsafe {
        let ptr = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(id.as_ptr(), ptr, 16);
        pg_sys::Datum::from(ptr)
    };
    let aggregate_type = text_datum(event.aggregate_type);
    let aggregate_id = text_datum(event.aggregate_id);
    let event_type = text_datum(event.event_type);
    let tracing = tracing.map(text_datum);
    if key == PlanKey::Jsonb {
        let row = OutboxRow {
            id: id_datum,
            aggregate_type,
            aggregate_id,
            event_type,
            payload: payload_a,
            headers: headers.map(jsonb_from_text),
            tracing,
        };
        if insert_outbox_row(&row) {
            return;
        }
    }
    let (mut values, nulls) = spi_params([
        Some(id_datum),
        Some(aggregate_type),
        Some(aggregate_id),
        Some(event_type),
        payload_a,
        payload_b,
        headers.map(text_datum),
        tracing,
    ]);
    unsafe {
        run_in_spi("the outbox insert", || {
            let plan = insert_plan(key);
            pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), nulls.as_ptr(), false, 0)
        });
    }
}
