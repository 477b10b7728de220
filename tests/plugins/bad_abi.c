/* a plugin built for a future ABI major: the loader must refuse it before reading further */
#include "clpdd/plugin.h"

static const clpdd_plugin desc = {
    /* .abi_major = */ CLPDD_ABI_MAJOR + 98,
    /* .abi_minor = */ 0,
    /* .kind = */ CLPDD_KIND_SOLVER,
    /* .name = */ "bad_abi",
    /* .version = */ "0",
    /* .summary = */ "test: ABI mismatch",
    /* .keys = */ NULL,
    /* .n_keys = */ 0,
    /* .vtable = */ NULL,
    /* .key_default = */ NULL,
};
CLPDD_DEFINE_PLUGIN(desc)
