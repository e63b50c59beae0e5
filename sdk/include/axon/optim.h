/* axon/optim.h — optimizers (SGD, AdamW), learning-rate schedules and
 * gradient clipping, with optimizer state files for exact resume.
 *
 * The optimizers follow torch.optim.SGD and torch.optim.AdamW (the default
 * single-tensor CPU path, maximize/amsgrad off) operation for operation in
 * f32; the tests' 20 steps match PyTorch's bit for bit (x86-64, AVX2
 * PyTorch). A step is one fused pass over each parameter's f32 data
 * (OpenMP for large tensors), purely elementwise, so results are identical
 * for any thread count. Parameters may live on any device whose backend
 * has the optimizer kernels (axon/kernels.h: sgd_step, adamw_step,
 * grad_norm; the CUDA backend does): each is stepped where it lives, its
 * state buffers live there too, and nothing crosses to the host except the
 * one norm value clipping needs.
 *
 *     ax_tensor *params[] = {w, b};                 // f32 leaves
 *     const char *names[] = {"enc.w", "enc.b"};
 *     ax_lr_schedule sched = {.kind = AX_LR_POLY, .base_lr = 1e-2,
 *                             .total_steps = 1000, .power = 0.9};
 *     ax_optim *opt;
 *     if (ax_sgd_new(&opt, 2, params, names, 1e-2, 0.99, 0, 3e-5, true) != AX_OK) ...;
 *     for (int64_t s = ax_optim_steps(opt); s < 1000; s++) {
 *         ax_optim_set_lr(opt, ax_lr_schedule_at(&sched, s));
 *         ax_optim_zero_grad(opt);
 *         ... forward, ax_backward(loss, NULL) ...
 *         double norm;
 *         ax_clip_grad_norm(&norm, 2, params, 12.0, 2.0);
 *         if (isfinite(norm)) ax_optim_step(opt);
 *     }
 *     ax_optim_state_save(opt, "optim.safetensors");   // resume: ax_optim_state_load
 *     ax_optim_free(opt);
 *
 * Ownership: an optimizer retains its parameters (released by
 * ax_optim_free) and owns its state buffers. It reads and replaces
 * param->grad but never creates graph nodes.
 *
 * Errors name the function and the parameter, e.g.
 * "ax_adamw_new: parameter 'enc.w' [4, 5] is not a leaf (it was computed by
 * 'matmul'); optimize the leaf it came from".
 */
#ifndef AXON_OPTIM_H
#define AXON_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"
#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- optimizers ------------------------------------------------------------ */

typedef struct ax_optim ax_optim;

typedef enum ax_optim_kind { AX_OPTIM_SGD = 1, AX_OPTIM_ADAMW = 2 } ax_optim_kind;

/* Parameters (both constructors): params[i] is an f32, contiguous leaf
 * tensor (no grad_fn) on a device whose backend has the optimizer kernels
 * (else AX_ERR_UNSUPPORTED), each given once; retained. names: [optional] n
 * unique non-empty names (copied) that key the state file, e.g. the
 * model's dotted parameter names; NULL names them "0", "1", ... by index.
 * Hyper-parameters must be finite; lr >= 0 and weight_decay >= 0.
 * *out: new optimizer (ax_optim_free), NULL on error. n may be 0. */

/* torch.optim.SGD. Per parameter, with g its gradient:
 *     g = g + weight_decay * p
 *     buf = g                                   (first step of this param)
 *     buf = momentum * buf + (1 - dampening) * g (later steps)
 *     g = nesterov ? g + momentum * buf : buf     (only when momentum != 0)
 *     p = p - lr * g
 * momentum >= 0; nesterov needs momentum > 0 and dampening == 0.
 * nnU-Net: lr 1e-2, momentum 0.99, dampening 0, weight_decay 3e-5, nesterov. */
ax_status ax_sgd_new(ax_optim **out, size_t n, ax_tensor *const *params, const char *const *names, double lr,
                     double momentum, double dampening, double weight_decay, bool nesterov);

/* torch.optim.AdamW (decoupled weight decay, amsgrad off). Per parameter,
 * with t the number of steps this parameter has taken (including this one):
 *     p = p * (1 - lr * weight_decay)
 *     m = m + (1 - beta1) * (g - m)              (m, v start at 0)
 *     v = beta2 * v + (1 - beta2) * g * g
 *     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * 0 <= beta1, beta2 < 1; eps >= 0. PyTorch's defaults: 1e-3, 0.9, 0.999,
 * 1e-8, 1e-2. */
ax_status ax_adamw_new(ax_optim **out, size_t n, ax_tensor *const *params, const char *const *names, double lr,
                       double beta1, double beta2, double eps, double weight_decay);

/* One update of every parameter whose grad is non-NULL, in place; the
 * others are skipped and their state (and their own step count t) is left
 * as it is, as in PyTorch. Runs under no-grad. A grad must have its
 * parameter's shape and device; bf16/f16 or non-contiguous grads are
 * converted to f32 first. Fails without changing anything when a grad is
 * unusable. Counts one step (ax_optim_steps) per successful call. */
ax_status ax_optim_step(ax_optim *o);

/* Drop every parameter's grad (sets it to NULL: PyTorch's set_to_none). */
void ax_optim_zero_grad(ax_optim *o);

/* The learning rate used by the next ax_optim_step. lr must be finite and
 * >= 0 (else AX_ERR_INVALID and the rate is unchanged). */
ax_status ax_optim_set_lr(ax_optim *o, double lr);
double ax_optim_lr(const ax_optim *o);

/* Successful ax_optim_step calls so far (restored by ax_optim_state_load);
 * with schedules as pure functions of the step, this is where a resumed
 * run picks its learning rate up. */
int64_t ax_optim_steps(const ax_optim *o);

ax_optim_kind ax_optim_kind_of(const ax_optim *o);
/* "sgd" or "adamw" (static). */
const char *ax_optim_kind_name(ax_optim_kind kind);
/* Number of parameters, and parameter i (borrowed) and its name (borrowed,
 * valid until ax_optim_free); NULL when i is out of range. */
size_t ax_optim_count(const ax_optim *o);
ax_tensor *ax_optim_param(const ax_optim *o, size_t i);
const char *ax_optim_name(const ax_optim *o, size_t i);

/* NULL-safe. Releases the parameters and the state. */
void ax_optim_free(ax_optim *o);

/* ---- state files ------------------------------------------------------------
 * A safetensors file (axon/safetensors.h) with, per parameter <name>:
 *     "<name>.step"                 i64 []   steps this parameter has taken
 *     "<name>.momentum_buffer"      f32 [param's shape]  SGD, momentum != 0,
 *                                            once the parameter has stepped
 *     "<name>.exp_avg", "<name>.exp_avg_sq"  f32 [param's shape]  AdamW
 * and metadata "format" = "axon.optim/1", "kind" ("sgd" | "adamw"), "steps",
 * "lr" and the hyper-parameters ("momentum", "dampening", "weight_decay",
 * "nesterov" | "beta1", "beta2", "eps", "weight_decay"), numbers written
 * with 17 significant digits so they read back exactly.
 *
 * Loading validates everything before changing anything: the format and
 * kind, every hyper-parameter equal to this optimizer's (a changed config
 * is an error, not silently overridden — the learning rate is the exception
 * and is restored, since schedules set it every step anyway), every
 * parameter's tensors present with its shape and dtype, and no tensor left
 * over, e.g. "ax_optim_state_load: state.safetensors: no tensor
 * 'encoder.w.exp_avg' for parameter 'encoder.w'". Then it restores the
 * buffers, the step counts and the lr: the next steps are bit-identical to
 * an uninterrupted run's. Saving is atomic (write, fsync, rename). */
ax_status ax_optim_state_save(const ax_optim *o, const char *path);
ax_status ax_optim_state_load(ax_optim *o, const char *path);

/* ---- gradient clipping ---------------------------------------------------------- */

/* torch.nn.utils.clip_grad_norm_: the norm of all grads of params[0..n)
 * taken together (params with a NULL grad are ignored) and, when it
 * exceeds max_norm, every grad scaled in place by
 * max_norm / (total_norm + 1e-6).
 * norm_type: p > 0 (2 is the Euclidean norm) or INFINITY (max |g|).
 * total_norm: [optional] receives the norm before clipping; 0 when no
 * param has a grad.
 * A non-finite norm (NaN or inf in some grad) is not an error
 * (error_if_nonfinite=False): it returns AX_OK, stores the NaN/inf in
 * *total_norm and leaves the grads untouched — where PyTorch would scale
 * them by NaN or 0 — so the caller can skip the step.
 * The norm is accumulated in double over fixed-size chunks combined in
 * order: identical for any thread count. Grads are float tensors on any
 * device with a grad_norm kernel (one call, hence one wait, per device);
 * non-f32 or non-contiguous ones are scaled through an f32 copy. */
ax_status ax_clip_grad_norm(double *total_norm, size_t n, ax_tensor *const *params, double max_norm, double norm_type);

/* ---- learning-rate schedules ----------------------------------------------------
 * Pure functions of the step (0-based count of optimizer steps, or epochs —
 * the caller decides), so a resumed run needs no scheduler state.
 *
 * ax_lr_schedule_at(s, step), with W = warmup_steps, T = total_steps:
 *   step < W (linear warm-up, nnssl's Lin_incr_LRScheduler; equal to
 *   torch's LinearLR(start_factor=1/W, total_iters=W-1)):
 *       base_lr / W * (step + 1)         -> base_lr / W at step 0, base_lr at W-1
 *   step >= W, with k = min(step - W, T - W) and K = T - W:
 *       AX_LR_CONSTANT  base_lr
 *       AX_LR_POLY      max(min_lr, base_lr * (1 - k / K)^power)
 *                       (nnU-Net's PolyLRScheduler, power 0.9; with W > 0
 *                       nnssl's PolyLRScheduler_offset)
 *       AX_LR_COSINE    min_lr + (base_lr - min_lr) * (1 + cos(pi * k / K)) / 2
 *                       (torch's CosineAnnealingLR(T_max=K, eta_min=min_lr),
 *                       closed form, held at min_lr after K)
 * Negative steps count as 0. */

typedef enum ax_lr_kind { AX_LR_CONSTANT = 0, AX_LR_POLY = 1, AX_LR_COSINE = 2 } ax_lr_kind;

typedef struct ax_lr_schedule {
    ax_lr_kind kind;
    double base_lr;       /* >= 0 */
    int64_t total_steps;  /* T, including warm-up; > warmup_steps for poly/cosine */
    int64_t warmup_steps; /* W >= 0; 0 = no warm-up */
    double power;         /* poly exponent, > 0 (nnU-Net: 0.9) */
    double min_lr;        /* cosine floor (eta_min) and poly floor; 0 <= min_lr <= base_lr */
} ax_lr_schedule;

/* AX_OK, or AX_ERR_INVALID naming the bad field and its value. */
ax_status ax_lr_schedule_check(const ax_lr_schedule *s);
/* The rate at `step` (formulas above); NaN when ax_lr_schedule_check fails. */
double ax_lr_schedule_at(const ax_lr_schedule *s, int64_t step);
/* "constant", "poly", "cosine" -> kind; AX_ERR_INVALID naming the choices. */
ax_status ax_lr_kind_parse(const char *name, ax_lr_kind *kind);
/* The inverse; NULL for an unknown kind. */
const char *ax_lr_kind_name(ax_lr_kind kind);

/* The pieces, without warm-up or validation (step clamped to [0, total]):
 * base * (1 - step / total)^power, and
 * min_lr + (base - min_lr) * (1 + cos(pi * step / total)) / 2. */
double ax_lr_poly(int64_t step, int64_t total, double base_lr, double power);
double ax_lr_cosine(int64_t step, int64_t total, double base_lr, double min_lr);

#ifdef __cplusplus
}
#endif
#endif
