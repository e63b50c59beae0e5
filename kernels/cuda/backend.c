/* BACKEND plugin `cuda`: the CUDA module's descriptor and device probe.
 *
 * Built only with --with-cuda, as a loadable module: the axon binary and
 * libaxon never link libcudart, so they run on machines without CUDA. On
 * such a machine this module either fails to load (no libcudart; the
 * loader reports it and goes on) or loads and reports itself unavailable
 * with the driver's reason. Its kernels arrive with the CUDA backend issue. */
#include <cuda_runtime_api.h>
#include <stdio.h>

#include "axon/axon.h"

static ax_status ax_cuda_probe(char *why, size_t why_size) {
    int n = 0, driver = 0, runtime = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaDriverGetVersion(&driver);
        cudaRuntimeGetVersion(&runtime);
        if (driver == 0)
            snprintf(why, why_size, "no NVIDIA driver on this machine (CUDA runtime %d.%d)", runtime / 1000,
                     runtime % 1000 / 10);
        else
            snprintf(why, why_size, "%s (%s; driver %d.%d, runtime %d.%d)", cudaGetErrorString(e),
                     cudaGetErrorName(e), driver / 1000, driver % 1000 / 10, runtime / 1000,
                     runtime % 1000 / 10);
        return AX_ERR_UNSUPPORTED;
    }
    if (n == 0) {
        snprintf(why, why_size, "no CUDA device present");
        return AX_ERR_UNSUPPORTED;
    }
    return AX_OK;
}

static const ax_backend_ops ax_cuda_ops = {.probe = ax_cuda_probe};

static const ax_plugin ax_cuda_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_BACKEND,
    .name = "cuda",
    .version = "0.1",
    .summary = "NVIDIA GPUs through CUDA, cuDNN and cuBLAS",
    .license = "MIT",
    .ops = &ax_cuda_ops,
    .ops_size = sizeof ax_cuda_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_cuda_plugin, NULL};
    return list;
}
