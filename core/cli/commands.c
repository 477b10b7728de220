/* The command table and the dispatcher: see commands.h. */
#define _GNU_SOURCE
#include "cli/commands.h"

#include <string.h>

#include "clpdd/plugin.h"
#include "cli/bench_cmd.h"
#include "cli/eval_cmd.h"
#include "cli/features_cmd.h"
#include "cli/info_cmd.h"
#include "cli/run_cmd.h"
#include "cli/sweep_cmd.h"
#include "util/util.h"

static const clpdd_command command_help;

const clpdd_command *const clpdd_commands[] = {
    &clpdd_command_run,     &clpdd_command_check, &clpdd_command_eval,    &clpdd_command_sweep,
    &clpdd_command_report,  &clpdd_command_features, &clpdd_command_bench, &clpdd_command_plugins,
    &clpdd_command_keys,    &command_help,        NULL,
};

const clpdd_command *clpdd_command_find(const char *name) {
    for (int i = 0; clpdd_commands[i]; i++)
        if (!strcmp(clpdd_commands[i]->name, name)) return clpdd_commands[i];
    return NULL;
}

void clpdd_main_usage(FILE *f) {
    fprintf(f, "clpdd " CLPDD_VERSION " - dataset distillation on frozen pre-trained encoders (CLP-DD and its ablations)\n"
               "\n"
               "usage: clpdd <command> [options]\n"
               "\n"
               "commands:\n");
    for (int i = 0; clpdd_commands[i]; i++) fprintf(f, "  %-17s %s\n", clpdd_commands[i]->synopsis, clpdd_commands[i]->summary);
    fprintf(f, "\n"
               "common options (where a command takes them; `clpdd help COMMAND` lists each command's):\n"
               "  --set section.key=value (repeatable), --device auto|cpu|cuda (= --set experiment.device=...),\n"
               "  --plugin-path DIR[:DIR...], --allow-plugin-path, --output DIR, --quiet; --opt value or --opt=value\n"
               "\n"
               "environment: CLPDD_MODEL_PATH (weights, before the shipped models/), CLPDD_PLUGIN_PATH (plugins),\n"
               "             CLPDD_CACHE_DIR (feature cache)\n");
}

static int help(const clpdd_args *a) {
    if (!a->n_pos) return clpdd_main_usage(stdout), 0;
    const clpdd_command *c = clpdd_command_find(a->pos[0]);
    if (!c) {
        char shown[256];
        fprintf(stderr, "clpdd help: unknown command '%s'\n\n", clpdd_escape(a->pos[0], shown, sizeof shown));
        clpdd_main_usage(stderr);
        return 2;
    }
    clpdd_command_help(c, stdout);
    return 0;
}

static const clpdd_option *const help_options[] = {NULL};

static const clpdd_command command_help = {
    .name = "help",
    .synopsis = "help [COMMAND]",
    .summary = "this text, or a command's",
    .usage = "usage: clpdd help [COMMAND]\n"
             "\n"
             "Prints the list of commands, or COMMAND's usage and options (the same as `clpdd COMMAND --help`).\n",
    .options = help_options,
    .positional = "COMMAND",
    .max_pos = 1,
    .run = help,
};

int clpdd_main(int argc, char **argv) {
    if (argc < 2) return clpdd_main_usage(stderr), 2;
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) return clpdd_main_usage(stdout), 0;
    if (!strcmp(name, "--version"))
        return printf("clpdd %s (plugin ABI %d.%d)\n", CLPDD_VERSION, CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR), 0;
    const clpdd_command *c = clpdd_command_find(name);
    if (!c) {
        char shown[256];
        fprintf(stderr, "clpdd: unknown command '%s'\n\n", clpdd_escape(name, shown, sizeof shown));
        clpdd_main_usage(stderr);
        return 2;
    }
    return clpdd_command_main(c, argc - 2, argv + 2);
}
