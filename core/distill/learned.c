/* Learned scalars: see core/distill/learned.h and docs/design.md §1. */
#include "distill/learned.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/ini.h"

/* the section's LEARNABLE keys set to learn */
static int keys_learned(const clpdd_section *s, const clpdd_plugin *d) {
    int n = 0;
    for (int i = 0; s && d && i < d->n_keys; i++)
        if (d->keys[i].type == CLPDD_KEY_LEARNABLE && clpdd_section_learn(s, d->keys[i].name)) n++;
    return n;
}

/* one owner's scalars into ls; learned() was read only from a plugin of minor >= 5 */
static int collect(clpdd_learned_set *ls, int owner, const char *section, const clpdd_plugin *d, const clpdd_section *cfg,
                   clpdd_err *e) {
    clpdd_learned got[CLPDD_MAX_LEARNED];
    int want = keys_learned(cfg, d);
    int n = ls->learned[owner] ? ls->learned[owner](ls->self[owner], got, CLPDD_MAX_LEARNED) : 0;
    if (n != want)
        return clpdd_err_set(e, "[%s] %s: %d key(s) set to learn, but the plugin reports %d learned scalar(s)", section,
                             d ? d->name : "?", want, n);
    if (ls->n + n > CLPDD_MAX_LEARNED)
        return clpdd_err_set(e, "[%s] %s: more than %d learned scalars in one run", section, d->name, CLPDD_MAX_LEARNED);
    for (int i = 0; i < n; i++) {
        int k = ls->n++;
        if (!(got[i].value > 0 && isfinite(got[i].value)))
            return clpdd_err_set(e, "[%s] %s: learned %s starts at %g; it must be finite and > 0 (it is learned as its log)",
                                 section, d->name, got[i].key, got[i].value);
        snprintf(ls->name[k], sizeof ls->name[k], "%s.%s", section, got[i].key);
        ls->owner[k] = owner, ls->index[k] = i;
        ls->u0[k] = ls->u[k] = log(got[i].value);
        ls->m[k] = ls->v[k] = 0;
        ls->used[k] = got[i].value;
    }
    return 0;
}

int clpdd_learned_setup(clpdd_learned_set *ls, const clpdd_experiment *x, const clpdd_solver_vt *svt, void *solver,
                        const clpdd_loss_vt *lvt, void *loss, clpdd_err *e) {
    memset(ls, 0, sizeof *ls);
    ls->self[0] = solver, ls->self[1] = loss;
    if (x->solver.desc->abi_minor >= 5) ls->learned[0] = svt->learned, ls->set_learned[0] = svt->set_learned;
    if (loss && x->loss.desc->abi_minor >= 5) ls->learned[1] = lvt->learned, ls->set_learned[1] = lvt->set_learned;
    if (collect(ls, 0, "solver", x->solver.desc, x->solver_cfg, e)) return -1;
    if (loss && collect(ls, 1, "loss", x->loss.desc, x->loss_cfg, e)) return -1;
    return 0;
}

double clpdd_learned_prior_grad(double u, double u0, double sigma) { return sigma > 0 ? (u - u0) / (sigma * sigma) : 0.0; }

void clpdd_learned_apply(const clpdd_learned_set *ls) {
    for (int k = 0; k < ls->n; k++) ls->set_learned[ls->owner[k]](ls->self[ls->owner[k]], ls->index[k], exp(ls->u[k]));
}

int clpdd_learned_step(clpdd_learned_set *ls, int step, double lr, double b1, double b2, double sigma, clpdd_err *e) {
    if (ls->n == 0) return 0;
    clpdd_learned got[2][CLPDD_MAX_LEARNED];
    int n[2];
    for (int o = 0; o < 2; o++) n[o] = ls->learned[o] ? ls->learned[o](ls->self[o], got[o], CLPDD_MAX_LEARNED) : 0;
    double c1 = 1.0 - pow(b1, step), c2 = 1.0 - pow(b2, step);
    for (int k = 0; k < ls->n; k++) {
        const clpdd_learned *s = &got[ls->owner[k]][ls->index[k]];
        if (ls->index[k] >= n[ls->owner[k]]) return clpdd_err_set(e, "%s: the plugin stopped reporting it", ls->name[k]);
        double g = s->grad_log + clpdd_learned_prior_grad(ls->u[k], ls->u0[k], sigma);
        if (!isfinite(g))
            return clpdd_err_set(e, "learned %s = %g: its gradient is not finite (%g)", ls->name[k], s->value, s->grad_log);
        ls->used[k] = s->value;
        ls->m[k] = b1 * ls->m[k] + (1 - b1) * g;
        ls->v[k] = b2 * ls->v[k] + (1 - b2) * g * g;
        ls->u[k] -= lr * (ls->m[k] / c1) / (sqrt(ls->v[k] / c2) + 1e-8);
    }
    clpdd_learned_apply(ls);
    return 0;
}
