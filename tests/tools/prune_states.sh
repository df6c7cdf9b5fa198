#!/usr/bin/env bash
# Removes the test state (clusters, pgrx test data) left under /var/lib/pg_distcount (or
# PG_DISTCOUNT_STATE) by checkouts that no longer exist: `make clean` removes a checkout's own,
# but a clone deleted without it leaves gigabytes of clusters behind, some still running.
#   prune_states.sh          lists what it would remove, with sizes
#   prune_states.sh --yes    stops those clusters' servers and removes their directories
# A state directory records its checkout in the file `checkout` (tests/tools/common.sh); one made
# before that file existed is listed as "checkout unknown" and removed only with --yes --unknown.
set -euo pipefail
BASE="${PG_DISTCOUNT_STATE:-/var/lib/pg_distcount}"
remove=0 unknown=0
for arg in "$@"; do
    case "$arg" in
    --yes) remove=1 ;;
    --unknown) unknown=1 ;;
    *) echo "usage: $0 [--yes [--unknown]]" >&2; exit 2 ;;
    esac
done
[ -d "$BASE" ] || { echo "no test state under $BASE"; exit 0; }

# stop_servers DIR: a fast shutdown of every server whose data directory is under DIR.
stop_servers() {
    local pidfile pid
    while IFS= read -r pidfile; do
        pid="$(head -1 "$pidfile")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            echo "    stopping the server of $(dirname "$pidfile") (pid $pid)"
            kill -INT "$pid"
            for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
    done < <(find "$1" -name postmaster.pid 2>/dev/null)
}

found=0
for dir in "$BASE"/*/; do
    dir="${dir%/}"
    [ -d "$dir" ] || continue
    if [ -f "$dir/checkout" ]; then
        checkout="$(cat "$dir/checkout")"
        [ ! -d "$checkout" ] || continue
        why="checkout $checkout is gone"
    else
        why="checkout unknown (state made before checkouts were recorded)"
        if [ "$unknown" = 0 ]; then
            echo "kept $dir: $why; --unknown includes it"
            continue
        fi
    fi
    found=1
    if [ "$remove" = 1 ]; then
        echo "==> removing $dir ($(du -sh "$dir" | cut -f1)): $why"
        stop_servers "$dir"
        rm -rf "$dir"
    else
        echo "$(du -sh "$dir" | cut -f1)	$dir: $why"
    fi
done
if [ "$remove" = 0 ]; then
    [ "$found" = 1 ] && echo "(run 'make prune' or $0 --yes to remove these)" || echo "nothing to prune under $BASE"
fi
