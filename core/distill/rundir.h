/* A run directory, as one run owns it.
 *
 * - One run at a time: the run holds an flock on <dir>/.lock (which names its pid) until it ends;
 *   a second run into the same directory is refused, naming the first one's pid.
 * - Never two runs' files: a directory that holds another run's files (config.ini, metrics.json,
 *   log.csv, distilled.*, loss.png, checkpoint.safetensors) is refused unless `--force` (those
 *   files are removed first) or `--resume` (the checkpoint is the point; a finished run is not
 *   resumed).
 * - metrics.json, the completion marker, is removed at the start and written last, so a failed
 *   rerun never leaves the old metrics beside new files.
 * - Taken before any expensive work: creating the directory and its lock file proves it
 *   writable before features are extracted. */
#ifndef CLPDD_RUNDIR_H
#define CLPDD_RUNDIR_H
#include "util/util.h"

typedef struct clpdd_rundir {
    int lock_fd; /* -1: not held */
    char lock_path[4200];
} clpdd_rundir;

int clpdd_rundir_acquire(clpdd_rundir *d, const char *path, int resume, int force, clpdd_err *e);
/* unlocks and removes the lock file; a no-op when not held */
void clpdd_rundir_release(clpdd_rundir *d);

#endif
