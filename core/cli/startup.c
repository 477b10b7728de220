/* The commands' start-up path: see startup.h. */
#define _GNU_SOURCE
#include "cli/startup.h"
#include "cuda/cuda_loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const clpdd_ops *clpdd_select_device(clpdd_device_kind device, clpdd_err *e) {
    if (device == CLPDD_DEVICE_CPU) return clpdd_ops_cpu();
    /* auto on a machine without a GPU: the CPU, without loading the CUDA module (cuda_loader.h) */
    if (device != CLPDD_DEVICE_CUDA && !clpdd_cuda_device_visible()) return clpdd_ops_cpu();
    const char *why = NULL;
    const clpdd_ops *cuda = clpdd_ops_cuda(&why);
    if (cuda) return cuda;
    if (device == CLPDD_DEVICE_CUDA) {
        clpdd_err_set(e, "device = cuda, but %s", why ? why : "CUDA is unavailable");
        return NULL;
    }
    /* auto with a GPU in /dev that cannot be used (a missing module, a driver too old): said,
       since a run that silently lands on the CPU looks like a slow GPU run */
    fprintf(stderr, "warning: device = auto: a GPU is visible but %s; running on the CPU\n",
            why ? why : "CUDA is unavailable");
    return clpdd_ops_cpu();
}

void clpdd_startup_dirs(clpdd_startup *s, const clpdd_args *a) {
    memset(s, 0, sizeof *s);
    clpdd_plugin_dirs_init(&s->dirs, clpdd_args_has(a, "plugin-path") ? clpdd_args_str(a, "plugin-path") : NULL);
    s->dirs.allow_paths = clpdd_args_has(a, "allow-plugin-path") && clpdd_args_count(a, "allow-plugin-path");
}

int clpdd_startup_load(clpdd_startup *s, const clpdd_args *a, const char *path, const char *const *extra, int n_extra) {
    if (s->loaded) clpdd_experiment_free(&s->x), s->loaded = 0;
    const char **sets = clpdd_xcalloc((size_t)a->n_overrides + (size_t)n_extra + 1, sizeof *sets);
    int n = 0;
    for (int i = 0; i < a->n_overrides; i++) sets[n++] = a->overrides[i];
    for (int i = 0; i < n_extra; i++) sets[n++] = extra[i];
    int rc = clpdd_experiment_load(&s->x, path, sets, n, &s->dirs, &s->e);
    free(sets);
    s->loaded = 1; /* a failed load leaves x to be freed too */
    if (rc) return fprintf(stderr, "clpdd: %s\n", s->e.msg), 2;
    return 0;
}

int clpdd_startup_device(clpdd_startup *s) {
    s->ops = clpdd_select_device(s->x.device, &s->e);
    if (!s->ops) return fprintf(stderr, "clpdd: %s\n", s->e.msg), 2;
    return 0;
}

int clpdd_startup_begin(clpdd_startup *s, const clpdd_args *a, const char *path) {
    clpdd_startup_dirs(s, a);
    int rc = clpdd_startup_load(s, a, path, NULL, 0);
    return rc ? rc : clpdd_startup_device(s);
}

void clpdd_startup_end(clpdd_startup *s) {
    if (s->loaded) clpdd_experiment_free(&s->x);
    clpdd_plugin_dirs_free(&s->dirs);
    memset(s, 0, sizeof *s);
}
