//! CRDT counters: `gcounter` (grow-only) and `pncounter` (increment/decrement).
//! `counter` is the pure algorithm; `sql`, `node` and `crdt.sql` bind it to PostgreSQL;
//! `replication` and `replication.sql` merge states that logical replication carries.

pub mod counter;
mod node;
mod replication;
mod sql;

pgrx::extension_sql_file!("crdt.sql", name = "crdt");
pgrx::extension_sql_file!(
    "replication.sql",
    name = "crdt_replication",
    requires = ["crdt"]
);

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;
