/* axon/ops.h — differentiable tensor ops: elementwise math, activations,
 * reductions, softmax and matrix products.
 *
 * Every op: `out` receives a new reference; inputs are borrowed; the op is
 * recorded for autograd when an input requires grad (axon/autograd.h).
 * Elementwise binary ops broadcast like NumPy/PyTorch. Floating ops accept
 * f32, bf16 and f16 (the CPU computes bf16/f16 in f32 and rounds the
 * result); add/sub/mul, neg/abs, comparisons and where also take integers.
 * Errors name the op, the argument and the shapes:
 *     "ax_add: cannot broadcast a [2, 3] with b [4]"
 *
 *     ax_tensor *h, *y, *loss;
 *     ax_matmul(&h, x, w);          // x: [N, K], w: [K, M] -> h: [N, M]
 *     ax_relu(&y, h);
 *     ax_mean(&loss, y, 0, NULL, false);   // all dims
 */
#ifndef AXON_OPS_H
#define AXON_OPS_H

#include "axon/autograd.h"
#include "axon/kernels.h"
#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise, broadcasting ------------------------------------------ */
/* a, b: broadcastable -> out: broadcast shape */
ax_status ax_add(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_sub(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_mul(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_div(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_pow(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_maximum(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_minimum(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
/* comparisons: out u8 0/1, not differentiable */
ax_status ax_eq(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_ne(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_lt(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_le(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_gt(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_ge(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
/* cond (u8), a, b broadcastable -> out = cond ? a : b */
ax_status ax_where(ax_tensor **out, const ax_tensor *cond, const ax_tensor *a, const ax_tensor *b);

/* with a scalar: x: any shape -> out: x's shape */
ax_status ax_add_scalar(ax_tensor **out, const ax_tensor *x, double s);
ax_status ax_mul_scalar(ax_tensor **out, const ax_tensor *x, double s);
ax_status ax_pow_scalar(ax_tensor **out, const ax_tensor *x, double exponent);

/* ---- unary: x: any shape -> out: x's shape ------------------------------ */
ax_status ax_neg(ax_tensor **out, const ax_tensor *x);
ax_status ax_exp(ax_tensor **out, const ax_tensor *x);
ax_status ax_log(ax_tensor **out, const ax_tensor *x);
ax_status ax_sqrt(ax_tensor **out, const ax_tensor *x);
ax_status ax_rsqrt(ax_tensor **out, const ax_tensor *x);
ax_status ax_abs(ax_tensor **out, const ax_tensor *x);
/* lo/hi: use -INFINITY/INFINITY for one-sided clamps */
ax_status ax_clamp(ax_tensor **out, const ax_tensor *x, double lo, double hi);

/* ---- activations --------------------------------------------------------- */
ax_status ax_relu(ax_tensor **out, const ax_tensor *x);
ax_status ax_leaky_relu(ax_tensor **out, const ax_tensor *x, double negative_slope);
/* approximate: false = exact (erf), true = tanh approximation */
ax_status ax_gelu(ax_tensor **out, const ax_tensor *x, bool approximate);
ax_status ax_silu(ax_tensor **out, const ax_tensor *x);
ax_status ax_sigmoid(ax_tensor **out, const ax_tensor *x);
ax_status ax_tanh(ax_tensor **out, const ax_tensor *x);
/* PyTorch's: x for beta*x > threshold, else log(1 + exp(beta*x)) / beta */
ax_status ax_softplus(ax_tensor **out, const ax_tensor *x, double beta, double threshold);

/* ---- reductions ------------------------------------------------------------
 * dims: the n dims to reduce (negative counts from the end); n == 0 means
 * all dims. keepdim keeps them with size 1. */
ax_status ax_sum(ax_tensor **out, const ax_tensor *x, int n, const int *dims, bool keepdim);
ax_status ax_mean(ax_tensor **out, const ax_tensor *x, int n, const int *dims, bool keepdim);
/* correction: 1 = unbiased (PyTorch's default), 0 = population */
ax_status ax_var(ax_tensor **out, const ax_tensor *x, int n, const int *dims, int correction, bool keepdim);
ax_status ax_std(ax_tensor **out, const ax_tensor *x, int n, const int *dims, int correction, bool keepdim);
/* values and [optional] indices (i64) of the max/min along one dim; ties
 * take the first index; the gradient flows to that index */
ax_status ax_max(ax_tensor **values, ax_tensor **indices, const ax_tensor *x, int dim, bool keepdim);
ax_status ax_min(ax_tensor **values, ax_tensor **indices, const ax_tensor *x, int dim, bool keepdim);
ax_status ax_logsumexp(ax_tensor **out, const ax_tensor *x, int n, const int *dims, bool keepdim);
/* p-norm over dims (p > 0; p = 2 is the Euclidean norm) */
ax_status ax_norm(ax_tensor **out, const ax_tensor *x, double p, int n, const int *dims, bool keepdim);
/* Sum a gradient of a broadcast result back to `shape` (for op authors). */
ax_status ax_sum_to(ax_tensor **out, const ax_tensor *x, int ndim, const int64_t *shape);

/* ---- softmax ---------------------------------------------------------------- */
ax_status ax_softmax(ax_tensor **out, const ax_tensor *x, int dim);
ax_status ax_log_softmax(ax_tensor **out, const ax_tensor *x, int dim);

/* ---- matrix products (oneDNN on the CPU) -----------------------------------
 * Determinism: oneDNN's sgemm may split long inner (K) dimensions by thread
 * count, so results can differ in the last bits between thread counts. */
/* a: [..., M, K], b: [..., K, N] (batch dims broadcast; 1-D operands are
 * promoted like torch.matmul) -> out: [..., M, N] */
ax_status ax_matmul(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);
/* x: [..., in], weight: [out, in], bias: [optional] [out] -> [..., out] */
ax_status ax_linear(ax_tensor **out, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias);
/* act(ax_linear(x, weight, bias)) as one GEMM plus one fused bias/activation
 * pass (cuBLASLt epilogues on CUDA) when the backend has the `linear`
 * member and x, weight and bias share a dtype it computes (f32 on the CPU);
 * otherwise as matmul, add and the activation ops, with the same result.
 * act: AX_LINEAR_ACT_NONE, _RELU or _GELU_TANH (= ax_gelu(x, true)).
 * Leading dims of x are flattened (strided x is copied). With autograd on,
 * GELU_TANH keeps the pre-activation [..., out] for backward, RELU keeps y.
 *     ax_linear_act(&h, x, w1, b1, AX_LINEAR_ACT_GELU_TANH);  // [B, T, C] -> [B, T, 4C]
 * x: [..., in], weight: [out, in], bias: [optional] [out] -> out: [..., out] */
ax_status ax_linear_act(ax_tensor **out, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias,
                        ax_linear_act_op act);

#ifdef __cplusplus
}
#endif
#endif
