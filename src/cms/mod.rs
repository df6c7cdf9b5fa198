//! Count-Min sketch with mergeable heavy hitters. `sketch` is the pure algorithm (counters,
//! conservative and linear modes, the SpaceSaving candidate list, the canonical binary and text
//! formats, a mutation fuzzer); the SQL binding (type `cms`, aggregates) is still to come
//! (issue 4).

pub mod sketch;
