/* The nearest real images of a distilled set (core/eval/neighbors.h). */
#include "eval/neighbors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pair {
    double d2; /* squared distance */
    int i, b;  /* distilled index; position in the class's ascending real rows, so b orders as the row does */
} pair;

static int by_distance(const void *a, const void *b) {
    const pair *p = a, *q = b;
    if (p->d2 != q->d2) return p->d2 < q->d2 ? -1 : 1;
    if (p->i != q->i) return p->i < q->i ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

/* ‖a − b‖² accumulated in float64 as differences (not ‖a‖² + ‖b‖² − 2ab): exactly 0 for a real
   image's own feature, so a distilled image that is a real image finds itself. The cost, m × N_class
   × d per class, is small beside the probe that scores the selection. */
static double squared_distance(const float *a, const float *b, int d) {
    double s = 0;
    for (int k = 0; k < d; k++) {
        double t = (double)a[k] - (double)b[k];
        s += t * t;
    }
    return s;
}

/* the greedy assignment of the class's distilled images `set` (ns) to its real rows `real` (nr) */
static int assign_class(const float *X, const float *phi, int d, const int *set, int ns, const int *real, int nr,
                        int *pick, double *dist, clpdd_err *e) {
    size_t np = (size_t)ns * (size_t)nr;
    pair *p = clpdd_xmalloc((np ? np : 1) * sizeof *p);
    for (int a = 0; a < ns; a++)
        for (int b = 0; b < nr; b++) {
            double d2 = squared_distance(phi + (size_t)set[a] * d, X + (size_t)real[b] * d, d);
            if (!isfinite(d2)) {
                free(p);
                return clpdd_err_set(e, "neighbours baseline: the distance of distilled image %d to real training row %d "
                                        "is not finite (a feature holds NaN or Inf)", set[a], real[b]);
            }
            p[(size_t)a * nr + b] = (pair){d2, set[a], b};
        }
    qsort(p, np, sizeof *p, by_distance);
    /* a distilled image is free while its pick is -1 */
    char *taken = clpdd_xcalloc((size_t)nr, 1);
    int left = ns;
    for (size_t k = 0; k < np && left > 0; k++) {
        if (pick[p[k].i] >= 0 || taken[p[k].b]) continue;
        taken[p[k].b] = 1;
        pick[p[k].i] = real[p[k].b], dist[p[k].i] = sqrt(p[k].d2);
        left--;
    }
    free(taken);
    free(p);
    return 0;
}

int clpdd_nearest_real(const float *X, const int32_t *yx, int N, const float *phi, const int32_t *y, int m, int d, int C,
                       int *pick, double *dist, clpdd_err *e) {
    for (int i = 0; i < m; i++) {
        if (y[i] < 0 || y[i] >= C)
            return clpdd_err_set(e, "neighbours baseline: distilled image %d has label %d; expected 0..%d", i, y[i], C - 1);
        pick[i] = -1;
    }
    int *set = clpdd_xmalloc((size_t)(m ? m : 1) * sizeof *set), *real = clpdd_xmalloc((size_t)(N ? N : 1) * sizeof *real);
    int rc = 0;
    for (int c = 0; c < C && rc == 0; c++) {
        int ns = 0, nr = 0;
        for (int i = 0; i < m; i++)
            if (y[i] == c) set[ns++] = i;
        if (ns == 0) continue;
        for (int j = 0; j < N; j++)
            if (yx[j] == c) real[nr++] = j;
        if (nr < ns)
            rc = clpdd_err_set(e, "neighbours baseline: class %d has %d real training images but the set has %d images of "
                                  "it; each needs a real image of its own (more training data, or [eval] "
                                  "baseline_neighbors = false)", c, nr, ns);
        else rc = assign_class(X, phi, d, set, ns, real, nr, pick, dist, e);
    }
    free(set), free(real);
    return rc;
}
