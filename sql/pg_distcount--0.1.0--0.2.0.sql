-- pg_distcount 0.1.0 -> 0.2.0, run by ALTER EXTENSION pg_distcount UPDATE (in schema distcount).
-- Install the 0.2.0 library and scripts first, then run ALTER EXTENSION in every database that
-- has the extension. Until then the 0.1.0 objects call into the 0.2.0 library: nothing here
-- needs the old library, and the one C function 0.2.0 no longer has (cms_union_inverse, a
-- sliding window's inverse of cms_union_agg) is dropped here.
-- Stored values (hll, cms, gcounter, pncounter) keep their formats: nothing is rewritten.
-- tests/integration/upgrade.sh checks that a database upgraded by this script has exactly the
-- schema of a fresh 0.2.0 install (tests/tools/extension_schema.sql) and the same answers.
\echo Use "ALTER EXTENSION pg_distcount UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Node identity (crdt.sql): the table and the fingerprint name the data directory and the
-- system identifier, so PUBLIC reads neither; node_id() checks through node_check(), which
-- runs with the owner's rights.
-- ---------------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION node_fingerprint() FROM PUBLIC;
COMMENT ON FUNCTION node_fingerprint() IS 'Where this database runs now: system identifier, WAL timeline, database OID, data directory (not for PUBLIC: it names the data directory).';
REVOKE SELECT ON node FROM PUBLIC;

CREATE FUNCTION node_check(OUT id text, OUT previous_id text, OUT verdict text, OUT differs text)
    LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        n record;
        f record;
        changed text[] := '{}';
    BEGIN
        SELECT x.id, x.system_identifier, x.timeline_id, x.database_oid, x.data_directory
          INTO n FROM distcount.node x;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'distcount.node holds no node id'
                USING ERRCODE = '55000', HINT = 'Recreate it with SELECT distcount.node_rotate().';
        END IF;
        id := n.id;
        IF pg_is_in_recovery() THEN
            verdict := 'recovery';
            RETURN;
        END IF;
        SELECT * INTO f FROM distcount.node_fingerprint();
        IF f.system_identifier IS DISTINCT FROM n.system_identifier THEN changed := changed || 'system identifier'::text; END IF;
        IF f.timeline_id IS DISTINCT FROM n.timeline_id THEN changed := changed || 'WAL timeline'::text; END IF;
        IF f.database_oid IS DISTINCT FROM n.database_oid THEN changed := changed || 'database OID'::text; END IF;
        IF f.data_directory IS DISTINCT FROM n.data_directory THEN changed := changed || 'data directory'::text; END IF;
        IF cardinality(changed) = 0 THEN
            verdict := 'ok';
            RETURN;
        END IF;
        differs := array_to_string(changed, ', ');
        IF current_setting('pg_distcount.on_node_copy') <> 'rotate' THEN
            verdict := 'copy';
            RETURN;
        END IF;
        UPDATE distcount.node AS x
           SET previous_id = x.id, id = gen_random_uuid()::text,
               (system_identifier, timeline_id, database_oid, data_directory) =
                   (f.system_identifier, f.timeline_id, f.database_oid, f.data_directory),
               created_at = now()
         WHERE x.id = n.id
        RETURNING x.id INTO id;
        IF NOT FOUND THEN  -- another backend rotated first: use its id
            SELECT x.id INTO id FROM distcount.node x;
        END IF;
        previous_id := n.id;
        verdict := 'rotated';
    END $$;
COMMENT ON FUNCTION node_check() IS 'Internal: the check behind node_id(), run with the owner''s rights; says what differs, never the values.';

ALTER FUNCTION node_rotate() SECURITY DEFINER;
GRANT SELECT ON retired_node TO PUBLIC;
ALTER FUNCTION node_retire(text, text) SECURITY DEFINER;
REVOKE ALL ON FUNCTION node_retire(text, text) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- lwwreg, the last-writer-wins register (new in 0.2.0; register.sql as it is).
-- ---------------------------------------------------------------------------------------------
CREATE TYPE lwwreg;
CREATE FUNCTION lwwreg_in(cstring) RETURNS lwwreg
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lwwreg_in_wrapper';
CREATE FUNCTION lwwreg_out(lwwreg) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lwwreg_out_wrapper';
CREATE FUNCTION lwwreg_recv(internal) RETURNS lwwreg
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lwwreg_recv_wrapper';
CREATE FUNCTION lwwreg_send(lwwreg) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lwwreg_send_wrapper';
CREATE TYPE lwwreg (
    INPUT = lwwreg_in, OUTPUT = lwwreg_out,
    RECEIVE = lwwreg_recv, SEND = lwwreg_send,
    INTERNALLENGTH = VARIABLE, STORAGE = extended
);
COMMENT ON TYPE lwwreg IS 'Last-writer-wins register on a hybrid logical clock: a jsonb value, its stamp (timestamp and logical tick) and writing node. Text form {"node": ..., "stamp": ..., "tick": ..., "value": ...}, or {} when empty.';

CREATE FUNCTION lwwreg_from_bytea(bytea) RETURNS lwwreg
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lwwreg_from_bytea_wrapper';
CREATE CAST (bytea AS lwwreg) WITH FUNCTION lwwreg_from_bytea(bytea);
CREATE CAST (lwwreg AS bytea) WITHOUT FUNCTION;
CREATE CAST (lwwreg AS jsonb) WITH INOUT;

-- Writes. lww_set is VOLATILE: it reads the clock.
CREATE FUNCTION lww_set(r lwwreg, value jsonb, node text DEFAULT distcount.node_id()) RETURNS lwwreg
    VOLATILE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_set_wrapper';
COMMENT ON FUNCTION lww_set(lwwreg, jsonb, text) IS 'Writes value at this server''s clock, stamped after r even when the clock is behind r''s stamp (hybrid logical clock); a NULL register counts as empty.';
CREATE FUNCTION lww_set_at(r lwwreg, value jsonb, stamp timestamptz, node text DEFAULT distcount.node_id())
    RETURNS lwwreg
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_set_at_wrapper';
COMMENT ON FUNCTION lww_set_at(lwwreg, jsonb, timestamptz, text) IS 'A write stamped by the caller''s own clock (a row version, an event time): the result is the greater of r and the write.';

-- Merge.
CREATE FUNCTION lww_merge(a lwwreg, b lwwreg) RETURNS lwwreg
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_merge_wrapper';
COMMENT ON FUNCTION lww_merge(lwwreg, lwwreg) IS 'The greater write by stamp, then node id, then value bytes; a NULL side counts as empty.';
CREATE OPERATOR || (LEFTARG = lwwreg, RIGHTARG = lwwreg, FUNCTION = lww_merge, COMMUTATOR = ||);
CREATE FUNCTION lww_discarded(a lwwreg, b lwwreg) RETURNS lwwreg
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_discarded_wrapper';
COMMENT ON FUNCTION lww_discarded(lwwreg, lwwreg) IS 'The write a merge of a and b discards, as a register; NULL when nothing is discarded.';

-- The state of the merge aggregate is the register itself (no internal state): the winner is
-- carried from row to row without copying the others, PostgreSQL accounts for it, and a
-- distributed planner can ship it through the text form.
CREATE AGGREGATE lww_merge_agg(lwwreg) (
    SFUNC = lww_merge, STYPE = lwwreg, COMBINEFUNC = lww_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE lww_merge_agg(lwwreg) IS 'The greatest write of all inputs (NULLs skipped); zero rows give NULL.';

-- Reading.
CREATE FUNCTION lww_value_text(r lwwreg) RETURNS text
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_value_text_wrapper';
COMMENT ON FUNCTION lww_value_text(lwwreg) IS 'The value as canonical jsonb text; NULL for an empty register.';
CREATE FUNCTION lww_value(r lwwreg) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT distcount.lww_value_text(r)::pg_catalog.jsonb $$;
COMMENT ON FUNCTION lww_value(lwwreg) IS 'The value; NULL for an empty register.';
CREATE FUNCTION lww_stamp(r lwwreg) RETURNS timestamptz
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_stamp_wrapper';
COMMENT ON FUNCTION lww_stamp(lwwreg) IS 'The physical part of the winning write''s stamp; NULL for an empty register.';
CREATE FUNCTION lww_tick(r lwwreg) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_tick_wrapper';
COMMENT ON FUNCTION lww_tick(lwwreg) IS 'The logical part of the stamp: writes whose clock had not passed the stamp they replaced count up from it.';
CREATE FUNCTION lww_node(r lwwreg) RETURNS text
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'lww_node_wrapper';
COMMENT ON FUNCTION lww_node(lwwreg) IS 'The node that made the winning write; NULL for an empty register.';

CREATE FUNCTION lww_merge_report(a lwwreg, b lwwreg, OUT merged lwwreg, OUT discarded_value jsonb,
                                 OUT discarded_stamp timestamptz, OUT discarded_node text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT distcount.lww_merge(a, b), distcount.lww_value(d), distcount.lww_stamp(d), distcount.lww_node(d)
        FROM (SELECT distcount.lww_discarded(a, b) AS d) AS x
    $$;
COMMENT ON FUNCTION lww_merge_report(lwwreg, lwwreg) IS 'The merge and what it discarded (value, stamp, node), since last-writer-wins otherwise loses writes silently.';

-- Equality on the canonical bytes; hashable for GROUP BY and hash joins.
CREATE FUNCTION lwwreg_eq(lwwreg, lwwreg) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteaeq';
CREATE FUNCTION lwwreg_ne(lwwreg, lwwreg) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteane';
CREATE FUNCTION lwwreg_hash(lwwreg) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlena';
CREATE FUNCTION lwwreg_hash_extended(lwwreg, bigint) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlenaextended';
CREATE OPERATOR = (LEFTARG = lwwreg, RIGHTARG = lwwreg, FUNCTION = lwwreg_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES);
CREATE OPERATOR <> (LEFTARG = lwwreg, RIGHTARG = lwwreg, FUNCTION = lwwreg_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR CLASS lwwreg_hash_ops DEFAULT FOR TYPE lwwreg USING hash AS
    OPERATOR 1 = (lwwreg, lwwreg),
    FUNCTION 1 lwwreg_hash(lwwreg),
    FUNCTION 2 lwwreg_hash_extended(lwwreg, bigint);

-- ---------------------------------------------------------------------------------------------
-- orset, the add-wins observed-remove set (new in 0.2.0; orset.sql as it is).
-- ---------------------------------------------------------------------------------------------
CREATE TYPE orset;
CREATE FUNCTION orset_in(cstring) RETURNS orset
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_in_wrapper';
CREATE FUNCTION orset_out(orset) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_out_wrapper';
CREATE FUNCTION orset_recv(internal) RETURNS orset
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_recv_wrapper';
CREATE FUNCTION orset_send(orset) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_send_wrapper';
CREATE TYPE orset (
    INPUT = orset_in, OUTPUT = orset_out,
    RECEIVE = orset_recv, SEND = orset_send,
    INTERNALLENGTH = VARIABLE, STORAGE = extended
);
COMMENT ON TYPE orset IS 'Add-wins observed-remove set of text elements (ORSWOT: a version vector and, per element, the adds no seen remove observed). Text form {"clock": {...}, "elements": {...}}, or {} when empty.';

CREATE FUNCTION orset_from_bytea(bytea) RETURNS orset
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_from_bytea_wrapper';
CREATE CAST (bytea AS orset) WITH FUNCTION orset_from_bytea(bytea);
CREATE CAST (orset AS bytea) WITHOUT FUNCTION;
CREATE CAST (orset AS jsonb) WITH INOUT;

-- Writes: the node is an argument (its default reads the setting), so the functions are
-- immutable and can be used in generated columns and indexes like the counters' are not.
CREATE FUNCTION orset_add(s orset, element text, node text DEFAULT distcount.node_id()) RETURNS orset
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_add_wrapper';
COMMENT ON FUNCTION orset_add(orset, text, text) IS 'Adds element as node (a new dot); a NULL set counts as empty. An add wins over every remove that has not seen it.';
CREATE FUNCTION orset_remove(s orset, element text) RETURNS orset
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_remove_wrapper';
COMMENT ON FUNCTION orset_remove(orset, text) IS 'Removes element as far as this state has seen it: an add made concurrently elsewhere survives the merge. A NULL set counts as empty.';

-- Merge.
CREATE FUNCTION orset_merge(a orset, b orset) RETURNS orset
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_merge_wrapper';
COMMENT ON FUNCTION orset_merge(orset, orset) IS 'Merge (commutative, associative, idempotent): elements whose adds the other side has not removed, clocks by maximum; a NULL side counts as empty.';
CREATE OPERATOR || (LEFTARG = orset, RIGHTARG = orset, FUNCTION = orset_merge, COMMUTATOR = ||);
-- As for lww_merge_agg, the state is the type itself: PostgreSQL sees and accounts for it.
CREATE AGGREGATE orset_merge_agg(orset) (
    SFUNC = orset_merge, STYPE = orset, COMBINEFUNC = orset_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE orset_merge_agg(orset) IS 'Merge of all inputs (NULLs skipped); zero rows give NULL.';

-- Reading.
CREATE FUNCTION orset_contains(s orset, element text) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_contains_wrapper';
COMMENT ON FUNCTION orset_contains(orset, text) IS 'Whether element is in the set.';
CREATE FUNCTION orset_contains_all(s orset, elements text[]) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_contains_all_wrapper';
COMMENT ON FUNCTION orset_contains_all(orset, text[]) IS 'Whether every element of the array is in the set (the @> operator).';
CREATE OPERATOR @> (LEFTARG = orset, RIGHTARG = text[], FUNCTION = orset_contains_all);
CREATE FUNCTION orset_elements(s orset) RETURNS SETOF text
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_elements_wrapper';
COMMENT ON FUNCTION orset_elements(orset) IS 'The elements as rows, in byte order.';
CREATE FUNCTION orset_to_array(s orset) RETURNS text[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_to_array_wrapper';
COMMENT ON FUNCTION orset_to_array(orset) IS 'The elements as an array, in byte order (the cast to text[]).';
CREATE CAST (orset AS text[]) WITH FUNCTION orset_to_array(orset);
CREATE FUNCTION orset_size(s orset) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'orset_size_wrapper';
COMMENT ON FUNCTION orset_size(orset) IS 'The number of elements.';

-- Equality on the canonical bytes; hashable for GROUP BY and hash joins.
CREATE FUNCTION orset_eq(orset, orset) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteaeq';
CREATE FUNCTION orset_ne(orset, orset) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteane';
CREATE FUNCTION orset_hash(orset) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlena';
CREATE FUNCTION orset_hash_extended(orset, bigint) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlenaextended';
CREATE OPERATOR = (LEFTARG = orset, RIGHTARG = orset, FUNCTION = orset_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES);
CREATE OPERATOR <> (LEFTARG = orset, RIGHTARG = orset, FUNCTION = orset_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR CLASS orset_hash_ops DEFAULT FOR TYPE orset USING hash AS
    OPERATOR 1 = (orset, orset),
    FUNCTION 1 orset_hash(orset),
    FUNCTION 2 orset_hash_extended(orset, bigint);

-- ---------------------------------------------------------------------------------------------
-- Aggregate states (src/common/aggregate.rs): every aggregate whose argument types are known
-- keeps its state as a value of its SQL type (an expanded object in memory) instead of
-- internal, so that Citus splits it across its workers; the anyelement overloads keep an
-- internal state. CREATE OR REPLACE AGGREGATE changes the state type and keeps views and
-- functions that use the aggregates; the internal-state support functions they no longer use
-- go.
-- ---------------------------------------------------------------------------------------------

-- HyperLogLog. New in 0.2.0: overloads for uuid and for four catalog types that cast implicitly
-- to text and bytea alike (a call on them was ambiguous in 0.1.0).
CREATE FUNCTION hll_union_trans(hll, hll) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_union_trans_wrapper';
CREATE FUNCTION hll_final(hll) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_final_wrapper';
CREATE FUNCTION hll_count_final(hll) RETURNS bigint
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_count_final_wrapper';
DO $overloads$
DECLARE
    value_type text;
    symbol text;
BEGIN
    FOR value_type, symbol IN VALUES
        ('smallint', 'hll_agg_trans_int2'), ('integer', 'hll_agg_trans_int4'),
        ('bigint', 'hll_agg_trans_int8'), ('text', 'hll_agg_trans_text'), ('uuid', 'hll_agg_trans'),
        ('character', 'hll_agg_trans'), ('"char"', 'hll_agg_trans'),
        ('pg_node_tree', 'hll_agg_trans'), ('pg_ndistinct', 'hll_agg_trans'),
        ('pg_dependencies', 'hll_agg_trans'), ('pg_mcv_list', 'hll_agg_trans')
    LOOP
        EXECUTE format($sql$
            CREATE FUNCTION hll_agg_trans(hll, %1$s) RETURNS hll
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', %2$L;
            CREATE FUNCTION hll_agg_trans(hll, %1$s, integer) RETURNS hll
                IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', %2$L;
            CREATE OR REPLACE AGGREGATE hll_agg(%1$s) (
                SFUNC = hll_agg_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_final,
                COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE hll_agg(%1$s) IS 'Sketch of the distinct non-NULL values, precision 14.';
            CREATE OR REPLACE AGGREGATE hll_agg(%1$s, integer) (
                SFUNC = hll_agg_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_final,
                COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE hll_agg(%1$s, integer) IS 'Sketch of the distinct non-NULL values at precision p (4 to 18).';
            CREATE OR REPLACE AGGREGATE approx_count_distinct(%1$s) (
                SFUNC = hll_agg_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_count_final,
                COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
            COMMENT ON AGGREGATE approx_count_distinct(%1$s) IS 'Estimated number of distinct non-NULL values (HyperLogLog, precision 14).';
            DROP FUNCTION IF EXISTS hll_agg_trans(internal, %1$s);
            DROP FUNCTION IF EXISTS hll_agg_trans(internal, %1$s, integer);
        $sql$, value_type, symbol);
    END LOOP;
END
$overloads$;
CREATE OR REPLACE AGGREGATE hll_union_agg(hll) (
    SFUNC = hll_union_trans, STYPE = hll, SSPACE = 1200, FINALFUNC = hll_final,
    COMBINEFUNC = hll_union_trans, PARALLEL = SAFE);
DROP FUNCTION hll_union_trans(internal, hll);

-- Count-Min. New in 0.2.0: overloads of the commonest key types (the list is hll_agg's).
-- cms_union_agg also loses its moving-aggregate form (subtracting what leaves a sliding frame
-- restores the counters but not the heavy-hitter list), and with it cms_union_inverse.
CREATE FUNCTION cms_union_trans(cms, cms) RETURNS cms
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_union_trans_wrapper';
CREATE FUNCTION cms_final(cms) RETURNS cms
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cms_final_wrapper';
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
CREATE OR REPLACE AGGREGATE cms_union_agg(cms) (
    SFUNC = cms_union_trans, STYPE = cms, SSPACE = 65536, FINALFUNC = cms_final,
    COMBINEFUNC = cms_union_trans, PARALLEL = SAFE);
COMMENT ON AGGREGATE cms_union_agg(cms) IS 'Union of sketches (NULLs skipped); sketches that counted nothing are neutral whatever their shape.';
DROP FUNCTION cms_union_inverse(internal, cms);
DROP FUNCTION cms_union_trans(internal, cms);

-- G-Counter and PN-Counter merges.
CREATE FUNCTION gcounter_merge_trans(gcounter, gcounter) RETURNS gcounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_trans_wrapper';
CREATE FUNCTION gcounter_merge_final(gcounter) RETURNS gcounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_final_wrapper';
CREATE OR REPLACE AGGREGATE gcounter_merge_agg(gcounter) (
    SFUNC = gcounter_merge_trans, STYPE = gcounter, SSPACE = 1300,
    FINALFUNC = gcounter_merge_final, COMBINEFUNC = gcounter_merge_trans, PARALLEL = SAFE
);
DROP FUNCTION gcounter_merge_trans(internal, gcounter), gcounter_merge_combine(internal, internal),
    gcounter_merge_serial(internal), gcounter_merge_deserial(bytea, internal),
    gcounter_merge_final(internal);
CREATE FUNCTION pncounter_merge_trans(pncounter, pncounter) RETURNS pncounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_trans_wrapper';
CREATE FUNCTION pncounter_merge_final(pncounter) RETURNS pncounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_final_wrapper';
CREATE OR REPLACE AGGREGATE pncounter_merge_agg(pncounter) (
    SFUNC = pncounter_merge_trans, STYPE = pncounter, SSPACE = 1300,
    FINALFUNC = pncounter_merge_final, COMBINEFUNC = pncounter_merge_trans, PARALLEL = SAFE
);
DROP FUNCTION pncounter_merge_trans(internal, pncounter), pncounter_merge_combine(internal, internal),
    pncounter_merge_serial(internal), pncounter_merge_deserial(bytea, internal),
    pncounter_merge_final(internal);

-- ---------------------------------------------------------------------------------------------
-- Sharded counters (shard.sql): the functions run with the owner's rights and EXECUTE is
-- granted per role, no longer to PUBLIC; backend_slot() claims the lowest free slot; the
-- roll-up removes rows an increment racing counter_drop left behind.
-- ---------------------------------------------------------------------------------------------
COMMENT ON FUNCTION backend_slot() IS 'This session''s slot number, from 0: the lowest that no other live session of this database holds, claimed on first use with a session-level advisory lock (classid 1684632436) and held while the session lives: counter_add writes slot backend_slot() % shards.';
ALTER FUNCTION counter_create(text, integer, text) SECURITY DEFINER;
ALTER FUNCTION counter_add(text, bigint) SECURITY DEFINER;
ALTER FUNCTION counter_value(text) SECURITY DEFINER;
ALTER FUNCTION counter_value_cached(text, interval) SECURITY DEFINER;
ALTER FUNCTION counter_reshard(text, integer) SECURITY DEFINER;
ALTER FUNCTION counter_drop(text) SECURITY DEFINER;
REVOKE ALL ON FUNCTION counter_create(text, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION counter_add(text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION counter_value(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION counter_value_cached(text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION counter_rollup_one(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION counter_reshard(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION counter_drop(text) FROM PUBLIC;
COMMENT ON FUNCTION counter_drop(text) IS 'Drops a sharded counter and its slot and delta rows. An increment racing the drop is dropped with the counter: it may leave a row under the old id, never counted (ids are not reused) and removed by the next counter_rollup().';

-- counter_rollup is replaced once, in its final form, with the Citus block below.

-- ---------------------------------------------------------------------------------------------
-- Outbox (outbox.sql): EXECUTE on what writes events is granted, not PUBLIC's; relay consumers
-- belong to a role, enforced by row-level security; statements pinned to pg_catalog.
-- ---------------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION outbox_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox_statement_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION outbox_emit(text, text, text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION cdc_heartbeat(text) FROM PUBLIC;
ALTER FUNCTION outbox_trigger_check(oid, boolean) SET search_path = pg_catalog, pg_temp;
-- outbox_check_new_triggers is replaced once, in its final form, further below.

-- Consumers made by 0.1.0 had no owner: they go to the role that runs this update (a
-- superuser). Hand each to its relay role with
--   UPDATE distcount.outbox_consumer SET relay_role = 'relay' WHERE consumer = '...';
ALTER TABLE outbox_consumer ADD COLUMN relay_role name NOT NULL DEFAULT CURRENT_USER;
COMMENT ON TABLE outbox_consumer IS 'Relay consumers: every event written by a transaction visible in snapshot seen is queued or done; only members of relay_role may claim, acknowledge or drop its events.';

ALTER TABLE outbox_consumer ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_dead ENABLE ROW LEVEL SECURITY;
-- By the role's OID: a dropped role must not make every reader's scan fail.
CREATE POLICY outbox_consumer_by_role ON outbox_consumer
    USING (EXISTS (SELECT FROM pg_catalog.pg_roles AS r
                    WHERE r.rolname OPERATOR(pg_catalog.=) relay_role
                      AND pg_catalog.pg_has_role(r.oid, 'USAGE')));
CREATE POLICY outbox_pending_by_role ON outbox_pending
    USING (consumer IN (SELECT c.consumer FROM distcount.outbox_consumer AS c));
CREATE POLICY outbox_dead_by_role ON outbox_dead
    USING (consumer IN (SELECT c.consumer FROM distcount.outbox_consumer AS c));

-- The role a consumer belongs to, read past row-level security so that a refusal can say so.
CREATE FUNCTION outbox_consumer_role(consumer text) RETURNS name
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT c.relay_role FROM distcount.outbox_consumer AS c WHERE c.consumer = $1 $$;
COMMENT ON FUNCTION outbox_consumer_role(text) IS 'Internal: the role whose members may use a relay consumer (NULL for a new consumer).';

CREATE OR REPLACE FUNCTION outbox_check_consumer(consumer text, batch integer DEFAULT 1, lease interval DEFAULT '1 second')
    RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role name;
BEGIN
    IF consumer IS NULL THEN
        RAISE EXCEPTION 'outbox relay: the consumer name must not be null' USING ERRCODE = '22004';
    END IF;
    IF consumer = '' THEN
        RAISE EXCEPTION 'outbox relay: the consumer name must not be empty' USING ERRCODE = '22023';
    END IF;
    IF batch IS NULL OR batch < 1 OR batch > 100000 THEN
        RAISE EXCEPTION 'outbox relay: batch must be 1 to 100000, got %', coalesce(batch::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    IF lease IS NULL OR lease <= interval '0' THEN
        RAISE EXCEPTION 'outbox relay: the lease must be a positive interval' USING ERRCODE = '22023';
    END IF;
    -- Runs as the caller: current_user is who asks.
    v_role := distcount.outbox_consumer_role(consumer);
    IF v_role IS NOT NULL
       AND NOT EXISTS (SELECT FROM pg_roles AS r
                        WHERE r.rolname = v_role AND pg_has_role(current_user, r.oid, 'USAGE')) THEN
        RAISE EXCEPTION 'permission denied for outbox consumer "%"', consumer
            USING ERRCODE = '42501',
                  DETAIL = format('The consumer belongs to role %s.', quote_ident(v_role)),
                  HINT = format('GRANT %s to the relay role, or use a consumer of its own.', quote_ident(v_role));
    END IF;
END
$$;
COMMENT ON FUNCTION outbox_check_consumer(text, integer, interval) IS 'Internal: argument checks of the relay functions.';

CREATE FUNCTION outbox_rebase_restored() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT max(o.txid) FROM distcount.outbox AS o) >= pg_snapshot_xmax(pg_current_snapshot()) THEN
        PERFORM set_config('distcount.outbox_rebasing', 'on', true);
        UPDATE distcount.outbox AS o SET txid = pg_current_xact_id()
         WHERE o.txid >= pg_snapshot_xmax(pg_current_snapshot());
        PERFORM set_config('distcount.outbox_rebasing', 'off', true);
    END IF;
END
$$;
COMMENT ON FUNCTION outbox_rebase_restored() IS 'Internal: gives outbox rows restored from another cluster a transaction id of this one.';

-- Events were queued behind the heads of these aggregates: the heads are no longer the last
-- queued of their aggregate. One probe per aggregate (outbox_ingest, outbox_retry_dead).
CREATE FUNCTION outbox_heads_have_next(consumer text, types text[], aggregates text[]) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE distcount.outbox_pending AS h SET has_next = true
      FROM unnest(types, aggregates) AS a (aggregatetype, aggregateid)
     WHERE h.consumer = outbox_heads_have_next.consumer
       AND hashtextextended(h.aggregateid, hashtext(h.aggregatetype))
           = hashtextextended(a.aggregateid, hashtext(a.aggregatetype))
       AND h.aggregatetype = a.aggregatetype AND h.aggregateid = a.aggregateid
       AND h.is_head AND NOT h.has_next;
$$;
COMMENT ON FUNCTION outbox_heads_have_next(text, text[], text[]) IS 'Internal: marks the heads of aggregates that got events queued behind them (has_next).';

CREATE OR REPLACE FUNCTION outbox_ingest(consumer text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- Index access only (the outbox by txid, the queue by aggregate): a queue whose statistics
    -- say empty would otherwise be scanned once per event queued. The caller's settings undone.
    -- The sort that finds each aggregate's first event in memory for fills of 100,000s.
    SET enable_seqscan = off SET enable_bitmapscan = on SET enable_sort = on SET jit = off
    SET enable_hashjoin = off SET enable_mergejoin = off SET work_mem = '64MB'
AS $$
#variable_conflict use_column
DECLARE
    v_consumer text := outbox_ingest.consumer;
    v_seen pg_snapshot;
    v_queued bigint;
    v_empty boolean;
    v_types text[];
    v_aggregates text[];
BEGIN
    -- One filler per consumer; a claimer that finds it busy serves what is queued, or, with
    -- nothing queued (the first fill of a large backlog), waits for the fill instead of
    -- coming back empty, and then queues what committed since.
    IF NOT pg_try_advisory_xact_lock(hashtext('distcount.outbox'), hashtext(v_consumer)) THEN
        IF EXISTS (SELECT FROM distcount.outbox_pending AS p
                    WHERE p.consumer = v_consumer AND p.is_head) THEN
            RETURN 0;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext('distcount.outbox'), hashtext(v_consumer));
    END IF;
    INSERT INTO distcount.outbox_consumer AS c (consumer) VALUES (v_consumer) ON CONFLICT DO NOTHING;
    SELECT c.seen INTO v_seen FROM distcount.outbox_consumer AS c WHERE c.consumer = v_consumer;
    PERFORM distcount.outbox_rebase_restored();
    -- A queue without heads is empty (an aggregate with events queued has a head): then no
    -- event queued needs a probe for an earlier one of its aggregate. Nothing else fills this
    -- queue meanwhile (the lock above; outbox_retry_dead takes it too).
    v_empty := NOT EXISTS (SELECT FROM distcount.outbox_pending AS p
                            WHERE p.consumer = v_consumer AND p.is_head);
    -- One statement, so the rows read and the snapshot kept are the same snapshot. Each
    -- aggregate's first event by a sort on the hash first (bigint comparisons; the text
    -- columns only break ties, bytewise).
    -- An event alone in its aggregate in this fill is queued with has_next false.
    WITH queued AS (
        INSERT INTO distcount.outbox_pending AS p (consumer, id, seq, aggregatetype, aggregateid, is_head, has_next)
        SELECT v_consumer, f.id, f.seq, f.aggregatetype, f.aggregateid,
               f.n = 1
               AND (v_empty OR NOT EXISTS (
                   SELECT FROM distcount.outbox_pending AS q
                    WHERE q.consumer = v_consumer
                      AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                          = hashtextextended(f.aggregateid, hashtext(f.aggregatetype))
                      AND q.aggregatetype = f.aggregatetype
                      AND q.aggregateid = f.aggregateid)),
               f.n > 1 OR f.more
          FROM (SELECT o.id, o.seq, o.aggregatetype, o.aggregateid,
                       row_number() OVER w AS n, lead(o.seq) OVER w IS NOT NULL AS more
                  FROM distcount.outbox AS o
                 WHERE o.txid >= pg_snapshot_xmin(v_seen) AND NOT pg_visible_in_snapshot(o.txid, v_seen)
                WINDOW w AS (PARTITION BY hashtextextended(o.aggregateid, hashtext(o.aggregatetype)),
                                          o.aggregatetype COLLATE "C", o.aggregateid COLLATE "C"
                             ORDER BY o.seq)) AS f
        RETURNING p.aggregatetype, p.aggregateid, p.is_head
    ), moved AS (
        UPDATE distcount.outbox_consumer AS c SET seen = pg_current_snapshot()
         WHERE c.consumer = v_consumer
    ), waiting AS (
        -- Aggregates that had events queued before and get more now.
        SELECT DISTINCT q.aggregatetype, q.aggregateid FROM queued AS q WHERE NOT v_empty AND NOT q.is_head
    )
    SELECT (SELECT count(*) FROM queued), (SELECT array_agg(w.aggregatetype) FROM waiting AS w),
           (SELECT array_agg(w.aggregateid) FROM waiting AS w)
      INTO v_queued, v_types, v_aggregates;
    IF v_types IS NOT NULL THEN
        PERFORM distcount.outbox_heads_have_next(v_consumer, v_types, v_aggregates);
    END IF;
    -- A fill that outgrows the queue's statistics refreshes them, so the claims and
    -- acknowledgements that follow are planned for its real size.
    IF v_queued >= 10000 AND v_queued > (SELECT greatest(c.reltuples, 0) FROM pg_class AS c
                                          WHERE c.oid = 'distcount.outbox_pending'::regclass) THEN
        PERFORM distcount.outbox_analyze_queue();
    END IF;
    RETURN v_queued;
END
$$;
COMMENT ON FUNCTION outbox_ingest(text) IS 'Internal: queues for a consumer the events committed since its last fill.';

CREATE OR REPLACE FUNCTION outbox_cleanup(older_than interval DEFAULT '7 days') RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deleted bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'outbox_cleanup: older_than must be a non-negative interval' USING ERRCODE = '22023';
    END IF;
    -- Kept: events some consumer has not queued yet, still has queued, or holds as dead letters.
    DELETE FROM distcount.outbox AS o
     WHERE o.created_at < clock_timestamp() - older_than
       AND NOT EXISTS (SELECT FROM distcount.outbox_consumer AS c
                        WHERE NOT pg_visible_in_snapshot(o.txid, c.seen))
       AND NOT EXISTS (SELECT FROM distcount.outbox_consumer AS c
                         JOIN distcount.outbox_pending AS p
                           ON p.consumer = c.consumer
                          AND hashtextextended(p.aggregateid, hashtext(p.aggregatetype))
                              = hashtextextended(o.aggregateid, hashtext(o.aggregatetype))
                          AND p.seq = o.seq AND p.id = o.id)
       AND NOT EXISTS (SELECT FROM distcount.outbox_consumer AS c
                         JOIN distcount.outbox_dead AS d ON d.consumer = c.consumer AND d.id = o.id);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END
$$;
REVOKE ALL ON FUNCTION outbox_cleanup(interval) FROM PUBLIC;
ALTER VIEW outbox_stats SET (security_invoker = true);

-- ---------------------------------------------------------------------------------------------
-- Replication (replication.sql): crdt_replicate_setup records what it creates and reuses only
-- that, and names a table's copies by its qualified name (crdt_tokyo."public.likes", was
-- crdt_tokyo.likes).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE crdt_replica_object (
    kind       text NOT NULL CHECK (kind IN ('schema', 'table', 'function')),
    name       text NOT NULL,  -- as format('%I', ...) or format('%I.%I', ...) prints it
    created_by name NOT NULL DEFAULT CURRENT_USER,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (kind, name)
);
COMMENT ON TABLE crdt_replica_object IS 'Schemas, tables and functions crdt_replicate_setup created (it reuses only these).';
SELECT pg_catalog.pg_extension_config_dump('crdt_replica_object', '');

CREATE FUNCTION crdt_replica_name(tbl regclass) RETURNS name
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        full_name text;
        cut text;
    BEGIN
        SELECT format('%I.%I', n.nspname, c.relname) INTO full_name
          FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE c.oid = tbl;
        IF octet_length(full_name) <= 63 THEN
            RETURN full_name;
        END IF;
        cut := left(full_name, 50);
        WHILE octet_length(cut) > 50 LOOP
            cut := left(cut, -1);
        END LOOP;
        RETURN cut || '~' || left(md5(full_name), 12);
    END $$;
COMMENT ON FUNCTION crdt_replica_name(regclass) IS 'Name of a table''s per-origin copies in the crdt_<origin> schemas: its qualified name (cut to 63 bytes with an MD5 suffix).';

CREATE FUNCTION crdt_replica_claim(object_kind text, schema_name text, object_name text, ddl text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        full_name text := CASE WHEN object_name IS NULL THEN format('%I', schema_name)
                               ELSE format('%I.%I', schema_name, object_name) END;
        owner oid;
        found_it boolean := true;
    BEGIN
        IF object_kind = 'schema' THEN
            SELECT n.nspowner INTO owner FROM pg_namespace AS n WHERE n.nspname = schema_name;
        ELSIF object_kind = 'table' THEN
            SELECT c.relowner INTO owner FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
             WHERE n.nspname = schema_name AND c.relname = object_name;
        ELSE
            SELECT p.proowner INTO owner FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
             WHERE n.nspname = schema_name AND p.proname = object_name;
        END IF;
        found_it := FOUND;
        IF NOT found_it THEN
            EXECUTE ddl;
            INSERT INTO distcount.crdt_replica_object (kind, name) VALUES (object_kind, full_name)
            ON CONFLICT ON CONSTRAINT crdt_replica_object_pkey
            DO UPDATE SET created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at;
        ELSIF owner <> current_user::regrole::oid
              OR NOT EXISTS (SELECT FROM distcount.crdt_replica_object AS o
                              WHERE o.kind = object_kind AND o.name = full_name) THEN
            RAISE EXCEPTION '% % already exists and was not made by crdt_replicate_setup', object_kind, full_name
                USING ERRCODE = '42710',
                      DETAIL = format('It is owned by %s.', owner::regrole),
                      HINT = 'Drop or rename it (check it first: another role may have planted it), then run the setup again.';
        END IF;
    END $$;
COMMENT ON FUNCTION crdt_replica_claim(text, text, text, text) IS 'Internal: creates an object of crdt_replicate_setup, or reuses one it made earlier; refuses anything else.';

CREATE OR REPLACE FUNCTION crdt_replicate_setup(
        tbl regclass,
        node text,
        peers text[],
        conninfo text DEFAULT NULL)
    RETURNS TABLE (run_on text, command text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        copy_name name;
        qualified text;
        origin text;
        own_table text;
        columns text;
        new_values text;
        updates text;
        key_columns text;
        trigger_fn text;
        pub name;
        hll_columns text;
    BEGIN
        IF node IS NULL OR node !~ '^[a-z][a-z0-9_]{0,39}$' THEN
            RAISE EXCEPTION 'invalid node name "%"', node
                USING ERRCODE = '22023', HINT = 'Node names are 1 to 40 characters: a lowercase letter, then lowercase letters, digits or _.';
        END IF;
        FOREACH origin IN ARRAY coalesce(peers, '{}') LOOP
            IF origin IS NULL OR origin !~ '^[a-z][a-z0-9_]{0,39}$' OR origin = node THEN
                RAISE EXCEPTION 'invalid peer name "%"', origin
                    USING ERRCODE = '22023', HINT = 'Peers are the other servers'' node names, without this one.';
            END IF;
        END LOOP;
        IF cardinality(peers) IS DISTINCT FROM (SELECT count(DISTINCT p) FROM unnest(peers) p) THEN
            RAISE EXCEPTION 'peers % name a server twice', peers USING ERRCODE = '22023';
        END IF;
        -- Fails early, with a clear message, if tbl has no primary key or no CRDT column.
        PERFORM distcount.crdt_merge_statement(tbl, tbl);

        SELECT format('%I.%I', n.nspname, c.relname) INTO qualified
          FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = tbl;
        copy_name := distcount.crdt_replica_name(tbl);
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
               string_agg('NEW.' || quote_ident(a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('%1$I = EXCLUDED.%1$I', a.attname), ', ' ORDER BY a.attnum)
          INTO columns, new_values, updates
        FROM pg_attribute a
        WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) INTO key_columns
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = tbl AND i.indisprimary;

        FOREACH origin IN ARRAY array_prepend(node, coalesce(peers, '{}')) LOOP
            PERFORM distcount.crdt_replica_claim('schema', 'crdt_' || origin, NULL,
                format('CREATE SCHEMA %I', 'crdt_' || origin));
            PERFORM distcount.crdt_replica_claim('table', 'crdt_' || origin, copy_name,
                format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)',
                       'crdt_' || origin, copy_name, qualified));
        END LOOP;

        -- This server's state: a mirror of tbl, written on local writes only. What merges
        -- bring in is not echoed on (each peer subscribes to every other: a full mesh), which
        -- keeps replication traffic to one row change per peer and increment.
        own_table := format('%I.%I', 'crdt_' || node, copy_name);
        trigger_fn := own_table;  -- a function of the mirror's name, in the mirror's schema
        PERFORM distcount.crdt_replica_claim('function', 'crdt_' || node, copy_name, format($f$
            CREATE FUNCTION %s() RETURNS trigger
            LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $body$
            BEGIN
                INSERT INTO %s AS o (%s) VALUES (%s)
                ON CONFLICT (%s) DO UPDATE SET %s;
                RETURN NULL;
            END $body$ $f$, trigger_fn, own_table, columns, new_values, key_columns, updates));
        EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_publish AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()',
                       qualified, trigger_fn);
        -- hll columns are written without a martingale count, which depends on the order of a
        -- server's writes and merges (merges use hll_crdt_merge): otherwise servers holding the
        -- same values would hold different bytes and counts.
        SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY a.attnum) INTO hll_columns
          FROM pg_attribute AS a
         WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
           AND a.atttypid = 'distcount.hll'::regtype;
        IF hll_columns IS NOT NULL THEN
            EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_hll BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION distcount.hll_crdt_canonical(%s)',
                           qualified, hll_columns);
        END IF;
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT DO NOTHING', own_table, columns, columns, qualified);

        pub := 'crdt_' || node;
        IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
            IF NOT EXISTS (SELECT 1 FROM pg_publication_rel AS pr JOIN pg_publication AS p ON p.oid = pr.prpubid
                           WHERE p.pubname = pub AND pr.prrelid = own_table::regclass) THEN
                EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', pub, own_table);
            END IF;
        ELSE
            EXECUTE format('CREATE PUBLICATION %I FOR TABLE %s', pub, own_table);
        END IF;

        -- Each peer's inbox merges into tbl.
        FOREACH origin IN ARRAY coalesce(peers, '{}') LOOP
            EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_merge AFTER INSERT OR UPDATE ON %I.%I FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into(%L)',
                           'crdt_' || origin, copy_name, qualified);
            EXECUTE format('ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER distcount_crdt_merge', 'crdt_' || origin, copy_name);
        END LOOP;

        IF conninfo IS NULL THEN
            -- The socket directory is for pg_read_all_settings only; without it, libpq's default.
            BEGIN
                conninfo := format('host=%s ', split_part(current_setting('unix_socket_directories'), ',', 1));
            EXCEPTION WHEN insufficient_privilege THEN
                conninfo := '';
            END;
            conninfo := conninfo || format('port=%s dbname=%s user=%s',
                                           current_setting('port'), current_database(), current_user);
        END IF;
        FOREACH origin IN ARRAY coalesce(peers, '{}') LOOP
            run_on := origin;
            command := format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = true)',
                              'crdt_' || origin || '_from_' || node, conninfo, pub);
            RETURN NEXT;
        END LOOP;
    END $$;
REVOKE ALL ON FUNCTION crdt_replicate_setup(regclass, text, text[], text) FROM PUBLIC;
COMMENT ON FUNCTION crdt_replicate_setup(regclass, text, text[], text) IS 'Sets up merge-on-arrival replication of tbl on this server (node) with its peers; returns the CREATE SUBSCRIPTION command to run on each peer. Run it on every server, then every returned command. Refuses schemas and tables of its names that it did not create.';

-- What 0.1.0's crdt_replicate_setup made keeps its names and goes on working: the copies
-- crdt_<origin>.<table>, the publish function crdt_<node>.<table>_publish and the triggers that
-- use them. Renaming them on one server would break replication with every peer not yet
-- upgraded (a subscription applies changes to the table of the publisher's name), and strand
-- the changes already in flight. They are recorded as made by the setup (by their owners), so
-- that a later setup (another table, another peer) reuses the crdt_<origin> schemas instead of
-- refusing them; it names new copies the 0.2.0 way. Found through the triggers 0.1.0 put on
-- them: distcount_crdt_publish on the replicated table, whose function writes the node's copy,
-- and distcount_crdt_merge on each peer's copy.
WITH publish AS (
    SELECT f.pronamespace AS schema_oid, f.oid AS function_oid, f.proowner AS function_owner,
           copy.oid AS table_oid
      FROM pg_catalog.pg_trigger AS t
      JOIN pg_catalog.pg_proc AS f ON f.oid = t.tgfoid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = f.pronamespace
      JOIN pg_catalog.pg_class AS copy ON copy.relnamespace = f.pronamespace
           AND f.proname OPERATOR(pg_catalog.=) (copy.relname OPERATOR(pg_catalog.||) '_publish')
     WHERE t.tgname OPERATOR(pg_catalog.=) 'distcount_crdt_publish'
       AND n.nspname OPERATOR(pg_catalog.~) '^crdt_[a-z][a-z0-9_]{0,39}$'
       AND copy.relkind OPERATOR(pg_catalog.=) 'r'
),
inbox AS (
    SELECT c.relnamespace AS schema_oid, c.oid AS table_oid
      FROM pg_catalog.pg_trigger AS t
      JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE t.tgname OPERATOR(pg_catalog.=) 'distcount_crdt_merge'
       AND t.tgfoid OPERATOR(pg_catalog.=) 'distcount.crdt_merge_into()'::pg_catalog.regprocedure
       AND n.nspname OPERATOR(pg_catalog.~) '^crdt_[a-z][a-z0-9_]{0,39}$'
),
found (kind, name, owner) AS (
    SELECT 'schema', pg_catalog.format('%I', n.nspname), n.nspowner
      FROM pg_catalog.pg_namespace AS n
     WHERE n.oid IN (SELECT p.schema_oid FROM publish AS p UNION SELECT i.schema_oid FROM inbox AS i)
    UNION
    SELECT 'table', pg_catalog.format('%I.%I', n.nspname, c.relname), c.relowner
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid IN (SELECT p.table_oid FROM publish AS p UNION SELECT i.table_oid FROM inbox AS i)
    UNION
    SELECT 'function', pg_catalog.format('%I.%I', n.nspname, f.proname), f.proowner
      FROM pg_catalog.pg_proc AS f JOIN pg_catalog.pg_namespace AS n ON n.oid = f.pronamespace
     WHERE f.oid IN (SELECT p.function_oid FROM publish AS p)
)
INSERT INTO crdt_replica_object (kind, name, created_by)
SELECT f.kind, f.name, pg_catalog.pg_get_userbyid(f.owner) FROM found AS f
ON CONFLICT DO NOTHING;

-- cms values are stored uncompressed from now on (STORAGE external), so that a point query
-- (cms_estimate, cms_bounds, cms_exceeds, cms_total) reads its few counters by TOAST slices
-- instead of the whole value. Columns that exist keep the storage they were created with; see
-- the README ("Point queries on stored sketches") for the one ALTER TABLE that switches one.
ALTER TYPE cms SET (STORAGE = external);
COMMENT ON FUNCTION cms_topk(cms, integer) IS 'The k heaviest keys of the heavy-hitter list, with bounds; guaranteed when the bounds prove the key is in the top k. An error when k exceeds what the list holds.';

-- ---------------------------------------------------------------------------------------------
-- Issue 17 (hll.sql): values equal under SQL equality hash alike (numeric, float, interval,
-- jsonb, citext, ...; see docs/design-notes.md: sketches of those types built at 0.1.0 used
-- the old hashes), and postgresql-hll's values import as sketches of their own hash family.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION hll_from_postgresql_hll(bytea) RETURNS hll
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_from_postgresql_hll_wrapper';
COMMENT ON FUNCTION hll_from_postgresql_hll(bytea) IS 'Imports a postgresql-hll value (call it on col::text::bytea): same count as its #; unions only with other imported sketches.';
CREATE FUNCTION hll_to_postgresql_hll(hll) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_to_postgresql_hll_wrapper';
COMMENT ON FUNCTION hll_to_postgresql_hll(hll) IS 'The postgresql-hll bytes of an imported sketch (cast them to its hll type); an error for a native sketch.';

-- The relay plans for a queue whose statistics lag (outbox_analyze_queue; it and
-- outbox_ingest go again with the window relay below, which defines the relay functions in
-- their final form).
CREATE OR REPLACE FUNCTION outbox_analyze_queue() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    ANALYZE distcount.outbox_pending;
END
$$;
COMMENT ON FUNCTION outbox_analyze_queue() IS 'Internal: refreshes the statistics of the relay queues after a large fill.';

-- ---------------------------------------------------------------------------------------------
-- Sharded counters on Citus (issue 16): slot and delta rows carry the counter's name, every
-- statement names its counter (so that Citus routes it to the counter's shard), the counter
-- functions refuse to run on a Citus node before distcount.citus_setup(), which distributes the
-- tables by name. Rows of dropped counters (never counted) go.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE counter_slot ADD COLUMN name text;
ALTER TABLE counter_delta ADD COLUMN name text;
UPDATE counter_slot AS s SET name = c.name FROM counter AS c WHERE c.id = s.id;
UPDATE counter_delta AS d SET name = c.name FROM counter AS c WHERE c.id = d.id;
DELETE FROM counter_slot WHERE name IS NULL;
DELETE FROM counter_delta WHERE name IS NULL;
ALTER TABLE counter_slot ALTER COLUMN name SET NOT NULL;
ALTER TABLE counter_delta ALTER COLUMN name SET NOT NULL;
DROP FUNCTION counter_rollup_one(bigint);
CREATE FUNCTION counter_on_citus() RETURNS boolean
    STABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'counter_on_citus_wrapper';
COMMENT ON FUNCTION counter_on_citus() IS 'Whether the sharded counter tables are distributed by Citus: false without Citus, true after distcount.citus_setup(); raises 55000 on a Citus node before citus_setup() (counters written there would be a separate count per node).';

-- On a Citus node holding the counter's shard: the write straight into the shard tables
-- (src/shard/citus_direct.rs); false where counter_add must take the routed path.
CREATE FUNCTION counter_add_direct(name text, delta bigint, slot integer) RETURNS boolean
    VOLATILE STRICT PARALLEL UNSAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'counter_add_direct_wrapper';
REVOKE ALL ON FUNCTION counter_add_direct(text, bigint, integer) FROM PUBLIC;
COMMENT ON FUNCTION counter_add_direct(text, bigint, integer) IS 'Part of counter_add on Citus: when this node holds the counter''s shard (its metadata lock taken in share mode, as Citus''s router writes take it, and the placement read after it), adds delta to slot slot % shards in the shard tables directly and returns true; false, having written nothing, when the shard is elsewhere, the counter does not exist or is in mode deltas, or the transaction is not READ COMMITTED.';

-- For applications that connect each increment to its counter's node: there counter_add
-- writes the shard tables directly, at a fraction of a routed write's cost (README, Sharded
-- counters on Citus). A name needs no counter: it is where counter_add would create it. As
-- the owner: Citus's shard lookup asks for SELECT on distcount.counter.
CREATE FUNCTION counter_node(name text, OUT nodename text, OUT nodeport integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM distcount.counter_check_name(counter_node.name);
        IF NOT distcount.counter_on_citus() THEN
            RAISE EXCEPTION 'distcount.counter_node() needs Citus'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Without Citus every counter is on this server.';
        END IF;
        SELECT n.nodename, n.nodeport INTO counter_node.nodename, counter_node.nodeport
          FROM pg_catalog.pg_dist_placement p
          JOIN pg_catalog.pg_dist_node n ON n.groupid OPERATOR(pg_catalog.=) p.groupid
         WHERE p.shardid OPERATOR(pg_catalog.=)
                   pg_catalog.get_shard_id_for_distribution_column('distcount.counter', counter_node.name)
           AND n.noderole OPERATOR(pg_catalog.=) 'primary'
         ORDER BY n.nodeid
         LIMIT 1;
    END $$;
REVOKE ALL ON FUNCTION counter_node(text) FROM PUBLIC;
COMMENT ON FUNCTION counter_node(text) IS 'On Citus: the host and port of the worker that holds counter name''s shard (where counter_add writes directly); 55000 without Citus.';

CREATE OR REPLACE FUNCTION counter_create(name text, shards integer DEFAULT 16, mode text DEFAULT 'slots') RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM distcount.counter_check_name(counter_create.name);
        PERFORM distcount.counter_check_shards(counter_create.shards);
        PERFORM distcount.counter_on_citus();
        IF counter_create.mode IS NULL THEN
            RAISE EXCEPTION 'counter mode must not be NULL' USING ERRCODE = 'null_value_not_allowed';
        ELSIF counter_create.mode NOT IN ('slots', 'deltas') THEN
            RAISE EXCEPTION 'unknown counter mode "%"', counter_create.mode
                USING ERRCODE = 'invalid_parameter_value', HINT = 'The modes are slots and deltas.';
        END IF;
        INSERT INTO distcount.counter AS c (name, mode, shards)
        VALUES (counter_create.name, counter_create.mode, counter_create.shards)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter "%" already exists', counter_create.name USING ERRCODE = 'duplicate_object';
        END IF;
    END $$;
REVOKE ALL ON FUNCTION counter_create(text, integer, text) FROM PUBLIC;
COMMENT ON FUNCTION counter_create(text, integer, text) IS 'Creates a sharded counter: shards 1..1024; mode slots (N slot rows updated in place) or deltas (append-only rows folded by counter_rollup).';

-- Point lookups only: PL/pgSQL keeps a session's generic plan, and one made while the tables
-- were nearly empty (a seq scan) would stay in use as they grow to millions of rows (found
-- when one statement auto-created a million counters), so the functions that look up one counter pin
-- enable_seqscan = off.
--
-- The hot path: one primary-key lookup of the counter, then one upsert of one slot row (or one
-- insert of a delta row). The slot is this backend's dense slot number modulo the shard count.
CREATE OR REPLACE FUNCTION counter_add(name text, delta bigint DEFAULT 1) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off
    AS $$
    DECLARE
        k record;
        v_slot integer;
        v_citus boolean;
    BEGIN
        IF counter_add.name IS NULL OR counter_add.name = '' THEN
            PERFORM distcount.counter_check_name(counter_add.name);
        END IF;
        IF counter_add.delta IS NULL THEN
            RAISE EXCEPTION 'counter delta must not be NULL' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        v_citus := distcount.counter_on_citus();
        v_slot := distcount.backend_slot();
        -- On the Citus node holding the counter: the shard tables directly (a routed write
        -- costs twice the CPU of the write itself).
        IF v_citus AND distcount.counter_add_direct(counter_add.name, counter_add.delta, v_slot) THEN
            RETURN;
        END IF;
        IF v_citus AND pg_trigger_depth() > 0 THEN
            PERFORM distcount.citus_check_trigger_write(counter_add.name);
        END IF;
        -- The common case in one statement on a plain node. Not on Citus: it plans an
        -- INSERT ... SELECT afresh on every call (a third of the call's CPU, measured), where the
        -- lookup and the upsert below are two fast-path router queries whose plans it caches.
        IF NOT v_citus THEN
            INSERT INTO distcount.counter_slot AS s (id, slot, value, name)
            SELECT c.id, v_slot % c.shards, counter_add.delta, c.name
              FROM distcount.counter c
             WHERE c.name = counter_add.name AND c.mode = 'slots'
            ON CONFLICT ON CONSTRAINT counter_slot_pkey DO UPDATE SET value = s.value + EXCLUDED.value;
            IF FOUND THEN
                RETURN;
            END IF;
        END IF;
        SELECT c.id, c.mode, c.shards INTO k FROM distcount.counter c WHERE c.name = counter_add.name;
        IF NOT FOUND THEN
            -- First use: create it with the default shard count. A concurrent creator wins the
            -- race harmlessly (the no-op update only makes the row visible to RETURNING; it
            -- sets mode, as Citus allows no update of the distribution column name).
            INSERT INTO distcount.counter AS c (name, mode, shards)
            VALUES (counter_add.name, 'slots', distcount.counter_default_shards())
            ON CONFLICT ON CONSTRAINT counter_name_key DO UPDATE SET mode = c.mode
            RETURNING c.id, c.mode, c.shards INTO k;
        END IF;
        IF k.mode = 'slots' THEN
            -- Overflow of one slot raises 22003 (bigint out of range). The constraint is named,
            -- not its columns: citus_setup() adds name to the key.
            INSERT INTO distcount.counter_slot AS s (id, slot, value, name)
            VALUES (k.id, v_slot % k.shards, counter_add.delta, counter_add.name)
            ON CONFLICT ON CONSTRAINT counter_slot_pkey DO UPDATE SET value = s.value + EXCLUDED.value;
        ELSE
            INSERT INTO distcount.counter_delta (id, delta, name) VALUES (k.id, counter_add.delta, counter_add.name);
        END IF;
    END $$;
REVOKE ALL ON FUNCTION counter_add(text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION counter_add(text, bigint) IS 'Adds delta (negative allowed) to a sharded counter, creating it with pg_distcount.default_shards shards if it does not exist; writes only this backend''s slot row (or one delta row).';

CREATE OR REPLACE FUNCTION counter_value(name text) RETURNS bigint
    LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off
    AS $$
    DECLARE
        total numeric;
    BEGIN
        PERFORM distcount.counter_check_name(counter_value.name);
        PERFORM distcount.counter_on_citus();
        -- One statement: on Citus each statement sent to a worker takes its own snapshot, and a
        -- roll-up committing between a read of the base and a read of the slots would hide the
        -- folded values (seen as a counter short of its rows after a load in citus_counters.sh).
        SELECT c.base
               + coalesce((SELECT sum(s.value) FROM distcount.counter_slot s
                            WHERE s.name = counter_value.name AND s.id = c.id), 0)
               + coalesce((SELECT sum(d.delta) FROM distcount.counter_delta d
                            WHERE d.name = counter_value.name AND d.id = c.id), 0)
          INTO total
          FROM distcount.counter c WHERE c.name = counter_value.name;
        IF NOT FOUND THEN
            RETURN NULL;
        ELSIF total NOT BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
            RAISE EXCEPTION 'value of counter "%" is out of range for type bigint', counter_value.name
                USING ERRCODE = 'numeric_value_out_of_range', DETAIL = format('The sum is %s.', total);
        END IF;
        RETURN total;
    END $$;
REVOKE ALL ON FUNCTION counter_value(text) FROM PUBLIC;
COMMENT ON FUNCTION counter_value(text) IS 'Exact value of a sharded counter in the caller''s snapshot (base + slots + unrolled deltas); NULL for a counter that does not exist.';

-- The cache is the counter's own row (cached_value, cached_at), written only by counter_rollup
-- (the background worker, pg_cron or a manual call): shared by every session, and a fresh hit
-- costs one primary-key lookup. A stale or missing cache falls back to the exact sum; this
-- function itself never writes, so reads never create a hot row.
CREATE OR REPLACE FUNCTION counter_value_cached(name text, max_age interval DEFAULT '1 second') RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off
    AS $$
    DECLARE
        k record;
    BEGIN
        PERFORM distcount.counter_check_name(counter_value_cached.name);
        PERFORM distcount.counter_on_citus();
        IF max_age IS NULL THEN
            RAISE EXCEPTION 'max_age must not be NULL' USING ERRCODE = 'null_value_not_allowed';
        ELSIF max_age < interval '0' THEN
            RAISE EXCEPTION 'max_age must not be negative' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT c.cached_value, c.cached_at INTO k FROM distcount.counter c WHERE c.name = counter_value_cached.name;
        IF NOT FOUND THEN
            RETURN NULL;
        ELSIF k.cached_at >= clock_timestamp() - max_age THEN
            RETURN k.cached_value;
        END IF;
        RETURN distcount.counter_value(counter_value_cached.name);
    END $$;
REVOKE ALL ON FUNCTION counter_value_cached(text, interval) FROM PUBLIC;
COMMENT ON FUNCTION counter_value_cached(text, interval) IS 'Value of a sharded counter no older than max_age: the value cached in distcount.counter by the last roll-up if it is fresh enough, else the exact value. Never writes.';

CREATE FUNCTION counter_rollup_one(name text, id bigint) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off
    AS $$
    DECLARE
        k record;
        rows_folded bigint;
        folded numeric;
        taken timestamptz;
        new_base numeric;
        new_value numeric;
    BEGIN
        SELECT c.mode, c.shards INTO k FROM distcount.counter c
         WHERE c.name = counter_rollup_one.name AND c.id = counter_rollup_one.id
           FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN 0;  -- dropped, or another roll-up, reshard or drop of it is running
        END IF;
        IF k.mode = 'slots' THEN
            -- Rows a writer holds are skipped (they are folded next time); slots beyond the
            -- shard count (left by a concurrent writer during a reshard down) are deleted.
            WITH l AS (
                SELECT s.slot, s.value FROM distcount.counter_slot s
                 WHERE s.name = counter_rollup_one.name AND s.id = counter_rollup_one.id
                   AND (s.value <> 0 OR s.slot >= k.shards)
                   FOR UPDATE SKIP LOCKED),
            z AS (
                UPDATE distcount.counter_slot s SET value = 0 FROM l
                 WHERE s.name = counter_rollup_one.name AND s.id = counter_rollup_one.id
                   AND s.slot = l.slot AND l.slot < k.shards
                RETURNING l.value),
            d AS (
                DELETE FROM distcount.counter_slot s USING l
                 WHERE s.name = counter_rollup_one.name AND s.id = counter_rollup_one.id
                   AND s.slot = l.slot AND l.slot >= k.shards
                RETURNING l.value)
            SELECT count(*), coalesce(sum(x.value), 0) INTO rows_folded, folded
              FROM (SELECT z.value FROM z UNION ALL SELECT d.value FROM d) x;
        ELSE
            WITH d AS (
                DELETE FROM distcount.counter_delta x
                 WHERE x.name = counter_rollup_one.name
                   AND x.ctid = ANY (ARRAY(SELECT y.ctid FROM distcount.counter_delta y
                                            WHERE y.name = counter_rollup_one.name AND y.id = counter_rollup_one.id
                                              FOR UPDATE SKIP LOCKED))
                RETURNING x.delta)
            SELECT count(*), coalesce(sum(d.delta), 0) INTO rows_folded, folded FROM d;
        END IF;
        -- The cache's time is taken before the snapshot that computes its value.
        taken := clock_timestamp();
        SELECT c.base + folded,
               c.base + folded
               + coalesce((SELECT sum(s.value) FROM distcount.counter_slot s
                            WHERE s.name = counter_rollup_one.name AND s.id = c.id), 0)
               + coalesce((SELECT sum(d.delta) FROM distcount.counter_delta d
                            WHERE d.name = counter_rollup_one.name AND d.id = c.id), 0)
          INTO new_base, new_value
          FROM distcount.counter c WHERE c.name = counter_rollup_one.name AND c.id = counter_rollup_one.id;
        IF new_base NOT BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
            RAISE EXCEPTION 'value of counter "%" is out of range for type bigint', counter_rollup_one.name
                USING ERRCODE = 'numeric_value_out_of_range', DETAIL = format('The rolled-up base would be %s.', new_base);
        END IF;
        UPDATE distcount.counter c
           SET base = new_base,
               cached_value = CASE WHEN new_value BETWEEN -9223372036854775808 AND 9223372036854775807
                                   THEN new_value END,
               cached_at = CASE WHEN new_value BETWEEN -9223372036854775808 AND 9223372036854775807
                                THEN taken END,
               last_rollup = taken
         WHERE c.name = counter_rollup_one.name AND c.id = counter_rollup_one.id;
        RETURN rows_folded;
    END $$;
REVOKE ALL ON FUNCTION counter_rollup_one(text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION counter_rollup_one(text, bigint) IS 'Rolls up one counter by name and id (see counter_rollup); returns the slot and delta rows folded, 0 when another roll-up of it is running.';

CREATE OR REPLACE FUNCTION counter_rollup(name text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        k record;
        total bigint := 0;
    BEGIN
        PERFORM distcount.counter_on_citus();
        IF counter_rollup.name IS NOT NULL THEN
            SELECT c.id INTO k FROM distcount.counter c WHERE c.name = counter_rollup.name;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'counter "%" does not exist', counter_rollup.name USING ERRCODE = 'undefined_object';
            END IF;
            RETURN distcount.counter_rollup_one(counter_rollup.name, k.id);
        END IF;
        -- Rows of dropped counters: a counter_add that read the counter before a concurrent
        -- counter_drop committed writes its row after the drop's delete. Such an increment is
        -- dropped with its counter (ids are never reused, so it was never counted); here its row
        -- goes. A row is visible only once its writer committed, and a counter row is never
        -- visible after its slot and delta rows, so a row without one is an orphan for good.
        DELETE FROM distcount.counter_slot AS s
         WHERE NOT EXISTS (SELECT FROM distcount.counter AS c WHERE c.name = s.name AND c.id = s.id);
        DELETE FROM distcount.counter_delta AS d
         WHERE NOT EXISTS (SELECT FROM distcount.counter AS c WHERE c.name = d.name AND c.id = d.id);
        -- Every counter with something to fold, or whose cache is older than its data. One
        -- counter's failure (say, overflow) is reported and does not stop the others.
        FOR k IN
            SELECT c.id, c.name FROM distcount.counter c
             WHERE EXISTS (SELECT FROM distcount.counter_slot s
                            WHERE s.name = c.name AND s.id = c.id AND (s.value <> 0 OR s.slot >= c.shards))
                OR EXISTS (SELECT FROM distcount.counter_delta d WHERE d.name = c.name AND d.id = c.id)
                OR c.cached_at IS NULL
             ORDER BY c.id
        LOOP
            BEGIN
                total := total + distcount.counter_rollup_one(k.name, k.id);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'roll-up of counter "%" failed: %', k.name, SQLERRM;
            END;
        END LOOP;
        RETURN total;
    END $$;
REVOKE ALL ON FUNCTION counter_rollup(text) FROM PUBLIC;
COMMENT ON FUNCTION counter_rollup(text) IS 'Folds slot values and delta rows into the counter''s base and refreshes its cached value, skipping rows a writer holds (never waits); NULL rolls up every counter. At most one roll-up per counter at a time (row lock, SKIP LOCKED). Returns the rows folded.';

CREATE OR REPLACE FUNCTION counter_reshard(name text, shards integer) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off
    AS $$
    DECLARE
        k record;
        folded numeric;
    BEGIN
        PERFORM distcount.counter_check_name(counter_reshard.name);
        PERFORM distcount.counter_check_shards(counter_reshard.shards);
        PERFORM distcount.counter_on_citus();
        SELECT c.id INTO k FROM distcount.counter c WHERE c.name = counter_reshard.name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter "%" does not exist', counter_reshard.name USING ERRCODE = 'undefined_object';
        END IF;
        -- Waits for a running roll-up of this counter; roll-ups skip it until we commit.
        SELECT c.id, c.mode, c.shards INTO k FROM distcount.counter c
         WHERE c.name = counter_reshard.name AND c.id = k.id FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter "%" does not exist', counter_reshard.name USING ERRCODE = 'undefined_object';
        END IF;
        -- Going down folds the slots beyond the new count into the base (waiting for their
        -- writers, so nothing is lost). A writer that still uses the old count afterwards
        -- recreates such a slot: reads sum every slot row, and the next roll-up folds it.
        IF k.mode = 'slots' AND counter_reshard.shards < k.shards THEN
            WITH d AS (
                DELETE FROM distcount.counter_slot s
                 WHERE s.name = counter_reshard.name AND s.id = k.id AND s.slot >= counter_reshard.shards
                RETURNING s.value)
            SELECT coalesce(sum(d.value), 0) INTO folded FROM d;
            UPDATE distcount.counter c SET base = (c.base + folded)::bigint, cached_at = NULL
             WHERE c.name = counter_reshard.name AND c.id = k.id;
        END IF;
        UPDATE distcount.counter c SET shards = counter_reshard.shards
         WHERE c.name = counter_reshard.name AND c.id = k.id;
    END $$;
REVOKE ALL ON FUNCTION counter_reshard(text, integer) FROM PUBLIC;
COMMENT ON FUNCTION counter_reshard(text, integer) IS 'Changes a counter''s shard count (1..1024), up or down; exact under concurrent counter_add.';

CREATE OR REPLACE FUNCTION counter_drop(name text) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off
    AS $$
    DECLARE
        k record;
    BEGIN
        PERFORM distcount.counter_check_name(counter_drop.name);
        PERFORM distcount.counter_on_citus();
        SELECT c.id INTO k FROM distcount.counter c WHERE c.name = counter_drop.name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter "%" does not exist', counter_drop.name USING ERRCODE = 'undefined_object';
        END IF;
        -- The first waits for a running roll-up of it.
        DELETE FROM distcount.counter c WHERE c.name = counter_drop.name AND c.id = k.id;
        DELETE FROM distcount.counter_slot s WHERE s.name = counter_drop.name AND s.id = k.id;
        DELETE FROM distcount.counter_delta d WHERE d.name = counter_drop.name AND d.id = k.id;
    END $$;
REVOKE ALL ON FUNCTION counter_drop(text) FROM PUBLIC;
COMMENT ON FUNCTION counter_drop(text) IS 'Drops a sharded counter and its slot and delta rows. An increment racing the drop is dropped with the counter: it may leave a row under the old id, never counted (ids are not reused) and removed by the next counter_rollup().';

CREATE OR REPLACE VIEW counters AS
SELECT c.name, c.mode, c.shards,
       (c.base + coalesce(s.total, 0) + coalesce(d.total, 0))::bigint AS value,
       s.n AS slot_rows, d.n AS delta_rows, c.last_rollup, c.cached_value, c.cached_at
  FROM distcount.counter c
 CROSS JOIN LATERAL (SELECT count(*) AS n, sum(x.value) AS total
                       FROM distcount.counter_slot x WHERE x.name = c.name AND x.id = c.id) s
 CROSS JOIN LATERAL (SELECT count(*) AS n, sum(x.delta) AS total
                       FROM distcount.counter_delta x WHERE x.name = c.name AND x.id = c.id) d;
COMMENT ON VIEW counters IS 'Sharded counters: name, mode, shards, exact value, slot and unrolled delta rows, last roll-up, cached value.';

CREATE FUNCTION citus_prepare_node() RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
            RAISE EXCEPTION 'Citus is not installed in database "%"', current_database()
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        -- Extension tables are not Citus's to propagate: each node changes its own copy.
        PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
        -- (Separate statements: a query on the tables once they are distributed would be
        -- planned by Citus, here on a worker.)
        IF (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g) OPERATOR(pg_catalog.<>) 0
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                            WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter'::regclass) THEN
            IF EXISTS (SELECT FROM distcount.counter) OR EXISTS (SELECT FROM distcount.counter_slot)
               OR EXISTS (SELECT FROM distcount.counter_delta) THEN
                RAISE EXCEPTION 'worker database "%" holds sharded counters of its own', current_database()
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = 'They were written on this worker before distcount.citus_setup() and would be hidden by the distributed tables.',
                          HINT = 'Move them to the coordinator (counter_add there) and delete them on the worker, then call distcount.citus_setup() again.';
            END IF;
        END IF;
        IF EXISTS (SELECT FROM pg_catalog.pg_constraint k
                    WHERE k.conrelid OPERATOR(pg_catalog.=) 'distcount.counter'::regclass
                      AND k.conname OPERATOR(pg_catalog.=) 'counter_pkey') THEN
            ALTER TABLE distcount.counter REPLICA IDENTITY USING INDEX counter_name_key;
            ALTER TABLE distcount.counter DROP CONSTRAINT counter_pkey;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k
                        WHERE k.conrelid OPERATOR(pg_catalog.=) 'distcount.counter_slot'::regclass
                          AND k.conname OPERATOR(pg_catalog.=) 'counter_slot_pkey'
                          AND pg_catalog.array_length(k.conkey, 1) OPERATOR(pg_catalog.=) 3) THEN
            ALTER TABLE distcount.counter_slot DROP CONSTRAINT counter_slot_pkey,
                ADD CONSTRAINT counter_slot_pkey PRIMARY KEY (id, slot, name);
        END IF;
        IF (SELECT c.relreplident FROM pg_catalog.pg_class c
             WHERE c.oid OPERATOR(pg_catalog.=) 'distcount.counter_delta'::regclass) OPERATOR(pg_catalog.<>) 'f' THEN
            ALTER TABLE distcount.counter_delta REPLICA IDENTITY FULL;
        END IF;
    END $$;
REVOKE ALL ON FUNCTION citus_prepare_node() FROM PUBLIC;
COMMENT ON FUNCTION citus_prepare_node() IS 'Part of citus_setup(), run on every node: gives this node''s counter tables the keys Citus needs (name in every unique key, a replica identity). Idempotent.';

CREATE FUNCTION citus_setup(shard_count integer DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        r record;
        nodes integer;
        shards integer;
    BEGIN
        IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
            RAISE EXCEPTION 'Citus is not installed in database "%"', current_database()
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Without Citus the sharded counters need no setup.';
        ELSIF (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g) OPERATOR(pg_catalog.<>) 0 THEN
            RAISE EXCEPTION 'distcount.citus_setup() runs on the coordinator'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Connect to the coordinator and call it there.';
        ELSIF citus_setup.shard_count IS NOT NULL AND citus_setup.shard_count NOT BETWEEN 1 AND 64000 THEN
            RAISE EXCEPTION 'shard count % is out of range', citus_setup.shard_count
                USING ERRCODE = 'invalid_parameter_value', DETAIL = 'Citus takes 1 to 64000 shards.';
        END IF;
        PERFORM distcount.citus_prepare_node();
        FOR r IN SELECT * FROM pg_catalog.run_command_on_workers('SELECT distcount.citus_prepare_node()') LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'preparing the counter tables on worker %:% failed: %', r.nodename, r.nodeport, r.result
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = 'CREATE EXTENSION pg_distcount on the coordinator propagates it to the workers; check that the worker has it, then call distcount.citus_setup() again.';
            END IF;
        END LOOP;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                        WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter'::regclass) THEN
            PERFORM pg_catalog.create_distributed_table('distcount.counter', 'name',
                shard_count => coalesce(citus_setup.shard_count, pg_catalog.current_setting('citus.shard_count')::integer));
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                        WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter_slot'::regclass) THEN
            PERFORM pg_catalog.create_distributed_table('distcount.counter_slot', 'name', colocate_with => 'distcount.counter');
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                        WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter_delta'::regclass) THEN
            PERFORM pg_catalog.create_distributed_table('distcount.counter_delta', 'name', colocate_with => 'distcount.counter');
        END IF;
        -- The counter functions are not delegated with create_distributed_function(): Citus
        -- 13.2.2 crashes the backend (segfault) when a delegated function is called with a
        -- NULL distribution argument. They run where they are called, and every statement in
        -- them names its counter, so Citus routes it to the counter's shard.
        SELECT count(*) INTO nodes FROM pg_catalog.pg_dist_node n
         WHERE n.noderole OPERATOR(pg_catalog.=) 'primary' AND n.shouldhaveshards AND n.isactive;
        SELECT count(*) INTO shards FROM pg_catalog.pg_dist_shard s
         WHERE s.logicalrelid OPERATOR(pg_catalog.=) 'distcount.counter'::regclass;
        RETURN format('sharded counters distributed by name: %s shards on %s nodes', shards, nodes);
    END $$;
REVOKE ALL ON FUNCTION citus_setup(integer) FROM PUBLIC;
COMMENT ON FUNCTION citus_setup(integer) IS 'On a Citus coordinator: distributes distcount.counter, counter_slot and counter_delta by counter name, co-located (shard_count shards, default citus.shard_count), so that every statement of the counter functions is routed to the counter''s shard. Call it once after CREATE EXTENSION pg_distcount, and again after adding nodes. Idempotent.';

-- In a trigger on a shard of a distributed table, Citus lets a statement reach shards on the
-- same node only; a counter elsewhere would fail with Citus's "cannot execute a distributed
-- query from a query on a shard". Said here, with the supported way.
CREATE FUNCTION citus_check_trigger_write(name text) RETURNS void
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        here integer := (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g);
    BEGIN
        IF here OPERATOR(pg_catalog.=) 0 OR EXISTS (
            SELECT FROM pg_catalog.pg_dist_placement p
             WHERE p.shardid OPERATOR(pg_catalog.=)
                   pg_catalog.get_shard_id_for_distribution_column('distcount.counter', citus_check_trigger_write.name)
               AND p.groupid OPERATOR(pg_catalog.=) here) THEN
            RETURN;
        END IF;
        RAISE EXCEPTION 'counter "%" is on another node than this trigger', citus_check_trigger_write.name
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'On Citus a trigger on a distributed table runs on the worker holding the row''s shard, and can write only counters whose shard is on that node.',
                  HINT = 'Name the counter after the row''s distribution value in a table distributed by a text column with colocate_with => ''distcount.counter'' (README, Citus), or call counter_add from the application.';
    END $$;
REVOKE ALL ON FUNCTION citus_check_trigger_write(text) FROM PUBLIC;
COMMENT ON FUNCTION citus_check_trigger_write(text) IS 'Raises 0A000 when counter_add runs in a trigger on a Citus worker and the counter''s shard is on another node.';

-- The outbox on Citus (issue 16): on a distributed or reference table one placement writes each event.
-- On Citus an outbox trigger fires on every placement of a shard that a change writes: once for
-- a distributed table (one placement per shard), once per node for a reference table (a
-- replica on every node, all written in one distributed transaction). Exactly one of them
-- writes the event: the placement in the lowest node group, into that node's outbox (or WAL),
-- with the settings of the session that runs the change there. Asked once per trigger and
-- session (again after a relcache invalidation, which Citus sends when placements change).
CREATE FUNCTION outbox_citus_emits(rel regclass) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_shard bigint;
    v_placements bigint;
    v_lowest integer;
BEGIN
    -- A plain table, or the shell of a Citus table on the coordinator (which holds no rows).
    IF NOT pg_catalog.relation_is_a_known_shard(rel) THEN
        RETURN true;
    END IF;
    -- A shard is named after its table and shard id: orders_102008. (From the regclass's name:
    -- Citus hides shards from queries on pg_class in application sessions.)
    v_shard := (pg_catalog.regexp_match(rel::text, '_([0-9]+)"?$'))[1]::bigint;
    SELECT pg_catalog.count(*), pg_catalog.min(p.groupid) INTO v_placements, v_lowest
      FROM pg_catalog.pg_dist_placement AS p WHERE p.shardid OPERATOR(pg_catalog.=) v_shard;
    -- A shard with one placement (a distributed table's) is where its change happens: it
    -- writes, whatever this node's metadata says. (Right after a shard move a write can reach
    -- the new placement before the move's metadata is visible here, which still names the old
    -- node: the lowest-group rule lost that event.) Of replicas (a reference table's), the
    -- placement in the lowest node group writes.
    RETURN v_placements OPERATOR(pg_catalog.<=) 1
        OR v_lowest OPERATOR(pg_catalog.=) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group AS g);
END
$$;
COMMENT ON FUNCTION outbox_citus_emits(regclass) IS 'Internal: whether an outbox trigger firing on this relation writes the event (on Citus: a distributed table''s one placement; of a reference table''s replicas, the one in the lowest node group).';

-- Fires on every CREATE TRIGGER in the database, by any role: it must not need USAGE on schema
-- distcount (a role without it creating an unrelated trigger must succeed), so it finds outbox
-- triggers through the catalogs alone and calls into distcount only for them (whose creator
-- needed USAGE and EXECUTE to name the function).
CREATE OR REPLACE FUNCTION outbox_check_new_triggers() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT tg.oid, tg.tgrelid, p.proname = 'outbox_statement_trigger' AS statement_form
          FROM pg_event_trigger_ddl_commands() AS c
          JOIN pg_trigger AS tg ON tg.oid = c.objid
          JOIN pg_proc AS p ON p.oid = tg.tgfoid
          JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE c.classid = 'pg_catalog.pg_trigger'::regclass
           AND n.nspname = 'distcount'
           AND p.proname IN ('outbox_trigger', 'outbox_statement_trigger')
    LOOP
        PERFORM distcount.outbox_trigger_check(t.oid, t.statement_form);
    END LOOP;
END
$$;
COMMENT ON FUNCTION outbox_check_new_triggers() IS 'Internal: event trigger function checking new outbox triggers.';

-- Issue 17, accuracy: dense sketches built by insertions keep a martingale count (hll format
-- version 3); the interval of hll_estimate follows the estimator.
COMMENT ON FUNCTION hll_estimate(hll, float8) IS 'Estimate with a two-sided confidence interval (normal; in dense form standard error sqrt(ln 2/m) for a sketch built by insertions alone, 1.04/sqrt(m) after a union).';

-- Issue 18 (topk.sql): frequent items, the type topk with its functions and aggregates (all
-- new; the same statements as src/topk/topk.sql).
-- ---------------------------------------------------------------------------------------------

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
-- The relay over a Citus cluster. Outbox triggers on distributed and reference tables write
-- each event on the node that holds the changed row (see outbox_citus_emits), so a cluster's
-- events are in the outboxes of all its nodes. These functions, called on any node (usually the
-- coordinator), run the relay functions on every active node through Citus's
-- run_command_on_all_nodes, each node in a transaction of its own and as the calling role,
-- which needs the same grants on every node. Order per aggregate holds among the events of one
-- node; an aggregate whose rows moved to another node (a shard move) has its older events on the
-- old node, and nothing orders them against the new node's.

-- An ERROR (55000) where Citus is not installed.
CREATE FUNCTION outbox_require_citus() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regproc('pg_catalog.run_command_on_all_nodes') IS NULL THEN
        RAISE EXCEPTION 'the cluster relay needs Citus'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Without Citus call outbox_claim, outbox_ack and outbox_nack.';
    END IF;
END
$$;
COMMENT ON FUNCTION outbox_require_citus() IS 'Internal: raises 55000 where Citus is not installed.';

-- The nodes' results of COMMAND; a node that failed is a WARNING, and an ERROR when every node
-- failed (a wrong consumer or a missing grant fails everywhere alike). It runs COMMAND as the
-- calling role, which Citus's run_command_on_all_nodes (executable by every role) does as well.
CREATE FUNCTION outbox_on_all_nodes(command text) RETURNS SETOF text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_ok boolean := false;
    v_error text;
BEGIN
    PERFORM distcount.outbox_require_citus();
    FOR r IN SELECT * FROM pg_catalog.run_command_on_all_nodes(outbox_on_all_nodes.command) LOOP
        IF r.success THEN
            v_ok := true;
            RETURN NEXT r.result;
        ELSE
            v_error := coalesce(v_error, r.result);
            RAISE WARNING 'outbox relay: node % failed: %', r.nodeid, r.result;
        END IF;
    END LOOP;
    IF NOT v_ok AND v_error IS NOT NULL THEN
        RAISE EXCEPTION 'outbox relay failed on every node: %', v_error
            USING ERRCODE = 'external_routine_exception';
    END IF;
END
$$;
COMMENT ON FUNCTION outbox_on_all_nodes(text) IS 'Internal: runs a relay command on every Citus node, each in its own transaction; a node that fails is a WARNING, every node failing an ERROR.';

CREATE FUNCTION outbox_cluster_claim(consumer text, batch integer DEFAULT 100,
                                     lease interval DEFAULT '30 seconds')
    RETURNS SETOF outbox
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_nodes integer;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM distcount.outbox_require_citus();
    SELECT pg_catalog.count(*) INTO v_nodes FROM pg_catalog.pg_dist_node AS n
     WHERE n.isactive AND n.noderole OPERATOR(pg_catalog.=) 'primary';
    -- Up to batch events in all: a share of it from each node.
    RETURN QUERY
    SELECT e.*
      FROM distcount.outbox_on_all_nodes(pg_catalog.format(
               'SELECT coalesce(pg_catalog.json_agg(e), ''[]'') FROM distcount.outbox_claim(%L, %s, %L) AS e',
               consumer, greatest(1, ceil(batch::numeric / greatest(v_nodes, 1)))::integer, lease)) AS r (result),
           pg_catalog.json_populate_recordset(NULL::distcount.outbox, r.result::json) AS e
     ORDER BY e.created_at, e.seq;
END
$$;
COMMENT ON FUNCTION outbox_cluster_claim(text, integer, interval) IS 'outbox_claim on every Citus node (each in its own transaction): up to batch events in all, order kept per aggregate within each node.';

CREATE FUNCTION outbox_cluster_ack(consumer text, ids uuid[]) RETURNS integer
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.sum(r::integer), 0)::integer
      FROM distcount.outbox_on_all_nodes(pg_catalog.format(
               'SELECT distcount.outbox_ack(%L, %L::uuid[])', consumer, ids)) AS r;
$$;
COMMENT ON FUNCTION outbox_cluster_ack(text, uuid[]) IS 'outbox_ack on every Citus node: each node acknowledges the ids it leased. Returns how many were acknowledged in all.';

CREATE FUNCTION outbox_cluster_nack(consumer text, id uuid, error text DEFAULT NULL,
                                    retry_in interval DEFAULT '0 seconds') RETURNS text
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    -- The node that leased the event answers retry or dead; the others, unknown.
    SELECT coalesce(pg_catalog.min(r) FILTER (WHERE r OPERATOR(pg_catalog.<>) 'unknown'), 'unknown')
      FROM distcount.outbox_on_all_nodes(pg_catalog.format(
               'SELECT distcount.outbox_nack(%L, %L::uuid, %L, %L::interval)', consumer, id, error,
               retry_in)) AS r;
$$;
COMMENT ON FUNCTION outbox_cluster_nack(text, uuid, text, interval) IS 'outbox_nack on every Citus node: retry, dead (from the node that leased the event) or unknown.';


-- ---------------------------------------------------------------------------------------------
-- Relay (outbox.sql, outbox_pending): two indexes, no key on (consumer, id), the aggregate
-- index on a bigint hash of the aggregate, has_next. Queued, leased and dead events stay as they are;
-- the relay functions below find them by the new indexes.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE outbox_pending DROP CONSTRAINT outbox_pending_pkey;
-- Queued events of 0.1.0 may have a next one: has_next true, as the promotion sets it.
ALTER TABLE outbox_pending ADD COLUMN has_next boolean NOT NULL DEFAULT true;
DROP INDEX outbox_pending_aggregate_idx;
CREATE INDEX outbox_pending_aggregate_idx ON outbox_pending
    (consumer, pg_catalog.hashtextextended(aggregateid, pg_catalog.hashtext(aggregatetype)), seq);

-- ---------------------------------------------------------------------------------------------
-- Relay without a copy of every event per consumer (outbox.sql, issue 20): each consumer reads
-- the outbox itself by window (snapshot, then seq past a cursor: the new outbox_seq_idx), and
-- outbox_pending keeps only the events read and not done. Rows queued by 0.1.0 stay as they
-- are: heads not leased are ready (outbox_pending_ready_idx), the others parked behind them;
-- a consumer's seen snapshot still says what it has read, and its first claim opens a window
-- from there.
-- ---------------------------------------------------------------------------------------------
CREATE INDEX outbox_seq_idx ON outbox (seq);
ALTER TABLE outbox_consumer ADD COLUMN win pg_snapshot, ADD COLUMN win_next bigint, ADD COLUMN win_last bigint,
    ADD COLUMN win_left bigint, ADD COLUMN next_due timestamptz NOT NULL DEFAULT '-infinity';
DROP INDEX outbox_pending_head_idx;
CREATE INDEX outbox_pending_ready_idx ON outbox_pending (consumer, seq) WHERE is_head AND leased_until IS NULL;
-- Acknowledgements find their heads by id (issue 20, relay speed).
CREATE INDEX outbox_pending_id_idx ON outbox_pending USING hash (id);
DROP FUNCTION outbox_ingest(text);
DROP FUNCTION outbox_heads_have_next(text, text[], text[]);
DROP FUNCTION outbox_analyze_queue();

COMMENT ON TABLE outbox_consumer IS 'Relay consumers: every event written by a transaction visible in snapshot seen is read (in outbox_pending) or done, and so are those of window win below seq win_next; only members of relay_role may claim, acknowledge or drop its events.';

COMMENT ON TABLE outbox_pending IS 'Relay state: events a consumer has read and not yet acknowledged (leased, ready or parked behind their aggregate''s head), with their lease and attempt count.';

CREATE OR REPLACE FUNCTION outbox_remove_heads(consumer text, ids uuid[], dead boolean) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- Index probes whatever the statistics say (row-level security hides the table's size from
    -- the estimates); JIT never pays back here.
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
    SET enable_mergejoin = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_consumer text := outbox_remove_heads.consumer;
    v_dead boolean := outbox_remove_heads.dead;
    v_ids uuid[] := outbox_remove_heads.ids;
    v_found integer;
    v_count integer := 0;
    v_n integer;
    v_gone uuid[];
    v_types text[];
    v_aggregates text[];
    v_more_types text[];
    v_more_aggregates text[];
    v_next tid[];
BEGIN
    -- Per id the head by the id index, then the rows by address (as one DELETE ... USING,
    -- the planner drives the join from the table's side, row-level security hiding its size).
    -- Neither names the consumer where the planner could scan the aggregate index by it
    -- instead, whatever the statistics say: the probe checks it above an OFFSET 0, which no
    -- qual passes, and the delete checks the id at the address. The delete waits for a claim
    -- that holds a head (to park events behind it); a head that claim changed (has_next) is no
    -- longer at that address and is found again in the next round.
    FOR round IN 1..10 LOOP
        WITH found AS (
            SELECT r.ctid AS t, u.id
              FROM unnest(v_ids) AS u (id)
             CROSS JOIN LATERAL (SELECT p.ctid, p.consumer FROM distcount.outbox_pending AS p
                                  WHERE p.id = u.id AND p.is_head AND (v_dead OR p.attempts > 0)
                                  OFFSET 0) AS r
             WHERE r.consumer = v_consumer
        ), gone AS (
            DELETE FROM distcount.outbox_pending AS p
             USING (SELECT DISTINCT f.t, f.id FROM found AS f) AS u
             WHERE p.ctid = u.t AND p.id = u.id AND p.is_head AND (v_dead OR p.attempts > 0)
            RETURNING p.*
        ), buried AS (
            INSERT INTO distcount.outbox_dead (consumer, id, seq, aggregatetype, aggregateid, attempts, last_error)
            SELECT g.consumer, g.id, g.seq, g.aggregatetype, g.aggregateid, g.attempts, g.last_error
              FROM gone AS g WHERE v_dead
            ON CONFLICT DO NOTHING
        )
        SELECT (SELECT count(*) FROM found), count(*), array_agg(g.aggregatetype) FILTER (WHERE g.has_next),
               array_agg(g.aggregateid) FILTER (WHERE g.has_next), array_agg(g.id)
          INTO v_found, v_n, v_more_types, v_more_aggregates, v_gone
          FROM gone AS g;
        v_count := v_count + v_n;
        v_types := v_types || v_more_types;
        v_aggregates := v_aggregates || v_more_aggregates;
        EXIT WHEN v_n >= v_found;
        -- Some changed meanwhile: the ids not removed, again.
        SELECT array_agg(u.id) INTO v_ids FROM unnest(v_ids) AS u (id)
         WHERE u.id <> ALL (coalesce(v_gone, '{}'));
        EXIT WHEN v_ids IS NULL;
    END LOOP;
    IF v_types IS NOT NULL THEN
        -- The next event of each aggregate first, then one update by row address (as one
        -- UPDATE ... FROM the planner may drive the join from the table's side). No lock:
        -- nothing else changes an event parked behind its aggregate's head (claims lock heads,
        -- and a parked event becomes head only when its head goes), so the addresses hold.
        SELECT array_agg(nxt.ctid) INTO v_next
          FROM unnest(v_types, v_aggregates) AS a (aggregatetype, aggregateid)
          CROSS JOIN LATERAL (
              SELECT q.ctid FROM distcount.outbox_pending AS q
               WHERE q.consumer = v_consumer
                 AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                     = hashtextextended(a.aggregateid, hashtext(a.aggregatetype))
                 AND q.aggregatetype = a.aggregatetype
                 AND q.aggregateid = a.aggregateid
               ORDER BY hashtextextended(q.aggregateid, hashtext(q.aggregatetype)), q.seq LIMIT 1) AS nxt;
        IF v_next IS NOT NULL THEN
            UPDATE distcount.outbox_pending AS p SET is_head = true, leased_until = NULL, has_next = true
              FROM unnest(v_next) AS u (t)
             WHERE p.ctid = u.t AND NOT p.is_head;
        END IF;
    END IF;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION outbox_remove_heads(text, uuid[], boolean) IS 'Internal: removes acknowledged or dead events of a consumer and promotes the next event of each aggregate.';

CREATE FUNCTION outbox_lock_consumer(consumer text) RETURNS outbox_consumer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c distcount.outbox_consumer;
BEGIN
    SELECT * INTO c FROM distcount.outbox_consumer AS oc WHERE oc.consumer = outbox_lock_consumer.consumer FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO distcount.outbox_consumer AS oc (consumer) VALUES (outbox_lock_consumer.consumer)
            ON CONFLICT DO NOTHING;
        SELECT * INTO c FROM distcount.outbox_consumer AS oc WHERE oc.consumer = outbox_lock_consumer.consumer FOR UPDATE;
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION outbox_lock_consumer(text) IS 'Internal: locks (creating it if new) the row of a relay consumer, which serialises the readers of its position.';

CREATE OR REPLACE FUNCTION outbox_claim(consumer text, batch integer DEFAULT 100,
                             lease interval DEFAULT '30 seconds')
    RETURNS SETOF outbox
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- Index order and index probes whatever the statistics say (estimated at a few rows, a
    -- whole table would be sorted or hashed); JIT never pays back here.
    SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = on SET jit = off
    SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    v_consumer text := outbox_claim.consumer;
    v_batch integer := outbox_claim.batch;
    v_max integer := distcount.outbox_max_attempts();
    v_until timestamptz;
    c distcount.outbox_consumer;
    v_scan boolean;
    v_due timestamptz;
    v_tids tid[];
    v_more tid[];
    v_dead uuid[];
    v_ids uuid[];            -- the heads leased again
    v_out distcount.outbox[] := '{}';   -- the events leased from the outbox
    v_chunk distcount.outbox[];
    v_free boolean[];
    v_more_free boolean[];
    v_done boolean;
    v_nbusy bigint;
    v_busy boolean[];
    v_stuck bigint;
    v_deadline timestamptz;
    v_any boolean;
    v_n integer;
    v_need integer;
    v_cut bigint;
    v_leased integer;
    v_placed integer;
    v_spread integer;
    v_parked integer := 0;
    v_windows integer := 0;
    v_snap pg_snapshot;
    v_lo bigint;
    v_hi bigint;
    v_locked tid[];
BEGIN
    PERFORM distcount.outbox_check_consumer(v_consumer, v_batch, outbox_claim.lease);
    v_until := clock_timestamp() + outbox_claim.lease;

    -- One claim of this consumer at a time (it moves the consumer's position, and next_due
    -- must cover every lease it takes). A claim waits for the one running at most 200 ms
    -- (polling: a lock wait would queue behind every other worker), then returns nothing, so
    -- each claim stays short however many workers share the consumer.
    v_deadline := clock_timestamp() + interval '200 milliseconds';
    LOOP
        SELECT * INTO c FROM distcount.outbox_consumer AS oc WHERE oc.consumer = v_consumer
           FOR UPDATE SKIP LOCKED;
        EXIT WHEN FOUND;
        IF NOT EXISTS (SELECT FROM distcount.outbox_consumer AS oc WHERE oc.consumer = v_consumer) THEN
            c := distcount.outbox_lock_consumer(v_consumer);
            EXIT;
        END IF;
        IF clock_timestamp() >= v_deadline THEN
            c.consumer := NULL;
            EXIT;
        END IF;
        PERFORM pg_sleep(0.002);
    END LOOP;
    IF c.consumer IS NULL THEN
        RETURN;
    END IF;
    v_scan := c.next_due <= clock_timestamp();
    -- Heads free to take again: ready (promoted, nacked, retried), or, once next_due has passed,
    -- leased and run out. A head out of attempts is dead-lettered instead (its consumer
    -- crashed or hung max_attempts times); the next event of its aggregate is then ready.
    FOR attempt_round IN 1..10 LOOP
        SELECT array_agg(h.ctid) FILTER (WHERE h.attempts < v_max),
               array_agg(h.id) FILTER (WHERE h.attempts >= v_max)
          INTO v_tids, v_dead
          FROM (SELECT p.ctid, p.id, p.attempts
                  FROM distcount.outbox_pending AS p
                 WHERE p.consumer = v_consumer AND p.is_head AND p.leased_until IS NULL
                 ORDER BY p.seq
                 LIMIT v_batch
                   FOR UPDATE SKIP LOCKED) AS h;
        v_n := coalesce(cardinality(v_tids), 0) + coalesce(cardinality(v_dead), 0);
        IF v_scan AND v_n < v_batch THEN
            SELECT array_agg(h.ctid) FILTER (WHERE h.attempts < v_max),
                   array_agg(h.id) FILTER (WHERE h.attempts >= v_max)
              INTO v_more, v_ids
              FROM (SELECT p.ctid, p.id, p.attempts
                      FROM distcount.outbox_pending AS p
                     WHERE p.consumer = v_consumer AND p.is_head AND p.leased_until <= clock_timestamp()
                     ORDER BY p.seq
                     LIMIT v_batch - v_n
                       FOR UPDATE SKIP LOCKED) AS h;
            v_tids := v_tids || v_more;
            v_dead := v_dead || v_ids;
        END IF;
        IF v_dead IS NOT NULL THEN
            PERFORM distcount.outbox_remove_heads(v_consumer, v_dead, true);
        END IF;
        EXIT WHEN v_dead IS NULL OR v_tids IS NOT NULL;
    END LOOP;
    v_ids := NULL;
    IF v_tids IS NOT NULL THEN
        WITH leased AS (
            UPDATE distcount.outbox_pending AS p
               SET attempts = p.attempts + 1, leased_until = v_until
              FROM unnest(v_tids) AS u (t)
             WHERE p.ctid = u.t
            RETURNING p.id
        )
        SELECT array_agg(l.id) INTO v_ids FROM leased AS l;
    END IF;
    -- Whether anything of this consumer is in flight at all (only claims and
    -- outbox_retry_dead, which hold the consumer's row, add rows): if not, no event read needs
    -- a probe.
    v_any := EXISTS (SELECT FROM distcount.outbox_pending AS q WHERE q.consumer = v_consumer);
    IF v_scan THEN
        -- The earliest lease end left (an expired head locked by another transaction counts:
        -- it is looked for again).
        SELECT min(p.leased_until) INTO v_due
          FROM distcount.outbox_pending AS p
         WHERE p.consumer = v_consumer AND p.is_head AND p.leased_until IS NOT NULL;
        c.next_due := coalesce(v_due, 'infinity');
    END IF;

    -- Then events read from the outbox, in seq order, chunk by chunk. The first event of an
    -- aggregate with nothing in flight is leased (a head); any other is parked behind its
    -- aggregate's head.
    v_need := v_batch - coalesce(cardinality(v_ids), 0);
    FOR read_round IN 1..1000 LOOP
        EXIT WHEN v_need <= 0;
        IF c.win IS NULL OR c.win_next > c.win_last THEN
            -- The window is read through: its events are all read or done.
            IF c.win IS NOT NULL THEN
                c.seen := c.win;
                c.win := NULL;
            END IF;
            EXIT WHEN v_windows >= 2;
            v_windows := v_windows + 1;
            PERFORM distcount.outbox_rebase_restored();
            -- One statement, so the rows read and the snapshot kept are the same snapshot. By
            -- the txid index (seq + 0: min and max by the seq index would start from the
            -- oldest event).
            SELECT pg_current_snapshot(), min(o.seq + 0), max(o.seq + 0), count(*)
              INTO v_snap, v_lo, v_hi, v_n
              FROM distcount.outbox AS o
             WHERE o.txid >= pg_snapshot_xmin(c.seen) AND NOT pg_visible_in_snapshot(o.txid, c.seen);
            IF v_lo IS NULL THEN
                c.seen := v_snap;
                EXIT;
            END IF;
            c.win := v_snap;
            c.win_next := v_lo;
            c.win_last := v_hi;
            c.win_left := v_n;
        END IF;
        -- A chunk of the window past the cursor: first a small one (a claim that finds the
        -- next events all waiting for heads in flight stops there), then as many as needed.
        -- With nothing in flight no event waits: as many as needed at once (the chunk then
        -- probes nothing; a second chunk would probe the first one's aggregates).
        v_n := CASE WHEN v_any AND v_need = v_batch - coalesce(cardinality(v_ids), 0) THEN 64
                    ELSE least(greatest(v_need, 64), 100000) END;
        -- (ARRAY of an ordered subquery: in that order, without sorting the rows again.)
        v_chunk := ARRAY(SELECT o FROM distcount.outbox AS o
                          WHERE o.seq >= c.win_next AND o.seq <= c.win_last
                            AND o.txid >= pg_snapshot_xmin(c.seen) AND NOT pg_visible_in_snapshot(o.txid, c.seen)
                            AND pg_visible_in_snapshot(o.txid, c.win)
                          ORDER BY o.seq LIMIT v_n);
        IF cardinality(v_chunk) = 0 THEN
            c.win_next := c.win_last + 1;
            c.win_left := 0;
            CONTINUE;
        END IF;
        -- A chunk that cannot hold more free events than needed (no cut) and is read past
        -- the claim's first chunk, or with nothing in flight, is mostly free: one statement
        -- classifies and inserts it, unless an event of it is busy (then nothing is inserted,
        -- and the chunk goes the general way below).
        v_done := false;
        IF cardinality(v_chunk) <= v_need
           AND (NOT v_any OR v_need < v_batch - coalesce(cardinality(v_ids), 0)) THEN
            WITH e AS (
                SELECT u.ordinality AS ord, u.id, u.seq, u.aggregatetype, u.aggregateid,
                       row_number() OVER (a ORDER BY u.seq) = 1 AS first,
                       count(*) OVER a > 1 AS more
                  FROM unnest(v_chunk) WITH ORDINALITY AS u
                WINDOW a AS (PARTITION BY hashtextextended(u.aggregateid, hashtext(u.aggregatetype)),
                                          u.aggregatetype COLLATE "C", u.aggregateid COLLATE "C")
            ), b AS (
                SELECT count(x.busy) AS n
                  FROM e
                  LEFT JOIN LATERAL (
                      SELECT true AS busy FROM distcount.outbox_pending AS q
                       WHERE v_any AND e.first AND q.consumer = v_consumer
                         AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                             = hashtextextended(e.aggregateid, hashtext(e.aggregatetype))
                         AND q.aggregatetype = e.aggregatetype AND q.aggregateid = e.aggregateid
                       LIMIT 1) AS x ON true
            ), queued AS (
                INSERT INTO distcount.outbox_pending AS p
                       (consumer, id, seq, aggregatetype, aggregateid, is_head, attempts, leased_until, has_next)
                SELECT v_consumer, e.id, e.seq, e.aggregatetype, e.aggregateid, e.first,
                       CASE WHEN e.first THEN 1 ELSE 0 END, CASE WHEN e.first THEN v_until END,
                       NOT e.first OR e.more
                  FROM e
                 WHERE (SELECT b.n FROM b) = 0
                RETURNING p.is_head
            )
            SELECT (SELECT b.n FROM b), (SELECT count(*) FROM queued),
                   (SELECT count(*) FILTER (WHERE q.is_head) FROM queued AS q),
                   (SELECT array_agg(e.first ORDER BY e.ord) FROM e)
              INTO v_nbusy, v_placed, v_leased, v_free;
            v_done := v_nbusy = 0;
            v_cut := NULL;
            v_locked := NULL;
        END IF;
        IF NOT v_done THEN
            -- Per event (in seq order): busy, when it is its aggregate's first in the chunk and its
            -- aggregate has events in flight; free (leased as the head), when it is the first and
            -- not busy; any other event is parked behind its aggregate's head. The read ends
            -- (v_cut) before the free event past the ones needed: nfree <= v_need before it. And
            -- per event whether it is not alone of its aggregate in the chunk (v_more: a free
            -- head with events parked behind it, has_next; true also when those are past v_cut,
            -- which costs the acknowledgement only a probe).
            WITH e AS (
                SELECT u.ordinality AS ord, u.seq, u.aggregatetype, u.aggregateid,
                       hashtextextended(u.aggregateid, hashtext(u.aggregatetype)) AS h,
                       row_number() OVER (a ORDER BY u.seq) = 1 AS first,
                       count(*) OVER a > 1 AS more
                  FROM unnest(v_chunk) WITH ORDINALITY AS u
                WINDOW a AS (PARTITION BY hashtextextended(u.aggregateid, hashtext(u.aggregatetype)),
                                          u.aggregatetype COLLATE "C", u.aggregateid COLLATE "C")
            ), s AS (
                SELECT e.ord, e.seq, e.first, e.more, e.first AND x.busy IS NOT NULL AS busy,
                       e.first AND x.busy IS NULL AS free
                  FROM e
                  LEFT JOIN LATERAL (
                      SELECT true AS busy FROM distcount.outbox_pending AS q
                       WHERE v_any AND e.first AND q.consumer = v_consumer
                         AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype)) = e.h
                         AND q.aggregatetype = e.aggregatetype AND q.aggregateid = e.aggregateid
                       LIMIT 1) AS x ON true
            ), f AS (
                SELECT s.*, count(*) FILTER (WHERE s.free) OVER (ORDER BY s.ord) AS nfree FROM s
            )
            SELECT array_agg(f.free ORDER BY f.ord), array_agg(f.busy ORDER BY f.ord),
                   array_agg(f.more ORDER BY f.ord),
                   min(f.seq) FILTER (WHERE f.free AND f.nfree > v_need),
                   count(*) FILTER (WHERE f.free AND f.nfree <= v_need),
                   count(*) FILTER (WHERE f.nfree <= v_need),
                   count(*) FILTER (WHERE f.first AND f.nfree <= v_need)
              INTO v_free, v_busy, v_more_free, v_cut, v_leased, v_placed, v_spread
              FROM f;
            -- Nothing to lease and the events spread over many aggregates in flight: their
            -- acknowledgements will free them soon; parking them would copy each event. (Events
            -- piled on few aggregates are parked, so that the aggregates behind them move on.) A
            -- claim with nothing yet waits for them up to 200 ms from its start, reading the
            -- chunk again every 2 ms, then returns.
            IF v_leased = 0 AND v_spread * 2 > v_placed THEN
                EXIT WHEN cardinality(v_out) > 0 OR v_ids IS NOT NULL OR clock_timestamp() >= v_deadline;
                PERFORM pg_sleep(0.002);
                CONTINUE;
            END IF;
            -- The heads of the busy aggregates, locked (SKIP LOCKED: an acknowledgement may be
            -- removing one; the read then ends before that aggregate's first event).
            v_locked := NULL;
            IF v_leased < v_placed THEN
                SELECT array_agg(k.ctid), min(u.seq) FILTER (WHERE k.ctid IS NULL)
                  INTO v_locked, v_stuck
                  FROM unnest(v_chunk) WITH ORDINALITY AS u
                  LEFT JOIN LATERAL (
                      SELECT q.ctid FROM distcount.outbox_pending AS q
                       WHERE q.consumer = v_consumer
                         AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                             = hashtextextended(u.aggregateid, hashtext(u.aggregatetype))
                         AND q.aggregatetype = u.aggregatetype AND q.aggregateid = u.aggregateid
                         AND q.is_head
                       LIMIT 1 FOR UPDATE SKIP LOCKED) AS k ON true
                 WHERE v_busy[u.ordinality] AND (v_cut IS NULL OR u.seq < v_cut);
                v_cut := least(v_cut, v_stuck);
            END IF;
            WITH queued AS (
                INSERT INTO distcount.outbox_pending AS p
                       (consumer, id, seq, aggregatetype, aggregateid, is_head, attempts, leased_until, has_next)
                SELECT v_consumer, u.id, u.seq, u.aggregatetype, u.aggregateid, v_free[u.ordinality],
                       CASE WHEN v_free[u.ordinality] THEN 1 ELSE 0 END,
                       CASE WHEN v_free[u.ordinality] THEN v_until END,
                       NOT v_free[u.ordinality] OR v_more_free[u.ordinality]
                  FROM unnest(v_chunk) WITH ORDINALITY AS u
                 WHERE v_cut IS NULL OR u.seq < v_cut
                RETURNING p.is_head
            )
            SELECT count(*), count(*) FILTER (WHERE q.is_head) INTO v_placed, v_leased FROM queued AS q;
        END IF;
        EXIT WHEN v_placed = 0;
        v_any := true;
        c.win_left := c.win_left - v_placed;
        IF v_leased < v_placed AND v_locked IS NOT NULL THEN
            -- Heads with events parked behind them now.
            UPDATE distcount.outbox_pending AS p SET has_next = true
              FROM unnest(v_locked) AS t (t)
             WHERE p.ctid = t.t AND NOT p.has_next;
        END IF;
        v_parked := v_parked + v_placed - v_leased;
        v_need := v_need - v_leased;
        IF v_leased = cardinality(v_chunk) THEN
            -- Every event of the chunk leased (many aggregates): the chunk as it is, not picked
            -- element by element (a sixth of a claim's time).
            v_out := v_out || v_chunk;
        ELSE
            v_out := v_out || ARRAY(SELECT v_chunk[i] FROM generate_subscripts(v_chunk, 1) AS i
                                     WHERE v_free[i] AND (v_cut IS NULL OR (v_chunk[i]).seq < v_cut));
        END IF;
        IF v_cut IS NOT NULL THEN
            c.win_next := v_cut;
            EXIT;
        END IF;
        c.win_next := (v_chunk[cardinality(v_chunk)]).seq + 1;
        IF cardinality(v_chunk) < v_n THEN
            c.win_next := c.win_last + 1;
            c.win_left := 0;
        END IF;
        EXIT WHEN v_parked >= greatest(v_batch, 1000);
    END LOOP;
    IF cardinality(v_out) > 0 OR v_ids IS NOT NULL THEN
        c.next_due := least(c.next_due, v_until);
    END IF;
    UPDATE distcount.outbox_consumer AS oc
       SET seen = c.seen, win = c.win, win_next = c.win_next, win_last = c.win_last, win_left = c.win_left,
           next_due = c.next_due
     WHERE oc.consumer = v_consumer;

    RETURN QUERY
    SELECT r.* FROM (
        SELECT o.* FROM unnest(v_ids) AS u (id)
         CROSS JOIN LATERAL (SELECT o.* FROM distcount.outbox AS o WHERE o.id = u.id LIMIT 1) AS o
        UNION ALL
        SELECT u.* FROM unnest(v_out) AS u) AS r
     ORDER BY r.seq;
END
$$;
COMMENT ON FUNCTION outbox_claim(text, integer, interval) IS 'Leases up to batch events to a consumer: the oldest unacknowledged event of each aggregate, at most one per aggregate, none whose transaction could still be overtaken. Call it in its own transaction.';

CREATE OR REPLACE FUNCTION outbox_nack(consumer text, id uuid, error text DEFAULT NULL,
                            retry_in interval DEFAULT '0 seconds') RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_retry interval := coalesce(outbox_nack.retry_in, interval '0');
    v_attempts integer;
BEGIN
    PERFORM distcount.outbox_check_consumer(outbox_nack.consumer);
    IF v_retry > interval '0' THEN
        -- Claims look for expired leases from then on (the consumer's row first, as claims
        -- lock it before heads).
        UPDATE distcount.outbox_consumer AS c
           SET next_due = least(c.next_due, clock_timestamp() + v_retry)
         WHERE c.consumer = outbox_nack.consumer;
    END IF;
    -- Claimable again after retry_in; at once: ready (leased_until NULL).
    UPDATE distcount.outbox_pending AS p
       SET last_error = outbox_nack.error,
           leased_until = CASE WHEN v_retry > interval '0' THEN clock_timestamp() + v_retry END
      FROM (SELECT o.seq, o.aggregatetype, o.aggregateid FROM distcount.outbox AS o
             WHERE o.id = outbox_nack.id LIMIT 1) AS e
     WHERE p.consumer = outbox_nack.consumer
       AND hashtextextended(p.aggregateid, hashtext(p.aggregatetype))
           = hashtextextended(e.aggregateid, hashtext(e.aggregatetype))
       AND p.seq = e.seq AND p.id = outbox_nack.id AND p.is_head AND p.attempts > 0
       AND p.aggregatetype = e.aggregatetype AND p.aggregateid = e.aggregateid
    RETURNING p.attempts INTO v_attempts;
    IF NOT FOUND THEN
        RETURN 'unknown';
    END IF;
    IF v_attempts >= distcount.outbox_max_attempts() THEN
        PERFORM distcount.outbox_remove_heads(outbox_nack.consumer, ARRAY[outbox_nack.id], true);
        RETURN 'dead';
    END IF;
    RETURN 'retry';
END
$$;
COMMENT ON FUNCTION outbox_nack(text, uuid, text, interval) IS 'Reports a failed delivery: the event is claimable again after retry_in, or dead-lettered once it used pg_distcount.outbox_max_attempts claims. Returns retry, dead or unknown.';

CREATE OR REPLACE FUNCTION outbox_retry_dead(consumer text, ids uuid[] DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- Probes by index (by aggregate), whatever the statistics say.
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_consumer text := outbox_retry_dead.consumer;
    v_count integer;
    v_types text[];
    v_aggregates text[];
    v_locked tid[];
    v_ltypes text[];
    v_laggregates text[];
    v_next tid[];
BEGIN
    PERFORM distcount.outbox_check_consumer(v_consumer);
    -- No claim meanwhile: nothing else adds events or heads to this consumer.
    PERFORM distcount.outbox_lock_consumer(v_consumer);
    -- Back in as parked events; then each of their aggregates gets a head, or has its head
    -- marked as having events behind it.
    WITH back AS (
        DELETE FROM distcount.outbox_dead AS d
         WHERE d.consumer = v_consumer AND (outbox_retry_dead.ids IS NULL OR d.id = ANY (outbox_retry_dead.ids))
        RETURNING d.*
    ), queued AS (
        INSERT INTO distcount.outbox_pending AS p (consumer, id, seq, aggregatetype, aggregateid, is_head)
        SELECT b.consumer, b.id, b.seq, b.aggregatetype, b.aggregateid, false FROM back AS b
        RETURNING p.aggregatetype, p.aggregateid
    ), aggregates AS (
        SELECT DISTINCT q.aggregatetype, q.aggregateid FROM queued AS q
    )
    SELECT (SELECT count(*) FROM queued), (SELECT array_agg(a.aggregatetype) FROM aggregates AS a),
           (SELECT array_agg(a.aggregateid) FROM aggregates AS a)
      INTO v_count, v_types, v_aggregates;
    FOR round IN 1..100 LOOP
        EXIT WHEN v_types IS NULL;
        -- The heads, locked: an acknowledgement removing one is waited for (it takes no lock
        -- that this transaction holds: no claim runs meanwhile).
        SELECT array_agg(h.ctid), array_agg(a.aggregatetype), array_agg(a.aggregateid)
          INTO v_locked, v_ltypes, v_laggregates
          FROM unnest(v_types, v_aggregates) AS a (aggregatetype, aggregateid)
         CROSS JOIN LATERAL (
             SELECT q.ctid FROM distcount.outbox_pending AS q
              WHERE q.consumer = v_consumer
                AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                    = hashtextextended(a.aggregateid, hashtext(a.aggregatetype))
                AND q.aggregatetype = a.aggregatetype AND q.aggregateid = a.aggregateid
                AND q.is_head
              LIMIT 1 FOR UPDATE) AS h;
        IF v_locked IS NOT NULL THEN
            UPDATE distcount.outbox_pending AS p SET has_next = true
              FROM unnest(v_locked) AS t (t)
             WHERE p.ctid = t.t AND NOT p.has_next;
        END IF;
        -- Aggregates without a head (none, or removed while waited for): their first event
        -- becomes the head, unless an acknowledgement promoted one meanwhile (then again).
        WITH a AS (
            SELECT a.aggregatetype, a.aggregateid,
                   coalesce((SELECT true FROM distcount.outbox_pending AS q
                              WHERE q.consumer = v_consumer
                                AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                                    = hashtextextended(a.aggregateid, hashtext(a.aggregatetype))
                                AND q.aggregatetype = a.aggregatetype AND q.aggregateid = a.aggregateid
                                AND q.is_head LIMIT 1), false) AS promoted
              FROM unnest(v_types, v_aggregates) AS a (aggregatetype, aggregateid)
             WHERE NOT EXISTS (SELECT FROM unnest(v_ltypes, v_laggregates) AS l (aggregatetype, aggregateid)
                                WHERE l.aggregatetype = a.aggregatetype AND l.aggregateid = a.aggregateid)
        )
        SELECT array_agg(n.ctid) FILTER (WHERE NOT a.promoted),
               array_agg(a.aggregatetype) FILTER (WHERE a.promoted),
               array_agg(a.aggregateid) FILTER (WHERE a.promoted)
          INTO v_next, v_types, v_aggregates
          FROM a
         CROSS JOIN LATERAL (
             SELECT q.ctid FROM distcount.outbox_pending AS q
              WHERE q.consumer = v_consumer
                AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                    = hashtextextended(a.aggregateid, hashtext(a.aggregatetype))
                AND q.aggregatetype = a.aggregatetype AND q.aggregateid = a.aggregateid
              ORDER BY hashtextextended(q.aggregateid, hashtext(q.aggregatetype)), q.seq LIMIT 1) AS n;
        IF v_next IS NOT NULL THEN
            UPDATE distcount.outbox_pending AS p SET is_head = true, leased_until = NULL, has_next = true
              FROM unnest(v_next) AS u (t)
             WHERE p.ctid = u.t AND NOT p.is_head;
        END IF;
    END LOOP;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION outbox_retry_dead(text, uuid[]) IS 'Puts dead letters of a consumer (all, or the given ids) back in its queue with fresh attempts.';

CREATE OR REPLACE FUNCTION outbox_drop_consumer(consumer text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM distcount.outbox_check_consumer(outbox_drop_consumer.consumer);
    PERFORM FROM distcount.outbox_consumer AS c WHERE c.consumer = outbox_drop_consumer.consumer FOR UPDATE;
    DELETE FROM distcount.outbox_pending AS p WHERE p.consumer = outbox_drop_consumer.consumer;
    DELETE FROM distcount.outbox_dead AS d WHERE d.consumer = outbox_drop_consumer.consumer;
    DELETE FROM distcount.outbox_consumer AS c WHERE c.consumer = outbox_drop_consumer.consumer;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION outbox_drop_consumer(text) IS 'Forgets a relay consumer: its position, queue and dead letters.';

CREATE OR REPLACE VIEW outbox_stats WITH (security_invoker = true) AS
SELECT c.consumer,
       (SELECT count(*) FROM distcount.outbox_pending AS p WHERE p.consumer = c.consumer)
       + CASE WHEN c.win IS NULL THEN 0 ELSE greatest(c.win_left, 0) END AS queued,
       (SELECT count(*) FROM distcount.outbox AS o
         WHERE o.txid >= pg_catalog.pg_snapshot_xmin(coalesce(c.win, c.seen))
           AND NOT pg_catalog.pg_visible_in_snapshot(o.txid, coalesce(c.win, c.seen))) AS not_yet_queued,
       (SELECT count(*) FROM distcount.outbox_pending AS p
         WHERE p.consumer = c.consumer AND p.leased_until > pg_catalog.clock_timestamp()) AS leased,
       (SELECT count(*) FROM distcount.outbox_dead AS d WHERE d.consumer = c.consumer) AS dead,
       pg_catalog.clock_timestamp()
       - least((SELECT min(o.created_at)
                  FROM distcount.outbox_pending AS p JOIN distcount.outbox AS o ON o.id = p.id
                 WHERE p.consumer = c.consumer),
               (SELECT min(o.created_at) FROM distcount.outbox AS o
                 WHERE c.win IS NOT NULL AND o.seq >= c.win_next AND o.seq <= c.win_last
                   AND o.txid >= pg_catalog.pg_snapshot_xmin(c.seen)
                   AND NOT pg_catalog.pg_visible_in_snapshot(o.txid, c.seen)
                   AND pg_catalog.pg_visible_in_snapshot(o.txid, c.win))) AS oldest_queued_age
  FROM distcount.outbox_consumer AS c;
COMMENT ON VIEW outbox_stats IS 'Per relay consumer: queued and not yet queued events, active leases, dead letters, age of the oldest queued event.';

-- Issue 20: writers notify only while a relay waits (outbox_relay_idle).
CREATE FUNCTION outbox_relay_idle(idle boolean DEFAULT true) RETURNS void
    LANGUAGE c STRICT VOLATILE AS 'MODULE_PATHNAME', 'outbox_relay_idle_wrapper';
REVOKE ALL ON FUNCTION outbox_relay_idle(boolean) FROM PUBLIC;
COMMENT ON FUNCTION outbox_relay_idle(boolean) IS 'A relay that LISTENs on distcount_outbox calls it with true before it waits (writers then send NOTIFY at commit) and with false when it works again; a session-level lock, released at disconnect.';

-- Replicated hll columns converge byte for byte: merges without the martingale count
-- (hll_crdt_merge, chosen by crdt_merge_statement), local writes stored without it
-- (hll_crdt_canonical, a BEFORE trigger crdt_replicate_setup adds; added here to tables set up
-- before).
CREATE FUNCTION hll_crdt_merge(a hll, b hll) RETURNS hll
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'hll_crdt_merge_wrapper';
COMMENT ON FUNCTION hll_crdt_merge(hll, hll) IS 'The merge of replicated hll columns (crdt_merge_into): the union without a martingale count, so the same states merged in any order give the same bytes; a NULL side counts as empty.';

CREATE FUNCTION hll_crdt_canonical() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'hll_crdt_canonical';
COMMENT ON FUNCTION hll_crdt_canonical() IS 'BEFORE INSERT OR UPDATE trigger of replicated tables (crdt_replicate_setup; arguments: the hll columns): stores them without a martingale count, as hll_crdt_merge merges them.';

CREATE OR REPLACE FUNCTION crdt_merge_statement(inbox regclass, target regclass) RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        key_columns text[];
        columns text[] := '{}';
        sources text[] := '{}';
        assignments text[] := '{}';
        changes text[] := '{}';
        col record;
        merged text;
    BEGIN
        SELECT array_agg(quote_ident(a.attname) ORDER BY k.ord) INTO key_columns
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = target AND i.indisprimary;
        IF key_columns IS NULL THEN
            RAISE EXCEPTION 'table % has no primary key', target
                USING ERRCODE = '42P10', HINT = 'Rows are merged by primary key; add one.';
        END IF;

        FOR col IN
            SELECT a.attname, t.typname,
                   CASE WHEN t.typnamespace = 'distcount'::regnamespace
                        THEN pg_catalog.to_regprocedure(format('distcount.%I(distcount.%I)', t.typname || '_prune_retired', t.typname))
                   END AS prune,
                   -- A type whose || depends on the order of merges (hll's martingale count)
                   -- has a merge of its own for replicated state.
                   CASE WHEN t.typnamespace = 'distcount'::regnamespace
                        THEN pg_catalog.to_regprocedure(format('distcount.%I(distcount.%I, distcount.%I)', t.typname || '_crdt_merge', t.typname, t.typname))
                   END AS crdt_merge
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              AND EXISTS (SELECT 1 FROM pg_attribute b
                          WHERE b.attrelid = inbox AND b.attname = a.attname AND NOT b.attisdropped)
            ORDER BY a.attnum
        LOOP
            columns := columns || quote_ident(col.attname);
            sources := sources || format('(s.r).%I', col.attname);
            IF NOT EXISTS (SELECT 1 FROM pg_operator o JOIN pg_type t ON t.oid = o.oprleft
                           WHERE o.oprname = '||' AND o.oprnamespace = 'distcount'::regnamespace
                             AND t.typname = col.typname AND o.oprright = o.oprleft AND o.oprresult = o.oprleft) THEN
                CONTINUE;
            END IF;
            IF col.crdt_merge IS NOT NULL THEN
                merged := format('%1$s(t.%2$I, EXCLUDED.%2$I)', col.crdt_merge::regproc, col.attname);
            ELSIF col.prune IS NOT NULL THEN
                -- Retired nodes are folded on both sides first, so a stale state that still
                -- holds a retired slot cannot count it twice.
                merged := format('%1$s(t.%2$I) OPERATOR(distcount.||) %1$s(EXCLUDED.%2$I)', col.prune::regproc, col.attname);
            ELSE
                merged := format('t.%1$I OPERATOR(distcount.||) EXCLUDED.%1$I', col.attname);
            END IF;
            assignments := assignments || format('%I = %s', col.attname, merged);
            changes := changes || format('NOT coalesce((%1$s) OPERATOR(distcount.=) t.%2$I, (%1$s) IS NULL AND t.%2$I IS NULL)',
                                         merged, col.attname);
        END LOOP;
        IF cardinality(assignments) = 0 THEN
            RAISE EXCEPTION 'table % has no CRDT columns to merge', target
                USING ERRCODE = '42804', HINT = 'Columns of type distcount.gcounter or distcount.pncounter are merged.';
        END IF;

        RETURN format('INSERT INTO %s AS t (%s) SELECT %s FROM (SELECT $1 AS r) s ON CONFLICT (%s) DO UPDATE SET %s WHERE %s',
                      target, array_to_string(columns, ', '), array_to_string(sources, ', '),
                      array_to_string(key_columns, ', '), array_to_string(assignments, ', '),
                      array_to_string(changes, ' OR '));
    END $$;

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT t.tgrelid::regclass AS tbl,
               (SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY a.attnum)
                  FROM pg_catalog.pg_attribute AS a
                 WHERE a.attrelid = t.tgrelid AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.atttypid = 'distcount.hll'::regtype) AS hll_columns
          FROM pg_catalog.pg_trigger AS t
         WHERE t.tgname = 'distcount_crdt_publish'
    LOOP
        IF r.hll_columns IS NOT NULL THEN
            EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_hll BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION distcount.hll_crdt_canonical(%s)',
                           r.tbl, r.hll_columns);
        END IF;
    END LOOP;
END $$;
