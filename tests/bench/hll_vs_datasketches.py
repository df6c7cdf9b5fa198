#!/usr/bin/env python3
"""Distinct-count accuracy per byte: pg_distcount's hll against Apache DataSketches' HLL
(HLL_4, HLL_6, HLL_8) and CPC (Python package `datasketches`), all at lg_k = p = 14, on the
same values.

For each n and set k, the values are the bigints base(n, k) .. base(n, k) + n - 1 (disjoint
ranges). pg_distcount sees them through SQL (hll_agg over generate_series in one serial
aggregate: the martingale estimate), and as the union of 16 sketches over consecutive slices
(hll_union_agg: the registers' estimate). DataSketches sees the same integers in Python, one
sketch per set and 16 unioned with hll_union / cpc_union. Reported per sketch and n: bias,
RMS relative error, median serialized bytes (pg_distcount: octet_length of the value;
DataSketches: compact serialization) and RMS x sqrt(bytes), the error per byte (lower is
better).

HLL_4, HLL_6 and HLL_8 are one algorithm with three register widths: their estimates are
equal, so the script feeds HLL_4 and takes the bytes of HLL_6 and HLL_8 from the same
registers (get_result of a union holding the one sketch); --check-types feeds all three for
the first sets of each n and fails if their estimates differ.

Run through hll_vs_datasketches.sh, which starts the cluster and sets PGHOST/PGPORT.
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys

from datasketches import cpc_sketch, cpc_union, hll_sketch, hll_union, tgt_hll_type

DB = os.environ.get("HLL_DS_DB", "hll_vs_datasketches")
P = 14
PARTS = 16
FULL_SETS = {100: 200, 1000: 200, 2000: 200, 5000: 200, 10_000: 200, 100_000: 200, 1_000_000: 200, 10_000_000: 20, 100_000_000: 20}
QUICK_SETS = {100: 20, 1000: 20, 10_000: 20, 100_000: 10, 1_000_000: 2}
SKETCHES = ["pg_distcount", "DataSketches HLL_4", "DataSketches HLL_6", "DataSketches HLL_8",
            "DataSketches CPC"]


def say(text):
    print(text, flush=True)


def rows(sql):
    """The rows of a query, tab-separated fields."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", DB, "-c", sql],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"psql failed: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def block(n):
    """n's own block of 10^12 values: its decimal digits for a power of ten, 20 + 10·log10(n)
    (rounded) otherwise (2,000: 53, 5,000: 57)."""
    digits = math.log10(n)
    if n == 10 ** int(round(digits)):
        return int(round(digits))
    return 20 + int(round(10 * digits))


def base(n, k):
    # Disjoint ranges: 10^9 apart within an n, in n's own block.
    return block(n) * 10**12 + k * 10**9


def part_bounds(n, j):
    return n * j // PARTS, n * (j + 1) // PARTS


def pg_distcount(n, sets, union):
    """[(estimate, bytes)] per set, from SQL."""
    if union:
        inner = f"""SELECT distcount.hll_union_agg(h) AS h FROM (
                      SELECT j, distcount.hll_agg(v, {P}) AS h
                      FROM (SELECT j, generate_series(b + {n}::bigint * j / {PARTS},
                                                      b + {n}::bigint * (j + 1) / {PARTS} - 1) AS v
                            FROM generate_series(0, {PARTS - 1}) j) g
                      GROUP BY j) parts"""
    else:
        inner = f"""SELECT distcount.hll_agg(v, {P}) AS h
                    FROM (SELECT generate_series(b, b + {n - 1}) AS v) g"""
    result = rows(f"""SET max_parallel_workers_per_gather = 0;
        SELECT k, (distcount.hll_estimate(s.h)).estimate, octet_length(s.h::bytea)
        FROM generate_series(0, {sets - 1}) k,
             LATERAL (SELECT {block(n)} * 1000000000000::bigint + k * 1000000000::bigint AS b) bb,
             LATERAL ({inner}) s
        ORDER BY k""")
    assert [int(r[0]) for r in result] == list(range(sets)), "a set is missing"
    return [(float(r[1]), int(r[2])) for r in result]


def datasketches(n, k, check_types):
    """{sketch: (estimate, bytes)} of the direct sketches and of the unions of PARTS slices."""
    start = base(n, k)
    direct, union = {}, {}
    # Direct: HLL_4 and CPC over every value (HLL_6 and HLL_8 too when checking).
    hll4, cpc = hll_sketch(P, tgt_hll_type.HLL_4), cpc_sketch(P)
    extra = [hll_sketch(P, t) for t in (tgt_hll_type.HLL_6, tgt_hll_type.HLL_8)] if check_types else []
    # Unions: one HLL_4 and one CPC sketch per slice.
    parts_hll, parts_cpc = [], []
    for j in range(PARTS):
        lo, hi = part_bounds(n, j)
        h, c = hll_sketch(P, tgt_hll_type.HLL_4), cpc_sketch(P)
        hu, cu, du, dc = h.update, c.update, hll4.update, cpc.update
        for v in range(start + lo, start + hi):
            hu(v)
            cu(v)
            du(v)
            dc(v)
        for e in extra:
            for v in range(start + lo, start + hi):
                e.update(v)
        parts_hll.append(h)
        parts_cpc.append(c)
    estimate = hll4.get_estimate()
    direct["DataSketches HLL_4"] = (estimate, len(hll4.serialize_compact()))
    one = hll_union(P)
    one.update(hll4)
    for name, t in (("DataSketches HLL_6", tgt_hll_type.HLL_6), ("DataSketches HLL_8", tgt_hll_type.HLL_8)):
        direct[name] = (estimate, len(one.get_result(t).serialize_compact()))
    for e in extra:
        if e.get_estimate() != estimate:
            sys.exit(f"n {n}, set {k}: HLL_4 estimates {estimate}, {e.tgt_type} {e.get_estimate()}")
    direct["DataSketches CPC"] = (cpc.get_estimate(), len(cpc.serialize()))
    hu, cu = hll_union(P), cpc_union(P)
    for h, c in zip(parts_hll, parts_cpc):
        hu.update(h)
        cu.update(c)
    for name, t in (("DataSketches HLL_4", tgt_hll_type.HLL_4), ("DataSketches HLL_6", tgt_hll_type.HLL_6),
                    ("DataSketches HLL_8", tgt_hll_type.HLL_8)):
        result = hu.get_result(t)
        union[name] = (result.get_estimate(), len(result.serialize_compact()))
    result = cu.get_result()
    union["DataSketches CPC"] = (result.get_estimate(), len(result.serialize()))
    return direct, union


def read_cache(path):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def cached_datasketches(n, k, args, cache):
    """datasketches(n, k), from args.ds_cache when it holds them (and saved there when not).
    The file is read again before computing and before writing, so that two runs (one with
    --ds-only) can share it."""
    key = f"{n}:{k}"
    if key not in cache:
        cache.update(read_cache(args.ds_cache))
    if key not in cache:
        direct, union = datasketches(n, k, k < args.check_types)
        if not args.ds_cache:
            return direct, union
        cache[key] = {"direct": direct, "union": union}
        cache.update({key: value for key, value in read_cache(args.ds_cache).items() if key not in cache})
        tmp = f"{args.ds_cache}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(cache, f)
        os.replace(tmp, args.ds_cache)
    entry = cache[key]
    return ({name: tuple(v) for name, v in entry["direct"].items()},
            {name: tuple(v) for name, v in entry["union"].items()})


def summary(n, pairs):
    errors = [e / n - 1 for e, _ in pairs]
    bias = statistics.fmean(errors)
    rms = math.sqrt(statistics.fmean([x * x for x in errors]))
    size = statistics.median([b for _, b in pairs])
    return bias, rms, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: n up to 1e6, few sets")
    ap.add_argument("--max-n", type=int, default=None, help="leave out larger n")
    ap.add_argument("--sets-scale", type=float, default=1.0, help="scale every number of sets (at least 1)")
    ap.add_argument("--sets", default=None,
                    help="sets per n, overriding the plan, e.g. 1e7=200,1e8=50 (other n as planned)")
    ap.add_argument("--only", default=None, help="only these n, e.g. 1e3,1e8")
    ap.add_argument("--out", default=None, help="TSV of the summary rows")
    ap.add_argument("--ds-cache", default=None,
                    help="JSON file of DataSketches' results per n and set, read and extended (they are "
                         "deterministic: a later run with another build of pg_distcount reuses them)")
    ap.add_argument("--ds-only", action="store_true",
                    help="only fill --ds-cache with DataSketches' results, no SQL and no summary")
    ap.add_argument("--pg-only", action="store_true",
                    help="pg_distcount's rows alone (SQL is fast: more sets at 10^8 in the same time)")
    ap.add_argument("--check-types", type=int, default=2,
                    help="sets per n that also feed HLL_6 and HLL_8 to check their estimates equal HLL_4's")
    args = ap.parse_args()
    plan = QUICK_SETS if args.quick else FULL_SETS
    plan = {n: max(1, int(s * args.sets_scale)) for n, s in plan.items() if args.max_n is None or n <= args.max_n}
    if args.sets:
        for item in args.sets.split(","):
            n, sets = item.split("=")
            plan[int(float(n))] = int(sets)
        plan = dict(sorted(plan.items()))
    if args.only:
        only = {int(float(n)) for n in args.only.split(",")}
        plan = {n: s for n, s in plan.items() if n in only}

    cache = read_cache(args.ds_cache)
    if args.ds_only:
        if not args.ds_cache:
            sys.exit("--ds-only needs --ds-cache")
        for n, sets in plan.items():
            for k in range(sets):
                cached_datasketches(n, k, args, cache)
            say(f"n = {n:,}: DataSketches' results of {sets} sets in {args.ds_cache}")
        return
    rows("CREATE EXTENSION IF NOT EXISTS pg_distcount")
    out_rows = []
    for n, sets in plan.items():
        results = {(mode, name): [] for mode in ("direct", "union") for name in SKETCHES}
        for mode in ("direct", "union"):
            results[(mode, "pg_distcount")] = pg_distcount(n, sets, mode == "union")
        for k in range(0 if args.pg_only else sets):
            direct, union = cached_datasketches(n, k, args, cache)
            for name, value in direct.items():
                results[("direct", name)].append(value)
            for name, value in union.items():
                results[("union", name)].append(value)
        say(f"n = {n:,} ({sets} sets)")
        say(f"  {'':7} {'sketch':22} {'bias %':>8} {'RMS %':>7} {'bytes':>7} {'RMS x sqrt(bytes)':>18}")
        for mode in ("direct", "union"):
            for name in SKETCHES[:1] if args.pg_only else SKETCHES:
                bias, rms, size = summary(n, results[(mode, name)])
                per_byte = rms * 100 * math.sqrt(size)
                say(f"  {mode:7} {name:22} {bias * 100:+8.3f} {rms * 100:7.3f} {size:7.0f} {per_byte:18.2f}")
                out_rows.append([n, sets, mode, name, f"{bias:.6g}", f"{rms:.6g}", f"{size:.0f}", f"{per_byte:.4g}"])
        # The claim of issue 17: per byte at most DataSketches HLL_4 directly, HLL after unions.
        for mode in () if args.pg_only else ("direct", "union"):
            ours = [r for r in out_rows if r[0] == n and r[2] == mode and r[3] == "pg_distcount"][0]
            theirs = [r for r in out_rows if r[0] == n and r[2] == mode and r[3] == "DataSketches HLL_4"][0]
            verdict = "at most" if float(ours[7]) <= float(theirs[7]) else "ABOVE"
            say(f"  {mode}: pg_distcount RMS x sqrt(bytes) {ours[7]} is {verdict} HLL_4's {theirs[7]}")
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(["n", "sets", "mode", "sketch", "bias", "rms", "bytes", "rms_pct_sqrt_bytes"])
            w.writerows(out_rows)


if __name__ == "__main__":
    main()
