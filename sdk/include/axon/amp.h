/* axon/amp.h — mixed precision: autocast regions and dynamic loss scaling,
 * after torch.autocast and torch.cuda.amp.GradScaler.
 *
 * Inside an autocast region the op front-ends run convolutions
 * (ax_conv3d, ax_conv_transpose3d) and matrix products (ax_matmul,
 * ax_linear) in the region's half dtype: they cast their f32 inputs,
 * weights and bias with recorded casts (ax_tensor_to_dtype), so the
 * parameters stay f32 "master weights" and their gradients arrive in f32
 * through the cast nodes; the backend accumulates in f32 (cuDNN, cuBLAS)
 * and the output is the half dtype. Normalisations, softmax, losses and
 * sum/mean upcast half inputs to f32 first and return f32 (PyTorch's
 * "fp32 list"); other ops run in their inputs' dtype.
 *
 * Only where the tensors' backend has native half kernels for the op
 * (supports(AX_KOP_CONV / AX_KOP_MATMUL, dtype)): on the CPU backend,
 * which has none, a region changes nothing and results are f32 bit for bit.
 *
 *     ax_autocast_begin(AX_DTYPE_BF16);
 *     st = ax_module_forward(net, &y, x);          // conv/matmul in bf16
 *     if (st == AX_OK) st = ax_mse_loss(&loss, y, target, NULL, AX_LOSS_MEAN); // f32
 *     ax_autocast_end();
 *     ax_backward(loss, NULL);                     // outside the region, as in PyTorch
 *
 * f16 has a narrow range: scale the loss so small gradients do not flush
 * to zero, and unscale before clipping and stepping:
 *
 *     ax_grad_scaler *gs;
 *     ax_grad_scaler_new(&gs, 65536.0, 2.0, 0.5, 2000);
 *     ... forward in an AX_DTYPE_F16 region ...
 *     ax_grad_scaler_scale(gs, loss, &scaled);  ax_backward(scaled, NULL);
 *     bool skipped;
 *     ax_grad_scaler_unscale(gs, n, params, &skipped); // now clip if wanted
 *     if (!skipped) ax_optim_step(opt);
 *     ax_grad_scaler_update(gs);
 *
 * Regions are per thread and nest; ax_autocast_begin(AX_DTYPE_F32) opens
 * a region with autocast off (torch.autocast(enabled=False)).
 */
#ifndef AXON_AMP_H
#define AXON_AMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/kernels.h"
#include "axon/status.h"
#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- autocast ------------------------------------------------------------------- */

/* Open a region: dtype AX_DTYPE_BF16 or AX_DTYPE_F16 (autocast on) or
 * AX_DTYPE_F32 (off). AX_ERR_INVALID for other dtypes or more than 16
 * nested regions. Every successful begin needs one ax_autocast_end. */
ax_status ax_autocast_begin(ax_dtype dtype);
void ax_autocast_end(void);
/* The innermost region's half dtype, or AX_DTYPE_F32 when autocast is off. */
ax_dtype ax_autocast_dtype(void);

/* For op front-ends. *out (new reference) = t cast to the region's half
 * dtype (recorded for autograd) when autocast is on, t is of another
 * floating dtype and t's backend supports `op` in the region's dtype;
 * else t itself retained. NULL t gives NULL. */
ax_status ax_autocast_lowp(ax_tensor **out, const ax_tensor *t, ax_kop op);
/* Would ax_autocast_lowp cast t for op? */
bool ax_autocast_lowp_wanted(const ax_tensor *t, ax_kop op);
/* *out = t upcast to f32 (recorded) when autocast is on and t is bf16/f16;
 * else t retained. NULL t gives NULL. */
ax_status ax_autocast_f32(ax_tensor **out, const ax_tensor *t);
/* Would ax_autocast_f32 cast t? */
bool ax_autocast_f32_wanted(const ax_tensor *t);

/* ---- dynamic loss scaling ---------------------------------------------------------- */

typedef struct ax_grad_scaler ax_grad_scaler;

/* torch.cuda.amp.GradScaler(init_scale, growth_factor, backoff_factor,
 * growth_interval): init_scale > 0, growth > 1, 0 < backoff < 1,
 * interval >= 1 (PyTorch: 65536, 2, 0.5, 2000). *out: new (free with
 * ax_grad_scaler_free). */
ax_status ax_grad_scaler_new(ax_grad_scaler **out, double init_scale, double growth, double backoff,
                             int64_t interval);
void ax_grad_scaler_free(ax_grad_scaler *s); /* NULL-safe */
double ax_grad_scaler_get_scale(const ax_grad_scaler *s);

/* *scaled = loss * scale (recorded; new reference), in f32. */
ax_status ax_grad_scaler_scale(ax_grad_scaler *s, const ax_tensor *loss, ax_tensor **scaled);
/* Multiplies every grad of params[0..n) by 1 / scale (f32, in place, on
 * its device) and checks them for inf/NaN: *found_inf is then true and
 * the step must be skipped. Waits for each device once (the inf check).
 * Grads must be f32 and contiguous. Call once per step, before clipping. */
ax_status ax_grad_scaler_unscale(ax_grad_scaler *s, size_t n, ax_tensor *const *params, bool *found_inf);
/* After the step (taken or skipped): an inf since the last update halves
 * the scale (times backoff) and restarts the count; `interval` clean
 * updates in a row grow it (times growth). */
void ax_grad_scaler_update(ax_grad_scaler *s);

#ifdef __cplusplus
}
#endif
#endif
