#!/usr/bin/env bash
# Counter columns survive binary COPY out and in, and pg_dump/pg_restore, byte for byte;
# a restored database gets a node id of its own instead of the original's; outbox events and
# outbox triggers survive the restore, and the relay delivers the restored events.
source "$(dirname "$0")/../tools/integration_lib.sh"
WORK="$(mktemp -d)"
chmod 777 "$WORK"
trap 'rm -rf "$WORK"' EXIT

fresh_db dc_source
sql -d dc_source <<'SQL'
CREATE TABLE likes (post bigint PRIMARY KEY, g distcount.gcounter, p distcount.pncounter, h distcount.hll(12));
INSERT INTO likes
SELECT i,
       distcount.gcounter_inc(distcount.gcounter_inc(NULL, i, 'tokyo'), i * 2, 'virginia'),
       distcount.pncounter_inc(distcount.pncounter_inc(NULL, i, 'tokyo'), -(i % 5), 'frankfurt'),
       (SELECT distcount.hll_agg(v) FROM generate_series(1, (i * 37) % 20000) v)
FROM generate_series(1, 2000) i;
-- Some NULLs, an empty counter, a counter at the slot limit and awkward node ids.
INSERT INTO likes VALUES (-1, NULL, NULL, NULL), (-2, '{}', '{}', distcount.hll_empty(12)),
    (-3, '{"quote\"d": 1, "日本": 2, "tab\t": 3}', '{"x": [1, 2]}', NULL);
INSERT INTO likes
SELECT -4, distcount.gcounter_merge_agg(distcount.gcounter_inc(NULL, 1, 'n' || i)), NULL, NULL
FROM generate_series(1, 4096) i;
SQL
sql -d dc_source >/dev/null <<'SQL'
CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TRIGGER orders_outbox AFTER INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION distcount.outbox_trigger('Order', 'id');
INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 100) AS i;
UPDATE orders SET note = 'changed' WHERE id <= 10;
SQL
events="SELECT md5(string_agg(id || aggregatetype || aggregateid || type || payload::text || seq, ',' ORDER BY seq))
        FROM distcount.outbox"
source_events="$(sql -d dc_source -c "$events")"
fingerprint="SELECT md5(string_agg(post || ':' || coalesce(g::bytea::text, 'null') || ':' || coalesce(p::bytea::text, 'null')
                                   || ':' || coalesce(h::bytea::text, 'null'), ',' ORDER BY post)) FROM likes"
source_print="$(sql -d dc_source -c "$fingerprint")"
source_node="$(sql -d dc_source -c "SELECT distcount.node_id()")"

# COPY out and back in, in binary (send/recv) and text (out/in) format: byte-identical.
sql -d dc_source -c "CREATE TABLE likes_copy (LIKE likes)"
copy_round_trip() { # FORMAT FILE
    sql -d dc_source -c "COPY likes TO '$2' WITH (FORMAT $1)"
    sql -d dc_source -c "TRUNCATE likes_copy"
    sql -d dc_source -c "COPY likes_copy FROM '$2' WITH (FORMAT $1)"
    check "$1 COPY round trip is byte-identical" "0" \
        "$(sql -d dc_source -c "SELECT count(*) FROM likes l FULL JOIN likes_copy c USING (post)
                                WHERE l.g::bytea IS DISTINCT FROM c.g::bytea OR l.p::bytea IS DISTINCT FROM c.p::bytea
                                   OR l.h::bytea IS DISTINCT FROM c.h::bytea")"
}
copy_round_trip binary "$WORK/likes.bin"
copy_round_trip text "$WORK/likes.txt"
# Forged bytes in a binary COPY stream are refused with the binary-format SQLSTATE.
python3 - "$WORK/likes.bin" "$WORK/forged.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], 'rb').read())
i = data.find(b'virginia')          # a node id inside a gcounter
data[i - 1] = 200                   # its length byte, now out of range
open(sys.argv[2], 'wb').write(data)
PY
forged_error="$(psql -X -tA -v VERBOSITY=verbose -d dc_source \
    -c "COPY likes_copy FROM '$WORK/forged.bin' WITH (FORMAT binary)" 2>&1 || true)"
echo "$forged_error" | head -2
check "forged binary COPY input is refused with 22P03" "ERROR:  22P03: invalid binary data for type gcounter" \
    "$(echo "$forged_error" | head -1)"

# pg_dump / pg_restore into a fresh database.
pg_dump -Fc -d dc_source -f "$WORK/source.dump"
dropdb --if-exists dc_restored
createdb dc_restored
pg_restore -d dc_restored "$WORK/source.dump"
check "pg_dump/pg_restore keeps every counter byte-identical" "$source_print" \
    "$(sql -d dc_restored -c "$fingerprint")"
check "values survive the restore" "$(sql -d dc_source -c "SELECT sum(distcount.gcounter_value(g)) FROM likes")" \
    "$(sql -d dc_restored -c "SELECT sum(distcount.gcounter_value(g)) FROM likes")"
check "outbox events survive the restore" "$source_events" "$(sql -d dc_restored -c "$events")"
check "the outbox trigger survives the restore and writes the next event" "101|111" \
    "$(sql -d dc_restored -c "INSERT INTO orders VALUES (101, 'after');
                              SELECT (SELECT aggregateid FROM distcount.outbox ORDER BY seq DESC LIMIT 1), count(*) FROM distcount.outbox")"
check "the relay hands out the restored events (the first of each of the 101 orders)" "101" \
    "$(sql -d dc_restored -c "SELECT count(*) FROM distcount.outbox_claim('restored', 1000)")"
restored_node="$(sql -d dc_restored -c "SELECT distcount.node_id()")"
check "the restored database writes under a node id of its own" "different" \
    "$([ -n "$restored_node" ] && [ "$restored_node" != "$source_node" ] && echo different || echo "same: $restored_node")"

dropdb dc_source
dropdb dc_restored
finish
