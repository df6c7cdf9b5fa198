-- G-Counter and PN-Counter: CRDT counters that merge without coordination.
-- Entry points are in src/crdt/sql.rs; this script declares them.

-- ---------------------------------------------------------------------------------------------
-- Node identity
-- ---------------------------------------------------------------------------------------------

-- One row: the id this database writes its counter slots under. Deliberately not dumped by
-- pg_dump (not a configuration table): a restored or cloned database gets a fresh id from
-- CREATE EXTENSION instead of writing into the original's slots.
CREATE TABLE node (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id         text NOT NULL CHECK (octet_length(id) BETWEEN 1 AND 63),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO node (id) VALUES (pg_catalog.gen_random_uuid()::text);
COMMENT ON TABLE node IS 'The local node id used by gcounter_inc and pncounter_inc (one row, made at CREATE EXTENSION).';

CREATE FUNCTION node_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT coalesce(nullif(current_setting('pg_distcount.node_id', true), ''),
                        (SELECT n.id FROM distcount.node n))
    $$;
COMMENT ON FUNCTION node_id() IS 'The local node id: the setting pg_distcount.node_id when set, else the id made at CREATE EXTENSION.';

-- ---------------------------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------------------------

CREATE TYPE gcounter;
CREATE FUNCTION gcounter_in(cstring) RETURNS gcounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_in_wrapper';
CREATE FUNCTION gcounter_out(gcounter) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_out_wrapper';
CREATE FUNCTION gcounter_recv(internal) RETURNS gcounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_recv_wrapper';
CREATE FUNCTION gcounter_send(gcounter) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_send_wrapper';
CREATE TYPE gcounter (
    INPUT = gcounter_in, OUTPUT = gcounter_out,
    RECEIVE = gcounter_recv, SEND = gcounter_send,
    INTERNALLENGTH = VARIABLE, STORAGE = extended
);
COMMENT ON TYPE gcounter IS 'Grow-only CRDT counter: one slot per node, merged by per-slot maximum. Text form {"node": count, ...}.';

CREATE TYPE pncounter;
CREATE FUNCTION pncounter_in(cstring) RETURNS pncounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_in_wrapper';
CREATE FUNCTION pncounter_out(pncounter) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_out_wrapper';
CREATE FUNCTION pncounter_recv(internal) RETURNS pncounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_recv_wrapper';
CREATE FUNCTION pncounter_send(pncounter) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_send_wrapper';
CREATE TYPE pncounter (
    INPUT = pncounter_in, OUTPUT = pncounter_out,
    RECEIVE = pncounter_recv, SEND = pncounter_send,
    INTERNALLENGTH = VARIABLE, STORAGE = extended
);
COMMENT ON TYPE pncounter IS 'Increment/decrement CRDT counter: per node a pair (P, N) merged by per-slot maximum; value = sum(P) - sum(N). Text form {"node": [p, n], ...}.';

-- ---------------------------------------------------------------------------------------------
-- Casts: bytea holds the binary format (the same bytes as send/recv); jsonb the text form.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION gcounter_from_bytea(bytea) RETURNS gcounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_from_bytea_wrapper';
CREATE FUNCTION pncounter_from_bytea(bytea) RETURNS pncounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_from_bytea_wrapper';
CREATE CAST (bytea AS gcounter) WITH FUNCTION gcounter_from_bytea(bytea);
CREATE CAST (bytea AS pncounter) WITH FUNCTION pncounter_from_bytea(bytea);
-- The stored bytes are the binary format, so these casts need no function.
CREATE CAST (gcounter AS bytea) WITHOUT FUNCTION;
CREATE CAST (pncounter AS bytea) WITHOUT FUNCTION;
CREATE CAST (gcounter AS jsonb) WITH INOUT;
CREATE CAST (pncounter AS jsonb) WITH INOUT;

-- ---------------------------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION gcounter_inc(c gcounter, by bigint DEFAULT 1, node text DEFAULT distcount.node_id())
    RETURNS gcounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_inc_wrapper';
COMMENT ON FUNCTION gcounter_inc(gcounter, bigint, text) IS 'Adds by (>= 0) to node''s slot; a NULL counter counts as empty.';

CREATE FUNCTION pncounter_inc(c pncounter, by bigint DEFAULT 1, node text DEFAULT distcount.node_id())
    RETURNS pncounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_inc_wrapper';
COMMENT ON FUNCTION pncounter_inc(pncounter, bigint, text) IS 'Adds by to node''s P (by >= 0) or |by| to its N (by < 0); a NULL counter counts as empty.';

CREATE FUNCTION gcounter_merge(a gcounter, b gcounter) RETURNS gcounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_wrapper';
COMMENT ON FUNCTION gcounter_merge(gcounter, gcounter) IS 'Merge (per-node maximum); a NULL side counts as empty.';
CREATE FUNCTION pncounter_merge(a pncounter, b pncounter) RETURNS pncounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_wrapper';
COMMENT ON FUNCTION pncounter_merge(pncounter, pncounter) IS 'Merge (per-node maximum of P and of N); a NULL side counts as empty.';

CREATE FUNCTION gcounter_value(c gcounter) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_value_wrapper';
COMMENT ON FUNCTION gcounter_value(gcounter) IS 'The count: sum of all node slots (error 22003 beyond bigint).';
CREATE FUNCTION pncounter_value(c pncounter) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_value_wrapper';
COMMENT ON FUNCTION pncounter_value(pncounter) IS 'The count: sum(P) - sum(N) (error 22003 beyond bigint).';

CREATE FUNCTION gcounter_entries(c gcounter) RETURNS TABLE (node text, count bigint)
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_entries_wrapper';
COMMENT ON FUNCTION gcounter_entries(gcounter) IS 'One row per node slot, sorted by node.';
CREATE FUNCTION pncounter_entries(c pncounter) RETURNS TABLE (node text, p bigint, n bigint)
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_entries_wrapper';
COMMENT ON FUNCTION pncounter_entries(pncounter) IS 'One row per node slot (P, N), sorted by node.';

-- ---------------------------------------------------------------------------------------------
-- Operators. Equal states have identical bytes, so equality and hashing work on the bytes.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION gcounter_eq(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteaeq';
CREATE FUNCTION gcounter_ne(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteane';
CREATE FUNCTION gcounter_hash(gcounter) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlena';
CREATE FUNCTION gcounter_hash_extended(gcounter, bigint) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlenaextended';
CREATE FUNCTION gcounter_le(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_le_wrapper';
CREATE FUNCTION gcounter_ge(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_ge_wrapper';
COMMENT ON FUNCTION gcounter_le(gcounter, gcounter) IS 'Lattice order: true when the second counter includes the first.';
COMMENT ON FUNCTION gcounter_ge(gcounter, gcounter) IS 'Lattice order: true when the first counter includes the second.';

CREATE OPERATOR = (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR <> (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR <= (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_le, COMMUTATOR = >=);
CREATE OPERATOR >= (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_ge, COMMUTATOR = <=);
CREATE OPERATOR || (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_merge, COMMUTATOR = ||);
CREATE OPERATOR CLASS gcounter_hash_ops DEFAULT FOR TYPE gcounter USING hash AS
    OPERATOR 1 = (gcounter, gcounter),
    FUNCTION 1 gcounter_hash(gcounter),
    FUNCTION 2 gcounter_hash_extended(gcounter, bigint);

-- A total order by canonical bytes, so ORDER BY, DISTINCT, UNION and merge joins work. It is
-- arbitrary but stable; the lattice order is <= and >= above.
CREATE FUNCTION gcounter_bytes_cmp(gcounter, gcounter) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteacmp';
CREATE FUNCTION gcounter_bytes_lt(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'bytealt';
CREATE FUNCTION gcounter_bytes_le(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteale';
CREATE FUNCTION gcounter_bytes_ge(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteage';
CREATE FUNCTION gcounter_bytes_gt(gcounter, gcounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteagt';
CREATE OPERATOR ~<~ (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_bytes_lt,
    COMMUTATOR = ~>~, NEGATOR = ~>=~, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR ~<=~ (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_bytes_le,
    COMMUTATOR = ~>=~, NEGATOR = ~>~, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR ~>=~ (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_bytes_ge,
    COMMUTATOR = ~<=~, NEGATOR = ~<~, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR ~>~ (LEFTARG = gcounter, RIGHTARG = gcounter, FUNCTION = gcounter_bytes_gt,
    COMMUTATOR = ~<~, NEGATOR = ~<=~, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR CLASS gcounter_bytes_ops DEFAULT FOR TYPE gcounter USING btree AS
    OPERATOR 1 ~<~, OPERATOR 2 ~<=~, OPERATOR 3 =, OPERATOR 4 ~>=~, OPERATOR 5 ~>~,
    FUNCTION 1 gcounter_bytes_cmp(gcounter, gcounter);

CREATE FUNCTION pncounter_eq(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteaeq';
CREATE FUNCTION pncounter_ne(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteane';
CREATE FUNCTION pncounter_hash(pncounter) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlena';
CREATE FUNCTION pncounter_hash_extended(pncounter, bigint) RETURNS bigint
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'hashvarlenaextended';
CREATE FUNCTION pncounter_le(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_le_wrapper';
CREATE FUNCTION pncounter_ge(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_ge_wrapper';
COMMENT ON FUNCTION pncounter_le(pncounter, pncounter) IS 'Lattice order: true when the second counter includes the first (P and N slot by slot).';
COMMENT ON FUNCTION pncounter_ge(pncounter, pncounter) IS 'Lattice order: true when the first counter includes the second (P and N slot by slot).';

CREATE OPERATOR = (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR <> (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR <= (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_le, COMMUTATOR = >=);
CREATE OPERATOR >= (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_ge, COMMUTATOR = <=);
CREATE OPERATOR || (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_merge, COMMUTATOR = ||);
CREATE OPERATOR CLASS pncounter_hash_ops DEFAULT FOR TYPE pncounter USING hash AS
    OPERATOR 1 = (pncounter, pncounter),
    FUNCTION 1 pncounter_hash(pncounter),
    FUNCTION 2 pncounter_hash_extended(pncounter, bigint);

-- A total order by canonical bytes, so ORDER BY, DISTINCT, UNION and merge joins work. It is
-- arbitrary but stable; the lattice order is <= and >= above.
CREATE FUNCTION pncounter_bytes_cmp(pncounter, pncounter) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteacmp';
CREATE FUNCTION pncounter_bytes_lt(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'bytealt';
CREATE FUNCTION pncounter_bytes_le(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteale';
CREATE FUNCTION pncounter_bytes_ge(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteage';
CREATE FUNCTION pncounter_bytes_gt(pncounter, pncounter) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE internal AS 'byteagt';
CREATE OPERATOR ~<~ (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_bytes_lt,
    COMMUTATOR = ~>~, NEGATOR = ~>=~, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR ~<=~ (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_bytes_le,
    COMMUTATOR = ~>=~, NEGATOR = ~>~, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR ~>=~ (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_bytes_ge,
    COMMUTATOR = ~<=~, NEGATOR = ~<~, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR ~>~ (LEFTARG = pncounter, RIGHTARG = pncounter, FUNCTION = pncounter_bytes_gt,
    COMMUTATOR = ~<~, NEGATOR = ~<=~, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR CLASS pncounter_bytes_ops DEFAULT FOR TYPE pncounter USING btree AS
    OPERATOR 1 ~<~, OPERATOR 2 ~<=~, OPERATOR 3 =, OPERATOR 4 ~>=~, OPERATOR 5 ~>~,
    FUNCTION 1 pncounter_bytes_cmp(pncounter, pncounter);

-- ---------------------------------------------------------------------------------------------
-- Aggregates: internal state, parallel safe; zero rows give an empty counter.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION gcounter_merge_trans(internal, gcounter) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_trans_wrapper';
CREATE FUNCTION gcounter_merge_combine(internal, internal) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_combine_wrapper';
CREATE FUNCTION gcounter_merge_serial(internal) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_serial_wrapper';
CREATE FUNCTION gcounter_merge_deserial(bytea, internal) RETURNS internal
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_deserial_wrapper';
CREATE FUNCTION gcounter_merge_final(internal) RETURNS gcounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_final_wrapper';
CREATE AGGREGATE gcounter_merge_agg(gcounter) (
    SFUNC = gcounter_merge_trans, STYPE = internal, SSPACE = 256,
    FINALFUNC = gcounter_merge_final,
    COMBINEFUNC = gcounter_merge_combine,
    SERIALFUNC = gcounter_merge_serial, DESERIALFUNC = gcounter_merge_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE gcounter_merge_agg(gcounter) IS 'Merges all counters (NULLs skipped); zero rows give an empty counter.';

CREATE FUNCTION pncounter_merge_trans(internal, pncounter) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_trans_wrapper';
CREATE FUNCTION pncounter_merge_combine(internal, internal) RETURNS internal
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_combine_wrapper';
CREATE FUNCTION pncounter_merge_serial(internal) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_serial_wrapper';
CREATE FUNCTION pncounter_merge_deserial(bytea, internal) RETURNS internal
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_deserial_wrapper';
CREATE FUNCTION pncounter_merge_final(internal) RETURNS pncounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_final_wrapper';
CREATE AGGREGATE pncounter_merge_agg(pncounter) (
    SFUNC = pncounter_merge_trans, STYPE = internal, SSPACE = 256,
    FINALFUNC = pncounter_merge_final,
    COMBINEFUNC = pncounter_merge_combine,
    SERIALFUNC = pncounter_merge_serial, DESERIALFUNC = pncounter_merge_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE pncounter_merge_agg(pncounter) IS 'Merges all counters (NULLs skipped); zero rows give an empty counter.';
