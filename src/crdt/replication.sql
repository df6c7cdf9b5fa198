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
                   END AS prune,
                   -- A type whose || depends on the order of merges (hll's martingale count)
                   -- has a merge of its own for replicated state.
                   CASE WHEN t.typnamespace = 'distcount'::regnamespace
                        THEN pg_catalog.to_regprocedure(format('distcount.%I(distcount.%I, distcount.%I)', t.typname || '_crdt_merge', t.typname, t.typname))
                   END AS crdt_merge
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
            IF col.crdt_merge IS NOT NULL THEN
                merged := format('%1$s(t.%2$I, EXCLUDED.%2$I)', col.crdt_merge::regproc, col.attname);
            ELSIF col.prune IS NOT NULL THEN
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

-- What crdt_replicate_setup created, so that a second run (another table, a new peer) reuses
-- its own objects and refuses any other object of the same name: a schema or table planted by
-- another role (with a trigger of its own) must never be adopted and then written by an admin.
CREATE TABLE crdt_replica_object (
    kind       text NOT NULL CHECK (kind IN ('schema', 'table', 'function')),
    name       text NOT NULL,  -- as format('%I', ...) or format('%I.%I', ...) prints it
    created_by name NOT NULL DEFAULT CURRENT_USER,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (kind, name)
);
COMMENT ON TABLE crdt_replica_object IS 'Schemas, tables and functions crdt_replicate_setup created (it reuses only these).';
SELECT pg_catalog.pg_extension_config_dump('crdt_replica_object', '');

-- The name of a table's per-origin copies (and of its publish trigger function): the table's
-- qualified name, so that tenant1.visits and tenant2.visits get different ones; names that
-- would pass 63 bytes are cut and end in 12 hex digits of the full name's MD5, the same on
-- every server.
CREATE FUNCTION crdt_replica_name(tbl regclass) RETURNS name
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        full_name text;
        cut text;
    BEGIN
        SELECT format('%I.%I', n.nspname, c.relname) INTO full_name
          FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE c.oid = tbl;
        IF octet_length(full_name) <= 63 THEN
            RETURN full_name;
        END IF;
        cut := left(full_name, 50);
        WHILE octet_length(cut) > 50 LOOP
            cut := left(cut, -1);
        END LOOP;
        RETURN cut || '~' || left(md5(full_name), 12);
    END $$;
COMMENT ON FUNCTION crdt_replica_name(regclass) IS 'Name of a table''s per-origin copies in the crdt_<origin> schemas: its qualified name (cut to 63 bytes with an MD5 suffix).';

-- Creates an object, or reuses it if an earlier setup created it and the caller owns it;
-- anything else of that name is refused. ddl creates it, as the caller.
CREATE FUNCTION crdt_replica_claim(object_kind text, schema_name text, object_name text, ddl text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        full_name text := CASE WHEN object_name IS NULL THEN format('%I', schema_name)
                               ELSE format('%I.%I', schema_name, object_name) END;
        owner oid;
        found_it boolean := true;
    BEGIN
        IF object_kind = 'schema' THEN
            SELECT n.nspowner INTO owner FROM pg_namespace AS n WHERE n.nspname = schema_name;
        ELSIF object_kind = 'table' THEN
            SELECT c.relowner INTO owner FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
             WHERE n.nspname = schema_name AND c.relname = object_name;
        ELSE
            SELECT p.proowner INTO owner FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
             WHERE n.nspname = schema_name AND p.proname = object_name;
        END IF;
        found_it := FOUND;
        IF NOT found_it THEN
            EXECUTE ddl;
            INSERT INTO distcount.crdt_replica_object (kind, name) VALUES (object_kind, full_name)
            ON CONFLICT ON CONSTRAINT crdt_replica_object_pkey
            DO UPDATE SET created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at;
        ELSIF owner <> current_user::regrole::oid
              OR NOT EXISTS (SELECT FROM distcount.crdt_replica_object AS o
                              WHERE o.kind = object_kind AND o.name = full_name) THEN
            RAISE EXCEPTION '% % already exists and was not made by crdt_replicate_setup', object_kind, full_name
                USING ERRCODE = '42710',
                      DETAIL = format('It is owned by %s.', owner::regrole),
                      HINT = 'Drop or rename it (check it first: another role may have planted it), then run the setup again.';
        END IF;
    END $$;
COMMENT ON FUNCTION crdt_replica_claim(text, text, text, text) IS 'Internal: creates an object of crdt_replicate_setup, or reuses one it made earlier; refuses anything else.';

-- One call per table and server: creates the per-origin schemas and tables, the publication
-- of this server's state, the triggers, and returns the subscription commands to run on the
-- peers (CREATE SUBSCRIPTION cannot run inside a function). It runs as the caller (the admin
-- role), who must own tbl and may create schemas and publications.
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
        copy_name name;
        qualified text;
        origin text;
        own_table text;
        columns text;
        new_values text;
        updates text;
        key_columns text;
        trigger_fn text;
        pub name;
        hll_columns text;
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

        SELECT format('%I.%I', n.nspname, c.relname) INTO qualified
          FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = tbl;
        copy_name := distcount.crdt_replica_name(tbl);
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
            PERFORM distcount.crdt_replica_claim('schema', 'crdt_' || origin, NULL,
                format('CREATE SCHEMA %I', 'crdt_' || origin));
            PERFORM distcount.crdt_replica_claim('table', 'crdt_' || origin, copy_name,
                format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)',
                       'crdt_' || origin, copy_name, qualified));
        END LOOP;

        -- This server's state: a mirror of tbl, written on local writes only. What merges
        -- bring in is not echoed on (each peer subscribes to every other: a full mesh), which
        -- keeps replication traffic to one row change per peer and increment.
        own_table := format('%I.%I', 'crdt_' || node, copy_name);
        trigger_fn := own_table;  -- a function of the mirror's name, in the mirror's schema
        PERFORM distcount.crdt_replica_claim('function', 'crdt_' || node, copy_name, format($f$
            CREATE FUNCTION %s() RETURNS trigger
            LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $body$
            BEGIN
                INSERT INTO %s AS o (%s) VALUES (%s)
                ON CONFLICT (%s) DO UPDATE SET %s;
                RETURN NULL;
            END $body$ $f$, trigger_fn, own_table, columns, new_values, key_columns, updates));
        EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_publish AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()',
                       qualified, trigger_fn);
        -- hll columns are written without a martingale count, which depends on the order of a
        -- server's writes and merges (merges use hll_crdt_merge): otherwise servers holding the
        -- same values would hold different bytes and counts.
        SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY a.attnum) INTO hll_columns
          FROM pg_attribute AS a
         WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
           AND a.atttypid = 'distcount.hll'::regtype;
        IF hll_columns IS NOT NULL THEN
            EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_hll BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION distcount.hll_crdt_canonical(%s)',
                           qualified, hll_columns);
        END IF;
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT DO NOTHING', own_table, columns, columns, qualified);

        pub := 'crdt_' || node;
        IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
            IF NOT EXISTS (SELECT 1 FROM pg_publication_rel AS pr JOIN pg_publication AS p ON p.oid = pr.prpubid
                           WHERE p.pubname = pub AND pr.prrelid = own_table::regclass) THEN
                EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', pub, own_table);
            END IF;
        ELSE
            EXECUTE format('CREATE PUBLICATION %I FOR TABLE %s', pub, own_table);
        END IF;

        -- Each peer's inbox merges into tbl.
        FOREACH origin IN ARRAY coalesce(peers, '{}') LOOP
            EXECUTE format('CREATE OR REPLACE TRIGGER distcount_crdt_merge AFTER INSERT OR UPDATE ON %I.%I FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into(%L)',
                           'crdt_' || origin, copy_name, qualified);
            EXECUTE format('ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER distcount_crdt_merge', 'crdt_' || origin, copy_name);
        END LOOP;

        IF conninfo IS NULL THEN
            -- The socket directory is for pg_read_all_settings only; without it, libpq's default.
            BEGIN
                conninfo := format('host=%s ', split_part(current_setting('unix_socket_directories'), ',', 1));
            EXCEPTION WHEN insufficient_privilege THEN
                conninfo := '';
            END;
            conninfo := conninfo || format('port=%s dbname=%s user=%s',
                                           current_setting('port'), current_database(), current_user);
        END IF;
        FOREACH origin IN ARRAY coalesce(peers, '{}') LOOP
            run_on := origin;
            command := format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (copy_data = true)',
                              'crdt_' || origin || '_from_' || node, conninfo, pub);
            RETURN NEXT;
        END LOOP;
    END $$;
REVOKE ALL ON FUNCTION crdt_replicate_setup(regclass, text, text[], text) FROM PUBLIC;
COMMENT ON FUNCTION crdt_replicate_setup(regclass, text, text[], text) IS 'Sets up merge-on-arrival replication of tbl on this server (node) with its peers; returns the CREATE SUBSCRIPTION command to run on each peer. Run it on every server, then every returned command. Refuses schemas and tables of its names that it did not create.';
