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
    PRIMARY KEY (id, slot)
) WITH (fillfactor = 50);
COMMENT ON TABLE counter_slot IS 'Slot rows of sharded counters in mode slots (one per counter and backend slot modulo shards).';

CREATE TABLE counter_delta (
    id    bigint NOT NULL,
    delta bigint NOT NULL
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
    BEGIN
        IF counter_add.name IS NULL OR counter_add.name = '' THEN
            PERFORM distcount.counter_check_name(counter_add.name);
        END IF;
        IF counter_add.delta IS NULL THEN
            RAISE EXCEPTION 'counter delta must not be NULL' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        SELECT c.id, c.mode, c.shards INTO k FROM distcount.counter c WHERE c.name = counter_add.name;
        IF NOT FOUND THEN
            -- First use: create it with the default shard count. A concurrent creator wins the
            -- race harmlessly (the update only makes the row visible to RETURNING).
            INSERT INTO distcount.counter AS c (name, mode, shards)
            VALUES (counter_add.name, 'slots', distcount.counter_default_shards())
            ON CONFLICT ON CONSTRAINT counter_name_key DO UPDATE SET name = EXCLUDED.name
            RETURNING c.id, c.mode, c.shards INTO k;
        END IF;
        IF k.mode = 'slots' THEN
            -- Overflow of one slot raises 22003 (bigint out of range).
            INSERT INTO distcount.counter_slot AS s (id, slot, value)
            VALUES (k.id, distcount.backend_slot() % k.shards, counter_add.delta)
            ON CONFLICT (id, slot) DO UPDATE SET value = s.value + EXCLUDED.value;
        ELSE
            INSERT INTO distcount.counter_delta (id, delta) VALUES (k.id, counter_add.delta);
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
        k record;
        total numeric;
    BEGIN
        PERFORM distcount.counter_check_name(counter_value.name);
        SELECT c.id, c.base INTO k FROM distcount.counter c WHERE c.name = counter_value.name;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        SELECT k.base
               + coalesce((SELECT sum(s.value) FROM distcount.counter_slot s WHERE s.id = k.id), 0)
               + coalesce((SELECT sum(d.delta) FROM distcount.counter_delta d WHERE d.id = k.id), 0)
          INTO total;
        IF total NOT BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
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
CREATE FUNCTION counter_rollup_one(id bigint) RETURNS bigint
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
        SELECT c.mode, c.shards, c.name INTO k FROM distcount.counter c
         WHERE c.id = counter_rollup_one.id FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN 0;  -- dropped, or another roll-up, reshard or drop of it is running
        END IF;
        IF k.mode = 'slots' THEN
            -- Rows a writer holds are skipped (they are folded next time); slots beyond the
            -- shard count (left by a concurrent writer during a reshard down) are deleted.
            WITH l AS (
                SELECT s.slot, s.value FROM distcount.counter_slot s
                 WHERE s.id = counter_rollup_one.id AND (s.value <> 0 OR s.slot >= k.shards)
                   FOR UPDATE SKIP LOCKED),
            z AS (
                UPDATE distcount.counter_slot s SET value = 0 FROM l
                 WHERE s.id = counter_rollup_one.id AND s.slot = l.slot AND l.slot < k.shards
                RETURNING l.value),
            d AS (
                DELETE FROM distcount.counter_slot s USING l
                 WHERE s.id = counter_rollup_one.id AND s.slot = l.slot AND l.slot >= k.shards
                RETURNING l.value)
            SELECT count(*), coalesce(sum(x.value), 0) INTO rows_folded, folded
              FROM (SELECT z.value FROM z UNION ALL SELECT d.value FROM d) x;
        ELSE
            WITH d AS (
                DELETE FROM distcount.counter_delta x
                 WHERE x.ctid = ANY (ARRAY(SELECT y.ctid FROM distcount.counter_delta y
                                            WHERE y.id = counter_rollup_one.id FOR UPDATE SKIP LOCKED))
                RETURNING x.delta)
            SELECT count(*), coalesce(sum(d.delta), 0) INTO rows_folded, folded FROM d;
        END IF;
        -- The cache's time is taken before the snapshot that computes its value.
        taken := clock_timestamp();
        SELECT c.base + folded,
               c.base + folded
               + coalesce((SELECT sum(s.value) FROM distcount.counter_slot s WHERE s.id = c.id), 0)
               + coalesce((SELECT sum(d.delta) FROM distcount.counter_delta d WHERE d.id = c.id), 0)
          INTO new_base, new_value
          FROM distcount.counter c WHERE c.id = counter_rollup_one.id;
        IF new_base NOT BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
            RAISE EXCEPTION 'value of counter "%" is out of range for type bigint', k.name
                USING ERRCODE = 'numeric_value_out_of_range', DETAIL = format('The rolled-up base would be %s.', new_base);
        END IF;
        UPDATE distcount.counter c
           SET base = new_base,
               cached_value = CASE WHEN new_value BETWEEN -9223372036854775808 AND 9223372036854775807
                                   THEN new_value END,
               cached_at = CASE WHEN new_value BETWEEN -9223372036854775808 AND 9223372036854775807
                                THEN taken END,
               last_rollup = taken
         WHERE c.id = counter_rollup_one.id;
        RETURN rows_folded;
    END $$;
REVOKE ALL ON FUNCTION counter_rollup_one(bigint) FROM PUBLIC;
COMMENT ON FUNCTION counter_rollup_one(bigint) IS 'Rolls up one counter by id (see counter_rollup); returns the slot and delta rows folded, 0 when another roll-up of it is running.';

CREATE FUNCTION counter_rollup(name text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        k record;
        total bigint := 0;
    BEGIN
        IF counter_rollup.name IS NOT NULL THEN
            SELECT c.id INTO k FROM distcount.counter c WHERE c.name = counter_rollup.name;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'counter "%" does not exist', counter_rollup.name USING ERRCODE = 'undefined_object';
            END IF;
            RETURN distcount.counter_rollup_one(k.id);
        END IF;
        -- Rows of dropped counters: a counter_add that read the counter before a concurrent
        -- counter_drop committed writes its row after the drop's delete. Such an increment is
        -- dropped with its counter (ids are never reused, so it was never counted); here its row
        -- goes. A row is visible only once its writer committed, and a counter row is never
        -- visible after its slot and delta rows, so a row without one is an orphan for good.
        DELETE FROM distcount.counter_slot AS s
         WHERE NOT EXISTS (SELECT FROM distcount.counter AS c WHERE c.id = s.id);
        DELETE FROM distcount.counter_delta AS d
         WHERE NOT EXISTS (SELECT FROM distcount.counter AS c WHERE c.id = d.id);
        -- Every counter with something to fold, or whose cache is older than its data. One
        -- counter's failure (say, overflow) is reported and does not stop the others.
        FOR k IN
            SELECT c.id, c.name FROM distcount.counter c
             WHERE EXISTS (SELECT FROM distcount.counter_slot s
                            WHERE s.id = c.id AND (s.value <> 0 OR s.slot >= c.shards))
                OR EXISTS (SELECT FROM distcount.counter_delta d WHERE d.id = c.id)
                OR c.cached_at IS NULL
             ORDER BY c.id
        LOOP
            BEGIN
                total := total + distcount.counter_rollup_one(k.id);
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
        SELECT c.id INTO k FROM distcount.counter c WHERE c.name = counter_reshard.name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter "%" does not exist', counter_reshard.name USING ERRCODE = 'undefined_object';
        END IF;
        -- Waits for a running roll-up of this counter; roll-ups skip it until we commit.
        SELECT c.id, c.mode, c.shards INTO k FROM distcount.counter c WHERE c.id = k.id FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter "%" does not exist', counter_reshard.name USING ERRCODE = 'undefined_object';
        END IF;
        -- Going down folds the slots beyond the new count into the base (waiting for their
        -- writers, so nothing is lost). A writer that still uses the old count afterwards
        -- recreates such a slot: reads sum every slot row, and the next roll-up folds it.
        IF k.mode = 'slots' AND counter_reshard.shards < k.shards THEN
            WITH d AS (
                DELETE FROM distcount.counter_slot s
                 WHERE s.id = k.id AND s.slot >= counter_reshard.shards
                RETURNING s.value)
            SELECT coalesce(sum(d.value), 0) INTO folded FROM d;
            UPDATE distcount.counter c SET base = (c.base + folded)::bigint, cached_at = NULL WHERE c.id = k.id;
        END IF;
        UPDATE distcount.counter c SET shards = counter_reshard.shards WHERE c.id = k.id;
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
        SELECT c.id INTO k FROM distcount.counter c WHERE c.name = counter_drop.name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'counter "%" does not exist', counter_drop.name USING ERRCODE = 'undefined_object';
        END IF;
        DELETE FROM distcount.counter c WHERE c.id = k.id;  -- waits for a running roll-up of it
        DELETE FROM distcount.counter_slot s WHERE s.id = k.id;
        DELETE FROM distcount.counter_delta d WHERE d.id = k.id;
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
                       FROM distcount.counter_slot x WHERE x.id = c.id) s
 CROSS JOIN LATERAL (SELECT count(*) AS n, sum(x.delta) AS total
                       FROM distcount.counter_delta x WHERE x.id = c.id) d;
COMMENT ON VIEW counters IS 'Sharded counters: name, mode, shards, exact value, slot and unrolled delta rows, last roll-up, cached value.';
