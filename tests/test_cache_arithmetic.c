/* The feature cache knows the arithmetic that computed its features (core/features/feature_cache.c,
 * arithmetic_desc): the same config extracted with another library of gemm's small products
 * ($CLPDD_SMALL_GEMM = blas against libxsmm) or another convolution algorithm ($CLPDD_CONV_ALGO)
 * is another cache entry, the same one is a hit, and a stale entry under the new name is rejected
 * and extracted again, not used. And the CUDA backend is a module loaded only when asked for
 * (core/cuda/ops_cuda_loader.c): device = auto on a machine without a GPU never maps it, and a
 * module that cannot be loaded is an error naming the file and dlerror(). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/startup.h"
#include "cuda/cuda_loader.h"
#include "support.h"

static char tmpdir[256];

static void setup(void) { test_tmpdir_make(tmpdir, sizeof tmpdir, "arith"); }
static void teardown(void) { test_tmpdir_remove(tmpdir); }

TestSuite(arith, .init = setup, .fini = teardown);

/* the train split's indexes in dir (those of 350 images): their file names, and the key line of
   the one named `want` (NULL: of the first) */
static int train_indexes(const char *dir, char names[][64], int max, const char *want, char *key, size_t nk) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int found = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strstr(de->d_name, ".index")) continue;
        char *text = test_read_text(dir, de->d_name);
        const char *k = strstr(text, "\nkey ");
        if (strstr(text, "images 350 ") && found < max) {
            snprintf(names[found], 64, "%.63s", de->d_name);
            if (key && k && (want ? !strcmp(want, de->d_name) : found == 0)) {
                snprintf(key, nk, "%s", k + 1);
                key[strcspn(key, "\n")] = 0;
            }
            found++;
        }
        free(text);
    }
    closedir(d);
    return found;
}

/* `clpdd features` on the tiny config with one environment variable set (NULL: none) */
static void features_with(const char *ini, const char *cdir, const char *var, const char *value, char *out, size_t n) {
    if (var) setenv(var, value, 1);
    char args[1200];
    snprintf(args, sizeof args, "features %s --set data.cache_dir=%s --device cpu", ini, cdir);
    int rc = test_driver(args, out, n);
    if (var) unsetenv(var);
    cr_assert_eq(rc, 0, "%s=%s: %s", var ? var : "-", value ? value : "-", out);
}

Test(arith, another_product_library_is_another_entry_the_same_is_a_hit, .timeout = 300) {
    const char *missing = test_fmnist_missing();
    if (missing) cr_skip_test("%s", missing);
    char ini[512], cdir[512];
    snprintf(ini, sizeof ini, "%s/t.ini", tmpdir);
    snprintf(cdir, sizeof cdir, "%s/cache", tmpdir);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[experiment]\nseed = 1\n[data]\ntrain_limit = 350\ntest_limit = 100\nval_size = 50\n"
               "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nipc = 1\nsteps = 1\n");
    fclose(f);
    unsetenv("CLPDD_SMALL_GEMM");
    unsetenv("CLPDD_CONV_ALGO");
    static char out[65536];
    char names[8][64], first[64], key[4400] = "";
    features_with(ini, cdir, NULL, NULL, out, sizeof out);
    cr_assert_eq(train_indexes(cdir, names, 8, NULL, key, sizeof key), 1);
    snprintf(first, sizeof first, "%s", names[0]);
    cr_expect(strstr(key, "device=cpu") && strstr(key, "blas=") && strstr(key, "small=") && strstr(key, "conv=auto-f43"),
              "the key names the arithmetic: %s", key);
    /* the same arithmetic: a hit */
    features_with(ini, cdir, NULL, NULL, out, sizeof out);
    cr_expect(strstr(out, "from cache") && !strstr(out, "extracting"), "%s", out);
    /* OpenBLAS for the small products: another entry when the default was libxsmm's, else the same */
    features_with(ini, cdir, "CLPDD_SMALL_GEMM", "blas", out, sizeof out);
    int xsmm = strstr(key, "small=libxsmm") != NULL;
    cr_expect_eq(train_indexes(cdir, names, 8, NULL, NULL, 0), 1 + xsmm, "%s", out);
    cr_expect_eq(strstr(out, "extracting") != NULL, xsmm, "%s", out);
    /* another convolution algorithm: another entry (the key does not know the ViT has no conv) */
    features_with(ini, cdir, "CLPDD_CONV_ALGO", "gemm", out, sizeof out);
    int n = train_indexes(cdir, names, 8, NULL, NULL, 0);
    cr_assert_eq(n, 2 + xsmm, "%s", out);
    /* F(4×4, 3×3) is other arithmetic again (the key once read it as auto: a hit on F(2,3)'s) */
    features_with(ini, cdir, "CLPDD_CONV_ALGO", "winograd4", out, sizeof out);
    cr_expect_eq(train_indexes(cdir, names, 8, NULL, NULL, 0), n + 1, "%s", out);
    cr_expect(strstr(out, "extracting") != NULL, "%s", out);
    /* a value the conv ops do not know: a warning naming it, and auto's entry (a hit) */
    features_with(ini, cdir, "CLPDD_CONV_ALGO", "winogard4", out, sizeof out);
    cr_expect(strstr(out, "warning: CLPDD_CONV_ALGO = \"winogard4\" is not gemm, winograd, winograd4 or auto"), "%s", out);
    cr_expect(strstr(out, "from cache") && !strstr(out, "extracting"), "%s", out);
    /* a shard of other arithmetic under the first entry's name (what an old cache dir holds for a
       key that did not name the arithmetic): rejected with a warning, extracted again, never used */
    const char *other = strcmp(names[0], first) ? names[0] : names[1];
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "cd '%s' && cp %.16s-00000.safetensors %.16s-00000.safetensors", cdir, other, first);
    cr_assert_eq(system(cmd), 0);
    features_with(ini, cdir, NULL, NULL, out, sizeof out);
    cr_expect(strstr(out, "warning: feature cache") && strstr(out, "its key differs") && strstr(out, "extracting"), "%s",
              out);
    features_with(ini, cdir, NULL, NULL, out, sizeof out);
    cr_expect(strstr(out, "from cache") && !strstr(out, "extracting"), "rebuilt under its own key: %s", out);
}

/* the mappings of this process name the CUDA module? */
static int cuda_module_mapped(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    char line[4096];
    int mapped = 0;
    while (fgets(line, sizeof line, f)) mapped |= strstr(line, "libclpdd_cuda") != NULL;
    fclose(f);
    return mapped;
}

Test(arith, auto_without_a_gpu_never_loads_the_cuda_module) {
    clpdd_err e;
    const clpdd_ops *ops = clpdd_select_device(CLPDD_DEVICE_AUTO, &e);
    cr_assert_not_null(ops, "%s", e.msg);
    if (clpdd_cuda_device_visible()) cr_skip_test("this machine shows a GPU: auto loads the module");
    cr_expect_str_eq(ops->name, "cpu");
    cr_expect(!cuda_module_mapped(), "device = auto without a GPU mapped libclpdd_cuda.so");
}

Test(arith, a_cuda_module_that_cannot_load_is_an_error_naming_it) {
    char ini[512], args[1200];
    static char out[16384];
    snprintf(ini, sizeof ini, "%s/t.ini", tmpdir);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n");
    fclose(f);
    setenv("CLPDD_CUDA_LIBRARY", "/nonexistent/libclpdd_cuda.so", 1);
    snprintf(args, sizeof args, "features %s --device cuda --quiet", ini);
    int rc = test_driver(args, out, sizeof out);
    unsetenv("CLPDD_CUDA_LIBRARY");
    cr_expect_eq(rc, 2, "%s", out);
    if (strstr(out, "this build has no CUDA backend")) return; /* -DCLPDD_CUDA=OFF: nothing to load */
    cr_expect(strstr(out, "device = cuda, but the CUDA backend /nonexistent/libclpdd_cuda.so could not be loaded") &&
                  strstr(out, "cannot open shared object file"),
              "names the file and dlerror(): %s", out);
}

/* a FIFO named as the module: refused at once (dlopen() would block for a writer) */
Test(arith, a_fifo_as_the_cuda_module_is_refused_not_waited_on, .timeout = 60) {
    char ini[512], fifo[512], args[1200];
    static char out[16384];
    snprintf(ini, sizeof ini, "%s/t.ini", tmpdir);
    snprintf(fifo, sizeof fifo, "%s/libclpdd_cuda.so", tmpdir);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n");
    fclose(f);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    setenv("CLPDD_CUDA_LIBRARY", fifo, 1);
    snprintf(args, sizeof args, "features %s --device cuda --quiet", ini);
    int rc = test_driver(args, out, sizeof out);
    unsetenv("CLPDD_CUDA_LIBRARY");
    cr_expect_eq(rc, 2, "%s", out);
    if (strstr(out, "this build has no CUDA backend")) return;
    cr_expect(strstr(out, "libclpdd_cuda.so could not be loaded: not a regular file"), "%s", out);
}
