#!/usr/bin/env bash
# The quickstart (Fashion-MNIST, mnist-vit, IPC 1, 300 steps, 5 probe seeds) with the ridge
# regulariser swept, for both outer losses. Writes runs under runs/lambda-sweep/ and the table
# results/lambda-sweep/table.md. Usage (from the repository root, after scripts/setup.sh):
#   CLPDD_MODEL_PATH=../shared/models bash results/lambda-sweep/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for loss in ce mse; do
  for lam in 0.001 0.01 0.1 0.3 1 3; do
    out="runs/lambda-sweep/$loss-$lam"
    [ -f "$out/metrics.json" ] && continue
    ini=experiments/quickstart.ini
    [ $loss = mse ] && ini=experiments/quickstart-mse.ini
    ./build/clpdd run $ini --quiet --set solver.lambda=$lam --output "$out"
  done
done
python3 - <<'PY'
import json, pathlib
rows = []
for p in sorted(pathlib.Path("runs/lambda-sweep").glob("*/metrics.json")):
    m = json.loads(p.read_text())
    loss, lam = p.parent.name.split("-", 1)
    rows.append((loss, float(lam), m))
rows.sort(key=lambda r: (r[0], r[1]))
out = ["# Ridge regulariser sweep on the quickstart", "",
       "Command: `CLPDD_MODEL_PATH=../shared/models bash results/lambda-sweep/run.sh` "
       "(experiments/quickstart.ini and quickstart-mse.ini with `--set solver.lambda=…`; "
       "Fashion-MNIST, mnist-vit, IPC 1, 300 steps, 20 000 real training images, 10 000 test images).", "",
       "| loss | lambda (relative) | probe accuracy (fast protocol, 5 seeds) | random real (same probe) | ridge classifier on the distilled features | ms/step |",
       "| --- | --- | --- | --- | --- | --- |"]
for loss, lam, m in rows:
    a, b = m["accuracy"], m["baselines"]["random_real"]
    d = m["solver_diagnostic"]["accuracy"] if m.get("solver_diagnostic") else float("nan")
    out.append(f"| {loss} | {lam:g} | {100*a['mean']:.2f} ± {100*a['std']:.2f} | {100*b['mean']:.2f} ± {100*b['std']:.2f} "
               f"| {100*d:.2f} | {m['timing']['ms_per_step']:.1f} |")
pathlib.Path("results/lambda-sweep/table.md").write_text("\n".join(out) + "\n")
print("\n".join(out))
PY
