/* An end-to-end run on an image folder: a few hundred Fashion-MNIST images written as
 * PNG files in ImageFolder's layout (root/train/<class>/, root/val/<class>/) by the test, read back
 * through [data] dataset = imagefolder (libpng, the decode pool), distilled with CLP-DD on the
 * mnist-vit encoder, and scored by the converged probe: the distilled set must beat random real
 * images. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "config/experiment.h"
#include "io/png.h"
#include "distill/run.h"
#include "support.h"

/* n images of an IDX split as root/<split>/<class name>/<i>.png */
static void write_split(const char *root, const char *split, const clpdd_dataset *ds, int n) {
    clpdd_err e;
    for (int i = 0; i < n; i++) {
        char dir[512], file[600];
        snprintf(dir, sizeof dir, "%s/%s/class%02d", root, split, ds->labels[i]);
        cr_assert_eq(clpdd_mkdirs(dir, &e), 0, "%s", e.msg);
        snprintf(file, sizeof file, "%s/%05d.png", dir, i);
        cr_assert_eq(clpdd_png_write(file, ds->pixels + (size_t)i * ds->H * ds->W, ds->W, ds->H, 1, &e), 0, "%s", e.msg);
    }
}

Test(run_imagefolder, fashion_mnist_as_png_folders, .timeout = 600) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char tmp[] = "/tmp/clpdd-test-folder-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    clpdd_dataset tr, te;
    clpdd_err e = {{0}};
    /* a stratified 600 of the training images, the first 400 test images */
    cr_assert_eq(clpdd_dataset_load_idx(&tr, "fashion-mnist", "/usr/share/datasets/fashion-mnist", "train", 600, 0, &e), 0,
                 "%s", e.msg);
    cr_assert_eq(clpdd_dataset_load_idx(&te, "fashion-mnist", "/usr/share/datasets/fashion-mnist", "test", 400, 0, &e), 0,
                 "%s", e.msg);
    char root[128];
    snprintf(root, sizeof root, "%s/fmnist", tmp);
    write_split(root, "train", &tr, tr.n);
    write_split(root, "val", &te, te.n);
    clpdd_dataset_free(&tr), clpdd_dataset_free(&te);

    char ini[128], out[128];
    snprintf(ini, sizeof ini, "%s/f.ini", tmp);
    snprintf(out, sizeof out, "%s/run", tmp);
    FILE *f = fopen(ini, "w");
    fprintf(f,
            "[experiment]\nseed = 1\n[data]\ndataset = imagefolder\nroot = %s\nval_size = 100\nworkers = 2\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = 0.3\n[loss]\nname = ce\n"
            "[distill]\nipc = 1\nsteps = 60\nreal_batch = 256\n[eval]\nseeds = 3\nbaseline_full = false\n",
            root, tmp);
    fclose(f);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
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
    double acc = test_json_number(m, "\"accuracy\"", "\"mean\": "), rnd = test_json_number(m, "\"random_real\"", "\"mean\": ");
    cr_expect(acc > rnd, "distilled %g must beat random real %g", acc, rnd);
    cr_expect_eq(test_json_number(m, "\"features\"", "\"train\": "), 500);
    cr_expect_eq(test_json_number(m, "\"features\"", "\"test\": "), 400);
    cr_expect(strstr(m, "imagefolder"), "the dataset is described as the folder it came from: %s", m);
    free(data);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_expect_eq(system(cmd), 0);
}

/* a manifest with a third split the run does not use (Waterbirds' val rows): those rows are left
   out of both splits, and metrics.json counts them and names the first */
Test(run_imagefolder, manifest_rows_of_other_splits_counted, .timeout = 600) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char tmp[] = "/tmp/clpdd-test-manifest-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    clpdd_dataset tr;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_dataset_load_idx(&tr, "fashion-mnist", "/usr/share/datasets/fashion-mnist", "train", 300, 0, &e), 0,
                 "%s", e.msg);
    char root[128], csv[160];
    snprintf(root, sizeof root, "%s/fmnist", tmp);
    write_split(root, "all", &tr, tr.n);
    snprintf(csv, sizeof csv, "%s/m.csv", tmp);
    FILE *f = fopen(csv, "w");
    fprintf(f, "path,label,split\n");
    for (int i = 0; i < tr.n; i++) /* 200 train, 70 test, 30 of a split named "val" */
        fprintf(f, "fmnist/all/class%02d/%05d.png,%d,%s\n", tr.labels[i], i, tr.labels[i],
                i < 200 ? "train" : i < 270 ? "test" : "val");
    fclose(f);
    clpdd_dataset_free(&tr);
    char ini[128], out[128];
    snprintf(ini, sizeof ini, "%s/f.ini", tmp);
    snprintf(out, sizeof out, "%s/run", tmp);
    f = fopen(ini, "w");
    fprintf(f,
            "[experiment]\nseed = 1\n[data]\ndataset = manifest\nroot = %s\nval_size = 20\nworkers = 2\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n"
            "[distill]\nipc = 1\nsteps = 2\nreal_batch = 64\n[eval]\nseeds = 1\nbaseline_full = false\n",
            csv, tmp);
    fclose(f);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
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
    cr_expect_eq(test_json_number(m, "\"features\"", "\"train\": ") + test_json_number(m, "\"features\"", "\"val\": "), 200);
    cr_expect_eq(test_json_number(m, "\"features\"", "\"test\": "), 70);
    cr_expect_eq(test_json_number(m, "\"other_split_rows\"", "\"count\": "), 30);
    cr_expect(strstr(m, "m.csv:272: split 'val'") != NULL, "the first row of the other split is named: %s", m);
    free(data);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_expect_eq(system(cmd), 0);
}
