/* A run directory, as one run owns it.
 *
 * - One run at a time: the run holds an flock on <dir>/.lock (which names its pid) until it ends;
 *   a second run into the same directory is refused, naming the first one's pid.
 * - Never two runs' files: a directory that holds another run's files (config.ini, metrics.json,
 *   log.csv, distilled.*, loss.png, checkpoint.safetensors) is refused unless `--force` (those
 *   files are replaced) or `--resume` (the checkpoint is the point; a finished run is not
 *   resumed).
 * - Checked first, removed last: clpdd_rundir_acquire refuses a directory in use or holding
 *   another run before any expensive work (creating the directory and its lock file proves it
 *   writable before features are extracted); clpdd_rundir_clear removes the old run's files
 *   (--force) only once everything that can fail before the run writes (the data, the backbone,
 *   the features, the plugins) has succeeded, so a rerun that cannot start leaves the old run
 *   whole.
 * - metrics.json, the completion marker, is removed by clpdd_rundir_clear and written last, so a
 *   failed rerun never leaves the old metrics beside new files. */
#ifndef CLPDD_RUNDIR_H
#define CLPDD_RUNDIR_H
#include "util/util.h"

typedef struct clpdd_rundir {
    int lock_fd; /* -1: not held */
    char lock_path[4200];
    char path[4200];
    int force;  /* clpdd_rundir_clear removes the old run's files */
} clpdd_rundir;

/* the directory created, locked and checked; nothing in it is removed yet */
int clpdd_rundir_acquire(clpdd_rundir *d, const char *path, int resume, int force, clpdd_err *e);
/* just before the run's first write: the old run's files removed (force), metrics.json in any case */
int clpdd_rundir_clear(clpdd_rundir *d, clpdd_err *e);
/* unlocks and removes the lock file; a no-op when not held */
void clpdd_rundir_release(clpdd_rundir *d);

#endif
