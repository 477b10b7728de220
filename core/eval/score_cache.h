/* The baselines' scores, cached beside the features: random real images, class centroids and the
 * full-data probe depend on the data, the backbone, the validation split, the evaluation settings,
 * ipc and the run's seed — not on the distilled set — so a sweep computes them once per cell of
 * that key instead of once per point (the full-data probe is most of a small run's evaluation).
 *
 * <cache_dir>/scores-<hash>.safetensors holds the key's text (compared in full on load, not only
 * its hash), the scores as one byte tensor and its XXH3 checksum; a file that fails any check is
 * ignored and recomputed. Written atomically. */
#ifndef CLPDD_SCORE_CACHE_H
#define CLPDD_SCORE_CACHE_H
#include "eval/evaluate.h"

typedef struct clpdd_baseline_scores {
    clpdd_score random_real, centroids, full_data;
} clpdd_baseline_scores;

/* 0 and *s filled when the cache holds this key; 1 when not (or unusable) */
int clpdd_scores_load(const char *cache_dir, const char *key, clpdd_baseline_scores *s);
/* best effort: a failure is a warning in e, the run goes on; 0 or -1 */
int clpdd_scores_save(const char *cache_dir, const char *key, const clpdd_baseline_scores *s, clpdd_err *e);

#endif
