/* Groups and worst-group accuracy ([data] group, docs/design.md §7) on a spurious-correlation set
 * made here from Fashion-MNIST: classes 0 (T-shirt) and 1 (Trouser), and a bright 2-pixel border
 * that goes with class 1 in 95 % of the training images and against the class in 95 % of the
 * test images. The groups are (label, border | plain); the values sort as "border" < "plain", so
 *   group 0 = (0, border)  1 = (0, plain)  2 = (1, border)  3 = (1, plain)
 * with, by construction, 5 / 95 / 95 / 5 training images (targets + validation) and 38 / 2 / 2 /
 * 38 test images. The classifier "border → class 1" is right exactly on groups 1 and 2: worst
 * group 0, group mean 1/2, average 4/80. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/experiment.h"
#include "data/data_source.h"
#include "data/dataset.h"
#include "distill/run.h"
#include "eval/evaluate.h"
#include "eval/probe.h"
#include "eval/run_data.h"
#include "io/png.h"
#include "support.h"
#include "sweep/report.h"

enum { PER_CLASS_TRAIN = 100, PER_CLASS_TEST = 40, G = 4 };
static const int want_train[G] = {5, 95, 95, 5}, want_test[G] = {38, 2, 2, 38};

static char tmp[64];
static void setup_tmp(void) { test_tmpdir_make(tmp, sizeof tmp, "groups"); }
static void teardown_tmp(void) { test_tmpdir_remove(tmp); }
TestSuite(groups, .init = setup_tmp, .fini = teardown_tmp, .timeout = 600);

/* the k-th image of class c in a split: bordered when the border goes with the class (train:
   class 1; test: class 0), except every 20th, which goes the other way */
static int bordered(int train, int c, int k) { return (c == (train ? 1 : 0)) != (k % 20 == 0); }

/* the first `per_class` images of classes 0 and 1 of an IDX split as PNGs (the border drawn in)
   and their manifest rows path,label,split,background */
static void write_split(FILE *csv, const char *root, const char *split, int train, int per_class) {
    clpdd_dataset ds;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_dataset_load_idx(&ds, "fashion-mnist", "/usr/share/datasets/fashion-mnist", train ? "train" : "test",
                                        0, 0, &e),
                 0, "%s", e.msg);
    int got[2] = {0, 0};
    uint8_t img[28 * 28];
    for (int i = 0; i < ds.n && (got[0] < per_class || got[1] < per_class); i++) {
        int c = ds.labels[i];
        if (c > 1 || got[c] >= per_class) continue;
        int k = got[c]++, b = bordered(train, c, k);
        memcpy(img, ds.pixels + (size_t)i * 28 * 28, sizeof img);
        for (int y = 0; y < 28 && b; y++)
            for (int x = 0; x < 28; x++)
                if (x < 2 || y < 2 || x >= 26 || y >= 26) img[y * 28 + x] = 255;
        char file[256];
        snprintf(file, sizeof file, "%s/%s-%d-%03d.png", root, split, c, k);
        cr_assert_eq(clpdd_png_write(file, img, 28, 28, 1, &e), 0, "%s", e.msg);
        fprintf(csv, "%s-%d-%03d.png,%d,%s,%s\n", split, c, k, c, split, b ? "border" : "plain");
    }
    clpdd_dataset_free(&ds);
}

/* the spurious set under tmp: tmp/spurious/{*.png, metadata.csv}; returns the CSV's path */
static const char *make_spurious(void) {
    static char csv[128];
    char root[96];
    clpdd_err e;
    snprintf(root, sizeof root, "%s/spurious", tmp);
    cr_assert_eq(clpdd_mkdirs(root, &e), 0, "%s", e.msg);
    snprintf(csv, sizeof csv, "%s/metadata.csv", root);
    FILE *f = fopen(csv, "w");
    cr_assert_not_null(f);
    fprintf(f, "img_filename,y,split,background\n");
    write_split(f, root, "train", 1, PER_CLASS_TRAIN);
    write_split(f, root, "test", 0, PER_CLASS_TEST);
    fclose(f);
    return csv;
}

static void write_ini(const char *path, const char *csv, const char *extra) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[experiment]\nseed = 2\n[data]\ndataset = manifest\nroot = %s\ngroup = background\nval_size = 40\n"
            "workers = 2\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = 0.3\n[loss]\nname = ce\n"
            "[distill]\nipc = 2\nsteps = 5\nreal_batch = 64\n[eval]\nseeds = 2\nwd = 1e-3, 1e-1\n%s",
            csv, tmp, extra ? extra : "");
    fclose(f);
}

/* the numbers of the JSON array after `key` (after `where`): n of them, null → NaN */
static void json_numbers(const char *json, const char *where, const char *key, double *v, int n) {
    const char *p = strstr(json, where);
    cr_assert_not_null(p, "no %s in %s", where, json);
    p = strstr(p, key);
    cr_assert_not_null(p, "no %s after %s", key, where);
    p = strchr(p, '[');
    cr_assert_not_null(p);
    p++;
    for (int i = 0; i < n; i++) {
        while (*p == ' ' || *p == ',') p++;
        if (strncmp(p, "null", 4) == 0) v[i] = NAN, p += 4;
        else {
            char *end;
            v[i] = strtod(p, &end);
            cr_assert_neq(end, p, "not a number at %.40s", p);
            p = end;
        }
    }
}

/* the known answer of the rule "border → class 1" on the test groups, through clpdd_group_accuracy */
Test(groups, group_accuracy_of_a_constructed_classifier) {
    int32_t y[80], g[80], pred[80];
    int n = 0;
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < PER_CLASS_TEST; k++, n++) {
            int b = bordered(0, c, k);
            y[n] = c, g[n] = c * 2 + (b ? 0 : 1), pred[n] = b;
        }
    double acc[G], mean;
    int count[G];
    double worst = clpdd_group_accuracy(pred, y, g, n, G, acc, count, &mean);
    const double want_acc[G] = {0, 1, 1, 0};
    for (int k = 0; k < G; k++) {
        cr_expect_eq(count[k], want_test[k], "group %d: %d test images, want %d", k, count[k], want_test[k]);
        cr_expect_eq(acc[k], want_acc[k], "group %d: accuracy %g", k, acc[k]);
    }
    cr_expect_eq(worst, 0.0);
    cr_expect_eq(mean, 0.5);
    /* a group without a point is NaN and out of the worst and the mean */
    double acc6[6];
    worst = clpdd_group_accuracy(pred, y, g, n, 6, acc6, NULL, &mean);
    cr_expect(isnan(acc6[4]) && isnan(acc6[5]));
    cr_expect_eq(worst, 0.0);
    cr_expect_eq(mean, 0.5);
}

/* the listing's groups: the manifest column, sorted values, the right value per image; a missing
   column and an empty value are errors naming the file and line */
Test(groups, manifest_column_and_errors) {
    const char *csv = make_spurious();
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_MANIFEST, .root = csv, .split = "test", .workers = 1, .grey = 1,
                          .group = "background"};
    clpdd_dataset ds;
    clpdd_data_info info;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_assert_eq(info.n_group_values, 2);
    cr_expect_str_eq(info.group_values[0], "border");
    cr_expect_str_eq(info.group_values[1], "plain");
    int count[G] = {0};
    for (int i = 0; i < ds.n; i++) count[ds.labels[i] * 2 + ds.groups[i]]++;
    for (int k = 0; k < G; k++) cr_expect_eq(count[k], want_test[k], "group %d: %d", k, count[k]);
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);

    cfg.group = "place";
    cr_expect_neq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "metadata.csv:1") && strstr(e.msg, "place"), "%s", e.msg);
    char bad[128];
    snprintf(bad, sizeof bad, "%s/spurious/bad.csv", tmp);
    FILE *f = fopen(bad, "w");
    fprintf(f, "img_filename,y,split,background\ntest-0-000.png,0,test,border\ntest-0-001.png,0,test,\n");
    fclose(f);
    cfg.root = bad, cfg.group = "background";
    cr_expect_neq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "bad.csv:3") && strstr(e.msg, "background"), "%s", e.msg);
}

/* an image folder's group from its path: root/<split>/<class>/<background>/<file> with path:1 */
Test(groups, folder_rule) {
    clpdd_err e = {{0}};
    const char *bgs[2] = {"desert", "snow"};
    for (int c = 0; c < 2; c++)
        for (int b = 0; b < 2; b++)
            for (int k = 0; k <= c + b; k++) { /* 1, 2, 2, 3 images */
                char dir[200], file[260];
                snprintf(dir, sizeof dir, "%s/sp/train/class%d/%s", tmp, c, bgs[b]);
                cr_assert_eq(clpdd_mkdirs(dir, &e), 0, "%s", e.msg);
                snprintf(file, sizeof file, "%s/%d.png", dir, k);
                uint8_t px[16] = {0};
                cr_assert_eq(clpdd_png_write(file, px, 4, 4, 1, &e), 0, "%s", e.msg);
            }
    char root[96];
    snprintf(root, sizeof root, "%s/sp", tmp);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = root, .split = "train", .workers = 1, .grey = 1,
                          .group = "path:1"};
    clpdd_dataset ds;
    clpdd_data_info info;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_assert_eq(info.n_group_values, 2);
    cr_expect_str_eq(info.group_values[0], "desert");
    int count[G] = {0};
    for (int i = 0; i < ds.n; i++) count[ds.labels[i] * 2 + ds.groups[i]]++;
    const int want[G] = {1, 2, 2, 3};
    for (int k = 0; k < G; k++) cr_expect_eq(count[k], want[k], "group %d: %d", k, count[k]);
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
    cfg.group = "path:2"; /* the file itself is no folder */
    cr_expect_neq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "path:2") && strstr(e.msg, ".png"), "%s", e.msg);
    cfg.group = "background";
    cr_expect_neq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "path:K"), "%s", e.msg);
}

/* the evaluator on constructed features: feature 0 is +1 on bordered images, −1 on plain ones,
   and on the training features it equals the label (the spurious shortcut, perfectly); the
   full-data probe — the converged probe, and LGM's Adam probe — learns "border → class 1", so its
   groups come out exactly as the rule's */
Test(groups, evaluator_scores_the_constructed_classifier) {
    const char *csv = make_spurious();
    char ini[128];
    snprintf(ini, sizeof ini, "%s/g.ini", tmp);
    write_ini(ini, csv, NULL);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_experiment_load(&x, ini, NULL, 0, &dirs, &e), 0, "%s", e.msg);
    clpdd_run_data r;
    cr_assert_eq(clpdd_run_data_open(&r, &x, clpdd_ops_cpu(), "test", 1, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_run_data_load(&r, &e), 0, "%s", e.msg);
    cr_assert_eq(r.groups.G, G);
    int d = r.d, ntr = 2 * PER_CLASS_TRAIN, nte = 2 * PER_CLASS_TEST;
    float *xtr = calloc((size_t)ntr * d, sizeof(float)), *xte = calloc((size_t)nte * d, sizeof(float));
    int32_t *ytr = malloc(ntr * sizeof(int32_t));
    for (int i = 0; i < ntr; i++) ytr[i] = i % 2, xtr[(size_t)i * d] = i % 2 ? 1.0f : -1.0f;
    for (int i = 0; i < nte; i++) xte[(size_t)i * d] = r.groups.test[i] % 2 == 0 ? 1.0f : -1.0f; /* value 0 = border */
    clpdd_eval_cfg cfg;
    clpdd_eval_cfg_from_experiment(&cfg, &x);
    cfg.n_wd = 1; /* no validation split here: one fit */
    clpdd_evaluator ev;
    clpdd_labelled tr = {xtr, ytr, ntr}, va = {NULL, NULL, 0}, te = {xte, r.test.labels, nte};
    cr_assert_eq(clpdd_evaluator_init(&ev, &r.bb, r.c, r.H, r.W, r.C, tr, va, te, NULL, NULL, &cfg, 4, 1, &e), 0, "%s",
                 e.msg);
    ev.test_g = r.groups.test, ev.G = r.groups.G;
    clpdd_score s;
    cr_assert_eq(clpdd_evaluate_full(&ev, &s, &e), 0, "%s", e.msg);
    const double want_acc[G] = {0, 1, 1, 0};
    cr_expect_eq(s.G, G);
    for (int k = 0; k < G; k++) {
        cr_expect_eq(s.group_n[k], want_test[k], "group %d: %d test images", k, s.group_n[k]);
        cr_expect_eq(s.group_acc[k], want_acc[k], "group %d: %g", k, s.group_acc[k]);
    }
    cr_expect_eq(s.worst_mean, 0.0);
    cr_expect_eq(s.gmean_mean, 0.5);
    cr_expect_eq(s.mean, 4.0 / 80);
    clpdd_evaluator_free(&ev);
    /* LGM's Adam probe (protocol fast), two trainings: the same rule, so the same groups in each */
    cfg.protocol = CLPDD_PROTOCOL_FAST, cfg.seeds = 2, cfg.full_epochs = 50;
    cr_assert_eq(clpdd_evaluator_init(&ev, &r.bb, r.c, r.H, r.W, r.C, tr, va, te, NULL, NULL, &cfg, 4, 1, &e), 0, "%s",
                 e.msg);
    ev.test_g = r.groups.test, ev.G = r.groups.G;
    cr_assert_eq(clpdd_evaluate_full(&ev, &s, &e), 0, "%s", e.msg);
    cr_expect_eq(s.n, 2);
    for (int k = 0; k < G; k++) cr_expect_eq(s.group_acc[k], want_acc[k], "fast, group %d: %g", k, s.group_acc[k]);
    cr_expect(s.worst_per_seed[0] == 0 && s.worst_per_seed[1] == 0 && s.worst_std == 0);
    cr_expect_eq(s.gmean_mean, 0.5);
    clpdd_evaluator_free(&ev);
    free(xtr), free(xte), free(ytr);
    clpdd_run_data_free(&r);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
}

/* a whole run on the spurious set: metrics.json's group counts are the construction's, and every
   evaluated set's average, worst group and group mean agree with its per-group accuracies */
Test(groups, run_reports_groups_in_metrics) {
    const char *csv = make_spurious();
    char ini[128], out[128];
    snprintf(ini, sizeof ini, "%s/g.ini", tmp);
    snprintf(out, sizeof out, "%s/run", tmp);
    write_ini(ini, csv, "select = worst_group\n");
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_experiment_load(&x, ini, NULL, 0, &dirs, &e), 0, "%s", e.msg);
    clpdd_run_opts o = {clpdd_ops_cpu(), out, 1, 0, 0};
    cr_assert_eq(clpdd_run(&x, &o, &e), 0, "%s", e.msg);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    char path[256];
    snprintf(path, sizeof path, "%s/metrics.json", out);
    uint8_t *data;
    size_t len;
    cr_assert_eq(clpdd_read_file(path, &data, &len, &e), 0, "%s", e.msg);
    const char *m = (const char *)data;
    cr_expect(strstr(m, "\"key\": \"background\", \"select\": \"worst_group\", \"values\": [\"border\", \"plain\"]"), "%s", m);
    int val_total = 0;
    for (int k = 0; k < G; k++) {
        char where[32];
        snprintf(where, sizeof where, "{\"group\": %d,", k);
        int tr = (int)test_json_number(m, where, "\"train\": "), va = (int)test_json_number(m, where, "\"val\": ");
        cr_expect_eq(tr + va, want_train[k], "group %d: %d + %d training images", k, tr, va);
        cr_expect_eq((int)test_json_number(m, where, "\"test\": "), want_test[k], "group %d", k);
        val_total += va;
    }
    cr_expect_eq(val_total, 40);
    const char *sets[] = {"\"accuracy\"", "\"random_real\"", "\"centroids\"", "\"neighbors\"", "\"full_data\""};
    for (int s = 0; s < 5; s++) {
        double acc[G], mean = test_json_number(m, sets[s], "\"mean\": ");
        json_numbers(m, sets[s], "\"per_group\"", acc, G);
        double avg = 0, lo = 1, gm = 0;
        for (int k = 0; k < G; k++) avg += acc[k] * want_test[k] / 80.0, lo = fmin(lo, acc[k]), gm += acc[k] / G;
        cr_expect(fabs(avg - mean) < 1e-5, "%s: average %g, from the groups %g", sets[s], mean, avg);
        double worst = test_json_number(m, sets[s], "\"worst_group\": {\"mean\": ");
        double gmean = test_json_number(m, sets[s], "\"group_mean\": {\"mean\": ");
        cr_expect(worst <= lo + 1e-6, "%s: worst group %g above the lowest group mean %g", sets[s], worst, lo);
        cr_expect(fabs(gmean - gm) < 1e-5, "%s: group mean %g, from the groups %g", sets[s], gmean, gm);
    }
    /* the report: a worst-group column beside the accuracy, in the cells' table (the distilled
       set's number), the baseline rows and the selection table; and in summary.csv */
    char want[64], want_nb[64], rep[128];
    snprintf(want, sizeof want, "| %.2f |", 100 * test_json_number(m, "\"accuracy\"", "\"worst_group\": {\"mean\": "));
    snprintf(want_nb, sizeof want_nb, "| %.2f |", 100 * test_json_number(m, "\"neighbors\"", "\"worst_group\": {\"mean\": "));
    snprintf(rep, sizeof rep, "%s/report", tmp);
    const char *rdirs[] = {out};
    clpdd_report_opts ro = {rep, NULL, 0, 1};
    clpdd_report_result rr;
    cr_assert_eq(clpdd_report(rdirs, 1, &ro, &rr, &e), 0, "%s", e.msg);
    free(data);
    snprintf(path, sizeof path, "%s/summary.md", rep);
    cr_assert_eq(clpdd_read_file(path, &data, &len, &e), 0, "%s", e.msg);
    m = (const char *)data;
    cr_expect(strstr(m, "| runs | accuracy % | worst group % | solver classifier % |"), "%s", m);
    cr_expect(strstr(m, "| selected | validation % | test % | test worst group % |"), "%s", m);
    cr_expect(strstr(m, "(label, background) groups") && strstr(m, "`worst_group` accuracy"), "%s", m);
    const char *row = strstr(m, "| distilled |");
    cr_assert_not_null(row, "%s", m);
    cr_expect(strstr(row, want) && strstr(row, want) < strchr(row, '\n'), "the distilled row lacks %s: %s", want, m);
    row = strstr(m, "| nearest real images |"); /* the neighbours baseline's row, with its worst group */
    cr_assert_not_null(row, "%s", m);
    cr_expect(strstr(row, want_nb) && strstr(row, want_nb) < strchr(row, '\n'), "the neighbours row lacks %s: %s", want_nb, m);
    free(data);
    snprintf(path, sizeof path, "%s/summary.csv", rep);
    cr_assert_eq(clpdd_read_file(path, &data, &len, &e), 0, "%s", e.msg);
    cr_expect(strstr((const char *)data, ",accuracy_worst_group,random_real_worst_group,full_data_worst_group,"), "%s",
              (const char *)data);
    free(data);
}

/* the keys' errors name the file and the key: a group on a dataset without files to group,
   worst-group selection without groups */
Test(groups, key_errors) {
    const char *bad[][2] = {
        {"[data]\ndataset = fashion-mnist\ngroup = border\n[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n",
         "[data] group = border"},
        {"[data]\nval_size = 10\n[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n[eval]\nselect = worst_group\n",
         "[eval] select = worst_group needs groups"},
    };
    for (int i = 0; i < 2; i++) {
        char ini[128];
        snprintf(ini, sizeof ini, "%s/bad%d.ini", tmp, i);
        FILE *f = fopen(ini, "w");
        cr_assert_not_null(f);
        fputs(bad[i][0], f);
        fclose(f);
        clpdd_plugin_dirs dirs;
        clpdd_plugin_dirs_init(&dirs, NULL);
        clpdd_experiment x;
        clpdd_err e = {{0}};
        cr_expect_neq(clpdd_experiment_load(&x, ini, NULL, 0, &dirs, &e), 0, "%s loaded", bad[i][1]);
        cr_expect(strstr(e.msg, bad[i][1]) && strstr(e.msg, ini), "%s", e.msg);
        clpdd_experiment_free(&x); /* a failed load leaves what it read to free */
        clpdd_plugin_dirs_free(&dirs);
    }
}
