//! Helpers of the extension's trigger functions written in C style (outbox, hll).

use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, pg_sys};

/// The TriggerData of a call, or an error (39P01) when the function was called some other way.
///
/// # Safety
/// `fcinfo` must be the call of a function of this extension named `name`.
pub unsafe fn trigger_data<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    name: &str,
) -> &'a pg_sys::TriggerData {
    unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                format!("distcount.{name}() is a trigger function and cannot be called directly")
            );
        }
        &*(context as *const pg_sys::TriggerData)
    }
}
