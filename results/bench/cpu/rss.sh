#!/usr/bin/env bash
# Max RSS and wall of `clpdd check` and of the quickstart run, CUDA-enabled builds before and after
# the CUDA backend became a module (results/bench/cpu/rss.md). Interleaved rounds; each quickstart
# with a fresh feature cache (so it extracts, as a first run does).
# usage: rss.sh BEFORE_BUILD AFTER_BUILD [OFF_BUILD] [ROUNDS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../../.." && pwd)
rounds=${4:-2}
builds=("before=$1" "after=$2")
[ -n "${3:-}" ] && builds+=("cuda-off=$3")
measure() { # label build what args...
  local label=$1 b=$2 what=$3; shift 3
  local t; t=$(mktemp)
  /usr/bin/time -v "$b/clpdd" "$@" > /dev/null 2> "$t"
  printf '%s %s rss_kb=%s wall=%s\n' "$label" "$what" \
    "$(awk -F': ' '/Maximum resident/ {print $2}' "$t")" "$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$t")"
  rm -f "$t"
}
for r in $(seq "$rounds"); do
  for entry in "${builds[@]}"; do
    label=${entry%%=*} b=${entry#*=}
    measure "$label" "$b" check check "$src/experiments/quickstart.ini"
    cache=$(mktemp -d) out=$(mktemp -d)
    CLPDD_CACHE_DIR=$cache measure "$label" "$b" quickstart run "$src/experiments/quickstart.ini" --output "$out/qs" --quiet
    echo "$label quickstart sha256 $(sha256sum "$out/qs/distilled.safetensors" | cut -c1-16)"
    rm -rf "$cache" "$out"
  done
done
