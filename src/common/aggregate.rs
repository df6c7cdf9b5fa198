//! Helpers for aggregates with an `internal` state: the state is a Rust value leaked into the
//! aggregate's memory context, dropped when PostgreSQL deletes that context. Its buffers live
//! in that context too ([`state_arena`]), so hash aggregation counts them against work_mem.

use crate::common::arena::{Arena, CloneIn};
use pgrx::prelude::*;
use pgrx::{Internal, PgMemoryContexts};

/// The aggregate memory context of the current call; an ERROR outside an aggregate.
pub fn aggregate_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut context: pg_sys::MemoryContext = std::ptr::null_mut();
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut context) } == 0 {
        error!("aggregate support function called outside an aggregate");
    }
    context
}

/// The arena of the aggregate context: where a state's buffers must live.
pub fn state_arena(fcinfo: pg_sys::FunctionCallInfo) -> Arena {
    Arena::context(aggregate_context(fcinfo))
}

/// Moves `value` into the aggregate context and returns it as the `internal` state datum.
pub fn new_state<T>(fcinfo: pg_sys::FunctionCallInfo, value: T) -> Internal {
    let context = aggregate_context(fcinfo);
    let ptr = PgMemoryContexts::For(context).leak_and_drop_on_delete(value);
    Internal::from(Some(pg_sys::Datum::from(ptr)))
}

/// The state behind an `internal` datum made by [`new_state`], if any.
///
/// # Safety
/// The datum must have been made by `new_state::<T>` for this aggregate.
pub unsafe fn state_mut<'a, T>(state: &'a mut Internal) -> Option<&'a mut T> {
    unsafe { state.get_mut::<T>() }
}

/// The state of a transition call: the existing one, or `init()` moved into the aggregate
/// context on the first call.
///
/// # Safety
/// An initialised `state` must have been made by `new_state::<T>` for this aggregate.
pub unsafe fn state_or_init<'a, T>(
    state: &'a mut Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    init: impl FnOnce() -> T,
) -> &'a mut T {
    if !state.initialized() {
        *state = new_state(fcinfo, init());
    }
    match unsafe { state.get_mut::<T>() } {
        Some(value) => value,
        None => error!("aggregate state is missing"),
    }
}

/// The datum a raw V1 transition function returns for `state`.
pub fn state_datum(state: Internal) -> pg_sys::Datum {
    match pgrx::IntoDatum::into_datum(state) {
        Some(datum) => datum,
        None => error!("aggregate state is missing"),
    }
}

/// A combine function over states of type `T`: merges `b` into `a`. When `a` has no state yet,
/// `b`'s is copied into the aggregate context, since it may live in a shorter-lived one.
///
/// # Safety
/// Initialised states must have been made by `new_state::<T>` for this aggregate.
pub unsafe fn combine_states<T: CloneIn>(
    mut a: Internal,
    mut b: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    merge: impl FnOnce(&mut T, &T),
) -> Internal {
    let Some(theirs) = (unsafe { b.get_mut::<T>() }) else {
        return a;
    };
    if !a.initialized() {
        return new_state(fcinfo, theirs.clone_in(state_arena(fcinfo)));
    }
    match unsafe { a.get_mut::<T>() } {
        Some(mine) => merge(mine, theirs),
        None => error!("aggregate state is missing"),
    }
    a
}
