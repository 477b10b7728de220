/* safetensors reader and writer (https://github.com/huggingface/safetensors format):
 * 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
 * "__metadata__": {str: str}}, then the data. Everything is bounds-checked: a truncated or
 * corrupt file gives an error naming the file and what is wrong, never a crash. */
#ifndef CLPDD_IO_SAFETENSORS_H
#define CLPDD_IO_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "util/util.h"

typedef enum {
    CLPDD_DT_F32 = 0,
    CLPDD_DT_F16,
    CLPDD_DT_BF16,
    CLPDD_DT_F64,
    CLPDD_DT_I32,
    CLPDD_DT_I64,
    CLPDD_DT_U8,
    CLPDD_DT_COUNT
} clpdd_dtype;

#define CLPDD_ST_MAX_DIMS 8

typedef struct clpdd_st_tensor {
    char *name;
    clpdd_dtype dtype;
    int ndim;
    int64_t shape[CLPDD_ST_MAX_DIMS];
    size_t offset; /* from the start of the data section */
    size_t nbytes;
} clpdd_st_tensor;

typedef struct clpdd_st_file clpdd_st_file;

const char *clpdd_dtype_name(clpdd_dtype t);
size_t clpdd_dtype_size(clpdd_dtype t);

/* open and validate header (tensor extents inside the file, no overlaps past the end,
   shapes consistent with byte counts); the data is read lazily */
int clpdd_st_open(const char *path, clpdd_st_file **out, clpdd_err *e);
/* the same over a buffer in memory (the fuzz target's entry); the buffer must outlive f */
int clpdd_st_open_memory(const uint8_t *buf, size_t len, const char *label, clpdd_st_file **out, clpdd_err *e);
void clpdd_st_close(clpdd_st_file *f);
const char *clpdd_st_path(const clpdd_st_file *f);
int clpdd_st_count(const clpdd_st_file *f);
const clpdd_st_tensor *clpdd_st_at(const clpdd_st_file *f, int i);
const clpdd_st_tensor *clpdd_st_find(const clpdd_st_file *f, const char *name); /* NULL if absent */
/* value of a "__metadata__" entry or NULL */
const char *clpdd_st_metadata(const clpdd_st_file *f, const char *key);
/* tensor → float32 host buffer of numel floats (F32/F16/BF16/F64/I32/I64/U8 converted) */
int clpdd_st_read_f32(clpdd_st_file *f, const clpdd_st_tensor *t, float *dst, clpdd_err *e);
/* tensor's raw bytes (t->nbytes) */
int clpdd_st_read_raw(clpdd_st_file *f, const clpdd_st_tensor *t, void *dst, clpdd_err *e);
int64_t clpdd_st_numel(const clpdd_st_tensor *t);

/* writer: tensors in the order given; metadata as key/value string pairs (may be 0);
   written atomically (temporary file + rename) */
typedef struct clpdd_st_entry {
    const char *name;
    clpdd_dtype dtype;
    int ndim;
    int64_t shape[CLPDD_ST_MAX_DIMS];
    const void *data; /* host, little-endian */
} clpdd_st_entry;

int clpdd_st_write(const char *path, const clpdd_st_entry *entries, int n, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta, clpdd_err *e);

/* scalar conversions (round to nearest even; NaN stays NaN, overflow → ±inf, subnormals kept) */
float clpdd_f16_to_f32(uint16_t h);
float clpdd_bf16_to_f32(uint16_t h);
uint16_t clpdd_f32_to_f16(float f);
uint16_t clpdd_f32_to_bf16(float f);

#endif
