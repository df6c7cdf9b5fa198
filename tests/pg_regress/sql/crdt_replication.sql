-- Merging states that replication carries: deltas, retired nodes, the inbox merge trigger,
-- the setup function and node identity.

-- Deltas hold only the slots that grew, and merging one equals merging the whole state.
SELECT gcounter_delta('{"a": 7, "b": 3, "c": 1}', '{"a": 5, "b": 3}') AS delta;
SELECT '{"a": 5, "b": 3}'::gcounter || gcounter_delta('{"a": 7, "b": 3, "c": 1}', '{"a": 5, "b": 3}')
     = '{"a": 5, "b": 3}'::gcounter || '{"a": 7, "b": 3, "c": 1}' AS delta_law;
SELECT pncounter_delta('{"a": [5, 2], "b": [1, 1]}', '{"a": [5, 1], "b": [1, 1]}') AS delta;
-- Over many random pairs.
SELECT count(*) FILTER (WHERE o || gcounter_delta(n, o) <> o || n) AS delta_law_failures
FROM (SELECT gcounter_merge_agg(gcounter_inc(NULL, (random() * 5)::int, 'n' || (random() * 6)::int)) AS o,
             gcounter_merge_agg(gcounter_inc(NULL, (random() * 5)::int, 'n' || (random() * 6)::int)) AS n
      FROM generate_series(1, 2000) i GROUP BY i % 200) pairs;

-- Pruning needs a recorded retirement; the fold keeps the value.
SELECT error_of($$ SELECT gcounter_prune('{"old": 4, "new": 6}', 'old', 'new') $$);
SELECT node_retire('old', 'new');
SELECT gcounter_prune('{"old": 4, "new": 6}', 'old', 'new') AS pruned,
       pncounter_prune('{"old": [4, 1], "new": [6, 0]}', 'old', 'new') AS pn_pruned;
SELECT error_of($$ SELECT gcounter_prune('{"old": 4, "new": 6}', 'old', 'other') $$);
SELECT error_of($$ SELECT node_retire('old', 'other') $$);
SELECT error_of($$ SELECT node_retire('self', 'self') $$);
SELECT error_of($$ SELECT gcounter_fold_slot('{"a": 9223372036854775807, "b": 1}', 'a', 'b') $$);
-- Every recorded retirement at once, as replication merges do.
SELECT gcounter_prune_retired('{"old": 4, "new": 6, "x": 1}') AS all_retirements_folded;

-- The inbox trigger: rows arriving in an inbox merge into the target by primary key.
CREATE TABLE likes (post int PRIMARY KEY, title text, g gcounter, p pncounter);
CREATE TABLE inbox (LIKE likes INCLUDING ALL);
CREATE TRIGGER merge AFTER INSERT OR UPDATE ON inbox
    FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into('public.likes');
SELECT left(crdt_merge_statement('inbox', 'likes'), 160) AS statement_start;
INSERT INTO inbox VALUES (1, 'first', '{"tokyo": 3}', '{"tokyo": [3, 1]}');
UPDATE inbox SET g = '{"tokyo": 5}', title = 'ignored after the first row' WHERE post = 1;
INSERT INTO likes VALUES (2, 'local', '{"virginia": 2}', NULL);
INSERT INTO inbox VALUES (2, 'remote', '{"tokyo": 1}', '{"tokyo": [0, 4]}');
SELECT * FROM likes ORDER BY post;
-- A stale state changes nothing, and writes nothing (xmin stays).
SELECT xmin AS before_xmin FROM likes WHERE post = 1 \gset
UPDATE inbox SET g = '{"tokyo": 2}', p = '{"tokyo": [1, 1]}' WHERE post = 1;
SELECT g, p, xmin = :'before_xmin'::xid AS row_not_rewritten FROM likes WHERE post = 1;
-- Stale states holding a retired slot do not count it twice.
UPDATE likes SET g = gcounter_prune(g || '{"old": 4, "new": 6}', 'old', 'new') WHERE post = 1;
UPDATE inbox SET g = '{"old": 4, "new": 6, "tokyo": 5}' WHERE post = 1;
SELECT g, gcounter_value(g) FROM likes WHERE post = 1;
-- Deletes in the inbox withdraw nothing.
DELETE FROM inbox WHERE post = 2;
SELECT post, g FROM likes ORDER BY post;
-- It works with an empty search_path, as in a logical replication apply worker.
SET search_path = '';
INSERT INTO public.inbox VALUES (3, 'empty path', '{"frankfurt": 1}', NULL);
RESET search_path;
SELECT post, g FROM likes WHERE post = 3;

-- Misuse is an error when the trigger fires, never a silently lost row.
CREATE TABLE inbox_bad (LIKE likes INCLUDING ALL);
CREATE TRIGGER before_merge BEFORE INSERT ON inbox_bad
    FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into('public.likes');
SELECT error_of($$ INSERT INTO inbox_bad VALUES (9, 'x', '{"a": 1}', NULL) $$);
DROP TRIGGER before_merge ON inbox_bad;
CREATE TRIGGER two_args AFTER INSERT ON inbox_bad
    FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into('public.likes', 'extra');
SELECT error_of($$ INSERT INTO inbox_bad VALUES (9, 'x', '{"a": 1}', NULL) $$);
DROP TRIGGER two_args ON inbox_bad;
CREATE TRIGGER missing AFTER INSERT ON inbox_bad
    FOR EACH ROW EXECUTE FUNCTION distcount.crdt_merge_into('public.no_such_table');
SELECT error_of($$ INSERT INTO inbox_bad VALUES (9, 'x', '{"a": 1}', NULL) $$);
DROP TRIGGER missing ON inbox_bad;
CREATE TABLE no_key (post int, g gcounter);
CREATE TABLE no_crdt (post int PRIMARY KEY, n bigint);
SELECT error_of($$ SELECT crdt_merge_statement('no_key', 'no_key') $$);
SELECT error_of($$ SELECT crdt_merge_statement('no_crdt', 'no_crdt') $$);

-- The setup function: per-origin tables, the publication, the triggers, and the commands
-- to run on the peers.
CREATE TABLE views (page int PRIMARY KEY, hits gcounter NOT NULL DEFAULT '{}');
INSERT INTO views VALUES (1, '{"tokyo": 7}');
SELECT run_on, regexp_replace(command, 'CONNECTION ''[^'']*''', 'CONNECTION ''...''') AS command
FROM crdt_replicate_setup('public.views', 'tokyo', ARRAY['virginia', 'frankfurt']);
SELECT pubname, schemaname, tablename FROM pg_publication_tables ORDER BY 1, 2, 3;
SELECT tgrelid::regclass, tgname, tgenabled FROM pg_trigger WHERE tgname LIKE 'distcount_crdt%' ORDER BY 1::text;
SELECT * FROM crdt_tokyo."public.views";
-- Local writes are mirrored into this server's published table.
UPDATE views SET hits = gcounter_inc(hits, 2, 'tokyo') WHERE page = 1;
SELECT * FROM crdt_tokyo."public.views";
-- A peer's state arriving in its inbox (here as in the apply worker, in replica mode) merges
-- into views; merges are not re-published, so the mirror keeps this server's own writes.
SET session_replication_role = replica;
INSERT INTO crdt_virginia."public.views" VALUES (1, '{"virginia": 4}');
RESET session_replication_role;
SELECT v.hits AS merged, t.hits AS published FROM views v JOIN crdt_tokyo."public.views" t USING (page);
SELECT error_of($$ SELECT * FROM crdt_replicate_setup('public.views', 'Tokyo', ARRAY['virginia']) $$);
SELECT error_of($$ SELECT * FROM crdt_replicate_setup('public.views', 'tokyo', ARRAY['tokyo']) $$);
SELECT error_of($$ SELECT * FROM crdt_replicate_setup('public.views', 'tokyo', ARRAY['virginia', 'virginia']) $$);
SELECT error_of($$ SELECT * FROM crdt_replicate_setup('public.no_key', 'tokyo', ARRAY['virginia']) $$);
DROP PUBLICATION crdt_tokyo;

-- Node identity: the fingerprint of where the id was made matches this database, and a
-- rotation makes a new id and keeps the old one.
SELECT (SELECT (system_identifier, timeline_id, database_oid, data_directory) FROM distcount.node)
     = (SELECT (f.system_identifier, f.timeline_id, f.database_oid, f.data_directory) FROM node_fingerprint() f)
     AS fingerprint_matches;
SELECT node_id() AS old_id \gset
SELECT node_rotate() <> :'old_id' AS rotated, node_id() <> :'old_id' AS node_id_follows;
SELECT previous_id = :'old_id' AS previous_kept FROM distcount.node;
-- A fingerprint that does not match (as in a restored copy) refuses writes by default...
UPDATE distcount.node SET data_directory = '/somewhere/else';
\c
SELECT error_of($$ SELECT gcounter_inc(NULL) $$) ~ '^55000: this database is a copy of the one that made node id' AS refused;
-- The error says what differs, never the values (the data directory is not for every role).
SELECT regexp_replace(error_of($$ SELECT gcounter_inc(NULL) $$), 'node id "[^"]*"', 'node id "..."') AS refusal;
-- ...or rotates when pg_distcount.on_node_copy = rotate.
SELECT id AS copied_id FROM distcount.node \gset
SET pg_distcount.on_node_copy = rotate;
SET client_min_messages = error;  -- the WARNING names random ids
SELECT node_id() <> :'copied_id' AS rotated_on_copy;
RESET client_min_messages;
SELECT data_directory = current_setting('data_directory') AS fingerprint_renewed,
       previous_id = :'copied_id' AS previous_kept
FROM distcount.node;
