/* Learned τ and λ end to end (docs/design.md §1, core/distill/learned.h), on the real
 * Fashion-MNIST files and mnist-vit weights: log.csv has one column per learned scalar, metrics.json
 * their initial and final values, config.ini keeps `learn` and says how to rerun them fixed,
 * config-fixed.ini reruns them fixed, and a run that crashes and resumes is bit for bit the
 * uninterrupted one (the scalars and their Adam moments travel in the checkpoint).
 * Skips (with the reason) when the weights or the dataset are absent. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/experiment.h"
#include "distill/run.h"
#include "support.h"
#include "util/util.h"

/* "key": {"init": a, "final": b} of metrics.json's "learned" */
static void learned_values(const char *metrics, const char *key, double *init, double *final) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\": {\"init\": ", key);
    const char *p = strstr(metrics, pat);
    cr_assert_not_null(p, "metrics.json lacks learned %s", key);
    cr_assert_eq(sscanf(p + strlen(pat), "%lf, \"final\": %lf", init, final), 2);
}

static int same_file(const char *a, const char *b, const char *name) {
    char *x = test_read_text(a, name), *y = test_read_text(b, name);
    int same = strcmp(x, y) == 0;
    free(x), free(y);
    return same;
}

Test(run_learned, learned_tau_and_lambda_end_to_end, .timeout = 900) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char dir[] = "/tmp/clpdd-test-learned-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char ini[700], a[700], b[700], c[700], fixed[800];
    snprintf(ini, sizeof ini, "%s/r.ini", dir);
    FILE *f = fopen(ini, "w");
    fprintf(f,
            "[experiment]\nseed = 4\n[data]\ntrain_limit = 500\ntest_limit = 300\nval_size = 100\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = learn:0.5\n[loss]\nname = ce\ntemperature = learn\n"
            "[distill]\nipc = 1\nsteps = 12\nreal_batch = 128\ncheckpoint_every = 5\nlog_every = 5\nlearn_lr = 0.05\n"
            "[eval]\nseeds = 1\nepochs = 10\n",
            dir);
    fclose(f);
    snprintf(a, sizeof a, "%s/whole", dir);
    snprintf(b, sizeof b, "%s/crashed", dir);
    clpdd_err e = {{0}};
    cr_assert_eq(test_run_experiment(ini, a, 0, NULL, 0, &e), 0, "%s", e.msg);

    /* log.csv: a column per learned scalar, starting at the initial values */
    char *csv = test_read_text(a, "log.csv");
    const char *header = "step,loss,seconds,solver.lambda,loss.temperature\n";
    cr_expect(!strncmp(csv, header, strlen(header)), "header: %s", csv);
    double l1, t1;
    cr_assert_eq(sscanf(strchr(csv, 10) + 1, "1,%*[^,],%*[^,],%lf,%lf", &l1, &t1), 2, "%s", csv);
    cr_expect_float_eq(l1, 0.5, 1e-9);
    cr_expect_float_eq(t1, 0.1, 1e-9);
    free(csv);

    /* metrics.json: init and final; the scalars moved, by at most lr per step in log space */
    char *metrics = test_read_text(a, "metrics.json");
    double li, lf, ti, tf;
    learned_values(metrics, "solver.lambda", &li, &lf);
    learned_values(metrics, "loss.temperature", &ti, &tf);
    cr_expect_float_eq(li, 0.5, 1e-9);
    cr_expect_float_eq(ti, 0.1, 1e-9);
    cr_expect(lf != li && tf != ti, "the scalars must move: lambda %g, tau %g", lf, tf);
    cr_expect_leq(fabs(log(lf / li)), 12 * 0.05 * 1.0001, "Adam moves log lambda at most lr per step");
    cr_expect_leq(fabs(log(tf / ti)), 12 * 0.05 * 1.0001);
    free(metrics);

    /* config.ini keeps learn and says the --set that reruns it fixed; config-fixed.ini does */
    char *cfg = test_read_text(a, "config.ini"), want[200];
    cr_expect(strstr(cfg, "lambda = learn:0.5\n"), "%s", cfg);
    cr_expect(strstr(cfg, "temperature = learn\n"), "%s", cfg);
    snprintf(want, sizeof want, "--set solver.lambda=%.9g --set loss.temperature=%.9g", lf, tf);
    cr_expect(strstr(cfg, want), "config.ini lacks '%s': %s", want, cfg);
    free(cfg);
    snprintf(fixed, sizeof fixed, "%s/config-fixed.ini", a);
    snprintf(c, sizeof c, "%s/fixed", dir);
    cr_assert_eq(test_run_experiment(fixed, c, 0, NULL, 0, &e), 0, "config-fixed.ini must run: %s", e.msg);
    char *fixed_log = test_read_text(c, "log.csv");
    cr_expect(!strncmp(fixed_log, "step,loss,seconds\n", 18), "a fixed run learns nothing: %s", fixed_log);
    free(fixed_log);
    char *fixed_cfg = test_read_text(c, "config.ini");
    snprintf(want, sizeof want, "lambda = %.9g", lf);
    cr_expect(strstr(fixed_cfg, want), "the rerun used the learned lambda: %s", fixed_cfg);
    free(fixed_cfg);

    /* a crash after step 7, resumed from the step-5 checkpoint: bit for bit the uninterrupted run */
    setenv("CLPDD_TEST_CRASH_AFTER", "7", 1);
    cr_assert_neq(test_run_experiment(ini, b, 0, NULL, 0, &e), 0);
    unsetenv("CLPDD_TEST_CRASH_AFTER");
    cr_assert_eq(test_run_experiment(ini, b, 1, NULL, 0, &e), 0, "%s", e.msg);
    char pa[800], pb[800];
    snprintf(pa, sizeof pa, "%s/distilled.safetensors", a);
    snprintf(pb, sizeof pb, "%s/distilled.safetensors", b);
    size_t la, lb;
    uint8_t *da, *db;
    cr_assert_eq(clpdd_read_file(pa, &da, &la, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_read_file(pb, &db, &lb, &e), 0, "%s", e.msg);
    cr_expect(la == lb && memcmp(da, db, la) == 0, "the resumed run must end with the uninterrupted run's images");
    free(da), free(db);
    char *ra = test_log_rows(a), *rb = test_log_rows(b);
    cr_expect_str_eq(rb, ra, "the resumed run's log.csv (learned columns included) must be the uninterrupted run's");
    free(ra), free(rb);
    cr_expect(same_file(a, b, "config-fixed.ini"), "the same learned values after a resume");
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}
