/* Private interface between the CUDA backend's sources:
 *
 *   cuda_backend.c   per-device state (stream, pools, library handles),
 *                    memory, cross-device copies, the kernel table;
 *   cuda_dnn.c       convolutions (cuDNN), matmul (cuBLAS) and linear
 *                    (cuBLASLt epilogues);
 *   cuda_kernels.cu  every custom kernel (elementwise, reductions,
 *                    softmax, norms, pooling, resampling, padding, indexing,
 *                    fused attention).
 *
 * All work of device d is queued on ax_cuda_stream(d) and nothing here
 * waits for the device except the copies that hand data to the host.
 */
#ifndef AXON_CUDA_INTERNAL_H
#define AXON_CUDA_INTERNAL_H

#include <cuda_runtime_api.h>

#include "axon/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AX_CUDA_MAX_DEVICES 16

/* The kernel table (static, borrowed). */
const ax_kernels *ax_cuda_kernels(void);
/* Can this machine run the backend? AX_OK, or AX_ERR_UNSUPPORTED with the
 * reason (no driver, driver older than the runtime, no device, too old a
 * GPU) in why. Never waits on a device. */
ax_status ax_cuda_probe(char *why, size_t why_size);
/* Serve AX_DEVICE_CUDA tensors with this backend's table. */
ax_status ax_cuda_register(void);

/* Make device d current and return its stream (created on first use); NULL
 * with the error set when d is not a usable device. */
cudaStream_t ax_cuda_stream(int32_t device);
/* AX_OK, or an error naming `what` and the CUDA error e. */
ax_status ax_cuda_check(cudaError_t e, const char *what);
/* Scratch device memory, stream-ordered (free with ax_cuda_scratch_free on
 * the same device). NULL with the error set (sizes and free memory) on OOM. */
void *ax_cuda_scratch(size_t nbytes, int32_t device);
void ax_cuda_scratch_free(void *p, int32_t device);
/* Wait for device d's stream; reports out-of-range indices seen by the
 * index kernels since the last call (they cannot stop the host mid-op:
 * they skip the element and raise a flag on the device instead). */
ax_status ax_cuda_synchronize(int32_t device);
/* Read and clear device d's out-of-range-index count (waits for the stream). */
ax_status ax_cuda_index_errors(int32_t device, int *count);

/* Bytes of device d's pool in use now and at most since the last reset
 * (reset: set the high-water mark to the current use). */
ax_status ax_cuda_memory(int32_t device, size_t *in_use, size_t *peak, bool reset_peak);

/* TF32 tensor cores for f32 convolutions and matmuls: on unless
 * AXON_CUDA_TF32=0 (PyTorch's default for cuDNN convolutions). */
bool ax_cuda_allow_tf32(void);

/* ---- cuda_kernels.cu: the table's custom kernels (contracts in axon/kernels.h) */
ax_status ax_cuda_copy(ax_tensor *dst, const ax_tensor *src);
ax_status ax_cuda_fill(ax_tensor *dst, double value);
ax_status ax_cuda_unary(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p);
ax_status ax_cuda_unary_backward(ax_unary_op op, ax_tensor *dx, const ax_tensor *dy, const ax_tensor *x,
                                 const ax_tensor *y, const double *p);
ax_status ax_cuda_binary(ax_binary_op op, ax_tensor *out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_cuda_where(ax_tensor *out, const ax_tensor *cond, const ax_tensor *a, const ax_tensor *b);
ax_status ax_cuda_reduce(ax_reduce_op op, ax_tensor *out, ax_tensor *idx, const ax_tensor *x, uint32_t dims);
ax_status ax_cuda_softmax(ax_tensor *y, const ax_tensor *x, int dim, bool log);
ax_status ax_cuda_softmax_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *y, int dim, bool log);
ax_status ax_cuda_group_norm(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                             const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps);
ax_status ax_cuda_group_norm_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                      const ax_tensor *x, const ax_tensor *mean, const ax_tensor *rstd,
                                      const ax_tensor *weight, int64_t groups);
ax_status ax_cuda_group_norm_act(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                 const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps,
                                 double negative_slope);
ax_status ax_cuda_group_norm_act_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                          const ax_tensor *x, const ax_tensor *y, const ax_tensor *mean,
                                          const ax_tensor *rstd, const ax_tensor *weight, int64_t groups,
                                          double negative_slope);
ax_status ax_cuda_pool3d(ax_tensor *y, ax_tensor *idx, const ax_tensor *x, const ax_pool_params *p);
ax_status ax_cuda_pool3d_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *idx, const ax_pool_params *p);
ax_status ax_cuda_adaptive_avg_pool3d(ax_tensor *y, const ax_tensor *x);
ax_status ax_cuda_adaptive_avg_pool3d_backward(ax_tensor *dx, const ax_tensor *dy);
ax_status ax_cuda_interpolate(ax_tensor *y, const ax_tensor *x, ax_interp_mode mode, bool align_corners);
ax_status ax_cuda_interpolate_backward(ax_tensor *dx, const ax_tensor *dy, ax_interp_mode mode, bool align_corners);
ax_status ax_cuda_pad(ax_tensor *y, const ax_tensor *x, const int64_t *pads, int n_spatial, ax_pad_mode mode,
                      double value);
ax_status ax_cuda_pad_backward(ax_tensor *dx, const ax_tensor *dy, const int64_t *pads, int n_spatial,
                               ax_pad_mode mode);
ax_status ax_cuda_gather(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx);
ax_status ax_cuda_scatter_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src);
ax_status ax_cuda_index_select(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx);
ax_status ax_cuda_index_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src);
ax_status ax_cuda_sgd_step(ax_tensor *p, ax_tensor *buf, const ax_tensor *g, const ax_sgd_step_params *c);
ax_status ax_cuda_adamw_step(ax_tensor *p, ax_tensor *m, ax_tensor *v, const ax_tensor *g,
                             const ax_adamw_step_params *c);
ax_status ax_cuda_grad_norm(double *acc, size_t n, const ax_tensor *const *xs, double p);
/* flash-style attention (f32 / bf16 / f16, f32 accumulation; head dims <= 128) */
ax_status ax_cuda_sdpa(ax_tensor *o, ax_tensor *lse, const ax_tensor *q, const ax_tensor *k, const ax_tensor *v,
                       double scale, bool is_causal);
ax_status ax_cuda_sdpa_backward(ax_tensor *dq, ax_tensor *dk, ax_tensor *dv, const ax_tensor *dout, const ax_tensor *q,
                                const ax_tensor *k, const ax_tensor *v, const ax_tensor *o, const ax_tensor *lse,
                                double scale, bool is_causal);

/* Helpers for cuda_dnn.c. y: [N, C, *] (any strides, float), b: [C] (float):
 * y[n, c, ...] += b[c]. */
ax_status ax_cuda_bias_add(ax_tensor *y, const ax_tensor *b);
/* db: [C] f32 += sum of dy: [N, C, *] (f32/bf16) over N and *. */
ax_status ax_cuda_bias_grad(ax_tensor *db, const ax_tensor *dy);

/* ---- cuda_dnn.c ------------------------------------------------------------- */
ax_status ax_cuda_matmul(ax_tensor *out, const ax_tensor *a, const ax_tensor *b, bool ta, bool tb, float alpha,
                         float beta);
ax_status ax_cuda_conv3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                         const ax_conv_params *p);
ax_status ax_cuda_conv3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                  const ax_tensor *w, const ax_conv_params *p);
ax_status ax_cuda_conv_transpose3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                                   const ax_conv_params *p);
ax_status ax_cuda_conv_transpose3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                            const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p);
/* cuBLASLt with bias/activation epilogues */
ax_status ax_cuda_linear(ax_tensor *y, ax_tensor *pre, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                         ax_linear_act_op act);
ax_status ax_cuda_linear_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                  const ax_tensor *w, const ax_tensor *pre, ax_linear_act_op act);

#ifdef __cplusplus
}
#endif
#endif
