//! CRDTs: the counters `gcounter` (grow-only) and `pncounter` (increment/decrement), the
//! last-writer-wins register `lwwreg` and the add-wins set `orset`. `counter`, `register` and
//! `orset` are the pure algorithms; `sql`, `register_sql`, `orset_sql`, `node`, `crdt.sql`,
//! `register.sql` and `orset.sql` bind them to PostgreSQL;
//! `replication` and `replication.sql` merge states that logical replication carries.

pub mod counter;
mod node;
pub mod orset;
mod orset_sql;
pub mod register;
mod register_sql;
mod replication;
mod sql;

pgrx::extension_sql_file!("crdt.sql", name = "crdt");
pgrx::extension_sql_file!("register.sql", name = "crdt_register", requires = ["crdt"]);
pgrx::extension_sql_file!("orset.sql", name = "crdt_orset", requires = ["crdt"]);
pgrx::extension_sql_file!(
    "replication.sql",
    name = "crdt_replication",
    requires = ["crdt"]
);

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;
