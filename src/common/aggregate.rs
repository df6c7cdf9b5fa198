//! Aggregate states: a Rust value in PostgreSQL memory, reached through an expanded-object
//! header, whatever the aggregate's declared transition type.
//!
//! - Transition type the SQL type itself (`hll`, `cms`, `gcounter`, …): the state is a
//!   read-write *expanded object* of that type (src/include/utils/expandeddatum.h) in a memory
//!   context of its own, a child of the aggregate context. PostgreSQL and Citus keep such a
//!   state without copying it between rows, and flatten it to the type's bytes where a value
//!   must leave the aggregate: a parallel worker's partial result, Citus's partial on a worker
//!   (through the type's output function), a window frame's result. This is what lets Citus
//!   split an aggregate (docs/design-notes.md, "Aggregate states").
//! - Transition type `internal` (the `anyelement` overloads, whose argument type only the call
//!   expression knows, which Citus does not pass): the same object, directly in the aggregate
//!   context, with no context of its own (a per-group context costs about 1 kB).
//!
//! Either way the state datum points at the object's read-write pointer, so one transition
//! function serves both declarations, and the value's buffers live in the object's context
//! ([`new_state`] hands the arena to the maker), where hash aggregation counts them against
//! work_mem. The value is dropped by a reset callback of that context.

use crate::common::arena::{Arena, CloneIn};
use pgrx::prelude::*;
use pgrx::{Internal, PgSqlErrorCode};
use std::ffi::c_void;

/// A Rust value that can be an aggregate state of a SQL type.
pub trait AggState: Sized + 'static {
    /// Four bytes that tell this type's objects from any other's.
    const TAG: u32;
    /// The payload of the SQL value the state stands for (a finished aggregate's bytes).
    fn flat_bytes(&mut self) -> Vec<u8>;
    /// The state of a SQL value's payload, its buffers in `arena`.
    fn from_flat(bytes: &[u8], arena: Arena) -> Self;
}

/// The aggregate memory context of the current call; an ERROR outside an aggregate.
///
/// # Safety
/// `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn aggregate_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut context: pg_sys::MemoryContext = std::ptr::null_mut();
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut context) } == 0 {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "aggregate support function called outside an aggregate",
            "Transition, combine and final functions run only as part of their aggregate."
        );
    }
    context
}

/// The arena of the aggregate context (for `internal` states made by hand).
///
/// # Safety
/// `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn state_arena(fcinfo: pg_sys::FunctionCallInfo) -> Arena {
    Arena::context(unsafe { aggregate_context(fcinfo) })
}

/// What every state object starts with; `StateObject<T>` adds the value.
#[repr(C)]
struct StateHead {
    header: pg_sys::ExpandedObjectHeader,
    tag: u32,
    /// Encodes the value (`flat_bytes` of its type).
    flatten: unsafe fn(*mut StateHead) -> Vec<u8>,
    /// The bytes `get_flat_size` measured, kept for `flatten_into`.
    flat: Option<Vec<u8>>,
}

#[repr(C)]
struct StateObject<T> {
    head: StateHead,
    value: T,
}

static METHODS: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
    get_flat_size: Some(get_flat_size),
    flatten_into: Some(flatten_into),
};

unsafe fn flatten_value<T: AggState>(head: *mut StateHead) -> Vec<u8> {
    unsafe { (*(head as *mut StateObject<T>)).value.flat_bytes() }
}

#[pg_guard]
unsafe extern "C-unwind" fn get_flat_size(eoh: *mut pg_sys::ExpandedObjectHeader) -> pg_sys::Size {
    unsafe {
        let head = eoh as *mut StateHead;
        let bytes = ((*head).flatten)(head);
        let size = bytes.len() + pg_sys::VARHDRSZ;
        (*head).flat = Some(bytes);
        size
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn flatten_into(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut c_void,
    allocated_size: pg_sys::Size,
) {
    unsafe {
        let head = eoh as *mut StateHead;
        let bytes = match (*head).flat.take() {
            Some(bytes) => bytes,
            None => ((*head).flatten)(head),
        };
        assert_eq!(
            bytes.len() + pg_sys::VARHDRSZ,
            allocated_size,
            "flat size changed"
        );
        let out = result as *mut u8;
        pgrx::set_varsize_4b(result as *mut pg_sys::varlena, allocated_size as i32);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(pg_sys::VARHDRSZ), bytes.len());
    }
}

/// Drops the object's value (and any kept bytes) before its context's memory goes.
#[pg_guard]
unsafe extern "C-unwind" fn drop_object<T>(object: *mut c_void) {
    unsafe { std::ptr::drop_in_place(object as *mut StateObject<T>) }
}

/// The header of an expanded pointer: a 1-byte external header (0x01 on little-endian
/// machines, which is all PostgreSQL's Rust targets are), then the pointer kind, as one u16.
const fn expanded_header(kind: u32) -> u16 {
    u16::from_le_bytes([0x01, kind as u8])
}
const RW_HEADER: u16 = expanded_header(pg_sys::vartag_external::VARTAG_EXPANDED_RW);
const RO_HEADER: u16 = expanded_header(pg_sys::vartag_external::VARTAG_EXPANDED_RO);

/// Set in a state's tag by [`keep_off_hot_path`]: every accessor but [`state_value_rw`]
/// accepts the state, so the transition functions' hot paths leave it to the general path.
const OFF_HOT_PATH: u32 = 0x8000_0000;

/// The object header an expanded pointer points at, if `datum` is one (a read-only one too
/// when `read_only_too`), and its type tag is `T`'s (also with [`OFF_HOT_PATH`] when
/// `read_only_too`). Pure pointer checks: no call into PostgreSQL.
///
/// # Safety
/// `datum` must be a non-NULL value of the transition type (or an `internal` state of ours).
#[inline(always)]
unsafe fn tagged_head<T: AggState>(
    datum: pg_sys::Datum,
    read_only_too: bool,
) -> Option<*mut StateHead> {
    unsafe {
        let ptr = datum.cast_mut_ptr::<u8>();
        let header = (ptr as *const u16).read_unaligned();
        if header != RW_HEADER && !(read_only_too && header == RO_HEADER) {
            return None;
        }
        let head = (ptr.add(2) as *const *mut StateHead).read_unaligned();
        let tag = (*head).tag;
        (tag == T::TAG || (read_only_too && tag == T::TAG | OFF_HOT_PATH)).then_some(head)
    }
}

/// Keeps a state off the hot paths of its transition functions (those that use
/// [`state_value_rw`]), for good: they then send every row to their general path. For a hot
/// path that would be wrong for this state's rows (hll's text overloads on a citext column)
/// at no cost to the other states' rows.
///
/// # Safety
/// `datum` must be a non-NULL state of type `T` made by this module.
pub unsafe fn keep_off_hot_path<T: AggState>(datum: pg_sys::Datum) {
    unsafe {
        if let Some(head) = tagged_head::<T>(datum, true) {
            (*head).tag = T::TAG | OFF_HOT_PATH;
        }
    }
}

/// The object behind a state datum, if it is one of ours of type `T` (read-write or read-only
/// pointer).
///
/// # Safety
/// As [`tagged_head`].
#[inline(always)]
unsafe fn object_of<'a, T: AggState>(datum: pg_sys::Datum) -> Option<&'a mut StateObject<T>> {
    unsafe {
        let head = tagged_head::<T>(datum, true)?;
        if !std::ptr::eq((*head).header.eoh_methods, &METHODS) {
            return None;
        }
        Some(&mut *(head as *mut StateObject<T>))
    }
}

/// The value of a state datum, if it is an object of type `T`.
///
/// # Safety
/// As [`tagged_head`].
#[inline(always)]
pub unsafe fn state_value<'a, T: AggState>(datum: pg_sys::Datum) -> Option<&'a mut T> {
    unsafe { object_of::<T>(datum).map(|object| &mut object.value) }
}

/// [`state_value`] for a transition function's hot path, which PostgreSQL and Citus call with
/// the read-write pointer only. Anything else (a read-only pointer, a plain value: an INITCOND,
/// a call by hand) gives None, for the general path to deal with. The methods check of
/// [`object_of`] is left out: a transition function's state argument is its own state or a
/// value of its SQL type, and only this module makes read-write expanded objects of these
/// types (a final function, which a user's aggregate can hand another family's `internal`
/// state, checks everything). It saves 3 instructions a row (tests/bench/hll_instructions.sh).
///
/// # Safety
/// As [`tagged_head`].
#[inline(always)]
pub unsafe fn state_value_rw<'a, T: AggState>(datum: pg_sys::Datum) -> Option<&'a mut T> {
    unsafe {
        let head = tagged_head::<T>(datum, false)?;
        Some(&mut (*(head as *mut StateObject<T>)).value)
    }
}

/// Makes a state object under `parent`: with a context of its own when `own_context` (an
/// expanded object of the SQL type), else directly in `parent` (an `internal` state).
/// Returns its read-write pointer datum.
unsafe fn make_object<T: AggState>(
    parent: pg_sys::MemoryContext,
    own_context: bool,
    make: impl FnOnce(Arena) -> T,
) -> pg_sys::Datum {
    unsafe {
        let context = if own_context {
            // Small sizes: most states (sparse sketches, counters) are a few hundred bytes.
            pg_sys::AllocSetContextCreateInternal(
                parent,
                c"pg_distcount aggregate state".as_ptr(),
                0,
                pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            )
        } else {
            parent
        };
        let value = make(Arena::context(context));
        let object = pg_sys::MemoryContextAlloc(context, std::mem::size_of::<StateObject<T>>())
            as *mut StateObject<T>;
        object.write(StateObject {
            head: StateHead {
                header: std::mem::zeroed(),
                tag: T::TAG,
                flatten: flatten_value::<T>,
                flat: None,
            },
            value,
        });
        let callback = pg_sys::MemoryContextAlloc(
            context,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        callback.write(pg_sys::MemoryContextCallback {
            func: Some(drop_object::<T>),
            arg: object.cast(),
            next: std::ptr::null_mut(),
        });
        pg_sys::MemoryContextRegisterResetCallback(context, callback);
        let header = &raw mut (*object).head.header;
        pg_sys::EOH_init_header(header, &METHODS, context);
        pg_sys::Datum::from((*header).eoh_rw_ptr.as_mut_ptr())
    }
}

/// Whether the called support function is declared to return `internal` (then its states are
/// `internal` ones). Read from the call expression where there is one, else from the catalog
/// (Citus calls transition functions without an expression); once per new state.
unsafe fn returns_internal(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        let expr = (*flinfo).fn_expr;
        let result_type = if !expr.is_null() && (*expr).type_ == pg_sys::NodeTag::T_FuncExpr {
            (*(expr as *mut pg_sys::FuncExpr)).funcresulttype
        } else {
            pg_sys::get_func_rettype((*flinfo).fn_oid)
        };
        result_type == pg_sys::INTERNALOID
    }
}

/// A new state made by `make` (given the arena its buffers must use), as the datum the
/// transition function returns.
///
/// # Safety
/// `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn new_state<T: AggState>(
    fcinfo: pg_sys::FunctionCallInfo,
    make: impl FnOnce(Arena) -> T,
) -> Internal {
    let context = unsafe { aggregate_context(fcinfo) };
    let own_context = unsafe { !returns_internal(fcinfo) };
    let datum = unsafe { make_object(context, own_context, make) };
    Internal::from(Some(datum))
}

/// The datum of a state, if any (Internal has no non-consuming accessor).
fn datum_of(state: &Internal) -> Option<pg_sys::Datum> {
    unsafe { state.get::<u8>() }.map(|byte| pg_sys::Datum::from(byte as *const u8))
}

/// The state of a plain value of `T`'s SQL type (detoasted in the current memory context).
///
/// # Safety
/// `datum` must be a non-NULL varlena.
unsafe fn from_value<T: AggState>(datum: pg_sys::Datum, arena: Arena) -> T {
    unsafe {
        let flat = crate::common::varlena::detoast(datum);
        T::from_flat(crate::common::varlena::payload(flat), arena)
    }
}

/// The state behind a datum: an object of ours, or a plain value of the SQL type (a final
/// function called on a stored value, a state PostgreSQL copied), which is expanded into a
/// new object under the current memory context and replaces `state`.
///
/// # Safety
/// An initialised `state` must be a value of `T`'s SQL type or a state made by `new_state::<T>`.
pub unsafe fn state_mut<'a, T: AggState>(state: &'a mut Internal) -> Option<&'a mut T> {
    unsafe {
        let datum = datum_of(state)?;
        if let Some(value) = state_value::<T>(datum) {
            return Some(value);
        }
        let expanded = make_object(pg_sys::CurrentMemoryContext, true, |arena| {
            from_value::<T>(datum, arena)
        });
        *state = Internal::from(Some(expanded));
        state_value::<T>(expanded)
    }
}

/// The state of a transition call: the existing one, or a new one made by `init` on the first
/// call. A plain value of the SQL type passed as the state (a transition function called with
/// a stored value) is expanded into a new state first.
///
/// # Safety
/// As [`state_mut`], and `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn state_or_init<'a, T: AggState>(
    state: &'a mut Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    init: impl FnOnce(Arena) -> T,
) -> &'a mut T {
    unsafe {
        let datum = match datum_of(state) {
            Some(datum) => match state_value::<T>(datum) {
                Some(value) => return value,
                None => new_state(fcinfo, |arena| from_value::<T>(datum, arena)),
            },
            None => new_state(fcinfo, init),
        };
        *state = datum;
        match datum_of(state).and_then(|datum| state_value::<T>(datum)) {
            Some(value) => value,
            None => error!("aggregate state is missing"),
        }
    }
}

/// A step of a union aggregate (the transition function of `hll_union_agg` and the like, and the
/// combine function of every aggregate whose state is its SQL type): the first non-NULL value
/// becomes the state, later ones are merged into it by `merge`.
///
/// # Safety
/// As [`state_mut`], and `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn union_step<T: AggState>(
    mut state: Internal,
    value: Option<&[u8]>,
    fcinfo: pg_sys::FunctionCallInfo,
    merge: impl FnOnce(&mut T, &[u8]),
) -> Internal {
    let Some(bytes) = value else {
        return state;
    };
    let first = !state.initialized();
    let mine =
        unsafe { state_or_init::<T>(&mut state, fcinfo, |arena| T::from_flat(bytes, arena)) };
    if !first {
        merge(mine, bytes);
    }
    state
}

/// The datum a raw V1 transition function returns for `state`.
pub fn state_datum(state: Internal) -> pg_sys::Datum {
    match datum_of(&state) {
        Some(datum) => datum,
        None => error!("aggregate state is missing"),
    }
}

/// A combine function over `internal` states of type `T`: merges `b` into `a`. When `a` has no
/// state yet, `b`'s is copied into the aggregate context, since it may live in a shorter-lived
/// one.
///
/// # Safety
/// Initialised states must have been made by `new_state::<T>` for this aggregate, and `fcinfo`
/// must be the current call's own `FunctionCallInfo`.
pub unsafe fn combine_states<T: AggState + CloneIn>(
    mut a: Internal,
    mut b: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    merge: impl FnOnce(&mut T, &T),
) -> Internal {
    let Some(theirs) = (unsafe { state_mut::<T>(&mut b) }) else {
        return a;
    };
    if !a.initialized() {
        return unsafe { new_state(fcinfo, |arena| theirs.clone_in(arena)) };
    }
    match unsafe { state_mut::<T>(&mut a) } {
        Some(mine) => merge(mine, theirs),
        None => error!("aggregate state is missing"),
    }
    a
}

/// An aggregate state that holds one sketch, made at the first row from that row's parameters
/// (cms, topk): the support functions every such aggregate has are the `sketch_*` functions below.
pub trait SketchState: AggState + CloneIn {
    type Sketch: CloneIn;
    /// A state holding `sketch` (None: no row yet).
    fn holding(sketch: Option<Self::Sketch>) -> Self;
    fn sketch(&self) -> Option<&Self::Sketch>;
    fn sketch_mut(&mut self) -> &mut Option<Self::Sketch>;
    /// The stored form (what the SQL type holds).
    fn encode(sketch: &Self::Sketch) -> Vec<u8>;
    /// A stored form read back, its buffers in `arena`; an ERROR when invalid.
    fn decode_in(bytes: &[u8], arena: Arena) -> Self::Sketch;
    /// Merges `theirs` into `mine`; an ERROR when they cannot merge.
    fn merge(mine: &mut Self::Sketch, theirs: &Self::Sketch);
}

/// The combine function over `internal` states.
///
/// # Safety
/// `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn sketch_combine<T: SketchState>(
    a: Internal,
    b: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    unsafe {
        let mine_arena = state_arena(fcinfo);
        combine_states::<T>(a, b, fcinfo, |mine, theirs| {
            match (mine.sketch_mut(), theirs.sketch()) {
                (_, None) => {}
                (Some(mine), Some(theirs)) => T::merge(mine, theirs),
                (slot @ None, Some(theirs)) => *slot = Some(theirs.clone_in(mine_arena)),
            }
        })
    }
}

/// The union transition function (and combine function of the states of the SQL type): the
/// first non-NULL value becomes the state, later ones merge into it.
///
/// # Safety
/// `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn sketch_union_step<T: SketchState>(
    state: Internal,
    value: Option<&[u8]>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    unsafe {
        union_step::<T>(state, value, fcinfo, |mine, theirs| {
            match mine.sketch_mut() {
                Some(sketch) => {
                    let theirs = T::decode_in(theirs, Arena::current());
                    T::merge(sketch, &theirs)
                }
                None => error!("aggregate state is missing"),
            }
        })
    }
}

/// The serial function: the stored form, or no bytes for a state without a sketch.
pub fn sketch_serial<T: SketchState>(mut state: Internal) -> Vec<u8> {
    match unsafe { state_mut::<T>(&mut state) }.and_then(|s| s.sketch()) {
        Some(sketch) => T::encode(sketch),
        None => Vec::new(),
    }
}

/// The deserial function, the inverse of [`sketch_serial`].
///
/// # Safety
/// `fcinfo` must be the current call's own `FunctionCallInfo`.
pub unsafe fn sketch_deserial<T: SketchState>(
    bytes: &[u8],
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    unsafe {
        new_state(fcinfo, |arena| {
            T::holding((!bytes.is_empty()).then(|| T::decode_in(bytes, arena)))
        })
    }
}

/// What the final function returns: the state's flat bytes, None for no state (zero rows).
pub fn sketch_final_bytes<T: SketchState>(mut state: Internal) -> Option<Vec<u8>> {
    unsafe { state_mut::<T>(&mut state) }.map(|state| state.flat_bytes())
}
