/* The core's learned scalars (core/distill/learned.h, docs/design.md §1): the prior's gradient
 * against float64 central differences, Adam in log space against a transcription, and the
 * plugin checks at setup: a plugin built for ABI 1.4 loads and learns nothing (its shorter vtable
 * is never read past its end), and a key set to learn that its plugin does not report is an
 * error naming the section. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/experiment.h"
#include "distill/learned.h"
#include "plugin/host.h"
#include "support.h"

/* the MAP objective's prior term, (u − u0)²/(2σ²) */
static double prior(double u, double u0, double sigma) { return (u - u0) * (u - u0) / (2 * sigma * sigma); }

Test(learned, prior_gradient_matches_float64_finite_differences) {
    static const double cases[][3] = {{0.3, -1.2, 1.0}, {-2.0, -2.3, 0.25}, {1.0, 1.0, 3.0}, {5.0, 0.0, 0.5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double u = cases[i][0], u0 = cases[i][1], s = cases[i][2], h = 1e-6;
        double fd = (prior(u + h, u0, s) - prior(u - h, u0, s)) / (2 * h);
        cr_expect_float_eq(clpdd_learned_prior_grad(u, u0, s), fd, 1e-7, "u %g u0 %g sigma %g", u, u0, s);
    }
    cr_expect_eq(clpdd_learned_prior_grad(3.0, 0.0, 0.0), 0.0, "sigma 0: no prior");
}

/* a fake plugin learning one scalar whose ∂L/∂log value is fixed: the core's Adam on u */
typedef struct fake {
    double value, grad_log;
} fake;
static int fake_learned(void *p, clpdd_learned *out, int max) {
    fake *f = p;
    if (max > 0) out[0] = (clpdd_learned){"lambda", f->value, f->grad_log};
    return 1;
}
static void fake_set(void *p, int i, double v) { ((fake *)p)->value = v; }

Test(learned, adam_in_log_space_with_the_prior) {
    fake f = {0.3, 0.7};
    clpdd_learned_set ls;
    memset(&ls, 0, sizeof ls);
    ls.n = 1;
    ls.self[0] = &f, ls.learned[0] = fake_learned, ls.set_learned[0] = fake_set;
    ls.u[0] = ls.u0[0] = log(0.3);
    double u = log(0.3), u0 = u, m = 0, v = 0, lr = 0.02, b1 = 0.9, b2 = 0.999, sigma = 0.5;
    clpdd_err e;
    for (int t = 1; t <= 5; t++) {
        f.grad_log = 0.7 / t;
        cr_assert_eq(clpdd_learned_step(&ls, t, lr, b1, b2, sigma, &e), 0, "%s", e.msg);
        double g = 0.7 / t + (u - u0) / (sigma * sigma);
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        u -= lr * (m / (1 - pow(b1, t))) / (sqrt(v / (1 - pow(b2, t))) + 1e-8);
        cr_expect_float_eq(ls.u[0], u, 1e-14, "step %d", t);
        cr_expect_float_eq(f.value, exp(u), 1e-14, "the plugin gets exp(u)");
    }
    f.grad_log = NAN;
    cr_expect_neq(clpdd_learned_step(&ls, 6, lr, b1, b2, sigma, &e), 0, "a non-finite gradient is an error");
    cr_expect(strstr(e.msg, "not finite"), "%s", e.msg);
}

static char tmpdir[256];

static int load(const char *text, clpdd_experiment *x, clpdd_err *e) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clpdd-test-learned-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char path[400];
    snprintf(path, sizeof path, "%s/x.ini", tmpdir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, CLPDD_TEST_PLUGIN_DIR);
    int rc = clpdd_experiment_load(x, path, NULL, 0, &dirs, e);
    clpdd_plugin_dirs_free(&dirs);
    unlink(path);
    rmdir(tmpdir);
    return rc;
}

/* setup on a solver plugin instance created from the loaded section */
static int setup_solver(const char *ini, clpdd_learned_set *ls, clpdd_err *e) {
    clpdd_experiment x;
    cr_assert_eq(load(ini, &x, e), 0, "%s", e->msg);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    const clpdd_solver_vt *svt = x.solver.desc->vtable;
    const clpdd_loss_vt *lvt = x.loss.desc->vtable;
    clpdd_solver_dims dims = {2, 3, 2, 4};
    void *solver = NULL, *loss = NULL;
    cr_assert_eq(svt->create(h, x.solver_cfg, &dims, &solver), 0);
    cr_assert_eq(lvt->create(h, x.loss_cfg, 2, 4, &loss), 0);
    int rc = clpdd_learned_setup(ls, &x, svt, solver, lvt, loss, e);
    svt->destroy(solver);
    lvt->destroy(loss);
    clpdd_host_destroy(h);
    clpdd_experiment_free(&x);
    return rc;
}

Test(learned, a_minor_4_solver_loads_and_learns_nothing) {
    clpdd_learned_set ls;
    clpdd_err e = {{0}};
    const char *ini = "[backbone]\nname = vit\n[solver]\nname = minor4\nlambda = 0.2\n[loss]\nname = ce\ntemperature = learn:0.2\n";
    cr_assert_eq(setup_solver(ini, &ls, &e), 0, "%s", e.msg);
    cr_expect_eq(ls.n, 1, "only the loss's temperature is learned");
    cr_expect_str_eq(ls.name[0], "loss.temperature");
    cr_expect_null(ls.learned[0], "a 1.4 vtable's missing members are not read");
    cr_expect_float_eq(exp(ls.u0[0]), 0.2, 1e-12);
}

Test(learned, a_key_set_to_learn_that_its_plugin_does_not_report_is_an_error) {
    clpdd_learned_set ls;
    clpdd_err e = {{0}};
    const char *ini = "[backbone]\nname = vit\n[solver]\nname = learn_unreported\nlambda = learn\n[loss]\nname = ce\n";
    cr_assert_neq(setup_solver(ini, &ls, &e), 0);
    cr_expect(strstr(e.msg, "[solver] learn_unreported: 1 key(s) set to learn, but the plugin reports 0"), "%s", e.msg);
}

Test(learned, ridge_and_ce_both_learned_in_order) {
    clpdd_learned_set ls;
    clpdd_err e = {{0}};
    const char *ini = "[backbone]\nname = vit\n[solver]\nname = ridge\nlambda = learn:0.05\n[loss]\nname = ce\ntemperature = learn\n";
    cr_assert_eq(setup_solver(ini, &ls, &e), 0, "%s", e.msg);
    cr_assert_eq(ls.n, 2);
    cr_expect_str_eq(ls.name[0], "solver.lambda");
    cr_expect_str_eq(ls.name[1], "loss.temperature");
    cr_expect_float_eq(exp(ls.u0[0]), 0.05, 1e-12);
    cr_expect_float_eq(exp(ls.u0[1]), 0.1, 1e-12);
}
