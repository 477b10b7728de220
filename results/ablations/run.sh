#!/usr/bin/env bash
# The Fashion-MNIST ablations of issues 9 and 12, each a sweep file of experiments/ablations/:
# every point distilled and scored by the converged probe (protocol probe, L2 chosen on the
# validation split), then re-scored by LGM's Adam probe (protocol fast) with `clpdd eval`, so
# both evaluations stand side by side. Writes runs/<sweep>/ and results/ablations/<sweep>/
# (summary.md and .csv under probe, fast/summary.md under fast, the plots, a grid per point).
# Usage (repository root, after scripts/setup.sh; resumable: finished points are skipped):
#   bash results/ablations/run.sh [BUILD_DIR] [SWEEP ...]      (default: lambda-x-loss methods)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shift || true
sweeps=("$@")
[ ${#sweeps[@]} -gt 0 ] || sweeps=(lambda-x-loss methods)
for s in "${sweeps[@]}"; do
  out=runs/$s
  res=results/ablations/$s
  mkdir -p "$res"
  start=$(date +%s)
  "$build/clpdd" sweep "experiments/ablations/$s.ini" --output "$out" --no-report --quiet || true
  end=$(date +%s)
  # LGM's probe on the same distilled sets (kept beside the probe's numbers)
  "$build/clpdd" report "$out" --output "$res" --title "$s (protocol probe)"
  for p in "$out"/*/; do
    p=${p%/}
    [ -f "$p/metrics.json" ] || continue
    f="$out-fast/$(basename "$p")"
    [ -f "$f/metrics.json" ] || "$build/clpdd" eval "$p" --protocol fast --output "$f" --quiet --force
  done
  mkdir -p "$res/fast"
  "$build/clpdd" report "$out-fast" --output "$res/fast" --title "$s (protocol fast: LGM's probe)" --no-plots
  for p in "$out"/*/; do cp "$p/distilled.png" "$res/$(basename "$p").png" 2>/dev/null || true; done
  cp "experiments/ablations/$s.ini" "$res/sweep.ini"
  { echo "sweep: $s"; echo "command: bash results/ablations/run.sh $build $s"; echo "sweep wall time: $((end - start)) s";
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"; date -u; } > "$res/RUN.txt"
done
