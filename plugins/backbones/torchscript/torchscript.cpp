/* torchscript: any TorchScript encoder as a backbone, run through libtorch and its autograd.
 *
 * The module maps normalised images x (n, c, S, S) to features (n, d); d is found by one probe
 * forward in create. Tensors wrap the op table's memory without copies (from_blob on host or,
 * with a CUDA libtorch and CUDA ops, device pointers; both run on the legacy default stream the
 * CUDA ops use). Parameters are frozen: backward gives the input gradient
 * dimages = (∂f/∂x)ᵀ·dfeatures of the last taped forward with "=" semantics.
 *
 * Inference (no tape) runs under no-grad in pieces of `batch`; a taped forward keeps the
 * autograd graph (x a leaf that requires grad, the output holding the graph) until the next
 * taped forward on that tape.
 *
 * C++ stays inside this file: the entry point is extern "C", no exception crosses the ABI (each
 * vtable call catches and reports through host->error), and nothing here prints or exits.
 *
 * Legend: n images, c channels, S side, d feature dim. */
#include <ATen/Parallel.h>
#include <torch/csrc/api/include/torch/version.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>
#ifdef CLPDD_TORCH_CUDA
#include <torch/cuda.h>
#endif

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "clpdd/plugin.h"

namespace {

const clpdd_key ts_keys[] = {
    {"file", CLPDD_KEY_STRING, nullptr,
     "TorchScript archive (torch.jit.save; tools/export_torchscript.py); a relative path is looked up like vit's "
     "weights: CLPDD_MODEL_PATH, the shipped models/, the install prefix, the working directory",
     1, 0, nullptr},
    {"channels", CLPDD_KEY_INT, "3", "input channels c the module expects", 1, 3, nullptr},
    {"image_size", CLPDD_KEY_INT, "224", "input side S the module expects (square images)", 1, 4096, nullptr},
    {"mean", CLPDD_KEY_FLOATS, "0.5",
     "per-channel mean of [0,1] pixels the module was trained with (one value: every channel)", 1, 0, nullptr},
    {"std", CLPDD_KEY_FLOATS, "0.5",
     "per-channel std of [0,1] pixels the module was trained with (one value: every channel)", 1, 0, nullptr},
    {"batch", CLPDD_KEY_INT, "256", "images per piece in inference (feature extraction)", 1, 1 << 20, nullptr},
    {"threads", CLPDD_KEY_INT, "0", "libtorch's intra-op CPU threads (0: libtorch's default)", 0, 1024, nullptr},
};
constexpr int TS_N_KEYS = (int)(sizeof ts_keys / sizeof ts_keys[0]);

struct ts_backbone {
    const clpdd_host *h;
    std::string file;     /* as configured: the core hashes the resolved file into the cache key */
    std::string resolved; /* the path that was loaded */
    torch::jit::script::Module module;
    torch::Device device{torch::kCPU};
    int c = 3, S = 224, d = 0, batch = 256;
    float mean[3], std[3];
};

struct ts_tape {
    int max_n = 0, last_n = 0;
    torch::Tensor x, out; /* the taped forward's input leaf (n, c, S, S) and output (n, d) */
};

/* a relative path looked up as the core looks up weights (core/plugin/host.c): each entry of
   CLPDD_MODEL_PATH, the source tree's models/, the install prefix's models (beside libclpdd, then
   as configured), the working directory */
bool resolve(const clpdd_host *h, const std::string &path, std::string &out) {
    if (path.empty()) return false;
    if (path[0] == '/') {
        out = path;
        return access(out.c_str(), R_OK) == 0;
    }
    std::vector<std::string> dirs;
    if (const char *env = getenv("CLPDD_MODEL_PATH")) {
        std::string s(env);
        size_t b = 0;
        while (b <= s.size()) {
            size_t e = s.find(':', b);
            if (e == std::string::npos) e = s.size();
            if (e > b) dirs.push_back(s.substr(b, e - b));
            b = e + 1;
        }
    }
#ifdef CLPDD_SOURCE_MODELS_DIR
    dirs.push_back(CLPDD_SOURCE_MODELS_DIR);
#endif
#ifdef CLPDD_LIB_TO_MODELS
    Dl_info info; /* the host's functions live in libclpdd: <libdir>/libclpdd.so → <libdir>/CLPDD_LIB_TO_MODELS */
    if (dladdr(reinterpret_cast<void *>(h->alloc), &info) && info.dli_fname) {
        std::string lib(info.dli_fname);
        size_t slash = lib.rfind('/');
        if (slash != std::string::npos) dirs.push_back(lib.substr(0, slash) + "/" CLPDD_LIB_TO_MODELS);
    }
#endif
#ifdef CLPDD_MODEL_INSTALL_DIR
    dirs.push_back(CLPDD_MODEL_INSTALL_DIR);
#endif
    for (const std::string &d : dirs) {
        out = d + "/" + path;
        struct stat st;
        if (stat(out.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(out.c_str(), R_OK) == 0) return true;
    }
    out = path;
    return access(out.c_str(), R_OK) == 0;
}

/* the line of a libtorch exception that says what failed: the interpreter's last "...Error: "
   line (its traceback comes first), else the first line (a C++ backtrace follows) */
std::string first_line(const std::exception &e) {
    std::string s = e.what();
    size_t at = s.rfind("Error: "), b = 0;
    if (at != std::string::npos) {
        size_t nl = s.rfind('\n', at);
        b = nl == std::string::npos ? 0 : nl + 1;
    }
    while (b < s.size() && s[b] == ' ') b++;
    size_t nl = s.find('\n', b);
    return s.substr(b, nl == std::string::npos ? std::string::npos : nl - b);
}

int read_norm(const clpdd_host *h, const clpdd_section *cfg, const char *key, const std::string &file, int c,
              float *out) {
    double vals[16];
    int k = h->cfg_floats(h, cfg, key, vals, 16);
    if (k != 1 && k != c) {
        h->error(h, "torchscript: %s: %s has %d values; give 1 (every channel) or %d (one per channel)", file.c_str(),
                 key, k, c);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        out[i] = (float)vals[k == 1 ? 0 : (i < k ? i : k - 1)];
        if (!strcmp(key, "std") && !(out[i] > 0)) {
            h->error(h, "torchscript: %s: std must be positive (got %g)", file.c_str(), (double)out[i]);
            return -1;
        }
    }
    return 0;
}

torch::TensorOptions f32(const ts_backbone *b) { return torch::TensorOptions().dtype(torch::kFloat32).device(b->device); }

/* the module's output for x, checked: a tensor (n, d) of fp32 on the run's device */
int run_module(ts_backbone *b, const torch::Tensor &x, torch::Tensor &out) {
    const clpdd_host *h = b->h;
    torch::jit::IValue r = b->module.forward({x});
    if (!r.isTensor()) {
        h->error(h, "torchscript: %s: forward returns a %s, not one tensor (export the features alone: "
                    "tools/export_torchscript.py)", b->resolved.c_str(), r.tagKind().c_str());
        return -1;
    }
    out = r.toTensor();
    if (out.dim() != 2 || out.size(0) != x.size(0)) {
        std::string shape;
        for (int64_t i = 0; i < out.dim(); i++) shape += (i ? ", " : "") + std::to_string(out.size(i));
        h->error(h, "torchscript: %s: forward of %lld images returns shape (%s); a backbone returns features "
                    "(n, d) (pool the tokens, leave the head out)",
                 b->resolved.c_str(), (long long)x.size(0), shape.c_str());
        return -1;
    }
    if (out.scalar_type() != torch::kFloat32) {
        h->error(h, "torchscript: %s: forward returns %s, not float32", b->resolved.c_str(),
                 std::string(c10::toString(out.scalar_type())).c_str());
        return -1;
    }
    if (out.device() != b->device) {
        h->error(h, "torchscript: %s: forward returns a tensor on %s; the run's ops are on %s",
                 b->resolved.c_str(), out.device().str().c_str(), b->device.str().c_str());
        return -1;
    }
    return 0;
}

/* every parameter and buffer on the run's device: a CUDA module on a CPU run is refused here */
int check_device(ts_backbone *b) {
    for (const torch::Tensor &t : b->module.parameters())
        if (t.device() != b->device) {
            b->h->error(b->h, "torchscript: %s holds parameters on %s but the run's ops are on %s (export the module "
                              "on the CPU: tools/export_torchscript.py)",
                        b->resolved.c_str(), t.device().str().c_str(), b->device.str().c_str());
            return -1;
        }
    for (const torch::Tensor &t : b->module.buffers())
        if (t.device() != b->device) {
            b->h->error(b->h, "torchscript: %s holds buffers on %s but the run's ops are on %s",
                        b->resolved.c_str(), t.device().str().c_str(), b->device.str().c_str());
            return -1;
        }
    return 0;
}

/* one probe forward of two zero images with grad: finds d and checks the output depends on x */
int probe(ts_backbone *b) {
    const clpdd_host *h = b->h;
    torch::Tensor x = torch::zeros({2, b->c, b->S, b->S}, f32(b)).requires_grad_(true);
    torch::Tensor out;
    try {
        if (run_module(b, x, out)) return -1;
    } catch (const std::exception &e) {
        h->error(h, "torchscript: %s: the probe forward on images (2, %d, %d, %d) (channels, image_size) failed: %s",
                 b->resolved.c_str(), b->c, b->S, b->S, first_line(e).c_str());
        return -1;
    }
    if (!out.requires_grad()) {
        h->error(h, "torchscript: %s: the output does not depend on the input images (no gradient reaches them)",
                 b->resolved.c_str());
        return -1;
    }
    if (out.size(1) < 1) return h->error(h, "torchscript: %s: zero-width features", b->resolved.c_str()), -1;
    b->d = (int)out.size(1);
    return 0;
}

int ts_open(ts_backbone *b) {
    const clpdd_host *h = b->h;
    if (!resolve(h, b->file, b->resolved)) {
        h->error(h, "torchscript: cannot read file '%s' (looked up in CLPDD_MODEL_PATH, models/, the install prefix, "
                    "the working directory)", b->file.c_str());
        return -1;
    }
    /* loaded where it was saved (no map_location): a traced module may hold its device in its code
       too, so a module saved on a GPU is refused on a CPU run rather than moved */
    try {
        b->module = torch::jit::load(b->resolved);
    } catch (const std::exception &e) {
        const std::string why = first_line(e);
        if (b->device.is_cpu() && why.find("CUDA") != std::string::npos) {
            h->error(h, "torchscript: %s holds CUDA tensors but the run's ops are on the CPU (export the module on "
                        "the CPU: tools/export_torchscript.py)",
                     b->resolved.c_str());
        } else {
            h->error(h, "torchscript: %s is not a TorchScript archive libtorch %s can load (torch.jit.save; "
                        "tools/export_torchscript.py): %s",
                     b->resolved.c_str(), TORCH_VERSION, why.c_str());
        }
        return -1;
    }
    if (b->device.is_cuda()) b->module.to(b->device);
    b->module.eval();
    for (const torch::Tensor &t : b->module.parameters()) t.requires_grad_(false);
    return check_device(b) || probe(b) ? -1 : 0;
}

extern "C" void ts_destroy(void *self) { delete static_cast<ts_backbone *>(self); }

extern "C" int ts_create(const clpdd_host *h, const clpdd_section *cfg, void **out) {
    *out = nullptr;
    ts_backbone *b = new (std::nothrow) ts_backbone();
    if (!b) return h->error(h, "torchscript: out of host memory"), -1;
    b->h = h;
    try {
        b->file = h->cfg_str(h, cfg, "file");
        b->c = (int)h->cfg_int(h, cfg, "channels");
        b->S = (int)h->cfg_int(h, cfg, "image_size");
        b->batch = (int)h->cfg_int(h, cfg, "batch");
        const int threads = (int)h->cfg_int(h, cfg, "threads");
        if (threads > 0) at::set_num_threads(threads);
        if (read_norm(h, cfg, "mean", b->file, b->c, b->mean) || read_norm(h, cfg, "std", b->file, b->c, b->std)) goto fail;
        if (h->ops && h->ops->is_device) {
#ifdef CLPDD_TORCH_CUDA
            if (!torch::cuda::is_available()) {
                h->error(h, "torchscript: the run is on CUDA but libtorch sees no CUDA device");
                goto fail;
            }
            b->device = torch::Device(torch::kCUDA, 0);
#else
            h->error(h, "torchscript: the run is on %s but this plugin was built against a CPU-only libtorch "
                        "(rebuild with Torch_DIR pointing at a CUDA libtorch)", h->ops->name);
            goto fail;
#endif
        }
        if (ts_open(b)) goto fail;
    } catch (const std::exception &e) {
        h->error(h, "torchscript: %s: %s", b->file.c_str(), first_line(e).c_str());
        goto fail;
    }
    *out = b;
    return 0;
fail:
    delete b;
    return -1;
}

extern "C" int ts_describe(void *self, clpdd_backbone_info *info) {
    ts_backbone *b = static_cast<ts_backbone *>(self);
    memset(info, 0, sizeof *info);
    info->channels = b->c;
    info->height = b->S;
    info->width = b->S;
    info->feature_dim = b->d;
    for (int i = 0; i < 3; i++) {
        info->mean[i] = b->mean[i];
        info->std[i] = b->std[i];
    }
    info->weights_id = b->file.c_str();
    return 0;
}

extern "C" int ts_tape_create(void *self, int max_n, void **tape) {
    ts_backbone *b = static_cast<ts_backbone *>(self);
    *tape = nullptr;
    if (max_n < 1) return b->h->error(b->h, "torchscript: tape for %d images", max_n), -1;
    ts_tape *t = new (std::nothrow) ts_tape();
    if (!t) return b->h->error(b->h, "torchscript: out of host memory"), -1;
    t->max_n = max_n;
    *tape = t;
    return 0;
}

extern "C" void ts_tape_destroy(void *self, void *tape) { delete static_cast<ts_tape *>(tape); }

/* images (n, c, S, S) in ops memory as a tensor, without a copy */
torch::Tensor wrap(ts_backbone *b, const float *p, int n) {
    return torch::from_blob(const_cast<float *>(p), {n, b->c, b->S, b->S}, f32(b));
}

int fail_in(ts_backbone *b, const char *what, const std::exception &e) {
    b->h->error(b->h, "torchscript: %s: %s failed: %s", b->resolved.c_str(), what, first_line(e).c_str());
    return -1;
}

extern "C" int ts_forward(void *self, float *features, const float *images, int n, void *tape) {
    ts_backbone *b = static_cast<ts_backbone *>(self);
    if (n < 0) return b->h->error(b->h, "torchscript: forward of %d images", n), -1;
    try {
        if (!tape) {
            torch::NoGradGuard no_grad;
            for (int i = 0; i < n; i += b->batch) {
                const int k = n - i < b->batch ? n - i : b->batch;
                torch::Tensor out;
                if (run_module(b, wrap(b, images + (size_t)i * b->c * b->S * b->S, k), out)) return -1;
                torch::from_blob(features + (size_t)i * b->d, {k, b->d}, f32(b)).copy_(out);
            }
            return 0;
        }
        ts_tape *t = static_cast<ts_tape *>(tape);
        if (n > t->max_n)
            return b->h->error(b->h, "torchscript: forward of %d images on a tape for %d", n, t->max_n), -1;
        t->last_n = 0;
        t->x = torch::Tensor();
        t->out = torch::Tensor(); /* releases the previous graph first */
        if (!n) return 0;
        torch::Tensor x = wrap(b, images, n).requires_grad_(true), out;
        if (run_module(b, x, out)) return -1;
        {
            torch::NoGradGuard no_grad;
            torch::from_blob(features, {n, b->d}, f32(b)).copy_(out);
        }
        t->x = x;
        t->out = out;
        t->last_n = n;
        return 0;
    } catch (const std::exception &e) {
        return fail_in(b, "forward", e);
    }
}

extern "C" int ts_backward(void *self, float *dimages, const float *dfeatures, int n, void *tape) {
    ts_backbone *b = static_cast<ts_backbone *>(self);
    ts_tape *t = static_cast<ts_tape *>(tape);
    if (!t) return b->h->error(b->h, "torchscript: backward needs the tape of a forward"), -1;
    if (n != t->last_n)
        return b->h->error(b->h, "torchscript: backward of %d images after a taped forward of %d", n, t->last_n), -1;
    if (!n) return 0;
    try {
        torch::Tensor g = torch::from_blob(const_cast<float *>(dfeatures), {n, b->d}, f32(b));
        /* retain_graph: a second backward of the same forward gives the same gradient */
        std::vector<torch::Tensor> dx = torch::autograd::grad({t->out}, {t->x}, {g}, /*retain_graph=*/true,
                                                              /*create_graph=*/false, /*allow_unused=*/true);
        torch::Tensor dst = torch::from_blob(dimages, {n, b->c, b->S, b->S}, f32(b));
        if (dx.empty() || !dx[0].defined()) dst.zero_();
        else dst.copy_(dx[0]);
        return 0;
    } catch (const std::exception &e) {
        return fail_in(b, "backward", e);
    }
}

const clpdd_backbone_vt ts_vt = {
    /* .create = */ ts_create,
    /* .destroy = */ ts_destroy,
    /* .describe = */ ts_describe,
    /* .tape_create = */ ts_tape_create,
    /* .tape_destroy = */ ts_tape_destroy,
    /* .forward = */ ts_forward,
    /* .backward = */ ts_backward,
};

const clpdd_plugin ts_plugin = {
    /* .abi_major = */ CLPDD_ABI_MAJOR,
    /* .abi_minor = */ 0, /* the vtable and the host up to weights_* */
    /* .kind = */ CLPDD_KIND_BACKBONE,
    /* .name = */ "torchscript",
    /* .version = */ "1.0.0",
    /* .summary = */ "any TorchScript encoder (images -> features) through libtorch and its autograd "
                     "(tools/export_torchscript.py)",
    /* .keys = */ ts_keys,
    /* .n_keys = */ TS_N_KEYS,
    /* .vtable = */ &ts_vt,
    /* .key_default = */ nullptr,
};

} // namespace

extern "C" CLPDD_EXPORT const clpdd_plugin *clpdd_plugin_entry(void) { return &ts_plugin; }
