#define _GNU_SOURCE
#include "distill/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* what a run writes into its directory; metrics.json first: it marks a finished run */
static const char *const run_files[] = {"metrics.json",  "config.ini",    "log.csv",          "distilled.safetensors",
                                        "distilled.png", "loss.png",      "neighbors.csv",    "neighbors.png",
                                        "checkpoint.safetensors", "config-fixed.ini"};
#define N_RUN_FILES (int)(sizeof run_files / sizeof run_files[0])

static int exists(const char *dir, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int remove_file(const char *dir, const char *name, clpdd_err *e) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (unlink(p) == 0 || errno == ENOENT) return 0;
    return clpdd_err_set(e, "run directory: cannot remove %s: %s", p, strerror(errno));
}

int clpdd_rundir_acquire(clpdd_rundir *d, const char *path, int resume, int force, clpdd_err *e) {
    d->lock_fd = -1;
    if (clpdd_mkdirs(path, e)) return clpdd_err_prefix(e, "run directory: ");
    snprintf(d->lock_path, sizeof d->lock_path, "%s/.lock", path);
    int fd = open(d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return clpdd_err_set(e, "run directory %s is not writable: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "?";
        ssize_t got = pread(fd, pid, sizeof pid - 1, 0);
        if (got > 0) pid[strcspn(pid, "\n")] = 0;
        close(fd);
        return clpdd_err_set(e, "run directory %s is in use by another clpdd run (pid %s): use another --output", path,
                             got > 0 ? pid : "?");
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int err = errno;
        close(fd);
        return clpdd_err_set(e, "run directory %s is not writable: %s", path, strerror(err));
    }
    d->lock_fd = fd;
    snprintf(d->path, sizeof d->path, "%s", path);
    d->force = force;
    const char *found = NULL;
    for (int i = 0; i < N_RUN_FILES && !found; i++)
        if (exists(path, run_files[i])) found = run_files[i];
    if (found && resume && !force && exists(path, "metrics.json"))
        return clpdd_err_set(e, "run directory %s holds a finished run (metrics.json): nothing to resume; --force reruns it",
                             path);
    if (found && !resume && !force)
        return clpdd_err_set(e, "run directory %s holds another run's files (%s): --force replaces them, --resume continues "
                                "from its checkpoint, or choose another --output", path, found);
    return 0;
}

int clpdd_rundir_clear(clpdd_rundir *d, clpdd_err *e) {
    CLPDD_ASSERT(d->lock_fd >= 0);
    for (int i = 0; i < N_RUN_FILES && d->force; i++)
        if (remove_file(d->path, run_files[i], e)) return -1;
    return remove_file(d->path, "metrics.json", e); /* written last, so its absence marks an unfinished run */
}

void clpdd_rundir_release(clpdd_rundir *d) {
    if (d->lock_fd < 0) return;
    unlink(d->lock_path);
    close(d->lock_fd);
    d->lock_fd = -1;
}
