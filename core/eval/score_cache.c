#include "eval/score_cache.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data/file_id.h"
#include "io/safetensors.h"

#define SCORES_FORMAT "clpdd baseline scores v1"

static void path_of(const char *cache_dir, const char *key, char *out, size_t n) {
    snprintf(out, n, "%s/scores-%016llx.safetensors", cache_dir, (unsigned long long)clpdd_xxh3(key, strlen(key)));
}

int clpdd_scores_load(const char *cache_dir, const char *key, clpdd_baseline_scores *s) {
    char path[4200];
    path_of(cache_dir, key, path, sizeof path);
    if (access(path, R_OK) != 0) return 1;
    clpdd_st_file *f;
    clpdd_err e;
    if (clpdd_st_open(path, &f, &e)) return 1;
    const char *fmt = clpdd_st_metadata(f, "format"), *k = clpdd_st_metadata(f, "key"), *sum = clpdd_st_metadata(f, "checksum");
    const clpdd_st_tensor *t = clpdd_st_find(f, "scores");
    clpdd_baseline_scores got;
    int ok = fmt && !strcmp(fmt, SCORES_FORMAT) && k && !strcmp(k, key) && sum && t && t->dtype == CLPDD_DT_U8 &&
             t->nbytes == sizeof got && clpdd_st_read_raw(f, t, &got, &e) == 0;
    if (ok) {
        char want[32];
        snprintf(want, sizeof want, "%016llx", (unsigned long long)clpdd_xxh3(&got, sizeof got));
        ok = !strcmp(want, sum);
    }
    clpdd_st_close(f);
    if (!ok) return 1;
    *s = got;
    return 0;
}

int clpdd_scores_save(const char *cache_dir, const char *key, const clpdd_baseline_scores *s, clpdd_err *e) {
    char path[4200], sum[32];
    if (clpdd_mkdirs(cache_dir, e)) return -1;
    path_of(cache_dir, key, path, sizeof path);
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)clpdd_xxh3(s, sizeof *s));
    clpdd_st_entry ent[1] = {{"scores", CLPDD_DT_U8, 1, {(int64_t)sizeof *s}, s}};
    const char *mk[] = {"format", "key", "checksum"};
    const char *mv[] = {SCORES_FORMAT, key, sum};
    return clpdd_st_write(path, ent, 1, mk, mv, 3, e);
}
