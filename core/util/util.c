#define _GNU_SOURCE
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

int clpdd_err_set(clpdd_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void *clpdd_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "clpdd: out of host memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

void *clpdd_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "clpdd: out of host memory (%zu x %zu bytes)\n", n, size);
        abort();
    }
    return p;
}

char *clpdd_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = clpdd_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

const char *clpdd_file_kind(unsigned mode) {
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "not a regular file";
    }
}

int clpdd_open_regular(const char *path, struct stat *st, clpdd_err *e) {
    struct stat tmp;
    if (!st) st = &tmp;
    char shown[1024];
    clpdd_escape(path, shown, sizeof shown);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return clpdd_err_set(e, "%s: cannot open: %s", shown, strerror(errno));
    if (fstat(fd, st) != 0) {
        int err = errno;
        close(fd);
        return clpdd_err_set(e, "%s: cannot stat: %s", shown, strerror(err));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return clpdd_err_set(e, "%s: is %s, not a regular file", shown, clpdd_file_kind(st->st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

int clpdd_read_file(const char *path, uint8_t **data, size_t *len, clpdd_err *e) {
    struct stat st;
    int fd = clpdd_open_regular(path, &st, e);
    if (fd < 0) return -1;
    size_t sz = (size_t)st.st_size, got = 0;
    uint8_t *buf = clpdd_xmalloc(sz + 1);
    int err = 0;
    while (got < sz) {
        ssize_t r = read(fd, buf + got, sz - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != sz) {
        free(buf);
        return clpdd_err_set(e, "%s: short read (%zu of %zu bytes)%s%s", path, got, sz, err ? ": " : "",
                             err ? strerror(err) : "");
    }
    buf[sz] = 0;
    *data = buf;
    *len = sz;
    return 0;
}

int clpdd_write_atomic(const char *path, clpdd_write_fn fill, void *ctx, clpdd_err *e) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return clpdd_err_set(e, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return clpdd_err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return clpdd_err_set(e, "%s: cannot create: %s", tmp, strerror(err));
    }
    errno = 0;
    if (fill(f, ctx, e) != 0) {
        fclose(f);
        unlink(tmp);
        return -1; /* fill set the message */
    }
    if (fflush(f) != 0 || ferror(f)) {
        int err = errno ? errno : EIO;
        fclose(f);
        unlink(tmp);
        return clpdd_err_set(e, "%s: write failed: %s", tmp, strerror(err));
    }
    if (fsync(fileno(f)) != 0) {
        int err = errno;
        fclose(f);
        unlink(tmp);
        return clpdd_err_set(e, "%s: cannot flush: %s", tmp, strerror(err));
    }
    if (fclose(f) != 0) {
        int err = errno;
        unlink(tmp);
        return clpdd_err_set(e, "%s: cannot flush: %s", tmp, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return clpdd_err_set(e, "%s: cannot rename into place: %s", path, strerror(err));
    }
    return 0;
}

typedef struct bytes_ctx {
    const void *data;
    size_t len;
} bytes_ctx;

static int write_bytes(FILE *f, void *ctx, clpdd_err *e) {
    const bytes_ctx *b = ctx;
    (void)e; /* a short write sets the stream's error flag, which clpdd_write_atomic reports */
    if (b->len) fwrite(b->data, 1, b->len, f);
    return 0;
}

int clpdd_write_file_atomic(const char *path, const void *data, size_t len, clpdd_err *e) {
    bytes_ctx b = {data, len};
    return clpdd_write_atomic(path, write_bytes, &b, e);
}

int clpdd_mkdirs(const char *path, clpdd_err *e) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return clpdd_err_set(e, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return clpdd_err_set(e, "%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return clpdd_err_set(e, "%s: not a directory", path);
    return 0;
}

uint64_t clpdd_hash64(uint64_t h, const void *data, size_t len) {
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t clpdd_hash_str(uint64_t h, const char *s) {
    /* include the terminator so ("ab","c") and ("a","bc") differ */
    return clpdd_hash64(h, s, strlen(s) + 1);
}

void clpdd_sb_printf(clpdd_strbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n >= 0 && b->s && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        b->s = realloc(b->s, b->cap);
        CLPDD_ASSERT(b->s);
    }
}

void clpdd_sb_put(clpdd_strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (b->len + n + 1 > c) c *= 2;
        b->s = realloc(b->s, c);
        CLPDD_ASSERT(b->s);
        b->cap = c;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void clpdd_sb_json_str(clpdd_strbuf *b, const char *s) {
    clpdd_sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') clpdd_sb_printf(b, "\\%c", *p);
        else if (*p < 0x20) clpdd_sb_printf(b, "\\u%04x", *p);
        else clpdd_sb_printf(b, "%c", *p);
    }
    clpdd_sb_printf(b, "\"");
}

double clpdd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void clpdd_reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w"); /* "5" resets VmHWM to the current RSS (Linux >= 4.0) */
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

size_t clpdd_peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = (size_t)strtoull(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

int clpdd_err_prefix(clpdd_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof e->msg) snprintf(e->msg + n, sizeof e->msg - (size_t)n, "%s", old);
    return -1;
}

const char *clpdd_escape(const char *s, char *out, size_t n) {
    if (!out || n == 0) return "";
    if (!s) s = "(null)";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[5];
        size_t k;
        if (*p == '\\') k = (size_t)snprintf(tmp, sizeof tmp, "\\\\");
        else if (*p == '\n') k = (size_t)snprintf(tmp, sizeof tmp, "\\n");
        else if (*p == '\t') k = (size_t)snprintf(tmp, sizeof tmp, "\\t");
        else if (*p == '\r') k = (size_t)snprintf(tmp, sizeof tmp, "\\r");
        else if (*p < 0x20 || *p == 0x7f) k = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", *p);
        else tmp[0] = (char)*p, tmp[1] = 0, k = 1;
        if (o + k + 1 > n) {
            /* no room: end with "..." when it fits */
            size_t cut = n >= 4 ? n - 4 : 0;
            if (o > cut) o = cut;
            if (n >= 4) memcpy(out + o, "...", 3), o += 3;
            break;
        }
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o < n ? o : n - 1] = 0;
    return out;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double clpdd_median(double *v, int n) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
