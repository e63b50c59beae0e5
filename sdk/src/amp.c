/* Autocast regions and dynamic loss scaling (axon/amp.h). */
#include <math.h>
#include <stdlib.h>

#include "axon/amp.h"
#include "axon/autograd.h"
#include "axon/ops.h"

#define AX_AUTOCAST_MAX_DEPTH 16

static _Thread_local ax_dtype ax_autocast_stack[AX_AUTOCAST_MAX_DEPTH];
static _Thread_local int ax_autocast_depth;

ax_status ax_autocast_begin(ax_dtype dtype) {
    if (dtype != AX_DTYPE_BF16 && dtype != AX_DTYPE_F16 && dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_INVALID, "ax_autocast_begin: dtype %s is not bf16, f16 or f32 (off)",
                        ax_dtype_name(dtype) ? ax_dtype_name(dtype) : "(unknown)");
    if (ax_autocast_depth >= AX_AUTOCAST_MAX_DEPTH)
        return AX_ERROR(AX_ERR_INVALID, "ax_autocast_begin: more than %d nested regions", AX_AUTOCAST_MAX_DEPTH);
    ax_autocast_stack[ax_autocast_depth++] = dtype;
    return AX_OK;
}

void ax_autocast_end(void) {
    if (ax_autocast_depth > 0) ax_autocast_depth--;
}

ax_dtype ax_autocast_dtype(void) {
    return ax_autocast_depth > 0 ? ax_autocast_stack[ax_autocast_depth - 1] : AX_DTYPE_F32;
}

bool ax_autocast_lowp_wanted(const ax_tensor *t, ax_kop op) {
    ax_dtype d = ax_autocast_dtype();
    if (!t || d == AX_DTYPE_F32 || t->dtype == d || !ax_dtype_is_float(t->dtype)) return false;
    const ax_kernels *k = ax_kernels_for(t->storage->device);
    if (!k) {
        ax_error_clear();
        return false;
    }
    return k->supports(op, d);
}

bool ax_autocast_f32_wanted(const ax_tensor *t) {
    return t && ax_autocast_dtype() != AX_DTYPE_F32 && (t->dtype == AX_DTYPE_BF16 || t->dtype == AX_DTYPE_F16);
}

ax_status ax_autocast_lowp(ax_tensor **out, const ax_tensor *t, ax_kop op) {
    *out = NULL;
    if (!t) return AX_OK;
    if (!ax_autocast_lowp_wanted(t, op)) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_tensor_to_dtype(out, t, ax_autocast_dtype());
}

ax_status ax_autocast_f32(ax_tensor **out, const ax_tensor *t) {
    *out = NULL;
    if (!t) return AX_OK;
    if (!ax_autocast_f32_wanted(t)) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_tensor_to_dtype(out, t, AX_DTYPE_F32);
}

/* ---- dynamic loss scaling ---------------------------------------------------------- */

struct ax_grad_scaler {
    double scale, growth, backoff;
    int64_t interval, good; /* clean updates in a row */
    bool found_inf;         /* since the last update */
};

ax_status ax_grad_scaler_new(ax_grad_scaler **out, double init_scale, double growth, double backoff,
                             int64_t interval) {
    *out = NULL;
    if (!(init_scale > 0) || !isfinite(init_scale))
        return AX_ERROR(AX_ERR_INVALID, "ax_grad_scaler_new: init_scale %g must be finite and > 0", init_scale);
    if (!(growth > 1) || !isfinite(growth))
        return AX_ERROR(AX_ERR_INVALID, "ax_grad_scaler_new: growth %g must be finite and > 1", growth);
    if (!(backoff > 0 && backoff < 1))
        return AX_ERROR(AX_ERR_INVALID, "ax_grad_scaler_new: backoff %g must be in (0, 1)", backoff);
    if (interval < 1)
        return AX_ERROR(AX_ERR_INVALID, "ax_grad_scaler_new: interval %lld must be >= 1", (long long)interval);
    ax_grad_scaler *s = calloc(1, sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "ax_grad_scaler_new: out of memory");
    s->scale = init_scale;
    s->growth = growth;
    s->backoff = backoff;
    s->interval = interval;
    *out = s;
    return AX_OK;
}

void ax_grad_scaler_free(ax_grad_scaler *s) { free(s); }

double ax_grad_scaler_get_scale(const ax_grad_scaler *s) { return s->scale; }

ax_status ax_grad_scaler_scale(ax_grad_scaler *s, const ax_tensor *loss, ax_tensor **scaled) {
    *scaled = NULL;
    ax_tensor *lf = NULL;
    ax_status st = loss->dtype == AX_DTYPE_F32 ? (lf = ax_tensor_retain((ax_tensor *)loss), AX_OK)
                                               : ax_tensor_to_dtype(&lf, loss, AX_DTYPE_F32);
    if (st == AX_OK) st = ax_mul_scalar(scaled, lf, s->scale);
    ax_tensor_free(lf);
    return st;
}

ax_status ax_grad_scaler_unscale(ax_grad_scaler *s, size_t n, ax_tensor *const *params, bool *found_inf) {
    const char *fn = "ax_grad_scaler_unscale";
    *found_inf = false;
    /* torch: inv_scale = scale.double().reciprocal().float(); grad *= inv_scale */
    const double p[2] = {(float)(1.0 / s->scale), -0.0}; /* x * c + -0 is x * c exactly */
    for (size_t i = 0; i < n; i++) {
        ax_tensor *g = params[i] ? params[i]->grad : NULL;
        if (!g) continue;
        if (g->dtype != AX_DTYPE_F32 || !ax_tensor_is_contiguous(g))
            return AX_ERROR(AX_ERR_INVALID, "%s: grad of params[%zu] must be f32 and contiguous", fn, i);
        const ax_kernels *k = ax_kernels_for(g->storage->device);
        if (!k) return ax_error_prefix("%s: params[%zu]", fn, i);
        if (!AX_KERNELS_HAS(k, grad_norm))
            return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: backend '%s' has no grad_norm kernel", fn, k->name);
        ax_status st = k->unary(AX_UNARY_AFFINE, g, g, p);
        if (st != AX_OK) return ax_error_prefix("%s: params[%zu]", fn, i);
    }
    /* max |g| over every grad of a device in one call: non-finite iff some
     * grad holds an inf or NaN */
    for (size_t i = 0; i < n && !*found_inf; i++) {
        ax_tensor *g = params[i] ? params[i]->grad : NULL;
        if (!g) continue;
        ax_device d = g->storage->device;
        bool first = true; /* only the first grad of each device starts its run */
        for (size_t j = 0; j < i && first; j++) {
            const ax_tensor *h = params[j] ? params[j]->grad : NULL;
            first = !(h && h->storage->device.type == d.type && h->storage->device.index == d.index);
        }
        if (!first) continue;
        const ax_tensor **run = malloc(n * sizeof *run);
        if (!run) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", fn);
        size_t nr = 0;
        for (size_t j = i; j < n; j++) {
            const ax_tensor *h = params[j] ? params[j]->grad : NULL;
            if (h && h->storage->device.type == d.type && h->storage->device.index == d.index) run[nr++] = h;
        }
        double m = 0;
        const ax_kernels *k = ax_kernels_for(d);
        ax_status st = k ? k->grad_norm(&m, nr, run, INFINITY) : ax_error_status();
        free(run);
        if (st != AX_OK) return ax_error_prefix("%s", fn);
        if (!isfinite(m)) *found_inf = true;
    }
    if (*found_inf) s->found_inf = true;
    return AX_OK;
}

void ax_grad_scaler_update(ax_grad_scaler *s) {
    if (s->found_inf) {
        s->scale *= s->backoff;
        s->good = 0;
    } else if (++s->good >= s->interval) {
        double grown = s->scale * s->growth;
        if (isfinite(grown)) s->scale = grown; /* torch keeps the scale when growing would overflow */
        s->good = 0;
    }
    s->found_inf = false;
}
