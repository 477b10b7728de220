#!/usr/bin/env bash
# Every method of experiments/fmnist/ at IPC 1 and 10 on the same features, seeds and probe.
# Writes runs/fmnist-methods/<method>-ipc<k>/ and results/fmnist-methods/table.md.
# Usage (repository root, after scripts/setup.sh; resumable: finished runs are skipped):
#   CLPDD_MODEL_PATH=../shared/models bash results/fmnist-methods/run.sh [method ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(clpdd ridge-mse ntk-ce ntk-mse unrolled-ce lgm lgm-dsa)
for ipc in 1 10; do
  for m in "${methods[@]}"; do
    out="runs/fmnist-methods/$m-ipc$ipc"
    [ -f "$out/metrics.json" ] && continue
    echo "== $m ipc $ipc" >&2
    ./build/clpdd run "experiments/fmnist/$m.ini" --quiet --set distill.ipc=$ipc --output "$out"
  done
done
python3 - <<'PY'
import json, pathlib, platform, subprocess
order = ["clpdd", "ridge-mse", "ntk-ce", "ntk-mse", "unrolled-ce", "lgm", "lgm-dsa"]
rows = []
for p in pathlib.Path("runs/fmnist-methods").glob("*/metrics.json"):
    name, ipc = p.parent.name.rsplit("-ipc", 1)
    rows.append((int(ipc), order.index(name) if name in order else 99, name, json.loads(p.read_text())))
rows.sort(key=lambda r: (r[0], r[1]))
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
out = ["# Fashion-MNIST: every method on the mnist-vit features", "",
       "Command: `CLPDD_MODEL_PATH=../shared/models bash results/fmnist-methods/run.sh` (the files in "
       "experiments/fmnist/, each at `--set distill.ipc=1` and `=10`; 300 steps; real features of 20 000 "
       "stratified training images; top-1 on the 10 000 test images with the `fast` probe, 5 seeds).",
       f"Machine: {cpu}, {len(__import__('os').sched_getaffinity(0))} cores, CPU only.", "",
       "| IPC | method | solver + loss | accuracy | random real | ms/step | peak RSS MB | peak tensor MB |",
       "| --- | --- | --- | --- | --- | --- | --- | --- |"]
for ipc, _, name, m in rows:
    a, b = m["accuracy"], m["baselines"].get("random_real")
    meth = m["method"]
    sl = f"{meth['solver']} + {meth['loss']}" if meth["loss"] else f"{meth['solver']} (own objective)"
    rb = f"{100*b['mean']:.2f} ± {100*b['std']:.2f}" if b else "–"
    out.append(f"| {ipc} | {name} | {sl} | {100*a['mean']:.2f} ± {100*a['std']:.2f} | {rb} | "
               f"{m['timing']['ms_per_step']:.1f} | {m['memory']['peak_host_mb']:.0f} | {m['memory']['peak_plugin_alloc_mb']:.0f} |")
pathlib.Path("results/fmnist-methods/table.md").write_text("\n".join(out) + "\n")
print("\n".join(out))
PY
