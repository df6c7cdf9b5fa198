//! Frequent items (heavy hitters) with mergeable error bounds: `distcount.topk`. `summary` is
//! the pure algorithm (SpaceSaving with Parallel-Space-Saving merges, the binary and text
//! formats, a mutation fuzzer); `sql` and `topk.sql` bind it to PostgreSQL.

mod sql;
pub mod summary;

pgrx::extension_sql_file!("topk.sql", name = "topk", requires = ["cms"]);
