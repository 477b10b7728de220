#define _GNU_SOURCE
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void add_dir(clpdd_plugin_dirs *d, const char *dir) {
    if (!dir || !*dir || d->n == 32) return;
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->dirs[i], dir) == 0) return;
    d->dirs[d->n++] = clpdd_xstrdup(dir);
}

static void add_path_list(clpdd_plugin_dirs *d, const char *list) {
    if (!list) return;
    char *copy = clpdd_xstrdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) add_dir(d, t);
    free(copy);
}

/* <directory of this libclpdd>/clpdd/plugins: where an installed tree keeps its plugins, found
   even when the install was moved after configuring (the compiled-in prefix is then stale) */
static void add_beside_library(clpdd_plugin_dirs *d) {
    Dl_info info;
    if (!dladdr((void *)&clpdd_plugin_dirs_init, &info) || !info.dli_fname) return;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", info.dli_fname);
    char *slash = strrchr(buf, '/');
    if (!slash) return;
    snprintf(slash, sizeof buf - (size_t)(slash - buf), "/clpdd/plugins");
    if (access(buf, R_OK) == 0) add_dir(d, buf);
}

void clpdd_plugin_dirs_init(clpdd_plugin_dirs *d, const char *cli_path) {
    memset(d, 0, sizeof *d);
    add_path_list(d, cli_path);
    add_path_list(d, getenv("CLPDD_PLUGIN_PATH"));
    add_dir(d, CLPDD_PLUGIN_BUILD_DIR);
    add_beside_library(d);
    add_dir(d, CLPDD_PLUGIN_INSTALL_DIR);
}

void clpdd_plugin_dirs_free(clpdd_plugin_dirs *d) {
    for (int i = 0; i < d->n; i++) free(d->dirs[i]);
    d->n = 0;
}

const char *clpdd_kind_name(clpdd_plugin_kind k) {
    static const char *names[] = {"backbone", "solver", "loss"};
    return (unsigned)k < CLPDD_KIND_COUNT ? names[k] : "unknown";
}

static int fail(clpdd_loaded *p, clpdd_err *e) {
    (void)e;
    if (p->dl) dlclose(p->dl);
    free(p->path);
    memset(p, 0, sizeof *p);
    return -1;
}

static int check_vtable(const clpdd_plugin *d, const char *path, clpdd_err *e) {
    const char *missing = NULL;
    switch (d->kind) {
    case CLPDD_KIND_BACKBONE: {
        const clpdd_backbone_vt *v = d->vtable;
        if (!v->create) missing = "create";
        else if (!v->destroy) missing = "destroy";
        else if (!v->describe) missing = "describe";
        else if (!v->tape_create) missing = "tape_create";
        else if (!v->tape_destroy) missing = "tape_destroy";
        else if (!v->forward) missing = "forward";
        else if (!v->backward) missing = "backward";
        break;
    }
    case CLPDD_KIND_SOLVER: {
        const clpdd_solver_vt *v = d->vtable;
        if (!v->create) missing = "create";
        else if (!v->destroy) missing = "destroy";
        else if (!v->backward) missing = "backward";
        else if (!v->forward == !v->objective) missing = "exactly one of forward/objective";
        break;
    }
    case CLPDD_KIND_LOSS: {
        const clpdd_loss_vt *v = d->vtable;
        if (!v->create) missing = "create";
        else if (!v->destroy) missing = "destroy";
        else if (!v->forward) missing = "forward";
        break;
    }
    default: break;
    }
    if (missing)
        return clpdd_err_set(e, "%s: %s plugin '%s' has an incomplete vtable (needs %s)", path,
                             clpdd_kind_name(d->kind), d->name, missing);
    return 0;
}

int clpdd_plugin_open(const char *path, clpdd_loaded *out, clpdd_err *e) {
    memset(out, 0, sizeof *out);
    out->path = clpdd_xstrdup(path);
    if (access(path, F_OK) != 0) {
        clpdd_err_set(e, "%s: plugin file not found", path);
        return fail(out, e);
    }
    dlerror();
    out->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!out->dl) {
        const char *why = dlerror();
        clpdd_err_set(e, "%s: cannot open plugin: %s (check its dependencies with `ldd %s`)", path,
                      why ? why : "unknown dlopen error", path);
        return fail(out, e);
    }
    dlerror();
    void *sym = dlsym(out->dl, CLPDD_PLUGIN_ENTRY_SYMBOL);
    const char *why = dlerror();
    if (!sym || why) {
        clpdd_err_set(e, "%s: not a clpdd plugin: missing symbol '%s' (%s)", path, CLPDD_PLUGIN_ENTRY_SYMBOL,
                      why ? why : "symbol is NULL");
        return fail(out, e);
    }
    clpdd_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object → function pointer without a pedantic cast warning */
    const clpdd_plugin *d = entry();
    if (!d) {
        clpdd_err_set(e, "%s: %s() returned NULL", path, CLPDD_PLUGIN_ENTRY_SYMBOL);
        return fail(out, e);
    }
    /* the version first: nothing else in the descriptor is trusted before this check */
    if (d->abi_major != CLPDD_ABI_MAJOR || d->abi_minor > CLPDD_ABI_MINOR) {
        clpdd_err_set(e, "%s: plugin ABI mismatch: plugin %u.%u, core %d.%d (needs the same major and a minor <= %d; rebuild the plugin against this clpdd's headers)",
                      path, d->abi_major, d->abi_minor, CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR, CLPDD_ABI_MINOR);
        return fail(out, e);
    }
    if ((unsigned)d->kind >= CLPDD_KIND_COUNT || !d->name || !d->vtable || (d->n_keys > 0 && !d->keys) ||
        d->n_keys < 0) {
        clpdd_err_set(e, "%s: malformed plugin descriptor (kind %d, name %s, vtable %p)", path, (int)d->kind,
                      d->name ? d->name : "NULL", d->vtable);
        return fail(out, e);
    }
    if (check_vtable(d, path, e)) return fail(out, e);
    out->desc = d;
    return 0;
}

int clpdd_plugin_find(const clpdd_plugin_dirs *dirs, clpdd_plugin_kind kind, const char *name, clpdd_loaded *out,
                      clpdd_err *e) {
    memset(out, 0, sizeof *out);
    if (!name || !*name) return clpdd_err_set(e, "no %s plugin named", clpdd_kind_name(kind));
    if (strchr(name, '/')) {
        /* an explicit path */
        if (clpdd_plugin_open(name, out, e)) return -1;
    } else {
        char path[4096];
        int found = 0;
        for (int i = 0; i < dirs->n && !found; i++) {
            snprintf(path, sizeof path, "%s/%s.so", dirs->dirs[i], name);
            found = access(path, F_OK) == 0;
        }
        if (!found) {
            char looked[2048] = "";
            for (int i = 0; i < dirs->n; i++) {
                if (i) strncat(looked, ", ", sizeof looked - strlen(looked) - 1);
                strncat(looked, dirs->dirs[i], sizeof looked - strlen(looked) - 1);
            }
            return clpdd_err_set(e, "%s plugin '%s' not found: no %s.so in %s (`clpdd plugins` lists what is available; --plugin-path or CLPDD_PLUGIN_PATH add directories)",
                                 clpdd_kind_name(kind), name, name, looked);
        }
        if (clpdd_plugin_open(path, out, e)) return -1;
    }
    if (out->desc->kind != kind) {
        clpdd_err_set(e, "%s: plugin '%s' is a %s plugin, but [%s] needs a %s plugin", out->path, out->desc->name,
                      clpdd_kind_name(out->desc->kind), clpdd_kind_name(kind), clpdd_kind_name(kind));
        return fail(out, e);
    }
    return 0;
}

void clpdd_plugin_close(clpdd_loaded *p) {
    if (!p) return;
    if (p->dl) dlclose(p->dl);
    free(p->path);
    memset(p, 0, sizeof *p);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int clpdd_plugin_list(const clpdd_plugin_dirs *dirs, clpdd_loaded **out, int *n, char **problems) {
    clpdd_loaded *list = NULL;
    int count = 0;
    size_t plen = 0;
    char *prob = clpdd_xcalloc(1, 1);
    for (int i = 0; i < dirs->n; i++) {
        DIR *dir = opendir(dirs->dirs[i]);
        if (!dir) continue;
        char **names = NULL;
        int nn = 0;
        struct dirent *ent;
        while ((ent = readdir(dir))) {
            size_t len = strlen(ent->d_name);
            if (len > 3 && strcmp(ent->d_name + len - 3, ".so") == 0) {
                names = realloc(names, (size_t)(nn + 1) * sizeof *names);
                names[nn++] = clpdd_xstrdup(ent->d_name);
            }
        }
        closedir(dir);
        qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int j = 0; j < nn; j++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dirs->dirs[i], names[j]);
            clpdd_loaded p;
            clpdd_err e;
            if (clpdd_plugin_open(path, &p, &e)) {
                size_t add = strlen(e.msg) + 2;
                prob = realloc(prob, plen + add);
                memcpy(prob + plen, e.msg, add - 2);
                prob[plen + add - 2] = '\n';
                prob[plen + add - 1] = 0;
                plen += add - 1;
            } else {
                int dup = 0;
                for (int k = 0; k < count; k++)
                    dup |= strcmp(list[k].desc->name, p.desc->name) == 0 && list[k].desc->kind == p.desc->kind;
                if (dup) {
                    clpdd_plugin_close(&p);
                } else {
                    list = realloc(list, (size_t)(count + 1) * sizeof *list);
                    list[count++] = p;
                }
            }
            free(names[j]);
        }
        free(names);
    }
    *out = list;
    *n = count;
    if (problems) *problems = prob;
    else free(prob);
    return 0;
}
