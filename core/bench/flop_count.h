/* A counting view of a device-op table: every op passes straight through to the real table,
 * and the matrix ops add their floating-point operations to a counter. `clpdd bench` runs the
 * step on this view to report FLOPs per step as counted, not as estimated per architecture,
 * whatever the backbone, solver or loss.
 *
 * Counted (2 per multiply-add): gemm 2·M·N·K (× batch), syrk N·(N+1)·K, potrf n³/3, potrs
 * 2·n²·nrhs, conv2d and conv2d_backward 2·n·cout·OH·OW·cin·k², attention 4·n·Hh·T²·hd (q·kᵀ and
 * P·v), attention_backward 8·n·Hh·T²·hd; the fused attention ops count as their materialised
 * twins (the backward's recomputed q·kᵀ is not useful work). Elementwise ops, reductions and
 * copies are not counted: they are bandwidth, not arithmetic. One counter per process; the
 * ops are called from one thread. */
#ifndef CLPDD_FLOP_COUNT_H
#define CLPDD_FLOP_COUNT_H
#include "clpdd/ops.h"

/* the counting view of inner (one view per process: a second call with another inner
   replaces the first) */
const clpdd_ops *clpdd_ops_counting(const clpdd_ops *inner);
void clpdd_flops_reset(void);
/* the rate (GFLOP/s) of an n×n×n gemm on ops at the precision now set: median of reps timed
   products after one warm-up, each synchronised; 0 when the buffers cannot be allocated. The
   benchmarks' "fraction of the GEMM rate" divides by this, measured in the same run. */
double clpdd_gemm_gflops(const clpdd_ops *ops, int n, int reps);
double clpdd_flops(void); /* counted since the last reset */

#endif
