# quickstart-resnet20 at seeds 0, 1, 2 under F(2,3) (auto) and F(4,3) (winograd4): the distilled
# test-split accuracy of the converged probe (L-BFGS). Run from the repository root: OUT=/tmp/acc bash results/bench/cpu/resnet-s7/accuracy-f23-f43.sh
set -e; mkdir -p "${OUT:-/tmp/acc}"
for seed in 0 1 2; do for a in auto winograd4; do
  sed "s/^seed = 0/seed = $seed/" experiments/quickstart-resnet20.ini > ${OUT:-/tmp/acc}/q-$seed.ini
  CLPDD_CONV_ALGO=$a CLPDD_CACHE_DIR=${OUT:-/tmp/acc}/cache-$a ./build/clpdd run ${OUT:-/tmp/acc}/q-$seed.ini --output ${OUT:-/tmp/acc}/out-$a-$seed > ${OUT:-/tmp/acc}/log-$a-$seed.txt 2>&1
  echo "$a seed=$seed test $(grep -o 'test split):   distilled [0-9.]*%' ${OUT:-/tmp/acc}/log-$a-$seed.txt | grep -o '[0-9.]*%')"
done; done
