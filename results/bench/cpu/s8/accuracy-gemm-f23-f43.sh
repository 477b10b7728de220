# quickstart-resnet20 at seeds 0-7 with three convolution arithmetics: gemm (im2col + OpenBLAS, the
# reference path), auto (Winograd F(2,3), the default) and winograd4 (F(4,3)): the distilled set's
# test-split accuracy under the converged probe (L-BFGS, L2 chosen on 1000 validation images).
# Run from the repository root: OUT=/tmp/acc bash results/bench/cpu/s8/accuracy-gemm-f23-f43.sh
set -e
OUT=${OUT:-/tmp/acc}; mkdir -p "$OUT"
for seed in 0 1 2 3 4 5 6 7; do for a in gemm auto winograd4; do
  sed "s/^seed = 0/seed = $seed/" experiments/quickstart-resnet20.ini > "$OUT/q-$seed.ini"
  CLPDD_CONV_ALGO=$a CLPDD_CACHE_DIR="$OUT/cache-$a" ./build/clpdd run "$OUT/q-$seed.ini" --output "$OUT/out-$a-$seed" > "$OUT/log-$a-$seed.txt" 2>&1
  echo "$a seed=$seed test $(grep -o 'test split):   distilled [0-9.]*%' "$OUT/log-$a-$seed.txt" | grep -o '[0-9.]*%')"
done; done
