/* Plugin loading (libdl). Search order: --plugin-path, CLPDD_PLUGIN_PATH (':'-separated),
 * the build tree, <libclpdd's directory>/clpdd/plugins (an install moved after configuring),
 * the install prefix. Each way of failing has its own message naming the
 * path and dlerror(): not found, cannot open, missing symbol, ABI mismatch, wrong kind,
 * incomplete vtable. dlclose on every failure path. */
#ifndef CLPDD_LOADER_H
#define CLPDD_LOADER_H
#include "clpdd/plugin.h"
#include "util.h"

typedef struct clpdd_loaded {
    void *dl;
    const clpdd_plugin *desc;
    char *path;
} clpdd_loaded;

typedef struct clpdd_plugin_dirs {
    char *dirs[32];
    int n;
} clpdd_plugin_dirs;

/* cli_path may be NULL or ':'-separated */
void clpdd_plugin_dirs_init(clpdd_plugin_dirs *d, const char *cli_path);
void clpdd_plugin_dirs_free(clpdd_plugin_dirs *d);

const char *clpdd_kind_name(clpdd_plugin_kind k); /* "backbone", "solver", "loss" */

/* open one .so, check the ABI version first, then the descriptor and its vtable */
int clpdd_plugin_open(const char *path, clpdd_loaded *out, clpdd_err *e);
/* find <name>.so in the dirs and check it is a `kind` plugin */
int clpdd_plugin_find(const clpdd_plugin_dirs *d, clpdd_plugin_kind kind, const char *name, clpdd_loaded *out,
                      clpdd_err *e);
void clpdd_plugin_close(clpdd_loaded *p);

/* every loadable plugin in the dirs (first of a name wins); broken ones are reported in
   *problems (one per line, caller frees) */
int clpdd_plugin_list(const clpdd_plugin_dirs *d, clpdd_loaded **out, int *n, char **problems);

#endif
