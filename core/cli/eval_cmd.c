/* `clpdd eval`: score an existing distilled set with the evaluator of `clpdd run` (the same data,
 * features, validation split, protocols and baselines), so sets from clpdd and from other tools
 * are compared on equal terms.
 *
 * The set: a run directory (its distilled.safetensors, with its config.ini as the default
 * configuration), a distilled.safetensors file (tensors "images" (m, c, H, W) F32 in [0, 1] and
 * "labels" (m) I32, as clpdd writes them and safetensors.numpy.save_file writes from Python; with
 * "label_matrix" (m, C) F32, a learned label matrix, scored with it and with its argmax labels), or a
 * folder of PNG/JPEG files in class sub-folders (ImageFolder, what other tools export), read at
 * their stored size as 8-bit images. A sub-folder is named by the class it holds: one of the
 * dataset's class names, or its number where the classes are numbered (Fashion-MNIST, MNIST,
 * CIFAR: "3" is class 3, whatever the folders' sorted order); any other name is refused.
 *
 * The output directory is never the set's own: a run directory evaluated into itself would lose
 * its files to the evaluation's. */
#define _GNU_SOURCE
#include "cli/eval_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/startup.h"
#include "data/data_source.h"
#include "config/experiment.h"
#include "io/safetensors.h"
#include "distill/run.h"

/* a loaded set and its storage */
typedef struct loaded_set {
    clpdd_image_set set;
    float *images;
    int32_t *labels;
    float *label_matrix;     /* (m, C) or NULL */
    clpdd_data_info folders; /* a folder: its class sub-folders' names (labels index them) */
} loaded_set;

/* the optional "label_matrix" (m, C) F32 of a set with learned labels; its rows are checked to
   be probability rows where the set is scored (core/distill/run.c) */
static int read_label_matrix(loaded_set *ls, clpdd_st_file *f, const char *path, clpdd_err *e) {
    const clpdd_st_tensor *t = clpdd_st_find(f, "label_matrix");
    if (!t) return 0;
    if (t->ndim != 2 || t->shape[0] != ls->set.m || t->shape[1] < 1 || t->shape[1] > 100000)
        return clpdd_err_set(e, "%s: tensor \"label_matrix\" must be (m, C) = (%d, classes), one probability row per image",
                             path, ls->set.m);
    ls->label_matrix = clpdd_xmalloc((size_t)clpdd_st_numel(t) * sizeof(float));
    ls->set.label_matrix = ls->label_matrix, ls->set.label_C = (int)t->shape[1];
    return clpdd_st_read_f32(f, t, ls->label_matrix, e);
}

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
    if (rc == 0) rc = read_label_matrix(ls, f, path, e);
    clpdd_st_close(f);
    return rc;
}

static int read_folder(loaded_set *ls, const char *path, int grey, clpdd_err *e) {
    clpdd_dataset ds;
    memset(&ds, 0, sizeof ds);
    clpdd_data_cfg cfg = {.kind = CLPDD_DATASET_IMAGEFOLDER, .root = path, .split = ".", .grey = grey};
    if (clpdd_dataset_load_source(&ds, &ls->folders, &cfg, e)) return -1;
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

/* PATH's set, its configuration file and the default output; 2 and a message when there is no configuration */
typedef struct eval_paths {
    char st[4200], cfg[4200];
    int from_run, folder;
} eval_paths;

static int exists_in(const char *dir, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* a run directory without its set: 2 and a message saying so, and whether the run looks unfinished */
static int run_without_set(const char *path) {
    static const char *const run_only[] = {"checkpoint.safetensors", "log.csv", "metrics.json", "loss.png", "distilled.png"};
    int run = 0;
    for (size_t i = 0; i < sizeof run_only / sizeof run_only[0]; i++) run |= exists_in(path, run_only[i]);
    if (!run) return 0;
    if (exists_in(path, "checkpoint.safetensors"))
        fprintf(stderr, "clpdd eval: run directory %s has no distilled.safetensors: the run is unfinished (its "
                        "checkpoint.safetensors is there: `clpdd run CONFIG --output %s --resume` finishes it)\n", path, path);
    else
        fprintf(stderr, "clpdd eval: run directory %s has no distilled.safetensors (and no checkpoint): the run did not "
                        "finish, or the file was removed; nothing to evaluate\n", path);
    return 2;
}

static int find_paths(eval_paths *p, const char *path, const char *config) {
    struct stat st;
    if (stat(path, &st) != 0)
        return fprintf(stderr, "clpdd eval: %s: %s (expected a run directory, a distilled.safetensors or a folder of class "
                               "sub-folders)\n", path, strerror(errno)), 2;
    p->from_run = is_dir(path) && (snprintf(p->st, sizeof p->st, "%s/distilled.safetensors", path), access(p->st, F_OK) == 0);
    if (is_dir(path) && !p->from_run && run_without_set(path)) return 2;
    p->folder = is_dir(path) && !p->from_run;
    if (!p->from_run) snprintf(p->st, sizeof p->st, "%s", path);
    if (config) snprintf(p->cfg, sizeof p->cfg, "%s", config);
    else if (p->from_run) snprintf(p->cfg, sizeof p->cfg, "%s/config.ini", path);
    else return fprintf(stderr, "clpdd eval: %s is not a run directory: give the configuration with --config FILE.ini\n", path), 2;
    return 0;
}

/* the experiment with the set's images per class as distill.ipc, and the set; 0, 1 (the set
   unreadable) or 2 (the configuration), the message printed */
static int load(clpdd_startup *s, const clpdd_args *a, const eval_paths *p, loaded_set *ls) {
    const char *path = a->pos[0];
    /* a first load tells the protocol and the image channels; the set then fixes distill.ipc */
    if (clpdd_startup_load(s, a, p->cfg, NULL, 0)) return 2;
    /* grey for the IDX datasets; otherwise RGB, which the run converts to the data's channels */
    int grey = s->x.dataset == CLPDD_DATASET_FASHION_MNIST || s->x.dataset == CLPDD_DATASET_MNIST;
    if ((p->folder ? read_folder(ls, path, grey, &s->e) : read_safetensors(ls, p->st, &s->e)) != 0)
        return fprintf(stderr, "clpdd: %s\n", s->e.msg), 1;
    char ipc[64];
    snprintf(ipc, sizeof ipc, "distill.ipc=%d", images_per_class(ls->labels, ls->set.m));
    const char *extra[] = {ipc};
    return clpdd_startup_load(s, a, p->cfg, extra, 1);
}

/* 2 and a message when the output directory is the set's own: PATH itself (a run directory, an
   image folder) or the folder of a set file, whatever the spelling (a trailing slash, a symlink) */
static int output_is_input(const char *out, const char *path) {
    struct stat so, si;
    if (stat(out, &so) != 0 || stat(path, &si) != 0) return 0; /* an output still to be made is no one's */
    int same = so.st_dev == si.st_dev && so.st_ino == si.st_ino;
    if (!same && !S_ISDIR(si.st_mode)) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        same = stat(slash ? (dir[0] ? dir : "/") : ".", &si) == 0 && so.st_dev == si.st_dev && so.st_ino == si.st_ino;
    }
    if (!same) return 0;
    fprintf(stderr, "clpdd eval: --output %s is where the evaluated set %s lives: its files would be replaced by the "
                    "evaluation's; choose another --output\n", out, path);
    return 2;
}

static int eval(const clpdd_args *a) {
    const char *path = a->pos[0], *output = clpdd_args_str(a, "output");
    eval_paths p;
    int rc = find_paths(&p, path, clpdd_args_str(a, "config"));
    if (rc) return rc;
    clpdd_startup s;
    clpdd_startup_dirs(&s, a);
    loaded_set ls;
    memset(&ls, 0, sizeof ls);
    rc = load(&s, a, &p, &ls);
    if (rc == 0) rc = clpdd_startup_device(&s);
    if (rc == 0) {
        char out[4200];
        const char *pname = clpdd_protocol_name(s.x.protocol);
        if (output) snprintf(out, sizeof out, "%s", output);
        else if (p.from_run) snprintf(out, sizeof out, "%s/eval-%s", path, pname);
        else {
            const char *base = strrchr(path, '/');
            base = base && base[1] ? base + 1 : path;
            snprintf(out, sizeof out, "runs/eval-%.*s-%s", (int)strcspn(base, "."), base, pname);
        }
        ls.set.images = ls.images, ls.set.labels = ls.labels, ls.set.source = path, ls.set.from_run = p.from_run;
        ls.set.class_names = (const char *const *)ls.folders.class_names, ls.set.n_class_names = ls.folders.classes;
        clpdd_run_opts o = {.ops = s.ops, .output = out, .quiet = clpdd_args_count(a, "quiet"), .force = clpdd_args_count(a, "force")};
        rc = output_is_input(out, path);
        if (rc == 0 && clpdd_run_eval(&s.x, &ls.set, &o, &s.e)) {
            fprintf(stderr, "clpdd: %s\n", s.e.msg);
            rc = 1;
        }
    }
    free(ls.images);
    free(ls.labels);
    free(ls.label_matrix);
    clpdd_data_info_free(&ls.folders);
    clpdd_startup_end(&s);
    return rc;
}

static const clpdd_option opt_config = {
    .name = "config", .kind = CLPDD_OPT_STRING, .value = "FILE.ini",
    .help = "the configuration (data, backbone, [eval]); default PATH/config.ini for a run directory"};
static const clpdd_option opt_protocol = {
    .name = "protocol", .kind = CLPDD_OPT_STRING, .value = "probe|fast|lgm", .set_key = "eval.protocol",
    .help = "the evaluation protocol: the same as --set eval.protocol=VALUE, after every --set"};
static const clpdd_option opt_force = {
    .name = "force", .kind = CLPDD_OPT_FLAG, .help = "replace another evaluation's results in the output directory"};
static const clpdd_option *const options[] = {&opt_config, &opt_protocol, &clpdd_opt_set, &clpdd_opt_output,
                                              &clpdd_opt_device, &clpdd_opt_plugin_path, &clpdd_opt_allow_plugin_path,
                                              &opt_force, &clpdd_opt_quiet, NULL};

const clpdd_command clpdd_command_eval = {
    .name = "eval",
    .synopsis = "eval PATH",
    .summary = "evaluate an existing distilled set (a run, a .safetensors, an image folder)",
    .usage =
        "usage: clpdd eval PATH [--config FILE.ini] [--protocol probe|fast|lgm] [--set section.key=value]...\n"
        "                       [--output DIR] [--device auto|cpu|cuda] [--plugin-path DIR[:DIR...]] [--allow-plugin-path]\n"
        "                       [--force] [--quiet]\n"
        "\n"
        "Scores an existing distilled set exactly as `clpdd run` scores its own: PATH is a run directory,\n"
        "a distilled.safetensors file (\"images\" (m, c, H, W) float32 in [0, 1], \"labels\" (m) int32), or a\n"
        "folder of PNG/JPEG images in class sub-folders, each named by its class: a class name of the\n"
        "dataset, or the class's number where the classes are numbered (\"3\" is class 3 of Fashion-MNIST).\n"
        "The configuration (data, backbone, [eval]) is --config, else PATH/config.ini for a run directory;\n"
        "--protocol and --set override it. Writes config.ini, metrics.json, distilled.{safetensors,png} and\n"
        "neighbors.{csv,png} into --output (default: PATH/eval-<protocol> for a run directory, else runs/eval-<name>-<protocol>),\n"
        "which may not be PATH's own directory.\n",
    .options = options,
    .positional = "PATH",
    .min_pos = 1,
    .max_pos = 1,
    .run = eval,
};

int clpdd_cmd_eval(int argc, char **argv) { return clpdd_command_main(&clpdd_command_eval, argc, argv); }
