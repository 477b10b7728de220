/* A tiny end-to-end distillation on the real Fashion-MNIST files and the real mnist-vit
 * weights: every output is written, the distilled set beats random real images, the feature
 * cache is reused, and two runs with one seed give the same distilled images on the CPU.
 * Skips (with the reason) when the weights or the dataset are absent. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/experiment.h"
#include "distill/run.h"
#include "support.h"
#include "util/util.h"

static void run_once(const char *dir, const char *cache, const char *extra, char **metrics) {
    char ini[512];
    snprintf(ini, sizeof ini, "%s/tiny.ini", dir);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[experiment]\nseed = 1\n[data]\ntrain_limit = 2000\ntest_limit = 2000\ncache_dir = %s\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = 0.3\n[loss]\nname = ce\n"
            "[distill]\nipc = 1\nsteps = 40\nreal_batch = 512\nlog_every = 5\n[eval]\nseeds = 3\nepochs = 300\nbaseline_full = true\nfull_epochs = 5\n",
            cache);
    if (extra) fputs(extra, f); /* a [section] line re-opens that section */
    fclose(f);
    char out[512];
    snprintf(out, sizeof out, "%s/run", dir);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_experiment_load(&x, ini, NULL, 0, &dirs, &e), 0, "%s", e.msg);
    clpdd_run_opts o = {clpdd_ops_cpu(), out, 1, 0, 1}; /* --force: each call replaces the last run */
    cr_assert_eq(clpdd_run(&x, &o, &e), 0, "%s", e.msg);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    const char *files[] = {"config.ini", "metrics.json", "log.csv", "distilled.safetensors", "distilled.png", "loss.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        struct stat st;
        cr_expect(stat(p, &st) == 0 && st.st_size > 0, "missing or empty %s", p);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/metrics.json", out);
    uint8_t *data;
    size_t len;
    cr_assert_eq(clpdd_read_file(p, &data, &len, &e), 0, "%s", e.msg);
    *metrics = (char *)data;
}

Test(run, tiny_distillation_end_to_end, .timeout = 600) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char dir[] = "/tmp/clpdd-test-run-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cache[600], a[700], b[700];
    snprintf(cache, sizeof cache, "%s/cache", dir);

    char *m1;
    run_once(dir, cache, NULL, &m1);
    double acc = test_json_number(m1, "\"accuracy\"", "\"mean\": ");
    double rnd = test_json_number(m1, "\"random_real\"", "\"mean\": ");
    double diag = test_json_number(m1, "\"solver_diagnostic\"", "\"accuracy\": ");
    double full = test_json_number(m1, "\"full_data\"", "\"mean\": ");
    cr_expect(full > rnd, "the full-data probe %.4f must beat 10 random images %.4f", full, rnd);
    cr_expect(strstr(m1, "\"from_cache\": false"), "first run extracts features");
    cr_expect(acc > rnd, "distilled %.4f must beat random real %.4f", acc, rnd);
    cr_expect(acc > 0.3 && acc <= 1.0, "accuracy %.4f out of the plausible range", acc);
    cr_expect(diag > 0.1 && diag <= 1.0, "ridge diagnostic %.4f", diag);
    cr_expect(strstr(m1, "\"device\": \"cpu\""));
    cr_expect(strstr(m1, "\"peak_host_mb\""));
    snprintf(a, sizeof a, "%s/run/distilled.safetensors", dir);
    snprintf(b, sizeof b, "%s/first.safetensors", dir);
    cr_assert_eq(rename(a, b), 0);

    char *m2;
    run_once(dir, cache, NULL, &m2); /* same seed: cache hit, same images */
    cr_expect(strstr(m2, "\"from_cache\": true"), "second run must reuse the feature cache");
    size_t la, lb;
    uint8_t *da = test_read_all(a, &la), *db = test_read_all(b, &lb);
    cr_expect(la == lb && memcmp(da, db, la) == 0, "two CPU runs with one seed must give identical distilled images");
    free(da);
    free(db);
    /* the inference chunk size is no input of the features: still a cache hit */
    char *m4;
    run_once(dir, cache, "[backbone]\nbatch = 17\n", &m4);
    cr_expect(strstr(m4, "\"from_cache\": true"), "backbone.batch must not invalidate the feature cache");
    free(m4);
    /* an input of the features changes (the backbone's normalisation): a new cache entry */
    char *m3;
    run_once(dir, cache, "[backbone]\nstd = 0.3\n", &m3);
    cr_expect(strstr(m3, "\"from_cache\": false"), "a changed backbone key must rebuild the features");
    char count[700];
    snprintf(count, sizeof count, "test $(ls %s/[0-9a-f]*.safetensors | wc -l) -eq 4", cache);
    cr_expect_eq(system(count), 0, "train and test caches for two backbone configurations");
    free(m1);
    free(m2);
    free(m3);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp >/dev/null && exit 1; rm -rf '%s'", cache, dir);
    cr_expect_eq(system(cmd), 0, "no temporary files may be left in the cache");
}

/* LGM's machinery through the whole loop: DSA on two synthetic copies and on the real batch
   (whose features are then recomputed every step), the pyramid parameterisation adding levels,
   the chunked encoder — a few steps, every output written, the loss finite. */
Test(run, dsa_pyramid_chunked_end_to_end, .timeout = 600) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char dir[] = "/tmp/clpdd-test-run2-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    char ini[700];
    snprintf(ini, sizeof ini, "%s/lgm.ini", dir);
    FILE *f = fopen(ini, "w");
    fprintf(f,
            "[experiment]\nseed = 2\n[data]\ntrain_limit = 500\ntest_limit = 300\nval_size = 100\ncache_dir = %s\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n"
            "[distill]\nipc = 2\nsteps = 6\nreal_batch = 64\nparam = pyramid\ninit = noise\npyramid_every = 2\n"
            "augment = dsa\naugs_per_batch = 2\nchunk = 7\nlr = 0.05\n[eval]\nseeds = 1\nepochs = 20\nprotocol = lgm\n",
            cache);
    fclose(f);
    char out[700];
    snprintf(out, sizeof out, "%s/run", dir);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_experiment_load(&x, ini, NULL, 0, &dirs, &e), 0, "%s", e.msg);
    clpdd_run_opts o = {clpdd_ops_cpu(), out, 1, 0, 0};
    cr_assert_eq(clpdd_run(&x, &o, &e), 0, "%s", e.msg);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    char p[800];
    snprintf(p, sizeof p, "%s/metrics.json", out);
    uint8_t *data;
    size_t len;
    cr_assert_eq(clpdd_read_file(p, &data, &len, &e), 0, "%s", e.msg);
    double last = test_json_number((char *)data, "\"loss\"", "\"last\": ");
    cr_expect(isfinite(last) && last > 0, "last loss %g", last);
    double acc = test_json_number((char *)data, "\"accuracy\"", "\"mean\": ");
    cr_expect(acc > 0 && acc <= 1, "accuracy under the lgm protocol %g", acc);
    cr_expect(strstr((char *)data, "\"protocol\": \"lgm\""), "the protocol is reported");
    free(data);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* the resume tests' tiny run into dir/r.ini (path into ini): plugins are its [solver] (and
   [loss]) sections, a checkpoint every 5 steps of 12 */
static void write_resume_ini(const char *dir, const char *plugins, int log_every, char *ini, size_t n) {
    snprintf(ini, n, "%s/r.ini", dir);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[experiment]\nseed = 4\n[data]\ntrain_limit = 500\ntest_limit = 300\nval_size = 100\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n%s"
            "[distill]\nipc = 1\nsteps = 12\nreal_batch = 128\ncheckpoint_every = 5\nlog_every = %d\n[eval]\nseeds = 1\nepochs = 10\n",
            dir, plugins, log_every);
    fclose(f);
}

/* the uninterrupted run a and the run b resumed after a crash end the same: the distilled images
   byte for byte, and every log row (the seconds column aside), the checkpoint's step included */
static void expect_same_run(const char *a, const char *b) {
    char pa[800], pb[800];
    snprintf(pa, sizeof pa, "%s/distilled.safetensors", a);
    snprintf(pb, sizeof pb, "%s/distilled.safetensors", b);
    size_t la, lb;
    uint8_t *da = test_read_all(pa, &la), *db = test_read_all(pb, &lb);
    cr_expect(la == lb && memcmp(da, db, la) == 0, "the resumed run must end with the uninterrupted run's images");
    free(da), free(db);
    char *rows_a = test_log_rows(a), *rows_b = test_log_rows(b);
    cr_expect_str_eq(rows_b, rows_a, "the resumed run's log.csv must have the uninterrupted run's rows");
    cr_expect(strstr(rows_a, "\n5,"), "step 5, the checkpoint's step, is a log row: %s", rows_a);
    free(rows_a), free(rows_b);
}

/* a (n bytes) = dir/whole: the run of ini start to end; b = dir/crashed: the same run killed after
   step 7 ($CLPDD_TEST_CRASH_AFTER), its failure message in e */
static void run_whole_and_crashed(const char *dir, const char *ini, char *a, char *b, size_t n, clpdd_err *e) {
    snprintf(a, n, "%s/whole", dir);
    snprintf(b, n, "%s/crashed", dir);
    cr_assert_eq(test_run_experiment(ini, a, 0, NULL, 0, e), 0, "%s", e->msg);
    setenv("CLPDD_TEST_CRASH_AFTER", "7", 1);
    cr_assert_neq(test_run_experiment(ini, b, 0, NULL, 0, e), 0);
    unsetenv("CLPDD_TEST_CRASH_AFTER");
}

/* A run that crashes after step 7 (the test seam CLPDD_TEST_CRASH_AFTER) and is resumed from its
   step-5 checkpoint ends with exactly the images of the uninterrupted run; the checkpoint is gone
   once the run has finished, and one of another configuration is refused. */
Test(run, resume_after_a_crash_is_bit_for_bit, .timeout = 600) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char dir[] = "/tmp/clpdd-test-run3-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char ini[700], a[700], b[700], ck[800];
    write_resume_ini(dir, "[solver]\nname = ridge\n[loss]\nname = ce\n", 5, ini, sizeof ini);
    clpdd_err e = {{0}};
    run_whole_and_crashed(dir, ini, a, b, sizeof a, &e);
    cr_expect(strstr(e.msg, "simulated crash after step 7"), "%s", e.msg);
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", b);
    cr_assert(access(ck, R_OK) == 0, "the step-5 checkpoint must exist after the crash");
    const char *other[] = {"distill.lr=0.02"};
    cr_expect_neq(test_run_experiment(ini, b, 1, other, 1, &e), 0, "a checkpoint of another configuration is refused");
    cr_expect(strstr(e.msg, "another configuration"), "%s", e.msg);
    cr_expect(strstr(e.msg, "distill.lr = 0.02"), "the refusal names the key that differs: %s", e.msg);
    /* the same configuration spelled otherwise: the INI's path, a key set to its default value */
    char ini2[800];
    snprintf(ini2, sizeof ini2, "%s/./r.ini", dir);
    const char *same[] = {"distill.adam_b1=0.9"};
    cr_assert_eq(test_run_experiment(ini2, b, 1, same, 1, &e), 0, "%s", e.msg);
    cr_expect(access(ck, F_OK) != 0, "a finished run removes its checkpoint");
    expect_same_run(a, b);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* LGM draws new random heads every step: keyed by the step (set_step, ABI 1.5), not by the
   calls a process has made, so a run resumed after a crash draws the heads the uninterrupted
   run drew and ends with its images and its log */
Test(run, lgm_resume_draws_the_same_heads, .timeout = 600) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char dir[] = "/tmp/clpdd-test-run4-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char ini[700], a[700], b[700];
    write_resume_ini(dir, "[solver]\nname = lgm\n", 1, ini, sizeof ini);
    clpdd_err e = {{0}};
    run_whole_and_crashed(dir, ini, a, b, sizeof a, &e);
    cr_assert_eq(test_run_experiment(ini, b, 1, NULL, 0, &e), 0, "%s", e.msg);
    expect_same_run(a, b); /* every step logged: each step's loss after the resume is the uninterrupted run's */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
