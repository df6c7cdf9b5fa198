//! CRDTs: the counters `gcounter` (grow-only) and `pncounter` (increment/decrement), and the
//! last-writer-wins register `lwwreg`. `counter` and `register` are the pure algorithms; `sql`,
//! `register_sql`, `node`, `crdt.sql` and `register.sql` bind them to PostgreSQL;
//! `replication` and `replication.sql` merge states that logical replication carries.

pub mod counter;
mod node;
pub mod orset;
pub mod register;
mod register_sql;
mod replication;
mod sql;

pgrx::extension_sql_file!("crdt.sql", name = "crdt");
pgrx::extension_sql_file!("register.sql", name = "crdt_register", requires = ["crdt"]);
pgrx::extension_sql_file!(
    "replication.sql",
    name = "crdt_replication",
    requires = ["crdt"]
);

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;
