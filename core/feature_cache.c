#define _GNU_SOURCE
#include "feature_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extract.h"
#include "file_id.h"
#include "host.h"
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
}

/* the key: a readable description (stored as metadata) and its hash (the file name) */
static int cache_key(clpdd_backbone *bb, const clpdd_dataset *ds, const char *split, const char *cache_dir, char *desc,
                     size_t n, uint64_t *hash, clpdd_err *e) {
    uint64_t h = CLPDD_HASH_SEED;
    size_t len = (size_t)snprintf(desc, n, "backbone=%s %s;", bb->desc->name, bb->desc->version);
    for (int i = 0; i < clpdd_section_count(bb->cfg) && len < n; i++) {
        const char *k = clpdd_section_key_at(bb->cfg, i);
        if (strcmp(k, CLPDD_KEY_INFERENCE_BATCH) == 0) continue; /* a speed knob, not an input */
        len += (size_t)snprintf(desc + len, n - len, " %s=%s", k, clpdd_section_raw(bb->cfg, k, NULL, NULL));
    }
    const clpdd_backbone_info *in = &bb->info;
    if (len < n)
        len += (size_t)snprintf(desc + len, n - len, "; input=%dx%dx%d adapt=%s mean=%g,%g,%g std=%g,%g,%g; data=%s; split=%s; id=%016llx",
                                in->channels, in->height, in->width, clpdd_adapter_mode_name(bb->adapt), in->mean[0], in->mean[1], in->mean[2], in->std[0],
                                in->std[1], in->std[2], ds->desc, split, (unsigned long long)ds->id);
    h = clpdd_hash_str(h, desc);
    if (in->weights_id && *in->weights_id) {
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

int clpdd_features_get(clpdd_features *f, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split,
                       const char *cache_dir, int batch, int verbose, clpdd_err *e) {
    memset(f, 0, sizeof *f);
    f->n = ds->n;
    f->d = bb->info.feature_dim;
    char desc[4096];
    uint64_t hash = 0;
    if (cache_dir) {
        if (cache_key(bb, ds, split, cache_dir, desc, sizeof desc, &hash, e)) return -1;
        snprintf(f->path, sizeof f->path, "%s/%016llx.safetensors", cache_dir, (unsigned long long)hash);
        clpdd_err ce = {{0}};
        int got = clpdd_features_read_cache(f, f->path, desc, ds, f->d, &ce);
        if (got == 0) {
            f->from_cache = 1;
            if (verbose) fprintf(stderr, "features: %s from cache %s\n", ds->desc, f->path);
            return 0;
        }
        if (got < 0) fprintf(stderr, "warning: feature cache %s; extracting the features again\n", ce.msg);
    }
    if (verbose) fprintf(stderr, "features: extracting %s through %s (%d images)...\n", ds->desc, bb->desc->name, ds->n);
    double t0 = clpdd_now();
    f->x = clpdd_xmalloc((size_t)f->n * f->d * sizeof(float));
    f->y = clpdd_xmalloc((size_t)f->n * sizeof(int32_t));
    memcpy(f->y, ds->labels, (size_t)f->n * sizeof(int32_t));
    /* images in slabs so host memory stays O(slab), read (decoded, on demand) on a second thread
       while the backbone runs on the slab before: two slab buffers; one extractor for every slab */
    int slab = batch * 8;
    size_t per = (size_t)ds->c * ds->H * ds->W;
    float *buf[2] = {clpdd_xmalloc((size_t)slab * per * sizeof(float)), clpdd_xmalloc((size_t)slab * per * sizeof(float))};
    clpdd_extractor ex;
    int rc = clpdd_extractor_init(&ex, bb, ds->c, ds->H, ds->W, batch, e);
    int tty = isatty(2), every = f->n / 10 > slab ? f->n / 10 : slab; /* not a terminal: about ten lines */
    slab_job job = {ds, 0, f->n < slab ? f->n : slab, buf[0], 0, {{0}}};
    if (rc == 0 && f->n > 0) slab_main(&job);
    if (rc == 0 && job.rc) rc = clpdd_err_set(e, "%s", job.e.msg);
    for (int i = 0, cur = 0; i < f->n && rc == 0; i += slab, cur ^= 1) {
        int k = f->n - i < slab ? f->n - i : slab;
        pthread_t th;
        int next = i + k < f->n, threaded = 0;
        if (next) {
            job = (slab_job){ds, i + k, f->n - i - k < slab ? f->n - i - k : slab, buf[cur ^ 1], 0, {{0}}};
            threaded = pthread_create(&th, NULL, slab_main, &job) == 0;
        }
        rc = clpdd_extractor_run(&ex, f->x + (size_t)i * f->d, buf[cur], k, 0, e);
        if (next) {
            if (threaded) pthread_join(th, NULL);
            else slab_main(&job);
            if (rc == 0 && job.rc) rc = clpdd_err_set(e, "%s", job.e.msg);
        }
        double dt = clpdd_now() - t0, rate = (i + k) / (dt > 1e-9 ? dt : 1e-9);
        if (rc == 0 && verbose && (tty || (i + k) / every != i / every || i + k == f->n))
            fprintf(stderr, "%sfeatures: %d/%d images, %.0f img/s, ETA %.0f s%s", tty ? "\r" : "", i + k, f->n, rate,
                    (f->n - i - k) / rate, tty ? "   " : "\n");
    }
    clpdd_extractor_free(&ex);
    free(buf[0]);
    free(buf[1]);
    if (rc) {
        clpdd_features_free(f);
        return -1;
    }
    if (verbose && tty) fprintf(stderr, "\n");
    f->seconds = clpdd_now() - t0;
    if (verbose) fprintf(stderr, "features: %d images in %.1f s (%.0f img/s)\n", f->n, f->seconds, f->n / f->seconds);
    if (cache_dir) {
        clpdd_err we;
        if (clpdd_mkdirs(cache_dir, &we) == 0) {
            clpdd_st_entry ent[2] = {
                {"features", CLPDD_DT_F32, 2, {f->n, f->d}, f->x},
                {"labels", CLPDD_DT_I32, 1, {f->n}, f->y},
            };
            char sum[32];
            snprintf(sum, sizeof sum, "%016llx", (unsigned long long)clpdd_features_checksum(f->x, f->y, f->n, f->d));
            const char *mk[] = {"key", "format", "checksum"};
            const char *mv[] = {desc, CLPDD_FEATURE_CACHE_FORMAT, sum};
            if (clpdd_st_write(f->path, ent, 2, mk, mv, 3, &we) != 0)
                fprintf(stderr, "warning: feature cache not written: %s\n", we.msg);
        } else {
            fprintf(stderr, "warning: feature cache not written: %s\n", we.msg);
        }
    }
    return 0;
}

void clpdd_features_free(clpdd_features *f) {
    free(f->x);
    free(f->y);
    f->x = NULL;
    f->y = NULL;
}
