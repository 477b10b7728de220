#include "numerics/precision.h"

#include "io/ini.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

const char *const clpdd_precision_names[CLPDD_PRECISION_COUNT] = {"fp32", "tf32", "bf16"};
static const int mantissa[CLPDD_PRECISION_COUNT] = {23, 10, 7};

const char *clpdd_precision_name(clpdd_precision p) {
    return clpdd_name_at(clpdd_precision_names, CLPDD_PRECISION_COUNT, (int)p);
}

int clpdd_precision_parse(const char *name) { return clpdd_name_index(clpdd_precision_names, CLPDD_PRECISION_COUNT, name); }

float clpdd_round_mantissa(float x, int bits) {
    if (bits >= 23 || !isfinite(x)) return x; /* NaN keeps its payload, ±Inf stays */
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const int drop = 23 - bits;
    const uint32_t half = 1u << (drop - 1), lsb = (u >> drop) & 1u;
    /* adding half − 1 + lsb rounds to nearest with ties to even; a carry out of the mantissa
       steps the exponent, and out of the largest exponent gives the infinity's bit pattern */
    u += half - 1u + lsb;
    u &= ~((1u << drop) - 1u);
    float y;
    memcpy(&y, &u, sizeof y);
    return y;
}

void clpdd_precision_round(float *x, size_t n, clpdd_precision p) {
    if (p == CLPDD_PRECISION_FP32) return;
    for (size_t i = 0; i < n; i++) x[i] = clpdd_round_mantissa(x[i], mantissa[p]);
}

double clpdd_precision_unit(clpdd_precision p) { return ldexp(1.0, -(mantissa[(unsigned)p < CLPDD_PRECISION_COUNT ? p : 0] + 1)); }

clpdd_precision clpdd_precision_effective(const clpdd_ops *ops, clpdd_precision p) {
    return ops->precision_supported ? ops->precision_supported(p) : CLPDD_PRECISION_FP32;
}
