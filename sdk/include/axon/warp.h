/* axon/warp.h — resampling a voxel grid through a coordinate map: the one
 * interpolation primitive behind spatial augmentation, resampling to a
 * target spacing in preprocessing, and the synthetic deformations of the
 * demo data.
 *
 * For every output voxel (d, h, w) the input is sampled at
 *
 *     p = M * (d, h, w, 1)^T + disp[:, d, h, w]      (input voxel units)
 *
 * with trilinear (images) or nearest (labels) interpolation; points outside
 * the input read `fill`. Voxel centres are integers, as in
 * scipy.ndimage.map_coordinates and batchgenerators.
 *
 *     // zoom a [1, 40, 48, 40] image to [1, 80, 96, 80]
 *     ax_warp w = ax_warp_identity();
 *     for (int a = 0; a < 3; a++) w.matrix[a][a] = 0.5;   // output voxel -> input voxel
 *     int32_t in_shape[3] = {40, 48, 40}, out_shape[3] = {80, 96, 80};
 *     ax_warp_f32(out, out_shape, in, in_shape, 1, &w);
 *
 * Single-threaded and reentrant: callers parallelise over samples (loader)
 * or cases (preprocessing). Rows are processed with incremental coordinates
 * so the inner loop has no divisions or function calls.
 */
#ifndef AXON_WARP_H
#define AXON_WARP_H

#include <stdint.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ax_interp { AX_INTERP_NEAREST = 0, AX_INTERP_LINEAR = 1 } ax_interp;

typedef struct ax_warp {
    double matrix[3][4];   /* output voxel (d, h, w, 1) -> input voxel (d, h, w) */
    const float *disp;     /* [optional] [3, oD, oH, oW] displacement in input voxels (borrowed) */
    ax_interp interp;      /* ax_warp_f32 only; ax_warp_u8 is always nearest */
    float fill;            /* value outside the input (u8: truncated) */
} ax_warp;

/* Identity map, linear interpolation, fill 0. */
ax_warp ax_warp_identity(void);

/* out: [C, oD, oH, oW]; in: [C, D, H, W]. */
ax_status ax_warp_f32(float *out, const int32_t out_shape[3], const float *in, const int32_t in_shape[3],
                      int32_t channels, const ax_warp *w);
/* out: [oD, oH, oW]; in: [D, H, W]; nearest neighbour. */
ax_status ax_warp_u8(uint8_t *out, const int32_t out_shape[3], const uint8_t *in, const int32_t in_shape[3],
                     const ax_warp *w);

#ifdef __cplusplus
}
#endif
#endif
