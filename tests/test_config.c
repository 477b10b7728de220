/* Configuration and plugin loading: every user-caused failure gives a distinct, clear
 * message naming the file:line / key / path, exit status 2 from the driver, and nothing in
 * the output directory. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "io/ini.h"
#include "config/experiment.h"
#include "plugin/host.h"
#include "plugin/loader.h"
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
    char core[32];
    snprintf(core, sizeof core, "core %d.%d", CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR);
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = bad_abi\n", "bad_abi.so", "ABI mismatch", "plugin 99.0",
                      core);
    /* (99 = CLPDD_ABI_MAJOR + 98 in tests/plugins/bad_abi.c) */
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
    cr_expect(strstr(e.msg, "truncated or not a shared object") && strstr(e.msg, "junk.so"), "%s", e.msg);
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

/* ---- the INI reader without a line limit, hostile input, the driver's small ones ---- */

static int has_raw_control(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f) return 1;
    return 0;
}

Test(config, long_lines_are_read_whole_and_long_comments_stay_comments) {
    /* a 200-byte buffer made the comment's tail a live key */
    char text[8192];
    char xs[4001];
    memset(xs, 'x', 4000), xs[4000] = 0;
    snprintf(text, sizeof text, "[experiment]\n; %.196s seed = 1234\n%s", xs, good_ini + strlen("[experiment]\nseed = 3\n"));
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_assert_eq(load(text, NULL, 0, &e, &x), 0, "%s", e.msg);
    cr_expect_eq(x.seed, 0, "the comment's tail must not set seed");
    clpdd_experiment_free(&x);
    /* a 4000-byte comment, then a key on the next line: the right value and line numbers */
    snprintf(text, sizeof text, "[experiment]\n; %s seed = 99\nseed = 5\n[distill]\nstepz = 1\n", xs);
    EXPECT_LOAD_ERROR(text, "x.ini:5", "unknown key 'stepz'");
    /* a long value is one value (an absolute path of 274 characters) */
    clpdd_ini ini;
    char val[275];
    memset(val, 'a', 274), val[274] = 0;
    val[0] = '/';
    snprintf(text, sizeof text, "[backbone]\nweights = %s\n[solver]\nname = ridge\n", val);
    cr_assert_eq(clpdd_ini_load_memory(text, strlen(text), "m.ini", &ini, &e), 0, "%s", e.msg);
    int line;
    const char *got = clpdd_section_raw(clpdd_ini_section(&ini, "backbone"), "weights", &line, NULL);
    cr_expect_str_eq(got, val);
    cr_expect_eq(line, 2);
    cr_expect_str_eq(clpdd_section_raw(clpdd_ini_section(&ini, "solver"), "name", &line, NULL), "ridge");
    cr_expect_eq(line, 4);
    clpdd_ini_free(&ini);
    /* over the documented limit: a clear error naming the line */
    size_t big = CLPDD_INI_MAX_LINE + 10;
    char *huge = malloc(big + 64);
    int n = sprintf(huge, "[a]\n\nk = ");
    memset(huge + n, 'v', big), huge[n + big] = 0;
    cr_assert_neq(clpdd_ini_load_memory(huge, strlen(huge), "h.ini", &ini, &e), 0);
    cr_expect(strstr(e.msg, "h.ini:3") && strstr(e.msg, "line longer than 65536 bytes"), "%s", e.msg);
    clpdd_ini_free(&ini);
    free(huge);
    /* CRLF, a BOM and an inline comment */
    const char *crlf = "\xef\xbb\xbf[a]\r\nk = v ; note\r\nq=w\r\n";
    cr_assert_eq(clpdd_ini_load_memory(crlf, strlen(crlf), "c.ini", &ini, &e), 0, "%s", e.msg);
    cr_expect_str_eq(clpdd_section_raw(clpdd_ini_section(&ini, "a"), "k", NULL, NULL), "v");
    cr_expect_str_eq(clpdd_section_raw(clpdd_ini_section(&ini, "a"), "q", NULL, NULL), "w");
    clpdd_ini_free(&ini);
}

Test(config, binary_and_special_files_stop_at_the_first_error, .timeout = 20) {
    clpdd_ini ini;
    clpdd_err e = {{0}};
    cr_assert_neq(clpdd_ini_load("/dev/zero", &ini, &e), 0);
    cr_expect(strstr(e.msg, "/dev/zero:1") && strstr(e.msg, "NUL byte"), "%s", e.msg);
    clpdd_ini_free(&ini);
    cr_assert_neq(clpdd_ini_load("/dev/urandom", &ini, &e), 0);
    cr_expect(strstr(e.msg, "/dev/urandom:"), "%s", e.msg);
    cr_expect(!has_raw_control(e.msg), "no raw control byte in: %s", e.msg);
    clpdd_ini_free(&ini);
    cr_assert_neq(clpdd_ini_load(tmpdir, &ini, &e), 0);
    cr_expect(strstr(e.msg, tmpdir) && strstr(e.msg, "is a directory"), "%s", e.msg);
    clpdd_ini_free(&ini);
    const char *bad[][2] = {
        {"[a]\nna\x1b[31mme = x\n", "m.ini:2: control character \\x1b"},
        {"[a]\nk = caf\xc3\n", "m.ini:2: invalid UTF-8"},
        {"[a]\nk = \xff\xfe\n", "m.ini:2: invalid UTF-8 (byte \\xff"},
        {"[a]\nk = v\n\nx\0y = 1\n", "m.ini:4: NUL byte"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i][0]);
        if (i == 3) len = 17;
        cr_assert_neq(clpdd_ini_load_memory(bad[i][0], len, "m.ini", &ini, &e), 0, "case %zu", i);
        cr_expect(strstr(e.msg, bad[i][1]), "case %zu: %s", i, e.msg);
        cr_expect(!has_raw_control(e.msg), "no raw control byte in: %s", e.msg);
        clpdd_ini_free(&ini);
    }
    /* UTF-8 text is fine */
    const char *u = "[a]\nk = Fashion-MNIST — «ok» ✓\n";
    cr_expect_eq(clpdd_ini_load_memory(u, strlen(u), "u.ini", &ini, &e), 0, "%s", e.msg);
    clpdd_ini_free(&ini);
    /* --set with a control byte is refused, escaped */
    cr_assert_eq(clpdd_ini_load_memory("", 0, "e.ini", &ini, &e), 0);
    cr_expect_neq(clpdd_ini_set(&ini, "distill.ipc=\x1b[2J", &e), 0);
    cr_expect(strstr(e.msg, "\\x1b") && !has_raw_control(e.msg), "%s", e.msg);
    clpdd_ini_free(&ini);
}

/* deterministic mutations of a valid INI: an error naming the file or a clean load, never a crash */
Test(config, ini_mutation_loop) {
    const char *seed = good_ini;
    size_t n = strlen(seed);
    char *m = malloc(n + 64);
    test_rng r = {11};
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(m, seed, n);
        size_t len = n;
        int k = 1 + (int)(test_uniform(&r) * 4);
        for (int j = 0; j < k; j++) {
            double op = test_uniform(&r);
            size_t at = (size_t)(test_uniform(&r) * len);
            if (op < 0.6) m[at] = (char)(test_uniform(&r) * 256);
            else if (op < 0.8 && len > 1) len = at + 1; /* truncate */
            else m[at] = "[]=;#\n \t:"[(int)(test_uniform(&r) * 9)];
        }
        clpdd_ini ini;
        clpdd_err e = {{0}};
        if (clpdd_ini_load_memory(m, len, "mut.ini", &ini, &e)) {
            bad++;
            cr_assert(strncmp(e.msg, "mut.ini", 7) == 0, "every error names the file: %s", e.msg);
            cr_assert(!has_raw_control(e.msg), "escaped: %s", e.msg);
        }
        clpdd_ini_free(&ini);
    }
    free(m);
    cr_log_info("ini mutation loop: %d of 20000 rejected", bad);
    cr_expect_gt(bad, 1000);
}

Test(config, escape_and_err_prefix) {
    char out[64];
    cr_expect_str_eq(clpdd_escape("a\x1b[31m\n\\", out, sizeof out), "a\\x1b[31m\\n\\\\");
    cr_expect_str_eq(clpdd_escape("abcdefghij", out, 8), "abcd...");
    clpdd_err e;
    clpdd_err_set(&e, "checkpoint: %s", "disk full");
    cr_expect_eq(clpdd_err_prefix(&e, "step %d: ", 5), -1);
    cr_expect_str_eq(e.msg, "step 5: checkpoint: disk full");
    clpdd_err_prefix(&e, "%s", "");
    cr_expect_str_eq(e.msg, "step 5: checkpoint: disk full");
}

Test(config, driver_small_ones) {
    char out[16384], args[1024];
    const char *path = write_ini("ok.ini", good_ini);
    snprintf(args, sizeof args, "check %s --output /tmp/x", path);
    cr_expect_eq(driver(args, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "check does not take --output"), "%s", out);
    cr_expect_eq(driver("help bogus", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "unknown command 'bogus'"), "%s", out);
    cr_expect_eq(driver("keys extra", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "keys takes no arguments"), "%s", out);
    cr_expect_eq(driver("help keys", out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "check %s", tmpdir);
    cr_expect_eq(driver(args, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "is a directory"), "%s", out);
    cr_expect_eq(driver("check \"$(printf 'x\\033[2J.ini')\"", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "\\x1b") && !has_raw_control(out), "%s", out);
    cr_expect_eq(driver("help \"$(printf '\\033[2J')\"", out, sizeof out), 2, "%s", out);
    cr_expect(!has_raw_control(out), "%s", out);
}

/* a plugin named by path runs its code when loaded: refused unless trusted */
Test(config, plugin_paths_need_an_opt_in) {
    char so[600], text[1400], args[1024], out[16384];
    snprintf(so, sizeof so, "%s/mine.so", tmpdir);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp %s/ridge.so %s", CLPDD_PLUGIN_BUILD_DIR, so);
    cr_assert_eq(system(cmd), 0);
    snprintf(text, sizeof text, "[backbone]\nname = vit\n[solver]\nname = %s\n[loss]\nname = ce\n", so);
    const char *path = write_ini("p.ini", text);
    snprintf(args, sizeof args, "check %s", path);
    cr_expect_eq(driver(args, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "p.ini:4") && strstr(out, "refusing to load a plugin by path") &&
              strstr(out, "--allow-plugin-path") && strstr(out, "CLPDD_PLUGIN_PATH"), "%s", out);
    snprintf(args, sizeof args, "check %s --allow-plugin-path", path);
    cr_expect_eq(driver(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "check %s --plugin-path %s", path, tmpdir); /* its directory is searched: trusted */
    cr_expect_eq(driver(args, out, sizeof out), 0, "%s", out);
    /* by name from the search path */
    snprintf(text, sizeof text, "[backbone]\nname = vit\n[solver]\nname = mine\n[loss]\nname = ce\n");
    path = write_ini("q.ini", text);
    snprintf(args, sizeof args, "check %s --plugin-path %s", path, tmpdir);
    cr_expect_eq(driver(args, out, sizeof out), 0, "%s", out);
    /* the loader itself (the experiment layer's route) */
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    clpdd_loaded p;
    clpdd_err e = {{0}};
    cr_expect_neq(clpdd_plugin_find(&dirs, CLPDD_KIND_SOLVER, so, &p, &e), 0);
    cr_expect(strstr(e.msg, "refusing"), "%s", e.msg);
    dirs.allow_paths = 1;
    cr_expect_eq(clpdd_plugin_find(&dirs, CLPDD_KIND_SOLVER, so, &p, &e), 0, "%s", e.msg);
    clpdd_plugin_close(&p);
    clpdd_plugin_dirs_free(&dirs);
}

/* a truncated plugin killed the driver with SIGBUS inside dlopen */
Test(config, truncated_plugins_are_refused_before_dlopen) {
    char src[600], dir[600], cut[700], args[1024], out[65536];
    snprintf(src, sizeof src, "%s/ridge.so", CLPDD_PLUGIN_BUILD_DIR);
    snprintf(dir, sizeof dir, "%s/p", tmpdir);
    mkdir(dir, 0755);
    snprintf(cut, sizeof cut, "%s/trunc.so", dir);
    uint8_t *data;
    size_t len;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(src, &data, &len, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_write_file_atomic(cut, data, 3000, &e), 0);
    snprintf(args, sizeof args, "plugins --plugin-path %s", dir);
    cr_expect_eq(driver(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "truncated or not a shared object: ") && strstr(out, cut), "%s", out);
    /* every truncation length (in steps) in-process: refused, never a crash */
    for (size_t n = 0; n < len; n += len / 97 + 1) {
        cr_assert_eq(clpdd_write_file_atomic(cut, data, n, &e), 0);
        clpdd_loaded p;
        cr_assert_neq(clpdd_plugin_open(cut, &p, &e), 0, "truncated at %zu of %zu accepted", n, len);
        cr_assert(strstr(e.msg, "truncated or not a shared object"), "%zu: %s", n, e.msg);
    }
    /* the whole file is fine */
    cr_assert_eq(clpdd_write_file_atomic(cut, data, len, &e), 0);
    cr_expect_eq(clpdd_elf_check(cut, &e), 0, "%s", e.msg);
    free(data);
}

/* ---- one key table, one name table per enum, cfg_enum ---- */

/* every ENUM key of the core: its choices are its name table joined, and each name, set with
   --set, lands in its field as the enum value of the same index */
typedef struct enum_case {
    const char *section, *key;
    const char *const *names;
    int count;
    size_t at; /* offsetof(clpdd_experiment, field): an int-sized enum or int */
} enum_case;
#define ENUM_CASE(sec, key, table, field) \
    {sec, key, table, (int)(sizeof table / sizeof table[0]), offsetof(clpdd_experiment, field)}

Test(config, every_enum_key_reads_its_one_name_table) {
    const enum_case cases[] = {
        ENUM_CASE("experiment", "device", clpdd_device_names, device),
        ENUM_CASE("experiment", "precision", clpdd_precision_names, precision),
        ENUM_CASE("data", "dataset", clpdd_dataset_names, dataset),
        ENUM_CASE("data", "on_bad_image", clpdd_bad_image_names, skip_bad_images),
        ENUM_CASE("data", "verify", clpdd_data_verify_names, data_verify),
        ENUM_CASE("data", "feature_dtype", clpdd_feature_dtype_names, feature_f16),
        ENUM_CASE("data", "adapt", clpdd_adapt_names, adapt),
        ENUM_CASE("distill", "init", clpdd_init_names, init),
        ENUM_CASE("distill", "param", clpdd_param_names, param),
        ENUM_CASE("distill", "augment", clpdd_augment_names, augment),
        ENUM_CASE("distill", "labels", clpdd_labels_names, labels),
        ENUM_CASE("eval", "protocol", clpdd_protocol_names, protocol),
        ENUM_CASE("eval", "select", clpdd_select_names, select),
    };
    int n_sections, n_enums = 0;
    const clpdd_core_section *sec = clpdd_core_sections(&n_sections);
    for (int i = 0; i < n_sections; i++)
        for (int j = 0; j < sec[i].n_keys; j++) n_enums += sec[i].keys[j].type == CLPDD_KEY_ENUM;
    cr_expect_eq(n_enums, (int)(sizeof cases / sizeof cases[0]), "an ENUM key without a case here");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const enum_case *k = &cases[c];
        const clpdd_key *decl = NULL;
        for (int i = 0; i < n_sections; i++)
            for (int j = 0; j < sec[i].n_keys; j++)
                if (!strcmp(sec[i].name, k->section) && !strcmp(sec[i].keys[j].name, k->key)) decl = &sec[i].keys[j];
        cr_assert_not_null(decl, "[%s] %s", k->section, k->key);
        char *joined = clpdd_names_join(k->names, k->count);
        cr_expect_str_eq(decl->choices, joined);
        free(joined);
        for (int v = 0; v < k->count; v++) {
            char set[128], set_root[] = "data.root=/tmp", set_wd[] = "eval.wd=0.1";
            snprintf(set, sizeof set, "%s.%s=%s", k->section, k->key, k->names[v]);
            /* [eval] select = worst_group needs groups, which need a manifest or image folder */
            const char *sets[] = {set, set_root, set_wd, "data.dataset=manifest", "data.group=place"};
            int n_sets = strcmp(k->key, "select") ? 3 : 5;
            clpdd_experiment x;
            clpdd_err e = {{0}};
            cr_assert_eq(load(good_ini, sets, n_sets, &e, &x), 0, "%s: %s", set, e.msg);
            int got;
            memcpy(&got, (const char *)&x + k->at, sizeof got);
            cr_expect_eq(got, v, "%s: field %d", set, got);
            clpdd_experiment_free(&x);
        }
    }
}

Test(config, name_functions_read_the_tables) {
    cr_expect_str_eq(clpdd_device_name(CLPDD_DEVICE_CUDA), "cuda");
    cr_expect_eq(clpdd_device_parse("cpu"), CLPDD_DEVICE_CPU);
    cr_expect_eq(clpdd_device_parse("gpu"), -1);
    cr_expect_eq(clpdd_device_parse(NULL), -1);
    cr_expect_str_eq(clpdd_device_name((clpdd_device_kind)7), "?");
    cr_expect_str_eq(clpdd_dataset_kind_name(CLPDD_DATASET_CIFAR100), "cifar100");
    cr_expect_str_eq(clpdd_protocol_name(CLPDD_PROTOCOL_LGM), "lgm");
    cr_expect_str_eq(clpdd_init_name(CLPDD_INIT_NOISE), "noise");
    cr_expect_str_eq(clpdd_precision_name(CLPDD_PRECISION_BF16), "bf16");
    cr_expect_eq(clpdd_precision_parse("tf32"), CLPDD_PRECISION_TF32);
    cr_expect_eq(clpdd_adapter_mode_parse("crop"), CLPDD_ADAPT_CROP);
    cr_expect_str_eq(clpdd_adapter_mode_name(CLPDD_ADAPT_PAD), "pad");
    cr_expect_eq(clpdd_param_kind_parse("pyramid"), CLPDD_PARAM_PYRAMID);
}

Test(config, section_enum_and_host_cfg_enum_give_the_index_in_choices) {
    static const clpdd_key keys[] = {{"mode", CLPDD_KEY_ENUM, "beta", "test", 1, 0, "alpha|beta|gamma"},
                                     {"other", CLPDD_KEY_ENUM, "alpha", "test", 1, 0, "alpha|alphabet"}};
    clpdd_err e = {{0}};
    clpdd_section *s = clpdd_section_from_string("solver", "other = alphabet", keys, 2, &e);
    cr_assert_not_null(s, "%s", e.msg);
    cr_expect_eq(clpdd_section_enum(s, "mode"), 1, "the default's index");
    cr_expect_eq(clpdd_section_enum(s, "other"), 1, "a name that extends another is its own");
    clpdd_section_put(s, "mode", "gamma", "<test>", 1);
    cr_assert_eq(clpdd_section_validate(s, keys, 2, &e), 0, "%s", e.msg);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    cr_expect_geq(h->abi_minor, 4);
    cr_assert_not_null(h->cfg_enum);
    cr_expect_eq(h->cfg_enum(h, s, "mode"), 2);
    clpdd_host_destroy(h);
    clpdd_section_destroy(s);
}

Test(config, a_plugin_built_for_minor_3_loads_and_runs) {
    clpdd_experiment x;
    clpdd_err e = {{0}};
    const char *ini = "[backbone]\nname = vit\n[solver]\nname = minor3\nmode = second\n[loss]\nname = ce\n";
    cr_assert_eq(load(ini, NULL, 0, &e, &x), 0, "%s", e.msg);
    cr_expect_eq(x.solver.desc->abi_minor, 3);
    cr_expect_lt(x.solver.desc->abi_minor, CLPDD_ABI_MINOR);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    const clpdd_solver_vt *vt = x.solver.desc->vtable;
    clpdd_solver_dims dims = {2, 3, 2, 4};
    void *self = NULL;
    cr_expect_eq(vt->create(h, x.solver_cfg, &dims, &self), 0);
    cr_expect_eq(*(const int *)self, 1, "the plugin read mode = second through cfg_str");
    vt->destroy(self);
    clpdd_host_destroy(h);
    clpdd_experiment_free(&x);
}

/* [distill] labels = learn needs a solver giving dY_s through a loss, and plain one-hot support
   targets (docs/design.md §1, "Learned labels") */
Test(config, learned_labels_refuse_an_objective_solver_and_an_encoding_loss) {
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = lgm\n[distill]\nlabels = learn\n", "x.ini:6",
                      "[distill] labels = learn", "solver 'lgm' matches the gradients of one-hot heads");
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = mse\n[distill]\nlabels = learn\n",
                      "x.ini:8", "[distill] labels = learn", "loss 'mse' encodes its own support targets");
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nlabels = soft\n",
                      "labels", "onehot", "learn");
    EXPECT_LOAD_ERROR("[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nlabels = learn\nlabel_init = 1\n",
                      "label_init");
    clpdd_experiment x;
    clpdd_err e = {{0}};
    cr_expect_eq(load("[backbone]\nname = vit\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nlabels = learn\n", NULL, 0,
                      &e, &x), 0, "%s", e.msg);
    cr_expect_eq(x.labels, CLPDD_LABELS_LEARN);
    cr_expect_float_eq(x.label_init, 0.9f, 1e-7);
    clpdd_experiment_free(&x);
}
