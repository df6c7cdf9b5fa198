-- HyperLogLog: distinct counts in about 5,900 bytes at the default precision (14).
-- Entry points are in src/hll/sql.rs; this script declares them.

CREATE TYPE hll;
CREATE FUNCTION hll_in(cstring, oid, integer) RETURNS hll
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_in_wrapper';
CREATE FUNCTION hll_out(hll) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_out_wrapper';
CREATE FUNCTION hll_recv(internal, oid, integer) RETURNS hll
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_recv_wrapper';
CREATE FUNCTION hll_send(hll) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_send_wrapper';
CREATE FUNCTION hll_typmod_in(cstring[]) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_typmod_in_wrapper';
CREATE FUNCTION hll_typmod_out(integer) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_typmod_out_wrapper';
-- Register bytes do not compress: keep them out of line but uncompressed.
CREATE TYPE hll (
    INPUT = hll_in, OUTPUT = hll_out, RECEIVE = hll_recv, SEND = hll_send,
    TYPMOD_IN = hll_typmod_in, TYPMOD_OUT = hll_typmod_out,
    INTERNALLENGTH = VARIABLE, STORAGE = external
);
COMMENT ON TYPE hll IS 'HyperLogLog sketch for distinct counts; hll(p) fixes the precision p (4 to 18, default 14). Text form hll1:<base64>.';

CREATE FUNCTION hll(hll, integer, boolean) RETURNS hll
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_enforce_typmod_wrapper';
CREATE CAST (hll AS hll) WITH FUNCTION hll(hll, integer, boolean) AS IMPLICIT;
COMMENT ON FUNCTION hll(hll, integer, boolean) IS 'Fits a sketch to hll(p): folds a finer sketch down, refuses a coarser one.';

CREATE FUNCTION hll_from_bytea(bytea) RETURNS hll
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_from_bytea_wrapper';
CREATE CAST (bytea AS hll) WITH FUNCTION hll_from_bytea(bytea);
CREATE CAST (hll AS bytea) WITHOUT FUNCTION;

-- postgresql-hll's values (storage spec v1), imported with their hash family and estimator.
CREATE FUNCTION hll_from_postgresql_hll(bytea) RETURNS hll
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_from_postgresql_hll_wrapper';
COMMENT ON FUNCTION hll_from_postgresql_hll(bytea) IS 'Imports a postgresql-hll value (call it on col::text::bytea): same count as its #; unions only with other imported sketches.';
CREATE FUNCTION hll_to_postgresql_hll(hll) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_to_postgresql_hll_wrapper';
COMMENT ON FUNCTION hll_to_postgresql_hll(hll) IS 'The postgresql-hll bytes of an imported sketch (cast them to its hll type); an error for a native sketch.';

-- ---------------------------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION hll_empty(p integer DEFAULT 14) RETURNS hll
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_empty_wrapper';
COMMENT ON FUNCTION hll_empty(integer) IS 'An empty sketch of precision p.';

CREATE FUNCTION hll_add(h hll, value anyelement) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_add_wrapper';
COMMENT ON FUNCTION hll_add(hll, anyelement) IS 'Adds a value (hashed internally); a NULL sketch counts as empty, a NULL value changes nothing.';

CREATE FUNCTION hll_union(a hll, b hll) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_union_wrapper';
COMMENT ON FUNCTION hll_union(hll, hll) IS 'Union; different precisions fold to the smaller; a NULL side counts as empty.';

CREATE FUNCTION hll_crdt_merge(a hll, b hll) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_crdt_merge_wrapper';
COMMENT ON FUNCTION hll_crdt_merge(hll, hll) IS 'The merge of replicated hll columns (crdt_merge_into): the union without a martingale count, so the same states merged in any order give the same bytes; a NULL side counts as empty.';

CREATE FUNCTION hll_crdt_canonical() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'hll_crdt_canonical';
COMMENT ON FUNCTION hll_crdt_canonical() IS 'BEFORE INSERT OR UPDATE trigger of replicated tables (crdt_replicate_setup; arguments: the hll columns): stores them without a martingale count, as hll_crdt_merge merges them.';

CREATE FUNCTION hll_count(h hll) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_count_wrapper';
COMMENT ON FUNCTION hll_count(hll) IS 'Estimated number of distinct values.';

CREATE FUNCTION hll_estimate_array(h hll, confidence float8) RETURNS float8[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_estimate_array_wrapper';
CREATE FUNCTION hll_estimate(h hll, confidence float8 DEFAULT 0.95,
                             OUT estimate float8, OUT lower float8, OUT upper float8)
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT e[1], e[2], e[3] FROM (SELECT distcount.hll_estimate_array(h, confidence) AS e) s $$;
COMMENT ON FUNCTION hll_estimate(hll, float8) IS 'Estimate with a two-sided confidence interval (normal; in dense form standard error sqrt(ln 2/m) for a sketch built by insertions alone, 1.04/sqrt(m) after a union).';

CREATE FUNCTION hll_info_text(h hll) RETURNS text
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_info_text_wrapper';
CREATE FUNCTION hll_info(h hll) RETURNS jsonb
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT distcount.hll_info_text(h)::jsonb $$;
COMMENT ON FUNCTION hll_info(hll) IS 'Precision, form (empty, sparse, dense), bytes, format version and relative standard error.';

-- ---------------------------------------------------------------------------------------------
-- Operators: equal sketches have identical bytes.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION hll_eq(hll, hll) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteaeq';
CREATE FUNCTION hll_ne(hll, hll) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteane';
CREATE FUNCTION hll_hash(hll) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlena';
CREATE FUNCTION hll_hash_extended(hll, bigint) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlenaextended';
CREATE OPERATOR = (LEFTARG = hll, RIGHTARG = hll, FUNCTION = hll_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR <> (LEFTARG = hll, RIGHTARG = hll, FUNCTION = hll_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR CLASS hll_hash_ops DEFAULT FOR TYPE hll USING hash AS
    OPERATOR 1 = (hll, hll),
    FUNCTION 1 hll_hash(hll),
    FUNCTION 2 hll_hash_extended(hll, bigint);
-- An arbitrary but stable total order by bytes, so ORDER BY, DISTINCT and UNION work.
CREATE FUNCTION hll_bytes_cmp(hll, hll) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteacmp';
CREATE FUNCTION hll_bytes_lt(hll, hll) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'bytealt';
CREATE FUNCTION hll_bytes_le(hll, hll) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteale';
CREATE FUNCTION hll_bytes_ge(hll, hll) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteage';
CREATE FUNCTION hll_bytes_gt(hll, hll) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteagt';
CREATE OPERATOR ~<~ (LEFTARG = hll, RIGHTARG = hll, FUNCTION = hll_bytes_lt,
    COMMUTATOR = ~>~, NEGATOR = ~>=~, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR ~<=~ (LEFTARG = hll, RIGHTARG = hll, FUNCTION = hll_bytes_le,
    COMMUTATOR = ~>=~, NEGATOR = ~>~, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR ~>=~ (LEFTARG = hll, RIGHTARG = hll, FUNCTION = hll_bytes_ge,
    COMMUTATOR = ~<=~, NEGATOR = ~<~, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR ~>~ (LEFTARG = hll, RIGHTARG = hll, FUNCTION = hll_bytes_gt,
    COMMUTATOR = ~<~, NEGATOR = ~<=~, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR CLASS hll_bytes_ops DEFAULT FOR TYPE hll USING btree AS
    OPERATOR 1 ~<~, OPERATOR 2 ~<=~, OPERATOR 3 =, OPERATOR 4 ~>=~, OPERATOR 5 ~>~,
    FUNCTION 1 hll_bytes_cmp(hll, hll);

CREATE OPERATOR || (LEFTARG = hll, RIGHTARG = hll, FUNCTION = hll_union, COMMUTATOR = ||);
CREATE OPERATOR # (RIGHTARG = hll, FUNCTION = hll_count);

-- ---------------------------------------------------------------------------------------------
-- Aggregates; parallel safe. The overloads of a known argument type keep their state as an
-- hll (in memory an expanded object, updated in place: src/common/aggregate.rs), so that Citus
-- splits them across its workers. The anyelement overloads keep an internal state: only the
-- call expression tells their argument's type, and Citus calls without one (it gathers their
-- rows instead). Both kinds share the C functions. SSPACE tells the planner what a state costs:
-- the hll states have a memory context of their own (a 1 kB first block), so a GROUP BY of
-- very many groups sorts rather than hashing and spilling.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION hll_agg_trans(internal, anyelement) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_agg_trans';
CREATE FUNCTION hll_agg_trans(internal, anyelement, integer) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_agg_trans';
CREATE FUNCTION hll_union_trans(hll, hll) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_union_trans_wrapper';
CREATE FUNCTION hll_combine(internal, internal) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_combine_wrapper';
CREATE FUNCTION hll_serial(internal) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_serial_wrapper';
CREATE FUNCTION hll_deserial(bytea, internal) RETURNS internal
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_deserial_wrapper';
CREATE FUNCTION hll_final(internal) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_final_wrapper';
CREATE FUNCTION hll_final(hll) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_final_wrapper';
CREATE FUNCTION hll_count_final(internal) RETURNS bigint
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_count_final_wrapper';
CREATE FUNCTION hll_count_final(hll) RETURNS bigint
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_count_final_wrapper';

CREATE AGGREGATE hll_agg(anyelement) (
    SFUNC = hll_agg_trans, STYPE = internal, SSPACE = 128, FINALFUNC = hll_final,
    COMBINEFUNC = hll_combine, SERIALFUNC = hll_serial, DESERIALFUNC = hll_deserial, PARALLEL = SAFE);
COMMENT ON AGGREGATE hll_agg(anyelement) IS 'Sketch of the distinct non-NULL values, precision 14; int2/int4/int8 of equal value count as one.';
CREATE AGGREGATE hll_agg(anyelement, integer) (
    SFUNC = hll_agg_trans, STYPE = internal, SSPACE = 128, FINALFUNC = hll_final,
    COMBINEFUNC = hll_combine, SERIALFUNC = hll_serial, DESERIALFUNC = hll_deserial, PARALLEL = SAFE);
COMMENT ON AGGREGATE hll_agg(anyelement, integer) IS 'Sketch of the distinct non-NULL values at precision p (4 to 18).';
CREATE AGGREGATE approx_count_distinct(anyelement) (
    SFUNC = hll_agg_trans, STYPE = internal, SSPACE = 128, FINALFUNC = hll_count_final,
    COMBINEFUNC = hll_combine, SERIALFUNC = hll_serial, DESERIALFUNC = hll_deserial, PARALLEL = SAFE);
COMMENT ON AGGREGATE approx_count_distinct(anyelement) IS 'Estimated number of distinct non-NULL values (HyperLogLog, precision 14).';
-- Overloads for the commonest column types. Integers and text get their own transition
-- functions: the type is known, so the hot path needs no hasher lookup. char(n), "char" and
-- four catalog types get overloads on the general function only so that no call becomes
-- ambiguous (regress file security.sql tries every type): with these, every
-- type that casts implicitly to one of them matches an overload outright or by PostgreSQL's
-- preferred-type rule (varchar, name and untyped literals go to text, with the same bytes).
DO $overloads$
DECLARE
    value_type text;
    symbol text;
BEGIN
    FOR value_type, symbol IN VALUES
        ('smallint', 'hll_agg_trans_int2'), ('integer', 'hll_agg_trans_int4'),
        ('bigint', 'hll_agg_trans_int8'), ('text', 'hll_agg_trans_text'), ('uuid', 'hll_agg_trans'),
        ('character', 'hll_agg_trans'), ('"char"', 'hll_agg_trans'),
        -- Catalog types that cast implicitly to text and bytea alike: without their own
        -- overloads a call on them would be ambiguous.
        ('pg_node_tree', 'hll_agg_trans'), ('pg_ndistinct', 'hll_agg_trans'),
        ('pg_dependencies', 'hll_agg_trans'), ('pg_mcv_list', 'hll_agg_trans')
    LOOP
        EXECUTE format($sql$
            CREATE FUNCTION hll_agg_trans(hll, %1$s) RETURNS hll
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', %2$L;
            CREATE FUNCTION hll_agg_trans(hll, %1$s, integer) RETURNS hll
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', %2$L;
            CREATE AGGREGATE hll_agg(%1$s) (
                SFUNC = hll_agg_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_final,
                COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE hll_agg(%1$s) IS 'Sketch of the distinct non-NULL values, precision 14.';
            CREATE AGGREGATE hll_agg(%1$s, integer) (
                SFUNC = hll_agg_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_final,
                COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE hll_agg(%1$s, integer) IS 'Sketch of the distinct non-NULL values at precision p (4 to 18).';
            CREATE AGGREGATE approx_count_distinct(%1$s) (
                SFUNC = hll_agg_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_count_final,
                COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE approx_count_distinct(%1$s) IS 'Estimated number of distinct non-NULL values (HyperLogLog, precision 14).';
        $sql$, value_type, symbol);
    END LOOP;
END
$overloads$;
CREATE AGGREGATE hll_union_agg(hll) (
    SFUNC = hll_union_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_final,
    COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
COMMENT ON AGGREGATE hll_union_agg(hll) IS 'Union of the sketches, skipping NULLs; precisions fold to the smallest.';
