/* meanproj_check: the example plugin tested without the driver — a mock clpdd_host over the
 * installed runtime's CPU ops (clpdd_ops_cpu(), public in clpdd/ops.h), the plugin loaded with
 * dlopen as the driver loads it, its keys' defaults as its config, and the backward checked
 * against central finite differences of its own forward along random directions:
 *   ⟨dimages, v⟩ ≈ (⟨r, f(x + εv)⟩ − ⟨r, f(x − εv)⟩) / 2ε,  dimages = backward(r).
 * Exit status 0 = pass. */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"

static const clpdd_plugin *g_desc;
static char g_error[1024];

static void *m_alloc(const clpdd_host *h, size_t bytes) { return h->ops->malloc(bytes ? bytes : 1); }
static void m_free(const clpdd_host *h, void *p) { h->ops->free(p); }
static void m_error(const clpdd_host *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
}
static void m_print(const clpdd_host *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
/* the section is ignored: every key takes its declared default */
static const char *dflt(const char *key) {
    for (int i = 0; i < g_desc->n_keys; i++)
        if (!strcmp(g_desc->keys[i].name, key)) return g_desc->keys[i].default_value;
    fprintf(stderr, "meanproj_check: the plugin asked for undeclared key %s\n", key);
    abort();
}
static long long m_int(const clpdd_host *h, const clpdd_section *s, const char *k) { return strtoll(dflt(k), 0, 10); }
static double m_float(const clpdd_host *h, const clpdd_section *s, const char *k) { return strtod(dflt(k), 0); }
static int m_bool(const clpdd_host *h, const clpdd_section *s, const char *k) { return !strcmp(dflt(k), "true"); }
static const char *m_str(const clpdd_host *h, const clpdd_section *s, const char *k) { return dflt(k); }
static int m_floats(const clpdd_host *h, const clpdd_section *s, const char *k, double *out, int max) {
    const char *p = dflt(k);
    int n = 0;
    for (char *end; *p && n < max; p = end) {
        out[n++] = strtod(p, &end);
        while (*end == ',' || *end == ' ') end++;
    }
    return n;
}
static int m_is_set(const clpdd_host *h, const clpdd_section *s, const char *k) { return 0; }

static double objective(const clpdd_backbone_vt *vt, void *bb, const clpdd_ops *ops, float *dev_x, float *dev_f,
                        const float *x, const double *r, int n, int d, size_t nin, float *f) {
    ops->to_device(dev_x, x, nin * sizeof(float));
    if (vt->forward(bb, dev_f, dev_x, n, NULL)) return NAN;
    ops->to_host(f, dev_f, (size_t)n * d * sizeof(float));
    double s = 0;
    for (int i = 0; i < n * d; i++) s += r[i] * f[i];
    return s;
}

int main(void) {
    void *dl = dlopen(MEANPROJ_SO, RTLD_NOW | RTLD_LOCAL);
    if (!dl) return fprintf(stderr, "cannot open %s: %s\n", MEANPROJ_SO, dlerror()), 1;
    clpdd_plugin_entry_fn entry = (clpdd_plugin_entry_fn)dlsym(dl, CLPDD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) return fprintf(stderr, "%s: no %s\n", MEANPROJ_SO, CLPDD_PLUGIN_ENTRY_SYMBOL), 1;
    g_desc = entry();
    if (g_desc->abi_major != CLPDD_ABI_MAJOR || g_desc->kind != CLPDD_KIND_BACKBONE) return 1;
    const clpdd_backbone_vt *vt = g_desc->vtable;

    clpdd_host host = {CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR, clpdd_ops_cpu(), NULL, 0, m_alloc, m_free, m_error,
                       m_print, m_print, m_int, m_float, m_bool, m_str, m_floats, m_is_set,
                       NULL, NULL, NULL, NULL};
    const clpdd_ops *ops = host.ops;
    void *bb = NULL, *tape = NULL;
    if (vt->create(&host, NULL, &bb)) return fprintf(stderr, "create: %s\n", g_error), 1;
    clpdd_backbone_info info;
    vt->describe(bb, &info);
    const int n = 3, d = info.feature_dim;
    const size_t nin = (size_t)n * info.channels * info.height * info.width;
    if (vt->tape_create(bb, n, &tape)) return fprintf(stderr, "tape: %s\n", g_error), 1;

    float *x = malloc(nin * sizeof(float)), *xp = malloc(nin * sizeof(float)), *v = malloc(nin * sizeof(float));
    float *g = malloc(nin * sizeof(float)), *f = malloc((size_t)n * d * sizeof(float));
    float *rf = malloc((size_t)n * d * sizeof(float));
    double *r = malloc((size_t)n * d * sizeof(double));
    srand(7);
    for (size_t i = 0; i < nin; i++) x[i] = 2.0f * rand() / RAND_MAX - 1.0f;
    for (int i = 0; i < n * d; i++) r[i] = rf[i] = 2.0f * rand() / RAND_MAX - 1.0f;
    float *dev_x = ops->malloc(nin * sizeof(float)), *dev_f = ops->malloc((size_t)n * d * sizeof(float));
    float *dev_r = ops->malloc((size_t)n * d * sizeof(float)), *dev_g = ops->malloc(nin * sizeof(float));
    ops->to_device(dev_x, x, nin * sizeof(float));
    ops->to_device(dev_r, rf, (size_t)n * d * sizeof(float));
    if (vt->forward(bb, dev_f, dev_x, n, tape) || vt->backward(bb, dev_g, dev_r, n, tape))
        return fprintf(stderr, "forward/backward: %s\n", g_error), 1;
    ops->to_host(g, dev_g, nin * sizeof(float));

    /* ε = 1e-2 in fp32: truncation ~ε²·|f'''| ≈ 1e-4 relative, rounding ~6e-8/ε ≈ 1e-5 */
    double worst = 0;
    for (int trial = 0; trial < 4; trial++) {
        for (size_t i = 0; i < nin; i++) v[i] = 2.0f * rand() / RAND_MAX - 1.0f;
        double an = 0;
        for (size_t i = 0; i < nin; i++) an += (double)g[i] * v[i];
        const float eps = 1e-2f;
        for (size_t i = 0; i < nin; i++) xp[i] = x[i] + eps * v[i];
        double fp = objective(vt, bb, ops, dev_x, dev_f, xp, r, n, d, nin, f);
        for (size_t i = 0; i < nin; i++) xp[i] = x[i] - eps * v[i];
        double fm = objective(vt, bb, ops, dev_x, dev_f, xp, r, n, d, nin, f);
        double fd = (fp - fm) / (2.0 * eps), err = fabs(an - fd) / fmax(fabs(fd), 1e-12);
        printf("meanproj_check: direction %d: backward %.6g, finite difference %.6g, rel err %.2g\n", trial, an, fd,
               err);
        if (!(err <= worst)) worst = err;
    }
    /* a backward with the wrong n is refused with a message naming the plugin */
    int refused = vt->backward(bb, dev_g, dev_r, n - 1, tape) != 0 && strstr(g_error, "meanproj:");
    vt->tape_destroy(bb, tape);
    vt->destroy(bb);
    ops->free(dev_x), ops->free(dev_f), ops->free(dev_r), ops->free(dev_g);
    free(x), free(xp), free(v), free(g), free(f), free(rf), free(r);
    dlclose(dl);
    if (!refused) return fprintf(stderr, "meanproj_check: FAIL: a mismatched backward was not refused\n"), 1;
    if (!(worst <= 1e-3)) return fprintf(stderr, "meanproj_check: FAIL: rel err %.3g > 1e-3\n", worst), 1;
    printf("meanproj_check: PASS (worst rel err %.2g)\n", worst);
    return 0;
}
