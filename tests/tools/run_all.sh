#!/usr/bin/env bash
# Runs every test layer against one PostgreSQL (PG_CONFIG, else major PG, default 15) and ends
# with one line: "N passed, N failed".
#   0. cargo fmt --check                               (fmt)
#   1. pure Rust unit/property tests and #[pg_test]s   (rust: cargo pgrx test pgNN)
#   2. pg_regress golden files                         (regress: tests/pg_regress)
#   3. integration scripts                             (integration: tests/integration/*.sh)
# TEST_LAYERS (default "fmt rust regress integration") picks layers. Each layer's full output is
# kept under target/test-logs/pgNN/.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
source tests/tools/common.sh || exit 1
LAYERS=" ${TEST_LAYERS:-fmt rust regress integration} "
LOGS="$ROOT/target/test-logs/pg$PG_MAJOR"
mkdir -p "$LOGS"
passed=0
failed=0
failures=()

say() { printf '\n==> %s\n' "$*"; }
record() { # record NAME STATUS
    if [ "$2" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}
is_root() { [ "$(id -u)" = 0 ]; }
layer() { [[ "$LAYERS" == *" $1 "* ]]; }
echo "==> PostgreSQL $PG_MAJOR ($("$PG_CONFIG" --version), $PG_CONFIG); layers:$LAYERS; clusters in $CLUSTERS"

# ---- 0. formatting ----------------------------------------------------------------------------
if layer fmt; then
say "layer 0: cargo fmt --check"
if cargo fmt --check >"$LOGS/fmt.log" 2>&1; then record "cargo fmt --check" 0; else head -40 "$LOGS/fmt.log"; record "cargo fmt --check" 1; fi
fi

# ---- 1. cargo pgrx test ---------------------------------------------------------------------
if layer rust; then
say "layer 1: Rust unit and property tests, and #[pg_test]s (cargo pgrx test pg$PG_MAJOR)"
# cargo pgrx test builds with --no-default-features --features pg$PG_MAJOR,pg_test.
pgrx_env=()
if is_root; then
    # The `postgres` user owns the test PGDATA's parent, outside the checkout (it holds the socket).
    mkdir -p "$STATE/pgrx-test" && chown postgres "$STATE/pgrx-test"
    runas=(--runas postgres --pgdata "$STATE/pgrx-test")
else
    runas=()
    if [ ! -w "$("$PG_CONFIG" --pkglibdir)" ] || [ ! -w "$("$PG_CONFIG" --sharedir)/extension" ]; then
        # cargo pgrx test installs its build into the server and cannot use sudo: a server this
        # user may not write (Debian's) is tested through a private copy, named to pgrx by a
        # PGRX_HOME of the test layer's own.
        copy="$(tests/tools/postgres.sh private-copy "$PG_CONFIG")" || exit 1
        mkdir -p "$STATE/pgrx-home"
        printf '[configs]\npg%s = "%s"\n' "$PG_MAJOR" "$copy" >"$STATE/pgrx-home/config.toml"
        pgrx_env=(PGRX_HOME="$STATE/pgrx-home")
        echo "    (the server's directories are not writable by $(id -un): testing on a copy, $copy)"
    fi
fi
env "${pgrx_env[@]}" cargo pgrx test "pg$PG_MAJOR" "${runas[@]}" 2>&1 | tee "$LOGS/cargo-pgrx-test.log"
cargo_status=${PIPESTATUS[0]}
# Sum "test result: ok. 12 passed; 0 failed; ..." over all test binaries.
read -r rust_passed rust_failed < <(grep -E '^test result:' "$LOGS/cargo-pgrx-test.log" |
    sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' | awk '{p+=$1; f+=$2} END {print p+0, f+0}')
passed=$((passed + rust_passed))
failed=$((failed + rust_failed))
if [ "$cargo_status" != 0 ] && [ "$rust_failed" = 0 ]; then
    record "cargo pgrx test (exit $cargo_status, see $LOGS/cargo-pgrx-test.log)" 1
elif [ "$rust_failed" != 0 ]; then
    failures+=("$rust_failed Rust test(s), see $LOGS/cargo-pgrx-test.log")
fi
fi
if ! layer regress && ! layer integration; then
    say "summary (PostgreSQL $PG_MAJOR)"
    for f in "${failures[@]}"; do echo "FAILED: $f"; done
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
fi

# ---- the release build, installed, on a fresh test cluster ---------------------------------
say "installing the release build (cargo pgrx install --release)"
sudo_flag=()
# A user who owns the server (one unpacked by tests/tools/postgres.sh) installs without sudo.
[ -w "$("$PG_CONFIG" --pkglibdir)" ] || sudo_flag=(--sudo)
cargo pgrx install --release --pg-config "$PG_CONFIG" "${sudo_flag[@]}" 2>&1 | tee "$LOGS/install.log"
if [ "${PIPESTATUS[0]}" != 0 ]; then
    record "cargo pgrx install" 1
    echo "$passed passed, $failed failed"
    exit 1
fi
tests/tools/cluster.sh stop test >/dev/null 2>&1
rm -rf "$CLUSTERS/test"
tests/tools/cluster.sh start test "max_worker_processes = 16" || { record "start test cluster" 1; echo "$passed passed, $failed failed"; exit 1; }
eval "$(tests/tools/cluster.sh env test)"

# ---- 2. pg_regress --------------------------------------------------------------------------
if layer regress; then
say "layer 2: pg_regress golden files (tests/pg_regress)"
PG_REGRESS="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"
schedule=(setup $(cd tests/pg_regress/sql && ls *.sql | sed 's/\.sql$//' | grep -vx setup))
rm -rf target/regress && mkdir -p target/regress
"$PG_REGRESS" --host="$PGHOST" --port="$PGPORT" --user=postgres --bindir="$("$PG_CONFIG" --bindir)" \
    --inputdir=tests/pg_regress --outputdir=target/regress --dbname=distcount_regress \
    "${schedule[@]}" 2>&1 | tee "$LOGS/pg_regress.log"
regress_status=${PIPESTATUS[0]}
before=$failed
while read -r name status; do
    record "pg_regress $name" "$([ "$status" = ok ] && echo 0 || echo 1)"
# "test NAME ... ok" up to PostgreSQL 15; TAP from 16 on: "ok 1 - NAME 74 ms", "not ok 2 - NAME".
done < <(sed -nE -e 's/^(not ok|ok|test)? *[0-9]* *[-+]? *([a-z0-9_]+) +\.\.\. +(ok|FAILED|failed).*/\2 \3/p' \
                 -e 's/^(ok|not ok) +[0-9]+ +[-+] +([a-z0-9_]+) +[0-9]+ ms.*/\2 \1/p' "$LOGS/pg_regress.log")
if [ "$regress_status" != 0 ] && [ "$failed" = "$before" ]; then
    record "pg_regress (exit $regress_status, see $LOGS/pg_regress.log)" 1
fi
if [ -s target/regress/regression.diffs ]; then
    echo "--- differences (target/regress/regression.diffs) ---"
    head -100 target/regress/regression.diffs
fi
fi

# ---- 3. integration -------------------------------------------------------------------------
skipped=()
for script in tests/integration/*.sh; do
    layer integration || break
    name="$(basename "$script" .sh)"
    say "layer 3: integration $name"
    if bash "$script" 2>&1 | tee "$LOGS/integration-$name.log"; then
        record "integration $name" 0
    else
        record "integration $name" 1
    fi
    while read -r line; do skipped+=("integration $name: $line"); done < <(sed -n 's/^SKIPPED: //p' "$LOGS/integration-$name.log")
done

tests/tools/cluster.sh stop test >/dev/null 2>&1

say "summary (PostgreSQL $PG_MAJOR)"
for s in "${skipped[@]}"; do echo "SKIPPED (not counted): $s"; done
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
