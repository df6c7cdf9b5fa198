//! The statement trigger's pass over a transition table, in Rust: per row the aggregate id, the
//! payload and the message are made as the row trigger makes them (cached column information,
//! the session's id generator, messages straight into the WAL), and the table rows go to the
//! outbox in chunks, one `INSERT … SELECT FROM unnest` of arrays each, through the executor (so
//! privileges, defaults, constraints and any trigger on the outbox apply as to any insert).
//! What it writes is what the earlier set-based SQL wrote, byte for byte in the messages.

use super::emit::{kept_plan, next_id, notify_relay, run_in_spi, spi_params, text_datum};
use super::event::Mode;
use super::row_json::{Row, row_json_into, row_jsonb_of};
use crate::common::text::{push_i64, write_json_string};
use crate::common::varlena::{jsonb_from_text, jsonb_to_text};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::{CStr, CString};

/// Rows per INSERT: bounds the arrays' memory on a huge statement.
const CHUNK: usize = 10_000;

/// How a key column's value becomes text: as `(t.col)::text` does it.
enum KeyCast {
    Int2,
    Int4,
    Int8,
    /// text, varchar and other binary-compatible types: the bytes.
    Bytes,
    /// A cast function (e.g. boolean's `true`, bpchar's trimmed text).
    Function(pg_sys::Oid),
    /// Through the type's output function.
    Output(pg_sys::Oid),
}

pub struct KeyColumn {
    pub name: String,
    pub attnum: i32,
    cast: KeyCast,
}

impl KeyColumn {
    /// Key column `name` (attribute `attnum`, type `type_oid`).
    pub unsafe fn new(name: &str, attnum: i32, type_oid: pg_sys::Oid) -> KeyColumn {
        unsafe {
            let mut func = pg_sys::InvalidOid;
            let path = pg_sys::find_coercion_pathway(
                pg_sys::TEXTOID,
                type_oid,
                pg_sys::CoercionContext::COERCION_EXPLICIT,
                &mut func,
            );
            let cast = match (pg_sys::getBaseType(type_oid), path) {
                (pg_sys::INT2OID, _) => KeyCast::Int2,
                (pg_sys::INT4OID, _) => KeyCast::Int4,
                (pg_sys::INT8OID, _) => KeyCast::Int8,
                (_, pg_sys::CoercionPathType::COERCION_PATH_RELABELTYPE) => KeyCast::Bytes,
                (_, pg_sys::CoercionPathType::COERCION_PATH_FUNC) if func != pg_sys::InvalidOid => {
                    KeyCast::Function(func)
                }
                _ => {
                    let mut output = pg_sys::InvalidOid;
                    let mut is_varlena = false;
                    pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut is_varlena);
                    KeyCast::Output(output)
                }
            };
            KeyColumn {
                name: name.to_string(),
                attnum,
                cast,
            }
        }
    }

    /// Appends the key's text in a row (its deformed `values` and `nulls`) to `out`; false for
    /// NULL.
    unsafe fn text_into(&self, out: &mut String, values: &[pg_sys::Datum], nulls: &[bool]) -> bool {
        unsafe {
            let i = (self.attnum - 1) as usize;
            if nulls[i] {
                return false;
            }
            let datum = values[i];
            let text_of = |out: &mut String, t: pg_sys::Datum| {
                let text = pg_sys::pg_detoast_datum_packed(t.cast_mut_ptr());
                out.push_str(&String::from_utf8_lossy(crate::common::varlena::payload(
                    text,
                )));
            };
            match self.cast {
                KeyCast::Int2 => push_i64(out, datum.value() as i16 as i64),
                KeyCast::Int4 => push_i64(out, datum.value() as i32 as i64),
                KeyCast::Int8 => push_i64(out, datum.value() as i64),
                KeyCast::Bytes => text_of(out, datum),
                KeyCast::Function(f) => text_of(
                    out,
                    pg_sys::OidFunctionCall1Coll(f, pg_sys::DEFAULT_COLLATION_OID, datum),
                ),
                KeyCast::Output(f) => {
                    let text = pg_sys::OidOutputFunctionCall(f, datum);
                    out.push_str(&CStr::from_ptr(text).to_string_lossy());
                }
            }
            true
        }
    }
}

/// What one statement trigger call writes.
pub struct StatementEvents<'a> {
    pub mode: Mode,
    pub aggregate_type: &'a str,
    pub event_type: &'a str,
    pub keys: Vec<KeyColumn>,
    pub headers: Option<String>,
    pub tracing: Option<String>,
    pub prefix: Option<CString>,
}

/// A message body as `json_build_object` prints it (the set-based SQL's message bodies,
/// `{"k" : v, …}`), in parts: what does not change within a statement is escaped once.
struct MessageParts {
    /// After the id: the aggregate type, up to the aggregate id.
    after_id: String,
    /// After the aggregate id: the event type, up to the payload.
    after_aggregate_id: String,
    /// After the payload: the headers and the trace context.
    tail: String,
}

impl MessageParts {
    fn new(ev: &StatementEvents, headers: Option<&str>) -> MessageParts {
        let mut after_id = String::from(", \"aggregatetype\" : ");
        write_json_string(&mut after_id, ev.aggregate_type);
        after_id.push_str(", \"aggregateid\" : ");
        let mut after_aggregate_id = String::from(", \"type\" : ");
        write_json_string(&mut after_aggregate_id, ev.event_type);
        after_aggregate_id.push_str(", \"payload\" : ");
        let mut tail = String::from(", \"headers\" : ");
        tail.push_str(headers.unwrap_or("null"));
        tail.push_str(", \"tracingspancontext\" : ");
        match &ev.tracing {
            Some(t) => write_json_string(&mut tail, t),
            None => tail.push_str("null"),
        }
        tail.push('}');
        MessageParts {
            after_id,
            after_aggregate_id,
            tail,
        }
    }

    /// The body of one event into `out` (cleared first); `payload` writes the payload's JSON.
    fn write(
        &self,
        out: &mut String,
        id: &str,
        aggregate_id: &str,
        payload: impl FnOnce(&mut String),
    ) {
        out.clear();
        // A UUID's text needs no escaping.
        out.push_str("{\"id\" : \"");
        out.push_str(id);
        out.push('"');
        out.push_str(&self.after_id);
        write_json_string(out, aggregate_id);
        out.push_str(&self.after_aggregate_id);
        payload(out);
        out.push_str(&self.tail);
    }
}

/// The table rows of one chunk, in `context` (reset after each insert).
struct Chunk {
    context: pg_sys::MemoryContext,
    ids: Vec<pg_sys::Datum>,
    aggregate_ids: Vec<pg_sys::Datum>,
    payloads: Vec<pg_sys::Datum>,
}

thread_local! {
    /// The saved chunk INSERT (the plan cache replans it when the outbox changes).
    static CHUNK_PLAN: Cell<usize> = const { Cell::new(0) };
}

fn chunk_plan() -> pg_sys::SPIPlanPtr {
    let saved = CHUNK_PLAN.with(|p| p.get());
    if saved != 0 {
        return saved as pg_sys::SPIPlanPtr;
    }
    // Written in the order of the transition table, so seq follows it as before. The arrays
    // are unnested in the select list (a ProjectSet, one row at a time, the three in step as
    // they have the same length) rather than in FROM (a function scan, which first copies
    // every row into a tuplestore).
    let sql = c"INSERT INTO distcount.outbox \
        (id, aggregatetype, aggregateid, type, payload, headers, tracingspancontext) \
        SELECT pg_catalog.unnest($1), $4, pg_catalog.unnest($2), $5, pg_catalog.unnest($3), \
               $6::pg_catalog.jsonb, $7";
    let mut types = [
        pg_sys::UUIDARRAYOID,
        pg_sys::TEXTARRAYOID,
        pg_sys::JSONBARRAYOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
        pg_sys::TEXTOID,
    ];
    let plan = kept_plan(sql, &mut types);
    CHUNK_PLAN.with(|p| p.set(plan as usize));
    plan
}

impl Chunk {
    unsafe fn new() -> Chunk {
        unsafe {
            Chunk {
                context: pg_sys::AllocSetContextCreateInternal(
                    pg_sys::CurrentMemoryContext,
                    c"outbox statement chunk".as_ptr(),
                    0,
                    8 * 1024,
                    8 * 1024 * 1024,
                ),
                ids: Vec::with_capacity(CHUNK),
                aggregate_ids: Vec::with_capacity(CHUNK),
                payloads: Vec::with_capacity(CHUNK),
            }
        }
    }

    unsafe fn insert(&mut self, ev: &StatementEvents) {
        if self.ids.is_empty() {
            return;
        }
        unsafe {
            let old = pg_sys::MemoryContextSwitchTo(self.context);
            let n = self.ids.len() as i32;
            let array = |datums: &mut Vec<pg_sys::Datum>, oid, len, align: u8| {
                pg_sys::Datum::from(pg_sys::construct_array(
                    datums.as_mut_ptr(),
                    n,
                    oid,
                    len,
                    false,
                    align as std::ffi::c_char,
                ))
            };
            let (mut values, nulls) = spi_params([
                Some(array(&mut self.ids, pg_sys::UUIDOID, 16, b'c')),
                Some(array(&mut self.aggregate_ids, pg_sys::TEXTOID, -1, b'i')),
                Some(array(&mut self.payloads, pg_sys::JSONBOID, -1, b'i')),
                Some(text_datum(ev.aggregate_type)),
                Some(text_datum(ev.event_type)),
                ev.headers.as_deref().map(text_datum),
                ev.tracing.as_deref().map(text_datum),
            ]);
            run_in_spi("the outbox statement trigger", || {
                pg_sys::SPI_execute_plan(
                    chunk_plan(),
                    values.as_mut_ptr(),
                    nulls.as_ptr(),
                    false,
                    0,
                )
            });
            pg_sys::MemoryContextSwitchTo(old);
            pg_sys::MemoryContextReset(self.context);
            self.ids.clear();
            self.aggregate_ids.clear();
            self.payloads.clear();
        }
    }
}

/// Writes the events of every row in `store` (a transition table of `tupdesc`'s rows).
pub unsafe fn write_statement_events(
    ev: &StatementEvents,
    store: *mut pg_sys::Tuplestorestate,
    tupdesc: pg_sys::TupleDesc,
) {
    unsafe {
        // A read pointer of our own, as the executor's scan of a transition table takes one:
        // other triggers read the same table.
        let pointer = pg_sys::tuplestore_alloc_read_pointer(store, 0);
        pg_sys::tuplestore_select_read_pointer(store, pointer);
        pg_sys::tuplestore_rescan(store);
        let slot = pg_sys::MakeSingleTupleTableSlot(tupdesc, &pg_sys::TTSOpsMinimalTuple);
        // Per-row garbage (output functions, deformed values) goes with each row.
        let row_context = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"outbox statement row".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        );
        let mut chunk = ev.mode.writes_table().then(|| Chunk::new());
        // Message mode's headers are the text as set (`$3::json`); mode both's went through jsonb.
        let message_headers = match (ev.mode, &ev.headers) {
            (Mode::Both, Some(h)) => Some(jsonb_to_text(jsonb_from_text(h))),
            (_, h) => h.clone(),
        };
        let parts = ev
            .prefix
            .as_ref()
            .map(|_| MessageParts::new(ev, message_headers.as_deref()));
        // Buffers reused from row to row.
        let mut key_values: Vec<String> = vec![String::new(); ev.keys.len()];
        let mut aggregate_id = String::new();
        let mut body = String::new();
        let mut id_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        while pg_sys::tuplestore_gettupleslot(store, true, false, slot) {
            let old = pg_sys::MemoryContextSwitchTo(row_context);
            // The row's values, deformed in the slot once for the key and the payload.
            pg_sys::slot_getallattrs(slot);
            let natts = (*tupdesc).natts as usize;
            let values = std::slice::from_raw_parts((*slot).tts_values, natts);
            let nulls = std::slice::from_raw_parts((*slot).tts_isnull, natts);
            let row = Row::Deformed(values, nulls);
            for (key, value) in ev.keys.iter().zip(key_values.iter_mut()) {
                value.clear();
                if !key.text_into(value, values, nulls) {
                    null_key(&key.name);
                }
            }
            aggregate_id.clear();
            match key_values.as_slice() {
                [single] => aggregate_id.push_str(single),
                several => {
                    let refs: Vec<&str> = several.iter().map(|s| s.as_str()).collect();
                    aggregate_id.push_str(&super::event::aggregate_id(&refs));
                }
            }
            let id_bytes = next_id();
            let payload = chunk.as_ref().map(|c| {
                pg_sys::MemoryContextSwitchTo(c.context);
                let p = row_jsonb_of(row, tupdesc);
                pg_sys::MemoryContextSwitchTo(row_context);
                p
            });
            if let (Some(prefix), Some(parts)) = (&ev.prefix, &parts) {
                let id = uuid::Uuid::from_bytes(id_bytes)
                    .hyphenated()
                    .encode_lower(&mut id_text);
                parts.write(&mut body, id, &aggregate_id, |out| match payload {
                    Some(p) => out.push_str(&jsonb_to_text(p)),
                    None => row_json_into(out, row, tupdesc),
                });
                super::emit::emit_message(prefix, body.as_bytes(), true);
            }
            if let Some(c) = chunk.as_mut() {
                pg_sys::MemoryContextSwitchTo(c.context);
                let id = pg_sys::palloc(16) as *mut u8;
                std::ptr::copy_nonoverlapping(id_bytes.as_ptr(), id, 16);
                c.ids.push(pg_sys::Datum::from(id));
                c.aggregate_ids.push(text_datum(&aggregate_id));
                c.payloads
                    .push(payload.unwrap_or(pg_sys::Datum::from(0usize)));
            }
            pg_sys::MemoryContextSwitchTo(old);
            pg_sys::MemoryContextReset(row_context);
            if let Some(c) = chunk.as_mut() {
                if c.ids.len() >= CHUNK {
                    c.insert(ev);
                }
            }
        }
        if let Some(c) = chunk.as_mut() {
            c.insert(ev);
            notify_relay();
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::MemoryContextDelete(row_context);
        if let Some(c) = chunk {
            pg_sys::MemoryContextDelete(c.context);
        }
    }
}

/// The set-based SQL's error for a NULL key (its message, without the table name).
fn null_key(column: &str) -> ! {
    pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
        format!("outbox trigger: key column \"{column}\" is null"),
        "pg_distcount",
    )
    .set_hint("An event needs an aggregate id; make the key column NOT NULL.")
    .report(PgLogLevel::ERROR);
    unreachable!()
}
