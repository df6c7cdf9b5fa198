#!/usr/bin/env bash
# pgbench: 8 clients increment shared gcounter and pncounter rows under three node ids at
# once. Every committed transaction must be counted exactly once.
source "$(dirname "$0")/../tools/integration_lib.sh"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fresh_db dc_bench
sql -d dc_bench <<'SQL'
CREATE TABLE counters (id int PRIMARY KEY, g distcount.gcounter, p distcount.pncounter, plain bigint NOT NULL DEFAULT 0,
                       hits bigint NOT NULL DEFAULT 0);
INSERT INTO counters (id) SELECT generate_series(1, 4);
SQL
cat >"$WORK/inc.sql" <<'SQL'
\set id random(1, 4)
\set delta random(-3, 5)
UPDATE counters
   SET g = distcount.gcounter_inc(g, 1, 'region-' || (:client_id % 3)),
       p = distcount.pncounter_inc(p, :delta, 'region-' || (:client_id % 3)),
       plain = plain + :delta,
       hits = hits + 1
 WHERE id = :id;
SQL
echo "==> pgbench: 8 clients x 500 transactions"
pgbench -n -c 8 -j 2 -t 500 -f "$WORK/inc.sql" dc_bench | tee "$WORK/pgbench.out"
committed="$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$WORK/pgbench.out")"
check "pgbench committed every transaction" "4000" "$committed"
check "gcounter total equals committed transactions" "$committed" \
    "$(sql -d dc_bench -c "SELECT sum(distcount.gcounter_value(g)) FROM counters")"
check "pncounter values equal the plain running sums" "0" \
    "$(sql -d dc_bench -c "SELECT count(*) FROM counters WHERE distcount.pncounter_value(coalesce(p, '{}')) <> plain")"
check "every row's gcounter equals the plain count of its updates" "0" \
    "$(sql -d dc_bench -c "SELECT count(*) FROM counters WHERE coalesce(distcount.gcounter_value(g), 0) <> hits")"
check "each row's increments are spread over exactly the three region slots" "0" \
    "$(sql -d dc_bench -c "SELECT count(*) FROM counters c
                           WHERE (SELECT count(*) FROM distcount.gcounter_entries(c.g)) <> 3 AND c.hits > 100")"
dropdb dc_bench
finish
