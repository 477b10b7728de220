#define _GNU_SOURCE
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"

int clpdd_checkpoint_write(const char *path, const clpdd_checkpoint *c, clpdd_err *e) {
    int32_t *perm = clpdd_xmalloc((size_t)(c->N ? c->N : 1) * sizeof(int32_t));
    for (int i = 0; i < c->N; i++) perm[i] = c->perm[i];
    double *log = clpdd_xmalloc((size_t)(c->nlog ? c->nlog : 1) * 3 * sizeof(double));
    for (int i = 0; i < c->nlog; i++)
        log[3 * i] = c->log[i].step, log[3 * i + 1] = c->log[i].loss, log[3 * i + 2] = c->log[i].seconds;
    int64_t state[3] = {c->step, (int64_t)c->rng_state, c->nlog};
    clpdd_st_entry ent[6] = {
        {"params", CLPDD_DT_F32, 1, {(int64_t)c->cap}, c->params},
        {"adam_m", CLPDD_DT_F32, 1, {(int64_t)c->cap}, c->adam_m},
        {"adam_v", CLPDD_DT_F32, 1, {(int64_t)c->cap}, c->adam_v},
        {"perm", CLPDD_DT_I32, 1, {c->N}, perm},
        {"log", CLPDD_DT_F64, 2, {c->nlog, 3}, log},
        {"state", CLPDD_DT_I64, 1, {3}, state},
    };
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->config_hash);
    const char *mk[] = {"format", "config_hash"};
    const char *mv[] = {"clpdd checkpoint v1", hash};
    int rc = clpdd_st_write(path, ent, 6, mk, mv, 2, e);
    free(perm);
    free(log);
    return rc;
}

static const clpdd_st_tensor *need(clpdd_st_file *f, const char *path, const char *name, clpdd_dtype dt, int64_t n0,
                                   int64_t n1, clpdd_err *e) {
    const clpdd_st_tensor *t = clpdd_st_find(f, name);
    int ok = t && t->dtype == dt && t->shape[0] == n0 && (n1 < 0 ? t->ndim == 1 : (t->ndim == 2 && t->shape[1] == n1));
    if (!ok) clpdd_err_set(e, "%s: tensor '%s' missing or of another shape (a checkpoint of another run?)", path, name);
    return ok ? t : NULL;
}

int clpdd_checkpoint_read(const char *path, clpdd_checkpoint *c, clpdd_err *e) {
    if (access(path, F_OK) != 0) return 1;
    clpdd_st_file *f;
    if (clpdd_st_open(path, &f, e)) return -1;
    int rc = -1;
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->config_hash);
    const char *h = clpdd_st_metadata(f, "config_hash");
    if (!h || strcmp(h, hash) != 0) {
        clpdd_err_set(e, "%s was written by another configuration (hash %s, this run %s); remove it or run without --resume",
                      path, h ? h : "none", hash);
        goto done;
    }
    const clpdd_st_tensor *ts = need(f, path, "state", CLPDD_DT_I64, 3, -1, e);
    if (!ts) goto done;
    int64_t state[3];
    if (clpdd_st_read_raw(f, ts, state, e)) goto done;
    int nlog = (int)state[2];
    if (nlog < 0 || nlog > c->caplog) {
        clpdd_err_set(e, "%s: %d log rows, more than this run keeps (%d)", path, nlog, c->caplog);
        goto done;
    }
    const clpdd_st_tensor *tp = need(f, path, "params", CLPDD_DT_F32, (int64_t)c->cap, -1, e);
    const clpdd_st_tensor *tm = tp ? need(f, path, "adam_m", CLPDD_DT_F32, (int64_t)c->cap, -1, e) : NULL;
    const clpdd_st_tensor *tv = tm ? need(f, path, "adam_v", CLPDD_DT_F32, (int64_t)c->cap, -1, e) : NULL;
    const clpdd_st_tensor *tr = tv ? need(f, path, "perm", CLPDD_DT_I32, c->N, -1, e) : NULL;
    const clpdd_st_tensor *tl = tr ? need(f, path, "log", CLPDD_DT_F64, nlog, 3, e) : NULL;
    if (!tl) goto done;
    int32_t *perm = clpdd_xmalloc((size_t)(c->N ? c->N : 1) * sizeof(int32_t));
    double *log = clpdd_xmalloc((size_t)(nlog ? nlog : 1) * 3 * sizeof(double));
    int bad = clpdd_st_read_raw(f, tp, c->params, e) || clpdd_st_read_raw(f, tm, c->adam_m, e) ||
              clpdd_st_read_raw(f, tv, c->adam_v, e) || clpdd_st_read_raw(f, tr, perm, e) ||
              (nlog > 0 && clpdd_st_read_raw(f, tl, log, e));
    for (int i = 0; !bad && i < c->N; i++)
        if (perm[i] < 0 || perm[i] >= c->N) bad = clpdd_err_set(e, "%s: corrupt sampler state (index %d)", path, (int)perm[i]);
    if (!bad) {
        for (int i = 0; i < c->N; i++) c->perm[i] = perm[i];
        for (int i = 0; i < nlog; i++) c->log[i] = (clpdd_log_row){(int)log[3 * i], (float)log[3 * i + 1], log[3 * i + 2]};
        c->nlog = nlog;
        c->step = (int)state[0];
        c->rng_state = (uint64_t)state[1];
        rc = 0;
    }
    free(perm);
    free(log);
done:
    clpdd_st_close(f);
    return rc;
}
