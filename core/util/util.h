/* clpdd core utilities: error messages, checked allocation, files, hashing.
 * Two error levels: CLPDD_ASSERT for programming mistakes (aborts with
 * file:line); a clpdd_err message + non-zero status for anything a user can cause. */
#ifndef CLPDD_UTIL_H
#define CLPDD_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct clpdd_err {
    char msg[2048];
} clpdd_err;

/* printf-style; returns -1 so `return clpdd_err_set(e, ...)` reads naturally. e may be NULL. */
int clpdd_err_set(clpdd_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CLPDD_ASSERT(cond)                                                                   \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "clpdd: internal error: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

void *clpdd_xmalloc(size_t bytes);  /* aborts on exhaustion (host bookkeeping only) */
void *clpdd_xcalloc(size_t n, size_t size);
char *clpdd_xstrdup(const char *s);

/* The one way a file is opened for reading: open without blocking (a FIFO would wait forever
   for a writer), fstat, and refuse anything but a regular file, naming what it found ("is a
   directory", "is a FIFO (named pipe)", ...), so that a reader never sizes a directory or waits
   on a pipe. Returns the descriptor (blocking again, close-on-exec) with *st filled (st may be
   NULL), or -1 + "<path>: ..." in e. */
struct stat;
int clpdd_open_regular(const char *path, struct stat *st, clpdd_err *e);
/* what a file of this st_mode is, for messages: "a directory", "a FIFO (named pipe)", ... */
const char *clpdd_file_kind(unsigned mode);
/* whole file into memory (NUL-terminated for convenience), through clpdd_open_regular; -1 +
   message on failure */
int clpdd_read_file(const char *path, uint8_t **data, size_t *len, clpdd_err *e);
/* The one atomic writer: fill(f, ctx, e) writes the contents to f, a stream on
   path.tmp.<pid>; then fflush, fsync, fclose and rename onto path. fill returns 0, or -1 with
   e set; a write error on f (its error flag) is reported here. On any failure the temporary is
   removed and path is left as it was: no half-written file under the real name. */
typedef int (*clpdd_write_fn)(FILE *f, void *ctx, clpdd_err *e);
int clpdd_write_atomic(const char *path, clpdd_write_fn fill, void *ctx, clpdd_err *e);
/* all of data[0..len) to path through clpdd_write_atomic */
int clpdd_write_file_atomic(const char *path, const void *data, size_t len, clpdd_err *e);
/* mkdir -p */
int clpdd_mkdirs(const char *path, clpdd_err *e);

/* FNV-1a 64-bit, chainable: h = clpdd_hash64(h, data, len), start with CLPDD_HASH_SEED */
#define CLPDD_HASH_SEED 0xcbf29ce484222325ULL
uint64_t clpdd_hash64(uint64_t h, const void *data, size_t len);
uint64_t clpdd_hash_str(uint64_t h, const char *s);

/* a growing string */
typedef struct clpdd_strbuf {
    char *s;
    size_t len, cap;
} clpdd_strbuf;
void clpdd_sb_printf(clpdd_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* n bytes of s (may hold NULs); b->s stays NUL-terminated */
void clpdd_sb_put(clpdd_strbuf *b, const char *s, size_t n);
/* JSON string literal of s (quoted, escaped) */
void clpdd_sb_json_str(clpdd_strbuf *b, const char *s);

double clpdd_now(void);             /* monotonic seconds */
/* the median of v[0..n) (sorts v in place); NaN when n ≤ 0 */
double clpdd_median(double *v, int n);
size_t clpdd_peak_rss_bytes(void);  /* VmHWM of this process */
void clpdd_reset_peak_rss(void);    /* VmHWM back to the current RSS: a run's peak, not its process's (sweeps) */

/* Prefix e->msg safely: e->msg = <fmt ...> + old e->msg. Formatting e->msg into itself
   (clpdd_err_set(e, "step %d: %s", step, e->msg)) is undefined behaviour; use this instead.
   Returns -1 like clpdd_err_set; e may be NULL. */
int clpdd_err_prefix(clpdd_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s with control bytes (< 0x20, 0x7f) and backslashes escaped (\n, \t, \x1b, \\) so that a
   key, value or path from a hostile file never reaches the terminal raw; truncated with "..."
   to fit n bytes (n >= 4). Returns out, so it can be passed straight to printf. */
const char *clpdd_escape(const char *s, char *out, size_t n);

#endif
