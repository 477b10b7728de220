/* ce and mse: the value against a float64 transcription of docs/design.md §5, dZ against float64
 * central finite differences, the label encodings, and non-finite input errors.
 * Legend: n real batch, C classes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"
#include "io/ini.h"
#include "plugin/host.h"
#include "support.h"

enum { N = 7, C = 5 };
static int32_t labels[N] = {0, 3, 4, 1, 1, 2, 0};

typedef struct ctx {
    int is_ce, center;
    double tau;
} ctx;

static double ref_loss(const double *Z, void *p) {
    ctx *c = p;
    double L = 0;
    for (int i = 0; i < N; i++) {
        if (c->is_ce) {
            double mx = -INFINITY, s = 0;
            for (int k = 0; k < C; k++) mx = fmax(mx, Z[i * C + k] / c->tau);
            for (int k = 0; k < C; k++) s += exp(Z[i * C + k] / c->tau - mx);
            L += -(Z[i * C + labels[i]] / c->tau - mx - log(s));
        } else {
            double off = c->center ? -1.0 / C : 0.0;
            for (int k = 0; k < C; k++) {
                double t = (k == labels[i] ? 1.0 : 0.0) + off;
                L += 0.5 * (Z[i * C + k] - t) * (Z[i * C + k] - t);
            }
        }
    }
    return c->is_ce ? L / N : L / (N * C);
}

static void check(const char *name, const char *text, ctx *c) {
    const clpdd_plugin *p = test_plugin(name);
    cr_assert_not_null(p);
    const clpdd_loss_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_section *s = test_section(p, "loss", text);
    void *self;
    cr_assert_eq(vt->create(h, s, C, N, &self), 0, "%s", clpdd_host_error(h));
    double Zd[N * C];
    float Z[N * C], dZ[N * C];
    test_fill_normal_d(Zd, N * C, 1.0, 7);
    for (int i = 0; i < N * C; i++) Z[i] = (float)(Zd[i] = (float)Zd[i]), dZ[i] = NAN;
    float L;
    cr_assert_eq(vt->forward(self, &L, dZ, Z, labels, N), 0, "%s", clpdd_host_error(h));
    double Lref = ref_loss(Zd, c);
    cr_expect_lt(fabs(L - Lref) / fabs(Lref), 1e-6, "%s: L %g vs %g", name, L, Lref);
    double g[N * C];
    test_fd_grad(g, ref_loss, Zd, N * C, 1e-6, c);
    double err = test_rel_err_fd(dZ, g, N * C);
    cr_expect_lt(err, 1e-5, "%s: dZ rel err %g", name, err); /* fp32 softmax vs fp64 FD */
    /* non-finite predictions are an error, not a NaN loss */
    Z[3] = NAN;
    cr_expect_neq(vt->forward(self, &L, dZ, Z, labels, N), 0);
    cr_expect(strstr(clpdd_host_error(h), "not finite") != NULL, "%s", clpdd_host_error(h));
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

Test(losses, ce_default_temperature) {
    ctx c = {1, 0, 0.1};
    check("ce", "", &c);
}

Test(losses, ce_temperature_2) {
    ctx c = {1, 0, 2.0};
    check("ce", "temperature = 2", &c);
}

Test(losses, mse_centred) {
    ctx c = {0, 1, 1};
    check("mse", "", &c);
}

Test(losses, mse_plain_onehot) {
    ctx c = {0, 0, 1};
    check("mse", "center = false", &c);
}

Test(losses, mse_encodes_support_labels_like_its_targets) {
    const clpdd_plugin *p = test_plugin("mse");
    const clpdd_loss_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_err e;
    clpdd_section *s = clpdd_section_from_string("loss", "", p->keys, p->n_keys, &e);
    void *self;
    cr_assert_eq(vt->create(h, s, C, N, &self), 0);
    float Y[N * C];
    cr_assert_eq(vt->encode_labels(self, Y, labels, N), 0);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < C; k++)
            cr_expect_float_eq(Y[i * C + k], (k == labels[i] ? 1.0f : 0.0f) - 1.0f / C, 1e-7);
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
    const clpdd_plugin *ce = test_plugin("ce");
    cr_expect_null(((const clpdd_loss_vt *)ce->vtable)->encode_labels, "ce uses plain one-hot support labels");
}

Test(losses, temperature_must_be_positive) {
    const clpdd_plugin *p = test_plugin("ce");
    clpdd_err e;
    cr_assert_null(clpdd_section_from_string("loss", "temperature = 0", p->keys, p->n_keys, &e));
    cr_expect(strstr(e.msg, "temperature") != NULL, "%s", e.msg);
}

/* temperature = learn (ABI 1.5): ∂L/∂log τ = −⟨dZ, Z⟩ against float64 central differences of the
   loss in log τ, at the initial value and after set_learned moved it */
Test(losses, ce_learned_temperature_gradient_matches_float64_finite_differences) {
    const clpdd_plugin *p = test_plugin("ce");
    cr_assert_geq(p->abi_minor, 5);
    const clpdd_loss_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_section *s = test_section(p, "loss", "temperature = learn:0.3");
    void *self;
    cr_assert_eq(vt->create(h, s, C, N, &self), 0, "%s", clpdd_host_error(h));
    double Zd[N * C];
    float Z[N * C], dZ[N * C], L;
    test_fill_normal_d(Zd, N * C, 1.0, 11);
    for (int i = 0; i < N * C; i++) Z[i] = (float)(Zd[i] = (float)Zd[i]);
    const double taus[] = {0.3, 0.07};
    for (int t = 0; t < 2; t++) {
        if (t) vt->set_learned(self, 0, taus[t]);
        cr_assert_eq(vt->forward(self, &L, dZ, Z, labels, N), 0, "%s", clpdd_host_error(h));
        clpdd_learned got;
        cr_assert_eq(vt->learned(self, &got, 1), 1);
        cr_expect_str_eq(got.key, "temperature");
        cr_expect_float_eq(got.value, taus[t], 1e-12);
        double step = 1e-5;
        ctx up = {1, 0, taus[t] * exp(step)}, down = {1, 0, taus[t] * exp(-step)};
        double fd = (ref_loss(Zd, &up) - ref_loss(Zd, &down)) / (2 * step);
        cr_expect_lt(fabs(got.grad_log - fd), 1e-4 * fabs(fd) + 1e-7, "tau %g: plugin %g, fd %g", taus[t], got.grad_log, fd);
    }
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

Test(losses, ce_fixed_temperature_learns_nothing) {
    const clpdd_plugin *p = test_plugin("ce");
    const clpdd_loss_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_section *s = test_section(p, "loss", "temperature = 0.2");
    void *self;
    cr_assert_eq(vt->create(h, s, C, N, &self), 0, "%s", clpdd_host_error(h));
    clpdd_learned got;
    cr_expect_eq(vt->learned(self, &got, 1), 0);
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

/* the LEARNABLE key's forms: a number, learn (the default), learn:<value>; and the bad ones */
Test(losses, learnable_temperature_forms) {
    const clpdd_plugin *p = test_plugin("ce");
    static const struct {
        const char *text;
        double value;
        int learn;
    } good[] = {{"temperature = 0.25", 0.25, 0}, {"temperature = learn", 0.1, 1}, {"temperature = learn:0.05", 0.05, 1}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        clpdd_err e;
        clpdd_section *s = clpdd_section_from_string("loss", good[i].text, p->keys, p->n_keys, &e);
        cr_assert_not_null(s, "%s: %s", good[i].text, e.msg);
        cr_expect_float_eq(clpdd_section_float(s, "temperature"), good[i].value, 1e-12, "%s", good[i].text);
        cr_expect_eq(clpdd_section_learn(s, "temperature"), good[i].learn, "%s", good[i].text);
        clpdd_section_destroy(s);
    }
    static const char *bad[] = {"temperature = learn:",   "temperature = learn:0", "temperature = learn:-1",
                                "temperature = learned",  "temperature = learn:x", "temperature = learn:1e9",
                                "temperature = learn 0.1", "temperature = 0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clpdd_err e;
        clpdd_section *s = clpdd_section_from_string("loss", bad[i], p->keys, p->n_keys, &e);
        cr_expect_null(s, "accepted '%s'", bad[i]);
        if (s) clpdd_section_destroy(s);
        else
            cr_expect(strstr(e.msg, "<string>:1: [loss] temperature") && strstr(e.msg, "or learn (from the default 0.1) or learn:<initial value > 0"),
                      "'%s': %s", bad[i], e.msg);
    }
}
