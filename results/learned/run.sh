#!/usr/bin/env bash
# Learned τ and λ on the quickstart (mnist-vit, Fashion-MNIST, 300 steps, probe protocol, 5 seeds):
# IPC 1 and 10, each fixed (τ 0.1, λ 0.3), learned without a prior ([distill] learn_prior = 0) and
# learned with the default prior (learn_prior = 1), at the default [distill] learn_lr.
# Writes runs/learned/<cell>/ and results/learned/summary.md (init -> final τ, λ and the probe
# accuracy of each cell, read from metrics.json), and copies each cell's log.csv (the
# trajectories), metrics.json and config.ini into results/learned/<cell>/.
# Usage (repository root, after a build): bash results/learned/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
learn=(--set loss.temperature=learn --set solver.lambda=learn)
for ipc in 1 10; do
  "$build/clpdd" run experiments/quickstart.ini --quiet --force --output runs/learned/ipc$ipc-fixed --set distill.ipc=$ipc
  "$build/clpdd" run experiments/quickstart.ini --quiet --force --output runs/learned/ipc$ipc-learn-noprior \
    --set distill.ipc=$ipc "${learn[@]}" --set distill.learn_prior=0
  "$build/clpdd" run experiments/quickstart.ini --quiet --force --output runs/learned/ipc$ipc-learn-prior1 \
    --set distill.ipc=$ipc "${learn[@]}" --set distill.learn_prior=1
done
/usr/bin/python3 results/learned/summarise.py runs/learned > results/learned/summary.md
# each cell's trajectories (log.csv), metrics.json and config.ini (+ config-fixed.ini when learned)
for d in runs/learned/*/; do
  c=results/learned/$(basename "$d")
  mkdir -p "$c"
  cp "$d"/log.csv "$d"/metrics.json "$d"/config.ini "$c"/
  [ ! -f "$d"/config-fixed.ini ] || cp "$d"/config-fixed.ini "$c"/
done
{ echo "command: bash results/learned/run.sh $build"; echo "machine: $(nproc) cores"; date -u; } > results/learned/RUN.txt
