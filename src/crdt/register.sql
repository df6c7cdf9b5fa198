-- LWW-Register: the last writer wins, on a hybrid logical clock. Entry points are in
-- src/crdt/register_sql.rs; the algorithm and formats in src/crdt/register.rs.

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
