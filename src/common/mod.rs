//! Pieces every family shares. `error`, `hash` and `text` are pure Rust; `report`, `varlena` and
//! `aggregate` bind them to PostgreSQL.

pub mod aggregate;
pub mod error;
pub mod hash;
pub mod report;
pub mod text;
pub mod value_hash;
pub mod varlena;
