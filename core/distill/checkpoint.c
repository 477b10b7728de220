#define _GNU_SOURCE
#include "distill/checkpoint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "io/safetensors.h"

#define CKPT_FORMAT "clpdd checkpoint v2"
#define CKPT_TENSORS 6

/* XXH3-64 over the tensors' bytes in file order: the checksum stored in the metadata */
static uint64_t checksum(const clpdd_st_entry *ent, int n) {
    XXH3_state_t *s = XXH3_createState();
    CLPDD_ASSERT(s);
    XXH3_64bits_reset(s);
    for (int i = 0; i < n; i++) {
        size_t bytes = clpdd_dtype_size(ent[i].dtype);
        for (int k = 0; k < ent[i].ndim; k++) bytes *= (size_t)ent[i].shape[k];
        XXH3_64bits_update(s, ent[i].data, bytes);
    }
    uint64_t h = (uint64_t)XXH3_64bits_digest(s);
    XXH3_freeState(s);
    return h;
}

/* a log row as the checkpoint's (nlog, w) F64 tensor holds it: step, loss, seconds, then the
   learned scalars' values (w = 3 + n_learned) */
static void log_pack(const clpdd_log_row *r, double *out, int w) {
    out[0] = r->step, out[1] = r->loss, out[2] = r->seconds;
    for (int j = 3; j < w; j++) out[j] = r->learned[j - 3];
}

static clpdd_log_row log_unpack(const double *in, int w) {
    clpdd_log_row r = {(int)in[0], (float)in[1], in[2], {0}};
    for (int j = 3; j < w; j++) r.learned[j - 3] = in[j];
    return r;
}

int clpdd_checkpoint_write(const char *path, const clpdd_checkpoint *c, clpdd_err *e) {
    int32_t *perm = clpdd_xmalloc((size_t)(c->N ? c->N : 1) * sizeof(int32_t));
    for (int i = 0; i < c->N; i++) perm[i] = c->perm[i];
    int w = 3 + c->n_learned;
    double *log = clpdd_xmalloc((size_t)(c->nlog ? c->nlog : 1) * w * sizeof(double));
    for (int i = 0; i < c->nlog; i++) log_pack(&c->log[i], log + (size_t)w * i, w);
    int64_t state[3] = {c->step, (int64_t)c->rng_state, c->nlog};
    clpdd_st_entry ent[CKPT_TENSORS + 1] = {
        {"params", CLPDD_DT_F32, 1, {(int64_t)c->cap}, c->params},
        {"adam_m", CLPDD_DT_F32, 1, {(int64_t)c->cap}, c->adam_m},
        {"adam_v", CLPDD_DT_F32, 1, {(int64_t)c->cap}, c->adam_v},
        {"perm", CLPDD_DT_I32, 1, {c->N}, perm},
        {"log", CLPDD_DT_F64, 2, {c->nlog, w}, log},
        {"state", CLPDD_DT_I64, 1, {3}, state},
        {"learned", CLPDD_DT_F64, 2, {c->n_learned, 4}, c->learned},
    };
    int nt = CKPT_TENSORS + (c->n_learned > 0); /* without learned scalars the file is as before */
    char hash[32], sum[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->config_hash);
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)checksum(ent, nt));
    const char *mk[] = {"format", "config_hash", "checksum", "config"};
    const char *mv[] = {CKPT_FORMAT, hash, sum, c->config ? c->config : ""};
    int rc = clpdd_st_write(path, ent, nt, mk, mv, 4, e);
    free(perm);
    free(log);
    return rc;
}

/* the "section.key = value" lines in which two configurations differ, for the refusal message */
static void config_diff(const char *theirs, const char *ours, char *out, size_t n) {
    size_t len = (size_t)snprintf(out, n, "differing:");
    int found = 0;
    for (int side = 0; side < 2; side++) {
        const char *a = side ? theirs : ours, *b = side ? ours : theirs;
        for (const char *p = a ? a : ""; *p && len < n;) {
            const char *eol = strchr(p, '\n');
            size_t l = eol ? (size_t)(eol - p) : strlen(p);
            int present = 0;
            for (const char *q = b ? b : ""; *q && !present;) {
                const char *qe = strchr(q, '\n');
                size_t ql = qe ? (size_t)(qe - q) : strlen(q);
                present = ql == l && !memcmp(p, q, l);
                q += ql + (qe != NULL);
            }
            if (!present && l) {
                len += (size_t)snprintf(out + len, n - len, " %s %.*s;", side ? "checkpoint" : "this run", (int)l, p);
                found = 1;
            }
            p += l + (eol != NULL);
        }
    }
    if (!found) snprintf(out, n, "a checkpoint without its configuration");
    else if (len >= n && n > 4) memcpy(out + n - 4, "...", 4);
}

static const char *dim_text(int64_t n) {
    static _Thread_local char buf[32];
    snprintf(buf, sizeof buf, ", %lld", (long long)n);
    return buf;
}

static const clpdd_st_tensor *need(clpdd_st_file *f, const char *path, const char *name, clpdd_dtype dt, int64_t n0,
                                   int64_t n1, clpdd_err *e) {
    const clpdd_st_tensor *t = clpdd_st_find(f, name);
    int ok = t && t->dtype == dt && t->shape[0] == n0 && (n1 < 0 ? t->ndim == 1 : (t->ndim == 2 && t->shape[1] == n1));
    if (!ok)
        clpdd_err_set(e, "%s: tensor '%s' missing or of another shape (expected %s (%lld%s)): a checkpoint of another run?",
                      path, name, clpdd_dtype_name(dt), (long long)n0, n1 < 0 ? "" : dim_text(n1));
    return ok ? t : NULL;
}

/* the metadata of a checkpoint of this configuration: its format, its configuration hash and its
   stored payload checksum (into *want) */
static int check_header(clpdd_st_file *f, const char *path, const clpdd_checkpoint *c, unsigned long long *want,
                        clpdd_err *e) {
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->config_hash);
    const char *fmt = clpdd_st_metadata(f, "format"), *h = clpdd_st_metadata(f, "config_hash"),
               *sum = clpdd_st_metadata(f, "checksum");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
        clpdd_err_set(e, "%s: not a '%s' file (format %s); remove it or run without --resume", path, CKPT_FORMAT,
                      fmt ? fmt : "missing");
        return -1;
    }
    if (!h || strcmp(h, hash) != 0) {
        char diff[1200];
        config_diff(clpdd_st_metadata(f, "config"), c->config, diff, sizeof diff);
        clpdd_err_set(e, "%s was written by another configuration (%s); remove it, run with --force, or without --resume", path,
                      diff);
        return -1;
    }
    char tail;
    if (!sum || sscanf(sum, "%16llx%c", want, &tail) != 1) {
        clpdd_err_set(e, "%s: no checksum in its metadata; remove it or run without --resume", path);
        return -1;
    }
    return 0;
}

/* what a checksum cannot catch: a well-formed file with impossible contents (state (3), log
   (nlog, 3), params/am/av (cap), perm (N) as read) */
static int check_contents(const char *path, const clpdd_checkpoint *c, const int64_t *state, int64_t nlog, const double *log,
                          int w, const float *params, const float *am, const float *av, const int32_t *perm, const double *learned, clpdd_err *e) {
    int64_t step = state[0];
    if (step < 1 || (c->steps > 0 && step >= c->steps)) {
        if (c->steps > 0)
            clpdd_err_set(e, "%s: step %lld is outside [1, %d) for this run's %d steps", path, (long long)step, c->steps,
                          c->steps);
        else
            clpdd_err_set(e, "%s: step %lld is not a completed step (>= 1)", path, (long long)step);
        return -1;
    }
    if (nlog > step) {
        clpdd_err_set(e, "%s: %lld log rows after step %lld", path, (long long)nlog, (long long)step);
        return -1;
    }
    for (int64_t i = 0; i < nlog; i++)
        if (!(log[w * i] >= 1 && log[w * i] <= (double)step) || (i > 0 && !(log[w * i] > log[w * (i - 1)]))) {
            clpdd_err_set(e, "%s: log row %lld has step %g (expected increasing steps in [1, %lld])", path, (long long)i,
                          log[w * i], (long long)step);
            return -1;
        }
    for (size_t i = 0; i < c->cap; i++)
        if (!isfinite(params[i]) || !isfinite(am[i]) || !(av[i] >= 0 && isfinite(av[i]))) {
            clpdd_err_set(e, "%s: optimiser state %zu is not finite (or a negative second moment)", path, i);
            return -1;
        }
    for (int i = 0; i < 4 * c->n_learned; i++)
        if (!isfinite(learned[i]) || (i % 4 == 2 && learned[i] < 0)) {
            clpdd_err_set(e, "%s: learned-scalar state %d is not finite (or a negative second moment)", path, i);
            return -1;
        }
    for (int i = 0; i < c->N; i++)
        if (perm[i] < 0 || perm[i] >= c->N) {
            clpdd_err_set(e, "%s: corrupt sampler state (index %d of %d)", path, (int)perm[i], c->N);
            return -1;
        }
    return 0;
}

/* the tensors of a checkpoint of c's shape, found and checked (NULL and an error otherwise) */
typedef struct ckpt_tensors {
    const clpdd_st_tensor *params, *am, *av, *perm, *log, *learned;
} ckpt_tensors;

static int find_tensors(clpdd_st_file *f, const char *path, const clpdd_checkpoint *c, int64_t nlog, ckpt_tensors *t,
                        clpdd_err *e) {
    int64_t cap = (int64_t)c->cap;
    memset(t, 0, sizeof *t);
    if (!(t->params = need(f, path, "params", CLPDD_DT_F32, cap, -1, e)) ||
        !(t->am = need(f, path, "adam_m", CLPDD_DT_F32, cap, -1, e)) || !(t->av = need(f, path, "adam_v", CLPDD_DT_F32, cap, -1, e)) ||
        !(t->perm = need(f, path, "perm", CLPDD_DT_I32, c->N, -1, e)) ||
        !(t->log = need(f, path, "log", CLPDD_DT_F64, nlog, 3 + c->n_learned, e)))
        return -1;
    if (c->n_learned > 0 && !(t->learned = need(f, path, "learned", CLPDD_DT_F64, c->n_learned, 4, e))) return -1;
    if (c->n_learned == 0 && clpdd_st_find(f, "learned"))
        return clpdd_err_set(e, "%s: holds learned scalars this run does not learn: a checkpoint of another run?", path);
    return 0;
}

/* Nothing is copied into c until everything has been read and checked: a bad checkpoint is an
   error naming the file, never garbage state. */
int clpdd_checkpoint_read(const char *path, clpdd_checkpoint *c, clpdd_err *e) {
    if (access(path, F_OK) != 0) return 1;
    clpdd_st_file *f;
    if (clpdd_st_open(path, &f, e)) return clpdd_err_prefix(e, "checkpoint: ");
    int rc = -1, w = 3 + c->n_learned;
    float *params = NULL, *am = NULL, *av = NULL;
    int32_t *perm = NULL;
    double *log = NULL, learned[4 * CLPDD_MAX_LEARNED] = {0};
    unsigned long long want;
    if (check_header(f, path, c, &want, e)) goto done;
    const clpdd_st_tensor *ts = need(f, path, "state", CLPDD_DT_I64, 3, -1, e);
    if (!ts) goto done;
    int64_t state[3];
    if (clpdd_st_read_raw(f, ts, state, e)) goto done;
    int64_t nlog = state[2];
    if (nlog < 0 || nlog > c->caplog) {
        clpdd_err_set(e, "%s: %lld log rows, more than this run keeps (%d)", path, (long long)nlog, c->caplog);
        goto done;
    }
    ckpt_tensors t;
    if (find_tensors(f, path, c, nlog, &t, e)) goto done;
    size_t cap = c->cap ? c->cap : 1;
    params = clpdd_xmalloc(cap * sizeof(float));
    am = clpdd_xmalloc(cap * sizeof(float));
    av = clpdd_xmalloc(cap * sizeof(float));
    perm = clpdd_xmalloc((size_t)(c->N ? c->N : 1) * sizeof(int32_t));
    log = clpdd_xmalloc((size_t)(nlog ? nlog : 1) * w * sizeof(double));
    if (clpdd_st_read_raw(f, t.params, params, e) || clpdd_st_read_raw(f, t.am, am, e) || clpdd_st_read_raw(f, t.av, av, e) ||
        clpdd_st_read_raw(f, t.perm, perm, e) || (nlog > 0 && clpdd_st_read_raw(f, t.log, log, e)) ||
        (t.learned && clpdd_st_read_raw(f, t.learned, learned, e)))
        goto done;
    clpdd_st_entry ent[CKPT_TENSORS + 1] = {
        {"params", CLPDD_DT_F32, 1, {(int64_t)c->cap}, params}, {"adam_m", CLPDD_DT_F32, 1, {(int64_t)c->cap}, am},
        {"adam_v", CLPDD_DT_F32, 1, {(int64_t)c->cap}, av},     {"perm", CLPDD_DT_I32, 1, {c->N}, perm},
        {"log", CLPDD_DT_F64, 2, {nlog, w}, log},               {"state", CLPDD_DT_I64, 1, {3}, state},
        {"learned", CLPDD_DT_F64, 2, {c->n_learned, 4}, learned},
    };
    uint64_t got = checksum(ent, CKPT_TENSORS + (c->n_learned > 0));
    if (got != (uint64_t)want) {
        clpdd_err_set(e, "%s: checksum mismatch (stored %016llx, computed %016llx): the checkpoint is corrupt; remove it or run without --resume",
                      path, want, (unsigned long long)got);
        goto done;
    }
    int64_t step = state[0];
    if (check_contents(path, c, state, nlog, log, w, params, am, av, perm, learned, e)) goto done;
    memcpy(c->params, params, c->cap * sizeof(float));
    memcpy(c->adam_m, am, c->cap * sizeof(float));
    memcpy(c->adam_v, av, c->cap * sizeof(float));
    if (c->n_learned > 0) memcpy(c->learned, learned, (size_t)c->n_learned * 4 * sizeof(double));
    for (int i = 0; i < c->N; i++) c->perm[i] = perm[i];
    for (int64_t i = 0; i < nlog; i++) c->log[i] = log_unpack(log + (size_t)w * i, w);
    c->nlog = (int)nlog;
    c->step = (int)step;
    c->rng_state = (uint64_t)state[1];
    rc = 0;
done:
    free(params);
    free(am);
    free(av);
    free(perm);
    free(log);
    clpdd_st_close(f);
    return rc;
}
