/* A small pull-style JSON reader for untrusted input (the safetensors header): the caller
 * walks the document with begin/next calls and reads leaves as it goes, so nothing is built
 * that the caller doesn't keep. Strict RFC 8259: no trailing commas, no comments, strings
 * must be valid UTF-8 without raw control characters, \u escapes with paired surrogates,
 * nesting limited to CLPDD_JSON_MAX_DEPTH. Every error leaves a message in r->err naming the
 * byte offset ("at byte 17: expected ':' after an object key"). */
#ifndef CLPDD_IO_JSON_H
#define CLPDD_IO_JSON_H
#include <stddef.h>
#include <stdint.h>

#define CLPDD_JSON_MAX_DEPTH 64

typedef struct clpdd_json_rd {
    const char *start, *p, *end;
    int depth;     /* open objects/arrays (for skipping) */
    char err[256]; /* set when a call returns -1 */
} clpdd_json_rd;

typedef enum {
    CLPDD_JSON_END = 0, /* nothing but whitespace left */
    CLPDD_JSON_OBJECT,
    CLPDD_JSON_ARRAY,
    CLPDD_JSON_STRING,
    CLPDD_JSON_NUMBER,
    CLPDD_JSON_BOOL,
    CLPDD_JSON_NULL,
    CLPDD_JSON_INVALID /* a character that can't start a value */
} clpdd_json_kind;

void clpdd_json_init(clpdd_json_rd *r, const char *text, size_t len);
/* kind of the next value (skips whitespace, consumes nothing) */
clpdd_json_kind clpdd_json_peek(clpdd_json_rd *r);
const char *clpdd_json_kind_name(clpdd_json_kind k);

/* objects: `int n = 0; while ((rc = clpdd_json_obj_next(r, &n, &key, &klen)) == 1) {read value}`
   obj_begin consumes '{'; obj_next consumes the separator, the key (malloc'd, NUL-terminated,
   *klen bytes, may contain NULs) and ':' and returns 1, or consumes '}' and returns 0 */
int clpdd_json_obj_begin(clpdd_json_rd *r);
int clpdd_json_obj_next(clpdd_json_rd *r, int *n, char **key, size_t *klen);
/* arrays: the same shape; arr_next returns 1 when a value follows, 0 after ']' */
int clpdd_json_arr_begin(clpdd_json_rd *r);
int clpdd_json_arr_next(clpdd_json_rd *r, int *n);

/* a string value, decoded to UTF-8 (malloc'd, NUL-terminated, *len bytes) */
int clpdd_json_string(clpdd_json_rd *r, char **out, size_t *len);
/* an integer literal: -1 with a message for fractions, exponents, or out of int64 range */
int clpdd_json_int64(clpdd_json_rd *r, int64_t *v);
/* any value, validated and discarded */
int clpdd_json_skip(clpdd_json_rd *r);
/* 0 when only whitespace remains, else -1 */
int clpdd_json_finish(clpdd_json_rd *r);
size_t clpdd_json_offset(const clpdd_json_rd *r);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF) */
int clpdd_json_utf8_valid(const char *s, size_t n);

#endif
