/* The harness of the CUDA-vs-CPU tests (test_*_cuda.c): the device table (or the CPU table in
 * self-check mode, CLPDD_TEST_OPS_SELF=1, to test the harness itself on a machine without a GPU),
 * and device buffers between sentinel guard zones that done() checks for overruns. Without a GPU
 * the whole executable exits 77 before any test runs (tests/support.c, CLPDD_TEST_GPU_SUITE), which
 * ctest reports as Skipped; NEED_GPU() still skips a single test should the device vanish after
 * that check. Static on purpose: each test executable has its own state. */
#ifndef CLPDD_TEST_CUDA_HARNESS_H
#define CLPDD_TEST_CUDA_HARNESS_H
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/ops.h"
#include "support.h"

static const clpdd_ops *cpu, *dev;

/* the device table, or the CPU one in self-check mode */
static const clpdd_ops *device_table(const char **why) {
    const char *self = getenv("CLPDD_TEST_OPS_SELF");
    if (self && *self && strcmp(self, "0") != 0) return clpdd_ops_cpu();
    return clpdd_ops_cuda(why);
}

/* first statement of every test: skip without a GPU */
#define NEED_GPU()                                                                \
    do {                                                                          \
        const char *why_ = "unknown reason";                                      \
        dev = device_table(&why_);                                                \
        if (!dev) cr_skip_test("no GPU: %s", why_ ? why_ : "unknown reason");     \
        cpu = clpdd_ops_cpu();                                                    \
    } while (0)

/* ---- guarded device buffers ---- */
#define GUARD 67 /* floats each side */
#define SENTINEL 1234.5f
#define MAX_BUFS 96

typedef struct {
    char *base; /* device */
    size_t bytes;
} dbuf;
static dbuf bufs[MAX_BUFS];
static int nbufs;

/* device memory for `bytes`, with GUARD sentinel floats before and after */
static void *dalloc(size_t bytes) {
    cr_assert(nbufs < MAX_BUFS, "test harness: too many buffers");
    size_t g = GUARD * sizeof(float);
    char *base = dev->malloc(bytes + 2 * g);
    cr_assert(base, "%s: malloc(%zu) failed", dev->name, bytes + 2 * g);
    float sent[GUARD];
    for (int i = 0; i < GUARD; i++) sent[i] = SENTINEL;
    dev->to_device(base, sent, g);
    dev->to_device(base + g + bytes, sent, g);
    bufs[nbufs].base = base;
    bufs[nbufs].bytes = bytes;
    nbufs++;
    return base + g;
}
__attribute__((unused)) static float *dput(const float *h, size_t n) {
    float *d = dalloc(n * sizeof(float));
    dev->to_device(d, h, n * sizeof(float));
    return d;
}
__attribute__((unused)) static int32_t *dput_i(const int32_t *h, size_t n) {
    int32_t *d = dalloc(n * sizeof(int32_t));
    dev->to_device(d, h, n * sizeof(int32_t));
    return d;
}
/* an "=" output: NaN everywhere (for int32 outputs the bits of NaN, an impossible index) */
__attribute__((unused)) static float *dpoison(size_t n) {
    float *d = dalloc(n * sizeof(float));
    dev->fill(d, NAN, n);
    return d;
}
/* normalised error of a device result against a host reference (tests/support.h's
   test_rel_err: +Inf when an element is NaN, e.g. left unwritten) */
__attribute__((unused)) static double dev_err(const float *d, const float *ref, size_t n) {
    float *h = calloc(n ? n : 1, sizeof(float));
    dev->to_host(h, d, n * sizeof(float));
    double e = test_rel_err(h, ref, n);
    free(h);
    return e;
}

/* guards intact on every buffer, then free them all; last statement of every test */
static void done(void) {
    size_t g = GUARD * sizeof(float);
    for (int b = 0; b < nbufs; b++) {
        float h[2][GUARD];
        dev->to_host(h[0], bufs[b].base, g);
        dev->to_host(h[1], bufs[b].base + g + bufs[b].bytes, g);
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < GUARD; i++)
                cr_assert(h[s][i] == SENTINEL, "buffer %d (%zu bytes): guard %s the data overwritten at %d",
                          b, bufs[b].bytes, s ? "after" : "before", s ? i : GUARD - i);
        dev->free(bufs[b].base);
    }
    nbufs = 0;
}

#endif
