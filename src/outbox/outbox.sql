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
-- The relay opens a window of events by writing transaction, and reads it in seq order (see
-- outbox_claim).
CREATE INDEX outbox_txid_idx ON outbox (txid);
CREATE INDEX outbox_seq_idx ON outbox (seq);
-- Events are the application's data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('outbox', '');
SELECT pg_catalog.pg_extension_config_dump('outbox_seq', '');
COMMENT ON TABLE outbox IS 'Outbox events (insert-only; Debezium event router column names). seq orders events; txid is the writing transaction.';
-- Writers get INSERT on the event columns only (README, Security): seq, txid and created_at,
-- which the relay trusts, always come from their defaults.

-- The event router treats an UPDATE of the outbox as invalid; delivery state lives elsewhere.
-- outbox_rebase_restored may rewrite txid of rows restored from another cluster (see there).
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
-- writes the event: a distributed table's one placement; of a reference table's replicas, the
-- one in the lowest node group. It writes into that node's outbox (or WAL),
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
-- each get every event) reads the outbox itself, by snapshot and then by seq: a window is the
-- events of the transactions visible in a snapshot (win) that the previous one (seen) could not
-- see, read in seq order past a cursor (win_next, up to win_last, the window's largest seq);
-- when it is read through, seen becomes win and the next claim opens a new window. So an event
-- whose transaction commits late, whatever its seq, is read in the next window, and events of
-- one aggregate whose writers were serialised (by the business row's lock) are read in commit
-- order. Nothing is copied per event and consumer but what is in flight: outbox_pending holds
-- the events read and not yet acknowledged or dead, one row each: the head of each aggregate
-- (leased, or ready to be claimed) and the events parked behind it, read while the head was
-- out. Only heads are handed out, and the next event of an aggregate becomes the head when the
-- current one is acknowledged or dead-lettered: per-aggregate order.
-- Locks: a claim, outbox_retry_dead and outbox_drop_consumer lock the consumer's row, so one
-- of them at a time reads the outbox and adds rows for a consumer. A claim that parks an event
-- behind a head locks the head first (SKIP LOCKED: a head being acknowledged ends the claim's
-- read there), so the acknowledgement that removes it sees the parked event and promotes it.
-- Acknowledgements take no consumer lock.
-- Relay state is not dumped: after a restore, consumers start over (at-least-once).

CREATE TABLE outbox_consumer (
    consumer   text PRIMARY KEY CHECK (consumer <> ''),
    seen       pg_snapshot NOT NULL DEFAULT '1:1:',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    relay_role name NOT NULL DEFAULT CURRENT_USER,
    -- The window being read (NULL: none), its cursor and its largest seq.
    win        pg_snapshot,
    win_next   bigint,
    win_last   bigint,
    -- Events of the window not read yet.
    win_left   bigint,
    -- No lease of this consumer runs out before: claims look for expired leases only after it.
    next_due   timestamptz NOT NULL DEFAULT '-infinity'
);
COMMENT ON TABLE outbox_consumer IS 'Relay consumers: every event written by a transaction visible in snapshot seen is read (in outbox_pending) or done, and so are those of window win below seq win_next; only members of relay_role may claim, acknowledge or drop its events.';

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
    -- false only when no event is parked behind this head: its acknowledgement then looks for
    -- no next event (one index probe per event saved).
    has_next      boolean NOT NULL DEFAULT true
) WITH (fillfactor = 70);
-- Each aggregate's events in seq order, keyed by a bigint hash of the aggregate (the text
-- columns are rechecked): a claim probes it for the aggregates it reads, an acknowledgement
-- finds the next event to promote by it. The events by id (a hash index: a lease adds its
-- entry without key comparisons), by which an acknowledgement finds its heads (looking each
-- id up in the outbox for its aggregate first cost more than this index's upkeep). And the
-- heads ready to be claimed (promoted, nacked without delay, retried): a lease taken by a
-- claim is not in that index, so a lease costs one row and two index entries. Expired leases
-- are looked for by the first index, once the consumer's next_due has passed.
CREATE INDEX outbox_pending_aggregate_idx ON outbox_pending
    (consumer, pg_catalog.hashtextextended(aggregateid, pg_catalog.hashtext(aggregatetype)), seq);
CREATE INDEX outbox_pending_id_idx ON outbox_pending USING hash (id);
CREATE INDEX outbox_pending_ready_idx ON outbox_pending (consumer, seq) WHERE is_head AND leased_until IS NULL;
COMMENT ON TABLE outbox_pending IS 'Relay state: events a consumer has read and not yet acknowledged (leased, ready or parked behind their aggregate''s head), with their lease and attempt count.';

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

-- Removes heads (acknowledged, or dead-lettered) and promotes each aggregate's next event to
-- head, ready to be claimed.
CREATE FUNCTION outbox_remove_heads(consumer text, ids uuid[], dead boolean) RETURNS integer
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

-- The consumer's row, locked (created for a new consumer).
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

CREATE FUNCTION outbox_claim(consumer text, batch integer DEFAULT 100,
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

CREATE FUNCTION outbox_retry_dead(consumer text, ids uuid[] DEFAULT NULL) RETURNS integer
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

CREATE FUNCTION outbox_drop_consumer(consumer text) RETURNS boolean
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

-- With the caller's rights: a relay role sees its own consumers. Queued: read and not done, or
-- in the window not read yet; not yet queued: committed past the window (or seen).
CREATE VIEW outbox_stats WITH (security_invoker = true) AS
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

CREATE VIEW slot_lag AS
SELECT s.slot_name, s.plugin, s.slot_type, s.database, s.active, s.wal_status,
       s.restart_lsn, s.confirmed_flush_lsn,
       pg_catalog.pg_wal_lsn_diff(w.lsn, s.restart_lsn) AS retained_bytes,
       pg_catalog.pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn) AS lag_bytes
  FROM pg_catalog.pg_replication_slots AS s,
       LATERAL (SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
                            ELSE pg_catalog.pg_current_wal_lsn() END AS lsn) AS w;
COMMENT ON VIEW slot_lag IS 'Replication slots with the WAL each one holds back (retained_bytes) and its consumer''s lag (lag_bytes); run cdc_heartbeat() to move an idle logical slot.';
