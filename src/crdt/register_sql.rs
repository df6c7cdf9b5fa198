//! SQL binding of the LWW-Register (`distcount.lwwreg`). Declared by hand in `register.sql`.
//! Values are jsonb; the register keeps their canonical text (what `jsonb_out` prints), so
//! equal registers have equal bytes and ties break on those bytes the same way everywhere.

use super::node::node_or_raise;
use super::register::{Register, Stamp};
use crate::common::error::{Error, ErrorKind};
use crate::common::report::{OrRaise, raise};
use crate::common::varlena::{jsonb_from_text, jsonb_to_text, take_recv_bytes, to_cstring};
use crate::sql_varlena_type;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::{AnyElement, Internal, PgSqlErrorCode};
use std::ffi::{CStr, CString};

sql_varlena_type!(
    /// A `distcount.lwwreg` datum.
    LwwDatum,
    "lwwreg"
);

impl LwwDatum {
    fn register(&self) -> Register {
        Register::decode(self.bytes()).or_raise()
    }

    fn from_register(register: &Register) -> Self {
        LwwDatum::from_bytes(&register.encode())
    }
}

/// A register whose value text is replaced by its canonical jsonb text (text input).
fn canonical(register: Register) -> Register {
    Register(register.0.map(|mut w| {
        w.value = jsonb_to_text(jsonb_from_text(&w.value));
        w
    }))
}

/// A register from bytes (recv, bytea cast): its value must already be canonical jsonb text,
/// or equal registers could differ in bytes.
fn checked_binary(register: Register) -> Register {
    if let Some(w) = &register.0
        && jsonb_to_text(jsonb_from_text(&w.value)) != w.value
    {
        raise(
            Error::new(
                ErrorKind::InvalidBinary,
                "invalid binary data for type lwwreg",
            )
            .with_detail("The value is not the canonical text of a jsonb."),
        );
    }
    register
}

/// The canonical text of a jsonb argument (declared `anyelement` on the Rust side so that
/// pgrx hands over the datum as it is, without parsing it).
fn value_or_raise(value: Option<AnyElement>) -> String {
    match value {
        Some(value) => jsonb_to_text(value.datum()),
        None => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "lwwreg value must not be NULL",
                "Write 'null'::jsonb for a JSON null."
            );
        }
    }
}

#[pg_extern(sql = false)]
fn lwwreg_in(input: &CStr) -> LwwDatum {
    let text = input
        .to_str()
        .map_err(|_| Error::new(ErrorKind::InvalidText, "input is not valid UTF-8"));
    LwwDatum::from_register(&canonical(Register::parse_text(text.or_raise()).or_raise()))
}

#[pg_extern(sql = false)]
fn lwwreg_out(value: LwwDatum) -> CString {
    to_cstring(value.register().to_text())
}

#[pg_extern(sql = false)]
fn lwwreg_recv(buf: Internal) -> LwwDatum {
    LwwDatum::from_register(&checked_binary(
        Register::decode(take_recv_bytes(buf)).or_raise(),
    ))
}

/// The stored bytes are the binary format, validated when they came in.
#[pg_extern(sql = false)]
fn lwwreg_send(value: LwwDatum) -> Vec<u8> {
    value.bytes().to_vec()
}

#[pg_extern(sql = false)]
fn lwwreg_from_bytea(bytes: &[u8]) -> LwwDatum {
    LwwDatum::from_register(&checked_binary(Register::decode(bytes).or_raise()))
}

/// `lww_set(r, value, node)`: a write at this server's clock, later than `r` even when the
/// clock is behind `r`'s stamp (hybrid logical clock). A NULL register counts as empty.
#[pg_extern(sql = false)]
fn lww_set(register: Option<LwwDatum>, value: Option<AnyElement>, node: Option<&str>) -> LwwDatum {
    let value = value_or_raise(value);
    let node = node_or_raise(node);
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let register = register.map(|r| r.register()).unwrap_or_default();
    LwwDatum::from_register(&register.set(&value, node, now).or_raise())
}

/// `lww_set_at(r, value, stamp, node)`: a write stamped by the caller's own clock; it wins only
/// if it is the greater write.
#[pg_extern(sql = false)]
fn lww_set_at(
    register: Option<LwwDatum>,
    value: Option<AnyElement>,
    stamp: Option<TimestampWithTimeZone>,
    node: Option<&str>,
) -> LwwDatum {
    let value = value_or_raise(value);
    let node = node_or_raise(node);
    let Some(stamp) = stamp else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "lwwreg stamp must not be NULL"
        );
    };
    let micros: i64 = stamp.into_inner();
    let register = register.map(|r| r.register()).unwrap_or_default();
    LwwDatum::from_register(
        &register
            .set_at(&value, node, Stamp { micros, tick: 0 })
            .or_raise(),
    )
}

/// Merge: the greater write; a NULL side counts as empty (both NULL give NULL). Returns one of
/// its arguments unchanged, so the merge aggregate copies nothing per row but the winner.
#[pg_extern(sql = false)]
fn lww_merge(a: Option<LwwDatum>, b: Option<LwwDatum>) -> Option<LwwDatum> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(a), Some(b)) => {
            let (ra, rb) = (a.register(), b.register());
            if ra.merge(&rb) == ra {
                Some(a)
            } else {
                Some(b)
            }
        }
    }
}

/// The write a merge of `a` and `b` discards, as a register (NULL when nothing is discarded).
#[pg_extern(sql = false)]
fn lww_discarded(a: Option<LwwDatum>, b: Option<LwwDatum>) -> Option<LwwDatum> {
    let (a, b) = (a?.register(), b?.register());
    let (_, lost) = a.merge_report(&b);
    lost.map(|w| LwwDatum::from_register(&Register(Some(w))))
}

/// The value's canonical jsonb text (`lww_value` casts it to jsonb in SQL).
#[pg_extern(sql = false)]
fn lww_value_text(register: LwwDatum) -> Option<String> {
    register.register().0.map(|w| w.value)
}

#[pg_extern(sql = false)]
fn lww_stamp(register: LwwDatum) -> Option<TimestampWithTimeZone> {
    register
        .register()
        .0
        .and_then(|w| TimestampWithTimeZone::try_from(w.stamp.micros).ok())
}

#[pg_extern(sql = false)]
fn lww_tick(register: LwwDatum) -> Option<i64> {
    register.register().0.map(|w| i64::from(w.stamp.tick))
}

#[pg_extern(sql = false)]
fn lww_node(register: LwwDatum) -> Option<String> {
    register.register().0.map(|w| w.node)
}
