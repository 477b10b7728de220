/* The sharded feature cache (core/features/feature_cache.c, core/features/cache_file.c) and `clpdd features`
 * (core/cli/features_cmd.c): --shard i/N parts + --merge give the bytes of one unsharded extraction;
 * a killed extraction resumes at the missing shard; a corrupt shard is rebuilt with a warning;
 * a run finds a merged cache as its own; F16 shards are half the size and read back as floats. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/dataset.h"
#include "features/feature_cache.h"
#include "io/safetensors.h"
#include "support.h"

static char tmpdir[256];

static void setup(void) { test_tmpdir_make(tmpdir, sizeof tmpdir, "shards"); }
static void teardown(void) { test_tmpdir_remove(tmpdir); }

TestSuite(shards, .init = setup, .fini = teardown);

/* the cache files of a directory (shards and indexes, not file-ids), sorted, and their total size */
static int cache_files(const char *dir, char names[][64], int max, long *bytes) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    *bytes = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if ((strstr(de->d_name, ".safetensors") || strstr(de->d_name, ".index")) && n < max) {
            snprintf(names[n++], 64, "%.63s", de->d_name);
            char p[600];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            cr_assert_eq(stat(p, &st), 0);
            *bytes += (long)st.st_size;
        }
    closedir(d);
    qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* the two cache directories hold the same files, byte for byte */
static int same_dirs(const char *a, const char *b) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "diff -r -q -x file-ids -x 'scores-*' '%s' '%s' > /dev/null", a, b);
    return system(cmd) == 0;
}

/* 32 bytes flipped from the middle of the file on (tail: its last 32, in the payload of a tiny file) */
static void flip_bytes(const char *path, int tail) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f), from = tail ? size - 32 : size / 2;
    for (long at = from; at < from + 32 && at < size; at++) {
        fseek(f, at, SEEK_SET);
        int c = fgetc(f);
        fseek(f, at, SEEK_SET);
        fputc(c ^ 0xff, f);
    }
    fclose(f);
}

Test(shards, sharded_parts_merge_to_the_unsharded_bytes_resume_and_rebuild, .timeout = 300) {
    const char *missing = test_fmnist_missing();
    if (missing) cr_skip_test("%s", missing);
    setenv("CLPDD_CACHE_SHARD_IMAGES", "100", 1); /* 500 train images → 5 shards, 200 test → 2 */
    char ini[512], c1[512], c2[512], c3[512], c4[512];
    snprintf(ini, sizeof ini, "%s/t.ini", tmpdir);
    snprintf(c1, sizeof c1, "%s/c1", tmpdir);
    snprintf(c2, sizeof c2, "%s/c2", tmpdir);
    snprintf(c3, sizeof c3, "%s/c3", tmpdir);
    snprintf(c4, sizeof c4, "%s/c4", tmpdir);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[experiment]\nseed = 1\n[data]\ntrain_limit = 500\ntest_limit = 200\nval_size = 50\n"
               "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nipc = 1\nsteps = 3\n"
               "real_batch = 64\n[eval]\nseeds = 1\nbaseline_full = false\nbaseline_centroids = false\n"
               "baseline_random = false\n");
    fclose(f);
    static char out[65536];
    char args[2048];
    /* one unsharded extraction */
    snprintf(args, sizeof args, "features %s --set data.cache_dir=%s", ini, c1);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "img/s") && strstr(out, "ETA"), "a progress line: %s", out);
    char names[32][64], names2[32][64];
    long b1, b2;
    int n1 = cache_files(c1, names, 32, &b1);
    cr_assert_eq(n1, 5 + 1 + 2 + 1, "5 + 2 shards and 2 indexes: %d files", n1);
    /* three parts, then the merge */
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "features %s --set data.cache_dir=%s --shard %d/3 --quiet", ini, c2, i);
        cr_assert_eq(test_driver(args, out, sizeof out), 0, "part %d: %s", i, out);
        if (i == 0) { /* a merge before every part has run names what is missing */
            snprintf(args, sizeof args, "features %s --set data.cache_dir=%s --merge", ini, c2);
            cr_expect_eq(test_driver(args, out, sizeof out), 1, "%s", out);
            cr_expect(strstr(out, "lacks") && strstr(out, "--shard"), "%s", out);
        }
    }
    int n2 = cache_files(c2, names2, 32, &b2);
    cr_expect_eq(n2, 7, "the parts write shards, not the indexes: %d", n2);
    snprintf(args, sizeof args, "features %s --set data.cache_dir=%s --merge", ini, c2);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(same_dirs(c1, c2), "merged parts == one unsharded extraction, byte for byte");
    /* a run finds the merged cache as its own */
    snprintf(args, sizeof args, "run %s --set data.cache_dir=%s --output %s/r1", ini, c2, tmpdir);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "from cache") && !strstr(out, "extracting"), "%s", out);
    /* a killed extraction: one shard missing → only its 100 images are extracted */
    char shard[700];
    for (int i = 0; i < n1; i++)
        if (strstr(names[i], "-00002.safetensors")) snprintf(shard, sizeof shard, "%.400s/%.63s", c1, names[i]);
    cr_assert_eq(unlink(shard), 0);
    snprintf(args, sizeof args, "features %s --set data.cache_dir=%s", ini, c1);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "(100 of 500 images, the rest from the cache)"), "resumed: %s", out);
    cr_expect(same_dirs(c1, c2), "the resumed cache is the same");
    /* a corrupt shard: a warning naming it, rebuilt, the same bytes again */
    flip_bytes(shard, 0);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "warning: feature cache") && strstr(out, "checksum mismatch") && strstr(out, shard), "%s", out);
    cr_expect(same_dirs(c1, c2), "the rebuilt cache is the same");
    /* only part 0 of 3: the merge refuses (exit 1) */
    snprintf(args, sizeof args, "features %s --set data.cache_dir=%s --shard 0/3 --quiet", ini, c3);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "features %s --set data.cache_dir=%s --merge", ini, c3);
    cr_expect_eq(test_driver(args, out, sizeof out), 1, "%s", out);
    /* F16: half the payload, F16 tensors, a run reads them back */
    snprintf(args, sizeof args, "features %s --set data.cache_dir=%s --set data.feature_dtype=f16 --quiet", ini, c4);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    long b4;
    cr_assert_eq(cache_files(c4, names2, 32, &b4), 9);
    cr_expect(b4 < b1 * 0.6 && b4 > b1 * 0.4, "f16 %ld bytes vs f32 %ld", b4, b1);
    char p[700];
    snprintf(p, sizeof p, "%s/%s", c4, names2[0]);
    clpdd_st_file *st;
    clpdd_err e;
    cr_assert_eq(clpdd_st_open(p, &st, &e), 0, "%s", e.msg);
    cr_expect_eq(clpdd_st_find(st, "features")->dtype, CLPDD_DT_F16);
    clpdd_st_close(st);
    snprintf(args, sizeof args, "run %s --set data.cache_dir=%s --set data.feature_dtype=f16 --output %s/r2", ini, c4, tmpdir);
    cr_assert_eq(test_driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "from cache") && !strstr(out, "extracting"), "%s", out);
    /* usage errors */
    snprintf(args, sizeof args, "features %s --shard 3/3", ini);
    cr_expect_eq(test_driver(args, out, sizeof out), 2);
    cr_expect(strstr(out, "0 <= i < N"), "%s", out);
    snprintf(args, sizeof args, "features %s --shard 0/2 --merge", ini);
    cr_expect_eq(test_driver(args, out, sizeof out), 2);
    unsetenv("CLPDD_CACHE_SHARD_IMAGES");
}

/* a shard file: F16 read back as the floats it rounds to; the reader wants the dtype asked for,
   the rows' labels and an intact payload */
Test(shards, f16_shard_reads_back_rounded_and_is_checked) {
    enum { n = 6, d = 5, first = 4 };
    int32_t labels[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    clpdd_dataset ds = {.n = 10, .classes = 3, .labels = labels};
    float x[n * d];
    uint16_t h[n * d];
    for (int i = 0; i < n * d; i++) x[i] = 0.1f * (float)i - 1.3f, h[i] = clpdd_f32_to_f16(x[i]);
    char path[600], sum[32];
    snprintf(path, sizeof path, "%s/s.safetensors", tmpdir);
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)clpdd_features_checksum_raw(h, sizeof h, labels + first, n));
    clpdd_st_entry ent[2] = {{"features", CLPDD_DT_F16, 2, {n, d}, h}, {"labels", CLPDD_DT_I32, 1, {n}, labels + first}};
    const char *mk[] = {"key", "format", "checksum"}, *mv[] = {"K", CLPDD_FEATURE_CACHE_FORMAT, sum};
    clpdd_err e;
    cr_assert_eq(clpdd_st_write(path, ent, 2, mk, mv, 3, &e), 0, "%s", e.msg);
    float got[n * d];
    int32_t y[n];
    uint64_t s = 0;
    cr_assert_eq(clpdd_features_read_shard(path, "K", &ds, first, n, d, 1, got, y, &s, &e), 0, "%s", e.msg);
    for (int i = 0; i < n * d; i++) {
        cr_expect_eq(got[i], clpdd_f16_to_f32(h[i]));
        cr_expect(fabsf(got[i] - x[i]) <= 1e-3f * (1 + fabsf(x[i])));
    }
    for (int i = 0; i < n; i++) cr_expect_eq(y[i], labels[first + i]);
    cr_expect_eq(s, strtoull(sum, NULL, 16));
    cr_expect_eq(clpdd_features_read_shard(path, "K", &ds, first, n, d, 0, got, NULL, NULL, &e), -1);
    cr_expect(strstr(e.msg, "F32") && strstr(e.msg, path), "%s", e.msg);
    cr_expect_eq(clpdd_features_read_shard(path, "K", &ds, first - 1, n, d, 1, got, NULL, NULL, &e), -1,
                 "the labels of other rows");
    cr_expect(strstr(e.msg, "not the dataset's"), "%s", e.msg);
    flip_bytes(path, 1);
    cr_expect_eq(clpdd_features_read_shard(path, "K", &ds, first, n, d, 1, got, NULL, NULL, &e), -1);
    cr_expect(strstr(e.msg, "checksum mismatch"), "%s", e.msg);
    snprintf(path, sizeof path, "%s/none.safetensors", tmpdir);
    cr_expect_eq(clpdd_features_read_shard(path, "K", &ds, first, n, d, 1, got, NULL, NULL, &e), 1);
}
