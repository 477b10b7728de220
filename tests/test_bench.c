/* `clpdd bench`: a scaled-down preset runs end to end on the CPU with random weights
 * and no data, writes its table and CSV, and its numbers hang together (LGM with DSA encodes
 * augs × m images and costs more FLOPs and memory than CLP-DD); bad arguments are usage errors
 * that write nothing. Timings are printed, never asserted. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/bench_cmd.h"
#include "clpdd/ops.h"
#include "config/experiment.h"
#include "bench/bench.h"
#include "support.h"
#include "util/util.h"

static int bench(const char *const *args, int n) {
    char *argv[32];
    for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
    return clpdd_cmd_bench(n, argv);
}

/* field k (0-based) of a CSV line, into out */
static void field(const char *line, int k, char *out, size_t n) {
    const char *p = line;
    for (int i = 0; i < k && p; i++) p = strchr(p, ','), p = p ? p + 1 : NULL;
    size_t len = p ? strcspn(p, ",\n") : 0;
    snprintf(out, n, "%.*s", (int)len, p ? p : "");
}

Test(bench, mini_preset_end_to_end) {
    char dir[] = "/tmp/clpdd-bench-XXXXXX";
    cr_assert(mkdtemp(dir));
    const char *args[] = {"--preset", "imagenet100-ipc1-mini", "--methods", "clpdd,lgm-dsa", "--steps", "2", "--warmup", "1",
                          "--gemm", "128", "--out", dir, "--quiet"};
    cr_assert_eq(bench(args, 13), 0, "bench failed");
    char path[256];
    snprintf(path, sizeof path, "%s/imagenet100-ipc1-mini.csv", dir);
    uint8_t *csv;
    size_t len;
    clpdd_err e;
    cr_assert_eq(clpdd_read_file(path, &csv, &len, &e), 0, "%s", e.msg);
    /* header + one row per method */
    char *save = NULL, *line = strtok_r((char *)csv, "\n", &save);
    cr_assert(line && strstr(line, "ms_median") && strstr(line, "gflop_per_step"));
    double flop[2] = {0}, peak[2] = {0}, ms[2] = {0};
    int m[2] = {0}, me[2] = {0}, rows = 0;
    char f[128];
    while ((line = strtok_r(NULL, "\n", &save)) && rows < 2) {
        field(line, 2, f, sizeof f);
        int k = !strcmp(f, "lgm-dsa");
        cr_expect(k || !strcmp(f, "clpdd"), "unexpected method %s", f);
        field(line, 4, f, sizeof f);
        cr_expect_str_eq(f, "fp32", "the CPU computes fp32");
        field(line, 6, f, sizeof f), m[k] = atoi(f);
        field(line, 7, f, sizeof f), me[k] = atoi(f);
        field(line, 11, f, sizeof f), ms[k] = atof(f);
        field(line, 14, f, sizeof f), peak[k] = atof(f);
        field(line, 15, f, sizeof f), flop[k] = atof(f);
        field(line, 22, f, sizeof f);
        cr_expect_str_eq(f, "", "no error: %s", line);
        rows++;
    }
    cr_assert_eq(rows, 2);
    cr_expect_eq(m[0], 100);
    cr_expect_eq(m[1], 100);
    cr_expect_eq(me[0], 100, "CLP-DD encodes the m images once");
    cr_expect_eq(me[1], 1000, "LGM+DSA encodes augs_per_batch = 10 copies");
    cr_expect(ms[0] > 0 && ms[1] > 0);
    cr_expect(flop[0] > 0 && flop[1] > 5 * flop[0], "FLOPs: clpdd %g, lgm-dsa %g GFLOP", flop[0], flop[1]);
    cr_expect(peak[1] > peak[0], "memory: clpdd %g, lgm-dsa %g bytes", peak[0], peak[1]);
    cr_log_info("clpdd %.1f ms %.3f GFLOP %.1f MiB; lgm-dsa %.1f ms %.3f GFLOP %.1f MiB", ms[0], flop[0], peak[0] / 1048576,
                ms[1], flop[1], peak[1] / 1048576);
    free(csv);
    snprintf(path, sizeof path, "%s/imagenet100-ipc1-mini.md", dir);
    uint8_t *md;
    cr_assert_eq(clpdd_read_file(path, &md, &len, &e), 0, "%s", e.msg);
    cr_expect(strstr((char *)md, "| clpdd | fp32 | 1 | 100 | 100 | 1000 |"), "%s", md);
    cr_expect(strstr((char *)md, "| lgm-dsa | fp32 | 1 | 100 | 1000 | 1000 |"), "%s", md);
    cr_expect(strstr((char *)md, "- fp32, ipc 1: time "), "the paper's ratio line:\n%s", md);
    free(md);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* --memory: the peak is reached at setup (ops never allocate, plugins do at create and
   tape_create), so it equals the peak of a run that takes steps: checked for both methods */
Test(bench, memory_only_is_the_stepped_peak) {
    const clpdd_ops *cpu = clpdd_ops_cpu();
    const char *ini[2] = {"[backbone]\nname = vit\nvariant = vit\nweights = random\nimage_size = 32\npatch = 8\ndim = 64\n"
                          "depth = 2\nheads = 2\n[solver]\nname = ridge\n[loss]\nname = ce\n[distill]\nipc = 2\nreal_batch = 64\n",
                          "[backbone]\nname = vit\nvariant = vit\nweights = random\nimage_size = 32\npatch = 8\ndim = 64\n"
                          "depth = 2\nheads = 2\n[solver]\nname = lgm\n[distill]\nipc = 2\nreal_batch = 64\naugment = dsa\n"
                          "augs_per_batch = 3\nchunk = 4\n"};
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    for (int i = 0; i < 2; i++) {
        size_t peak[2];
        for (int mem = 0; mem < 2; mem++) {
            clpdd_experiment x;
            clpdd_err e = {{0}};
            cr_assert_eq(clpdd_experiment_load_memory(&x, ini[i], "<test>", NULL, 0, &dirs, &e), 0, "%s", e.msg);
            clpdd_bench_opts bo = {2, 0, 5, 36, mem, 0};
            clpdd_run_opts ro = {.ops = cpu, .quiet = 1};
            clpdd_bench_result r;
            cr_assert_eq(clpdd_run_bench(&x, &ro, &bo, &r, &e), 0, "%s", e.msg);
            peak[mem] = r.peak_bytes;
            clpdd_experiment_free(&x);
        }
        cr_expect_eq(peak[0], peak[1], "%s: stepped peak %zu bytes, memory-only %zu", i ? "lgm-dsa" : "clpdd", peak[0], peak[1]);
    }
    clpdd_plugin_dirs_free(&dirs);
}

/* --jpeg: LGM + DSA reads generated JPEG files (with and without [data] prefetch), waits for them
   a measurable time, and the temporary folder is gone afterwards */
Test(bench, jpeg_folder_is_read_and_removed) {
    char tmp[] = "/tmp/clpdd-test-bench-jpeg-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    const char *was = getenv("TMPDIR");
    char *saved = was ? strdup(was) : NULL;
    setenv("TMPDIR", tmp, 1);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, NULL);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        char ini[512];
        snprintf(ini, sizeof ini,
                 "[data]\nprefetch = %s\nworkers = 2\n[backbone]\nname = vit\nvariant = vit\nweights = random\nimage_size = 16\n"
                 "patch = 8\ndim = 16\ndepth = 1\nheads = 2\n[solver]\nname = lgm\n[distill]\nipc = 1\nreal_batch = 24\n"
                 "augment = dsa\naugs_per_batch = 2\n",
                 prefetch ? "true" : "false");
        clpdd_experiment x;
        clpdd_err e = {{0}};
        cr_assert_eq(clpdd_experiment_load_memory(&x, ini, "<test>", NULL, 0, &dirs, &e), 0, "%s", e.msg);
        clpdd_bench_opts bo = {3, 1, 4, 16, 0, 1};
        clpdd_run_opts ro = {.ops = clpdd_ops_cpu(), .quiet = 1};
        clpdd_bench_result r;
        cr_assert_eq(clpdd_run_bench(&x, &ro, &bo, &r, &e), 0, "%s", e.msg);
        cr_expect(r.read_ms_median > 0 && r.read_ms_median <= r.ms_max, "prefetch %d: waited %g ms of a %g ms step", prefetch,
                  r.read_ms_median, r.ms_median);
        cr_expect_eq(r.n, 24);
        clpdd_experiment_free(&x);
    }
    clpdd_plugin_dirs_free(&dirs);
    if (saved) setenv("TMPDIR", saved, 1), free(saved);
    else unsetenv("TMPDIR");
    cr_expect_eq(rmdir(tmp), 0, "the generated folders are removed (%s empty)", tmp);
}

Test(bench, usage_errors) {
    const char *a1[] = {"--preset", "imagenet5k"};
    cr_expect_eq(bench(a1, 2), 2, "an unknown preset");
    const char *a2[] = {"--methods", "clpdd"};
    cr_expect_eq(bench(a2, 2), 2, "no preset");
    const char *a3[] = {"--preset", "imagenet100-ipc1-mini", "--precision", "fp16"};
    cr_expect_eq(bench(a3, 4), 2, "an unknown precision");
    const char *a4[] = {"--preset", "imagenet100-ipc1-mini", "--steps", "0"};
    cr_expect_eq(bench(a4, 4), 2, "no timed step");
    const char *a5[] = {"--preset", "imagenet100-ipc1-mini", "--methods", "clpdd", "--set", "distill.no_such_key=1", "--out",
                        "/tmp/clpdd-bench-never"};
    cr_expect_eq(bench(a5, 8), 2, "a --set the experiment refuses");
    cr_expect(access("/tmp/clpdd-bench-never", F_OK) != 0, "nothing written on a usage error");
    const char *a6[] = {"--preset"};
    cr_expect_eq(bench(a6, 1), 2, "a flag without its value");
    const char *a7[] = {"--list"};
    cr_expect_eq(bench(a7, 1), 0);
}
