/* One distillation run (DESIGN §1, §8): features → the optimisation loop → evaluation → the
 * run directory. */
#ifndef CLPDD_RUN_H
#define CLPDD_RUN_H
#include "experiment.h"

typedef struct clpdd_run_opts {
    const char *device;   /* overrides [experiment] device when not NULL */
    const char *output;   /* overrides [experiment] output when not NULL */
    int quiet;
    int resume;           /* continue from <output>/checkpoint.safetensors when there is one */
} clpdd_run_opts;

/* choose the device ops: "auto" | "cpu" | "cuda"; NULL + message when cuda is asked for and absent */
const clpdd_ops *clpdd_select_device(const char *device, clpdd_err *e);

int clpdd_run(clpdd_experiment *x, const clpdd_run_opts *opts, clpdd_err *e);

#endif
