/* IDX reader (see idx.h). Format: 0x00 0x00 <type> <ndim>, ndim big-endian u32 dims, then
 * exactly dims[0]·…·dims[ndim−1] elements. Gzip input is inflated with zlib; once the IDX
 * header has come out of the stream the exact decompressed size is known, so the output buffer
 * is sized once and a stream that inflates past it is stopped (no gzip bomb can make us
 * allocate more than the header promises, and never more than CLPDD_IDX_MAX_BYTES). */
#include "io/idx.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_CHUNK (1u << 20)

static const char *type_name(uint8_t t) {
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0b: return "int16";
    case 0x0c: return "int32";
    case 0x0d: return "float32";
    case 0x0e: return "float64";
    default: return "unknown";
    }
}

/* validates the 4 + 4·ndim header bytes; *hdr = header size, *payload = expected data bytes.
   Returns 1 when more bytes are needed to decide, 0 when valid, -1 (+ message) when not. */
static int check_header(const uint8_t *b, size_t len, const char *label, size_t *hdr, uint64_t *payload,
                        clpdd_err *e) {
    if (len < 4) return 1;
    if (b[0] != 0 || b[1] != 0)
        return clpdd_err_set(e, "%s: bad IDX magic %02x %02x %02x %02x (expected 00 00 08 <ndim>); not an IDX file?",
                             label, b[0], b[1], b[2], b[3]);
    if (b[2] != 0x08)
        return clpdd_err_set(e, "%s: IDX data type 0x%02x (%s) is not supported; only 0x08 (unsigned byte)", label,
                             b[2], type_name(b[2]));
    int ndim = b[3];
    if (ndim < 1 || ndim > 4) return clpdd_err_set(e, "%s: IDX has %d dimensions (1..4 supported)", label, ndim);
    size_t h = 4 + 4 * (size_t)ndim;
    if (len < h) return 1;
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = b + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d > INT_MAX) return clpdd_err_set(e, "%s: IDX dimension %d is %u, too large", label, i, d);
        n *= d; /* ≤ 4 factors < 2^31: the product saturates below by the check that follows */
        if (n > CLPDD_IDX_MAX_BYTES)
            return clpdd_err_set(e, "%s: IDX dimensions declare more than %llu bytes of data; corrupt header?", label,
                                 (unsigned long long)CLPDD_IDX_MAX_BYTES);
    }
    *hdr = h;
    *payload = n;
    return 0;
}

/* owned: buf is malloc'd by us and may be reused for the output (payload moved to the front) */
static int parse(uint8_t *owned, const uint8_t *buf, size_t len, const char *label, clpdd_idx *out, clpdd_err *e) {
    memset(out, 0, sizeof *out);
    size_t hdr = 0;
    uint64_t payload = 0;
    int rc = check_header(buf, len, label, &hdr, &payload, e);
    if (rc < 0) return -1;
    if (rc > 0)
        return clpdd_err_set(e, "%s: only %zu bytes, too short for an IDX header%s", label, len,
                             len >= 4 ? " (the dimensions are cut off)" : "");
    if (len - hdr < payload)
        return clpdd_err_set(e, "%s: IDX data truncated: the dimensions need %llu bytes after the %zu-byte header, got %zu",
                             label, (unsigned long long)payload, hdr, len - hdr);
    if (len - hdr > payload)
        return clpdd_err_set(e, "%s: %zu bytes of trailing data after the IDX payload (%llu bytes expected, got %zu)",
                             label, (size_t)(len - hdr - payload), (unsigned long long)payload, len - hdr);
    out->ndim = buf[3];
    for (int i = 0; i < out->ndim; i++) {
        const uint8_t *p = buf + 4 + 4 * i;
        out->dims[i] = (int)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    }
    out->count = (size_t)payload;
    if (owned) {
        memmove(owned, owned + hdr, out->count);
        uint8_t *shrunk = realloc(owned, out->count ? out->count : 1);
        out->data = shrunk ? shrunk : owned;
    } else {
        out->data = clpdd_xmalloc(out->count);
        memcpy(out->data, buf + hdr, out->count);
    }
    return 0;
}

int clpdd_idx_parse(const uint8_t *buf, size_t len, const char *label, clpdd_idx *out, clpdd_err *e) {
    return parse(NULL, buf, len, label ? label : "(memory)", out, e);
}

/* inflate a gzip stream (concatenated members allowed). The output is capped by the IDX header
   as soon as it is known, and by max_bytes before that. On success *out is malloc'd. */
static int gunzip(const uint8_t *in, size_t inlen, size_t max_bytes, const char *label, uint8_t **out,
                  size_t *outlen, clpdd_err *e) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return clpdd_err_set(e, "%s: zlib inflateInit failed", label);
    /* limit: the most bytes we accept (max_bytes, then the exact IDX size once the header is
       out); the buffer never grows past limit + 1, and reaching limit + 1 means "too long" */
    size_t cap = 1 << 16, n = 0, consumed = 0, limit = max_bytes;
    int known = 0;
    uint8_t *o = clpdd_xmalloc(cap);
    for (;;) {
        if (n > limit) {
            if (known)
                clpdd_err_set(e, "%s: gzip data inflates past the %zu bytes the IDX header declares (trailing data)",
                              label, limit);
            else
                clpdd_err_set(e, "%s: gzip data inflates past the %zu-byte limit", label, max_bytes);
            goto fail;
        }
        if (n == cap) {
            size_t nc = cap > (limit + 1) / 2 ? limit + 1 : cap * 2;
            o = realloc(o, nc);
            CLPDD_ASSERT(o);
            cap = nc;
        }
        size_t left_in = inlen - consumed, room = cap - n;
        zs.next_in = (Bytef *)in + consumed;
        zs.avail_in = (uInt)(left_in > IDX_CHUNK ? IDX_CHUNK : left_in);
        zs.next_out = o + n;
        zs.avail_out = (uInt)(room > IDX_CHUNK ? IDX_CHUNK : room);
        size_t before_in = zs.avail_in, before_out = zs.avail_out;
        int rc = inflate(&zs, Z_NO_FLUSH);
        consumed += before_in - zs.avail_in;
        n += before_out - zs.avail_out;
        if (rc == Z_STREAM_END) {
            /* another gzip member may follow (gunzip accepts that); anything else is an error */
            if (consumed == inlen) break;
            if (inlen - consumed >= 2 && in[consumed] == 0x1f && in[consumed + 1] == 0x8b) {
                inflateReset(&zs);
            } else {
                clpdd_err_set(e, "%s: %zu bytes of trailing garbage after the gzip stream", label, inlen - consumed);
                goto fail;
            }
        } else if (rc == Z_BUF_ERROR && consumed == inlen && zs.avail_out > 0) {
            clpdd_err_set(e,
                          "%s: gzip stream truncated (input ended after %zu compressed bytes, %zu bytes inflated); "
                          "the file is incomplete?",
                          label, inlen, n);
            goto fail;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            clpdd_err_set(e, "%s: corrupt gzip data near compressed byte %zu: %s", label, consumed,
                          zs.msg ? zs.msg : "inflate error");
            goto fail;
        }
        if (!known) {
            size_t hdr;
            uint64_t payload;
            int h = check_header(o, n, label, &hdr, &payload, e);
            if (h < 0) goto fail; /* not IDX: stop early with the header's message */
            if (h == 0) {
                if (hdr + payload > max_bytes) {
                    clpdd_err_set(e, "%s: the IDX header declares %llu bytes, more than the %zu-byte limit", label,
                                  (unsigned long long)(hdr + payload), max_bytes);
                    goto fail;
                }
                known = 1;
                limit = hdr + (size_t)payload;
                if (cap < limit + 1) { /* size the buffer once */
                    o = realloc(o, limit + 1);
                    CLPDD_ASSERT(o);
                    cap = limit + 1;
                }
            }
        }
    }
    inflateEnd(&zs);
    *out = o;
    *outlen = n;
    return 0;
fail:
    inflateEnd(&zs);
    free(o);
    return -1;
}

int clpdd_idx_decode(const uint8_t *buf, size_t len, size_t max_bytes, const char *label, clpdd_idx *out,
                     clpdd_err *e) {
    memset(out, 0, sizeof *out);
    if (!label) label = "(memory)";
    if (!max_bytes || max_bytes > CLPDD_IDX_MAX_BYTES) max_bytes = CLPDD_IDX_MAX_BYTES;
    if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        uint8_t *raw = NULL;
        size_t rawlen = 0;
        if (gunzip(buf, len, max_bytes, label, &raw, &rawlen, e)) return -1;
        if (parse(raw, raw, rawlen, label, out, e)) {
            free(raw);
            return -1;
        }
        return 0;
    }
    return parse(NULL, buf, len, label, out, e);
}

int clpdd_idx_read(const char *path, clpdd_idx *out, clpdd_err *e) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    if (clpdd_read_file(path, &buf, &len, e)) return -1;
    int rc;
    if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        rc = clpdd_idx_decode(buf, len, 0, path, out, e);
        free(buf);
    } else {
        rc = parse(buf, buf, len, path, out, e); /* reuses buf for the data */
        if (rc) free(buf);
    }
    return rc;
}

void clpdd_idx_free(clpdd_idx *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
