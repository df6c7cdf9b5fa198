//! Pieces every family shares. `error`, `hash`, `base64` and `text` are pure Rust; `report`, `varlena` and
//! `aggregate` bind them to PostgreSQL.

pub mod aggregate;
pub mod arena;
pub mod base64;
pub mod bytes;
pub mod error;
#[cfg(test)]
pub mod fuzz_support;
pub mod hash;
pub mod report;
pub mod text;
pub mod toast;
pub mod trigger;
pub mod tupdesc;
pub mod value_hash;
pub mod varlena;

/// Declares the `pg_finfo_<name>` records that tell PostgreSQL a raw C function (one written
/// without `#[pg_extern]`, for speed or for trigger access) uses the version-1 convention.
#[macro_export]
macro_rules! pg_finfo_v1 {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $name() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record = pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    )*};
}
