/* Shared test helpers: deterministic random data, normalised errors, float64 finite
 * differences, locating the real checkpoints and fixtures. */
#ifndef CLPDD_TEST_SUPPORT_H
#define CLPDD_TEST_SUPPORT_H
#include <stddef.h>
#include <stdint.h>

/* splitmix64 stream for test data (independent of the ops' generators) */
typedef struct { uint64_t s; } test_rng;
double test_uniform(test_rng *r);                   /* [0, 1) */
double test_normal(test_rng *r);                    /* N(0, 1) */
void test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
void test_fill_normal(float *x, size_t n, float std, uint64_t seed);
void test_fill_normal_d(double *x, size_t n, double std, uint64_t seed);

/* ‖a − ref‖₂ / max(‖ref‖₂, tiny); NaN anywhere → +Inf */
double test_rel_err(const float *a, const float *ref, size_t n);
/* normalised error allowed for a product at reduced precision against the fp32 result:
   4x the error measured by exact emulation (tests/test_precision.c, product_error_measured) */
#define TOL_GEMM_BF16 1.2e-2
#define TOL_GEMM_TF32 1.5e-3
double test_rel_err_fd(const float *a, const double *ref, size_t n);
double test_max_abs_diff(const float *a, const float *b, size_t n);

/* central finite differences of a float64 scalar function: g[i] = (f(x+h e_i) − f(x−h e_i))/2h */
typedef double (*test_scalar_fn)(const double *x, void *ctx);
void test_fd_grad(double *g, test_scalar_fn f, double *x, size_t n, double h, void *ctx);

/* the first readable <dir>/<file> for dir in $CLPDD_MODEL_PATH, else the repository's
   CLPDD_SOURCE_DIR/models/<file>; a failed assertion naming both when neither has it (never NULL) */
const char *test_model_file(const char *file);
/* CLPDD_SOURCE_DIR/tests/fixtures/<file> */
const char *test_fixture(const char *file);

/* float64 linear algebra for reference transcriptions: in-place lower Cholesky (-1 when not
   positive definite) and the solve of (L Lᵀ) X = B in place (B n × nrhs, row-major) */
int test_chol(double *A, int n);
void test_chol_solve(const double *L, int n, double *B, int nrhs);
/* o[k] = (float)i[k] */
void test_to_float(float *o, const double *i, size_t n);

/* A predictive solver's test case (ridge, ntk, unrolled): float64 inputs already rounded to
   float32 (what the plugin sees), one-hot support labels (row i → class i mod C), and a random
   cotangent R for the scalar ⟨R, Z⟩ whose gradient backward computes. */
typedef struct test_solver_data {
    double *phi, *Y, *phib, *R; /* (m, d), (m, C), (n, d), (n, C) */
} test_solver_data;
test_solver_data test_solver_data_make(int m, int d, int C, int n, uint64_t seed);
void test_solver_data_free(test_solver_data *x);

/* what a solver returned: predictions (predictive solvers; NULL for objective ones), gradients,
   the objective (objective solvers; NaN otherwise), status and the host's error message */
typedef struct test_solver_result {
    float *Z, *dphi, *dY;
    float L;
    int status;
    char error[512];
    double grad_log; /* a plugin of ABI >= 1.5 learning one scalar: its ∂L/∂log value (⟨R, Z⟩'s); else NaN */
} test_solver_result;
void test_solver_result_free(test_solver_result *r);

/* a plugin's INI section parsed from "key = value; ..." against its declared keys (asserts) */
struct clpdd_plugin;
struct clpdd_section;
struct clpdd_section *test_section(const struct clpdd_plugin *p, const char *kind, const char *text);

/* a predictive solver plugin on the mock host (CPU ops, quiet, host seed `seed`) configured by
   `keys`: `calls` rounds of forward + backward(R) on one instance, every output poisoned with NaN
   before each round; the last round's outputs. A failed create is an assertion. */
test_solver_result test_solver_run(const char *plugin, const char *keys, uint64_t seed, int m, int d, int C, int n,
                                   const double *phi, const double *Y, const double *phib, const double *R,
                                   int calls);

/* a solver's inputs as the plugin sees them, float32 on the host */
typedef struct test_solver_inputs {
    const float *phi, *Y, *phib; /* (m, d), (m, C), (n, d) */
    const float *R;              /* (n, C) the cotangent of a predictive solver's backward */
    const int32_t *yb;           /* (n) the real labels of an objective solver; NULL: a predictive one */
} test_solver_inputs;
/* test_solver_run on any op table (op memory: the device's on CUDA), from float32 inputs: a
   predictive solver (in->yb NULL) runs forward + backward(R), an objective one objective(yb) +
   backward(NULL) (Z is then NULL, L set). Every output is poisoned with NaN in op memory before
   each of the `calls` rounds; Ls[call] gets each round's objective when Ls is non-NULL. A failed
   create is an assertion naming the op table. */
struct clpdd_ops;
test_solver_result test_solver_run_on(const struct clpdd_ops *ops, const char *plugin, const char *keys, uint64_t seed,
                                      int m, int d, int C, int n, const test_solver_inputs *in, int calls,
                                      float *Ls);

/* a scalar of both solver inputs, f(phi (m, d), Y (m, C)), and its central differences in
   each: gphi with step h_phi, gY with step h_Y */
typedef double (*test_pair_fn)(const double *phi, const double *Y, void *ctx);
void test_fd_grad_pair(double *gphi, double *gY, test_pair_fn f, double *phi, size_t nphi, double *Y, size_t nY,
                       double h_phi, double h_Y, void *ctx);

/* a float64 reference of a predictive solver: Z (n, C) from phi (m, d), Y (m, C), phib (n, d) */
typedef void (*test_solver_ref_fn)(double *Z, const double *phi, const double *Y, const double *phib, void *ctx);
/* relative errors of a run against the reference: Z against ref(x), dphi and dY against central
   differences of ⟨R, ref(phi, Y)⟩ (steps h_phi, h_Y) */
typedef struct test_solver_errors {
    double z, dphi, dY;
} test_solver_errors;
test_solver_errors test_solver_errors_of(const test_solver_result *r, test_solver_data *x, int m, int d, int C, int n,
                                         test_solver_ref_fn ref, void *ctx, double h_phi, double h_Y);

/* learned labels (core/distill/labels.h): logits ℓ (m, C) → Y = softmax rows, tiled k times (the
   DSA copies) → the solver's Z (n, C) → L = mean cross-entropy of Z/τ against labels i mod C. The
   relative error of clpdd_labels_grad's ∂L/∂ℓ (from the plugin's dY_s, `keys` on the mock host with
   `plugin_seed`) against float64 central differences through ref (the solver's float64
   transcription, its ctx built for k·m support rows) */
double test_labels_fd_error(const char *plugin, const char *keys, uint64_t plugin_seed, int m, int k, int d, int C, int n,
                            test_solver_ref_fn ref, void *ctx, uint64_t seed);

/* the CUDA op table, or skip the calling test with the reason there is none */
struct clpdd_ops;
const struct clpdd_ops *test_cuda_or_skip(void);

/* op-memory buffers of a host (device memory on CUDA), asserting on failure */
struct clpdd_host;
float *test_dev_alloc(const struct clpdd_host *h, size_t count);
float *test_dev_upload(const struct clpdd_host *h, const float *src, size_t count);
void test_dev_download(const struct clpdd_host *h, float *dst, const float *src, size_t count);

/* a plugin from the build tree (CLPDD_PLUGIN_BUILD_DIR/<name>.so), loaded once and kept */
struct clpdd_plugin;
const struct clpdd_plugin *test_plugin(const char *name);

/* a fresh directory /tmp/clpdd-test-<name>-XXXXXX into dir (n bytes), and its removal */
void test_tmpdir_make(char *dir, size_t n, const char *name);
void test_tmpdir_remove(const char *dir);

/* the build's clpdd driver run with args (a shell word list), its stdout + stderr into out (n
   bytes); returns the exit status (128 + signal when killed) */
int test_driver(const char *args, char *out, size_t n);

/* the end-to-end tests' data: NULL when Fashion-MNIST (Debian dataset-fashion-mnist) and the
   shipped mnist-vit are there, else the reason to skip */
const char *test_fmnist_missing(void);
/* the number after `key` inside what follows `where` in a JSON text (metrics.json) */
double test_json_number(const char *json, const char *where, const char *key);

/* ---- whole runs (test_run*.c, test_prefetch.c) ---- */
struct clpdd_err;
/* `clpdd run INI [--set s]... --output out [--resume]` on the CPU, quietly; the experiment must
   load (asserted). Returns clpdd_run's status, its message in e. */
int test_run_experiment(const char *ini, const char *out, int resume, const char *const *sets, int n_sets,
                        struct clpdd_err *e);
/* the bytes of path (asserted readable); free() them */
uint8_t *test_read_all(const char *path, size_t *len);
/* dir/name as a string (asserted readable); free() it */
char *test_read_text(const char *dir, const char *name);
/* dir/log.csv without its seconds column (the third): what two runs of the same computation
   share, learned-scalar columns included */
char *test_log_rows(const char *dir);

#endif
