#define _GNU_SOURCE
#include "data/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/file_id.h"
#include "io/idx.h"

uint64_t clpdd_rng_next(clpdd_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double clpdd_rng_uniform(clpdd_rng *r) { return (double)(clpdd_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

double clpdd_rng_normal(clpdd_rng *r) {
    double u1 = clpdd_rng_uniform(r), u2 = clpdd_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int clpdd_rng_below(clpdd_rng *r, int n) { return (int)(clpdd_rng_uniform(r) * n); }

void clpdd_rng_shuffle(clpdd_rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = clpdd_rng_below(r, i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

int clpdd_sample_per_class(const int32_t *labels, int n, int C, int per_class, clpdd_rng *r, int *out, clpdd_err *e) {
    /* check every class first, so that an error leaves out untouched */
    int *count = clpdd_xcalloc((size_t)C, sizeof *count);
    for (int i = 0; i < n; i++)
        if (labels[i] >= 0 && labels[i] < C) count[labels[i]]++;
    for (int c = 0; c < C; c++)
        if (count[c] < per_class) {
            int k = count[c];
            free(count);
            return clpdd_err_set(e, "class %d has %d images, fewer than the %d asked for", c, k, per_class);
        }
    free(count);
    int *idx = clpdd_xmalloc((size_t)n * sizeof *idx);
    for (int c = 0; c < C; c++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (labels[i] == c) idx[k++] = i;
        /* partial Fisher-Yates: the first per_class of a random permutation */
        for (int j = 0; j < per_class; j++) {
            int t = j + clpdd_rng_below(r, k - j);
            int tmp = idx[j];
            idx[j] = idx[t];
            idx[t] = tmp;
            out[c * per_class + j] = idx[j];
        }
    }
    free(idx);
    return 0;
}

/* root/<stem> or root/<stem>.gz, whichever exists */
static int find_idx(const char *root, const char *stem, char *out, size_t n, uint64_t *h, clpdd_err *e) {
    const char *suffix[] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        snprintf(out, n, "%s/%s%s", root, stem, suffix[i]);
        struct stat st;
        if (stat(out, &st) == 0) {
            *h = clpdd_hash_str(*h, stem); /* the content itself is hashed once read */
            return 0;
        }
    }
    return clpdd_err_set(e, "%s: no %s or %s.gz (for Fashion-MNIST: apt-get install dataset-fashion-mnist)", root, stem, stem);
}

int clpdd_dataset_load_idx(clpdd_dataset *ds, const char *name, const char *root, const char *split, long limit,
                           uint64_t subset_seed, clpdd_err *e) {
    memset(ds, 0, sizeof *ds);
    int train = strcmp(split, "train") == 0;
    char ipath[4096], lpath[4096];
    uint64_t h = clpdd_hash_str(CLPDD_HASH_SEED, name);
    h = clpdd_hash_str(h, split);
    if (find_idx(root, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", ipath, sizeof ipath, &h, e)) return -1;
    if (find_idx(root, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", lpath, sizeof lpath, &h, e)) return -1;
    clpdd_idx im, lb;
    if (clpdd_idx_read(ipath, &im, e)) return -1;
    if (clpdd_idx_read(lpath, &lb, e)) {
        clpdd_idx_free(&im);
        return -1;
    }
    int rc = -1;
    if (im.ndim != 3) {
        clpdd_err_set(e, "%s: expected a 3-d image array (n, H, W), got %d dims", ipath, im.ndim);
        goto done;
    }
    if (lb.ndim != 1 || lb.dims[0] != im.dims[0]) {
        clpdd_err_set(e, "%s: expected %d labels to match %s, got %d-d with %d", lpath, im.dims[0], ipath, lb.ndim, lb.dims[0]);
        goto done;
    }
    /* the dataset's identity is its content: the decoded bytes (already in memory, so no second read
       and nothing a same-size rewrite with its mtime put back can fool), with their shapes */
    uint64_t content[4] = {clpdd_xxh3(im.data, im.count), clpdd_xxh3(lb.data, lb.count), (uint64_t)im.count,
                           (uint64_t)lb.count};
    h = clpdd_hash64(h, content, sizeof content);
    int N = im.dims[0], H = im.dims[1], W = im.dims[2];
    int C = 0;
    for (int i = 0; i < N; i++) {
        if (lb.data[i] > 254) {
            clpdd_err_set(e, "%s: label %d at index %d out of range", lpath, lb.data[i], i);
            goto done;
        }
        if (lb.data[i] + 1 > C) C = lb.data[i] + 1;
    }
    int *keep = clpdd_xmalloc((size_t)N * sizeof *keep);
    int n = N;
    for (int i = 0; i < N; i++) keep[i] = i;
    if (limit > 0 && limit < N) {
        n = (int)limit;
        if (train) {
            /* class-stratified: floor(limit/C) per class, the remainder from a random shuffle */
            int32_t *labels = clpdd_xmalloc((size_t)N * sizeof *labels);
            for (int i = 0; i < N; i++) labels[i] = lb.data[i];
            clpdd_rng r = {subset_seed * 0x2545F4914F6CDD1DULL + 17};
            for (int i = N - 1; i > 0; i--) {
                int j = clpdd_rng_below(&r, i + 1);
                int t = keep[i];
                keep[i] = keep[j];
                keep[j] = t;
            }
            /* take from the shuffled order, at most ceil(limit/C) per class, then sort by index */
            int cap = (n + C - 1) / C, got = 0;
            int *count = clpdd_xcalloc((size_t)C, sizeof *count);
            int *chosen = clpdd_xmalloc((size_t)n * sizeof *chosen);
            for (int i = 0; i < N && got < n; i++)
                if (count[labels[keep[i]]] < cap) count[labels[keep[i]]]++, chosen[got++] = keep[i];
            for (int i = 0; i < N && got < n; i++) { /* classes too small to fill their share */
                int dup = 0;
                for (int j = 0; j < got && !dup; j++) dup = chosen[j] == keep[i];
                if (!dup) chosen[got++] = keep[i];
            }
            int *mark = clpdd_xcalloc((size_t)N, sizeof *mark);
            for (int i = 0; i < n; i++) mark[chosen[i]] = 1;
            int k = 0;
            for (int i = 0; i < N; i++)
                if (mark[i]) keep[k++] = i;
            free(mark);
            free(chosen);
            free(count);
            free(labels);
        }
        h = clpdd_hash64(h, &limit, sizeof limit);
        h = clpdd_hash64(h, &subset_seed, sizeof subset_seed);
    }
    ds->n = n;
    ds->c = 1;
    ds->H = H;
    ds->W = W;
    ds->classes = C;
    ds->pixels = clpdd_xmalloc((size_t)n * H * W);
    ds->labels = clpdd_xmalloc((size_t)n * sizeof *ds->labels);
    for (int i = 0; i < n; i++) {
        memcpy(ds->pixels + (size_t)i * H * W, im.data + (size_t)keep[i] * H * W, (size_t)H * W);
        ds->labels[i] = lb.data[keep[i]];
    }
    free(keep);
    ds->id = h;
    snprintf(ds->desc, sizeof ds->desc, "%s %s (%d of %d images, %dx%dx%d, %d classes)", name, split, n, N, ds->c, H, W, C);
    rc = 0;
done:
    clpdd_idx_free(&im);
    clpdd_idx_free(&lb);
    return rc;
}

void clpdd_dataset_free(clpdd_dataset *ds) {
    if (ds->src_free && ds->src) ds->src_free(ds->src);
    free(ds->pixels);
    free(ds->labels);
    free(ds->groups);
    memset(ds, 0, sizeof *ds);
}

int clpdd_dataset_read_float(const clpdd_dataset *ds, const int *idx, int first, int count, float *out, clpdd_err *e) {
    if (count <= 0) return 0;
    if (!ds->pixels) {
        if (!ds->src_read) return clpdd_err_set(e, "dataset %s: no pixels and no source", ds->desc);
        return ds->src_read(ds->src, idx, first, count, out, e);
    }
    size_t per = (size_t)ds->c * ds->H * ds->W;
    for (int k = 0; k < count; k++) {
        const uint8_t *p = ds->pixels + (size_t)(idx ? idx[k] : first + k) * per;
        float *o = out + (size_t)k * per;
        for (size_t i = 0; i < per; i++) o[i] = p[i] * (1.0f / 255.0f);
    }
    return 0;
}

/* ---- random images (clpdd bench): a pool of POOL random images, image i is pool[i mod POOL],
   so a read costs a copy (what a prefetching loader hands over), not a generator's time ---- */
enum { RANDOM_POOL = 64 };
typedef struct random_src {
    size_t per;
    float *pool; /* (RANDOM_POOL, per) uniform [0, 1) */
} random_src;

static int random_read(void *src, const int *idx, int first, int count, float *out, clpdd_err *e) {
    (void)e;
    const random_src *r = src;
    for (int k = 0; k < count; k++) {
        int i = idx ? idx[k] : first + k;
        memcpy(out + (size_t)k * r->per, r->pool + (size_t)(i % RANDOM_POOL) * r->per, r->per * sizeof(float));
    }
    return 0;
}

static void random_free(void *src) {
    random_src *r = src;
    free(r->pool);
    free(r);
}

void clpdd_dataset_random(clpdd_dataset *ds, int n, int c, int H, int W, int classes, uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    ds->n = n, ds->c = c, ds->H = H, ds->W = W, ds->classes = classes;
    random_src *r = clpdd_xmalloc(sizeof *r);
    r->per = (size_t)c * H * W;
    r->pool = clpdd_xmalloc(RANDOM_POOL * r->per * sizeof(float));
    clpdd_rng rng = {seed};
    for (size_t q = 0; q < RANDOM_POOL * r->per; q++) r->pool[q] = (float)clpdd_rng_uniform(&rng);
    ds->src = r, ds->src_read = random_read, ds->src_free = random_free;
    ds->labels = clpdd_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    for (int i = 0; i < n; i++) ds->labels[i] = i % classes;
    ds->id = clpdd_hash64(seed, &ds->n, sizeof ds->n);
    snprintf(ds->desc, sizeof ds->desc, "random %dx%dx%d images, %d classes (%d)", c, H, W, classes, n);
}

static void read_or_exit(const clpdd_dataset *ds, const int *idx, int first, int count, float *out) {
    clpdd_err e;
    if (clpdd_dataset_read_float(ds, idx, first, count, out, &e)) {
        fprintf(stderr, "error: %s\n", e.msg);
        exit(1);
    }
}

void clpdd_dataset_to_float(const clpdd_dataset *ds, int first, int count, float *out) {
    read_or_exit(ds, NULL, first, count, out);
}

void clpdd_dataset_gather_float(const clpdd_dataset *ds, const int *idx, int count, float *out) {
    read_or_exit(ds, idx, 0, count, out);
}
