/* BACKEND plugin `cuda`: NVIDIA GPUs through CUDA, cuDNN and cuBLAS.
 *
 * Built only with --with-cuda, as a loadable module: the axon binary and
 * libaxon never link libcudart, so they run on machines without CUDA. On
 * such a machine this module either fails to load (no libcudart; the
 * loader reports it and goes on) or loads and reports itself unavailable
 * with the driver's reason.
 *
 * The registry probes every BACKEND plugin when it loads; a successful
 * probe registers the kernel table (cuda_backend.c) for AX_DEVICE_CUDA, so
 * `t:to("cuda")` and every op on CUDA tensors work from then on. */
#include <stdio.h>

#include "axon/axon.h"
#include "cuda_internal.h"

static ax_status ax_cuda_plugin_probe(char *why, size_t why_size) {
    ax_status st = ax_cuda_probe(why, why_size);
    if (st != AX_OK) return st;
    if (ax_cuda_register() != AX_OK) {
        snprintf(why, why_size, "%s", ax_error_message());
        return AX_ERR_ABI;
    }
    return AX_OK;
}

static const ax_backend_ops ax_cuda_ops = {.probe = ax_cuda_plugin_probe};

static const ax_plugin ax_cuda_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_BACKEND,
    .name = "cuda",
    .version = "0.2",
    .summary = "NVIDIA GPUs through CUDA, cuDNN and cuBLAS",
    .license = "MIT",
    .ops = &ax_cuda_ops,
    .ops_size = sizeof ax_cuda_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_cuda_plugin, NULL};
    return list;
}
