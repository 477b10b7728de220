/* Sweeps: the grid (product, ranges, zip, plugin-conditional keys and the merging they cause),
 * --sweep, point names, the syntax errors, validation of every point before anything is written,
 * --list, --shard partitions, and (with the real mnist-vit weights and Fashion-MNIST) tiny real
 * sweeps: a failing point recorded while the others finish, a kill inside every point resumed
 * bit-for-bit, a kill between points, finished points skipped. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "sweep/sweep.h"
#include "cli/sweep_cmd.h"

static char root[256];
static clpdd_plugin_dirs dirs;

static void setup_dir(void) {
    snprintf(root, sizeof root, "/tmp/clpdd-test-sweep-%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", root, root);
    cr_assert_eq(system(cmd), 0);
    clpdd_plugin_dirs_init(&dirs, NULL);
}

static void teardown_dir(void) {
    clpdd_plugin_dirs_free(&dirs);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
}

/* a tiny experiment (real data, a few steps) + the given [sweep] lines; returns the file's path */
static const char *write_ini(const char *name, const char *base_extra, const char *sweep) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s.ini", root, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[experiment]\nseed = 0\n[data]\ntrain_limit = 300\ntest_limit = 200\nval_size = 50\ncache_dir = %s/../clpdd-test-sweep-cache\n"
            "[backbone]\nname = vit\nweights = mnist-vit.safetensors\n"
            "[solver]\nname = ridge\n[distill]\nipc = 1\nsteps = 4\nreal_batch = 64\ncheckpoint_every = 2\nlog_every = 1\n"
            "[eval]\nseeds = 1\nepochs = 20\n%s[sweep]\n%s",
            root, base_extra ? base_extra : "", sweep);
    fclose(f);
    return path;
}

static int expand(clpdd_sweep *s, const char *path, const char *const *sweeps, int n_sweeps, clpdd_err *e) {
    clpdd_sweep_opts o = {NULL, 0, sweeps, n_sweeps, NULL, &dirs};
    return clpdd_sweep_expand(s, path, &o, e);
}

static int has_point(const clpdd_sweep *s, const char *name) {
    for (int i = 0; i < s->n_points; i++)
        if (strcmp(s->points[i].name, name) == 0) return 1;
    return 0;
}

Test(sweep, product_ranges_order_and_names, .init = setup_dir, .fini = teardown_dir) {
    const char *p = write_ini("grid", "[loss]\nname = ce\n", "solver.lambda = 0.1, 1, 10\nexperiment.seed = 0..1\n");
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    cr_expect_eq(s.n_points, 6);
    cr_expect_eq(s.n_grid, 6);
    cr_expect_str_eq(s.name, "grid");
    /* the first key varies slowest */
    cr_expect_str_eq(s.points[0].name, "lambda=0.1,seed=0");
    cr_expect_str_eq(s.points[1].name, "lambda=0.1,seed=1");
    cr_expect_str_eq(s.points[5].name, "lambda=10,seed=1");
    char want[600];
    snprintf(want, sizeof want, "runs/grid/lambda=10,seed=1");
    cr_expect_str_eq(s.points[5].dir, want);
    int found = 0;
    for (int i = 0; i < s.points[3].n_sets; i++) found += !strcmp(s.points[3].sets[i], "solver.lambda=1") + !strcmp(s.points[3].sets[i], "experiment.seed=1");
    cr_expect_eq(found, 2, "point 3 sets solver.lambda=1 and experiment.seed=1");
    clpdd_sweep_free(&s);
}

Test(sweep, zip_pairs_lists, .init = setup_dir, .fini = teardown_dir) {
    const char *p = write_ini("zip", "[loss]\nname = ce\n",
                              "solver.lambda = 0.1, 1\nloss.temperature = 0.01, 0.1\nexperiment.seed = 0..2\nzip = solver.lambda, loss.temperature\n");
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    cr_expect_eq(s.n_points, 6, "2 zipped pairs x 3 seeds, not 2 x 2 x 3");
    cr_expect(has_point(&s, "lambda=0.1,temperature=0.01,seed=2"));
    cr_expect(has_point(&s, "lambda=1,temperature=0.1,seed=0"));
    cr_expect(!has_point(&s, "lambda=0.1,temperature=0.1,seed=0"));
    clpdd_sweep_free(&s);
}

Test(sweep, plugin_conditional_keys_merge_points, .init = setup_dir, .fini = teardown_dir) {
    /* lgm takes no [loss]: 2 losses x lgm = one point per seed; mse has no temperature: one mse
       point per seed; lambda: ridge's key, not lgm's */
    const char *p = write_ini("cond", NULL,
                              "solver.name = ridge, lgm\nloss.name = ce, mse\nloss.temperature = 0.1\nsolver.lambda = 0.3\nexperiment.seed = 0..1\n");
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    cr_expect_eq(s.n_grid, 8);
    cr_expect_eq(s.n_points, 6, "ridge+ce, ridge+mse, lgm; x 2 seeds");
    cr_expect(has_point(&s, "solver=ridge,loss=ce,seed=0"));
    cr_expect(has_point(&s, "solver=ridge,loss=mse,seed=1"));
    cr_expect(has_point(&s, "solver=lgm,seed=0"));
    cr_expect(has_point(&s, "solver=lgm,seed=1"));
    for (int i = 0; i < s.n_points; i++)
        if (strstr(s.points[i].name, "lgm"))
            for (int k = 0; k < s.points[i].n_sets; k++) cr_expect(strncmp(s.points[i].sets[k], "loss.", 5) != 0);
    clpdd_sweep_opts o = {NULL, 0, NULL, 0, NULL, &dirs};
    cr_expect_eq(clpdd_sweep_validate(&s, &o, &e), 0, "every point loads: %s", e.msg);
    clpdd_sweep_free(&s);
}

Test(sweep, command_line_sweep_adds_and_replaces, .init = setup_dir, .fini = teardown_dir) {
    const char *p = write_ini("cli", "[loss]\nname = ce\n", "solver.lambda = 0.1, 1\n");
    const char *sw[] = {"solver.lambda=5", "loss.name=ce,mse"};
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, sw, 2, &e), 0, "%s", e.msg);
    cr_expect_eq(s.n_points, 2);
    cr_expect_str_eq(s.points[0].name, "loss=ce"); /* one lambda: not in the name */
    cr_expect_str_eq(s.points[1].name, "loss=mse");
    cr_expect_str_eq(s.points[1].sets[0], "solver.lambda=5");
    cr_expect_str_eq(s.keys[0].where, "--sweep");
    clpdd_sweep_free(&s);
}

static void expect_error(const char *sweep, const char *const *cli, int n_cli, const char *needle) {
    const char *p = write_ini("bad", "[loss]\nname = ce\n", sweep);
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_expect_eq(expand(&s, p, cli, n_cli, &e), -1, "accepted: %s", sweep);
    cr_expect(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
}

Test(sweep, syntax_errors_name_the_line, .init = setup_dir, .fini = teardown_dir) {
    expect_error("solver.lambda = 0.1, , 1\n", NULL, 0, "bad.ini:25: [sweep] solver.lambda = '0.1, , 1': empty value");
    expect_error("lambda = 1, 2\n", NULL, 0, "bad.ini:25: [sweep] 'lambda': expected section.key");
    expect_error("experiment.seed = 5..1\n", NULL, 0, "range '5..1' must be a..b with a <= b");
    expect_error("solver.lambda = 1, 2\nloss.temperature = 1\nzip = solver.lambda, loss.temperature\n", NULL, 0,
                 "bad.ini:27: [sweep] zip: 'loss.temperature' has 1 values but 'solver.lambda' has 2");
    expect_error("solver.lambda = 1, 2\nzip = solver.lambda, solver.nope\n", NULL, 0, "'solver.nope' is not a swept key");
    expect_error("solver.lamda = 1, 2\n", NULL, 0, "bad.ini:25: [sweep] solver.lamda applies at no point");
    expect_error("eval.seeds = 1\n", (const char *[]){"solver.lambda"}, 1, "--sweep 'solver.lambda': expected section.key=v1,v2");
    /* a section no run has: the file and line, not "--set: unknown section" from a point's load */
    expect_error("bogus.key = 1, 2\n", NULL, 0, "bad.ini:25: [sweep] bogus.key: no section [bogus] (known: experiment");
    expect_error("eval.seeds = 1\n", (const char *[]){"bogus.key=1,2"}, 1, "--sweep: [sweep] bogus.key: no section [bogus]");
    /* the points' own directories and names are the sweep's: a swept value would be overridden unseen */
    expect_error("experiment.output = a, b\n", NULL, 0, "bad.ini:25: [sweep] experiment.output: a sweep names each point");
    expect_error("experiment.name = a, b\n", NULL, 0, "bad.ini:25: [sweep] experiment.name: a sweep names each point");
}

static const char *name_of(const clpdd_sweep *s, const char *set) {
    for (int i = 0; i < s->n_points; i++)
        for (int k = 0; k < s->points[i].n_sets; k++)
            if (!strcmp(s->points[i].sets[k], set)) return s->points[i].name;
    return NULL;
}

/* point names are injective and depend on the point's own values: values that sanitise alike get
   different names (readable part + hash), whatever the order or the other values of the list;
   plain values keep their plain names */
Test(sweep, point_names_injective_and_stable, .init = setup_dir, .fini = teardown_dir) {
    const char *p = write_ini("names", "[loss]\nname = ce\n", "data.root = /d/x_y, /d/x/y, x_y, .hidden\n");
    clpdd_sweep s, t;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(s.n_points, 4);
    const char *a = name_of(&s, "data.root=/d/x_y"), *b = name_of(&s, "data.root=/d/x/y");
    cr_assert(a && b);
    cr_expect_str_neq(a, b);
    cr_expect(strncmp(a, "root=_d_x_y~", 12) == 0 && strlen(a) == 12 + 16, "%s", a);
    cr_expect(strncmp(b, "root=_d_x_y~", 12) == 0 && strlen(b) == 12 + 16, "%s", b);
    cr_expect_str_eq(name_of(&s, "data.root=x_y"), "root=x_y", "a plain value keeps its plain name");
    cr_expect_str_eq(name_of(&s, "data.root=.hidden"), "root=.hidden", "a '.' inside the name hides nothing");
    /* another list, another order: the same value, the same directory */
    p = write_ini("names", "[loss]\nname = ce\n", "data.root = /d/x/y, /d/z\n");
    cr_assert_eq(expand(&t, p, NULL, 0, &e), 0, "%s", e.msg);
    cr_expect_str_eq(name_of(&t, "data.root=/d/x/y"), b);
    clpdd_sweep_free(&t);
    clpdd_sweep_free(&s);
    /* a name too long for one path component: 180 readable characters + '~' + hash */
    char sw[700];
    snprintf(sw, sizeof sw, "data.root = a, %0250d\n", 7);
    p = write_ini("names", "[loss]\nname = ce\n", sw);
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    cr_expect_eq(strlen(s.points[1].name), 180 + 17, "%s", s.points[1].name);
    cr_expect_eq(s.points[1].name[180], '~');
    clpdd_sweep_free(&s);
}

Test(sweep, every_point_validated_before_anything_is_written, .init = setup_dir, .fini = teardown_dir) {
    /* point 3 (ipc = -1) is invalid: the sweep stops naming the [sweep] line, nothing is written */
    const char *p = write_ini("val", "[loss]\nname = ce\n", "experiment.seed = 0..1\ndistill.ipc = 1, -1\n");
    char cwd[600], out[600];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(root), 0);
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    clpdd_sweep_opts o = {NULL, 0, NULL, 0, NULL, &dirs};
    clpdd_sweep_run_opts ro = {clpdd_ops_cpu(), 1, 0, 1, 1};
    clpdd_sweep_result res;
    cr_expect_eq(clpdd_sweep_run(&s, &o, &ro, &res, &e), -1);
    cr_expect(strstr(e.msg, "val.ini:26: [sweep] distill.ipc: point 1 of 4 (seed=0,ipc=-1)") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "[distill] ipc = '-1'") != NULL, "%s", e.msg);
    cr_expect_eq(res.ran + res.failed + res.skipped, 0);
    snprintf(out, sizeof out, "%s/runs", root);
    cr_expect(access(out, F_OK) != 0, "%s was created", out);
    /* the command says the same, exits 2, writes nothing (--list too) */
    char *argv[] = {(char *)p, "--list", NULL};
    cr_expect_eq(clpdd_cmd_sweep(2, argv), 2);
    char *argv2[] = {(char *)p, NULL};
    cr_expect_eq(clpdd_cmd_sweep(1, argv2), 2);
    cr_expect(access(out, F_OK) != 0, "%s was created", out);
    clpdd_sweep_free(&s);
    cr_assert_eq(chdir(cwd), 0);
}

Test(sweep, shards_partition_the_points, .init = setup_dir, .fini = teardown_dir) {
    const char *p = write_ini("shard", "[loss]\nname = ce\n", "solver.lambda = 0.1, 1\nexperiment.seed = 0..4\n");
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(s.n_points, 10);
    for (int N = 1; N <= 4; N++) {
        int count[10] = {0};
        for (int i = 0; i < N; i++)
            for (int k = 0; k < s.n_points; k++) count[k] += clpdd_sweep_in_shard(k, i, N);
        for (int k = 0; k < s.n_points; k++) cr_expect_eq(count[k], 1, "N=%d: point %d in %d shards", N, k, count[k]);
    }
    clpdd_sweep_free(&s);
}

/* run clpdd_cmd_sweep with stdout into a file; returns the text */
static char *capture(int argc, char **argv, int *rc) {
    char path[600];
    snprintf(path, sizeof path, "%s/stdout.txt", root);
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(fd >= 0 && saved >= 0);
    dup2(fd, 1);
    close(fd);
    *rc = clpdd_cmd_sweep(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    uint8_t *d;
    size_t n;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(path, &d, &n, &e), 0);
    return (char *)d;
}

Test(sweep, list_prints_points_and_runs_nothing, .init = setup_dir, .fini = teardown_dir) {
    const char *p = write_ini("lst", NULL, "solver.name = ridge, lgm\nloss.name = ce, mse\n");
    char out[600];
    snprintf(out, sizeof out, "%s/out", root);
    char *argv[] = {(char *)p, "--list", "--output", out, "--shard", "0/2", NULL};
    int rc;
    char *text = capture(6, argv, &rc);
    cr_expect_eq(rc, 0);
    char want[800];
    cr_expect(strstr(text, "sweep lst: 3 points (4 in the grid; 1 merged") != NULL, "%s", text);
    cr_expect(strstr(text, "2 in shard 0/2") != NULL, "%s", text);
    snprintf(want, sizeof want, "[0] solver=ridge,loss=ce\n    dir   %s/solver=ridge,loss=ce\n    state new\n"
                                "    set   --set solver.name=ridge --set loss.name=ce\n", out);
    cr_expect(strstr(text, want) != NULL, "%s", text);
    cr_expect(strstr(text, "[2] solver=lgm\n") != NULL, "%s", text);
    cr_expect(strstr(text, "[1] ") == NULL, "point 1 is in shard 1/2:\n%s", text);
    cr_expect(access(out, F_OK) != 0, "--list wrote %s", out);
    free(text);
}

/* <dir>/<file> = text */
static void put(const char *dir, const char *file, const char *text) {
    char path[900];
    clpdd_err e;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(clpdd_mkdirs(dir, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_write_file_atomic(path, text, strlen(text), &e), 0, "%s", e.msg);
}

/* removes from text the whole line that starts with prefix (the test fails without one) */
static void remove_line(char *text, const char *prefix) {
    char want[200];
    snprintf(want, sizeof want, "\n%s", prefix);
    char *at = strstr(text, want);
    cr_assert_not_null(at, "no line '%s' in %s", prefix, text);
    char *end = strchr(at + 1, '\n');
    memmove(at, end ? end : at + strlen(at), strlen(end ? end : at + strlen(at)) + 1);
}

/* a finished point of another configuration is kept: the sweep refuses to start, naming the
   point, the first difference and how to proceed, and --list says stale; the same run under
   another root (only experiment.output and .name differ) is done and skipped */
Test(sweep, finished_point_of_another_configuration_refused, .init = setup_dir, .fini = teardown_dir) {
    const char *p = write_ini("stale", "[loss]\nname = ce\n", "solver.lambda = 0.1, 1\n");
    char out[600], mpath[900];
    snprintf(out, sizeof out, "%s/stale-runs", root);
    clpdd_sweep s;
    clpdd_err e = {{0}};
    clpdd_sweep_opts o = {NULL, 0, NULL, 0, out, &dirs};
    cr_assert_eq(clpdd_sweep_expand(&s, p, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_sweep_validate(&s, &o, &e), 0, "%s", e.msg);
    const char *metrics = "{\"accuracy\": {\"mean\": 0.5}}\n";
    for (int i = 0; i < 2; i++) {
        put(s.points[i].dir, "metrics.json", metrics);
        put(s.points[i].dir, "config.ini", s.points[i].resolved);
    }
    /* point 0 ran under another root: moved, not another configuration */
    char *moved = clpdd_xstrdup(s.points[0].resolved), *at = strstr(moved, "\noutput = ");
    cr_assert_not_null(at);
    at[1] = '#';
    put(s.points[0].dir, "config.ini", moved);
    free(moved);
    cr_expect_eq(clpdd_sweep_point_state(&s.points[0], NULL), CLPDD_POINT_DONE);
    /* point 1 ran before a core key existed: absent there and at its default now is the same
       configuration; a key absent there whose value now is not its default is another one */
    char *older = clpdd_xstrdup(s.points[1].resolved);
    remove_line(older, "baseline_neighbors = true");
    put(s.points[1].dir, "config.ini", older);
    cr_expect_eq(clpdd_sweep_point_state(&s.points[1], NULL), CLPDD_POINT_DONE);
    remove_line(older, "steps = 4");
    put(s.points[1].dir, "config.ini", older);
    cr_expect_eq(clpdd_sweep_point_state(&s.points[1], NULL), CLPDD_POINT_STALE);
    put(s.points[1].dir, "config.ini", s.points[1].resolved);
    free(older);
    clpdd_sweep_run_opts ro = {clpdd_ops_cpu(), 1, 0, 1, 1};
    clpdd_sweep_result res;
    cr_expect_eq(clpdd_sweep_run(&s, &o, &ro, &res, &e), 0, "%s", e.msg);
    cr_expect(res.skipped == 2 && res.ran == 0 && res.failed == 0);
    clpdd_sweep_free(&s);
    /* the same sweep with --set distill.steps=5: refused, nothing touched */
    const char *sets[] = {"distill.steps=5"};
    o.sets = sets, o.n_sets = 1;
    cr_assert_eq(clpdd_sweep_expand(&s, p, &o, &e), 0, "%s", e.msg);
    cr_expect_eq(clpdd_sweep_run(&s, &o, &ro, &res, &e), -1);
    cr_expect(strstr(e.msg, "sweep stale: point 0 (lambda=0.1) finished with another configuration ([distill] steps: '4' in its "
                            "config.ini, '5' now)") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "2 points are in this state") != NULL, "%s", e.msg);
    char want[900];
    snprintf(want, sizeof want, "(--output DIR); to replace it, remove %s/lambda=0.1", out);
    cr_expect(strstr(e.msg, want) != NULL, "%s", e.msg);
    cr_expect_eq(res.ran + res.skipped + res.failed, 0);
    snprintf(mpath, sizeof mpath, "%s/metrics.json", s.points[1].dir);
    uint8_t *d;
    size_t n;
    cr_assert_eq(clpdd_read_file(mpath, &d, &n, &e), 0, "%s", e.msg);
    cr_expect(n == strlen(metrics) && !memcmp(d, metrics, n), "metrics.json was touched");
    free(d);
    clpdd_sweep_free(&s);
    /* the command: --list says stale, a run exits 2 */
    char *argv[] = {(char *)p, "--list", "--output", out, "--set", "distill.steps=5", NULL};
    int rc;
    char *text = capture(6, argv, &rc);
    cr_expect_eq(rc, 0);
    cr_expect(strstr(text, "[1] lambda=1\n") && strstr(text, "state stale (finished with another configuration"), "%s", text);
    cr_expect(strstr(text, "state done") == NULL, "%s", text);
    free(text);
    char *argv2[] = {(char *)p, "--output", out, "--set", "distill.steps=5", "--quiet", NULL};
    cr_expect_eq(clpdd_cmd_sweep(6, argv2), 2);
}

/* ---- real runs ---- */

static const char *skip_reason(void) {
    if (!test_model_file("mnist-vit.safetensors")) return "mnist-vit.safetensors not in CLPDD_MODEL_PATH";
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK))
        return "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
    return NULL;
}

static void run_sweep(const char *path, const char *out, int shard_i, int shard_n, clpdd_sweep_result *res) {
    clpdd_sweep s;
    clpdd_err e = {{0}};
    clpdd_sweep_opts o = {NULL, 0, NULL, 0, out, &dirs};
    cr_assert_eq(clpdd_sweep_expand(&s, path, &o, &e), 0, "%s", e.msg);
    clpdd_sweep_run_opts ro = {clpdd_ops_cpu(), 1, shard_i, shard_n, 1};
    cr_assert_eq(clpdd_sweep_run(&s, &o, &ro, res, &e), 0, "%s", e.msg);
    clpdd_sweep_free(&s);
}

static int file_in(const char *dir, const char *point, const char *file) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s/%s", dir, point, file);
    return access(p, F_OK) == 0;
}

static uint8_t *read_in(const char *dir, const char *point, const char *file, size_t *n) {
    char p[900];
    snprintf(p, sizeof p, "%s/%s/%s", dir, point, file);
    uint8_t *d;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(p, &d, n, &e), 0, "%s", e.msg);
    return d;
}

Test(sweep, failing_point_recorded_others_finish, .init = setup_dir, .fini = teardown_dir, .timeout = 300) {
    const char *why = skip_reason();
    if (why) cr_skip_test("%s", why);
    /* the second root has no IDX files: validation can't know, the run fails */
    const char *p = write_ini("fail", "[loss]\nname = ce\n", "data.root = /usr/share/datasets/fashion-mnist, /nonexistent\n");
    char out[600];
    snprintf(out, sizeof out, "%s/fail-runs", root);
    clpdd_sweep_result res;
    run_sweep(p, out, 0, 1, &res);
    cr_expect_eq(res.ran, 1);
    cr_expect_eq(res.failed, 1);
    /* paths as values: readable names + a hash of the exact value */
    clpdd_sweep s;
    clpdd_err e = {{0}};
    cr_assert_eq(expand(&s, p, NULL, 0, &e), 0, "%s", e.msg);
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s", name_of(&s, "data.root=/usr/share/datasets/fashion-mnist"));
    snprintf(bad, sizeof bad, "%s", name_of(&s, "data.root=/nonexistent"));
    clpdd_sweep_free(&s);
    cr_expect(strncmp(good, "root=_usr_share_datasets_fashion-mnist~", 39) == 0, "%s", good);
    cr_expect(strncmp(bad, "root=_nonexistent~", 18) == 0, "%s", bad);
    cr_expect(file_in(out, good, "metrics.json"));
    cr_expect(file_in(out, bad, "error.txt"));
    cr_expect(!file_in(out, bad, "metrics.json"));
    size_t n;
    char *err = (char *)read_in(out, bad, "error.txt", &n);
    cr_expect(strstr(err, "/nonexistent") != NULL, "%s", err);
    free(err);
    /* the command: exit 1, summary.md lists the failure */
    char *argv[] = {(char *)p, "--output", out, "--quiet", NULL};
    cr_expect_eq(clpdd_cmd_sweep(4, argv), 1);
    char *md = (char *)read_in(out, ".", "summary.md", &n);
    cr_expect(strstr(md, "## Failed runs (1)") != NULL, "%s", md);
    cr_expect(strstr(md, bad) != NULL, "%s", md);
    free(md);
}

Test(sweep, resume_inside_and_between_points_skip_finished, .init = setup_dir, .fini = teardown_dir, .timeout = 600) {
    const char *why = skip_reason();
    if (why) cr_skip_test("%s", why);
    const char *p = write_ini("res", NULL, "loss.name = ce, mse\nexperiment.seed = 0..1\n");
    char out[600], ref[600];
    snprintf(out, sizeof out, "%s/res-runs", root);
    snprintf(ref, sizeof ref, "%s/ref-runs", root);
    clpdd_sweep_result res;
    /* killed inside every point after step 3 (checkpoint at step 2) */
    setenv("CLPDD_TEST_CRASH_AFTER", "3", 1);
    run_sweep(p, out, 0, 1, &res);
    unsetenv("CLPDD_TEST_CRASH_AFTER");
    cr_expect_eq(res.failed, 4);
    cr_expect(file_in(out, "loss=ce,seed=0", "checkpoint.safetensors"));
    cr_expect(file_in(out, "loss=ce,seed=0", "error.txt"));
    /* rerun: every point resumes from its checkpoint and finishes */
    run_sweep(p, out, 0, 1, &res);
    cr_expect_eq(res.ran, 4);
    cr_expect_eq(res.failed, 0);
    cr_expect(!file_in(out, "loss=mse,seed=1", "error.txt"));
    cr_expect(!file_in(out, "loss=mse,seed=1", "checkpoint.safetensors"));
    /* bit-for-bit the uninterrupted point (same sweep file, another root; shard 0/4 = point 0) */
    run_sweep(p, ref, 0, 4, &res);
    cr_expect_eq(res.ran, 1);
    size_t na, nb;
    uint8_t *a = read_in(out, "loss=ce,seed=0", "distilled.safetensors", &na);
    uint8_t *b = read_in(ref, "loss=ce,seed=0", "distilled.safetensors", &nb);
    cr_expect(na == nb && memcmp(a, b, na) == 0, "resumed point differs from the uninterrupted one");
    free(a), free(b);
    /* everything finished: a rerun skips all */
    run_sweep(p, out, 0, 1, &res);
    cr_expect_eq(res.skipped, 4);
    cr_expect_eq(res.ran, 0);
    /* killed between points: one point's results gone, only it runs again */
    char m[900];
    snprintf(m, sizeof m, "%s/loss=mse,seed=0/metrics.json", out);
    cr_assert_eq(unlink(m), 0);
    run_sweep(p, out, 0, 1, &res);
    cr_expect_eq(res.ran, 1);
    cr_expect_eq(res.skipped, 3);
    /* a changed configuration is not "finished", and its results are not replaced: refused */
    write_ini("res", "[distill]\nlr = 0.02\n", "loss.name = ce, mse\nexperiment.seed = 0..1\n");
    clpdd_sweep s;
    clpdd_err e = {{0}};
    clpdd_sweep_opts o = {NULL, 0, NULL, 0, out, &dirs};
    cr_assert_eq(clpdd_sweep_expand(&s, p, &o, &e), 0, "%s", e.msg);
    clpdd_sweep_run_opts ro = {clpdd_ops_cpu(), 1, 0, 2, 1};
    cr_expect_eq(clpdd_sweep_run(&s, &o, &ro, &res, &e), -1);
    cr_expect(strstr(e.msg, "point 0 (loss=ce,seed=0) finished with another configuration ([distill] lr: '0.01' in its "
                            "config.ini, '0.02' now)") != NULL, "%s", e.msg);
    cr_expect_eq(res.ran + res.skipped + res.failed, 0);
    clpdd_sweep_free(&s);
    size_t n0, n1;
    uint8_t *m0 = read_in(out, "loss=ce,seed=0", "distilled.safetensors", &n0);
    uint8_t *m1 = read_in(ref, "loss=ce,seed=0", "distilled.safetensors", &n1);
    cr_expect(n0 == n1 && memcmp(m0, m1, n0) == 0, "the finished point's results were replaced");
    free(m0), free(m1);
}

/* a point's config.ini is compared with its resolved configuration through the INI reader:
   comments, "; default" marks, spacing, CRLF and key order aside; a changed, missing or extra
   value, or a file that does not parse, is another configuration */
Test(sweep, config_ini_equal_through_the_ini_reader) {
    const char *resolved = "; resolved configuration of a.ini (every key, defaults marked)\n\n[experiment]\nname = a\n"
                           "seed = 0    ; default\n\n[solver]\nname = ridge\nlambda = 1e-3\n\n";
    cr_expect(clpdd_config_text_equal(resolved, resolved));
    cr_expect(clpdd_config_text_equal(resolved, "; resolved configuration of /elsewhere/a.ini\n[experiment]\nname = a\n"
                                                "seed = 0\n[solver]\nname = ridge\nlambda = 1e-3    ; --set\n"));
    cr_expect(clpdd_config_text_equal(resolved, "# edited\r\n[solver]\r\nlambda=1e-3\r\nname: ridge\r\n"
                                                "[experiment]\r\nseed = 0 ; was 1\r\nname = a\r\n"));
    cr_expect(!clpdd_config_text_equal(resolved, "[experiment]\nname = a\nseed = 1\n[solver]\nname = ridge\nlambda = 1e-3\n"));
    cr_expect(!clpdd_config_text_equal(resolved, "[experiment]\nname = a\nseed = 0\n[solver]\nname = ridge\n"));
    cr_expect(!clpdd_config_text_equal(resolved, "[experiment]\nname = a\nseed = 0\n[solver]\nname = ridge\nlambda = 1e-3\n"
                                                 "bias = true\n"));
    cr_expect(!clpdd_config_text_equal(resolved, "[experiment]\nname = a\nseed = 0\n[solver]\nname = ridge\nlambda = 1e-3\n"
                                                 "[loss]\nname = ce\n"));
    cr_expect(!clpdd_config_text_equal(resolved, "[experiment]\nname = a\nseed = 0\n[solver\nname = ridge\nlambda = 1e-3\n"));
    cr_expect(!clpdd_config_text_equal("[solver]\nlambda = 1\nlambda = 1\n", "[solver]\nlambda = 1\n"), "a key set twice");
    cr_expect(clpdd_config_text_equal("", "; only a comment\n"));
}

/* the state of a point's directory follows its config.ini as the INI reader reads it */
Test(sweep, point_state_reads_config_ini, .init = setup_dir, .fini = teardown_dir) {
    char dir[400], path[600];
    snprintf(dir, sizeof dir, "%s/point", root);
    clpdd_sweep_point p = {.name = "point", .dir = dir};
    const char *resolved = "; resolved configuration of a.ini\n\n[distill]\nsteps = 4\nlr = 0.01    ; default\n\n";
    cr_expect_eq(clpdd_sweep_point_state(&p, resolved), CLPDD_POINT_NEW);
    clpdd_err e;
    cr_assert_eq(clpdd_mkdirs(dir, &e), 0);
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    cr_assert_eq(clpdd_write_file_atomic(path, "{}", 2, &e), 0);
    cr_expect_eq(clpdd_sweep_point_state(&p, resolved), CLPDD_POINT_STALE, "no config.ini");
    snprintf(path, sizeof path, "%s/config.ini", dir);
    const char *edited = "[distill]\nlr=0.01\nsteps = 4 ; checked by hand\n";
    cr_assert_eq(clpdd_write_file_atomic(path, edited, strlen(edited), &e), 0);
    cr_expect_eq(clpdd_sweep_point_state(&p, resolved), CLPDD_POINT_DONE);
    const char *damaged = "[distill]\nsteps = 4\nlr 0.01\n";
    cr_assert_eq(clpdd_write_file_atomic(path, damaged, strlen(damaged), &e), 0);
    cr_expect_eq(clpdd_sweep_point_state(&p, resolved), CLPDD_POINT_STALE);
    cr_expect_eq(clpdd_sweep_point_state(&p, NULL), CLPDD_POINT_DONE, "no resolved configuration: not told apart");
}
