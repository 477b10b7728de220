/* Image datasets on disk (core/data/data_source.c, core/io/cifar.c): image folders, CSV manifests and
 * CIFAR binaries written by the test under a temporary folder (PNG via libpng, JPEG via
 * libjpeg-turbo), loaded through the decode pool; and every bad input's message naming the file
 * (and CSV line). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_source.h"
#include "data/decode_pool.h"
#include "io/cifar.h"
#include "io/image.h"
#include "io/png.h"
#include "support.h"

static char tmp[256];

static void mk_tmp(void) {
    snprintf(tmp, sizeof tmp, "/tmp/clpdd_test_datasets_XXXXXX");
    cr_assert(mkdtemp(tmp));
}

static void rm_tmp(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    cr_assert_eq(system(cmd), 0);
}

static void mkdir_p(const char *fmt, const char *a, const char *b) {
    char p[1024];
    snprintf(p, sizeof p, fmt, tmp, a, b);
    clpdd_err e;
    cr_assert_eq(clpdd_mkdirs(p, &e), 0, "%s", e.msg);
}

static void put_text(const char *rel, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    clpdd_err e;
    cr_assert_eq(clpdd_write_file_atomic(p, text, strlen(text), &e), 0, "%s", e.msg);
}

/* image k: a deterministic pattern, (h, w, 3) */
static void pattern(uint8_t *px, int h, int w, int k) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) px[((size_t)y * w + x) * 3 + c] = (uint8_t)(k * 37 + x * 5 + y * 3 + c * 60);
}

/* writes tmp/<rel> as PNG (lossless) or JPEG, image k of size h × w */
static void put_image(const char *rel, int k, int h, int w) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    uint8_t *px = malloc((size_t)h * w * 3);
    pattern(px, h, w, k);
    clpdd_err e;
    size_t n = strlen(rel);
    int rc = n > 4 && strcmp(rel + n - 4, ".png") == 0 ? clpdd_png_write(p, px, w, h, 3, &e)
                                                        : clpdd_image_write_jpeg(p, px, w, h, 3, 90, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    free(px);
}

/* train/{bird,cat,dog}: 3 + 2 + 2 images 16 × 20, one nested, a README ignored */
static void make_folder(const char *split) {
    mkdir_p("%s/%s/%s", split, "bird");
    mkdir_p("%s/%s/%s", split, "cat/sub");
    mkdir_p("%s/%s/%s", split, "dog");
    char r[256];
    const char *files[] = {"bird/b2.png", "bird/b1.JPG", "bird/b3.png", "cat/c1.png", "cat/sub/c0.png", "dog/d1.jpeg",
                           "dog/d2.png"};
    for (int i = 0; i < 7; i++) {
        snprintf(r, sizeof r, "%s/%s", split, files[i]);
        put_image(r, i, 16, 20);
    }
    snprintf(r, sizeof r, "%s/cat/README.txt", split);
    put_text(r, "not an image, ignored as torchvision ignores it\n");
}

/* every image of ds as floats (count, c, H, W), read on demand (or from memory for CIFAR) */
static float *all_px(const clpdd_dataset *ds) {
    float *x = malloc((size_t)ds->n * ds->c * ds->H * ds->W * sizeof(float) + 1);
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_read_float(ds, NULL, 0, ds->n, x, &e), 0, "%s", e.msg);
    return x;
}

static clpdd_data_cfg folder_cfg(const char *split) {
    static char root[300];
    snprintf(root, sizeof root, "%s", tmp);
    return (clpdd_data_cfg){.kind = CLPDD_DATASET_IMAGEFOLDER, .root = root, .split = split, .workers = 2};
}

Test(datasets, imagefolder_order_labels_pixels, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("train");
    clpdd_data_cfg cfg = folder_cfg("train");
    clpdd_dataset ds;
    clpdd_data_info info;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 7 && ds.c == 3 && ds.H == 16 && ds.W == 20 && ds.classes == 3, "%s", ds.desc);
    cr_expect(info.classes == 3 && !strcmp(info.class_names[0], "bird") && !strcmp(info.class_names[2], "dog"));
    cr_expect_eq(info.ignored, 1, "README.txt ignored");
    cr_expect(ds.pixels == NULL && ds.src, "an image folder is read on demand, not held in memory");
    float *xs = all_px(&ds);
    int want_label[7] = {0, 0, 0, 1, 1, 2, 2};
    for (int i = 0; i < 7; i++) cr_expect_eq(ds.labels[i], want_label[i], "label %d", i);
    /* order: bird/b1.JPG b2.png b3.png (strcmp), cat/c1.png then cat/sub/c0.png (os.walk sorted) */
    uint8_t px[16 * 20 * 3];
    int src_of[7] = {1, 0, 2, 3, 4, -1, 6}; /* position → image written (JPEGs not compared) */
    for (int i = 0; i < 7; i++) {
        if (src_of[i] < 0 || i == 0) continue;
        pattern(px, 16, 20, src_of[i]);
        int bad = 0;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 20; x++)
                for (int c = 0; c < 3; c++)
                    bad += xs[(size_t)i * 960 + ((size_t)c * 16 + y) * 20 + x] != px[(y * 20 + x) * 3 + c] * (1.0f / 255.0f);
        cr_expect_eq(bad, 0, "image %d: %d pixels differ from the PNG written (planar (c, H, W) layout)", i, bad);
    }
    /* the number of workers does not change anything */
    clpdd_dataset d1;
    cfg.workers = 1;
    cr_assert_eq(clpdd_dataset_load_source(&d1, NULL, &cfg, &e), 0, "%s", e.msg);
    float *x1 = all_px(&d1);
    cr_expect_eq(memcmp(x1, xs, (size_t)7 * 960 * sizeof(float)), 0, "1 worker == 2 workers");
    /* gather by index == the range, in any order; the void entry points agree */
    int gi[3] = {6, 0, 3};
    float g[3 * 960], r1[960];
    clpdd_dataset_gather_float(&d1, gi, 3, g);
    for (int k = 0; k < 3; k++)
        cr_expect_eq(memcmp(g + (size_t)k * 960, xs + (size_t)gi[k] * 960, 960 * sizeof(float)), 0, "gather %d", gi[k]);
    clpdd_dataset_to_float(&d1, 5, 1, r1);
    cr_expect_eq(memcmp(r1, xs + 5 * 960, sizeof r1), 0, "to_float(5, 1)");
    free(x1);
    cr_expect_eq(d1.id, ds.id);
    clpdd_dataset_free(&d1);
    /* preprocessing: Resize(8) + CenterCrop(6) gives 6 × 6 and another id */
    cfg.resize = 8, cfg.crop = 6, cfg.workers = 3;
    cr_assert_eq(clpdd_dataset_load_source(&d1, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(d1.H == 6 && d1.W == 6 && d1.n == 7);
    cr_expect_neq(d1.id, ds.id, "preprocessing is part of the id");
    clpdd_dataset_free(&d1);
    /* resize only: 8 × 10 */
    cfg.crop = 0;
    cr_assert_eq(clpdd_dataset_load_source(&d1, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(d1.H == 8 && d1.W == 10, "%dx%d", d1.H, d1.W);
    clpdd_dataset_free(&d1);
    /* grey */
    cfg.resize = 0, cfg.grey = 1;
    cr_assert_eq(clpdd_dataset_load_source(&d1, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(d1.c == 1 && d1.H == 16);
    clpdd_dataset_free(&d1);
    /* a touched file changes the id (size + mtime), content hashes are not taken */
    cfg.grey = 0;
    char p[600];
    snprintf(p, sizeof p, "%s/train/dog/d2.png", tmp);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 678}};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    cr_assert_eq(clpdd_dataset_load_source(&d1, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect_neq(d1.id, ds.id, "mtime is part of the id");
    clpdd_dataset_free(&d1);
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
    free(xs);
}

Test(datasets, imagefolder_classes_file_selects_and_orders, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("train");
    put_text("classes.txt", "# a subset, in this order\ndog\n\ncat\n");
    char cf[600];
    snprintf(cf, sizeof cf, "%s/classes.txt", tmp);
    clpdd_data_cfg cfg = folder_cfg("train");
    cfg.classes_file = cf;
    clpdd_dataset ds;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 4 && ds.classes == 2, "%s", ds.desc);
    int want[4] = {0, 0, 1, 1}; /* dog (line 1) first, then cat */
    for (int i = 0; i < 4; i++) cr_expect_eq(ds.labels[i], want[i]);
    clpdd_dataset_free(&ds);
    put_text("classes.txt", "dog\nzebra\n");
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "zebra") && strstr(e.msg, "classes.txt") && strstr(e.msg, "not on disk"), "%s", e.msg);
}

Test(datasets, imagefolder_bad_inputs, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("train");
    clpdd_data_cfg cfg = folder_cfg("train");
    clpdd_dataset ds;
    clpdd_data_info info;
    clpdd_err e;
    /* a non-image file with an image name, and a truncated PNG */
    put_text("train/cat/fake.jpg", "<html>not a jpeg</html>");
    char p[600];
    snprintf(p, sizeof p, "%s/train/dog/d2.png", tmp);
    uint8_t *b;
    size_t n;
    cr_assert_eq(clpdd_read_file(p, &b, &n, &e), 0);
    cr_assert_eq(truncate(p, (off_t)(n / 2)), 0);
    free(b);
    /* on_bad_image = error: the files are only listed at load (the first one decoded for the
       size); a bad one is the error when the images are read (the feature extraction reads all) */
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    float *xb = malloc((size_t)ds.n * 960 * sizeof(float));
    cr_expect_neq(clpdd_dataset_read_float(&ds, NULL, 0, ds.n, xb, &e), 0);
    cr_expect(strstr(e.msg, "train/cat/fake.jpg") && strstr(e.msg, "not a JPEG or PNG"),
              "first bad file in listing order: %s", e.msg);
    cr_expect_eq(clpdd_dataset_read_float(&ds, NULL, 0, 3, xb, &e), 0, "the good ones still read: %s", e.msg);
    int bad_idx = 7; /* dog/d2.png, truncated (after cat/fake.jpg) */
    cr_expect_neq(clpdd_dataset_read_float(&ds, &bad_idx, 0, 1, xb, &e), 0);
    cr_expect(strstr(e.msg, "d2.png") && strstr(e.msg, "truncated PNG"), "%s", e.msg);
    free(xb);
    clpdd_dataset_free(&ds);
    cfg.skip_bad = 1;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_expect_eq(ds.n, 6);
    cr_expect_eq(info.skipped, 2);
    cr_expect(info.skipped_first[0] && strstr(info.skipped_first[0], "fake.jpg"), "%s", info.skipped_first[0]);
    cr_expect(info.skipped_first[1] && strstr(info.skipped_first[1], "d2.png") && strstr(info.skipped_first[1], "truncated PNG"),
              "%s", info.skipped_first[1]);
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
    cfg.skip_bad = 0;
    /* images of different sizes without resize/crop */
    put_text("train/cat/fake.jpg", "");
    unlink(p);
    snprintf(p, sizeof p, "%s/train/cat/fake.jpg", tmp);
    unlink(p);
    put_image("train/dog/d3.png", 9, 17, 20);
    /* decided when the odd file is read, naming both files and the keys */
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    xb = malloc((size_t)ds.n * 960 * sizeof(float));
    cr_expect_neq(clpdd_dataset_read_float(&ds, NULL, 0, ds.n, xb, &e), 0);
    cr_expect(strstr(e.msg, "bird/b1.JPG") && strstr(e.msg, "dog/d3.png") && strstr(e.msg, "20x17") &&
                  strstr(e.msg, "[data] resize"),
              "%s", e.msg);
    free(xb);
    clpdd_dataset_free(&ds);
    /* on_bad_image = skip checks every file at load: the size error comes at once */
    cfg.skip_bad = 1;
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "bird/b1.JPG") && strstr(e.msg, "dog/d3.png") && strstr(e.msg, "[data] resize"), "%s", e.msg);
    cfg.skip_bad = 0;
    cfg.crop = 12;
    cr_expect_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "a crop brings them to one size: %s", e.msg);
    clpdd_dataset_free(&ds);
    cfg.crop = 0;
    /* an empty class folder */
    mkdir_p("%s/%s/%s", "train", "empty");
    put_text("train/empty/notes.txt", "x");
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "'empty' is empty") && strstr(e.msg, "train/empty") && strstr(e.msg, "1 other file"), "%s",
              e.msg);
    /* a missing split folder */
    cfg.split = "val";
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "/val") && strstr(e.msg, "root/<split>/<class>"), "%s", e.msg);
}

Test(datasets, on_demand_first_image_is_checked_at_load_the_rest_when_read, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("train");
    put_text("train/bird/a0.png", "not a png"); /* sorts first: the file that sets the size */
    clpdd_data_cfg cfg = folder_cfg("train");
    clpdd_dataset ds;
    clpdd_err e;
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "bird/a0.png") && strstr(e.msg, "on_bad_image = skip"), "%s", e.msg);
    /* with skip: left out at load, the others read; an index out of range is an error */
    cfg.skip_bad = 1;
    clpdd_data_info info;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 7 && info.skipped == 1 && strstr(info.skipped_first[0], "a0.png"), "%s", ds.desc);
    float *x = all_px(&ds);
    int bad = 7;
    cr_expect_neq(clpdd_dataset_read_float(&ds, &bad, 0, 1, x, &e), 0);
    cr_expect(strstr(e.msg, "out of range"), "%s", e.msg);
    free(x);
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
}

Test(datasets, train_and_test_class_sets_must_agree, .init = mk_tmp, .fini = rm_tmp) {
    make_folder("train");
    make_folder("val");
    char p[600];
    snprintf(p, sizeof p, "rm -rf %s/val/cat", tmp);
    cr_assert_eq(system(p), 0);
    mkdir_p("%s/%s/%s", "val", "cow");
    put_image("val/cow/x.png", 1, 16, 20);
    clpdd_data_cfg a = folder_cfg("train"), b = folder_cfg("val");
    clpdd_dataset da, db;
    clpdd_data_info ia, ib;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&da, &ia, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_dataset_load_source(&db, &ib, &b, &e), 0, "%s", e.msg);
    cr_expect_eq(clpdd_data_same_classes(&ia, "train split", &ia, "train split", &e), 0);
    cr_expect_neq(clpdd_data_same_classes(&ia, "train split", &ib, "val split", &e), 0);
    cr_expect(strstr(e.msg, "'cat'") && strstr(e.msg, "'cow'") && strstr(e.msg, "val split"), "%s", e.msg);
    clpdd_dataset_free(&da), clpdd_dataset_free(&db);
    clpdd_data_info_free(&ia), clpdd_data_info_free(&ib);
}

Test(datasets, manifest_names_splits_and_bad_rows, .init = mk_tmp, .fini = rm_tmp) {
    mkdir_p("%s/%s/%s", "imgs", "a");
    for (int i = 0; i < 6; i++) {
        char r[64];
        snprintf(r, sizeof r, "imgs/a/%d.png", i);
        put_image(r, i, 10, 12);
    }
    char abs5[600];
    snprintf(abs5, sizeof abs5, "%s/imgs/a/5.png", tmp);
    char csv[2048];
    snprintf(csv, sizeof csv,
             "img_filename,y,split\n"
             "imgs/a/0.png,landbird,0\n"
             "imgs/a/1.png,waterbird,0\n"
             "\"imgs/a/2.png\",landbird,1\n"
             "imgs/a/3.png,waterbird,0\r\n"
             "%s,waterbird,1\n",
             abs5);
    put_text("meta.csv", csv);
    char path[600];
    snprintf(path, sizeof path, "%s/meta.csv", tmp);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_MANIFEST, .root = path, .split = "0", .workers = 2};
    clpdd_dataset ds;
    clpdd_data_info info;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 3 && ds.classes == 2 && ds.H == 10 && ds.W == 12, "%s", ds.desc);
    cr_expect(ds.labels[0] == 0 && ds.labels[1] == 1 && ds.labels[2] == 1);
    cr_expect(!strcmp(info.class_names[0], "landbird") && !strcmp(info.class_names[1], "waterbird"));
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
    cfg.split = "1";
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 2 && ds.labels[0] == 0 && ds.labels[1] == 1, "class numbering is over the whole file");
    clpdd_dataset_free(&ds);

    /* headerless integer labels; a missing file and an out-of-range label name the CSV line */
    put_text("m2.csv", "imgs/a/0.png,0\nimgs/a/1.png,1\nimgs/a/nope.png,1\nimgs/a/4.png,2\n");
    snprintf(path, sizeof path, "%s/m2.csv", tmp);
    put_text("two.txt", "zero\none\n");
    char cf[600];
    snprintf(cf, sizeof cf, "%s/two.txt", tmp);
    cfg = (clpdd_data_cfg){.kind = CLPDD_DATASET_MANIFEST, .root = path, .classes_file = cf, .workers = 1};
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "m2.csv:3") && strstr(e.msg, "nope.png"), "%s", e.msg);
    put_text("m2.csv", "imgs/a/0.png,0\nimgs/a/1.png,1\nimgs/a/4.png,2\n");
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "m2.csv:3") && strstr(e.msg, "label 2 out of range 0..1") && strstr(e.msg, "two.txt"), "%s",
              e.msg);
    cfg.skip_bad = 1;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 2 && info.skipped == 1 && strstr(info.skipped_first[0], "m2.csv:3"));
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
    /* a class name not in the classes file; a malformed row */
    put_text("m3.csv", "imgs/a/0.png,zero\nimgs/a/1.png,three\n");
    snprintf(path, sizeof path, "%s/m3.csv", tmp);
    cfg.root = path, cfg.skip_bad = 0;
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "m3.csv:2") && strstr(e.msg, "'three'"), "%s", e.msg);
    put_text("m3.csv", "imgs/a/0.png,0\nimgs/a/1.png\n");
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "m3.csv:2") && strstr(e.msg, "1 fields, expected 2"), "%s", e.msg);
}

/* CIFAR-10: 5 train batches of 3 records + a test batch of 2; CIFAR-100: coarse + fine */
static void put_cifar(const char *name, int n, int hl, int first) {
    size_t rec = (size_t)hl + 3072;
    uint8_t *b = calloc((size_t)n, rec);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + (size_t)i * rec;
        if (hl == 2) r[0] = (uint8_t)(19 - (first + i) % 20);
        r[hl - 1] = (uint8_t)((first + i) % 10 * (hl == 2 ? 7 : 1));
        for (int p = 0; p < 3072; p++) r[hl + p] = (uint8_t)(first + i + p / 1024 * 50 + p % 32);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    clpdd_err e;
    cr_assert_eq(clpdd_write_file_atomic(p, b, (size_t)n * rec, &e), 0, "%s", e.msg);
    free(b);
}

Test(datasets, cifar_binaries, .init = mk_tmp, .fini = rm_tmp) {
    char name[64];
    mkdir_p("%s/%s/%s", "cifar-10-batches-bin", "");
    for (int k = 1; k <= 5; k++) {
        snprintf(name, sizeof name, "cifar-10-batches-bin/data_batch_%d.bin", k);
        put_cifar(name, 3, 1, 3 * (k - 1));
    }
    put_cifar("cifar-10-batches-bin/test_batch.bin", 2, 1, 100);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_CIFAR10, .root = tmp, .split = "train"};
    clpdd_dataset ds;
    clpdd_data_info info;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&ds, &info, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 15 && ds.c == 3 && ds.H == 32 && ds.classes == 10, "%s", ds.desc);
    for (int i = 0; i < 15; i++) cr_expect_eq(ds.labels[i], i % 10);
    /* planar (3, 32, 32) kept: image 4, G plane, row 0, column 5 */
    cr_expect_eq(ds.pixels[4 * 3072 + 1024 + 5], (uint8_t)(4 + 50 + 5));
    clpdd_dataset_free(&ds);
    clpdd_data_info_free(&info);
    cfg.split = "test", cfg.resize = 40, cfg.crop = 36;
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 2 && ds.H == 36 && ds.W == 36);
    clpdd_dataset_free(&ds);
    /* a truncated batch */
    char p[600];
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin/data_batch_3.bin", tmp);
    cr_assert_eq(truncate(p, 3073 * 2 + 100), 0);
    cfg.split = "train", cfg.resize = 0, cfg.crop = 0;
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "data_batch_3.bin") && strstr(e.msg, "not a whole number") && strstr(e.msg, "3073"), "%s",
              e.msg);
    /* CIFAR-100: the fine label (second byte); a CIFAR-10 file read as CIFAR-100 is caught */
    put_cifar("train.bin", 4, 2, 0);
    put_cifar("test.bin", 3, 1, 0); /* wrong: 1 label byte */
    cfg = (clpdd_data_cfg){.kind = CLPDD_DATASET_CIFAR100, .root = tmp, .split = "train"};
    cr_assert_eq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(ds.n == 4 && ds.classes == 100 && ds.labels[3] == 21, "fine label of record 3 is 3·7 = 21, got %d",
              ds.labels[3]);
    clpdd_dataset_free(&ds);
    cfg.split = "test";
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "test.bin") && strstr(e.msg, "looks like CIFAR-10"), "%s", e.msg);
    cfg.root = "/nonexistent";
    cr_expect_neq(clpdd_dataset_load_source(&ds, NULL, &cfg, &e), 0);
    cr_expect(strstr(e.msg, "cifar-100-binary") && strstr(e.msg, "/nonexistent"), "%s", e.msg);
}

Test(datasets, limit_is_a_stratified_seeded_subset, .init = mk_tmp, .fini = rm_tmp) {
    mkdir_p("%s/%s/%s", "train", "a");
    mkdir_p("%s/%s/%s", "train", "b");
    for (int i = 0; i < 12; i++) {
        char r[64];
        snprintf(r, sizeof r, "train/%s/%02d.png", i % 3 ? "a" : "b", i);
        put_image(r, i, 4, 4);
    }
    clpdd_data_cfg cfg = folder_cfg("train");
    cfg.limit = 4;
    clpdd_dataset a, b;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_source(&a, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect(a.n == 4 && a.labels[0] == 0 && a.labels[1] == 0 && a.labels[2] == 1 && a.labels[3] == 1,
              "2 per class, in listing order");
    cfg.workers = 3;
    cr_assert_eq(clpdd_dataset_load_source(&b, NULL, &cfg, &e), 0, "%s", e.msg);
    float *xa = all_px(&a), *xb = all_px(&b);
    cr_expect_eq(memcmp(xa, xb, (size_t)4 * 48 * sizeof(float)), 0, "same seed, same subset");
    free(xa), free(xb);
    clpdd_dataset_free(&b);
    cfg.subset_seed = 9;
    cr_assert_eq(clpdd_dataset_load_source(&b, NULL, &cfg, &e), 0, "%s", e.msg);
    cr_expect_neq(a.id, b.id);
    clpdd_dataset_free(&a), clpdd_dataset_free(&b);
}

static int pool_square(void *ctx, int worker, long i) {
    (void)worker;
    long *out = ctx;
    out[i] = i * i;
    return i == 37 || i == 80 ? -1 : 0;
}

Test(datasets, pool_is_deterministic) {
    long out[100];
    for (int w = 1; w <= 4; w++) {
        memset(out, 0, sizeof out);
        cr_expect_eq(clpdd_pool_run(w, 100, 0, pool_square, out), 37, "smallest failing index with %d workers", w);
        for (int i = 0; i < 100; i++) cr_expect_eq(out[i], (long)i * i);
        cr_expect_eq(clpdd_pool_run(w, 100, 1, pool_square, out), 37, "stop on error still reports the smallest");
    }
    cr_expect_eq(clpdd_pool_run(0, 0, 1, pool_square, out), -1);
}
