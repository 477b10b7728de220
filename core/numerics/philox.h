/* Philox4x32-10 counter-based generator (Salmon, Moraes, Dror & Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011), shared verbatim by the CPU (core/cpu) and CUDA
 * (core/cuda) backends so that both produce the same streams.
 *
 * Stream spec (ops.h rand_uniform / rand_normal): element j = offset + i (uint64),
 *   key     = {(uint32)seed, (uint32)(seed >> 32)}
 *   uniform: counter = {(uint32)j, (uint32)(j >> 32), 0, 0};           w = word 0
 *            u = ((w >> 8) + 0.5f)·2⁻²⁴;  x = lo + (hi − lo)·u
 *   normal:  counter = {(uint32)j, (uint32)(j >> 32), 0x6e6f726d, 0};  ("norm")
 *            u1 from word 0, u2 from word 1 as above;
 *            z = √(−2·log u1)·cos(2π·u2);  x = mean + std·z   (Box–Muller, one output)
 * All float arithmetic is single precision (logf, sqrtf, cosf): the two backends agree to
 * a few ulp (libm vs CUDA math), not bit for bit.
 * Note: u ≥ 2⁻²⁵ > 0 always, so log u1 is finite; for w >> 8 = 2²⁴ − 1 the float sum rounds
 * to 2²⁴ and u = 1 exactly (probability 2⁻²⁴), so a uniform draw can equal hi. */
#ifndef CLPDD_PHILOX_H
#define CLPDD_PHILOX_H
#include <stdint.h>
#include <math.h>

#ifdef __CUDACC__
#define CLPDD_PHILOX_FN static inline __host__ __device__
#else
#define CLPDD_PHILOX_FN static inline
#endif

#define CLPDD_PHILOX_M0 0xD2511F53u
#define CLPDD_PHILOX_M1 0xCD9E8D57u
#define CLPDD_PHILOX_W0 0x9E3779B9u
#define CLPDD_PHILOX_W1 0xBB67AE85u
#define CLPDD_PHILOX_NORMAL_TAG 0x6e6f726du /* "norm": third counter word of normal draws */

typedef struct { uint32_t v[4]; } clpdd_philox4;

/* one Philox round on ctr with key (k0, k1) */
CLPDD_PHILOX_FN clpdd_philox4 clpdd_philox_round(clpdd_philox4 c, uint32_t k0, uint32_t k1) {
    uint64_t p0 = (uint64_t)CLPDD_PHILOX_M0 * c.v[0];
    uint64_t p1 = (uint64_t)CLPDD_PHILOX_M1 * c.v[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    clpdd_philox4 r;
    r.v[0] = hi1 ^ c.v[1] ^ k0;
    r.v[1] = lo1;
    r.v[2] = hi0 ^ c.v[3] ^ k1;
    r.v[3] = lo0;
    return r;
}

/* Philox4x32-10: 10 rounds, the key bumped by the Weyl constants between rounds */
CLPDD_PHILOX_FN clpdd_philox4 clpdd_philox4x32_10(clpdd_philox4 ctr, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += CLPDD_PHILOX_W0;
            k1 += CLPDD_PHILOX_W1;
        }
        ctr = clpdd_philox_round(ctr, k0, k1);
    }
    return ctr;
}

/* 32 random bits → u in (0, 1] (see the note above) */
CLPDD_PHILOX_FN float clpdd_philox_u01(uint32_t w) {
    return ((float)(w >> 8) + 0.5f) * 5.9604644775390625e-8f; /* 2^-24 */
}

/* element j of the uniform stream of `seed`, in [lo, hi] */
CLPDD_PHILOX_FN float clpdd_philox_uniform(uint64_t seed, uint64_t j, float lo, float hi) {
    clpdd_philox4 c = {{(uint32_t)j, (uint32_t)(j >> 32), 0u, 0u}};
    clpdd_philox4 r = clpdd_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    return lo + (hi - lo) * clpdd_philox_u01(r.v[0]);
}

/* element j of the normal stream of `seed` */
CLPDD_PHILOX_FN float clpdd_philox_normal(uint64_t seed, uint64_t j, float mean, float std) {
    clpdd_philox4 c = {{(uint32_t)j, (uint32_t)(j >> 32), CLPDD_PHILOX_NORMAL_TAG, 0u}};
    clpdd_philox4 r = clpdd_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    float u1 = clpdd_philox_u01(r.v[0]), u2 = clpdd_philox_u01(r.v[1]);
    float z = sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958648f * u2);
    return mean + std * z;
}

#endif
