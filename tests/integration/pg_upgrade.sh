#!/usr/bin/env bash
# pg_upgrade from the server under test (15, 16 or 17) to PostgreSQL 18, both with the build
# under test: values of every type (hll of every form and several precisions, cms linear and
# conservative, gcounter and pncounter from empty to 4,096 slots, orset, lwwreg with values of
# several kinds and sizes) read back byte-identical: text output, ::bytea and the send function.
# Both servers are private copies (tests/tools/extension_builds.sh copy-server), so neither the
# server under test nor the system's is touched. PostgreSQL 18 is fetched like `make test
# PG=18` does (tests/tools/install_deps.sh), and this checkout is built for it with `cargo pgrx
# package --release`, the build `make test PG=18` makes, so each reuses the other's; with src/
# committed it is kept in the cache (extension_builds.sh package), so 16 and 17 reuse 15's.
# On PostgreSQL 18 itself there is nothing newer to upgrade to: SKIPPED.
source "$(dirname "$0")/../tools/integration_lib.sh"
ROOT="$DISTCOUNT_ROOT"
BUILDS="$ROOT/tests/tools/extension_builds.sh"
CLUSTER="$ROOT/tests/tools/cluster.sh"
NEW_MAJOR=18
if [ "$PG_MAJOR" -ge "$NEW_MAJOR" ]; then
    skip "pg_upgrade to PostgreSQL $NEW_MAJOR" "the server under test is PostgreSQL $PG_MAJOR"
    exit 0
fi
WORK="$(mktemp -d)"
chmod 755 "$WORK"
OLD_PG_CONFIG="$PG_CONFIG"
new_initdb_options=

# ---- the builds and the two private servers ---------------------------------------------------
NEW_PG_CONFIG="$("$ROOT/tests/tools/postgres.sh" pg_config "$NEW_MAJOR")"
# Fetched (and `cargo pgrx init`ed) as `make deps PG=18` does, unless it is there already.
if [ ! -x "$NEW_PG_CONFIG" ]; then
    PG="$NEW_MAJOR" PG_CONFIG= "$ROOT/tests/tools/install_deps.sh" >"$WORK/deps.log" 2>&1 ||
        { tail -20 "$WORK/deps.log"; echo "FAILED: PostgreSQL $NEW_MAJOR set-up"; exit 1; }
fi
"$BUILDS" current "$WORK/build-old"
stamp "building this checkout for PostgreSQL $NEW_MAJOR (release; reused by make test PG=$NEW_MAJOR)"
PG_CONFIG="$NEW_PG_CONFIG" "$BUILDS" package "$WORK/build-new" >"$WORK/package.log" 2>&1 ||
    { tail -20 "$WORK/package.log"; echo "FAILED: cargo pgrx package for PostgreSQL $NEW_MAJOR"; exit 1; }
stamp "built"
old_state="$STATE"
new_state="$(dirname "$STATE")/pg$NEW_MAJOR"
OLD_COPY="$(PG_CONFIG="$OLD_PG_CONFIG" "$BUILDS" copy-server "$old_state/pg_upgrade-server")"
NEW_COPY="$(PG_CONFIG="$NEW_PG_CONFIG" "$BUILDS" copy-server "$new_state/pg_upgrade-server")"
"$BUILDS" install "$WORK/build-old" "$OLD_COPY"
"$BUILDS" install "$WORK/build-new" "$NEW_COPY"
# PG (exported by `make test`) names the major under test; tests/tools/common.sh refuses a
# PG_CONFIG of another major beside it.
on_old() { PG= PG_CONFIG="$OLD_COPY" "$CLUSTER" "$@"; }
on_new() { PG= PG_CONFIG="$NEW_COPY" CLUSTER_INITDB_OPTIONS="$new_initdb_options" "$CLUSTER" "$@"; }
on_old stop pg_upgrade_old >/dev/null 2>&1 || true
on_new stop pg_upgrade_new >/dev/null 2>&1 || true
rm -rf "$old_state/clusters/pg_upgrade_old" "$new_state/clusters/pg_upgrade_new"
trap 'on_old stop pg_upgrade_old >/dev/null 2>&1 || true; on_new stop pg_upgrade_new >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# ---- data on the old server --------------------------------------------------------------------
on_old start pg_upgrade_old
eval "$(on_old env pg_upgrade_old)"
version="$(sql -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_distcount'")"
createdb up_values
sql -d up_values -c "CREATE EXTENSION pg_distcount"
sql -d up_values >/dev/null <<'SQL'
SET search_path = public, distcount;
CREATE TABLE v (id int PRIMARY KEY, h hll, h10 hll(10), c cms, g gcounter, p pncounter, r lwwreg, o orset);
-- hll: empty, explicit (a few values), sparse (thousands), dense (tens of thousands), precisions
-- 4 to 18; cms: linear and conservative, with and without heavy hitters, several sizes;
-- counters up to 300 slots; registers holding jsonb of several kinds and sizes.
INSERT INTO v
SELECT i,
       (SELECT hll_agg(x, 4 + i % 15) FROM generate_series(1, (i * i * 97) % 60000) x),
       (SELECT hll_agg('s' || x) FROM generate_series(1, i * 50) x),
       (SELECT cms_agg_weighted('k' || (x % (1 + i)), x % 9 - 2, 0.01 * (1 + i % 4), 0.05, i % 3 * 10)
          FROM generate_series(1, i * 30) x),
       (SELECT gcounter_merge_agg(gcounter_inc(NULL, x * i, 'node-' || x)) FROM generate_series(1, 1 + i * 7 % 300) x),
       (SELECT pncounter_merge_agg(pncounter_inc(pncounter_inc(NULL, x, 'n' || x), -(x * i % 11), 'n' || x))
          FROM generate_series(1, 1 + i % 40) x),
       lww_set_at(NULL,
                  CASE i % 4 WHEN 0 THEN to_jsonb(i) WHEN 1 THEN to_jsonb(repeat('é', i * 40))
                             WHEN 2 THEN jsonb_build_object('user', i, 'tags', to_jsonb(ARRAY['a', 'b']))
                             ELSE (SELECT jsonb_agg(x) FROM generate_series(1, i * 20) x) END,
                  timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second', 'node-' || (i % 3)),
       orset_remove((SELECT orset_merge_agg(orset_add(NULL, repeat('é', x % 7) || 'e' || x, 'node-' || x))
                       FROM generate_series(1, i * 10) x), 'e1')
FROM generate_series(1, 60) i;
INSERT INTO v VALUES
    (0, hll_empty(), hll_empty(10), cms_empty(), '{}', '{}', '{}', '{}'),
    (-1, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (-2, hll_empty(18), NULL, cms_empty(0.0005, 0.001, 0, 'conservative'), NULL, NULL,
     lww_set_at(lww_set_at(NULL, '"first"', '2025-01-01', 'a'), '"second"', '2024-01-01', 'b'),
     orset_remove(orset_add(NULL, 'gone', 'a'), 'gone'));
INSERT INTO v (id, g)
SELECT -3, gcounter_merge_agg(gcounter_inc(NULL, 1, 'n' || x)) FROM generate_series(1, 4096) x;
-- A btree only where every value fits in an index row (hll(10): under 1 kB; a dense hll(18) is
-- 96 kB); hash indexes on the rest.
CREATE INDEX ON v USING hash (g);
CREATE INDEX ON v USING hash (h);
CREATE INDEX ON v (h10);
CREATE INDEX ON v USING hash (r);
SQL
read_values() { # FILE: every value in every form, one row a line
    local t
    for t in h h10 c g p r o; do
        sql -d up_values -c "SELECT id, '$t', $t::text, encode($t::bytea, 'hex'),
                                    encode(distcount.$(case $t in h | h10) echo hll ;; c) echo cms ;; g) echo gcounter ;; p) echo pncounter ;; r) echo lwwreg ;; o) echo orset ;; esac)_send($t), 'hex')
                             FROM v ORDER BY id"
    done >"$1"
}
# pg_upgrade wants the new cluster's data checksums as the old's (initdb's default is on from 18).
if [ "$(sql -d postgres -c "SHOW data_checksums")" = on ]; then
    new_initdb_options=--data-checksums
else
    new_initdb_options=--no-data-checksums
fi
read_values "$WORK/before.txt"
check "values written on PostgreSQL $PG_MAJOR" "$((64 * 7))" "$(wc -l <"$WORK/before.txt")"
# Debian's PostgreSQL 15.20 keeps a version of every user column in its attoptions
# ("pg_attver=N"); its own pg_dump leaves it out, but pg_upgrade runs the new server's pg_dump,
# and 18.6's knows nothing of it: it dumps the option, its server refuses it ('unrecognized
# parameter "pg_attver"'), and pg_upgrade fails for any database with a table in it, with or
# without pg_distcount. PostgreSQL 18 has no such column version to carry over, so the old
# cluster is rid of the option first (a catalog update, in every database), as a user of these
# two builds has to do too. Nothing else of the old cluster is changed.
if ! grep -q pg_attver "$("$NEW_COPY" --bindir)/pg_dump"; then
    attver=0
    for db in $(sql -d postgres -c "SELECT datname FROM pg_database WHERE datallowconn"); do
        n="$(sql -d "$db" -c "WITH u AS (
                UPDATE pg_catalog.pg_attribute
                   SET attoptions = NULLIF(ARRAY(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg_attver=%'), '{}')
                 WHERE attrelid >= 16384 AND EXISTS (SELECT FROM unnest(attoptions) o WHERE o LIKE 'pg_attver=%')
                RETURNING 1) SELECT count(*) FROM u")"
        attver=$((attver + n))
    done
    [ "$attver" = 0 ] ||
        echo "note: the pg_dump of PostgreSQL $NEW_MAJOR here does not know the 'pg_attver' column option of PostgreSQL $PG_MAJOR: removed from $attver columns before pg_upgrade"
fi
on_old stop pg_upgrade_old
stamp "old cluster written and stopped ($(du -k "$WORK/before.txt" | cut -f1) kB of values)"

# ---- pg_upgrade --------------------------------------------------------------------------------
on_new start pg_upgrade_new
on_new stop pg_upgrade_new
old_dir="$old_state/clusters/pg_upgrade_old"
new_dir="$new_state/clusters/pg_upgrade_new"
run_dir="$new_dir/pg_upgrade_run"
mkdir -p "$run_dir"
[ "$(id -u)" != 0 ] || chown postgres "$run_dir"
port=$(( $(cat "$new_dir/port") + 100 ))
# pg_upgrade writes its scripts into the working directory: one its user may write.
in_run_dir() {
    if [ "$(id -u)" = 0 ]; then
        (cd "$run_dir" && runuser -u postgres -- env -u RUST_BACKTRACE "$@")
    else
        (cd "$run_dir" && env -u RUST_BACKTRACE "$@")
    fi
}
if in_run_dir "$("$NEW_COPY" --bindir)/pg_upgrade" \
    -b "$("$OLD_COPY" --bindir)" -B "$("$NEW_COPY" --bindir)" \
    -d "$old_dir/data" -D "$new_dir/data" -U postgres -s "$run_dir" -p "$port" -P "$((port + 1))" \
    >"$WORK/pg_upgrade.log" 2>&1; then
    check "pg_upgrade from PostgreSQL $PG_MAJOR to $NEW_MAJOR" passed passed
else
    tail -30 "$WORK/pg_upgrade.log"
    find "$new_dir/data" -name '*.log' -path '*pg_upgrade_output.d*' -exec tail -20 {} + 2>/dev/null | tail -40 || true
    check "pg_upgrade from PostgreSQL $PG_MAJOR to $NEW_MAJOR" passed failed
    finish
    exit 1
fi
stamp "pg_upgrade done"

# ---- the same bytes on the new server ----------------------------------------------------------
on_new start pg_upgrade_new
eval "$(on_new env pg_upgrade_new)"
check "the extension on PostgreSQL $NEW_MAJOR is $version" "$version" \
    "$(sql -d up_values -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_distcount'")"
read_values "$WORK/after.txt"
if cmp -s "$WORK/before.txt" "$WORK/after.txt"; then
    check "every value reads back byte-identical on PostgreSQL $NEW_MAJOR (text, ::bytea, send; $(wc -l <"$WORK/after.txt") values)" same same
else
    diff "$WORK/before.txt" "$WORK/after.txt" | cut -c1-200 | head -20
    check "every value reads back byte-identical on PostgreSQL $NEW_MAJOR" same differs
fi
# The byte-order count (~<~) depends on the format's bytes: the sequential scan gives it.
index_query="SELECT (SELECT string_agg(id::text, ',') FROM v WHERE h = (SELECT h FROM v WHERE id = 17)),
                (SELECT string_agg(id::text, ',') FROM v WHERE h10 = (SELECT h10 FROM v WHERE id = 17)),
                (SELECT string_agg(id::text, ',') FROM v WHERE g = (SELECT g FROM v WHERE id = -3)),
                (SELECT string_agg(id::text, ',') FROM v WHERE r = (SELECT r FROM v WHERE id = 33)),
                (SELECT count(*) FROM v WHERE h10 ~<~ (SELECT h10 FROM v WHERE id = 60))"
seq_count="$(sql -d up_values -c "SET search_path = public, distcount; SET enable_indexscan = off; SET enable_bitmapscan = off;
         SELECT count(*) FROM v WHERE h10 ~<~ (SELECT h10 FROM v WHERE id = 60)" 2>&1 | tail -1)"
check "indexes find the values after pg_upgrade (hash on hll, gcounter, lwwreg; btree on hll(10))" "17|17|-3|33|$seq_count" \
    "$(sql -d up_values -c "SET search_path = public, distcount; SET enable_seqscan = off; SET enable_bitmapscan = off;
         $index_query" 2>&1 | tail -1)"
stamp "done"
finish
