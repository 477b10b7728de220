/* The DSA real-batch prefetch (core/data/prefetch.h, core/distill/loop.c; docs/design.md §1):
 * the prefetcher hands back what a synchronous read gives and keeps a read's error for its wait;
 * an LGM + DSA run on an image folder gives the same distilled set, log and checkpoint with
 * [data] prefetch on and off, and a resumed run with it matches the uninterrupted one; an
 * unreadable image met mid-run stops the run at the same step with the same message (naming the
 * file) either way; no thread is left behind. Nothing here is timed (the wait it saves is
 * measured by clpdd bench --jpeg, results/bench/cpu/dsa-prefetch.md). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/experiment.h"
#include "data/data_source.h"
#include "data/prefetch.h"
#include "distill/checkpoint.h"
#include "distill/loop.h"
#include "distill/run.h"
#include "io/image.h"
#include "io/png.h"
#include "support.h"

/* the threads of this process now (/proc/self/task): a prefetch's thread must not outlive it */
static int thread_count(void) {
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void remove_tree(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* n random RGB side × side JPEGs as root/train/c<k>/<i>.jpg, label i mod classes; image `bad`
   (>= 0) is a truncated JPEG instead. Returns the bad file's path in bad_path. */
static void write_folder(const char *root, int n, int classes, int side, int bad, char *bad_path, size_t bad_len) {
    clpdd_err e;
    uint8_t *px = malloc((size_t)side * side * 3);
    for (int i = 0; i < n; i++) {
        char dir[600], file[700];
        snprintf(dir, sizeof dir, "%s/train/c%d", root, i % classes);
        cr_assert_eq(clpdd_mkdirs(dir, &e), 0, "%s", e.msg);
        snprintf(file, sizeof file, "%s/%04d.jpg", dir, i);
        test_rng r = {(uint64_t)i + 1};
        for (int q = 0; q < side * side * 3; q++) px[q] = (uint8_t)(256 * test_uniform(&r));
        cr_assert_eq(clpdd_image_write_jpeg(file, px, side, side, 3, 90, &e), 0, "%s", e.msg);
        if (i != bad) continue;
        cr_assert_eq(truncate(file, 40), 0);
        snprintf(bad_path, bad_len, "%s", file);
    }
    free(px);
}

static void load_folder(clpdd_dataset *ds, const char *root) {
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = root, .split = "train", .workers = 2};
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_dataset_load_source(ds, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_assert(clpdd_dataset_decodes_files(ds));
}

Test(prefetch, batches_are_what_a_read_gives_and_errors_wait_for_their_batch, .timeout = 120) {
    char tmp[] = "/tmp/clpdd-test-prefetch-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    char bad[800] = "";
    write_folder(tmp, 40, 4, 12, 33, bad, sizeof bad);
    clpdd_dataset ds;
    load_folder(&ds, tmp);
    int threads = thread_count(), n = 10;
    size_t px = (size_t)ds.c * ds.H * ds.W;
    float *want = malloc((size_t)n * px * sizeof(float));
    clpdd_prefetch *p = clpdd_prefetch_new(&ds, n, px);
    clpdd_err e = {{0}};
    const float *got;
    cr_expect_neq(clpdd_prefetch_wait(p, &got, &e), 0, "a wait with nothing started is an error");
    /* three batches of distinct images, each started before the last is looked at: double buffering */
    /* the listing's order: class folder, then name: file i is image (i mod 4)·10 + i/4 */
    int idx[3][10], bad_image = (33 % 4) * 10 + 33 / 4;
    for (int b = 0; b < 3; b++)
        for (int k = 0; k < n; k++) {
            idx[b][k] = (7 * (b * n + k) + 3) % 40;
            if (idx[b][k] == bad_image) idx[b][k] = (bad_image + 1) % 40;
        }
    clpdd_prefetch_start(p, idx[0]);
    for (int b = 0; b < 3; b++) {
        cr_assert(clpdd_prefetch_pending(p));
        cr_assert_eq(clpdd_prefetch_wait(p, &got, &e), 0, "%s", e.msg);
        cr_assert(!clpdd_prefetch_pending(p));
        const float *held = got;
        if (b + 1 < 3) clpdd_prefetch_start(p, idx[b + 1]); /* the next read runs while `held` is used */
        cr_assert_eq(clpdd_dataset_read_float(&ds, idx[b], 0, n, want, &e), 0, "%s", e.msg);
        cr_expect(memcmp(held, want, (size_t)n * px * sizeof(float)) == 0, "batch %d: the pixels of a synchronous read", b);
    }
    /* a batch with the truncated JPEG: the read's own message, naming the file, at the wait */
    int with_bad[10] = {0, 1, 2, bad_image, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(clpdd_dataset_read_float(&ds, with_bad, 0, n, want, &e), -1);
    char sync_msg[2048];
    snprintf(sync_msg, sizeof sync_msg, "%s", e.msg);
    clpdd_prefetch_start(p, with_bad);
    cr_assert_eq(clpdd_prefetch_wait(p, &got, &e), -1);
    cr_expect_str_eq(e.msg, sync_msg);
    cr_expect(strstr(e.msg, "0033.jpg") != NULL, "the message names the file: %s", e.msg);
    /* a read still in flight when the prefetcher goes: joined, its batch dropped */
    clpdd_prefetch_start(p, idx[0]);
    clpdd_prefetch_free(p);
    cr_expect_eq(thread_count(), threads, "no prefetch thread left behind");
    free(want);
    clpdd_dataset_free(&ds);
    remove_tree(tmp);
}

/* ---- the loop on an image folder with a truncated JPEG: the run's step with a random ViT ---- */

static const char *const loop_ini =
    "[experiment]\nseed = 3\n[data]\nprefetch = %s\nworkers = 2\nadapt = crop\n"
    "[backbone]\nname = vit\nvariant = vit\nweights = random\nimage_size = 16\npatch = 8\ndim = 16\ndepth = 1\nheads = 2\n"
    "[solver]\nname = lgm\n[distill]\nipc = 1\nreal_batch = 6\naugment = dsa\naugs_per_batch = 2\nsteps = 40\ninit = noise\n";

/* steps until the first error: *failed_step (0: none) and its message */
static void steps_until_error(const char *root, int prefetch, int *failed_step, char *msg, size_t msg_len) {
    char ini[1024];
    snprintf(ini, sizeof ini, loop_ini, prefetch ? "true" : "false");
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_experiment_load_memory(&x, ini, "<prefetch test>", NULL, 0, &dirs, &e), 0, "%s", e.msg);
    clpdd_run_data r;
    cr_assert_eq(clpdd_run_data_open(&r, &x, clpdd_ops_cpu(), "test", 1, &e), 0, "%s", e.msg);
    load_folder(&r.train, root);
    int N = r.train.n, d = r.d;
    r.C = r.train.classes, r.c = r.train.c, r.H = r.train.H, r.W = r.train.W, r.px = (size_t)r.c * r.H * r.W, r.N = N;
    r.target_rows = malloc((size_t)N * sizeof(int));
    r.target_y = malloc((size_t)N * sizeof(int32_t));
    r.target_x = malloc((size_t)N * d * sizeof(float));
    r.val_x = malloc((size_t)d * sizeof(float)), r.val_y = malloc(sizeof(int32_t));
    for (int i = 0; i < N; i++) r.target_rows[i] = i, r.target_y[i] = r.train.labels[i];
    test_fill_normal(r.target_x, (size_t)N * d, 1.0f, 5);
    clpdd_loop l;
    cr_assert_eq(clpdd_loop_setup(&l, &r, 1, &e), 0, "%s", e.msg);
    cr_expect_eq(l.prefetch != NULL, prefetch, "the prefetch is on exactly when asked for on files");
    *failed_step = 0;
    for (int step = 1; step <= x.steps && !*failed_step; step++) {
        float L;
        int added;
        if (clpdd_loop_step(&l, step, &L, &added, &e)) *failed_step = step, snprintf(msg, msg_len, "%s", e.msg);
    }
    clpdd_loop_free(&l);
    clpdd_run_data_free(&r);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
}

Test(prefetch, an_unreadable_image_mid_run_stops_at_its_step_with_its_name, .timeout = 300) {
    char tmp[] = "/tmp/clpdd-test-prefetch-run-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    char bad[800] = "";
    write_folder(tmp, 60, 3, 16, 41, bad, sizeof bad);
    int step_sync, step_pre;
    char msg_sync[2048] = "", msg_pre[2048] = "";
    steps_until_error(tmp, 0, &step_sync, msg_sync, sizeof msg_sync);
    int threads = thread_count(); /* the CPU ops' workers are up by now */
    steps_until_error(tmp, 1, &step_pre, msg_pre, sizeof msg_pre);
    cr_assert_gt(step_sync, 1, "the bad image is met after the first step (else the test proves little): %s", msg_sync);
    cr_expect_eq(step_pre, step_sync, "the error surfaces at the step that needs the batch");
    cr_expect_str_eq(msg_pre, msg_sync);
    cr_expect(strstr(msg_pre, "0041.jpg") != NULL, "the message names the file: %s", msg_pre);
    cr_expect_eq(thread_count(), threads, "no prefetch thread left behind");
    remove_tree(tmp);
}

/* ---- end to end: clpdd_run on a Fashion-MNIST PNG folder with LGM + DSA ---- */

/* n images of an IDX split as root/<split>/<class>/<i>.png */
static void write_split(const char *root, const char *split, const clpdd_dataset *ds) {
    clpdd_err e;
    for (int i = 0; i < ds->n; i++) {
        char dir[600], file[700];
        snprintf(dir, sizeof dir, "%s/%s/class%02d", root, split, ds->labels[i]);
        cr_assert_eq(clpdd_mkdirs(dir, &e), 0, "%s", e.msg);
        snprintf(file, sizeof file, "%s/%05d.png", dir, i);
        cr_assert_eq(clpdd_png_write(file, ds->pixels + (size_t)i * ds->H * ds->W, ds->W, ds->H, 1, &e), 0, "%s", e.msg);
    }
}

/* the run with [data] prefetch on or off */
static int run_dir(const char *ini, const char *out, int resume, int prefetch, clpdd_err *e) {
    const char *sets[] = {prefetch ? "data.prefetch=true" : "data.prefetch=false"};
    return test_run_experiment(ini, out, resume, sets, 1, e);
}

/* <dir>/<file> byte for byte equal to <other>/<file> */
static int same_file(const char *dir, const char *other, const char *file) {
    char pa[800], pb[800];
    snprintf(pa, sizeof pa, "%s/%s", dir, file);
    snprintf(pb, sizeof pb, "%s/%s", other, file);
    size_t la, lb;
    uint8_t *a = test_read_all(pa, &la), *b = test_read_all(pb, &lb);
    int same = la == lb && memcmp(a, b, la) == 0;
    free(a), free(b);
    return same;
}

/* a run directory's checkpoint (m = 10 pixel images of 28 × 28, N = 250 targets) */
typedef struct ckpt {
    clpdd_checkpoint c;
    float *host;
} ckpt;

static void ckpt_read(ckpt *k, const char *ini, const char *dir) {
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_experiment_load(&x, ini, NULL, 0, &dirs, &e), 0, "%s", e.msg);
    char *config = clpdd_experiment_distill_ini(&x), path[800];
    size_t cap = 10 * 28 * 28;
    int N = 250;
    k->host = calloc(3 * cap, sizeof(float));
    k->c = (clpdd_checkpoint){clpdd_hash_str(CLPDD_HASH_SEED, config), 0, 0, k->host, k->host + cap, k->host + 2 * cap, cap,
                              calloc((size_t)N, sizeof(int)), N, calloc(64, sizeof(clpdd_log_row)), 0, 64, NULL, x.steps, 0, NULL};
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    cr_assert_eq(clpdd_checkpoint_read(path, &k->c, &e), 0, "%s", e.msg);
    free(config);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
}

/* the same state in both (the log's seconds aside: they are the runs' own) */
static void ckpt_expect_same(const ckpt *a, const ckpt *b) {
    cr_expect_eq(a->c.step, b->c.step);
    cr_expect_eq(a->c.rng_state, b->c.rng_state, "the sampler's generator as without a batch drawn ahead");
    cr_expect(memcmp(a->c.perm, b->c.perm, (size_t)a->c.N * sizeof(int)) == 0, "the sampler's permutation");
    cr_expect(memcmp(a->host, b->host, 3 * a->c.cap * sizeof(float)) == 0, "the parameters and Adam's moments");
    cr_expect_eq(a->c.nlog, b->c.nlog);
    for (int i = 0; i < a->c.nlog && i < b->c.nlog; i++)
        cr_expect(a->c.log[i].step == b->c.log[i].step && a->c.log[i].loss == b->c.log[i].loss, "log row %d", i);
}

static void ckpt_free(ckpt *k) {
    free(k->host), free(k->c.perm), free(k->c.log);
}

Test(prefetch, image_folder_dsa_run_and_its_resume_are_bit_identical_with_and_without, .timeout = 900) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char tmp[] = "/tmp/clpdd-test-prefetch-e2e-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    clpdd_dataset tr, te;
    clpdd_err e = {{0}};
    cr_assert_eq(clpdd_dataset_load_idx(&tr, "fashion-mnist", "/usr/share/datasets/fashion-mnist", "train", 300, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_dataset_load_idx(&te, "fashion-mnist", "/usr/share/datasets/fashion-mnist", "test", 100, 0, &e), 0, "%s", e.msg);
    char root[128], ini[128], dirs[4][128];
    snprintf(root, sizeof root, "%s/fmnist", tmp);
    write_split(root, "train", &tr);
    write_split(root, "val", &te);
    clpdd_dataset_free(&tr), clpdd_dataset_free(&te);
    snprintf(ini, sizeof ini, "%s/f.ini", tmp);
    FILE *f = fopen(ini, "w");
    fprintf(f,
            "[experiment]\nseed = 2\n[data]\ndataset = imagefolder\nroot = %s\nval_size = 50\nworkers = 2\ncache_dir = %s/cache\n"
            "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n"
            "[distill]\nipc = 1\nsteps = 9\nreal_batch = 32\naugment = dsa\naugs_per_batch = 2\ncheckpoint_every = 3\nlog_every = 2\n"
            "[eval]\nseeds = 1\nepochs = 5\nbaseline_full = false\nbaseline_random = false\nbaseline_centroids = false\n",
            root, tmp);
    fclose(f);
    const char *names[4] = {"sync", "prefetch", "crashed-prefetch", "crashed-sync"};
    for (int i = 0; i < 4; i++) snprintf(dirs[i], sizeof dirs[i], "%s/%s", tmp, names[i]);
    cr_assert_eq(run_dir(ini, dirs[0], 0, 0, &e), 0, "%s", e.msg);
    int threads = thread_count(); /* the CPU ops' workers are up by now */
    cr_assert_eq(run_dir(ini, dirs[1], 0, 1, &e), 0, "%s", e.msg);
    cr_expect(same_file(dirs[0], dirs[1], "distilled.safetensors"), "the same distilled set with the prefetch");
    char *rows_sync = test_log_rows(dirs[0]), *rows_pre = test_log_rows(dirs[1]);
    cr_expect_str_eq(rows_pre, rows_sync, "the same losses with the prefetch");
    /* crashed after step 7 (a batch drawn ahead for step 8, the step-6 checkpoint written while
       one for step 7 was): the checkpoint holds the sampler of a run without the prefetch */
    setenv("CLPDD_TEST_CRASH_AFTER", "7", 1);
    cr_expect_neq(run_dir(ini, dirs[2], 0, 1, &e), 0);
    cr_expect(strstr(e.msg, "simulated crash after step 7"), "%s", e.msg);
    cr_expect_neq(run_dir(ini, dirs[3], 0, 0, &e), 0);
    unsetenv("CLPDD_TEST_CRASH_AFTER");
    cr_expect_eq(thread_count(), threads, "no prefetch thread left behind by the crash");
    ckpt ck[2];
    ckpt_read(&ck[0], ini, dirs[2]), ckpt_read(&ck[1], ini, dirs[3]);
    cr_expect_eq(ck[0].c.step, 6);
    ckpt_expect_same(&ck[0], &ck[1]);
    ckpt_free(&ck[0]), ckpt_free(&ck[1]);
    /* resumed with the prefetch (and the other one without): the uninterrupted run's images and log */
    cr_assert_eq(run_dir(ini, dirs[2], 1, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(run_dir(ini, dirs[3], 1, 0, &e), 0, "%s", e.msg);
    for (int i = 2; i < 4; i++) {
        cr_expect(same_file(dirs[0], dirs[i], "distilled.safetensors"), "%s: the resumed run ends with the same images", names[i]);
        char *rows = test_log_rows(dirs[i]);
        cr_expect_str_eq(rows, rows_sync, "%s: the resumed run's log", names[i]);
        free(rows);
    }
    cr_expect_eq(thread_count(), threads, "no prefetch thread left behind");
    free(rows_sync), free(rows_pre);
    remove_tree(tmp);
}
