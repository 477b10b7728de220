/* Checkpoints of the distillation loop, from which `clpdd run --resume` continues after a crash.
 *
 * <run dir>/checkpoint.safetensors, written atomically every [distill] checkpoint_every steps and
 * removed when the run finishes: the parameter vector and Adam's two moments (capacity floats;
 * with [distill] labels = learn the label logits and their moments appended, core/distill/loop.c),
 * the real-batch sampler (its permutation and generator state), the step, the log rows so far,
 * the learned scalars with their Adam moments (core/distill/learned.h), the hash of the resolved configuration — a checkpoint of another configuration is refused — and
 * an XXH3 checksum of all of it, verified (with the step's range) before anything is restored.
 * Everything random in a step is derived from (seed, step) or from the restored sampler, so a
 * resumed pixel run is bit-for-bit the uninterrupted one (tests/test_run.c); a pyramid run
 * restarts the per-level Adam step counts at the resume step (bias correction only). */
#ifndef CLPDD_CHECKPOINT_H
#define CLPDD_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>

#include "distill/outputs.h"
#include "util/util.h"

typedef struct clpdd_checkpoint {
    uint64_t config_hash;
    int step;            /* the last completed step */
    uint64_t rng_state;  /* the real-batch sampler */
    float *params, *adam_m, *adam_v; /* (cap) host */
    size_t cap;
    int *perm;           /* (N) host */
    int N;
    clpdd_log_row *log;  /* (nlog) host, capacity caplog */
    int nlog, caplog;
    const char *config;  /* the configuration's "section.key = value" lines (clpdd_experiment_distill_ini):
                            written beside the hash, so a refusal names the keys that differ */
    int steps;           /* set before a read: the run's [distill] steps; the step read must lie in
                            [1, steps) (0: only >= 1 is checked) */
    int n_learned;       /* learned scalars (core/distill/learned.h): 0 keeps the file as before */
    double *learned;     /* (n_learned, 4) host: log value, Adam m, Adam v, the value the last step used;
                            the log rows then carry n_learned more columns */
} clpdd_checkpoint;

int clpdd_checkpoint_write(const char *path, const clpdd_checkpoint *c, clpdd_err *e);
/* fills c's step, rng_state, arrays and nlog; 1 when there is no checkpoint file, 0 when one was
   read, -1 (and a message naming the file) when it is unreadable, of another format, configuration
   or shape, fails its XXH3 payload checksum, or holds impossible state (a step outside
   [1, steps), log rows out of order, a non-finite optimiser value, a sampler index out of range).
   On -1 nothing in c has been changed. */
int clpdd_checkpoint_read(const char *path, clpdd_checkpoint *c, clpdd_err *e);

#endif
