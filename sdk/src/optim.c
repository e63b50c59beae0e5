/* Optimizers (SGD, AdamW), gradient clipping, learning-rate schedules and
 * optimizer state files (axon/optim.h).
 *
 * The updates mirror PyTorch's single-tensor CPU path operation by
 * operation in f32: the same coefficients rounded to f32 at the same
 * places, the same evaluation order, and single roundings where PyTorch's
 * vectorised kernels use fused multiply-adds (ax_fmadd). On an x86-64 CPU
 * with AVX2 the 20-step tests match PyTorch bit for bit. Every update is
 * elementwise over each parameter (blocks spread over threads), so it is
 * bit-identical for any thread count.
 *
 * The per-element loops are the kernel table's sgd_step / adamw_step /
 * grad_norm (kernels/cpu/cpu_optim.c is the reference): this file computes
 * the f32 coefficients and dispatches on the parameter's device, so a
 * model on a GPU steps there without its data crossing to the host. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/kernels.h"
#include "axon/optim.h"
#include "axon/safetensors.h"
#include "ops_internal.h"

/* Below this many elements a loop runs on one thread. */
#define AX_OPTIM_PAR_MIN 32768

#define AX_OPTIM_FORMAT "axon.optim/1"

typedef struct ax_optim_slot {
    ax_tensor *p; /* retained parameter */
    char *name;
    ax_tensor *m; /* SGD momentum_buffer / AdamW exp_avg; f32, contiguous */
    ax_tensor *v; /* AdamW exp_avg_sq */
    int64_t step; /* updates this parameter has had (its m is valid iff > 0 for SGD) */
} ax_optim_slot;

struct ax_optim {
    ax_optim_kind kind;
    size_t n;
    ax_optim_slot *slots;
    double lr, weight_decay;
    double momentum, dampening; /* SGD */
    bool nesterov;
    double beta1, beta2, eps; /* AdamW */
    int64_t steps;
};

/* ---- small helpers -------------------------------------------------------- */

static char *ax_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* f32 contiguous version of t: t itself (retained) when it already is one. */
static ax_status ax_f32_contiguous(ax_tensor **out, const ax_tensor *t) {
    if (t->dtype == AX_DTYPE_F32) return ax_tensor_contiguous(out, t);
    return ax_cast_nograd(out, t, AX_DTYPE_F32);
}

static float *ax_f32(const ax_tensor *t) { return (float *)ax_tensor_data(t); }

static bool ax_finite(double x) { return isfinite(x); }

/* Do the element ranges of two tensors on one storage overlap? */
static bool ax_tensors_overlap(const ax_tensor *a, const ax_tensor *b) {
    if (a->storage != b->storage) return false;
    int64_t a0 = a->offset, a1 = a->offset + ax_tensor_numel(a);
    int64_t b0 = b->offset, b1 = b->offset + ax_tensor_numel(b);
    return a0 < b1 && b0 < a1 && ax_tensor_numel(a) > 0 && ax_tensor_numel(b) > 0;
}

/* ---- construction ---------------------------------------------------------- */

static ax_status ax_optim_check_param(const char *fn, const ax_tensor *p, const char *name) {
    char s[160];
    if (!p) return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' is NULL", fn, name);
    ax_shape_str(s, sizeof s, p->ndim, p->shape);
    if (p->grad_fn)
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: parameter '%s' %s is not a leaf (it was computed by '%s'); optimize the leaf it "
                        "came from",
                        fn, name, s, p->grad_fn->name);
    if (p->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' %s is %s; optimizers update f32 parameters only", fn, name,
                        s, ax_dtype_name(p->dtype) ? ax_dtype_name(p->dtype) : "of an unknown dtype");
    const ax_kernels *k = ax_kernels_for(p->storage->device);
    if (!k) return ax_error_prefix("%s: parameter '%s' %s", fn, name, s);
    if (!AX_KERNELS_HAS(k, sgd_step) || !AX_KERNELS_HAS(k, adamw_step) || !AX_KERNELS_HAS(k, grad_norm))
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: parameter '%s' %s lives on a device whose backend '%s' has no "
                        "optimizer kernels (rebuild the backend against this libaxon)", fn, name, s, k->name);
    if (!ax_tensor_is_contiguous(p))
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' %s is not contiguous", fn, name, s);
    return AX_OK;
}

static ax_status ax_optim_check_hyper(const char *fn, const char *what, double x, double lo, bool lo_open, double hi,
                                      bool hi_open) {
    if (!ax_finite(x) || (lo_open ? x <= lo : x < lo) || (hi_open ? x >= hi : x > hi))
        return AX_ERROR(AX_ERR_INVALID, "%s: %s %g is outside %s%g, %g%s", fn, what, x, lo_open ? "(" : "[", lo, hi,
                        hi_open ? ")" : "]");
    return AX_OK;
}

/* names[i], or "i" (written to buf) when there are no names. */
static const char *ax_param_name(const char *const *names, size_t i, char *buf, size_t size) {
    if (names) return names[i];
    snprintf(buf, size, "%zu", i);
    return buf;
}

/* Shared part of the constructors: validate params and names, build slots. */
static ax_status ax_optim_new(ax_optim **out, const char *fn, ax_optim_kind kind, size_t n, ax_tensor *const *params,
                              const char *const *names) {
    *out = NULL;
    if (n > 0 && !params) return AX_ERROR(AX_ERR_INVALID, "%s: params is NULL for n = %zu", fn, n);
    char idx_i[32], idx_j[32];
    for (size_t i = 0; i < n; i++) {
        const char *name = ax_param_name(names, i, idx_i, sizeof idx_i);
        if (!name || !*name)
            return AX_ERROR(AX_ERR_INVALID, "%s: name %zu is %s; names must be non-empty", fn, i,
                            name ? "empty" : "NULL");
        if (ax_optim_check_param(fn, params[i], name) != AX_OK) return ax_error_status();
        for (size_t j = 0; j < i; j++) {
            const char *other = ax_param_name(names, j, idx_j, sizeof idx_j);
            if (strcmp(other, name) == 0)
                return AX_ERROR(AX_ERR_INVALID, "%s: parameters %zu and %zu are both named '%s'", fn, j, i, name);
            if (ax_tensors_overlap(params[i], params[j]))
                return AX_ERROR(AX_ERR_INVALID,
                                "%s: parameter '%s' shares memory with parameter '%s'; give each tensor once", fn, name,
                                other);
        }
    }
    ax_optim *o = calloc(1, sizeof *o);
    if (!o) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", fn);
    o->kind = kind;
    o->slots = calloc(n ? n : 1, sizeof *o->slots);
    if (!o->slots) {
        free(o);
        return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", fn);
    }
    for (size_t i = 0; i < n; i++) {
        o->slots[i].name = ax_strdup(ax_param_name(names, i, idx_i, sizeof idx_i));
        o->slots[i].p = ax_tensor_retain(params[i]);
        o->n = i + 1;
        if (!o->slots[i].name) {
            ax_optim_free(o);
            return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", fn);
        }
    }
    *out = o;
    return AX_OK;
}

ax_status ax_sgd_new(ax_optim **out, size_t n, ax_tensor *const *params, const char *const *names, double lr,
                     double momentum, double dampening, double weight_decay, bool nesterov) {
    const char *fn = "ax_sgd_new";
    *out = NULL;
    if (ax_optim_check_hyper(fn, "lr", lr, 0, false, INFINITY, false) != AX_OK ||
        ax_optim_check_hyper(fn, "momentum", momentum, 0, false, INFINITY, false) != AX_OK ||
        ax_optim_check_hyper(fn, "dampening", dampening, -INFINITY, false, INFINITY, false) != AX_OK ||
        ax_optim_check_hyper(fn, "weight_decay", weight_decay, 0, false, INFINITY, false) != AX_OK)
        return ax_error_status();
    if (nesterov && (momentum <= 0 || dampening != 0))
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: nesterov needs momentum > 0 and dampening 0, got momentum %g, "
                        "dampening %g",
                        fn, momentum, dampening);
    ax_optim *o;
    if (ax_optim_new(&o, fn, AX_OPTIM_SGD, n, params, names) != AX_OK) return ax_error_status();
    o->lr = lr;
    o->momentum = momentum;
    o->dampening = dampening;
    o->weight_decay = weight_decay;
    o->nesterov = nesterov;
    *out = o;
    return AX_OK;
}

ax_status ax_adamw_new(ax_optim **out, size_t n, ax_tensor *const *params, const char *const *names, double lr,
                       double beta1, double beta2, double eps, double weight_decay) {
    const char *fn = "ax_adamw_new";
    *out = NULL;
    if (ax_optim_check_hyper(fn, "lr", lr, 0, false, INFINITY, false) != AX_OK ||
        ax_optim_check_hyper(fn, "beta1", beta1, 0, false, 1, true) != AX_OK ||
        ax_optim_check_hyper(fn, "beta2", beta2, 0, false, 1, true) != AX_OK ||
        ax_optim_check_hyper(fn, "eps", eps, 0, false, INFINITY, false) != AX_OK ||
        ax_optim_check_hyper(fn, "weight_decay", weight_decay, 0, false, INFINITY, false) != AX_OK)
        return ax_error_status();
    ax_optim *o;
    if (ax_optim_new(&o, fn, AX_OPTIM_ADAMW, n, params, names) != AX_OK) return ax_error_status();
    o->lr = lr;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    /* Zero moments are exactly PyTorch's lazily created state, and having
     * them from the start keeps step and load free of allocation. */
    for (size_t i = 0; i < n; i++) {
        ax_optim_slot *s = &o->slots[i];
        ax_device dev = s->p->storage->device;
        if (ax_tensor_full_on(&s->m, s->p->ndim, s->p->shape, AX_DTYPE_F32, 0.0, dev) != AX_OK ||
            ax_tensor_full_on(&s->v, s->p->ndim, s->p->shape, AX_DTYPE_F32, 0.0, dev) != AX_OK) {
            ax_optim_free(o);
            return ax_error_prefix("%s", fn);
        }
    }
    *out = o;
    return AX_OK;
}

void ax_optim_free(ax_optim *o) {
    if (!o) return;
    for (size_t i = 0; i < o->n; i++) {
        ax_tensor_free(o->slots[i].p);
        ax_tensor_free(o->slots[i].m);
        ax_tensor_free(o->slots[i].v);
        free(o->slots[i].name);
    }
    free(o->slots);
    free(o);
}

/* ---- accessors ---------------------------------------------------------------- */

ax_status ax_optim_set_lr(ax_optim *o, double lr) {
    if (!ax_finite(lr) || lr < 0) return AX_ERROR(AX_ERR_INVALID, "ax_optim_set_lr: lr %g must be finite and >= 0", lr);
    o->lr = lr;
    return AX_OK;
}

double ax_optim_lr(const ax_optim *o) { return o->lr; }
int64_t ax_optim_steps(const ax_optim *o) { return o->steps; }
ax_optim_kind ax_optim_kind_of(const ax_optim *o) { return o->kind; }
size_t ax_optim_count(const ax_optim *o) { return o->n; }
ax_tensor *ax_optim_param(const ax_optim *o, size_t i) { return i < o->n ? o->slots[i].p : NULL; }
const char *ax_optim_name(const ax_optim *o, size_t i) { return i < o->n ? o->slots[i].name : NULL; }

const char *ax_optim_kind_name(ax_optim_kind kind) {
    switch (kind) {
    case AX_OPTIM_SGD: return "sgd";
    case AX_OPTIM_ADAMW: return "adamw";
    }
    return NULL;
}

void ax_optim_zero_grad(ax_optim *o) {
    for (size_t i = 0; i < o->n; i++) ax_tensor_zero_grad(o->slots[i].p);
}

/* ---- the updates ------------------------------------------------------------------ */

/* torch's _single_tensor_sgd coefficients, rounded to f32 where PyTorch
 * hands a Python float to an f32 tensor op. */
static ax_sgd_step_params ax_sgd_params(const ax_optim *o, bool first) {
    return (ax_sgd_step_params){.has_wd = o->weight_decay != 0,
                                .has_mom = o->momentum != 0,
                                .first = first,
                                .nesterov = o->nesterov,
                                .wd = (float)o->weight_decay,
                                .mom = (float)o->momentum,
                                .keep = (float)(1.0 - o->dampening),
                                .neg_lr = (float)-o->lr};
}

/* torch's _single_tensor_adam (decoupled weight decay) for one parameter
 * at its step t (1-based). Scalars are computed in double and rounded to
 * f32 where PyTorch hands a Python float to an f32 tensor op. */
static ax_adamw_step_params ax_adamw_params(const ax_optim *o, int64_t t) {
    const double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    return (ax_adamw_step_params){.decay = o->weight_decay != 0 ? (float)(1.0 - o->lr * o->weight_decay) : 1.0f,
                                  .w = (float)(1.0 - o->beta1),
                                  .b2 = (float)o->beta2,
                                  .one_b2 = (float)(1.0 - o->beta2),
                                  .neg_step = (float)-(o->lr / bc1),
                                  .bc2_sqrt = (float)sqrt(bc2),
                                  .eps = (float)o->eps};
}

/* f32 contiguous grad of slot s into *g (NULL when it has none), checked. */
static ax_status ax_optim_grad(const ax_optim_slot *s, ax_tensor **g) {
    *g = NULL;
    const ax_tensor *grad = s->p->grad;
    if (!grad) return AX_OK;
    char a[160], b[160];
    if (!ax_tensor_same_shape(grad, s->p))
        return AX_ERROR(AX_ERR_INVALID, "ax_optim_step: grad of parameter '%s' has shape %s, the parameter %s", s->name,
                        ax_shape_str(a, sizeof a, grad->ndim, grad->shape),
                        ax_shape_str(b, sizeof b, s->p->ndim, s->p->shape));
    if (!ax_dtype_is_float(grad->dtype))
        return AX_ERROR(AX_ERR_INVALID, "ax_optim_step: grad of parameter '%s' is %s, not a floating dtype", s->name,
                        ax_dtype_name(grad->dtype) ? ax_dtype_name(grad->dtype) : "of an unknown dtype");
    if (grad->storage->device.type != s->p->storage->device.type ||
        grad->storage->device.index != s->p->storage->device.index)
        return AX_ERROR(AX_ERR_INVALID, "ax_optim_step: grad of parameter '%s' is on another device", s->name);
    if (ax_f32_contiguous(g, grad) != AX_OK) return ax_error_prefix("ax_optim_step: grad of '%s'", s->name);
    return AX_OK;
}

ax_status ax_optim_step(ax_optim *o) {
    if (!o) return AX_ERROR(AX_ERR_INVALID, "ax_optim_step: optimizer is NULL");
    ax_tensor **gs = calloc(o->n ? o->n : 1, sizeof *gs);
    if (!gs) return AX_ERROR(AX_ERR_NOMEM, "ax_optim_step: out of memory");
    ax_status st = AX_OK;
    ax_no_grad_begin();
    /* Everything that can fail happens before any parameter changes. */
    for (size_t i = 0; i < o->n && st == AX_OK; i++) {
        ax_optim_slot *s = &o->slots[i];
        st = ax_optim_grad(s, &gs[i]);
        if (st == AX_OK && gs[i] && o->kind == AX_OPTIM_SGD && o->momentum != 0 && !s->m)
            st = ax_tensor_empty_on(&s->m, s->p->ndim, s->p->shape, AX_DTYPE_F32, s->p->storage->device);
    }
    /* The kernels only fail on operands the checks above rule out. */
    for (size_t i = 0; i < o->n && st == AX_OK; i++) {
        ax_optim_slot *s = &o->slots[i];
        if (!gs[i]) continue;
        const ax_kernels *k = ax_kernels_for(s->p->storage->device);
        if (!k) {
            st = ax_error_status();
            break;
        }
        if (o->kind == AX_OPTIM_SGD) {
            ax_sgd_step_params c = ax_sgd_params(o, s->step == 0);
            st = k->sgd_step(s->p, c.has_mom ? s->m : NULL, gs[i], &c);
        } else {
            ax_adamw_step_params c = ax_adamw_params(o, s->step + 1);
            st = k->adamw_step(s->p, s->m, s->v, gs[i], &c);
        }
        if (st != AX_OK) ax_error_prefix("ax_optim_step: parameter '%s'", s->name);
        else s->step++;
    }
    if (st == AX_OK) o->steps++;
    ax_no_grad_end();
    for (size_t i = 0; i < o->n; i++) ax_tensor_free(gs[i]);
    free(gs);
    return st;
}

/* ---- gradient clipping ---------------------------------------------------------- */

static void ax_scale_f32(float *x, int64_t n, float c) {
#pragma omp parallel for if (n >= AX_OPTIM_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * c;
}

ax_status ax_clip_grad_norm(double *total_norm, size_t n, ax_tensor *const *params, double max_norm, double norm_type) {
    const char *fn = "ax_clip_grad_norm";
    if (total_norm) *total_norm = 0;
    if (!(norm_type > 0) || (isinf(norm_type) && norm_type < 0) || norm_type != norm_type)
        return AX_ERROR(AX_ERR_INVALID, "%s: norm_type %g must be > 0 or INFINITY", fn, norm_type);
    if (!(max_norm >= 0) || !ax_finite(max_norm))
        return AX_ERROR(AX_ERR_INVALID, "%s: max_norm %g must be finite and >= 0", fn, max_norm);
    if (n > 0 && !params) return AX_ERROR(AX_ERR_INVALID, "%s: params is NULL for n = %zu", fn, n);
    for (size_t i = 0; i < n; i++) {
        if (!params[i]) return AX_ERROR(AX_ERR_INVALID, "%s: params[%zu] is NULL", fn, i);
        const ax_tensor *g = params[i]->grad;
        if (!g) continue;
        if (!ax_dtype_is_float(g->dtype))
            return AX_ERROR(AX_ERR_INVALID, "%s: grad of params[%zu] is %s, not a floating dtype", fn, i,
                            ax_dtype_name(g->dtype) ? ax_dtype_name(g->dtype) : "of an unknown dtype");
        const ax_kernels *k = ax_kernels_for(g->storage->device);
        if (!k) return ax_error_prefix("%s: grad of params[%zu]", fn, i);
        if (!AX_KERNELS_HAS(k, grad_norm))
            return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: grad of params[%zu] is on a device whose backend '%s' has no "
                            "grad_norm kernel", fn, i, k->name);
    }
    ax_tensor **gs = calloc(n ? n : 1, sizeof *gs);
    const ax_tensor **run = calloc(n ? n : 1, sizeof *run);
    if (!gs || !run) {
        free(gs);
        free(run);
        return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", fn);
    }
    ax_status st = AX_OK;
    double acc = 0;
    bool any = false;
    ax_no_grad_begin();
    for (size_t i = 0; i < n && st == AX_OK; i++) {
        if (!params[i]->grad) continue;
        any = true;
        st = ax_f32_contiguous(&gs[i], params[i]->grad);
    }
    /* One grad_norm call per run of grads on one device, partial sums
     * combined in order (the max for inf): the device is waited for once
     * per device, not per parameter. */
    for (size_t i = 0; i < n && st == AX_OK && any;) {
        if (!gs[i]) {
            i++;
            continue;
        }
        ax_device dev = gs[i]->storage->device;
        size_t j = i, nr = 0;
        while (j < n &&
               (!gs[j] || (gs[j]->storage->device.type == dev.type && gs[j]->storage->device.index == dev.index))) {
            if (gs[j]) run[nr++] = gs[j];
            j++;
        }
        const ax_kernels *k = ax_kernels_for(dev);
        st = k ? k->grad_norm(&acc, nr, run, norm_type) : ax_error_status();
        if (st != AX_OK) ax_error_prefix("%s", fn);
        i = j;
    }
    if (st == AX_OK && any) {
        double total = isinf(norm_type) ? acc
                       : norm_type == 2 ? sqrt(acc)
                       : norm_type == 1 ? acc
                                        : pow(acc, 1 / norm_type);
        if (total_norm) *total_norm = total;
        /* PyTorch in f32: clip_coef = max_norm / (total + 1e-6), where
         * Python's scalar / tensor is tensor.reciprocal() * scalar. */
        float coef = (1.0f / ((float)total + (float)1e-6)) * (float)max_norm;
        if (ax_finite(total) && coef < 1.0f) {
            for (size_t i = 0; i < n && st == AX_OK; i++) {
                if (!gs[i]) continue;
                if (gs[i]->storage->device.type == AX_DEVICE_CPU) {
                    ax_scale_f32(ax_f32(gs[i]), ax_tensor_numel(gs[i]), coef);
                } else { /* coef * x + -0 is x * c exactly, signed zeros included */
                    const ax_kernels *k = ax_kernels_for(gs[i]->storage->device);
                    const double p[2] = {coef, -0.0};
                    st = k ? k->unary(AX_UNARY_AFFINE, gs[i], gs[i], p) : ax_error_status();
                    if (st != AX_OK) break;
                }
                if (gs[i] != params[i]->grad) st = ax_tensor_copy_(params[i]->grad, gs[i]);
            }
        }
    }
    ax_no_grad_end();
    for (size_t i = 0; i < n; i++) ax_tensor_free(gs[i]);
    free(gs);
    free(run);
    return st;
}

/* ---- learning-rate schedules ------------------------------------------------------ */

static const double ax_pi = 3.14159265358979323846;

static int64_t ax_clamp_step(int64_t step, int64_t total) { return step < 0 ? 0 : step > total ? total : step; }

double ax_lr_poly(int64_t step, int64_t total, double base_lr, double power) {
    if (total <= 0) return base_lr;
    step = ax_clamp_step(step, total);
    return base_lr * pow(1 - (double)step / (double)total, power);
}

double ax_lr_cosine(int64_t step, int64_t total, double base_lr, double min_lr) {
    if (total <= 0) return base_lr;
    step = ax_clamp_step(step, total);
    return min_lr + (base_lr - min_lr) * (1 + cos(ax_pi * (double)step / (double)total)) / 2;
}

const char *ax_lr_kind_name(ax_lr_kind kind) {
    switch (kind) {
    case AX_LR_CONSTANT: return "constant";
    case AX_LR_POLY: return "poly";
    case AX_LR_COSINE: return "cosine";
    }
    return NULL;
}

ax_status ax_lr_kind_parse(const char *name, ax_lr_kind *kind) {
    static const ax_lr_kind all[] = {AX_LR_CONSTANT, AX_LR_POLY, AX_LR_COSINE};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, ax_lr_kind_name(all[i])) == 0) {
            *kind = all[i];
            return AX_OK;
        }
    }
    return AX_ERROR(AX_ERR_INVALID, "ax_lr_kind_parse: unknown schedule '%s' (expected constant, poly or cosine)",
                    name ? name : "(null)");
}

/* The reason s is invalid, or NULL; the message goes to buf. */
static const char *ax_lr_schedule_problem(const ax_lr_schedule *s, char *buf, size_t size) {
    if (!s) return "the schedule is NULL";
    if (!ax_lr_kind_name(s->kind)) {
        snprintf(buf, size, "kind %d is not a schedule kind", (int)s->kind);
        return buf;
    }
    if (!ax_finite(s->base_lr) || s->base_lr < 0) {
        snprintf(buf, size, "base_lr %g must be finite and >= 0", s->base_lr);
        return buf;
    }
    if (s->warmup_steps < 0) {
        snprintf(buf, size, "warmup_steps %" PRId64 " is negative", s->warmup_steps);
        return buf;
    }
    if (s->kind == AX_LR_CONSTANT) return NULL;
    if (s->total_steps <= s->warmup_steps) {
        snprintf(buf, size, "total_steps %" PRId64 " must exceed warmup_steps %" PRId64 " for a %s schedule",
                 s->total_steps, s->warmup_steps, ax_lr_kind_name(s->kind));
        return buf;
    }
    if (s->kind == AX_LR_POLY && (!ax_finite(s->power) || s->power <= 0)) {
        snprintf(buf, size, "power %g must be finite and > 0", s->power);
        return buf;
    }
    if (!ax_finite(s->min_lr) || s->min_lr < 0 || s->min_lr > s->base_lr) {
        snprintf(buf, size, "min_lr %g must be within [0, base_lr %g]", s->min_lr, s->base_lr);
        return buf;
    }
    return NULL;
}

ax_status ax_lr_schedule_check(const ax_lr_schedule *s) {
    char buf[200];
    const char *why = ax_lr_schedule_problem(s, buf, sizeof buf);
    if (why) return AX_ERROR(AX_ERR_INVALID, "ax_lr_schedule_check: %s", why);
    return AX_OK;
}

double ax_lr_schedule_at(const ax_lr_schedule *s, int64_t step) {
    char buf[200];
    if (ax_lr_schedule_problem(s, buf, sizeof buf)) return NAN;
    if (step < 0) step = 0;
    int64_t w = s->warmup_steps;
    /* nnssl's Lin_incr_LRScheduler, with its order of operations. */
    if (step < w) return s->base_lr / (double)w * (double)(step + 1);
    int64_t k = step - w, total = s->total_steps - w;
    switch (s->kind) {
    case AX_LR_CONSTANT: return s->base_lr;
    case AX_LR_POLY: {
        double lr = ax_lr_poly(k, total, s->base_lr, s->power);
        return lr > s->min_lr ? lr : s->min_lr;
    }
    case AX_LR_COSINE: return ax_lr_cosine(k, total, s->base_lr, s->min_lr);
    }
    return NAN;
}

/* ---- state files ---------------------------------------------------------------- */

/* Hyper-parameters written to and checked against the metadata. */
typedef struct ax_optim_hyper {
    const char *key;
    double value;
} ax_optim_hyper;

static size_t ax_optim_hypers(const ax_optim *o, ax_optim_hyper *h) {
    size_t n = 0;
    if (o->kind == AX_OPTIM_SGD) {
        h[n++] = (ax_optim_hyper){"momentum", o->momentum};
        h[n++] = (ax_optim_hyper){"dampening", o->dampening};
        h[n++] = (ax_optim_hyper){"nesterov", o->nesterov ? 1 : 0};
    } else {
        h[n++] = (ax_optim_hyper){"beta1", o->beta1};
        h[n++] = (ax_optim_hyper){"beta2", o->beta2};
        h[n++] = (ax_optim_hyper){"eps", o->eps};
    }
    h[n++] = (ax_optim_hyper){"weight_decay", o->weight_decay};
    return n;
}

/* Does slot s have a saved moment buffer (m; v for AdamW)? */
static bool ax_optim_has_m(const ax_optim *o, const ax_optim_slot *s) {
    return o->kind == AX_OPTIM_ADAMW || (o->momentum != 0 && s->step > 0);
}

static const char *ax_optim_m_suffix(const ax_optim *o) {
    return o->kind == AX_OPTIM_SGD ? ".momentum_buffer" : ".exp_avg";
}

static char *ax_cat(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

ax_status ax_optim_state_save(const ax_optim *o, const char *path) {
    const char *fn = "ax_optim_state_save";
    size_t cap = 3 * o->n, nt = 0;
    char **names = calloc(cap ? cap : 1, sizeof *names);
    const ax_tensor **ts = calloc(cap ? cap : 1, sizeof *ts);
    ax_tensor **steps = calloc(o->n ? o->n : 1, sizeof *steps);
    ax_tensor **host = calloc(cap ? cap : 1, sizeof *host); /* CPU copies of device buffers */
    ax_status st = (names && ts && steps && host) ? AX_OK : AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", fn);
    for (size_t i = 0; i < o->n && st == AX_OK; i++) {
        const ax_optim_slot *s = &o->slots[i];
        st = ax_tensor_scalar(&steps[i], (double)s->step, AX_DTYPE_I64);
        if (st != AX_OK) break;
        names[nt] = ax_cat(s->name, ".step");
        ts[nt++] = steps[i];
        if (ax_optim_has_m(o, s)) {
            names[nt] = ax_cat(s->name, ax_optim_m_suffix(o));
            ts[nt++] = s->m;
        }
        if (o->kind == AX_OPTIM_ADAMW) {
            names[nt] = ax_cat(s->name, ".exp_avg_sq");
            ts[nt++] = s->v;
        }
    }
    for (size_t j = 0; j < nt && st == AX_OK; j++) {
        if (!names[j]) st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", fn);
        else if (ts[j]->storage->device.type != AX_DEVICE_CPU && (st = ax_tensor_to_device(&host[j], ts[j], AX_CPU)) == AX_OK)
            ts[j] = host[j];
    }
    if (st == AX_OK) {
        ax_optim_hyper h[8];
        size_t nh = ax_optim_hypers(o, h);
        char vals[12][40];
        const char *keys[12], *values[12];
        size_t nm = 0;
        keys[nm] = "format", values[nm++] = AX_OPTIM_FORMAT;
        keys[nm] = "kind", values[nm++] = ax_optim_kind_name(o->kind);
        snprintf(vals[nm], sizeof vals[nm], "%" PRId64, o->steps);
        keys[nm] = "steps", values[nm] = vals[nm], nm++;
        snprintf(vals[nm], sizeof vals[nm], "%.17g", o->lr);
        keys[nm] = "lr", values[nm] = vals[nm], nm++;
        for (size_t j = 0; j < nh; j++) {
            snprintf(vals[nm], sizeof vals[nm], "%.17g", h[j].value);
            keys[nm] = h[j].key, values[nm] = vals[nm], nm++;
        }
        st = ax_safetensors_save(path, nt, (const char *const *)names, ts, nm, keys, values);
        if (st != AX_OK) ax_error_prefix("%s", fn);
    }
    for (size_t j = 0; names && j < nt; j++) free(names[j]);
    for (size_t i = 0; steps && i < o->n; i++) ax_tensor_free(steps[i]);
    for (size_t j = 0; host && j < nt; j++) ax_tensor_free(host[j]);
    free(host);
    free(names);
    free(ts);
    free(steps);
    return st;
}

/* Metadata `key` of f parsed as a number into *x. */
static ax_status ax_state_number(const ax_safetensors *f, const char *path, const char *key, double *x) {
    const char *s = ax_safetensors_metadata(f, key);
    if (!s) return AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: no metadata '%s'", path, key);
    char *end;
    *x = strtod(s, &end);
    if (end == s || *end || !ax_finite(*x))
        return AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: metadata '%s' = '%s' is not a finite number", path,
                        key, s);
    return AX_OK;
}

/* Tensor `pname + suffix` of f, checked to be f32 with p's shape. */
static ax_status ax_state_buffer(const ax_safetensors *f, const char *path, const ax_optim_slot *s, const char *suffix,
                                 ax_tensor **out) {
    *out = NULL;
    char *name = ax_cat(s->name, suffix);
    if (!name) return AX_ERROR(AX_ERR_NOMEM, "ax_optim_state_load: out of memory");
    ax_status st = ax_safetensors_get(f, name, out);
    char a[160], b[160];
    if (st == AX_ERR_NOT_FOUND)
        st = AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: no tensor '%s' for parameter '%s'", path, name, s->name);
    else if (st != AX_OK)
        ax_error_prefix("ax_optim_state_load");
    else if ((*out)->dtype != AX_DTYPE_F32 || !ax_tensor_same_shape(*out, s->p))
        st = AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: tensor '%s' is %s %s, parameter '%s' is f32 %s", path,
                      name, ax_dtype_name((*out)->dtype), ax_shape_str(a, sizeof a, (*out)->ndim, (*out)->shape),
                      s->name, ax_shape_str(b, sizeof b, s->p->ndim, s->p->shape));
    if (st != AX_OK) {
        ax_tensor_free(*out);
        *out = NULL;
    }
    free(name);
    return st;
}

/* Is `name` one of the tensors the state of o has, given the file's steps? */
static bool ax_state_expected(const ax_optim *o, const char *name, const int64_t *steps) {
    for (size_t i = 0; i < o->n; i++) {
        const ax_optim_slot *s = &o->slots[i];
        size_t len = strlen(s->name);
        if (strncmp(name, s->name, len) != 0) continue;
        const char *suf = name + len;
        bool has_m = o->kind == AX_OPTIM_ADAMW || (o->momentum != 0 && steps[i] > 0);
        if (strcmp(suf, ".step") == 0 || (has_m && strcmp(suf, ax_optim_m_suffix(o)) == 0) ||
            (o->kind == AX_OPTIM_ADAMW && strcmp(suf, ".exp_avg_sq") == 0))
            return true;
    }
    return false;
}

/* Read and validate everything into the arrays; changes nothing in o. */
static ax_status ax_state_read(const ax_optim *o, const ax_safetensors *f, const char *path, int64_t *steps,
                               ax_tensor **ms, ax_tensor **vs, int64_t *total_steps, double *lr) {
    const char *fmt = ax_safetensors_metadata(f, "format");
    if (!fmt || strcmp(fmt, AX_OPTIM_FORMAT) != 0)
        return AX_ERROR(AX_ERR_FORMAT,
                        "ax_optim_state_load: %s: not an axon optimizer state (metadata 'format' is %s%s%s, "
                        "expected '" AX_OPTIM_FORMAT "')",
                        path, fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "");
    const char *kind = ax_safetensors_metadata(f, "kind");
    if (!kind || strcmp(kind, ax_optim_kind_name(o->kind)) != 0)
        return AX_ERROR(AX_ERR_INVALID,
                        "ax_optim_state_load: %s: the state of an optimizer of kind '%s'; this one is '%s'", path,
                        kind ? kind : "(missing)", ax_optim_kind_name(o->kind));
    ax_optim_hyper h[8];
    size_t nh = ax_optim_hypers(o, h);
    for (size_t j = 0; j < nh; j++) {
        double x;
        if (ax_state_number(f, path, h[j].key, &x) != AX_OK) return ax_error_status();
        if (x != h[j].value)
            return AX_ERROR(AX_ERR_INVALID,
                            "ax_optim_state_load: %s: %s is %.17g in the file but %.17g in this optimizer", path,
                            h[j].key, x, h[j].value);
    }
    double x;
    if (ax_state_number(f, path, "lr", lr) != AX_OK) return ax_error_status();
    if (*lr < 0) return AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: lr %g is negative", path, *lr);
    if (ax_state_number(f, path, "steps", &x) != AX_OK) return ax_error_status();
    if (x < 0 || x != floor(x) || x > 9007199254740992.0)
        return AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: steps %g is not a count", path, x);
    *total_steps = (int64_t)x;
    size_t expected = 0;
    for (size_t i = 0; i < o->n; i++) {
        const ax_optim_slot *s = &o->slots[i];
        ax_tensor *t;
        char *name = ax_cat(s->name, ".step");
        if (!name) return AX_ERROR(AX_ERR_NOMEM, "ax_optim_state_load: out of memory");
        ax_status st = ax_safetensors_get(f, name, &t);
        if (st == AX_ERR_NOT_FOUND)
            st = AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: no tensor '%s' for parameter '%s'", path, name,
                          s->name);
        else if (st != AX_OK)
            ax_error_prefix("ax_optim_state_load");
        else {
            if (t->dtype != AX_DTYPE_I64 || ax_tensor_numel(t) != 1 || ax_tensor_get(t, 0) < 0 ||
                ax_tensor_get(t, 0) > (double)*total_steps)
                st = AX_ERROR(AX_ERR_FORMAT,
                              "ax_optim_state_load: %s: tensor '%s' must be one i64 in [0, steps %" PRId64 "]", path,
                              name, *total_steps);
            else
                steps[i] = (int64_t)ax_tensor_get(t, 0);
            ax_tensor_free(t);
        }
        free(name);
        if (st != AX_OK) return st;
        expected++;
        bool has_m = o->kind == AX_OPTIM_ADAMW || (o->momentum != 0 && steps[i] > 0);
        if (has_m) {
            if (ax_state_buffer(f, path, s, ax_optim_m_suffix(o), &ms[i]) != AX_OK) return ax_error_status();
            expected++;
        }
        if (o->kind == AX_OPTIM_ADAMW) {
            if (ax_state_buffer(f, path, s, ".exp_avg_sq", &vs[i]) != AX_OK) return ax_error_status();
            expected++;
        }
    }
    if (ax_safetensors_count(f) != expected) {
        for (size_t j = 0; j < ax_safetensors_count(f); j++) {
            const char *name = ax_safetensors_name(f, j);
            if (!ax_state_expected(o, name, steps))
                return AX_ERROR(AX_ERR_INVALID,
                                "ax_optim_state_load: %s: tensor '%s' belongs to no parameter of this optimizer "
                                "(was the state saved for another model?)",
                                path, name);
        }
        return AX_ERROR(AX_ERR_FORMAT, "ax_optim_state_load: %s: %zu tensors, expected %zu", path,
                        ax_safetensors_count(f), expected);
    }
    return AX_OK;
}

ax_status ax_optim_state_load(ax_optim *o, const char *path) {
    size_t n = o->n ? o->n : 1;
    int64_t *steps = calloc(n, sizeof *steps);
    ax_tensor **ms = calloc(n, sizeof *ms), **vs = calloc(n, sizeof *vs), **fresh = calloc(n, sizeof *fresh);
    if (!steps || !ms || !vs || !fresh) {
        free(steps);
        free(ms);
        free(vs);
        free(fresh);
        return AX_ERROR(AX_ERR_NOMEM, "ax_optim_state_load: out of memory");
    }
    ax_safetensors *f = NULL;
    int64_t total = 0;
    double lr = 0;
    ax_status st = ax_safetensors_open(&f, path);
    if (st != AX_OK) ax_error_prefix("ax_optim_state_load");
    if (st == AX_OK) st = ax_state_read(o, f, path, steps, ms, vs, &total, &lr);
    /* SGD buffers a parameter did not have yet: allocate before committing;
     * buffers of device parameters go to their device now (replaced whole
     * at the commit). */
    for (size_t i = 0; i < o->n && st == AX_OK; i++) {
        ax_device dev = o->slots[i].p->storage->device;
        if (dev.type != AX_DEVICE_CPU) {
            ax_tensor *d = NULL;
            if (ms[i] && (st = ax_tensor_to_device(&d, ms[i], dev)) == AX_OK) ax_tensor_free(ms[i]), ms[i] = d;
            if (st == AX_OK && vs[i] && (st = ax_tensor_to_device(&d, vs[i], dev)) == AX_OK)
                ax_tensor_free(vs[i]), vs[i] = d;
        } else if (ms[i] && !o->slots[i].m) {
            st = ax_tensor_empty(&fresh[i], o->slots[i].p->ndim, o->slots[i].p->shape, AX_DTYPE_F32);
        }
    }
    if (st == AX_OK) {
        for (size_t i = 0; i < o->n; i++) {
            ax_optim_slot *s = &o->slots[i];
            if (fresh[i]) {
                s->m = fresh[i];
                fresh[i] = NULL;
            }
            if (s->p->storage->device.type != AX_DEVICE_CPU) {
                if (ms[i]) ax_tensor_free(s->m), s->m = ms[i], ms[i] = NULL;
                if (vs[i]) ax_tensor_free(s->v), s->v = vs[i], vs[i] = NULL;
            }
            if (ms[i]) memcpy(ax_tensor_data(s->m), ax_tensor_data(ms[i]), ax_tensor_nbytes(ms[i]));
            if (vs[i]) memcpy(ax_tensor_data(s->v), ax_tensor_data(vs[i]), ax_tensor_nbytes(vs[i]));
            s->step = steps[i];
        }
        o->steps = total;
        o->lr = lr;
    }
    for (size_t i = 0; i < o->n; i++) {
        ax_tensor_free(ms[i]);
        ax_tensor_free(vs[i]);
        ax_tensor_free(fresh[i]);
    }
    ax_safetensors_close(f);
    free(steps);
    free(ms);
    free(vs);
    free(fresh);
    return st;
}
