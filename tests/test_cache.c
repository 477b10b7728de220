/* Nothing read back from disk is trusted: the feature cache and the
 * checkpoint carry an XXH3 checksum of their payload and are validated on load (shapes, labels,
 * step range, finite values); a bad file is a warning and a rebuild (cache) or an error naming the
 * file (checkpoint), never a crash or wrong results. Data files are identified by content, so an
 * in-place rewrite with the same size and its mtime put back changes the key. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "distill/checkpoint.h"
#include "data/dataset.h"
#include "features/feature_cache.h"
#include "data/file_id.h"
#include "io/safetensors.h"
#include "support.h"

static char tmpdir[256];

static void setup(void) { test_tmpdir_make(tmpdir, sizeof tmpdir, "cache"); }
static void teardown(void) { test_tmpdir_remove(tmpdir); }

TestSuite(cache, .init = setup, .fini = teardown);

/* a plain write (no fsync: the mutation loops write thousands of files) */
static void put_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    if (len) cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void flip_bytes(const char *path, long at, int n) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (at < 0) at = size / 2;
    for (int i = 0; i < n && at + i < size; i++) {
        fseek(f, at + i, SEEK_SET);
        int c = fgetc(f);
        fseek(f, at + i, SEEK_SET);
        fputc(c ^ 0xff, f);
    }
    fclose(f);
}

/* ---- the feature cache file ---- */

enum { N = 40, D = 6, C = 4 };

static void make_ds(clpdd_dataset *ds, int32_t *labels) {
    memset(ds, 0, sizeof *ds);
    for (int i = 0; i < N; i++) labels[i] = i % C;
    ds->n = N, ds->classes = C, ds->labels = labels;
}

/* a cache file as clpdd writes it: checksum = XXH3(features bytes ‖ labels bytes) */
static void write_cache(const char *path, const char *key, const float *x, const int32_t *y, int n, int d, const char *fmt) {
    size_t fb = (size_t)n * d * sizeof(float), lb = (size_t)n * sizeof(int32_t);
    uint8_t *both = malloc(fb + lb);
    memcpy(both, x, fb);
    memcpy(both + fb, y, lb);
    char sum[32];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)clpdd_xxh3(both, fb + lb));
    free(both);
    clpdd_st_entry ent[2] = {{"features", CLPDD_DT_F32, 2, {n, d}, x}, {"labels", CLPDD_DT_I32, 1, {n}, y}};
    const char *mk[] = {"key", "format", "checksum"};
    const char *mv[] = {key, fmt ? fmt : "clpdd feature cache v2", sum};
    clpdd_err e;
    cr_assert_eq(clpdd_st_write(path, ent, 2, mk, mv, 3, &e), 0, "%s", e.msg);
}

static int read_cache(const char *path, const clpdd_dataset *ds, clpdd_err *e) {
    clpdd_features f;
    memset(&f, 0, sizeof f);
    int rc = clpdd_features_read_cache(&f, path, "KEY", ds, D, e);
    if (rc == 0) {
        cr_assert(f.x && f.y);
        for (int i = 0; i < N; i++) cr_assert_eq(f.y[i], ds->labels[i]);
    } else {
        cr_assert(!f.x && !f.y, "nothing is handed out from a bad file");
    }
    clpdd_features_free(&f);
    return rc;
}

Test(cache, a_bad_cache_file_is_rejected_with_the_reason_never_trusted) {
    int32_t labels[N], y[N];
    float x[N * D];
    clpdd_dataset ds;
    make_ds(&ds, labels);
    test_fill_normal(x, N * D, 1.0f, 7);
    memcpy(y, labels, sizeof y);
    char path[512];
    snprintf(path, sizeof path, "%s/c.safetensors", tmpdir);
    clpdd_err e = {{0}};

    cr_expect_eq(read_cache(path, &ds, &e), 1, "no file: 1");
    write_cache(path, "KEY", x, y, N, D, NULL);
    cr_expect_eq(read_cache(path, &ds, &e), 0, "%s", e.msg);

    flip_bytes(path, -1, 64); /* 64 bytes in the middle of the payload */
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    cr_expect(strstr(e.msg, "checksum mismatch") && strstr(e.msg, path), "%s", e.msg);

    y[5] = 200; /* a label out of range, with a valid checksum */
    write_cache(path, "KEY", x, y, N, D, NULL);
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    cr_expect(strstr(e.msg, "label 200"), "%s", e.msg);
    y[5] = (y[5 - 1] + 2) % C; /* in range but not the dataset's label */
    write_cache(path, "KEY", x, y, N, D, NULL);
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    cr_expect(strstr(e.msg, "not the dataset's"), "%s", e.msg);
    memcpy(y, labels, sizeof y);

    write_cache(path, "KEY", x, y, N - 1, D, NULL); /* another N */
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    cr_expect(strstr(e.msg, "expected"), "%s", e.msg);
    write_cache(path, "KEY", x, y, N, D - 1, NULL); /* another d */
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    write_cache(path, "OTHER", x, y, N, D, NULL);
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    cr_expect(strstr(e.msg, "key differs"), "%s", e.msg);
    write_cache(path, "KEY", x, y, N, D, "clpdd feature cache v1");
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    cr_expect(strstr(e.msg, "format"), "%s", e.msg);
    x[3] = NAN;
    write_cache(path, "KEY", x, y, N, D, NULL);
    cr_expect_eq(read_cache(path, &ds, &e), -1);
    cr_expect(strstr(e.msg, "not finite"), "%s", e.msg);
    x[3] = 0;

    /* every truncation and thousands of byte flips: an error or a valid read, never a crash */
    write_cache(path, "KEY", x, y, N, D, NULL);
    uint8_t *good;
    size_t len;
    cr_assert_eq(clpdd_read_file(path, &good, &len, &e), 0);
    for (size_t cut = 0; cut < len; cut += 7) {
        put_file(path, good, cut);
        cr_assert_eq(read_cache(path, &ds, &e), -1, "truncated at %zu", cut);
    }
    test_rng r = {99};
    int rejected = 0;
    uint8_t *m = malloc(len);
    for (int it = 0; it < 2000; it++) {
        memcpy(m, good, len);
        int flips = 1 + (int)(test_uniform(&r) * 4);
        for (int k = 0; k < flips; k++) m[(size_t)(test_uniform(&r) * len)] ^= (uint8_t)(1 + test_uniform(&r) * 255);
        put_file(path, m, len);
        rejected += read_cache(path, &ds, &e) != 0;
    }
    cr_expect_gt(rejected, 1900, "nearly every mutation is caught (%d of 2000)", rejected);
    free(m);
    free(good);

    if (geteuid() != 0) { /* another user's unreadable file (root reads everything) */
        write_cache(path, "KEY", x, y, N, D, NULL);
        chmod(path, 0);
        cr_expect_eq(read_cache(path, &ds, &e), -1);
        cr_expect(strstr(e.msg, "cannot read"), "%s", e.msg);
    }
}

/* ---- data files by content ---- */

static void touch_r(const char *ref_stamp_from, const char *path) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "touch -r '%s' '%s'", ref_stamp_from, path);
    cr_assert_eq(system(cmd), 0);
}

Test(cache, file_id_sees_an_in_place_rewrite_with_the_mtime_put_back) {
    char path[512], ref[512], cdir[512];
    snprintf(path, sizeof path, "%s/data.bin", tmpdir);
    snprintf(ref, sizeof ref, "%s/stamp", tmpdir);
    snprintf(cdir, sizeof cdir, "%s/cache", tmpdir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 100000; i++) fputc(i & 0xff, f);
    fclose(f);
    touch_r(path, ref); /* keep the original stamp */
    clpdd_err e;
    uint64_t h1, h1b, h2;
    cr_assert_eq(clpdd_file_content_hash(path, cdir, &h1, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_file_content_hash(path, cdir, &h1b, &e), 0, "%s", e.msg);
    cr_expect_eq(h1, h1b);
    /* same size, one byte changed in place, the mtime put back */
    f = fopen(path, "r+b");
    fseek(f, 50000, SEEK_SET);
    fputc(0xAB, f);
    fclose(f);
    touch_r(ref, path);
    struct stat a, b;
    stat(path, &a), stat(ref, &b);
    cr_assert_eq(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
    cr_assert_eq(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
    cr_assert_eq(clpdd_file_content_hash(path, cdir, &h2, &e), 0, "%s", e.msg);
    cr_expect_neq(h1, h2, "an in-place rewrite with the mtime put back must change the identity");
    /* computed once: the remembered value is what is returned while the file's stamp is unchanged */
    uint8_t *data;
    size_t len;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s/file-ids/*.txt > %s/list", cdir, tmpdir);
    cr_assert_eq(system(cmd), 0, "an index entry is written");
    snprintf(cmd, sizeof cmd, "%s/list", tmpdir);
    cr_assert_eq(clpdd_read_file(cmd, &data, &len, &e), 0);
    char entry[600];
    snprintf(entry, sizeof entry, "%.*s", (int)strcspn((char *)data, "\n"), (char *)data);
    free(data);
    cr_assert_eq(clpdd_read_file(entry, &data, &len, &e), 0);
    char hex[32];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h2);
    char *at = strstr((char *)data, hex);
    cr_assert_not_null(at, "%s", data);
    memcpy(at, "00000000000000aa", 16);
    cr_assert_eq(clpdd_write_file_atomic(entry, data, len, &e), 0);
    free(data);
    uint64_t h3;
    cr_assert_eq(clpdd_file_content_hash(path, cdir, &h3, &e), 0);
    cr_expect_eq(h3, 0xaaULL, "the index is consulted");
    /* no cache dir, an unwritable one, a missing file */
    cr_assert_eq(clpdd_file_content_hash(path, NULL, &h3, &e), 0);
    cr_expect_eq(h3, h2);
    cr_assert_eq(clpdd_file_content_hash(path, "/proc/clpdd-no-such-dir", &h3, &e), 0);
    cr_expect_eq(h3, h2);
    cr_expect_neq(clpdd_file_content_hash("/nonexistent/x", cdir, &h3, &e), 0);
    cr_expect(strstr(e.msg, "/nonexistent/x"), "%s", e.msg);
}

static void write_idx(const char *path, const uint8_t *hdr, size_t nh, const uint8_t *body, size_t nb) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(hdr, 1, nh, f);
    fwrite(body, 1, nb, f);
    fclose(f);
}

Test(cache, idx_dataset_id_follows_the_content) {
    /* 20 images of 4x4, labels 0..3 */
    uint8_t ih[16] = {0, 0, 8, 3, 0, 0, 0, 20, 0, 0, 0, 4, 0, 0, 0, 4}, lh[8] = {0, 0, 8, 1, 0, 0, 0, 20};
    uint8_t px[20 * 16], lb[20];
    for (int i = 0; i < 20 * 16; i++) px[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 20; i++) lb[i] = (uint8_t)(i % 4);
    char ip[512], lp[512], ref[512];
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte", tmpdir);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte", tmpdir);
    snprintf(ref, sizeof ref, "%s/stamp", tmpdir);
    write_idx(ip, ih, 16, px, sizeof px);
    write_idx(lp, lh, 8, lb, sizeof lb);
    touch_r(ip, ref);
    clpdd_dataset a, b;
    clpdd_err e;
    cr_assert_eq(clpdd_dataset_load_idx(&a, "toy", tmpdir, "train", 0, 0, &e), 0, "%s", e.msg);
    px[100] ^= 1; /* one pixel, same size, the mtime put back */
    write_idx(ip, ih, 16, px, sizeof px);
    touch_r(ref, ip);
    cr_assert_eq(clpdd_dataset_load_idx(&b, "toy", tmpdir, "train", 0, 0, &e), 0, "%s", e.msg);
    cr_expect_neq(a.id, b.id, "the dataset id must follow the content");
    clpdd_dataset_free(&b);
    px[100] ^= 1; /* the same content again: the same id */
    write_idx(ip, ih, 16, px, sizeof px);
    cr_assert_eq(clpdd_dataset_load_idx(&b, "toy", tmpdir, "train", 0, 0, &e), 0, "%s", e.msg);
    cr_expect_eq(a.id, b.id);
    clpdd_dataset_free(&a);
    clpdd_dataset_free(&b);
}

/* ---- end to end: a corrupted cache file is rebuilt with a warning, the results unchanged ---- */

static int same_file(const char *a, const char *b) {
    uint8_t *x, *y;
    size_t nx, ny;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(a, &x, &nx, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_read_file(b, &y, &ny, &e), 0, "%s", e.msg);
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

Test(cache, corrupted_or_bad_label_cache_rebuilds_with_a_warning_and_the_same_results, .timeout = 300) {
    const char *missing = test_fmnist_missing();
    if (missing) cr_skip_test("%s", missing);
    char ini[512], cdir[512];
    snprintf(ini, sizeof ini, "%s/t.ini", tmpdir);
    snprintf(cdir, sizeof cdir, "%s/cache", tmpdir);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[experiment]\nseed = 1\n[data]\ntrain_limit = 300\ntest_limit = 300\nval_size = 50\ncache_dir = %s\n"
               "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nipc = 1\nsteps = 3\n"
               "real_batch = 64\n[eval]\nseeds = 1\nbaseline_full = false\nbaseline_centroids = false\n"
               "baseline_random = false\n", cdir);
    fclose(f);
    char out[16384], args[2048], r1[600], r2[600], p1[700], p2[700];
    snprintf(r1, sizeof r1, "%s/r1", tmpdir);
    snprintf(r2, sizeof r2, "%s/r2", tmpdir);
    snprintf(args, sizeof args, "run %s --output %s --quiet", ini, r1);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    snprintf(p1, sizeof p1, "%s/distilled.safetensors", r1);
    snprintf(p2, sizeof p2, "%s/distilled.safetensors", r2);
    /* the train features' file: the larger of the two (both are 300 here: take each in turn) */
    char list[700], cmd[1400];
    snprintf(list, sizeof list, "%s/list", tmpdir);
    snprintf(cmd, sizeof cmd, "ls %s/*.safetensors > %s", cdir, list);
    cr_assert_eq(system(cmd), 0);
    uint8_t *names;
    size_t nn;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(list, &names, &nn, &e), 0);
    char *file[2];
    int files = 0;
    for (char *save = NULL, *tok = strtok_r((char *)names, "\n", &save); tok && files < 2; tok = strtok_r(NULL, "\n", &save))
        file[files++] = tok;
    cr_assert_eq(files, 2, "a train and a test cache file");
    /* 1: 64 bytes flipped in the middle of each */
    for (int i = 0; i < files; i++) flip_bytes(file[i], -1, 64);
    snprintf(args, sizeof args, "run %s --output %s --quiet --force", ini, r2);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    for (int i = 0; i < files; i++)
        cr_expect(strstr(out, "warning: feature cache") && strstr(out, "checksum mismatch") && strstr(out, file[i]), "%s", out);
    cr_expect(same_file(p1, p2), "the results must be those of the uncorrupted cache");
    /* 2: a label set to 200 in each (valid files otherwise: rewritten with their checksums) */
    for (int i = 0; i < files; i++) {
        clpdd_st_file *st;
        cr_assert_eq(clpdd_st_open(file[i], &st, &e), 0, "the rebuilt file is valid: %s", e.msg);
        const clpdd_st_tensor *tx = clpdd_st_find(st, "features"), *ty = clpdd_st_find(st, "labels");
        int n = (int)tx->shape[0], d = (int)tx->shape[1];
        float *x = malloc((size_t)n * d * sizeof(float));
        int32_t *y = malloc((size_t)n * sizeof(int32_t));
        cr_assert_eq(clpdd_st_read_raw(st, tx, x, &e), 0);
        cr_assert_eq(clpdd_st_read_raw(st, ty, y, &e), 0);
        char *key = strdup(clpdd_st_metadata(st, "key"));
        clpdd_st_close(st);
        y[n / 2] = 200;
        write_cache(file[i], key, x, y, n, d, NULL);
        free(x), free(y), free(key);
    }
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "no abort on a cached label of 200: %s", out);
    cr_expect(strstr(out, "warning: feature cache") && strstr(out, "label 200"), "%s", out);
    cr_expect(same_file(p1, p2));
    free(names);
}

/* ---- checkpoints ---- */

enum { CAP = 50, PN = 30 };

typedef struct ck_bufs {
    float p[CAP], m[CAP], v[CAP];
    int perm[PN];
    clpdd_log_row log[8];
} ck_bufs;

static clpdd_checkpoint ck_view(ck_bufs *b, int step) {
    clpdd_checkpoint c = {.config_hash = 0x1234, .step = step, .rng_state = 77, .params = b->p, .adam_m = b->m,
                          .adam_v = b->v, .cap = CAP, .perm = b->perm, .N = PN, .log = b->log, .nlog = 2, .caplog = 8,
                          .steps = 10};
    return c;
}

static void ck_fill(ck_bufs *b) {
    for (int i = 0; i < CAP; i++) b->p[i] = (float)i, b->m[i] = 0.5f * i, b->v[i] = 0.25f * i;
    for (int i = 0; i < PN; i++) b->perm[i] = PN - 1 - i;
    b->log[0] = (clpdd_log_row){1, 2.5f, 0.1, {0}};
    b->log[1] = (clpdd_log_row){5, 1.5f, 0.5, {0}};
}

static int ck_read(const char *path, ck_bufs *into, clpdd_err *e) {
    memset(into, 0x5a, sizeof *into);
    clpdd_checkpoint c = ck_view(into, 0);
    c.nlog = 0;
    int rc = clpdd_checkpoint_read(path, &c, e);
    if (rc != 0) {
        ck_bufs poison;
        memset(&poison, 0x5a, sizeof poison);
        cr_assert(memcmp(into, &poison, sizeof poison) == 0, "a refused checkpoint leaves the state untouched");
    } else {
        cr_assert_eq(c.step, 6);
        cr_assert_eq(c.nlog, 2);
        cr_assert_eq(c.rng_state, 77);
    }
    return rc;
}

Test(cache, checkpoint_integrity) {
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", tmpdir);
    ck_bufs b, r;
    ck_fill(&b);
    clpdd_err e = {{0}};
    clpdd_checkpoint c = ck_view(&b, 6);
    cr_assert_eq(clpdd_checkpoint_write(path, &c, &e), 0, "%s", e.msg);
    cr_assert_eq(ck_read(path, &r, &e), 0, "%s", e.msg);
    cr_expect(memcmp(r.p, b.p, sizeof b.p) == 0 && memcmp(r.perm, b.perm, sizeof b.perm) == 0);

    flip_bytes(path, -1, 16);
    cr_expect_eq(ck_read(path, &r, &e), -1);
    cr_expect(strstr(e.msg, "checksum mismatch") && strstr(e.msg, path), "%s", e.msg);

    int bad_steps[] = {-50, 0, 10, 11};
    for (int i = 0; i < 4; i++) {
        c = ck_view(&b, bad_steps[i]);
        cr_assert_eq(clpdd_checkpoint_write(path, &c, &e), 0, "%s", e.msg);
        cr_expect_eq(ck_read(path, &r, &e), -1, "step %d", bad_steps[i]);
        cr_expect(strstr(e.msg, path) && strstr(e.msg, "step"), "%s", e.msg);
    }
    c = ck_view(&b, 6);
    b.v[3] = -1; /* an impossible second moment, with a valid checksum */
    cr_assert_eq(clpdd_checkpoint_write(path, &c, &e), 0);
    cr_expect_eq(ck_read(path, &r, &e), -1);
    b.v[3] = 1;
    b.perm[2] = PN + 4;
    cr_assert_eq(clpdd_checkpoint_write(path, &c, &e), 0);
    cr_expect_eq(ck_read(path, &r, &e), -1);
    cr_expect(strstr(e.msg, "sampler"), "%s", e.msg);
    b.perm[2] = 2;
    c.cap = CAP - 1; /* another shape */
    cr_assert_eq(clpdd_checkpoint_write(path, &c, &e), 0);
    cr_expect_eq(ck_read(path, &r, &e), -1);
    cr_expect(strstr(e.msg, "params"), "%s", e.msg);

    /* every truncation and random flips of a good file: refused or read, never a crash */
    c = ck_view(&b, 6);
    ck_fill(&b);
    cr_assert_eq(clpdd_checkpoint_write(path, &c, &e), 0);
    uint8_t *good, *m;
    size_t len;
    cr_assert_eq(clpdd_read_file(path, &good, &len, &e), 0);
    for (size_t cut = 0; cut < len; cut += 5) {
        put_file(path, good, cut);
        cr_assert_eq(ck_read(path, &r, &e), -1, "truncated at %zu", cut);
    }
    m = malloc(len);
    test_rng g = {5};
    int rejected = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(m, good, len);
        m[(size_t)(test_uniform(&g) * len)] ^= (uint8_t)(1 + test_uniform(&g) * 255);
        put_file(path, m, len);
        rejected += ck_read(path, &r, &e) != 0;
    }
    cr_expect_gt(rejected, 1900, "%d of 2000 mutations caught", rejected);
    free(m);
    free(good);
}
