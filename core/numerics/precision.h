/* The reduced float formats the GPU's tensor cores take ([experiment] precision):
 * their names, and exact host emulations of the rounding, so that the CPU can say what a
 * tf32 / bf16 product does to a number without a GPU (tests, tolerances).
 *
 * Both formats keep fp32's 8-bit exponent and cut the mantissa: tf32 to 10 bits, bf16 to 7.
 * Rounding is to nearest, ties to even (what cuBLAS's conversions and PyTorch's
 * Tensor.bfloat16() do); NaN stays NaN, ±Inf stays ±Inf, and a finite value that rounds past
 * the largest finite one becomes ±Inf, as IEEE rounding does. */
#ifndef CLPDD_PRECISION_H
#define CLPDD_PRECISION_H
#include <stddef.h>

#include "clpdd/ops.h"

/* the names, in clpdd_precision's order: [experiment] precision's choices, messages, metrics */
extern const char *const clpdd_precision_names[CLPDD_PRECISION_COUNT];
const char *clpdd_precision_name(clpdd_precision p); /* "fp32", "tf32", "bf16"; "?" out of range */
int clpdd_precision_parse(const char *name);          /* the precision, or -1 */

/* the precision ops computes when p is asked for (the CPU: fp32): ops->precision_supported,
   a query that leaves the op table's setting alone; fp32 when the table has none */
clpdd_precision clpdd_precision_effective(const clpdd_ops *ops, clpdd_precision p);

/* x rounded to keep `bits` mantissa bits (0 < bits ≤ 23), ties to even */
float clpdd_round_mantissa(float x, int bits);
static inline float clpdd_bf16_round(float x) { return clpdd_round_mantissa(x, 7); }
static inline float clpdd_tf32_round(float x) { return clpdd_round_mantissa(x, 10); }
/* x[i] rounded as precision p takes a product's inputs (fp32: unchanged) */
void clpdd_precision_round(float *x, size_t n, clpdd_precision p);
/* the unit roundoff of p's inputs: 2^-(bits+1) */
double clpdd_precision_unit(clpdd_precision p);

#endif
