/* `clpdd plugins` and `clpdd keys`: see info_cmd.h. */
#define _GNU_SOURCE
#include "cli/info_cmd.h"

#include <stdio.h>
#include <stdlib.h>

#include "config/experiment.h"
#include "plugin/loader.h"

static const char *type_name(clpdd_key_type t) {
    static const char *n[] = {"int", "float", "bool", "string", "enum", "floats", "learnable"};
    return (unsigned)t < CLPDD_KEY_TYPE_COUNT ? n[t] : "?";
}

static void print_keys(const clpdd_key *keys, int n) {
    for (int i = 0; i < n; i++) {
        const clpdd_key *k = &keys[i];
        printf("    %-16s %-7s default %-12s %s", k->name, type_name(k->type),
               k->default_value ? (*k->default_value ? k->default_value : "\"\"") : "(required)", k->help);
        if (k->type == CLPDD_KEY_ENUM) printf(" [%s]", k->choices);
        else if ((k->type == CLPDD_KEY_INT || k->type == CLPDD_KEY_FLOAT || k->type == CLPDD_KEY_LEARNABLE) && k->min <= k->max) printf(" [%.10g, %.10g]", k->min, k->max);
        printf("\n");
    }
}

static int plugins(const clpdd_args *a) {
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, clpdd_args_str(a, "plugin-path"));
    clpdd_loaded *list;
    int n;
    char *problems;
    clpdd_plugin_list(&dirs, &list, &n, &problems);
    char shown[1024];
    printf("plugin search path:");
    for (int i = 0; i < dirs.n; i++) printf(" %s", clpdd_escape(dirs.dirs[i], shown, sizeof shown));
    printf("\n");
    for (int kind = 0; kind < CLPDD_KIND_COUNT; kind++) {
        static const char *plural[] = {"backbones", "solvers", "losses"};
        printf("\n%s:\n", plural[kind]);
        for (int i = 0; i < n; i++) {
            const clpdd_plugin *d = list[i].desc;
            if ((int)d->kind != kind) continue;
            printf("  %s %s (ABI %u.%u) - %s\n    %s\n", d->name, d->version ? d->version : "?", d->abi_major, d->abi_minor,
                   d->summary ? d->summary : "", clpdd_escape(list[i].path, shown, sizeof shown));
            if (kind == CLPDD_KIND_SOLVER && ((const clpdd_solver_vt *)d->vtable)->objective)
                printf("    (computes its own objective: takes no [loss] section)\n");
            print_keys(d->keys, d->n_keys);
        }
    }
    if (*problems) printf("\nnot loadable:\n%s", problems);
    for (int i = 0; i < n; i++) clpdd_plugin_close(&list[i]);
    free(list);
    free(problems);
    clpdd_plugin_dirs_free(&dirs);
    return 0;
}

static int keys(const clpdd_args *a) {
    (void)a;
    int n;
    const clpdd_core_section *s = clpdd_core_sections(&n);
    for (int i = 0; i < n; i++) {
        printf("[%s]\n", s[i].name);
        print_keys(s[i].keys, s[i].n_keys);
        printf("\n");
    }
    printf("[backbone], [solver], [loss]\n    name = <plugin> plus that plugin's keys (see `clpdd plugins`)\n");
    return 0;
}

static const clpdd_option *const plugins_options[] = {&clpdd_opt_plugin_path, NULL};
static const clpdd_option *const no_options[] = {NULL};

const clpdd_command clpdd_command_plugins = {
    .name = "plugins",
    .synopsis = "plugins",
    .summary = "list the plugins found, with their keys",
    .usage = "usage: clpdd plugins [--plugin-path DIR[:DIR...]]\n"
             "\n"
             "Lists every plugin found (search order: --plugin-path, CLPDD_PLUGIN_PATH, the build tree,\n"
             "the install prefix): kind, name, version, summary and keys with type, default and help.\n",
    .options = plugins_options,
    .run = plugins,
};

const clpdd_command clpdd_command_keys = {
    .name = "keys",
    .synopsis = "keys",
    .summary = "list the keys of the core sections",
    .usage = "usage: clpdd keys\n"
             "\n"
             "Lists the keys of the core sections ([experiment], [data], [distill], [eval]) with type,\n"
             "default, help and range or choices; a plugin's keys: `clpdd plugins`.\n",
    .options = no_options,
    .run = keys,
};
