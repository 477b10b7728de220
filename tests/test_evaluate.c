/* The evaluation of a run and of any distilled set (docs/design.md §7), and the run directory's
 * rules (§8): a tiny real distillation (mnist-vit, Fashion-MNIST) under the converged probe with
 * a validation split; `clpdd eval` of its run directory gives exactly the run's numbers, and a
 * folder of PNGs of the same images gives nearly the same; a run directory is never shared by two
 * runs, never mixes two runs' files, and is checked before any expensive work. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/eval_cmd.h"
#include "config/experiment.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "distill/run.h"
#include "support.h"
#include "util/util.h"

static char tmp[64];

static void write_ini(const char *path, const char *extra) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[experiment]\nseed = 3\n[data]\ntrain_limit = 1200\ntest_limit = 600\nval_size = 200\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = 0.3\n[loss]\nname = ce\n"
            "[distill]\nipc = 1\nsteps = 15\nreal_batch = 256\ncheckpoint_every = 4\n"
            "[eval]\nseeds = 2\nwd = 1e-3, 1e-1\n%s",
            tmp, extra ? extra : "");
    fclose(f);
}

/* run `ini` (with --set overrides) into out; the return code, e holds the message */
static int run_into(const char *ini, const char *out, int resume, int force, const char *const *sets, int n, clpdd_err *e) {
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    int rc = clpdd_experiment_load(&x, ini, sets, n, &dirs, e);
    cr_assert_eq(rc, 0, "%s", e->msg);
    clpdd_run_opts o = {clpdd_ops_cpu(), out, 1, resume, force};
    rc = clpdd_run(&x, &o, e);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    return rc;
}

static char *slurp(const char *path) {
    uint8_t *d;
    size_t n;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(path, &d, &n, &e), 0, "%s", e.msg);
    return (char *)d;
}

static void setup_tmp(void) { test_tmpdir_make(tmp, sizeof tmp, "eval"); }
static void teardown_tmp(void) { test_tmpdir_remove(tmp); }

TestSuite(evaluate, .init = setup_tmp, .fini = teardown_tmp, .timeout = 600);

Test(evaluate, probe_run_and_eval_agree) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char ini[128], out[128], path[256];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    snprintf(out, sizeof out, "%s/run", tmp);
    write_ini(ini, NULL);
    clpdd_err e = {{0}};
    cr_assert_eq(run_into(ini, out, 0, 0, NULL, 0, &e), 0, "%s", e.msg);
    snprintf(path, sizeof path, "%s/metrics.json", out);
    char *m = slurp(path);
    /* the converged probe, with its validation scores and convergence, for the set and every baseline */
    cr_expect(strstr(m, "\"accuracy\": {\"protocol\": \"probe\""), "%s", m);
    for (const char *b = "random_real\0centroids\0full_data\0"; *b; b += strlen(b) + 1) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\": {\"protocol\": \"probe\"", b);
        cr_expect(strstr(m, key), "baseline %s under the probe protocol", b);
    }
    cr_expect(strstr(m, "\"converged\": true"), "the probe converges on the tiny set");
    cr_expect(!strstr(m, "\"converged\": false"), "every fit converges");
    cr_expect_eq(test_json_number(m, "\"features\"", "\"train\": "), 1000, "1200 training images less the 200 held out");
    cr_expect_eq(test_json_number(m, "\"features\"", "\"val\": "), 200);
    double acc = test_json_number(m, "\"accuracy\"", "\"mean\": "), val = test_json_number(m, "\"accuracy\"", "\"val\": {\"mean\": ");
    double rnd = test_json_number(m, "\"random_real\"", "\"mean\": "), full = test_json_number(m, "\"full_data\"", "\"mean\": ");
    cr_expect(acc > 0.3 && acc <= 1 && val > 0.3 && val <= 1, "distilled test %g, val %g", acc, val);
    cr_expect(full > rnd, "full data %g must beat random real %g", full, rnd);
    double wd = test_json_number(m, "\"accuracy\"", "\"wd\": [");
    cr_expect(wd == 1e-3 || wd == 1e-1, "the chosen wd %g is a grid point", wd);

    /* the same set through `clpdd eval` of the run directory: the same numbers, to the digit */
    char *argv[] = {out, "--quiet", NULL};
    cr_assert_eq(clpdd_cmd_eval(2, argv), 0);
    snprintf(path, sizeof path, "%s/eval-probe/metrics.json", out);
    char *m2 = slurp(path);
    for (const char *k = "\"accuracy\"\0\"random_real\"\0\"centroids\"\0\"full_data\"\0"; *k; k += strlen(k) + 1) {
        cr_expect_eq(test_json_number(m, k, "\"mean\": "), test_json_number(m2, k, "\"mean\": "), "%s: run and eval differ", k);
        cr_expect_eq(test_json_number(m, k, "\"val\": {\"mean\": "), test_json_number(m2, k, "\"val\": {\"mean\": "), "%s (val)", k);
    }
    cr_expect(strstr(m2, "\"evaluated_set\""), "eval names the set it scored");
    cr_expect(strstr(m, "\"baselines_from_cache\": false") && strstr(m2, "\"baselines_from_cache\": true"),
              "the run computes the baselines, eval of the same configuration reuses them");
    cr_expect(strstr(m2, "\"solver\": \"ridge\""), "a run directory's method is its config's");

    /* the same images as a folder of PNGs in class sub-folders, as other tools write them */
    snprintf(path, sizeof path, "%s/run/distilled.safetensors", tmp);
    clpdd_st_file *f;
    cr_assert_eq(clpdd_st_open(path, &f, &e), 0, "%s", e.msg);
    const clpdd_st_tensor *t = clpdd_st_find(f, "images");
    int n = (int)t->shape[0], px = (int)(t->shape[1] * t->shape[2] * t->shape[3]);
    int H = (int)t->shape[2], W = (int)t->shape[3];
    float *img = malloc((size_t)n * px * sizeof(float));
    cr_assert_eq(clpdd_st_read_f32(f, t, img, &e), 0, "%s", e.msg);
    clpdd_st_close(f); /* t is gone with it */
    uint8_t *u8 = malloc((size_t)px);
    /* ipc 1: image i is class i, in a folder named by its number, odd ones zero-padded: sorted
       by name the folders are 0 01 03 05 07 09 2 4 6 8, so a mapping by sorted position would
       score near chance */
    for (int i = 0; i < n; i++) {
        char dir[256], file[300];
        snprintf(dir, sizeof dir, i % 2 ? "%s/pngs/0%d" : "%s/pngs/%d", tmp, i);
        cr_assert_eq(clpdd_mkdirs(dir, &e), 0, "%s", e.msg);
        for (int j = 0; j < px; j++) u8[j] = (uint8_t)lrintf(img[(size_t)i * px + j] * 255.0f);
        snprintf(file, sizeof file, "%s/img.png", dir);
        cr_assert_eq(clpdd_png_write(file, u8, W, H, 1, &e), 0, "%s", e.msg);
    }
    /* the same set as RGB in a safetensors file (what a tool for colour encoders writes): converted
       to the data's grey as PIL's convert("L") does, so it scores as the 8-bit set */
    float *rgb = malloc((size_t)n * 3 * px * sizeof(float));
    int32_t *lab = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        lab[i] = i;
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < px; j++) rgb[((size_t)i * 3 + k) * px + j] = lrintf(img[(size_t)i * px + j] * 255.0f) / 255.0f;
    }
    char rgbfile[128], rout[128];
    snprintf(rgbfile, sizeof rgbfile, "%s/rgb.safetensors", tmp);
    snprintf(rout, sizeof rout, "%s/rgb-eval", tmp);
    clpdd_st_entry ent[2] = {{"images", CLPDD_DT_F32, 4, {n, 3, H, W}, rgb}, {"labels", CLPDD_DT_I32, 1, {n}, lab}};
    cr_assert_eq(clpdd_st_write(rgbfile, ent, 2, NULL, NULL, 0, &e), 0, "%s", e.msg);
    free(rgb), free(lab);
    free(u8), free(img);
    char folder[128], pout[128];
    snprintf(folder, sizeof folder, "%s/pngs", tmp);
    snprintf(pout, sizeof pout, "%s/png-eval", tmp);
    char *argv2[] = {folder, "--config", ini, "--output", pout, "--quiet", NULL};
    cr_assert_eq(clpdd_cmd_eval(6, argv2), 0);
    snprintf(path, sizeof path, "%s/metrics.json", pout);
    char *m3 = slurp(path);
    double acc3 = test_json_number(m3, "\"accuracy\"", "\"mean\": ");
    cr_expect(fabs(acc3 - acc) < 0.05, "8-bit PNGs of the set score %g, the float set %g", acc3, acc);
    cr_expect(strstr(m3, "\"solver\": null"), "a set from elsewhere has no method of this configuration");
    char *argv3[] = {rgbfile, "--config", ini, "--output", rout, "--quiet", NULL};
    cr_assert_eq(clpdd_cmd_eval(6, argv3), 0);
    snprintf(path, sizeof path, "%s/metrics.json", rout);
    char *m4 = slurp(path);
    cr_expect_eq(test_json_number(m4, "\"accuracy\"", "\"mean\": "), acc3, "RGB of the 8-bit set, converted to grey, scores as it");
    free(m4);

    /* --force into an evaluation that cannot start (its data is missing): the old evaluation stays */
    char bad_root[200];
    snprintf(bad_root, sizeof bad_root, "data.root=%s/no-such-dir", tmp);
    char *argv4[] = {out, "--force", "--set", bad_root, "--quiet", NULL};
    cr_expect_eq(clpdd_cmd_eval(5, argv4), 1);
    snprintf(path, sizeof path, "%s/eval-probe/metrics.json", out);
    char *m5 = slurp(path);
    cr_expect_str_eq(m5, m2, "a failed --force evaluation must leave the old one whole");
    free(m5);
    free(m), free(m2), free(m3);
}

Test(evaluate, a_run_directory_holds_one_run) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char ini[128], out[128], path[256];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    snprintf(out, sizeof out, "%s/run", tmp);
    write_ini(ini, "baseline_full = false\nbaseline_centroids = false\n");
    clpdd_err e = {{0}};
    cr_assert_eq(run_into(ini, out, 0, 0, NULL, 0, &e), 0, "%s", e.msg);
    /* a second run into it: refused, nothing touched */
    const char *ipc3[] = {"distill.ipc=3"};
    cr_expect_neq(run_into(ini, out, 0, 0, ipc3, 1, &e), 0);
    cr_expect(strstr(e.msg, "holds another run's files") && strstr(e.msg, "--force"), "%s", e.msg);
    cr_expect(strstr(e.msg, out), "the message names the directory: %s", e.msg);
    cr_expect_neq(run_into(ini, out, 1, 0, NULL, 0, &e), 0, "a finished run is not resumed");
    cr_expect(strstr(e.msg, "finished run"), "%s", e.msg);
    /* --force with a run that cannot start (its data is missing): the old run stays whole,
       nothing removed before everything that can fail has been checked */
    char *old_metrics = NULL;
    snprintf(path, sizeof path, "%s/metrics.json", out);
    old_metrics = slurp(path);
    char bad_root[200];
    snprintf(bad_root, sizeof bad_root, "data.root=%s/no-such-dir", tmp);
    const char *no_data[] = {bad_root};
    cr_expect_neq(run_into(ini, out, 0, 1, no_data, 1, &e), 0);
    cr_expect(strstr(e.msg, "no-such-dir"), "%s", e.msg);
    for (const char *f = "metrics.json\0distilled.safetensors\0config.ini\0log.csv\0distilled.png\0"; *f; f += strlen(f) + 1) {
        snprintf(path, sizeof path, "%s/%s", out, f);
        cr_expect(access(path, R_OK) == 0, "%s of the old run must stay when --force fails before the run writes", f);
    }
    snprintf(path, sizeof path, "%s/metrics.json", out);
    char *kept = slurp(path);
    cr_expect_str_eq(kept, old_metrics, "the old run's metrics.json is untouched");
    free(kept), free(old_metrics);
    /* --force with a run that then fails: the old run's results are gone, not mixed with the new */
    setenv("CLPDD_TEST_CRASH_AFTER", "2", 1);
    cr_expect_neq(run_into(ini, out, 0, 1, ipc3, 1, &e), 0);
    unsetenv("CLPDD_TEST_CRASH_AFTER");
    for (const char *f = "metrics.json\0distilled.safetensors\0config.ini\0log.csv\0"; *f; f += strlen(f) + 1) {
        snprintf(path, sizeof path, "%s/%s", out, f);
        cr_expect(access(path, F_OK) != 0, "%s of the replaced run must be gone after a failed rerun", f);
    }
    /* another process holds the directory: refused, naming its pid */
    snprintf(path, sizeof path, "%s/.lock", out);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX) == 0);
    cr_assert_eq(pwrite(fd, "4242\n", 5, 0), 5);
    cr_expect_neq(run_into(ini, out, 0, 1, NULL, 0, &e), 0);
    cr_expect(strstr(e.msg, "in use by another clpdd run (pid 4242)"), "%s", e.msg);
    close(fd);
}

Test(evaluate, checked_before_the_expensive_work) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char ini[128], out[256], path[512];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    write_ini(ini, NULL);
    /* an output directory that cannot be created: the error comes before the features exist */
    snprintf(path, sizeof path, "%s/a-file", tmp);
    FILE *f = fopen(path, "w");
    fclose(f);
    snprintf(out, sizeof out, "%s/a-file/run", tmp);
    clpdd_err e = {{0}};
    cr_expect_neq(run_into(ini, out, 0, 0, NULL, 0, &e), 0);
    cr_expect(strstr(e.msg, "run directory"), "%s", e.msg);
    snprintf(path, sizeof path, "%s/cache", tmp);
    cr_expect(access(path, F_OK) != 0, "no features were extracted for a run that cannot write its results");
    /* a checkpoint that cannot be written warns and the run goes on to the end */
    snprintf(out, sizeof out, "%s/ck", tmp);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors.tmp.%ld", out, (long)getpid());
    cr_assert_eq(clpdd_mkdirs(path, &e), 0, "%s", e.msg); /* a directory where the temporary file goes */
    cr_expect_eq(run_into(ini, out, 0, 0, NULL, 0, &e), 0, "a failed checkpoint must not end the run: %s", e.msg);
    snprintf(path, sizeof path, "%s/metrics.json", out);
    cr_expect(access(path, R_OK) == 0);
}

Test(evaluate, configuration) {
    char ini[128];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    write_ini(ini, NULL);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    const char *noval[] = {"data.val_size=0"};
    cr_expect_neq(clpdd_experiment_load(&x, ini, noval, 1, &dirs, &e), 0, "a wd grid needs a validation split");
    cr_expect(strstr(e.msg, "val_size"), "%s", e.msg);
    clpdd_experiment_free(&x);
    const char *one_wd[] = {"data.val_size=0", "eval.wd=0.01"};
    cr_expect_eq(clpdd_experiment_load(&x, ini, one_wd, 2, &dirs, &e), 0, "one wd needs no split: %s", e.msg);
    clpdd_experiment_free(&x);
    const char *escape[] = {"experiment.name=../../escaped"};
    cr_expect_neq(clpdd_experiment_load(&x, ini, escape, 1, &dirs, &e), 0, "a name is one path component");
    cr_expect(strstr(e.msg, "one path component"), "%s", e.msg);
    clpdd_experiment_free(&x);
    const char *seeds[] = {"eval.seeds=101"};
    cr_expect_neq(clpdd_experiment_load(&x, ini, seeds, 1, &dirs, &e), 0, "seeds beyond what a score holds");
    clpdd_experiment_free(&x);
    /* typed: every enum parsed once */
    cr_assert_eq(clpdd_experiment_load(&x, ini, NULL, 0, &dirs, &e), 0, "%s", e.msg);
    cr_expect_eq(x.protocol, CLPDD_PROTOCOL_PROBE);
    cr_expect_eq(x.n_wd, 2);
    cr_expect_str_eq(clpdd_protocol_name(x.protocol), "probe");
    clpdd_experiment_free(&x);
    /* the resolved configuration shows the values in force: dinov2's, not the declared (lucid) defaults */
    const char *dino[] = {"backbone.variant=dinov2"};
    cr_assert_eq(clpdd_experiment_load(&x, ini, dino, 1, &dirs, &e), 0, "%s", e.msg);
    char *resolved = clpdd_experiment_resolved_ini(&x);
    const char *want[] = {"weights = vit_base_patch14_dinov2.safetensors", "image_size = 224", "patch = 14", "dim = 768",
                          "mean = 0.485, 0.456, 0.406", "norm_eps = 1e-06", "layer_scale = true"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(resolved, want[i]), "config.ini must show '%s':\n%s", want[i], resolved);
    cr_expect(!strstr(resolved, "mnist-vit"), "lucid's weights are not dinov2's");
    free(resolved);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
}

/* IDX files of n 28x28 images with the given labels, as root/<prefix>-{images-idx3,labels-idx1}-ubyte */
static void write_idx(const char *root, const char *prefix, const uint8_t *labels, int n) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", root, prefix);
    FILE *f = fopen(p, "wb");
    uint8_t hl[8] = {0, 0, 8, 1, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    fwrite(hl, 1, 8, f), fwrite(labels, 1, (size_t)n, f), fclose(f);
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", root, prefix);
    f = fopen(p, "wb");
    uint8_t hi[16] = {0, 0, 8, 3, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, 0, 0, 0, 28, 0, 0, 0, 28};
    fwrite(hi, 1, 16, f);
    for (int i = 0; i < n * 28 * 28; i++) fputc((i * 37) & 255, f);
    fclose(f);
}

/* mismatches that could pass silently or fail late: each a clear error before any feature
   is extracted (no cache directory appears), or a stated adjustment */
Test(evaluate, silent_mismatches_are_errors) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char ini[128], out[256], cache[256], root[128];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    snprintf(cache, sizeof cache, "%s/cache", tmp);
    snprintf(root, sizeof root, "%s/idx", tmp);
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_mkdirs(root, &e), 0, "%s", e.msg);
    uint8_t lab[40];
    for (int i = 0; i < 40; i++) lab[i] = (uint8_t)(i % 10);
    write_idx(root, "t10k", lab, 40);
    lab[7] = 200; /* one training label out of range: 201 "classes" */
    write_idx(root, "train", lab, 40);
    char rootset[200];
    snprintf(rootset, sizeof rootset, "data.root=%s", root);
    const char *idx[] = {"data.dataset=mnist", rootset, "data.val_size=0", "data.train_limit=0", "data.test_limit=0", "eval.wd=0.01"};
    write_ini(ini, NULL);
    snprintf(out, sizeof out, "%s/r1", tmp);
    cr_expect_neq(run_into(ini, out, 0, 0, idx, 6, &e), 0);
    cr_expect(strstr(e.msg, "class 10 has no training images") && strstr(e.msg, "label out of range"), "%s", e.msg);
    /* the test split has a class the training split lacks */
    lab[7] = 7;
    write_idx(root, "train", lab, 40);
    lab[3] = 12;
    write_idx(root, "t10k", lab, 40);
    cr_expect_neq(run_into(ini, out, 0, 0, idx, 6, &e), 0);
    cr_expect(strstr(e.msg, "test split has label 12 but the training split only 10 classes"), "%s", e.msg);
    cr_expect(access(cache, F_OK) != 0, "no features were extracted for either");
    /* train_limit too small for ipc + the validation image: the message names the key */
    const char *small[] = {"data.train_limit=15"};
    cr_expect_neq(run_into(ini, out, 0, 0, small, 1, &e), 0);
    cr_expect(strstr(e.msg, "train_limit"), "%s", e.msg);
    cr_expect(access(cache, F_OK) != 0, "nor for a subset too small");
    /* steps = 0: evaluated at the initial images, and no loss plot claimed or written */
    const char *zero[] = {"distill.steps=0", "eval.baseline_full=false", "eval.baseline_centroids=false"};
    snprintf(out, sizeof out, "%s/r0", tmp);
    cr_expect_eq(run_into(ini, out, 0, 0, zero, 3, &e), 0, "%s", e.msg);
    char path[300];
    snprintf(path, sizeof path, "%s/loss.png", out);
    cr_expect(access(path, F_OK) != 0, "no loss curve without steps");
    snprintf(path, sizeof path, "%s/metrics.json", out);
    cr_expect(access(path, R_OK) == 0);
}

/* dir/<names[k]>/img.png: one 28x28 grey image per class folder */
static void write_folders(const char *dir, const char *const *names, int n) {
    clpdd_err e = {{0}};
    uint8_t px[28 * 28];
    for (int k = 0; k < n; k++) {
        char sub[400], file[450];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[k]);
        cr_assert_eq(clpdd_mkdirs(sub, &e), 0, "%s", e.msg);
        for (int j = 0; j < 28 * 28; j++) px[j] = (uint8_t)(j * 7 + k * 31);
        snprintf(file, sizeof file, "%s/img.png", sub);
        cr_assert_eq(clpdd_png_write(file, px, 28, 28, 1, &e), 0, "%s", e.msg);
    }
}

/* `clpdd eval` of PATH with --config ini and more arguments; the exit status, stdout + stderr in out */
static int eval_driver(const char *path, const char *ini, const char *more, char *out, size_t n) {
    char args[3000];
    snprintf(args, sizeof args, "eval '%s' --config '%s' --quiet %s", path, ini, more ? more : "");
    return test_driver(args, out, n);
}

/* class folders are the dataset's classes by name (by number for Fashion-MNIST's numbered
   classes); a folder that is no class, or two folders of one class, is refused, listing the
   classes, before any feature is extracted */
Test(evaluate, class_folders_are_classes_by_name) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char ini[128], dir[200], cache[200], msg[8192];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    snprintf(cache, sizeof cache, "%s/cache", tmp);
    write_ini(ini, NULL);
    const char *bogus[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "zzz"};
    snprintf(dir, sizeof dir, "%s/bogus", tmp);
    write_folders(dir, bogus, 11);
    cr_expect_eq(eval_driver(dir, ini, NULL, msg, sizeof msg), 1, "%s", msg);
    cr_expect(strstr(msg, "folder 'zzz' is not a class of the dataset") &&
                  strstr(msg, "'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'"),
              "the refusal names the folder and the classes it may be: %s", msg);
    const char *twice[] = {"0", "1", "2", "3", "03", "4", "5", "6", "7", "8"};
    snprintf(dir, sizeof dir, "%s/twice", tmp);
    write_folders(dir, twice, 10);
    cr_expect_eq(eval_driver(dir, ini, NULL, msg, sizeof msg), 1, "%s", msg);
    cr_expect(strstr(msg, "folders '03' and '3' are both class 3"), "%s", msg);
    const char *big[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "10"};
    snprintf(dir, sizeof dir, "%s/big", tmp);
    write_folders(dir, big, 10);
    cr_expect_eq(eval_driver(dir, ini, NULL, msg, sizeof msg), 1, "%s", msg);
    cr_expect(strstr(msg, "folder '10' is not a class"), "class numbers stop at 9: %s", msg);
    const char *from_one[] = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"};
    snprintf(dir, sizeof dir, "%s/from-one", tmp);
    write_folders(dir, from_one, 10);
    cr_expect_eq(eval_driver(dir, ini, NULL, msg, sizeof msg), 1, "%s", msg);
    cr_expect(strstr(msg, "folder '10' is not a class") && strstr(msg, "rename each to its number - 1"),
              "a 1-based export is refused with the renaming it needs: %s", msg);
    cr_expect(access(cache, F_OK) != 0, "no features were extracted for a set that cannot be scored");
}

/* a fake finished run: config.ini, a distilled.safetensors of one image per class, metrics.json */
static void write_run(const char *run, const char *ini) {
    clpdd_err e = {{0}};
    char p[400];
    cr_assert_eq(clpdd_mkdirs(run, &e), 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/config.ini", run);
    char *text = slurp(ini);
    cr_assert_eq(clpdd_write_file_atomic(p, text, strlen(text), &e), 0, "%s", e.msg);
    free(text);
    float img[10 * 28 * 28];
    int32_t lab[10];
    for (int i = 0; i < 10 * 28 * 28; i++) img[i] = (float)((i * 13) % 256) / 255.0f;
    for (int i = 0; i < 10; i++) lab[i] = i;
    clpdd_st_entry ent[2] = {{"images", CLPDD_DT_F32, 4, {10, 1, 28, 28}, img}, {"labels", CLPDD_DT_I32, 1, {10}, lab}};
    snprintf(p, sizeof p, "%s/distilled.safetensors", run);
    cr_assert_eq(clpdd_st_write(p, ent, 2, NULL, NULL, 0, &e), 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/metrics.json", run);
    cr_assert_eq(clpdd_write_file_atomic(p, "{\"mine\": 1}\n", 12, &e), 0, "%s", e.msg);
}

/* an output directory that is the evaluated set's own, however spelled, is refused (exit 2)
   before anything in it is touched, with or without --force */
Test(evaluate, output_that_is_the_input_is_refused) {
    char ini[128], run[200], link[200], st[300], msg[8192], more[1400], p[300];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    write_ini(ini, NULL);
    snprintf(run, sizeof run, "%s/run", tmp);
    write_run(run, ini);
    snprintf(link, sizeof link, "%s/run-link", tmp);
    cr_assert_eq(symlink(run, link), 0);
    snprintf(st, sizeof st, "%s/distilled.safetensors", run);
    /* the run directory, with a trailing slash, through a symlink, as "run/." */
    char outs[4][300];
    snprintf(outs[0], sizeof outs[0], "%s", run);
    snprintf(outs[1], sizeof outs[1], "%s/", run);
    snprintf(outs[2], sizeof outs[2], "%s", link);
    snprintf(outs[3], sizeof outs[3], "%s/.", run);
    for (int i = 0; i < 4; i++) {
        const char *o = outs[i];
        snprintf(more, sizeof more, "--output '%s' --force", o);
        cr_expect_eq(eval_driver(run, ini, more, msg, sizeof msg), 2, "output %s: %s", o, msg);
        cr_expect(strstr(msg, "is where the evaluated set") && strstr(msg, "choose another --output"), "%s", msg);
        cr_expect_eq(eval_driver(st, ini, more, msg, sizeof msg), 2, "the set file's folder %s: %s", o, msg);
    }
    snprintf(p, sizeof p, "%s/metrics.json", run);
    char *m = slurp(p);
    cr_expect_str_eq(m, "{\"mine\": 1}\n", "the run evaluated is untouched");
    free(m);
    cr_expect(access(st, R_OK) == 0);
    /* `clpdd run RUN/config.ini --output RUN --force` would replace the configuration it runs */
    char args[1400];
    snprintf(args, sizeof args, "run '%s/config.ini' --output '%s/' --force --quiet", link, run);
    cr_expect_eq(test_driver(args, msg, sizeof msg), 2, "%s", msg);
    cr_expect(strstr(msg, "which --force replaces") && strstr(msg, "copy it out of the run directory"), "%s", msg);
    snprintf(p, sizeof p, "%s/config.ini", run);
    cr_expect(access(p, R_OK) == 0, "the configuration stays");
}

/* a run directory without distilled.safetensors: said so, and whether the run is unfinished */
Test(evaluate, run_without_its_set) {
    char ini[128], run[200], p[300], msg[8192];
    snprintf(ini, sizeof ini, "%s/e.ini", tmp);
    write_ini(ini, NULL);
    snprintf(run, sizeof run, "%s/run", tmp);
    write_run(run, ini);
    snprintf(p, sizeof p, "%s/distilled.safetensors", run);
    cr_assert_eq(unlink(p), 0);
    cr_expect_eq(eval_driver(run, ini, NULL, msg, sizeof msg), 2, "%s", msg);
    cr_expect(strstr(msg, "has no distilled.safetensors (and no checkpoint)") && strstr(msg, run), "%s", msg);
    cr_expect(!strstr(msg, "class folder"), "not taken for an image folder: %s", msg);
    snprintf(p, sizeof p, "%s/checkpoint.safetensors", run);
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_write_file_atomic(p, "x", 1, &e), 0, "%s", e.msg);
    char args[600];
    snprintf(args, sizeof args, "eval '%s' --quiet", run);
    cr_expect_eq(test_driver(args, msg, sizeof msg), 2, "%s", msg);
    cr_expect(strstr(msg, "the run is unfinished") && strstr(msg, "--resume"), "%s", msg);
    /* a path that does not exist: said so, not taken for a set file lacking --config */
    snprintf(args, sizeof args, "eval '%s/no-such-run' --quiet", tmp);
    cr_expect_eq(test_driver(args, msg, sizeof msg), 2, "%s", msg);
    cr_expect(strstr(msg, "no-such-run: No such file or directory"), "%s", msg);
}
