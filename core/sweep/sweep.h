/* Sweeps (docs/design.md §8): one experiment file with a [sweep] section → a grid of runs.
 *
 * [sweep] syntax
 *   section.key = v1, v2, ...      a list of values (the key as --set would name it)
 *   experiment.seed = 0..4         an integer range, inclusive (mixable: 0..2, 10)
 *   zip = a.b, c.d                 pair the lists of a.b and c.d element-wise (equal lengths)
 *                                  instead of crossing them; every key whose name starts with
 *                                  "zip" is one such group
 * The grid is the product of the lists (the first key varies slowest, the last fastest).
 * `--sweep section.key=v1,v2` on the command line adds a key or replaces its list.
 *
 * Plugin-conditional keys: a key of a plugin section applies only where the plugin chosen at
 * that point declares it ([loss] keys only where the solver is not an objective solver such as
 * lgm, which takes no [loss]); elsewhere it is dropped, and points that become identical are
 * merged (solver.name = ridge, lgm × loss.name = ce, mse → ridge+ce, ridge+mse, lgm). A key
 * that applies at no point is an error. A single-valued list is the way to give a plugin key
 * that only some points take (loss.temperature = 0.1 applies to ce, not mse).
 * Values can't contain commas, so keys of type floats can't be swept (an error says so).
 *
 * Each point runs in <root>/<point>/, root = --output, else [experiment] output, else
 * runs/<[experiment] name or the file's base name>; the point's name is its applicable swept
 * values with more than one value, "label=value" joined by ',' (label: the key; the section for a plugin's `name`; the
 * whole section.key where two keys share a name). A name a path component can't hold as it is (a
 * character other than letters, digits and . _ = , + -; a leading '.'; over 200 characters) is
 * made readable ('_' for those characters, cut at 180) and followed by '~' and 16 hex digits of a
 * hash of the exact text: names are injective and depend on the point's values only
 * (root=/data/x_y → root=_data_x_y~<hash>, root=/data/x/y → root=_data_x_y~<another hash>).
 *
 * A point whose directory holds the results of another configuration (metrics.json and a
 * config.ini that differs in a key that changes what a run computes) is never replaced: the sweep
 * refuses to start, naming the point, the first difference and how to proceed. */
#ifndef CLPDD_SWEEP_H
#define CLPDD_SWEEP_H
#include "plugin/loader.h"
#include "distill/run.h"
#include "util/util.h"

typedef struct clpdd_sweep_key {
    char *key;     /* "section.key" */
    char *label;   /* as it appears in point names */
    char **values; /* expanded (ranges unrolled) */
    int n_values;
    char *where;   /* "file:line" or "--sweep" */
    int zip;       /* zip group (0 = none) */
} clpdd_sweep_key;

typedef struct clpdd_sweep_point {
    int index;     /* 0-based position among the deduplicated points (what --shard splits) */
    char *name;    /* one path component */
    char *dir;     /* <root>/<name> */
    char **sets;   /* every --set of the point: the command line's, its swept values, experiment.output/name */
    int n_sets;
    int n_swept;   /* sets[n_swept_from .. n_swept_from + n_swept) are its applicable swept values */
    int swept_from;
    char *resolved; /* its clpdd_experiment_resolved_ini once clpdd_sweep_validate loaded it; else NULL */
} clpdd_sweep_point;

typedef struct clpdd_sweep {
    char *file, *name, *root;
    clpdd_sweep_key *keys;
    int n_keys;
    clpdd_sweep_point *points;
    int n_points;
    int n_grid; /* before merging points made identical by dropped keys */
} clpdd_sweep;

typedef struct clpdd_sweep_opts {
    const char *const *sets;   /* --set section.key=value, applied to every point */
    int n_sets;
    const char *const *sweeps; /* --sweep section.key=v1,v2,... */
    int n_sweeps;
    const char *output;        /* --output: the sweep's root directory */
    const clpdd_plugin_dirs *dirs;
} clpdd_sweep_opts;

/* read the file's [sweep] section (+ --sweep), expand and name the points. Nothing is validated
   beyond the sweep syntax and which keys apply; -1 + message naming file:line. */
int clpdd_sweep_expand(clpdd_sweep *s, const char *path, const clpdd_sweep_opts *o, clpdd_err *e);
/* load every point (clpdd_experiment_load with its --set list) and keep its resolved
   configuration (p->resolved); the first error stops it with "FILE:LINE: [sweep] point i (name):
   message". Writes nothing. */
int clpdd_sweep_validate(clpdd_sweep *s, const clpdd_sweep_opts *o, clpdd_err *e);
void clpdd_sweep_free(clpdd_sweep *s);

/* shard i of N (0-based, Slurm's SLURM_ARRAY_TASK_ID with --array=0-(N-1); the command line's
   "i/N" is parsed by clpdd_parse_shard, core/cli/options.h) runs the points whose index ≡ i (mod N) */
static inline int clpdd_sweep_in_shard(int index, int i, int n) { return n <= 1 || index % n == i; }

/* the state of a point's directory */
typedef enum {
    CLPDD_POINT_NEW = 0,   /* nothing there */
    CLPDD_POINT_DONE,      /* metrics.json + config.ini of the same run as the point's resolved config */
    CLPDD_POINT_PARTIAL,   /* a checkpoint to resume from (no metrics.json) */
    CLPDD_POINT_FAILED,    /* error.txt from a failed attempt (and nothing newer) */
    CLPDD_POINT_STALE,     /* metrics.json of another configuration: kept, the sweep refuses to run */
    CLPDD_POINT_STATE_COUNT
} clpdd_point_state;
const char *clpdd_point_state_name(clpdd_point_state st);
/* resolved: the point's clpdd_experiment_resolved_ini; NULL: p->resolved; both NULL: DONE and
   STALE are not told apart (DONE) */
clpdd_point_state clpdd_sweep_point_state(const clpdd_sweep_point *p, const char *resolved);
/* equal resolved configs as the INI reader (io/ini.h) reads them: every section's keys set to
   the same values; comments (the file's path in the header, "; default" marks), spacing and key
   order aside. A text that does not parse (a damaged config.ini) equals nothing. */
int clpdd_config_text_equal(const char *a, const char *b);

typedef struct clpdd_sweep_run_opts {
    const clpdd_ops *ops;
    int jobs;           /* > 1: points in that many child processes (feature groups' first points first) */
    int shard_i, shard_n;
    int quiet;          /* the points' own progress output */
} clpdd_sweep_run_opts;

typedef struct clpdd_sweep_result {
    int ran, skipped, failed, in_shard;
    double seconds;
} clpdd_sweep_result;

/* validate every point, then run the shard's points (finished ones skipped, killed ones
   resumed, failures written to <point>/error.txt and counted); -1 only for a validation or
   setup error, or a shard point that finished with another configuration (nothing run) */
int clpdd_sweep_run(clpdd_sweep *s, const clpdd_sweep_opts *o, const clpdd_sweep_run_opts *r,
                    clpdd_sweep_result *res, clpdd_err *e);

#endif
