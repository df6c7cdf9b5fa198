//! SQL binding of the frequent-items summary, `distcount.topk`. Entry points are declared by
//! hand in `topk.sql`; the aggregate transition function is a raw V1 function (the per-row hot
//! path). Values are keyed by their canonical bytes (common::value_hash), so SQL-equal values
//! (1.0 and 1.00, 42::int4 and 42::int8, 'a'::char(3) and 'a') are one item, shown in that
//! canonical form.

use super::summary::codec::{FORMAT_VERSION, TAG_DECIMAL};
use super::summary::{DEFAULT_CAPACITY, TopK};
use crate::common::aggregate::{
    AggState, SketchState, sketch_combine, sketch_deserial, sketch_final_bytes, sketch_serial,
    sketch_union_step, state_datum, state_or_init,
};
use crate::common::arena::{Arena, CloneIn};
use crate::common::report::OrRaise;
use crate::common::value_hash::{
    KeyKind, ValueHasher, cached_hasher, render_key, site_state_and_hasher,
};
use crate::common::varlena::{Unread, take_recv_bytes, to_cstring};
use crate::sql_varlena_type;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
use pgrx::prelude::*;
use pgrx::{AnyElement, Internal};
use std::ffi::{CStr, CString};

sql_varlena_type!(
    /// A `distcount.topk` datum.
    TopkDatum,
    "topk"
);

impl TopkDatum {
    fn summary(&self) -> TopK {
        TopK::decode_in(self.bytes(), Arena::current()).or_raise()
    }

    fn from_summary(summary: &TopK) -> Self {
        TopkDatum::from_bytes(&summary.encode())
    }
}

/// The key of one value: its canonical bytes and tag (common::value_hash), except that a
/// numeric that is not an integer (canonical bytes `N` and its shortest decimal text) takes
/// tag 6 and the text alone, so that `topk_items` shows it as a number.
///
/// # Safety
/// `datum` must be a non-NULL value of the type of argument `arg`.
unsafe fn encode_value(
    fcinfo: pg_sys::FunctionCallInfo,
    arg: i32,
    datum: pg_sys::Datum,
    out: &mut Vec<u8>,
) -> u8 {
    unsafe { encode_with(cached_hasher(fcinfo, arg), datum, out) }
}

/// [`encode_value`] with the hasher at hand.
///
/// # Safety
/// `datum` must be a valid value of the hasher's type.
unsafe fn encode_with(hasher: &mut ValueHasher, datum: pg_sys::Datum, out: &mut Vec<u8>) -> u8 {
    let kind = unsafe { hasher.encode_key(datum, out) };
    if kind == KeyKind::Other
        && out.first() == Some(&b'N')
        && unsafe { pg_sys::getBaseType(hasher.type_oid()) } == pg_sys::NUMERICOID
    {
        out.remove(0);
        return TAG_DECIMAL;
    }
    kind as u8
}

/// An item as text: numerics (tag 6) as their decimal text, the rest as cms_topk shows keys.
fn render(key: &[u8], tag: u8) -> String {
    if tag == TAG_DECIMAL {
        String::from_utf8_lossy(key).into_owned()
    } else {
        render_key(key, tag)
    }
}

/// Aggregate state: the summary, made at the first row from that row's capacity argument, and
/// a reusable buffer for each value's canonical bytes.
struct State {
    summary: Option<TopK>,
    key: Vec<u8>,
}

impl CloneIn for State {
    fn clone_in(&self, arena: Arena) -> Self {
        State::new(self.summary.clone_in(arena))
    }
}

impl AggState for State {
    const TAG: u32 = u32::from_le_bytes(*b"topk");

    fn flat_bytes(&mut self) -> Vec<u8> {
        match &self.summary {
            Some(summary) => summary.encode(),
            None => TopK::default().encode(),
        }
    }

    fn from_flat(bytes: &[u8], arena: Arena) -> Self {
        State::new(Some(TopK::decode_in(bytes, arena).or_raise()))
    }
}

impl State {
    fn new(summary: Option<TopK>) -> Self {
        State {
            summary,
            key: Vec::new(),
        }
    }
}

impl SketchState for State {
    type Sketch = TopK;
    fn holding(summary: Option<TopK>) -> Self {
        State::new(summary)
    }
    fn sketch(&self) -> Option<&TopK> {
        self.summary.as_ref()
    }
    fn sketch_mut(&mut self) -> &mut Option<TopK> {
        &mut self.summary
    }
    fn encode(summary: &TopK) -> Vec<u8> {
        summary.encode()
    }
    fn decode_in(bytes: &[u8], arena: Arena) -> TopK {
        TopK::decode_in(bytes, arena).or_raise()
    }
    fn merge(mine: &mut TopK, theirs: &TopK) {
        mine.merge_from(theirs).or_raise()
    }
}

/// A summary from outside (text in, binary recv, bytea cast): its text keys must be valid in
/// the server encoding, as every text value is (the codec refused NUL bytes already).
fn with_valid_keys(summary: TopK) -> TopK {
    for (index, item) in summary.items().iter().enumerate() {
        if item.tag != KeyKind::Text as u8 {
            continue;
        }
        let valid = unsafe {
            pg_sys::pg_verifymbstr(
                item.key.as_ptr() as *const std::ffi::c_char,
                item.key.len() as i32,
                true,
            )
        };
        if !valid {
            ereport!(
                ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!(
                    "invalid topk value: item {index} is a text key that is not valid in the server encoding"
                )
            );
        }
    }
    summary
}

#[pg_extern(sql = false)]
fn topk_in(input: &CStr) -> TopkDatum {
    let text = input
        .to_str()
        .unwrap_or_else(|_| error!("topk input is not valid UTF-8"));
    TopkDatum::from_summary(&with_valid_keys(TopK::parse_text(text).or_raise()))
}

#[pg_extern(sql = false)]
fn topk_out(value: TopkDatum) -> CString {
    to_cstring(value.summary().to_text())
}

#[pg_extern(sql = false)]
fn topk_recv(buf: Internal) -> TopkDatum {
    TopkDatum::from_summary(&with_valid_keys(
        TopK::decode_in(take_recv_bytes(buf), Arena::current()).or_raise(),
    ))
}

/// The stored bytes are the binary format, validated when they came in.
#[pg_extern(sql = false)]
fn topk_send(value: TopkDatum) -> Vec<u8> {
    value.bytes().to_vec()
}

#[pg_extern(sql = false)]
fn topk_from_bytea(bytes: &[u8]) -> TopkDatum {
    TopkDatum::from_summary(&with_valid_keys(
        TopK::decode_in(bytes, Arena::current()).or_raise(),
    ))
}

#[pg_extern(sql = false)]
fn topk_empty(capacity: i32) -> TopkDatum {
    TopkDatum::from_summary(&TopK::new_in(i64::from(capacity), Arena::current()).or_raise())
}

/// Adds `weight` occurrences of `value`; a NULL summary is an empty default one, a NULL value
/// or weight changes nothing.
#[pg_extern(sql = false)]
fn topk_add(
    summary: Option<TopkDatum>,
    value: Option<AnyElement>,
    weight: Option<i64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> TopkDatum {
    let mut summary = summary.map(|s| s.summary()).unwrap_or_default();
    if let (Some(value), Some(weight)) = (value, weight) {
        let mut bytes = Vec::new();
        let tag = unsafe { encode_value(fcinfo, 1, value.datum(), &mut bytes) };
        summary.add(&bytes, tag, weight).or_raise();
    }
    TopkDatum::from_summary(&summary)
}

/// Union; a NULL side counts as empty. The result has the larger capacity of the two.
#[pg_extern(sql = false)]
fn topk_union(a: Option<TopkDatum>, b: Option<TopkDatum>) -> Option<TopkDatum> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(a), Some(b)) => Some(TopkDatum::from_summary(
            &a.summary().merged(&b.summary()).or_raise(),
        )),
    }
}

/// The summary cut to its `capacity` best-ranked items, the floor raised to the largest count
/// dropped (see `TopK::trimmed`).
#[pg_extern(sql = false)]
fn topk_trim(summary: TopkDatum, capacity: i32) -> TopkDatum {
    TopkDatum::from_summary(&summary.summary().trimmed(i64::from(capacity)).or_raise())
}

/// What a point query's call site keeps beside its key hasher: the last summary it decoded, in a
/// memory context of its own (reset for the next one), named by its TOAST identity when stored out of line and by its
/// bytes otherwise. Decoding a summary builds its hash table (840 µs for 2,000 items), so many
/// values looked up in one summary decode it once.
struct PointQuerySite {
    context: pg_sys::MemoryContext,
    stored: Option<(pg_sys::Oid, pg_sys::Oid)>,
    bytes: Option<crate::common::arena::ArenaVec<u8>>,
    summary: Option<TopK>,
}

impl PointQuerySite {
    /// The summary of `datum`, decoded now unless it is the one decoded last.
    fn summary_of(&mut self, datum: &Unread<TopkDatum>) -> &TopK {
        let stored = datum.stored_identity();
        let same = match (stored, &self.bytes) {
            (Some(identity), _) => self.stored == Some(identity),
            (None, Some(bytes)) => self.stored.is_none() && bytes[..] == *datum.detoasted(),
            (None, None) => false,
        };
        if !same || self.summary.is_none() {
            // The old summary's memory goes with the reset, without its destructors.
            std::mem::forget(self.summary.take());
            std::mem::forget(self.bytes.take());
            self.stored = None;
            unsafe { pg_sys::MemoryContextReset(self.context) };
            let arena = Arena::context(self.context);
            let bytes = datum.detoasted();
            let summary = TopK::decode_in(bytes, arena).or_raise();
            self.bytes = stored.is_none().then(|| arena.vec_from(bytes));
            self.stored = stored;
            self.summary = Some(summary);
        }
        self.summary
            .as_ref()
            .unwrap_or_else(|| error!("topk point query lost its summary"))
    }
}

/// This call site's memory of summaries, and the key of argument 1 (canonical bytes and tag).
fn point_query_site<'a>(
    value: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
    key: &mut Vec<u8>,
) -> (u8, &'a mut PointQuerySite) {
    let (hasher, site) = unsafe {
        site_state_and_hasher(fcinfo, 1, |parent| PointQuerySite {
            context: pg_sys::AllocSetContextCreateExtended(
                parent,
                c"topk point query".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            ),
            stored: None,
            bytes: None,
            summary: None,
        })
    };
    (unsafe { encode_with(hasher, value.datum(), key) }, site)
}

/// The bounds of one value: held, its count and lower bound; not held, 0 to the floor.
fn value_bounds(
    summary: &Unread<TopkDatum>,
    value: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
) -> super::summary::Bounds {
    let mut bytes = Vec::new();
    let (tag, site) = point_query_site(value, fcinfo, &mut bytes);
    site.summary_of(summary).bounds(&bytes, tag)
}

#[pg_extern(sql = false)]
fn topk_estimate(
    summary: Unread<TopkDatum>,
    value: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
) -> i64 {
    value_bounds(&summary, value, fcinfo).estimate as i64
}

#[pg_extern(sql = false)]
fn topk_bounds_array(
    summary: Unread<TopkDatum>,
    value: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Vec<i64> {
    let b = value_bounds(&summary, value, fcinfo);
    vec![b.estimate as i64, b.lower as i64, b.upper as i64]
}

#[pg_extern(sql = false)]
fn topk_items(
    summary: TopkDatum,
) -> TableIterator<
    'static,
    (
        name!(item, String),
        name!(estimate, i64),
        name!(lower_bound, i64),
        name!(upper_bound, i64),
    ),
> {
    let summary = summary.summary();
    let rows: Vec<_> = summary
        .items()
        .into_iter()
        .map(|i| {
            (
                render(i.key, i.tag),
                i.estimate() as i64,
                i.lower as i64,
                i.count as i64,
            )
        })
        .collect();
    TableIterator::new(rows)
}

#[pg_extern(sql = false)]
fn topk_total(summary: TopkDatum) -> i64 {
    summary.summary().total() as i64
}

#[pg_extern(sql = false)]
fn topk_info_text(summary: TopkDatum) -> String {
    let bytes = summary.bytes().len();
    let s = summary.summary();
    format!(
        r#"{{"capacity": {}, "items": {}, "total": {}, "floor": {}, "exact": {}, "bytes": {}, "format_version": {}}}"#,
        s.capacity(),
        s.len(),
        s.total(),
        s.floor(),
        s.floor() == 0,
        bytes,
        FORMAT_VERSION
    )
}

// ---- aggregates -----------------------------------------------------------------------------

/// `topk_agg_trans(state, anyelement [, capacity])`: the value at argument 1, the capacity
/// (read when the first row makes the state) at argument 2.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn topk_agg_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let nargs = (*fcinfo).nargs as usize;
        let mut state =
            Internal::from((!pg_arg_is_null(fcinfo, 0)).then(|| pg_getarg_datum_raw(fcinfo, 0)));
        let st = state_or_init(&mut state, fcinfo, |arena| {
            let capacity = (nargs > 2 && !pg_arg_is_null(fcinfo, 2))
                .then(|| pg_getarg_datum_raw(fcinfo, 2).value() as i32 as i64)
                .unwrap_or(i64::from(DEFAULT_CAPACITY));
            State::new(Some(TopK::new_in(capacity, arena).or_raise()))
        });
        if let (
            false,
            State {
                summary: Some(summary),
                key,
            },
        ) = (pg_arg_is_null(fcinfo, 1), st)
        {
            let tag = encode_value(fcinfo, 1, pg_getarg_datum_raw(fcinfo, 1), key);
            summary.add(key, tag, 1).or_raise();
        }
        state_datum(state)
    }
}

crate::pg_finfo_v1!(pg_finfo_topk_agg_trans);

/// `topk_union_trans(topk, topk)`: the transition and combine function of `topk_union_agg` and
/// the combine function of the `topk_agg` overloads whose state is a `topk`.
#[pg_extern(sql = false)]
fn topk_union_trans(
    state: Internal,
    value: Option<TopkDatum>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    unsafe { sketch_union_step::<State>(state, value.as_ref().map(TopkDatum::bytes), fcinfo) }
}

#[pg_extern(sql = false)]
fn topk_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    unsafe { sketch_combine::<State>(a, b, fcinfo) }
}

#[pg_extern(sql = false)]
fn topk_serial(state: Internal) -> Vec<u8> {
    sketch_serial::<State>(state)
}

#[pg_extern(sql = false)]
fn topk_deserial(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    unsafe { sketch_deserial::<State>(bytes, fcinfo) }
}

/// Zero rows give an empty default summary, never NULL.
#[pg_extern(sql = false)]
fn topk_final(state: Internal) -> TopkDatum {
    match sketch_final_bytes::<State>(state) {
        Some(bytes) => TopkDatum::from_bytes(&bytes),
        None => TopkDatum::from_summary(&TopK::default()),
    }
}
