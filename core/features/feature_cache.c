#define _GNU_SOURCE
#include "features/feature_cache.h"
#include "features/cache_file.h"

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "features/extract.h"
#include "cpu/cpu_arithmetic.h"
#include "data/file_id.h"
#include "plugin/host.h"
#include "io/safetensors.h"

void clpdd_cache_dir(const char *configured, char *out, size_t n) {
    const char *env;
    if (configured && *configured) snprintf(out, n, "%s", configured);
    else if ((env = getenv("CLPDD_CACHE_DIR")) && *env) snprintf(out, n, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env) snprintf(out, n, "%s/clpdd", env);
    else if ((env = getenv("HOME")) && *env) snprintf(out, n, "%s/.cache/clpdd", env);
    else { /* not the working directory: a per-user temporary one, said out loud */
        env = getenv("TMPDIR");
        snprintf(out, n, "%s/clpdd-cache-%ld", env && *env ? env : "/tmp", (long)getuid());
        fprintf(stderr, "warning: HOME is unset: the feature cache goes to %s (set CLPDD_CACHE_DIR or [data] cache_dir "
                        "to keep it elsewhere)\n", out);
    }
    /* what clpdd creates is private (errors are the caller's to report, when it creates the rest) */
    char *p = clpdd_xstrdup(out);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c) continue;
        char keep = *c;
        *c = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) break;
        if (!(*c = keep)) break;
    }
    free(p);
}

int clpdd_cache_dir_trusted(const char *dir, clpdd_err *e) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    uid_t me = getuid();
    int foreign = st.st_uid != me && st.st_uid != 0, open_to_others = (st.st_mode & 022) != 0;
    if (!foreign && !open_to_others) return 0;
    char owner[160];
    struct passwd *pw = getpwuid(st.st_uid);
    snprintf(owner, sizeof owner, "%s%s(uid %ld)", pw ? pw->pw_name : "", pw ? " " : "", (long)st.st_uid);
    return clpdd_err_set(e, "features: cache directory %s is owned by %s with mode %04o: %s, who could plant features its "
                            "checksums would accept; not used. Use a directory of your own ([data] cache_dir or "
                            "CLPDD_CACHE_DIR), or %s",
                         dir, owner, (unsigned)(st.st_mode & 07777),
                         foreign ? "another user owns it" : "group or others can write to it",
                         foreign ? "remove it if you did not make it" : "make it private: chmod go-w on it");
}

/* the arithmetic the backbone's ops compute with: the device, and on the CPU the BLAS build, the
   library of the small products and the convolution algorithm ($CLPDD_CONV_ALGO as
   core/cpu/ops_cpu_conv.c resolved it). Features of another arithmetic differ by rounding, which
   moves a quickstart's accuracy (67.77 against 67.81 %), so they are another cache entry. */
static void arithmetic_desc(const clpdd_ops *ops, char *out, size_t n) {
    if (ops != clpdd_ops_cpu()) {
        snprintf(out, n, "device=%s", ops && ops->name ? ops->name : "?");
        return;
    }
    char blas[512];
    cpu_blas_arithmetic(blas, sizeof blas);
    snprintf(out, n, "device=cpu %s conv=%s", blas, cpu_conv_algo_name());
}

/* the key: a readable description (stored as metadata) and its hash (the file name) */
static int cache_key(clpdd_backbone *bb, const clpdd_dataset *ds, const char *split, const char *cache_dir, char *desc,
                     size_t n, uint64_t *hash, clpdd_err *e) {
    uint64_t h = CLPDD_HASH_SEED;
    size_t len = (size_t)snprintf(desc, n, "%s", bb->key ? bb->key : "backbone=?");
    const clpdd_backbone_info *in = &bb->info;
    if (len < n)
        len += (size_t)snprintf(desc + len, n - len, "; input=%dx%dx%d adapt=%s mean=%g,%g,%g std=%g,%g,%g; data=%s; split=%s; id=%016llx",
                                in->channels, in->height, in->width, clpdd_adapter_mode_name(bb->adapt), in->mean[0], in->mean[1], in->mean[2], in->std[0],
                                in->std[1], in->std[2], ds->desc, split, (unsigned long long)ds->id);
    char arith[768];
    arithmetic_desc(bb->h ? bb->h->ops : NULL, arith, sizeof arith);
    if (len < n) len += (size_t)snprintf(desc + len, n - len, "; %s", arith);
    h = clpdd_hash_str(h, desc);
    if (in->weights_id && *in->weights_id && strcmp(in->weights_id, CLPDD_RANDOM_WEIGHTS)) {
        /* the weights' bytes, so a retrained file with the same name gets new features */
        char full[4096];
        clpdd_resolve_model_path(in->weights_id, full, sizeof full);
        uint64_t wh;
        if (clpdd_file_content_hash(full, cache_dir, &wh, e)) return clpdd_err_prefix(e, "weights for the cache key: ");
        h = clpdd_hash64(h, &wh, sizeof wh);
    }
    *hash = h;
    return 0;
}


/* one slab of images read on the decode thread */
typedef struct slab_job {
    const clpdd_dataset *ds;
    int first, count;
    float *out;
    int rc;
    clpdd_err e;
} slab_job;

static void *slab_main(void *arg) {
    slab_job *j = arg;
    j->rc = clpdd_dataset_read_float(j->ds, NULL, j->first, j->count, j->out, &j->e);
    return NULL;
}

/* progress over the images this call extracts */
typedef struct progress {
    int verbose, tty, total, done, every;
    double t0;
} progress;

static void progress_step(progress *p, int k) {
    int before = p->done;
    p->done += k;
    double dt = clpdd_now() - p->t0, rate = p->done / (dt > 1e-9 ? dt : 1e-9);
    if (p->verbose && (p->tty || p->done / p->every != before / p->every || p->done == p->total))
        fprintf(stderr, "%sfeatures: %d/%d images, %.0f img/s, ETA %.0f s%s", p->tty ? "\r" : "", p->done, p->total, rate,
                (p->total - p->done) / rate, p->tty ? "   " : "\n");
}

/* rows [first, first+n) of ds → out (n, d): images in slabs (host memory O(slab)), the next slab
   read (decoded, on demand) on a second thread while the backbone runs on the current one */
static int extract_rows(clpdd_extractor *ex, const clpdd_dataset *ds, int first, int n, int slab, float *buf[2],
                        float *out, progress *pr, clpdd_err *e) {
    int d = ex->d;
    slab_job job = {ds, first, n < slab ? n : slab, buf[0], 0, {{0}}};
    if (n > 0) slab_main(&job);
    if (job.rc) return clpdd_err_set(e, "%s", job.e.msg);
    int rc = 0;
    for (int i = 0, cur = 0; i < n && rc == 0; i += slab, cur ^= 1) {
        int k = n - i < slab ? n - i : slab;
        pthread_t th;
        int next = i + k < n, threaded = 0;
        if (next) {
            job = (slab_job){ds, first + i + k, n - i - k < slab ? n - i - k : slab, buf[cur ^ 1], 0, {{0}}};
            threaded = pthread_create(&th, NULL, slab_main, &job) == 0;
        }
        rc = clpdd_extractor_run(ex, out + (size_t)i * d, buf[cur], k, 0, e);
        if (next) {
            if (threaded) pthread_join(th, NULL);
            else slab_main(&job);
            if (rc == 0 && job.rc) rc = clpdd_err_set(e, "%s", job.e.msg);
        }
        if (rc == 0) progress_step(pr, k);
    }
    return rc;
}

/* images per slab: up to 8 batches, each of the two slab buffers at most ~128 MB (a 224 px RGB
   image is 0.6 MB as floats: 2048 of them would be 1.2 GB), a whole number of batches when
   that is ≥ 1, so a shard's batches are the same whatever reads it */
static int slab_images(size_t per, int batch) {
    size_t bytes = per * sizeof(float), cap = ((size_t)128 << 20) / (bytes > 0 ? bytes : 1);
    size_t slab = (size_t)batch * 8;
    if (slab > cap) slab = cap >= (size_t)batch ? cap / (size_t)batch * (size_t)batch : (cap ? cap : 1);
    return (int)slab;
}

static int shard_size(const clpdd_features_opt *o) {
    if (o->shard_images > 0) return o->shard_images;
    const char *env = getenv("CLPDD_CACHE_SHARD_IMAGES");
    long v = env ? strtol(env, NULL, 10) : 0;
    return v > 0 && v < (1L << 30) ? (int)v : CLPDD_CACHE_SHARD_IMAGES;
}

/* what a call works on: the key, the shards, the file names */
typedef struct cache_plan {
    char desc[4096];
    char base[4000]; /* <cache_dir>/<hash> */
    int S, shards, s0, s1; /* shard size, count, the range [s0, s1) this call handles */
} cache_plan;

static int plan(cache_plan *c, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split, const char *cache_dir,
                const clpdd_features_opt *o, clpdd_err *e) {
    uint64_t hash = 0;
    if (clpdd_cache_dir_trusted(cache_dir, e)) return -1;
    c->S = shard_size(o);
    if (cache_key(bb, ds, split, cache_dir, c->desc, sizeof c->desc - 64, &hash, e)) return -1;
    size_t len = strlen(c->desc);
    snprintf(c->desc + len, sizeof c->desc - len, "; dtype=%s shard=%d", o->f16 ? "f16" : "f32", c->S);
    hash = clpdd_hash_str(hash, c->desc + len);
    snprintf(c->base, sizeof c->base, "%s/%016llx", cache_dir, (unsigned long long)hash);
    c->shards = ds->n > 0 ? (int)(((long)ds->n + c->S - 1) / c->S) : 0;
    c->s0 = 0, c->s1 = c->shards;
    if (o->parts > 0) {
        if (o->part < 0 || o->part >= o->parts)
            return clpdd_err_set(e, "features: part %d of %d: expected 0..%d", o->part, o->parts, o->parts - 1);
        c->s0 = (int)((long)c->shards * o->part / o->parts), c->s1 = (int)((long)c->shards * (o->part + 1) / o->parts);
    }
    return 0;
}

static void shard_path(const cache_plan *c, int s, char *out, size_t n) { snprintf(out, n, "%s-%05d.safetensors", c->base, s); }

static void shard_key(const cache_plan *c, const clpdd_dataset *ds, int s, char *out, size_t n) {
    int first = s * c->S, count = ds->n - first < c->S ? ds->n - first : c->S;
    snprintf(out, n, "%s; rows=%d..%d of %d", c->desc, first, first + count, ds->n);
}

static int write_shard(const cache_plan *c, const clpdd_dataset *ds, int s, int d, int f16, const float *x,
                       uint64_t *sum_out, clpdd_err *e) {
    int first = s * c->S, count = ds->n - first < c->S ? ds->n - first : c->S;
    char path[4200], key[4300], sum[32];
    shard_path(c, s, path, sizeof path);
    shard_key(c, ds, s, key, sizeof key);
    size_t m = (size_t)count * d;
    uint16_t *h = NULL;
    const void *payload = x;
    if (f16) {
        h = clpdd_xmalloc(m * sizeof *h + 2);
        for (size_t i = 0; i < m; i++) h[i] = clpdd_f32_to_f16(x[i]);
        payload = h;
    }
    const int32_t *y = ds->labels + first;
    *sum_out = clpdd_features_checksum_raw(payload, m * (f16 ? 2 : 4), y, count);
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)*sum_out);
    clpdd_st_entry ent[2] = {
        {"features", f16 ? CLPDD_DT_F16 : CLPDD_DT_F32, 2, {count, d}, payload},
        {"labels", CLPDD_DT_I32, 1, {count}, y},
    };
    const char *mk[] = {"key", "format", "checksum"};
    const char *mv[] = {key, CLPDD_FEATURE_CACHE_FORMAT, sum};
    int rc = clpdd_st_write(path, ent, 2, mk, mv, 3, e);
    free(h);
    return rc;
}

/* <base>.index, written last: what the shards are, so a reader (or a person) sees at once that the
   cache is complete; the shards stay the authority (each is verified when read) */
static int write_index(const cache_plan *c, const clpdd_dataset *ds, int d, int f16, const uint64_t *sums, clpdd_err *e) {
    size_t cap = 4096 + (size_t)c->shards * 128, len = 0;
    char *t = clpdd_xmalloc(cap);
    len += (size_t)snprintf(t + len, cap - len, "clpdd feature cache index v1\nkey %s\nimages %d dim %d dtype %s shard_images %d shards %d\n",
                            c->desc, ds->n, d, f16 ? "f16" : "f32", c->S, c->shards);
    for (int s = 0; s < c->shards && len < cap; s++) {
        char path[4200];
        shard_path(c, s, path, sizeof path);
        const char *name = strrchr(path, '/');
        int first = s * c->S, count = ds->n - first < c->S ? ds->n - first : c->S;
        len += (size_t)snprintf(t + len, cap - len, "%s %d %d %016llx\n", name ? name + 1 : path, first, count,
                                (unsigned long long)sums[s]);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s.index", c->base);
    int rc = clpdd_write_file_atomic(path, t, len, e);
    free(t);
    return rc;
}

int clpdd_features_get(clpdd_features *f, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split,
                       const char *cache_dir, int batch, int verbose, clpdd_err *e) {
    clpdd_features_opt o = {.batch = batch, .verbose = verbose};
    return clpdd_features_get_opt(f, bb, ds, split, cache_dir, &o, e);
}

/* what the cache holds: each shard of the plan's range read and verified into x (or scratch
   when x is NULL: a part only writes), its checksum into sums; need[s] marks the shards to
   extract (all of them without a cache); returns the number of images to extract */
static int read_cached(const cache_plan *c, const clpdd_dataset *ds, const char *cache_dir, int d, int f16, float *x,
                       float *scratch, char *need, uint64_t *sums) {
    int todo = 0;
    for (int s = c->s0; s < c->s1; s++) {
        int first = s * c->S;
        if (!cache_dir) {
            need[s] = 1, todo += ds->n;
            continue;
        }
        int count = ds->n - first < c->S ? ds->n - first : c->S;
        char path[4200], key[4300];
        shard_path(c, s, path, sizeof path);
        shard_key(c, ds, s, key, sizeof key);
        clpdd_err ce = {{0}};
        int got = clpdd_features_read_shard(path, key, ds, first, count, d, f16, x ? x + (size_t)first * d : scratch,
                                            NULL, &sums[s], &ce);
        if (got != 0) need[s] = 1, todo += count;
        if (got < 0) fprintf(stderr, "warning: feature cache %s; extracting these features again\n", ce.msg);
    }
    return todo;
}

/* the `todo` images of the shards marked in need extracted through bb into x (or scratch when x
   is NULL), rounded through f16 when stored so, and written to the cache when there is one; a
   shard that cannot be written is a warning (once, *warned set) when x keeps the features, else
   the error. The extraction time into *seconds. */
static int extract_needed(const cache_plan *c, clpdd_backbone *bb, const clpdd_dataset *ds, const char *cache_dir,
                          const clpdd_features_opt *o, int d, int todo, const char *need, float *x, float *scratch,
                          uint64_t *sums, int *warned, double *seconds, clpdd_err *e) {
    int batch = o->batch > 0 ? o->batch : 256, verbose = o->verbose, f16 = o->f16, keep = x != NULL;
    if (verbose)
        fprintf(stderr, "features: extracting %s through %s (%d of %d images%s)...\n", ds->desc, bb->desc->name, todo,
                ds->n, todo < ds->n ? ", the rest from the cache" : "");
    double t0 = clpdd_now();
    size_t per = (size_t)ds->c * ds->H * ds->W;
    int slab = slab_images(per, batch);
    float *buf[2] = {clpdd_xmalloc((size_t)slab * per * sizeof(float)), clpdd_xmalloc((size_t)slab * per * sizeof(float))};
    clpdd_extractor ex;
    int rc = clpdd_extractor_init(&ex, bb, ds->c, ds->H, ds->W, batch, e);
    progress pr = {verbose, isatty(2), todo, 0, 0, t0};
    pr.every = todo / 10 > slab ? todo / 10 : slab; /* not a terminal: about ten lines */
    for (int s = c->s0; s < c->s1 && rc == 0; s++) {
        if (!need[s]) continue;
        int first = s * c->S, count = ds->n - first < c->S ? ds->n - first : c->S;
        float *out = keep ? x + (size_t)first * d : scratch;
        rc = extract_rows(&ex, ds, first, count, slab, buf, out, &pr, e);
        if (rc) break;
        if (f16) /* the numbers a later read gives back */
            for (size_t i = 0; i < (size_t)count * d; i++) out[i] = clpdd_f16_to_f32(clpdd_f32_to_f16(out[i]));
        if (cache_dir) {
            clpdd_err we;
            if ((clpdd_mkdirs(cache_dir, &we) || write_shard(c, ds, s, d, f16, out, &sums[s], &we)) && !*warned) {
                if (!keep) {
                    rc = clpdd_err_set(e, "feature cache not written: %s", we.msg);
                    break;
                }
                fprintf(stderr, "warning: feature cache not written: %s\n", we.msg);
                *warned = 1;
            }
        }
    }
    clpdd_extractor_free(&ex);
    free(buf[0]);
    free(buf[1]);
    if (verbose && pr.tty) fprintf(stderr, "\n");
    *seconds = clpdd_now() - t0;
    if (rc == 0 && verbose) fprintf(stderr, "features: %d images in %.1f s (%.0f img/s)\n", todo, *seconds, todo / *seconds);
    return rc;
}

int clpdd_features_get_opt(clpdd_features *f, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split,
                           const char *cache_dir, const clpdd_features_opt *o, clpdd_err *e) {
    memset(f, 0, sizeof *f);
    int verbose = o->verbose, f16 = o->f16;
    int keep = o->parts <= 0; /* the features are handed out (a run) or only written (a part) */
    if (!keep && !cache_dir) return clpdd_err_set(e, "features: a part of the cache needs a cache directory");
    f->n = ds->n;
    f->d = bb->info.feature_dim;
    int d = f->d;
    cache_plan c;
    memset(&c, 0, sizeof c);
    if (cache_dir) {
        if (plan(&c, bb, ds, split, cache_dir, o, e)) return -1;
        snprintf(f->path, sizeof f->path, "%s.index", c.base);
    } else {
        c.S = ds->n > 0 ? ds->n : 1, c.shards = ds->n > 0, c.s0 = 0, c.s1 = c.shards;
    }
    int nsh = c.s1 - c.s0;
    char *need = clpdd_xcalloc((size_t)(c.shards ? c.shards : 1), 1);
    uint64_t *sums = clpdd_xcalloc((size_t)(c.shards ? c.shards : 1), sizeof *sums);
    if (keep) {
        f->x = clpdd_xmalloc((size_t)(f->n ? f->n : 1) * d * sizeof(float));
        f->y = clpdd_xmalloc((size_t)(f->n ? f->n : 1) * sizeof(int32_t));
        memcpy(f->y, ds->labels, (size_t)f->n * sizeof(int32_t));
    }
    float *scratch = keep ? NULL : clpdd_xmalloc((size_t)c.S * d * sizeof(float));
    /* 1: what the cache holds (each shard verified), what must be extracted */
    int todo = read_cached(&c, ds, cache_dir, d, f16, f->x, scratch, need, sums);
    int warned = 0, rc = 0;
    if (todo == 0) {
        f->from_cache = 1;
        if (verbose && nsh == 0)
            fprintf(stderr, "features: %s: no shard of its %d in part %d of %d\n", ds->desc, c.shards, o->part, o->parts);
        else if (verbose)
            fprintf(stderr, "features: %s from cache %s (%d shard%s)\n", ds->desc, f->path, nsh, nsh == 1 ? "" : "s");
    } else {
        rc = extract_needed(&c, bb, ds, cache_dir, o, d, todo, need, f->x, scratch, sums, &warned, &f->seconds, e);
    }
    /* 2: the index, once every shard is there (a whole-split call, or the last part to finish) */
    if (rc == 0 && cache_dir && !warned && c.s0 == 0 && c.s1 == c.shards) {
        clpdd_err we;
        if (clpdd_mkdirs(cache_dir, &we) == 0 && write_index(&c, ds, d, f16, sums, &we) != 0)
            fprintf(stderr, "warning: feature cache index not written: %s\n", we.msg);
    }
    free(need);
    free(sums);
    free(scratch);
    if (rc) {
        clpdd_features_free(f);
        return -1;
    }
    return 0;
}

int clpdd_features_merge(clpdd_backbone *bb, const clpdd_dataset *ds, const char *split, const char *cache_dir,
                         const clpdd_features_opt *o, clpdd_err *e) {
    clpdd_features_opt all = *o;
    all.parts = 0, all.part = 0;
    cache_plan c;
    if (plan(&c, bb, ds, split, cache_dir, &all, e)) return -1;
    int d = bb->info.feature_dim;
    uint64_t *sums = clpdd_xcalloc((size_t)(c.shards ? c.shards : 1), sizeof *sums);
    float *scratch = clpdd_xmalloc((size_t)c.S * d * sizeof(float));
    int bad = 0;
    char list[600] = "";
    for (int s = 0; s < c.shards; s++) {
        int first = s * c.S, count = ds->n - first < c.S ? ds->n - first : c.S;
        char path[4200], key[4300];
        shard_path(&c, s, path, sizeof path);
        shard_key(&c, ds, s, key, sizeof key);
        clpdd_err ce = {{0}};
        int got = clpdd_features_read_shard(path, key, ds, first, count, d, o->f16, scratch, NULL, &sums[s], &ce);
        if (got != 0) {
            if (bad == 0 && got < 0) fprintf(stderr, "warning: %s\n", ce.msg);
            size_t len = strlen(list);
            if (bad < 8 && len < sizeof list - 40) snprintf(list + len, sizeof list - len, "%s%d", bad ? ", " : "", s);
            bad++;
        }
    }
    free(scratch);
    int rc = 0;
    if (bad) {
        rc = clpdd_err_set(e,
                           "features: the %s cache (%s-*.safetensors) lacks %d of its %d shards (%s%s missing or bad): run "
                           "the `clpdd features --shard i/N` parts that write them first",
                           split, c.base, bad, c.shards, list, bad > 8 ? ", ..." : "");
    } else if (clpdd_mkdirs(cache_dir, e) || write_index(&c, ds, d, o->f16, sums, e)) {
        rc = -1;
    } else if (o->verbose) {
        fprintf(stderr, "features: %s: %d shards verified, index %s.index written\n", ds->desc, c.shards, c.base);
    }
    free(sums);
    return rc;
}

void clpdd_features_free(clpdd_features *f) {
    free(f->x);
    free(f->y);
    f->x = NULL;
    f->y = NULL;
}
