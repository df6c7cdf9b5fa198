#!/usr/bin/env python3
"""Heavy hitters and point estimates: pg_distcount's cms and topk against Apache DataSketches
(frequent_items and count_min, Python package `datasketches`) on the same Zipf streams.

For each exponent s and seed: EVENTS events over KEYS keys (P(key k) ~ k^-s), fed whole to one
sketch and split over PARTS partitions whose sketches are then merged. Reported per sketch:
its bytes (serialized), recall of the true top 10 and top 100 (share of the true top-k among
the k keys it ranks first), and the error of its point estimate on every key with at least 100
events (max and mean of estimate - truth, negative means it undercounts; and the mean of
|estimate - truth|).

topk rows are sized to the bytes of a frequent_items row: one sketch, the largest capacity found
(by a few proportional steps) whose summary is at most as many bytes as that frequent_items
sketch; the union, partitions of that same capacity (as frequent_items' partitions are full
sketches), merged, and cut with topk_trim to the largest capacity whose union is at most as many
bytes as frequent_items' union of the same stream.

Run through cms_vs_datasketches.sh, which starts the cluster and sets PGHOST/PGPORT.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from datasketches import count_min_sketch, frequent_items_error_type, frequent_strings_sketch

DB = os.environ.get("CMS_DS_DB", "cms_vs_datasketches")
# (label, epsilon, delta, heavy): the cms rows of the table.
CMS_VARIANTS = [
    ("cms default (eps 0.001, heavy 64)", 0.001, 0.01, 64),
    ("cms eps 0.01, heavy 128", 0.01, 0.01, 128),
    ("cms eps 0.01, heavy 512", 0.01, 0.01, 512),
]
# (label, lg_max_map_size) of frequent_items; (label, hashes, buckets) of count_min.
FI_VARIANTS = [("DataSketches frequent_items lg 11", 11), ("DataSketches frequent_items lg 12", 12)]
CM_VARIANTS = [("DataSketches count_min 5 x 1406", 5, 1406)]
# (label, the frequent_items row whose bytes a topk row may use).
TOPK_BUDGETS = [("topk, bytes of frequent_items lg 11", "DataSketches frequent_items lg 11"),
                ("topk, bytes of frequent_items lg 12", "DataSketches frequent_items lg 12")]
FAMILIES = ("cms", "ds", "topk")


def psql(sql, fetch=True):
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", DB, "-c", sql],
        check=True, capture_output=True, text=True)
    return out.stdout.strip() if fetch else None


def say(text):
    print(text, flush=True)


def stream(events, keys, s, seed):
    rng = np.random.default_rng(seed)
    weights = np.arange(1, keys + 1, dtype=np.float64) ** -s
    return rng.choice(keys, size=events, p=weights / weights.sum())


def scores(ranked, truth, heavy_keys, estimate):
    """recall@10, recall@100 of a ranking, and (max, mean) error of estimate() on heavy_keys."""
    order = np.argsort(-truth, kind="stable")
    row = {}
    for k in (10, 100):
        if ranked is None:
            row[f"top{k}"] = None
        else:
            row[f"top{k}"] = len(set(ranked[:k]) & set(order[:k].tolist())) / k
    errors = np.array([estimate(int(key)) - int(truth[key]) for key in heavy_keys])
    row["max_error"], row["mean_error"] = int(errors.max()), float(errors.mean())
    row["mean_abs_error"] = float(np.abs(errors).mean())
    return row


def cms_rows(truth, heavy_keys, parts):
    rows = []
    for label, epsilon, delta, heavy in CMS_VARIANTS:
        for form, source in (("one sketch", "SELECT distcount.cms_agg(k, {e}, {d}, {h}) AS c FROM events"),
                             (f"union of {parts}", "SELECT distcount.cms_union_agg(c) AS c FROM (SELECT part, "
                              "distcount.cms_agg(k, {e}, {d}, {h}) AS c FROM events GROUP BY part) p")):
            psql("DROP TABLE IF EXISTS s; CREATE TABLE s AS "
                 + source.format(e=epsilon, d=delta, h=heavy), fetch=False)
            k = min(100, heavy)
            result = json.loads(psql(
                "SELECT json_build_object("
                " 'bytes', octet_length(c::bytea),"
                f" 'top', (SELECT json_agg(item::int) FROM distcount.cms_topk(c, {k}) t),"
                " 'estimates', (SELECT json_object_agg(h.k, distcount.cms_estimate(c, h.k::text))"
                "               FROM heavy_keys h)) FROM s"))
            estimates = {int(key): value for key, value in result["estimates"].items()}
            row = scores(result["top"] or [], truth, heavy_keys, lambda key: estimates[key])
            rows.append({"sketch": label, "form": form, "bytes": result["bytes"], **row})
    return rows


def fed(make, texts, keys_by_event, part_of, parts):
    """A sketch from make() fed every event, and the merge of one per partition."""
    whole = make()
    split = [make() for _ in range(parts)]
    for key, part in zip(keys_by_event, part_of):
        whole.update(texts[key])
        split[part].update(texts[key])
    merged = split[0]
    for other in split[1:]:
        merged.merge(other)
    return whole, merged


def ds_rows(keys_by_event, part_of, truth, heavy_keys, parts):
    rows = []
    texts = [str(k) for k in range(len(truth))]
    for label, lg in FI_VARIANTS:
        whole, merged = fed(lambda: frequent_strings_sketch(lg), texts, keys_by_event, part_of, parts)
        for form, sketch in (("one sketch", whole), (f"union of {parts}", merged)):
            ranked = [int(item[0]) for item in sketch.get_frequent_items(
                frequent_items_error_type.NO_FALSE_NEGATIVES)]
            row = scores(ranked, truth, heavy_keys, lambda key, sk=sketch: sk.get_estimate(texts[key]))
            rows.append({"sketch": label, "form": form, "bytes": sketch.get_serialized_size_bytes(), **row})
    for label, hashes, buckets in CM_VARIANTS:
        whole, merged = fed(lambda: count_min_sketch(hashes, buckets), texts, keys_by_event, part_of, parts)
        for form, sketch in (("one sketch", whole), (f"union of {parts}", merged)):
            row = scores(None, truth, heavy_keys, lambda key, sk=sketch: int(sk.get_estimate(texts[key])))
            rows.append({"sketch": label, "form": form, "bytes": sketch.get_serialized_size_bytes(), **row})
    return rows


def largest_capacity(budget, size_of):
    """The largest capacity (found by a few proportional steps) whose size_of(capacity) is at
    most budget bytes."""
    capacity, best = max(1, budget // 9), None
    for _ in range(6):
        size = size_of(capacity)
        if size <= budget:
            best = capacity
            if size >= 0.98 * budget:
                break
        capacity = max(1, int(capacity * budget / size * (0.995 if size > budget else 1.0)))
        if capacity == best:
            break
    capacity = best or capacity
    while size_of(capacity) > budget and capacity > 1:
        capacity = max(1, int(capacity * 0.98))
    return capacity


def topk_rows(truth, heavy_keys, parts, ds):
    """topk at the bytes of each frequent_items row of `ds` (same stream, same form).

    One sketch: the largest capacity whose summary fits the frequent_items sketch's bytes.
    Union: as frequent_items' partitions are full sketches of their size, each partition is a
    topk of the one-sketch capacity; they are merged, and the union is cut by topk_trim to the
    largest capacity that fits the frequent_items union's bytes (its merge purges, so its union
    can be smaller than one sketch)."""
    rows = []
    # Serial plans: a parallel plan merges partial summaries in an order that varies from run
    # to run, and so would the bytes and the answers.
    serial = "SET max_parallel_workers_per_gather = 0; "
    for label, peer in TOPK_BUDGETS:
        one_budget = next(r["bytes"] for r in ds if r["sketch"] == peer and r["form"] == "one sketch")

        def one(capacity):
            psql(serial + "DROP TABLE IF EXISTS s; CREATE TABLE s AS "
                 f"SELECT distcount.topk_agg(k, {capacity}) AS t FROM events", fetch=False)
            return int(psql("SELECT octet_length(t::bytea) FROM s"))

        part_capacity = largest_capacity(one_budget, one)
        psql(serial + "DROP TABLE IF EXISTS u; CREATE TABLE u AS SELECT distcount.topk_union_agg(t ORDER BY part) AS t "
             f"FROM (SELECT part, distcount.topk_agg(k, {part_capacity}) AS t FROM events GROUP BY part) p",
             fetch=False)
        for form in ("one sketch", f"union of {parts}"):
            budget = next(r["bytes"] for r in ds if r["sketch"] == peer and r["form"] == form)
            if form == "one sketch":
                capacity = part_capacity
                one(capacity)
            else:
                def trimmed(capacity):
                    psql("DROP TABLE IF EXISTS s; CREATE TABLE s AS "
                         f"SELECT distcount.topk_trim(t, {capacity}) AS t FROM u", fetch=False)
                    return int(psql("SELECT octet_length(t::bytea) FROM s"))
                capacity = min(largest_capacity(budget, trimmed), part_capacity)
                trimmed(capacity)
            result = json.loads(psql(
                "SELECT json_build_object("
                " 'bytes', octet_length(t::bytea),"
                " 'top', (SELECT json_agg(item::int) FROM (SELECT item FROM distcount.topk_items(t) LIMIT 100) i),"
                " 'estimates', (SELECT json_object_agg(h.k, distcount.topk_estimate(t, h.k::text))"
                "               FROM heavy_keys h)) FROM s"))
            estimates = {int(key): value for key, value in result["estimates"].items()}
            row = scores(result["top"] or [], truth, heavy_keys, lambda key: estimates[key])
            rows.append({"sketch": label, "form": form, "bytes": result["bytes"], "capacity": capacity,
                         "partition_capacity": part_capacity if form != "one sketch" else None,
                         "budget": budget, **row})
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--exponents", default="0.8,1.1,1.5")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--parts", type=int, default=50)
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="which rows: cms, ds (DataSketches), topk (needs ds); default all")
    args = parser.parse_args()
    families = set(args.families.split(","))
    if "topk" in families:
        families.add("ds")
    psql("CREATE EXTENSION IF NOT EXISTS pg_distcount", fetch=False)
    psql("DROP TABLE IF EXISTS s, u", fetch=False)
    all_rows = []
    for s in [float(x) for x in args.exponents.split(",")]:
        for seed in [int(x) for x in args.seeds.split(",")]:
            started = time.time()
            say(f"==> s = {s}, seed {seed}: {args.events:,} events over {args.keys:,} keys")
            events = stream(args.events, args.keys, s, seed)
            part_of = np.arange(args.events) % args.parts
            truth = np.bincount(events, minlength=args.keys)
            heavy_keys = np.nonzero(truth >= 100)[0].tolist()
            with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
                writer = csv.writer(f)
                for key, part in zip(events.tolist(), part_of.tolist()):
                    writer.writerow((part, key))
                path = f.name
            os.chmod(path, 0o644)
            psql("DROP TABLE IF EXISTS events, heavy_keys; CREATE TABLE events (part int, k text);"
                 "CREATE TABLE heavy_keys (k int)", fetch=False)
            subprocess.run(["psql", "-X", "-q", "-d", DB, "-c", f"\\copy events FROM '{path}' CSV"], check=True)
            os.unlink(path)
            psql("INSERT INTO heavy_keys VALUES " + ",".join(f"({k})" for k in heavy_keys)
                 + "; ANALYZE events", fetch=False)
            say(f"    loaded; {len(heavy_keys):,} keys with at least 100 events")
            rows = []
            if "cms" in families:
                say("    cms ...")
                rows += cms_rows(truth, heavy_keys, args.parts)
            if "ds" in families:
                say("    DataSketches ...")
                ds = ds_rows(events.tolist(), part_of.tolist(), truth, heavy_keys, args.parts)
                rows += ds
            if "topk" in families:
                say("    topk ...")
                rows += topk_rows(truth, heavy_keys, args.parts, ds)
            for row in rows:
                row.update(s=s, seed=seed)
            all_rows += rows
            say(f"    done in {time.time() - started:.0f} s")
    say("")
    for s in sorted({r["s"] for r in all_rows}):
        say(f"s = {s} (seeds {args.seeds}; recall and errors averaged over seeds)")
        say("| sketch | form | bytes | recall top-10 | recall top-100 | error max | error mean | mean abs error |")
        say("|---|---|---|---|---|---|---|---|")
        keys = []
        for r in all_rows:
            if r["s"] == s and (r["sketch"], r["form"]) not in keys:
                keys.append((r["sketch"], r["form"]))
        for sketch, form in keys:
            group = [r for r in all_rows if r["s"] == s and (r["sketch"], r["form"]) == (sketch, form)]
            mean = lambda name: None if group[0][name] is None else sum(r[name] for r in group) / len(group)
            fmt = lambda v: "–" if v is None else f"{v:.2f}"
            say(f"| {sketch} | {form} | {max(r['bytes'] for r in group):,} | {fmt(mean('top10'))} | "
                f"{fmt(mean('top100'))} | {max(r['max_error'] for r in group):,} | {mean('mean_error'):,.1f} | "
                f"{mean('mean_abs_error'):,.1f} |")
        say("")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
