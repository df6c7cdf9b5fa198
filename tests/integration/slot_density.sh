#!/usr/bin/env bash
# Sharded counters' slots stay dense on every major: 8 live sessions, one replaced at random 40
# times, 8 shards, and no two live sessions ever share a slot (tests/bench/slot_collisions.sh).
# DISCARD ALL lets go of a session's slot; its next counter_add claims the lowest free one again.
source "$(dirname "$0")/../tools/integration_lib.sh"
fresh_db dc_slots
export PGDATABASE=dc_slots
out="$(SLOT_BENCH_CONNECTED=1 bash "$(dirname "$0")/../bench/slot_collisions.sh" 40)"
echo "$out"
check "8 live sessions on 8 shards never share a slot over 40 replacements" \
    "0.00 collisions on average, 0 steps with a collision" \
    "$(grep -oE '[0-9.]+ collisions on average, [0-9]+ steps with a collision' <<<"$out")"
held="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1684632436 AND pid = pg_backend_pid()"
check "a session holds its slot, lets go of it at DISCARD ALL, and claims slot 0 again on its next add" \
    "0 1 0 added 1 1" \
    "$(sql -c "SELECT distcount.backend_slot()" -c "$held" -c "DISCARD ALL" -c "$held" \
           -c "SELECT 'added' FROM distcount.counter_add('discarded')" -c "$held" \
           -c "SELECT value FROM distcount.counter_slot WHERE slot = 0" | tr '\n' ' ' | sed 's/ *$//')"
dropdb dc_slots
finish
