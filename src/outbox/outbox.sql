-- Outbox: an event written in the same transaction as the business row, as a row in
-- distcount.outbox (mode table), a transactional logical decoding message (mode message) or
-- both. The trigger functions and outbox_emit are in Rust (src/outbox/sql.rs); the relay for
-- teams without CDC is PL/pgSQL, below.

CREATE SEQUENCE outbox_seq;
-- Debezium's outbox event router reads these column names with its default settings.
CREATE TABLE outbox (
    id                 uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    aggregatetype      varchar(255) NOT NULL,
    aggregateid        varchar(255) NOT NULL,
    type               varchar(255) NOT NULL,
    payload            jsonb,
    headers            jsonb,
    tracingspancontext varchar(512),
    seq                bigint NOT NULL DEFAULT pg_catalog.nextval('distcount.outbox_seq'),
    txid               xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
ALTER SEQUENCE outbox_seq OWNED BY outbox.seq;
-- The relay reads events by writing transaction (see outbox_ingest).
CREATE INDEX outbox_txid_idx ON outbox (txid);
-- Events are the application's data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('outbox', '');
SELECT pg_catalog.pg_extension_config_dump('outbox_seq', '');
COMMENT ON TABLE outbox IS 'Outbox events (insert-only; Debezium event router column names). seq orders events; txid is the writing transaction.';
-- Writers get INSERT on the event columns only (README, Security): seq, txid and created_at,
-- which the relay trusts, always come from their defaults.

-- The event router treats an UPDATE of the outbox as invalid; delivery state lives elsewhere.
-- outbox_ingest may rewrite txid of rows restored from another cluster (see there).
CREATE FUNCTION outbox_refuse_update() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('distcount.outbox_rebasing', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'distcount.outbox is insert-only'
        USING ERRCODE = '55000',
              HINT = 'CDC routers treat an UPDATE of an outbox row as invalid; write a new event instead.';
END
$$;
CREATE TRIGGER outbox_insert_only BEFORE UPDATE ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_refuse_update();

-- Writing events ------------------------------------------------------------------------------

-- EXECUTE on the trigger functions and outbox_emit is granted, not PUBLIC: in message mode
-- they write events that CDC consumers trust without any table privilege.
CREATE FUNCTION outbox_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'outbox_trigger';
REVOKE ALL ON FUNCTION outbox_trigger() FROM PUBLIC;
COMMENT ON FUNCTION outbox_trigger() IS 'AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW trigger: one outbox event per changed row. Arguments: aggregatetype, key column(s) [, mode table|message|both|default [, type format (default {aggregatetype}{Op}) [, payload new|old_new]]].';

CREATE FUNCTION outbox_statement_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'outbox_statement_trigger';
REVOKE ALL ON FUNCTION outbox_statement_trigger() FROM PUBLIC;
COMMENT ON FUNCTION outbox_statement_trigger() IS 'AFTER INSERT (or UPDATE, or DELETE) ... REFERENCING NEW (OLD) TABLE AS t FOR EACH STATEMENT trigger: the events of a bulk statement in one set-based pass. Arguments as outbox_trigger, payload new only.';

CREATE FUNCTION outbox_emit(aggregatetype text, aggregateid text, type text, payload jsonb,
                            mode text DEFAULT NULL) RETURNS uuid
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'outbox_emit';
REVOKE ALL ON FUNCTION outbox_emit(text, text, text, jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION outbox_emit(text, text, text, jsonb, text) IS 'Writes one event in the current transaction (mode table, message, both; default pg_distcount.outbox_mode) and returns its id.';

CREATE FUNCTION outbox_relay_idle(idle boolean DEFAULT true) RETURNS void
    LANGUAGE c STRICT VOLATILE AS 'MODULE_PATHNAME', 'outbox_relay_idle_wrapper';
-- Holding it makes every writing transaction notify (and so serialise its commit): not PUBLIC.
REVOKE ALL ON FUNCTION outbox_relay_idle(boolean) FROM PUBLIC;
COMMENT ON FUNCTION outbox_relay_idle(boolean) IS 'A relay that LISTENs on distcount_outbox calls it with true before it waits (writers then send NOTIFY at commit) and with false when it works again; a session-level lock, released at disconnect.';

CREATE FUNCTION cdc_heartbeat(prefix text DEFAULT 'distcount.heartbeat') RETURNS pg_lsn
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cdc_heartbeat';
-- It writes and flushes WAL on demand: for the relay and admin roles only.
REVOKE ALL ON FUNCTION cdc_heartbeat(text) FROM PUBLIC;
COMMENT ON FUNCTION cdc_heartbeat(text) IS 'Writes and flushes a non-transactional logical decoding message, so an idle logical slot can advance (Debezium heartbeat.action.query). Returns its LSN.';

CREATE FUNCTION outbox_null_key(key_column text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'outbox trigger: key column "%" is null', key_column
        USING ERRCODE = '23502', HINT = 'An event needs an aggregate id; make the key column NOT NULL.';
END
$$;
COMMENT ON FUNCTION outbox_null_key(text) IS 'Internal: raises the error of a null key column in outbox_statement_trigger.';

CREATE FUNCTION outbox_trigger_check(trigger oid, statement_form boolean) RETURNS void
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'outbox_trigger_check_wrapper';
COMMENT ON FUNCTION outbox_trigger_check(oid, boolean) IS 'Internal: refuses, at CREATE TRIGGER, an outbox trigger whose attachment or arguments could not write its events.';

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
BEGIN
    -- A plain table, or the shell of a Citus table on the coordinator (which holds no rows).
    IF NOT pg_catalog.relation_is_a_known_shard(rel) THEN
        RETURN true;
    END IF;
    -- A shard is named after its table and shard id: orders_102008. (From the regclass's name:
    -- Citus hides shards from queries on pg_class in application sessions.)
    v_shard := (pg_catalog.regexp_match(rel::text, '_([0-9]+)"?$'))[1]::bigint;
    -- No placement known (metadata not synced to this node): write rather than lose.
    RETURN coalesce((SELECT min(p.groupid) FROM pg_catalog.pg_dist_placement AS p
                      WHERE p.shardid OPERATOR(pg_catalog.=) v_shard)
                    OPERATOR(pg_catalog.=) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group AS g),
                    true);
END
$$;
COMMENT ON FUNCTION outbox_citus_emits(regclass) IS 'Internal: whether an outbox trigger firing on this relation writes the event (on Citus, only the shard placement in the lowest node group does).';

-- Fires on every CREATE TRIGGER in the database, by any role: it must not need USAGE on schema
-- distcount (a role without it creating an unrelated trigger must succeed), so it finds outbox
-- triggers through the catalogs alone and calls into distcount only for them (whose creator
-- needed USAGE and EXECUTE to name the function).
CREATE FUNCTION outbox_check_new_triggers() RETURNS event_trigger
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
CREATE EVENT TRIGGER distcount_outbox_check ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER')
    EXECUTE FUNCTION outbox_check_new_triggers();

CREATE FUNCTION outbox_max_attempts() RETURNS integer
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'outbox_max_attempts_wrapper';
COMMENT ON FUNCTION outbox_max_attempts() IS 'Claims after which the relay dead-letters an event (setting pg_distcount.outbox_max_attempts).';

-- The relay -----------------------------------------------------------------------------------
--
-- Each consumer (a name; concurrent workers with one name share its events, different names
-- each get every event) has its own queue, outbox_pending, filled from the outbox by snapshot:
-- a fill queues the events visible now that the previous fill's snapshot could not see, and
-- keeps the current snapshot. So an event whose transaction commits late, whatever its seq, is
-- queued by the next fill, and events of one aggregate whose writers were serialised (by the
-- business row's lock) are queued in commit order. One event per aggregate is the head
-- (is_head); only heads are handed out, and the next event of an aggregate becomes the head
-- when the current one is acknowledged or dead-lettered: per-aggregate order.
-- Locks: filling a queue and moving its heads take one advisory lock per consumer (exclusive to
-- fill, shared to move heads), so a head is never lost between the two.
-- Relay state is not dumped: after a restore, consumers start over (at-least-once).

CREATE TABLE outbox_consumer (
    consumer   text PRIMARY KEY CHECK (consumer <> ''),
    seen       pg_snapshot NOT NULL DEFAULT '1:1:',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    relay_role name NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE outbox_consumer IS 'Relay consumers: every event written by a transaction visible in snapshot seen is queued or done; only members of relay_role may claim, acknowledge or drop its events.';

-- fillfactor leaves room for the lease updates to stay HOT.
CREATE TABLE outbox_pending (
    consumer      text NOT NULL,
    id            uuid NOT NULL,
    seq           bigint NOT NULL,
    aggregatetype varchar(255) NOT NULL,
    aggregateid   varchar(255) NOT NULL,
    is_head       boolean NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    leased_until  timestamptz,
    last_error    text,
    -- false only when the event is known to be the last queued of its aggregate: its
    -- acknowledgement then looks for no next event (one index probe per event saved).
    has_next      boolean NOT NULL DEFAULT true
) WITH (fillfactor = 70);
-- Two indexes, each cheap to fill (every index costs about as much as the row per event
-- queued): the heads in seq order, which claims, acknowledgements and nacks probe (an id is
-- looked up in the outbox first, for its seq), and each aggregate's events in seq order, keyed
-- by a bigint hash of the aggregate (the text columns are rechecked), for promoting the next
-- event and for a fill into a queue that is not empty. No key on (consumer, id): a fill queues
-- each event once (one filler per consumer, by snapshot), and a dead letter leaves the queue.
CREATE INDEX outbox_pending_head_idx ON outbox_pending (consumer, seq) WHERE is_head;
CREATE INDEX outbox_pending_aggregate_idx ON outbox_pending
    (consumer, pg_catalog.hashtextextended(aggregateid, pg_catalog.hashtext(aggregatetype)), seq);
COMMENT ON TABLE outbox_pending IS 'Relay queues: events not yet acknowledged by a consumer, with their lease and attempt count.';

CREATE TABLE outbox_dead (
    consumer      text NOT NULL,
    id            uuid NOT NULL,
    seq           bigint NOT NULL,
    aggregatetype varchar(255) NOT NULL,
    aggregateid   varchar(255) NOT NULL,
    attempts      integer NOT NULL,
    last_error    text,
    died_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (consumer, id)
);
COMMENT ON TABLE outbox_dead IS 'Dead letters: events a consumer failed pg_distcount.outbox_max_attempts times (outbox_retry_dead puts them back).';

-- Per-consumer rights. The relay functions run as the caller (so they know who calls) and check
-- the consumer's role with a clear error; row-level security enforces the same on the tables,
-- which relay roles are granted (README, Security): a role sees and changes only the consumers
-- whose relay_role it has the privileges of, and their queues and dead letters.
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

CREATE FUNCTION outbox_check_consumer(consumer text, batch integer DEFAULT 1, lease interval DEFAULT '1 second')
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

-- Rows restored from another cluster can carry transaction ids this cluster has not reached
-- yet; they committed long ago, so give them the current one (one index probe when none).
-- Writers cannot set txid (README, Security), so only a restore makes such rows; this runs with
-- the owner's rights, since the relay may not update the outbox.
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

-- ANALYZE needs the owner; the relay roles are not.
CREATE FUNCTION outbox_analyze_queue() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    ANALYZE distcount.outbox_pending;
END
$$;
COMMENT ON FUNCTION outbox_analyze_queue() IS 'Internal: refreshes the statistics of the relay queues after a large fill.';

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

-- Queues the events that became visible since the consumer's last fill; returns how many.
CREATE FUNCTION outbox_ingest(consumer text) RETURNS bigint
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

-- Removes heads from a queue (acknowledged, or dead-lettered) and promotes each aggregate's
-- next event to head.
CREATE FUNCTION outbox_remove_heads(consumer text, ids uuid[], dead boolean) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- The estimates of the probes below (row-level security hides the queue's size) would
    -- compile each acknowledgement's plans (8 ms of 15).
    SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_consumer text := outbox_remove_heads.consumer;
    v_dead boolean := outbox_remove_heads.dead;
    v_tids tid[];
    v_count integer;
    v_types text[];
    v_aggregates text[];
    v_next tid[];
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('distcount.outbox'), hashtext(v_consumer));
    -- Per id its seq from the outbox (LIMIT 1: a probe, never a hash join over the outbox),
    -- then the head by seq, then the rows by address: as one join the planner, misled by the
    -- queue's statistics, may read the whole queue for each batch. The rows are locked as
    -- they are found (and checked again if they changed meanwhile), so their addresses hold
    -- until the delete. An event no longer in the outbox (deleted by hand) is not found: its
    -- head is dead-lettered once its claims run out, as when its claim returned nothing.
    SELECT array_agg(r.ctid) INTO v_tids
      FROM unnest(outbox_remove_heads.ids) AS u (id)
     CROSS JOIN LATERAL (SELECT o.seq FROM distcount.outbox AS o WHERE o.id = u.id LIMIT 1) AS e
     CROSS JOIN LATERAL (SELECT p.ctid FROM distcount.outbox_pending AS p
                          WHERE p.consumer = v_consumer AND p.seq = e.seq AND p.is_head
                            AND p.id = u.id AND (v_dead OR p.attempts > 0)
                          LIMIT 1 FOR UPDATE) AS r;
    WITH gone AS (
        DELETE FROM distcount.outbox_pending AS p
         USING (SELECT DISTINCT t FROM unnest(v_tids) AS t) AS u (t)
         WHERE p.ctid = u.t
        RETURNING p.*
    ), buried AS (
        INSERT INTO distcount.outbox_dead (consumer, id, seq, aggregatetype, aggregateid, attempts, last_error)
        SELECT g.consumer, g.id, g.seq, g.aggregatetype, g.aggregateid, g.attempts, g.last_error
          FROM gone AS g WHERE v_dead
        ON CONFLICT DO NOTHING
    )
    SELECT count(*), array_agg(g.aggregatetype) FILTER (WHERE g.has_next),
           array_agg(g.aggregateid) FILTER (WHERE g.has_next)
      INTO v_count, v_types, v_aggregates
      FROM gone AS g;
    IF v_types IS NOT NULL THEN
        -- The next event of each aggregate first, locked, then one update by row address: as
        -- a single UPDATE ... FROM, or an update joined by id, the planner may drive the join
        -- from the queue side (row-level security hides its size from the estimate) and read
        -- the whole queue per batch (a hash join over every queued row, 80 ms a batch of 1,000
        -- with 100 events per aggregate). No lock: nothing else changes an event that waits
        -- behind its aggregate's head (claims and nacks take heads; fills and outbox_retry_dead
        -- hold the consumer's lock exclusively), so the addresses hold until the update.
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
            -- A new head may have events queued behind it by a later fill: has_next true.
            UPDATE distcount.outbox_pending AS p SET is_head = true, has_next = true
              FROM unnest(v_next) AS u (t)
             WHERE p.ctid = u.t AND p.consumer = v_consumer AND NOT p.is_head;
        END IF;
    END IF;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION outbox_remove_heads(text, uuid[], boolean) IS 'Internal: removes acknowledged or dead events from a queue and promotes the next event of each aggregate.';

CREATE FUNCTION outbox_claim(consumer text, batch integer DEFAULT 100,
                             lease interval DEFAULT '30 seconds')
    RETURNS SETOF outbox
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- Heads in index order whatever the statistics say (estimated at a few rows, every head
    -- would be sorted); JIT never pays back here.
    SET enable_bitmapscan = off SET enable_sort = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_consumer text := outbox_claim.consumer;
    v_max integer := distcount.outbox_max_attempts();
    -- The heads to lease, by row address: they stay locked by this transaction until the
    -- update, so the addresses hold, and the update probes them directly.
    v_tids tid[];
    v_dead uuid[];
BEGIN
    PERFORM distcount.outbox_check_consumer(v_consumer, outbox_claim.batch, outbox_claim.lease);
    PERFORM distcount.outbox_ingest(v_consumer);
    -- Heads free to take: never leased, or their lease ran out. A head out of attempts is
    -- dead-lettered instead (its consumer crashed or hung max_attempts times).
    FOR attempt_round IN 1..10 LOOP
        SELECT array_agg(h.ctid) FILTER (WHERE h.attempts < v_max),
               array_agg(h.id) FILTER (WHERE h.attempts >= v_max)
          INTO v_tids, v_dead
          FROM (SELECT p.ctid, p.id, p.attempts
                  FROM distcount.outbox_pending AS p
                 WHERE p.consumer = v_consumer AND p.is_head
                   AND (p.leased_until IS NULL OR p.leased_until <= clock_timestamp())
                 ORDER BY p.seq
                 LIMIT outbox_claim.batch
                   FOR UPDATE SKIP LOCKED) AS h;
        IF v_dead IS NOT NULL THEN
            PERFORM distcount.outbox_remove_heads(v_consumer, v_dead, true);
        END IF;
        EXIT WHEN v_dead IS NULL OR v_tids IS NOT NULL;
    END LOOP;
    IF v_tids IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH leased AS (
        UPDATE distcount.outbox_pending AS p
           SET attempts = p.attempts + 1,
               leased_until = clock_timestamp() + outbox_claim.lease
          FROM unnest(v_tids) AS u (t)
         WHERE p.ctid = u.t AND p.consumer = v_consumer
        RETURNING p.id
    )
    SELECT o.* FROM distcount.outbox AS o JOIN leased AS l ON l.id = o.id ORDER BY o.seq;
END
$$;
COMMENT ON FUNCTION outbox_claim(text, integer, interval) IS 'Leases up to batch events to a consumer: the oldest unacknowledged event of each aggregate, at most one per aggregate, none whose transaction could still be overtaken. Call it in its own transaction.';

CREATE FUNCTION outbox_ack(consumer text, ids uuid[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM distcount.outbox_check_consumer(outbox_ack.consumer);
    RETURN distcount.outbox_remove_heads(outbox_ack.consumer, outbox_ack.ids, false);
END
$$;
COMMENT ON FUNCTION outbox_ack(text, uuid[]) IS 'Acknowledges claimed events; the next event of each aggregate becomes claimable. Returns how many were acknowledged (ids never claimed are ignored).';

CREATE FUNCTION outbox_nack(consumer text, id uuid, error text DEFAULT NULL,
                            retry_in interval DEFAULT '0 seconds') RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_attempts integer;
BEGIN
    PERFORM distcount.outbox_check_consumer(outbox_nack.consumer);
    UPDATE distcount.outbox_pending AS p
       SET last_error = outbox_nack.error,
           leased_until = clock_timestamp() + coalesce(outbox_nack.retry_in, interval '0')
     WHERE p.consumer = outbox_nack.consumer AND p.is_head
       AND p.seq = (SELECT o.seq FROM distcount.outbox AS o WHERE o.id = outbox_nack.id)
       AND p.id = outbox_nack.id AND p.attempts > 0
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

CREATE FUNCTION outbox_retry_dead(consumer text, ids uuid[] DEFAULT NULL) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- Probes by index (the queue by aggregate), whatever the queue's statistics say.
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_consumer text := outbox_retry_dead.consumer;
    v_count integer;
    v_types text[];
    v_aggregates text[];
BEGIN
    PERFORM distcount.outbox_check_consumer(v_consumer);
    PERFORM pg_advisory_xact_lock(hashtext('distcount.outbox'), hashtext(v_consumer));
    WITH back AS (
        DELETE FROM distcount.outbox_dead AS d
         WHERE d.consumer = v_consumer AND (outbox_retry_dead.ids IS NULL OR d.id = ANY (outbox_retry_dead.ids))
        RETURNING d.*
    ), queued AS (
        INSERT INTO distcount.outbox_pending AS p (consumer, id, seq, aggregatetype, aggregateid, is_head)
        SELECT b.consumer, b.id, b.seq, b.aggregatetype, b.aggregateid,
               row_number() OVER (PARTITION BY b.aggregatetype, b.aggregateid ORDER BY b.seq) = 1
               AND NOT EXISTS (SELECT FROM distcount.outbox_pending AS q
                                WHERE q.consumer = v_consumer
                                  AND hashtextextended(q.aggregateid, hashtext(q.aggregatetype))
                                      = hashtextextended(b.aggregateid, hashtext(b.aggregatetype))
                                  AND q.aggregatetype = b.aggregatetype
                                  AND q.aggregateid = b.aggregateid)
          FROM back AS b
        RETURNING p.aggregatetype, p.aggregateid, p.is_head
    ), waiting AS (
        SELECT DISTINCT q.aggregatetype, q.aggregateid FROM queued AS q WHERE NOT q.is_head
    )
    SELECT (SELECT count(*) FROM queued), (SELECT array_agg(w.aggregatetype) FROM waiting AS w),
           (SELECT array_agg(w.aggregateid) FROM waiting AS w)
      INTO v_count, v_types, v_aggregates;
    IF v_types IS NOT NULL THEN
        PERFORM distcount.outbox_heads_have_next(v_consumer, v_types, v_aggregates);
    END IF;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION outbox_retry_dead(text, uuid[]) IS 'Puts dead letters of a consumer (all, or the given ids) back in its queue with fresh attempts.';

CREATE FUNCTION outbox_drop_consumer(consumer text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM distcount.outbox_check_consumer(outbox_drop_consumer.consumer);
    PERFORM pg_advisory_xact_lock(hashtext('distcount.outbox'), hashtext(outbox_drop_consumer.consumer));
    DELETE FROM distcount.outbox_pending AS p WHERE p.consumer = outbox_drop_consumer.consumer;
    DELETE FROM distcount.outbox_dead AS d WHERE d.consumer = outbox_drop_consumer.consumer;
    DELETE FROM distcount.outbox_consumer AS c WHERE c.consumer = outbox_drop_consumer.consumer;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION outbox_drop_consumer(text) IS 'Forgets a relay consumer: its position, queue and dead letters.';

-- Runs with the owner's rights, so it sees every consumer (row-level security would hide some
-- from the caller, and their events would go); EXECUTE is for the admin role.
CREATE FUNCTION outbox_cleanup(older_than interval DEFAULT '7 days') RETURNS bigint
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
COMMENT ON FUNCTION outbox_cleanup(interval) IS 'Deletes outbox events older than older_than that every relay consumer is done with; returns how many.';

-- With the caller's rights: a relay role sees its own consumers.
CREATE VIEW outbox_stats WITH (security_invoker = true) AS
SELECT c.consumer,
       (SELECT count(*) FROM distcount.outbox_pending AS p WHERE p.consumer = c.consumer) AS queued,
       (SELECT count(*) FROM distcount.outbox AS o
         WHERE o.txid >= pg_catalog.pg_snapshot_xmin(c.seen)
           AND NOT pg_catalog.pg_visible_in_snapshot(o.txid, c.seen)) AS not_yet_queued,
       (SELECT count(*) FROM distcount.outbox_pending AS p
         WHERE p.consumer = c.consumer AND p.leased_until > pg_catalog.clock_timestamp()) AS leased,
       (SELECT count(*) FROM distcount.outbox_dead AS d WHERE d.consumer = c.consumer) AS dead,
       (SELECT pg_catalog.clock_timestamp() - min(o.created_at)
          FROM distcount.outbox_pending AS p JOIN distcount.outbox AS o ON o.id = p.id
         WHERE p.consumer = c.consumer) AS oldest_queued_age
  FROM distcount.outbox_consumer AS c;
COMMENT ON VIEW outbox_stats IS 'Per relay consumer: queued and not yet queued events, active leases, dead letters, age of the oldest queued event.';

CREATE VIEW slot_lag AS
SELECT s.slot_name, s.plugin, s.slot_type, s.database, s.active, s.wal_status,
       s.restart_lsn, s.confirmed_flush_lsn,
       pg_catalog.pg_wal_lsn_diff(w.lsn, s.restart_lsn) AS retained_bytes,
       pg_catalog.pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn) AS lag_bytes
  FROM pg_catalog.pg_replication_slots AS s,
       LATERAL (SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
                            ELSE pg_catalog.pg_current_wal_lsn() END AS lsn) AS w;
COMMENT ON VIEW slot_lag IS 'Replication slots with the WAL each one holds back (retained_bytes) and its consumer''s lag (lag_bytes); run cdc_heartbeat() to move an idle logical slot.';
