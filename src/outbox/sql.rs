//! SQL entry points of the outbox: the row and statement trigger functions, their check at
//! CREATE TRIGGER time, `outbox_emit` and `cdc_heartbeat`.

use super::emit::{
    Event, Payload, check_prefix, effective_mode, emit_message, message_prefix,
    require_logical_wal, session_headers, session_tracing, write_event,
};
use super::event::{
    Attachment, Form, Mode, Op, PayloadShape, TriggerConfig, aggregate_id, check_attachment,
    check_key_columns,
};
use super::statement::{KeyColumn, StatementEvents, write_statement_events};
use crate::common::report::OrRaise;
use crate::common::trigger::trigger_data;
use crate::common::varlena::to_cstring;
use crate::settings::OUTBOX_MAX_ATTEMPTS;
use ahash::AHashMap as HashMap;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::rc::Rc;

// TriggerData.tg_event bits (commands/trigger.h).
const EVENT_OPMASK: u32 = 0x3;
const EVENT_INSERT: u32 = 0x0;
const EVENT_DELETE: u32 = 0x1;
const EVENT_UPDATE: u32 = 0x2;
const EVENT_TRUNCATE: u32 = 0x3;
const EVENT_ROW: u32 = 0x4;
const EVENT_TIMINGMASK: u32 = 0x18; // BEFORE 0x8, INSTEAD 0x10, AFTER 0

// pg_trigger.tgtype bits (catalog/pg_trigger.h).
const TYPE_ROW: i32 = 1 << 0;
const TYPE_BEFORE: i32 = 1 << 1;
const TYPE_INSERT: i32 = 1 << 2;
const TYPE_DELETE: i32 = 1 << 3;
const TYPE_UPDATE: i32 = 1 << 4;
const TYPE_TRUNCATE: i32 = 1 << 5;
const TYPE_INSTEAD: i32 = 1 << 6;

fn cstr_lossy(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

unsafe fn trigger_args(trigger: *const pg_sys::Trigger) -> Vec<String> {
    unsafe {
        let n = (*trigger).tgnargs as usize;
        (0..n)
            .map(|i| cstr_lossy(*(*trigger).tgargs.add(i)))
            .collect()
    }
}

fn parse_config(args: &[String]) -> TriggerConfig {
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    TriggerConfig::parse(&refs).or_raise()
}

unsafe fn firing(td: &pg_sys::TriggerData) -> (Op, Attachment) {
    let event = td.tg_event;
    let opmask = event & EVENT_OPMASK;
    let op = match opmask {
        EVENT_DELETE => Op::Delete,
        EVENT_UPDATE => Op::Update,
        _ => Op::Insert, // or TRUNCATE, which check_attachment refuses
    };
    let trigger = td.tg_trigger;
    let attachment = Attachment {
        for_each_row: event & EVENT_ROW != 0,
        after: event & EVENT_TIMINGMASK == 0,
        insert: opmask == EVENT_INSERT,
        update: opmask == EVENT_UPDATE,
        delete: opmask == EVENT_DELETE,
        truncate: opmask == EVENT_TRUNCATE,
        new_table: unsafe { !(*trigger).tgnewtable.is_null() },
        old_table: unsafe { !(*trigger).tgoldtable.is_null() },
    };
    (op, attachment)
}

unsafe fn relation_name(rel: pg_sys::Relation) -> String {
    unsafe { cstr_lossy((*(*rel).rd_rel).relname.data.as_ptr()) }
}

unsafe fn column_exists(tupdesc: pg_sys::TupleDesc, name: &str) -> bool {
    let name = to_cstring(name.to_string());
    unsafe { pg_sys::SPI_fnumber(tupdesc, name.as_ptr()) > 0 }
}

/// A row trigger's parsed arguments and rendered event types, kept per trigger for the
/// session and checked against the trigger's current arguments and table name on each call
/// (CREATE OR REPLACE TRIGGER keeps the oid; ALTER TABLE RENAME changes `{table}`).
struct CachedTrigger {
    args: Vec<String>,
    table: String,
    config: TriggerConfig,
    event_types: [String; 3],
    /// The key column names as C strings, for SPI_fnumber on each row.
    key_columns: Vec<CString>,
    /// False on a Citus placement that leaves the event to another one ([`placement_emits`]).
    emits: bool,
}

thread_local! {
    static ROW_TRIGGERS: RefCell<HashMap<pg_sys::Oid, Rc<CachedTrigger>>> = RefCell::new(HashMap::new());
}

/// Whether this firing writes the event. On a Citus node an outbox trigger fires on every
/// placement of the shard a change touches (once per node for a reference table), and only the
/// placement in the lowest node group writes (`outbox_citus_emits`). Without Citus, always
/// (one syscache lookup).
unsafe fn placement_emits(rel: pg_sys::Relation) -> bool {
    let catalog = unsafe {
        pg_sys::get_relname_relid(
            c"pg_dist_partition".as_ptr(),
            pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
        )
    };
    if catalog == pg_sys::InvalidOid {
        return true;
    }
    watch_relcache();
    let relid = unsafe { (*rel).rd_id };
    Spi::get_one_with_args::<bool>(
        "SELECT distcount.outbox_citus_emits($1::pg_catalog.regclass)",
        &[relid.into()],
    )
    // An ERROR raised by the function propagates; a failure of SPI itself writes rather than
    // loses the event.
    .ok()
    .flatten()
    .unwrap_or(true)
}

/// Forgets the cached row triggers on any relcache invalidation: Citus sends one for a table
/// whose placements change (a node added or removed), which can change which placement writes.
fn watch_relcache() {
    thread_local! {
        static WATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    unsafe extern "C-unwind" fn forget(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
        ROW_TRIGGERS.with(|t| t.borrow_mut().clear());
    }
    if !WATCHING.get() {
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(forget), pg_sys::Datum::from(0usize)) };
        WATCHING.set(true);
    }
}

unsafe fn cached_trigger(td: &pg_sys::TriggerData) -> Rc<CachedTrigger> {
    unsafe {
        let trigger = td.tg_trigger;
        let oid = (*trigger).tgoid;
        let nargs = (*trigger).tgnargs as usize;
        let relname = CStr::from_ptr((*(*td.tg_relation).rd_rel).relname.data.as_ptr());
        let current = |c: &CachedTrigger| {
            c.table.as_bytes() == relname.to_bytes()
                && c.args.len() == nargs
                && c.args.iter().enumerate().all(|(i, a)| {
                    CStr::from_ptr(*(*trigger).tgargs.add(i)).to_bytes() == a.as_bytes()
                })
        };
        if let Some(cached) = ROW_TRIGGERS.with(|t| t.borrow().get(&oid).cloned()) {
            if current(&cached) {
                return cached;
            }
        }
        let emits = placement_emits(td.tg_relation);
        let args = trigger_args(trigger);
        let config = parse_config(&args);
        let table = relname.to_string_lossy().into_owned();
        let cached = Rc::new(CachedTrigger {
            event_types: config.event_types(&table),
            key_columns: config
                .key_columns
                .iter()
                .map(|c| to_cstring(c.clone()))
                .collect(),
            args,
            table,
            config,
            emits,
        });
        ROW_TRIGGERS.with(|t| t.borrow_mut().insert(oid, cached.clone()));
        cached
    }
}

/// The text of a key column's value: integer and text keys directly, other types through
/// their output function.
unsafe fn key_text(
    tuple: pg_sys::HeapTuple,
    tupdesc: pg_sys::TupleDesc,
    attnum: i32,
) -> Option<String> {
    unsafe {
        let mut is_null = false;
        let datum = pg_sys::SPI_getbinval(tuple, tupdesc, attnum, &mut is_null);
        if is_null {
            return None;
        }
        let type_oid = crate::common::tupdesc::attribute(tupdesc, attnum as usize - 1).atttypid;
        Some(match type_oid {
            pg_sys::INT8OID => (datum.value() as i64).to_string(),
            pg_sys::INT4OID => (datum.value() as i32).to_string(),
            pg_sys::INT2OID => (datum.value() as i16).to_string(),
            pg_sys::TEXTOID | pg_sys::VARCHAROID => {
                let text = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
                String::from_utf8_lossy(crate::common::varlena::payload(text)).into_owned()
            }
            _ => cstr_lossy(pg_sys::SPI_getvalue(tuple, tupdesc, attnum)),
        })
    }
}

/// `outbox_trigger('Order', 'id' [, mode [, type_format [, payload]]])`: AFTER … FOR EACH ROW.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn outbox_trigger(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let td = trigger_data(fcinfo, "outbox_trigger");
        let (op, attachment) = firing(td);
        let cached = cached_trigger(td);
        if !cached.emits {
            return pg_sys::Datum::from(0usize);
        }
        let config = &cached.config;
        check_attachment(Form::Row, &attachment, config).or_raise();

        let rel = td.tg_relation;
        let tupdesc = (*rel).rd_att;
        let (old, new) = match op {
            Op::Insert => (None, Some(td.tg_trigtuple)),
            Op::Update => (Some(td.tg_trigtuple), Some(td.tg_newtuple)),
            Op::Delete => (Some(td.tg_trigtuple), None),
        };
        let key_tuple = new.or(old).unwrap_or(std::ptr::null_mut());

        let mut key_values = Vec::with_capacity(config.key_columns.len());
        for (column, name) in config.key_columns.iter().zip(&cached.key_columns) {
            let attnum = pg_sys::SPI_fnumber(tupdesc, name.as_ptr());
            if attnum <= 0 {
                check_key_columns(config, &cached.table, |_| false).or_raise();
            }
            match key_text(key_tuple, tupdesc, attnum) {
                Some(value) => key_values.push(value),
                None => {
                    ereport!(
                        ERROR,
                        PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                        format!(
                            "outbox trigger: key column \"{column}\" of table \"{}\" is null",
                            cached.table
                        ),
                        "An event needs an aggregate id; make the key column NOT NULL."
                    );
                }
            }
        }
        let refs: Vec<&str> = key_values.iter().map(|s| s.as_str()).collect();
        let aggregate_id = aggregate_id(&refs);
        check_id_length(&aggregate_id);

        // Only the rows the payload shows.
        let (old, new) = match (config.payload, op) {
            (PayloadShape::OldNew, _) | (_, Op::Delete) => (old, new),
            (PayloadShape::New, _) => (None, new),
        };
        let event = Event {
            aggregate_type: &config.aggregate_type,
            aggregate_id: &aggregate_id,
            event_type: &cached.event_types[op.index()],
            payload: Payload::Rows {
                tupdesc,
                shape: config.payload,
                old,
                new,
            },
        };
        write_event(&event, effective_mode(config.mode));
        pg_sys::Datum::from(0usize)
    }
}

fn check_id_length(aggregate_id: &str) {
    if aggregate_id.len() > 255 {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
            format!(
                "outbox aggregate id is {} bytes; at most 255 fit the outbox",
                aggregate_id.len()
            )
        );
    }
}

/// `outbox_statement_trigger('Order', 'id' [, mode [, type_format]])`: AFTER INSERT (or UPDATE,
/// or DELETE) … REFERENCING NEW (OLD) TABLE AS t FOR EACH STATEMENT: one set-based pass.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn outbox_statement_trigger(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        let td = trigger_data(fcinfo, "outbox_statement_trigger");
        if !placement_emits(td.tg_relation) {
            return pg_sys::Datum::from(0usize);
        }
        let (op, attachment) = firing(td);
        let config = parse_config(&trigger_args(td.tg_trigger));
        check_attachment(Form::Statement, &attachment, &config).or_raise();
        let rel = td.tg_relation;
        let table = relation_name(rel);
        check_key_columns(&config, &table, |c| column_exists((*rel).rd_att, c)).or_raise();
        let mode = effective_mode(config.mode);
        if mode.writes_message() {
            require_logical_wal();
        }
        let store = if op == Op::Delete {
            td.tg_oldtable
        } else {
            td.tg_newtable
        };
        let tupdesc = (*rel).rd_att;
        let keys = config
            .key_columns
            .iter()
            .map(|c| {
                let attnum = pg_sys::SPI_fnumber(tupdesc, to_cstring(c.clone()).as_ptr());
                let type_oid =
                    crate::common::tupdesc::attribute(tupdesc, attnum as usize - 1).atttypid;
                KeyColumn::new(c, attnum, type_oid)
            })
            .collect();
        let event_type = config.event_type(op, &table);
        let events = StatementEvents {
            mode,
            aggregate_type: &config.aggregate_type,
            event_type: &event_type,
            keys,
            headers: session_headers(),
            tracing: session_tracing(),
            prefix: mode.writes_message().then(message_prefix),
        };
        if !store.is_null() {
            write_statement_events(&events, store, tupdesc);
        }
        pg_sys::Datum::from(0usize)
    }
}

/// Called by the event trigger after CREATE TRIGGER: refuses a trigger that could never write
/// its events (wrong timing, level or events, bad arguments, unknown key column).
#[pg_extern(sql = false)]
fn outbox_trigger_check(trigger: pg_sys::Oid, statement_form: bool) {
    let row = Spi::get_three_with_args::<pg_sys::Oid, i32, Vec<u8>>(
        "SELECT tgrelid, tgtype::int4, tgargs FROM pg_catalog.pg_trigger WHERE oid = $1",
        &[trigger.into()],
    );
    let Ok((Some(relid), Some(tgtype), args)) = row else {
        return;
    };
    let tables = Spi::get_two_with_args::<bool, bool>(
        "SELECT tgnewtable IS NOT NULL, tgoldtable IS NOT NULL FROM pg_catalog.pg_trigger WHERE oid = $1",
        &[trigger.into()],
    );
    let (new_table, old_table) = match tables {
        Ok((n, o)) => (n.unwrap_or(false), o.unwrap_or(false)),
        Err(_) => (false, false),
    };
    let args = args.unwrap_or_default();
    let mut parts: Vec<String> = args
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    parts.pop(); // every argument ends with a NUL
    let config = parse_config(&parts);
    let attachment = Attachment {
        for_each_row: tgtype & TYPE_ROW != 0,
        after: tgtype & (TYPE_BEFORE | TYPE_INSTEAD) == 0,
        insert: tgtype & TYPE_INSERT != 0,
        update: tgtype & TYPE_UPDATE != 0,
        delete: tgtype & TYPE_DELETE != 0,
        truncate: tgtype & TYPE_TRUNCATE != 0,
        new_table,
        old_table,
    };
    let form = if statement_form {
        Form::Statement
    } else {
        Form::Row
    };
    check_attachment(form, &attachment, &config).or_raise();
    let columns: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT attname::text FROM pg_catalog.pg_attribute \
                 WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                None,
                &[relid.into()],
            )
            .map(|rows| {
                rows.filter_map(|r| r.get::<String>(1).ok().flatten())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    });
    let table =
        Spi::get_one_with_args::<String>("SELECT $1::pg_catalog.regclass::text", &[relid.into()])
            .ok()
            .flatten()
            .unwrap_or_default();
    check_key_columns(&config, &table, |c| columns.iter().any(|x| x == c)).or_raise();
}

/// `outbox_emit(aggregatetype, aggregateid, type, payload jsonb [, mode]) → uuid`.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn outbox_emit(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let nargs = (*fcinfo).nargs as usize;
        let text_arg = |i: usize, what: &str| -> String {
            if i >= nargs || pg_arg_is_null(fcinfo, i) {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                    format!("outbox_emit: {what} must not be null")
                );
            }
            let text = pg_sys::text_to_cstring(pg_getarg_datum_raw(fcinfo, i).cast_mut_ptr());
            cstr_lossy(text)
        };
        let aggregate_type = text_arg(0, "aggregatetype");
        let aggregate_id = text_arg(1, "aggregateid");
        let event_type = text_arg(2, "type");
        for (what, value) in [
            ("aggregatetype", &aggregate_type),
            ("aggregateid", &aggregate_id),
            ("type", &event_type),
        ] {
            if value.is_empty() || value.len() > 255 {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("outbox_emit: {what} must be 1 to 255 bytes")
                );
            }
        }
        let payload = (nargs > 3 && !pg_arg_is_null(fcinfo, 3)).then(|| {
            pg_sys::Datum::from(pg_sys::pg_detoast_datum(
                pg_getarg_datum_raw(fcinfo, 3).cast_mut_ptr(),
            ))
        });
        let mode = (nargs > 4 && !pg_arg_is_null(fcinfo, 4))
            .then(|| text_arg(4, "mode"))
            .filter(|m| m != "default")
            .map(|m| Mode::parse(&m).or_raise());
        let event = Event {
            aggregate_type: &aggregate_type,
            aggregate_id: &aggregate_id,
            event_type: &event_type,
            payload: Payload::Jsonb(payload),
        };
        let id = write_event(&event, effective_mode(mode));
        let ptr = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(id.as_ptr(), ptr, 16);
        pg_sys::Datum::from(ptr)
    }
}

/// `cdc_heartbeat(prefix)`: a non-transactional message, flushed, so an idle logical slot
/// has something to confirm and can advance (its WAL would otherwise be kept forever).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn cdc_heartbeat(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let prefix = if (*fcinfo).nargs > 0 && !pg_arg_is_null(fcinfo, 0) {
            cstr_lossy(pg_sys::text_to_cstring(
                pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr(),
            ))
        } else {
            "distcount.heartbeat".to_string()
        };
        check_prefix(prefix.as_bytes(), "cdc_heartbeat: the prefix");
        let now = pg_sys::GetCurrentTimestamp();
        let body = format!("{{\"ts\":{now}}}");
        let prefix = to_cstring(prefix);
        let lsn = emit_message(&prefix, body.as_bytes(), false);
        // PostgreSQL 17's flush argument: a consumer only sees what is flushed.
        pg_sys::XLogFlush(lsn);
        pg_sys::Datum::from(lsn)
    }
}

/// Attempts after which the relay dead-letters an event (setting pg_distcount.outbox_max_attempts).
#[pg_extern(sql = false)]
fn outbox_max_attempts() -> i32 {
    OUTBOX_MAX_ATTEMPTS.get()
}

crate::pg_finfo_v1!(
    pg_finfo_outbox_trigger,
    pg_finfo_outbox_statement_trigger,
    pg_finfo_outbox_emit,
    pg_finfo_cdc_heartbeat
);
