/* clpdd plugin ABI.
 *
 * A plugin is a shared object exporting one symbol, `clpdd_plugin_entry`, a function that
 * returns a pointer to a constant descriptor. The descriptor's FIRST fields are the ABI
 * version: the loader reads them before anything else and refuses a plugin whose major
 * differs from the core's or whose minor is newer. Then come kind, name, summary, the
 * keys the plugin accepts in its INI section, and the vtable for its kind.
 *
 * Plugins are plain C. They never call CUDA, never print, never exit: on bad input they call
 * host->error(...) and return a non-zero status. Tensors (op memory, device memory on CUDA)
 * come from host->alloc, so the core counts them; a plugin's own host-side state and host
 * scratch (e.g. a small recursion run in double on the host) may use malloc, allocated in
 * create and freed in destroy, never inside a hot call.
 * All tensors are fp32, row-major, in the memory of host->ops (device memory on CUDA).
 * A plugin may keep pointers to the inputs of its last forward: the core leaves them
 * unchanged until the matching backward has returned.
 *
 * Dimension legend: m synthetic images, n real batch, d feature dim, C classes,
 * c/H/W the backbone's input channels and size.
 */
#ifndef CLPDD_PLUGIN_H
#define CLPDD_PLUGIN_H
#include <stddef.h>
#include <stdint.h>
#include "clpdd/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLPDD_ABI_MAJOR 1
/* minor 1: ops added at the end of clpdd_ops (transformer extras, augmentation);
   minor 2: clpdd_plugin.key_default, ops added at the end of clpdd_ops (batched convolution);
   minor 3: ops added at the end of clpdd_ops (set_precision, fused attention, gather_rows_f16);
   minor 4 (ABI 1.4: host cfg_enum; ops precision query): clpdd_host.cfg_enum added at the end
   of clpdd_host, an op added at the end of clpdd_ops;
   minor 5 (ABI 1.5: learned scalars): key type CLPDD_KEY_LEARNABLE, clpdd_host.cfg_learn added at
   the end of clpdd_host, learned/set_learned added at the end of clpdd_solver_vt and
   clpdd_loss_vt, set_step after them in clpdd_solver_vt (the core reads them only from plugins
   whose descriptor says minor >= 5).
   minor 6 (ABI 1.6: pieces): pieces_slots and pieces_run added at the end of clpdd_ops.
   The core fills every member of the host it hands out, so a plugin built for an older minor
   loads unchanged; a plugin reads a member added after its own minor only when the host's
   abi_minor says it is there. */
#define CLPDD_ABI_MINOR 6
#define CLPDD_PLUGIN_ENTRY_SYMBOL "clpdd_plugin_entry"
#define CLPDD_RANDOM_WEIGHTS "random" /* host->weights_open: random tensors, no file */

#ifdef _WIN32
#define CLPDD_EXPORT __declspec(dllexport)
#else
#define CLPDD_EXPORT __attribute__((visibility("default")))
#endif

typedef enum {
    CLPDD_KIND_BACKBONE = 0,
    CLPDD_KIND_SOLVER = 1,
    CLPDD_KIND_LOSS = 2,
    CLPDD_KIND_COUNT
} clpdd_plugin_kind;

/* ---- configuration keys a plugin declares ---- */
typedef enum {
    CLPDD_KEY_INT = 0,    /* integer in [min, max] */
    CLPDD_KEY_FLOAT = 1,  /* finite real in [min, max] */
    CLPDD_KEY_BOOL = 2,   /* true/false/yes/no/1/0/on/off */
    CLPDD_KEY_STRING = 3, /* any text (a path, a name) */
    CLPDD_KEY_ENUM = 4,   /* one of `choices`, written "a|b|c" */
    CLPDD_KEY_FLOATS = 5, /* comma-separated finite reals, 1..16 of them */
    /* ABI >= 1.5: a finite real in [min, max] (fixed), or `learn` (learned from the key's default)
       or `learn:<value>` (learned from value > 0): the core optimises log(value) jointly with the
       pixels (docs/design.md §1, learned scalars). cfg_float gives the fixed or initial value,
       cfg_learn says whether it is learned; the plugin reports it through its vtable's learned(). */
    CLPDD_KEY_LEARNABLE = 6,
    CLPDD_KEY_TYPE_COUNT
} clpdd_key_type;

/* A backbone key with this name is its inference chunk size: a speed knob that must not change
   the features, so the core leaves it out of the feature-cache key. */
#define CLPDD_KEY_INFERENCE_BATCH "batch"

typedef struct clpdd_key {
    const char *name;
    clpdd_key_type type;
    const char *default_value; /* as it would be written in the INI; NULL = required */
    const char *help;          /* one line */
    double min, max;           /* INT/FLOAT only; min > max means unbounded */
    const char *choices;       /* ENUM only: "a|b|c" */
} clpdd_key;

/* A validated INI section: opaque; read it through host->cfg_*. */
typedef struct clpdd_section clpdd_section;
/* An open weights file (safetensors): opaque; read it through host->weights_*. */
typedef struct clpdd_weights clpdd_weights;

/* ---- what the core hands every plugin ---- */
typedef struct clpdd_host clpdd_host;
struct clpdd_host {
    uint16_t abi_major, abi_minor;
    const clpdd_ops *ops; /* the device the run uses */
    void *ctx;            /* the core's own state; plugins don't touch it */
    uint64_t seed;        /* the run's seed */

    /* memory in ops' space, counted toward the run's peak; freed with the run at the latest.
       NULL (and an error set) on failure. */
    void *(*alloc)(const clpdd_host *h, size_t bytes);
    void (*free)(const clpdd_host *h, void *p);

    /* messages: error sets the message the core reports for a failing status (printf-style,
       start with the plugin's name); warn/info are printed by the core. */
    void (*error)(const clpdd_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void (*warn)(const clpdd_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void (*info)(const clpdd_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

    /* the plugin's section, already checked against its declared keys (defaults applied);
       asking for an undeclared key is a programming error and aborts */
    long long (*cfg_int)(const clpdd_host *h, const clpdd_section *s, const char *key);
    double (*cfg_float)(const clpdd_host *h, const clpdd_section *s, const char *key);
    int (*cfg_bool)(const clpdd_host *h, const clpdd_section *s, const char *key);
    const char *(*cfg_str)(const clpdd_host *h, const clpdd_section *s, const char *key);
    /* FLOATS: writes up to max values, returns how many there are */
    int (*cfg_floats)(const clpdd_host *h, const clpdd_section *s, const char *key, double *out, int max);
    /* 1 when the INI file set the key (0 when the default applies) */
    int (*cfg_is_set)(const clpdd_host *h, const clpdd_section *s, const char *key);

    /* weights (safetensors). A relative path is looked up in CLPDD_MODEL_PATH (':'-separated),
       the source tree's models/, the install prefix's share/clpdd/models, the working directory.
       The path CLPDD_RANDOM_WEIGHTS ("random") opens no file: every read succeeds (weights_has
       answers 0: optional tensors are absent; a plugin that detects a layout from tensor names
       must pick a default for it), with values
       that depend only on its name (1-D weight/gamma and running_var 1, 1-D bias and
       running_mean 0, else N(0, 0.02²)) — an architecture's cost without its checkpoint. */
    clpdd_weights *(*weights_open)(const clpdd_host *h, const char *path);
    /* 1 when the tensor exists */
    int (*weights_has)(const clpdd_host *h, clpdd_weights *w, const char *name);
    /* copies tensor `name` (F32, F16 or BF16 on disk) into dst (ops memory) as fp32 after checking
       its shape; a missing tensor or wrong shape is an error naming the file, the tensor, its
       shape and the expected one */
    int (*weights_read)(const clpdd_host *h, clpdd_weights *w, const char *name, int ndim,
                        const int64_t *shape, float *dst);
    void (*weights_close)(const clpdd_host *h, clpdd_weights *w);

    /* ABI ≥ 1.4 (h->abi_minor ≥ 4): an ENUM key's value as its index in the key's `choices`
       ("a|b|c": b is 1), for a plugin to switch on its own enum in the choices' order */
    int (*cfg_enum)(const clpdd_host *h, const clpdd_section *s, const char *key);

    /* ABI >= 1.5 (h->abi_minor >= 5): 1 when a LEARNABLE key is `learn` or `learn:<value>` */
    int (*cfg_learn)(const clpdd_host *h, const clpdd_section *s, const char *key);
};

/* ABI >= 1.5: a scalar the core learns for a plugin (a LEARNABLE key set to `learn`), in log space */
typedef struct clpdd_learned {
    const char *key;  /* the LEARNABLE key's name, "lambda" */
    double value;     /* its value now (> 0) */
    double grad_log;  /* ∂L/∂log(value) of the last backward (solver) / forward (loss) */
} clpdd_learned;

/* ---- backbone: images (n, c, H, W), normalised → features (n, d) ---- */
typedef struct clpdd_backbone_info {
    int channels, height, width; /* input the encoder expects */
    int feature_dim;             /* d */
    float mean[3], std[3];       /* normalisation of [0,1] pixels the weights were trained with */
    const char *weights_id;      /* weights file as configured; the core resolves it like
                                    weights_open and hashes its bytes into the feature-cache key
                                    (NULL: no weights file) */
} clpdd_backbone_info;

typedef struct clpdd_backbone_vt {
    int (*create)(const clpdd_host *h, const clpdd_section *cfg, void **self);
    void (*destroy)(void *self);
    int (*describe)(void *self, clpdd_backbone_info *info);
    /* a tape holds what backward needs for up to max_n images; allocated once, reused */
    int (*tape_create)(void *self, int max_n, void **tape);
    void (*tape_destroy)(void *self, void *tape);
    /* features (n, d) = f(images (n, c, H, W)); tape NULL = inference (any n; the plugin
       works in pieces of its own choosing), else n ≤ the tape's max_n */
    int (*forward)(void *self, float *features, const float *images, int n, void *tape);
    /* dimages (n, c, H, W) = (∂f/∂images)ᵀ·dfeatures (n, d), from the tape of the last forward */
    int (*backward)(void *self, float *dimages, const float *dfeatures, int n, void *tape);
} clpdd_backbone_vt;

/* ---- solver: the inner problem ---- */
typedef struct clpdd_solver_dims {
    int m;     /* synthetic images */
    int d;     /* feature dim */
    int C;     /* classes */
    int n_max; /* largest real batch forward will see */
} clpdd_solver_dims;

typedef struct clpdd_solver_vt {
    int (*create)(const clpdd_host *h, const clpdd_section *cfg, const clpdd_solver_dims *dims,
                  void **self);
    void (*destroy)(void *self);
    /* predictive solvers: Z (n, C) from phi_s (m, d), Y_s (m, C), phi_b (n, d).
       NULL for objective solvers. */
    int (*forward)(void *self, float *Z, const float *phi_s, const float *Y_s, const float *phi_b, int n);
    /* objective solvers (NULL for predictive ones): *L (host) from phi_s, Y_s, phi_b and the
       real labels y_b (int32, ops memory); such a solver takes no [loss] section. */
    int (*objective)(void *self, float *L, const float *phi_s, const float *Y_s, const float *phi_b,
                     const int32_t *y_b, int n);
    /* dphi_s (m, d) =, and dY_s (m, C) = when not NULL, after the last forward/objective;
       dZ (n, C) for predictive solvers, NULL for objective ones */
    int (*backward)(void *self, float *dphi_s, float *dY_s, const float *dZ);
    /* ABI >= 1.5, optional (NULL: learns nothing). The scalars this instance learns (0 when none):
       up to max of them into out, the count returned; grad_log from the last backward */
    int (*learned)(void *self, clpdd_learned *out, int max);
    /* sets learned scalar i to value (> 0) for the next forward */
    void (*set_learned)(void *self, int i, double value);
    /* ABI >= 1.5, optional (NULL): the distillation step (1, 2, …) of the next forward/objective.
       A solver whose draws change per call (lgm's random heads) keys them by the step, so a run
       resumed from a checkpoint draws exactly what the uninterrupted run drew */
    void (*set_step)(void *self, uint64_t step);
} clpdd_solver_vt;

/* ---- loss: the outer objective on the real batch ---- */
typedef struct clpdd_loss_vt {
    int (*create)(const clpdd_host *h, const clpdd_section *cfg, int C, int n_max, void **self);
    void (*destroy)(void *self);
    /* the support labels' encoding, Y (m, C) = from labels y (int32, ops memory);
       NULL means plain one-hot */
    int (*encode_labels)(void *self, float *Y, const int32_t *y, int m);
    /* *L (host) = loss(Z (n, C), y (n)); dZ (n, C) = ∂L/∂Z */
    int (*forward)(void *self, float *L, float *dZ, const float *Z, const int32_t *y, int n);
    /* ABI >= 1.5, optional: as clpdd_solver_vt's; grad_log from the last forward */
    int (*learned)(void *self, clpdd_learned *out, int max);
    void (*set_learned)(void *self, int i, double value);
} clpdd_loss_vt;

/* ---- the descriptor ---- */
typedef struct clpdd_plugin {
    uint16_t abi_major; /* CLPDD_ABI_MAJOR: first, always */
    uint16_t abi_minor; /* CLPDD_ABI_MINOR */
    clpdd_plugin_kind kind;
    const char *name;    /* the name an INI file uses: [backbone] name = vit */
    const char *version; /* the plugin's own version, "1.0.0" */
    const char *summary; /* one line */
    const clpdd_key *keys;
    int n_keys;
    const void *vtable; /* clpdd_backbone_vt / clpdd_solver_vt / clpdd_loss_vt by kind */
    /* ABI ≥ 1.2, optional (NULL): the value in force for `key` when the INI leaves it unset and
       its default depends on other keys (vit: every architecture key follows the variant).
       Writes it into buf (n bytes) as it would be written in the INI and returns buf, or NULL
       when the declared default applies. The core calls it for every unset key before a run
       or `clpdd check`, so config.ini shows what runs. Pure: reads cfg only (through
       h->cfg_*), loads nothing. The loader reads this member only from plugins of minor ≥ 2. */
    const char *(*key_default)(const clpdd_host *h, const clpdd_section *cfg, const char *key, char *buf, size_t n);
} clpdd_plugin;

typedef const clpdd_plugin *(*clpdd_plugin_entry_fn)(void);

#define CLPDD_DEFINE_PLUGIN(desc) \
    CLPDD_EXPORT const clpdd_plugin *clpdd_plugin_entry(void) { return &(desc); }

#ifdef __cplusplus
}
#endif
#endif
