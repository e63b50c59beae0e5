/* axon/loss.h — loss functions and vector similarity, with PyTorch's semantics.
 *
 * Each loss is a composition of differentiable ops (axon/ops.h), so its
 * gradient comes from autograd. The results follow torch.nn.functional
 * (2.x) unless a comment says otherwise; floating inputs of any dtype are
 * computed in f32 and the loss is f32 (as under torch.autocast, losses are
 * never reduced in bf16/f16).
 *
 *     ax_tensor *logits, *labels, *ce, *probs, *dice, *loss;
 *     // logits: [N, C, D, H, W], labels: i64 [N, D, H, W]
 *     ax_cross_entropy(&ce, logits, labels, NULL, AX_IGNORE_INDEX, 0.0, AX_LOSS_MEAN);
 *     ax_softmax(&probs, logits, 1);
 *     ax_soft_dice_loss(&dice, probs, labels, NULL, 1e-5, false, false);  // nnU-Net
 *     ax_add(&loss, ce, dice);
 *     ax_backward(loss, NULL);
 *
 *     // MAE: reconstruction error on the masked voxels only
 *     ax_mse_loss(&loss, recon, image, voxel_mask, AX_LOSS_MEAN);
 *
 * Ownership: `out` receives a new reference; inputs are borrowed.
 * Optional tensor arguments are marked [optional] and may be NULL.
 * Errors name the function, the argument and the shapes, e.g.
 *     "ax_cross_entropy: target [2, 5] does not match logits [2, 3, 4] (want [2, 4])"
 */
#ifndef AXON_LOSS_H
#define AXON_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How per-element losses are combined. MEAN is 0 so that a zeroed config
 * gets PyTorch's default. */
typedef enum ax_loss_reduction {
    AX_LOSS_MEAN = 0, /* one value: the (weighted) mean, see each loss */
    AX_LOSS_SUM = 1,  /* one value: the sum */
    AX_LOSS_NONE = 2  /* the per-element losses */
} ax_loss_reduction;

/* PyTorch's default ignore_index for cross entropy. */
#define AX_IGNORE_INDEX (-100)

/* ---- regression ---------------------------------------------------------- */

/* Squared error (pred - target)^2.
 * pred: float [*], target: broadcastable with pred -> element shape E (the
 * broadcast shape; torch broadcasts the same way, with a warning).
 * mask: [optional] broadcastable to E (it may not enlarge it), float or u8.
 * With a mask, element e counts with weight mask[e]:
 *     NONE: mask * err            (shape E)
 *     SUM:  sum(mask * err)
 *     MEAN: sum(mask * err) / sum(mask broadcast to E)
 * so a 0/1 mask gives the mean over the selected elements only (MAE's loss
 * on the masked voxels: a [N, 1, D, H, W] mask counts C times per voxel for
 * a [N, C, D, H, W] image), and a float mask a weighted mean. An all-zero
 * mask gives NaN for MEAN (0 / 0, like the mean of nothing in PyTorch).
 * Without a mask MEAN is the plain mean over E. */
ax_status ax_mse_loss(ax_tensor **out, const ax_tensor *pred, const ax_tensor *target, const ax_tensor *mask,
                      ax_loss_reduction reduction);

/* Absolute error |pred - target|; shapes, mask and reductions as ax_mse_loss.
 * The gradient at pred == target is 0 (as torch). */
ax_status ax_l1_loss(ax_tensor **out, const ax_tensor *pred, const ax_tensor *target, const ax_tensor *mask,
                     ax_loss_reduction reduction);

/* Huber-style smooth L1 (torch.nn.functional.smooth_l1_loss), d = pred - target:
 *     0.5 * d^2 / beta   where |d| < beta
 *     |d| - 0.5 * beta   elsewhere
 * beta >= 0; beta == 0 is the L1 loss. pred, target: broadcastable -> E. */
ax_status ax_smooth_l1_loss(ax_tensor **out, const ax_tensor *pred, const ax_tensor *target, double beta,
                            ax_loss_reduction reduction);

/* ---- classification ------------------------------------------------------ */

/* torch.nn.functional.cross_entropy.
 * logits: float [N, C, *] (or [C] for one sample), classes along dim 1 (0).
 * target: either class indices, integer (i64, i32 or u8) [N, *] (or [] for
 *         [C] logits), each in [0, C) or equal to ignore_index;
 *         or class probabilities, float with logits' shape (ignore_index
 *         must then be negative, as torch requires).
 * class_weights: [optional] float [C], constants (w_c; 1 when NULL).
 * label_smoothing: eps in [0, 1].
 *
 * With class indices, lp = log_softmax(logits, 1), for each element i with
 * target t_i != ignore_index:
 *     l_i = (1 - eps) * w[t_i] * -lp[i, t_i] + eps / C * sum_c w_c * -lp[i, c]
 * and l_i = 0 for ignored elements. NONE gives l ([N, *]); SUM sum(l);
 * MEAN sum(l) / sum_{i not ignored} w[t_i] (torch's weighted mean, also
 * for the smoothing term; NaN when every element is ignored).
 * With probabilities p (after smoothing p' = p * (1 - eps) + eps / C):
 *     l_i = -sum_c w_c * p'[i, c] * lp[i, c]
 * NONE gives l, SUM sum(l), MEAN sum(l) / (numel(logits) / C).
 * Target values are checked on CPU tensors (an out-of-range class is an
 * error naming the first offender). */
ax_status ax_cross_entropy(ax_tensor **out, const ax_tensor *logits, const ax_tensor *target,
                           const ax_tensor *class_weights, int64_t ignore_index, double label_smoothing,
                           ax_loss_reduction reduction);

/* torch.nn.functional.binary_cross_entropy_with_logits, in the stable form
 *     l = (1 - t) * x + (1 + (pw - 1) * t) * softplus(-x)
 * (softplus(-x) = -log(sigmoid(x)) computed without overflow), finite for
 * any finite logit.
 * logits: float [*], target: float (or integer) with logits' shape (values
 * in [0, 1]; soft labels allowed), pos_weight: [optional] broadcastable to
 * logits' shape, typically [C] for the last dim (torch's convention).
 * MEAN is the plain mean over all elements. */
ax_status ax_bce_with_logits(ax_tensor **out, const ax_tensor *logits, const ax_tensor *target,
                             const ax_tensor *pos_weight, ax_loss_reduction reduction);

/* ---- segmentation -------------------------------------------------------- */

/* nnU-Net's soft Dice loss (SoftDiceLoss / MemoryEfficientSoftDiceLoss,
 * which agree): returns -mean(dc), a value in [-1, 0] (NEGATIVE, as
 * nnU-Net: it is added to the cross entropy as is).
 * probs: float [N, C, *] class probabilities (softmax already applied).
 * target: a label map [N, *] or [N, 1, *] of class ids (any dtype; ids
 *         outside [0, C) match no class), or one-hot / soft targets with
 *         probs' shape (any dtype, used as floats).
 * loss_mask: [optional] broadcastable to [N, 1, *] (float or u8): voxels
 *         with 0 do not count (nnU-Net's ignore label).
 * With y the one-hot target and m the mask (1 without one), sums over the
 * spatial dims (and the batch dim too when batch_dice):
 *     tp = sum(x * y * m), fp = sum(x * (1 - y) * m), fn = sum((1 - x) * y * m)
 *     dc = (2 tp + smooth) / max(2 tp + fp + fn + smooth, 1e-8)
 * giving dc per [N, C] (per [C] with batch_dice); do_bg == false drops
 * class 0 (needs C >= 2); the loss is -mean(dc) over what remains.
 * nnU-Net uses smooth = 1e-5; 2 tp + fp + fn is computed as
 * sum(x * m) + sum(y * m). The result is a 0-dim f32 tensor. */
ax_status ax_soft_dice_loss(ax_tensor **out, const ax_tensor *probs, const ax_tensor *target,
                            const ax_tensor *loss_mask, double smooth, bool batch_dice, bool do_bg);

/* ---- similarity ------------------------------------------------------------ */

/* torch.nn.functional.cosine_similarity: a and b broadcast to a common shape
 * B and, along dim of B,
 *     out = sum((a / max(||a||, eps)) * (b / max(||b||, eps)))
 * each norm clamped on its own (torch >= 1.12; eps >= 0, torch's default
 * 1e-8). As in torch the clamp is invisible to autograd: the gradient
 * flows through ||a|| even where it is below eps (an all-zero vector gets
 * no gradient through its norm, never NaN).
 * a, b: float, broadcastable -> out: B without dim (dtype of a and b; f32
 * when they differ). */
ax_status ax_cosine_similarity(ax_tensor **out, const ax_tensor *a, const ax_tensor *b, int dim, double eps);

/* torch.nn.functional.normalize with p = 2: x / max(||x||_dim, eps)
 * (eps >= 0, torch's default 1e-12; the clamp stops the gradient through
 * the norm, as torch's clamp_min). x: float [*] -> out: x's shape and dtype. */
ax_status ax_l2_normalize(ax_tensor **out, const ax_tensor *x, int dim, double eps);

#ifdef __cplusplus
}
#endif
#endif
