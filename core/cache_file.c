/* The feature cache's file format, reading side: what clpdd_features_get trusts before using a
 * cache file (kept apart from the extraction code so the fuzz target links it alone). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "feature_cache.h"
#include "io/safetensors.h"

/* XXH3-64 over the payload: the features' bytes, then the labels' */
uint64_t clpdd_features_checksum(const float *x, const int32_t *y, int n, int d) {
    XXH3_state_t *st = XXH3_createState();
    CLPDD_ASSERT(st);
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, x, (size_t)n * d * sizeof(float));
    XXH3_64bits_update(st, y, (size_t)n * sizeof(int32_t));
    uint64_t h = (uint64_t)XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* A cache file is never trusted: another process, another user of a shared directory or a bad
   disk may have written it. 0 = read and valid; 1 = no file; -1 = present but unusable (why in
   *e: the caller warns and rebuilds). Checked: the format, the key, the shapes (n, d) expected,
   the payload checksum, the labels equal to the dataset's (so in 0..classes-1) and every feature
   finite. */
int clpdd_features_read_cache(clpdd_features *f, const char *path, const char *desc, const clpdd_dataset *ds, int d,
                              clpdd_err *e) {
    int n = ds->n;
    if (access(path, F_OK) != 0) return 1;
    clpdd_st_file *st;
    if (access(path, R_OK) != 0) return clpdd_err_set(e, "%s: cannot read: %s", path, strerror(errno));
    if (clpdd_st_open(path, &st, e)) return -1;
    int rc = -1;
    float *x = NULL;
    int32_t *y = NULL;
    const char *key = clpdd_st_metadata(st, "key"), *fmt = clpdd_st_metadata(st, "format"),
               *sum = clpdd_st_metadata(st, "checksum");
    const clpdd_st_tensor *tx = clpdd_st_find(st, "features"), *ty = clpdd_st_find(st, "labels");
    unsigned long long want = 0;
    char tail;
    if (!fmt || strcmp(fmt, CLPDD_FEATURE_CACHE_FORMAT) != 0) {
        clpdd_err_set(e, "%s: not a '%s' file (format %s)", path, CLPDD_FEATURE_CACHE_FORMAT, fmt ? fmt : "missing");
        goto done;
    }
    if (!key || strcmp(key, desc) != 0) {
        clpdd_err_set(e, "%s: written for other inputs (its key differs)", path);
        goto done;
    }
    if (!sum || sscanf(sum, "%16llx%c", &want, &tail) != 1) {
        clpdd_err_set(e, "%s: no payload checksum", path);
        goto done;
    }
    if (!tx || !ty || tx->dtype != CLPDD_DT_F32 || tx->ndim != 2 || tx->shape[0] != n || tx->shape[1] != d ||
        ty->dtype != CLPDD_DT_I32 || ty->ndim != 1 || ty->shape[0] != n) {
        clpdd_err_set(e, "%s: tensors 'features' F32 (%d, %d) and 'labels' I32 (%d) expected", path, n, d, n);
        goto done;
    }
    x = clpdd_xmalloc((size_t)n * d * sizeof(float));
    y = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (clpdd_st_read_raw(st, tx, x, e) || clpdd_st_read_raw(st, ty, y, e)) goto done;
    uint64_t got = clpdd_features_checksum(x, y, n, d);
    if (got != (uint64_t)want) {
        clpdd_err_set(e, "%s: payload checksum mismatch (stored %016llx, computed %016llx): corrupt", path, want,
                      (unsigned long long)got);
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= ds->classes || (ds->labels && y[i] != ds->labels[i])) {
            clpdd_err_set(e, "%s: label %d of image %d is not the dataset's (%d of %d classes)", path, (int)y[i], i,
                          ds->labels ? (int)ds->labels[i] : -1, ds->classes);
            goto done;
        }
    for (size_t i = 0; i < (size_t)n * d; i++)
        if (!isfinite(x[i])) {
            clpdd_err_set(e, "%s: feature %zu is not finite", path, i);
            goto done;
        }
    f->x = x;
    f->y = y;
    x = NULL;
    y = NULL;
    rc = 0;
done:
    free(x);
    free(y);
    clpdd_st_close(st);
    return rc;
}

