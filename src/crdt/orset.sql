-- OR-Set: an add-wins observed-remove set of text elements, without tombstones. Entry points
-- are in src/crdt/orset_sql.rs; the algorithm and formats in src/crdt/orset.rs and
-- src/crdt/orset/codec.rs.

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
