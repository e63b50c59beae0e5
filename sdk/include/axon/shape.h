/* axon/shape.h — joining, splitting and indexing tensors: cat, stack,
 * split, chunk, gather, scatter_add, index_select, masked_fill, embedding.
 *
 * PyTorch semantics (torch.cat, torch.split, ...), differentiable with
 * respect to every floating input that is not an index or a mask. Dims may
 * be negative (counted from the end). Indices are i64 tensors; an index
 * outside its dim fails with the first bad value in C order over the index:
 *     "ax_gather: index 7 at position 3 is out of range for dim 1 of size 5"
 * and nothing is read out of bounds. Masks are u8 (comparisons' result).
 *
 *     // U-Net skip connection: join decoder and encoder features
 *     ax_tensor *h;
 *     ax_cat(&h, 2, (const ax_tensor *[]){up, skip}, 1);   // [N, Cu+Cs, D, H, W]
 *
 *     // MAE: keep the visible patches of x: [N, L, C]
 *     ax_tensor *keep;                                      // i64 [N, Lk, C]
 *     ax_gather(&vis, x, 1, keep);                          // [N, Lk, C]
 *
 *     ax_tensor *parts[4];
 *     int n;
 *     ax_chunk(parts, &n, 4, qkv, 3, -1);                   // n = 3 views
 *     ...
 *     for (int i = 0; i < n; i++) ax_tensor_free(parts[i]);
 *
 * Ownership: every output is a new reference (ax_tensor_free); inputs are
 * borrowed. On failure outputs are NULL. split/chunk outputs are views that
 * share x's storage; every other op allocates its output.
 *
 * Dtypes: cat, stack, split, chunk, gather, index_select, masked_fill and
 * embedding take any dtype. cat/stack inputs share one dtype, except that
 * float dtypes promote as in torch.cat (bf16 with f32 gives f32; each
 * input's gradient comes back in its own dtype). scatter_add takes floats: bf16/f16 are summed
 * in f32 and rounded once. Inputs must share a device.
 */
#ifndef AXON_SHAPE_H
#define AXON_SHAPE_H

#include "axon/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- joining ------------------------------------------------------------ */

/* ts: n >= 1 tensors with the same ndim (>= 1), dtype and device, shapes
 * equal except in dim -> out: their concatenation along dim. A single
 * tensor gives a copy; zero-size tensors are fine. The gradient of each
 * input is its slice of the output's gradient. */
ax_status ax_cat(ax_tensor **out, int n, const ax_tensor *const *ts, int dim);

/* ts: n >= 1 tensors of one shape [*] -> out: [..., n, ...], a new dim at
 * dim (in [-(ndim+1), ndim]). */
ax_status ax_stack(ax_tensor **out, int n, const ax_tensor *const *ts, int dim);

/* ---- splitting (views, like torch.split / torch.chunk) ------------------ */

/* x: [..., S, ...] -> outs[0..*n_out): views of split_size along dim (the
 * last may be shorter); ceil(S / split_size) pieces, one empty piece when
 * S == 0. Fails when that exceeds max_out (outs' length). split_size >= 1
 * (0 only when S == 0). */
ax_status ax_split(ax_tensor **outs, int *n_out, int max_out, const ax_tensor *x, int64_t split_size, int dim);

/* x: [..., S, ...] -> outs[0..n): views of sizes[i] along dim; the sizes
 * (>= 0) must add up to S. */
ax_status ax_split_sizes(ax_tensor **outs, const ax_tensor *x, int n, const int64_t *sizes, int dim);

/* x: [..., S, ...] -> at most `chunks` views along dim of ceil(S / chunks)
 * each (the last may be shorter, and there may be fewer than `chunks`,
 * like torch.chunk; S == 0 gives `chunks` empty views). *n_out receives
 * the count; it must not exceed max_out (outs' length). */
ax_status ax_chunk(ax_tensor **outs, int *n_out, int max_out, const ax_tensor *x, int chunks, int dim);

/* ---- indexing ---------------------------------------------------------------- */

/* x: [*], index: i64 with x's ndim, index.size(d) <= x.size(d) for d != dim
 * -> out: index's shape, out[p] = x[p with coordinate dim = index[p]].
 * Gradient: dx = zeros, scatter-added with dout. */
ax_status ax_gather(ax_tensor **out, const ax_tensor *x, int dim, const ax_tensor *index);

/* x: [*] (float), index: i64 with x's ndim, src: x's dtype and ndim,
 * index.size(d) <= src.size(d) for every d and <= x.size(d) for d != dim
 * -> out: x's shape = x.clone().scatter_add_(dim, index, src): every src
 * element at a position p of index's shape is added to out at p with
 * coordinate dim = index[p]. Additions into one element happen in index
 * order (deterministic). Gradients: dx = dout; dsrc = gather(dout, dim,
 * index) (zero where src is larger than index). */
ax_status ax_scatter_add(ax_tensor **out, const ax_tensor *x, int dim, const ax_tensor *index,
                         const ax_tensor *src);

/* x: [..., S, ...], index: i64 [L] (or 0-dim: L = 1) with values in [0, S)
 * -> out: [..., L, ...], the rows index[0..L) of x along dim. Gradient: dx
 * = zeros, index-added with dout (repeated indices accumulate). */
ax_status ax_index_select(ax_tensor **out, const ax_tensor *x, int dim, const ax_tensor *index);

/* x: [*], mask: u8, broadcastable with x -> out: their broadcast shape,
 * value where mask != 0, else x (value converted to x's dtype). Gradient:
 * dx = dout where the mask is 0. */
ax_status ax_masked_fill(ax_tensor **out, const ax_tensor *x, const ax_tensor *mask, double value);

/* weight: [V, D], indices: i64 [*] with values in [0, V) -> out: [*, D],
 * out[p] = weight[indices[p]]. Gradient: dweight[v] = sum of dout[p] over
 * the p with indices[p] = v, in C order (no padding_idx, no max_norm). */
ax_status ax_embedding(ax_tensor **out, const ax_tensor *weight, const ax_tensor *indices);

#ifdef __cplusplus
}
#endif
#endif
