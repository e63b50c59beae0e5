/* The CPU kernels behind the table in cpu_backend.c (see axon/kernels.h
 * for the contract of each). */
#ifndef AXON_CPU_KERNELS_H
#define AXON_CPU_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "axon/kernels.h"

/* exp(x) to about 2 ulp for x in [-87, 88] (clamped there; NaN stays NaN):
 * x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite), a degree-6 Taylor
 * polynomial for e^r, and 2^n written into the exponent bits. Branch-free,
 * so `omp simd` loops vectorise it, unlike libm's expf. */
static inline float ax_cpu_expf(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float nf = (x * 1.44269504f + shifter) - shifter;
    float r = x - nf * 0.693359375f; /* ln2 split: the high part has few bits, so n * hi is exact */
    r = r - nf * -2.12194440e-4f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)nf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

ax_status ax_cpu_unary(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p);
ax_status ax_cpu_unary_backward(ax_unary_op op, ax_tensor *dx, const ax_tensor *dy, const ax_tensor *x,
                                const ax_tensor *y, const double *p);
ax_status ax_cpu_binary(ax_binary_op op, ax_tensor *out, const ax_tensor *a, const ax_tensor *b);
ax_status ax_cpu_where(ax_tensor *out, const ax_tensor *cond, const ax_tensor *a, const ax_tensor *b);
ax_status ax_cpu_reduce(ax_reduce_op op, ax_tensor *out, ax_tensor *idx, const ax_tensor *x, uint32_t dims);
ax_status ax_cpu_softmax(ax_tensor *y, const ax_tensor *x, int dim, bool log);
ax_status ax_cpu_softmax_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *y, int dim, bool log);
ax_status ax_cpu_matmul(ax_tensor *out, const ax_tensor *a, const ax_tensor *b, bool ta, bool tb, float alpha,
                        float beta);
ax_status ax_cpu_linear(ax_tensor *y, ax_tensor *pre, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                        ax_linear_act_op act);
ax_status ax_cpu_linear_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                 const ax_tensor *w, const ax_tensor *pre, ax_linear_act_op act);

/* cpu_conv.c (oneDNN) */
ax_status ax_cpu_conv3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                        const ax_conv_params *p);
ax_status ax_cpu_conv3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                 const ax_tensor *w, const ax_conv_params *p);
ax_status ax_cpu_conv_transpose3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                                  const ax_conv_params *p);
ax_status ax_cpu_conv_transpose3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                           const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p);
/* cpu_norm.c */
ax_status ax_cpu_group_norm(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                            const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps);
ax_status ax_cpu_group_norm_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                     const ax_tensor *x, const ax_tensor *mean, const ax_tensor *rstd,
                                     const ax_tensor *weight, int64_t groups);
ax_status ax_cpu_group_norm_act(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps,
                                double negative_slope);
ax_status ax_cpu_group_norm_act_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                         const ax_tensor *x, const ax_tensor *y, const ax_tensor *mean,
                                         const ax_tensor *rstd, const ax_tensor *weight, int64_t groups,
                                         double negative_slope);
/* cpu_pool.c */
ax_status ax_cpu_pool3d(ax_tensor *y, ax_tensor *idx, const ax_tensor *x, const ax_pool_params *p);
ax_status ax_cpu_pool3d_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *idx, const ax_pool_params *p);
ax_status ax_cpu_adaptive_avg_pool3d(ax_tensor *y, const ax_tensor *x);
ax_status ax_cpu_adaptive_avg_pool3d_backward(ax_tensor *dx, const ax_tensor *dy);
/* cpu_resample.c */
ax_status ax_cpu_interpolate(ax_tensor *y, const ax_tensor *x, ax_interp_mode mode, bool align_corners);
ax_status ax_cpu_interpolate_backward(ax_tensor *dx, const ax_tensor *dy, ax_interp_mode mode, bool align_corners);
ax_status ax_cpu_pad(ax_tensor *y, const ax_tensor *x, const int64_t *pads, int n_spatial, ax_pad_mode mode,
                     double value);
ax_status ax_cpu_pad_backward(ax_tensor *dx, const ax_tensor *dy, const int64_t *pads, int n_spatial,
                              ax_pad_mode mode);
/* cpu_index.c */
ax_status ax_cpu_gather(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx);
ax_status ax_cpu_scatter_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src);
ax_status ax_cpu_index_select(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx);
ax_status ax_cpu_index_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src);
/* cpu_optim.c */
ax_status ax_cpu_sgd_step(ax_tensor *p, ax_tensor *buf, const ax_tensor *g, const ax_sgd_step_params *c);
ax_status ax_cpu_adamw_step(ax_tensor *p, ax_tensor *m, ax_tensor *v, const ax_tensor *g,
                            const ax_adamw_step_params *c);
ax_status ax_cpu_grad_norm(double *acc, size_t n, const ax_tensor *const *xs, double p);
/* cpu_attention.c */
ax_status ax_cpu_sdpa(ax_tensor *o, ax_tensor *lse, const ax_tensor *q, const ax_tensor *k, const ax_tensor *v,
                      double scale, bool is_causal);
ax_status ax_cpu_sdpa_backward(ax_tensor *dq, ax_tensor *dk, ax_tensor *dv, const ax_tensor *dout, const ax_tensor *q,
                               const ax_tensor *k, const ax_tensor *v, const ax_tensor *o, const ax_tensor *lse,
                               double scale, bool is_causal);

#endif
