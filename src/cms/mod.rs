//! Count-Min sketch with mergeable heavy hitters. `sketch` is the pure algorithm (counters,
//! conservative and linear modes, the SpaceSaving candidate list, the canonical binary and text
//! formats, a mutation fuzzer); `sql` and `cms.sql` bind it to PostgreSQL as `distcount.cms`.

pub mod sketch;
mod sql;

pgrx::extension_sql_file!("cms.sql", name = "cms", requires = ["hll"]);
