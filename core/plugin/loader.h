/* Plugin loading (libdl). Search order: --plugin-path, CLPDD_PLUGIN_PATH (':'-separated),
 * the build tree, <libclpdd's directory>/clpdd/plugins (an install moved after configuring),
 * the install prefix. Each way of failing has its own message naming the
 * path and dlerror(): not found, truncated or not a shared object, cannot open, missing symbol,
 * ABI mismatch, wrong kind, incomplete vtable, a path refused. dlclose on every failure path.
 * Plugins found by name in the search directories are trusted; one given by path in an INI is
 * refused unless the user opts in (allow_paths) or it lies in a search directory. */
#ifndef CLPDD_LOADER_H
#define CLPDD_LOADER_H
#include "clpdd/plugin.h"
#include "util/util.h"

typedef struct clpdd_loaded {
    void *dl;
    const clpdd_plugin *desc;
    char *path;
} clpdd_loaded;

typedef struct clpdd_plugin_dirs {
    char *dirs[32];
    int n;
    /* a plugin given by path (a name with a '/') loads only when this is set (--allow-plugin-path)
       or its directory is one of dirs: loading a .so runs its code */
    int allow_paths;
} clpdd_plugin_dirs;

/* cli_path may be NULL or ':'-separated */
void clpdd_plugin_dirs_init(clpdd_plugin_dirs *d, const char *cli_path);
void clpdd_plugin_dirs_free(clpdd_plugin_dirs *d);

const char *clpdd_kind_name(clpdd_plugin_kind k); /* "backbone", "solver", "loss" */

/* the ELF checks run before dlopen (a truncated .so would otherwise SIGBUS inside the dynamic
   loader): a regular file, ELF magic, 64-bit, native byte order and machine, ET_DYN, program and
   section header tables and every PT_LOAD/PT_DYNAMIC range inside the file; else -1 and
   "truncated or not a shared object: PATH (why)" */
int clpdd_elf_check(const char *path, clpdd_err *e);
/* open one .so (after clpdd_elf_check), check the ABI version first, then the descriptor and its vtable */
int clpdd_plugin_open(const char *path, clpdd_loaded *out, clpdd_err *e);
/* find <name>.so in the dirs and check it is a `kind` plugin */
int clpdd_plugin_find(const clpdd_plugin_dirs *d, clpdd_plugin_kind kind, const char *name, clpdd_loaded *out,
                      clpdd_err *e);
void clpdd_plugin_close(clpdd_loaded *p);

/* every loadable plugin in the dirs (first of a name wins); broken ones are reported in
   *problems (one per line, caller frees) */
int clpdd_plugin_list(const clpdd_plugin_dirs *d, clpdd_loaded **out, int *n, char **problems);

#endif
