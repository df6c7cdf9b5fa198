//! SQL binding of the G-Counter and PN-Counter types. The C entry points are declared by hand
//! in `crdt.sql` (every `#[pg_extern]` here is `sql = false`), so each function's strictness,
//! volatility, defaults and comment sit in one readable script.

use super::counter::{Counter, GCounter, GSlot, PnCounter, PnSlot, Slot};
use crate::common::aggregate::{AggState, state_mut, union_step};
use crate::common::arena::Arena;
use crate::common::error::{Error, ErrorKind};
use crate::common::report::OrRaise;
use crate::common::varlena::{take_recv_bytes, to_cstring};
use crate::sql_varlena_type;
use pgrx::prelude::*;
use pgrx::{Internal, PgSqlErrorCode};
use std::ffi::{CStr, CString};

sql_varlena_type!(
    /// A `distcount.gcounter` datum.
    GCounterDatum,
    "gcounter"
);
sql_varlena_type!(
    /// A `distcount.pncounter` datum.
    PnCounterDatum,
    "pncounter"
);

/// Conversions between a counter and its datum handle.
trait CounterDatum: Sized {
    type S: Slot;
    fn from_bytes(bytes: &[u8]) -> Self;
    fn bytes(&self) -> &[u8];

    /// Decodes a stored value. Stored values were validated on the way in, but a value can
    /// also arrive from a binary-coercible cast or a damaged page, so the check stays.
    fn counter(&self) -> Counter<Self::S> {
        Counter::decode(self.bytes()).or_raise()
    }

    fn from_counter(counter: &Counter<Self::S>) -> Self {
        Self::from_bytes(&counter.encode())
    }
}

impl CounterDatum for GCounterDatum {
    type S = GSlot;
    fn from_bytes(bytes: &[u8]) -> Self {
        GCounterDatum::from_bytes(bytes)
    }
    fn bytes(&self) -> &[u8] {
        GCounterDatum::bytes(self)
    }
}

impl CounterDatum for PnCounterDatum {
    type S = PnSlot;
    fn from_bytes(bytes: &[u8]) -> Self {
        PnCounterDatum::from_bytes(bytes)
    }
    fn bytes(&self) -> &[u8] {
        PnCounterDatum::bytes(self)
    }
}

// ---- shared implementations, instantiated for both types by `counter_functions!` -----------

fn text_in<D: CounterDatum>(input: &CStr) -> D {
    let text = input
        .to_str()
        .map_err(|_| Error::new(ErrorKind::InvalidText, "input is not valid UTF-8"));
    D::from_counter(&Counter::<D::S>::parse_text(text.or_raise()).or_raise())
}

fn text_out<D: CounterDatum>(value: D) -> CString {
    to_cstring(value.counter().to_text())
}

fn binary_recv<D: CounterDatum>(buf: Internal) -> D {
    D::from_counter(&Counter::<D::S>::decode(take_recv_bytes(buf)).or_raise())
}

fn from_bytea<D: CounterDatum>(bytes: &[u8]) -> D {
    D::from_counter(&Counter::<D::S>::decode(bytes).or_raise())
}

/// Merge; a NULL side counts as empty, so `NULL || c` is `c`. Both NULL give NULL.
fn merge<D: CounterDatum>(a: Option<D>, b: Option<D>) -> Option<D> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(D::from_counter(&x.counter())),
        (Some(a), Some(b)) => Some(D::from_counter(&a.counter().merge(&b.counter()).or_raise())),
    }
}

fn lattice_le<D: CounterDatum>(a: D, b: D) -> bool {
    a.counter().le(&b.counter())
}

fn increment<D: CounterDatum>(
    counter: Option<D>,
    by: Option<i64>,
    node: Option<&str>,
    add: fn(&mut Counter<D::S>, &str, i64) -> crate::common::error::Result<()>,
) -> D {
    let mut state = counter.map(|c| c.counter()).unwrap_or_default();
    let node = super::node::node_or_raise(node);
    if let Some(by) = by {
        add(&mut state, node, by).or_raise();
    }
    D::from_counter(&state)
}

// ---- aggregate support: the state is a decoded Counter, an expanded object of the type ----

/// Tells the two counter types' aggregate states apart.
trait SlotTag {
    const TAG: u32;
}
impl SlotTag for GSlot {
    const TAG: u32 = u32::from_le_bytes(*b"gctr");
}
impl SlotTag for PnSlot {
    const TAG: u32 = u32::from_le_bytes(*b"pctr");
}

impl<S: Slot + SlotTag + 'static> AggState for Counter<S> {
    const TAG: u32 = S::TAG;

    fn flat_bytes(&mut self) -> Vec<u8> {
        self.encode()
    }

    fn from_flat(bytes: &[u8], _arena: Arena) -> Self {
        Counter::decode(bytes).or_raise()
    }
}

/// `gcounter_merge_trans(gcounter, gcounter)` and the pncounter one: the transition and combine
/// function of the merge aggregates.
fn agg_trans<D: CounterDatum>(
    state: Internal,
    value: Option<D>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal
where
    D::S: SlotTag + 'static,
{
    let value = value.as_ref().map(D::bytes);
    unsafe {
        union_step::<Counter<D::S>>(state, value, fcinfo, |mine, theirs| {
            mine.merge_from(&Counter::decode(theirs).or_raise())
                .or_raise()
        })
    }
}

/// Zero input rows give an empty counter, not NULL.
fn agg_final<D: CounterDatum>(mut state: Internal) -> D
where
    D::S: SlotTag + 'static,
{
    match unsafe { state_mut::<Counter<D::S>>(&mut state) } {
        Some(counter) => D::from_counter(counter),
        None => D::from_counter(&Counter::new()),
    }
}

/// Declares the `#[pg_extern]` entry points that both counter types share.
macro_rules! counter_functions {
    ($datum:ty {
        in: $in_fn:ident, out: $out_fn:ident, recv: $recv_fn:ident, send: $send_fn:ident,
        from_bytea: $from_bytea_fn:ident, merge: $merge_fn:ident, le: $le_fn:ident, ge: $ge_fn:ident,
        trans: $trans_fn:ident, final: $final_fn:ident, delta: $delta_fn:ident,
        fold_slot: $fold_fn:ident $(,)?
    }) => {
        #[pg_extern(sql = false)]
        fn $delta_fn(newer: $datum, older: $datum) -> $datum {
            <$datum>::from_counter(&newer.counter().delta_since(&older.counter()))
        }
        #[pg_extern(sql = false)]
        fn $fold_fn(counter: $datum, retired: &str, into: &str) -> $datum {
            <$datum>::from_counter(&counter.counter().fold_slot(retired, into).or_raise())
        }
        #[pg_extern(sql = false)]
        fn $in_fn(input: &CStr) -> $datum {
            text_in(input)
        }
        #[pg_extern(sql = false)]
        fn $out_fn(value: $datum) -> CString {
            text_out(value)
        }
        #[pg_extern(sql = false)]
        fn $recv_fn(buf: Internal) -> $datum {
            binary_recv(buf)
        }
        #[pg_extern(sql = false)]
        fn $send_fn(value: $datum) -> Vec<u8> {
            // The stored bytes are the binary format, validated when they came in.
            value.bytes().to_vec()
        }
        #[pg_extern(sql = false)]
        fn $from_bytea_fn(bytes: &[u8]) -> $datum {
            from_bytea(bytes)
        }
        #[pg_extern(sql = false)]
        fn $merge_fn(a: Option<$datum>, b: Option<$datum>) -> Option<$datum> {
            merge(a, b)
        }
        #[pg_extern(sql = false)]
        fn $le_fn(a: $datum, b: $datum) -> bool {
            lattice_le(a, b)
        }
        #[pg_extern(sql = false)]
        fn $ge_fn(a: $datum, b: $datum) -> bool {
            lattice_le(b, a)
        }
        #[pg_extern(sql = false)]
        fn $trans_fn(
            state: Internal,
            value: Option<$datum>,
            fcinfo: pg_sys::FunctionCallInfo,
        ) -> Internal {
            agg_trans(state, value, fcinfo)
        }
        #[pg_extern(sql = false)]
        fn $final_fn(state: Internal) -> $datum {
            agg_final(state)
        }
    };
}

counter_functions!(GCounterDatum {
    in: gcounter_in, out: gcounter_out, recv: gcounter_recv, send: gcounter_send,
    from_bytea: gcounter_from_bytea, merge: gcounter_merge, le: gcounter_le, ge: gcounter_ge,
    trans: gcounter_merge_trans, final: gcounter_merge_final,
    delta: gcounter_delta, fold_slot: gcounter_fold_slot,
});

counter_functions!(PnCounterDatum {
    in: pncounter_in, out: pncounter_out, recv: pncounter_recv, send: pncounter_send,
    from_bytea: pncounter_from_bytea, merge: pncounter_merge, le: pncounter_le, ge: pncounter_ge,
    trans: pncounter_merge_trans, final: pncounter_merge_final,
    delta: pncounter_delta, fold_slot: pncounter_fold_slot,
});

// ---- functions whose shape differs between the two types ------------------------------------

#[pg_extern(sql = false)]
fn gcounter_inc(
    counter: Option<GCounterDatum>,
    by: Option<i64>,
    node: Option<&str>,
) -> GCounterDatum {
    increment(counter, by, node, GCounter::increment)
}

#[pg_extern(sql = false)]
fn pncounter_inc(
    counter: Option<PnCounterDatum>,
    by: Option<i64>,
    node: Option<&str>,
) -> PnCounterDatum {
    increment(counter, by, node, PnCounter::increment)
}

#[pg_extern(sql = false)]
fn gcounter_value(counter: GCounterDatum) -> i64 {
    counter.counter().value().or_raise()
}

#[pg_extern(sql = false)]
fn pncounter_value(counter: PnCounterDatum) -> i64 {
    counter.counter().value().or_raise()
}

#[pg_extern(sql = false)]
fn gcounter_entries(
    counter: GCounterDatum,
) -> TableIterator<'static, (name!(node, String), name!(count, i64))> {
    let rows: Vec<_> = counter
        .counter()
        .slots()
        .iter()
        .map(|(node, s)| (node.clone(), s.0))
        .collect();
    TableIterator::new(rows)
}

#[pg_extern(sql = false)]
fn pncounter_entries(
    counter: PnCounterDatum,
) -> TableIterator<'static, (name!(node, String), name!(p, i64), name!(n, i64))> {
    let rows: Vec<_> = counter
        .counter()
        .slots()
        .iter()
        .map(|(node, s)| (node.clone(), s.p, s.n))
        .collect();
    TableIterator::new(rows)
}

// ---- symbols of 0.1.0's internal-state counter aggregates -----------------------------------
// A cluster upgraded with pg_upgrade restores 0.1.0's catalog, which names these C functions,
// before ALTER EXTENSION UPDATE drops them: they must exist, and only say what to do.
macro_rules! removed_support_functions {
    ($($name:ident, $finfo:ident;)*) => {$(
        #[pg_guard]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                concat!(stringify!($name), " was removed in pg_distcount 0.2.0"),
                "Run ALTER EXTENSION pg_distcount UPDATE."
            );
        }
        crate::pg_finfo_v1!($finfo);
    )*};
}
removed_support_functions! {
    gcounter_merge_combine_wrapper, pg_finfo_gcounter_merge_combine_wrapper;
    gcounter_merge_serial_wrapper, pg_finfo_gcounter_merge_serial_wrapper;
    gcounter_merge_deserial_wrapper, pg_finfo_gcounter_merge_deserial_wrapper;
    pncounter_merge_combine_wrapper, pg_finfo_pncounter_merge_combine_wrapper;
    pncounter_merge_serial_wrapper, pg_finfo_pncounter_merge_serial_wrapper;
    pncounter_merge_deserial_wrapper, pg_finfo_pncounter_merge_deserial_wrapper;
}
