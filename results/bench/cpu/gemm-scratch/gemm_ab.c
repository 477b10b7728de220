/* time clpdd_ops_cpu()->gemm at the mini ViT's transB sites (y = x·Wᵀ), median of 9 */
#define _POSIX_C_SOURCE 200809L
#include <clpdd/ops.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(void) {
    const clpdd_ops *o = clpdd_ops_cpu();
    int sites[][3] = {{500, 768, 64}, {500, 64, 256}, {500, 128, 64}, {500, 64, 16}, {5000, 768, 64}, {5000, 64, 256}};
    float *A = malloc(sizeof(float) << 22), *B = malloc(sizeof(float) << 22), *C = malloc(sizeof(float) << 22);
    for (int i = 0; i < 1 << 22; i++) A[i] = (float)(i % 97) / 97.0f - 0.5f, B[i] = (float)(i % 89) / 89.0f - 0.5f;
    for (int s = 0; s < 6; s++) {
        int M = sites[s][0], N = sites[s][1], K = sites[s][2];
        int reps = (int)(2e8 / (2.0 * M * N * K)) + 1;
        double t[9];
        for (int r = 0; r < 9; r++) {
            double t0 = now();
            for (int i = 0; i < reps; i++) o->gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
            t[r] = (now() - t0) / reps * 1e6;
        }
        qsort(t, 9, sizeof *t, cmp);
        printf("%dx%dx%d %.1f us [%.1f-%.1f]\n", M, N, K, t[4], t[0], t[8]);
    }
    return 0;
}
