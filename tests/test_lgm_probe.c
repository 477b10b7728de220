/* The probe of the evaluation: learns a separable toy problem, is seeded, and the per-epoch
 * feature path (protocol lgm) with unchanging features is exactly the fixed-feature probe. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/evaluate.h"
#include "eval/lgm_probe.h"
#include "support.h"

enum { M = 40, NT = 400, D = 6, C = 4 };

/* class c: a Gaussian blob around 3·e_c */
static void blobs(float *X, int32_t *y, int n, uint64_t seed) {
    test_fill_normal(X, (size_t)n * D, 0.5f, seed);
    for (int i = 0; i < n; i++) {
        y[i] = i % C;
        X[i * D + y[i]] += 3.0f;
    }
}

typedef struct fixed {
    const float *X;
    int calls;
} fixed;

static int fixed_features(void *p, int epoch, float *X) {
    fixed *f = p;
    cr_assert_eq(epoch, f->calls, "epochs are visited in order");
    f->calls++;
    memcpy(X, f->X, sizeof(float) * M * D);
    return 0;
}

static int failing_features(void *p, int epoch, float *X) { return epoch == 2; }

Test(lgm_probe, probe_learns_and_the_epoch_path_matches) {
    float Xtr[M * D], Xte[NT * D];
    int32_t ytr[M], yte[NT];
    blobs(Xtr, ytr, M, 1);
    blobs(Xte, yte, NT, 2);
    clpdd_lgm_probe_cfg cfg = {200, 10, 0.1f};
    double a = clpdd_lgm_probe(Xtr, ytr, M, Xte, yte, NT, D, C, &cfg, 7);
    cr_expect_gt(a, 0.95, "separable blobs: %g", a);
    cr_expect_eq(a, clpdd_lgm_probe(Xtr, ytr, M, Xte, yte, NT, D, C, &cfg, 7), "seeded");
    fixed f = {Xtr, 0};
    double b = clpdd_lgm_probe_epochs(fixed_features, &f, NULL, ytr, M, Xte, yte, NT, D, C, &cfg, 7);
    cr_expect_eq(a, b, "fixed features through the per-epoch path: %g vs %g", a, b);
    cr_expect_eq(f.calls, cfg.epochs);
    cr_expect(isnan(clpdd_lgm_probe_epochs(failing_features, NULL, NULL, ytr, M, Xte, yte, NT, D, C, &cfg, 7)),
              "a failing feature callback aborts with NaN");
}

Test(lgm_probe, scores) {
    clpdd_score s = {.n = 3, .per_seed = {0.5, 0.7, 0.6}};
    clpdd_score_finish(&s);
    cr_expect_float_eq(s.mean, 0.6, 1e-12);
    cr_expect_float_eq(s.std, sqrt(0.02 / 3), 1e-12);
    float logits[6] = {0, 1, 2, 5, 1, 0};
    int32_t y[2] = {2, 1};
    cr_expect_float_eq(clpdd_top1(logits, y, 2, 3), 0.5, 1e-12);
}

/* soft targets (a label matrix, core/eval/lgm_probe.h): one-hot rows are the hard-label probe bit
   for bit; smoothed rows still learn the blobs; rows that put the mass on the next class teach
   that class, so the test points (labelled by their blob) are almost all wrong */
Test(lgm_probe, soft_targets) {
    float Xtr[M * D], Xte[NT * D], T[M * C];
    int32_t ytr[M], yte[NT];
    blobs(Xtr, ytr, M, 1);
    blobs(Xte, yte, NT, 2);
    clpdd_lgm_probe_cfg cfg = {200, 10, 0.1f};
    double hard = clpdd_lgm_probe(Xtr, ytr, M, Xte, yte, NT, D, C, &cfg, 7);
    for (int i = 0; i < M; i++)
        for (int c = 0; c < C; c++) T[i * C + c] = c == ytr[i];
    cr_expect_eq(clpdd_lgm_probe_pred(NULL, NULL, Xtr, ytr, T, M, Xte, yte, NT, D, C, &cfg, 7, NULL), hard,
                 "one-hot soft targets are the hard labels");
    for (int i = 0; i < M; i++)
        for (int c = 0; c < C; c++) T[i * C + c] = c == ytr[i] ? 0.7f : 0.1f;
    double smooth = clpdd_lgm_probe_pred(NULL, NULL, Xtr, ytr, T, M, Xte, yte, NT, D, C, &cfg, 7, NULL);
    cr_expect_gt(smooth, 0.95, "smoothed targets keep the argmax: %g", smooth);
    for (int i = 0; i < M; i++)
        for (int c = 0; c < C; c++) T[i * C + c] = c == (ytr[i] + 1) % C ? 0.9f : 0.1f / (C - 1);
    double moved = clpdd_lgm_probe_pred(NULL, NULL, Xtr, ytr, T, M, Xte, yte, NT, D, C, &cfg, 7, NULL);
    cr_expect_lt(moved, 0.05, "targets on the next class teach the next class: %g", moved);
}
