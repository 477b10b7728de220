#!/bin/bash
# side-by-side timing: native vit vs torchscript (libtorch default threads, threads = 1) on the same
# weights (mnist-vit), interleaved so that the other jobs on the machine load each alike.
cd /work/wt/torch22
NOEVAL="--set eval.baseline_random=false --set eval.baseline_centroids=false --set eval.baseline_full=false"
uptime
for rep in 1 2; do
  for cfg in "vit experiments/quickstart.ini" "ts experiments/torchscript-mnist-vit.ini" "ts1 experiments/torchscript-mnist-vit.ini --set backbone.threads=1"; do
    set -- $cfg; tag=$1; shift
    # ms per CLP-DD step: 100 steps, features from the warm cache
    CLPDD_CACHE_DIR=/tmp/ts22/cache ./build/clpdd run "$@" --set distill.steps=100 $NOEVAL --output /tmp/ts22/time-$tag-steps-$rep --force --quiet > /dev/null 2>&1
    # features per second: an empty cache, 2000 training + 10000 test images, 1 step
    rm -rf /tmp/ts22/cache-$tag-$rep
    CLPDD_CACHE_DIR=/tmp/ts22/cache-$tag-$rep ./build/clpdd run "$@" --set data.train_limit=2000 --set data.val_size=100 --set distill.steps=1 $NOEVAL --output /tmp/ts22/time-$tag-feat-$rep --force --quiet > /dev/null 2>&1
    rm -rf /tmp/ts22/cache-$tag-$rep
    uptime
  done
done
echo TIMINGDONE
