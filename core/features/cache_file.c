/* The feature cache's file format, reading side: what clpdd_features_get trusts before using a
 * cache file (kept apart from the extraction code so the fuzz target links it alone). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "features/cache_file.h"
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

/* XXH3-64 over a shard's payload as stored: the features' bytes (F32 or F16), then the labels' */
uint64_t clpdd_features_checksum_raw(const void *x, size_t xbytes, const int32_t *y, int n) {
    XXH3_state_t *st = XXH3_createState();
    CLPDD_ASSERT(st);
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, x, xbytes);
    XXH3_64bits_update(st, y, (size_t)n * sizeof(int32_t));
    uint64_t h = (uint64_t)XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* path memory-mapped read-only for a sequential read: 0 (*map NULL for an empty file), 1 when
   there is no such file, -1 with why in e */
static int map_read_only(const char *path, const uint8_t **map, size_t *len, clpdd_err *e) {
    *map = NULL, *len = 0;
    if (access(path, F_OK) != 0) return 1;
    if (access(path, R_OK) != 0) return clpdd_err_set(e, "%s: cannot read: %s", path, strerror(errno));
    struct stat sb;
    int fd = clpdd_open_regular(path, &sb, e);
    if (fd < 0) return -1;
    *len = (size_t)sb.st_size;
    if (*len > 0) {
        void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return clpdd_err_set(e, "%s: cannot map: %s", path, strerror(errno));
        }
        *map = m;
        madvise(m, *len, MADV_SEQUENTIAL);
    }
    close(fd);
    return 0;
}

/* A cache file (one shard) is never trusted: another process, another user of a shared
   directory or a bad disk may have written it. It is memory-mapped read-only (no copy but dst).
   0 = read and valid; 1 = no file; -1 = present but unusable (why in *e: the caller warns and
   rebuilds). Checked: the format, the key, the shapes (count, d) and dtype expected, the payload
   checksum, the labels equal to the dataset's rows [first, first+count) (so in 0..classes-1) and
   every feature finite. */
int clpdd_features_read_shard(const char *path, const char *key, const clpdd_dataset *ds, int first, int count, int d,
                              int f16, float *dst, int32_t *y_out, uint64_t *sum_out, clpdd_err *e) {
    int n = count;
    size_t len;
    const uint8_t *map;
    int mapped = map_read_only(path, &map, &len, e);
    if (mapped) return mapped;
    static const uint8_t empty[1];
    clpdd_st_file *st;
    if (clpdd_st_open_memory(map ? map : empty, len, path, &st, e)) {
        if (map) munmap((void *)map, len);
        return -1;
    }
    int rc = -1;
    clpdd_dtype want_dt = f16 ? CLPDD_DT_F16 : CLPDD_DT_F32;
    const char *k = clpdd_st_metadata(st, "key"), *fmt = clpdd_st_metadata(st, "format"),
               *sum = clpdd_st_metadata(st, "checksum");
    const clpdd_st_tensor *tx = clpdd_st_find(st, "features"), *ty = clpdd_st_find(st, "labels");
    unsigned long long want = 0;
    char tail;
    uint64_t hl = 0;
    if (len >= 8) memcpy(&hl, map, 8); /* little-endian hosts only, as the writer */
    const uint8_t *data = map + 8 + hl; /* the data section (st_open_memory checked the extents) */
    if (!fmt || strcmp(fmt, CLPDD_FEATURE_CACHE_FORMAT) != 0) {
        clpdd_err_set(e, "%s: not a '%s' file (format %s)", path, CLPDD_FEATURE_CACHE_FORMAT, fmt ? fmt : "missing");
        goto done;
    }
    if (!k || strcmp(k, key) != 0) {
        clpdd_err_set(e, "%s: written for other inputs (its key differs)", path);
        goto done;
    }
    if (!sum || sscanf(sum, "%16llx%c", &want, &tail) != 1) {
        clpdd_err_set(e, "%s: no payload checksum", path);
        goto done;
    }
    if (!tx || !ty || tx->dtype != want_dt || tx->ndim != 2 || tx->shape[0] != n || tx->shape[1] != d ||
        ty->dtype != CLPDD_DT_I32 || ty->ndim != 1 || ty->shape[0] != n) {
        clpdd_err_set(e, "%s: tensors 'features' %s (%d, %d) and 'labels' I32 (%d) expected", path,
                      clpdd_dtype_name(want_dt), n, d, n);
        goto done;
    }
    const uint8_t *px = data + tx->offset, *py = data + ty->offset;
    int32_t *y = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof(int32_t)); /* aligned copies of the labels */
    memcpy(y, py, (size_t)n * sizeof(int32_t));
    XXH3_state_t *xs = XXH3_createState();
    CLPDD_ASSERT(xs);
    XXH3_64bits_reset(xs);
    XXH3_64bits_update(xs, px, tx->nbytes);
    XXH3_64bits_update(xs, py, ty->nbytes);
    uint64_t got = (uint64_t)XXH3_64bits_digest(xs);
    XXH3_freeState(xs);
    if (got != (uint64_t)want) {
        clpdd_err_set(e, "%s: payload checksum mismatch (stored %016llx, computed %016llx): corrupt", path, want,
                      (unsigned long long)got);
        free(y);
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= ds->classes || (ds->labels && y[i] != ds->labels[first + i])) {
            clpdd_err_set(e, "%s: label %d of image %d is not the dataset's (%d of %d classes)", path, (int)y[i],
                          first + i, ds->labels ? (int)ds->labels[first + i] : -1, ds->classes);
            free(y);
            goto done;
        }
    if (y_out) memcpy(y_out, y, (size_t)n * sizeof(int32_t));
    if (sum_out) *sum_out = got;
    free(y);
    size_t m = (size_t)n * d;
    if (f16) {
        for (size_t i = 0; i < m; i++) {
            uint16_t h;
            memcpy(&h, px + 2 * i, 2);
            dst[i] = clpdd_f16_to_f32(h);
        }
    } else {
        memcpy(dst, px, m * sizeof(float));
    }
    for (size_t i = 0; i < m; i++)
        if (!isfinite(dst[i])) {
            clpdd_err_set(e, "%s: feature %zu is not finite", path, i);
            goto done;
        }
    rc = 0;
done:
    clpdd_st_close(st);
    if (map) munmap((void *)map, len);
    return rc;
}

/* the whole dataset from one F32 file (rows 0..n-1): a shard that is all of it */
int clpdd_features_read_cache(clpdd_features *f, const char *path, const char *desc, const clpdd_dataset *ds, int d,
                              clpdd_err *e) {
    int n = ds->n;
    float *x = clpdd_xmalloc((size_t)(n ? n : 1) * d * sizeof(float) + sizeof(float));
    int32_t *y = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof(int32_t));
    int rc = clpdd_features_read_shard(path, desc, ds, 0, n, d, 0, x, y, NULL, e);
    if (rc != 0) {
        free(x), free(y);
        return rc;
    }
    f->x = x;
    f->y = y;
    return 0;
}
