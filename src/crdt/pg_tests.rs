//! In-database tests of the counter types (run by `cargo pgrx test`).

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn value(sql: &str) -> Option<i64> {
        Spi::get_one::<i64>(sql).expect("query runs")
    }

    fn text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).expect("query runs")
    }

    #[pg_test]
    fn worked_examples() {
        // The operators live in schema distcount, as for any user.
        Spi::run("SET LOCAL search_path = public, distcount").unwrap();
        assert_eq!(
            text(r#"SELECT ('{"A": 5}'::gcounter || '{"B": 3}' || '{"C": 7}')::text"#).as_deref(),
            Some(r#"{"A": 5, "B": 3, "C": 7}"#)
        );
        assert_eq!(
            value(
                r#"SELECT distcount.pncounter_value('{"A": [10, 2], "B": [5, 1], "C": [8, 0]}')"#
            ),
            Some(20)
        );
    }

    #[pg_test]
    fn node_id_defaults_to_the_stored_id_and_follows_the_setting() {
        let stored = text("SELECT id FROM distcount.node").unwrap();
        assert_eq!(text("SELECT distcount.node_id()").unwrap(), stored);
        assert_eq!(
            text("SELECT (distcount.gcounter_entries(distcount.gcounter_inc(NULL))).node").unwrap(),
            stored
        );
        Spi::run("SET pg_distcount.node_id = 'tokyo'").unwrap();
        assert_eq!(
            text("SELECT distcount.gcounter_inc(NULL, 2)::text").as_deref(),
            Some(r#"{"tokyo": 2}"#)
        );
    }

    /// The parallel plan (partial aggregates, serial/deserial, combine) gives the serial answer.
    #[pg_test]
    fn parallel_merge_agg_matches_serial() {
        Spi::run(
            "CREATE TABLE t AS SELECT i, distcount.pncounter_inc(NULL, (i % 7) - 3, 'n' || (i % 50)) AS c
             FROM generate_series(1, 200000) i",
        )
        .unwrap();
        Spi::run("ANALYZE t").unwrap();
        let serial = text("SELECT distcount.pncounter_merge_agg(c)::text FROM t").unwrap();
        Spi::run(
            "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
             SET max_parallel_workers_per_gather = 2",
        )
        .unwrap();
        let plan = Spi::get_one::<pgrx::Json>(
            "EXPLAIN (FORMAT JSON) SELECT distcount.pncounter_merge_agg(c) FROM t",
        )
        .unwrap()
        .unwrap();
        assert!(
            plan.0.to_string().contains("Partial"),
            "expected a parallel plan: {}",
            plan.0
        );
        let parallel = text("SELECT distcount.pncounter_merge_agg(c)::text FROM t").unwrap();
        assert_eq!(serial, parallel);
    }

    #[pg_test]
    fn zero_rows_give_an_empty_counter() {
        assert_eq!(
            text("SELECT distcount.gcounter_merge_agg(NULL::distcount.gcounter)::text WHERE false")
                .as_deref(),
            Some("{}")
        );
    }

    #[pg_test(error = "gcounter increments must not be negative (got -1)")]
    fn negative_gcounter_increment_is_an_error() {
        Spi::run("SELECT distcount.gcounter_inc(NULL, -1, 'A')").unwrap();
    }
}
