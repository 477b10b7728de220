/* The phases a command is built from (core/eval/run_data.h, core/distill/run.h): the device is
 * the caller's to give (every entry point refuses a NULL opts->ops with a message naming the
 * mistake, before touching any file), and the data phases hand out what a run distils from: the
 * distillation targets and the validation split, disjoint, covering the training split, each
 * row the cached feature of its image, read back from the cache clpdd_run_features wrote. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "config/experiment.h"
#include "distill/run.h"
#include "eval/run_data.h"
#include "support.h"
#include "util/util.h"

/* <dir>/tiny.ini on Fashion-MNIST (2000 training images, 200 of them the validation split) */
static void load_tiny(clpdd_experiment *x, clpdd_plugin_dirs *dirs, const char *dir) {
    char ini[512];
    snprintf(ini, sizeof ini, "%s/tiny.ini", dir);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[experiment]\nseed = 1\noutput = %s/run\n[data]\ntrain_limit = 2000\ntest_limit = 300\nval_size = 200\n"
            "cache_dir = %s/cache\n[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n"
            "[distill]\nipc = 1\nsteps = 2\n",
            dir, dir);
    fclose(f);
    clpdd_plugin_dirs_init(dirs, NULL);
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_experiment_load(x, ini, NULL, 0, dirs, &e), 0, "%s", e.msg);
}

Test(run_phases, every_entry_point_needs_the_callers_device) {
    char dir[256];
    test_tmpdir_make(dir, sizeof dir, "phases-ops");
    clpdd_experiment x;
    clpdd_plugin_dirs dirs;
    load_tiny(&x, &dirs, dir);
    clpdd_run_opts o = {.ops = NULL, .quiet = 1};
    clpdd_err e = {{0}};
    cr_expect_eq(clpdd_run(&x, &o, &e), -1);
    cr_expect(strstr(e.msg, "clpdd_run called without a device") != NULL, "%s", e.msg);
    cr_expect_eq(clpdd_run(&x, NULL, &e), -1);
    float image = 0.5f;
    int32_t label = 0;
    clpdd_image_set set = {.images = &image, .labels = &label, .m = 1, .c = 1, .H = 1, .W = 1, .source = "a test"};
    cr_expect_eq(clpdd_run_eval(&x, &set, &o, &e), -1);
    cr_expect(strstr(e.msg, "clpdd_run_eval called without a device") != NULL, "%s", e.msg);
    cr_expect_eq(clpdd_run_features(&x, &o, 0, 0, 0, &e), -1);
    cr_expect(strstr(e.msg, "clpdd_run_features called without a device") != NULL, "%s", e.msg);
    clpdd_bench_opts b = {.steps = 1, .classes = 10};
    clpdd_bench_result res;
    cr_expect_eq(clpdd_run_bench(&x, &o, &b, &res, &e), -1);
    cr_expect(strstr(e.msg, "without a device") != NULL, "%s", e.msg);
    /* refused before anything was written: no run directory, no cache */
    char p[600];
    snprintf(p, sizeof p, "%s/run", dir);
    cr_expect_neq(access(p, F_OK), 0, "%s was created", p);
    snprintf(p, sizeof p, "%s/cache", dir);
    cr_expect_neq(access(p, F_OK), 0, "%s was created", p);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    test_tmpdir_remove(dir);
}

Test(run_phases, targets_and_validation_split_from_the_features_cache, .timeout = 600) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char dir[256];
    test_tmpdir_make(dir, sizeof dir, "phases-data");
    clpdd_experiment x;
    clpdd_plugin_dirs dirs;
    load_tiny(&x, &dirs, dir);
    clpdd_err e = {{0}};
    clpdd_run_opts o = {.ops = clpdd_ops_cpu(), .quiet = 1};
    cr_assert_eq(clpdd_run_features(&x, &o, 0, 0, 0, &e), 0, "%s", e.msg);

    clpdd_run_data r;
    cr_assert_eq(clpdd_run_data_open(&r, &x, clpdd_ops_cpu(), "test", 1, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_run_data_load(&r, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_run_data_features(&r, 0, 0, &e), 0, "%s", e.msg);
    cr_expect(r.ftrain.from_cache && r.ftest.from_cache, "clpdd_run_features left no cache a run finds");
    clpdd_run_data_targets(&r);
    cr_assert_eq(r.train.n, 2000);
    cr_expect_eq(r.nv, 200);
    cr_expect_eq(r.N, 1800);
    cr_expect_eq(r.d, r.ftrain.d);
    /* every training image exactly once: a target or a validation image */
    int *seen = calloc(2000, sizeof *seen);
    for (int i = 0; i < r.N; i++) seen[r.target_rows[i]]++;
    for (int i = 0; i < r.nv; i++) seen[r.val_rows[i]]++;
    for (int i = 0; i < 2000; i++) cr_expect_eq(seen[i], 1, "training image %d is used %d times", i, seen[i]);
    free(seen);
    for (int i = 0; i < r.N; i += 97) {
        int row = r.target_rows[i];
        cr_expect_eq(r.target_y[i], r.train.labels[row]);
        cr_expect_eq(memcmp(r.target_x + (size_t)i * r.d, r.ftrain.x + (size_t)row * r.d, (size_t)r.d * sizeof(float)), 0);
    }
    for (int i = 0; i < r.nv; i += 13) {
        int row = r.val_rows[i];
        cr_expect_eq(r.val_y[i], r.train.labels[row]);
        cr_expect_eq(memcmp(r.val_x + (size_t)i * r.d, r.ftrain.x + (size_t)row * r.d, (size_t)r.d * sizeof(float)), 0);
    }
    clpdd_run_data_free(&r);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    test_tmpdir_remove(dir);
}
