/* a complete solver built for ABI 1.3: it predates host->cfg_enum and reads its ENUM key with
   cfg_str; a 1.4 core must load and run it unchanged */
#include <stddef.h>
#include <string.h>

#include "clpdd/plugin.h"

typedef struct minor3 {
    int second;
} minor3;
static minor3 state;

static int create(const clpdd_host *h, const clpdd_section *c, const clpdd_solver_dims *d, void **s) {
    state.second = strcmp(h->cfg_str(h, c, "mode"), "second") == 0;
    *s = &state;
    return 0;
}
static void destroy(void *s) {}
static int forward(void *s, float *Z, const float *a, const float *b, const float *c, int n) { return 0; }
static int backward(void *s, float *dphi, float *dY, const float *dZ) { return 0; }

static const clpdd_key keys[] = {
    {"mode", CLPDD_KEY_ENUM, "first", "test: an ENUM key", 1, 0, "first|second"},
};
static const clpdd_solver_vt vt = {create, destroy, forward, NULL, backward};
static const clpdd_plugin desc = {
    CLPDD_ABI_MAJOR, 3, CLPDD_KIND_SOLVER, "minor3", "0", "test: a plugin of ABI 1.3", keys, 1, &vt, NULL,
};
CLPDD_DEFINE_PLUGIN(desc)
