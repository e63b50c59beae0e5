/* axon/norm.h — normalisation layers: instance, group, layer and batch norm.
 *
 * Semantics are PyTorch's (torch.nn.functional.instance_norm, group_norm,
 * layer_norm, batch_norm): statistics use the biased variance, y =
 * (x - mean) / sqrt(var + eps) * weight + bias, and weight/bias are
 * optional (pass NULL for none). All ops are differentiable in x, weight
 * and bias. f32, bf16 and f16 inputs are accepted (the CPU computes in f32
 * with double-precision statistics); y has x's dtype.
 *
 *     // ResEnc U-Net block: conv -> InstanceNorm3d(affine) -> LeakyReLU(0.01)
 *     ax_tensor *h, *y;
 *     ax_conv3d(&h, x, conv_w, NULL, &p);                          // [N, C, D, H, W]
 *     ax_instance_norm_leaky_relu(&y, h, gamma, beta, 1e-5, 0.01);  // gamma, beta: [C]
 *
 *     // ViT block: LayerNorm over the embedding dim
 *     ax_layer_norm(&y, tokens, 1, ln_w, ln_b, 1e-6);              // tokens: [B, T, E]; ln_w: [E]
 *
 *     // BatchNorm, training step: running stats are updated in place
 *     ax_batch_norm(&y, x, running_mean, running_var, gamma, beta, true, 0.1, 1e-5);
 *
 * Ownership: `y` receives a new reference; every other tensor is borrowed.
 * On failure *y is NULL and the error names the op, the argument and the
 * shapes, e.g. "ax_group_norm: x [2, 6, 4] has 6 channels, not divisible
 * by groups 4".
 */
#ifndef AXON_NORM_H
#define AXON_NORM_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each (sample, channel) normalised over its spatial elements; no running
 * statistics (torch InstanceNorm3d(affine=True, track_running_stats=False)).
 * A single spatial element normalises to 0 (y = bias), where torch raises.
 * x: [N, C, *] -> y: x's shape; weight, bias: [optional] [C]; eps > 0. */
ax_status ax_instance_norm(ax_tensor **y, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias,
                           double eps);

/* ax_instance_norm followed by leaky_relu(negative_slope), in one op: the
 * pre-activation tensor is never kept for backward (saving its memory),
 * and the activation runs right after the normalisation.
 * x: [N, C, *] -> y: x's shape; weight, bias: [optional] [C]. */
ax_status ax_instance_norm_leaky_relu(ax_tensor **y, const ax_tensor *x, const ax_tensor *weight,
                                      const ax_tensor *bias, double eps, double negative_slope);

/* Channels split into `groups` groups of C/groups consecutive channels,
 * each (sample, group) normalised over its channels and spatial elements.
 * x: [N, C, *] -> y: x's shape; groups divides C; weight, bias: [optional] [C]. */
ax_status ax_group_norm(ax_tensor **y, const ax_tensor *x, int64_t groups, const ax_tensor *weight,
                        const ax_tensor *bias, double eps);

/* Normalisation over the last n_normalized dims (torch's normalized_shape
 * = those dims), elementwise affine.
 * x: [*, *normalized] -> y: x's shape; 1 <= n_normalized <= x's ndim;
 * weight, bias: [optional] [*normalized]. */
ax_status ax_layer_norm(ax_tensor **y, const ax_tensor *x, int n_normalized, const ax_tensor *weight,
                        const ax_tensor *bias, double eps);

/* Batch normalisation per channel over the batch and spatial dims.
 * training: normalise with the batch statistics (biased variance), and if
 * running stats are given, update them in place (not recorded by autograd):
 *     running_mean = (1 - momentum) * running_mean + momentum * mean
 *     running_var  = (1 - momentum) * running_var  + momentum * unbiased var
 * Needs more than one value per channel. !training: normalise with the
 * running stats, which are then required.
 * x: [N, C, *] -> y: x's shape; running_mean, running_var: [optional, both
 * or neither] [C]; weight, bias: [optional] [C]; 0 <= momentum <= 1; eps > 0. */
ax_status ax_batch_norm(ax_tensor **y, const ax_tensor *x, ax_tensor *running_mean, ax_tensor *running_var,
                        const ax_tensor *weight, const ax_tensor *bias, bool training, double momentum,
                        double eps);

#ifdef __cplusplus
}
#endif
#endif
