/* axon/attention.h — scaled dot-product attention, 3-D rotary position
 * embeddings (RoPE) and the regularisers of transformer blocks (dropout,
 * drop path).
 *
 * All but unmasked attention (fused kernels, below) are compositions of
 * differentiable ops (axon/ops.h): autograd gives their gradients.
 * Semantics follow torch.nn.functional and timm, which
 * Primus (the OpenMind transformer: dynamic_network_architectures' Eva)
 * builds on.
 *
 *     // q, k, v: [B, heads, T, Dh]; tokens of a D x H x W patch grid
 *     const int64_t grid[3] = {D, H, W};
 *     ax_tensor *cos, *sin, *qr, *kr, *o, *branch, *y;
 *     ax_rope3d_tables(&cos, &sin, grid, grid, Dh, 10000.0, AX_ROPE_INTERLEAVED); // as Primus
 *     ax_rope_apply(&qr, q, cos, sin, AX_ROPE_INTERLEAVED);
 *     ax_rope_apply(&kr, k, cos, sin, AX_ROPE_INTERLEAVED);
 *     ax_scaled_dot_product_attention(&o, qr, kr, v, NULL, false, 0.0);   // [B, heads, T, Dh]
 *     ...                                                   // merge heads, project: branch
 *     ax_drop_path(&y, branch, 0.1, training, seed, step * 1000 + block);
 *
 * Ownership: `out` (and `cos`, `sin`) receive new references; inputs are
 * borrowed. Optional tensors are marked [optional] and may be NULL.
 */
#ifndef AXON_ATTENTION_H
#define AXON_ATTENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- attention ------------------------------------------------------------- */

/* torch.nn.functional.scaled_dot_product_attention without dropout (its
 * math path):
 *     out = softmax(q k^T * scale + bias) v
 * q: float [..., L, E], k: [..., S, E], v: [..., S, Ev], all one dtype; the
 *    batch dims (...) broadcast -> out: [..., L, Ev] in q's dtype.
 * attn_mask: [optional] broadcastable to [..., L, S]: u8 (1 = attend, like
 *    torch's bool mask with True = attend; 0 gives bias -inf) or float
 *    (added to the scores; it may require grad, e.g. a relative position
 *    bias). A row whose every score is -inf yields zeros and zero gradients
 *    (torch's safe softmax), never NaN.
 * is_causal: query i attends to keys j <= i (top-left aligned, torch's
 *    tril(ones(L, S))); may not be combined with attn_mask (torch's rule).
 * scale: <= 0 means 1 / sqrt(E).
 * Without attn_mask it runs the backend's fused kernels (kernel-table
 * members sdpa / sdpa_backward: FlashAttention-2 tiles with an online
 * softmax) when the backend has them for the dtype (inside an autocast
 * region q, k, v are first cast to its half dtype, as for matmul): no
 * [L, S] buffer is allocated, extra memory is O(L) (the log-sum-exp per
 * row, kept for the backward, which recomputes the probabilities), and
 * the result is one autograd node. Broadcast batch dims are expanded into
 * contiguous copies first. CPU results are identical for every thread
 * count. Equal to the composite path to f32 rounding (tested to 1e-5).
 * With attn_mask (or no fused kernels, or a head dim the backend declines)
 * the scores are materialised ([..., L, S]): memory grows with L * S. */
ax_status ax_scaled_dot_product_attention(ax_tensor **out, const ax_tensor *q, const ax_tensor *k,
                                          const ax_tensor *v, const ax_tensor *attn_mask, bool is_causal,
                                          double scale);

/* ---- rotary position embedding (axial, 3-D) ------------------------------------ */

/* Where the two halves of each rotated pair sit in the head dim. */
typedef enum ax_rope_layout {
    /* pairs (2i, 2i+1): timm's apply_rot_embed(half=False) / rot(), the
     * RotaryEmbeddingCat default that Primus uses */
    AX_ROPE_INTERLEAVED = 0,
    /* pairs (i, i + Dh/2): the "rotate_half" (GPT-NeoX) convention, timm's
     * half=True */
    AX_ROPE_HALF = 1
} ax_rope_layout;

/* cos/sin tables for the tokens of a D x H x W grid, token t = (d*H + h)*W + w
 * (C order, timm's 'ij' meshgrid). head_dim must be a positive multiple of 6:
 * each axis gets nb = head_dim / 6 frequency bands,
 *     f_j = 1 / theta^(j / nb),  j = 0 .. nb-1     (theta: 10000 in timm)
 * and its position p_a (a = 0, 1, 2 for d, h, w) is rotated by the angles
 *     angle[a*nb + j] = p_a * f_j                 (3 nb = head_dim / 2 angles)
 * Positions are the indices (d, h, w); with ref_grid (EVA's scheme for
 * fine-tuning at another size) p_a = index / grid[a] * ref_grid[a] in f32.
 * Primus passes ref_feat_shape = feat_shape: give ref_grid = grid to get its
 * positions bit for bit (e.g. 7.f / 13 * 13 is not exactly 7 in f32).
 * The tables hold cos/sin of the angles expanded to head_dim by the layout:
 *     INTERLEAVED: entries 2k and 2k+1 hold angle k
 *     HALF:        entries k and k + head_dim/2 hold angle k
 * This equals timm's build_rotary_pos_embed(grid, dim = head_dim * 2/3,
 * in_pixels=False, temperature=theta, ref_feat_shape=ref_grid) as used by
 * Primus (rope_dim = head_dim / 1.5, so dim // 4 = head_dim / 6 bands per
 * axis), computed in f32 like timm.
 * grid: 3 sizes >= 1; ref_grid: [optional] 3 sizes >= 1; theta > 0.
 * cos, sin: f32 [D*H*W, head_dim], new references, no autograd. */
ax_status ax_rope3d_tables(ax_tensor **cos, ax_tensor **sin, const int64_t grid[3], const int64_t ref_grid[3],
                           int64_t head_dim, double theta, ax_rope_layout layout);

/* out = x * cos + rot(x) * sin, rotating each pair (x_a, x_b) of the layout
 * by its angle: (x_a cos - x_b sin, x_b cos + x_a sin); for INTERLEAVED
 * rot(x) = [-x1, x0, -x3, x2, ...], for HALF rot(x) = [-x_hi, x_lo].
 * Rotations keep each pair's norm, and q.k of rotated vectors depends only on
 * the position offsets (tested).
 * x: float [..., T, Dh], typically [B, heads, T, Dh] (to skip prefix tokens,
 *    apply it to a narrow() of x);
 * cos, sin: one shape, broadcastable to x, last dim Dh: [T, Dh] from
 *    ax_rope3d_tables, or [B, 1, T', Dh] after selecting kept tokens.
 * out: x's shape and dtype (computed in f32 when x is not, like timm). */
ax_status ax_rope_apply(ax_tensor **out, const ax_tensor *x, const ax_tensor *cos, const ax_tensor *sin,
                        ax_rope_layout layout);

/* ---- regularisation --------------------------------------------------------------- */

/* Dropout: each element of x is zeroed with probability p and the others
 * are scaled by 1 / (1 - p). The keep mask is the counter RNG's
 * ax_tensor_bernoulli(x's shape, 1 - p, seed, stream): element i (C order of
 * x's shape, whatever its strides) uses word i of stream (seed, stream), so
 * the same (seed, stream, shape) gives the same mask on any thread count.
 * Give each call site and step its own stream.
 * !training or p == 0: out is x itself (a new reference). p == 1: zeros.
 * x: float [*] -> out: x's shape and dtype. The gradient is mask / (1 - p). */
ax_status ax_dropout(ax_tensor **out, const ax_tensor *x, double p, bool training, uint64_t seed, uint64_t stream);

/* Drop path (stochastic depth, timm's drop_path with scale_by_keep=True):
 * each sample (index along dim 0) is zeroed with probability p and kept
 * samples are scaled by 1 / (1 - p); sample n uses word n of stream
 * (seed, stream). Identity as ax_dropout when !training or p == 0; p == 1
 * gives zeros. x: float [N, *] -> out: x's shape and dtype. */
ax_status ax_drop_path(ax_tensor **out, const ax_tensor *x, double p, bool training, uint64_t seed,
                       uint64_t stream);

#ifdef __cplusplus
}
#endif
#endif
