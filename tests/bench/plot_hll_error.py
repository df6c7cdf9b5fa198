#!/usr/bin/env python3
"""Plot HyperLogLog relative error against n for pg_distcount and postgresql-hll.

Reads the accuracy rows of tests/bench/results/hll_vs_postgresql_hll.tsv (written by
hll_vs_postgresql_hll.sh) and writes an SVG: the error of every value range as a dot, the mean
(bias) as a solid line and the RMS error as a dashed line per extension, on a log n axis, with
the theoretical standard error ±1.04/sqrt(m) as reference lines. Standard library only.

Usage: plot_hll_error.py [RESULTS.tsv] [OUT.svg]

With --per-byte first, it reads tests/bench/results/hll_vs_datasketches.tsv (written by
hll_vs_datasketches.sh) instead and plots RMS error x sqrt(bytes) against n for pg_distcount
and DataSketches HLL_4 / HLL_8 / CPC, sketches built directly (solid) and unions of 16
(dashed): the error per byte, lower is better.

Usage: plot_hll_error.py --per-byte [RESULTS.tsv] [OUT.svg]
"""
import csv
import math
import os
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))


def fmt_n(n):
    for div, suf in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= div:
            v = n / div
            return (f"{v:.0f}" if v == int(v) else f"{v:.3g}") + suf
    return str(n)


def per_byte_plot(tsv, out_path):
    """RMS x sqrt(bytes) against n per sketch, direct (solid) and union (dashed), log-log."""
    series = defaultdict(dict)  # (mode, sketch) -> {n: value}
    sets = {}
    with open(tsv, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            series[(row["mode"], row["sketch"])][int(row["n"])] = float(row["rms_pct_sqrt_bytes"])
            sets[int(row["n"])] = int(row["sets"])
    colours = {"pg_distcount": "#1f5fbf", "DataSketches HLL_4": "#d0501c", "DataSketches HLL_6": "#e3a21a",
               "DataSketches HLL_8": "#8c6d31", "DataSketches CPC": "#2a9d5c"}
    values = [v for pts in series.values() for v in pts.values() if v > 0]
    ns = sorted(sets)
    w, h, left, right, top, bottom = 1000, 600, 90, 250, 80, 70
    pw, ph = w - left - right, h - top - bottom
    xlo, xhi = math.log10(ns[0]) - 0.2, math.log10(ns[-1]) + 0.2
    # Exact counts (0) and near-exact ones sit at the bottom edge: the axis starts at 0.1.
    ylo, yhi = max(-1, math.floor(math.log10(min(values)))), math.ceil(math.log10(max(values)))

    def x(n):
        return left + (math.log10(n) - xlo) / (xhi - xlo) * pw

    def y(v):
        return top + (yhi - math.log10(max(v, 10**ylo))) / (yhi - ylo) * ph

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
         'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="14">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold">'
         'Error per byte: RMS error (%) × √bytes against n, p = lg_k = 14 (lower is better)</text>',
         f'<text x="{w / 2}" y="48" text-anchor="middle" font-size="13" fill="#444">solid: built directly; '
         'dashed: union of 16; values below 0.1 (exact counts) at the bottom edge</text>',
         f'<text x="{w / 2}" y="66" text-anchor="middle" font-size="13" fill="#444">sets per n: '
         f'{", ".join(f"{fmt_n(n)}: {sets[n]}" for n in ns)}</text>',
         f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>']
    for d in range(ylo, yhi + 1):
        for s in (1, 2, 5):
            v = s * 10**d
            if 10**ylo <= v <= 10**yhi:
                o.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
                o.append(f'<text x="{left - 8}" y="{y(v) + 5:.1f}" text-anchor="end">{v:g}</text>')
    for n in ns:
        o.append(f'<line x1="{x(n):.1f}" y1="{top}" x2="{x(n):.1f}" y2="{top + ph}" stroke="#e4e4e4"/>')
        o.append(f'<text x="{x(n):.1f}" y="{top + ph + 22}" text-anchor="middle">{fmt_n(n)}</text>')
    o.append(f'<text x="{left + pw / 2}" y="{top + ph + 48}" text-anchor="middle">'
             'number of distinct values n (log scale)</text>')
    o.append(f'<text transform="translate(24 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
             'RMS error (%) × √bytes (log scale)</text>')
    legend_y = top + 10
    for name, colour in colours.items():
        for mode, dash in (("direct", ""), ("union", ' stroke-dasharray="7 4"')):
            pts = sorted(series.get((mode, name), {}).items())
            if not pts:
                continue
            path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in pts)
            o.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.2"{dash}/>')
            o.extend(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>' for n, v in pts)
            o.append(f'<line x1="{left + pw + 14}" y1="{legend_y - 5}" x2="{left + pw + 40}" y2="{legend_y - 5}" '
                     f'stroke="{colour}" stroke-width="2.2"{dash}/>')
            o.append(f'<text x="{left + pw + 46}" y="{legend_y}" font-size="12">{name.replace("DataSketches ", "DS ")}, {mode}</text>')
            legend_y += 20
    o.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write("\n".join(o) + "\n")
    print(f"wrote {out_path} ({len(ns)} values of n)")


if len(sys.argv) > 1 and sys.argv[1] == "--per-byte":
    per_byte_plot(sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "results", "hll_vs_datasketches.tsv"),
                  sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "results", "hll_error_per_byte.svg"))
    sys.exit(0)

TSV = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "hll_vs_postgresql_hll.tsv")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "results", "hll_relative_error.svg")

P = 14
M = 1 << P
SE = 1.04 / math.sqrt(M)
EXTS = [  # name in the TSV, label, colour, x offset in decades (so the two clouds do not overlap)
    ("pg_distcount", "pg_distcount", "#1f5fbf", -0.045),
    ("postgresql-hll", "postgresql-hll", "#d0501c", +0.045),
]

# ---- data
dots = defaultdict(list)                  # ext -> [(n, k, rel_err)]
summary = defaultdict(dict)               # (ext, item) -> {n: value}
ranges = {}                               # n -> number of ranges
with open(TSV, newline="") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        if row["section"] == "accuracy" and row["item"] == "rel_err":
            dots[row["ext"]].append((int(row["n"]), int(row["rep"]), float(row["value"])))
        elif row["section"] == "accuracy_summary" and row["item"] in ("bias", "rms"):
            summary[(row["ext"], row["item"])][int(row["n"])] = float(row["value"])
            ranges[int(row["n"])] = int(row["rep"])
if not dots:
    sys.exit(f"{TSV}: no accuracy rows")
ns = sorted(ranges)

# ---- geometry
W, H = 1000, 640
L, R, T, B = 96, 28, 92, 150          # plot margins; the legend sits below the x axis
PW, PH = W - L - R, H - T - B
xmin = math.floor(math.log10(min(ns))) - 0.15
xmax = math.log10(max(ns)) + 0.25
all_err = [abs(e) for ext in dots for (_, _, e) in dots[ext]]
ymax_pct = max(2 * SE * 100, min(6.0, max(all_err) * 100 * 1.08))
step = 0.5 if ymax_pct <= 3 else 1.0
ymax_pct = math.ceil(ymax_pct / step) * step


def X(n, off=0.0):
    return L + (math.log10(n) + off - xmin) / (xmax - xmin) * PW


def Y(frac):
    pct = max(-ymax_pct, min(ymax_pct, frac * 100))
    return T + (ymax_pct - pct) / (2 * ymax_pct) * PH


def jitter(k):  # deterministic spread of the dots of one n, in decades
    return ((k * 2654435761) % 1000 / 1000 - 0.5) * 0.05


out = []
a = out.append
a(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
  'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="14">')
a(f'<rect width="{W}" height="{H}" fill="white"/>')
a(f'<text x="{W / 2}" y="28" text-anchor="middle" font-size="18" font-weight="bold">'
  f'HyperLogLog relative error against n, p = {P} (m = {M:,} registers)</text>')
rng = sorted(set(ranges.values()))
rtxt = " or ".join(str(r) for r in rng)
a(f'<text x="{W / 2}" y="50" text-anchor="middle" font-size="13" fill="#444">'
  f'distcount.hll_agg(v) vs postgresql-hll hll_add_agg(hll_hash_bigint(v), 14); '
  f'{rtxt} disjoint ranges of consecutive bigints per n</text>')

# grid and axes
a(f'<rect x="{L}" y="{T}" width="{PW}" height="{PH}" fill="none" stroke="#888"/>')
y = -ymax_pct
while y <= ymax_pct + 1e-9:
    yy = Y(y / 100)
    a(f'<line x1="{L}" y1="{yy:.1f}" x2="{L + PW}" y2="{yy:.1f}" stroke="{"#999" if abs(y) < 1e-9 else "#e4e4e4"}"/>')
    a(f'<text x="{L - 8}" y="{yy + 5:.1f}" text-anchor="end">{y:+.1f}%</text>' if abs(y) > 1e-9 else
      f'<text x="{L - 8}" y="{yy + 5:.1f}" text-anchor="end">0%</text>')
    y += step
for d in range(math.ceil(xmin), math.floor(xmax) + 1):
    xx = X(10**d)
    a(f'<line x1="{xx:.1f}" y1="{T}" x2="{xx:.1f}" y2="{T + PH}" stroke="#e4e4e4"/>')
    a(f'<line x1="{xx:.1f}" y1="{T + PH}" x2="{xx:.1f}" y2="{T + PH + 6}" stroke="#888"/>')
    a(f'<text x="{xx:.1f}" y="{T + PH + 22}" text-anchor="middle">{fmt_n(10**d)}</text>')
    for s in range(2, 10):
        if xmin < d + math.log10(s) < xmax:
            xs = X(s * 10**d)
            a(f'<line x1="{xs:.1f}" y1="{T + PH}" x2="{xs:.1f}" y2="{T + PH + 3}" stroke="#888"/>')
a(f'<text x="{L + PW / 2}" y="{T + PH + 46}" text-anchor="middle">'
  f'true number of distinct values n (log scale)</text>')
a(f'<text transform="translate(24 {T + PH / 2}) rotate(-90)" text-anchor="middle">'
  f'relative error (estimate / n − 1)</text>')
# n/m markers along the top edge
last_label = -1e9
for n in ns:
    r = n / M
    if r >= 0.4:
        xx = X(n)
        a(f'<line x1="{xx:.1f}" y1="{T - 5}" x2="{xx:.1f}" y2="{T}" stroke="#888"/>')
        label = f"{r:.0f}m" if r >= 10 else f"{r:.2g}m"
        key = round(r, 1) in (0.5, 1.0, 2.7, 10.0, 100.0, 1000.0)
        if xx - last_label >= 34 and (key or xx - last_label >= 60):
            a(f'<text x="{xx:.1f}" y="{T - 9}" text-anchor="middle" font-size="11" fill="#555">{label}</text>')
            last_label = xx
a(f'<text x="{L}" y="{T - 24}" font-size="11" fill="#555">n as a multiple of m (top marks); '
  f'errors beyond ±{ymax_pct:g}% are drawn at the edge</text>')

# reference ±1.04/sqrt(m)
for sgn in (1, -1):
    yy = Y(sgn * SE)
    a(f'<line x1="{L}" y1="{yy:.1f}" x2="{L + PW}" y2="{yy:.1f}" stroke="#333" stroke-dasharray="2 4" stroke-width="1.4"/>')
a(f'<text x="{L + PW - 6}" y="{Y(SE) - 6:.1f}" text-anchor="end" font-size="12" fill="#333">+1.04/√m = {SE * 100:.2f}%</text>')
a(f'<text x="{L + PW - 6}" y="{Y(-SE) + 16:.1f}" text-anchor="end" font-size="12" fill="#333">−1.04/√m</text>')

# per-range dots
for name, _, colour, off in EXTS:
    a(f'<g fill="{colour}" fill-opacity="0.22">')
    for n, k, e in dots.get(name, []):
        a(f'<circle cx="{X(n, off + jitter(k)):.1f}" cy="{Y(e):.1f}" r="2.2"/>')
    a('</g>')

# bias and RMS lines
for name, _, colour, off in EXTS:
    for item, dash, marker in (("bias", "", "circle"), ("rms", ' stroke-dasharray="7 4"', "square")):
        pts = sorted(summary.get((name, item), {}).items())
        if not pts:
            continue
        path = " ".join(f"{X(n, off):.1f},{Y(v):.1f}" for n, v in pts)
        a(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.2"{dash}/>')
        for n, v in pts:
            cx, cy = X(n, off), Y(v)
            if marker == "circle":
                a(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}" stroke="white"/>')
            else:
                a(f'<rect x="{cx - 3.5:.1f}" y="{cy - 3.5:.1f}" width="7" height="7" fill="white" stroke="{colour}" stroke-width="1.8"/>')

# legend, below the plot
ly = T + PH + 72
cols = [L + 10, L + 330, L + 640]
entries = []
for name, label, colour, _ in EXTS:
    entries.append([
        ("dot", colour, f"{label}: error of one range"),
        ("bias", colour, f"{label}: bias (mean error)"),
        ("rms", colour, f"{label}: RMS error"),
    ])
for col, group in enumerate(entries):
    for i, (kind, colour, text) in enumerate(group):
        x0, y0 = cols[col], ly + i * 22
        if kind == "dot":
            for dx in (4, 12, 20):
                a(f'<circle cx="{x0 + dx}" cy="{y0 - 5 + (dx % 3)}" r="2.6" fill="{colour}" fill-opacity="0.45"/>')
        elif kind == "bias":
            a(f'<line x1="{x0}" y1="{y0 - 5}" x2="{x0 + 26}" y2="{y0 - 5}" stroke="{colour}" stroke-width="2.2"/>')
            a(f'<circle cx="{x0 + 13}" cy="{y0 - 5}" r="4" fill="{colour}" stroke="white"/>')
        else:
            a(f'<line x1="{x0}" y1="{y0 - 5}" x2="{x0 + 26}" y2="{y0 - 5}" stroke="{colour}" stroke-width="2.2" stroke-dasharray="7 4"/>')
            a(f'<rect x="{x0 + 9.5}" y="{y0 - 8.5}" width="7" height="7" fill="white" stroke="{colour}" stroke-width="1.8"/>')
        a(f'<text x="{x0 + 34}" y="{y0}">{text}</text>')
x0, y0 = cols[2], ly
a(f'<line x1="{x0}" y1="{y0 - 5}" x2="{x0 + 26}" y2="{y0 - 5}" stroke="#333" stroke-dasharray="2 4" stroke-width="1.4"/>')
a(f'<text x="{x0 + 34}" y="{y0}">±1.04/√m (theory)</text>')
a(f'<text x="{x0}" y="{y0 + 22}" font-size="12" fill="#555">RMS = sqrt(mean(error²)) over the ranges;</text>')
a(f'<text x="{x0}" y="{y0 + 40}" font-size="12" fill="#555">dots of the two extensions are offset in x.</text>')
a("</svg>")

os.makedirs(os.path.dirname(os.path.abspath(OUT)), exist_ok=True)
with open(OUT, "w") as f:
    f.write("\n".join(out) + "\n")
print(f"wrote {OUT} ({len(ns)} values of n, {sum(len(v) for v in dots.values())} range estimates)")
