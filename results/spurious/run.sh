#!/usr/bin/env bash
# Worst-group accuracy on the spurious Fashion-MNIST set (issue 21): writes the set
# (tools/make_spurious_fmnist.py → runs/data/spurious-fmnist/), runs the sweep
# experiments/ablations/spurious.ini into runs/spurious/ and reports it here
# (summary.md, summary.csv, the plots, table.md: average and worst group of every set, sweep.ini,
# RUN.txt with the command and wall time).
# Usage (repository root; resumable: finished points are skipped):
#   bash results/spurious/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
res=results/spurious
[ -f runs/data/spurious-fmnist/metadata.csv ] || python3 tools/make_spurious_fmnist.py --out runs/data/spurious-fmnist
start=$(date +%s)
"$build/clpdd" sweep experiments/ablations/spurious.ini --output runs/spurious --no-report --quiet || true
end=$(date +%s)
"$build/clpdd" report runs/spurious --output "$res" --title "Spurious Fashion-MNIST: average and worst-group accuracy"
python3 results/spurious/table.py runs/spurious > "$res/table.md"
cp experiments/ablations/spurious.ini "$res/sweep.ini"
{ echo "sweep: spurious"; echo "command: bash results/spurious/run.sh $build"; echo "sweep wall time: $((end - start)) s";
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"; date -u; } > "$res/RUN.txt"
