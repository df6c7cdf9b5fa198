//! Pieces every family shares. `error` and `text` are pure Rust; `report`, `varlena` and
//! `aggregate` bind them to PostgreSQL.

pub mod aggregate;
pub mod error;
pub mod report;
pub mod text;
pub mod varlena;
