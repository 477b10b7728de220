/* `clpdd run` and `clpdd check`: see run_cmd.h. */
#define _GNU_SOURCE
#include "cli/run_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cli/startup.h"
#include "distill/run.h"

static const clpdd_option opt_resume = {
    .name = "resume", .kind = CLPDD_OPT_FLAG,
    .help = "continue from DIR/checkpoint.safetensors when the configuration is the same"};
static const clpdd_option opt_force = {
    .name = "force", .kind = CLPDD_OPT_FLAG, .help = "replace another run's results in the output directory"};

static const clpdd_option *const run_options[] = {&clpdd_opt_set,         &clpdd_opt_device,
                                                  &clpdd_opt_output,      &clpdd_opt_plugin_path,
                                                  &clpdd_opt_allow_plugin_path, &opt_resume,
                                                  &opt_force,             &clpdd_opt_quiet,
                                                  NULL};

/* what check refuses (it writes and runs nothing): accepted so that the message can say so */
static const clpdd_option check_device = {.name = "device", .kind = CLPDD_OPT_STRING, .hidden = 1};
static const clpdd_option check_output = {.name = "output", .kind = CLPDD_OPT_STRING, .hidden = 1};
static const clpdd_option check_resume = {.name = "resume", .kind = CLPDD_OPT_FLAG, .hidden = 1};
static const clpdd_option check_force = {.name = "force", .kind = CLPDD_OPT_FLAG, .hidden = 1};
static const clpdd_option *const check_options[] = {&clpdd_opt_set,  &clpdd_opt_plugin_path, &clpdd_opt_allow_plugin_path,
                                                    &clpdd_opt_quiet, &check_output,         &check_resume,
                                                    &check_force,     &check_device,         NULL};

/* 2 and a message when --force would replace the configuration being run: FILE.ini is the output
   directory's own config.ini (however spelled), lost if the new run then fails */
static int force_replaces_input(const char *ini, const char *outdir) {
    if (!outdir) return 0;
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.ini", outdir);
    struct stat si, so;
    if (stat(ini, &si) != 0 || stat(cfg, &so) != 0 || si.st_dev != so.st_dev || si.st_ino != so.st_ino) return 0;
    fprintf(stderr, "clpdd run: %s is the config.ini of the output directory %s, which --force replaces (and loses "
                    "if the new run fails): copy it out of the run directory and run the copy\n", ini, outdir);
    return 2;
}

static int run(const clpdd_args *a) {
    clpdd_startup s;
    int rc = clpdd_startup_begin(&s, a, a->pos[0]);
    if (rc == 0 && clpdd_args_count(a, "force") && !clpdd_args_count(a, "resume"))
        rc = force_replaces_input(a->pos[0], clpdd_args_str(a, "output") ? clpdd_args_str(a, "output") : s.x.output);
    if (rc == 0) {
        clpdd_run_opts o = {.ops = s.ops,
                            .output = clpdd_args_str(a, "output"),
                            .quiet = clpdd_args_count(a, "quiet"),
                            .resume = clpdd_args_count(a, "resume"),
                            .force = clpdd_args_count(a, "force")};
        rc = clpdd_run(&s.x, &o, &s.e) ? 1 : 0;
        if (rc) fprintf(stderr, "clpdd: %s\n", s.e.msg);
    }
    clpdd_startup_end(&s);
    return rc;
}

static int check(const clpdd_args *a) {
    const char *ignored = clpdd_args_count(a, "output")   ? "--output"
                          : clpdd_args_count(a, "resume") ? "--resume"
                          : clpdd_args_count(a, "force")  ? "--force"
                          : clpdd_args_count(a, "device") ? "--device"
                                                          : NULL;
    if (ignored) {
        fprintf(stderr, "clpdd: check does not take %s (it only validates and prints the configuration; `clpdd run` takes it)\n\n",
                ignored);
        clpdd_command_help(&clpdd_command_check, stderr);
        return 2;
    }
    clpdd_startup s;
    clpdd_startup_dirs(&s, a);
    int rc = clpdd_startup_load(&s, a, a->pos[0], NULL, 0);
    if (rc == 0) {
        char *ini = clpdd_experiment_resolved_ini(&s.x);
        fputs(ini, stdout);
        free(ini);
    }
    clpdd_startup_end(&s);
    return rc;
}

const clpdd_command clpdd_command_run = {
    .name = "run",
    .synopsis = "run FILE.ini",
    .summary = "distil, evaluate and write a run directory",
    .usage =
        "usage: clpdd run FILE.ini [--set section.key=value]... [--device auto|cpu|cuda] [--output DIR]\n"
        "                          [--plugin-path DIR[:DIR...]] [--allow-plugin-path] [--resume] [--force] [--quiet]\n"
        "\n"
        "Runs the experiment: features of the real images (cached), the distillation loop, the\n"
        "evaluation (probe on the distilled set and baselines) and writes into the run directory:\n"
        "config.ini (resolved), metrics.json, log.csv, distilled.safetensors, distilled.png, loss.png,\n"
        "neighbors.csv and neighbors.png (the nearest real images, [eval] baseline_neighbors).\n"
        "--set overrides any key (repeatable); --device and --output override [experiment].\n"
        "--resume continues from DIR/checkpoint.safetensors (written every [distill] checkpoint_every\n"
        "steps, removed when the run finishes) when the configuration is the same.\n"
        "--force replaces another run's results in the output directory (once the run is ready to write;\n"
        "never the FILE.ini it runs).\n"
        "--allow-plugin-path lets the INI name a plugin by path ([solver] name = ./my.so): loading a\n"
        "plugin runs its code, so paths are refused unless the .so lies in a --plugin-path or\n"
        "CLPDD_PLUGIN_PATH directory (then give its name) or this option says you trust it.\n",
    .options = run_options,
    .positional = "FILE.ini",
    .min_pos = 1,
    .max_pos = 1,
    .run = run,
};

const clpdd_command clpdd_command_check = {
    .name = "check",
    .synopsis = "check FILE.ini",
    .summary = "validate an experiment file and its plugins without running it",
    .usage =
        "usage: clpdd check FILE.ini [--set section.key=value]... [--plugin-path DIR[:DIR...]] [--allow-plugin-path]\n"
        "\n"
        "Validates every section and key against the core and the plugins and prints the resolved\n"
        "configuration; exits 2 on the first error, naming file:line and the expected form.\n"
        "It loads the plugins the file names (their code runs): a plugin given by path only with\n"
        "--allow-plugin-path (see `clpdd help run`). It writes nothing.\n",
    .options = check_options,
    .positional = "FILE.ini",
    .min_pos = 1,
    .max_pos = 1,
    .run = check,
};
