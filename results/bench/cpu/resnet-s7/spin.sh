cd /work/main
for r in 1 2; do for v in "0 1" "100 0" "100 1"; do set -- $v
echo "$COND spin=$1 yield=$2 $(CLPDD_CPU_SPIN_US=$1 CLPDD_CPU_SPIN_YIELD=$2 CLPDD_MODEL_PATH=/work/shared/models build/bench/clpdd-bench-step --backbones resnet20,mnist-vit --m 10,100 --torch none --steps 10 --rounds 1 2>&1 | awk -F'|' '/^\| (resnet20|mnist-vit)/ {printf "%s m=%s %s  ", $2, $3+0, $4+0}')"
done; done
