/* libFuzzer target: IDX decoding, raw and gzip (decompressed output capped at 64 MiB so a
 * gzip bomb can't exhaust the fuzzer's memory). Build and run: see README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clpdd_idx x;
    clpdd_err e;
    if (clpdd_idx_decode(data, size, (size_t)64 << 20, "fuzz", &x, &e) != 0) {
        if (strncmp(e.msg, "fuzz", 4) != 0) abort();
        return 0;
    }
    size_t n = 1;
    for (int i = 0; i < x.ndim; i++) n *= (size_t)x.dims[i];
    if (n != x.count) abort();
    volatile uint8_t s = 0;
    for (size_t i = 0; i < x.count; i++) s ^= x.data[i];
    (void)s;
    clpdd_idx_free(&x);
    /* the raw parser directly too */
    if (clpdd_idx_parse(data, size, "fuzz", &x, &e) == 0) clpdd_idx_free(&x);
    return 0;
}
