/* Content identity of data files (see file_id.h). */
#define _GNU_SOURCE
#include "data/file_id.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

uint64_t clpdd_xxh3(const void *data, size_t len) { return (uint64_t)XXH3_64bits(data, len); }

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

/* the stamp a remembered hash is valid for */
static void stamp(const struct stat *st, char *out, size_t n) {
    snprintf(out, n, "%lld %" PRId64 " %" PRId64 " %llu %llu", (long long)st->st_size, ns(st->st_mtim), ns(st->st_ctim),
             (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
}

static int hash_fd(int fd, uint64_t *out) {
    XXH3_state_t *s = XXH3_createState();
    CLPDD_ASSERT(s);
    XXH3_64bits_reset(s);
    static __thread uint8_t buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0) break;
        XXH3_64bits_update(s, buf, (size_t)got);
    }
    *out = (uint64_t)XXH3_64bits_digest(s);
    XXH3_freeState(s);
    return rc;
}

int clpdd_file_content_hash(const char *path, const char *cache_dir, uint64_t *out, clpdd_err *e) {
    char shown[1024], real[PATH_MAX];
    clpdd_escape(path, shown, sizeof shown);
    struct stat before;
    int fd = clpdd_open_regular(path, &before, e);
    if (fd < 0) return -1;
    if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
    /* the index entry: <cache_dir>/file-ids/<xxh3 of the real path>.txt */
    char entry[4096] = "", want[16384], key[256];
    stamp(&before, key, sizeof key);
    char *esc = clpdd_xmalloc(4 * sizeof real + 1);
    clpdd_escape(real, esc, 4 * sizeof real + 1);
    snprintf(want, sizeof want, "clpdd file id v1\n%s\n%s ", esc, key);
    free(esc);
    if (cache_dir && *cache_dir)
        snprintf(entry, sizeof entry, "%s/file-ids/%016llx.txt", cache_dir, (unsigned long long)clpdd_xxh3(real, strlen(real)));
    if (*entry) {
        uint8_t *data;
        size_t len;
        clpdd_err ignore;
        if (clpdd_read_file(entry, &data, &len, &ignore) == 0) {
            size_t wl = strlen(want);
            unsigned long long h;
            char tail;
            int hit = len > wl && len < sizeof want && memcmp(data, want, wl) == 0 &&
                      sscanf((const char *)data + wl, "%16llx%c", &h, &tail) == 2 && tail == '\n';
            free(data);
            if (hit) {
                close(fd);
                *out = h;
                return 0;
            }
        }
    }
    uint64_t h;
    int rc = hash_fd(fd, &h);
    struct stat after;
    int same = fstat(fd, &after) == 0 && after.st_size == before.st_size && ns(after.st_mtim) == ns(before.st_mtim) &&
               ns(after.st_ctim) == ns(before.st_ctim);
    close(fd);
    if (rc) return clpdd_err_set(e, "%s: read error while hashing: %s", shown, strerror(errno));
    *out = h;
    if (*entry && same) {
        /* remember it; failing to (someone else's directory, a full disk) only costs a rehash */
        char dir[4096], text[16500];
        snprintf(dir, sizeof dir, "%s/file-ids", cache_dir);
        clpdd_err ignore;
        int n = snprintf(text, sizeof text, "%s%016llx\n", want, (unsigned long long)h);
        if (n > 0 && (size_t)n < sizeof text && clpdd_mkdirs(dir, &ignore) == 0)
            (void)clpdd_write_file_atomic(entry, text, (size_t)n, &ignore);
    }
    return 0;
}
