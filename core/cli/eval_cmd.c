/* `clpdd eval`: score an existing distilled set with the evaluator of `clpdd run` (the same data,
 * features, validation split, protocols and baselines), so sets from clpdd and from other tools
 * are compared on equal terms.
 *
 * The set: a run directory (its distilled.safetensors, with its config.ini as the default
 * configuration), a distilled.safetensors file (tensors "images" (m, c, H, W) F32 in [0, 1] and
 * "labels" (m) I32, as clpdd writes them and safetensors.numpy.save_file writes from Python), or a
 * folder of PNG/JPEG files in class sub-folders (ImageFolder: classes sorted by name, label i =
 * the i-th; what other tools export), read at their stored size as 8-bit images. */
#define _GNU_SOURCE
#include "cli/eval_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_source.h"
#include "config/experiment.h"
#include "io/safetensors.h"
#include "distill/run.h"

const char *const clpdd_usage_eval =
    "usage: clpdd eval PATH [--config FILE.ini] [--protocol probe|fast|lgm] [--set section.key=value]...\n"
    "                       [--output DIR] [--device auto|cpu|cuda] [--plugin-path DIR[:DIR...]] [--allow-plugin-path]\n"
    "                       [--force] [--quiet]\n"
    "\n"
    "Scores an existing distilled set exactly as `clpdd run` scores its own: PATH is a run directory,\n"
    "a distilled.safetensors file (\"images\" (m, c, H, W) float32 in [0, 1], \"labels\" (m) int32), or a\n"
    "folder of PNG/JPEG images in class sub-folders (classes sorted by name). The configuration (data,\n"
    "backbone, [eval]) is --config, else PATH/config.ini for a run directory; --protocol and --set\n"
    "override it. Writes config.ini, metrics.json and distilled.{safetensors,png} into --output\n"
    "(default: PATH/eval-<protocol> for a run directory, else runs/eval-<name>-<protocol>).\n";

typedef struct eval_args {
    const char *path, *config, *protocol, *output, *device, *plugin_path;
    const char *sets[256];
    int n_sets, force, quiet, help, allow_plugin_path;
} eval_args;

static int parse(int argc, char **argv, eval_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) a->help = 1;
        else if (!strcmp(s, "--force")) a->force = 1;
        else if (!strcmp(s, "--allow-plugin-path")) a->allow_plugin_path = 1;
        else if (!strcmp(s, "--quiet") || !strcmp(s, "-q")) a->quiet = 1;
        else if (!strcmp(s, "--config")) slot = &a->config;
        else if (!strcmp(s, "--protocol")) slot = &a->protocol;
        else if (!strcmp(s, "--output")) slot = &a->output;
        else if (!strcmp(s, "--device")) slot = &a->device;
        else if (!strcmp(s, "--plugin-path")) slot = &a->plugin_path;
        else if (!strcmp(s, "--set")) {
            if (a->n_sets == 256) return fprintf(stderr, "clpdd eval: too many --set options\n"), -1;
            slot = &a->sets[a->n_sets++];
        } else if (s[0] == '-' && s[1]) return fprintf(stderr, "clpdd eval: unknown option '%s'\n\n%s", s, clpdd_usage_eval), -1;
        else if (!a->path) a->path = s;
        else return fprintf(stderr, "clpdd eval: unexpected argument '%s'\n\n%s", s, clpdd_usage_eval), -1;
        if (slot) {
            if (i + 1 >= argc) return fprintf(stderr, "clpdd eval: option %s needs a value\n\n%s", s, clpdd_usage_eval), -1;
            *slot = argv[++i];
        }
    }
    if (!a->path && !a->help) return fprintf(stderr, "clpdd eval: missing PATH\n\n%s", clpdd_usage_eval), -1;
    if (a->device && clpdd_device_parse(a->device) < 0)
        return fprintf(stderr, "clpdd eval: --device %s: expected auto, cpu or cuda\n", a->device), -1;
    return 0;
}

/* a loaded set and its storage */
typedef struct loaded_set {
    clpdd_image_set set;
    float *images;
    int32_t *labels;
} loaded_set;

static int read_safetensors(loaded_set *ls, const char *path, clpdd_err *e) {
    clpdd_st_file *f;
    if (clpdd_st_open(path, &f, e)) return -1;
    const clpdd_st_tensor *ti = clpdd_st_find(f, "images"), *tl = clpdd_st_find(f, "labels");
    int rc = 0;
    if (!ti || !tl || ti->ndim != 4 || tl->ndim != 1 || tl->dtype != CLPDD_DT_I32 || ti->shape[0] != tl->shape[0] ||
        ti->shape[0] < 1 || ti->shape[0] > (1 << 24))
        rc = clpdd_err_set(e, "%s: expected tensors \"images\" (m, c, H, W) and \"labels\" (m) int32, as clpdd writes "
                              "distilled.safetensors", path);
    if (rc == 0) {
        ls->set.m = (int)ti->shape[0], ls->set.c = (int)ti->shape[1], ls->set.H = (int)ti->shape[2],
        ls->set.W = (int)ti->shape[3];
        ls->images = clpdd_xmalloc((size_t)clpdd_st_numel(ti) * sizeof(float));
        ls->labels = clpdd_xmalloc((size_t)ls->set.m * sizeof(int32_t));
        rc = clpdd_st_read_f32(f, ti, ls->images, e) || clpdd_st_read_raw(f, tl, ls->labels, e) ? -1 : 0;
    }
    for (size_t i = 0; rc == 0 && i < (size_t)clpdd_st_numel(ti); i++)
        if (!(ls->images[i] >= 0.0f && ls->images[i] <= 1.0f))
            rc = clpdd_err_set(e, "%s: images[%zu] = %g: pixels must be finite and in [0, 1]", path, i, ls->images[i]);
    clpdd_st_close(f);
    return rc;
}

static int read_folder(loaded_set *ls, const char *path, int grey, clpdd_err *e) {
    clpdd_dataset ds;
    memset(&ds, 0, sizeof ds);
    clpdd_data_cfg cfg = {CLPDD_DATASET_IMAGEFOLDER, path, NULL, ".", 0, 0, 0, 0, grey, 0, 0, 0};
    if (clpdd_dataset_load_source(&ds, NULL, &cfg, e)) return -1;
    ls->set.m = ds.n, ls->set.c = ds.c, ls->set.H = ds.H, ls->set.W = ds.W;
    ls->images = clpdd_xmalloc((size_t)ds.n * ds.c * ds.H * ds.W * sizeof(float));
    ls->labels = clpdd_xmalloc((size_t)ds.n * sizeof(int32_t));
    int rc = clpdd_dataset_read_float(&ds, NULL, 0, ds.n, ls->images, e); /* a bad file: an error naming it */
    memcpy(ls->labels, ds.labels, (size_t)ds.n * sizeof(int32_t));
    clpdd_dataset_free(&ds);
    return rc;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* the set's largest class: the baselines' images per class */
static int images_per_class(const int32_t *labels, int m) {
    int best = 1;
    for (int i = 0; i < m; i++) {
        int k = 0;
        for (int j = 0; j < m; j++) k += labels[j] == labels[i];
        if (k > best) best = k;
    }
    return best;
}

int clpdd_cmd_eval(int argc, char **argv) {
    eval_args a;
    if (parse(argc, argv, &a)) return 2;
    if (a.help) return fputs(clpdd_usage_eval, stdout), 0;
    char st_path[4200], cfg_path[4200], out[4200];
    int from_run = is_dir(a.path) && (snprintf(st_path, sizeof st_path, "%s/distilled.safetensors", a.path),
                                      access(st_path, R_OK) == 0);
    int folder = is_dir(a.path) && !from_run;
    if (!from_run) snprintf(st_path, sizeof st_path, "%s", a.path);
    if (a.config) snprintf(cfg_path, sizeof cfg_path, "%s", a.config);
    else if (from_run) snprintf(cfg_path, sizeof cfg_path, "%s/config.ini", a.path);
    else return fprintf(stderr, "clpdd eval: %s is not a run directory: give the configuration with --config FILE.ini\n", a.path), 2;

    const char *sets[260];
    int n = 0;
    for (int i = 0; i < a.n_sets; i++) sets[n++] = a.sets[i];
    char proto[64];
    if (a.protocol) snprintf(proto, sizeof proto, "eval.protocol=%s", a.protocol), sets[n++] = proto;
    clpdd_plugin_dirs dirs;
    clpdd_plugin_dirs_init(&dirs, a.plugin_path);
    dirs.allow_paths = a.allow_plugin_path;
    clpdd_experiment x;
    clpdd_err e = {{0}};
    loaded_set ls;
    memset(&ls, 0, sizeof ls);
    int rc = 0;
    /* a first load tells the protocol and the image channels; the set then fixes distill.ipc */
    if (clpdd_experiment_load(&x, cfg_path, sets, n, &dirs, &e)) {
        fprintf(stderr, "clpdd: %s\n", e.msg);
        rc = 2;
    } else {
        /* grey for the IDX datasets; otherwise RGB, which the run converts to the data's channels */
        int grey = x.dataset == CLPDD_DATASET_FASHION_MNIST || x.dataset == CLPDD_DATASET_MNIST;
        char ipc[64];
        if ((folder ? read_folder(&ls, a.path, grey, &e) : read_safetensors(&ls, st_path, &e)) == 0) {
            snprintf(ipc, sizeof ipc, "distill.ipc=%d", images_per_class(ls.labels, ls.set.m));
            sets[n++] = ipc;
            clpdd_experiment_free(&x);
            if (clpdd_experiment_load(&x, cfg_path, sets, n, &dirs, &e)) rc = 2;
        } else {
            rc = 1;
        }
        if (rc) fprintf(stderr, "clpdd: %s\n", e.msg);
    }
    if (rc == 0) {
        const char *pname = clpdd_protocol_name(x.protocol);
        if (a.output) snprintf(out, sizeof out, "%s", a.output);
        else if (from_run) snprintf(out, sizeof out, "%s/eval-%s", a.path, pname);
        else {
            const char *base = strrchr(a.path, '/');
            base = base && base[1] ? base + 1 : a.path;
            snprintf(out, sizeof out, "runs/eval-%.*s-%s", (int)strcspn(base, "."), base, pname);
        }
        clpdd_device_kind dev = x.device;
        if (a.device) dev = (clpdd_device_kind)clpdd_device_parse(a.device); 
        const clpdd_ops *ops = clpdd_select_device(dev, &e);
        ls.set.images = ls.images, ls.set.labels = ls.labels, ls.set.source = a.path, ls.set.from_run = from_run;
        clpdd_run_opts o = {ops, out, a.quiet, 0, a.force};
        if (!ops || clpdd_run_eval(&x, &ls.set, &o, &e)) {
            fprintf(stderr, "clpdd: %s\n", e.msg);
            rc = ops ? 1 : 2;
        }
    }
    free(ls.images);
    free(ls.labels);
    clpdd_experiment_free(&x);
    clpdd_plugin_dirs_free(&dirs);
    return rc;
}
