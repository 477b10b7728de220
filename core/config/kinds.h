/* The core's enum keys: each enum beside its one name table (the names in the enum's order).
 * The key table (keys.c) joins a table into its key's choices, so the parser, `clpdd keys`,
 * `clpdd check`, config.ini, messages and metrics all read these names. [experiment]
 * precision's names live with clpdd_precision (numerics/precision.h), [data] dataset's with
 * clpdd_dataset_kind (data/data_source.h). */
#ifndef CLPDD_KINDS_H
#define CLPDD_KINDS_H
#include "data/data_source.h"
#include "numerics/precision.h"

/* [experiment] device: auto = cuda when a GPU is visible, else cpu */
typedef enum { CLPDD_DEVICE_AUTO = 0, CLPDD_DEVICE_CPU, CLPDD_DEVICE_CUDA, CLPDD_DEVICE_COUNT } clpdd_device_kind;
extern const char *const clpdd_device_names[CLPDD_DEVICE_COUNT];
const char *clpdd_device_name(clpdd_device_kind k);
int clpdd_device_parse(const char *name); /* "auto" | "cpu" | "cuda" → the kind; -1 for anything else */

/* [data] on_bad_image (stored as clpdd_experiment.skip_bad_images) */
typedef enum { CLPDD_BAD_IMAGE_ERROR = 0, CLPDD_BAD_IMAGE_SKIP, CLPDD_BAD_IMAGE_COUNT } clpdd_bad_image;
extern const char *const clpdd_bad_image_names[CLPDD_BAD_IMAGE_COUNT];

/* [data] feature_dtype (stored as clpdd_experiment.feature_f16) */
typedef enum { CLPDD_FEATURE_F32 = 0, CLPDD_FEATURE_F16, CLPDD_FEATURE_DTYPE_COUNT } clpdd_feature_dtype;
extern const char *const clpdd_feature_dtype_names[CLPDD_FEATURE_DTYPE_COUNT];

/* [data] adapt: how images of another size reach the backbone (encoder/adapter.h) */
typedef enum { CLPDD_ADAPT_RESIZE = 0, CLPDD_ADAPT_PAD, CLPDD_ADAPT_CROP, CLPDD_ADAPT_COUNT } clpdd_adapt_mode;
extern const char *const clpdd_adapt_names[CLPDD_ADAPT_COUNT];
int clpdd_adapter_mode_parse(const char *name); /* "resize" | "pad" | "crop" → the mode; -1 for anything else */
const char *clpdd_adapter_mode_name(clpdd_adapt_mode mode);

/* [distill] init */
typedef enum { CLPDD_INIT_REAL = 0, CLPDD_INIT_NOISE, CLPDD_INIT_COUNT } clpdd_init_kind;
extern const char *const clpdd_init_names[CLPDD_INIT_COUNT];
const char *clpdd_init_name(clpdd_init_kind k);

/* [distill] labels: the synthetic set's label matrix fixed one-hot, or learned (distill/labels.h) */
typedef enum { CLPDD_LABELS_ONEHOT = 0, CLPDD_LABELS_LEARN, CLPDD_LABELS_COUNT } clpdd_labels_kind;
extern const char *const clpdd_labels_names[CLPDD_LABELS_COUNT];

/* [distill] param: what Adam optimises (distill/param.h) */
typedef enum { CLPDD_PARAM_PIXELS = 0, CLPDD_PARAM_PYRAMID, CLPDD_PARAM_KIND_COUNT } clpdd_param_kind;
extern const char *const clpdd_param_names[CLPDD_PARAM_KIND_COUNT];
int clpdd_param_kind_parse(const char *name); /* "pixels" | "pyramid" → the kind; -1 for anything else */

/* [distill] augment */
typedef enum { CLPDD_AUGMENT_NONE = 0, CLPDD_AUGMENT_DSA, CLPDD_AUGMENT_COUNT } clpdd_augment_kind;
extern const char *const clpdd_augment_names[CLPDD_AUGMENT_COUNT];

/* [eval] protocol. probe: converged L-BFGS logistic regression, L2 chosen on the validation
   split; fast / lgm: LGM's Adam probe without / with augmentation (faithful at the paper's sizes only) */
typedef enum { CLPDD_PROTOCOL_PROBE = 0, CLPDD_PROTOCOL_FAST, CLPDD_PROTOCOL_LGM, CLPDD_PROTOCOL_COUNT } clpdd_protocol;
extern const char *const clpdd_protocol_names[CLPDD_PROTOCOL_COUNT];
const char *clpdd_protocol_name(clpdd_protocol p);

/* [eval] select: what the probe's L2 strength is chosen on, on the validation split: the
   average accuracy, or the worst group's ([data] group) */
typedef enum { CLPDD_SELECT_AVERAGE = 0, CLPDD_SELECT_WORST_GROUP, CLPDD_SELECT_COUNT } clpdd_select_kind;
extern const char *const clpdd_select_names[CLPDD_SELECT_COUNT];

#endif
