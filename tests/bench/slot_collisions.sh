#!/usr/bin/env bash
# How densely sharded counters' sessions spread over slots: 8 live sessions, one of them
# replaced at random STEPS times (default 200); after each step, every live session's
# `backend_slot() % 8` (8 shards). A collision is a session whose slot another live session
# already has (8 minus the number of distinct slots). Prints the average collisions per step
# and the number of steps with any. Runs against the installed extension of the PostgreSQL
# under test (PG / PG_CONFIG, as `make bench`), on a cluster of its own, or, with
# SLOT_BENCH_CONNECTED=1, against the database the PG* variables name.
# Usage: slot_collisions.sh [STEPS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/tests/tools/common.sh"
CLUSTER="$ROOT/tests/tools/cluster.sh"
NAME=slotbench
STEPS="${1:-200}"
SESSIONS=8
SHARDS=8
RANDOM=14 # the same sequence of replacements on every run
WORK="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
        [ "$(psql -X -q -tA -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                 WHERE application_name = 'slotbench'" 2>/dev/null || echo 0)" = 0 ] && break
        sleep 0.05
    done
    [ -n "${SLOT_BENCH_CONNECTED:-}" ] || "$CLUSTER" stop "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${SLOT_BENCH_CONNECTED:-}" ]; then
    "$CLUSTER" start "$NAME" "max_connections = 40" >/dev/null
    eval "$("$CLUSTER" env "$NAME")"
    export PGDATABASE=slot_bench
    dropdb --if-exists slot_bench
    createdb slot_bench
    psql -X -q -c "CREATE EXTENSION pg_distcount"
fi
q() { psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

# open I: a session that reports "pid slot" into $WORK/I, then idles until it is terminated.
open() {
    rm -f "$WORK/$1"
    PGAPPNAME=slotbench psql -X -q -tA -F ' ' \
        -c "SELECT pg_backend_pid(), distcount.backend_slot()" -c "SELECT pg_sleep(3600)" \
        >"$WORK/$1" 2>/dev/null &
    pids[$1]=$!
    for _ in $(seq 1 500); do [ -s "$WORK/$1" ] && return; sleep 0.01; done
    echo "session $1 did not start" >&2
    exit 1
}

# close I: terminate its backend and wait until the server has let go of it.
close() {
    local pid
    read -r pid _ <"$WORK/$1"
    q -c "SELECT pg_terminate_backend($pid)" >/dev/null
    for _ in $(seq 1 500); do
        [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid")" = 0 ] && break
        sleep 0.01
    done
    wait "${pids[$1]}" 2>/dev/null || true
}

collisions() {
    cat "$WORK"/[0-9]* | awk -v shards="$SHARDS" '{ seen[$2 % shards] = 1; n++ } END { print n - length(seen) }'
}

for i in $(seq 0 $((SESSIONS - 1))); do open "$i"; done
total=0
steps_with=0
for step in $(seq 1 "$STEPS"); do
    i=$((RANDOM % SESSIONS))
    close "$i"
    open "$i"
    c="$(collisions)"
    total=$((total + c))
    [ "$c" = 0 ] || steps_with=$((steps_with + 1))
done
echo "slots now: $(awk '{print $2}' "$WORK"/[0-9]* | sort -n | tr '\n' ' ')"
awk -v t="$total" -v s="$STEPS" -v w="$steps_with" -v pg="$("$PG_CONFIG" --version)" -v n="$SESSIONS" -v k="$SHARDS" \
    'BEGIN { printf "%s: %d sessions, %d shards, %d replacements: %.2f collisions on average, %d steps with a collision\n", pg, n, k, s, t / s, w }'
