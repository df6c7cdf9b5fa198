-- Count-Min sketch with mergeable heavy hitters. Entry points are in src/cms/sql.rs.

CREATE TYPE cms;
CREATE FUNCTION cms_in(cstring) RETURNS cms
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_in_wrapper';
CREATE FUNCTION cms_out(cms) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_out_wrapper';
CREATE FUNCTION cms_recv(internal) RETURNS cms
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_recv_wrapper';
CREATE FUNCTION cms_send(cms) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_send_wrapper';
CREATE TYPE cms (
    INPUT = cms_in, OUTPUT = cms_out, RECEIVE = cms_recv, SEND = cms_send,
    INTERNALLENGTH = VARIABLE, STORAGE = external
);
COMMENT ON TYPE cms IS 'Count-Min sketch: frequency estimates within epsilon*N with probability 1-delta, plus a mergeable heavy-hitter list. Text form cms1:<base64>.';

CREATE FUNCTION cms_from_bytea(bytea) RETURNS cms
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_from_bytea_wrapper';
CREATE CAST (bytea AS cms) WITH FUNCTION cms_from_bytea(bytea);
CREATE CAST (cms AS bytea) WITHOUT FUNCTION;

-- ---------------------------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION cms_empty(epsilon float8 DEFAULT 0.001, delta float8 DEFAULT 0.01,
                          heavy integer DEFAULT 64, mode text DEFAULT 'linear') RETURNS cms
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_empty_wrapper';
COMMENT ON FUNCTION cms_empty(float8, float8, integer, text) IS 'An empty sketch: width ceil(e/epsilon), depth ceil(ln(1/delta)), heavy-hitter capacity heavy, mode linear or conservative.';

CREATE FUNCTION cms_add(c cms, key anyelement, weight bigint DEFAULT 1) RETURNS cms
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_add_wrapper';
COMMENT ON FUNCTION cms_add(cms, anyelement, bigint) IS 'Adds weight occurrences of key; a NULL sketch is a default one, a NULL key changes nothing.';

CREATE FUNCTION cms_union(a cms, b cms) RETURNS cms
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_union_wrapper';
COMMENT ON FUNCTION cms_union(cms, cms) IS 'Union of two sketches of the same dimensions and mode; a NULL side counts as empty.';
CREATE FUNCTION cms_subtract(a cms, b cms) RETURNS cms
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_subtract_wrapper';
COMMENT ON FUNCTION cms_subtract(cms, cms) IS 'a minus b (linear mode only), e.g. to take an old window out of a total.';
CREATE OPERATOR + (LEFTARG = cms, RIGHTARG = cms, FUNCTION = cms_union, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = cms, RIGHTARG = cms, FUNCTION = cms_subtract);

CREATE FUNCTION cms_estimate(c cms, key anyelement) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_estimate_wrapper';
COMMENT ON FUNCTION cms_estimate(cms, anyelement) IS 'Estimated count of key: never below the truth (for non-negative weights).';
CREATE FUNCTION cms_bounds_array(c cms, key anyelement) RETURNS bigint[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_bounds_array_wrapper';
CREATE FUNCTION cms_bounds(c cms, key anyelement, OUT estimate bigint, OUT lower bigint, OUT upper bigint)
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT b[1], b[2], b[3] FROM (SELECT distcount.cms_bounds_array(c, key) AS b) s $$;
COMMENT ON FUNCTION cms_bounds(cms, anyelement) IS 'Estimate with bounds: the truth is at most upper, and at least lower with probability 1-delta.';
CREATE FUNCTION cms_exceeds(c cms, key anyelement, threshold bigint) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_exceeds_wrapper';
COMMENT ON FUNCTION cms_exceeds(cms, anyelement, bigint) IS 'True when the estimate of key is above threshold; never a false negative (rate limits).';

CREATE FUNCTION cms_topk(c cms, k integer)
    RETURNS TABLE (item text, estimate bigint, lower bigint, upper bigint, guaranteed boolean)
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_topk_wrapper';
COMMENT ON FUNCTION cms_topk(cms, integer) IS 'The k heaviest keys of the heavy-hitter list, with bounds; guaranteed when the bounds prove the key is in the top k. An error when k exceeds what the list holds.';

CREATE FUNCTION cms_total(c cms) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_total_wrapper';
COMMENT ON FUNCTION cms_total(cms) IS 'Total weight N added.';
CREATE FUNCTION cms_info_text(c cms) RETURNS text
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_info_text_wrapper';
CREATE FUNCTION cms_info(c cms) RETURNS jsonb
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT distcount.cms_info_text(c)::jsonb $$;
COMMENT ON FUNCTION cms_info(cms) IS 'Width, depth, epsilon, delta, mode, total, absolute error bound, heavy capacity, bytes.';

CREATE FUNCTION cms_eq(cms, cms) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteaeq';
CREATE FUNCTION cms_ne(cms, cms) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteane';
CREATE OPERATOR = (LEFTARG = cms, RIGHTARG = cms, FUNCTION = cms_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = cms, RIGHTARG = cms, FUNCTION = cms_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);

-- ---------------------------------------------------------------------------------------------
-- Aggregates (linear mode); parallel safe. As for hll (hll.sql): the overloads of a known key
-- type keep their state as a cms (an expanded object, updated in place), which Citus can split
-- across its workers; the anyelement overloads keep an internal state. They share the C
-- functions.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION cms_agg_trans(internal, anyelement) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_trans';
CREATE FUNCTION cms_agg_trans(internal, anyelement, float8, float8) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_trans';
CREATE FUNCTION cms_agg_trans(internal, anyelement, float8, float8, integer) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_trans';
CREATE FUNCTION cms_agg_weighted_trans(internal, anyelement, bigint, float8, float8) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_weighted_trans';
CREATE FUNCTION cms_agg_weighted_trans(internal, anyelement, bigint, float8, float8, integer) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_weighted_trans';
CREATE FUNCTION cms_union_trans(cms, cms) RETURNS cms
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_union_trans_wrapper';
CREATE FUNCTION cms_combine(internal, internal) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_combine_wrapper';
CREATE FUNCTION cms_serial(internal) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_serial_wrapper';
CREATE FUNCTION cms_deserial(bytea, internal) RETURNS internal
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_deserial_wrapper';
CREATE FUNCTION cms_final(internal) RETURNS cms
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_final_wrapper';
CREATE FUNCTION cms_final(cms) RETURNS cms
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_final_wrapper';

CREATE AGGREGATE cms_agg(key anyelement) (
    SFUNC = cms_agg_trans, STYPE = internal, SSPACE = 65536, FINALFUNC = cms_final,
    COMBINEFUNC = cms_combine, SERIALFUNC = cms_serial, DESERIALFUNC = cms_deserial, PARALLEL = SAFE);
CREATE AGGREGATE cms_agg(key anyelement, epsilon float8, delta float8) (
    SFUNC = cms_agg_trans, STYPE = internal, SSPACE = 65536, FINALFUNC = cms_final,
    COMBINEFUNC = cms_combine, SERIALFUNC = cms_serial, DESERIALFUNC = cms_deserial, PARALLEL = SAFE);
CREATE AGGREGATE cms_agg(key anyelement, epsilon float8, delta float8, heavy integer) (
    SFUNC = cms_agg_trans, STYPE = internal, SSPACE = 65536, FINALFUNC = cms_final,
    COMBINEFUNC = cms_combine, SERIALFUNC = cms_serial, DESERIALFUNC = cms_deserial, PARALLEL = SAFE);
CREATE AGGREGATE cms_agg_weighted(key anyelement, weight bigint, epsilon float8, delta float8) (
    SFUNC = cms_agg_weighted_trans, STYPE = internal, SSPACE = 65536, FINALFUNC = cms_final,
    COMBINEFUNC = cms_combine, SERIALFUNC = cms_serial, DESERIALFUNC = cms_deserial, PARALLEL = SAFE);
CREATE AGGREGATE cms_agg_weighted(key anyelement, weight bigint, epsilon float8, delta float8, heavy integer) (
    SFUNC = cms_agg_weighted_trans, STYPE = internal, SSPACE = 65536, FINALFUNC = cms_final,
    COMBINEFUNC = cms_combine, SERIALFUNC = cms_serial, DESERIALFUNC = cms_deserial, PARALLEL = SAFE);
COMMENT ON AGGREGATE cms_agg(anyelement) IS 'Count-Min sketch of the non-NULL keys (epsilon 0.001, delta 0.01, 64 heavy hitters, linear).';
COMMENT ON AGGREGATE cms_agg_weighted(anyelement, bigint, float8, float8) IS 'Count-Min sketch of weighted keys (negative weights allowed: linear mode).';
-- Overloads of the commonest key types, with a cms state. The list is hll_agg's (hll.sql):
-- with integers and text, char(n), "char" and four catalog types need overloads of their own
-- so that no call becomes ambiguous (security.sql tries every type).
DO $overloads$
DECLARE
    key_type text;
BEGIN
    FOREACH key_type IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'text', 'uuid', 'character', '"char"',
        'pg_node_tree', 'pg_ndistinct', 'pg_dependencies', 'pg_mcv_list']
    LOOP
        EXECUTE format($sql$
            CREATE FUNCTION cms_agg_trans(cms, %1$s) RETURNS cms
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_trans';
            CREATE FUNCTION cms_agg_trans(cms, %1$s, float8, float8) RETURNS cms
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_trans';
            CREATE FUNCTION cms_agg_trans(cms, %1$s, float8, float8, integer) RETURNS cms
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_trans';
            CREATE FUNCTION cms_agg_weighted_trans(cms, %1$s, bigint, float8, float8) RETURNS cms
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_weighted_trans';
            CREATE FUNCTION cms_agg_weighted_trans(cms, %1$s, bigint, float8, float8, integer) RETURNS cms
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_agg_weighted_trans';
            CREATE AGGREGATE cms_agg(key %1$s) (
                SFUNC = cms_agg_trans, STYPE = cms, SSPACE = 65536, FINALFUNC = cms_final,
                COMBINEFUNC = cms_union_trans, PARALLEL = SAFE);
            CREATE AGGREGATE cms_agg(key %1$s, epsilon float8, delta float8) (
                SFUNC = cms_agg_trans, STYPE = cms, SSPACE = 65536, FINALFUNC = cms_final,
                COMBINEFUNC = cms_union_trans, PARALLEL = SAFE);
            CREATE AGGREGATE cms_agg(key %1$s, epsilon float8, delta float8, heavy integer) (
                SFUNC = cms_agg_trans, STYPE = cms, SSPACE = 65536, FINALFUNC = cms_final,
                COMBINEFUNC = cms_union_trans, PARALLEL = SAFE);
            CREATE AGGREGATE cms_agg_weighted(key %1$s, weight bigint, epsilon float8, delta float8) (
                SFUNC = cms_agg_weighted_trans, STYPE = cms, SSPACE = 65536, FINALFUNC = cms_final,
                COMBINEFUNC = cms_union_trans, PARALLEL = SAFE);
            CREATE AGGREGATE cms_agg_weighted(key %1$s, weight bigint, epsilon float8, delta float8, heavy integer) (
                SFUNC = cms_agg_weighted_trans, STYPE = cms, SSPACE = 65536, FINALFUNC = cms_final,
                COMBINEFUNC = cms_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE cms_agg(%1$s) IS 'Count-Min sketch of the non-NULL keys (epsilon 0.001, delta 0.01, 64 heavy hitters, linear).';
            COMMENT ON AGGREGATE cms_agg_weighted(%1$s, bigint, float8, float8) IS 'Count-Min sketch of weighted keys (negative weights allowed: linear mode).';
        $sql$, key_type);
    END LOOP;
END
$overloads$;

CREATE AGGREGATE cms_union_agg(cms) (
    SFUNC = cms_union_trans, STYPE = cms, SSPACE = 65536, FINALFUNC = cms_final,
    COMBINEFUNC = cms_union_trans, PARALLEL = SAFE);
-- No moving-aggregate form: subtracting what leaves a sliding frame restores the counters but
-- not the heavy-hitter list, so the frame's value would differ from a fresh union of it.
COMMENT ON AGGREGATE cms_union_agg(cms) IS 'Union of sketches (NULLs skipped); sketches that counted nothing are neutral whatever their shape.';
