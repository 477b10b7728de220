/* clpdd_ops_cuda(): the CUDA backend, loaded on first use (docs/design.md, "Devices").
 *
 * The .cu files of core/cuda are built into their own module, libclpdd_cuda.so, beside
 * libclpdd.so (build/core/, or the install prefix's lib/): linking cuBLAS, cuSOLVER and the
 * CUDA runtime into libclpdd mapped ~260 MB into every CPU run (results/bench/cpu/rss.md).
 * It is dlopen-ed here only when something asks for the GPU (device = cuda, a CUDA test, or
 * device = auto on a machine that shows one: cuda_loader.h). Built without CUDA
 * (CLPDD_CUDA=OFF, or AUTO without nvcc) there is no module, and clpdd_ops_cuda() says so.
 * $CLPDD_CUDA_LIBRARY names another module file (a relocated install, or a test of the
 * failure path). */
#define _GNU_SOURCE
#include "cuda/cuda_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clpdd/plugin.h"

static const clpdd_ops *g_table;
static char g_why[8192]; /* room for a 4096-byte path and dlerror()'s text */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

int clpdd_cuda_device_visible(void) {
    /* the NVIDIA driver's device nodes /dev/nvidia0, /dev/nvidia1, ... (not nvidiactl or
       nvidia-uvm, which a driver install creates without a GPU), or WSL 2's GPU node /dev/dxg */
    DIR *d = opendir("/dev");
    if (!d) return 0;
    int seen = 0;
    for (struct dirent *ent; !seen && (ent = readdir(d));)
        seen = (!strncmp(ent->d_name, "nvidia", 6) && ent->d_name[6] >= '0' && ent->d_name[6] <= '9') ||
               !strcmp(ent->d_name, "dxg");
    closedir(d);
    return seen;
}

#ifdef CLPDD_HAVE_CUDA
/* the module's file: $CLPDD_CUDA_LIBRARY, else CLPDD_CUDA_MODULE in libclpdd.so's own folder */
static void module_path(char *out, size_t n) {
    const char *env = getenv("CLPDD_CUDA_LIBRARY");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    Dl_info info;
    const char *self = dladdr((void *)clpdd_ops_cuda, &info) && info.dli_fname ? info.dli_fname : "";
    const char *slash = strrchr(self, '/');
    if (slash) snprintf(out, n, "%.*s/%s", (int)(slash - self), self, CLPDD_CUDA_MODULE);
    else snprintf(out, n, "%s", CLPDD_CUDA_MODULE); /* the dynamic loader's search path */
}

static void cuda_load(void) {
    char path[4096];
    module_path(path, sizeof path);
    /* a named file must be a regular one: dlopen() of a FIFO blocks for a writer, forever */
    struct stat st;
    if (strchr(path, '/') && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        snprintf(g_why, sizeof g_why, "the CUDA backend %s could not be loaded: not a regular file", path);
        return;
    }
    /* RTLD_LOCAL: the CUDA libraries' symbols stay out of the plugins' way */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(g_why, sizeof g_why, "the CUDA backend %s could not be loaded: %s", path, dlerror());
        return;
    }
    const uint32_t *abi = dlsym(h, "clpdd_cuda_module_abi");
    const clpdd_ops *(*entry)(const char **) = (const clpdd_ops *(*)(const char **))dlsym(h, "clpdd_cuda_module_ops");
    const uint32_t want = (uint32_t)CLPDD_ABI_MAJOR << 16 | CLPDD_ABI_MINOR;
    if (!abi || !entry || *abi != want) {
        snprintf(g_why, sizeof g_why, "the CUDA backend %s is not this clpdd's (ABI %u.%u, expected %u.%u): rebuild it "
                 "with this libclpdd", path, abi ? *abi >> 16 : 0u, abi ? *abi & 0xffffu : 0u, CLPDD_ABI_MAJOR,
                 CLPDD_ABI_MINOR);
        dlclose(h);
        return;
    }
    const char *why = NULL;
    g_table = entry(&why);
    /* loaded but no usable GPU: the module stays (CUDA's runtime does not expect to be unloaded) */
    if (!g_table) snprintf(g_why, sizeof g_why, "%s", why ? why : "CUDA is unavailable");
}
#else
static void cuda_load(void) {
    snprintf(g_why, sizeof g_why, "this build has no CUDA backend (configure with nvcc available or -DCLPDD_CUDA=ON)");
}
#endif

const clpdd_ops *clpdd_ops_cuda(const char **why) {
    pthread_once(&g_once, cuda_load);
    if (!g_table && why) *why = g_why;
    return g_table;
}
