/* The neighbours baseline ([eval] baseline_neighbors, docs/design.md §7): the greedy same-class
 * nearest-real-image assignment (core/eval/neighbors.h) on hand-made cases and against a brute-force
 * reference of its definition, and a tiny real run whose distilled images ARE real training images
 * (init = real, steps = 0): each finds itself, and the neighbours score is the set's own score. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/experiment.h"
#include "data/dataset.h"
#include "distill/run.h"
#include "eval/neighbors.h"
#include "io/safetensors.h"
#include "support.h"
#include "util/util.h"

/* class 0: (0,0) (1,0) (5,0); class 1: (0,10) (0,11) */
static const float real2[] = {0, 0, 1, 0, 5, 0, 0, 10, 0, 11};
static const int32_t real2_y[] = {0, 0, 0, 1, 1};

Test(neighbors, contested_real_image_goes_to_the_closer_distilled_one) {
    /* distilled 0 (class 0) and 2 (class 0) both want real row 0; 2 is closer and wins although it
       comes later; distilled 1 (class 1) is equidistant from rows 3 and 4: the lower row */
    const float phi[] = {0.2f, 0, 0, 10.5f, 0.1f, 0};
    const int32_t y[] = {0, 1, 0};
    int pick[3];
    double dist[3];
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_nearest_real(real2, real2_y, 5, phi, y, 3, 2, 2, pick, dist, &e), 0, "%s", e.msg);
    cr_expect_eq(pick[2], 0);
    cr_expect_eq(pick[0], 1, "the contested image's loser takes its next nearest, row 1 (got %d)", pick[0]);
    cr_expect_eq(pick[1], 3, "a tie goes to the lower real row (got %d)", pick[1]);
    cr_expect(fabs(dist[2] - 0.1) < 1e-7 && fabs(dist[0] - 0.8) < 1e-7 && fabs(dist[1] - 0.5) < 1e-7, "%g %g %g", dist[0],
              dist[1], dist[2]);
}

Test(neighbors, tie_between_distilled_images_goes_to_the_lower_index) {
    /* distilled 0 and 1 are both at distance 1 from real row 0: the lower distilled index takes it */
    const float phi[] = {0, 1, 0, -1};
    const int32_t y[] = {0, 0};
    int pick[2];
    double dist[2];
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_nearest_real(real2, real2_y, 5, phi, y, 2, 2, 2, pick, dist, &e), 0, "%s", e.msg);
    cr_expect_eq(pick[0], 0);
    cr_expect_eq(pick[1], 1);
    cr_expect(fabs(dist[1] - sqrt(2.0)) < 1e-7, "%g", dist[1]);
}

Test(neighbors, only_the_same_class) {
    /* a class-1 image right on top of a class-0 real image still gets a class-1 one */
    const float phi[] = {0, 0};
    const int32_t y[] = {1};
    int pick[1];
    double dist[1];
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_nearest_real(real2, real2_y, 5, phi, y, 1, 2, 2, pick, dist, &e), 0, "%s", e.msg);
    cr_expect_eq(pick[0], 3);
    cr_expect(fabs(dist[0] - 10) < 1e-7, "%g", dist[0]);
}

Test(neighbors, errors_name_the_problem) {
    const float phi[] = {0, 9, 0, 10, 0, 11};
    int pick[3];
    double dist[3];
    clpdd_err e = {{0}};
    /* three class-1 images but two class-1 real images */
    const int32_t y[] = {1, 1, 1};
    cr_expect_neq(clpdd_nearest_real(real2, real2_y, 5, phi, y, 3, 2, 2, pick, dist, &e), 0);
    cr_expect(strstr(e.msg, "class 1 has 2 real training images but the set has 3") && strstr(e.msg, "baseline_neighbors"),
              "%s", e.msg);
    const int32_t bad[] = {0, 2, 0};
    cr_expect_neq(clpdd_nearest_real(real2, real2_y, 5, phi, bad, 3, 2, 2, pick, dist, &e), 0);
    cr_expect(strstr(e.msg, "distilled image 1 has label 2; expected 0..1"), "%s", e.msg);
    const float nan_phi[] = {0, NAN};
    const int32_t y0[] = {0};
    cr_expect_neq(clpdd_nearest_real(real2, real2_y, 5, nan_phi, y0, 1, 2, 2, pick, dist, &e), 0);
    cr_expect(strstr(e.msg, "not finite"), "%s", e.msg);
}

/* the definition, O(m² N): repeatedly the free (i, j) same-class pair of least distance, ties by (i, j) */
static void reference(const float *X, const int32_t *yx, int N, const float *phi, const int32_t *y, int m, int d, int *pick) {
    char *used = calloc((size_t)N, 1);
    for (int i = 0; i < m; i++) pick[i] = -1;
    for (int round = 0; round < m; round++) {
        double best = INFINITY;
        int bi = -1, bj = -1;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < N && pick[i] < 0; j++) {
                if (used[j] || yx[j] != y[i]) continue;
                double s = 0;
                for (int k = 0; k < d; k++) s += ((double)phi[i * d + k] - X[j * d + k]) * ((double)phi[i * d + k] - X[j * d + k]);
                if (s < best) best = s, bi = i, bj = j; /* strict: the first (i, j) of equal distance stays */
            }
        pick[bi] = bj, used[bj] = 1;
    }
    free(used);
}

Test(neighbors, matches_the_definition_and_is_deterministic) {
    enum { N = 120, m = 24, d = 5, C = 4 };
    float X[N * d], phi[m * d];
    int32_t yx[N], y[m];
    clpdd_rng r = {42};
    /* coarse values (multiples of 1/4) so that equal distances, and so ties, are common */
    for (int i = 0; i < N * d; i++) X[i] = (float)clpdd_rng_below(&r, 8) / 4;
    for (int i = 0; i < m * d; i++) phi[i] = (float)clpdd_rng_below(&r, 8) / 4;
    for (int j = 0; j < N; j++) yx[j] = (int32_t)clpdd_rng_below(&r, C);
    for (int i = 0; i < m; i++) y[i] = i % C;
    int pick[m], again[m], want[m];
    double dist[m], dist2[m];
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_nearest_real(X, yx, N, phi, y, m, d, C, pick, dist, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_nearest_real(X, yx, N, phi, y, m, d, C, again, dist2, &e), 0, "%s", e.msg);
    reference(X, yx, N, phi, y, m, d, want);
    for (int i = 0; i < m; i++) {
        cr_expect_eq(pick[i], want[i], "distilled %d: row %d, the definition gives %d", i, pick[i], want[i]);
        cr_expect_eq(pick[i], again[i]);
        cr_expect_eq(dist[i], dist2[i]);
        cr_expect_eq(yx[pick[i]], y[i], "same class");
        for (int k = 0; k < i; k++) cr_expect_neq(pick[i], pick[k], "row %d taken twice", pick[i]);
    }
}

/* ---- a tiny real run whose distilled images are real training images ---- */

static char tmp[64];
static void setup_tmp(void) { test_tmpdir_make(tmp, sizeof tmp, "neighbors"); }
static void teardown_tmp(void) { test_tmpdir_remove(tmp); }

static int run_ini(const char *ini, const char *out, const char *const *sets, int n, int force, clpdd_err *e) {
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    int rc = clpdd_experiment_load(&x, ini, sets, n, &dirs, e);
    cr_assert_eq(rc, 0, "%s", e->msg);
    clpdd_run_opts o = {clpdd_ops_cpu(), out, 1, 0, force};
    rc = clpdd_run(&x, &o, e);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    return rc;
}

static char *slurp(const char *dir, const char *name) {
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *d;
    size_t n;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(path, &d, &n, &e), 0, "%s", e.msg);
    return (char *)d;
}

/* the run's distilled images (m, 1, 28, 28) */
static float *distilled_images(const char *out, int m) {
    char path[300];
    snprintf(path, sizeof path, "%s/distilled.safetensors", out);
    clpdd_st_file *f;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_st_open(path, &f, &e), 0, "%s", e.msg);
    const clpdd_st_tensor *t = clpdd_st_find(f, "images");
    cr_assert(t && t->shape[0] == m);
    float *img = malloc((size_t)m * 28 * 28 * sizeof(float));
    cr_assert_eq(clpdd_st_read_f32(f, t, img, &e), 0, "%s", e.msg);
    clpdd_st_close(f);
    return img;
}

TestSuite(neighbors_run, .init = setup_tmp, .fini = teardown_tmp, .timeout = 600);

Test(neighbors_run, real_images_find_themselves) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    enum { ipc = 2, m = 20 };
    char ini[128], out[128];
    snprintf(ini, sizeof ini, "%s/n.ini", tmp);
    snprintf(out, sizeof out, "%s/run", tmp);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f, "[experiment]\nseed = 5\n[data]\ntrain_limit = 1200\ntest_limit = 600\nval_size = 200\ncache_dir = %s/cache\n"
               "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = 0.3\n[loss]\nname = ce\n"
               "[distill]\nipc = %d\nsteps = 0\ninit = real\n[eval]\nseeds = 2\nwd = 1e-3, 1e-1\n"
               "baseline_full = false\nbaseline_centroids = false\n", tmp, ipc);
    fclose(f);
    clpdd_err e = {{0}};
    cr_assert_eq(run_ini(ini, out, NULL, 0, 0, &e), 0, "%s", e.msg);
    char *metrics = slurp(out, "metrics.json");
    double own = test_json_number(metrics, "\"accuracy\"", "\"mean\": ");
    double nb = test_json_number(metrics, "\"neighbors\"", "\"mean\": ");
    cr_expect_eq(own, nb, "the neighbours of real images are those images: %.6f vs the set's own %.6f", nb, own);
    cr_expect(strstr(metrics, "\"random_real\"") && !strstr(metrics, "\"centroids\""), "%s", metrics);
    /* neighbors.csv: each distilled image's own training row at distance 0 */
    char *csv = slurp(out, "neighbors.csv");
    cr_assert(!strncmp(csv, "distilled_index,train_row,label,distance\n", 41), "%s", csv);
    int rows[m];
    const char *p = strchr(csv, '\n') + 1;
    for (int i = 0; i < m; i++) {
        int idx, label;
        double dist;
        cr_assert_eq(sscanf(p, "%d,%d,%d,%lf", &idx, &rows[i], &label, &dist), 4, "line %d: %s", i + 2, p);
        cr_expect_eq(idx, i);
        cr_expect_eq(label, i / ipc, "class-major labels");
        cr_expect_eq(dist, 0.0, "distilled %d is real training row %d at feature distance %g", i, rows[i], dist);
        p = strchr(p, '\n') + 1;
    }
    cr_expect_eq(*p, 0, "m lines");
    /* the rows are the distilled images themselves, pixel for pixel */
    clpdd_dataset ds;
    memset(&ds, 0, sizeof ds);
    cr_assert_eq(clpdd_dataset_load_idx(&ds, "fashion-mnist", "/usr/share/datasets/fashion-mnist", "train", 1200, 0, &e), 0,
                 "%s", e.msg);
    float *picked = malloc((size_t)m * 28 * 28 * sizeof(float)), *img = distilled_images(out, m);
    cr_assert_eq(clpdd_dataset_read_float(&ds, rows, 0, m, picked, &e), 0, "%s", e.msg);
    cr_expect_eq(memcmp(picked, img, (size_t)m * 28 * 28 * sizeof(float)), 0, "the neighbours are the images");
    char png[300];
    snprintf(png, sizeof png, "%s/neighbors.png", out);
    cr_expect_eq(access(png, R_OK), 0);
    free(picked), free(img), free(csv), free(metrics);
    clpdd_dataset_free(&ds);
    /* off, replacing the run (--force): no entry, and the old run's neighbour files are gone */
    const char *off[] = {"eval.baseline_neighbors=false", "eval.baseline_random=false"};
    cr_assert_eq(run_ini(ini, out, off, 2, 1, &e), 0, "%s", e.msg);
    metrics = slurp(out, "metrics.json");
    cr_expect(!strstr(metrics, "\"neighbors\""), "%s", metrics);
    snprintf(png, sizeof png, "%s/neighbors.csv", out);
    cr_expect_neq(access(png, F_OK), 0);
    snprintf(png, sizeof png, "%s/neighbors.png", out);
    cr_expect_neq(access(png, F_OK), 0);
    free(metrics);
}

Test(neighbors_run, eval_of_a_set_reports_them_under_fast) {
    /* clpdd eval (the same evaluation phase) under the fast protocol: every probe seed scores the
       selection, as it scores the set */
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char ini[128], out[128], args[600], log[8192];
    snprintf(ini, sizeof ini, "%s/n.ini", tmp);
    snprintf(out, sizeof out, "%s/run", tmp);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f, "[experiment]\nseed = 5\n[data]\ntrain_limit = 1200\ntest_limit = 600\ncache_dir = %s/cache\n"
               "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = 0.3\n[loss]\nname = ce\n"
               "[distill]\nipc = 1\nsteps = 0\ninit = real\n[eval]\nprotocol = fast\nseeds = 2\nepochs = 50\n"
               "baseline_full = false\nbaseline_centroids = false\nbaseline_random = false\n", tmp);
    fclose(f);
    clpdd_err e = {{0}};
    cr_assert_eq(run_ini(ini, out, NULL, 0, 0, &e), 0, "%s", e.msg);
    snprintf(args, sizeof args, "eval '%s' --output '%s/ev' --quiet", out, tmp);
    cr_assert_eq(test_driver(args, log, sizeof log), 0, "%s", log);
    snprintf(out, sizeof out, "%s/ev", tmp);
    char *metrics = slurp(out, "metrics.json");
    const char *nb = strstr(metrics, "\"neighbors\"");
    cr_assert_not_null(nb, "%s", metrics);
    cr_expect(strstr(nb, "\"per_seed\": [") && strstr(nb, "\"protocol\": \"fast\""), "%s", nb);
    double own[2], theirs[2];
    own[0] = test_json_number(metrics, "\"accuracy\"", "\"per_seed\": [");
    theirs[0] = test_json_number(metrics, "\"neighbors\"", "\"per_seed\": [");
    own[1] = test_json_number(strchr(strstr(metrics, "\"accuracy\""), '[') + 1, ",", ", ");
    theirs[1] = test_json_number(strchr(nb, '[') + 1, ",", ", ");
    cr_expect(own[0] == theirs[0] && own[1] == theirs[1], "per seed: set %g %g, neighbours %g %g", own[0], own[1],
              theirs[0], theirs[1]);
    free(metrics);
    char csv[300];
    snprintf(csv, sizeof csv, "%s/neighbors.csv", out);
    cr_expect_eq(access(csv, R_OK), 0);
}
