/* IDX files (MNIST / Fashion-MNIST), raw or gzip-compressed (detected by the gzip magic).
 * Only unsigned-byte data (type 0x08) is accepted; dims are checked against the payload. */
#ifndef CLPDD_IO_IDX_H
#define CLPDD_IO_IDX_H
#include <stddef.h>
#include <stdint.h>
#include "util/util.h"

typedef struct clpdd_idx {
    int ndim;
    int dims[4];
    uint8_t *data; /* dims[0]·…·dims[ndim−1] bytes */
    size_t count;  /* number of bytes in data */
} clpdd_idx;

int clpdd_idx_read(const char *path, clpdd_idx *out, clpdd_err *e);
/* decode an (already decompressed) buffer; the fuzz target's entry */
int clpdd_idx_parse(const uint8_t *buf, size_t len, const char *label, clpdd_idx *out, clpdd_err *e);
void clpdd_idx_free(clpdd_idx *x);

/* most bytes of data accepted (also the cap on gzip output) */
#define CLPDD_IDX_MAX_BYTES (1ull << 30)
/* raw or gzip bytes in memory; max_bytes caps the decompressed size (0 → CLPDD_IDX_MAX_BYTES) */
int clpdd_idx_decode(const uint8_t *buf, size_t len, size_t max_bytes, const char *label, clpdd_idx *out,
                     clpdd_err *e);

#endif
