/* Transformer-extras ops (ABI 1.1) of the CPU reference backend: rope and swiglu /
 * swiglu_backward against naive float64 transcriptions, the backwards against float64
 * central finite differences (swiglu) and the adjoint identity (rope, a rotation), with
 * sentinels after every output to catch overruns and untouched regions checked bit-exact.
 *
 * Legend: n images, T tokens, t0 first rotated token, ld row stride, nblk rotated head
 * blocks, hd head width; rows, F of the SwiGLU (u is rows × 2F). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/ops.h"
#include "support.h"

#define SENT 8
static const float SENTINEL = -12345.678f;

static float *alloc_sent(size_t n) {
    float *p = malloc((n + SENT) * sizeof(float));
    for (size_t i = 0; i < SENT; i++) p[n + i] = SENTINEL;
    return p;
}
static void expect_sent(const float *p, size_t n, const char *what) {
    for (size_t i = 0; i < SENT; i++) cr_expect_eq(p[n + i], SENTINEL, "%s: overrun at +%zu", what, i);
}

/* ---- rope ---- */

/* the op's contract in float64: pair i of every rotated head block of token t turns by the
   table's angle for (t − t0, i) */
static void ref_rope(double *y, const float *x, const float *sn, const float *cs, int n, int T, int t0, int ld,
                     int nblk, int hd, int inverse) {
    const int half = hd / 2;
    for (size_t i = 0; i < (size_t)n * T * ld; i++) y[i] = x[i];
    for (int b = 0; b < n; b++)
        for (int t = t0; t < T; t++)
            for (int k = 0; k < nblk; k++)
                for (int i = 0; i < half; i++) {
                    size_t at = ((size_t)b * T + t) * ld + (size_t)k * hd + 2 * i;
                    double c = cs[(t - t0) * half + i], s = (inverse ? -1.0 : 1.0) * sn[(t - t0) * half + i];
                    double a0 = x[at], a1 = x[at + 1];
                    y[at] = a0 * c - a1 * s;
                    y[at + 1] = a1 * c + a0 * s;
                }
}

/* tables from random angles (any angles: the op only reads the tables) */
static void rope_tables(float *sn, float *cs, size_t count, uint64_t seed) {
    float *ang = malloc(count * sizeof(float));
    test_fill_uniform(ang, count, -7.0f, 7.0f, seed);
    for (size_t i = 0; i < count; i++) sn[i] = sinf(ang[i]), cs[i] = cosf(ang[i]);
    free(ang);
}

static void check_rope(int n, int T, int t0, int ld, int nblk, int hd, uint64_t seed) {
    const clpdd_ops *ops = clpdd_ops_cpu();
    const size_t N = (size_t)n * T * ld, tab = (size_t)(T - t0 > 0 ? T - t0 : 0) * (hd / 2);
    float *sn = malloc((tab + 1) * sizeof(float)), *cs = malloc((tab + 1) * sizeof(float));
    rope_tables(sn, cs, tab, seed);
    float *x = malloc(N * sizeof(float)), *y = alloc_sent(N);
    test_fill_normal(x, N, 1.0f, seed + 1);
    double *ref = malloc((N + 1) * sizeof(double));
    for (int inverse = 0; inverse < 2; inverse++) {
        memcpy(y, x, N * sizeof(float));
        ops->rope(y, sn, cs, n, T, t0, ld, nblk, hd, inverse);
        expect_sent(y, N, "rope");
        ref_rope(ref, x, sn, cs, n, T, t0, ld, nblk, hd, inverse);
        double e = test_rel_err_fd(y, ref, N);
        cr_expect(e <= 1e-6, "rope (n %d T %d t0 %d ld %d nblk %d hd %d inverse %d): rel err %.3g", n, T, t0, ld, nblk,
                  hd, inverse, e);
        /* untouched: prefix tokens and the columns after the rotated blocks, bit-exact */
        for (int b = 0; b < n; b++)
            for (int t = 0; t < T; t++)
                for (int col = 0; col < ld; col++) {
                    size_t at = ((size_t)b * T + t) * ld + col;
                    if (t < t0 || col >= nblk * hd) cr_expect_eq(y[at], x[at], "rope wrote outside its blocks at %zu", at);
                }
    }
    /* the inverse undoes the rotation; and it is the adjoint: <rope(x), z> = <x, rope⁻¹(z)> */
    memcpy(y, x, N * sizeof(float));
    ops->rope(y, sn, cs, n, T, t0, ld, nblk, hd, 0);
    ops->rope(y, sn, cs, n, T, t0, ld, nblk, hd, 1);
    cr_expect(test_rel_err(y, x, N) <= 1e-6, "rope⁻¹(rope(x)) ≠ x");
    float *z = malloc(N * sizeof(float)), *rz = malloc(N * sizeof(float));
    test_fill_normal(z, N, 1.0f, seed + 2);
    memcpy(y, x, N * sizeof(float));
    ops->rope(y, sn, cs, n, T, t0, ld, nblk, hd, 0);
    memcpy(rz, z, N * sizeof(float));
    ops->rope(rz, sn, cs, n, T, t0, ld, nblk, hd, 1);
    double lhs = 0, rhs = 0, scale = 0;
    for (size_t i = 0; i < N; i++) {
        lhs += (double)y[i] * z[i];
        rhs += (double)x[i] * rz[i];
        scale += fabs((double)x[i] * z[i]);
    }
    cr_expect(fabs(lhs - rhs) <= 1e-5 * (scale + 1e-30), "rope adjoint: %.9g vs %.9g", lhs, rhs);
    free(sn), free(cs), free(x), free(y), free(ref), free(z), free(rz);
}

Test(ops_transformer, rope_qk_of_patch_tokens) {
    /* EVA-02's use: qkv rows (ld = 3I), q and k = the first 2·Hh blocks, CLS untouched */
    check_rope(2, 7, 1, 3 * 2 * 8, 2 * 2, 8, 11);
}
Test(ops_transformer, rope_shapes) {
    check_rope(3, 5, 0, 12, 3, 4, 21);  /* every token, whole rows */
    check_rope(1, 9, 3, 20, 2, 6, 31);  /* registers before the patches, padding columns */
    check_rope(2, 4, 2, 2, 1, 2, 41);   /* hd = 2: one pair per block */
    check_rope(1, 40, 1, 96, 8, 12, 51); /* more rows than one thread's worth */
}
Test(ops_transformer, rope_empty) {
    const clpdd_ops *ops = clpdd_ops_cpu();
    float x[4] = {1, 2, 3, 4}, s[2] = {1, 1}, c[2] = {0, 0};
    ops->rope(x, s, c, 0, 3, 1, 4, 2, 2, 0); /* no images */
    ops->rope(x, s, c, 1, 1, 1, 4, 2, 2, 0); /* t0 = T: no rotated token */
    ops->rope(x, s, c, 1, 1, 0, 4, 0, 2, 0); /* no blocks */
    cr_expect(x[0] == 1 && x[1] == 2 && x[2] == 3 && x[3] == 4);
}

/* ---- swiglu ---- */

static double silu(double g) { return g / (1.0 + exp(-g)); }

typedef struct sw_ctx {
    int rows, F;
    const double *dy; /* (rows, F) */
} sw_ctx;

/* <dy, swiglu(u)> in float64 */
static double sw_objective(const double *u, void *p) {
    const sw_ctx *c = p;
    double s = 0;
    for (int r = 0; r < c->rows; r++)
        for (int j = 0; j < c->F; j++)
            s += c->dy[(size_t)r * c->F + j] * silu(u[(size_t)r * 2 * c->F + j]) * u[(size_t)r * 2 * c->F + c->F + j];
    return s;
}

static void check_swiglu(int rows, int F, float spread, uint64_t seed) {
    const clpdd_ops *ops = clpdd_ops_cpu();
    const size_t nu = (size_t)rows * 2 * F, ny = (size_t)rows * F;
    float *u = malloc(nu * sizeof(float)), *y = alloc_sent(ny), *dy = malloc(ny * sizeof(float)), *du = alloc_sent(nu);
    test_fill_normal(u, nu, spread, seed);
    test_fill_normal(dy, ny, 1.0f, seed + 1);
    ops->swiglu(y, u, rows, F);
    expect_sent(y, ny, "swiglu");
    double *ref = malloc((ny + 1) * sizeof(double));
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < F; j++)
            ref[(size_t)r * F + j] = silu(u[(size_t)r * 2 * F + j]) * (double)u[(size_t)r * 2 * F + F + j];
    double e = test_rel_err_fd(y, ref, ny);
    cr_expect(e <= 1e-6, "swiglu (%d × %d, spread %g): rel err %.3g", rows, F, spread, e);

    ops->swiglu_backward(du, dy, u, rows, F);
    expect_sent(du, nu, "swiglu_backward");
    double *ud = malloc(nu * sizeof(double)), *dyd = malloc((ny + 1) * sizeof(double)), *g = malloc(nu * sizeof(double));
    for (size_t i = 0; i < nu; i++) ud[i] = u[i];
    for (size_t i = 0; i < ny; i++) dyd[i] = dy[i];
    /* analytic float64: ∂/∂g = dy·v·σ(g)(1 + g(1 − σ(g))), ∂/∂v = dy·silu(g) */
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < F; j++) {
            double gg = ud[(size_t)r * 2 * F + j], vv = ud[(size_t)r * 2 * F + F + j], d = dyd[(size_t)r * F + j];
            double sg = 1.0 / (1.0 + exp(-gg));
            g[(size_t)r * 2 * F + j] = d * vv * sg * (1.0 + gg * (1.0 - sg));
            g[(size_t)r * 2 * F + F + j] = d * silu(gg);
        }
    double ea = test_rel_err_fd(du, g, nu);
    cr_expect(ea <= 1e-6, "swiglu_backward (%d × %d, spread %g) vs float64: rel err %.3g", rows, F, spread, ea);
    if (nu <= 4096) { /* and the formula itself against central differences (O(nu²) work) */
        sw_ctx ctx = {rows, F, dyd};
        test_fd_grad(g, sw_objective, ud, nu, 1e-5, &ctx); /* truncation O(h²) ~ 1e-10 */
        double eb = test_rel_err_fd(du, g, nu);
        cr_expect(eb <= 1e-5, "swiglu_backward (%d × %d, spread %g) vs float64 FD: rel err %.3g", rows, F, spread, eb);
    }
    free(u), free(y), free(dy), free(du), free(ref), free(ud), free(dyd), free(g);
}

Test(ops_transformer, swiglu) {
    check_swiglu(5, 7, 1.0f, 101);
    check_swiglu(1, 1, 1.0f, 111);
    check_swiglu(3, 64, 6.0f, 121); /* saturated gates on both sides: σ → 0 and σ → 1 */
    check_swiglu(200, 200, 2.0f, 131); /* more than CLPDD_CPU_PAR_MIN values */
}

Test(ops_transformer, swiglu_extremes_finite) {
    const clpdd_ops *ops = clpdd_ops_cpu();
    float u[6] = {-200.0f, 0.0f, 200.0f, 1.5f, -2.0f, 3.0f}, y[3], dy[3] = {1, 1, 1}, du[6];
    ops->swiglu(y, u, 1, 3);
    ops->swiglu_backward(du, dy, u, 1, 3);
    for (int i = 0; i < 3; i++) cr_expect(isfinite(y[i]), "y[%d] = %g", i, y[i]);
    for (int i = 0; i < 6; i++) cr_expect(isfinite(du[i]), "du[%d] = %g", i, du[i]);
    cr_expect_float_eq(y[0], 0.0f, 1e-30); /* silu(−200)·1.5 */
    cr_expect_float_eq(y[2], 600.0f, 1e-3);
    cr_expect_float_eq(du[3 + 1], 0.0f, 1e-30); /* silu(0) = 0 */
}

Test(ops_transformer, table_entries) {
    const clpdd_ops *ops = clpdd_ops_cpu();
    cr_expect(ops->rope && ops->swiglu && ops->swiglu_backward, "CPU table lacks a transformer extra");
}
