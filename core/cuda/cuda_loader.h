/* Loading the CUDA backend (core/cuda/ops_cuda_loader.c; docs/design.md, "Devices"):
 * clpdd_ops_cuda() (clpdd/ops.h) dlopens libclpdd_cuda.so on its first call. */
#ifndef CLPDD_CUDA_LOADER_H
#define CLPDD_CUDA_LOADER_H
#include "clpdd/ops.h"

/* 1 when the NVIDIA driver shows a GPU on this machine (a /dev/nvidiaN node, or WSL 2's /dev/dxg),
   without loading anything: device = auto asks this first, so a CPU-only machine never maps the
   CUDA libraries */
int clpdd_cuda_device_visible(void);

#endif
