/* Hostile data on disk, made by each test under a temporary folder (core/data/data_source.c,
 * core/io/cifar.c, core/util/util.c): files rewritten with their size and mtime put back (the
 * dataset id must change, or the feature cache serves stale features), manifests that would
 * silently test on training images or drop rows, directory symlink cycles, and paths that are
 * not regular files (a directory, a FIFO) where a file is expected: each is an error naming the
 * file, line or link, or a documented rule with a count; never a hang or a wrong number. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/experiment.h"
#include "data/data_source.h"
#include "data/file_id.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "plugin/loader.h"
#include "sweep/report.h"
#include "support.h"

static char tmp[256];

static void mk_tmp(void) {
    test_tmpdir_make(tmp, sizeof tmp, "data-hostile");
    alarm(60); /* a reader that blocks (a FIFO) fails the test instead of hanging the suite */
}

static void rm_tmp(void) {
    alarm(0);
    test_tmpdir_remove(tmp);
}

/* tmp/rel in one of 16 rotating buffers (roots kept in a cfg get their own copy: keep()) */
static const char *at(const char *rel) {
    static char p[16][1024];
    static int k;
    k = (k + 1) % 16;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp, rel);
    return p[k];
}

static char kept[4][1024];
static const char *keep(int slot, const char *rel) {
    snprintf(kept[slot], sizeof kept[slot], "%s/%s", tmp, rel);
    return kept[slot];
}

static void mkdirs(const char *rel) {
    clpdd_err e;
    cr_assert_eq(clpdd_mkdirs(at(rel), &e), 0, "%s", e.msg);
}

static void put_text(const char *rel, const char *text, size_t len) {
    clpdd_err e;
    cr_assert_eq(clpdd_write_file_atomic(at(rel), text, len, &e), 0, "%s", e.msg);
}

/* a 12 x 10 PNG whose pixels depend on k */
static void put_png(const char *rel, int k) {
    uint8_t px[10 * 12 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(k * 41 + i * 7);
    clpdd_err e;
    cr_assert_eq(clpdd_png_write(at(rel), px, 12, 10, 3, &e), 0, "%s", e.msg);
}

/* overwrite rel in place (same inode, same size) with other bytes, then put its mtime back as
   `touch -r` or os.utime would: only the ctime tells the rewrite apart */
static void overwrite_keep_stamp(const char *rel, const uint8_t *bytes) {
    struct stat st, after;
    cr_assert_eq(stat(at(rel), &st), 0);
    uint8_t *junk = malloc((size_t)st.st_size);
    for (off_t i = 0; i < st.st_size; i++) junk[i] = bytes ? bytes[i] : (uint8_t)(i * 13 + 5);
    /* 20 ms past a fine ctime clock; once more after a second on a file system with a coarse one */
    for (int tries = 0; tries < 2; tries++) {
        if (tries) sleep(1);
        else usleep(20000);
        int fd = open(at(rel), O_WRONLY);
        cr_assert(fd >= 0);
        cr_assert_eq(pwrite(fd, junk, (size_t)st.st_size, 0), (ssize_t)st.st_size);
        close(fd);
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        cr_assert_eq(utimensat(AT_FDCWD, at(rel), ts, 0), 0);
        cr_assert_eq(stat(at(rel), &after), 0);
        if (after.st_ctim.tv_sec != st.st_ctim.tv_sec || after.st_ctim.tv_nsec != st.st_ctim.tv_nsec) break;
    }
    free(junk);
    cr_assert(after.st_size == st.st_size && after.st_ino == st.st_ino &&
              after.st_mtim.tv_sec == st.st_mtim.tv_sec && after.st_mtim.tv_nsec == st.st_mtim.tv_nsec);
}

/* the same with other bytes of its own making */
static void rewrite_keep_stamp(const char *rel) { overwrite_keep_stamp(rel, NULL); }

static uint64_t id_of(const clpdd_data_cfg *cfg) {
    clpdd_dataset ds;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, cfg, &e), 0, "%s", e.msg);
    uint64_t id = ds.id;
    clpdd_dataset_free(&ds);
    return id;
}

/* train/{a,b}/{0,1}.png under root */
static void make_folder(const char *root) {
    char r[256];
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 2; i++) {
            snprintf(r, sizeof r, "%s/train/%c", root, 'a' + c);
            mkdirs(r);
            snprintf(r, sizeof r, "%s/train/%c/%d.png", root, 'a' + c, i);
            put_png(r, 2 * c + i);
        }
}

/* ---------------------------------------------------------------- 1. file identity */

Test(data_hostile, same_size_rewrite_with_mtime_put_back_changes_the_id, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("f");
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = keep(0, "f"), .split = "train", .workers = 1};
    uint64_t before = id_of(&cfg);
    cr_expect_eq(id_of(&cfg), before, "an untouched folder keeps its id (and its cache)");
    rewrite_keep_stamp("f/train/b/1.png");
    cr_expect_neq(id_of(&cfg), before, "a same-size rewrite with the mtime restored must change the dataset id");

    /* the same trick on a manifest's files */
    put_text("f/m.csv", "train/a/0.png,0,train\ntrain/b/0.png,1,train\n", 44);
    clpdd_data_cfg m = {.kind = CLPDD_DATASET_MANIFEST, .root = keep(1, "f/m.csv"), .split = "train", .workers = 1};
    before = id_of(&m);
    rewrite_keep_stamp("f/train/b/0.png");
    cr_expect_neq(id_of(&m), before);
}

Test(data_hostile, verify_content_identifies_files_by_their_bytes, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("f");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", at("f"), at("g")); /* new inodes, ctimes, mtimes */
    cr_assert_eq(system(cmd), 0);
    clpdd_data_cfg f = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = keep(0, "f"), .split = "train", .workers = 1};
    clpdd_data_cfg g = f;
    g.root = keep(1, "g");
    cr_expect_neq(id_of(&f), id_of(&g), "stat: a copy is other files");
    f.verify = g.verify = CLPDD_VERIFY_CONTENT;
    uint64_t idf = id_of(&f);
    cr_expect_eq(idf, id_of(&g), "content: a copy has the same bytes, so the same id");
    /* one byte of the copy changed, its size and mtime kept */
    rewrite_keep_stamp("g/train/a/1.png");
    cr_expect_neq(id_of(&g), idf);
    /* the key is declared in [data] with its two choices, default stat */
    int n;
    const clpdd_core_section *sec = clpdd_core_sections(&n);
    const clpdd_key *k = NULL;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < sec[i].n_keys && !strcmp(sec[i].name, "data"); j++)
            if (!strcmp(sec[i].keys[j].name, "verify")) k = &sec[i].keys[j];
    cr_assert_not_null(k);
    cr_expect_str_eq(k->default_value, "stat");
    cr_expect_str_eq(k->choices, "stat|content");
}

static void put_cifar(const char *rel, int n, int first) {
    size_t rec = 3073;
    uint8_t *b = calloc((size_t)n, rec);
    for (int i = 0; i < n; i++) {
        b[(size_t)i * rec] = (uint8_t)((first + i) % 10);
        for (int p = 0; p < 3072; p++) b[(size_t)i * rec + 1 + p] = (uint8_t)(first + i + p);
    }
    put_text(rel, (const char *)b, (size_t)n * rec);
    free(b);
}

Test(data_hostile, cifar_batches_are_identified_by_their_bytes, .init = mk_tmp, .fini = rm_tmp) {
    for (int k = 1; k <= 5; k++) {
        char r[64];
        snprintf(r, sizeof r, "data_batch_%d.bin", k);
        put_cifar(r, 2, 2 * k);
    }
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_CIFAR10, .root = tmp, .split = "train"};
    uint64_t before = id_of(&cfg);
    cr_expect_eq(id_of(&cfg), before);
    struct stat st, now;
    cr_assert_eq(stat(at("data_batch_4.bin"), &st), 0);
    put_cifar("data_batch_4.bin", 2, 7); /* other records, the same size */
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, at("data_batch_4.bin"), ts, 0), 0);
    cr_assert_eq(stat(at("data_batch_4.bin"), &now), 0);
    cr_assert(now.st_size == st.st_size && now.st_mtim.tv_nsec == st.st_mtim.tv_nsec);
    cr_expect_neq(id_of(&cfg), before, "a batch with other records must change the id");
}

/* ---------------------------------------------------------------- 2. manifests */

/* the manifest text at f/m.csv over images f/train/a/0.png ... loaded for split; the error */
static int load_manifest_n(const char *text, size_t len, const char *split, clpdd_data_info *info, clpdd_err *e) {
    put_text("f/m.csv", text, len);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_MANIFEST, .root = keep(2, "f/m.csv"), .split = split, .workers = 1};
    static const char *const used[] = {"train", "test", NULL};
    cfg.splits = used;
    clpdd_dataset ds;
    clpdd_data_info tmpi;
    int rc = clpdd_dataset_load_source(&ds, info ? info : &tmpi, &cfg, e);
    if (rc == 0) {
        rc = ds.n;
        clpdd_dataset_free(&ds);
        if (!info) clpdd_data_info_free(&tmpi);
    }
    return rc;
}

static int load_manifest(const char *text, const char *split, clpdd_data_info *info, clpdd_err *e) {
    return load_manifest_n(text, strlen(text), split, info, e);
}

#define EXPECT_ERR(text, split, ...)                                                  \
    do {                                                                              \
        clpdd_err e_ = {{0}};                                                         \
        cr_expect_eq(load_manifest_n(text, sizeof text - 1, split, NULL, &e_), -1, "accepted: %s", text); \
        const char *want_[] = {__VA_ARGS__};                                          \
        for (size_t i_ = 0; i_ < sizeof want_ / sizeof *want_; i_++)                  \
            cr_expect(strstr(e_.msg, want_[i_]), "'%s' not in: %s", want_[i_], e_.msg); \
    } while (0)

Test(data_hostile, manifest_rows_that_would_mislead_are_errors, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("f");
    /* no split column: every row would be in both splits */
    EXPECT_ERR("train/a/0.png,0\ntrain/b/0.png,1\n", "train", "m.csv", "no split column", "path,label,split");
    /* a NUL byte in line 3 would end the file there */
    EXPECT_ERR("train/a/0.png,0,train\ntrain/b/0.png,1,train\ntrain/a/1.png\0,0,train\ntrain/b/1.png,1,train\n"
               "train/b/1.png,1,test\n",
               "train", "m.csv:3", "NUL byte");
    /* one non-integer label among integers */
    EXPECT_ERR("train/a/0.png,0,train\ntrain/b/0.png,1,train\ntrain/a/1.png,1.5,test\n", "train", "m.csv:3", "'1.5'",
               "line 1's label '0'", "not a mix");
    /* the same file with two labels; the same file in two splits */
    EXPECT_ERR("train/a/0.png,0,train\ntrain/b/0.png,1,train\ntrain/a/0.png,1,test\n", "train", "lines 1 and 3",
               "train/a/0.png", "labels '0' and '1'");
    EXPECT_ERR("train/a/0.png,0,train\ntrain/b/0.png,1,train\ntrain/b/0.png,1,test\n", "test", "lines 2 and 3",
               "splits 'train' and 'test'");
    /* a label too large for an int names its line, not a clamped value */
    EXPECT_ERR("train/a/0.png,0,train\ntrain/b/0.png,99999999999999999999999,train\n", "train", "m.csv:2",
               "label 99999999999999999999999 is implausibly large");
    /* a split that differs from a used one only in case */
    EXPECT_ERR("train/a/0.png,0,train\ntrain/b/0.png,1,Train\n", "train", "m.csv:2", "'Train'", "only in case");
    /* a row whose file is a FIFO or a directory */
    cr_assert_eq(mkfifo(at("f/train/a/p.png"), 0600), 0);
    EXPECT_ERR("train/a/0.png,0,train\ntrain/a/p.png,1,train\n", "train", "m.csv:2", "p.png is a FIFO (named pipe)");
    EXPECT_ERR("train/a/0.png,0,train\ntrain/b,1,train\n", "train", "m.csv:2", "train/b is a directory");
    /* no row of the split: the values the column holds are named */
    EXPECT_ERR("train/a/0.png,0,tr\ntrain/b/0.png,1,tr\n", "train", "no usable rows for split 'train'",
               "the split column holds 'tr'");
}

Test(data_hostile, manifest_rules_blanks_and_other_splits, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("f");
    clpdd_err e;
    /* blanks around fields are not part of them */
    cr_expect_eq(load_manifest("train/a/0.png, 0, train\n train/b/0.png ,1 , train\ntrain/a/1.png,0,test\n", "train",
                               NULL, &e),
                 2, "%s", e.msg);
    /* rows of a split the caller does not use are left out, counted and the first named */
    clpdd_data_info info;
    cr_assert_eq(load_manifest("train/a/0.png,0,train\ntrain/b/0.png,1,train\ntrain/a/1.png,0,val\n"
                               "train/b/1.png,1,val\n",
                               "train", &info, &e),
                 2, "%s", e.msg);
    cr_expect_eq(info.other_rows, 2);
    cr_expect(info.other_first && strstr(info.other_first, "m.csv:3: split 'val'"), "%s", info.other_first);
    clpdd_data_info_free(&info);
    /* without a split (every row wanted) a 2-column file is fine */
    put_text("f/two.csv", "train/a/0.png,0\ntrain/b/0.png,1\n", 32);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_MANIFEST, .root = keep(3, "f/two.csv"), .workers = 1};
    cr_expect_neq(id_of(&cfg), 0);
}

/* ---------------------------------------------------------------- 5. symlink cycles */

Test(data_hostile, a_directory_symlink_cycle_is_refused_naming_the_link, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("f");
    mkdirs("f/train/a/deep");
    put_png("f/train/a/deep/2.png", 9);
    cr_assert_eq(symlink("../../a", at("f/train/a/deep/loop")), 0);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = keep(0, "f"), .split = "train", .workers = 1};
    clpdd_dataset ds;
    clpdd_err e;
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "train/a/deep/loop") && strstr(e.msg, "directory cycle") && strstr(e.msg, "/train/a"), "%s",
              e.msg);
    /* a link to a folder outside the class folder's tree is followed (torchvision does) */
    unlink(at("f/train/a/deep/loop"));
    mkdirs("extra");
    put_png("extra/3.png", 3);
    cr_assert_eq(symlink(at("extra"), at("f/train/a/deep/more")), 0);
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect_eq(ds.n, 6);
    clpdd_dataset_free(&ds);
}

/* ---------------------------------------------------------------- 10. not regular files */

Test(data_hostile, readers_refuse_directories_and_fifos, .init = mk_tmp, .fini = rm_tmp) {
    clpdd_err e;
    uint8_t *buf;
    size_t len;
    mkdirs("d");
    cr_expect_neq(clpdd_read_file(at("d"), &buf, &len, &e), 0);
    cr_expect(strstr(e.msg, "is a directory, not a regular file"), "%s", e.msg);
    cr_assert_eq(mkfifo(at("p"), 0600), 0);
    cr_expect_neq(clpdd_read_file(at("p"), &buf, &len, &e), 0);
    cr_expect(strstr(e.msg, "is a FIFO"), "%s", e.msg);
    uint64_t h;
    cr_expect_neq(clpdd_file_content_hash(at("p"), NULL, &h, &e), 0);
    cr_expect(strstr(e.msg, "is a FIFO"), "%s", e.msg);
    cr_expect_neq(clpdd_elf_check(at("p"), &e), 0); /* a plugin path */
    cr_expect(strstr(e.msg, "not a regular file"), "%s", e.msg);
    clpdd_st_file *st;
    cr_expect_neq(clpdd_st_open(at("p"), &st, &e), 0); /* weights, a checkpoint */
    cr_expect(strstr(e.msg, "is a FIFO"), "%s", e.msg);

    /* a CIFAR batch that is a directory (the first, or a later one) */
    for (int k = 1; k <= 5; k++) {
        char r[64];
        snprintf(r, sizeof r, "data_batch_%d.bin", k);
        if (k == 3) mkdirs(r);
        else put_cifar(r, 2, k);
    }
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_CIFAR10, .root = tmp, .split = "train"};
    clpdd_dataset ds;
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "data_batch_3.bin") && strstr(e.msg, "is a directory"), "%s", e.msg);
    cr_assert_eq(rename(at("data_batch_1.bin"), at("data_batch_1.old")), 0);
    mkdirs("data_batch_1.bin");
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "data_batch_1.bin") && strstr(e.msg, "is a directory"), "%s", e.msg);

    /* a manifest root that is a directory */
    cfg = (clpdd_data_cfg){.kind = CLPDD_DATASET_MANIFEST, .root = keep(0, "d"), .split = "train"};
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "/d: is a directory, not a regular file"), "%s", e.msg);
}

Test(data_hostile, a_fifo_in_an_image_folder_is_a_bad_image_not_a_hang, .init = mk_tmp, .fini = rm_tmp, .timeout = 60) {
    make_folder("f");
    cr_assert_eq(mkfifo(at("f/train/b/pipe.png"), 0600), 0);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = keep(0, "f"), .split = "train", .workers = 1};
    /* on_bad_image = error: the read that meets it fails, naming it */
    clpdd_dataset ds;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_assert_eq(ds.n, 5);
    float *px = malloc((size_t)5 * 3 * 10 * 12 * sizeof *px);
    cr_expect_neq(clpdd_dataset_read_float(&ds, NULL, 0, 5, px, &e), 0);
    cr_expect(strstr(e.msg, "pipe.png") && strstr(e.msg, "is a FIFO"), "%s", e.msg);
    free(px);
    clpdd_dataset_free(&ds);
    /* on_bad_image = skip: left out and counted */
    cfg.skip_bad = 1;
    clpdd_data_info info;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_expect_eq(ds.n, 4);
    cr_expect_eq(info.skipped, 1);
    cr_expect(strstr(info.skipped_first[0], "pipe.png") && strstr(info.skipped_first[0], "FIFO"), "%s",
              info.skipped_first[0]);
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
}

Test(data_hostile, report_with_a_metrics_json_that_is_a_directory, .init = mk_tmp, .fini = rm_tmp) {
    mkdirs("sw/run1/metrics.json");
    const char *dirs[] = {keep(0, "sw")};
    clpdd_report_opts o = {keep(1, "out"), NULL, 0, 1};
    clpdd_report_result r;
    clpdd_err e = {{0}};
    cr_expect_eq(clpdd_report(dirs, 1, &o, &r, &e), -1);
    cr_expect(strstr(e.msg, "run1/metrics.json: is a directory, not a regular file"), "%s", e.msg);
}

/* ---------------------------------------------------------------- through the driver */

/* a 28 x 28 grey PNG of one value */
static void put_flat(const char *rel, int v) {
    uint8_t px[28 * 28];
    memset(px, v, sizeof px);
    for (int i = 0; i < 28; i++) px[i * 28 + i] = (uint8_t)(255 - v); /* a diagonal, so images differ */
    clpdd_err e;
    cr_assert_eq(clpdd_png_write(at(rel), px, 28, 28, 1, &e), 0, "%s", e.msg);
}

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* `clpdd features` on a small image folder: cached, then a training image overwritten in place
   by other pixels of the same file size with its mtime put back must be extracted again (it was
   served "from cache"); a FIFO among the images is an error (or a skipped image), never a hang */
Test(data_hostile, driver_reextracts_after_a_stamp_preserving_rewrite, .init = mk_tmp, .fini = rm_tmp, .timeout = 240) {
    test_model_file("mnist-vit.safetensors");
    char r[128];
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < (s ? 3 : 6); i++) {
                snprintf(r, sizeof r, "img/%s/c%d", s ? "val" : "train", c);
                mkdirs(r);
                snprintf(r, sizeof r, "img/%s/c%d/%d.png", s ? "val" : "train", c, i);
                put_flat(r, 20 * c + 3 * i + 40 * s);
            }
    /* another value whose PNG has the same size as train/c1/2.png */
    struct stat st, cand;
    cr_assert_eq(stat(at("img/train/c1/2.png"), &st), 0);
    int found = -1;
    for (int v = 100; v < 250 && found < 0; v++) {
        put_flat("other.png", v);
        cr_assert_eq(stat(at("other.png"), &cand), 0);
        if (cand.st_size == st.st_size) found = v;
    }
    cr_assert(found >= 0, "no same-size PNG found");
    char ini[1024], args[2048];
    snprintf(ini, sizeof ini,
             "[data]\ndataset = imagefolder\nroot = %s\nval_size = 2\nworkers = 1\ncache_dir = %s\n"
             "[backbone]\nname = vit\nweights = mnist-vit.safetensors\n[solver]\nname = ridge\n[loss]\nname = ce\n",
             at("img"), at("cache"));
    put_text("t.ini", ini, strlen(ini));
    snprintf(args, sizeof args, "features %s", at("t.ini"));
    static char out[65536];
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect_eq(count_of(out, "from cache"), 0, "%s", out);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect_eq(count_of(out, "from cache"), 2, "both splits cached: %s", out);

    /* other pixels, the same size, the same inode, the mtime put back */
    uint8_t *bytes;
    size_t len;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(at("other.png"), &bytes, &len, &e), 0, "%s", e.msg);
    cr_assert_eq((off_t)len, st.st_size);
    overwrite_keep_stamp("img/train/c1/2.png", bytes);
    free(bytes);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect_eq(count_of(out, "from cache"), 1, "the training split must be extracted again: %s", out);
    const char *hit = strstr(out, "from cache");
    while (hit && hit > out && hit[-1] != '\n') hit--;
    cr_expect(hit && strstr(hit, "/val (") && strstr(hit, "/val (") < strstr(hit, "from cache"), "the cached one is val: %s",
              out);

    /* a FIFO named like an image: an error naming it, or with on_bad_image = skip left out */
    cr_assert_eq(mkfifo(at("img/train/c0/pipe.png"), 0600), 0);
    cr_expect_eq(test_driver(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "pipe.png") && strstr(out, "is a FIFO"), "%s", out);
    snprintf(args, sizeof args, "features %s --set data.on_bad_image=skip", at("t.ini"));
    cr_expect_eq(test_driver(args, out, sizeof out), 0, "%s", out);
}
