//! Helpers for aggregates with an `internal` state: the state is a Rust value leaked into the
//! aggregate's memory context, dropped when PostgreSQL deletes that context.

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
