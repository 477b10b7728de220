#!/bin/bash
# Interleaved variants of libclpdd at one m (two threads, wall ms/step), from the h-vit worktree root:
#   bash results/bench/cpu/vit-s7/variants.sh M ROUNDS NAME=LIBDIR[+VAR=VALUE...]... > LOG
# each NAME runs /tmp/vit-base's bench and plugins with LD_LIBRARY_PATH=LIBDIR (and the environment
# VAR=VALUE), one short run per round and name, back to back, so that the machine's load moves all alike.
set -u
export CLPDD_MODEL_PATH=/work/shared/models
M=$1; R=$2; shift 2
S=30; [ "$M" = 100 ] && S=10
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) m=$M steps=$S: $*"
for r in $(seq 1 "$R"); do
    for v in "$@"; do
        spec=${v#*=}; lib=${spec%%+*}; envs=""; [ "$spec" != "$lib" ] && envs=$(echo "${spec#*+}" | tr '+' ' ')
        env $envs LD_LIBRARY_PATH=$lib CLPDD_PLUGIN_PATH=/tmp/vit-base/plugins /tmp/vit-base/clpdd-bench-step --backbones mnist-vit \
            --m "$M" --torch none --steps $S --rounds 1 2>&1 | grep "^| mnist" |
            awk -F'|' -v n="${v%%=*}" -v r=$r '{printf "round %s %-6s m=%s ms/step %s\n", r, n, $3, $4}' | tr -s ' '
    done
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
