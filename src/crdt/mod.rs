//! CRDT counters: `gcounter` (grow-only) and `pncounter` (increment/decrement).
//! `counter` is the pure algorithm; `sql` and `crdt.sql` bind it to PostgreSQL.

pub mod counter;
mod sql;

pgrx::extension_sql_file!("crdt.sql", name = "crdt");

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;
