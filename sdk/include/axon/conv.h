/* axon/conv.h — differentiable 3-D convolution and transposed convolution,
 * with PyTorch's semantics (torch.nn.functional.conv3d / conv_transpose3d).
 *
 * Geometry comes in an ax_conv_params (axon/kernels.h). Start from
 * ax_conv_params_default() — stride 1, padding 0, dilation 1, output
 * padding 0, groups 1 — and change what differs; passing NULL means the
 * defaults. (Zero is not a "default" marker: a zero stride is an error.)
 *
 *     ax_conv_params p = ax_conv_params_default();
 *     p.stride[0] = p.stride[1] = p.stride[2] = 2;
 *     p.padding[0] = p.padding[1] = p.padding[2] = 1;
 *     ax_tensor *y;   // x: [2, 32, 64, 64, 64], w: [64, 32, 3, 3, 3], b: [64]
 *     if (ax_conv3d(&y, x, w, b, &p) != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *     // y: [2, 64, 32, 32, 32]; ax_backward() fills x/w/b->grad as needed
 *     ax_tensor_free(y);
 *
 * Output sizes, per spatial dim (k: kernel size):
 *     conv3d:           floor((in + 2 padding - dilation (k - 1) - 1) / stride) + 1
 *     conv_transpose3d: (in - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1
 * and must be >= 1. output_padding (transposed only; must be 0 for conv3d)
 * must be smaller than the stride or the dilation, as in PyTorch.
 *
 * Dtypes: x, w and b share one floating dtype. bf16/f16 are computed in f32
 * on the CPU and the result is rounded to the input dtype. Inputs may have
 * any strides (they are made contiguous internally). The batch may be 0.
 *
 * Ownership: *y receives a new reference (NULL on failure); inputs are
 * borrowed. Errors name the op, the argument and the shapes, e.g.
 *     "ax_conv3d: x [2, 3, 8, 8, 8] has 3 channels but w [4, 2, 3, 3, 3] with groups 1 wants 2"
 *
 * Determinism: the CPU backend (oneDNN) is reproducible for a fixed thread
 * count; the weight and bias gradients may differ in the last bits between
 * thread counts (see kernels/cpu/cpu_conv.c).
 */
#ifndef AXON_CONV_H
#define AXON_CONV_H

#include "axon/kernels.h"
#include "axon/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* stride 1, padding 0, dilation 1, output_padding 0, groups 1 */
ax_conv_params ax_conv_params_default(void);

/* y: [N, Co, Do, Ho, Wo] = conv3d(x, w) + b
 *   x: [N, Ci, D, H, W]
 *   w: [Co, Ci / groups, kD, kH, kW]   (Ci and Co divisible by groups)
 *   b: [optional] [Co]
 *   p: [optional] geometry; NULL = ax_conv_params_default() */
ax_status ax_conv3d(ax_tensor **y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                    const ax_conv_params *p);

/* y: [N, Co, Do, Ho, Wo] = conv_transpose3d(x, w) + b (the gradient of
 * conv3d with respect to its input, e.g. U-Net upsampling with k = s = 2)
 *   x: [N, Ci, D, H, W]
 *   w: [Ci, Co / groups, kD, kH, kW]   (PyTorch's ConvTranspose3d layout)
 *   b: [optional] [Co]
 *   p: [optional] geometry; NULL = ax_conv_params_default() */
ax_status ax_conv_transpose3d(ax_tensor **y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                              const ax_conv_params *p);

#ifdef __cplusplus
}
#endif
#endif
