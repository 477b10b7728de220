/* Pull-style JSON reader (see json.h). All reads are bounded by r->end; nothing here
 * recurses deeper than CLPDD_JSON_MAX_DEPTH. */
#include "io/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static int fail(clpdd_json_rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(clpdd_json_rd *r, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof r->err, "at byte %zu: %s", clpdd_json_offset(r), msg);
    return -1;
}

/* a printable rendering of the byte at p for messages */
static const char *show(const clpdd_json_rd *r, char buf[16]) {
    if (r->p >= r->end) return "end of input";
    unsigned char c = (unsigned char)*r->p;
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

void clpdd_json_init(clpdd_json_rd *r, const char *text, size_t len) {
    r->start = r->p = text;
    r->end = text + len;
    r->depth = 0;
    r->err[0] = 0;
}

size_t clpdd_json_offset(const clpdd_json_rd *r) { return (size_t)(r->p - r->start); }

static void skip_ws(clpdd_json_rd *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

clpdd_json_kind clpdd_json_peek(clpdd_json_rd *r) {
    skip_ws(r);
    if (r->p >= r->end) return CLPDD_JSON_END;
    switch (*r->p) {
    case '{': return CLPDD_JSON_OBJECT;
    case '[': return CLPDD_JSON_ARRAY;
    case '"': return CLPDD_JSON_STRING;
    case 't':
    case 'f': return CLPDD_JSON_BOOL;
    case 'n': return CLPDD_JSON_NULL;
    case '-': return CLPDD_JSON_NUMBER;
    default: return (*r->p >= '0' && *r->p <= '9') ? CLPDD_JSON_NUMBER : CLPDD_JSON_INVALID;
    }
}

const char *clpdd_json_kind_name(clpdd_json_kind k) {
    static const char *const names[] = {"end of input", "an object", "an array", "a string",
                                        "a number",     "a boolean", "null",     "an invalid character"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static int expect(clpdd_json_rd *r, char c, const char *what) {
    skip_ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return 0;
    }
    char buf[16];
    return fail(r, "expected '%c' %s, found %s", c, what, show(r, buf));
}

int clpdd_json_obj_begin(clpdd_json_rd *r) {
    if (r->depth >= CLPDD_JSON_MAX_DEPTH) return fail(r, "nested deeper than %d levels", CLPDD_JSON_MAX_DEPTH);
    if (expect(r, '{', "to open an object")) return -1;
    r->depth++;
    return 0;
}

int clpdd_json_arr_begin(clpdd_json_rd *r) {
    if (r->depth >= CLPDD_JSON_MAX_DEPTH) return fail(r, "nested deeper than %d levels", CLPDD_JSON_MAX_DEPTH);
    if (expect(r, '[', "to open an array")) return -1;
    r->depth++;
    return 0;
}

int clpdd_json_obj_next(clpdd_json_rd *r, int *n, char **key, size_t *klen) {
    char buf[16];
    *key = NULL;
    skip_ws(r);
    if (r->p >= r->end) return fail(r, "unterminated object (missing '}')");
    if (*r->p == '}') {
        r->p++;
        r->depth--;
        return 0;
    }
    if (*n > 0) {
        if (*r->p != ',') return fail(r, "expected ',' or '}' after an object member, found %s", show(r, buf));
        r->p++;
        skip_ws(r);
        if (r->p < r->end && *r->p == '}') return fail(r, "trailing ',' before '}'");
    }
    if (r->p >= r->end || *r->p != '"') return fail(r, "expected a string key, found %s", show(r, buf));
    if (clpdd_json_string(r, key, klen)) return -1;
    if (expect(r, ':', "after an object key")) {
        free(*key);
        *key = NULL;
        return -1;
    }
    (*n)++;
    return 1;
}

int clpdd_json_arr_next(clpdd_json_rd *r, int *n) {
    char buf[16];
    skip_ws(r);
    if (r->p >= r->end) return fail(r, "unterminated array (missing ']')");
    if (*r->p == ']') {
        r->p++;
        r->depth--;
        return 0;
    }
    if (*n > 0) {
        if (*r->p != ',') return fail(r, "expected ',' or ']' after an array element, found %s", show(r, buf));
        r->p++;
        skip_ws(r);
        if (r->p < r->end && *r->p == ']') return fail(r, "trailing ',' before ']'");
    }
    (*n)++;
    return 1;
}

static int hex4(clpdd_json_rd *r, const char *q, unsigned *v) {
    if (r->end - q < 4) return -1;
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        char c = q[i];
        x <<= 4;
        if (c >= '0' && c <= '9')
            x |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            x |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *v = x;
    return 0;
}

/* length of a valid UTF-8 sequence at q (1..4), 0 when invalid (overlong, surrogate, > U+10FFFF) */
static int utf8_len(const unsigned char *q, const unsigned char *end) {
    unsigned c = q[0];
    if (c < 0x80) return 1;
    int n;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (end - q < n) return 0;
    for (int i = 1; i < n; i++) {
        if ((q[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (q[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* the string body from s (after its opening quote) validated up to its closing quote, *close;
   *bound the decoded length's upper bound. 0, or fail() with r->p at the offending character */
static int string_scan(clpdd_json_rd *r, const char *s, const char **close, size_t *bound) {
    const char *q = s;
    size_t cap = 0;
    for (;;) {
        if (q >= r->end) {
            r->p = q;
            return fail(r, "unterminated string");
        }
        unsigned char c = (unsigned char)*q;
        if (c == '"') break;
        if (c < 0x20) {
            r->p = q;
            return fail(r, "raw control character 0x%02x in a string (must be escaped)", c);
        }
        if (c == '\\') {
            if (q + 1 >= r->end) {
                r->p = q;
                return fail(r, "unterminated escape in a string");
            }
            char x = q[1];
            if (x == 'u') {
                unsigned u;
                if (hex4(r, q + 2, &u)) {
                    r->p = q;
                    return fail(r, "bad \\u escape (need 4 hex digits)");
                }
                if (u >= 0xdc00 && u <= 0xdfff) {
                    r->p = q;
                    return fail(r, "lone low surrogate \\u%04x in a string", u);
                }
                if (u >= 0xd800 && u <= 0xdbff) {
                    unsigned lo;
                    if (q + 12 > r->end || q[6] != '\\' || q[7] != 'u' || hex4(r, q + 8, &lo) || lo < 0xdc00 ||
                        lo > 0xdfff) {
                        r->p = q;
                        return fail(r, "high surrogate \\u%04x not followed by a low surrogate", u);
                    }
                    q += 12;
                } else {
                    q += 6;
                }
            } else if (x == '"' || x == '\\' || x == '/' || x == 'b' || x == 'f' || x == 'n' || x == 'r' ||
                       x == 't') {
                q += 2;
            } else {
                r->p = q;
                return fail(r, "invalid escape '\\%c' in a string", (x >= 0x20 && x < 0x7f) ? x : '?');
            }
            cap += 4;
            continue;
        }
        int n = utf8_len((const unsigned char *)q, (const unsigned char *)r->end);
        if (n == 0) {
            r->p = q;
            return fail(r, "invalid UTF-8 in a string");
        }
        q += n;
        cap += (size_t)n;
    }
    *close = q;
    *bound = cap;
    return 0;
}

/* the validated body [s, close) decoded into o (escapes resolved, surrogate pairs joined,
   NUL-terminated); returns the decoded length */
static size_t string_decode(clpdd_json_rd *r, const char *s, const char *close, char *o) {
    size_t k = 0;
    for (const char *q = s; q < close;) {
        if (*q != '\\') {
            o[k++] = *q++;
            continue;
        }
        char x = q[1];
        switch (x) {
        case '"': o[k++] = '"'; q += 2; break;
        case '\\': o[k++] = '\\'; q += 2; break;
        case '/': o[k++] = '/'; q += 2; break;
        case 'b': o[k++] = '\b'; q += 2; break;
        case 'f': o[k++] = '\f'; q += 2; break;
        case 'n': o[k++] = '\n'; q += 2; break;
        case 'r': o[k++] = '\r'; q += 2; break;
        case 't': o[k++] = '\t'; q += 2; break;
        default: { /* 'u', validated above */
            unsigned u = 0, lo = 0;
            hex4(r, q + 2, &u);
            if (u >= 0xd800 && u <= 0xdbff) {
                hex4(r, q + 8, &lo);
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                q += 12;
            } else {
                q += 6;
            }
            k += put_utf8(o + k, u);
        }
        }
    }
    o[k] = 0;
    return k;
}

/* one pass to validate and find the end, a second to decode into an exact-size buffer
   (the decoded form is never longer than the source) */
int clpdd_json_string(clpdd_json_rd *r, char **out, size_t *len) {
    char buf[16];
    *out = NULL;
    skip_ws(r);
    if (r->p >= r->end || *r->p != '"') return fail(r, "expected a string, found %s", show(r, buf));
    const char *s = r->p + 1, *close = NULL;
    size_t cap = 0;
    if (string_scan(r, s, &close, &cap)) return -1;
    char *o = clpdd_xmalloc(cap + 1);
    size_t k = string_decode(r, s, close, o);
    r->p = close + 1;
    *out = o;
    *len = k;
    return 0;
}

/* validates the JSON number grammar at r->p; sets *is_int when there is no fraction/exponent */
static int scan_number(clpdd_json_rd *r, const char **endp, int *is_int) {
    const char *q = r->p;
    *is_int = 1;
    if (q < r->end && *q == '-') q++;
    if (q >= r->end || !(*q >= '0' && *q <= '9')) return fail(r, "malformed number");
    if (*q == '0') {
        q++;
        if (q < r->end && *q >= '0' && *q <= '9') return fail(r, "number with a leading zero");
    } else {
        while (q < r->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < r->end && *q == '.') {
        *is_int = 0;
        q++;
        if (q >= r->end || !(*q >= '0' && *q <= '9')) return fail(r, "malformed number (no digits after '.')");
        while (q < r->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        *is_int = 0;
        q++;
        if (q < r->end && (*q == '+' || *q == '-')) q++;
        if (q >= r->end || !(*q >= '0' && *q <= '9')) return fail(r, "malformed number (bad exponent)");
        while (q < r->end && *q >= '0' && *q <= '9') q++;
    }
    *endp = q;
    return 0;
}

int clpdd_json_int64(clpdd_json_rd *r, int64_t *v) {
    char buf[16];
    if (clpdd_json_peek(r) != CLPDD_JSON_NUMBER) return fail(r, "expected an integer, found %s", show(r, buf));
    const char *q;
    int is_int;
    if (scan_number(r, &q, &is_int)) return -1;
    if (!is_int) return fail(r, "expected an integer, found '%.*s'", (int)(q - r->p > 40 ? 40 : q - r->p), r->p);
    const char *d = r->p;
    int neg = 0;
    if (*d == '-') neg = 1, d++;
    uint64_t x = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; d < q; d++) {
        unsigned dig = (unsigned)(*d - '0');
        if (x > (lim - dig) / 10) return fail(r, "integer '%.*s' out of range", (int)(q - r->p > 40 ? 40 : q - r->p), r->p);
        x = x * 10 + dig;
    }
    *v = neg ? (int64_t)(0 - x) : (int64_t)x;
    r->p = q;
    return 0;
}

static int literal(clpdd_json_rd *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return fail(r, "invalid literal (expected '%s')", word);
    r->p += n;
    return 0;
}

int clpdd_json_skip(clpdd_json_rd *r) {
    char buf[16];
    int rc, n = 0;
    switch (clpdd_json_peek(r)) {
    case CLPDD_JSON_OBJECT: {
        if (clpdd_json_obj_begin(r)) return -1;
        char *k;
        size_t kl;
        while ((rc = clpdd_json_obj_next(r, &n, &k, &kl)) == 1) {
            free(k);
            if (clpdd_json_skip(r)) return -1;
        }
        return rc;
    }
    case CLPDD_JSON_ARRAY:
        if (clpdd_json_arr_begin(r)) return -1;
        while ((rc = clpdd_json_arr_next(r, &n)) == 1)
            if (clpdd_json_skip(r)) return -1;
        return rc;
    case CLPDD_JSON_STRING: {
        char *s;
        size_t l;
        if (clpdd_json_string(r, &s, &l)) return -1;
        free(s);
        return 0;
    }
    case CLPDD_JSON_NUMBER: {
        const char *q;
        int is_int;
        if (scan_number(r, &q, &is_int)) return -1;
        r->p = q;
        return 0;
    }
    case CLPDD_JSON_BOOL: return literal(r, *r->p == 't' ? "true" : "false");
    case CLPDD_JSON_NULL: return literal(r, "null");
    case CLPDD_JSON_END: return fail(r, "expected a value, found end of input");
    default: return fail(r, "expected a value, found %s", show(r, buf));
    }
}

int clpdd_json_finish(clpdd_json_rd *r) {
    char buf[16];
    skip_ws(r);
    if (r->p < r->end) return fail(r, "unexpected %s after the end of the JSON document", show(r, buf));
    return 0;
}

int clpdd_json_utf8_valid(const char *s, size_t n) {
    const unsigned char *q = (const unsigned char *)s, *end = q + n;
    while (q < end) {
        int k = utf8_len(q, end);
        if (k == 0) return 0;
        q += k;
    }
    return 1;
}
