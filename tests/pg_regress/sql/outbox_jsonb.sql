-- Table-mode payloads are written in jsonb's binary layout directly (src/outbox/row_json.rs):
-- they must be, byte for byte, what to_jsonb builds. The bytes are compared through a
-- binary-coercible cast (jsonb and bytea are both varlena). Event ids grow within a session.
CREATE CAST (jsonb AS bytea) WITHOUT FUNCTION;
CREATE DOMAIN jt_posint AS int CHECK (VALUE > 0);
CREATE DOMAIN jt_amount AS numeric(12,3);
CREATE TABLE jt_kinds (id int PRIMARY KEY, b bool, s smallint, big bigint, n numeric,
    f4 real, f8 double precision, d date, ts timestamp, tz timestamptz, t text, vc varchar(20),
    by bytea, u uuid, ip inet, dom jt_posint, "a longer name" text, x text, "é" text,
    ch char(3), iv interval, tm time, mo money, amount jt_amount, gone int);
ALTER TABLE jt_kinds DROP COLUMN gone;
CREATE TRIGGER jt_kinds_outbox AFTER INSERT ON jt_kinds REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Kind', 'id', 'table');
INSERT INTO jt_kinds VALUES
 (1, true, -3, 9223372036854775807, 'NaN', 'Infinity', -1.5e300, '2020-01-02',
  '2020-01-02 03:04:05.123', '2020-01-02 03:04:05+02', E'h\u00e9llo "q" \\ \t', 'vc', '\x00ff',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1/8', 5, 'long', NULL, 'accent', 'ab',
  '1 day 2 hours', '10:11:12', 12.34, 'NaN'),
 (2, false, 0, -1, 123456789012345678901234567890.000100, 1.5, 0, 'infinity', '-infinity',
  'infinity', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1.0005),
 (3, NULL, NULL, NULL, -0.0, '-Infinity', 'NaN', NULL, NULL, NULL, repeat('z', 3000), 'x', '',
  NULL, NULL, NULL, '', 'y', '', '', NULL, NULL, NULL, 1e8),
 (4, true, 1, 2, 1e-20, 3.4e38, 1e-300, '0001-01-01 BC', '1999-12-31 23:59:59.999999',
  '1999-12-31 23:59:59.999999+14', repeat('ab', 100000), 'x', 'x', NULL, '::1', 7, 'a', 'b', 'c',
  'd', '-3 mons', '00:00', -1, 0),
 (5, true, 1, 2, 1e1000, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, (repeat('9', 9) || '.5')::numeric);
-- Integers, as int64_to_numeric would make them: zero, signs, limits, runs of zero digits.
CREATE TABLE jt_ints (k serial PRIMARY KEY, a smallint, b int, c bigint);
CREATE TRIGGER jt_ints_outbox AFTER INSERT ON jt_ints REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Int', 'k', 'table');
INSERT INTO jt_ints (a, b, c) VALUES (0, 0, 0), (-1, -1, -1), (1, 1, 1),
  (32767, 2147483647, 9223372036854775807), (-32768, -2147483648, -9223372036854775808),
  (10000, 100000000, 1000000000000), (9999, 99999999, 999999999999),
  (-10000, -100000000, -10000000000000000), (1000, 20000, 300000000000000000);
INSERT INTO jt_ints (a, b, c)
SELECT (g % 65536) - 32768, g * 7919 - 2000000000,
       g::bigint * 104729 * 1000003 * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END)
  FROM generate_series(1, 2000) g;
-- More than 32 keys: every 32nd entry stores an offset instead of a length.
SELECT format('CREATE TABLE jt_wide (%s)', string_agg(format('c%s int', g), ', '))
  FROM generate_series(1, 40) g \gexec
CREATE TRIGGER jt_wide_outbox AFTER INSERT ON jt_wide REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_statement_trigger('Wide', 'c1', 'table');
INSERT INTO jt_wide SELECT g, g * 2, g * 3, NULL, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
    18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40
  FROM generate_series(1, 3) g;
-- The row trigger builds its payloads the same way.
CREATE TABLE jt_rows (LIKE jt_kinds);
CREATE TRIGGER jt_rows_outbox AFTER INSERT ON jt_rows
    FOR EACH ROW EXECUTE FUNCTION outbox_trigger('Row', 'id', 'table');
INSERT INTO jt_rows SELECT * FROM jt_kinds;

SELECT o.aggregatetype, count(*) AS events,
       count(*) FILTER (WHERE o.payload::bytea = r.j::bytea) AS same_bytes
  FROM outbox AS o
  JOIN (SELECT 'Kind' AS t, id::text AS k, to_jsonb(jk) AS j FROM jt_kinds AS jk
        UNION ALL SELECT 'Int', k::text, to_jsonb(ji) FROM jt_ints AS ji
        UNION ALL SELECT 'Wide', c1::text, to_jsonb(jw) FROM jt_wide AS jw
        UNION ALL SELECT 'Row', id::text, to_jsonb(jr) FROM jt_rows AS jr) AS r
    ON r.t = o.aggregatetype AND r.k = o.aggregateid
 GROUP BY 1 ORDER BY 1;
SELECT payload -> 'c40' AS c40, payload -> 'c4' AS c4, payload ->> 'c33' AS c33
  FROM outbox WHERE aggregatetype = 'Wide' AND aggregateid = '2';

-- Ids: UUID version 7 and the RFC 4122 variant, and growing in the order written (one
-- session); the first 48 bits are the time of writing, in milliseconds.
SELECT count(*) AS ids,
       bool_and(substr(id::text, 15, 1) = '7' AND substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS version_7,
       bool_and(id > previous) FILTER (WHERE previous IS NOT NULL) AS growing,
       bool_and(abs(('x' || lpad(replace(left(id::text, 13), '-', ''), 16, '0'))::bit(64)::bigint
                     - (extract(epoch FROM created_at) * 1000)::bigint) < 5000) AS timed
  FROM (SELECT id, created_at, lag(id) OVER (ORDER BY seq) AS previous FROM outbox) AS e;

DROP TABLE jt_kinds, jt_ints, jt_wide, jt_rows;
DROP DOMAIN jt_posint;
DROP DOMAIN jt_amount;
DROP CAST (jsonb AS bytea);
TRUNCATE outbox;
