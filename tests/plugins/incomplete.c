/* a solver whose vtable lacks backward */
#include <stddef.h>

#include "clpdd/plugin.h"

static int create(const clpdd_host *h, const clpdd_section *c, const clpdd_solver_dims *d, void **s) { return 0; }
static void destroy(void *s) {}
static int forward(void *s, float *Z, const float *a, const float *b, const float *c, int n) { return 0; }

static const clpdd_solver_vt vt = {create, destroy, forward, NULL, NULL};
static const clpdd_plugin desc = {
    CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR, CLPDD_KIND_SOLVER, "incomplete", "0", "test: no backward", NULL, 0, &vt,
};
CLPDD_DEFINE_PLUGIN(desc)
