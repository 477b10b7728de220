/* The selection of the neighbours baseline ([eval] baseline_neighbors, docs/design.md §7): for
 * each distilled image, the real training image whose feature is nearest to its feature, no real
 * image taken twice. It answers "is the distilled set more than a clever selection of real
 * images?" (LGM reports it beside random real images and centroids).
 *
 * Same class only: the selection then keeps the set's images per class, as random real images and
 * centroids do, so the three baselines compare like for like (and each picked image keeps the
 * label the probe trains it with). Euclidean distance on the raw features the probe sees, not on
 * pixels: the question is about the set's place in the encoder's feature space.
 *
 * Assignment: a greedy global one per class. Every (distilled i, real j) pair of the class is
 * ordered by distance, ties by (i, j); the closest pair whose i and j are both still free is taken,
 * until every distilled image has its real image. Deterministic, so the selection is one set (like
 * centroids). A class with fewer real images than distilled ones is an error naming the class.
 *
 * Legend: m distilled images, N real training features (the distillation targets), d feature dim,
 * C classes. */
#ifndef CLPDD_NEIGHBORS_H
#define CLPDD_NEIGHBORS_H
#include <stdint.h>

#include "util/util.h"

/* real features X (N, d) with labels yx (N); distilled features phi (m, d) with labels y (m), all
   in 0..C-1. pick (m): the row of X chosen for each distilled image; dist (m): its Euclidean
   distance (float64). 0, or -1 with a message (a label out of range, a class short of real
   images, a feature that is not finite). */
int clpdd_nearest_real(const float *X, const int32_t *yx, int N, const float *phi, const int32_t *y, int m, int d, int C,
                       int *pick, double *dist, clpdd_err *e);

#endif
