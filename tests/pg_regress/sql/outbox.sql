-- The outbox: one event per committed change, as a row, a logical decoding message or both;
-- the relay hands events out in per-aggregate order. Messages are read back through a
-- test_decoding slot; event ids differ from run to run, so they are masked as <uuid>.
CREATE FUNCTION public.masked(t text) RETURNS text LANGUAGE sql AS
$$ SELECT regexp_replace(t, '[0-9a-f]{8}-[0-9a-f]{4}-[47][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}', '<uuid>', 'g') $$;
-- Messages of the outbox prefix, in WAL order, consumed.
CREATE FUNCTION public.outbox_messages() RETURNS SETOF text LANGUAGE sql AS $$
    SELECT masked(data) FROM pg_logical_slot_get_changes('regress_outbox', NULL, NULL,
                                                         'include-xids', '0', 'skip-empty-xacts', '1')
     WHERE data LIKE 'message:%' $$;
SELECT 'slot' FROM pg_create_logical_replication_slot('regress_outbox', 'test_decoding');

-- Table mode (the default): insert, update, delete, each one row with the router's columns.
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric);
CREATE TRIGGER orders_outbox AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Order', 'id');
INSERT INTO orders VALUES (1, 'ann', 10.5), (2, 'bob', 3);
UPDATE orders SET total = 11 WHERE id = 1;
DELETE FROM orders WHERE id = 2;
SELECT aggregatetype, aggregateid, type, payload, headers, tracingspancontext
  FROM outbox ORDER BY seq;
-- Ids are distinct UUIDs; seq grows; txid is the writing transaction.
SELECT count(DISTINCT id) AS ids, bool_and(masked(id::text) = '<uuid>') AS uuids,
       count(DISTINCT txid) AS transactions FROM outbox;
-- Nothing from a rolled-back transaction or a rolled-back savepoint; no message in table mode.
BEGIN; INSERT INTO orders VALUES (3, 'cy', 1); ROLLBACK;
BEGIN;
INSERT INTO orders VALUES (4, 'di', 1);
SAVEPOINT s;
INSERT INTO orders VALUES (5, 'ed', 1);
ROLLBACK TO s;
COMMIT;
SELECT aggregateid, type FROM outbox ORDER BY seq;
SELECT count(*) AS messages FROM outbox_messages();
-- The outbox is insert-only.
SELECT error_of($$ UPDATE outbox SET type = 'x' $$);

-- Message mode: a transactional message with the same field names; nothing in the table.
TRUNCATE outbox;
CREATE TABLE payments (id int PRIMARY KEY, amount int, note text);
CREATE TRIGGER payments_outbox AFTER INSERT OR UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Payment', 'id', 'message');
INSERT INTO payments VALUES (7, 100, 'say "hi"');
BEGIN; INSERT INTO payments VALUES (8, 1, 'rolled back'); ROLLBACK;
BEGIN;
UPDATE payments SET amount = 90 WHERE id = 7;
SAVEPOINT s;
DELETE FROM payments WHERE id = 7;
ROLLBACK TO s;
COMMIT;
DELETE FROM payments;
SELECT * FROM outbox_messages();
SELECT count(*) AS rows FROM outbox;

-- Both: a row and a message with the same id.
ALTER TABLE payments DISABLE TRIGGER payments_outbox;
CREATE TRIGGER payments_both AFTER INSERT ON payments
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Payment', 'id', 'both');
INSERT INTO payments VALUES (9, 5, NULL);
SELECT m ~ ('"id":"' || o.id || '"') AS same_id, o.type, o.payload
  FROM outbox AS o,
       LATERAL (SELECT data AS m FROM pg_logical_slot_get_changes('regress_outbox', NULL, NULL,
                                                                  'include-xids', '0')
                 WHERE data LIKE 'message:%') AS msg;
DROP TRIGGER payments_both ON payments;

-- The default mode comes from pg_distcount.outbox_mode, read at each event.
TRUNCATE outbox;
ALTER TABLE payments ENABLE TRIGGER payments_outbox;
CREATE TABLE notes (id int PRIMARY KEY, body text);
CREATE TRIGGER notes_outbox AFTER INSERT ON notes
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Note', 'id', 'default');
INSERT INTO notes VALUES (1, 'table by default');
BEGIN;
SET LOCAL pg_distcount.outbox_mode = 'message';
INSERT INTO notes VALUES (2, 'message now');
COMMIT;
SELECT aggregateid FROM outbox;
SELECT * FROM outbox_messages();

-- Headers and trace context from the transaction's settings; type naming and old/new payload;
-- composite keys are a JSON array.
TRUNCATE outbox;
CREATE TABLE lines (tenant text, line int, qty int, PRIMARY KEY (tenant, line));
CREATE TRIGGER lines_outbox AFTER INSERT OR UPDATE OR DELETE ON lines
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Line', 'tenant, line', 'table', '{table}.{op}', 'old_new');
BEGIN;
SET LOCAL pg_distcount.outbox_headers = '{"source": "regress"}';
SET LOCAL pg_distcount.outbox_tracingspancontext = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
INSERT INTO lines VALUES ('acme', 1, 5);
COMMIT;
UPDATE lines SET qty = 6;
DELETE FROM lines;
SELECT aggregateid, type, payload, headers, tracingspancontext FROM outbox ORDER BY seq;

-- The statement form writes the same events in one pass over the transition table.
TRUNCATE outbox;
CREATE TABLE items (sku text PRIMARY KEY, price int);
CREATE TRIGGER items_ins AFTER INSERT ON items REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Item', 'sku');
CREATE TRIGGER items_upd AFTER UPDATE ON items REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Item', 'sku', 'both');
CREATE TRIGGER items_del AFTER DELETE ON items REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Item', 'sku', 'message');
INSERT INTO items SELECT 'sku-' || i, i FROM generate_series(1, 3) AS i;
UPDATE items SET price = price * 10 WHERE sku <> 'sku-2';
-- Mode both: the update's messages carry the ids of its rows.
SELECT count(*) AS messages_with_row_ids
  FROM outbox AS o
  JOIN (SELECT (regexp_match(data, 'content:(.*)$'))[1]::jsonb ->> 'id' AS id
          FROM pg_logical_slot_get_changes('regress_outbox', NULL, NULL)
         WHERE data LIKE 'message:%') AS m ON m.id = o.id::text
 WHERE o.type = 'ItemUpdated';
DELETE FROM items WHERE sku = 'sku-3';
SELECT aggregateid, type, payload FROM outbox ORDER BY seq;
SELECT * FROM outbox_messages();
-- Composite keys render alike in both forms.
CREATE TABLE pairs (a text, b int);
CREATE TRIGGER pairs_stmt AFTER INSERT ON pairs REFERENCING NEW TABLE AS n
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Pair', 'a,b');
CREATE TRIGGER pairs_row AFTER INSERT ON pairs
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Pair', 'a,b');
INSERT INTO pairs VALUES ('x"y', 1);
SELECT aggregateid, count(*) FROM outbox WHERE aggregatetype = 'Pair' GROUP BY 1;

-- Message payloads are the text row_to_json gives, for every kind of column (a row with an
-- array column goes through row_to_json itself), also after columns are dropped or renamed.
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE kinds (id int PRIMARY KEY, b bool, f float8, r real, n numeric, d date,
                    ts timestamp, tz timestamptz, j json, jb jsonb, u uuid, t text, v varchar(10),
                    c char(3), p posint, iv interval, by bytea, s smallint, big bigint);
CREATE TRIGGER kinds_outbox AFTER INSERT ON kinds FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Kind', 'id', 'message');
CREATE TABLE with_array (id int PRIMARY KEY, tags text[], note text);
CREATE TRIGGER with_array_outbox AFTER INSERT ON with_array FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Arr', 'id', 'message');
SET TIME ZONE 'Asia/Kolkata';
INSERT INTO kinds VALUES
    (1, true, 'NaN', 1.5, 'Infinity', '2024-02-29', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56+00',
     '{"a" : [1, 2]}', '{"b": {"c": null}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', E'tab\t"q"\\ \u00e9\b', 'vc', 'ab', 7,
     '1 day 2 hours', '\x00ff', -32768, 9223372036854775807),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, false, 1e100, '-Infinity', 12345678901234567890.000123, 'infinity', '-infinity', '1999-12-31 23:59:59.999999+05',
     '[]', '"s"', '00000000-0000-0000-0000-000000000000', '', '', '', 1, '-3 mons', '', 0, -1);
INSERT INTO with_array VALUES (1, ARRAY['x', 'y"z'], 'n');
CREATE VIEW kinds_messages AS
SELECT (m.body::json -> 'payload')::text = row_to_json(k)::text AS same_as_row_to_json
  FROM (SELECT (regexp_match(data, 'content:(.*)$'))[1] AS body
          FROM pg_logical_slot_get_changes('regress_outbox', NULL, NULL)
         WHERE data LIKE 'message:%') AS m
  JOIN kinds AS k ON k.id = (m.body::json ->> 'aggregateid')::int
 WHERE m.body::json ->> 'aggregatetype' = 'Kind';
SELECT count(*) AS messages, count(*) FILTER (WHERE same_as_row_to_json) AS same FROM kinds_messages;
ALTER TABLE kinds DROP COLUMN r;
ALTER TABLE kinds RENAME COLUMN t TO text_renamed;
INSERT INTO kinds (id, text_renamed, b) VALUES (4, 'after alter', true);
SELECT count(*) AS messages, count(*) FILTER (WHERE same_as_row_to_json) AS same FROM kinds_messages;
DROP VIEW kinds_messages;
RESET TIME ZONE;
INSERT INTO with_array VALUES (2, ARRAY['w'], 'again');
SELECT (m.body::json -> 'payload')::text = row_to_json(w)::text AS array_row_same
  FROM (SELECT (regexp_match(data, 'content:(.*)$'))[1] AS body
          FROM pg_logical_slot_get_changes('regress_outbox', NULL, NULL)
         WHERE data LIKE 'message:%') AS m
  JOIN with_array AS w ON w.id = (m.body::json ->> 'aggregateid')::int;
DROP TABLE kinds, with_array;
DROP DOMAIN posint;

-- outbox_emit: an explicit event in the caller's transaction.
TRUNCATE outbox;
SELECT masked(outbox_emit('Customer', 'c-1', 'CustomerMerged', '{"into": "c-2"}')::text);
SELECT masked(outbox_emit('Customer', 'c-2', 'CustomerNotified', NULL, 'message')::text);
SELECT aggregatetype, aggregateid, type, payload FROM outbox;
SELECT * FROM outbox_messages();

-- cdc_heartbeat writes a flushed non-transactional message and returns its LSN; slot_lag
-- shows the slot.
SELECT cdc_heartbeat() > '0/0' AS lsn;
SELECT data ~ '^message: transactional: 0 prefix: distcount.heartbeat, sz: \d+ content:\{"ts":\d+\}$' AS heartbeat
  FROM pg_logical_slot_get_changes('regress_outbox', NULL, NULL);
SELECT slot_name, plugin, retained_bytes >= 0 AS retained, lag_bytes >= 0 AS lag
  FROM slot_lag WHERE slot_name = 'regress_outbox';

-- The relay: per-aggregate order, leases, ack, nack, dead letters, retry.
TRUNCATE outbox;
SELECT count(outbox_emit('Order', o::text, 'Step' || s, jsonb_build_object('step', s)))
  FROM generate_series(1, 3) AS s, generate_series(1, 2) AS o;
-- One event per aggregate at a time: the first step of each order.
SELECT aggregateid, type FROM outbox_claim('mailer', 10) ORDER BY seq;
-- Leased: nothing more until acknowledged.
SELECT count(*) FROM outbox_claim('mailer', 10);
-- Another consumer gets every event too.
SELECT aggregateid, type FROM outbox_claim('search', 1);
SELECT outbox_ack('mailer', array_agg(id)) FROM outbox WHERE type = 'Step1';
SELECT aggregateid, type FROM outbox_claim('mailer', 10) ORDER BY seq;
-- A failed delivery is claimable again after retry_in, then dead after max attempts.
SET pg_distcount.outbox_max_attempts = 2;
SELECT outbox_nack('mailer', id, 'smtp down') FROM outbox WHERE type = 'Step2' AND aggregateid = '1';
SELECT aggregateid, type FROM outbox_claim('mailer', 10) ORDER BY seq;
SELECT outbox_nack('mailer', id, 'smtp still down') FROM outbox WHERE type = 'Step2' AND aggregateid = '1';
SELECT outbox_nack('mailer', id, 'not mine') FROM outbox WHERE type = 'Step3' AND aggregateid = '1';
SELECT o.aggregateid, o.type, d.attempts, d.last_error FROM outbox_dead AS d JOIN outbox AS o USING (id);
-- Order 1 moves on to step 3 once step 2 is dead.
SELECT aggregateid, type FROM outbox_claim('mailer', 10) ORDER BY seq;
SELECT consumer, queued, not_yet_queued, leased, dead FROM outbox_stats ORDER BY consumer;
SELECT outbox_retry_dead('mailer');
SELECT outbox_ack('mailer', array_agg(id)) FROM outbox;
SELECT aggregateid, type FROM outbox_claim('mailer', 10) ORDER BY seq;
SELECT outbox_ack('mailer', array_agg(id)) FROM outbox;
SELECT count(*) FROM outbox_claim('mailer', 10);
RESET pg_distcount.outbox_max_attempts;
-- Cleanup keeps what a consumer still needs ('search' has not acknowledged anything).
SELECT outbox_cleanup('0 seconds');
SELECT outbox_drop_consumer('search');
SELECT outbox_cleanup('0 seconds');
SELECT count(*) AS left_over FROM outbox;

SELECT pg_drop_replication_slot('regress_outbox');
DROP TABLE orders, payments, notes, lines, items, pairs;
DROP FUNCTION masked(text), outbox_messages();
TRUNCATE outbox;
