/* Shared helpers of the file-format tests (tests/test_io_*.c): a temporary directory per test
 * (a suite's .init/.fini), paths in it, whole-file read/write, a splitmix64 stream for mutation
 * loops, and assertions on error messages. Static: each test executable has its own copy. */
#ifndef CLPDD_TEST_IO_SUPPORT_H
#define CLPDD_TEST_IO_SUPPORT_H
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define IO_HELPER static __attribute__((unused))

static char g_dir[256] __attribute__((unused));

IO_HELPER void make_tmpdir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/clpdd_test_io.XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

IO_HELPER void remove_tmpdir(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    (void)!system(cmd);
}

IO_HELPER const char *tpath(const char *name) {
    static char buf[8][512];
    static int slot;
    char *p = buf[slot];
    slot = (slot + 1) % 8;
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

IO_HELPER int n_files_in(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

IO_HELPER uint8_t *slurp(const char *path, size_t *len) {
    uint8_t *d;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(path, &d, len, &e), 0, "%s", e.msg);
    return d;
}

IO_HELPER void spit(const char *path, const void *d, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    if (len) cr_assert_eq(fwrite(d, 1, len, f), len);
    fclose(f);
}

IO_HELPER uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* error messages name the file they are about */
#define assert_err_names(e, label, what)                                                                   \
    do {                                                                                                   \
        cr_assert(strncmp((e).msg, (label), strlen(label)) == 0, "%s: message doesn't start with '%s': %s", \
                  (what), (label), (e).msg);                                                               \
    } while (0)

#define assert_msg_has(e, needle) cr_assert(strstr((e).msg, (needle)), "expected '%s' in: %s", (needle), (e).msg)

IO_HELPER uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#endif
