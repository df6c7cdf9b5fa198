-- Frequent items (heavy hitters) with mergeable error bounds. Entry points are in src/topk/sql.rs.

CREATE TYPE topk;
CREATE FUNCTION topk_in(cstring) RETURNS topk
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_in_wrapper';
CREATE FUNCTION topk_out(topk) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_out_wrapper';
CREATE FUNCTION topk_recv(internal) RETURNS topk
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_recv_wrapper';
CREATE FUNCTION topk_send(topk) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_send_wrapper';
CREATE TYPE topk (
    INPUT = topk_in, OUTPUT = topk_out, RECEIVE = topk_recv, SEND = topk_send,
    INTERNALLENGTH = VARIABLE, STORAGE = external
);
COMMENT ON TYPE topk IS 'Frequent items: the heaviest values of a stream with count bounds (SpaceSaving, mergeable). Text form topk1:<base64>.';
COMMENT ON FUNCTION topk_in(cstring) IS 'Text input of topk (topk1:<base64>), validated.';
COMMENT ON FUNCTION topk_out(topk) IS 'Text output of topk (topk1:<base64>).';
COMMENT ON FUNCTION topk_recv(internal) IS 'Binary input of topk, validated.';
COMMENT ON FUNCTION topk_send(topk) IS 'Binary output of topk (its stored format).';

CREATE FUNCTION topk_from_bytea(bytea) RETURNS topk
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_from_bytea_wrapper';
COMMENT ON FUNCTION topk_from_bytea(bytea) IS 'A topk from its stored bytes, validated (the bytea to topk cast).';
CREATE CAST (bytea AS topk) WITH FUNCTION topk_from_bytea(bytea);
CREATE CAST (topk AS bytea) WITHOUT FUNCTION;

CREATE FUNCTION topk_empty(capacity integer DEFAULT 1024) RETURNS topk
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_empty_wrapper';
COMMENT ON FUNCTION topk_empty(integer) IS 'An empty summary that holds up to capacity items (1 to 1048576).';

CREATE FUNCTION topk_add(t topk, value anyelement, weight bigint DEFAULT 1) RETURNS topk
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_add_wrapper';
COMMENT ON FUNCTION topk_add(topk, anyelement, bigint) IS 'Adds weight (>= 0) occurrences of value; a NULL summary is an empty one of capacity 1024, a NULL value or weight changes nothing.';

CREATE FUNCTION topk_union(a topk, b topk) RETURNS topk
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_union_wrapper';
COMMENT ON FUNCTION topk_union(topk, topk) IS 'Union of two summaries (the larger capacity); a NULL side or a summary that counted nothing is neutral.';
CREATE OPERATOR + (LEFTARG = topk, RIGHTARG = topk, FUNCTION = topk_union, COMMUTATOR = +);
COMMENT ON OPERATOR + (topk, topk) IS 'Union (topk_union).';

CREATE FUNCTION topk_trim(t topk, capacity integer) RETURNS topk
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_trim_wrapper';
COMMENT ON FUNCTION topk_trim(topk, integer) IS 'The summary cut to its capacity (1 to 1048576) best-ranked items, the floor raised to the largest count dropped: every bound still holds and the result merges as any summary of that capacity (build partitions large, merge, then trim the union).';

CREATE FUNCTION topk_items(t topk)
    RETURNS TABLE (item text, estimate bigint, lower_bound bigint, upper_bound bigint)
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_items_wrapper';
COMMENT ON FUNCTION topk_items(topk) IS 'The items held, heaviest first, each in the canonical text form of its value, with lower_bound <= true count <= upper_bound and the estimate in the middle.';

CREATE FUNCTION topk_estimate(t topk, value anyelement) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_estimate_wrapper';
COMMENT ON FUNCTION topk_estimate(topk, anyelement) IS 'Estimated count of value: the middle of its bounds if held, else 0 (topk_bounds gives the upper bound, the floor).';
CREATE FUNCTION topk_bounds_array(t topk, value anyelement) RETURNS bigint[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_bounds_array_wrapper';
COMMENT ON FUNCTION topk_bounds_array(topk, anyelement) IS 'Estimate, lower and upper bound of value as an array (see topk_bounds).';
CREATE FUNCTION topk_bounds(t topk, value anyelement, OUT estimate bigint, OUT lower_bound bigint, OUT upper_bound bigint)
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT b[1], b[2], b[3] FROM (SELECT distcount.topk_bounds_array(t, value) AS b) s $$;
COMMENT ON FUNCTION topk_bounds(topk, anyelement) IS 'Estimate with bounds that always hold: lower_bound <= true count <= upper_bound.';

CREATE FUNCTION topk_total(t topk) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_total_wrapper';
COMMENT ON FUNCTION topk_total(topk) IS 'Total weight N added.';
CREATE FUNCTION topk_info_text(t topk) RETURNS text
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_info_text_wrapper';
COMMENT ON FUNCTION topk_info_text(topk) IS 'topk_info as text.';
CREATE FUNCTION topk_info(t topk) RETURNS jsonb
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT distcount.topk_info_text(t)::jsonb $$;
COMMENT ON FUNCTION topk_info(topk) IS 'Capacity, items held, total, floor (bound on any value not held; 0 while exact), bytes, format version.';

CREATE FUNCTION topk_eq(topk, topk) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteaeq';
COMMENT ON FUNCTION topk_eq(topk, topk) IS 'Same summary: byte equality of the canonical stored form.';
CREATE FUNCTION topk_ne(topk, topk) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteane';
COMMENT ON FUNCTION topk_ne(topk, topk) IS 'Not the same summary (byte inequality).';
CREATE OPERATOR = (LEFTARG = topk, RIGHTARG = topk, FUNCTION = topk_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = topk, RIGHTARG = topk, FUNCTION = topk_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);

-- ---------------------------------------------------------------------------------------------
-- Aggregates; parallel safe. As for cms (cms.sql): the overloads of a known value type keep
-- their state as a topk (an expanded object, updated in place), which Citus can split across
-- its workers; the anyelement overloads keep an internal state. They share the C functions.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION topk_agg_trans(internal, anyelement) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_agg_trans';
COMMENT ON FUNCTION topk_agg_trans(internal, anyelement) IS 'Transition function of topk_agg.';
CREATE FUNCTION topk_agg_trans(internal, anyelement, integer) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_agg_trans';
COMMENT ON FUNCTION topk_agg_trans(internal, anyelement, integer) IS 'Transition function of topk_agg.';
CREATE FUNCTION topk_union_trans(topk, topk) RETURNS topk
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_union_trans_wrapper';
COMMENT ON FUNCTION topk_union_trans(topk, topk) IS 'Transition and combine function of topk_union_agg, combine function of topk_agg.';
CREATE FUNCTION topk_combine(internal, internal) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_combine_wrapper';
COMMENT ON FUNCTION topk_combine(internal, internal) IS 'Combine function of topk_agg.';
CREATE FUNCTION topk_serial(internal) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_serial_wrapper';
COMMENT ON FUNCTION topk_serial(internal) IS 'Serial function of topk_agg.';
CREATE FUNCTION topk_deserial(bytea, internal) RETURNS internal
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_deserial_wrapper';
COMMENT ON FUNCTION topk_deserial(bytea, internal) IS 'Deserial function of topk_agg.';
CREATE FUNCTION topk_final(internal) RETURNS topk
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_final_wrapper';
COMMENT ON FUNCTION topk_final(internal) IS 'Final function of topk_agg.';
CREATE FUNCTION topk_final(topk) RETURNS topk
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_final_wrapper';
COMMENT ON FUNCTION topk_final(topk) IS 'Final function of topk_agg and topk_union_agg.';

CREATE AGGREGATE topk_agg(value anyelement) (
    SFUNC = topk_agg_trans, STYPE = internal, SSPACE = 65536, FINALFUNC = topk_final,
    COMBINEFUNC = topk_combine, SERIALFUNC = topk_serial, DESERIALFUNC = topk_deserial, PARALLEL = SAFE);
CREATE AGGREGATE topk_agg(value anyelement, capacity integer) (
    SFUNC = topk_agg_trans, STYPE = internal, SSPACE = 65536, FINALFUNC = topk_final,
    COMBINEFUNC = topk_combine, SERIALFUNC = topk_serial, DESERIALFUNC = topk_deserial, PARALLEL = SAFE);
COMMENT ON AGGREGATE topk_agg(anyelement) IS 'Frequent items of the non-NULL values, up to 1024 held.';
COMMENT ON AGGREGATE topk_agg(anyelement, integer) IS 'Frequent items of the non-NULL values, up to capacity held (read from the first row).';
-- Overloads of the commonest value types, with a topk state (the list is cms_agg's).
DO $overloads$
DECLARE
    key_type text;
BEGIN
    FOREACH key_type IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'text', 'uuid', 'character', '"char"',
        'pg_node_tree', 'pg_ndistinct', 'pg_dependencies', 'pg_mcv_list']
    LOOP
        EXECUTE format($sql$
            CREATE FUNCTION topk_agg_trans(topk, %1$s) RETURNS topk
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_agg_trans';
            COMMENT ON FUNCTION topk_agg_trans(topk, %1$s) IS 'Transition function of topk_agg.';
            CREATE FUNCTION topk_agg_trans(topk, %1$s, integer) RETURNS topk
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'topk_agg_trans';
            COMMENT ON FUNCTION topk_agg_trans(topk, %1$s, integer) IS 'Transition function of topk_agg.';
            CREATE AGGREGATE topk_agg(value %1$s) (
                SFUNC = topk_agg_trans, STYPE = topk, SSPACE = 65536, FINALFUNC = topk_final,
                COMBINEFUNC = topk_union_trans, PARALLEL = SAFE);
            CREATE AGGREGATE topk_agg(value %1$s, capacity integer) (
                SFUNC = topk_agg_trans, STYPE = topk, SSPACE = 65536, FINALFUNC = topk_final,
                COMBINEFUNC = topk_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE topk_agg(%1$s) IS 'Frequent items of the non-NULL values, up to 1024 held.';
            COMMENT ON AGGREGATE topk_agg(%1$s, integer) IS 'Frequent items of the non-NULL values, up to capacity held (read from the first row).';
        $sql$, key_type);
    END LOOP;
END
$overloads$;

CREATE AGGREGATE topk_union_agg(topk) (
    SFUNC = topk_union_trans, STYPE = topk, SSPACE = 65536, FINALFUNC = topk_final,
    COMBINEFUNC = topk_union_trans, PARALLEL = SAFE);
COMMENT ON AGGREGATE topk_union_agg(topk) IS 'Union of summaries (NULLs skipped); summaries that counted nothing are neutral.';
