#!/usr/bin/env bash
# Distinct-count accuracy per byte of hll against Apache DataSketches' HLL (HLL_4, HLL_6,
# HLL_8) and CPC at p = lg_k = 14 on the same values: n from 100 to 10^8, sketches built
# directly and unions of 16; bias, RMS error, bytes and RMS x sqrt(bytes). See
# hll_vs_datasketches.py (sets per n: 200 up to 10^6, with 2,000 and 5,000 values too, 20 at
# 10^7 and 10^8; on 2 cores 18 minutes with DataSketches' sets at 10^8 cached, which took
# 23 minutes more, about 70 s a set; --ds-cache FILE keeps DataSketches' results, which are
# deterministic, for later runs, and --ds-only fills it alone, so that a run can reuse them;
# --pg-only gives pg_distcount's rows alone, e.g. more sets at 10^8).
# Usage: hll_vs_datasketches.sh [--quick] [other arguments of hll_vs_datasketches.py]
# Writes tests/bench/results/hll_vs_datasketches.tsv (the full run) and, from it,
# hll_error_per_byte.svg.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
export HLL_DS_DB=hll_vs_datasketches
datasketches_cluster hllds "$HLL_DS_DB"
if [ "$#" = 0 ]; then
    python3 "$HERE/hll_vs_datasketches.py" --out "$HERE/results/hll_vs_datasketches.tsv"
    python3 "$HERE/plot_hll_error.py" --per-byte "$HERE/results/hll_vs_datasketches.tsv" \
        "$HERE/results/hll_error_per_byte.svg"
else
    python3 "$HERE/hll_vs_datasketches.py" "$@"
fi
dropdb "$HLL_DS_DB"
