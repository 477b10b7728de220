#!/usr/bin/env bash
# Issue 23, measured: CLP-DD without a τ × λ grid (learned τ and λ), learned labels, and the
# nearest-real-images baseline, on both shipped Fashion-MNIST encoders (mnist-vit; the CIFAR-10
# ResNet-20 with 28 px padded to 32), IPC 1 and 10, three seeds, the converged probe.
#   1. the τ × λ grid, one seed per cell (experiments/beyond/grid-{vit,resnet}.ini, 32 runs each);
#   2. the default, learned-τ/λ and learned-label arms, three seeds (experiments/beyond/final-*.ini);
#   3. the grid's validation-selected cell per IPC, three seeds;
#   4. learned τ/λ without the prior ([distill] learn_prior = 0);
#   then results/beyond/summary.md, bars.tsv and beyond.png (table.py, plot.gp) and the
#   `clpdd report` of every arm under results/beyond/report-{vit,resnet}/.
# Resumable (a sweep skips finished points). Usage, from the repository root after setup:
#   bash results/beyond/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
clpdd="$build/clpdd"
out=runs/beyond
one() { CLPDD_CPU_THREADS=1 OPENBLAS_NUM_THREADS=1 "$clpdd" sweep "experiments/beyond/$1.ini" --output "$out/$2" --no-report --quiet "${@:3}"; }
for e in vit resnet; do
  one grid-$e grid-$e
  one final-$e final-$e
  one final-$e labels-$e --sweep loss.temperature=0.1 --sweep solver.lambda=0.3 --sweep distill.labels=learn
  one final-$e noprior-$e --sweep distill.ipc=1 --sweep loss.temperature=learn --sweep solver.lambda=learn --set distill.learn_prior=0
  one final-$e noprior10-$e --sweep distill.ipc=10 --sweep loss.temperature=learn --sweep solver.lambda=learn --set distill.learn_prior=0
  "$clpdd" report "$out/grid-$e" --output "results/beyond/grid-$e" --title "τ × λ grid, $e (one seed per cell)"
  for ipc in 1 10; do
    # the selection table of the grid's report: "| ipc | lambda=…, temperature=… | val | test |"
    s=$(awk -F'|' -v ipc=$ipc '$2 ~ "^ "ipc" $" {print $3}' "results/beyond/grid-$e/summary.md" | sed -n '$p')
    lam=$(echo "$s" | sed -n 's/.*lambda=\([0-9.]*\).*/\1/p'); tau=$(echo "$s" | sed -n 's/.*temperature=\([0-9.]*\).*/\1/p')
    echo "$e IPC $ipc: the grid selects temperature $tau, lambda $lam"
    one final-$e selected-$e-ipc$ipc --sweep distill.ipc=$ipc --sweep loss.temperature=$tau --sweep solver.lambda=$lam
  done
  "$clpdd" report "$out/final-$e" "$out/labels-$e" "$out/noprior-$e" "$out/noprior10-$e" "$out/selected-$e-ipc1" "$out/selected-$e-ipc10" \
    --output "results/beyond/report-$e" --title "Beyond the paper, $e: every arm"
done
python3 results/beyond/table.py "$out" results/beyond
gnuplot -e "dir='results/beyond'" results/beyond/plot.gp
