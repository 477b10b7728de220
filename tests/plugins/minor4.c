/* a solver built for ABI 1.4: its vtable ends after backward. What follows it in memory here is
   junk where a 1.5 vtable has learned/set_learned; a 1.5 core must not read it (it reads those
   members only from a plugin whose descriptor says minor >= 5), so the plugin loads and a run
   learns nothing from it */
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

/* the ABI 1.4 solver vtable, then junk where 1.5 appended its members */
static const struct {
    int (*create)(const clpdd_host *, const clpdd_section *, const clpdd_solver_dims *, void **);
    void (*destroy)(void *);
    int (*forward)(void *, float *, const float *, const float *, const float *, int);
    int (*objective)(void *, float *, const float *, const float *, const float *, const int32_t *, int);
    int (*backward)(void *, float *, float *, const float *);
    const char *junk[2];
} vt = {create, destroy, forward, NULL, backward, {"not a function", "not a function"}};

static const clpdd_key keys[] = {
    {"lambda", CLPDD_KEY_FLOAT, "0.3", "test: a FLOAT key", 0, 1e12, NULL},
};
static const clpdd_plugin desc = {
    CLPDD_ABI_MAJOR, 4, CLPDD_KIND_SOLVER, "minor4", "0", "test: a solver of ABI 1.4", keys, 1, &vt, NULL,
};
CLPDD_DEFINE_PLUGIN(desc)
