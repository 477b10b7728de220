/* `clpdd features FILE.ini [--shard i/N] [--merge]`: precompute the feature cache of both splits
 * of an experiment, as `clpdd run` would find it (the same datasets, backbone and cache keys;
 * core/features/feature_cache.h). --shard i/N (i = 0..N-1) extracts and writes only the i-th of N
 * contiguous ranges of each split's cache shards, so N processes of a job array
 * (scripts/slurm/features.sbatch) share the work; --merge then verifies every shard and writes
 * each split's index: the result is byte-identical to one unsharded extraction. Exit status: 0,
 * 1 a failure while extracting (or shards missing at --merge), 2 a usage or configuration error. */
#ifndef CLPDD_FEATURES_CMD_H
#define CLPDD_FEATURES_CMD_H
#include "cli/options.h"
#include "distill/run.h"

extern const clpdd_command clpdd_command_features;
int clpdd_cmd_features(int argc, char **argv); /* the work itself: clpdd_run_features (distill/run.h) */

#endif
