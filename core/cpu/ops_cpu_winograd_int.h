/* Winograd internals shared by the F(2×2, 3×3) driver (ops_cpu_winograd.c) and the F(4×4, 3×3)
 * transforms (ops_cpu_winograd4.c): the call, one group's job, the tile geometry. */
#ifndef CLPDD_OPS_CPU_WINOGRAD_INT_H
#define CLPDD_OPS_CPU_WINOGRAD_INT_H
#include "cpu/ops_cpu.h"

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define WINO_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WINO_CLONES
#endif

#define WINO4_MAX_Q 512 /* F(4,3): a plane's tiles, ≤ this many: its input planes and output rows live on the stack */
/* the row stride of the 24 input planes ((TH + 1)·TW ≤ 2·TH·TW floats) and of the 16 output rows:
   one cache line over a multiple of 4 KiB, so that the rows read and written together do not all
   map to the same L1 set (36 streams at a 4 KiB stride thrashed it: the plane cut ran 3× slower) */
#define WINO4_MAX_X (2 * WINO4_MAX_Q + 16)
#define WINO4_MAX_O (WINO4_MAX_Q + 16)

typedef struct wino_call {
    const clpdd_conv2d_desc *d;
    int bwd;
    int tile, nxi;    /* outputs per tile side (2: F(2,3), 4: F(4,3)); products (tile + 2)² */
    int ci, co, H, W; /* the convolution computed: ci → co channels, H × W in and out */
    int TH, TW, NT;   /* tiles per image: TH × TW, in NT = ⌈TH·TW / 16⌉·16 columns */
    int G, groups, slots;
    size_t slice; /* scratch floats per slot: nxi·(ci + co)·G·NT */
    float *work, *U;
    const float *w, *in, *mask, *bias, *res;
    float *out;
} wino_call;

/* image img's shortcut plane for output channel o (option A: the channel o − res_pad of the
   block input), NULL where there is none */
static inline const float *wino_shortcut(const wino_call *C, int img, int o) {
    const clpdd_conv2d_desc *d = C->d;
    const int c = o - d->res_pad;
    return C->res && c >= 0 && c < d->res_c ? C->res + ((size_t)img * d->res_c + c) * d->res_H * d->res_W : NULL;
}

typedef struct wino_job {
    const wino_call *C;
    int i0, g;
    float *V, *M;
} wino_job;

/* F(4,3), cpu_range_fn items as the F(2,3) ones: U rows (output channels), input planes (image,
   channel) of a group, output planes of a group */
CPU_FN void wino4_u_range(void *ctx, int begin, int end);
CPU_FN void wino4_in_range(void *ctx, int begin, int end);
CPU_FN void wino4_out_range(void *ctx, int begin, int end);

/* The fused kernels (ops_cpu_winograd_fused.c: F(2,3) and the shared parts; F(4,3) in
   ops_cpu_winograd4_fused.c): whether one computes C on this CPU, the scratch floats per thread,
   and the run (U computed and packed; scratch holds `slots` slots, 1 = serial, else one per pool
   thread) */
CPU_FN int cpu_wino_fused_applies(const wino_call *C);
/* one fused run: items are (image, block of 16 tiles), `blocks` per image; slot floats per thread */
typedef struct wino_fused_job {
    const wino_call *C;
    float *scratch;
    size_t slot;
    int blocks;
} wino_fused_job;
CPU_FN size_t cpu_wino_fused_slot(const wino_call *C);
/* U (nxi × co × ci, row-major per ξ) laid out for the fused kernels: [ξ][o / 16][c][o % 16] */
CPU_FN void cpu_wino_fused_pack(float *packed, const float *U, int nxi, int co, int ci);
CPU_FN void cpu_wino_fused_run(const wino_call *C, float *scratch, int slots);
/* Vb's ξ stride: ci vectors and one more, so that a channel's stores do not share one L1 set */
static inline size_t cpu_wino_vb_stride(int ci) { return (size_t)16 * (ci + 1); }
/* Mb[ξ][k] = Σ_c U[ξ][o0 + k][c] · Vb[ξ][c] for ξ < nxi, k < 16 (16-lane vectors; U packed) */
CPU_FN void cpu_wino_fused_products(const wino_call *C, int o0, const float *Vb, float *Mb);
CPU_FN int cpu_wino4_fused_applies(const wino_call *C);
CPU_FN void cpu_wino4_fused_run(const wino_call *C, float *scratch, int slots);

#endif
