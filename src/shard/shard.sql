-- Sharded counters: one logical counter spread over N slot rows (mode 'slots') or over
-- append-only delta rows (mode 'deltas'), folded into a base value by a roll-up.
-- Entry points in C are in src/shard/mod.rs; everything else is PL/pgSQL, declared here.
--
-- Storage, for a counter `c`:
--   value(c) = counter.base + sum(counter_slot.value) + sum(counter_delta.delta)
-- A write touches one slot row (chosen by the backend's dense slot number, so concurrent
-- sessions land on different rows) or appends one delta row; it never writes the counter row,
-- so readers and writers of one counter do not queue on one row lock. The roll-up moves slot
-- and delta values into `base` in one transaction, so every snapshot sees the same sum.
-- No foreign keys from the slot and delta tables: a key check on every write would take a
-- KEY SHARE lock on the counter row from every writer (multixacts under load).
--
-- Slot and delta rows carry the counter's name as well as its id, and every statement below
-- names the counter it reads or writes: on a Citus cluster the three tables are distributed by
-- name and co-located (citus_setup()), so each statement is routed to the one shard of that
-- counter and the functions run on the node that holds it.

CREATE SEQUENCE counter_id_seq;
CREATE TABLE counter (
    id           bigint PRIMARY KEY DEFAULT pg_catalog.nextval('distcount.counter_id_seq'),
    name         text NOT NULL UNIQUE CHECK (name <> ''),
    mode         text NOT NULL CHECK (mode IN ('slots', 'deltas')),
    shards       integer NOT NULL CHECK (shards BETWEEN 1 AND 1024),
    base         bigint NOT NULL DEFAULT 0,
    cached_value bigint,
    cached_at    timestamptz,
    last_rollup  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
) WITH (fillfactor = 90);
ALTER SEQUENCE counter_id_seq OWNED BY counter.id;
COMMENT ON TABLE counter IS 'Sharded counters: one row per counter (its mode, shard count, rolled-up base and cached value).';

-- fillfactor 50 leaves room on each page, so updating a slot in place stays a HOT update
-- (no index insert, no index bloat).
CREATE TABLE counter_slot (
    id    bigint NOT NULL,
    slot  integer NOT NULL,
    value bigint NOT NULL,
    name  text NOT NULL,
    PRIMARY KEY (id, slot)
) WITH (fillfactor = 50);
COMMENT ON TABLE counter_slot IS 'Slot rows of sharded counters in mode slots (one per counter and backend slot modulo shards).';

CREATE TABLE counter_delta (
    id    bigint NOT NULL,
    delta bigint NOT NULL,
    name  text NOT NULL
);
CREATE INDEX counter_delta_id ON counter_delta (id);
COMMENT ON TABLE counter_delta IS 'Append-only delta rows of sharded counters in mode deltas, not yet rolled up.';

SELECT pg_catalog.pg_extension_config_dump('counter', '');
SELECT pg_catalog.pg_extension_config_dump('counter_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('counter_slot', '');
SELECT pg_catalog.pg_extension_config_dump('counter_delta', '');

-- ---------------------------------------------------------------------------------------------
-- C entry points
-- ---------------------------------------------------------------------------------------------

-- Constant for the life of a session (claimed again after pg_advisory_unlock_all() or
-- DISCARD ALL); runs in the leader only, as it takes an advisory lock.
CREATE FUNCTION backend_slot() RETURNS integer
    STABLE STRICT PARALLEL RESTRICTED
    LANGUAGE c AS 'MODULE_PATHNAME', 'backend_slot_wrapper';
COMMENT ON FUNCTION backend_slot() IS 'This session''s slot number, from 0: the lowest that no other live session of this database holds, claimed on first use with a session-level advisory lock (classid 1684632436) and held while the session lives: counter_add writes slot backend_slot() % shards.';

CREATE FUNCTION counter_default_shards() RETURNS integer
    STABLE STRICT PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'counter_default_shards_wrapper';
COMMENT ON FUNCTION counter_default_shards() IS 'The shard count counter_add gives a counter it creates (setting pg_distcount.default_shards).';

-- False where Citus is not installed in this database; true where the counter tables are
-- distributed (remembered for the session); raises 55000 on a Citus node before citus_setup().
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

-- ---------------------------------------------------------------------------------------------
-- Argument checks, shared by the functions below
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION counter_check_name(name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF name IS NULL THEN
            RAISE EXCEPTION 'counter name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
        ELSIF name = '' THEN
            RAISE EXCEPTION 'counter name must not be empty' USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END $$;
COMMENT ON FUNCTION counter_check_name(text) IS 'Raises 22004 for a NULL counter name and 22023 for an empty one.';

CREATE FUNCTION counter_check_shards(shards integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF shards IS NULL THEN
            RAISE EXCEPTION 'shard count must not be NULL' USING ERRCODE = 'null_value_not_allowed';
        ELSIF shards NOT BETWEEN 1 AND 1024 THEN
            RAISE EXCEPTION 'shard count % is out of range', shards
                USING ERRCODE = 'invalid_parameter_value', DETAIL = 'A counter has 1 to 1024 shards.';
        END IF;
    END $$;
COMMENT ON FUNCTION counter_check_shards(integer) IS 'Raises 22004 for a NULL shard count and 22023 for one outside 1..1024.';

-- ---------------------------------------------------------------------------------------------
-- Create, add, read
--
-- The tables are the owner's and granted to nobody: counters change only through these
-- functions, which run with the owner's rights (SECURITY DEFINER, search_path pinned). EXECUTE
-- is granted per role (README, Security): counter_add to writers, counter_value and
-- counter_value_cached to readers, the rest to the admin role.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION counter_create(name text, shards integer DEFAULT 16, mode text DEFAULT 'slots') RETURNS void
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
CREATE FUNCTION counter_add(name text, delta bigint DEFAULT 1) RETURNS void
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

CREATE FUNCTION counter_value(name text) RETURNS bigint
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
CREATE FUNCTION counter_value_cached(name text, max_age interval DEFAULT '1 second') RETURNS bigint
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

-- ---------------------------------------------------------------------------------------------
-- Roll-up, reshard, drop
-- ---------------------------------------------------------------------------------------------

-- At most one roll-up per counter at a time, never waiting: a roll-up locks the counter's row
-- FOR NO KEY UPDATE SKIP LOCKED and skips the counter when another roll-up, a reshard or a drop
-- holds it. (A transaction-level advisory lock per counter was the first design: one pass of
-- counter_rollup() over a million counters ran out of shared lock-table memory after about
-- 12,000 counters. Row locks live in the rows and cost no shared memory.)
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

CREATE FUNCTION counter_rollup(name text DEFAULT NULL) RETURNS bigint
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

CREATE FUNCTION counter_reshard(name text, shards integer) RETURNS void
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

CREATE FUNCTION counter_drop(name text) RETURNS void
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

-- With the owner's rights (the tables are granted to nobody); SELECT is for the admin role.
CREATE VIEW counters AS
SELECT c.name, c.mode, c.shards,
       (c.base + coalesce(s.total, 0) + coalesce(d.total, 0))::bigint AS value,
       s.n AS slot_rows, d.n AS delta_rows, c.last_rollup, c.cached_value, c.cached_at
  FROM distcount.counter c
 CROSS JOIN LATERAL (SELECT count(*) AS n, sum(x.value) AS total
                       FROM distcount.counter_slot x WHERE x.name = c.name AND x.id = c.id) s
 CROSS JOIN LATERAL (SELECT count(*) AS n, sum(x.delta) AS total
                       FROM distcount.counter_delta x WHERE x.name = c.name AND x.id = c.id) d;
COMMENT ON VIEW counters IS 'Sharded counters: name, mode, shards, exact value, slot and unrolled delta rows, last roll-up, cached value.';

-- ---------------------------------------------------------------------------------------------
-- Citus: the counter tables distributed by counter name and co-located, so that every statement
-- of the counter functions is routed to the shard of its counter. Everything here references Citus's
-- catalogs and functions, and runs only on a node where Citus is installed.
-- ---------------------------------------------------------------------------------------------

-- The keys Citus needs, on this node's copy of the tables: a unique constraint of a distributed
-- table must contain its distribution column (name), and a shard moved by logical replication
-- needs a replica identity. Idempotent; citus_setup() runs it on every node.
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
