/* CPU backend: activations, row softmax, cross-entropy, one-hot/argmax and layernorm
 * (multi-head attention is in ops_cpu_attention.c). Forward ops write (=); backward ops write
 * activation gradients (=) and accumulate parameter gradients (+=, layernorm dgamma/dbeta).
 * Row reductions accumulate in float64; the per-element maths is float32. */
#include "cpu/ops_cpu.h"
#include "cpu/threadpool.h"
#include "numerics/pointwise.h"

#include <math.h>

/* ---- activations (dx may alias dy) ---- */
/* The ReLUs run on the pool in blocks of RELU_BLOCK elements: on a ResNet's step they are the
   largest elementwise passes left outside the fused conv epilogue (a serial relu_backward was
   ~7 % of the resnet20 step at m = 10, on the critical path). Each element is computed alone,
   so the result is the serial one bit for bit. */
enum { RELU_BLOCK = 16384 };
typedef struct relu_job {
    float *out;
    const float *a, *b; /* relu: x, NULL; backward: dy, x */
    size_t n;
} relu_job;

static void relu_range(void *ctx, int begin, int end) {
    const relu_job *j = ctx;
    size_t lo = (size_t)begin * RELU_BLOCK, hi = (size_t)end * RELU_BLOCK < j->n ? (size_t)end * RELU_BLOCK : j->n;
    float *out = j->out; /* out may alias a (in place) */
    const float *a = j->a, *b = j->b;
    if (!b) {
        for (size_t i = lo; i < hi; i++) out[i] = a[i] > 0.0f ? a[i] : 0.0f;
        return;
    }
    /* both loads unconditional, so GCC if-converts and vectorises the select (a load under the
       mask's sign was a mispredicted branch per element: ~9 % of resnet20's one-thread step) */
    for (size_t i = lo; i < hi; i++) {
        const float dy = a[i], x = b[i];
        out[i] = x > 0.0f ? dy : 0.0f;
    }
}

static void relu_run(float *out, const float *a, const float *b, size_t n) {
    relu_job j = {out, a, b, n};
    size_t blocks = (n + RELU_BLOCK - 1) / RELU_BLOCK;
    if (n > CLPDD_CPU_PAR_MIN && blocks < (size_t)1 << 30) cpu_parallel_for((int)blocks, relu_range, &j);
    else relu_range(&j, 0, (int)blocks);
}

void cpu_relu(float *y, const float *x, size_t n) { relu_run(y, x, NULL, n); }

void cpu_relu_backward(float *dx, const float *dy, const float *x, size_t n) { relu_run(dx, dy, x, n); }

/* the per-element GELU maths: numerics/pointwise.h, shared with the CUDA backend */
void cpu_gelu(float *y, const float *x, size_t n, clpdd_gelu_kind kind) {
    CLPDD_ASSERT((unsigned)kind < CLPDD_GELU_COUNT);
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN / 8))
    for (size_t i = 0; i < n; i++) y[i] = clpdd_gelu1(x[i], kind);
}

void cpu_gelu_backward(float *dx, const float *dy, const float *x, size_t n, clpdd_gelu_kind kind) {
    CLPDD_ASSERT((unsigned)kind < CLPDD_GELU_COUNT);
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN / 8))
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * clpdd_gelu1_grad(x[i], kind);
}

/* ---- rows ---- */
/* one row: y (cols) = softmax(scale·x); y may alias x */
static void softmax_row(float *y, const float *x, int cols, float scale) {
    float mx = -INFINITY;
    for (int c = 0; c < cols; c++) mx = fmaxf(mx, scale * x[c]);
    double s = 0.0;
    for (int c = 0; c < cols; c++) {
        float e = expf(scale * x[c] - mx);
        y[c] = e;
        s += e;
    }
    float inv = (float)(1.0 / s);
    for (int c = 0; c < cols; c++) y[c] *= inv;
}

/* y, x (rows, cols) */
void cpu_softmax_rows(float *y, const float *x, int rows, int cols, float scale) {
    CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN / 4))
    for (int r = 0; r < rows; r++) softmax_row(y + (size_t)r * cols, x + (size_t)r * cols, cols, scale);
}

/* one row: dx = scale·y ⊙ (dy − Σ dy⊙y); dx may alias dy or y */
static void softmax_row_backward(float *dx, const float *dy, const float *y, int cols, float scale) {
    double s = 0.0;
    for (int c = 0; c < cols; c++) s += (double)dy[c] * y[c];
    float sf = (float)s;
    for (int c = 0; c < cols; c++) dx[c] = scale * y[c] * (dy[c] - sf);
}

/* dx, dy, y (rows, cols) */
void cpu_softmax_rows_backward(float *dx, const float *dy, const float *y, int rows, int cols, float scale) {
    CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN / 4))
    for (int r = 0; r < rows; r++) {
        size_t o = (size_t)r * cols;
        softmax_row_backward(dx + o, dy + o, y + o, cols, scale);
    }
}

/* ---- cross-entropy ----
   Rows go to the pool in blocks of CE_BLOCK (the CLP-DD step's loss: 2048 real rows × 10 classes,
   ~40 000 libm exp on the critical path, ~0.4 ms); each row is computed alone, so the result is the
   serial one bit for bit. */
enum { CE_BLOCK = 64 };
typedef struct ce_job {
    float *loss, *dz;
    const float *z;
    const int32_t *labels;
    int rows, cols;
    float inv_tau, grad_scale;
} ce_job;

static void cross_entropy_row(const ce_job *j, int r) {
    const int cols = j->cols;
    const float inv_tau = j->inv_tau, *zr = j->z + (size_t)r * cols;
    int32_t y = j->labels[r];
    CLPDD_ASSERT(y >= 0 && y < cols);
    float mx = -INFINITY;
    for (int c = 0; c < cols; c++) mx = fmaxf(mx, inv_tau * zr[c]);
    double s = 0.0;
    for (int c = 0; c < cols; c++) s += exp((double)(inv_tau * zr[c] - mx));
    double lse = (double)mx + log(s);
    if (j->loss) j->loss[r] = (float)(lse - (double)(inv_tau * zr[y]));
    if (j->dz) {
        float *dr = j->dz + (size_t)r * cols;
        float g = j->grad_scale * inv_tau;
        for (int c = 0; c < cols; c++) {
            float p = (float)exp((double)(inv_tau * zr[c]) - lse);
            dr[c] = g * (p - (c == y ? 1.0f : 0.0f));
        }
    }
}

/* row blocks [b0, b1) */
static void cross_entropy_range(void *ctx, int b0, int b1) {
    const ce_job *j = ctx;
    const int end = b1 * CE_BLOCK < j->rows ? b1 * CE_BLOCK : j->rows;
    for (int r = b0 * CE_BLOCK; r < end; r++) cross_entropy_row(j, r);
}

/* loss (rows) or NULL, dz (rows, cols) or NULL, z (rows, cols), labels (rows).
   Per row, with s = inv_tau·z and lse = log Σ exp s:  loss = lse − s[y];
   dz = grad_scale·inv_tau·(exp(s − lse) − onehot(y)). dz may alias z (row by row). */
void cpu_cross_entropy(float *loss, float *dz, const float *z, const int32_t *labels, int rows, int cols,
                       float inv_tau, float grad_scale) {
    CLPDD_ASSERT(rows >= 0 && cols >= 0);
    ce_job j = {loss, dz, z, labels, rows, cols, inv_tau, grad_scale};
    const int blocks = (rows + CE_BLOCK - 1) / CE_BLOCK;
    if ((size_t)rows * (size_t)cols > CLPDD_CPU_PAR_MIN / 4)
        cpu_parallel_for(blocks, cross_entropy_range, &j);
    else
        cross_entropy_range(&j, 0, blocks);
}

/* Y (rows, cols) */
void cpu_onehot(float *Y, const int32_t *labels, int rows, int cols, float on, float off) {
    CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN))
    for (int r = 0; r < rows; r++) {
        float *yr = Y + (size_t)r * cols;
        for (int c = 0; c < cols; c++) yr[c] = off;
        int32_t l = labels[r];
        CLPDD_ASSERT(l >= 0 && l < cols);
        yr[l] = on;
    }
}

/* out (rows) = first index of the row maximum of x (rows, cols); NaNs never win */
void cpu_argmax_rows(int32_t *out, const float *x, int rows, int cols) {
    CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN))
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        int best = 0;
        for (int c = 1; c < cols; c++)
            if (xr[c] > xr[best] || (isnan(xr[best]) && !isnan(xr[c]))) best = c;
        out[r] = best;
    }
}

/* ---- layernorm ----
   The row sums are float64 chains in ascending column order (the accuracy the tests ask). One
   chain is latency-bound (a dependent add per column), so LN_GROUP rows run side by side, each
   its own chain in the same order: the results are those of one row at a time, bit for bit, at
   about LN_GROUP× the rate. Blocks of LN_BLOCK rows go to the pool (core/cpu/threadpool.h)
   above LN_PAR_MIN elements: the mini ViT's step at m = 100 (5000 × 64 per call) and at m = 10
   (500 × 64, 25 calls a step: ~17 % of the caller's perf samples while the other thread waited;
   13.75 ms a step with this, 14.35 without, two quiet rounds of results/bench/cpu/vit-s7). */
enum { LN_GROUP = 4, LN_BLOCK = 32, LN_PAR_MIN = 8192 };

typedef struct ln_job {
    float *y, *mean, *rstd;                       /* forward outputs; backward: y = dx */
    const float *x, *gamma, *beta, *dy, *mu, *rs; /* beta: forward; dy, mu, rs: backward */
    int rows, cols;
    float eps;
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

/* blocks [b0, b1) of LN_BLOCK rows */
static void layernorm_range(void *ctx, int b0, int b1) {
    const ln_job *j = ctx;
    size_t r = (size_t)b0 * LN_BLOCK, end = (size_t)b1 * LN_BLOCK < (size_t)j->rows ? (size_t)b1 * LN_BLOCK : (size_t)j->rows;
    for (; r + LN_GROUP <= end; r += LN_GROUP) layernorm_group(LN_GROUP, j, r);
    for (; r < end; r++) layernorm_group(1, j, r);
}

/* the pool for calls above LN_PAR_MIN elements, else the caller alone */
static void ln_run(const ln_job *j, cpu_range_fn fn) {
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
    ln_job j = {y, mean, rstd, x, gamma, beta, NULL, NULL, NULL, rows, cols, eps};
    ln_run(&j, layernorm_range);
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

static void layernorm_backward_range(void *ctx, int b0, int b1) {
    const ln_job *j = ctx;
    size_t r = (size_t)b0 * LN_BLOCK, end = (size_t)b1 * LN_BLOCK < (size_t)j->rows ? (size_t)b1 * LN_BLOCK : (size_t)j->rows;
    for (; r + LN_GROUP <= end; r += LN_GROUP) layernorm_backward_group(LN_GROUP, j, r);
    for (; r < end; r++) layernorm_backward_group(1, j, r);
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
    ln_job j = {dx, NULL, NULL, x, gamma, NULL, dy, mean, rstd, rows, cols, 0.0f};
    ln_run(&j, layernorm_backward_range);
}
