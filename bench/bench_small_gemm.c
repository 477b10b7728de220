/* clpdd-bench-small-gemm: the CPU step's small matrix products, OpenBLAS against libxsmm, per call
 * site (issue 24, part 2; results/bench/cpu/small-gemm.md).
 *
 *   clpdd-bench-small-gemm [--rounds R]      (R interleaved rounds, default 7)
 *
 * Every call site is timed single-threaded (openblas_set_num_threads(1); thread CPU time) with
 * both libraries, interleaved per round, and the median GFLOP/s reported next to the sgemm
 * 1024³ rate of the same run, single-threaded as well. The shapes are those of one CLP-DD step
 * (read off plugins/backbones/vit/vit_{forward,backward}.c and the Winograd group schedule,
 * wino_schedule with its default 1 MiB per thread and 2 pool threads):
 *   * Winograd F(2×2, 3×3) (core/cpu/ops_cpu_winograd.c): per 3×3 stride-1 convolution 16 products
 *     M (co, g·NT) = U (co, ci) · V (ci, g·NT), g images of NT tiles per group, computed as
 *     the column-major Mᵀ = Vᵀ · Uᵀ (m = g·NT, n = co, k = ci), forward and input-backward alike
 *     (resnet20's layers have co = ci);
 *   * mnist-vit (plugins/backbones/vit): the row-major linear layers y (NT, out) = x (NT, in) · Wᵀ
 *     (gemm(0, 1)) and their input gradients dx (NT, in) = dy (NT, out) · W (gemm(0, 0)), NT = 50
 *     tokens per image; through libxsmm in row blocks of 64 tokens (a column-major kernel of
 *     m = out, n = 64, k = in), as cpu_small_gemm (core/cpu/ops_cpu_blas.c) calls it, Wᵀ
 *     transposed first.
 * libxsmm is column-major: a row-major C = A·B is the column-major Cᵀ = Bᵀ·Aᵀ on the same memory,
 * so row-major B is libxsmm's first operand. Timings only. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <libxsmm.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct site {
    const char *name;
    int transB;  /* row-major C (M, N) = A (M, K) · op(B); B (N, K) when transB */
    int M, N, K; /* row-major sizes */
    int TB;      /* libxsmm row block (rows of C per kernel call); 0: the whole M */
} site;

/* resnet20 at m = 10 and 100 (group sizes g from the Winograd schedule: 1 / 2 images in stage 1,
   1 / 2 in stage 2, 5 / 5 in stage 3); mnist-vit D = 64, I = 256 (qkv 3·I = 768), F = 128, patch K = 16, NT = 50 tokens per image, m = 10 and 100 */
static const site SITES[] = {
    {"wino s1 m=10 (16x256x16)", 0, 16, 256, 16, 0},
    {"wino s1 m=100 (16x512x16)", 0, 16, 512, 16, 0},
    {"wino s2 m=10 (32x64x32)", 0, 32, 64, 32, 0},
    {"wino s2 m=100 (32x128x32)", 0, 32, 128, 32, 0},
    {"wino s3 m=10/100 (64x80x64)", 0, 64, 80, 64, 0},
    {"vit qkv fwd m=10 (500x768x64)", 1, 500, 768, 64, 64},
    {"vit proj fwd m=10 (500x64x256)", 1, 500, 64, 256, 64},
    {"vit fc1 fwd m=10 (500x128x64)", 1, 500, 128, 64, 64},
    {"vit fc2 fwd m=10 (500x64x128)", 1, 500, 64, 128, 64},
    {"vit patch fwd m=10 (500x64x16)", 1, 500, 64, 16, 64},
    {"vit qkv bwd m=10 (500x64x768)", 0, 500, 64, 768, 64},
    {"vit proj bwd m=10 (500x256x64)", 0, 500, 256, 64, 64},
    {"vit fc1 bwd m=10 (500x64x128)", 0, 500, 64, 128, 64},
    {"vit fc2 bwd m=10 (500x128x64)", 0, 500, 128, 64, 64},
    {"vit patch bwd m=10 (500x16x64)", 0, 500, 16, 64, 64},
    {"vit qkv fwd m=100 (5000x768x64)", 1, 5000, 768, 64, 64},
    {"vit proj fwd m=100 (5000x64x256)", 1, 5000, 64, 256, 64},
    {"vit fc1 fwd m=100 (5000x128x64)", 1, 5000, 128, 64, 64},
    {"vit fc2 fwd m=100 (5000x64x128)", 1, 5000, 64, 128, 64},
    {"vit patch fwd m=100 (5000x64x16)", 1, 5000, 64, 16, 64},
    {"vit qkv bwd m=100 (5000x64x768)", 0, 5000, 64, 768, 64},
    {"vit proj bwd m=100 (5000x256x64)", 0, 5000, 256, 64, 64},
    {"vit fc1 bwd m=100 (5000x64x128)", 0, 5000, 64, 128, 64},
    {"vit fc2 bwd m=100 (5000x128x64)", 0, 5000, 128, 64, 64},
    {"vit patch bwd m=100 (5000x16x64)", 0, 5000, 16, 64, 64},
};
#define NSITES ((int)(sizeof SITES / sizeof SITES[0]))

/* this thread's CPU time: every call here is single-threaded, and on the shared machine CPU time
   is far less disturbed by the other processes than wall time (they still share the caches) */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* the Winograd sites are called the way ops_cpu_winograd.c's wino_gemm calls OpenBLAS (column-
   major, to avoid 0.3.21's row-major sgemm_direct), the ViT sites the way cpu_gemm does */
static void run_blas(const site *s, const float *A, const float *B, float *C) {
    if (s->TB == 0)
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, s->N, s->M, s->K, 1.0f, B, s->N, A, s->K, 0.0f, C,
                    s->N);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, s->transB ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f, A,
                    s->K, B, s->transB ? s->K : s->N, 0.0f, C, s->N);
}

/* libxsmm 1.17's JIT has no transposed operands (dispatch returns NULL for TRANS_A), so a
   transB site transposes B (N, K) into Bt (K, N) first, inside the timed call: N·K floats against
   the product's 2·M·N·K flops */
static float g_bt[1024 * 1024];

static libxsmm_smmfunction dispatch(const site *s, int rows) {
    const libxsmm_blasint lda = s->N, ldb = s->K, ldc = s->N;
    const float alpha = 1.0f, beta = 0.0f;
    const int flags = LIBXSMM_GEMM_FLAG_NONE;
    return libxsmm_smmdispatch(s->N, rows, s->K, &lda, &ldb, &ldc, &alpha, &beta, &flags, NULL);
}

/* the partial last block of M % rows rows by a kernel of its own (the library pads it instead: the
   rate of the full blocks is what it gets) */
static void run_xsmm(const site *s, libxsmm_smmfunction k, libxsmm_smmfunction tail, const float *A, const float *B,
                     float *C) {
    const int rows = s->TB ? s->TB : s->M;
    if (s->transB) {
        for (int n = 0; n < s->N; n++)
            for (int kk = 0; kk < s->K; kk++) g_bt[(size_t)kk * s->N + n] = B[(size_t)n * s->K + kk];
        B = g_bt;
    }
    for (int r = 0; r < s->M; r += rows) (r + rows <= s->M ? k : tail)(B, A + (size_t)r * s->K, C + (size_t)r * s->N);
}

/* seconds per call: enough repetitions for ~20 ms */
static double time_calls(const site *s, libxsmm_smmfunction k, libxsmm_smmfunction tail, const float *A,
                         const float *B, float *C, int reps) {
    const double t0 = now();
    for (int r = 0; r < reps; r++) {
        if (k)
            run_xsmm(s, k, tail, A, B, C);
        else
            run_blas(s, A, B, C);
    }
    return (now() - t0) / reps;
}

static double sgemm_rate(float *A, float *B, float *C) {
    const int n = 1024;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    const double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    return 2.0 * n * n * n / (now() - t0) * 1e-9;
}

int main(int argc, char **argv) {
    int rounds = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--rounds R]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > 99) rounds = 7;
    openblas_set_num_threads(1);
    libxsmm_init();
    const size_t big = (size_t)4 * 1024 * 1024;
    float *A = malloc(big * sizeof(float)), *B = malloc(big * sizeof(float)), *C = malloc(big * sizeof(float)),
          *C2 = malloc(big * sizeof(float));
    if (!A || !B || !C || !C2) return 1;
    fill(A, big, 1), fill(B, big, 2);
    double gb[NSITES][99], gx[NSITES][99], sg[99], diff[NSITES];
    libxsmm_smmfunction ker[NSITES], tail[NSITES];
    for (int i = 0; i < NSITES; i++) {
        const site *s = &SITES[i];
        const int rows = s->TB ? s->TB : s->M;
        ker[i] = dispatch(s, rows);
        tail[i] = s->M % rows ? dispatch(s, s->M % rows) : ker[i];
        if (!tail[i]) ker[i] = NULL;
        run_blas(s, A, B, C);
        if (ker[i]) run_xsmm(s, ker[i], tail[i], A, B, C2);
        double d = 0.0;
        for (size_t j = 0; ker[i] && j < (size_t)s->M * s->N; j++) d = fmax(d, fabs((double)C[j] - C2[j]));
        diff[i] = ker[i] ? d : NAN;
    }
    for (int r = 0; r < rounds; r++) {
        sg[r] = sgemm_rate(A, B, C);
        for (int i = 0; i < NSITES; i++) {
            const site *s = &SITES[i];
            const double flop = 2.0 * s->M * s->N * s->K;
            const int reps = (int)(0.02 * 40e9 / flop) + 1;
            gb[i][r] = flop / time_calls(s, NULL, NULL, A, B, C, reps) * 1e-9;
            gx[i][r] = ker[i] ? flop / time_calls(s, ker[i], tail[i], A, B, C, reps) * 1e-9 : NAN;
        }
    }
    const double sgm = median(sg, rounds);
    printf("One thread (CPU time of the calling thread), %d interleaved rounds, medians [min–max]. OpenBLAS sgemm 1024³ in the same run: "
           "%.1f GFLOP/s [%.1f–%.1f].\n\n",
           rounds, sgm, sg[0], sg[rounds - 1]);
    printf("| call site | OpenBLAS GFLOP/s | libxsmm GFLOP/s | libxsmm / OpenBLAS | OpenBLAS / sgemm | "
           "libxsmm / sgemm | max |Δ| |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < NSITES; i++) {
        const double b = median(gb[i], rounds), x = ker[i] ? median(gx[i], rounds) : NAN;
        printf("| %s | %.1f [%.1f–%.1f] | ", SITES[i].name, b, gb[i][0], gb[i][rounds - 1]);
        if (ker[i])
            printf("%.1f [%.1f–%.1f] | %.2f | %.2f | %.2f | %.1e |\n", x, gx[i][0], gx[i][rounds - 1], x / b,
                   b / sgm, x / sgm, diff[i]);
        else
            printf("no kernel (dispatch NULL) | – | %.2f | – | – |\n", b / sgm);
    }
    libxsmm_finalize();
    free(A), free(B), free(C), free(C2);
    return 0;
}
