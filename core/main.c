/* clpdd — the driver. Exit status: 0 success, 1 a failure while running, 2 a usage or
 * configuration error (nothing was written). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_cmd.h"
#include "cli/eval_cmd.h"
#include "config/experiment.h"
#include "cli/features_cmd.h"
#include "plugin/loader.h"
#include "distill/run.h"
#include "cli/sweep_cmd.h"

static const char *usage_main =
    "clpdd " CLPDD_VERSION " - dataset distillation on frozen pre-trained encoders (CLP-DD and its ablations)\n"
    "\n"
    "usage: clpdd <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.ini      distil, evaluate and write a run directory\n"
    "  check FILE.ini    validate an experiment file and its plugins without running it\n"
    "  eval PATH         evaluate an existing distilled set (a run, a .safetensors, an image folder)\n"
    "  sweep FILE.ini    run the grid of an experiment's [sweep] section, then report it\n"
    "  report DIR...     collect run directories into summary.csv, summary.md and plots\n"
    "  features FILE.ini precompute the feature cache of both splits (--shard i/N for a job array, --merge)\n"
    "  bench --preset P  time the distillation step of every method at the paper's shapes (random weights, no data)\n"
    "  plugins           list the plugins found, with their keys\n"
    "  keys              list the keys of the core sections\n"
    "  help [COMMAND]    this text, or a command's\n"
    "\n"
    "environment: CLPDD_MODEL_PATH (weights, before the shipped models/), CLPDD_PLUGIN_PATH (plugins),\n"
    "             CLPDD_CACHE_DIR (feature cache)\n";

static const char *usage_run =
    "usage: clpdd run FILE.ini [--set section.key=value]... [--device auto|cpu|cuda] [--output DIR]\n"
    "                          [--plugin-path DIR[:DIR...]] [--allow-plugin-path] [--resume] [--force] [--quiet]\n"
    "\n"
    "Runs the experiment: features of the real images (cached), the distillation loop, the\n"
    "evaluation (probe on the distilled set and baselines) and writes into the run directory:\n"
    "config.ini (resolved), metrics.json, log.csv, distilled.safetensors, distilled.png, loss.png.\n"
    "--set overrides any key (repeatable); --device and --output override [experiment].\n"
    "--resume continues from DIR/checkpoint.safetensors (written every [distill] checkpoint_every\n"
    "steps, removed when the run finishes) when the configuration is the same.\n"
    "--force replaces another run's results in the output directory.\n"
    "--allow-plugin-path lets the INI name a plugin by path ([solver] name = ./my.so): loading a\n"
    "plugin runs its code, so paths are refused unless the .so lies in a --plugin-path or\n"
    "CLPDD_PLUGIN_PATH directory (then give its name) or this option says you trust it.\n";

static const char *usage_check =
    "usage: clpdd check FILE.ini [--set section.key=value]... [--plugin-path DIR[:DIR...]] [--allow-plugin-path]\n"
    "\n"
    "Validates every section and key against the core and the plugins and prints the resolved\n"
    "configuration; exits 2 on the first error, naming file:line and the expected form.\n"
    "It loads the plugins the file names (their code runs): a plugin given by path only with\n"
    "--allow-plugin-path (see `clpdd help run`). It writes nothing.\n";

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
    int n_sets, quiet, help, resume, force, allow_plugin_path;
} args;

/* a command-line path or value with a control byte (a newline, an escape sequence) is refused:
   it would reach file names, config.ini and the terminal */
static int has_control(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 1;
    return 0;
}

static int parse_args(int argc, char **argv, args *a, int want_file, const char *usage) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
#define TAKE(flag)                                                                      \
    (strcmp(s, flag) == 0 ? (i + 1 < argc ? (val = argv[++i], 1) : -1)                 \
                          : (strncmp(s, flag "=", strlen(flag) + 1) == 0 ? (val = s + strlen(flag) + 1, 1) : 0))
        int r;
        char shown[512];
        if (has_control(s))
            return fprintf(stderr, "clpdd: argument '%s' has a control character; refusing it\n",
                           clpdd_escape(s, shown, sizeof shown)), -1;
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) a->help = 1;
        else if (strcmp(s, "--quiet") == 0 || strcmp(s, "-q") == 0) a->quiet = 1;
        else if (strcmp(s, "--resume") == 0) a->resume = 1;
        else if (strcmp(s, "--force") == 0) a->force = 1;
        else if (strcmp(s, "--allow-plugin-path") == 0) a->allow_plugin_path = 1;
        else if ((r = TAKE("--set")) != 0) {
            if (r < 0) goto missing;
            if (a->n_sets == 256) return fprintf(stderr, "clpdd: too many --set options\n"), -1;
            a->sets[a->n_sets++] = val;
        } else if ((r = TAKE("--device")) != 0) {
            if (r < 0) goto missing;
            if (strcmp(val, "auto") && strcmp(val, "cpu") && strcmp(val, "cuda"))
                return fprintf(stderr, "clpdd: --device %s: expected auto, cpu or cuda\n",
                               clpdd_escape(val, shown, sizeof shown)), -1;
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
        if (val && has_control(val))
            return fprintf(stderr, "clpdd: %s '%s': a control character in the value; refusing it\n", s,
                           clpdd_escape(val, shown, sizeof shown)), -1;
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
    if (check_only) {
        /* options check would silently ignore: it writes nothing and runs nothing */
        const char *ignored = a.output ? "--output" : a.resume ? "--resume" : a.force ? "--force" : a.device ? "--device" : NULL;
        if (ignored)
            return fprintf(stderr, "clpdd: check does not take %s (it only validates and prints the configuration; `clpdd run` takes it)\n\n%s",
                           ignored, usage), 2;
    }
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, a.plugin_path);
    dirs.allow_paths = a.allow_plugin_path;
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
        clpdd_device_kind dev = x.device;
        if (a.device) dev = (clpdd_device_kind)clpdd_device_parse(a.device); /* validated by the option parser */
        const clpdd_ops *ops = clpdd_select_device(dev, &e);
        if (!ops) {
            fprintf(stderr, "clpdd: %s\n", e.msg);
            rc = 2;
        } else {
            clpdd_run_opts o = {.ops = ops, .output = a.output, .quiet = a.quiet, .resume = a.resume, .force = a.force};
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
    char shown[256];
    if (!strcmp(cmd, "help")) {
        if (argc > 3) return fprintf(stderr, "clpdd: help takes at most one command\n\n%s", usage_main), 2;
        const char *what = argc > 2 ? argv[2] : "";
        if (!*what) return fputs(usage_main, stdout), 0;
        if (!strcmp(what, "run")) return fputs(usage_run, stdout), 0;
        if (!strcmp(what, "check")) return fputs(usage_check, stdout), 0;
        if (!strcmp(what, "plugins")) return fputs(usage_plugins, stdout), 0;
        if (!strcmp(what, "keys")) return cmd_keys();
        if (!strcmp(what, "eval")) return fputs(clpdd_usage_eval, stdout), 0;
        if (!strcmp(what, "sweep")) return fputs(clpdd_usage_sweep, stdout), 0;
        if (!strcmp(what, "report")) return fputs(clpdd_usage_report, stdout), 0;
        if (!strcmp(what, "features")) return fputs(clpdd_usage_features, stdout), 0;
        if (!strcmp(what, "bench")) return fputs(clpdd_usage_bench, stdout), 0;
        if (!strcmp(what, "help")) return fputs(usage_main, stdout), 0;
        return fprintf(stderr, "clpdd: help: unknown command '%s'\n\n%s", clpdd_escape(what, shown, sizeof shown),
                       usage_main), 2;
    }
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2, 0);
    if (!strcmp(cmd, "check")) return cmd_run(argc - 2, argv + 2, 1);
    if (!strcmp(cmd, "plugins")) return cmd_plugins(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return clpdd_cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "sweep")) return clpdd_cmd_sweep(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return clpdd_cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "features")) return clpdd_cmd_features(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return clpdd_cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "keys")) {
        if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) && argc == 3) return cmd_keys();
        if (argc > 2)
            return fprintf(stderr, "clpdd: keys takes no arguments (got '%s')\n\n%s",
                           clpdd_escape(argv[2], shown, sizeof shown), usage_main), 2;
        return cmd_keys();
    }
    fprintf(stderr, "clpdd: unknown command '%s'\n\n%s", clpdd_escape(cmd, shown, sizeof shown), usage_main);
    return 2;
}
