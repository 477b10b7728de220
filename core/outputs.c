#include "outputs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"
#include "io/safetensors.h"

int clpdd_write_log_csv(const char *path, const clpdd_log_row *rows, int n, clpdd_err *e) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "step,loss,seconds\n");
    for (int i = 0; i < n; i++) clpdd_sb_printf(&b, "%d,%.8g,%.4f\n", rows[i].step, rows[i].loss, rows[i].seconds);
    int rc = clpdd_write_file_atomic(path, b.s, b.len, e);
    free(b.s);
    return rc;
}

int clpdd_write_distilled(const char *dir, const float *images, const int32_t *labels, int m, int c, int H, int W,
                          int ipc, int C, const char *meta_json, clpdd_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/distilled.safetensors", dir);
    clpdd_st_entry ent[2] = {
        {"images", CLPDD_DT_F32, 4, {m, c, H, W}, images},
        {"labels", CLPDD_DT_I32, 1, {m}, labels},
    };
    const char *mk[] = {"format", "run"};
    const char *mv[] = {"clpdd distilled set v1: images (m, c, H, W) in [0, 1] pixel space, class-major", meta_json};
    if (clpdd_st_write(path, ent, 2, mk, mv, 2, e)) return -1;
    /* grid: one column per class, row r = the r-th image of every class */
    size_t px = (size_t)c * H * W;
    float *grid = clpdd_xmalloc((size_t)m * px * sizeof(float));
    for (int r = 0; r < ipc; r++)
        for (int k = 0; k < C; k++) memcpy(grid + ((size_t)r * C + k) * px, images + ((size_t)k * ipc + r) * px, px * sizeof(float));
    snprintf(path, sizeof path, "%s/distilled.png", dir);
    int zoom = H >= 128 ? 1 : (H >= 64 ? 2 : 4);
    int rc = clpdd_png_grid(path, grid, m, c, H, W, C, zoom, e);
    free(grid);
    return rc;
}

int clpdd_write_loss_plot(const char *path, const clpdd_log_row *rows, int n, const char *title, clpdd_err *e) {
    float *x = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof(float)), *y = clpdd_xmalloc((size_t)(n ? n : 1) * sizeof(float));
    int all_positive = 1;
    for (int i = 0; i < n; i++) {
        x[i] = (float)rows[i].step;
        y[i] = rows[i].loss;
        all_positive &= rows[i].loss > 0;
    }
    clpdd_plot opt = {title, "step", "outer loss", 0, 0, all_positive};
    int rc = clpdd_png_plot(path, x, y, n, &opt, e);
    free(x);
    free(y);
    return rc;
}

void clpdd_json_score(clpdd_strbuf *b, const char *name, const clpdd_score *s) {
    clpdd_sb_json_str(b, name);
    clpdd_sb_printf(b, ": {\"mean\": %.6f, \"std\": %.6f, \"per_seed\": [", s->mean, s->std);
    for (int i = 0; i < s->n; i++) clpdd_sb_printf(b, "%s%.6f", i ? ", " : "", s->per_seed[i]);
    clpdd_sb_printf(b, "]}");
}
