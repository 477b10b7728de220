/* CPU reference backend of the clpdd op table: the table itself, memory (plain malloc with
 * byte accounting), elementwise ops, 2-D layout ops, reductions and Adam. The other ops
 * live in ops_cpu_blas.c, ops_cpu_nn.c, ops_cpu_image.c and ops_cpu_random.c.
 * Semantics of every op: core/include/clpdd/ops.h. All ops accept size 0. */
#include "cpu/ops_cpu.h"
#include "cpu/threadpool.h"
#include "io/safetensors.h" /* clpdd_f16_to_f32 */
#include "numerics/pointwise.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int cpu_avx512_kernels(const char *env) {
    const char *e = getenv(env);
    if (e && !strcmp(e, "0")) return 0;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    return !!__builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* ---- memory ----
   Each block is [64-byte header holding the requested size | payload], so the returned
   pointer is 64-byte aligned and free() knows how many bytes to give back. */
#define CPU_ALIGN 64

static atomic_size_t cpu_bytes_in_use;
static atomic_size_t cpu_bytes_peak;

static void *cpu_malloc(size_t bytes) {
    size_t payload = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (payload < bytes || payload > SIZE_MAX - CPU_ALIGN) return NULL; /* overflow */
    void *base = NULL;
    if (posix_memalign(&base, CPU_ALIGN, CPU_ALIGN + payload) != 0) return NULL;
    *(size_t *)base = bytes;
    size_t now = atomic_fetch_add(&cpu_bytes_in_use, bytes) + bytes;
    size_t peak = atomic_load(&cpu_bytes_peak);
    while (now > peak && !atomic_compare_exchange_weak(&cpu_bytes_peak, &peak, now)) {
    }
    return (char *)base + CPU_ALIGN;
}

static void cpu_free(void *p) {
    if (!p) return;
    void *base = (char *)p - CPU_ALIGN;
    atomic_fetch_sub(&cpu_bytes_in_use, *(size_t *)base);
    free(base);
}

static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}
static void cpu_synchronize(void) {}
static size_t cpu_peak_bytes(void) { return atomic_load(&cpu_bytes_peak); }

/* ---- elementwise over n floats ---- */
static void cpu_fill(float *x, float v, size_t n) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static void cpu_scale(float *x, float a, size_t n) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

static void cpu_axpy(float *y, float a, const float *x, size_t n) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void cpu_axpby(float *out, float a, const float *x, float b, const float *y, size_t n) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) out[i] = a * x[i] + b * y[i];
}

static void cpu_mul(float *out, const float *x, const float *y, size_t n) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) out[i] = x[i] * y[i];
}

static void cpu_clamp(float *x, float lo, float hi, size_t n) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) x[i] = fminf(fmaxf(x[i], lo), hi);
}

static void cpu_sigmoid(float *y, const float *x, size_t n) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* ---- 2-D layout ---- */
/* dst (rows, ldd) ← src (rows, lds); lds = 0 broadcasts src's single row */
static void cpu_copy2d(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols) {
    if (rows == 0 || cols == 0) return;
    CLPDD_OMP(omp parallel for if (rows * cols > CLPDD_CPU_PAR_MIN))
    for (size_t r = 0; r < rows; r++) memmove(dst + r * ldd, src + r * lds, cols * sizeof(float));
}

static void cpu_add2d(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols) {
    if (rows == 0 || cols == 0) return;
    CLPDD_OMP(omp parallel for if (rows * cols > CLPDD_CPU_PAR_MIN))
    for (size_t r = 0; r < rows; r++) {
        float *d = dst + r * ldd;
        const float *s = src + r * lds;
        for (size_t c = 0; c < cols; c++) d[c] += s[c];
    }
}

/* out (cols) = beta·out + Σ_r x (rows, cols). beta = 0 overwrites (BLAS convention: out is
   not read, so a NaN there does not survive). */
static void cpu_sum_rows(float *out, const float *x, size_t rows, size_t cols, float beta) {
    enum { CB = 256 }; /* column block: each thread owns whole blocks */
    size_t nblk = (cols + CB - 1) / CB;
    CLPDD_OMP(omp parallel for if (rows * cols > CLPDD_CPU_PAR_MIN))
    for (size_t b = 0; b < nblk; b++) {
        size_t c0 = b * CB, c1 = c0 + CB < cols ? c0 + CB : cols;
        double acc[CB];
        for (size_t c = c0; c < c1; c++) acc[c - c0] = 0.0;
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * cols;
            for (size_t c = c0; c < c1; c++) acc[c - c0] += xr[c];
        }
        for (size_t c = c0; c < c1; c++)
            out[c] = (beta == 0.0f ? 0.0f : beta * out[c]) + (float)acc[c - c0];
    }
}

/* dst (nidx, cols) ← src rows idx[i] */
static void cpu_gather_rows(float *dst, const float *src, const int32_t *idx, size_t nidx, size_t cols) {
    CLPDD_OMP(omp parallel for if (nidx * cols > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < nidx; i++) {
        CLPDD_ASSERT(idx[i] >= 0);
        memcpy(dst + i * cols, src + (size_t)idx[i] * cols, cols * sizeof(float));
    }
}

/* y, x (n, C, HW); scale, shift (C) */
static void cpu_channel_affine(float *y, const float *x, const float *scale, const float *shift, int n,
                               int C, int HW) {
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * HW > CLPDD_CPU_PAR_MIN))
    for (size_t q = 0; q < planes; q++) {
        int c = (int)(q % (size_t)C);
        float a = scale[c], b = shift[c];
        const float *xq = x + q * HW;
        float *yq = y + q * HW;
        for (int i = 0; i < HW; i++) yq[i] = xq[i] * a + b;
    }
}

static void cpu_channel_affine_backward(float *dx, const float *dy, const float *scale, int n, int C,
                                        int HW) {
    size_t planes = (size_t)n * C;
    CLPDD_OMP(omp parallel for if (planes * HW > CLPDD_CPU_PAR_MIN))
    for (size_t q = 0; q < planes; q++) {
        float a = scale[q % (size_t)C];
        for (int i = 0; i < HW; i++) dx[q * HW + i] = dy[q * HW + i] * a;
    }
}

/* ---- reductions (float64 accumulation) ---- */
static double cpu_dot(const float *x, const float *y, size_t n) {
    double s = 0.0;
    CLPDD_OMP(omp parallel for reduction(+ : s) if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)y[i];
    return s;
}

static double cpu_sum(const float *x, size_t n) {
    double s = 0.0;
    CLPDD_OMP(omp parallel for reduction(+ : s) if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) s += (double)x[i];
    return s;
}

static int cpu_all_finite(const float *x, size_t n) {
    int bad = 0;
    CLPDD_OMP(omp parallel for reduction(| : bad) if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return !bad;
}

/* ---- Adam with bias correction and decoupled weight decay (step t ≥ 1) ---- */
static void cpu_adam(float *p, float *m, float *v, const float *g, size_t n, float lr, float b1, float b2,
                     float eps, float wd, int t) {
    CLPDD_ASSERT(t >= 1);
    float bc1 = clpdd_adam_bias_correction(b1, t), bc2 = clpdd_adam_bias_correction(b2, t);
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN))
    for (size_t i = 0; i < n; i++) clpdd_adam1(p + i, m + i, v + i, g[i], lr, b1, b2, eps, wd, bc1, bc2);
}

/* ---- pieces side by side (ABI 1.6) ----
   Each piece on one pool thread with OpenBLAS at one thread; the ops a piece calls find the pool
   busy and run serially on that thread (threadpool.h), so a piece computes what it would alone. */
typedef struct pieces_job {
    void (*fn)(void *ctx, int first, int count, int slot);
    void *ctx;
    int base, extra; /* piece i: base + 1 items for i < extra, else base */
} pieces_job;

static void pieces_range(void *ctx, int begin, int end, int tid) {
    const pieces_job *J = ctx;
    for (int i = begin; i < end; i++)
        J->fn(J->ctx, i * J->base + (i < J->extra ? i : J->extra), J->base + (i < J->extra), tid);
}

static int cpu_pieces_slots(void) { return cpu_pool_threads(); }

static void cpu_pieces_run(int n, int most, void (*fn)(void *ctx, int first, int count, int slot), void *ctx) {
    if (n <= 0) return;
    const int T = cpu_pool_threads();
    if (most <= 0 || most > n) most = n;
    int count = (n + most - 1) / most;
    count = (count + T - 1) / T * T; /* whole rounds of the threads: m = 100, 2 threads, ≤ 16 → 8 of 12–13 */
    if (count > n) count = n;
    pieces_job J = {fn, ctx, n / count, n % count}; /* sizes differ by at most one, none above most */
    cpu_blas_serial_begin();
    cpu_parallel_for_tid(count, 1, pieces_range, &J);
    cpu_blas_serial_end();
}

/* ---- the table ---- */
/* OpenBLAS has no tf32 / bf16 sgemm: whatever is asked, the products stay fp32, and the
   answer says so (callers report the precision they got) */
static clpdd_precision cpu_set_precision(clpdd_precision p) {
    (void)p;
    return CLPDD_PRECISION_FP32;
}
/* what cpu_set_precision(p) gives, without calling it */
static clpdd_precision cpu_precision_supported(clpdd_precision p) {
    (void)p;
    return CLPDD_PRECISION_FP32;
}

static void cpu_gather_rows_f16(float *dst, const uint16_t *src, const int32_t *idx, size_t nidx, size_t cols) {
    for (size_t i = 0; i < nidx; i++) {
        const uint16_t *row = src + (size_t)idx[i] * cols;
        for (size_t c = 0; c < cols; c++) dst[i * cols + c] = clpdd_f16_to_f32(row[c]);
    }
}

static const clpdd_ops cpu_ops = {
    /* .name = */ "cpu",
    /* .is_device = */ 0,
    /* .malloc = */ cpu_malloc,
    /* .free = */ cpu_free,
    /* .to_device = */ cpu_memcpy,
    /* .to_host = */ cpu_memcpy,
    /* .copy = */ cpu_memcpy,
    /* .synchronize = */ cpu_synchronize,
    /* .peak_bytes = */ cpu_peak_bytes,
    /* .fill = */ cpu_fill,
    /* .scale = */ cpu_scale,
    /* .axpy = */ cpu_axpy,
    /* .axpby = */ cpu_axpby,
    /* .mul = */ cpu_mul,
    /* .clamp = */ cpu_clamp,
    /* .sigmoid = */ cpu_sigmoid,
    /* .copy2d = */ cpu_copy2d,
    /* .add2d = */ cpu_add2d,
    /* .sum_rows = */ cpu_sum_rows,
    /* .gather_rows = */ cpu_gather_rows,
    /* .channel_affine = */ cpu_channel_affine,
    /* .channel_affine_backward = */ cpu_channel_affine_backward,
    /* .dot = */ cpu_dot,
    /* .sum = */ cpu_sum,
    /* .all_finite = */ cpu_all_finite,
    /* .gemm = */ cpu_gemm,
    /* .gemm_batched = */ cpu_gemm_batched,
    /* .syrk = */ cpu_syrk,
    /* .potrf = */ cpu_potrf,
    /* .potrs = */ cpu_potrs,
    /* .relu = */ cpu_relu,
    /* .relu_backward = */ cpu_relu_backward,
    /* .gelu = */ cpu_gelu,
    /* .gelu_backward = */ cpu_gelu_backward,
    /* .softmax_rows = */ cpu_softmax_rows,
    /* .softmax_rows_backward = */ cpu_softmax_rows_backward,
    /* .cross_entropy = */ cpu_cross_entropy,
    /* .onehot = */ cpu_onehot,
    /* .argmax_rows = */ cpu_argmax_rows,
    /* .layernorm = */ cpu_layernorm,
    /* .layernorm_backward = */ cpu_layernorm_backward,
    /* .attention = */ cpu_attention,
    /* .attention_backward = */ cpu_attention_backward,
    /* .patchify = */ cpu_patchify,
    /* .unpatchify = */ cpu_unpatchify,
    /* .im2col = */ cpu_im2col,
    /* .col2im = */ cpu_col2im,
    /* .global_avgpool = */ cpu_global_avgpool,
    /* .global_avgpool_backward = */ cpu_global_avgpool_backward,
    /* .maxpool = */ cpu_maxpool,
    /* .maxpool_backward = */ cpu_maxpool_backward,
    /* .resize_bilinear = */ cpu_resize_bilinear,
    /* .resize_bilinear_backward = */ cpu_resize_bilinear_backward,
    /* .rand_uniform = */ cpu_rand_uniform,
    /* .rand_normal = */ cpu_rand_normal,
    /* .adam = */ cpu_adam,
    /* ---- transformer extras (ABI 1.1; designated so that the order of the blocks below
       the ABI 1.0 table does not matter) ---- */
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .swiglu_backward = cpu_swiglu_backward,
    /* ---- augmentation (ABI 1.1): ops_cpu_augment.c ---- */
    .crop_resize_bilinear = cpu_crop_resize_bilinear,
    .crop_resize_bilinear_backward = cpu_crop_resize_bilinear_backward,
    /* ---- convolution (ABI 1.2): ops_cpu_conv.c ---- */
    .conv2d = cpu_conv2d,
    .conv2d_backward = cpu_conv2d_backward,
    /* ---- fused attention (ABI 1.3): ops_cpu_attention_fused.c ---- */
    .attention_fused = cpu_attention_fused,
    .attention_fused_backward = cpu_attention_fused_backward,
    /* ---- precision (ABI 1.3): the CPU computes in fp32 only ---- */
    .set_precision = cpu_set_precision,
    .gather_rows_f16 = cpu_gather_rows_f16,
    /* ---- the precision query: fp32 whatever is asked ---- */
    .precision_supported = cpu_precision_supported,
    /* ---- pieces side by side (ABI 1.6): the pool ---- */
    .pieces_slots = cpu_pieces_slots,
    .pieces_run = cpu_pieces_run,
};

const clpdd_ops *clpdd_ops_cpu(void) { return &cpu_ops; }
