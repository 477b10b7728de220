/* CPU backend: layernorm and its backward.
 *
 * The row sums are float64 chains in ascending column order (the accuracy the tests ask); the
 * per-element maths is float32. One chain is latency-bound (a dependent add per column), so
 * several rows run side by side, each its own chain in the same order: the results are those of
 * one row at a time, bit for bit, at several times the rate.
 *   - Portable: LN_GROUP rows in plain C. GCC keeps each row's chain scalar, so this is bound by
 *     the loads and conversions (~3 instructions an element): wider groups did not help.
 *   - AVX-512 (cols a multiple of 8, $CLPDD_LN_AVX512 = 0 turns it off): 8 rows, one per float64
 *     lane. Each 8 × 8 block of floats is transposed in registers, so a column of 8 rows is one
 *     vector: one conversion and one add per 8 elements. The element-wise float parts are the
 *     same expressions, vectorised along the row, without FMA contraction (optimize attribute
 *     below; the portable code is compiled without FMA). tests/test_ops_cpu.c layernorm_avx512
 *     checks it bit for bit against the portable one.
 * Blocks of LN_BLOCK rows go to the pool (core/cpu/threadpool.h) above LN_PAR_MIN elements: the
 * mini ViT's step at m = 100 (5000 × 64 per call). Measured, the mini ViT's CLP-DD step at m = 10
 * (2 cores, pieces side by side): layernorm and its backward 12 % of the samples with the portable
 * groups (results/bench/cpu/s8/). */
#include "cpu/ops_cpu.h"
#include "cpu/threadpool.h"

#include <math.h>
#include <pthread.h>

enum { LN_GROUP = 4, LN_BLOCK = 32, LN_PAR_MIN = 8192 };

typedef struct ln_job {
    float *y, *mean, *rstd;                       /* forward outputs; backward: y = dx */
    const float *x, *gamma, *beta, *dy, *mu, *rs; /* beta: forward; dy, mu, rs: backward */
    int rows, cols;
    float eps;
    int wide; /* the AVX-512 kernels apply */
} ln_job;

/* rows [0, G) of x, y (rows cols apart), mean, rstd; G ≤ LN_GROUP, constant after inlining */
static inline __attribute__((always_inline)) void layernorm_group(int G, const ln_job *j, size_t r0) {
    const int cols = j->cols;
    const float *x = j->x + r0 * (size_t)cols;
    float *y = j->y + r0 * (size_t)cols;
    double s[LN_GROUP] = {0}, v[LN_GROUP] = {0}, mu[LN_GROUP];
    for (int c = 0; c < cols; c++)
        for (int i = 0; i < G; i++) s[i] += x[(size_t)i * cols + c];
    for (int i = 0; i < G; i++) mu[i] = cols > 0 ? s[i] / cols : 0.0;
    for (int c = 0; c < cols; c++)
        for (int i = 0; i < G; i++) {
            double d = (double)x[(size_t)i * cols + c] - mu[i];
            v[i] += d * d;
        }
    for (int i = 0; i < G; i++) {
        double var = cols > 0 ? v[i] / cols : 0.0;
        float m = (float)mu[i], rs = (float)(1.0 / sqrt(var + (double)j->eps));
        const float *xr = x + (size_t)i * cols;
        float *yr = y + (size_t)i * cols;
        for (int c = 0; c < cols; c++) yr[c] = (xr[c] - m) * rs * j->gamma[c] + j->beta[c];
        if (j->mean) j->mean[r0 + i] = m;
        if (j->rstd) j->rstd[r0 + i] = rs;
    }
}

/* dx rows [0, G) from r0 (see cpu_layernorm_backward); G ≤ LN_GROUP, constant after inlining */
static inline __attribute__((always_inline)) void layernorm_backward_group(int G, const ln_job *j, size_t r0) {
    const int cols = j->cols;
    const float *x = j->x + r0 * (size_t)cols, *dy = j->dy + r0 * (size_t)cols, *gamma = j->gamma;
    float *dx = j->y + r0 * (size_t)cols;
    float m[LN_GROUP], rs[LN_GROUP];
    double sg[LN_GROUP] = {0}, sgx[LN_GROUP] = {0};
    for (int i = 0; i < G; i++) m[i] = j->mu[r0 + i], rs[i] = j->rs[r0 + i];
    for (int c = 0; c < cols; c++)
        for (int i = 0; i < G; i++) {
            float g = gamma[c] * dy[(size_t)i * cols + c];
            sg[i] += g;
            sgx[i] += (double)g * ((x[(size_t)i * cols + c] - m[i]) * rs[i]);
        }
    for (int i = 0; i < G; i++) {
        const float *xr = x + (size_t)i * cols, *dyr = dy + (size_t)i * cols;
        float *dxr = dx + (size_t)i * cols;
        float mg = (float)(sg[i] / cols), mgx = (float)(sgx[i] / cols);
        for (int c = 0; c < cols; c++) {
            float xh = (xr[c] - m[i]) * rs[i];
            dxr[c] = rs[i] * (gamma[c] * dyr[c] - mg - xh * mgx);
        }
    }
}

/* ---- AVX-512: 8 rows, one per float64 lane ---- */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define LN_WIDE_BUILT 1
#define LN_TARGET __attribute__((target("avx512f"), optimize("fp-contract=off")))

/* t[k] = column k of the 8 × 8 block whose row i is r[i] (lane i = row i) */
LN_TARGET static inline void ln_transpose8(const __m256 r[8], __m256 t[8]) {
    const __m256 a0 = _mm256_unpacklo_ps(r[0], r[1]), a1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 a2 = _mm256_unpacklo_ps(r[2], r[3]), a3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 a4 = _mm256_unpacklo_ps(r[4], r[5]), a5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 a6 = _mm256_unpacklo_ps(r[6], r[7]), a7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 b0 = _mm256_shuffle_ps(a0, a2, 0x44), b1 = _mm256_shuffle_ps(a0, a2, 0xEE);
    const __m256 b2 = _mm256_shuffle_ps(a1, a3, 0x44), b3 = _mm256_shuffle_ps(a1, a3, 0xEE);
    const __m256 b4 = _mm256_shuffle_ps(a4, a6, 0x44), b5 = _mm256_shuffle_ps(a4, a6, 0xEE);
    const __m256 b6 = _mm256_shuffle_ps(a5, a7, 0x44), b7 = _mm256_shuffle_ps(a5, a7, 0xEE);
    t[0] = _mm256_permute2f128_ps(b0, b4, 0x20), t[1] = _mm256_permute2f128_ps(b1, b5, 0x20);
    t[2] = _mm256_permute2f128_ps(b2, b6, 0x20), t[3] = _mm256_permute2f128_ps(b3, b7, 0x20);
    t[4] = _mm256_permute2f128_ps(b0, b4, 0x31), t[5] = _mm256_permute2f128_ps(b1, b5, 0x31);
    t[6] = _mm256_permute2f128_ps(b2, b6, 0x31), t[7] = _mm256_permute2f128_ps(b3, b7, 0x31);
}

/* columns c0 … c0 + 7 of the 8 rows at p (rows ld apart), transposed */
LN_TARGET static inline void ln_columns8(const float *p, size_t ld, int c0, __m256 t[8]) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(p + (size_t)i * ld + c0);
    ln_transpose8(r, t);
}

LN_TARGET static void layernorm_rows8(const ln_job *j, size_t r0) {
    const int cols = j->cols;
    const float *x = j->x + r0 * (size_t)cols;
    __m512d s = _mm512_setzero_pd(), v = _mm512_setzero_pd();
    __m256 t[8];
    for (int c0 = 0; c0 < cols; c0 += 8) {
        ln_columns8(x, (size_t)cols, c0, t);
        for (int k = 0; k < 8; k++) s = _mm512_add_pd(s, _mm512_cvtps_pd(t[k]));
    }
    const __m512d n = _mm512_set1_pd((double)cols), mu = _mm512_div_pd(s, n);
    for (int c0 = 0; c0 < cols; c0 += 8) {
        ln_columns8(x, (size_t)cols, c0, t);
        for (int k = 0; k < 8; k++) {
            const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(t[k]), mu);
            v = _mm512_add_pd(v, _mm512_mul_pd(d, d));
        }
    }
    const __m512d var = _mm512_div_pd(v, n);
    const __m256 m8 = _mm512_cvtpd_ps(mu);
    const __m512d root = _mm512_sqrt_pd(_mm512_add_pd(var, _mm512_set1_pd((double)j->eps)));
    const __m256 rs8 = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0), root));
    float m[8], rs[8];
    _mm256_storeu_ps(m, m8), _mm256_storeu_ps(rs, rs8);
    for (int i = 0; i < 8; i++) {
        const float *xr = x + (size_t)i * cols;
        float *yr = j->y + (r0 + i) * (size_t)cols;
        const __m256 mi = _mm256_set1_ps(m[i]), ri = _mm256_set1_ps(rs[i]);
        for (int c = 0; c < cols; c += 8) {
            const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), mi), ri);
            const __m256 scaled = _mm256_mul_ps(xh, _mm256_loadu_ps(j->gamma + c));
            _mm256_storeu_ps(yr + c, _mm256_add_ps(scaled, _mm256_loadu_ps(j->beta + c)));
        }
        if (j->mean) j->mean[r0 + i] = m[i];
        if (j->rstd) j->rstd[r0 + i] = rs[i];
    }
}

LN_TARGET static void layernorm_backward_rows8(const ln_job *j, size_t r0) {
    const int cols = j->cols;
    const size_t ld = (size_t)cols;
    const float *x = j->x + r0 * ld, *dy = j->dy + r0 * ld, *gamma = j->gamma;
    const __m256 m8 = _mm256_loadu_ps(j->mu + r0), rs8 = _mm256_loadu_ps(j->rs + r0);
    __m512d sg = _mm512_setzero_pd(), sgx = _mm512_setzero_pd();
    for (int c0 = 0; c0 < cols; c0 += 8) {
        __m256 x8[8], d8[8], gt[8], xt[8];
        ln_columns8(x, ld, c0, x8);  /* x8[k]: column c0 + k of the 8 rows */
        ln_columns8(dy, ld, c0, d8);
        for (int k = 0; k < 8; k++) {
            const __m256 g = _mm256_mul_ps(_mm256_set1_ps(gamma[c0 + k]), d8[k]);
            const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(x8[k], m8), rs8);
            gt[k] = g, xt[k] = xh;
        }
        for (int k = 0; k < 8; k++) {
            const __m512d g = _mm512_cvtps_pd(gt[k]);
            sg = _mm512_add_pd(sg, g);
            sgx = _mm512_add_pd(sgx, _mm512_mul_pd(g, _mm512_cvtps_pd(xt[k])));
        }
    }
    const __m512d n = _mm512_set1_pd((double)cols);
    float mg[8], mgx[8], m[8], rs[8];
    _mm256_storeu_ps(mg, _mm512_cvtpd_ps(_mm512_div_pd(sg, n)));
    _mm256_storeu_ps(mgx, _mm512_cvtpd_ps(_mm512_div_pd(sgx, n)));
    _mm256_storeu_ps(m, m8), _mm256_storeu_ps(rs, rs8);
    for (int i = 0; i < 8; i++) {
        const float *xr = x + (size_t)i * ld, *dyr = dy + (size_t)i * ld;
        float *dxr = j->y + (r0 + i) * ld;
        const __m256 mi = _mm256_set1_ps(m[i]), ri = _mm256_set1_ps(rs[i]);
        const __m256 mgi = _mm256_set1_ps(mg[i]), mgxi = _mm256_set1_ps(mgx[i]);
        for (int c = 0; c < cols; c += 8) {
            const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), mi), ri);
            const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(gamma + c), _mm256_loadu_ps(dyr + c));
            const __m256 inner = _mm256_sub_ps(_mm256_sub_ps(g, mgi), _mm256_mul_ps(xh, mgxi));
            _mm256_storeu_ps(dxr + c, _mm256_mul_ps(ri, inner));
        }
    }
}
#else
#define LN_WIDE_BUILT 0
static void layernorm_rows8(const ln_job *j, size_t r0) { (void)j, (void)r0; }
static void layernorm_backward_rows8(const ln_job *j, size_t r0) { (void)j, (void)r0; }
#endif

static int g_ln_avx512;
static pthread_once_t g_ln_once = PTHREAD_ONCE_INIT;
static void ln_env(void) { g_ln_avx512 = LN_WIDE_BUILT && cpu_avx512_kernels("CLPDD_LN_AVX512"); }

/* blocks [b0, b1) of LN_BLOCK rows */
static void layernorm_range(void *ctx, int b0, int b1) {
    const ln_job *j = ctx;
    size_t r = (size_t)b0 * LN_BLOCK, end = (size_t)b1 * LN_BLOCK < (size_t)j->rows ? (size_t)b1 * LN_BLOCK : (size_t)j->rows;
    if (j->wide)
        for (; r + 8 <= end; r += 8) layernorm_rows8(j, r);
    for (; r + LN_GROUP <= end; r += LN_GROUP) layernorm_group(LN_GROUP, j, r);
    for (; r < end; r++) layernorm_group(1, j, r);
}

static void layernorm_backward_range(void *ctx, int b0, int b1) {
    const ln_job *j = ctx;
    size_t r = (size_t)b0 * LN_BLOCK, end = (size_t)b1 * LN_BLOCK < (size_t)j->rows ? (size_t)b1 * LN_BLOCK : (size_t)j->rows;
    if (j->wide)
        for (; r + 8 <= end; r += 8) layernorm_backward_rows8(j, r);
    for (; r + LN_GROUP <= end; r += LN_GROUP) layernorm_backward_group(LN_GROUP, j, r);
    for (; r < end; r++) layernorm_backward_group(1, j, r);
}

/* the pool for calls above LN_PAR_MIN elements, else the caller alone */
static void ln_run(ln_job *j, cpu_range_fn fn) {
    pthread_once(&g_ln_once, ln_env);
    j->wide = g_ln_avx512 && j->cols > 0 && j->cols % 8 == 0;
    const int blocks = (j->rows + LN_BLOCK - 1) / LN_BLOCK;
    if ((size_t)j->rows * (size_t)j->cols > LN_PAR_MIN)
        cpu_parallel_for(blocks, fn, (void *)j);
    else
        fn((void *)j, 0, blocks);
}

/* y, x (rows, cols); gamma, beta (cols); mean, rstd (rows) or NULL.
   rstd = 1/√(var + eps), var the biased (1/cols) variance. y may alias x. */
void cpu_layernorm(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                   int rows, int cols, float eps) {
    CLPDD_ASSERT(rows >= 0 && cols >= 0);
    ln_job j = {y, mean, rstd, x, gamma, beta, NULL, NULL, NULL, rows, cols, eps, 0};
    ln_run(&j, layernorm_range);
}

/* dx, dy, x (rows, cols); dgamma, dbeta (cols) +=, either may be NULL; mean, rstd (rows).
   With x̂ = (x − μ)·rstd and g = gamma ⊙ dy:  dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)).
   dgamma/dbeta are summed first (column blocks, one thread per block), so dx may alias dy. */
void cpu_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *mean, const float *rstd, const float *gamma, int rows, int cols) {
    if (dgamma || dbeta) {
        enum { CB = 128 };
        int nblk = (cols + CB - 1) / CB;
        CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN / 4))
        for (int b = 0; b < nblk; b++) {
            int c0 = b * CB, c1 = c0 + CB < cols ? c0 + CB : cols;
            double dg[CB], db[CB];
            for (int c = 0; c < c1 - c0; c++) dg[c] = db[c] = 0.0;
            for (int r = 0; r < rows; r++) {
                const float *xr = x + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
                float m = mean[r], rs = rstd[r];
                for (int c = c0; c < c1; c++) {
                    dg[c - c0] += (double)dyr[c] * ((xr[c] - m) * rs);
                    db[c - c0] += dyr[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dgamma) dgamma[c] += (float)dg[c - c0];
                if (dbeta) dbeta[c] += (float)db[c - c0];
            }
        }
    }
    ln_job j = {dx, NULL, NULL, x, gamma, NULL, dy, mean, rstd, rows, cols, 0.0f, 0};
    ln_run(&j, layernorm_backward_range);
}
