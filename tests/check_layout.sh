#!/usr/bin/env bash
# The layout rules of core/ (docs/design.md, "Layout"), checked on every test run:
#   1. core/ holds stage folders; the only source file directly in it is main.c;
#   2. a stage includes only its own headers and those of the stages below it (STAGES lists
#      them from the bottom up), so there is no circle and nothing runs back up;
#   3. no function in core/ is longer than 100 lines (opening line to closing brace).
# usage: tests/check_layout.sh [SOURCE_DIR]; exit 0 clean, 1 with one line per violation.
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
core=$src/core
STAGES=(util io numerics cpu cuda data plugin config encoder features eval distill bench sweep cli)
MAX_LINES=100
fail=0
complain() { echo "layout: $*"; fail=1; }

declare -A rank
for i in "${!STAGES[@]}"; do rank[${STAGES[$i]}]=$i; done

# 1. nothing but main.c (and CMakeLists.txt) directly in core/
for f in "$core"/*; do
  b=$(basename "$f")
  [ -d "$f" ] && { [ "$b" = include ] || [ -n "${rank[$b]:-}" ] || complain "core/$b/ is not a stage (add it to STAGES in tests/check_layout.sh and docs/design.md)"; continue; }
  case $b in main.c|CMakeLists.txt) ;; *) complain "core/$b: only main.c stands directly in core/; move it into its stage" ;; esac
done

# 2. includes go to the same stage or one below it
while IFS= read -r f; do
  rel=${f#"$core"/}
  stage=${rel%%/*}
  [ "$stage" = main.c ] && continue
  [ -n "${rank[$stage]:-}" ] || continue
  while IFS=: read -r line inc; do
    target=${inc%%/*}
    [ "$target" = "$inc" ] && continue   # a header beside it, or clpdd/ (the public SDK)
    [ "$target" = clpdd ] && continue
    [ -n "${rank[$target]:-}" ] || { complain "core/$rel:$line includes \"$inc\", not in a stage"; continue; }
    if [ "${rank[$target]}" -gt "${rank[$stage]}" ]; then
      complain "core/$rel:$line: $stage/ includes \"$inc\" from $target/, a stage above it"
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include "' "$f" | sed -E 's/^([0-9]+):[^"]*"([^"]*)".*/\1:\2/')
done < <(find "$core" -mindepth 2 -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \) -not -path "$core/include/*" | sort)

# 3. function length: a definition opens at column 0 with '(' and ends its line with '{',
#    and closes with '}' at column 0
while IFS= read -r f; do
  awk -v file="${f#"$src"/}" -v max=$MAX_LINES '
    /^[A-Za-z_].*\(.*\{[[:space:]]*$/ && !/=/ && !/^(typedef|struct|union|enum)[[:space:]].*\{[[:space:]]*$/ { start = NR; name = $0; next }
    /^[A-Za-z_][^;]*\($/ || /^[A-Za-z_][^;]*,[[:space:]]*$/ { if (!start) { pending = NR; pname = $0 } }
    /^[[:space:]].*\)[[:space:]]*\{[[:space:]]*$/ { if (pending && !start) { start = pending; name = pname } }
    /^\}/ { if (start) { n = NR - start + 1; if (n > max) { sub(/\(.*/, "", name); printf "layout: %s:%d: %s is %d lines (at most %d)\n", file, start, name, n, max } }
            start = 0; pending = 0 }
  ' "$f"
done < <(find "$core" -type f \( -name '*.c' -o -name '*.cu' \) -not -path "$core/include/*" | sort) | tee /tmp/check_layout.$$ || true
[ -s /tmp/check_layout.$$ ] && fail=1
rm -f /tmp/check_layout.$$
exit $fail
