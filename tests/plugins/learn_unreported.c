/* a solver of ABI 1.5 with a LEARNABLE key but no learned(): `lambda = learn` must be a
   configuration error naming the section, not a run that silently keeps lambda fixed */
#include <stddef.h>

#include "clpdd/plugin.h"

static int create(const clpdd_host *h, const clpdd_section *c, const clpdd_solver_dims *d, void **s) {
    static int state;
    *s = &state;
    return 0;
}
static void destroy(void *s) {}
static int forward(void *s, float *Z, const float *a, const float *b, const float *c, int n) { return 0; }
static int backward(void *s, float *dphi, float *dY, const float *dZ) { return 0; }

static const clpdd_solver_vt vt = {create, destroy, forward, NULL, backward, NULL, NULL};
static const clpdd_key keys[] = {
    {"lambda", CLPDD_KEY_LEARNABLE, "0.3", "test: a LEARNABLE key", 0, 1e12, NULL},
};
static const clpdd_plugin desc = {
    CLPDD_ABI_MAJOR, 5, CLPDD_KIND_SOLVER, "learn_unreported", "0", "test: learns nothing it is told to", keys, 1, &vt, NULL,
};
CLPDD_DEFINE_PLUGIN(desc)
