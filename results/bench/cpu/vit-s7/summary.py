#!/usr/bin/env python3
"""Summaries of ab.sh / variants.sh logs: per (m, side) the median (min–max) over rounds, and each side's
ratio to `base` per round (the runs of one round are back to back). The machine was shared (another
engineer's benchmarks took one of the two cores for minutes at a time), so the wall times are bimodal;
"quiet rounds" are those where every side of the round ran under 1.3× its own fastest run at that m,
i.e. all of them had both cores."""
import re, statistics as st, sys


def fmt(d):
    return f"{st.median(d):.2f} ({min(d):.2f}–{max(d):.2f}), n={len(d)}" if d else "-"


for path in sys.argv[1:]:
    v = {}  # (m, side) -> {round: ms}
    for line in open(path):
        g = re.match(r"round (\d+) (\S+) m= (\d+) ms/step ([\d.]+)", line)
        if g:
            v.setdefault((int(g[3]), g[2]), {})[int(g[1])] = float(g[4])
        g = re.match(r"round (\d+) m=(\d+) cpu ms/step base ([\d.]+) new ([\d.]+)", line)
        if g:
            for side, x in (("base", g[3]), ("new", g[4])):
                v.setdefault((int(g[2]), side), {})[int(g[1])] = float(x)
    print(f"## {path}")
    for M in sorted({k[0] for k in v}):
        sides = [k[1] for k in v if k[0] == M]
        base = v[(M, "base")]
        fastest = {s: min(v[(M, s)].values()) for s in sides}
        quiet = [r for r in base if all(r in v[(M, s)] and v[(M, s)][r] < 1.3 * fastest[s] for s in sides)]
        for s in sides:
            d = v[(M, s)]
            line = f"m={M} {s:8s} all rounds {fmt(list(d.values()))}"
            if quiet:
                line += f" | quiet rounds {fmt([d[r] for r in quiet])}"
            if s != "base":
                line += f" | /base all {fmt([d[r] / base[r] for r in d if r in base])}"
                if quiet:
                    line += f" | /base quiet {fmt([d[r] / base[r] for r in quiet])}"
            print(line)
