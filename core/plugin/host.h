/* The core's implementation of clpdd_host: tracked allocation in ops memory, plugin error
 * messages, validated config access, safetensors weights. Also the test seam: a test
 * creates a host over clpdd_ops_cpu() and drives a plugin without the driver. */
#ifndef CLPDD_HOST_H
#define CLPDD_HOST_H
#include "clpdd/plugin.h"
#include "util/util.h"

clpdd_host *clpdd_host_create(const clpdd_ops *ops, uint64_t seed);
/* frees every allocation still outstanding */
void clpdd_host_destroy(clpdd_host *h);
/* the last message a plugin set through host->error ("" when none) */
const char *clpdd_host_error(const clpdd_host *h);
void clpdd_host_clear_error(clpdd_host *h);
size_t clpdd_host_bytes_in_use(const clpdd_host *h);
size_t clpdd_host_peak_bytes(const clpdd_host *h);
/* 0: warnings and info go to stderr (default); 1: silent */
void clpdd_host_set_quiet(clpdd_host *h, int quiet);

/* a weights path as the host resolves it; 0 when readable. A relative path is the first hit in:
   CLPDD_MODEL_PATH (':'-separated), the source tree's models/ (a build tree), the install
   prefix's share/clpdd/models, the working directory. */
int clpdd_resolve_model_path(const char *path, char *out, size_t n);
/* those places as one line for an error message: "CLPDD_MODEL_PATH=…, /src/models, …" */
void clpdd_model_path_places(char *buf, size_t n);

#endif
