/* clpdd report on fixed run directories written here: every number in summary.md is traced to
 * the metrics.json values below (hand-computed means and population stds), the best cell of
 * each column is marked, baselines are rows, failed runs are listed, and hyper-parameters are
 * selected on validation only when every run has a validation score. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sweep/report.h"
#include "util/util.h"

static char root[256];

static void put(const char *dir, const char *name, const char *text) {
    char p[700];
    clpdd_err e;
    cr_assert_eq(clpdd_mkdirs(dir, &e), 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

/* extra metrics.json members of the next fake_run ("" none), e.g. a learned run's "learned" */
static const char *g_extra_json = "";

/* a run directory: config.ini (as clpdd writes it) + metrics.json */
static void fake_run(const char *loss, const char *lambda, int seed, double acc, double acc_std, double rnd, double ms,
                     double val /* < 0: none */) {
    char dir[512], cfg[1024], m[2048], vbuf[128] = "";
    snprintf(dir, sizeof dir, "%s/sw/loss=%s,lambda=%s,seed=%d", root, loss, lambda, seed);
    snprintf(cfg, sizeof cfg,
             "; resolved configuration of sw.ini (every key, defaults marked)\n\n[experiment]\nname = sw-%s-%s-%d\nseed = %d\n"
             "output = %s\n\n[backbone]\nname = vit\n\n[solver]\nname = ridge\nlambda = %s\n\n[loss]\nname = %s\n\n"
             "[distill]\nipc = 1    ; default\nsteps = 5\n",
             loss, lambda, seed, seed, dir, lambda, loss);
    if (val >= 0) snprintf(vbuf, sizeof vbuf, ", \"val\": {\"mean\": %.6f, \"std\": 0.01, \"per_seed\": [%.6f]}", val, val);
    snprintf(m, sizeof m,
             "{\n  \"method\": {\"solver\": \"ridge\", \"loss\": \"%s\", \"backbone\": \"vit\", \"ipc\": 1, \"seed\": %d},\n"
             "  \"eval\": {\"protocol\": \"fast\", \"seeds\": 2, \"epochs\": 10},\n"
             "  \"accuracy\": {\"protocol\": \"fast\", \"mean\": %.6f, \"std\": %.6f, \"per_seed\": [0.1, 0.2]%s},\n"
             "  \"baselines\": {\"random_real\": {\"mean\": %.6f, \"std\": 0.02, \"per_seed\": [0.3, 0.4]}},\n"
             "  \"solver_diagnostic\": null,\n"
             "  \"timing\": {\"ms_per_step\": %.4f, \"steps\": 5, \"total_s\": 1.5},\n"
             "  \"memory\": {\"peak_host_mb\": 100.0, \"peak_device_mb\": null},\n%s  \"device\": \"cpu\"\n}\n",
             loss, seed, acc, acc_std, vbuf, rnd, ms, g_extra_json);
    put(dir, "config.ini", cfg);
    put(dir, "metrics.json", m);
}

static char *slurp(const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/sw/%s", root, name);
    uint8_t *d;
    size_t n;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(p, &d, &n, &e), 0, "%s", e.msg);
    return (char *)d;
}

static void setup_dir(void) {
    snprintf(root, sizeof root, "/tmp/clpdd-test-report-%d", (int)getpid());
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

static void teardown_dir(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
}

static int count_lines_with(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) n++;
    return n;
}

static int rep(int plots, clpdd_report_result *r) {
    char sw[400];
    snprintf(sw, sizeof sw, "%s/sw", root);
    const char *dirs[] = {sw};
    clpdd_report_opts o = {sw, "test sweep", plots, 1};
    clpdd_err e = {{0}};
    int rc = clpdd_report(dirs, 1, &o, r, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    return rc;
}

Test(report, cells_means_best_baselines_failed, .init = setup_dir, .fini = teardown_dir) {
    /* cell (ce, 0.1): seeds 0, 1 → acc 0.55, 0.60: mean 57.50, std 2.50; random 0.30, 0.40 → 35.00 ± 5.00
       cell (ce, 1):   seeds 0, 1 → acc 0.40, 0.50: mean 45.00, std 5.00
       cell (mse, 0.1): one seed → acc 0.30 ± its own std 0.0123 → 30.00 ± 1.23 */
    fake_run("ce", "0.1", 0, 0.55, 0.01, 0.30, 20.0, -1);
    fake_run("ce", "0.1", 1, 0.60, 0.01, 0.40, 22.0, -1);
    fake_run("ce", "1", 0, 0.40, 0.01, 0.30, 10.0, -1);
    fake_run("ce", "1", 1, 0.50, 0.01, 0.40, 12.0, -1);
    fake_run("mse", "0.1", 0, 0.30, 0.0123, 0.30, 30.0, -1);
    char failed[512];
    snprintf(failed, sizeof failed, "%s/sw/loss=mse,lambda=1,seed=0", root);
    put(failed, "error.txt", "step 3: the loss is not finite\n");

    clpdd_report_result r;
    rep(0, &r);
    cr_expect_eq(r.runs, 6);
    cr_expect_eq(r.failed, 1);
    cr_expect_eq(r.cells, 3);
    char *md = slurp("summary.md");
    /* columns: the keys that vary (loss, lambda; seed makes the cells), not the fixed ones */
    cr_expect(strstr(md, "| row | lambda | loss | runs | accuracy % |") != NULL, "header:\n%s", md);
    cr_expect(strstr(md, "| distilled | 0.1 | ce | 2 | **57.50 ± 2.50** |") != NULL, "best cell bold:\n%s", md);
    cr_expect(strstr(md, "| distilled | 1 | ce | 2 | 45.00 ± 5.00 |") != NULL, "%s", md);
    cr_expect(strstr(md, "| distilled | 0.1 | mse | 1 | 30.00 ± 1.23 |") != NULL, "one run: its probe-seed std\n%s", md);
    /* ms/step: the fastest cell bold (mean of 10 and 12 = 11.00) */
    cr_expect(strstr(md, "**11.00**") != NULL, "%s", md);
    cr_expect(strstr(md, "| 21.00 |") != NULL, "%s", md);
    /* baseline row: random real over the 5 runs: 0.30, 0.40, 0.30, 0.40, 0.30 → 34.00 ± 4.90 */
    cr_expect(strstr(md, "| random real images | · | · | 5 | 34.00 ± 4.90 |") != NULL, "%s", md);
    cr_expect(strstr(md, "Fixed in every run:") && strstr(md, "`solver.name = ridge`"), "%s", md);
    cr_expect(strstr(md, "no hyper-parameters were selected") != NULL, "%s", md);
    cr_expect(strstr(md, "## Failed runs (1)") && strstr(md, "the loss is not finite"), "%s", md);
    cr_expect(strstr(md, "Not drawn (--no-plots)") != NULL, "%s", md);
    free(md);
    char *csv = slurp("summary.csv");
    cr_expect_eq(count_lines_with(csv, "\n"), 7, "header + 6 runs:\n%s", csv);
    cr_expect(strstr(csv, "run,solver.lambda,loss.name,experiment.seed,status,") == csv ||
                  strstr(csv, "run,experiment.seed,solver.lambda,loss.name,status,") == csv,
              "every varying key a column:\n%s", csv);
    cr_expect(strstr(csv, ",ok,ridge,ce,vit,1,1,fast,0.6,0.01,,0.4,0.02,,,,22,100,,1.5,cpu,\n") != NULL, "%s", csv);
    cr_expect(strstr(csv, ",failed,") && strstr(csv, "step 3: the loss is not finite"), "%s", csv);
    free(csv);
}

Test(report, selection_on_validation, .init = setup_dir, .fini = teardown_dir) {
    /* lambda is a hyper-parameter of each loss: ce picks lambda 1 on validation (0.70 > 0.65) even
       though lambda 0.1 has the better test accuracy; mse has one cell */
    fake_run("ce", "0.1", 0, 0.60, 0.01, 0.3, 10, 0.65);
    fake_run("ce", "1", 0, 0.50, 0.02, 0.3, 10, 0.70);
    fake_run("mse", "0.1", 0, 0.40, 0.03, 0.3, 10, 0.45);
    clpdd_report_result r;
    rep(0, &r);
    char *md = slurp("summary.md");
    cr_expect(strstr(md, "| ce | lambda=1 | 70.00 | 50.00 ± 2.00 |") != NULL, "ce selects lambda 1:\n%s", md);
    cr_expect(strstr(md, "| mse | lambda=0.1 | 45.00 | 40.00 ± 3.00 |") != NULL, "%s", md);
    free(md);
}

Test(report, plots_with_gnuplot_or_a_note, .init = setup_dir, .fini = teardown_dir) {
    fake_run("ce", "0.1", 0, 0.55, 0.01, 0.30, 20.0, -1);
    fake_run("ce", "1", 0, 0.40, 0.01, 0.30, 10.0, -1);
    fake_run("mse", "0.1", 0, 0.30, 0.01, 0.30, 30.0, -1);
    clpdd_report_result r;
    rep(1, &r);
    char *md = slurp("summary.md");
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        cr_expect_eq(r.plots, 2, "accuracy and accuracy-vs-time (no temperature in these runs)");
        const char *png[] = {"accuracy.png", "accuracy-vs-time.png"};
        for (int i = 0; i < 2; i++) {
            char p[700];
            snprintf(p, sizeof p, "%s/sw/%s", root, png[i]);
            struct stat st;
            cr_expect(stat(p, &st) == 0 && st.st_size > 1000, "%s missing or tiny", p);
        }
        cr_expect(strstr(md, "![accuracy per cell](accuracy.png)") != NULL, "%s", md);
    } else {
        cr_expect_eq(r.plots, 0);
        cr_expect(strstr(md, "gnuplot is not installed") != NULL, "%s", md);
    }
    free(md);
}

/* the bar labels name each cell by the keys that tell cells apart, plugin names first: a key that
   follows from another (a backbone's weights) is left out */
Test(report, bar_labels_only_the_keys_that_tell_cells_apart, .init = setup_dir, .fini = teardown_dir) {
    const char *bb[] = {"vit", "resnet"}, *w[] = {"a.safetensors", "b.safetensors"}, *loss[] = {"ce", "mse"};
    for (int i = 0; i < 4; i++) {
        char dir[512], cfg[1024];
        snprintf(dir, sizeof dir, "%s/sw/p%d", root, i);
        snprintf(cfg, sizeof cfg,
                 "[experiment]\nname = p%d\nseed = 0\noutput = %s\n\n[backbone]\nname = %s\nweights = %s\n\n"
                 "[solver]\nname = ridge\n\n[loss]\nname = %s\n",
                 i, dir, bb[i / 2], w[i / 2], loss[i % 2]);
        put(dir, "config.ini", cfg);
        put(dir, "metrics.json", "{\"accuracy\": {\"mean\": 0.5, \"std\": 0.0, \"per_seed\": [0.5]},"
                                 " \"timing\": {\"ms_per_step\": 1.0}}\n");
    }
    clpdd_report_result r;
    rep(1, &r);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) cr_skip_test("no gnuplot: no plots.gp");
    char *tsv = slurp("plot-cells.tsv"), *gp = slurp("plots.gp");
    cr_expect(strstr(tsv, "\tresnet / ce\t") && strstr(tsv, "\tvit / mse\t"), "%s", tsv);
    cr_expect(strstr(tsv, "safetensors") == NULL, "the weights follow from the backbone: %s", tsv);
    cr_expect(strstr(gp, "set xlabel \"backbone / loss\"") != NULL, "%s", gp);
    free(tsv), free(gp);
}

Test(report, nothing_to_report_is_an_error, .init = setup_dir, .fini = teardown_dir) {
    char d[400];
    snprintf(d, sizeof d, "%s/empty", root);
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_mkdirs(d, &e), 0);
    const char *dirs[] = {d};
    clpdd_report_opts o = {d, NULL, 0, 1};
    clpdd_report_result r;
    cr_expect_eq(clpdd_report(dirs, 1, &o, &r, &e), -1);
    cr_expect(strstr(e.msg, "no run directory") != NULL, "%s", e.msg);
    put(d, "metrics.json", "{\"accuracy\": {\"mean\": 0.5,}}");
    cr_expect_eq(clpdd_report(dirs, 1, &o, &r, &e), -1);
    cr_expect(strstr(e.msg, "metrics.json: not valid JSON") != NULL, "%s", e.msg);
}

/* config.ini goes through the INI reader: a hand-edited file (no spaces around '=', "key: value",
   comments, CRLF line ends, keys in another order) gives the same columns as clpdd's own */
Test(report, hand_edited_config_ini_is_read, .init = setup_dir, .fini = teardown_dir) {
    fake_run("ce", "0.1", 0, 0.55, 0.01, 0.30, 20.0, -1);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sw/edited", root);
    fake_run("ce", "0.1", 1, 0.60, 0.01, 0.40, 22.0, -1); /* its metrics.json, then an edited config.ini */
    char from[600];
    snprintf(from, sizeof from, "%s/sw/loss=ce,lambda=0.1,seed=1", root);
    cr_assert_eq(rename(from, dir), 0);
    put(dir, "config.ini",
        "# edited by hand\r\n[experiment]\r\nseed=1\r\nname: sw-edited\r\n[solver]\r\nlambda=2 ; tried by hand\r\n"
        "name = ridge\r\n\r\n[backbone]\r\nname = vit\r\n[loss]\r\nname = ce\r\n[distill]\r\nipc = 1\r\nsteps = 5\r\n");
    clpdd_report_result r;
    rep(0, &r);
    cr_expect_eq(r.cells, 2);
    char *md = slurp("summary.md");
    cr_expect(strstr(md, "| row | lambda | runs |") != NULL, "only lambda varies besides the seed:\n%s", md);
    cr_expect(strstr(md, "| distilled | 0.1 | 1 | 55.00 ± 1.00 |") != NULL, "%s", md);
    cr_expect(strstr(md, "| distilled | 2 | 1 | **60.00 ± 1.00** |") != NULL, "the edited value, its comment cut:\n%s", md);
    free(md);
}

/* a damaged config.ini stops the report with a message naming the file and the line */
Test(report, damaged_config_ini_names_file_and_line, .init = setup_dir, .fini = teardown_dir) {
    fake_run("ce", "0.1", 0, 0.55, 0.01, 0.30, 20.0, -1);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sw/loss=ce,lambda=0.1,seed=0", root);
    put(dir, "config.ini", "[experiment]\nseed = 0\n[solver]\nlambda 0.1\n");
    char sw[400];
    snprintf(sw, sizeof sw, "%s/sw", root);
    const char *dirs[] = {sw};
    clpdd_report_opts o = {sw, NULL, 0, 1};
    clpdd_report_result r;
    clpdd_err e = {{0}};
    cr_expect_eq(clpdd_report(dirs, 1, &o, &r, &e), -1);
    cr_expect(strstr(e.msg, "seed=0/config.ini:4: syntax error") != NULL, "%s", e.msg);
    put(dir, "config.ini", "[solver]\nlambda = 0.1\nlambda = 1\n");
    cr_expect_eq(clpdd_report(dirs, 1, &o, &r, &e), -1);
    cr_expect(strstr(e.msg, "config.ini:3: [solver] lambda is set twice (first at line 2)") != NULL, "%s", e.msg);
}

/* a run directory copied (or the same sweep collected twice: another output and name in its
   config.ini) is the same run, not another seed: the cell counts it once, with a warning naming
   both directories; summary.md and summary.csv say so */
Test(report, the_same_run_twice_counted_once, .init = setup_dir, .fini = teardown_dir) {
    fake_run("ce", "0.1", 0, 0.55, 0.01, 0.30, 20.0, -1);
    char first[512], copy[512], cmd[2000];
    snprintf(first, sizeof first, "%s/sw/loss=ce,lambda=0.1,seed=0", root);
    snprintf(copy, sizeof copy, "%s/sw/again/loss=ce,lambda=0.1,seed=0", root);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/sw/again' && cp -r '%s' '%s' && sed -i 's/^output = .*/output = elsewhere/; "
                              "s/^name = sw-.*/name = again/' '%s/config.ini'", root, first, copy, copy);
    cr_assert_eq(system(cmd), 0);
    char sw[400], errpath[600];
    snprintf(sw, sizeof sw, "%s/sw", root);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", root);
    const char *dirs[] = {sw};
    clpdd_report_opts o = {sw, "dup", 0, 0};
    clpdd_report_result r;
    clpdd_err e = {{0}};
    fflush(stderr);
    int saved = dup(2);
    cr_assert(freopen(errpath, "w", stderr) != NULL);
    int rc = clpdd_report(dirs, 1, &o, &r, &e);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(rc, 0, "%s", e.msg);
    cr_expect_eq(r.runs, 2);
    cr_expect_eq(r.duplicates, 1);
    cr_expect_eq(r.cells, 1);
    char *md = slurp("summary.md");
    cr_expect(strstr(md, "2 runs (1 finished, 0 failed, 1 the same run as another: counted once) in 1 cell.") != NULL, "%s", md);
    cr_expect(strstr(md, "| distilled | 1 | 55.00 ± 1.00 |") != NULL, "one run (± its probe seeds), not 2 ± 0.00:\n%s", md);
    /* the first by path is kept: ".../sw/again/..." */
    char want[1400];
    snprintf(want, sizeof want, "## The same run twice (1)\n\nThese have the configuration (config.ini but for name, output "
                                "and device) of an earlier run and are not counted:\n\n- `%s`: the same run as `%s`\n", first, copy);
    cr_expect(strstr(md, want) != NULL, "%s\n%s", want, md);
    free(md);
    char *csv = slurp("summary.csv");
    snprintf(want, sizeof want, ",duplicate,");
    cr_expect(strstr(csv, want) != NULL, "%s", csv);
    snprintf(want, sizeof want, "the same run as %s: counted once\"\n", copy);
    cr_expect(strstr(csv, want) != NULL, "%s", csv);
    free(csv);
    uint8_t *log;
    size_t n;
    cr_assert_eq(clpdd_read_file(errpath, &log, &n, &e), 0);
    snprintf(want, sizeof want, "report: warning: %s has the configuration of %s", first, copy);
    cr_expect(strstr((char *)log, want) != NULL, "%s", (char *)log);
    free(log);
    /* another seed is another run */
    fake_run("ce", "0.1", 1, 0.60, 0.01, 0.40, 22.0, -1);
    o.quiet = 1;
    cr_assert_eq(clpdd_report(dirs, 1, &o, &r, &e), 0, "%s", e.msg);
    cr_expect_eq(r.duplicates, 1);
    cr_expect_eq(r.cells, 1);
    md = slurp("summary.md");
    cr_expect(strstr(md, "| distilled | 2 | 57.50 ± 2.50 |") != NULL, "seeds 0 and 1 (not 0, 0, 1):\n%s", md);
    free(md);
    /* one directory given twice, or inside another given: each run found once, nothing to warn of */
    char again[600], sub[600];
    snprintf(again, sizeof again, "%s/sw/./", root);
    snprintf(sub, sizeof sub, "%s/sw/again", root);
    const char *twice[] = {sw, again, sub};
    cr_assert_eq(clpdd_report(twice, 3, &o, &r, &e), 0, "%s", e.msg);
    cr_expect_eq(r.runs, 3);
    cr_expect_eq(r.duplicates, 1);
    cr_expect_eq(r.cells, 1);
}

/* a run that learned τ and λ adds their final values as columns; runs without them keep the table
   as it was (the header test above) and show "-" */
Test(report, learned_temperature_and_lambda_columns, .init = setup_dir, .fini = teardown_dir) {
    fake_run("ce", "0.3", 0, 0.60, 0.01, 0.30, 20.0, -1);
    g_extra_json = "  \"learned\": {\"solver.lambda\": {\"init\": 0.3, \"final\": 0.271}, "
                   "\"loss.temperature\": {\"init\": 0.1, \"final\": 0.0817}},\n";
    fake_run("ce", "learn", 0, 0.62, 0.01, 0.30, 20.0, -1);
    g_extra_json = "";
    clpdd_report_result r;
    rep(0, &r);
    char *md = slurp("summary.md");
    cr_expect(strstr(md, "| peak RSS MB | learned temperature | learned lambda |\n"), "header:\n%s", md);
    cr_expect(strstr(md, "| 0.0817 | 0.271 |\n"), "the learned run's values:\n%s", md);
    cr_expect(strstr(md, "| distilled | 0.3 | 1 | 60.00 ± 1.00 | - | **20.00** | **100** | - | - |\n"), "a fixed run: '-':\n%s", md);
    free(md);
}

/* a learned-label run (its metrics.json has accuracy_hard_labels) adds the hard-label accuracy
   column; the other runs show "-" (and reports without such a run keep their table, above) */
Test(report, hard_label_accuracy_column, .init = setup_dir, .fini = teardown_dir) {
    fake_run("ce", "0.3", 0, 0.60, 0.01, 0.30, 20.0, -1);
    g_extra_json = "  \"accuracy_hard_labels\": {\"protocol\": \"probe\", \"mean\": 0.5564, \"std\": 0.0, "
                   "\"per_seed\": [0.5564]},\n";
    fake_run("ce", "0.1", 0, 0.62, 0.01, 0.30, 20.0, -1);
    g_extra_json = "";
    clpdd_report_result r;
    rep(0, &r);
    char *md = slurp("summary.md");
    cr_expect(strstr(md, "| peak RSS MB | hard-label accuracy % |\n"), "header:\n%s", md);
    cr_expect(strstr(md, "| distilled | 0.1 | 1 | **62.00 ± 1.00** | - | **20.00** | **100** | 55.64 |\n"),
              "the learned-label run's value (one probe fit: no spread):\n%s", md);
    cr_expect(strstr(md, "| distilled | 0.3 | 1 | 60.00 ± 1.00 | - | 20.00 | 100 | - |\n"), "a one-hot run: '-':\n%s", md);
    free(md);
}
