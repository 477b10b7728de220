/* CPU backend: counter-based random streams (Philox4x32-10, core/numerics/philox.h). Element i of a
 * call is element offset + i of the stream of `seed`, so draws are reproducible, can be
 * made in pieces, and match the CUDA backend (which uses the same header). */
#include "cpu/ops_cpu.h"
#include "numerics/philox.h"

/* x (n) ~ U(lo, hi) */
void cpu_rand_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t offset) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN / 8))
    for (size_t i = 0; i < n; i++) x[i] = clpdd_philox_uniform(seed, offset + i, lo, hi);
}

/* x (n) ~ N(mean, std²) */
void cpu_rand_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t offset) {
    CLPDD_OMP(omp parallel for if (n > CLPDD_CPU_PAR_MIN / 8))
    for (size_t i = 0; i < n; i++) x[i] = clpdd_philox_normal(seed, offset + i, mean, std);
}
