/* axon/warp.h — resampling a voxel grid through a coordinate map: the one
 * interpolation primitive behind spatial augmentation, resampling to a
 * target spacing in preprocessing, and the synthetic deformations of the
 * demo data.
 *
 * For every output voxel (d, h, w) the input is sampled at
 *
 *     p = M * (d, h, w, 1)^T + disp[:, d, h, w]      (input voxel units)
 *
 * with trilinear (images) or nearest (labels) interpolation. Voxel centres
 * are integers, as in scipy.ndimage.map_coordinates and batchgenerators.
 *
 * Borders (ax_warp.border):
 *  - AX_WARP_BORDER_FILL (default): every input voxel outside the grid reads
 *    `fill`; a trilinear sample near the edge blends real voxels with `fill`
 *    (torch grid_sample padding_mode="zeros" for fill 0), so augmentation
 *    borders fade instead of stepping. A point exactly on an edge voxel
 *    returns that voxel exactly.
 *  - AX_WARP_BORDER_EDGE: coordinates are clamped to the grid (the nearest
 *    edge voxel; scipy mode "nearest", torch align_corners=False resizing),
 *    for resampling where no border may darken.
 * Nearest rounds half up: index = floor(p + 0.5).
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

#include "axon/kernels.h" /* ax_interp_mode: AX_INTERP_NEAREST, AX_INTERP_TRILINEAR */
#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The first draft of this header declared its own enum, which clashed with
 * kernels.h's AX_INTERP_NEAREST; warp uses the SDK's one interpolation enum. */
typedef ax_interp_mode ax_interp;
#define AX_INTERP_LINEAR AX_INTERP_TRILINEAR
typedef enum ax_warp_border { AX_WARP_BORDER_FILL = 0, AX_WARP_BORDER_EDGE = 1 } ax_warp_border;

typedef struct ax_warp {
    double matrix[3][4];   /* output voxel (d, h, w, 1) -> input voxel (d, h, w) */
    const float *disp;     /* [optional] [3, oD, oH, oW] displacement in input voxels (borrowed) */
    ax_interp_mode interp; /* NEAREST or TRILINEAR; ax_warp_f32 only (ax_warp_u8 is nearest) */
    float fill;            /* value outside the input (u8: truncated) */
    ax_warp_border border; /* FILL (0, default) or EDGE; see above */
} ax_warp;

/* Identity map, trilinear, fill 0, border FILL, no displacement. */
ax_warp ax_warp_identity(void);

/* out: [C, oD, oH, oW]; in: [C, D, H, W]. `out` must not overlap `in`.
 * Errors: AX_ERR_INVALID for NULL buffers, shapes < 1, a non-finite matrix,
 * an unknown interp/border; AX_ERR_NOMEM. NaN displacements read `fill`
 * (EDGE: the first voxel). */
ax_status ax_warp_f32(float *out, const int32_t out_shape[3], const float *in, const int32_t in_shape[3],
                      int32_t channels, const ax_warp *w);
/* out: [oD, oH, oW]; in: [D, H, W]; nearest neighbour. */
ax_status ax_warp_u8(uint8_t *out, const int32_t out_shape[3], const uint8_t *in, const int32_t in_shape[3],
                     const ax_warp *w);

/* Matrix helpers (row-major 3x3 part, translation in column 3).
 * ax_warp_centred: the map that rotates/scales about the centres of both
 * grids, p = A * (o - c_out) + c_in with c = (shape - 1) / 2, so the centre
 * of the output lands on the centre of the input (spatial augmentation). */
void ax_warp_centred(ax_warp *w, const double a[3][3], const int32_t out_shape[3], const int32_t in_shape[3]);

/* Separable Gaussian smoothing in place (elastic fields, blur augmentation).
 * x: [D, H, W]; sigma: per axis in voxels (0 leaves that axis alone); the
 * kernel is truncated at 4 sigma (scipy.ndimage.gaussian_filter's default)
 * and normalised to sum 1. Borders: AX_BLUR_REFLECT mirrors without
 * repeating the edge voxel (torch pad "reflect", as batchgeneratorsv2's
 * blur), AX_BLUR_ZERO reads 0 outside (scipy mode "constant", as
 * batchgenerators' elastic fields). Allocates one volume of scratch. */
typedef enum ax_blur_border { AX_BLUR_REFLECT = 0, AX_BLUR_ZERO = 1 } ax_blur_border;
ax_status ax_gaussian_blur_f32(float *x, const int32_t shape[3], const double sigma[3], ax_blur_border border);

#ifdef __cplusplus
}
#endif
#endif
