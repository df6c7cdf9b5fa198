-- Outbox rows are written without the executor (src/outbox/direct.rs) while distcount.outbox is
-- as the extension makes it, and by the executor's INSERT once an administrator has added
-- something only the executor honours. Both must write the same rows and fail the same way.
CREATE EXTENSION IF NOT EXISTS amcheck;
-- An error's SQLSTATE and message (their details name ids and times that change per run).
CREATE FUNCTION od_error(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE od_orders (id int PRIMARY KEY, note text);
CREATE TRIGGER od_outbox AFTER INSERT OR UPDATE ON od_orders
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('OdOrder', 'id', 'table');

-- The columns the relay trusts, as their defaults make them: seq from outbox_seq in the order
-- of the events, txid this transaction's, created_at the clock's within it.
BEGIN;
INSERT INTO od_orders SELECT g, 'n' FROM generate_series(1, 300) g;
SELECT count(*) AS events, count(DISTINCT id) AS ids,
       array_agg(aggregateid::int ORDER BY seq) = ARRAY(SELECT generate_series(1, 300)) AS seq_in_order,
       max(seq) - min(seq) + 1 AS seq_span,
       max(seq) = currval('distcount.outbox_seq') AS seq_from_outbox_seq,
       bool_and(txid = pg_current_xact_id()) AS txid_this_transaction,
       bool_and(created_at BETWEEN now() AND clock_timestamp()) AS created_now,
       bool_and(type = 'OdOrderCreated' AND payload = jsonb_build_object('id', aggregateid::int, 'note', 'n')) AS event_columns
  FROM outbox WHERE aggregatetype = 'OdOrder';
COMMIT;
-- Every row is in every index of the outbox (amcheck: every heap tuple has its index entry)
-- and the primary key refuses an id written this way.
SELECT c.relname, pg_typeof(bt_index_check(c.oid, true)) AS checked
  FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'distcount.outbox'::regclass ORDER BY 1;
SELECT od_error($$ INSERT INTO outbox (id, aggregatetype, aggregateid, type)
                   SELECT id, 'x', 'y', 'z' FROM outbox WHERE aggregatetype = 'OdOrder' LIMIT 1 $$);

-- varchar(512) as an INSERT casts to it (tracingspancontext; the other varchar columns are
-- checked in bytes before): trailing spaces past 512 characters are cut, 512 two-byte
-- characters fit, 513 characters do not.
BEGIN;
SET LOCAL pg_distcount.outbox_tracingspancontext = 'T';
SELECT outbox_emit('OdText', 'short', 'Traced', NULL, 'table') IS NOT NULL AS written;
SELECT set_config('pg_distcount.outbox_tracingspancontext', 'T' || repeat(' ', 600), true) IS NOT NULL AS set;
SELECT outbox_emit('OdText', 'spaces', 'Traced', NULL, 'table') IS NOT NULL AS written;
SELECT set_config('pg_distcount.outbox_tracingspancontext', repeat('é', 512), true) IS NOT NULL AS set;
SELECT outbox_emit('OdText', 'accents', 'Traced', NULL, 'table') IS NOT NULL AS written;
SELECT set_config('pg_distcount.outbox_tracingspancontext', repeat('t', 513), true) IS NOT NULL AS set;
SELECT od_error($$ SELECT outbox_emit('OdText', 'long', 'Traced', NULL, 'table') $$);
COMMIT;
SELECT aggregateid, char_length(tracingspancontext) AS tracing_length, octet_length(tracingspancontext) AS bytes
  FROM outbox WHERE aggregatetype = 'OdText' ORDER BY seq;

-- A read-only transaction refuses the insert (25006).
BEGIN READ ONLY;
SELECT od_error($$ SELECT outbox_emit('OdOrder', 'ro', 'ReadOnly', NULL, 'table') $$);
COMMIT;

-- Privileges: INSERT on the event columns and USAGE on the sequence are needed, as for the
-- executor's INSERT.
CREATE ROLE regress_od_writer;
GRANT USAGE ON SCHEMA distcount TO regress_od_writer;
GRANT EXECUTE ON FUNCTION outbox_emit(text, text, text, jsonb, text) TO regress_od_writer;
SET ROLE regress_od_writer;
SELECT od_error($$ SELECT outbox_emit('OdRole', 'r1', 'NoInsert', NULL, 'table') $$);
RESET ROLE;
GRANT INSERT (id, aggregatetype, aggregateid, type, payload, headers, tracingspancontext)
    ON outbox TO regress_od_writer;
SET ROLE regress_od_writer;
SELECT od_error($$ SELECT outbox_emit('OdRole', 'r2', 'NoSequence', NULL, 'table') $$);
RESET ROLE;
GRANT USAGE ON SEQUENCE outbox_seq TO regress_od_writer;
SET ROLE regress_od_writer;
SELECT outbox_emit('OdRole', 'r3', 'Granted', '{"a": 1}', 'table') IS NOT NULL AS written;
RESET ROLE;
SELECT aggregateid, type, payload FROM outbox WHERE aggregatetype = 'OdRole' ORDER BY seq;

-- What an administrator adds to the outbox is honoured: a check constraint,
ALTER TABLE outbox ADD CONSTRAINT od_no_secret CHECK (aggregateid <> 'secret');
SELECT od_error($$ SELECT outbox_emit('OdOrder', 'secret', 'Checked', NULL, 'table') $$);
ALTER TABLE outbox DROP CONSTRAINT od_no_secret;
-- a trigger,
CREATE TABLE od_seen (id uuid, aggregateid text);
CREATE FUNCTION od_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO od_seen VALUES (NEW.id, NEW.aggregateid);
    RETURN NEW;
END $$;
CREATE TRIGGER od_record BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION od_record();
INSERT INTO od_orders VALUES (1001, 'seen');
SELECT s.aggregateid, s.id = o.id AS same_id FROM od_seen AS s JOIN outbox AS o ON o.aggregateid = s.aggregateid
 WHERE o.aggregatetype = 'OdOrder';
DROP TRIGGER od_record ON outbox;
-- row-level security,
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY od_no_hidden ON outbox FOR INSERT WITH CHECK (aggregatetype <> 'OdHidden');
CREATE POLICY od_read ON outbox FOR SELECT USING (true);
SET ROLE regress_od_writer;
SELECT od_error($$ SELECT outbox_emit('OdHidden', 'h1', 'Hidden', NULL, 'table') $$);
SELECT outbox_emit('OdRole', 'r4', 'Shown', NULL, 'table') IS NOT NULL AS written;
RESET ROLE;
DROP POLICY od_no_hidden ON outbox;
DROP POLICY od_read ON outbox;
ALTER TABLE outbox DISABLE ROW LEVEL SECURITY;
-- a column with a default.
ALTER TABLE outbox ADD COLUMN od_extra text DEFAULT 'filled';
INSERT INTO od_orders VALUES (1002, 'extra');
SELECT aggregateid, od_extra FROM outbox WHERE aggregatetype = 'OdOrder' AND aggregateid = '1002';
ALTER TABLE outbox DROP COLUMN od_extra;
-- Once they are gone (a dropped column stays in the descriptor), rows are written directly again.
INSERT INTO od_orders VALUES (1003, 'after');
SELECT aggregateid, payload FROM outbox WHERE aggregatetype = 'OdOrder' AND aggregateid = '1003';
SELECT c.relname, pg_typeof(bt_index_check(c.oid, true)) AS checked
  FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'distcount.outbox'::regclass ORDER BY 1;

DROP TABLE od_orders, od_seen;
DROP FUNCTION od_record(), od_error(text);
DELETE FROM outbox WHERE aggregatetype IN ('OdOrder', 'OdText', 'OdRole');
REVOKE ALL ON outbox, outbox_seq FROM regress_od_writer;
REVOKE ALL ON SCHEMA distcount FROM regress_od_writer;
REVOKE ALL ON FUNCTION outbox_emit(text, text, text, jsonb, text) FROM regress_od_writer;
DROP ROLE regress_od_writer;
