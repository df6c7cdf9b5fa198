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
