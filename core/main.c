/* clpdd — the driver. Exit status: 0 success, 1 a failure while running, 2 a usage or
 * configuration error (nothing was written). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment.h"
#include "loader.h"
#include "run.h"

static const char *usage_main =
    "clpdd " CLPDD_VERSION " - dataset distillation on frozen pre-trained encoders (CLP-DD and its ablations)\n"
    "\n"
    "usage: clpdd <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.ini      distil, evaluate and write a run directory\n"
    "  check FILE.ini    validate an experiment file and its plugins without running it\n"
    "  plugins           list the plugins found, with their keys\n"
    "  keys              list the keys of the core sections\n"
    "  help [COMMAND]    this text, or a command's\n"
    "\n"
    "environment: CLPDD_MODEL_PATH (weights), CLPDD_PLUGIN_PATH (plugins), CLPDD_CACHE_DIR (feature cache)\n";

static const char *usage_run =
    "usage: clpdd run FILE.ini [--set section.key=value]... [--device auto|cpu|cuda] [--output DIR]\n"
    "                          [--plugin-path DIR[:DIR...]] [--resume] [--quiet]\n"
    "\n"
    "Runs the experiment: features of the real images (cached), the distillation loop, the\n"
    "evaluation (probe on the distilled set and baselines) and writes into the run directory:\n"
    "config.ini (resolved), metrics.json, log.csv, distilled.safetensors, distilled.png, loss.png.\n"
    "--set overrides any key (repeatable); --device and --output override [experiment].\n"
    "--resume continues from DIR/checkpoint.safetensors (written every [distill] checkpoint_every\n"
    "steps, removed when the run finishes) when the configuration is the same.\n";

static const char *usage_check =
    "usage: clpdd check FILE.ini [--set section.key=value]... [--plugin-path DIR[:DIR...]]\n"
    "\n"
    "Validates every section and key against the core and the plugins and prints the resolved\n"
    "configuration; exits 2 on the first error, naming file:line and the expected form.\n";

static const char *usage_plugins =
    "usage: clpdd plugins [--plugin-path DIR[:DIR...]]\n"
    "\n"
    "Lists every plugin found (search order: --plugin-path, CLPDD_PLUGIN_PATH, the build tree,\n"
    "the install prefix): kind, name, version, summary and keys with type, default and help.\n";

static const char *type_name(clpdd_key_type t) {
    static const char *n[] = {"int", "float", "bool", "string", "enum", "floats"};
    return (unsigned)t < CLPDD_KEY_TYPE_COUNT ? n[t] : "?";
}

static void print_keys(const clpdd_key *keys, int n) {
    for (int i = 0; i < n; i++) {
        const clpdd_key *k = &keys[i];
        printf("    %-16s %-7s default %-12s %s", k->name, type_name(k->type),
               k->default_value ? (*k->default_value ? k->default_value : "\"\"") : "(required)", k->help);
        if (k->type == CLPDD_KEY_ENUM) printf(" [%s]", k->choices);
        else if ((k->type == CLPDD_KEY_INT || k->type == CLPDD_KEY_FLOAT) && k->min <= k->max) printf(" [%.10g, %.10g]", k->min, k->max);
        printf("\n");
    }
}

typedef struct args {
    const char *file, *device, *output, *plugin_path;
    const char *sets[256];
    int n_sets, quiet, help, resume;
} args;

static int parse_args(int argc, char **argv, args *a, int want_file, const char *usage) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
#define TAKE(flag)                                                                      \
    (strcmp(s, flag) == 0 ? (i + 1 < argc ? (val = argv[++i], 1) : -1)                 \
                          : (strncmp(s, flag "=", strlen(flag) + 1) == 0 ? (val = s + strlen(flag) + 1, 1) : 0))
        int r;
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) a->help = 1;
        else if (strcmp(s, "--quiet") == 0 || strcmp(s, "-q") == 0) a->quiet = 1;
        else if (strcmp(s, "--resume") == 0) a->resume = 1;
        else if ((r = TAKE("--set")) != 0) {
            if (r < 0) goto missing;
            if (a->n_sets == 256) return fprintf(stderr, "clpdd: too many --set options\n"), -1;
            a->sets[a->n_sets++] = val;
        } else if ((r = TAKE("--device")) != 0) {
            if (r < 0) goto missing;
            if (strcmp(val, "auto") && strcmp(val, "cpu") && strcmp(val, "cuda"))
                return fprintf(stderr, "clpdd: --device %s: expected auto, cpu or cuda\n", val), -1;
            a->device = val;
        } else if ((r = TAKE("--output")) != 0) {
            if (r < 0) goto missing;
            a->output = val;
        } else if ((r = TAKE("--plugin-path")) != 0) {
            if (r < 0) goto missing;
            a->plugin_path = val;
        } else if (s[0] == '-' && s[1]) {
            return fprintf(stderr, "clpdd: unknown option '%s'\n\n%s", s, usage), -1;
        } else if (want_file && !a->file) {
            a->file = s;
        } else {
            return fprintf(stderr, "clpdd: unexpected argument '%s'\n\n%s", s, usage), -1;
        }
        continue;
    missing:
        return fprintf(stderr, "clpdd: option %s needs a value\n\n%s", s, usage), -1;
#undef TAKE
    }
    if (want_file && !a->file && !a->help) return fprintf(stderr, "clpdd: missing FILE.ini\n\n%s", usage), -1;
    return 0;
}

static int cmd_plugins(int argc, char **argv) {
    args a;
    if (parse_args(argc, argv, &a, 0, usage_plugins)) return 2;
    if (a.help) return fputs(usage_plugins, stdout), 0;
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, a.plugin_path);
    clpdd_loaded *list;
    int n;
    char *problems;
    clpdd_plugin_list(&dirs, &list, &n, &problems);
    printf("plugin search path:");
    for (int i = 0; i < dirs.n; i++) printf(" %s", dirs.dirs[i]);
    printf("\n");
    for (int kind = 0; kind < CLPDD_KIND_COUNT; kind++) {
        static const char *plural[] = {"backbones", "solvers", "losses"};
        printf("\n%s:\n", plural[kind]);
        for (int i = 0; i < n; i++) {
            const clpdd_plugin *d = list[i].desc;
            if ((int)d->kind != kind) continue;
            printf("  %s %s (ABI %u.%u) - %s\n    %s\n", d->name, d->version ? d->version : "?", d->abi_major, d->abi_minor,
                   d->summary ? d->summary : "", list[i].path);
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

static int cmd_keys(void) {
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

static int cmd_run(int argc, char **argv, int check_only) {
    const char *usage = check_only ? usage_check : usage_run;
    args a;
    if (parse_args(argc, argv, &a, 1, usage)) return 2;
    if (a.help) return fputs(usage, stdout), 0;
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, a.plugin_path);
    clpdd_experiment x;
    clpdd_err e = {{0}};
    int rc;
    if (clpdd_experiment_load(&x, a.file, a.sets, a.n_sets, &dirs, &e)) {
        fprintf(stderr, "clpdd: %s\n", e.msg);
        rc = 2;
    } else if (check_only) {
        char *ini = clpdd_experiment_resolved_ini(&x);
        fputs(ini, stdout);
        free(ini);
        rc = 0;
    } else {
        const clpdd_ops *ops = clpdd_select_device(a.device ? a.device : x.device, &e);
        if (!ops) {
            fprintf(stderr, "clpdd: %s\n", e.msg);
            rc = 2;
        } else {
            clpdd_run_opts o = {a.device, a.output, a.quiet, a.resume};
            rc = clpdd_run(&x, &o, &e) ? 1 : 0;
            if (rc) fprintf(stderr, "clpdd: %s\n", e.msg);
        }
    }
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) return fputs(usage_main, stderr), 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) return fputs(usage_main, stdout), 0;
    if (!strcmp(cmd, "--version")) return printf("clpdd %s (plugin ABI %d.%d)\n", CLPDD_VERSION, CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR), 0;
    if (!strcmp(cmd, "help")) {
        const char *what = argc > 2 ? argv[2] : "";
        if (!strcmp(what, "run")) return fputs(usage_run, stdout), 0;
        if (!strcmp(what, "check")) return fputs(usage_check, stdout), 0;
        if (!strcmp(what, "plugins")) return fputs(usage_plugins, stdout), 0;
        if (!strcmp(what, "keys")) return cmd_keys();
        return fputs(usage_main, stdout), 0;
    }
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2, 0);
    if (!strcmp(cmd, "check")) return cmd_run(argc - 2, argv + 2, 1);
    if (!strcmp(cmd, "plugins")) return cmd_plugins(argc - 2, argv + 2);
    if (!strcmp(cmd, "keys")) return cmd_keys();
    fprintf(stderr, "clpdd: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
