/* clpdd CUDA backend stub, compiled instead of the .cu files of core/cuda when the build
 * has no CUDA (CLPDD_CUDA=OFF, or AUTO without nvcc): clpdd_ops_cuda() always reports why
 * there is no device table, so callers fall back to the CPU and the CUDA tests skip. */
#include "clpdd/ops.h"

#include <stddef.h>

const clpdd_ops *clpdd_ops_cuda(const char **why) {
    if (why) *why = "this build has no CUDA backend (configure with nvcc available or -DCLPDD_CUDA=ON)";
    return NULL;
}
