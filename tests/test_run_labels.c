/* Learned labels end to end (docs/design.md §1 and §7, core/distill/labels.h), on the real
 * Fashion-MNIST files and mnist-vit weights: distilled.safetensors holds label_matrix (m, C) with
 * probability rows beside the class labels, metrics.json scores the set with its soft labels and
 * with argmax labels, `clpdd eval` of the run reproduces both, and a run that crashes and resumes is
 * bit for bit the uninterrupted one (the label logits and their Adam moments travel in the
 * checkpoint). Skips (with the reason) when the weights or the dataset are absent. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/experiment.h"
#include "distill/run.h"
#include "io/safetensors.h"
#include "support.h"
#include "util/util.h"

enum { CLASSES = 10, IPC = 2 };

/* the label matrix and the labels of a run's distilled.safetensors: (m, C) probability rows whose
   argmax is the class the image was distilled for (at this run's length the labels have not moved
   that far), and that have moved away from their initialisation; into T */
static void check_label_matrix(const char *run, float *T) {
    char p[900];
    snprintf(p, sizeof p, "%s/distilled.safetensors", run);
    clpdd_st_file *f;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_st_open(p, &f, &e), 0, "%s", e.msg);
    const clpdd_st_tensor *t = clpdd_st_find(f, "label_matrix"), *tl = clpdd_st_find(f, "labels");
    cr_assert_not_null(t, "no label_matrix in %s", p);
    cr_assert_not_null(tl);
    cr_assert(t->dtype == CLPDD_DT_F32 && t->ndim == 2 && t->shape[0] == CLASSES * IPC && t->shape[1] == CLASSES);
    int32_t y[CLASSES * IPC];
    cr_assert_eq(clpdd_st_read_raw(f, t, T, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_read_raw(f, tl, y, &e), 0, "%s", e.msg);
    clpdd_st_close(f);
    double moved = 0;
    for (int i = 0; i < CLASSES * IPC; i++) {
        double sum = 0;
        int best = 0;
        for (int c = 0; c < CLASSES; c++) sum += T[i * CLASSES + c], best = T[i * CLASSES + c] > T[i * CLASSES + best] ? c : best;
        cr_expect_float_eq(sum, 1.0, 1e-5, "row %d sums to %g", i, sum);
        cr_expect_eq(y[i], i / IPC, "class-major labels");
        cr_expect_eq(best, y[i], "row %d: argmax %d, distilled for %d", i, best, y[i]);
        moved += fabs(T[i * CLASSES + y[i]] - 0.9);
    }
    cr_expect_gt(moved, 1e-3, "the labels are learned: they left p0 = 0.9");
}

static int same_bytes(const char *a, const char *b, const char *name) {
    char pa[800], pb[800];
    snprintf(pa, sizeof pa, "%s/%s", a, name);
    snprintf(pb, sizeof pb, "%s/%s", b, name);
    size_t la, lb;
    uint8_t *da, *db;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_read_file(pa, &da, &la, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_read_file(pb, &db, &lb, &e), 0, "%s", e.msg);
    int same = la == lb && memcmp(da, db, la) == 0;
    free(da), free(db);
    return same;
}

Test(run_labels, learned_labels_end_to_end, .timeout = 900) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char dir[300], ini[700], a[700], b[700];
    test_tmpdir_make(dir, sizeof dir, "labels");
    snprintf(ini, sizeof ini, "%s/r.ini", dir);
    FILE *f = fopen(ini, "w");
    fprintf(f,
            "[experiment]\nseed = 5\n[data]\ntrain_limit = 500\ntest_limit = 300\nval_size = 100\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = 0.3\n[loss]\nname = ce\n"
            "[distill]\nipc = %d\nsteps = 12\nreal_batch = 128\ncheckpoint_every = 5\nlog_every = 5\nlabels = learn\n"
            "labels_lr = 0.05\naugment = dsa\naugs_per_batch = 2\n[eval]\nseeds = 1\n",
            dir, IPC);
    fclose(f);
    snprintf(a, sizeof a, "%s/whole", dir);
    snprintf(b, sizeof b, "%s/crashed", dir);
    clpdd_err e = {{0}};
    cr_assert_eq(test_run_experiment(ini, a, 0, NULL, 0, &e), 0, "%s", e.msg);
    float T[CLASSES * IPC * CLASSES], Tev[CLASSES * IPC * CLASSES];
    check_label_matrix(a, T);

    /* metrics.json: the soft-label score and the argmax-label score, each a full score */
    char *metrics = test_read_text(a, "metrics.json");
    double soft = test_json_number(metrics, "\"accuracy\": {", "\"mean\": ");
    double hard = test_json_number(metrics, "\"accuracy_hard_labels\": {", "\"mean\": ");
    cr_expect(soft > 0.1 && soft <= 1 && hard > 0.1 && hard <= 1, "soft %g, hard %g", soft, hard);

    /* clpdd eval of the run reads label_matrix and reproduces both */
    char args[1000], out[8192], evdir[800];
    snprintf(args, sizeof args, "eval '%s' --quiet", a);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    snprintf(evdir, sizeof evdir, "%s/eval-probe", a);
    char *ev = test_read_text(evdir, "metrics.json");
    cr_expect_eq(test_json_number(ev, "\"accuracy\": {", "\"mean\": "), soft, "eval's soft-label score");
    cr_expect_eq(test_json_number(ev, "\"accuracy_hard_labels\": {", "\"mean\": "), hard, "eval's hard-label score");
    check_label_matrix(evdir, Tev); /* eval writes the set back with its label matrix */
    cr_expect(memcmp(T, Tev, sizeof T) == 0, "the same label matrix");
    free(ev);
    free(metrics);

    /* a crash after step 7, resumed from the step-5 checkpoint: bit for bit the uninterrupted run */
    setenv("CLPDD_TEST_CRASH_AFTER", "7", 1);
    cr_assert_neq(test_run_experiment(ini, b, 0, NULL, 0, &e), 0);
    unsetenv("CLPDD_TEST_CRASH_AFTER");
    cr_assert_eq(test_run_experiment(ini, b, 1, NULL, 0, &e), 0, "%s", e.msg);
    cr_expect(same_bytes(a, b, "distilled.safetensors"), "the resumed run ends with the uninterrupted run's images and labels");
    char *ma = test_read_text(a, "metrics.json"), *mb = test_read_text(b, "metrics.json");
    cr_expect_eq(test_json_number(mb, "\"accuracy_hard_labels\": {", "\"mean\": "),
                 test_json_number(ma, "\"accuracy_hard_labels\": {", "\"mean\": "));
    free(ma), free(mb);
    test_tmpdir_remove(dir);
}
