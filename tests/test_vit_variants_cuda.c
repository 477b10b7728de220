/* The vit plugin's timm-family variants on the CUDA backend against the same plugin on the
 * CPU reference (and both against the fixtures' timm float64 values): one plugin source,
 * two op tables. Each fixture tests/fixtures/vit_<variant>.safetensors (tools/export_timm.py)
 * is loaded on both devices; features and input gradients must agree to 1e-5 / 1e-4
 * (fp32 in a different summation order through 2 blocks, FP32 cuBLAS without TF32: ~1e-6),
 * and the CUDA results must also meet the CPU test's tolerances against timm. Skips without
 * a GPU.
 *
 * Legend: n images, c channels, S side, d feature width. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clpdd/plugin.h"
#include "io/ini.h"
#include "plugin/host.h"
#include "io/safetensors.h"
#include "support.h"

#define cuda_or_skip test_cuda_or_skip /* shared helpers (support.h) */

typedef struct fixture {
    char path[4096], cfg[1024];
    int n, c, S, d;
    float *images, *dfeat;
    double *feat, *grad;
} fixture;

static void fixture_load(fixture *fx, const char *variant) {
    memset(fx, 0, sizeof *fx);
    char file[128];
    snprintf(file, sizeof file, "vit_%s.safetensors", variant);
    snprintf(fx->path, sizeof fx->path, "%s", test_fixture(file));
    clpdd_st_file *f;
    clpdd_err e;
    cr_assert_eq(clpdd_st_open(fx->path, &f, &e), 0, "%s", e.msg);
    const char *cfg = clpdd_st_metadata(f, "clpdd.config");
    cr_assert(cfg, "%s: no clpdd.config metadata", fx->path);
    snprintf(fx->cfg, sizeof fx->cfg, "%s", cfg);
    const clpdd_st_tensor *ti = clpdd_st_find(f, "fixture.images"), *td = clpdd_st_find(f, "fixture.dfeatures");
    const clpdd_st_tensor *tf = clpdd_st_find(f, "fixture.features"), *tg = clpdd_st_find(f, "fixture.input_grad");
    cr_assert(ti && td && tf && tg && tf->dtype == CLPDD_DT_F64 && tg->dtype == CLPDD_DT_F64, "%s: fixture tensors",
              fx->path);
    fx->n = (int)ti->shape[0], fx->c = (int)ti->shape[1], fx->S = (int)ti->shape[2], fx->d = (int)td->shape[1];
    size_t ni = (size_t)clpdd_st_numel(ti), nd = (size_t)clpdd_st_numel(td);
    fx->images = malloc(ni * sizeof(float));
    fx->dfeat = malloc(nd * sizeof(float));
    fx->feat = malloc(nd * sizeof(double));
    fx->grad = malloc(ni * sizeof(double));
    cr_assert_eq(clpdd_st_read_f32(f, ti, fx->images, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_read_f32(f, td, fx->dfeat, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_read_raw(f, tf, fx->feat, &e), 0, "%s", e.msg);
    cr_assert_eq(clpdd_st_read_raw(f, tg, fx->grad, &e), 0, "%s", e.msg);
    clpdd_st_close(f);
}

static void fixture_free(fixture *fx) { free(fx->images), free(fx->dfeat), free(fx->feat), free(fx->grad); }

/* features (n, d) and input gradients of the fixture on one device (host results) */
static void run_on(const clpdd_ops *ops, const fixture *fx, float *feat, float *grad) {
    const clpdd_plugin *p = test_plugin("vit");
    cr_assert_not_null(p);
    const clpdd_backbone_vt *vt = p->vtable;
    clpdd_host *h = clpdd_host_create(ops, 0);
    char text[8192];
    snprintf(text, sizeof text, "%s; weights = %s; batch = 2", fx->cfg, fx->path);
    clpdd_err e;
    clpdd_section *s = clpdd_section_from_string("backbone", text, p->keys, p->n_keys, &e);
    cr_assert_not_null(s, "%s", e.msg);
    void *self, *tape;
    cr_assert_eq(vt->create(h, s, &self), 0, "%s on %s: %s", fx->path, ops->name, clpdd_host_error(h));
    const size_t nin = (size_t)fx->n * fx->c * fx->S * fx->S, nf = (size_t)fx->n * fx->d;
    float *x = h->alloc(h, nin * 4), *df = h->alloc(h, nf * 4), *f = h->alloc(h, nf * 4), *dx = h->alloc(h, nin * 4);
    float *f2 = h->alloc(h, nf * 4);
    ops->to_device(x, fx->images, nin * 4);
    ops->to_device(df, fx->dfeat, nf * 4);
    ops->fill(f, NAN, nf);
    ops->fill(dx, NAN, nin);
    cr_assert_eq(vt->tape_create(self, fx->n, &tape), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(vt->forward(self, f, x, fx->n, tape), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(vt->backward(self, dx, df, fx->n, tape), 0, "%s", clpdd_host_error(h));
    cr_assert_eq(vt->forward(self, f2, x, fx->n, NULL), 0, "%s", clpdd_host_error(h)); /* chunks of 2 */
    ops->to_host(feat, f, nf * 4);
    ops->to_host(grad, dx, nin * 4);
    float *hf2 = malloc(nf * 4);
    ops->to_host(hf2, f2, nf * 4);
    cr_expect_lt(test_rel_err(hf2, feat, nf), 1e-6, "%s on %s: chunked inference vs taped forward", fx->path,
                 ops->name);
    free(hf2);
    vt->tape_destroy(self, tape);
    vt->destroy(self);
    clpdd_section_destroy(s);
    clpdd_host_destroy(h);
}

static void check(const char *variant) {
    const clpdd_ops *cuda = cuda_or_skip();
    fixture fx;
    fixture_load(&fx, variant);
    const size_t nin = (size_t)fx.n * fx.c * fx.S * fx.S, nf = (size_t)fx.n * fx.d;
    float *fc = malloc(nf * 4), *fg = malloc(nf * 4), *gc = malloc(nin * 4), *gg = malloc(nin * 4);
    run_on(clpdd_ops_cpu(), &fx, fc, gc);
    run_on(cuda, &fx, fg, gg);
    double ef = test_rel_err(fg, fc, nf), eg = test_rel_err(gg, gc, nin);
    double tf = test_rel_err_fd(fg, fx.feat, nf), tg = test_rel_err_fd(gg, fx.grad, nin);
    cr_log_info("vit %s cuda vs cpu: features %.2e, input gradients %.2e; cuda vs timm %.2e, %.2e", variant, ef, eg,
                tf, tg);
    cr_expect_lt(ef, 1e-5, "%s features cuda vs cpu: %g", variant, ef);
    cr_expect_lt(eg, 1e-4, "%s input gradients cuda vs cpu: %g", variant, eg);
    cr_expect_lt(tf, 1e-4, "%s features cuda vs timm: %g", variant, tf);
    cr_expect_lt(tg, 1e-3, "%s input gradients cuda vs timm: %g", variant, tg);
    free(fc), free(fg), free(gc), free(gg);
    fixture_free(&fx);
}

TestSuite(vit_variants_cuda);

Test(vit_variants_cuda, vit) { check("vit"); }
Test(vit_variants_cuda, deit) { check("deit"); }
Test(vit_variants_cuda, dinov2) { check("dinov2"); }
Test(vit_variants_cuda, clip) { check("clip"); }
Test(vit_variants_cuda, mocov3) { check("mocov3"); }
Test(vit_variants_cuda, eva02) { check("eva02"); }
/* the position table resampled three ways (vit_pos.c runs on the host at load), open_clip's layout */
Test(vit_variants_cuda, pos_plain) { check("pos_plain"); }
Test(vit_variants_cuda, pos_timm) { check("pos_timm"); }
Test(vit_variants_cuda, pos_hub) { check("pos_hub"); }
Test(vit_variants_cuda, openclip) { check("openclip"); }
