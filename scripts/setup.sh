#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a built clpdd: installs the build and
# runtime packages (when run as root or with sudo), configures and builds into ./build.
#   bash scripts/setup.sh            # Release build, CUDA backend when nvcc is found
#   CLPDD_CUDA=OFF bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libxxhash-dev libcriterion-dev libopenblas-dev liblapacke-dev
          zlib1g-dev libpng-dev liblbfgs-dev libturbojpeg0-dev dataset-fashion-mnist gnuplot-nox
          libxsmm-dev libtorch-dev)  # optional, used when found: libxsmm-dev the CPU small products,
                                     # libtorch-dev the torchscript backbone
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCLPDD_CUDA="${CLPDD_CUDA:-AUTO}"
cmake --build build -j "$jobs"
echo
echo "setup: built ./build/clpdd and its plugins (./build/plugins)."
echo "       next: ./build/clpdd run experiments/quickstart.ini   (tests: ctest --test-dir build --output-on-failure)"
