/* axon/segment.h — segmentation building blocks: nnU-Net's Dice + CE loss
 * with deep supervision, Gaussian sliding-window inference with mirroring,
 * per-class Dice and HD95, and the transfer of pre-trained encoder weights
 * into a fine-tuning network.
 *
 * The `segmentation` TASK plugin is a thin layer over these; the
 * fine-tuning runner and `axon predict` may call them directly.
 *
 *     // training: outs[0] [N, K, D, H, W] logits, outs[1] at half size, ...
 *     double w[8];
 *     ax_deep_supervision_weights(w, n_outs);          // nnU-Net: 1/2^i, last 0
 *     ax_tensor *loss;
 *     ax_seg_loss_config lc = ax_seg_loss_config_default();
 *     ax_seg_loss(&loss, outs, w, n_outs, target, &lc);  // target [N, 1, D, H, W] u8
 *
 *     // inference on a whole volume x [1, C, D, H, W]
 *     ax_sliding_window sw = ax_sliding_window_default();
 *     sw.patch[0] = sw.patch[1] = sw.patch[2] = 128;
 *     ax_tensor *logits, *labels;
 *     ax_sliding_window_predict(&logits, net, x, &sw);  // [1, K, D, H, W]
 *     ax_seg_argmax(&labels, logits);                   // [D, H, W] u8
 *
 *     // metrics of one case
 *     double dice[4], hd95;
 *     ax_seg_dice(dice, labels, reference, 4);          // dice[0] is background
 *     ax_seg_hd95(&hd95, labels, reference, 1, spacing_mm);
 *
 *     // fine-tuning from a pre-training checkpoint
 *     ax_transfer_report rep = {0};
 *     if (ax_transfer_pretrained(net, "runs/mae/checkpoint.safetensors", &plan, 2, &rep) != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *     ax_transfer_report_clear(&rep);
 *
 * Conventions follow nnU-Net v2 (nnunetv2/inference/sliding_window_prediction.py,
 * training/loss/dice.py, evaluation/evaluate_predictions.py) except that the
 * sliding window accumulates in f32 where nnU-Net uses f16. Errors follow
 * axon/status.h and name the function, the argument and the shapes.
 */
#ifndef AXON_SEGMENT_H
#define AXON_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/nn.h"
#include "axon/plugin.h"
#include "axon/status.h"
#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== loss ================================================================== */

typedef struct ax_seg_loss_config {
    double weight_ce;   /* nnU-Net: 1 */
    double weight_dice; /* nnU-Net: 1 */
    double smooth;      /* soft Dice smoothing, nnU-Net: 1e-5 */
    bool batch_dice;    /* Dice over the whole batch (nnU-Net 3d_fullres: false) */
    bool do_bg;         /* Dice of class 0 too (nnU-Net: false) */
} ax_seg_loss_config;

/* {1, 1, 1e-5, false, false}: nnU-Net's DC_and_CE_loss. */
ax_seg_loss_config ax_seg_loss_config_default(void);

/* nnU-Net's deep-supervision weights for n outputs (highest resolution
 * first): w_i = 1 / 2^i, the lowest resolution set to 0, normalised to sum 1
 * (n == 1: {1}; n == 2: {1, 0}). w: [n], n >= 1. */
ax_status ax_deep_supervision_weights(double *w, int n);

/* Label map resampled to `size` with torch's interpolate(mode='nearest-exact')
 * (source index floor((i + 0.5) * in / out)), as batchgeneratorsv2's
 * DownsampleSegForDSTransform makes the deep-supervision targets.
 * labels: [N, 1, D, H, W] u8 -> *out: new reference [N, 1, size...] u8
 * (a new reference to labels itself when the size is unchanged). */
ax_status ax_seg_resize_labels(ax_tensor **out, const ax_tensor *labels, const int64_t size[3]);

/* nnU-Net's DC_and_CE_loss of one output:
 *     weight_ce * CE(logits, target) + weight_dice * SoftDice(softmax(logits), target)
 * with CE the mean cross entropy and SoftDice ax_soft_dice_loss (negative:
 * -mean Dice, so the loss of a perfect prediction is about -weight_dice).
 * logits: [N, K, D, H, W] float; target: [N, 1, D, H, W] u8 class ids in
 * [0, K) (checked on the CPU), moved to logits' device when it lives
 * elsewhere. *out: new reference, 0-dim f32. cfg: [optional] NULL means
 * ax_seg_loss_config_default(). */
ax_status ax_dice_ce_loss(ax_tensor **out, const ax_tensor *logits, const ax_tensor *target,
                          const ax_seg_loss_config *cfg);

/* Deep supervision: sum_i weights[i] * ax_dice_ce_loss(outputs[i], target_i)
 * with target_i = target resized to outputs[i]'s spatial size
 * (ax_seg_resize_labels); outputs with weight 0 are not evaluated.
 * outputs[i]: [N, K, D_i, H_i, W_i]; weights: [n] ([optional] NULL:
 * ax_deep_supervision_weights); target: [N, 1, D, H, W] u8 (any size; it is
 * resized for every output on the CPU, outputs[0] usually matches it; best
 * kept on the CPU when the outputs live on a GPU). */
ax_status ax_seg_loss(ax_tensor **out, ax_tensor *const *outputs, const double *weights, int n,
                      const ax_tensor *target, const ax_seg_loss_config *cfg);

/* ==== sliding-window inference ================================================ */

/* Mirroring test-time augmentation: a bit per spatial axis. */
enum { AX_MIRROR_D = 1, AX_MIRROR_H = 2, AX_MIRROR_W = 4 };

typedef struct ax_sliding_window {
    int64_t patch[3];   /* window (D, H, W), >= 1 */
    double step;        /* window step as a fraction of the patch, (0, 1]; nnU-Net 0.5 */
    double sigma_scale; /* Gaussian sigma = patch * sigma_scale; nnU-Net 1/8; 0: flat weights */
    int mirror_axes;    /* AX_MIRROR_* bits; 0: no test-time mirroring */
} ax_sliding_window;

/* patch 128^3, step 0.5, sigma 1/8, no mirroring. */
ax_sliding_window ax_sliding_window_default(void);

/* nnU-Net's window starts along one axis (compute_steps_for_sliding_window):
 * n = ceil((size - patch) / (patch * step)) + 1 windows spread evenly from
 * 0 to size - patch, starts rounded half to even (np.round), so neighbours
 * overlap by at least (1 - step) * patch. size >= patch >= 1.
 * starts: [max]; *n is set to the count (also when it exceeds max, which
 * fails with AX_ERR_INVALID). */
ax_status ax_sliding_window_starts(int64_t *starts, int max, int *n, int64_t size, int64_t patch, double step);

/* nnU-Net's Gaussian importance map: scipy's gaussian_filter of a unit
 * impulse at patch // 2 (sigma patch * sigma_scale, truncate 4), divided by
 * its maximum, zeros raised to the smallest non-zero value.
 * *out: new reference, [patch D, H, W] f32 with maximum 1 (all ones when
 * sigma_scale == 0). */
ax_status ax_gaussian_importance(ax_tensor **out, const int64_t patch[3], double sigma_scale);

/* Whole-volume prediction (nnU-Net's predict_sliding_window_return_logits):
 * x is zero-padded symmetrically (the odd voxel after) to at least the
 * patch, windows at ax_sliding_window_starts on every axis, each window's
 * logits (the mean over the mirror combinations: every non-empty subset of
 * mirror_axes plus the unmirrored one) weighted by the importance map and
 * accumulated; the sum is divided by the summed weights and cropped back.
 * The network runs under no-grad on [1, C, patch] windows moved to the
 * device of its first parameter and must return [1, K, patch]; set eval
 * mode before (dropout, batch norm).
 * x: [1, C, D, H, W] f32 (any layout, any device) -> *out: new reference,
 * [1, K, D, H, W] f32 on the CPU. */
ax_status ax_sliding_window_predict(ax_tensor **out, ax_module *net, const ax_tensor *x,
                                    const ax_sliding_window *cfg);

/* Class of the largest value along dim 1 (the first on ties).
 * scores: [1, K, D, H, W] f32, K <= 256 -> *labels: new reference [D, H, W] u8. */
ax_status ax_seg_argmax(ax_tensor **labels, const ax_tensor *scores);

/* ==== metrics ================================================================== */

/* Dice per class c in [0, n_classes): 2 tp / (2 tp + fp + fn), NaN when the
 * class is in neither map (nnU-Net's convention; means skip NaN).
 * pred, ref: [D, H, W] (any shape, the same for both) u8, i32 or i64 labels;
 * values outside [0, n_classes) count as no class. dice: [n_classes]. */
ax_status ax_seg_dice(double *dice, const ax_tensor *pred, const ax_tensor *ref, int n_classes);

/* Mean of the non-NaN values of v[0..n), NaN when there are none. */
double ax_nanmean(const double *v, int n);

/* Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher),
 * anisotropic: out[v] = min over voxels f with feature[f] != 0 of
 * sum_i ((v_i - f_i) * spacing_i)^2, INFINITY when there is no feature.
 * feature: [D, H, W] u8 (C order); out: [D, H, W]; spacing: mm (D, H, W), > 0.
 * Parallel over lines (OpenMP). */
ax_status ax_edt_squared(double *out, const uint8_t *feature, const int64_t shape[3], const double spacing[3]);

/* 95th percentile Hausdorff distance of two binary masks, in mm, as medpy's
 * hd95: the surface of a mask is its voxels with a 6-neighbour outside it
 * (the volume's border counts as outside); the distances from every surface
 * voxel of a to the nearest of b and from b's to a's are pooled, and the
 * 95th percentile (linear interpolation, numpy's default) is returned.
 * Both empty: NaN. One empty: the diagonal of the volume in mm (the worst
 * distance possible, BraTS's convention), since no distance exists.
 * a, b: [D, H, W] u8 (non-zero = inside); spacing: mm (D, H, W). */
ax_status ax_mask_hd95(double *out, const uint8_t *a, const uint8_t *b, const int64_t shape[3],
                       const double spacing[3]);

/* ax_mask_hd95 of (pred == label) and (ref == label).
 * pred, ref: [D, H, W] u8, i32 or i64 labels of the same shape. */
ax_status ax_seg_hd95(double *out, const ax_tensor *pred, const ax_tensor *ref, int64_t label,
                      const double spacing[3]);

/* ==== pre-trained weights ======================================================== */

/* Checkpoint metadata keys (safetensors "__metadata__", string values) that
 * fine-tuning reads. AX_CKPT_META_PLAN holds ax_arch_plan_to_json() of the
 * network that was saved; AX_CKPT_META_ARCH and AX_CKPT_META_ARCH_PARAMS
 * name its ARCH plugin and its parameters (ax_params_to_json), so the
 * checkpoint alone rebuilds the network. */
#define AX_CKPT_META_PLAN "plan"
#define AX_CKPT_META_ARCH "arch"
#define AX_CKPT_META_ARCH_PARAMS "arch_params"

/* The plan as one JSON object:
 *   {"stem": "encoder.stem", "encoder": "encoder.stages", "decoder": "decoder",
 *    "input_projection": "encoder.stem.convs.0.conv", "output_head": "decoder.seg_layers",
 *    "pos_embed": null, "divisor": [32, 32, 32]}
 * (null for an absent role). *json: new string, free with free(). */
ax_status ax_arch_plan_to_json(char **json, const ax_arch_plan *plan);

/* The inverse: fills *plan with copies of the strings (zeroing it first);
 * release them with ax_arch_plan_clear. Unknown keys are ignored; a
 * non-object, a non-string role or a bad divisor is AX_ERR_FORMAT. */
ax_status ax_arch_plan_parse(ax_arch_plan *plan, const char *json);
/* Frees the strings of a plan filled by ax_arch_plan_parse and zeroes it
 * (NULL-safe). Never call it on a plan an ARCH plugin filled (static strings). */
void ax_arch_plan_clear(ax_arch_plan *plan);

/* What ax_transfer_pretrained did. Owned strings; clear with
 * ax_transfer_report_clear. */
typedef struct ax_transfer_report {
    size_t n_copied;
    char **copied;   /* net keys copied from the checkpoint, in state-dict order */
    size_t n_adapted;
    char **adapted;  /* of those, input-projection weights spread over the channels */
    size_t n_skipped; /* checkpoint tensors outside stem + encoder (decoder, heads) */
} ax_transfer_report;

void ax_transfer_report_clear(ax_transfer_report *r); /* NULL-safe; zeroes *r */

/* Loads the stem and encoder of a pre-training checkpoint into `net`
 * (in place; parameters stay the same tensor objects), leaving every other
 * key (decoder, output head) as it is. The checkpoint's AX_CKPT_META_PLAN
 * says which of its keys are stem and encoder; `plan` (the fine-tuning
 * network's, [optional] NULL: the checkpoint's) says where they go, so a
 * checkpoint key "<ckpt stem>.x" lands on "<plan stem>.x".
 *
 * Channel adaptation (as the OpenMind fine-tuning code): when the input
 * projection's weight [O, Cp, k...] in the checkpoint has Cp channels and
 * the net's has in_channels = C != Cp, every net channel gets the sum over
 * the checkpoint's channels divided by C (Cp == 1: the weight repeated per
 * channel / C), so an input with C equal channels gives the pre-trained
 * response.
 *
 * Fails, with `net` unchanged, when the checkpoint cannot be read, has no
 * plan ("<path>: no adaptation plan (__metadata__ key \"plan\")..."), has no
 * stem or encoder key, when a stem/encoder key of the net is missing from the
 * checkpoint or vice versa, or when shapes disagree (the message lists the
 * first mismatching keys with both shapes), or when the net's input
 * projection does not have in_channels channels.
 * rep: [optional] filled on success (clear it before reuse). */
ax_status ax_transfer_pretrained(ax_module *net, const char *checkpoint, const ax_arch_plan *plan,
                                 int64_t in_channels, ax_transfer_report *rep);

#ifdef __cplusplus
}
#endif
#endif
