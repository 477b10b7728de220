/* `clpdd features`: see features_cmd.h. */
#define _GNU_SOURCE
#include "cli/features_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/experiment.h"
#include "plugin/loader.h"

const char *const clpdd_usage_features =
    "usage: clpdd features FILE.ini [--shard i/N | --merge] [--set section.key=value]... [--device auto|cpu|cuda]\n"
    "                               [--plugin-path DIR[:DIR...]] [--allow-plugin-path] [--quiet]\n"
    "\n"
    "Precompute the feature cache of both splits of FILE.ini's dataset through its backbone, as `clpdd run`\n"
    "would ([data] cache_dir, else $CLPDD_CACHE_DIR, ~/.cache/clpdd). The cache of a split is written in\n"
    "shards of $CLPDD_CACHE_SHARD_IMAGES images (default 50000) as the extraction proceeds, so a killed\n"
    "extraction resumes at the first missing shard; [data] feature_dtype = f16 halves it.\n"
    "\n"
    "  --shard i/N   only the i-th (0..N-1) of N contiguous ranges of each split's shards: one process\n"
    "                of a job array (scripts/slurm/features.sbatch); the cache directory must be shared\n"
    "  --merge       after every part: verify each shard and write each split's index; the cache is then\n"
    "                byte-identical to one unsharded extraction (a run also uses complete shards as they are)\n";

int clpdd_cmd_features(int argc, char **argv) {
    const char *path = NULL, *device = NULL, *plugin_path = NULL, *sets[256];
    int n_sets = 0, quiet = 0, merge = 0, allow = 0, part = 0, parts = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) return fputs(clpdd_usage_features, stdout), 0;
        else if (!strcmp(s, "--merge")) merge = 1;
        else if (!strcmp(s, "--quiet") || !strcmp(s, "-q")) quiet = 1;
        else if (!strcmp(s, "--allow-plugin-path")) allow = 1;
        else if (!strcmp(s, "--device")) slot = &device;
        else if (!strcmp(s, "--plugin-path")) slot = &plugin_path;
        else if (!strcmp(s, "--shard")) {
            char tail;
            if (i + 1 >= argc || sscanf(argv[i + 1], "%d/%d%c", &part, &parts, &tail) != 2 || parts < 1 || part < 0 ||
                part >= parts)
                return fprintf(stderr, "clpdd features: --shard %s: expected i/N with 0 <= i < N (e.g. --shard 0/4)\n",
                               i + 1 < argc ? argv[i + 1] : "(missing)"),
                       2;
            i++;
        } else if (!strcmp(s, "--set")) {
            if (n_sets == 256) return fprintf(stderr, "clpdd features: too many --set options\n"), 2;
            slot = &sets[n_sets++];
        } else if (s[0] == '-' && s[1])
            return fprintf(stderr, "clpdd features: unknown option '%s'\n\n%s", s, clpdd_usage_features), 2;
        else if (!path) path = s;
        else return fprintf(stderr, "clpdd features: unexpected argument '%s'\n\n%s", s, clpdd_usage_features), 2;
        if (slot) {
            if (i + 1 >= argc) return fprintf(stderr, "clpdd features: option %s needs a value\n\n%s", s, clpdd_usage_features), 2;
            *slot = argv[++i];
        }
    }
    if (!path) return fprintf(stderr, "clpdd features: missing FILE.ini\n\n%s", clpdd_usage_features), 2;
    if (merge && parts > 0) return fprintf(stderr, "clpdd features: --merge and --shard exclude each other\n"), 2;
    if (device && clpdd_device_parse(device) < 0)
        return fprintf(stderr, "clpdd features: --device %s: expected auto, cpu or cuda\n", device), 2;
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, plugin_path);
    dirs.allow_paths = allow;
    clpdd_experiment x;
    clpdd_err e = {{0}};
    int rc = 0;
    if (clpdd_experiment_load(&x, path, sets, n_sets, &dirs, &e)) {
        fprintf(stderr, "clpdd: %s\n", e.msg);
        rc = 2;
    } else {
        clpdd_device_kind dev = device ? (clpdd_device_kind)clpdd_device_parse(device) : x.device;
        const clpdd_ops *ops = clpdd_select_device(dev, &e);
        clpdd_run_opts o = {.ops = ops, .quiet = quiet};
        if (!ops) {
            fprintf(stderr, "clpdd: %s\n", e.msg);
            rc = 2;
        } else if (clpdd_run_features(&x, &o, part, parts, merge, &e)) {
            fprintf(stderr, "clpdd: %s\n", e.msg);
            rc = 1;
        }
        clpdd_experiment_free(&x);
    }
    clpdd_plugin_dirs_free(&dirs);
    return rc;
}
