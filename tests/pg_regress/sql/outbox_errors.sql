-- Misused outbox triggers and bad relay arguments give a clear ERROR with its SQLSTATE, at
-- CREATE TRIGGER where PostgreSQL lets us check, else at the first row; never a lost event.
CREATE TABLE shop (id int PRIMARY KEY, tenant text, note text);

-- At CREATE TRIGGER (the extension's event trigger checks new outbox triggers).
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'nope') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id', 'message', '{aggregatetype}{Op}', 'new', 'extra') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id', 'kafka') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id', 'table', '{Aggregate}Done') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id', 'table', '{op}', 'diff') $$);
SELECT error_of($$ CREATE TRIGGER t BEFORE INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH STATEMENT EXECUTE FUNCTION outbox_trigger('Shop', 'id') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Shop', 'id') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_statement_trigger('Shop', 'id') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER DELETE ON shop REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Shop', 'id', 'table', '{Op}', 'old_new') $$);
SELECT error_of($$ CREATE TRIGGER t AFTER INSERT ON shop REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Shop', 'nope') $$);
-- None of them was created.
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'shop'::regclass;

-- With the check disabled (or a key column dropped later), the first row fails, and with it
-- the business write: no row without its event.
ALTER EVENT TRIGGER distcount_outbox_check DISABLE;
CREATE TRIGGER bad_key AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'nope');
SELECT error_of($$ INSERT INTO shop VALUES (1, 'a', 'x') $$);
DROP TRIGGER bad_key ON shop;
CREATE TRIGGER bad_timing BEFORE INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id');
SELECT error_of($$ INSERT INTO shop VALUES (1, 'a', 'x') $$);
DROP TRIGGER bad_timing ON shop;
CREATE TRIGGER bad_mode AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id', 'kafka');
SELECT error_of($$ INSERT INTO shop VALUES (1, 'a', 'x') $$);
DROP TRIGGER bad_mode ON shop;
CREATE TRIGGER bad_level AFTER INSERT ON shop FOR EACH STATEMENT EXECUTE FUNCTION outbox_trigger('Shop', 'id');
SELECT error_of($$ INSERT INTO shop VALUES (1, 'a', 'x') $$);
DROP TRIGGER bad_level ON shop;
ALTER EVENT TRIGGER distcount_outbox_check ENABLE;
SELECT count(*) AS shop_rows FROM shop;

CREATE TRIGGER shop_outbox AFTER INSERT OR UPDATE ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'tenant');
CREATE TRIGGER shop_bulk AFTER INSERT ON shop REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Shop', 'tenant');
-- A null key (23502) in either form.
SELECT error_of($$ INSERT INTO shop VALUES (1, NULL, 'x') $$);
DROP TRIGGER shop_outbox ON shop;
SELECT error_of($$ INSERT INTO shop VALUES (1, NULL, 'x') $$);
-- A dropped key column (42703) at the next row.
ALTER TABLE shop DROP COLUMN tenant;
SELECT error_of($$ INSERT INTO shop VALUES (1, 'x') $$);
DROP TRIGGER shop_bulk ON shop;
-- An aggregate id too long for the outbox (22001).
CREATE TABLE long_keys (k text PRIMARY KEY);
CREATE TRIGGER lk AFTER INSERT ON long_keys FOR EACH ROW EXECUTE FUNCTION outbox_trigger('K', 'k', 'message');
SELECT error_of($$ INSERT INTO long_keys VALUES (repeat('k', 256)) $$);
-- Called directly, a trigger function says so (39P01).
SELECT error_of($$ SELECT outbox_trigger() $$);
SELECT error_of($$ SELECT outbox_statement_trigger() $$);
SELECT count(*) AS events FROM outbox;

-- Headers must be a JSON object (22P02 for bad JSON, 22023 for another JSON value).
CREATE TRIGGER shop_outbox AFTER INSERT ON shop FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Shop', 'id');
SET pg_distcount.outbox_headers = '{"a": ';
SELECT error_of($$ INSERT INTO shop VALUES (2, 'x') $$);
SET pg_distcount.outbox_headers = '[1, 2]';
SELECT error_of($$ INSERT INTO shop VALUES (2, 'x') $$);
RESET pg_distcount.outbox_headers;
SELECT error_of($$ SET pg_distcount.outbox_mode = 'kafka' $$);

-- outbox_emit: null or empty fields (22004, 22023), unknown mode (22023).
SELECT error_of($$ SELECT outbox_emit(NULL, '1', 'T', '{}') $$);
SELECT error_of($$ SELECT outbox_emit('A', NULL, 'T', '{}') $$);
SELECT error_of($$ SELECT outbox_emit('A', '1', NULL, '{}') $$);
SELECT error_of($$ SELECT outbox_emit('', '1', 'T', '{}') $$);
SELECT error_of($$ SELECT outbox_emit('A', '1', 'T', '{}', 'kafka') $$);
SELECT error_of($$ SELECT cdc_heartbeat('') $$);

-- Relay arguments.
SELECT error_of($$ SELECT * FROM outbox_claim(NULL) $$);
SELECT error_of($$ SELECT * FROM outbox_claim('') $$);
SELECT error_of($$ SELECT * FROM outbox_claim('c', 0) $$);
SELECT error_of($$ SELECT * FROM outbox_claim('c', 10, '0 seconds') $$);
SELECT error_of($$ SELECT * FROM outbox_claim('c', 10, NULL) $$);
SELECT error_of($$ SELECT outbox_ack(NULL, '{}') $$);
SELECT error_of($$ SELECT outbox_nack('', gen_random_uuid(), 'x') $$);
SELECT error_of($$ SELECT outbox_cleanup('-1 day') $$);
SELECT outbox_nack('c', gen_random_uuid(), 'never claimed');
SELECT outbox_ack('c', ARRAY[gen_random_uuid()]);
-- The cluster relay needs Citus (55000); a bad batch is refused first (22023).
SELECT error_of($$ SELECT * FROM outbox_cluster_claim('c') $$);
SELECT error_of($$ SELECT * FROM outbox_cluster_claim('c', 0) $$);
SELECT error_of($$ SELECT outbox_cluster_ack('c', ARRAY[gen_random_uuid()]) $$);
SELECT error_of($$ SELECT outbox_cluster_nack('c', gen_random_uuid()) $$);

DROP TABLE shop, long_keys;
SELECT outbox_drop_consumer('c');
TRUNCATE outbox;
