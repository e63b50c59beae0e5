/* axon/pool.h — differentiable pooling, adaptive average pooling,
 * interpolation and padding for NCDHW volumes, with PyTorch's semantics
 * (torch.nn.functional.max_pool3d, avg_pool3d, adaptive_avg_pool3d,
 * interpolate, pad).
 *
 *     const int64_t k[3] = {2, 2, 2};
 *     ax_tensor *y, *idx, *up, *p;       // x: [2, 32, 64, 64, 64]
 *     ax_max_pool3d(&y, &idx, x, k, NULL, NULL, false);     // y, idx: [2, 32, 32, 32, 32]
 *     const int64_t size[3] = {128, 128, 128};
 *     ax_interpolate(&up, x, size, AX_INTERP_TRILINEAR, false);  // [2, 32, 128, 128, 128]
 *     const int64_t pads[6] = {1, 1, 2, 2, 0, 0};          // W, then H, then D (torch order)
 *     ax_pad(&p, x, 6, pads, AX_PAD_REFLECT, 0);            // [2, 32, 64, 68, 66]
 *     ...
 *     ax_tensor_free(y); ax_tensor_free(idx); ax_tensor_free(up); ax_tensor_free(p);
 *
 * Pooling output size per spatial dim (k kernel, s stride, p padding):
 *     floor((in + 2p - k) / s) + 1, or with ceil_mode ceil((in + 2p - k) / s) + 1,
 *     minus one when that last window would start at or past in + p;
 * it must be >= 1 ("kernel larger than the padded input" otherwise), and
 * p <= k / 2 is required, as in PyTorch. Padded positions never win a max
 * and count in an average's divisor only with count_include_pad (windows
 * reaching past in + p under ceil_mode are clipped first, as in PyTorch).
 *
 * Dtypes: pooling and linear interpolation take floating tensors (bf16 and
 * f16 are computed in f32 and rounded back). Nearest interpolation and
 * padding also take integer tensors (label maps): they are moved through
 * f32, which is exact for |values| <= 2^24. Inputs may have any strides.
 *
 * Gradients: every op records its backward when x requires grad (max
 * pooling routes the gradient to the recorded argmax; padding's backward
 * folds reflected / replicated positions back). CPU results, forward and
 * backward, are bit-identical for any thread count.
 *
 * Ownership: every `ax_tensor **` output receives a new reference (NULL on
 * failure); inputs are borrowed. Errors name the op, the argument and the
 * shapes, e.g.
 *     "ax_max_pool3d: padding (2, 1, 1) must be at most half of kernel (3, 3, 3)"
 */
#ifndef AXON_POOL_H
#define AXON_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/kernels.h"
#include "axon/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- pooling ----------------------------------------------------------------
 * x: [N, C, D, H, W] (or unbatched [C, D, H, W]) -> y: [N, C, Do, Ho, Wo]
 * (or [C, Do, Ho, Wo]). kernel: (kD, kH, kW) >= 1; stride: NULL = kernel;
 * padding: NULL = 0. */

/* indices: [optional] i64, y's shape: the argmax as a flat index into each
 * input channel volume (d * H * W + h * W + w), like return_indices=True.
 * Ties take the first position in (d, h, w) order; NaN wins (the last NaN
 * of a window), as in PyTorch. */
ax_status ax_max_pool3d(ax_tensor **y, ax_tensor **indices, const ax_tensor *x, const int64_t kernel[3],
                        const int64_t stride[3], const int64_t padding[3], bool ceil_mode);

/* count_include_pad: divide by the window size including zero padding
 * (PyTorch's default, true) or by the number of input elements in it. */
ax_status ax_avg_pool3d(ax_tensor **y, const ax_tensor *x, const int64_t kernel[3], const int64_t stride[3],
                        const int64_t padding[3], bool ceil_mode, bool count_include_pad);

/* x: [N, C, D, H, W] (or [C, D, H, W]) -> y: [N, C, out_size...]; out_size
 * >= 1. Output i along a dim averages input [floor(i * in / out),
 * ceil((i + 1) * in / out)). */
ax_status ax_adaptive_avg_pool3d(ax_tensor **y, const ax_tensor *x, const int64_t out_size[3]);

/* ---- interpolation ----------------------------------------------------------
 * x: [N, C, D, H, W], [N, C, H, W] or [N, C, W] -> y: [N, C, size...];
 * size: x->ndim - 2 output sizes (>= 1), D first.
 * AX_INTERP_NEAREST: torch's mode='nearest' (source floor(dst * in / out));
 *   align_corners must be false (torch refuses it too).
 * AX_INTERP_TRILINEAR: torch's 'trilinear' / 'bilinear' / 'linear' for 3 / 2
 *   / 1 spatial dims. align_corners false: source (dst + 0.5) * in / out -
 *   0.5, clamped at 0; true: dst * (in - 1) / (out - 1). */
ax_status ax_interpolate(ax_tensor **y, const ax_tensor *x, const int64_t *size, ax_interp_mode mode,
                         bool align_corners);

/* As ax_interpolate with size[i] = floor(in[i] * scale[i]) (scale > 0, the
 * size must come out >= 1). The weights are those of that size, which is
 * torch's interpolate(scale_factor=..., recompute_scale_factor=True); for
 * scales whose result is exact (2, 0.5 on even sizes, ...) it also equals
 * torch's default. */
ax_status ax_interpolate_scale(ax_tensor **y, const ax_tensor *x, const double *scale, ax_interp_mode mode,
                               bool align_corners);

/* ---- padding ----------------------------------------------------------------
 * x: any shape -> y: x's shape with its last n_pads / 2 dims padded.
 * pads: n_pads values (n_pads even, >= 2), in torch.nn.functional.pad order:
 * last dim first, (before, after) each — for NCDHW (W_left, W_right,
 * H_top, H_bottom, D_front, D_back).
 *   AX_PAD_CONSTANT: fill with value; up to every dim of x may be padded.
 *   AX_PAD_REFLECT: mirror without repeating the edge; each pad < the dim's
 *     size (PyTorch's rule).
 *   AX_PAD_REPLICATE: repeat the edge; the dim must be non-empty.
 * Reflect and replicate pad at most 3 dims and need at least one leading
 * dim before them (as PyTorch: [C, W], [N, C, H, W], ...).
 * Negative pads crop, as in PyTorch, in every mode; each resulting dim must
 * be >= 0 (constant) or >= 1 (reflect, replicate). */
ax_status ax_pad(ax_tensor **y, const ax_tensor *x, int n_pads, const int64_t *pads, ax_pad_mode mode,
                 double value);

#ifdef __cplusplus
}
#endif
#endif
