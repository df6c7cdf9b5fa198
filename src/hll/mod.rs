//! HyperLogLog distinct counting. `sketch` is the pure algorithm (sparse and dense forms,
//! Ertl's estimator, the canonical binary and text formats, a mutation fuzzer); the SQL
//! binding (type `hll`, aggregates, functions) is still to come (issue 3).

pub mod sketch;
