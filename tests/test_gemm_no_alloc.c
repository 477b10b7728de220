/* Ops do not allocate (docs/design.md §4): gemm's libxsmm path (core/cpu/ops_cpu_blas.c) copies a
 * transposed B and pads the last partial block of rows in a per-thread scratch kept between calls,
 * so once a shape has been seen (libxsmm JIT-compiles its kernel, the thread pool starts, the
 * scratch grows) further products call no allocator at all. This executable counts every
 * malloc/calloc/realloc of the process by interposing them (forwarded to glibc's own), so it is
 * skipped under AddressSanitizer, which owns the allocator there. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/ops.h"

#if defined(__SANITIZE_ADDRESS__)
#define NO_ALLOC_COUNTING 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_ALLOC_COUNTING 1
#endif
#endif

static long g_calls;  /* allocator calls while counting */
static int g_counting;

#ifndef NO_ALLOC_COUNTING
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
void *malloc(size_t n) {
    if (__atomic_load_n(&g_counting, __ATOMIC_RELAXED)) __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t size) {
    if (__atomic_load_n(&g_counting, __ATOMIC_RELAXED)) __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n) {
    if (__atomic_load_n(&g_counting, __ATOMIC_RELAXED)) __atomic_add_fetch(&g_calls, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, n);
}
#endif

static float *filled(size_t n, float v) {
    float *x = malloc(n * sizeof(float));
    cr_assert_not_null(x);
    for (size_t i = 0; i < n; i++) x[i] = v * (float)((i * 7919) % 13) - 0.5f;
    return x;
}

/* the mini ViT's qkv projection (y = x·Wᵀ, 768 × 64 weights) at a row count with a partial block,
   its input gradient (no transpose) and beta = 1 (the tail copies C in) */
Test(gemm_no_alloc, a_seen_shape_calls_no_allocator) {
#ifdef NO_ALLOC_COUNTING
    cr_skip_test("AddressSanitizer owns the allocator: counting it is not possible here");
#endif
    setenv("CLPDD_SMALL_GEMM", "xsmm", 1);
    const clpdd_ops *o = clpdd_ops_cpu();
    enum { M = 130, N = 768, K = 64 };
    float *A = filled((size_t)M * K, 0.3f), *W = filled((size_t)N * K, 0.2f), *C = filled((size_t)M * N, 0.1f);
    float *G = filled((size_t)M * N, 0.4f), *dA = filled((size_t)M * K, 0.0f);
    for (int warm = 0; warm < 2; warm++) { /* JIT, the pool, the scratch: allowed to allocate */
        o->gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
        o->gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 1.0f, C, N);
        o->gemm(0, 0, M, K, N, 1.0f, G, N, W, K, 0.0f, dA, K);
        o->gemm(0, 1, 70, 64, 64, 1.0f, A, K, W, K, 0.0f, C, N);
    }
    __atomic_store_n(&g_counting, 1, __ATOMIC_SEQ_CST);
    for (int r = 0; r < 5; r++) {
        o->gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
        o->gemm(0, 1, M, N, K, 1.0f, A, K, W, K, 1.0f, C, N);
        o->gemm(0, 0, M, K, N, 1.0f, G, N, W, K, 0.0f, dA, K);
        o->gemm(0, 1, 70, 64, 64, 1.0f, A, K, W, K, 0.0f, C, N); /* smaller: the scratch is kept */
    }
    __atomic_store_n(&g_counting, 0, __ATOMIC_SEQ_CST);
    long calls = __atomic_load_n(&g_calls, __ATOMIC_SEQ_CST);
    cr_expect_eq(calls, 0, "gemm called the allocator %ld times in 20 products of seen shapes", calls);
    free(A), free(W), free(C), free(G), free(dA);
}
