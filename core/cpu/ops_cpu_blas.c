/* CPU backend: BLAS / LAPACK ops through OpenBLAS (cblas) and LAPACKE, row-major, and the small
 * small products through libxsmm when clpdd is built with it (unless $CLPDD_SMALL_GEMM = blas).
 * Degenerate sizes are handled here (BLAS rejects ld < 1 and some builds skip the
 * beta scaling when K = 0): M, N = 0 do nothing; K = 0 gives C = beta·C. As in BLAS,
 * beta = 0 overwrites C without reading it. */
#include "cpu/ops_cpu.h"
#include "cpu/cpu_arithmetic.h"
#include "cpu/threadpool.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef CLPDD_HAVE_XSMM
#include <libxsmm.h>
#endif

/* C (M, N) = beta·C, beta = 0 writing zeros */
static void scale_matrix(float *C, int ldc, int M, int N, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
}

/* ---- small products by libxsmm, the default where built (docs/design.md, "CPU small products") ----
 * The mini ViT's linear layers (NT tokens × 16–768 wide) are narrow products; libxsmm JIT-compiles
 * a kernel for the exact (m, n, k) and runs it on unpacked operands. Alone, one thread, it beats
 * OpenBLAS 0.3.21 at most of the step's call sites (results/bench/cpu/small-gemm.md, 1.00–1.50×);
 * in the mini ViT's step on the quiet 2-core machine, two threads, interleaved, it takes
 * 0.80–0.85× OpenBLAS's time at m = 10 and 0.70–0.85× at m = 100 (results/bench/cpu/
 * step-24-xsmm-interleaved.md; under load, one thread, the two were within 10 %). So it is the
 * default where clpdd is built with libxsmm, and $CLPDD_SMALL_GEMM = blas keeps OpenBLAS (the
 * arithmetic of a build without libxsmm). Winograd's 16 products per tile stay on OpenBLAS
 * (ops_cpu_winograd.c: ~1.6× slower on libxsmm in the step). libxsmm is column-major: the row-major C (M, N) = A (M, K) · B (K, N)
 * is the column-major Cᵀ (N, M) = Bᵀ · Aᵀ with the same memory, so the kernel is
 * (m = N, n = rows, k = K) with B as its first operand. libxsmm 1.17's JIT has no transposed
 * first operand (LIBXSMM_GEMM_FLAG_TRANS_A dispatches NULL; TRANS_B, the second one, is not the
 * one transB needs), so for transB the small B (N, K) is transposed once per call into a (K, N)
 * copy (N·K floats against 2·M·N·K flops) in the calling thread's scratch (below); kept there
 * rather than handed to OpenBLAS, which is 1.06–1.38× slower at these sites (results/bench/cpu/
 * small-gemm.md). Every row of C goes through the one kernel of XSMM_ROWS rows (a partial
 * last block on padded copies): a kernel compiled for fewer rows can order its sums differently,
 * and a row's result must not depend on M or the thread count. It can depend on the row's position
 * in the block at some widths (N = 80 in a check of libxsmm 1.17; not at the ViT's widths). */
#define XSMM_ROWS 64   /* rows of C per kernel call: B (≤ 1024 × 1024) is reused across them */
#define XSMM_MAX 1024  /* N, K limit: the weights of a small layer, not a solver's n × n system */

static int g_small_gemm = 0; /* the libxsmm path, unless $CLPDD_SMALL_GEMM = blas (see above) */
static pthread_once_t g_small_once = PTHREAD_ONCE_INIT;
static void small_gemm_env(void) {
    const char *e = getenv("CLPDD_SMALL_GEMM");
    g_small_gemm = !(e && !strcmp(e, "blas"));
#ifdef CLPDD_HAVE_XSMM
    if (g_small_gemm) libxsmm_init();
#endif
}

#ifdef CLPDD_HAVE_XSMM
/* Ops do not allocate (docs/design.md §4, conventions): the transposed B (the calling thread's) and
   the padded tail block (the thread that runs it) go through a scratch of that thread, grown to the largest size it has needed (at most
   XSMM_MAX² + XSMM_ROWS·2·XSMM_MAX floats, 4.5 MB) and kept; the key's destructor frees it when
   the thread exits (the process's own thread: at exit, by the OS). */
typedef struct xsmm_scratch {
    float *p;
    size_t n; /* floats */
} xsmm_scratch;
static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void xsmm_scratch_free(void *v) {
    xsmm_scratch *s = v;
    free(s->p);
    free(s);
}
static void xsmm_scratch_key(void) { CLPDD_ASSERT(pthread_key_create(&g_scratch_key, xsmm_scratch_free) == 0); }

/* this thread's scratch of slot `slot` (0: B transposed, 1: the tail block), at least n floats;
   NULL when out of memory */
static float *xsmm_scratch_get(int slot, size_t n) {
    pthread_once(&g_scratch_once, xsmm_scratch_key);
    xsmm_scratch *s = pthread_getspecific(g_scratch_key);
    if (!s) {
        if (!(s = calloc(2, sizeof *s))) return NULL;
        if (pthread_setspecific(g_scratch_key, s)) return free(s), NULL;
    }
    if (s[slot].n < n) {
        float *p = realloc(s[slot].p, n * sizeof(float));
        if (!p) return NULL;
        s[slot].p = p, s[slot].n = n;
    }
    return s[slot].p;
}

typedef struct xsmm_job {
    libxsmm_smmfunction k; /* R rows */
    int R, M, K, N, lda, ldc;
    float beta;
    const float *A, *B;
    float *C;
    float *tail; /* the calling thread's scratch for the padded partial block (R·(lda + ldc) floats) */
} xsmm_job;

/* the last M % R rows through the same R-row kernel, on zero-padded copies: a
   kernel JIT-compiled for fewer rows may order its sums differently (measured at some widths), and
   a row's result must not depend on M */
static void xsmm_tail(const xsmm_job *J, size_t r) {
    const size_t R = (size_t)J->R, t = (size_t)J->M - r, la = (size_t)J->lda, lc = (size_t)J->ldc;
    float *As = J->tail, *Cs = As + R * la;
    /* only the padding rows are zeroed (the kernel reads them), and those of Cs only where beta = 1
       reads C: not all of both copies (qkv: 64 × (64 + 768) floats) per call */
    memset(As + t * la, 0, (R - t) * la * sizeof(float));
    if (J->beta != 0.0f) memset(Cs + t * lc, 0, (R - t) * lc * sizeof(float));
    for (size_t i = 0; i < t; i++) {
        memcpy(As + i * la, J->A + (r + i) * la, (size_t)J->K * sizeof(float));
        if (J->beta != 0.0f) memcpy(Cs + i * lc, J->C + (r + i) * lc, (size_t)J->N * sizeof(float));
    }
    J->k(J->B, As, Cs);
    for (size_t i = 0; i < t; i++) memcpy(J->C + (r + i) * lc, Cs + i * lc, (size_t)J->N * sizeof(float));
}

/* the blocks [begin, end) of R rows, the last one partial when R does not divide M */
static void xsmm_range(void *ctx, int begin, int end) {
    const xsmm_job *J = ctx;
    for (int blk = begin; blk < end; blk++) {
        const size_t r = (size_t)blk * J->R;
        if (r + (size_t)J->R <= (size_t)J->M)
            J->k(J->B, J->A + r * J->lda, J->C + r * J->ldc);
        else
            xsmm_tail(J, r);
    }
}

/* Bt (K, N) = B (N, K; rows ldb) transposed, in 8 × 8 tiles: row by row, each element of a row of B
   goes to another line of Bt (N floats apart); a tile's 8 lines stay in L1. The mini ViT's qkv
   weight (768 × 64): 13 µs against 44 µs row by row, per forward call (a copy: same bits). */
static void transpose_rows(float *Bt, const float *B, int ldb, int N, int K) {
    enum { TB = 8 };
    const int Nb = N / TB * TB, Kb = K / TB * TB;
    for (int n0 = 0; n0 < Nb; n0 += TB) {
        for (int k0 = 0; k0 < Kb; k0 += TB)
            for (int k = k0; k < k0 + TB; k++)
                for (int n = n0; n < n0 + TB; n++) Bt[(size_t)k * N + n] = B[(size_t)n * ldb + k];
        for (int k = Kb; k < K; k++)
            for (int n = n0; n < n0 + TB; n++) Bt[(size_t)k * N + n] = B[(size_t)n * ldb + k];
    }
    for (int n = Nb; n < N; n++)
        for (int k = 0; k < K; k++) Bt[(size_t)k * N + n] = B[(size_t)n * ldb + k];
}

static libxsmm_smmfunction xsmm_kernel(int N, int rows, int K, int ldb, int lda, int ldc, float beta) {
    const libxsmm_blasint la = ldb, lb = lda, lc = ldc;
    const float alpha = 1.0f;
    const int flags = beta == 0.0f ? LIBXSMM_GEMM_FLAG_BETA_0 : LIBXSMM_GEMM_FLAG_NONE;
    return libxsmm_smmdispatch(N, rows, K, &la, &lb, &lc, &alpha, &beta, &flags, NULL);
}
#endif

/* 1 when the libxsmm path takes products of these N and K */
static int cpu_small_gemm_takes(int N, int K) {
    pthread_once(&g_small_once, small_gemm_env);
#ifdef CLPDD_HAVE_XSMM
    return g_small_gemm && N >= 1 && K >= 1 && N <= XSMM_MAX && K <= XSMM_MAX;
#else
    (void)N, (void)K;
    return 0;
#endif
}

/* C (M, N) = A (M, K) · op(B) + beta·C (row-major, alpha 1, beta 0 or 1, N and K ≤ 1024) by libxsmm
   in row blocks on the pool; 0 (nothing written) when built without libxsmm, not switched on, or
   outside those limits */
static int cpu_small_gemm(int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, float beta, float *C, int ldc) {
    pthread_once(&g_small_once, small_gemm_env);
#ifdef CLPDD_HAVE_XSMM
    if (M < 1 || !cpu_small_gemm_takes(N, K) || alpha != 1.0f || (beta != 0.0f && beta != 1.0f)) return 0;
    if (transB) { /* B (N, K) → Bt (K, N), in this thread's scratch (the pool's threads only read it) */
        float *Bt = xsmm_scratch_get(0, (size_t)N * K);
        if (!Bt) return 0;
        transpose_rows(Bt, B, ldb, N, K);
        B = Bt, ldb = N;
    }
    const int R = XSMM_ROWS, blocks = (M + R - 1) / R;
    /* the partial block's scratch is the caller's, grown here, whichever thread runs the block: a
       pool thread's own would grow on the first partial block it happens to take, an allocation in
       a later call of a seen shape */
    float *tail = M % R ? xsmm_scratch_get(1, (size_t)R * ((size_t)lda + (size_t)ldc)) : NULL;
    if (M % R && !tail) return 0;
    xsmm_job J = {xsmm_kernel(N, R, K, ldb, lda, ldc, beta), R, M, K, N, lda, ldc, beta, A, B, C, tail};
    const int ok = J.k != NULL;
    /* the partial block is one more item of the pool's job, not the caller's after it: at the mini
       ViT's m = 10 (500 rows, 7 full blocks) the caller alone ran the 8th block while the other
       thread waited */
    if (ok && blocks > 1 && (size_t)M * N * K > 16 * (size_t)CLPDD_CPU_PAR_MIN)
        cpu_parallel_for(blocks, xsmm_range, &J);
    else if (ok)
        xsmm_range(&J, 0, blocks);
    return ok;
#else
    (void)transB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta;
    (void)C, (void)ldc;
    return 0;
#endif
}

void cpu_blas_arithmetic(char *out, size_t n) {
    pthread_once(&g_small_once, small_gemm_env);
    /* OpenBLAS's configuration names the kernel set it picked for this CPU (DYNAMIC_ARCH), and
       libxsmm's JIT writes code for the target it detected */
    const char *blas = openblas_get_config();
#ifdef CLPDD_HAVE_XSMM
    if (g_small_gemm) {
        snprintf(out, n, "blas=%s small=libxsmm %s %s", blas, LIBXSMM_VERSION, libxsmm_get_target_arch());
        return;
    }
#endif
    snprintf(out, n, "blas=%s small=blas", blas);
}

/* Products under BLAS_THREADED_MIN multiply-adds run with OpenBLAS at one thread. OpenBLAS 0.3.21
   threads an sgemm from 2^18 of them; its woken worker then spins on sched_yield for ~2^28 cycles
   (~0.1 s), taking a core from the pool's threads for the rest of the step. In the CLP-DD step the
   ridge's products with the real batch (1024 × 64 × 10: ~20 µs on one core) did that once per
   step, and the worker held 12 % of the samples of the mini ViT's step at m = 10 (perf, 2 cores,
   pieces side by side). OpenBLAS splits M and N between its threads, never K, so the bits are
   the same either way. 2^22 (~80 µs on one core) keeps the threads for products where they pay. */
#define BLAS_THREADED_MIN ((double)(1 << 22))

/* C (M, N) = alpha·op(A)·op(B) + beta·C; op(A) (M, K), op(B) (K, N) */
void cpu_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    CLPDD_ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        scale_matrix(C, ldc, M, N, beta);
        return;
    }
    CLPDD_ASSERT(lda >= (transA ? M : K) && ldb >= (transB ? K : N) && ldc >= N);
    if (!transA && cpu_small_gemm(transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    const int serial = (double)M * N * K < BLAS_THREADED_MIN;
    if (serial) cpu_blas_serial_begin();
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (serial) cpu_blas_serial_end();
}

/* batch × the above, matrix b at A + b·strideA, B + b·strideB, C + b·strideC */
void cpu_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                      int ldc, long long strideC, int batch) {
    /* serial over the batch: OpenBLAS threads each product (see ops_cpu.h on BLAS in OpenMP) */
    for (int b = 0; b < batch; b++)
        cpu_gemm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
                 C + b * strideC, ldc);
}

/* C (N, N) = alpha·A·Aᵀ + beta·C (trans 0, A (N, K)) or alpha·Aᵀ·A + beta·C (trans 1, A (K, N));
   ssyrk writes the lower triangle, which is then mirrored into the upper one */
void cpu_syrk(int trans, int N, int K, float alpha, const float *A, int lda, float beta, float *C, int ldc) {
    CLPDD_ASSERT(N >= 0 && K >= 0);
    if (N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        scale_matrix(C, ldc, N, N, beta);
        return;
    }
    CLPDD_ASSERT(lda >= (trans ? N : K) && ldc >= N);
    const int serial = (double)N * N * K / 2 < BLAS_THREADED_MIN;
    if (serial) cpu_blas_serial_begin();
    cblas_ssyrk(CblasRowMajor, CblasLower, trans ? CblasTrans : CblasNoTrans, N, K, alpha, A, lda, beta, C,
                ldc);
    if (serial) cpu_blas_serial_end();
    CLPDD_OMP(omp parallel for if ((size_t)N * N > CLPDD_CPU_PAR_MIN))
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) C[(size_t)i * ldc + j] = C[(size_t)j * ldc + i];
}

/* Cholesky A (n, n) = L·Lᵀ, L in the lower triangle (row-major).
   Row-major lower with leading dimension lda is the same memory as column-major upper, and
   column-major 'U' computes A = UᵀU with U = Lᵀ, so LAPACKE_spotrf_work(COL_MAJOR, 'U') yields
   exactly the row-major L of LAPACKE_spotrf(ROW_MAJOR, 'L') without its transposed n×n copy.
   The _work entry also skips LAPACKE's NaN scan (which would return −4 and abort here). OpenBLAS's
   own potrf lets a NaN through (NaN ≤ 0 is false), so a non-finite pivot is caught afterwards: a
   NaN or Inf anywhere in A reaches the diagonal of L, and the first non-finite L[k][k] is reported
   as the failed minor k + 1, like a non-positive pivot. */
int cpu_potrf(float *A, int n, int lda) {
    CLPDD_ASSERT(n >= 0);
    if (n == 0) return 0;
    CLPDD_ASSERT(lda >= n);
    lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', n, A, lda);
    CLPDD_ASSERT(info >= 0);
    if (info > 0) return (int)info;
    for (int k = 0; k < n; k++)
        if (!isfinite(A[(size_t)k * lda + k])) return k + 1;
    return 0;
}

/* Solve (L·Lᵀ)·X = B in place, B (n, nrhs): the two triangular solves of spotrs
   (L·Y = B, then Lᵀ·X = Y), done with row-major strsm so nothing is transposed or allocated */
void cpu_potrs(const float *L, int n, int lda, float *B, int nrhs, int ldb) {
    CLPDD_ASSERT(n >= 0 && nrhs >= 0);
    if (n == 0 || nrhs == 0) return;
    CLPDD_ASSERT(lda >= n && ldb >= nrhs);
    cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, nrhs, 1.0f, L, lda, B,
                ldb);
    cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, nrhs, 1.0f, L, lda, B,
                ldb);
}
