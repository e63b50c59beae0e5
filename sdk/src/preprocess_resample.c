/* preprocess_resample.c — resampling between a case's grids through
 * ax_warp with border EDGE, so the half-voxel aligned sample points near
 * the border read edge values (skimage's mode="edge") instead of a fill. */
#include <stdlib.h>
#include <string.h>

#include "axon/warp.h"
#include "preprocess_internal.h"

uint64_t pp_fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static ax_warp pp_warp(const int32_t os[3], const int32_t is[3], ax_interp interp) {
    ax_warp w = ax_warp_identity();
    for (int a = 0; a < 3; a++) {
        double s = (double)is[a] / (double)os[a];
        for (int b = 0; b < 4; b++) w.matrix[a][b] = 0;
        w.matrix[a][a] = s;
        w.matrix[a][3] = 0.5 * s - 0.5;
    }
    w.interp = interp;
    w.fill = 0;
    w.border = AX_WARP_BORDER_EDGE;
    return w;
}

static bool same_shape(const int32_t a[3], const int32_t b[3]) { return a[0] == b[0] && a[1] == b[1] && a[2] == b[2]; }

ax_status pp_resample_f32(float *out, const int32_t os[3], const float *in, const int32_t is[3], int32_t channels) {
    size_t nin = (size_t)is[0] * (size_t)is[1] * (size_t)is[2];
    if (same_shape(os, is)) {
        memcpy(out, in, (size_t)channels * nin * sizeof *out);
        return AX_OK;
    }
    ax_warp w = pp_warp(os, is, AX_INTERP_LINEAR);
    return ax_warp_f32(out, os, in, is, channels, &w);
}

ax_status pp_resample_u8(uint8_t *out, const int32_t os[3], const uint8_t *in, const int32_t is[3]) {
    size_t nin = (size_t)is[0] * (size_t)is[1] * (size_t)is[2];
    if (same_shape(os, is)) {
        memcpy(out, in, nin);
        return AX_OK;
    }
    ax_warp w = pp_warp(os, is, AX_INTERP_NEAREST);
    return ax_warp_u8(out, os, in, is, &w);
}
