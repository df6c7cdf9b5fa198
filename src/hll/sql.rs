//! SQL binding of the HyperLogLog sketch. Entry points are declared by hand in `hll.sql`.
//! The aggregate transition function is a raw V1 function: pgrx's wrapper would double the
//! per-row cost (DESIGN.md, platform facts).

use super::sketch::{DEFAULT_PRECISION, DenseRegisters, Sketch, checked_precision};
use crate::common::aggregate::{
    AggState, combine_states, keep_off_hot_path, new_state, state_arena, state_datum, state_mut,
    state_or_init, state_value_rw, union_step,
};
use crate::common::arena::{Arena, CloneIn};
use crate::common::hash::{hash_bytes, hash_int};
use crate::common::report::OrRaise;
use crate::common::value_hash::{cached_hasher, existing_hasher};
use crate::common::varlena::{inline_payload, take_recv_bytes, to_cstring};
use crate::sql_varlena_type;
use pgrx::prelude::*;
use pgrx::{AnyElement, Internal, PgSqlErrorCode};
use std::ffi::{CStr, CString};

sql_varlena_type!(
    /// A `distcount.hll` datum.
    HllDatum,
    "hll"
);

impl HllDatum {
    /// The decoded sketch, its buffers in the current memory context.
    fn sketch(&self) -> Sketch {
        Sketch::decode_in(self.bytes(), Arena::current()).or_raise()
    }

    fn from_sketch(sketch: &Sketch) -> Self {
        HllDatum::from_bytes(&sketch.encode())
    }
}

/// Applies a column's typmod `hll(p)`: a finer sketch is folded down, a coarser one refused.
fn apply_typmod(sketch: Sketch, typmod: i32) -> Sketch {
    if typmod < 0 || i64::from(sketch.precision()) == i64::from(typmod) {
        return sketch;
    }
    // An empty sketch holds nothing a precision could lose: it fits any column (an aggregate
    // over zero rows gives one at the default precision).
    if sketch.is_empty() {
        return Sketch::new(typmod).or_raise();
    }
    if i64::from(sketch.precision()) < i64::from(typmod) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "an hll of precision {} cannot be stored as hll({typmod})",
                sketch.precision()
            ),
            "A sketch can be folded to a lower precision, never raised to a higher one."
        );
    }
    sketch.fold_to(typmod).or_raise()
}

#[pg_extern(sql = false)]
fn hll_in(input: &CStr, _type_oid: pg_sys::Oid, typmod: i32) -> HllDatum {
    let text = input
        .to_str()
        .unwrap_or_else(|_| error!("hll input is not valid UTF-8"));
    HllDatum::from_sketch(&apply_typmod(Sketch::parse_text(text).or_raise(), typmod))
}

/// The stored bytes in base64, as `hll_send` gives them: a value stored by an earlier build
/// prints as it did then, so its text (a dump, a key outside the database) does not change
/// when the extension is updated.
#[pg_extern(sql = false)]
fn hll_out(value: HllDatum) -> CString {
    to_cstring(Sketch::text_of_bytes(value.bytes()))
}

#[pg_extern(sql = false)]
fn hll_recv(buf: Internal, _type_oid: pg_sys::Oid, typmod: i32) -> HllDatum {
    let sketch = Sketch::decode_in(take_recv_bytes(buf), Arena::current()).or_raise();
    HllDatum::from_sketch(&apply_typmod(sketch, typmod))
}

/// The stored bytes are the binary format, validated when they came in.
#[pg_extern(sql = false)]
fn hll_send(value: HllDatum) -> Vec<u8> {
    value.bytes().to_vec()
}

/// `hll(p)`, and postgresql-hll's spellings `hll(log2m [, regwidth [, expthresh [, sparseon]]])`
/// so that its DDL runs unchanged: log2m is the precision; the other three are checked as
/// postgresql-hll checks them and then have no effect (native registers are 6 bits wide and
/// the explicit and sparse forms need no settings), so `hll(14,5)` is the type `hll(14)`.
#[pg_extern(sql = false)]
fn hll_typmod_in(modifiers: Array<&CStr>) -> i32 {
    let values: Vec<Option<&CStr>> = modifiers.iter().collect();
    if values.is_empty() || values.len() > 4 {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("hll takes 1 to 4 modifiers, not {}", values.len()),
            "Write hll(p) with the precision p (4 to 18); postgresql-hll's hll(log2m, regwidth, expthresh, sparseon) is read as hll(log2m)."
        );
    }
    let number = |at: usize, name: &str| -> i64 {
        values[at]
            .and_then(|text| text.to_str().ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "invalid hll {name} \"{}\"",
                        values[at].map(|t| t.to_string_lossy()).unwrap_or_default()
                    ),
                    "The precision is an integer between 4 and 18; postgresql-hll's regwidth, expthresh and sparseon are integers too."
                );
            })
    };
    let precision = number(0, "precision");
    let extra = |at: usize, name: &str, ok: &dyn Fn(i64) -> bool, range: &str| {
        if values.len() > at && !ok(number(at, name)) {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("hll {name} modifier {} is out of range", number(at, name)),
                format!(
                    "postgresql-hll's {name} is {range}; pg_distcount accepts it for compatibility and ignores it."
                )
            );
        }
    };
    extra(1, "regwidth", &|w| (1..=8).contains(&w), "1 to 8");
    extra(
        2,
        "expthresh",
        &|e| e == -1 || e == 0 || (e > 0 && e <= 16_383 && e.count_ones() == 1),
        "-1, 0 or a power of 2 up to 8192",
    );
    extra(3, "sparseon", &|s| s == 0 || s == 1, "0 or 1");
    if values.len() > 1 && precision > i64::from(super::sketch::postgresql_hll::MAX_LOG2M) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("hll log2m modifier {precision} is out of range"),
            "postgresql-hll's log2m goes up to 17; pg_distcount's precision is 4 to 18."
        );
    }
    i32::from(checked_precision(precision).or_raise())
}

#[pg_extern(sql = false)]
fn hll_typmod_out(typmod: i32) -> CString {
    to_cstring(if typmod < 0 {
        String::new()
    } else {
        format!("({typmod})")
    })
}

/// The length-coercion cast `hll AS hll(p)`.
#[pg_extern(sql = false)]
fn hll_enforce_typmod(value: HllDatum, typmod: i32, _explicit: bool) -> HllDatum {
    if typmod < 0 {
        return value;
    }
    let sketch = value.sketch();
    if i64::from(sketch.precision()) == i64::from(typmod) {
        return value;
    }
    HllDatum::from_sketch(&apply_typmod(sketch, typmod))
}

#[pg_extern(sql = false)]
fn hll_from_bytea(bytes: &[u8]) -> HllDatum {
    HllDatum::from_sketch(&Sketch::decode_in(bytes, Arena::current()).or_raise())
}

/// A postgresql-hll value (its `hll` type's bytes: `col::text::bytea`) as an `hll` that counts
/// what postgresql-hll counted and keeps its hash family (`sketch::postgresql_hll`).
#[pg_extern(sql = false)]
fn hll_from_postgresql_hll(bytes: &[u8]) -> HllDatum {
    HllDatum::from_sketch(&Sketch::from_postgresql_hll(bytes, Arena::current()).or_raise())
}

/// The postgresql-hll bytes of an imported sketch (unions included), for `::hll` on its side.
#[pg_extern(sql = false)]
fn hll_to_postgresql_hll(sketch: HllDatum) -> Vec<u8> {
    match sketch.sketch().to_postgresql_hll() {
        Some(bytes) => bytes,
        None => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "only an hll imported from postgresql-hll can be exported to it",
                "A native sketch holds pg_distcount's hashes, which postgresql-hll's registers cannot take."
            );
        }
    }
}

#[pg_extern(sql = false)]
fn hll_empty(precision: i32) -> HllDatum {
    HllDatum::from_sketch(&Sketch::new(precision).or_raise())
}

/// Adds one value; a NULL sketch counts as an empty one at the default precision.
#[pg_extern(sql = false)]
fn hll_add(
    sketch: Option<HllDatum>,
    value: Option<AnyElement>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> HllDatum {
    let mut sketch = sketch.map(|s| s.sketch()).unwrap_or_default();
    if let Some(value) = value {
        if sketch.is_foreign() {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                "cannot add values to an hll imported from postgresql-hll",
                "Its registers hold postgresql-hll's hashes (hll_hash_*), which pg_distcount does not compute; add to the postgresql-hll value before importing it, or build a native sketch with distcount.hll_agg."
            );
        }
        let hash = unsafe { cached_hasher(fcinfo, 1).hash(value.datum()) };
        sketch.add_hash(hash);
    }
    HllDatum::from_sketch(&sketch)
}

/// Union; a NULL side counts as empty. Different precisions fold to the smaller.
#[pg_extern(sql = false)]
fn hll_union(a: Option<HllDatum>, b: Option<HllDatum>) -> Option<HllDatum> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(a), Some(b)) => Some(HllDatum::from_sketch(
            &a.sketch().union(&b.sketch()).or_raise(),
        )),
    }
}

/// The merge of replicated hll columns (`crdt_merge_into`): a union whose bytes do not depend on
/// the order of merges (no martingale count); a NULL side counts as empty.
#[pg_extern(sql = false)]
fn hll_crdt_merge(a: Option<HllDatum>, b: Option<HllDatum>) -> Option<HllDatum> {
    let merged = match (a, b) {
        (None, None) => return None,
        (Some(x), None) | (None, Some(x)) => x.sketch().without_martingale(),
        (Some(a), Some(b)) => a.sketch().crdt_merge(&b.sketch()).or_raise(),
    };
    Some(HllDatum::from_sketch(&merged))
}

#[pg_extern(sql = false)]
fn hll_count(sketch: HllDatum) -> i64 {
    sketch.sketch().count().or_raise()
}

#[pg_extern(sql = false)]
fn hll_estimate_array(sketch: HllDatum, confidence: f64) -> Vec<f64> {
    let e = sketch.sketch().estimate_with_bounds(confidence).or_raise();
    vec![e.estimate, e.lower, e.upper]
}

#[pg_extern(sql = false)]
fn hll_info_text(sketch: HllDatum) -> String {
    let bytes = sketch.bytes().len();
    // The version of the stored bytes (values written by an earlier build keep theirs).
    let format_version = sketch.bytes().first().copied().unwrap_or_default();
    let s = sketch.sketch();
    format!(
        r#"{{"precision": {}, "form": "{}", "bytes": {}, "format_version": {}, "relative_standard_error": {:.6}}}"#,
        s.precision(),
        s.form().name(),
        bytes,
        format_version,
        s.relative_standard_error()
    )
}

// ---- aggregates: the state is an Option<Sketch> in the aggregate context --------------------
// hll_agg starts with an empty sketch at its precision; hll_union_agg starts with None, so
// that the first input sets the precision (a union folds to the smaller of its inputs).

type State = Option<Sketch>;

impl AggState for State {
    const TAG: u32 = u32::from_le_bytes(*b"hll ");

    /// What `hll_final` returns: the compacted sketch, or an empty one for no sketch yet.
    fn flat_bytes(&mut self) -> Vec<u8> {
        match self {
            Some(sketch) => {
                sketch.compact();
                sketch.encode()
            }
            None => Sketch::default().encode(),
        }
    }

    fn from_flat(bytes: &[u8], arena: Arena) -> Self {
        Some(Sketch::decode_in(bytes, arena).or_raise())
    }
}

/// A row for a fast path: the aggregate state (as passed in), its dense registers and the
/// non-NULL value. None for the rows the general path takes: the first (which makes the
/// state), those of a sketch not yet dense, and NULL values.
///
/// # Safety
/// `fcinfo` must be a call of one of this file's transition functions, every SQL declaration
/// of which has at least two arguments.
#[inline(always)]
unsafe fn dense_row<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<(pg_sys::Datum, DenseRegisters<'a>, pg_sys::Datum)> {
    unsafe {
        let args = (*fcinfo).args.as_ptr();
        if (*args).isnull || (*args.add(1)).isnull {
            return None;
        }
        let state = (*args).value;
        let registers = Sketch::dense_registers_mut(state_value_rw::<State>(state)?)?;
        Some((state, registers, (*args.add(1)).value))
    }
}

/// `hll_agg_trans(internal, anyelement [, integer])`: the types without a transition function
/// of their own (integers and text have theirs, below). Once the sketch is dense and a value
/// needs nothing from PostgreSQL to hash (a uuid, an inline uncompressed varlena, char(n)), a
/// row is pure arithmetic on memory this aggregate owns: no allocation, no call into
/// PostgreSQL, nothing that can fail or panic, so it runs without the error-handling frame
/// (`pg_guard`) that the general path needs. That frame was a third of the cost of a row.
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn hll_agg_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        if let (Some(hasher), Some((state, mut registers, value))) =
            (existing_hasher(fcinfo), dense_row(fcinfo))
            && let Some(hash) = hasher.pure_bytes_hash(value)
        {
            registers.add_hash(hash);
            return state;
        }
        hll_agg_trans_slow(fcinfo)
    }
}

/// Strings up to this many bytes hash inside `hll_agg_trans_text`: the bound lets the compiler
/// keep only XXH3's short-input code there, small enough to need no stack frame.
const SHORT_STRING: usize = 16;

/// `hll_agg_trans_int2/4/8(internal, int [, integer])`: the transition functions of the
/// integer overloads of `hll_agg` and `approx_count_distinct`. The column's type is known
/// from the function, so a dense sketch takes a row without looking up a hasher: the hash and
/// one register update are all the work (`hll_agg_trans` would spend a third more).
macro_rules! hll_agg_trans_integer {
    ($name:ident, $int:ty) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            unsafe {
                match dense_row(fcinfo) {
                    Some((state, mut registers, value)) => {
                        registers.add_hash(hash_int(value.value() as $int as i64));
                        state
                    }
                    None => hll_agg_trans_slow(fcinfo),
                }
            }
        }
    };
}

hll_agg_trans_integer!(hll_agg_trans_int2, i16);
hll_agg_trans_integer!(hll_agg_trans_int4, i32);
hll_agg_trans_integer!(hll_agg_trans_int8, i64);

/// `hll_agg_trans_text(internal, text [, integer])`, for the text overloads (and varchar,
/// name, citext and untyped literals, which resolve to them): a short string stored inline
/// hashes here without a hasher lookup; everything else goes to `hll_agg_trans`, whose hasher
/// is built for the column's type (a citext column's state is then kept off this path).
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn hll_agg_trans_text(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        if let Some((state, mut registers, value)) = dense_row(fcinfo)
            && let Some(bytes) = inline_payload(value.cast_mut_ptr())
            && bytes.len() <= SHORT_STRING
        {
            registers.add_hash(hash_bytes(bytes));
            return state;
        }
        hll_agg_trans_text_slow(fcinfo)
    }
}

/// The rows `hll_agg_trans_text` does not take. A column whose type is not hashed by its
/// bytes (citext, relabelled as text to reach this overload) keeps its state off the hot path
/// above: from then on `dense_row` refuses it and every row goes through its own hasher.
#[cold]
#[inline(never)]
unsafe fn hll_agg_trans_text_slow(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe {
        let state = hll_agg_trans(fcinfo);
        if existing_hasher(fcinfo).is_some_and(|h| !h.hashes_stored_bytes()) {
            keep_off_hot_path::<State>(state);
        }
        state
    }
}

/// Out of line, so that the fast paths keep small stack frames.
#[cold]
#[inline(never)]
unsafe fn hll_agg_trans_slow(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { hll_agg_trans_general(fcinfo) }
}

/// Every other row of `hll_agg`: the first (which makes the state), sparse sketches, and
/// values that need PostgreSQL to hash (TOASTed or compressed, or hashed by a send function).
#[pg_guard]
unsafe extern "C-unwind" fn hll_agg_trans_general(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
    unsafe {
        let mut state =
            Internal::from((!pg_arg_is_null(fcinfo, 0)).then(|| pg_getarg_datum_raw(fcinfo, 0)));
        let sketch = state_or_init::<State>(&mut state, fcinfo, |arena| {
            // The precision argument is read once, when the first row makes the state.
            let precision = if (*fcinfo).nargs > 2 && !pg_arg_is_null(fcinfo, 2) {
                pg_getarg_datum_raw(fcinfo, 2).value() as i32 as i64
            } else {
                i64::from(DEFAULT_PRECISION)
            };
            Some(Sketch::new_in(precision, arena).or_raise())
        });
        if let (false, Some(sketch)) = (pg_arg_is_null(fcinfo, 1), sketch) {
            sketch.add_hash(cached_hasher(fcinfo, 1).hash(pg_getarg_datum_raw(fcinfo, 1)));
        }
        state_datum(state)
    }
}

crate::pg_finfo_v1!(
    pg_finfo_hll_agg_trans,
    pg_finfo_hll_agg_trans_int2,
    pg_finfo_hll_agg_trans_int4,
    pg_finfo_hll_agg_trans_int8,
    pg_finfo_hll_agg_trans_text,
);

/// `hll_union_trans(hll, hll)`: the transition and combine function of `hll_union_agg` and
/// the combine function of the `hll_agg` overloads whose state is an `hll`. The first sketch
/// makes the state, and with it the precision (a union folds to the smaller of its inputs).
#[pg_extern(sql = false)]
fn hll_union_trans(
    state: Internal,
    value: Option<HllDatum>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let value = value.as_ref().map(HllDatum::bytes);
    unsafe {
        union_step::<State>(state, value, fcinfo, |mine, theirs| match mine {
            Some(sketch) => sketch.merge_encoded(theirs).or_raise(),
            None => error!("aggregate state is missing"),
        })
    }
}

#[pg_extern(sql = false)]
fn hll_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    unsafe {
        let mine_arena = state_arena(fcinfo);
        combine_states::<State>(a, b, fcinfo, |mine, theirs| match (mine.as_mut(), theirs) {
            (_, None) => {}
            (Some(mine), Some(theirs)) => mine.merge_from(theirs).or_raise(),
            (None, Some(theirs)) => *mine = Some(theirs.clone_in(mine_arena)),
        })
    }
}

/// Serialised state: the sketch's bytes, or no bytes for "no sketch yet".
#[pg_extern(sql = false)]
fn hll_serial(mut state: Internal) -> Vec<u8> {
    match unsafe { state_mut::<State>(&mut state) } {
        Some(Some(sketch)) => {
            sketch.compact();
            sketch.encode()
        }
        _ => Vec::new(),
    }
}

#[pg_extern(sql = false)]
fn hll_deserial(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    unsafe {
        new_state::<State>(fcinfo, |arena| {
            (!bytes.is_empty()).then(|| Sketch::decode_in(bytes, arena).or_raise())
        })
    }
}

/// Zero rows give an empty sketch at the default precision, never NULL.
#[pg_extern(sql = false)]
fn hll_final(mut state: Internal) -> HllDatum {
    match unsafe { state_mut::<State>(&mut state) } {
        Some(state) => HllDatum::from_bytes(&state.flat_bytes()),
        None => HllDatum::from_sketch(&Sketch::default()),
    }
}

#[pg_extern(sql = false)]
fn hll_count_final(mut state: Internal) -> i64 {
    match unsafe { state_mut::<State>(&mut state) } {
        Some(Some(sketch)) => sketch.count().or_raise(),
        _ => 0,
    }
}

/// `hll_crdt_canonical('col', …)`: BEFORE INSERT OR UPDATE trigger that `crdt_replicate_setup`
/// puts on replicated tables with hll columns. It stores the named columns without a martingale
/// count, as `hll_crdt_merge` merges them: the count depends on the order of insertions and
/// unions, so a server whose local writes kept it would answer (and hold bytes) unlike its
/// peers that merged the same values in another order.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn hll_crdt_canonical(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe {
        let td = crate::common::trigger::trigger_data(fcinfo, "hll_crdt_canonical");
        let event = td.tg_event;
        let row_before = event & pg_sys::TRIGGER_EVENT_ROW != 0
            && event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_BEFORE;
        let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
        if !row_before || (op != pg_sys::TRIGGER_EVENT_INSERT && op != pg_sys::TRIGGER_EVENT_UPDATE)
        {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                "distcount.hll_crdt_canonical() must fire BEFORE INSERT OR UPDATE ... FOR EACH ROW"
            );
        }
        let tuple = if op == pg_sys::TRIGGER_EVENT_UPDATE {
            td.tg_newtuple
        } else {
            td.tg_trigtuple
        };
        let desc = (*td.tg_relation).rd_att;
        let trigger = td.tg_trigger;
        let mut columns: Vec<i32> = Vec::new();
        let mut values = Vec::new();
        for i in 0..(*trigger).tgnargs as usize {
            let name = *(*trigger).tgargs.add(i);
            let attnum = pg_sys::SPI_fnumber(desc, name);
            if attnum <= 0 {
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                    format!(
                        "hll_crdt_canonical: column \"{}\" does not exist",
                        std::ffi::CStr::from_ptr(name).to_string_lossy()
                    )
                );
            }
            let mut is_null = false;
            let datum = pg_sys::SPI_getbinval(tuple, desc, attnum, &mut is_null);
            if is_null {
                continue;
            }
            let Some(sketch) = <HllDatum as pgrx::datum::FromDatum>::from_datum(datum, false)
            else {
                continue;
            };
            let canonical = HllDatum::from_sketch(&sketch.sketch().without_martingale());
            let Some(datum) = pgrx::IntoDatum::into_datum(canonical) else {
                continue;
            };
            columns.push(attnum);
            values.push(datum);
        }
        if columns.is_empty() {
            return pg_sys::Datum::from(tuple);
        }
        let mut nulls = vec![false; columns.len()];
        pg_sys::Datum::from(pg_sys::heap_modify_tuple_by_cols(
            tuple,
            desc,
            columns.len() as i32,
            columns.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_mut_ptr(),
        ))
    }
}

crate::pg_finfo_v1!(pg_finfo_hll_crdt_canonical);
