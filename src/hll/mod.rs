//! HyperLogLog distinct counting. `sketch` is the pure algorithm (sparse and dense forms,
//! Ertl's estimator, the canonical binary and text formats, a mutation fuzzer); `sql` and
//! `hll.sql` bind it to PostgreSQL as the type `distcount.hll`.

pub mod sketch;
mod sql;

pgrx::extension_sql_file!("hll.sql", name = "hll", requires = ["crdt"]);
