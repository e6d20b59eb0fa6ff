#!/usr/bin/env python3
"""Draws the bench's chart: for each scenario, each peer's median wall time divided by
arctern's, as horizontal bars on a log scale (right of 1: arctern is faster), to an SVG file.

    chart.py RAW NAMES_JSON OUT.svg TITLE

RAW is the bench's results/raw ("scenario tool seconds rss" per line); NAMES_JSON maps scenario
keys to labels, in the order they are drawn. Plain SVG, no plotting library: the bench runs on
a fresh machine with only Python's standard library.
"""
import collections
import json
import math
import statistics
import sys
from xml.sax.saxutils import escape

raw, names_json, out, title = sys.argv[1:5]
names = json.loads(names_json)
data = collections.defaultdict(list)
for line in open(raw):
    parts = line.split()
    if len(parts) == 4:
        data[(parts[0], parts[1])].append(float(parts[2]))

COLOURS = {"mbsync": "#1f77b4", "offlineimap": "#ff7f0e", "getmail": "#2ca02c",
           "notmuch": "#9467bd", "mu": "#8c564b"}
rows = []  # (label, [(peer, ratio)])
for scen, label in names.items():
    a = data.get((scen, "arctern"))
    if not a or statistics.median(a) <= 0:
        continue
    mine = statistics.median(a)
    bars = [(peer, statistics.median(data[(scen, peer)]) / mine)
            for peer in COLOURS if data.get((scen, peer))]
    if bars:
        rows.append((label, bars))

LO, HI = 0.1, 100.0  # the x axis, as ratios
# Room for the longest scenario label (about 6.6 px a character at 12 px).
left = max(200, int(6.6 * max((len(label) for label, _ in rows), default=0)) + 20)
right, top, bar_h, gap = 40, 60, 16, 14
width = left + 600
plot_w = width - left - right
height = top + sum(len(b) * bar_h + gap for _, b in rows) + 50


def x_of(ratio):
    r = min(max(ratio, LO), HI)
    return left + plot_w * (math.log10(r) - math.log10(LO)) / (math.log10(HI) - math.log10(LO))


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
       f'font-family="sans-serif" font-size="12">',
       f'<rect width="{width}" height="{height}" fill="white"/>',
       f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
       f'<text x="{left}" y="40" fill="#555">peer time / arctern time, log scale: right of 1, '
       f'arctern is faster</text>']
for tick in (0.1, 0.25, 0.5, 1, 2, 4, 10, 25, 50, 100):
    x = x_of(tick)
    colour = "#000" if tick == 1 else "#ddd"
    svg.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 40}" stroke="{colour}"/>')
    svg.append(f'<text x="{x:.1f}" y="{height - 24}" text-anchor="middle" fill="#555">{tick:g}x</text>')
y = top
for label, bars in rows:
    block = len(bars) * bar_h
    svg.append(f'<text x="{left - 8}" y="{y + block / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for peer, ratio in bars:
        x0, x1 = sorted((x_of(1), x_of(ratio)))
        svg.append(f'<rect x="{x0:.1f}" y="{y + 1}" width="{max(x1 - x0, 1):.1f}" height="{bar_h - 2}" '
                   f'fill="{COLOURS[peer]}"><title>{peer}: {ratio:.2f}x</title></rect>')
        tx, anchor = (x1 + 4, "start") if ratio >= 1 else (x0 - 4, "end")
        svg.append(f'<text x="{tx:.1f}" y="{y + bar_h - 4}" text-anchor="{anchor}" font-size="11">'
                   f'{peer} {ratio:.2f}x</text>')
        y += bar_h
    y += gap
svg.append("</svg>")
with open(out, "w") as f:
    f.write("\n".join(svg) + "\n")
