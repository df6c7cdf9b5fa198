#!/usr/bin/env python3
"""Plot topk against DataSketches frequent_items at equal bytes.

Reads tests/bench/results/topk_vs_frequent_items.json (written by cms_vs_datasketches.sh) and
writes an SVG with one panel per budget (frequent_items lg 11, lg 12): for each Zipf exponent
and form (one sketch, union of 50), the mean over seeds of the largest absolute error on keys
with at least 100 events, DataSketches beside topk, bar labels giving the recall of the true
top 100. Lower bars are better. Standard library only.

Usage: plot_topk_errors.py [RESULTS.json] [OUT.svg]
"""
import json
import os
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
COLORS = {"DataSketches frequent_items": "#d62728", "topk": "#1f77b4"}


def family(sketch):
    return "topk" if sketch.startswith("topk") else "DataSketches frequent_items"


def budget(sketch):
    return "lg 11" if "lg 11" in sketch else "lg 12" if "lg 12" in sketch else None


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "topk_vs_frequent_items.json")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "results", "topk_vs_frequent_items.svg")
    rows = json.load(open(src))
    # (budget, s, form, family) -> [(max_error, top100), ...] over seeds
    cells = defaultdict(list)
    for r in rows:
        b = budget(r["sketch"])
        if b is None or "count_min" in r["sketch"]:
            continue
        cells[(b, r["s"], r["form"], family(r["sketch"]))].append((r["max_error"], r["top100"]))
    exponents = sorted({k[1] for k in cells})
    forms = ["one sketch", "union of 50"]
    budgets = ["lg 11", "lg 12"]
    peak = max(sum(e for e, _ in v) / len(v) for v in cells.values()) or 1
    width, panel_h, left, top = 760, 260, 60, 40
    groups = [(s, f) for s in exponents for f in forms]
    slot = (width - left - 20) / len(groups)
    bar = slot / 3
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + len(budgets) * (panel_h + 70) + 20}" font-family="sans-serif" font-size="11">',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Largest error on keys with ≥ 100 events, equal bytes (mean of seeds; label: top-100 recall)</text>']
    for pi, b in enumerate(budgets):
        y0 = top + pi * (panel_h + 70)
        parts.append(f'<text x="{left}" y="{y0 + 12}" font-size="12">budget: bytes of frequent_items {b}</text>')
        base = y0 + 20 + panel_h
        parts.append(f'<line x1="{left}" y1="{base}" x2="{width - 20}" y2="{base}" stroke="black"/>')
        for tick in range(0, 5):
            v = peak * tick / 4
            y = base - panel_h * tick / 4
            parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{v:.0f}</text>')
            parts.append(f'<line x1="{left}" y1="{y}" x2="{width - 20}" y2="{y}" stroke="#ddd"/>')
        for gi, (s, f) in enumerate(groups):
            x = left + gi * slot + bar / 2
            for fi, fam in enumerate(COLORS):
                v = cells.get((b, s, f, fam))
                if not v:
                    continue
                err = sum(e for e, _ in v) / len(v)
                recall = sum(r for _, r in v) / len(v)
                h = panel_h * err / peak
                bx = x + fi * bar
                parts.append(f'<rect x="{bx:.1f}" y="{base - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{COLORS[fam]}"/>')
                parts.append(f'<text x="{bx + bar / 2:.1f}" y="{base - h - 3:.1f}" text-anchor="middle" font-size="9">{recall:.2f}</text>')
            parts.append(f'<text x="{x + bar:.1f}" y="{base + 14}" text-anchor="middle">s = {s}</text>')
            parts.append(f'<text x="{x + bar:.1f}" y="{base + 27}" text-anchor="middle">{f}</text>')
    ly = top + len(budgets) * (panel_h + 70)
    for i, (fam, color) in enumerate(COLORS.items()):
        parts.append(f'<rect x="{left + i * 260}" y="{ly}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + i * 260 + 18}" y="{ly + 10}">{fam}</text>')
    parts.append("</svg>")
    with open(out, "w") as fh:
        fh.write("\n".join(parts) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
