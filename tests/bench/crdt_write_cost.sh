#!/usr/bin/env bash
# What a CRDT increment costs against the plain `UPDATE ... SET n = n + 1` it replaces, on one
# cluster with the same pgbench load: interleaved rounds, medians, ratios.
#   plain       UPDATE counters SET n = n + 1
#   gcounter    UPDATE counters SET g = distcount.gcounter_inc(g)
#   pncounter   UPDATE counters SET p = distcount.pncounter_inc(p, 1)
#   replicated  gcounter_inc on a table set up by crdt_replicate_setup (mirror trigger on)
# Usage: crdt_write_cost.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CLUSTER="$ROOT/tests/tools/cluster.sh"
ROUNDS="${1:-3}"
SECONDS_EACH="${2:-10}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$CLUSTER" start bench
eval "$("$CLUSTER" env bench)"
dropdb --if-exists crdt_bench
createdb crdt_bench
psql -X -q -d crdt_bench <<'SQL'
CREATE EXTENSION pg_distcount;
CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0,
                       g distcount.gcounter NOT NULL DEFAULT '{}', p distcount.pncounter NOT NULL DEFAULT '{}');
INSERT INTO counters (id) SELECT generate_series(1, 1000);
CREATE TABLE replicated (id int PRIMARY KEY, g distcount.gcounter NOT NULL DEFAULT '{}');
INSERT INTO replicated (id) SELECT generate_series(1, 1000);
SELECT count(*) FROM distcount.crdt_replicate_setup('public.replicated', 'bench', ARRAY['peer']);
SQL
echo '\set id random(1, 1000)' >"$WORK/head"
variants=(plain gcounter pncounter replicated)
declare -A statement=(
    [plain]="UPDATE counters SET n = n + 1 WHERE id = :id;"
    [gcounter]="UPDATE counters SET g = distcount.gcounter_inc(g) WHERE id = :id;"
    [pncounter]="UPDATE counters SET p = distcount.pncounter_inc(p, 1) WHERE id = :id;"
    [replicated]="UPDATE replicated SET g = distcount.gcounter_inc(g) WHERE id = :id;"
)
for v in "${variants[@]}"; do { cat "$WORK/head"; echo "${statement[$v]}"; } >"$WORK/$v.sql"; done

source "$(dirname "$0")/lib.sh"

# Durable commits (the default) are bound by the WAL flush; synchronous_commit = off shows
# the CPU cost of the increment itself.
for commit in on off; do
    : >"$WORK/results"
    echo "==> synchronous_commit = $commit: $ROUNDS interleaved rounds x ${#variants[@]} variants x ${SECONDS_EACH} s, 4 clients, 1,000 rows"
    for round in $(seq 1 "$ROUNDS"); do
        for v in "${variants[@]}"; do
            tps="$(PGOPTIONS="-c synchronous_commit=$commit" pgbench -n -c 4 -j 2 -T "$SECONDS_EACH" -f "$WORK/$v.sql" crdt_bench |
                   sed -nE 's/^tps = ([0-9.]+).*/\1/p')"
            echo "    round $round  $v: $tps tps"
            echo "$v $tps" >>"$WORK/results"
        done
    done
    plain="$(median_of "$WORK/results" plain)"
    printf '\n%-12s %12s %10s\n' variant "median tps" "plain/this"
    for v in "${variants[@]}"; do
        m="$(median_of "$WORK/results" "$v")"
        awk -v v="$v" -v m="$m" -v p="$plain" 'BEGIN { printf "%-12s %12.0f %9.2fx\n", v, m, p / m }'
    done
    echo
done
dropdb crdt_bench
"$CLUSTER" stop bench
