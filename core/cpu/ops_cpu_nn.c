/* CPU backend: activations, row softmax, cross-entropy and one-hot/argmax (layernorm is in
 * ops_cpu_layernorm.c, multi-head attention in ops_cpu_attention.c). Forward ops write (=);
 * backward ops write activation gradients (=). Row reductions accumulate in float64; the
 * per-element maths is float32. */
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
