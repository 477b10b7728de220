/* CIFAR binary readers; see cifar.h. Dimension legend: n records, 3 × 32 × 32 pixels each. */
#define _GNU_SOURCE
#include "io/cifar.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int clpdd_cifar_read(const char *path, int cifar100, uint8_t **pixels, int32_t **labels, int *n, clpdd_err *e) {
    uint8_t *buf;
    size_t len;
    if (clpdd_read_file(path, &buf, &len, e)) return -1;
    size_t hl = cifar100 ? 2 : 1, rec = hl + CLPDD_CIFAR_PIXELS;
    if (len == 0 || len % rec != 0) {
        size_t other = (cifar100 ? 1 : 2) + CLPDD_CIFAR_PIXELS;
        clpdd_err_set(e,
                      "cifar: %s: %zu bytes is not a whole number of %s records of %zu bytes (%zu label byte%s + 3072 "
                      "pixels)%s",
                      path, len, cifar100 ? "CIFAR-100" : "CIFAR-10", rec, hl, hl > 1 ? "s" : "",
                      len > 0 && len % other == 0 ? (cifar100 ? "; it looks like CIFAR-10 (dataset = cifar10?)"
                                                              : "; it looks like CIFAR-100 (dataset = cifar100?)")
                                                  : "; truncated or not a CIFAR binary file");
        free(buf);
        return -1;
    }
    int m = (int)(len / rec), C = cifar100 ? 100 : 10;
    *pixels = realloc(*pixels, (size_t)(*n + m) * CLPDD_CIFAR_PIXELS);
    *labels = realloc(*labels, (size_t)(*n + m) * sizeof **labels);
    CLPDD_ASSERT(*pixels && *labels);
    for (int i = 0; i < m; i++) {
        const uint8_t *r = buf + (size_t)i * rec;
        int lab = r[hl - 1]; /* CIFAR-100: fine label, after the coarse one */
        if (lab >= C) {
            clpdd_err_set(e, "cifar: %s: record %d has label %d, expected 0..%d (%s)", path, i, lab, C - 1,
                          cifar100 ? "CIFAR-100 fine label" : "CIFAR-10");
            free(buf);
            return -1;
        }
        (*labels)[*n + i] = lab;
        memcpy(*pixels + (size_t)(*n + i) * CLPDD_CIFAR_PIXELS, r + hl, CLPDD_CIFAR_PIXELS);
    }
    *n += m;
    free(buf);
    return 0;
}

/* 1: a regular file; 0: nothing there; -1: something else (a directory, a FIFO), named in e */
static int is_file(const char *p, clpdd_err *e) {
    struct stat st;
    if (stat(p, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return 1;
    return clpdd_err_set(e, "cifar: %s: is %s, not a regular file (a CIFAR binary batch)", p, clpdd_file_kind(st.st_mode));
}

int clpdd_cifar_load(const char *root, int cifar100, const char *split, uint8_t **pixels, int32_t **labels, int *n,
                     uint64_t *hash, clpdd_err *e) {
    const char *names10_train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                                   "data_batch_5.bin"};
    const char *names10_test[] = {"test_batch.bin"}, *names100_train[] = {"train.bin"}, *names100_test[] = {"test.bin"};
    int train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0)
        return clpdd_err_set(e, "cifar: split '%s': expected train or test", split);
    const char **names = cifar100 ? (train ? names100_train : names100_test) : (train ? names10_train : names10_test);
    int k = cifar100 ? 1 : (train ? 5 : 1);
    const char *sub = cifar100 ? "cifar-100-binary" : "cifar-10-batches-bin";
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", root);
    snprintf(path, sizeof path, "%s/%s", root, names[0]);
    int found = is_file(path, e);
    if (found < 0) return -1;
    if (!found) {
        snprintf(dir, sizeof dir, "%s/%s", root, sub);
        snprintf(path, sizeof path, "%s/%s", dir, names[0]);
        found = is_file(path, e);
        if (found < 0) return -1;
        if (!found)
            return clpdd_err_set(e, "cifar: no %s in %s or %s/%s (the %s binary version, e.g. %s)", names[0], root,
                                 root, sub, cifar100 ? "CIFAR-100" : "CIFAR-10",
                                 cifar100 ? "cifar-100-binary.tar.gz" : "cifar-10-binary.tar.gz");
    }
    *pixels = NULL, *labels = NULL, *n = 0;
    for (int i = 0; i < k; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (hash) *hash = clpdd_hash_str(*hash, names[i]);
        if (clpdd_cifar_read(path, cifar100, pixels, labels, n, e)) {
            free(*pixels), free(*labels);
            *pixels = NULL, *labels = NULL, *n = 0;
            return -1;
        }
    }
    return 0;
}
