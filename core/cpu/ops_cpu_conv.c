/* CPU backend: the 2-D convolution ops of ABI 1.2 (conv2d, conv2d_backward; semantics in
 * core/include/clpdd/ops.h, clpdd_conv2d_desc).
 *
 * Built for the ResNets' shapes (3×3, stride 1/2, 16–512 channels, 10–1000 images): instead of
 * one small GEMM per image (cout × P × K with cout = 16 runs OpenBLAS at a fraction of its rate),
 * g images are unfolded side by side into one column matrix and multiplied by one GEMM:
 *
 *   forward:  col (K, g·P) = im2col of images i0 … i0+g−1, image j in columns [j·P, (j+1)·P)
 *             T (cout, g·P) = w (cout, K) · col                       (one sgemm, OpenBLAS threads)
 *             y[i0+j, o, :] = relu(T[o, j·P : (j+1)·P] + bias[o] + shortcut)   (one fused pass)
 *   backward: T (cout, g·P) = (dy ⊙ [mask > 0]) regrouped per channel  (one pass)
 *             col (K, g·P) = wᵀ · T                                     (one sgemm)
 *             dx[i0+j] = col2im(col[:, j·P : (j+1)·P])                  (one pass, "=")
 *   backward, stride 1 (when `work` also holds a flipped copy of w): per image, the input
 *             gradient as a forward convolution of dy ⊙ mask (im2col → one sgemm into dx, no
 *             col2im; see "backward of a stride-1 convolution" below). It sums the same terms
 *             in another order: equal to the col2im form to rounding, not bit for bit.
 *
 * Two schedules, the same arithmetic (every output element is computed by one thread in a fixed
 * order and sgemm splits no K sum, so the results do not depend on the schedule or the thread
 * count; the forward's group sizes depend on n, the threads and the cache budget, never on how
 * much more `work` there is than they need):
 *   per-thread groups (the default when the pool has ≥ 2 threads and there are ≥ 2 groups): the
 *     pool's threads take whole image groups, each doing im2col → a single-threaded sgemm →
 *     epilogue in its own slice of `work`, sized so that the group's columns are still in that
 *     core's L2 when sgemm packs them. OpenBLAS is set to one thread for the call, so there is
 *     no hand-off to OpenBLAS's workers per (small) GEMM; at m = 10 those hand-offs and the
 *     workers' sched_yield spinning while the pool ran the passes were ~40 % of the step.
 *   shared groups (one pool thread, one group, or $CLPDD_CONV_SCHEDULE=shared): one group at a
 *     time, the passes on the pool and the GEMM on OpenBLAS's threads.
 * With g = 1 the GEMM's (cout, P) product is already the image's NCHW plane block, so it is
 * written straight into y (forward) and the unmasked dy is multiplied in place (backward).
 * Winograd F(2×2, 3×3) (ops_cpu_winograd.c) takes the 3×3 stride-1 pad-1 convolutions, forward
 * and input gradient, when one image's tiles fit in CLPDD_CONV2D_WORK(d, 1) (a rule on the shape
 * alone) and $CLPDD_CONV_ALGO allows: gemm (never), winograd (wherever it applies), auto (the
 * default: 16–128 channels, where it was measured faster), winograd4 (as winograd, with F(4×4,
 * 3×3), ops_cpu_winograd4.c, where that applies: opt-in, no faster in the resnet20 step and ~4×
 * the rounding, see cpu_wino_tile). It agrees with these GEMMs to rounding (~2e-7 relative per
 * layer; F(4,3) ~1e-6), not bit for bit.
 * Legend: K = cin·k·k, P = OH·OW, g images per GEMM.
 * The readable reference (per-image im2col + GEMM, ops->im2col / gemm_batched) stays in the
 * resnet plugin as `conv = reference` and is what these ops are tested against. */
#include "cpu/ops_cpu.h"
#include "cpu/cpu_arithmetic.h"
#include "cpu/ops_cpu_conv_direct.h"
#include "cpu/ops_cpu_winograd.h"
#include "cpu/threadpool.h"

#include <cblas.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* the passes around the GEMM are plain loops over contiguous rows: let GCC vectorise them for
   AVX-512 / AVX2 at run time, as ops_cpu_attention.c does (only the loop width changes: every
   element is computed by the same float operations, so the clones agree bit for bit) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CONV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CONV_CLONES
#endif

/* ---- im2col of g images into one (K, g·P) matrix ---- */

typedef struct conv_job {
    const clpdd_conv2d_desc *d;
    float *col;        /* (K, g·P) */
    float *T;          /* (cout, g·P) */
    float *y;          /* forward: (g, cout, P) of this group; backward: dx (g, cin, H, W) */
    const float *x;    /* forward: (g, cin, H, W); backward: dy (g, cout, P) */
    const float *mask; /* backward: (g, cout, P) or NULL */
    const float *bias;
    const float *res;  /* (g, res_c, res_H, res_W) or NULL */
    int g;
} conv_job;

/* one row (c, ky, kx) of one image: col[r, j·P + oy·OW + ox] = x[j, c, oy·s − p + ky, ox·s − p + kx] */
static void im2col_row(float *dst, const float *xc, int H, int W, int ky, int kx, int s, int p, int OH, int OW) {
    /* ox range whose ix = ox·s − p + kx lies inside [0, W) */
    int ox0 = 0, ox1 = OW;
    while (ox0 < OW && ox0 * s - p + kx < 0) ox0++;
    while (ox1 > ox0 && (ox1 - 1) * s - p + kx >= W) ox1--;
    for (int oy = 0; oy < OH; oy++) {
        float *d = dst + (size_t)oy * OW;
        int iy = oy * s - p + ky;
        if (iy < 0 || iy >= H) {
            memset(d, 0, sizeof(float) * (size_t)OW);
            continue;
        }
        const float *xr = xc + (size_t)iy * W; /* ix = ox·s + kx − p ≥ 0 for ox ≥ ox0 */
        for (int ox = 0; ox < ox0; ox++) d[ox] = 0.0f;
        if (s == 1)
            memcpy(d + ox0, xr + (ox0 + kx - p), sizeof(float) * (size_t)(ox1 - ox0));
        else
            for (int ox = ox0; ox < ox1; ox++) d[ox] = xr[ox * s + kx - p];
        for (int ox = ox1; ox < OW; ox++) d[ox] = 0.0f;
    }
}

/* items: (row r, image j) pairs, r-major */
CONV_CLONES static void im2col_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int k = d->k, P = d->OH * d->OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int r = it / J->g, j = it % J->g;
        int c = r / (k * k), ky = (r / k) % k, kx = r % k;
        const float *xc = J->x + ((size_t)j * d->cin + c) * d->H * d->W;
        im2col_row(J->col + (size_t)r * gP + (size_t)j * P, xc, d->H, d->W, ky, kx, d->stride, d->pad, d->OH, d->OW);
    }
}

/* items: output planes (image j, channel o) */
CONV_CLONES static void epilogue_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int P = d->OH * d->OW, OW = d->OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int j = it / d->cout, o = it % d->cout;
        const float *t = J->T + (size_t)o * gP + (size_t)j * P; /* may be yo itself (g = 1) */
        float *yo = J->y + ((size_t)j * d->cout + o) * P;
        const float b = J->bias ? J->bias[o] : 0.0f;
        for (int q = 0; q < P; q++) yo[q] = t[q] + b;
        int c = o - d->res_pad;
        if (J->res && c >= 0 && c < d->res_c) {
            const float *rc = J->res + ((size_t)j * d->res_c + c) * d->res_H * d->res_W;
            const int rs = d->res_stride;
            if (rs == 1 && d->res_W == OW) {
                for (int q = 0; q < P; q++) yo[q] += rc[q];
            } else {
                for (int oy = 0; oy < d->OH; oy++) {
                    const float *rr = rc + (size_t)oy * rs * d->res_W;
                    float *yr = yo + (size_t)oy * OW;
                    for (int ox = 0; ox < OW; ox++) yr[ox] += rr[(size_t)ox * rs];
                }
            }
        }
        if (d->relu)
            for (int q = 0; q < P; q++) yo[q] = yo[q] > 0.0f ? yo[q] : 0.0f;
    }
}

/* a pass over `floats` elements on the pool, or in the caller when waking the pool costs more
   than the pass (CLPDD_CPU_PAR_MIN, as the other CPU ops) */
static void conv_for(int items, size_t floats, cpu_range_fn fn, void *ctx) {
    if (floats > CLPDD_CPU_PAR_MIN)
        cpu_parallel_for(items, fn, ctx);
    else if (items > 0)
        fn(ctx, 0, items);
}

static void check_desc(const clpdd_conv2d_desc *d) {
    CLPDD_ASSERT(d->n >= 0 && d->cin > 0 && d->cout > 0 && d->k > 0 && d->stride > 0 && d->pad >= 0);
    CLPDD_ASSERT(d->OH == (d->H + 2 * d->pad - d->k) / d->stride + 1 && d->OW == (d->W + 2 * d->pad - d->k) / d->stride + 1);
    CLPDD_ASSERT(d->OH > 0 && d->OW > 0);
}

/* ---- the schedule: images per GEMM and who runs the groups ----
 *
 * A group's columns and product, CLPDD_CONV2D_WORK(d, g) floats, are kept within a per-thread
 * cache budget (1 MiB of the 2 MiB L2 per core measured best: the columns must still be in cache
 * when sgemm packs them; $CLPDD_CONV_GROUP_KB overrides it for measuring), and never above what
 * `work` holds (ops.h: g ≤ work_floats / CLPDD_CONV2D_WORK(d, 1)). */

typedef struct conv_sched {
    int G;      /* images per group (the last one may have fewer) */
    int groups; /* ⌈n / G⌉ */
    int slots;  /* > 1: per-thread groups, slot t's scratch at work + t·slice; 1: shared groups */
    size_t slice;
} conv_sched;

static int env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

static size_t g_budget_floats; /* per-thread group budget, floats (0 until read) */
static int g_shared_only;      /* $CLPDD_CONV_SCHEDULE=shared */
static int g_bwd_transposed;   /* stride-1 backward as a forward conv ($CLPDD_CONV_BWD=col2im: off) */
static int g_algo; /* $CLPDD_CONV_ALGO: 0 gemm, 1 winograd (wherever it applies), 2 auto (the default) */
static int g_wino_tile; /* 0: F(2,3); 4: $CLPDD_CONV_ALGO = winograd4, F(4,3) where it applies (cpu_wino_tile); auto: wino_tile_for */
static pthread_once_t g_env_once = PTHREAD_ONCE_INIT;
static void read_env(void) {
    int kb = env_int("CLPDD_CONV_GROUP_KB", 1024);
    g_budget_floats = (size_t)(kb > 0 ? kb : 1024) << 8;
    const char *s = getenv("CLPDD_CONV_SCHEDULE");
    g_shared_only = s && !strcmp(s, "shared");
    const char *b = getenv("CLPDD_CONV_BWD");
    g_bwd_transposed = !(b && !strcmp(b, "col2im"));
    const char *a = getenv("CLPDD_CONV_ALGO");
    const int w4 = a && !strcmp(a, "winograd4");
    g_algo = a && !strcmp(a, "gemm") ? 0 : a && (!strcmp(a, "winograd") || w4) ? 1 : 2;
    g_wino_tile = w4 ? 4 : 0;
    if (a && *a && g_algo == 2 && strcmp(a, "auto")) /* a typo would otherwise run auto unseen */
        fprintf(stderr, "warning: CLPDD_CONV_ALGO = \"%s\" is not gemm, winograd, winograd4 or auto; using auto\n", a);
}

/* "auto-f43" names auto since F(4,3) joined it: feature caches written under the old "auto" (F(2,3)
   only) are not served to it */
const char *cpu_conv_algo_name(void) {
    pthread_once(&g_env_once, read_env);
    return g_algo == 0 ? "gemm" : g_algo == 2 ? "auto-f43" : g_wino_tile == 4 ? "winograd4" : "winograd";
}

/* The Winograd tile of a convolution use_winograd took: $CLPDD_CONV_ALGO's, or for auto F(4,3)
   where it applies and no side has more than AUTO_F43_MAX_CH channels, else F(2,3)
   (cpu_wino_tile). F(4,3)'s 36 products per 16 outputs against F(2,3)'s 64 make the resnet20 step
   0.80× F(2,3)'s at m = 100 (2 threads, 51.9 against 63.6–65.3 ms; results/bench/cpu/s8/). Its
   rounding is worse per layer, 1.0–1.3e-6 normalised against float64 at 16 and 32 channels
   (F(2,3) 1.6–2.0e-7, test_ops_cpu conv2d_winograd4), but resnet20's features stay within 1e-6
   of float64: 6.0e-7, against 2.5e-7 with F(2,3) and 2.3e-7 with the GEMM path
   (test_resnet fd_directions_real_resnet20*), and over eight seeds of quickstart-resnet20 the
   distilled accuracy does not tell the three apart (results/bench/cpu/s8/accuracy-gemm-f23-f43.log).
   Wider layers (torchvision's 64–128) are not measured, so they keep F(2,3);
   $CLPDD_CONV_ALGO = winograd gives F(2,3) everywhere, as auto did before. */
#define AUTO_F43_MAX_CH 32
static int wino_tile_for(const clpdd_conv2d_desc *d) {
    if (g_algo == 2) return d->cin <= AUTO_F43_MAX_CH && d->cout <= AUTO_F43_MAX_CH ? 4 : 0;
    return g_wino_tile;
}

static long g_wino_runs, g_wino4_runs; /* conv2d / conv2d_backward calls Winograd computed, of them F(4,3) */
long clpdd_cpu_conv_winograd_runs(void) { return __atomic_load_n(&g_wino_runs, __ATOMIC_RELAXED); }
long clpdd_cpu_conv_winograd4_runs(void) { return __atomic_load_n(&g_wino4_runs, __ATOMIC_RELAXED); }
static int counted(int tile) { /* tile: cpu_wino_conv2d's result, 0 when it did not run */
    if (tile) __atomic_add_fetch(&g_wino_runs, 1, __ATOMIC_RELAXED);
    if (tile == 4) __atomic_add_fetch(&g_wino4_runs, 1, __ATOMIC_RELAXED);
    return tile;
}

/* Winograd F(2×2, 3×3) (ops_cpu_winograd.c) for this stride-1, pad-1, 3×3 convolution? */
static int use_winograd(const clpdd_conv2d_desc *d) {
    pthread_once(&g_env_once, read_env);
    if (!cpu_wino_applies(d) || g_algo == 0) return 0;
    if (g_algo == 1) return 1;
    /* auto: where it was measured faster (resnet20 step, m = 10: 15.2 vs 22.7 ms; per conv, 10
       images, fwd + bwd: 16ch 32² 0.55×, 32ch 16² 0.53×, 64ch 8² 0.62×, 64ch 56² and 128ch 28²
       ~0.55× the GEMM path's time): 16 to 128 channels */
    const int lo = d->cin < d->cout ? d->cin : d->cout, hi = d->cin < d->cout ? d->cout : d->cin;
    return lo >= 16 && hi <= 128;
}

static conv_sched conv_schedule(const clpdd_conv2d_desc *d, size_t work_floats) {
    pthread_once(&g_env_once, read_env);
    const size_t one = CLPDD_CONV2D_WORK(d, 1);
    CLPDD_ASSERT(work_floats >= one && "conv2d: work smaller than CLPDD_CONV2D_WORK(d, 1)");
    const int n = d->n;
    size_t cap = g_budget_floats / one; /* images per group the cache budget allows, ≥ 1 */
    if (cap < 1) cap = 1;
    conv_sched S = {0, 0, 1, 0};
    int T = g_shared_only ? 1 : cpu_pool_threads();
    if ((size_t)T > work_floats / one) T = (int)(work_floats / one);
    if (T > n) T = n;
    if (T >= 2) {
        /* per-thread groups: the group size with the shortest makespan ⌈groups / T⌉·g in images
           (ties: the larger group, fewer and larger GEMMs) */
        size_t gmax = work_floats / ((size_t)T * one);
        if (gmax > cap) gmax = cap;
        if (gmax > (size_t)n) gmax = (size_t)n;
        int best = cpu_pool_best_group(n, T, (int)gmax);
        S.G = best, S.groups = (n + best - 1) / best;
        if (S.groups >= 2) {
            S.slots = T < S.groups ? T : S.groups;
            S.slice = CLPDD_CONV2D_WORK(d, best);
            return S;
        }
    }
    size_t g = work_floats / one;
    if (g > cap) g = cap;
    if (g > (size_t)n) g = (size_t)n;
    S.G = (int)g, S.groups = (n + S.G - 1) / S.G, S.slots = 1, S.slice = work_floats;
    return S;
}

/* C (M, N) = op(A) · B, row-major, beta = 0: the GEMM of both schedules, through the column-major
   interface (Cᵀ = Bᵀ·op(A)ᵀ, the very arguments OpenBLAS's row-major entry passes on). Not
   row-major on purpose: OpenBLAS 0.3.21 (AVX-512) sends row-major NoTrans·NoTrans, beta 0
   products below a size that depends on its thread count to sgemm_direct, which rounds
   differently; the group size (hence the GEMM size) depends on n, and features must not depend
   on how a batch is split (test_resnet: inference in pieces = taped features, bit for bit). */
static void conv_gemm(int transA, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                      int ldc) {
    cblas_sgemm(CblasColMajor, CblasNoTrans, transA ? CblasTrans : CblasNoTrans, N, M, K, 1.0f, B, ldb, A, lda, 0.0f,
                C, ldc);
}

/* the arguments of one call and its schedule */
typedef struct conv_call {
    const clpdd_conv2d_desc *d;
    conv_sched S;
    float *work;
    float *out;        /* forward: y; backward: dx */
    const float *in;   /* forward: x; backward: dy */
    const float *mask; /* backward */
    const float *bias, *res, *w; /* forward (w both) */
    const float *wt;   /* backward, transposed: w flipped and transposed (cin, cout·k·k) */
    clpdd_conv2d_desc dt; /* backward, transposed: the convolution that computes dx from dy */
    size_t tslice;     /* backward, transposed: scratch floats per slot */
} conv_call;

/* group gi in scratch `scr`; par: passes on the pool (shared groups) or in this thread */
static void fwd_group(const conv_call *C, int gi, float *scr, int par) {
    const clpdd_conv2d_desc *d = C->d;
    const int K = d->cin * d->k * d->k, P = d->OH * d->OW, i0 = gi * C->S.G;
    const int g = d->n - i0 < C->S.G ? d->n - i0 : C->S.G;
    const size_t ys = (size_t)d->cout * P;
    const size_t rs = C->res ? (size_t)d->res_c * d->res_H * d->res_W : 0;
    float *y = C->out + (size_t)i0 * ys;
    conv_job J = {d, scr, g == 1 ? y : scr + (size_t)K * g * P, y, C->in + (size_t)i0 * d->cin * d->H * d->W, NULL,
                  C->bias, C->res ? C->res + (size_t)i0 * rs : NULL, g};
    if (par)
        conv_for(K * g, (size_t)K * g * P, im2col_range, &J);
    else
        im2col_range(&J, 0, K * g);
    conv_gemm(0, d->cout, g * P, K, C->w, K, J.col, g * P, J.T, g * P);
    if (par)
        conv_for(d->cout * g, (size_t)d->cout * g * P, epilogue_range, &J);
    else
        epilogue_range(&J, 0, d->cout * g);
}

static void fwd_groups(void *ctx, int begin, int end, int tid) {
    const conv_call *C = ctx;
    for (int gi = begin; gi < end; gi++) fwd_group(C, gi, C->work + (size_t)tid * C->S.slice, 0);
}

void cpu_conv2d(float *y, float *work, size_t work_floats, const float *x, const float *w, const float *bias,
                const float *res, const clpdd_conv2d_desc *d) {
    check_desc(d);
    if (d->n == 0) return;
    if (res)
        CLPDD_ASSERT(d->res_c > 0 && d->res_pad >= 0 && d->res_pad + d->res_c <= d->cout && d->res_stride > 0 &&
                     (d->OH - 1) * d->res_stride < d->res_H && (d->OW - 1) * d->res_stride < d->res_W);
    if (use_winograd(d) && counted(cpu_wino_conv2d(y, work, work_floats, x, w, bias, res, d, wino_tile_for(d)))) return;
    if (cpu_conv_direct_applies(d, res, work_floats)) { /* the same floats, without the columns */
        cpu_conv_direct(y, work, x, w, bias, d);
        return;
    }
    conv_call C = {d, conv_schedule(d, work_floats), work, y, x, NULL, bias, res, w, NULL, {0}, 0};
    if (C.S.slots > 1) {
        cpu_blas_serial_begin();
        cpu_parallel_for_tid(C.S.groups, 1, fwd_groups, &C);
        cpu_blas_serial_end();
    } else {
        for (int gi = 0; gi < C.S.groups; gi++) fwd_group(&C, gi, work, 1);
    }
}

/* ---- backward ---- */

/* items: planes (image j, channel o) of dy: T[o, j·P + q] = dy[j, o, q]·[mask > 0] */
CONV_CLONES static void regroup_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int P = d->OH * d->OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int j = it / d->cout, o = it % d->cout;
        const size_t src = ((size_t)j * d->cout + o) * P;
        float *restrict t = J->T + (size_t)o * gP + (size_t)j * P;
        if (J->mask) {
            const float *restrict dy = J->x + src, *restrict m = J->mask + src;
            for (int q = 0; q < P; q++) t[q] = m[q] > 0.0f ? dy[q] : 0.0f;
        } else {
            memcpy(t, J->x + src, sizeof(float) * (size_t)P);
        }
    }
}

/* items: planes (image j, input channel c): dx[j, c] = Σ over (ky, kx) of the col entries reading it */
CONV_CLONES static void col2im_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const clpdd_conv2d_desc *d = J->d;
    const int k = d->k, s = d->stride, p = d->pad, H = d->H, W = d->W, OH = d->OH, OW = d->OW, P = OH * OW;
    const size_t gP = (size_t)J->g * P;
    for (int it = begin; it < end; it++) {
        int j = it / d->cin, c = it % d->cin;
        float *dx = J->y + ((size_t)j * d->cin + c) * H * W;
        memset(dx, 0, sizeof(float) * (size_t)H * W);
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *cr = J->col + (size_t)((c * k + ky) * k + kx) * gP + (size_t)j * P;
                int ox0 = 0, ox1 = OW;
                while (ox0 < OW && ox0 * s - p + kx < 0) ox0++;
                while (ox1 > ox0 && (ox1 - 1) * s - p + kx >= W) ox1--;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * s - p + ky;
                    if (iy < 0 || iy >= H) continue;
                    float *xr = dx + (size_t)iy * W;
                    const float *cc = cr + (size_t)oy * OW;
                    if (s == 1) {
                        float *restrict xo = xr + (ox0 + kx - p);
                        const float *restrict co = cc + ox0;
                        for (int q = 0; q < ox1 - ox0; q++) xo[q] += co[q];
                    } else {
                        for (int ox = ox0; ox < ox1; ox++) xr[ox * s + kx - p] += cc[ox];
                    }
                }
            }
    }
}

/* ---- backward of a stride-1 convolution as a forward one ----
 *
 * With stride 1, dx[c, iy, ix] = Σ over (o, ky, kx) of w[o, c, ky, kx]·dy[o, iy + p − ky, ix + p − kx]
 * is itself a stride-1 convolution of dy with wt[c, o, ky', kx'] = w[o, c, k−1−ky', k−1−kx'] and
 * padding k−1−p (dt below). So per image: im2col of dy ⊙ mask (cout·k², H·W) → one GEMM
 * (cin × cout·k²)·(cout·k² × H·W) straight into dx. No col2im scatter (9 read-add passes over
 * the columns per input pixel), and the GEMM's inner dimension is cout·k² instead of cout (16 in
 * the ResNets' first stage, where the (cin·k² × P) product was mostly stores). The sums are the
 * same terms in another order: dx agrees with the col2im form to rounding, not bit for bit.
 * Used when `work` holds wt (cin·cout·k² floats, at its end) and one image's scratch per slot:
 * cout·k²·H·W columns + cout·OH·OW masked dy (≤ CLPDD_CONV2D_WORK(d, 1) when cout ≤ cin). */

/* items: rows (c, o·k² + t) of wt, from w (cout, cin·k²) */
static void flip_range(void *ctx, int begin, int end) {
    const conv_call *C = ctx;
    const clpdd_conv2d_desc *d = C->d;
    const int kk = d->k * d->k;
    float *wt = (float *)C->wt;
    for (int c = begin; c < end; c++)
        for (int o = 0; o < d->cout; o++) {
            const float *src = C->w + ((size_t)o * d->cin + c) * kk;
            float *dst = wt + ((size_t)c * d->cout + o) * kk;
            for (int t = 0; t < kk; t++) dst[t] = src[kk - 1 - t];
        }
}

/* items: planes (image j, channel o): y[j, o] = x[j, o] ⊙ [mask > 0] */
CONV_CLONES static void mask_range(void *ctx, int begin, int end) {
    const conv_job *J = ctx;
    const size_t P = (size_t)J->d->H * J->d->W; /* J->d = dt: its input is dy */
    for (int it = begin; it < end; it++) {
        const float *restrict dy = J->x + (size_t)it * P, *restrict m = J->mask + (size_t)it * P;
        float *restrict t = J->y + (size_t)it * P;
        for (size_t q = 0; q < P; q++) t[q] = m[q] > 0.0f ? dy[q] : 0.0f;
    }
}

/* images of group gi, one at a time, in scratch `scr` (C->tslice floats) */
static void bwd_group_t(const conv_call *C, int gi, float *scr, int par) {
    const clpdd_conv2d_desc *d = C->d, *dt = &C->dt;
    const int Kt = dt->cin * dt->k * dt->k, HW = dt->OH * dt->OW, OP = dt->H * dt->W;
    const int i0 = gi * C->S.G, g = d->n - i0 < C->S.G ? d->n - i0 : C->S.G;
    float *col = scr, *md = scr + (size_t)Kt * HW;
    for (int j = i0; j < i0 + g; j++) {
        const float *dy = C->in + (size_t)j * d->cout * OP;
        if (C->mask) { /* dy ⊙ mask, then the columns of that */
            conv_job M = {dt, NULL, NULL, md, dy, C->mask + (size_t)j * d->cout * OP, NULL, NULL, 1};
            if (par)
                conv_for(d->cout, (size_t)d->cout * OP, mask_range, &M);
            else
                mask_range(&M, 0, d->cout);
            dy = md;
        }
        conv_job J = {dt, col, NULL, NULL, dy, NULL, NULL, NULL, 1};
        if (par)
            conv_for(Kt, (size_t)Kt * HW, im2col_range, &J);
        else
            im2col_range(&J, 0, Kt);
        conv_gemm(0, d->cin, HW, Kt, C->wt, Kt, col, HW, C->out + (size_t)j * d->cin * HW, HW);
    }
}

static void bwd_groups_t(void *ctx, int begin, int end, int tid) {
    const conv_call *C = ctx;
    for (int gi = begin; gi < end; gi++) bwd_group_t(C, gi, C->work + (size_t)tid * C->tslice, 0);
}

/* the transposed form's scratch per slot, and whether it applies and fits (see above) */
static size_t bwd_transposed_slice(const conv_call *C) {
    const clpdd_conv2d_desc *d = C->d;
    return (size_t)d->cout * d->k * d->k * d->H * d->W + (C->mask ? (size_t)d->cout * d->OH * d->OW : 0);
}
static int bwd_transposed_fits(const conv_call *C, size_t work_floats) {
    const clpdd_conv2d_desc *d = C->d;
    const size_t wtf = (size_t)d->cin * d->cout * d->k * d->k;
    return d->stride == 1 && d->pad <= d->k - 1 && wtf + (size_t)C->S.slots * bwd_transposed_slice(C) <= work_floats;
}

/* set up the transposed form if it applies and fits; 0: use im2col's adjoint */
static int bwd_transposed(conv_call *C, size_t work_floats) {
    const clpdd_conv2d_desc *d = C->d;
    if (!bwd_transposed_fits(C, work_floats)) return 0;
    clpdd_conv2d_desc dt = {d->n, d->cout, d->OH, d->OW, d->cin, d->k, 1, d->k - 1 - d->pad, d->H, d->W,
                            0, 0, 0, 0, 0, 0};
    const size_t wtf = (size_t)d->cin * d->cout * d->k * d->k, tslice = bwd_transposed_slice(C);
    C->dt = dt, C->tslice = tslice, C->wt = C->work + work_floats - wtf;
    conv_for(d->cin, wtf, flip_range, C);
    return 1;
}

static void bwd_group(const conv_call *C, int gi, float *scr, int par) {
    const clpdd_conv2d_desc *d = C->d;
    const int K = d->cin * d->k * d->k, P = d->OH * d->OW, i0 = gi * C->S.G;
    const int g = d->n - i0 < C->S.G ? d->n - i0 : C->S.G;
    const size_t xs = (size_t)d->cin * d->H * d->W, ys = (size_t)d->cout * P;
    const float *dy = C->in + (size_t)i0 * ys;
    conv_job J = {d, scr, scr + (size_t)K * g * P, C->out + (size_t)i0 * xs, dy,
                  C->mask ? C->mask + (size_t)i0 * ys : NULL, NULL, NULL, g};
    const float *T = J.T;
    if (g == 1 && !J.mask) /* dy is already the (cout, P) matrix */
        T = dy;
    else if (par)
        conv_for(d->cout * g, (size_t)d->cout * g * P, regroup_range, &J);
    else
        regroup_range(&J, 0, d->cout * g);
    conv_gemm(1, K, g * P, d->cout, C->w, K, T, g * P, J.col, g * P);
    if (par)
        conv_for(d->cin * g, (size_t)K * g * P, col2im_range, &J);
    else
        col2im_range(&J, 0, d->cin * g);
}

static void bwd_groups(void *ctx, int begin, int end, int tid) {
    const conv_call *C = ctx;
    for (int gi = begin; gi < end; gi++) bwd_group(C, gi, C->work + (size_t)tid * C->S.slice, 0);
}

void cpu_conv2d_backward(float *dx, float *work, size_t work_floats, const float *dy, const float *mask,
                         const float *w, const clpdd_conv2d_desc *d) {
    check_desc(d);
    if (d->n == 0) return;
    if (use_winograd(d) && counted(cpu_wino_conv2d_backward(dx, work, work_floats, dy, mask, w, d, wino_tile_for(d)))) return;
    conv_call C = {d, conv_schedule(d, work_floats), work, dx, dy, mask, NULL, NULL, w, NULL, {0}, 0};
    if (g_bwd_transposed && bwd_transposed_fits(&C, work_floats) && cpu_conv_direct_backward_applies(d)) {
        cpu_conv_direct_backward(dx, dy, mask, w, d); /* the transposed form's floats (ops_cpu_conv_direct.c) */
        return;
    }
    const int tr = g_bwd_transposed && bwd_transposed(&C, work_floats);
    if (C.S.slots > 1) {
        cpu_blas_serial_begin();
        cpu_parallel_for_tid(C.S.groups, 1, tr ? bwd_groups_t : bwd_groups, &C);
        cpu_blas_serial_end();
    } else {
        for (int gi = 0; gi < C.S.groups; gi++) tr ? bwd_group_t(&C, gi, work, 1) : bwd_group(&C, gi, work, 1);
    }
}
