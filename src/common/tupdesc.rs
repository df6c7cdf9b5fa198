//! The attributes of a tuple descriptor, read the same way on every supported major.

use pgrx::pg_sys;

/// The `i`th attribute (from 0) of `tupdesc`, as C's `TupleDescAttr()`. PostgreSQL 18 moved the
/// attribute array behind an array of compact attributes, so the field `attrs` is gone there.
///
/// # Safety
/// `tupdesc` must be a live tuple descriptor and `i` below its `natts`.
#[inline]
pub unsafe fn attribute<'a>(
    tupdesc: pg_sys::TupleDesc,
    i: usize,
) -> &'a pg_sys::FormData_pg_attribute {
    #[cfg(not(feature = "pg18"))]
    unsafe {
        &*(*tupdesc).attrs.as_ptr().add(i)
    }
    #[cfg(feature = "pg18")]
    unsafe {
        // TupleDescAttrAddress(): the full attributes follow the `natts` compact ones.
        let first = (*tupdesc)
            .compact_attrs
            .as_ptr()
            .add((*tupdesc).natts as usize)
            as *const pg_sys::FormData_pg_attribute;
        &*first.add(i)
    }
}
