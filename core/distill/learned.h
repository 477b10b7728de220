/* Learned scalars (docs/design.md §1, "Learned τ and λ"): the plugin keys set to `learn`
 * ([loss] ce temperature, [solver] ridge/ntk lambda; ABI 1.5), optimised jointly with the pixels
 * as u = log(value) by Adam on the host (a handful of doubles), on the objective
 *     L(u) + Σ_i (u_i − u0_i)² / (2σ²)      (σ = [distill] learn_prior; 0: no prior term)
 * with ∂L/∂u_i the exact gradient through the closed form the plugin reports after each step.
 * The pixels' gradient is L's alone. */
#ifndef CLPDD_LEARNED_H
#define CLPDD_LEARNED_H
#include "config/experiment.h"
#include "distill/outputs.h" /* CLPDD_MAX_LEARNED */

typedef struct clpdd_learned_set {
    int n;
    char name[CLPDD_MAX_LEARNED][48]; /* "solver.lambda", "loss.temperature": section.key */
    int owner[CLPDD_MAX_LEARNED];     /* 0 = the solver, 1 = the loss */
    int index[CLPDD_MAX_LEARNED];     /* its index in the owner's learned() list */
    double u0[CLPDD_MAX_LEARNED];     /* log of the initial value */
    double u[CLPDD_MAX_LEARNED];      /* log of the value now */
    double m[CLPDD_MAX_LEARNED], v[CLPDD_MAX_LEARNED]; /* Adam's moments */
    double used[CLPDD_MAX_LEARNED];   /* the value the last step's forward used */
    /* the owners (solver, loss): their instance and ABI 1.5 members, NULL for a plugin of an older
       minor, whose shorter vtable has no such members to read */
    void *self[2];
    int (*learned[2])(void *self, clpdd_learned *out, int max);
    void (*set_learned[2])(void *self, int i, double value);
} clpdd_learned_set;

/* the plugins' learned scalars: every LEARNABLE key set to learn must be reported by its plugin
   (minor >= 5, learned() not NULL), else an error naming the section and key */
int clpdd_learned_setup(clpdd_learned_set *ls, const clpdd_experiment *x, const clpdd_solver_vt *svt, void *solver,
                        const clpdd_loss_vt *lvt, void *loss, clpdd_err *e);
/* after a step's backward: one Adam step (t = step) on every u with lr/b1/b2 and the prior std
   sigma (0: none), then the plugins' values set to exp(u); a non-finite gradient is an error */
int clpdd_learned_step(clpdd_learned_set *ls, int step, double lr, double b1, double b2, double sigma, clpdd_err *e);
/* the plugins' values set to exp(u) (after a checkpoint restored u) */
void clpdd_learned_apply(const clpdd_learned_set *ls);
/* ∂/∂u_i of the prior term (u_i − u0_i)²/(2σ²); 0 when sigma = 0 */
double clpdd_learned_prior_grad(double u, double u0, double sigma);

#endif
