#include "config/kinds.h"

#include "io/ini.h"

const char *const clpdd_device_names[CLPDD_DEVICE_COUNT] = {"auto", "cpu", "cuda"};
const char *const clpdd_bad_image_names[CLPDD_BAD_IMAGE_COUNT] = {"error", "skip"};
const char *const clpdd_feature_dtype_names[CLPDD_FEATURE_DTYPE_COUNT] = {"f32", "f16"};
const char *const clpdd_adapt_names[CLPDD_ADAPT_COUNT] = {"resize", "pad", "crop"};
const char *const clpdd_init_names[CLPDD_INIT_COUNT] = {"real", "noise"};
const char *const clpdd_labels_names[CLPDD_LABELS_COUNT] = {"onehot", "learn"};
const char *const clpdd_param_names[CLPDD_PARAM_KIND_COUNT] = {"pixels", "pyramid"};
const char *const clpdd_augment_names[CLPDD_AUGMENT_COUNT] = {"none", "dsa"};
const char *const clpdd_protocol_names[CLPDD_PROTOCOL_COUNT] = {"probe", "fast", "lgm"};
const char *const clpdd_select_names[CLPDD_SELECT_COUNT] = {"average", "worst_group"};

const char *clpdd_device_name(clpdd_device_kind k) { return clpdd_name_at(clpdd_device_names, CLPDD_DEVICE_COUNT, (int)k); }
int clpdd_device_parse(const char *name) { return clpdd_name_index(clpdd_device_names, CLPDD_DEVICE_COUNT, name); }

int clpdd_adapter_mode_parse(const char *name) { return clpdd_name_index(clpdd_adapt_names, CLPDD_ADAPT_COUNT, name); }
const char *clpdd_adapter_mode_name(clpdd_adapt_mode mode) {
    return clpdd_name_at(clpdd_adapt_names, CLPDD_ADAPT_COUNT, (int)mode);
}

const char *clpdd_init_name(clpdd_init_kind k) { return clpdd_name_at(clpdd_init_names, CLPDD_INIT_COUNT, (int)k); }

int clpdd_param_kind_parse(const char *name) { return clpdd_name_index(clpdd_param_names, CLPDD_PARAM_KIND_COUNT, name); }

const char *clpdd_protocol_name(clpdd_protocol p) {
    return clpdd_name_at(clpdd_protocol_names, CLPDD_PROTOCOL_COUNT, (int)p);
}
