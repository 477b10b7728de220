/* Configuration and plugin loading: every user-caused failure gives a distinct, clear
 * message naming the file:line / key / path, exit status 2 from the driver, and nothing in
 * the output directory. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "experiment.h"
#include "loader.h"
#include "support.h"

static char tmpdir[256];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clpdd-test-config-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) {
    }
}

static const char *write_ini(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *good_ini =
    "[experiment]\nseed = 3\n\n[backbone]\nname = vit\n\n[solver]\nname = ridge\nlambda = 0.01\n\n"
    "[loss]\nname = ce\ntemperature = 0.5\n\n[distill]\nipc = 2\nsteps = 5\n";

/* load through the experiment layer; returns the status, message in e */
static int load(const char *text, const char *const *sets, int n_sets, clpdd_err *e, clpdd_experiment *x) {
    const char *path = write_ini("x.ini", text);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, CLPDD_TEST_PLUGIN_DIR);
    int rc = clpdd_experiment_load(x, path, sets, n_sets, &dirs, e);
    clpdd_plugin_dirs_free(&dirs);
    return rc;
}

#define EXPECT_LOAD_ERROR(text, ...)                                                         \
    do {                                                                                     \
        clpdd_experiment x;                                                                  \
        clpdd_err e = {{0}};                                                                 \
        cr_assert_neq(load(text, NULL, 0, &e, &x), 0, "expected an error");                  \
        const char *want[] = {__VA_ARGS__};                                                  \
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)                            \
            cr_expect(strstr(e.msg, want[i]) != NULL, "message lacks '%s': %s", want[i], e.msg); \
        clpdd_experiment_free(&x);                                                           \
    } while (0)

TestSuite(config, .init = setup, .fini = teardown);

Test(config, a_good_file_resolves_with_defaults) {
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(load(good_ini, NULL, 0, &e, &x), 0, "%s", e.msg);
    cr_expect_eq(x.seed, 3);
    cr_expect_eq(x.ipc, 2);
    cr_expect_str_eq(x.name, "x");
    cr_expect_str_eq(x.output, "runs/x");
    cr_expect_str_eq(x.root, "/usr/share/datasets/fashion-mnist");
    cr_expect_str_eq(x.backbone.desc->name, "vit");
    char *ini = clpdd_experiment_resolved_ini(&x);
    cr_expect(strstr(ini, "lambda = 0.01") != NULL);
    cr_expect(strstr(ini, "lambda_mode = relative    ; default") != NULL, "%s", ini);
    free(ini);
    clpdd_experiment_free(&x);
}

Test(config, set_overrides_and_is_validated) {
    clpdd_experiment x;
    clpdd_err e = {{0}};
    const char *sets[] = {"distill.ipc=4", "solver.lambda = 0.5"};
    cr_assert_eq(load(good_ini, sets, 2, &e, &x), 0, "%s", e.msg);
    cr_expect_eq(x.ipc, 4);
    clpdd_experiment_free(&x);
    const char *bad[] = {"distill.ipc=many"};
    cr_assert_neq(load(good_ini, bad, 1, &e, &x), 0);
    cr_expect(strstr(e.msg, "--set ipc") && strstr(e.msg, "an integer"), "%s", e.msg);
    clpdd_experiment_free(&x);
    const char *malformed[] = {"ipc=3"};
    cr_assert_neq(load(good_ini, malformed, 1, &e, &x), 0);
    cr_expect(strstr(e.msg, "section.key=value"), "%s", e.msg);
    clpdd_experiment_free(&x);
}

Test(config, missing_file) {
    clpdd_ini ini;
    clpdd_err e;
    cr_assert_neq(clpdd_ini_load("/nonexistent/exp.ini", &ini, &e), 0);
    cr_expect(strstr(e.msg, "/nonexistent/exp.ini") && strstr(e.msg, "cannot open"), "%s", e.msg);
    clpdd_ini_free(&ini);
}

Test(config, unknown_key_names_file_line_and_known_keys) {
    EXPECT_LOAD_ERROR("[distill]\nipc = 1\nstepz = 3\n[backbone]\nname = vit\n", "x.ini:3", "unknown key 'stepz'", "[distill]",
                      "steps");
}

Test(config, unknown_plugin_key_names_its_line) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = ridge\nlamda = 1\n[loss]\nname = ce\n", "x.ini:5",
                      "unknown key 'lamda'", "lambda");
}

Test(config, bad_value_names_the_expected_form) {
    EXPECT_LOAD_ERROR("[distill]\nipc = 0\n", "x.ini:2", "ipc", "an integer in [1, 100000]");
    EXPECT_LOAD_ERROR("[distill]\nlr = fast\n", "x.ini:2", "lr", "a number");
    EXPECT_LOAD_ERROR("[distill]\ninit = zeros\n", "x.ini:2", "one of real|noise");
    EXPECT_LOAD_ERROR("[eval]\nbaseline_random = maybe\n", "x.ini:2", "true or false");
    EXPECT_LOAD_ERROR("[distill]\nlr = nan\n", "x.ini:2", "lr");
}

Test(config, unknown_section) {
    EXPECT_LOAD_ERROR("[experiment]\nseed = 1\n[distil]\nipc = 1\n", "x.ini:4", "unknown section [distil]");
}

Test(config, syntax_error_and_duplicates_and_indentation) {
    EXPECT_LOAD_ERROR("[distill]\nipc 1\n", "x.ini:2", "syntax error");
    EXPECT_LOAD_ERROR("[distill]\nipc = 1\nipc = 2\n", "x.ini:3", "set twice", "line 2");
    EXPECT_LOAD_ERROR("[distill]\nipc = 1\n  steps = 2\n", "x.ini:3", "indented");
    EXPECT_LOAD_ERROR("ipc = 1\n", "x.ini:1", "outside any [section]");
}

Test(config, missing_plugin_section_and_name) {
    EXPECT_LOAD_ERROR("[experiment]\nseed = 1\n", "missing section [backbone]");
    EXPECT_LOAD_ERROR("[backbone]\nweights = x\n", "[backbone] needs 'name");
}

Test(config, missing_plugin_lists_where_it_looked) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = ridgee\n", "x.ini:4", "solver plugin 'ridgee' not found",
                      CLPDD_PLUGIN_BUILD_DIR, "clpdd plugins");
}

Test(config, wrong_kind) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = ce\n", "x.ini:4", "is a loss plugin", "needs a solver plugin");
}

Test(config, abi_mismatch) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = bad_abi\n", "bad_abi.so", "ABI mismatch", "plugin 99.0",
                      "core 1.1");
    /* (99 = CLPDD_ABI_MAJOR + 98 in tests/plugins/bad_abi.c; 1.1 = this core) */
}

Test(config, missing_symbol) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = no_entry\n", "no_entry.so", "missing symbol 'clpdd_plugin_entry'");
}

Test(config, an_objective_solver_refuses_a_loss_section) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = lgm\n[loss]\nname = ce\n", "x.ini:6",
                      "solver 'lgm' computes its own objective", "[loss] section is an error");
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_expect_eq(load("[backbone]\nname = vit\n[solver]\nname = lgm\n", NULL, 0, &e, &x), 0, "%s", e.msg);
    clpdd_experiment_free(&x);
}

Test(config, incomplete_vtable) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = incomplete\n", "incomplete.so", "incomplete vtable", "backward");
}

Test(config, cannot_open_a_file_that_is_not_a_shared_object) {
    char path[600];
    snprintf(path, sizeof path, "%s/junk.so", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("not an ELF file\n", f);
    fclose(f);
    clpdd_loaded p;
    clpdd_err e;
    cr_assert_neq(clpdd_plugin_open(path, &p, &e), 0);
    cr_expect(strstr(e.msg, "cannot open plugin") && strstr(e.msg, "junk.so") && strstr(e.msg, "ldd"), "%s", e.msg);
    cr_assert_neq(clpdd_plugin_open("/nonexistent/x.so", &p, &e), 0);
    cr_expect(strstr(e.msg, "plugin file not found"), "%s", e.msg);
}

/* ---- the driver: exit status 2 and an untouched output directory ---- */
static int driver(const char *args, char *out, size_t n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "CLPDD_PLUGIN_PATH=%s %s/clpdd %s 2>&1", CLPDD_TEST_PLUGIN_DIR, CLPDD_BINARY_DIR, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(config, driver_config_error_exits_2_and_writes_nothing) {
    const char *path = write_ini("bad.ini", "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = -1\n[loss]\nname = ce\n");
    char out[8192], args[1024], outdir[512];
    snprintf(outdir, sizeof outdir, "%s/run-out", tmpdir);
    snprintf(args, sizeof args, "run %s --output %s", path, outdir);
    cr_expect_eq(driver(args, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "bad.ini:5") && strstr(out, "lambda"), "%s", out);
    struct stat st;
    cr_expect_neq(stat(outdir, &st), 0, "the output directory must not exist after a configuration error");
}

Test(config, driver_usage_and_help) {
    char out[16384];
    cr_expect_eq(driver("--help", out, sizeof out), 0);
    cr_expect(strstr(out, "run FILE.ini"), "%s", out);
    cr_expect_eq(driver("run --help", out, sizeof out), 0);
    cr_expect(strstr(out, "--set section.key=value"), "%s", out);
    cr_expect_eq(driver("frobnicate", out, sizeof out), 2);
    cr_expect(strstr(out, "unknown command 'frobnicate'"), "%s", out);
    cr_expect_eq(driver("run", out, sizeof out), 2);
    cr_expect(strstr(out, "missing FILE.ini"), "%s", out);
    cr_expect_eq(driver("run x.ini --device tpu", out, sizeof out), 2);
    cr_expect(strstr(out, "expected auto, cpu or cuda"), "%s", out);
}

Test(config, driver_lists_plugins_with_keys_and_reports_broken_ones) {
    char out[65536];
    cr_expect_eq(driver("plugins", out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "ridge") && strstr(out, "lambda_mode") && strstr(out, "relative|absolute"), "%s", out);
    cr_expect(strstr(out, "temperature") && strstr(out, "vit"), "%s", out);
    cr_expect(strstr(out, "not loadable") && strstr(out, "ABI mismatch"), "%s", out);
}

Test(config, check_prints_the_resolved_configuration) {
    const char *path = write_ini("ok.ini", good_ini);
    char out[65536], args[600];
    snprintf(args, sizeof args, "check %s", path);
    cr_expect_eq(driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "[solver]") && strstr(out, "form = auto"), "%s", out);
}
