//! SQL binding of the Count-Min sketch. Entry points are declared by hand in `cms.sql`.
//! The aggregate transition functions are raw V1 functions (the per-row hot path).

use super::sketch::{CounterLayout, DEFAULT_DELTA, DEFAULT_EPSILON, DEFAULT_HEAVY, Mode, Sketch};
use crate::common::aggregate::{
    AggState, SketchState, sketch_combine, sketch_deserial, sketch_final_bytes, sketch_serial,
    sketch_union_step, state_datum, state_or_init,
};
use crate::common::arena::{Arena, CloneIn};
use crate::common::hash::hash_bytes;
use crate::common::report::OrRaise;
use crate::common::value_hash::{KeyKind, cached_hasher, render_key, site_state_and_hasher};
use crate::common::varlena::{LastStoredValue, PieceReader, Unread, take_recv_bytes, to_cstring};
use crate::sql_varlena_type;
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
use pgrx::prelude::*;
use pgrx::{AnyElement, Internal};
use std::ffi::{CStr, CString};

sql_varlena_type!(
    /// A `distcount.cms` datum.
    CmsDatum,
    "cms"
);

impl CmsDatum {
    fn sketch(&self) -> Sketch {
        Sketch::decode_in(self.bytes(), Arena::current()).or_raise()
    }

    fn from_sketch(sketch: &Sketch) -> Self {
        CmsDatum::from_bytes(&sketch.encode())
    }
}

/// Aggregate state: the sketch, made at the first row from that row's parameters, and a
/// reusable buffer for the canonical bytes of each key.
#[derive(Clone)]
struct State {
    sketch: Option<Sketch>,
    key: Vec<u8>,
}

impl CloneIn for State {
    fn clone_in(&self, arena: Arena) -> Self {
        State::new(self.sketch.clone_in(arena))
    }
}

impl AggState for State {
    const TAG: u32 = u32::from_le_bytes(*b"cms ");

    /// What `cms_final` returns: the sketch, or an empty default one for no sketch yet.
    fn flat_bytes(&mut self) -> Vec<u8> {
        match &self.sketch {
            Some(sketch) => sketch.encode(),
            None => Sketch::default().encode(),
        }
    }

    fn from_flat(bytes: &[u8], arena: Arena) -> Self {
        State::new(Some(Sketch::decode_in(bytes, arena).or_raise()))
    }
}

impl State {
    fn new(sketch: Option<Sketch>) -> Self {
        State {
            sketch,
            key: Vec::new(),
        }
    }
}

impl SketchState for State {
    type Sketch = Sketch;
    fn holding(sketch: Option<Sketch>) -> Self {
        State::new(sketch)
    }
    fn sketch(&self) -> Option<&Sketch> {
        self.sketch.as_ref()
    }
    fn sketch_mut(&mut self) -> &mut Option<Sketch> {
        &mut self.sketch
    }
    fn encode(sketch: &Sketch) -> Vec<u8> {
        sketch.encode()
    }
    fn decode_in(bytes: &[u8], arena: Arena) -> Sketch {
        Sketch::decode_in(bytes, arena).or_raise()
    }
    fn merge(mine: &mut Sketch, theirs: &Sketch) {
        mine.merge_from(theirs).or_raise()
    }
}

#[pg_extern(sql = false)]
fn cms_in(input: &CStr) -> CmsDatum {
    let text = input
        .to_str()
        .unwrap_or_else(|_| error!("cms input is not valid UTF-8"));
    CmsDatum::from_sketch(&with_valid_keys(Sketch::parse_text(text).or_raise()))
}

/// The stored bytes, validated when they came in, as they are: a value stored in format
/// version 1 keeps its text (as it keeps its send and `::bytea` forms) until it is rewritten.
#[pg_extern(sql = false)]
fn cms_out(value: CmsDatum) -> CString {
    to_cstring(super::sketch::codec::text_of(value.bytes()))
}

#[pg_extern(sql = false)]
fn cms_recv(buf: Internal) -> CmsDatum {
    CmsDatum::from_sketch(&with_valid_keys(
        Sketch::decode_in(take_recv_bytes(buf), Arena::current()).or_raise(),
    ))
}

/// The stored bytes are the binary format, validated when they came in.
#[pg_extern(sql = false)]
fn cms_send(value: CmsDatum) -> Vec<u8> {
    value.bytes().to_vec()
}

#[pg_extern(sql = false)]
fn cms_from_bytea(bytes: &[u8]) -> CmsDatum {
    CmsDatum::from_sketch(&with_valid_keys(
        Sketch::decode_in(bytes, Arena::current()).or_raise(),
    ))
}

/// A sketch from outside (text in, binary recv, bytea cast): its text keys must be valid in
/// the server encoding, as every text value is (the codec has refused NUL bytes already), or
/// `cms_topk` would hand out text that no other function could have made.
fn with_valid_keys(sketch: Sketch) -> Sketch {
    for (index, candidate) in sketch.candidates().iter().enumerate() {
        if candidate.tag != KeyKind::Text as u8 {
            continue;
        }
        let valid = unsafe {
            pg_sys::pg_verifymbstr(
                candidate.key.as_ptr() as *const std::ffi::c_char,
                candidate.key.len() as i32,
                true,
            )
        };
        if !valid {
            ereport!(
                ERROR,
                pgrx::PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!(
                    "invalid cms value: candidate {index} is a text key that is not valid in the server encoding"
                )
            );
        }
    }
    sketch
}

#[pg_extern(sql = false)]
fn cms_empty(epsilon: f64, delta: f64, heavy: i32, mode: &str) -> CmsDatum {
    let mode = Mode::parse(mode).or_raise();
    CmsDatum::from_sketch(&Sketch::new(epsilon, delta, i64::from(heavy), mode).or_raise())
}

/// Adds `weight` occurrences of `key`; a NULL sketch is a default one, a NULL key or weight
/// changes nothing.
#[pg_extern(sql = false)]
fn cms_add(
    sketch: Option<CmsDatum>,
    key: Option<AnyElement>,
    weight: Option<i64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> CmsDatum {
    let mut sketch = sketch.map(|s| s.sketch()).unwrap_or_default();
    if let (Some(key), Some(weight)) = (key, weight) {
        let mut bytes = Vec::new();
        let kind = unsafe { cached_hasher(fcinfo, 1).encode_key(key.datum(), &mut bytes) };
        sketch.add(&bytes, kind as u8, weight).or_raise();
    }
    CmsDatum::from_sketch(&sketch)
}

/// Union; a NULL side counts as empty. Different dimensions or modes are an error.
#[pg_extern(sql = false)]
fn cms_union(a: Option<CmsDatum>, b: Option<CmsDatum>) -> Option<CmsDatum> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(a), Some(b)) => Some(CmsDatum::from_sketch(
            &a.sketch().merge(&b.sketch()).or_raise(),
        )),
    }
}

#[pg_extern(sql = false)]
fn cms_subtract(a: CmsDatum, b: CmsDatum) -> CmsDatum {
    CmsDatum::from_sketch(&a.sketch().subtract(&b.sketch()).or_raise())
}

/// The hash of the key at argument 1 and this call site's memory of stored sketches.
fn point_query_site<'a>(
    key: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
) -> (u64, &'a mut LastStoredValue) {
    let (hasher, last) = unsafe { site_state_and_hasher(fcinfo, 1, LastStoredValue::new) };
    let mut bytes = Vec::new();
    unsafe { hasher.encode_key(key.datum(), &mut bytes) };
    (hash_bytes(&bytes), last)
}

/// The Count-Min bounds of a key. Point queries read the counters only: counters add, so the
/// answer is the same for every input order and plan (serial, parallel, window, distributed).
/// The heavy-hitter list, whose contents depend on order wherever its space runs out, serves
/// `cms_topk` only.
///
/// They read only the header and one counter per row of the value (see [`CounterLayout`]): a
/// sketch stored out of line (the type's storage is `external`, uncompressed) is read chunk by
/// chunk (common::toast), so a point query costs about the same on a 500 kB sketch as on a
/// 5 kB one.
fn point_bounds(
    sketch: &Unread<CmsDatum>,
    key: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
) -> super::sketch::Bounds {
    let (hash, last) = point_query_site(key, fcinfo);
    let value = sketch.reader(Some(last));
    stored_layout(&value)
        .bounds(hash, |offset, out| value.read(offset, out))
        .or_raise()
}

/// The counter layout named by a value's header, read without the rest of the value.
fn stored_layout(value: &PieceReader<'_>) -> CounterLayout {
    // Version 1 headers are shorter, and so is an idle version-1 sketch.
    let mut header = [0u8; CounterLayout::HEADER_LEN];
    let header = &mut header[..value.len().min(CounterLayout::HEADER_LEN)];
    value.read(0, header).or_raise();
    CounterLayout::from_header(header, value.len()).or_raise()
}

#[pg_extern(sql = false)]
fn cms_estimate(
    sketch: Unread<CmsDatum>,
    key: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
) -> i64 {
    point_bounds(&sketch, key, fcinfo).estimate
}

#[pg_extern(sql = false)]
fn cms_bounds_array(
    sketch: Unread<CmsDatum>,
    key: AnyElement,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Vec<i64> {
    let b = point_bounds(&sketch, key, fcinfo);
    vec![b.estimate, b.lower, b.upper]
}

/// True when the key's estimate is above `threshold` (never a false negative).
#[pg_extern(sql = false)]
fn cms_exceeds(
    sketch: Unread<CmsDatum>,
    key: AnyElement,
    threshold: i64,
    fcinfo: pg_sys::FunctionCallInfo,
) -> bool {
    point_bounds(&sketch, key, fcinfo).estimate > threshold
}

#[pg_extern(sql = false)]
fn cms_topk(
    sketch: CmsDatum,
    k: i32,
) -> TableIterator<
    'static,
    (
        name!(item, String),
        name!(estimate, i64),
        name!(lower, i64),
        name!(upper, i64),
        name!(guaranteed, bool),
    ),
> {
    if k < 0 {
        ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("k must not be negative (got {k})")
        );
    }
    let sketch = sketch.sketch();
    let rows: Vec<_> = sketch
        .checked_topk(k as usize)
        .or_raise()
        .into_iter()
        .map(|t| {
            (
                render_key(t.key, t.tag),
                t.estimate,
                t.lower,
                t.upper,
                t.guaranteed,
            )
        })
        .collect();
    TableIterator::new(rows)
}

#[pg_extern(sql = false)]
fn cms_total(sketch: Unread<CmsDatum>) -> i64 {
    stored_layout(&sketch.reader(None)).total()
}

/// The sketch's parameters and, from the stored header, its size and layout. Version 2 values
/// also say how their counters are stored (`counter_form`, `overflow`); version 1 values (all
/// dense or zero) report what they always did.
#[pg_extern(sql = false)]
fn cms_info_text(sketch: CmsDatum) -> String {
    let bytes = sketch.bytes();
    let header = &bytes[..bytes.len().min(CounterLayout::HEADER_LEN)];
    let layout = CounterLayout::from_header(header, bytes.len()).or_raise();
    let (form, cell_bytes, overflow) = layout.counter_form();
    let s = sketch.sketch();
    let layout_fields = if layout.version() == 1 {
        String::new()
    } else {
        format!(r#""counter_form": "{form}", "overflow": {overflow}, "#)
    };
    format!(
        r#"{{"width": {}, "depth": {}, "epsilon": {}, "delta": {}, "mode": "{}", "total": {}, "error_bound": {}, "heavy": {}, "heavy_tracked": {}, {layout_fields}"counter_bytes": {cell_bytes}, "bytes": {}, "format_version": {}}}"#,
        s.width(),
        s.depth(),
        s.epsilon(),
        s.delta(),
        s.mode().name(),
        s.total(),
        s.error_bound(),
        s.heavy_capacity(),
        s.heavy_len(),
        bytes.len(),
        layout.version()
    )
}

// ---- aggregates -----------------------------------------------------------------------------

/// Shared body of the `cms_agg` transition functions: `key` at argument 1, then the weight
/// (when `weight_arg` is set) and the optional epsilon, delta and heavy arguments.
unsafe fn cms_agg_step(
    fcinfo: pg_sys::FunctionCallInfo,
    weight_arg: Option<usize>,
) -> pg_sys::Datum {
    unsafe {
        let nargs = (*fcinfo).nargs as usize;
        let param = |at: usize| {
            (at < nargs && !pg_arg_is_null(fcinfo, at)).then(|| pg_getarg_datum_raw(fcinfo, at))
        };
        let first_param = if weight_arg.is_some() { 3 } else { 2 };
        let mut state =
            Internal::from((!pg_arg_is_null(fcinfo, 0)).then(|| pg_getarg_datum_raw(fcinfo, 0)));
        let st = state_or_init(&mut state, fcinfo, |arena| {
            // The sketch's parameters are read once, when the first row makes the state.
            let epsilon =
                param(first_param).map_or(DEFAULT_EPSILON, |d| f64::from_bits(d.value() as u64));
            let delta =
                param(first_param + 1).map_or(DEFAULT_DELTA, |d| f64::from_bits(d.value() as u64));
            let heavy = param(first_param + 2)
                .map_or(i64::from(DEFAULT_HEAVY), |d| d.value() as i32 as i64);
            State::new(Some(
                Sketch::new_in(epsilon, delta, heavy, Mode::Linear, arena).or_raise(),
            ))
        });
        let weight = match weight_arg {
            None => Some(1),
            Some(at) => param(at).map(|d| d.value() as i64),
        };
        if let (
            Some(weight),
            false,
            State {
                sketch: Some(sketch),
                key,
            },
        ) = (weight, pg_arg_is_null(fcinfo, 1), st)
        {
            let kind = cached_hasher(fcinfo, 1).encode_key(pg_getarg_datum_raw(fcinfo, 1), key);
            sketch.add(key, kind as u8, weight).or_raise();
        }
        state_datum(state)
    }
}

/// `cms_agg_trans(internal, anyelement [, epsilon, delta [, heavy]])`
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn cms_agg_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { cms_agg_step(fcinfo, None) }
}

/// `cms_agg_weighted_trans(internal, anyelement, weight [, epsilon, delta [, heavy]])`
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn cms_agg_weighted_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe { cms_agg_step(fcinfo, Some(2)) }
}

crate::pg_finfo_v1!(pg_finfo_cms_agg_trans, pg_finfo_cms_agg_weighted_trans);

/// `cms_union_trans(cms, cms)`: the transition and combine function of `cms_union_agg` and the
/// combine function of the `cms_agg` overloads whose state is a `cms`.
#[pg_extern(sql = false)]
fn cms_union_trans(
    state: Internal,
    value: Option<CmsDatum>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    unsafe { sketch_union_step::<State>(state, value.as_ref().map(CmsDatum::bytes), fcinfo) }
}

#[pg_extern(sql = false)]
fn cms_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    unsafe { sketch_combine::<State>(a, b, fcinfo) }
}

#[pg_extern(sql = false)]
fn cms_serial(state: Internal) -> Vec<u8> {
    sketch_serial::<State>(state)
}

#[pg_extern(sql = false)]
fn cms_deserial(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    unsafe { sketch_deserial::<State>(bytes, fcinfo) }
}

/// Zero rows give an empty default sketch, never NULL.
#[pg_extern(sql = false)]
fn cms_final(state: Internal) -> CmsDatum {
    match sketch_final_bytes::<State>(state) {
        Some(bytes) => CmsDatum::from_bytes(&bytes),
        None => CmsDatum::from_sketch(&Sketch::default()),
    }
}
