#!/usr/bin/env python3
"""Draws docs/benchmarks.svg from the figures the benchmark scripts wrote:

- bench/figures/scale.txt (bench/scale.sh): "hit_ns N NS" lines, the hit
  cost over the bare service with N keys cached;
- bench/figures/load.txt (bench/load.sh): "ROUND VARIANT RPS P99_MS CPU_US"
  lines, wrk's throughput per round with ("on") and without ("off") the layer.

Run with: python3 bench/plot.py   (no third-party packages needed)
"""
import math
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCALE = os.path.join(ROOT, "bench", "figures", "scale.txt")
LOAD = os.path.join(ROOT, "bench", "figures", "load.txt")
OUT = os.path.join(ROOT, "docs", "benchmarks.svg")

W, H = 900, 360
PANEL_W, PANEL_H = 360, 230
LEFT = [80, 530]
TOP = 60


def read_scale():
    points = []
    for line in open(SCALE):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "hit_ns":
            points.append((int(parts[1]), float(parts[2])))
    return sorted(points)


def read_load():
    rounds = {}
    for line in open(LOAD):
        parts = line.split()
        if len(parts) == 5 and parts[1] in ("on", "off"):
            rounds.setdefault(int(parts[0]), {})[parts[1]] = float(parts[2])
    return [rounds[r] for r in sorted(rounds) if len(rounds[r]) == 2]


def nice_max(value):
    step = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * step:
            return m * step
    return 10 * step


def text(x, y, s, size=12, anchor="middle", weight="normal"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}">{s}</text>')


def axes(left, title, ylabel, ymax, yticks):
    out = [text(left + PANEL_W / 2, TOP - 25, title, 14, weight="bold")]
    out.append(f'<line x1="{left}" y1="{TOP + PANEL_H}" x2="{left + PANEL_W}" y2="{TOP + PANEL_H}" stroke="#333"/>')
    out.append(f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{TOP + PANEL_H}" stroke="#333"/>')
    for i in range(yticks + 1):
        v = ymax * i / yticks
        y = TOP + PANEL_H - PANEL_H * i / yticks
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{v / 1000:.0f}k" if ymax >= 10000 else f"{v:.0f}"
        out.append(text(left - 8, y + 4, label, 11, "end"))
    out.append(f'<text x="{left - 55}" y="{TOP + PANEL_H / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 {left - 55} {TOP + PANEL_H / 2})">{ylabel}</text>')
    return out


def hit_panel(points):
    left = LEFT[0]
    ymax = nice_max(max(ns for _, ns in points) * 1.15)
    out = axes(left, "Hit cost against keys cached", "ns per request over the bare service", ymax, 5)
    lo, hi = math.log10(points[0][0]), math.log10(points[-1][0])
    span = max(hi - lo, 1)
    xy = []
    for n, ns in points:
        x = left + 30 + (PANEL_W - 60) * (math.log10(n) - lo) / span
        y = TOP + PANEL_H - PANEL_H * ns / ymax
        xy.append((x, y))
        exponent = round(math.log10(n))
        label = f"10<tspan baseline-shift=\"super\" font-size=\"9\">{exponent}</tspan>" if 10 ** exponent == n else f"{n}"
        out.append(text(x, TOP + PANEL_H + 18, label, 11))
        out.append(text(x, y - 10, f"{ns:.0f}", 11))
    out.append('<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="'
               + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy) + '"/>')
    out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#1f77b4"/>' for x, y in xy]
    out.append(text(left + PANEL_W / 2, TOP + PANEL_H + 40, "distinct keys cached (log scale), each request a random one", 12))
    return out


def load_panel(rounds):
    left = LEFT[1]
    ymax = nice_max(max(max(r.values()) for r in rounds) * 1.1)
    out = axes(left, "Throughput over the wire (wrk, loopback)", "requests per second", ymax, 5)
    slot = PANEL_W / len(rounds)
    bar = slot * 0.32
    for i, r in enumerate(rounds):
        x0 = left + slot * i + slot * 0.16
        for j, (variant, colour) in enumerate((("off", "#999"), ("on", "#1f77b4"))):
            h = PANEL_H * r[variant] / ymax
            x = x0 + j * bar
            out.append(f'<rect x="{x:.1f}" y="{TOP + PANEL_H - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{colour}"/>')
        ratio = r["on"] / r["off"]
        out.append(text(x0 + bar, TOP + PANEL_H - PANEL_H * max(r.values()) / ymax - 6, f"{ratio:.2f}", 10))
        out.append(text(x0 + bar, TOP + PANEL_H + 18, f"round {i + 1}", 11))
    out.append(f'<rect x="{left + 10}" y="{TOP + PANEL_H + 30}" width="12" height="12" fill="#999"/>')
    out.append(text(left + 28, TOP + PANEL_H + 40, "without the layer", 12, "start"))
    out.append(f'<rect x="{left + 160}" y="{TOP + PANEL_H + 30}" width="12" height="12" fill="#1f77b4"/>')
    out.append(text(left + 178, TOP + PANEL_H + 40, "with the layer (ratio above)", 12, "start"))
    return out


def main():
    for path in (SCALE, LOAD):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run bench/scale.sh and bench/load.sh first")
    points, rounds = read_scale(), read_load()
    if not points or not rounds:
        sys.exit("no figures to plot")
    body = hit_panel(points) + load_panel(rounds)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="sans-serif">\n<rect width="{W}" height="{H}" fill="white"/>\n'
           + "\n".join(body) + "\n</svg>\n")
    with open(OUT, "w") as f:
        f.write(svg)
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
