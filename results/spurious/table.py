#!/usr/bin/env python3
"""table.md of the spurious Fashion-MNIST sweep: per encoder and IPC, average and worst-group test
accuracy (mean ± std over the experiment seeds; %) of the distilled sets (CLP-DD, LGM) and of the
baselines (random real, centroids, full data) from runs/spurious/*/metrics.json. Every number is
read from the runs' metrics.json; nothing is edited.
    python3 results/spurious/table.py [RUNS_DIR] > results/spurious/table.md"""
import glob
import json
import os
import statistics
import sys


def ms(v):
    if not v:
        return "-"
    m = 100 * statistics.mean(v)
    s = 100 * statistics.pstdev(v) if len(v) > 1 else 0.0
    return f"{m:.2f} ± {s:.2f}"


def main():
    runs = sys.argv[1] if len(sys.argv) > 1 else "runs/spurious"
    cells = {}
    for p in sorted(glob.glob(os.path.join(runs, "*", "metrics.json"))):
        m = json.load(open(p))
        bb, ipc = m["method"]["backbone"], m["method"]["ipc"]
        if bb == "resnet":
            bb = "resnet20"
        sets = {"CLP-DD" if m["method"]["solver"] == "ridge" else "LGM": m["accuracy"]}
        for k, name in (("random_real", "random real"), ("centroids", "centroids"), ("full_data", "full data")):
            if k in m["baselines"]:
                sets[name] = m["baselines"][k]
        for name, s in sets.items():
            c = cells.setdefault((bb, ipc, name), ([], [], set()))
            key = (m["method"]["seed"], name)
            if name not in ("CLP-DD", "LGM") and key in c[2]:
                continue  # a baseline is the same for both methods of a seed: counted once
            c[2].add(key)
            c[0].append(s["mean"])
            c[1].append(s["worst_group"]["mean"])
    order = ["CLP-DD", "LGM", "random real", "centroids", "full data"]
    print("| encoder | IPC | set | runs | average % | worst group % |")
    print("|---|---|---|---|---|---|")
    for bb in sorted({k[0] for k in cells}, reverse=True):
        for ipc in sorted({k[1] for k in cells if k[0] == bb}):
            for name in order:
                c = cells.get((bb, ipc, name))
                if c:
                    print(f"| {bb} | {ipc} | {name} | {len(c[0])} | {ms(c[0])} | {ms(c[1])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
