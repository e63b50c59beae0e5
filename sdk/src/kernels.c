/* Which kernel table serves which device type. The CPU's is built in;
 * others are registered when their BACKEND plugin loads. */
#include <stddef.h>

#include "axon/kernels.h"

static const ax_kernels *ax_kernel_tables[2];

const ax_kernels *ax_kernels_for(ax_device device) {
    if (device.type == AX_DEVICE_CPU) return ax_cpu_kernels();
    if ((unsigned)device.type < sizeof ax_kernel_tables / sizeof ax_kernel_tables[0] && ax_kernel_tables[device.type])
        return ax_kernel_tables[device.type];
    if (device.type == AX_DEVICE_CUDA)
        AX_ERROR(AX_ERR_UNSUPPORTED,
                 "no backend serves cuda:%d (the cuda plugin is not loaded, or it found no usable GPU: see "
                 "`axon plugins`)",
                 (int)device.index);
    else
        AX_ERROR(AX_ERR_UNSUPPORTED, "no backend loaded for device type %d (is its plugin on the plugin path?)",
                 (int)device.type);
    return NULL;
}

ax_status ax_kernels_register(ax_device_type type, const ax_kernels *kernels) {
    if (type == AX_DEVICE_CPU || (unsigned)type >= sizeof ax_kernel_tables / sizeof ax_kernel_tables[0])
        return AX_ERROR(AX_ERR_INVALID, "ax_kernels_register: device type %d cannot be registered", (int)type);
    /* tables from before `transfer` was appended are still whole (the
     * members after their size are treated as absent) */
    size_t least = offsetof(ax_kernels, transfer);
    if (!kernels || kernels->size < least)
        return AX_ERROR(AX_ERR_ABI, "ax_kernels_register: kernel table of %zu bytes, expected at least %zu",
                        kernels ? kernels->size : 0, least);
    ax_kernel_tables[type] = kernels;
    return AX_OK;
}
