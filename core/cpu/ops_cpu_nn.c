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

/* loss (rows) or NULL, dz (rows, cols) or NULL, z (rows, cols), labels (rows).
   Per row, with s = inv_tau·z and lse = log Σ exp s:  loss = lse − s[y];
   dz = grad_scale·inv_tau·(exp(s − lse) − onehot(y)). dz may alias z. */
void cpu_cross_entropy(float *loss, float *dz, const float *z, const int32_t *labels, int rows, int cols,
                       float inv_tau, float grad_scale) {
    CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN / 4))
    for (int r = 0; r < rows; r++) {
        const float *zr = z + (size_t)r * cols;
        int32_t y = labels[r];
        CLPDD_ASSERT(y >= 0 && y < cols);
        float mx = -INFINITY;
        for (int c = 0; c < cols; c++) mx = fmaxf(mx, inv_tau * zr[c]);
        double s = 0.0;
        for (int c = 0; c < cols; c++) s += exp((double)(inv_tau * zr[c] - mx));
        double lse = (double)mx + log(s);
        if (loss) loss[r] = (float)(lse - (double)(inv_tau * zr[y]));
        if (dz) {
            float *dr = dz + (size_t)r * cols;
            float g = grad_scale * inv_tau;
            for (int c = 0; c < cols; c++) {
                float p = (float)exp((double)(inv_tau * zr[c]) - lse);
                dr[c] = g * (p - (c == y ? 1.0f : 0.0f));
            }
        }
    }
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

/* y, x (rows, cols); gamma, beta (cols); mean, rstd (rows) or NULL.
   rstd = 1/√(var + eps), var the biased (1/cols) variance. y may alias x. */
void cpu_layernorm(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                   int rows, int cols, float eps) {
    CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN / 4))
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        double s = 0.0;
        for (int c = 0; c < cols; c++) s += xr[c];
        double mu = cols > 0 ? s / cols : 0.0;
        double v = 0.0;
        for (int c = 0; c < cols; c++) v += ((double)xr[c] - mu) * ((double)xr[c] - mu);
        v = cols > 0 ? v / cols : 0.0;
        float m = (float)mu, rs = (float)(1.0 / sqrt(v + (double)eps));
        for (int c = 0; c < cols; c++) yr[c] = (xr[c] - m) * rs * gamma[c] + beta[c];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
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
    CLPDD_OMP(omp parallel for if ((size_t)rows * cols > CLPDD_CPU_PAR_MIN / 4))
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
        float *dxr = dx + (size_t)r * cols;
        float m = mean[r], rs = rstd[r];
        double sg = 0.0, sgx = 0.0;
        for (int c = 0; c < cols; c++) {
            float g = gamma[c] * dyr[c];
            sg += g;
            sgx += (double)g * ((xr[c] - m) * rs);
        }
        float mg = (float)(sg / cols), mgx = (float)(sgx / cols);
        for (int c = 0; c < cols; c++) {
            float xh = (xr[c] - m) * rs;
            dxr[c] = rs * (gamma[c] * dyr[c] - mg - xh * mgx);
        }
    }
}
