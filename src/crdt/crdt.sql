-- G-Counter and PN-Counter: CRDT counters that merge without coordination.
-- Entry points are in src/crdt/sql.rs; this script declares them.

-- ---------------------------------------------------------------------------------------------
-- Node identity
-- ---------------------------------------------------------------------------------------------

-- Where this database runs: compared with where its node id was made, to catch copies
-- (restored backups, clones, promoted standbys). The timeline is NULL during recovery. It
-- names the data directory, which core shows only to pg_read_all_settings: not for PUBLIC.
CREATE FUNCTION node_fingerprint(
    OUT system_identifier bigint, OUT timeline_id integer, OUT database_oid oid, OUT data_directory text)
    LANGUAGE sql VOLATILE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.system_identifier,
               CASE WHEN pg_is_in_recovery() THEN NULL
                    ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::integer END,
               (SELECT oid FROM pg_database WHERE datname = current_database()),
               current_setting('data_directory')
        FROM pg_control_system() s
    $$;
REVOKE ALL ON FUNCTION node_fingerprint() FROM PUBLIC;
COMMENT ON FUNCTION node_fingerprint() IS 'Where this database runs now: system identifier, WAL timeline, database OID, data directory (not for PUBLIC: it names the data directory).';

-- One row: the id this database writes its counter slots under, and the fingerprint of where
-- it was made. Deliberately not dumped by pg_dump (not a configuration table): a restored
-- database gets a fresh id from CREATE EXTENSION instead of writing into the original's slots.
CREATE TABLE node (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id                text NOT NULL CHECK (octet_length(id) BETWEEN 1 AND 63),
    system_identifier bigint NOT NULL,
    timeline_id       integer,
    database_oid      oid NOT NULL,
    data_directory    text NOT NULL,
    previous_id       text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO node (id, system_identifier, timeline_id, database_oid, data_directory)
SELECT pg_catalog.gen_random_uuid()::text, f.* FROM node_fingerprint() f;
COMMENT ON TABLE node IS 'The local node id (one row, made at CREATE EXTENSION) and the fingerprint of where it was made.';
-- The fingerprint names the data directory and the system identifier: only the owner reads the
-- table. Every role reads the id through node_id().
REVOKE ALL ON node FROM PUBLIC;

-- The check behind node_id(), with the owner's rights (the caller may not read the fingerprint):
-- the id, and whether this database still runs where it was made. verdict is ok, recovery (a
-- standby: nothing to protect until promotion), copy (refused by node_id) or rotated (the copy
-- got a new id because pg_distcount.on_node_copy, a superuser setting, is rotate). differs names
-- what changed, never its value.
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

-- No SET search_path here: its one query names distcount.node_check() in full and uses no
-- operator, and that clause would cost a GUC save and restore on every increment that takes
-- the default node.
CREATE FUNCTION node_id() RETURNS text
    VOLATILE PARALLEL RESTRICTED
    LANGUAGE c AS 'MODULE_PATHNAME', 'node_id_wrapper';
COMMENT ON FUNCTION node_id() IS 'The local node id: pg_distcount.node_id when set, else the id in distcount.node, checked against this database''s fingerprint (see pg_distcount.on_node_copy).';

-- Runs with the owner's rights (the table is the owner's); EXECUTE is for the admin role.
CREATE FUNCTION node_rotate() RETURNS text
    VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    LANGUAGE c AS 'MODULE_PATHNAME', 'node_rotate_wrapper';
REVOKE ALL ON FUNCTION node_rotate() FROM PUBLIC;
COMMENT ON FUNCTION node_rotate() IS 'Gives this database a new node id (the old one is kept in distcount.node.previous_id); for copies of a node.';

-- Nodes that will never write again, and the live node whose slot absorbs theirs.
CREATE TABLE retired_node (
    id         text PRIMARY KEY CHECK (octet_length(id) BETWEEN 1 AND 63),
    into_id    text NOT NULL CHECK (octet_length(into_id) BETWEEN 1 AND 63 AND into_id <> id),
    retired_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE retired_node IS 'Retired node ids and the node each is folded into; record a retirement on every node, only after the retired node''s last state has reached every peer.';
SELECT pg_catalog.pg_extension_config_dump('retired_node', '');
-- Every role that merges or prunes counters reads it; retired ids are not secret.
GRANT SELECT ON retired_node TO PUBLIC;

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

CREATE FUNCTION gcounter_merge_trans(gcounter, gcounter) RETURNS gcounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_trans_wrapper';
CREATE FUNCTION gcounter_merge_final(gcounter) RETURNS gcounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_merge_final_wrapper';
-- The state is a gcounter (an expanded object, merged in place: src/common/aggregate.rs), so
-- that Citus splits the aggregate across its workers.
CREATE AGGREGATE gcounter_merge_agg(gcounter) (
    SFUNC = gcounter_merge_trans, STYPE = gcounter, SSPACE = 1300,
    FINALFUNC = gcounter_merge_final, COMBINEFUNC = gcounter_merge_trans, PARALLEL = SAFE
);
COMMENT ON AGGREGATE gcounter_merge_agg(gcounter) IS 'Merges all counters (NULLs skipped); zero rows give an empty counter.';

CREATE FUNCTION pncounter_merge_trans(pncounter, pncounter) RETURNS pncounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_trans_wrapper';
CREATE FUNCTION pncounter_merge_final(pncounter) RETURNS pncounter
    IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_merge_final_wrapper';
-- The state is a pncounter (an expanded object, merged in place: src/common/aggregate.rs), so
-- that Citus splits the aggregate across its workers.
CREATE AGGREGATE pncounter_merge_agg(pncounter) (
    SFUNC = pncounter_merge_trans, STYPE = pncounter, SSPACE = 1300,
    FINALFUNC = pncounter_merge_final, COMBINEFUNC = pncounter_merge_trans, PARALLEL = SAFE
);
COMMENT ON AGGREGATE pncounter_merge_agg(pncounter) IS 'Merges all counters (NULLs skipped); zero rows give an empty counter.';

-- ---------------------------------------------------------------------------------------------
-- Deltas and retired nodes
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION gcounter_delta(newer gcounter, older gcounter) RETURNS gcounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_delta_wrapper';
COMMENT ON FUNCTION gcounter_delta(gcounter, gcounter) IS 'The slots of newer that grew past older: older || delta = older || newer.';
CREATE FUNCTION pncounter_delta(newer pncounter, older pncounter) RETURNS pncounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_delta_wrapper';
COMMENT ON FUNCTION pncounter_delta(pncounter, pncounter) IS 'The slots of newer that grew past older (P or N): older || delta = older || newer.';

CREATE FUNCTION gcounter_fold_slot(c gcounter, retired text, "into" text) RETURNS gcounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'gcounter_fold_slot_wrapper';
COMMENT ON FUNCTION gcounter_fold_slot(gcounter, text, text) IS 'Adds retired''s slot to into''s and drops it, without checking distcount.retired_node (use gcounter_prune).';
CREATE FUNCTION pncounter_fold_slot(c pncounter, retired text, "into" text) RETURNS pncounter
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'pncounter_fold_slot_wrapper';
COMMENT ON FUNCTION pncounter_fold_slot(pncounter, text, text) IS 'Adds retired''s P and N to into''s and drops it, without checking distcount.retired_node (use pncounter_prune).';

CREATE FUNCTION node_retire(retired text, "into" text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE recorded text;
    BEGIN
        IF $1 = $2 THEN
            RAISE EXCEPTION 'node "%" cannot be retired into itself', $1 USING ERRCODE = '22023';
        END IF;
        SELECT r.into_id INTO recorded FROM distcount.retired_node r WHERE r.id = $1;
        IF recorded IS NOT NULL THEN
            RAISE EXCEPTION 'node "%" is already retired into "%"', $1, recorded USING ERRCODE = '23505';
        END IF;
        INSERT INTO distcount.retired_node (id, into_id) VALUES ($1, $2);
    END $$;
REVOKE ALL ON FUNCTION node_retire(text, text) FROM PUBLIC;
COMMENT ON FUNCTION node_retire(text, text) IS 'Records that node retired will never write again and folds into node into. Run it on every node, only after retired''s last state has reached every peer.';

CREATE FUNCTION crdt_check_retired(retired text, "into" text) RETURNS void
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE recorded text;
    BEGIN
        SELECT r.into_id INTO recorded FROM distcount.retired_node r WHERE r.id = $1;
        IF recorded IS NULL THEN
            RAISE EXCEPTION 'node "%" is not recorded as retired', $1
                USING ERRCODE = '55000',
                      HINT = 'Record it on every node with distcount.node_retire(retired, into), only after its last state has reached every peer.';
        ELSIF recorded <> $2 THEN
            RAISE EXCEPTION 'node "%" is recorded as retired into "%", not "%"', $1, recorded, $2
                USING ERRCODE = '22023';
        END IF;
    END $$;

CREATE FUNCTION gcounter_prune(c gcounter, retired text, "into" text) RETURNS gcounter
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN
        PERFORM distcount.crdt_check_retired($2, $3);
        RETURN distcount.gcounter_fold_slot($1, $2, $3);
    END $$;
COMMENT ON FUNCTION gcounter_prune(gcounter, text, text) IS 'Folds a retired node''s slot into another; only for nodes recorded in distcount.retired_node.';
CREATE FUNCTION pncounter_prune(c pncounter, retired text, "into" text) RETURNS pncounter
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN
        PERFORM distcount.crdt_check_retired($2, $3);
        RETURN distcount.pncounter_fold_slot($1, $2, $3);
    END $$;
COMMENT ON FUNCTION pncounter_prune(pncounter, text, text) IS 'Folds a retired node''s slot into another; only for nodes recorded in distcount.retired_node.';

-- Every recorded retirement applied. Replication merges normalise both sides with these
-- before merging, so a stale state still holding a retired slot cannot count it twice.
CREATE FUNCTION gcounter_prune_retired(c gcounter) RETURNS gcounter
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ DECLARE r record; BEGIN
        FOR r IN SELECT id, into_id FROM distcount.retired_node ORDER BY retired_at, id LOOP
            c := distcount.gcounter_fold_slot(c, r.id, r.into_id);
        END LOOP;
        RETURN c;
    END $$;
CREATE FUNCTION pncounter_prune_retired(c pncounter) RETURNS pncounter
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ DECLARE r record; BEGIN
        FOR r IN SELECT id, into_id FROM distcount.retired_node ORDER BY retired_at, id LOOP
            c := distcount.pncounter_fold_slot(c, r.id, r.into_id);
        END LOOP;
        RETURN c;
    END $$;
