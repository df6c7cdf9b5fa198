//! SQL binding of the OR-Set (`distcount.orset`). Declared by hand in `orset.sql`.

use super::orset::OrSet;
use crate::common::error::{Error, ErrorKind};
use crate::common::report::OrRaise;
use crate::common::varlena::{take_recv_bytes, to_cstring};
use crate::sql_varlena_type;
use pgrx::prelude::*;
use pgrx::{Internal, PgSqlErrorCode};
use std::ffi::{CStr, CString};

sql_varlena_type!(
    /// A `distcount.orset` datum.
    OrSetDatum,
    "orset"
);

impl OrSetDatum {
    fn set(&self) -> OrSet {
        OrSet::decode(self.bytes()).or_raise()
    }

    fn from_set(set: &OrSet) -> Self {
        OrSetDatum::from_bytes(&set.encode())
    }
}

fn not_null<'a>(value: Option<&'a str>, what: &str) -> &'a str {
    value.unwrap_or_else(|| {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("orset {what} must not be NULL")
        );
    })
}

#[pg_extern(sql = false)]
fn orset_in(input: &CStr) -> OrSetDatum {
    let text = input
        .to_str()
        .map_err(|_| Error::new(ErrorKind::InvalidText, "input is not valid UTF-8"));
    OrSetDatum::from_set(&OrSet::parse_text(text.or_raise()).or_raise())
}

#[pg_extern(sql = false)]
fn orset_out(value: OrSetDatum) -> CString {
    to_cstring(value.set().to_text())
}

#[pg_extern(sql = false)]
fn orset_recv(buf: Internal) -> OrSetDatum {
    OrSetDatum::from_set(&OrSet::decode(take_recv_bytes(buf)).or_raise())
}

/// The stored bytes are the binary format, validated when they came in.
#[pg_extern(sql = false)]
fn orset_send(value: OrSetDatum) -> Vec<u8> {
    value.bytes().to_vec()
}

#[pg_extern(sql = false)]
fn orset_from_bytea(bytes: &[u8]) -> OrSetDatum {
    OrSetDatum::from_set(&OrSet::decode(bytes).or_raise())
}

#[pg_extern(sql = false)]
fn orset_add(set: Option<OrSetDatum>, element: Option<&str>, node: Option<&str>) -> OrSetDatum {
    let element = not_null(element, "element");
    let node = super::node::node_or_raise(node);
    let mut set = set.map(|s| s.set()).unwrap_or_default();
    set.add(element, node).or_raise();
    OrSetDatum::from_set(&set)
}

#[pg_extern(sql = false)]
fn orset_remove(set: Option<OrSetDatum>, element: Option<&str>) -> OrSetDatum {
    let element = not_null(element, "element");
    let mut set = set.map(|s| s.set()).unwrap_or_default();
    set.remove(element);
    OrSetDatum::from_set(&set)
}

/// Merge; a NULL side counts as empty (both NULL give NULL).
#[pg_extern(sql = false)]
fn orset_merge(a: Option<OrSetDatum>, b: Option<OrSetDatum>) -> Option<OrSetDatum> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(a), Some(b)) => Some(OrSetDatum::from_set(&a.set().merge(&b.set()).or_raise())),
    }
}

#[pg_extern(sql = false)]
fn orset_contains(set: OrSetDatum, element: &str) -> bool {
    set.set().contains(element)
}

/// The elements as rows, in byte order.
#[pg_extern(sql = false)]
fn orset_elements(set: OrSetDatum) -> SetOfIterator<'static, String> {
    let elements: Vec<String> = set.set().elements().map(str::to_string).collect();
    SetOfIterator::new(elements)
}

/// The elements as an array, in byte order (the cast to text[]).
#[pg_extern(sql = false)]
fn orset_to_array(set: OrSetDatum) -> Vec<String> {
    set.set().elements().map(str::to_string).collect()
}

/// `s @> elements`: every element of the array is in the set (a NULL element never is, as for
/// arrays).
#[pg_extern(sql = false)]
fn orset_contains_all(set: OrSetDatum, elements: Array<&str>) -> bool {
    let set = set.set();
    elements
        .iter()
        .all(|element| element.is_some_and(|e| set.contains(e)))
}

#[pg_extern(sql = false)]
fn orset_size(set: OrSetDatum) -> i32 {
    set.set().len() as i32
}
