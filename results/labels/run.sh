#!/bin/sh
# Learned labels ([distill] labels = learn, docs/design.md §1) on the quickstart: the one-hot run
# and labels_lr 0.01 … 0.2 at IPC 1 and 10 (300 steps, CPU; each run is deterministic).
# From the repository root, after building: bash results/labels/run.sh
# Writes the runs under runs/labels/, results/labels/summary.md and results/labels/metrics/.
set -e
out=runs/labels
for ipc in 1 10; do
    ./build/clpdd run experiments/quickstart.ini --output "$out/ipc$ipc-onehot" --force --quiet --set distill.ipc=$ipc
    for lr in 0.01 0.02 0.05 0.1 0.2; do
        ./build/clpdd run experiments/quickstart.ini --output "$out/ipc$ipc-lr$lr" --force --quiet \
            --set distill.labels=learn --set distill.labels_lr=$lr --set distill.ipc=$ipc
    done
done
/usr/bin/python3 results/labels/summarize.py "$out" > results/labels/summary.md
mkdir -p results/labels/metrics
for d in "$out"/*; do cp "$d/metrics.json" "results/labels/metrics/$(basename "$d").json"; done
