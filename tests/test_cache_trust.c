/* The feature cache's directory is trusted as ssh and tmux trust theirs: owned by this user (or
 * root) and not writable by group or others, else refused with a message naming the directory,
 * its owner and mode and what to do; the one clpdd makes (HOME unset: $TMPDIR/clpdd-cache-<uid>)
 * is created 0700; and a run whose cache directory another user could write stops before it
 * reads a feature from it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "features/feature_cache.h"

static char tmpdir[256];

static void setup(void) { test_tmpdir_make(tmpdir, sizeof tmpdir, "cachetrust"); }
static void teardown(void) { test_tmpdir_remove(tmpdir); }

static unsigned mode_of(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (unsigned)(st.st_mode & 07777);
}

Test(cache_trust, home_unset_fallback_is_created_private, .init = setup, .fini = teardown) {
    unsetenv("CLPDD_CACHE_DIR"), unsetenv("XDG_CACHE_HOME"), unsetenv("HOME");
    setenv("TMPDIR", tmpdir, 1);
    char dir[600], want[600];
    clpdd_cache_dir(NULL, dir, sizeof dir);
    snprintf(want, sizeof want, "%s/clpdd-cache-%ld", tmpdir, (long)getuid());
    cr_expect_str_eq(dir, want);
    cr_expect_eq(mode_of(dir), 0700u, "created %04o", mode_of(dir));
    clpdd_err e = {{0}};
    cr_expect_eq(clpdd_cache_dir_trusted(dir, &e), 0, "%s", e.msg);
    /* a configured one that does not exist yet: every missing level private */
    char conf[600];
    snprintf(conf, sizeof conf, "%s/a/b", tmpdir);
    clpdd_cache_dir(conf, dir, sizeof dir);
    cr_expect_str_eq(dir, conf);
    cr_expect_eq(mode_of(dir), 0700u);
    snprintf(conf, sizeof conf, "%s/a", tmpdir);
    cr_expect_eq(mode_of(conf), 0700u);
}

Test(cache_trust, writable_by_others_refused, .init = setup, .fini = teardown) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/clpdd-cache-%ld", tmpdir, (long)getuid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(chmod(dir, 0777), 0);
    clpdd_err e = {{0}};
    cr_expect_eq(clpdd_cache_dir_trusted(dir, &e), -1);
    char want[900];
    snprintf(want, sizeof want, "features: cache directory %s is owned by ", dir);
    cr_expect(strstr(e.msg, want) != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "with mode 0777: group or others can write to it") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "chmod go-w") && strstr(e.msg, "CLPDD_CACHE_DIR"), "%s", e.msg);
    /* the fallback is the same directory: chosen, but still refused */
    unsetenv("CLPDD_CACHE_DIR"), unsetenv("XDG_CACHE_HOME"), unsetenv("HOME");
    setenv("TMPDIR", tmpdir, 1);
    char got[600];
    clpdd_cache_dir(NULL, got, sizeof got);
    cr_expect_str_eq(got, dir);
    cr_expect_eq(mode_of(dir), 0777u, "an existing directory's mode is not changed");
    cr_expect_eq(clpdd_cache_dir_trusted(got, &e), -1);
    cr_assert_eq(chmod(dir, 0720), 0);
    cr_expect_eq(clpdd_cache_dir_trusted(dir, &e), -1, "group-writable");
    cr_expect(strstr(e.msg, "with mode 0720") != NULL, "%s", e.msg);
    cr_assert_eq(chmod(dir, 0755), 0);
    cr_expect_eq(clpdd_cache_dir_trusted(dir, &e), 0, "%s", e.msg);
    cr_assert_eq(chmod(dir, 0700), 0);
    cr_expect_eq(clpdd_cache_dir_trusted(dir, &e), 0, "%s", e.msg);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/not-yet", tmpdir);
    cr_expect_eq(clpdd_cache_dir_trusted(missing, &e), 0, "nothing there: nothing to trust");
}

Test(cache_trust, owned_by_another_user_refused, .init = setup, .fini = teardown) {
    if (getuid() != 0) cr_skip_test("needs root to give a directory to another user");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/theirs", tmpdir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(chown(dir, 65534, 65534), 0);
    clpdd_err e = {{0}};
    cr_expect_eq(clpdd_cache_dir_trusted(dir, &e), -1);
    cr_expect(strstr(e.msg, "(uid 65534) with mode 0700: another user owns it") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "remove it if you did not make it") != NULL, "%s", e.msg);
}

/* end to end: a run with HOME unset whose fallback directory is mode 0777 stops before using it,
   with the message; made private, the same run goes through */
Test(cache_trust, run_refuses_an_open_cache_directory, .init = setup, .fini = teardown, .timeout = 300) {
    const char *why = test_fmnist_missing();
    if (why) cr_skip_test("%s", why);
    char ini[600], cdir[600], out[16384], args[2048];
    snprintf(cdir, sizeof cdir, "%s/clpdd-cache-%ld", tmpdir, (long)getuid());
    cr_assert_eq(mkdir(cdir, 0700), 0);
    cr_assert_eq(chmod(cdir, 0777), 0);
    snprintf(ini, sizeof ini, "%s/t.ini", tmpdir);
    FILE *f = fopen(ini, "w");
    cr_assert_not_null(f);
    fprintf(f, "[experiment]\nseed = 1\n[data]\ntrain_limit = 300\ntest_limit = 100\nval_size = 50\n[backbone]\nname = vit\n"
               "weights = %s\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nipc = 1\nsteps = 2\nreal_batch = 32\n"
               "[eval]\nseeds = 1\nbaseline_full = false\nbaseline_centroids = false\nbaseline_random = false\n",
            test_model_file("mnist-vit.safetensors"));
    fclose(f);
    unsetenv("CLPDD_CACHE_DIR"), unsetenv("XDG_CACHE_HOME"), unsetenv("HOME");
    setenv("TMPDIR", tmpdir, 1);
    snprintf(args, sizeof args, "run %s --output %s/r --quiet", ini, tmpdir);
    int rc = test_driver(args, out, sizeof out);
    cr_expect_eq(rc, 1, "%s", out);
    char want[900];
    snprintf(want, sizeof want, "features: cache directory %s is owned by ", cdir);
    cr_expect(strstr(out, want) && strstr(out, "with mode 0777: group or others can write to it"), "%s", out);
    cr_assert_eq(chmod(cdir, 0700), 0);
    rc = test_driver(args, out, sizeof out);
    cr_expect_eq(rc, 0, "%s", out);
}
