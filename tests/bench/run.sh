#!/usr/bin/env bash
# make bench: every benchmark in tests/bench/, each comparing against its anchor in one run.
set -euo pipefail
cd "$(dirname "$0")"
for bench in *.sh; do
    case "$bench" in run.sh|lib.sh) continue ;; esac
    echo "==> $bench"
    bash "$bench"
done
