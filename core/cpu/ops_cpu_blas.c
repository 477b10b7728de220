/* CPU backend: BLAS / LAPACK ops through OpenBLAS (cblas) and LAPACKE, row-major.
 * Degenerate sizes are handled here (BLAS rejects ld < 1 and some builds skip the
 * beta scaling when K = 0): M, N = 0 do nothing; K = 0 gives C = beta·C. As in BLAS,
 * beta = 0 overwrites C without reading it. */
#include "cpu/ops_cpu.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>

/* C (M, N) = beta·C, beta = 0 writing zeros */
static void scale_matrix(float *C, int ldc, int M, int N, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
}

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
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
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
    cblas_ssyrk(CblasRowMajor, CblasLower, trans ? CblasTrans : CblasNoTrans, N, K, alpha, A, lda, beta, C,
                ldc);
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
