-- Multi-server counters over native logical replication (PostgreSQL 15+).
--
-- Layout on every server, for an application table such as public.likes:
--   public.likes                 the merged view the application reads and writes
--   crdt_<origin>.likes          one table per server ("origin"), same definition:
--     - the local server's own   a mirror of public.likes, kept by a trigger on local writes
--                                and published as publication crdt_<origin>
--     - each peer's              the inbox its subscription fills; an ALWAYS trigger merges
--                                every arriving row into public.likes
-- Merges are not re-published, and a merge that changes nothing writes nothing: no
-- replication loop, even without PostgreSQL 16's origin = none. The servers form a full mesh.

-- The statement that merges one inbox row ($1, of the inbox's row type) into target: insert it,
-- or merge every CRDT column (a type of this extension with a || merge operator) into the
-- existing row, skipping rows the merge would not change. Other columns are taken from the
-- first arriving row and then left alone.
CREATE FUNCTION crdt_merge_statement(inbox regclass, target regclass) RETURNS text
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
                   END AS prune
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
            IF col.prune IS NOT NULL THEN
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
COMMENT ON FUNCTION crdt_merge_statement(regclass, regclass) IS 'The INSERT ... ON CONFLICT statement crdt_merge_into runs for each arriving row (for inspection).';

CREATE FUNCTION crdt_merge_into() RETURNS trigger
    LANGUAGE c SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'crdt_merge_into_wrapper';
COMMENT ON FUNCTION crdt_merge_into() IS 'Trigger for an inbox table that a subscription fills: AFTER INSERT OR UPDATE FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into(''schema.target''); merges each arriving row''s CRDT columns into target by primary key. Enable it with ALTER TABLE ... ENABLE ALWAYS TRIGGER so it fires in the apply worker.';

-- One call per table and server: creates the per-origin schemas and tables, the publication
-- of this server's state, the triggers, and returns the subscription commands to run on the
-- peers (CREATE SUBSCRIPTION cannot run inside a function).
CREATE FUNCTION crdt_replicate_setup(
        tbl regclass,
        node text,
        peers text[],
        conninfo text DEFAULT NULL)
    RETURNS TABLE (run_on text, command text)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        rel_name name;
        qualified text := tbl::text;
        origin text;
        own_table text;
        columns text;
        new_values text;
        updates text;
        key_columns text;
        trigger_fn text;
        pub name;
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

        SELECT c.relname INTO rel_name FROM pg_class c WHERE c.oid = tbl;
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
            EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', 'crdt_' || origin);
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)',
                           'crdt_' || origin, rel_name, qualified);
        END LOOP;

        -- This server's state: a mirror of tbl, written on local writes only. What merges
        -- bring in is not echoed on (each peer subscribes to every other: a full mesh), which
        -- keeps replication traffic to one row change per peer and increment.
        own_table := format('%I.%I', 'crdt_' || node, rel_name);
        trigger_fn := format('%I.%I', 'crdt_' || node, rel_name || '_publish');
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION %s() RETURNS trigger
            LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $body$
            BEGIN
                INSERT INTO %s AS o (%s) VALUES (%s)
                ON CONFLICT (%s) DO UPDATE SET %s;
                RETURN NULL;
            END $body$ $f$, trigger_fn, own_table, columns, new_values, key_columns, updates);
        EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_publish AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()',
                       qualified, trigger_fn);
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT DO NOTHING', own_table, columns, columns, qualified);

        pub := 'crdt_' || node;
        IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
            IF NOT EXISTS (SELECT 1 FROM pg_publication_tables
                           WHERE pubname = pub AND schemaname = 'crdt_' || node AND tablename = rel_name) THEN
                EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', pub, own_table);
            END IF;
        ELSE
            EXECUTE format('CREATE PUBLICATION %I FOR TABLE %s', pub, own_table);
        END IF;

        -- Each peer's inbox merges into tbl.
        FOREACH origin IN ARRAY coalesce(peers, '{}') LOOP
            EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_merge AFTER INSERT OR UPDATE ON %I.%I FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into(%L)',
                           'crdt_' || origin, rel_name, qualified);
            EXECUTE format('ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER distcount_crdt_merge', 'crdt_' || origin, rel_name);
        END LOOP;

        conninfo := coalesce(conninfo, format('host=%s port=%s dbname=%s user=%s',
            split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
            current_database(), current_user));
        FOREACH origin IN ARRAY coalesce(peers, '{}') LOOP
            run_on := origin;
            command := format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = true)',
                              'crdt_' || origin || '_from_' || node, conninfo, pub);
            RETURN NEXT;
        END LOOP;
    END $$;
REVOKE ALL ON FUNCTION crdt_replicate_setup(regclass, text, text[], text) FROM PUBLIC;
COMMENT ON FUNCTION crdt_replicate_setup(regclass, text, text[], text) IS 'Sets up merge-on-arrival replication of tbl on this server (node) with its peers; returns the CREATE SUBSCRIPTION command to run on each peer. Run it on every server, then every returned command.';
