/* libFuzzer target: the safetensors header parser and every read over what it accepts.
 * Build and run: see README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clpdd_st_file *f;
    clpdd_err e;
    if (clpdd_st_open_memory(data, size, "fuzz", &f, &e) != 0) {
        if (strncmp(e.msg, "fuzz", 4) != 0) abort(); /* every error names its file */
        return 0;
    }
    for (int i = 0; i < clpdd_st_count(f); i++) {
        const clpdd_st_tensor *t = clpdd_st_at(f, i);
        if (clpdd_st_find(f, t->name) != t) abort();
        int64_t n = clpdd_st_numel(t);
        if ((uint64_t)n * clpdd_dtype_size(t->dtype) != t->nbytes) abort();
        if (t->nbytes > ((size_t)64 << 20)) continue; /* valid but large: don't allocate in the fuzzer */
        float *dst = malloc((size_t)n * sizeof(float) + 1);
        void *raw = malloc(t->nbytes + 1);
        if (clpdd_st_read_f32(f, t, dst, &e) || clpdd_st_read_raw(f, t, raw, &e)) abort();
        free(dst);
        free(raw);
    }
    (void)clpdd_st_metadata(f, "format");
    clpdd_st_close(f);
    return 0;
}
