/* safetensors reader and writer (see safetensors.h).
 *
 * Layout: [u64 LE N][N bytes of JSON header, space-padded][data section]. Tensor extents are
 * [begin, end) offsets into the data section. The reader validates everything it can from the
 * header before any data is touched:
 *   - N ≤ file size − 8 and N ≤ 100 MB (the reference library's limit);
 *   - the header is well-formed JSON (json.c), a top-level object of tensors plus an optional
 *     "__metadata__" object of string → string;
 *   - dtype is one we support, 0 ≤ ndim ≤ CLPDD_ST_MAX_DIMS, dims ≥ 0, numel·size fits;
 *   - end − begin = numel·dtype size, end ≤ data section length, no two extents overlap;
 *   - tensor names and metadata keys are unique and contain no NUL.
 * Data is read at read time (pread on the file, memcpy for in-memory buffers).
 * The host is assumed little-endian (as the format is). */
#define _GNU_SOURCE
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/json.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

#define ST_MAX_HEADER 100000000ull /* the reference implementation's limit */

struct clpdd_st_file {
    char *label;
    int fd;              /* -1 for an in-memory buffer */
    const uint8_t *mem;  /* whole file when in memory */
    uint64_t data_start; /* 8 + N */
    uint64_t data_len;
    int n, cap;
    clpdd_st_tensor *t;
    int n_meta;
    char **meta_k, **meta_v;
    int *slots; /* open-addressing name index: tensor index + 1, 0 = empty */
    size_t n_slots;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[CLPDD_DT_COUNT] = {
    [CLPDD_DT_F32] = {"F32", 4}, [CLPDD_DT_F16] = {"F16", 2}, [CLPDD_DT_BF16] = {"BF16", 2},
    [CLPDD_DT_F64] = {"F64", 8}, [CLPDD_DT_I32] = {"I32", 4}, [CLPDD_DT_I64] = {"I64", 8},
    [CLPDD_DT_U8] = {"U8", 1},
};

const char *clpdd_dtype_name(clpdd_dtype t) { return (unsigned)t < CLPDD_DT_COUNT ? dtypes[t].name : "?"; }
size_t clpdd_dtype_size(clpdd_dtype t) { return (unsigned)t < CLPDD_DT_COUNT ? dtypes[t].size : 0; }

/* ---- scalar conversions ---- */

float clpdd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else { /* subnormal m·2^−24: normalise */
            int sh = 0;
            while (!(m & 0x400)) m <<= 1, sh++;
            x = sign | ((uint32_t)(113 - sh) << 23) | ((m & 0x3ff) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13); /* inf, NaN (payload kept) */
    } else {
        x = sign | ((e + 112) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

float clpdd_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t clpdd_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff); /* quiet NaN */
    if (ax >= 0x47800000u) return sign | 0x7c00;                                 /* ≥ 2^16 → inf */
    if (ax < 0x33000000u) return sign;                                           /* < 2^−25 → 0 */
    int e = (int)(ax >> 23) - 127;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    int shift = e >= -14 ? 13 : 13 + (-14 - e); /* 13..24 */
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    if (e >= -14) return sign | (uint16_t)(((uint32_t)(e + 15) << 10) + (q - 0x400)); /* carry ok */
    return sign | (uint16_t)q; /* subnormal; q = 0x400 is the smallest normal */
}

uint16_t clpdd_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- helpers ---- */

/* a name fit for a message: at most ~80 bytes, control characters as '?' */
static const char *disp(const char *s, char buf[96]) {
    size_t i = 0;
    for (; s[i] && i < 80; i++) buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i]) memcpy(buf + i, "...", 3), i += 3;
    buf[i] = 0;
    return buf;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int64_t clpdd_st_numel(const clpdd_st_tensor *t) { return numel_of(t->ndim, t->shape); }

/* ---- name index ---- */

static void index_insert(clpdd_st_file *f, int idx) {
    size_t mask = f->n_slots - 1, h = (size_t)clpdd_hash_str(CLPDD_HASH_SEED, f->t[idx].name) & mask;
    while (f->slots[h]) h = (h + 1) & mask;
    f->slots[h] = idx + 1;
}

static int index_find(const clpdd_st_file *f, const char *name) {
    if (!f->n_slots) return -1;
    size_t mask = f->n_slots - 1, h = (size_t)clpdd_hash_str(CLPDD_HASH_SEED, name) & mask;
    while (f->slots[h]) {
        int i = f->slots[h] - 1;
        if (strcmp(f->t[i].name, name) == 0) return i;
        h = (h + 1) & mask;
    }
    return -1;
}

static void index_grow(clpdd_st_file *f) {
    if ((size_t)(f->n + 1) * 2 <= f->n_slots) return;
    size_t ns = f->n_slots ? f->n_slots * 2 : 64;
    while ((size_t)(f->n + 1) * 2 > ns) ns *= 2;
    free(f->slots);
    f->slots = clpdd_xcalloc(ns, sizeof *f->slots);
    f->n_slots = ns;
    for (int i = 0; i < f->n; i++) index_insert(f, i);
}

/* ---- header parsing ---- */

static int json_fail(const clpdd_st_file *f, const clpdd_json_rd *r, clpdd_err *e) {
    return clpdd_err_set(e, "%s: bad safetensors header JSON %s", f->label, r->err);
}

static int parse_metadata(clpdd_st_file *f, clpdd_json_rd *r, clpdd_err *e) {
    if (clpdd_json_peek(r) != CLPDD_JSON_OBJECT)
        return clpdd_err_set(e, "%s: \"__metadata__\" must be an object of strings, found %s", f->label,
                             clpdd_json_kind_name(clpdd_json_peek(r)));
    if (clpdd_json_obj_begin(r)) return json_fail(f, r, e);
    int n = 0, rc, cap = 0;
    char *k, *v, b1[96];
    size_t kl, vl;
    while ((rc = clpdd_json_obj_next(r, &n, &k, &kl)) == 1) {
        if (strlen(k) != kl) {
            free(k);
            return clpdd_err_set(e, "%s: a \"__metadata__\" key contains a NUL character", f->label);
        }
        for (int i = 0; i < f->n_meta; i++)
            if (strcmp(f->meta_k[i], k) == 0) {
                clpdd_err_set(e, "%s: duplicate \"__metadata__\" key '%s'", f->label, disp(k, b1));
                free(k);
                return -1;
            }
        if (clpdd_json_peek(r) != CLPDD_JSON_STRING) {
            clpdd_err_set(e, "%s: \"__metadata__\" value of '%s' must be a string, found %s", f->label, disp(k, b1),
                          clpdd_json_kind_name(clpdd_json_peek(r)));
            free(k);
            return -1;
        }
        if (clpdd_json_string(r, &v, &vl)) {
            free(k);
            return json_fail(f, r, e);
        }
        if (strlen(v) != vl) {
            clpdd_err_set(e, "%s: \"__metadata__\" value of '%s' contains a NUL character", f->label, disp(k, b1));
            free(k);
            free(v);
            return -1;
        }
        if (f->n_meta == cap) {
            cap = cap ? cap * 2 : 8;
            f->meta_k = realloc(f->meta_k, (size_t)cap * sizeof *f->meta_k);
            f->meta_v = realloc(f->meta_v, (size_t)cap * sizeof *f->meta_v);
            CLPDD_ASSERT(f->meta_k && f->meta_v);
        }
        f->meta_k[f->n_meta] = k;
        f->meta_v[f->n_meta] = v;
        f->n_meta++;
    }
    return rc < 0 ? json_fail(f, r, e) : 0;
}

/* a JSON array of non-negative integers, at most maxn of them */
static int parse_uint_array(clpdd_st_file *f, clpdd_json_rd *r, const char *tname, const char *field, int64_t *out,
                            int maxn, int *count, clpdd_err *e) {
    char b1[96];
    if (clpdd_json_peek(r) != CLPDD_JSON_ARRAY)
        return clpdd_err_set(e, "%s: tensor '%s': \"%s\" must be an array of integers, found %s", f->label,
                             disp(tname, b1), field, clpdd_json_kind_name(clpdd_json_peek(r)));
    if (clpdd_json_arr_begin(r)) return json_fail(f, r, e);
    int n = 0, rc;
    while ((rc = clpdd_json_arr_next(r, &n)) == 1) {
        if (n > maxn)
            return clpdd_err_set(e, "%s: tensor '%s': \"%s\" has more than %d entries", f->label, disp(tname, b1),
                                 field, maxn);
        if (clpdd_json_peek(r) != CLPDD_JSON_NUMBER)
            return clpdd_err_set(e, "%s: tensor '%s': \"%s\" entry %d must be an integer, found %s", f->label,
                                 disp(tname, b1), field, n - 1, clpdd_json_kind_name(clpdd_json_peek(r)));
        int64_t v;
        if (clpdd_json_int64(r, &v))
            return clpdd_err_set(e, "%s: tensor '%s': \"%s\" entry %d: %s", f->label, disp(tname, b1), field, n - 1,
                                 r->err);
        if (v < 0)
            return clpdd_err_set(e, "%s: tensor '%s': \"%s\" entry %d is negative (%lld)", f->label, disp(tname, b1),
                                 field, n - 1, (long long)v);
        out[n - 1] = v;
    }
    if (rc < 0) return json_fail(f, r, e);
    *count = n;
    return 0;
}

/* the "dtype" field's value: one of the dtypes' names */
static int parse_dtype(clpdd_st_file *f, clpdd_json_rd *r, const char *name, clpdd_dtype *dt, clpdd_err *e) {
    char b1[96];
    if (clpdd_json_peek(r) != CLPDD_JSON_STRING)
        return clpdd_err_set(e, "%s: tensor '%s': \"dtype\" must be a string, found %s", f->label, disp(name, b1),
                             clpdd_json_kind_name(clpdd_json_peek(r)));
    char *s;
    size_t sl;
    if (clpdd_json_string(r, &s, &sl)) return json_fail(f, r, e);
    int found = -1;
    for (int i = 0; i < CLPDD_DT_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0 && strlen(s) == sl) found = i;
    if (found < 0) {
        char b2[96];
        clpdd_err_set(e, "%s: tensor '%s': unsupported dtype '%s' (supported: F32, F16, BF16, F64, I32, I64, U8)",
                      f->label, disp(name, b1), disp(s, b2));
        free(s);
        return -1;
    }
    free(s);
    *dt = (clpdd_dtype)found;
    return 0;
}

/* the byte size of a dt tensor of that shape (*nbytes_out), computed without overflow, equal to
   the span of its data_offsets [begin, end], which lie inside the data section */
static int check_extent(const clpdd_st_file *f, const char *name, clpdd_dtype dt, int ndim, const int64_t *shape,
                        const int64_t *off, uint64_t *nbytes_out, clpdd_err *e) {
    char b1[96], sb[256];
    /* numel · size without overflow (dims are ≥ 0 here) */
    uint64_t numel = 1, size = dtypes[dt].size;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d && numel > (uint64_t)INT64_MAX / d) {
            fmt_shape(sb, sizeof sb, ndim, shape);
            return clpdd_err_set(e, "%s: tensor '%s': shape %s has too many elements (overflow)", f->label,
                                 disp(name, b1), sb);
        }
        numel *= d;
    }
    if (numel > (uint64_t)INT64_MAX / size) {
        fmt_shape(sb, sizeof sb, ndim, shape);
        return clpdd_err_set(e, "%s: tensor '%s': shape %s × %zu bytes overflows", f->label, disp(name, b1), sb,
                             (size_t)size);
    }
    uint64_t nbytes = numel * size, b = (uint64_t)off[0], en = (uint64_t)off[1];
    *nbytes_out = nbytes;
    if (en < b)
        return clpdd_err_set(e, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", f->label,
                             disp(name, b1), (unsigned long long)b, (unsigned long long)en);
    if (en - b != nbytes) {
        fmt_shape(sb, sizeof sb, ndim, shape);
        return clpdd_err_set(e,
                             "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes but %s shape %s needs "
                             "%llu",
                             f->label, disp(name, b1), (unsigned long long)b, (unsigned long long)en,
                             (unsigned long long)(en - b), dtypes[dt].name, sb, (unsigned long long)nbytes);
    }
    if (en > f->data_len)
        return clpdd_err_set(e,
                             "%s: tensor '%s': data_offsets [%llu, %llu] end past the data section (%llu bytes); "
                             "the file is truncated?",
                             f->label, disp(name, b1), (unsigned long long)b, (unsigned long long)en,
                             (unsigned long long)f->data_len);
    if (nbytes > SIZE_MAX)
        return clpdd_err_set(e, "%s: tensor '%s' too large for this host", f->label, disp(name, b1));
    return 0;
}

static int parse_tensor(clpdd_st_file *f, clpdd_json_rd *r, char *name, clpdd_err *e) {
    char b1[96];
    if (clpdd_json_peek(r) != CLPDD_JSON_OBJECT)
        return clpdd_err_set(e, "%s: tensor '%s': expected an object {dtype, shape, data_offsets}, found %s",
                             f->label, disp(name, b1), clpdd_json_kind_name(clpdd_json_peek(r)));
    if (clpdd_json_obj_begin(r)) return json_fail(f, r, e);
    int have_dtype = 0, have_shape = 0, have_off = 0, ndim = 0, noff = 0, n = 0, rc;
    clpdd_dtype dt = CLPDD_DT_F32;
    int64_t shape[CLPDD_ST_MAX_DIMS] = {0}, off[2] = {0, 0};
    char *k;
    size_t kl;
    while ((rc = clpdd_json_obj_next(r, &n, &k, &kl)) == 1) {
        int *seen = !strcmp(k, "dtype") ? &have_dtype
                    : !strcmp(k, "shape") ? &have_shape
                    : !strcmp(k, "data_offsets") ? &have_off
                                                 : NULL;
        if (seen && *seen) {
            clpdd_err_set(e, "%s: tensor '%s': duplicate field \"%s\"", f->label, disp(name, b1), k);
            free(k);
            return -1;
        }
        if (seen) *seen = 1;
        if (!strcmp(k, "dtype")) {
            free(k);
            if (parse_dtype(f, r, name, &dt, e)) return -1;
        } else if (!strcmp(k, "shape")) {
            free(k);
            if (parse_uint_array(f, r, name, "shape", shape, CLPDD_ST_MAX_DIMS, &ndim, e)) return -1;
        } else if (!strcmp(k, "data_offsets")) {
            free(k);
            if (parse_uint_array(f, r, name, "data_offsets", off, 2, &noff, e)) return -1;
            if (noff != 2)
                return clpdd_err_set(e, "%s: tensor '%s': \"data_offsets\" must be [begin, end], found %d entries",
                                     f->label, disp(name, b1), noff);
        } else {
            free(k); /* unknown fields are ignored, as the reference implementation does */
            if (clpdd_json_skip(r)) return json_fail(f, r, e);
        }
    }
    if (rc < 0) return json_fail(f, r, e);
    if (!have_dtype || !have_shape || !have_off)
        return clpdd_err_set(e, "%s: tensor '%s': missing \"%s\"", f->label, disp(name, b1),
                             !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    uint64_t nbytes = 0;
    if (check_extent(f, name, dt, ndim, shape, off, &nbytes, e)) return -1;
    uint64_t b = (uint64_t)off[0];
    if (f->n == INT_MAX) return clpdd_err_set(e, "%s: too many tensors", f->label);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->t = realloc(f->t, (size_t)f->cap * sizeof *f->t);
        CLPDD_ASSERT(f->t);
    }
    clpdd_st_tensor *t = &f->t[f->n];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof shape);
    t->offset = (size_t)b;
    t->nbytes = (size_t)nbytes;
    index_grow(f);
    index_insert(f, f->n);
    f->n++;
    return 0;
}

typedef struct {
    size_t begin, end;
    int idx;
} extent;

static int cmp_extent(const void *a, const void *b) {
    const extent *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int check_overlaps(clpdd_st_file *f, clpdd_err *e) {
    extent *ex = clpdd_xmalloc((size_t)f->n * sizeof *ex);
    int m = 0;
    for (int i = 0; i < f->n; i++)
        if (f->t[i].nbytes) ex[m++] = (extent){f->t[i].offset, f->t[i].offset + f->t[i].nbytes, i};
    qsort(ex, (size_t)m, sizeof *ex, cmp_extent);
    int rc = 0;
    for (int i = 1; i < m; i++) {
        if (ex[i].begin < ex[i - 1].end) {
            const clpdd_st_tensor *a = &f->t[ex[i - 1].idx], *b = &f->t[ex[i].idx];
            char b1[96], b2[96];
            rc = clpdd_err_set(e, "%s: tensor '%s' (bytes [%zu, %zu]) overlaps tensor '%s' (bytes [%zu, %zu])",
                               f->label, disp(b->name, b1), ex[i].begin, ex[i].end, disp(a->name, b2), ex[i - 1].begin,
                               ex[i - 1].end);
            break;
        }
    }
    free(ex);
    return rc;
}

static int parse_header(clpdd_st_file *f, const char *json, size_t len, clpdd_err *e) {
    clpdd_json_rd r;
    clpdd_json_init(&r, json, len);
    if (clpdd_json_peek(&r) != CLPDD_JSON_OBJECT)
        return clpdd_err_set(e, "%s: the safetensors header must be a JSON object, found %s; not a safetensors file?",
                             f->label, clpdd_json_kind_name(clpdd_json_peek(&r)));
    if (clpdd_json_obj_begin(&r)) return json_fail(f, &r, e);
    int n = 0, rc, have_meta = 0;
    char *k, b1[96];
    size_t kl;
    while ((rc = clpdd_json_obj_next(&r, &n, &k, &kl)) == 1) {
        if (strlen(k) != kl) {
            clpdd_err_set(e, "%s: tensor name '%s' contains a NUL character", f->label, disp(k, b1));
            free(k);
            return -1;
        }
        if (strcmp(k, "__metadata__") == 0) {
            free(k);
            if (have_meta) return clpdd_err_set(e, "%s: duplicate \"__metadata__\"", f->label);
            have_meta = 1;
            if (parse_metadata(f, &r, e)) return -1;
            continue;
        }
        if (index_find(f, k) >= 0) {
            clpdd_err_set(e, "%s: duplicate tensor name '%s'", f->label, disp(k, b1));
            free(k);
            return -1;
        }
        if (parse_tensor(f, &r, k, e)) {
            free(k);
            return -1;
        }
    }
    if (rc < 0 || clpdd_json_finish(&r)) return json_fail(f, &r, e);
    return check_overlaps(f, e);
}

static clpdd_st_file *new_file(const char *label) {
    clpdd_st_file *f = clpdd_xcalloc(1, sizeof *f);
    f->label = clpdd_xstrdup(label ? label : "(memory)");
    f->fd = -1;
    return f;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int check_header_len(const clpdd_st_file *f, uint64_t n, uint64_t size, clpdd_err *e) {
    if (n > ST_MAX_HEADER)
        return clpdd_err_set(e, "%s: header length %llu exceeds the 100 MB limit; not a safetensors file?", f->label,
                             (unsigned long long)n);
    if (n > size - 8)
        return clpdd_err_set(e, "%s: header length %llu runs past the end of the file (%llu bytes); the file is truncated?",
                             f->label, (unsigned long long)n, (unsigned long long)size);
    if (n < 2) return clpdd_err_set(e, "%s: header length %llu is too short for a JSON object", f->label, (unsigned long long)n);
    return 0;
}

int clpdd_st_open_memory(const uint8_t *buf, size_t len, const char *label, clpdd_st_file **out, clpdd_err *e) {
    *out = NULL;
    clpdd_st_file *f = new_file(label);
    f->mem = buf;
    if (len < 8) {
        clpdd_err_set(e, "%s: only %zu bytes, too short for the 8-byte header length; not a safetensors file?",
                      f->label, len);
        clpdd_st_close(f);
        return -1;
    }
    uint64_t n = le64(buf);
    if (check_header_len(f, n, len, e)) {
        clpdd_st_close(f);
        return -1;
    }
    f->data_start = 8 + n;
    f->data_len = len - f->data_start;
    if (parse_header(f, (const char *)buf + 8, (size_t)n, e)) {
        clpdd_st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

static int pread_all(int fd, void *dst, size_t len, uint64_t off, size_t *got) {
    uint8_t *p = dst;
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, p + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            *got = done;
            return -1;
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int clpdd_st_open(const char *path, clpdd_st_file **out, clpdd_err *e) {
    *out = NULL;
    struct stat st;
    int fd = clpdd_open_regular(path, &st, e);
    if (fd < 0) return -1;
    clpdd_st_file *f = new_file(path);
    f->fd = fd;
    uint8_t len8[8];
    size_t got;
    char *hdr = NULL;
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8) {
        clpdd_err_set(e, "%s: only %llu bytes, too short for the 8-byte header length; not a safetensors file?", path,
                      (unsigned long long)size);
        goto fail;
    }
    if (pread_all(fd, len8, 8, 0, &got) || got != 8) {
        clpdd_err_set(e, "%s: cannot read the header length: %s", path, got != 8 ? "short read" : strerror(errno));
        goto fail;
    }
    uint64_t n = le64(len8);
    if (check_header_len(f, n, size, e)) goto fail;
    hdr = clpdd_xmalloc((size_t)n);
    if (pread_all(fd, hdr, (size_t)n, 8, &got) || got != n) {
        clpdd_err_set(e, "%s: cannot read the %llu-byte header (got %zu bytes)", path, (unsigned long long)n, got);
        goto fail;
    }
    f->data_start = 8 + n;
    f->data_len = size - f->data_start;
    if (parse_header(f, hdr, (size_t)n, e)) goto fail;
    free(hdr);
    *out = f;
    return 0;
fail:
    free(hdr);
    clpdd_st_close(f);
    return -1;
}

void clpdd_st_close(clpdd_st_file *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    for (int i = 0; i < f->n_meta; i++) free(f->meta_k[i]), free(f->meta_v[i]);
    free(f->t);
    free(f->meta_k);
    free(f->meta_v);
    free(f->slots);
    free(f->label);
    free(f);
}

const char *clpdd_st_path(const clpdd_st_file *f) { return f->label; }
int clpdd_st_count(const clpdd_st_file *f) { return f->n; }
const clpdd_st_tensor *clpdd_st_at(const clpdd_st_file *f, int i) { return (i >= 0 && i < f->n) ? &f->t[i] : NULL; }

const clpdd_st_tensor *clpdd_st_find(const clpdd_st_file *f, const char *name) {
    int i = index_find(f, name);
    return i < 0 ? NULL : &f->t[i];
}

const char *clpdd_st_metadata(const clpdd_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_k[i], key) == 0) return f->meta_v[i];
    return NULL;
}

/* ---- reading data ---- */

static int owns(const clpdd_st_file *f, const clpdd_st_tensor *t) { return t >= f->t && t < f->t + f->n; }

/* bytes [off, off+len) of tensor t's extent */
static int read_range(clpdd_st_file *f, const clpdd_st_tensor *t, size_t off, size_t len, void *dst, clpdd_err *e) {
    uint64_t at = f->data_start + t->offset + off;
    if (f->fd < 0) {
        memcpy(dst, f->mem + at, len);
        return 0;
    }
    size_t got;
    char b1[96];
    if (pread_all(f->fd, dst, len, at, &got))
        return clpdd_err_set(e, "%s: tensor '%s': read failed at byte %llu: %s", f->label, disp(t->name, b1),
                             (unsigned long long)at, strerror(errno));
    if (got != len)
        return clpdd_err_set(e,
                             "%s: tensor '%s': short read (%zu of %zu bytes at byte %llu); the file shrank since it "
                             "was opened?",
                             f->label, disp(t->name, b1), got, len, (unsigned long long)at);
    return 0;
}

int clpdd_st_read_raw(clpdd_st_file *f, const clpdd_st_tensor *t, void *dst, clpdd_err *e) {
    CLPDD_ASSERT(owns(f, t));
    if (!t->nbytes) return 0;
    return read_range(f, t, 0, t->nbytes, dst, e);
}

static void convert(float *dst, const uint8_t *src, size_t n, clpdd_dtype dt) {
    switch (dt) {
    case CLPDD_DT_F32: memcpy(dst, src, n * 4); break;
    case CLPDD_DT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = clpdd_f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case CLPDD_DT_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = clpdd_bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case CLPDD_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case CLPDD_DT_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case CLPDD_DT_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case CLPDD_DT_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
        break;
    default: CLPDD_ASSERT(0);
    }
}

int clpdd_st_read_f32(clpdd_st_file *f, const clpdd_st_tensor *t, float *dst, clpdd_err *e) {
    CLPDD_ASSERT(owns(f, t));
    if (!t->nbytes) return 0;
    if (t->dtype == CLPDD_DT_F32) return read_range(f, t, 0, t->nbytes, dst, e);
    size_t es = dtypes[t->dtype].size, numel = t->nbytes / es;
    if (f->fd < 0) {
        convert(dst, f->mem + f->data_start + t->offset, numel, t->dtype);
        return 0;
    }
    enum { CHUNK = 1 << 16 }; /* elements per read */
    uint8_t *buf = clpdd_xmalloc(CHUNK * 8);
    for (size_t i = 0; i < numel; i += CHUNK) {
        size_t k = numel - i < CHUNK ? numel - i : CHUNK;
        if (read_range(f, t, i * es, k * es, buf, e)) {
            free(buf);
            return -1;
        }
        convert(dst + i, buf, k, t->dtype);
    }
    free(buf);
    return 0;
}

/* ---- writer ---- */

static int check_entries(const char *path, const clpdd_st_entry *en, int n, const char *const *mk,
                         const char *const *mv, int n_meta, size_t *nbytes, clpdd_err *e) {
    char b1[96], sb[256];
    for (int i = 0; i < n; i++) {
        const clpdd_st_entry *t = &en[i];
        if (!t->name || !*t->name) return clpdd_err_set(e, "%s: safetensors write: tensor %d has no name", path, i);
        if (!clpdd_json_utf8_valid(t->name, strlen(t->name)))
            return clpdd_err_set(e, "%s: safetensors write: tensor name '%s' is not valid UTF-8", path, disp(t->name, b1));
        if (!strcmp(t->name, "__metadata__"))
            return clpdd_err_set(e, "%s: safetensors write: \"__metadata__\" is reserved, not a tensor name", path);
        if ((unsigned)t->dtype >= CLPDD_DT_COUNT)
            return clpdd_err_set(e, "%s: safetensors write: tensor '%s' has bad dtype %d", path, disp(t->name, b1),
                                 (int)t->dtype);
        if (t->ndim < 0 || t->ndim > CLPDD_ST_MAX_DIMS)
            return clpdd_err_set(e, "%s: safetensors write: tensor '%s' has %d dims (0..%d allowed)", path,
                                 disp(t->name, b1), t->ndim, CLPDD_ST_MAX_DIMS);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            fmt_shape(sb, sizeof sb, t->ndim, t->shape);
            if (t->shape[d] < 0)
                return clpdd_err_set(e, "%s: safetensors write: tensor '%s' has a negative dim in shape %s", path,
                                     disp(t->name, b1), sb);
            if (t->shape[d] && numel > (uint64_t)INT64_MAX / (uint64_t)t->shape[d])
                return clpdd_err_set(e, "%s: safetensors write: tensor '%s' shape %s overflows", path,
                                     disp(t->name, b1), sb);
            numel *= (uint64_t)t->shape[d];
        }
        if (numel > SIZE_MAX / 8)
            return clpdd_err_set(e, "%s: safetensors write: tensor '%s' too large", path, disp(t->name, b1));
        nbytes[i] = (size_t)numel * dtypes[t->dtype].size;
        if (nbytes[i] && !t->data)
            return clpdd_err_set(e, "%s: safetensors write: tensor '%s' has no data", path, disp(t->name, b1));
        for (int j = 0; j < i; j++)
            if (!strcmp(en[j].name, t->name))
                return clpdd_err_set(e, "%s: safetensors write: duplicate tensor name '%s'", path, disp(t->name, b1));
    }
    for (int i = 0; i < n_meta; i++) {
        if (!mk[i] || !mv[i])
            return clpdd_err_set(e, "%s: safetensors write: metadata entry %d is NULL", path, i);
        if (!clpdd_json_utf8_valid(mk[i], strlen(mk[i])) || !clpdd_json_utf8_valid(mv[i], strlen(mv[i])))
            return clpdd_err_set(e, "%s: safetensors write: metadata '%s' is not valid UTF-8", path, disp(mk[i], b1));
        for (int j = 0; j < i; j++)
            if (!strcmp(mk[j], mk[i]))
                return clpdd_err_set(e, "%s: safetensors write: duplicate metadata key '%s'", path, disp(mk[i], b1));
    }
    return 0;
}

/* what clpdd_write_atomic streams: the 8-byte little-endian header length, the header, then
   every tensor's bytes in order */
typedef struct st_out {
    const char *header;
    size_t header_len;
    const clpdd_st_entry *entries;
    const size_t *nbytes;
    int n;
} st_out;

static int st_stream(FILE *f, void *ctx, clpdd_err *e) {
    const st_out *o = ctx;
    (void)e; /* write errors: the stream's error flag, reported by clpdd_write_atomic */
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)o->header_len >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(o->header, 1, o->header_len, f);
    for (int i = 0; i < o->n && !ferror(f); i++)
        if (o->nbytes[i]) fwrite(o->entries[i].data, 1, o->nbytes[i], f);
    return 0;
}

int clpdd_st_write(const char *path, const clpdd_st_entry *entries, int n, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta, clpdd_err *e) {
    CLPDD_ASSERT(n >= 0 && n_meta >= 0 && (n == 0 || entries));
    size_t *nbytes = clpdd_xcalloc((size_t)(n ? n : 1), sizeof *nbytes);
    if (check_entries(path, entries, n, meta_keys, meta_values, n_meta, nbytes, e)) {
        free(nbytes);
        return -1;
    }
    /* header: metadata first (as the reference library writes it), then tensors in order */
    clpdd_strbuf h = {0};
    clpdd_sb_put(&h, "{", 1);
    int first = 1;
    if (n_meta > 0) {
        clpdd_sb_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < n_meta; i++) {
            if (i) clpdd_sb_put(&h, ",", 1);
            clpdd_sb_json_str(&h, meta_keys[i]);
            clpdd_sb_put(&h, ":", 1);
            clpdd_sb_json_str(&h, meta_values[i]);
        }
        clpdd_sb_put(&h, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const clpdd_st_entry *t = &entries[i];
        if (!first) clpdd_sb_put(&h, ",", 1);
        first = 0;
        clpdd_sb_json_str(&h, t->name);
        clpdd_sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) clpdd_sb_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        clpdd_sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                        (unsigned long long)(off + nbytes[i]));
        off += nbytes[i];
    }
    clpdd_sb_put(&h, "}", 1);
    while (h.len % 8) clpdd_sb_put(&h, " ", 1); /* 8-byte aligned data section, space padding */

    st_out o = {h.s, h.len, entries, nbytes, n};
    int rc = clpdd_write_atomic(path, st_stream, &o, e);
    free(h.s);
    free(nbytes);
    return rc;
}

