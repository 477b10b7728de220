/* Linear-algebra helpers for plugins, composed of clpdd_ops only (so they run on either
 * device and need no library of ours: static inline, headers only, like the rest of the SDK).
 * ABI: uses only ABI 1.0 ops (copy, to_device, add2d, potrf). */
#ifndef CLPDD_LINALG_H
#define CLPDD_LINALG_H
#include <math.h>
#include <stddef.h>

#include "clpdd/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLPDD_CHOL_ATTEMPTS 8 /* no jitter, then scale·10⁻⁶ … scale·10⁻¹ */

/* Cholesky with jitter: sys (n, n) = sys0 + (base + jitter)·I, then its lower Cholesky factor
 * in place (ops->potrf). The first attempt adds no jitter; attempt a ≥ 1 adds
 * jitter = (float)(scale·10^(a − 7)), scale being the typical diagonal entry (tr / m, or 1
 * when the trace is not positive). sys and sys0 are op memory; scal is one float of op memory
 * (scratch for the diagonal value). The jitter is a constant to the caller's gradients.
 * Returns the attempt that factorised (0: no jitter; *jitter = what was added), or −1 when
 * none did, the largest jitter tried being scale·10⁻¹ (the caller reports it). */
static inline int clpdd_chol_jitter(const clpdd_ops *ops, float *sys, const float *sys0, int n, float base,
                                    double scale, float *scal, float *jitter) {
    for (int attempt = 0; attempt < CLPDD_CHOL_ATTEMPTS; attempt++) {
        float jit = attempt == 0 ? 0.0f : (float)(scale * pow(10.0, -7 + attempt));
        float diag = base + jit;
        ops->copy(sys, sys0, (size_t)n * (size_t)n * sizeof(float));
        ops->to_device(scal, &diag, sizeof diag);
        ops->add2d(sys, (size_t)n + 1, scal, 0, (size_t)n, 1); /* diagonal += diag */
        if (ops->potrf(sys, n, n) == 0) {
            if (jitter) *jitter = jit;
            return attempt;
        }
    }
    return -1;
}

#ifdef __cplusplus
}
#endif
#endif
