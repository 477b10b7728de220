/* `clpdd features`: see features_cmd.h. */
#define _GNU_SOURCE
#include "cli/features_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/startup.h"

static int features(const clpdd_args *a) {
    int part = 0, parts = 0, merge = clpdd_args_count(a, "merge");
    clpdd_args_shard(a, "shard", &part, &parts);
    if (merge && parts > 0) return fprintf(stderr, "clpdd features: --merge and --shard exclude each other\n"), 2;
    clpdd_startup s;
    int rc = clpdd_startup_begin(&s, a, a->pos[0]);
    if (rc == 0) {
        clpdd_run_opts o = {.ops = s.ops, .quiet = clpdd_args_count(a, "quiet")};
        if (clpdd_run_features(&s.x, &o, part, parts, merge, &s.e)) {
            fprintf(stderr, "clpdd: %s\n", s.e.msg);
            rc = 1;
        }
    }
    clpdd_startup_end(&s);
    return rc;
}

static const clpdd_option opt_shard = {
    .name = "shard", .kind = CLPDD_OPT_SHARD, .value = "i/N",
    .help = "only the i-th (0..N-1) of N contiguous ranges of each split's shards: one process of a job array (scripts/slurm/features.sbatch); the cache directory must be shared"};
static const clpdd_option opt_merge = {
    .name = "merge", .kind = CLPDD_OPT_FLAG,
    .help = "after every part: verify each shard and write each split's index; the cache is then byte-identical to one unsharded extraction (a run also uses complete shards as they are)"};
static const clpdd_option *const options[] = {&opt_shard, &opt_merge, &clpdd_opt_set, &clpdd_opt_device,
                                              &clpdd_opt_plugin_path, &clpdd_opt_allow_plugin_path, &clpdd_opt_quiet, NULL};

const clpdd_command clpdd_command_features = {
    .name = "features",
    .synopsis = "features FILE.ini",
    .summary = "precompute the feature cache of both splits (--shard i/N for a job array, --merge)",
    .usage =
        "usage: clpdd features FILE.ini [--shard i/N | --merge] [--set section.key=value]... [--device auto|cpu|cuda]\n"
        "                               [--plugin-path DIR[:DIR...]] [--allow-plugin-path] [--quiet]\n"
        "\n"
        "Precompute the feature cache of both splits of FILE.ini's dataset through its backbone, as `clpdd run`\n"
        "would ([data] cache_dir, else $CLPDD_CACHE_DIR, ~/.cache/clpdd). The cache of a split is written in\n"
        "shards of $CLPDD_CACHE_SHARD_IMAGES images (default 50000) as the extraction proceeds, so a killed\n"
        "extraction resumes at the first missing shard; [data] feature_dtype = f16 halves it.\n",
    .options = options,
    .positional = "FILE.ini",
    .min_pos = 1,
    .max_pos = 1,
    .run = features,
};

int clpdd_cmd_features(int argc, char **argv) { return clpdd_command_main(&clpdd_command_features, argc, argv); }
