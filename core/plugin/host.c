/* clpdd_host implementation: what the core hands a plugin (see clpdd/plugin.h). */
#define _GNU_SOURCE
#include "plugin/host.h"

#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ini.h"
#include "data/dataset.h"
#include "io/safetensors.h"

typedef struct alloc_rec {
    void *p;
    size_t bytes;
} alloc_rec;

typedef struct host_state {
    clpdd_host pub;
    char error[2048];
    alloc_rec *allocs;
    int n_allocs, cap_allocs;
    size_t in_use, peak;
    int quiet;
} host_state;

struct clpdd_weights {
    clpdd_st_file *file; /* NULL: random weights (CLPDD_RANDOM_WEIGHTS) */
    char *path;
};

static host_state *state(const clpdd_host *h) { return (host_state *)h->ctx; }

static void *h_alloc(const clpdd_host *h, size_t bytes) {
    host_state *s = state(h);
    void *p = h->ops->malloc(bytes ? bytes : 4);
    if (!p) {
        snprintf(s->error, sizeof s->error, "out of %s memory allocating %.1f MiB (%.1f MiB in use)",
                 h->ops->is_device ? "device" : "host", bytes / 1048576.0, s->in_use / 1048576.0);
        return NULL;
    }
    if (s->n_allocs == s->cap_allocs) {
        s->cap_allocs = s->cap_allocs ? 2 * s->cap_allocs : 64;
        s->allocs = realloc(s->allocs, (size_t)s->cap_allocs * sizeof *s->allocs);
        CLPDD_ASSERT(s->allocs);
    }
    s->allocs[s->n_allocs++] = (alloc_rec){p, bytes};
    s->in_use += bytes;
    if (s->in_use > s->peak) s->peak = s->in_use;
    return p;
}

static void h_free(const clpdd_host *h, void *p) {
    if (!p) return;
    host_state *s = state(h);
    for (int i = s->n_allocs - 1; i >= 0; i--) {
        if (s->allocs[i].p == p) {
            s->in_use -= s->allocs[i].bytes;
            s->allocs[i] = s->allocs[--s->n_allocs];
            h->ops->free(p);
            return;
        }
    }
    CLPDD_ASSERT(!"host->free of a pointer the host did not allocate");
}

static void h_error(const clpdd_host *h, const char *fmt, ...) {
    host_state *s = state(h);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
}

static void h_vprint(const clpdd_host *h, const char *tag, const char *fmt, va_list ap) {
    if (state(h)->quiet) return;
    fprintf(stderr, "%s", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void h_warn(const clpdd_host *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    h_vprint(h, "warning: ", fmt, ap);
    va_end(ap);
}

static void h_info(const clpdd_host *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    h_vprint(h, "", fmt, ap);
    va_end(ap);
}

static long long h_cfg_int(const clpdd_host *h, const clpdd_section *s, const char *k) {
    return clpdd_section_int(s, k);
}
static double h_cfg_float(const clpdd_host *h, const clpdd_section *s, const char *k) {
    return clpdd_section_float(s, k);
}
static int h_cfg_bool(const clpdd_host *h, const clpdd_section *s, const char *k) { return clpdd_section_bool(s, k); }
static const char *h_cfg_str(const clpdd_host *h, const clpdd_section *s, const char *k) {
    return clpdd_section_str(s, k);
}
static int h_cfg_floats(const clpdd_host *h, const clpdd_section *s, const char *k, double *out, int max) {
    return clpdd_section_floats(s, k, out, max);
}
static int h_cfg_is_set(const clpdd_host *h, const clpdd_section *s, const char *k) {
    return clpdd_section_is_set(s, k);
}
static int h_cfg_enum(const clpdd_host *h, const clpdd_section *s, const char *k) { return clpdd_section_enum(s, k); }
static int h_cfg_learn(const clpdd_host *h, const clpdd_section *s, const char *k) { return clpdd_section_learn(s, k); }

/* The directories a relative weights path is looked up in, in order: each entry of
 * CLPDD_MODEL_PATH (':'-separated), the source tree's models/ (a build tree; only when it
 * exists), the install prefix's share/clpdd/models (found beside libclpdd, so a moved prefix
 * still works, then the configured prefix), and last the working directory ("."). */
#define MODEL_DIRS_MAX 16
typedef struct model_dirs {
    char dir[MODEL_DIRS_MAX][4096];
    int n;
} model_dirs;

static void model_dirs_add(model_dirs *m, const char *d) {
    if (!d || !*d || m->n == MODEL_DIRS_MAX) return;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->dir[i], d) == 0) return;
    snprintf(m->dir[m->n++], sizeof m->dir[0], "%s", d);
}

static int is_dir(const char *d) {
    struct stat st;
    return stat(d, &st) == 0 && S_ISDIR(st.st_mode);
}

static void model_dirs_init(model_dirs *m) {
    m->n = 0;
    const char *env = getenv("CLPDD_MODEL_PATH");
    if (env && *env) {
        char *copy = clpdd_xstrdup(env), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) model_dirs_add(m, d);
        free(copy);
    }
#ifdef CLPDD_SOURCE_MODELS_DIR
    if (is_dir(CLPDD_SOURCE_MODELS_DIR)) model_dirs_add(m, CLPDD_SOURCE_MODELS_DIR);
#endif
#ifdef CLPDD_LIB_TO_MODELS
    Dl_info info; /* <libdir>/libclpdd.so → <libdir>/CLPDD_LIB_TO_MODELS */
    if (dladdr((void *)&clpdd_resolve_model_path, &info) && info.dli_fname) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", info.dli_fname);
        char *slash = strrchr(buf, '/');
        if (slash) {
            snprintf(slash, sizeof buf - (size_t)(slash - buf), "/%s", CLPDD_LIB_TO_MODELS);
            char real[PATH_MAX];
            if (realpath(buf, real)) model_dirs_add(m, real);
        }
    }
#endif
#ifdef CLPDD_MODEL_INSTALL_DIR
    if (is_dir(CLPDD_MODEL_INSTALL_DIR)) model_dirs_add(m, CLPDD_MODEL_INSTALL_DIR);
#endif
    model_dirs_add(m, ".");
}

int clpdd_resolve_model_path(const char *path, char *out, size_t n) {
    if (path[0] == '/') {
        snprintf(out, n, "%s", path);
        return access(out, R_OK) == 0 ? 0 : -1;
    }
    model_dirs m;
    model_dirs_init(&m);
    for (int i = 0; i < m.n; i++) {
        if (strcmp(m.dir[i], ".") == 0)
            snprintf(out, n, "%s", path);
        else
            snprintf(out, n, "%s/%s", m.dir[i], path);
        if (access(out, R_OK) == 0) return 0;
    }
    snprintf(out, n, "%s", path);
    return -1;
}

void clpdd_model_path_places(char *buf, size_t n) {
    model_dirs m;
    model_dirs_init(&m);
    const char *env = getenv("CLPDD_MODEL_PATH");
    size_t len = (size_t)snprintf(buf, n, "CLPDD_MODEL_PATH=%s", env && *env ? env : "(unset)");
    for (int i = 0; i < m.n && len < n; i++) {
        /* CLPDD_MODEL_PATH's own entries are in the line already */
        int from_env = 0;
        if (env && *env) {
            char *copy = clpdd_xstrdup(env), *save = NULL;
            for (char *d = strtok_r(copy, ":", &save); d && !from_env; d = strtok_r(NULL, ":", &save))
                from_env = strcmp(d, m.dir[i]) == 0;
            free(copy);
        }
        if (from_env) continue;
        if (strcmp(m.dir[i], ".") == 0)
            len += (size_t)snprintf(buf + len, n - len, ", the working directory");
        else
            len += (size_t)snprintf(buf + len, n - len, ", %s", m.dir[i]);
    }
}

/* ---- weights = random: an architecture's cost without its checkpoint (clpdd bench) ----
   Every tensor a plugin reads exists, and weights_has answers 0 (a plugin's optional tensors
   are absent, so no configuration check trips on them); the values depend only on its name: a 1-D "…weight" / "…gamma" (a
   norm's scale, LayerScale) and "…running_var" are 1, a 1-D "…bias" and "…running_mean" 0,
   everything else N(0, 0.02²) (timm's trunc_normal std), drawn from the name's hash, so the
   CPU and the GPU build the same network. */
static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void random_tensor(const char *name, int ndim, size_t numel, float *out) {
    float fixed = NAN;
    if (ends_with(name, "running_var") || (ndim == 1 && (ends_with(name, "weight") || ends_with(name, "gamma")))) fixed = 1.0f;
    else if (ends_with(name, "running_mean") || (ndim == 1 && ends_with(name, "bias"))) fixed = 0.0f;
    clpdd_rng rng = {clpdd_hash_str(CLPDD_HASH_SEED, name)};
    for (size_t i = 0; i < numel; i++) out[i] = isnan(fixed) ? (float)(0.02 * clpdd_rng_normal(&rng)) : fixed;
}

static clpdd_weights *h_weights_open(const clpdd_host *h, const char *path) {
    if (!strcmp(path, CLPDD_RANDOM_WEIGHTS)) {
        clpdd_weights *w = clpdd_xcalloc(1, sizeof *w);
        w->path = clpdd_xstrdup(CLPDD_RANDOM_WEIGHTS);
        return w;
    }
    char full[4096];
    if (clpdd_resolve_model_path(path, full, sizeof full)) {
        if (path[0] == '/') {
            h_error(h, "weights file '%s' not found or not readable", path);
        } else {
            char places[2048];
            clpdd_model_path_places(places, sizeof places);
            h_error(h, "weights file '%s' not found (looked in %s)", path, places);
        }
        return NULL;
    }
    clpdd_err e;
    clpdd_st_file *f;
    if (clpdd_st_open(full, &f, &e)) {
        h_error(h, "%s", e.msg);
        return NULL;
    }
    clpdd_weights *w = clpdd_xcalloc(1, sizeof *w);
    w->file = f;
    w->path = clpdd_xstrdup(full);
    return w;
}

static int h_weights_has(const clpdd_host *h, clpdd_weights *w, const char *name) {
    if (!w->file) return 0; /* random: the optional tensors are absent (every read still succeeds) */
    return clpdd_st_find(w->file, name) != NULL;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

static int h_weights_read(const clpdd_host *h, clpdd_weights *w, const char *name, int ndim, const int64_t *shape,
                          float *dst) {
    if (!w->file) {
        size_t numel = 1;
        for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
        float *tmp = clpdd_xmalloc((numel ? numel : 1) * sizeof(float));
        random_tensor(name, ndim, numel, tmp);
        h->ops->to_device(dst, tmp, numel * sizeof(float));
        free(tmp);
        return 0;
    }
    const clpdd_st_tensor *t = clpdd_st_find(w->file, name);
    char want[256], got[256];
    shape_str(want, sizeof want, ndim, shape);
    if (!t) {
        h_error(h, "%s: no tensor '%s' (expected shape %s)", w->path, name, want);
        return -1;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        shape_str(got, sizeof got, t->ndim, t->shape);
        h_error(h, "%s: tensor '%s' has shape %s, expected %s", w->path, name, got, want);
        return -1;
    }
    if (t->dtype != CLPDD_DT_F32 && t->dtype != CLPDD_DT_F16 && t->dtype != CLPDD_DT_BF16 && t->dtype != CLPDD_DT_F64) {
        /* an integer tensor where weights belong is a wrong file, not a value to convert */
        h_error(h, "%s: tensor '%s' is %s; weights must be F32, F16, BF16 or F64", w->path, name, clpdd_dtype_name(t->dtype));
        return -1;
    }
    size_t numel = (size_t)clpdd_st_numel(t);
    float *tmp = clpdd_xmalloc(numel * sizeof(float));
    clpdd_err e;
    if (clpdd_st_read_f32(w->file, t, tmp, &e)) {
        free(tmp);
        h_error(h, "%s", e.msg);
        return -1;
    }
    h->ops->to_device(dst, tmp, numel * sizeof(float));
    free(tmp);
    return 0;
}

static void h_weights_close(const clpdd_host *h, clpdd_weights *w) {
    if (!w) return;
    if (w->file) clpdd_st_close(w->file);
    free(w->path);
    free(w);
}

clpdd_host *clpdd_host_create(const clpdd_ops *ops, uint64_t seed) {
    host_state *s = clpdd_xcalloc(1, sizeof *s);
    clpdd_host *h = &s->pub;
    h->abi_major = CLPDD_ABI_MAJOR;
    h->abi_minor = CLPDD_ABI_MINOR;
    h->ops = ops;
    h->ctx = s;
    h->seed = seed;
    h->alloc = h_alloc;
    h->free = h_free;
    h->error = h_error;
    h->warn = h_warn;
    h->info = h_info;
    h->cfg_int = h_cfg_int;
    h->cfg_float = h_cfg_float;
    h->cfg_bool = h_cfg_bool;
    h->cfg_str = h_cfg_str;
    h->cfg_floats = h_cfg_floats;
    h->cfg_is_set = h_cfg_is_set;
    h->weights_open = h_weights_open;
    h->weights_has = h_weights_has;
    h->weights_read = h_weights_read;
    h->weights_close = h_weights_close;
    h->cfg_enum = h_cfg_enum;
    h->cfg_learn = h_cfg_learn;
    return h;
}

void clpdd_host_destroy(clpdd_host *h) {
    if (!h) return;
    host_state *s = state(h);
    for (int i = 0; i < s->n_allocs; i++) h->ops->free(s->allocs[i].p);
    free(s->allocs);
    free(s);
}

const char *clpdd_host_error(const clpdd_host *h) { return state(h)->error; }
void clpdd_host_clear_error(clpdd_host *h) { state(h)->error[0] = 0; }
size_t clpdd_host_bytes_in_use(const clpdd_host *h) { return state(h)->in_use; }
size_t clpdd_host_peak_bytes(const clpdd_host *h) { return state(h)->peak; }
void clpdd_host_set_quiet(clpdd_host *h, int quiet) { state(h)->quiet = quiet; }
