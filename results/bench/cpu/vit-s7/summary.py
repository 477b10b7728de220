#!/usr/bin/env python3
"""Medians (min–max) of ab.sh logs per (mode, m, side), and of new/base per round (pairs of the same round)."""
import re, statistics as st, sys
for path in sys.argv[1:]:
    v = {}
    for line in open(path):
        m = re.match(r"round (\d+) (base|new) m= (\d+) ms/step ([\d.]+)", line)
        if m:
            v.setdefault((int(m[3]), m[2]), {})[int(m[1])] = float(m[4])
        m = re.match(r"round (\d+) m=(\d+) cpu ms/step base ([\d.]+) new ([\d.]+)", line)
        if m:
            for side, x in (("base", m[3]), ("new", m[4])):
                v.setdefault((int(m[2]), side), {})[int(m[1])] = float(x)
    print(f"## {path}")
    for M in sorted({k[0] for k in v}):
        b, n = v.get((M, "base"), {}), v.get((M, "new"), {})
        r = [n[k] / b[k] for k in b if k in n]
        f = lambda d: f"{st.median(d):.2f} ({min(d):.2f}–{max(d):.2f})" if d else "-"
        print(f"m={M}: base {f(list(b.values()))}  new {f(list(n.values()))}  new/base {f(r)}  n={len(r)}")
