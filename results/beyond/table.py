#!/usr/bin/env python3
"""Issue 23's tables from the run directories of results/beyond/run.sh: per encoder and IPC, the
default τ/λ, the grid's validation-selected cell, learned τ/λ (with and without the prior), learned
labels (soft and hard scoring) and the baselines, each mean ± std over its seeds.
Reads every <runs>/*/metrics.json; writes summary.md and bars.tsv into the output directory.
    python3 results/beyond/table.py runs/beyond results/beyond"""
import glob, json, os, statistics, sys

runs, out = sys.argv[1], sys.argv[2]
ENC = {"vit": "mnist-vit", "resnet": "resnet20 (pad)"}


def cfg(path):
    """section.key -> value of a run's config.ini (comments dropped)"""
    d, sec = {}, ""
    for line in open(path):
        line = line.split(";", 1)[0].strip()
        if line.startswith("["):
            sec = line.strip("[]")
        elif "=" in line:
            k, v = line.split("=", 1)
            d[f"{sec}.{k.strip()}"] = v.strip()
    return d


def load(pattern):
    out = []
    for m in sorted(glob.glob(os.path.join(runs, pattern, "*", "metrics.json"))):
        c = cfg(os.path.join(os.path.dirname(m), "config.ini"))
        out.append((c, json.load(open(m))))
    return out


def ms(xs):
    xs = [100 * x for x in xs if x is not None]
    if not xs:
        return "-", float("nan"), 0.0
    mu = statistics.fmean(xs)
    sd = statistics.pstdev(xs) if len(xs) > 1 else 0.0
    return f"{mu:.2f} ± {sd:.2f}", mu, sd


def acc(m, key="accuracy"):
    a = m.get(key)
    return a["mean"] if a else None


def base(m, k):
    b = m.get("baselines", {}).get(k)
    return b["mean"] if b else None


rows, bars = [], []
for e in ("vit", "resnet"):
    grid = load(f"grid-{e}")
    for ipc in ("1", "10"):
        def pick(runs_):
            return [m for c, m in runs_ if c["distill.ipc"] == ipc]
        fin = [(c, m) for c, m in load(f"final-{e}") if c["distill.ipc"] == ipc]
        default = [m for c, m in fin if c["loss.temperature"] == "0.1" and c["solver.lambda"] == "0.3"]
        learned = [m for c, m in fin if c["loss.temperature"].startswith("learn")]
        noprior = pick(load(f"noprior*-{e}"))
        labels = pick(load(f"labels-{e}"))
        selected = pick(load(f"selected-{e}-ipc{ipc}"))
        g = [(c, m) for c, m in grid if c["distill.ipc"] == ipc]
        best = max(g, key=lambda cm: cm[1]["accuracy"]["val"]["mean"]) if g else None
        sel_name = f"τ {best[0]['loss.temperature']}, λ {best[0]['solver.lambda']}" if best else "?"
        name = f"{ENC[e]}, IPC {ipc}"

        def row(label, ms_list, key="accuracy", note="", bar=None):
            s, mu, sd = ms([acc(m, key) for m in ms_list])
            loss = [m["loss"]["last"] for m in ms_list if m.get("loss", {}).get("last") is not None]
            diag = [m["solver_diagnostic"]["accuracy"] for m in ms_list if m.get("solver_diagnostic")]
            ls = f"{statistics.fmean(loss):.3f}" if loss else "-"
            ds = f"{100 * statistics.fmean(diag):.2f}" if diag else "-"
            rows.append(f"| {name} | {label} | {len(ms_list)} | {s} | {ls} | {ds} | {note} |")
            bars.append((name, bar or label, mu, sd))

        def learned_note(ms_list):
            if not ms_list:
                return ""
            t = [m["learned"]["loss.temperature"]["final"] for m in ms_list if "learned" in m]
            l = [m["learned"]["solver.lambda"]["final"] for m in ms_list if "learned" in m]
            return f"final τ {statistics.fmean(t):.3g}, λ {statistics.fmean(l):.3g} (from 0.1, 0.3)" if t else ""

        row("default τ 0.1, λ 0.3", default)
        row(f"grid-selected ({sel_name})", selected, bar="grid-selected τ, λ",
            note=f"selected on validation among {len(g)} cells (seed 0: val {100 * best[1]['accuracy']['val']['mean']:.2f}, test {100 * best[1]['accuracy']['mean']:.2f})" if best else "")
        row("learned τ, λ (prior σ = 1)", learned, note=learned_note(learned))
        if noprior:
            row("learned τ, λ (no prior)", noprior, note=learned_note(noprior))
        row("learned labels, soft", labels)
        row("learned labels, hard (argmax)", labels, key="accuracy_hard_labels")
        for k, label in (("neighbors", "nearest real images"), ("centroids", "class centroids"),
                         ("random_real", "random real"), ("full_data", "full data")):
            s, mu, sd = ms([base(m, k) for m in default])
            rows.append(f"| {name} | {label} (baseline) | {len(default)} | {s} | | | of the default arm's runs |")
            if k != "full_data":
                bars.append((name, label, mu, sd))

os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("| encoder, IPC | arm | runs | test accuracy % (mean ± std over seeds) | outer loss, last step | ridge classifier % | note |\n"
            "|---|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
# bars.tsv for plot.gp: one row per arm, a (mean, std) column pair per encoder and IPC (NaN: not run)
panels = list(dict.fromkeys(b[0] for b in bars))
arms = list(dict.fromkeys(b[1] for b in bars))
val = {(b[0], b[1]): (b[2], b[3]) for b in bars}
with open(os.path.join(out, "bars.tsv"), "w") as f:
    f.write("arm\t" + "\t".join(f'"{p}"\tstd' for p in panels) + "\n")
    for a in arms:
        cells = [val.get((p, a), (float("nan"), 0.0)) for p in panels]
        f.write(f'"{a}"\t' + "\t".join(f"{m:.4f}\t{s:.4f}" for m, s in cells) + "\n")
print(open(os.path.join(out, "summary.md")).read())
