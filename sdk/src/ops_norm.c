/* Normalisation ops (axon/norm.h). Instance, group and layer norm, and
 * batch norm in training, are all the backend's group_norm kernel on a
 * view of x:
 *
 *   instance norm  x [N, C, *]                groups = C
 *   group norm     x [N, C, *]                groups
 *   layer norm     x [M, K, 1] (K = normalised elements), groups = 1,
 *                  so the elementwise affine is the kernel's per-channel one
 *   batch norm     x^T [1, C, N*S] (samples moved next to the spatial dims),
 *                  groups = C
 *
 * The views are recorded by autograd, so only the kernel op itself (one
 * node: x, weight, bias) needs a backward rule. Instance norm + leaky_relu
 * runs the fused group_norm_act kernels, one each way, where the backend
 * has them (else group_norm then unary, and unary_backward then
 * group_norm_backward). Batch norm in evaluation
 * is a broadcasting composition: y = x * scale + shift.
 */
#include <math.h>
#include <string.h>

#include "axon/amp.h"
#include "axon/norm.h"
#include "ops_internal.h"

/* ---- the kernel op -------------------------------------------------------------- */

/* Saved on the node: the f32 contiguous x, the statistics [2, N, groups]
 * (mean, rstd), the f32 weight, and (fused activation) an alias of y. */
enum { AX_NORM_X, AX_NORM_STATS, AX_NORM_W, AX_NORM_Y };

/* A contiguous f32 tensor with t's values (t itself when it already is one),
 * not recorded by autograd. NULL in, NULL out. */
static ax_status ax_norm_f32(ax_tensor **out, const ax_tensor *t) {
    *out = NULL;
    if (!t) return AX_OK;
    if (t->dtype == AX_DTYPE_F32 && ax_tensor_is_contiguous(t)) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_cast_nograd(out, t, AX_DTYPE_F32);
}

/* mean and rstd, [N, groups] views of the statistics tensor [2, N, groups]. */
static ax_status ax_norm_stats_views(const ax_tensor *stats, ax_tensor **mean, ax_tensor **rstd) {
    const int64_t shape[2] = {stats->shape[1], stats->shape[2]};
    *mean = ax_tensor_new_view(stats->storage, AX_DTYPE_F32, 2, shape, NULL, stats->offset);
    *rstd = ax_tensor_new_view(stats->storage, AX_DTYPE_F32, 2, shape, NULL, stats->offset + shape[0] * shape[1]);
    if (*mean && *rstd) return AX_OK;
    ax_tensor_free(*mean);
    ax_tensor_free(*rstd);
    *mean = *rstd = NULL;
    return ax_error_status();
}

/* A zeroed f32 [n] tensor on t's device (for the kernel's += outputs). */
static ax_status ax_norm_zeros(ax_tensor **out, int64_t n, const ax_tensor *t) {
    if (ax_tensor_empty_on(out, 1, &n, AX_DTYPE_F32, t->storage->device) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_fill_(*out, 0.0);
    if (st != AX_OK) {
        ax_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

static ax_status ax_norm_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *x = node->saved[AX_NORM_X], *w = node->saved[AX_NORM_W], *ya = node->saved[AX_NORM_Y];
    const int64_t groups = node->i[0], channels = x->shape[1];
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_tensor *gc = NULL, *mean = NULL, *rstd = NULL, *dx = NULL, *dw = NULL, *db = NULL;
    ax_status st = ax_norm_f32(&gc, g);
    const bool fused = ya && AX_KERNELS_HAS(k, group_norm_act_backward);
    if (st == AX_OK && ya && !fused) {
        /* leaky relu's gradient from its output: y > 0 exactly where its
         * input is, for the slopes >= 0 this path takes */
        ax_tensor *gp = NULL;
        const double p[2] = {node->f[0], 0};
        st = ax_tensor_empty_like(&gp, x, AX_DTYPE_F32);
        if (st == AX_OK) st = k->unary_backward(AX_UNARY_LEAKY_RELU, gp, gc, ya, ya, p);
        ax_tensor_free(gc);
        gc = gp;
    }
    if (st == AX_OK) st = ax_norm_stats_views(node->saved[AX_NORM_STATS], &mean, &rstd);
    if (st == AX_OK && ax_node_needs_grad(node, 0)) st = ax_tensor_empty_like(&dx, x, AX_DTYPE_F32);
    if (st == AX_OK && ax_node_needs_grad(node, 1)) st = ax_norm_zeros(&dw, channels, x);
    if (st == AX_OK && ax_node_needs_grad(node, 2)) st = ax_norm_zeros(&db, channels, x);
    if (st == AX_OK && fused)
        st = k->group_norm_act_backward(dx, dw, db, gc, x, ya, mean, rstd, w, groups, node->f[0]);
    else if (st == AX_OK)
        st = k->group_norm_backward(dx, dw, db, gc, x, mean, rstd, w, groups);
    ax_tensor_free(gc);
    ax_tensor_free(mean);
    ax_tensor_free(rstd);
    ax_tensor *out[3] = {dx, dw, db};
    for (int i = 0; i < 3; i++) {
        if (st == AX_OK && out[i]) {
            gin[i] = out[i];
            out[i] = NULL;
            st = ax_grad_fit(node, i, &gin[i]);
        }
        ax_tensor_free(out[i]);
    }
    return st;
}

/* y = group_norm(x: [N, C, *]) with the kernel, then leaky_relu(slope) when
 * act (slope >= 0). Arguments are checked by the caller. stats: [optional]
 * receives the [2, N, groups] (mean, rstd) tensor. */
static ax_status ax_norm_op(const char *fn, ax_tensor **y, const ax_tensor *x, int64_t groups, const ax_tensor *w,
                            const ax_tensor *b, double eps, bool act, double slope, ax_tensor **stats_out) {
    *y = NULL;
    if (stats_out) *stats_out = NULL;
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_tensor *cx = NULL, *cw = NULL, *cb = NULL, *yf = NULL, *stats = NULL, *mean = NULL, *rstd = NULL, *r = NULL;
    const int64_t sshape[3] = {2, x->shape[0], groups};
    ax_status st = ax_norm_f32(&cx, x);
    if (st == AX_OK) st = ax_norm_f32(&cw, w);
    if (st == AX_OK) st = ax_norm_f32(&cb, b);
    if (st == AX_OK) st = ax_tensor_empty_like(&yf, cx, AX_DTYPE_F32);
    if (st == AX_OK) st = ax_tensor_empty_on(&stats, 3, sshape, AX_DTYPE_F32, x->storage->device);
    if (st == AX_OK) st = ax_norm_stats_views(stats, &mean, &rstd);
    if (st == AX_OK && act && AX_KERNELS_HAS(k, group_norm_act)) {
        st = k->group_norm_act(yf, mean, rstd, cx, cw, cb, groups, eps, slope);
    } else {
        /* backends built before the fused members: two kernels */
        if (st == AX_OK) st = k->group_norm(yf, mean, rstd, cx, cw, cb, groups, eps);
        if (st == AX_OK && act) st = k->unary(AX_UNARY_LEAKY_RELU, yf, yf, (const double[]){slope, 0});
    }
    /* autocast (axon/amp.h): half inputs give f32 outputs, as PyTorch's fp32 ops */
    bool keep_f32 = x->dtype == AX_DTYPE_F32 || ax_autocast_f32_wanted(x);
    if (st == AX_OK) st = keep_f32 ? (r = ax_tensor_retain(yf), AX_OK) : ax_cast_nograd(&r, yf, x->dtype);
    const ax_tensor *inputs[3] = {x, w, b};
    if (st == AX_OK && ax_autograd_wanted(3, inputs)) {
        ax_node *node;
        st = ax_node_new(&node, fn + 3, ax_norm_backward, 3, inputs);
        if (st == AX_OK) {
            node->i[0] = groups;
            node->f[0] = slope;
            ax_node_save(node, AX_NORM_X, cx);
            ax_node_save(node, AX_NORM_STATS, stats);
            if (cw) ax_node_save(node, AX_NORM_W, cw);
            if (act) {
                /* an alias: yf may be the output itself, which will own the node */
                ax_tensor *ya = ax_alias(yf);
                if (ya) ax_node_save(node, AX_NORM_Y, ya);
                else st = ax_error_status();
                ax_tensor_free(ya);
            }
            if (st == AX_OK) ax_node_attach(r, node);
            else ax_node_free(node);
        }
    }
    ax_tensor *tmp[] = {cx, cw, cb, yf, mean, rstd};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) ax_tensor_free(tmp[i]);
    if (st != AX_OK) {
        ax_tensor_free(r);
        ax_tensor_free(stats);
        if (!strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
        return st;
    }
    if (stats_out) *stats_out = stats;
    else ax_tensor_free(stats);
    *y = r;
    return AX_OK;
}

/* ---- argument checks ---------------------------------------------------------- */

static ax_status ax_norm_check_x(const char *fn, const ax_tensor *x, int min_ndim, const char *layout) {
    if (!x) return AX_ERROR(AX_ERR_INVALID, "%s: x is NULL", fn);
    if (x->ndim < min_ndim) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: x %s must have at least %d dims %s", fn,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape), min_ndim, layout);
    }
    return ax_op_need_float(fn, "x", x);
}

static ax_status ax_norm_check_eps(const char *fn, double eps) {
    if (eps > 0 && isfinite(eps)) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: eps %g must be finite and > 0", fn, eps);
}

/* An optional per-channel (or per-element) parameter of shape `shape`. */
static ax_status ax_norm_check_param(const char *fn, const char *arg, const ax_tensor *p, const ax_tensor *x,
                                     int ndim, const int64_t *shape) {
    if (!p) return AX_OK;
    if (p->ndim != ndim || memcmp(p->shape, shape, (size_t)ndim * sizeof *shape)) {
        char a[160], b[160], c[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: %s %s must have shape %s for x %s", fn, arg,
                        ax_shape_str(a, sizeof a, p->ndim, p->shape), ax_shape_str(b, sizeof b, ndim, shape),
                        ax_shape_str(c, sizeof c, x->ndim, x->shape));
    }
    if (ax_op_need_float(fn, arg, p) != AX_OK) return ax_error_status();
    return ax_op_same_device(fn, 2, (const ax_tensor *[]){x, p});
}

/* The checks shared by instance and group norm. */
static ax_status ax_norm_check_nc(const char *fn, const ax_tensor *x, int64_t groups, const ax_tensor *w,
                                  const ax_tensor *b, double eps) {
    if (ax_norm_check_x(fn, x, 2, "[N, C, *]") != AX_OK) return ax_error_status();
    const int64_t c = x->shape[1];
    if (groups < 1 || c % groups != 0) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: x %s has %lld channels, not divisible by groups %lld", fn,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape), (long long)c, (long long)groups);
    }
    if (ax_norm_check_param(fn, "weight", w, x, 1, &c) != AX_OK) return ax_error_status();
    if (ax_norm_check_param(fn, "bias", b, x, 1, &c) != AX_OK) return ax_error_status();
    return ax_norm_check_eps(fn, eps);
}

/* ---- instance / group norm --------------------------------------------------------- */

ax_status ax_group_norm(ax_tensor **y, const ax_tensor *x, int64_t groups, const ax_tensor *weight,
                        const ax_tensor *bias, double eps) {
    const char *fn = "ax_group_norm";
    *y = NULL;
    if (ax_norm_check_nc(fn, x, groups, weight, bias, eps) != AX_OK) return ax_error_status();
    return ax_norm_op(fn, y, x, groups, weight, bias, eps, false, 0, NULL);
}

/* groups = C; a channel-less x still gets one (empty) group. */
static int64_t ax_instance_groups(const ax_tensor *x) { return x && x->ndim >= 2 && x->shape[1] > 0 ? x->shape[1] : 1; }

ax_status ax_instance_norm(ax_tensor **y, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias,
                           double eps) {
    const char *fn = "ax_instance_norm";
    *y = NULL;
    int64_t groups = ax_instance_groups(x);
    if (ax_norm_check_nc(fn, x, groups, weight, bias, eps) != AX_OK) return ax_error_status();
    return ax_norm_op(fn, y, x, groups, weight, bias, eps, false, 0, NULL);
}

ax_status ax_instance_norm_leaky_relu(ax_tensor **y, const ax_tensor *x, const ax_tensor *weight,
                                      const ax_tensor *bias, double eps, double negative_slope) {
    const char *fn = "ax_instance_norm_leaky_relu";
    *y = NULL;
    int64_t groups = ax_instance_groups(x);
    if (ax_norm_check_nc(fn, x, groups, weight, bias, eps) != AX_OK) return ax_error_status();
    if (!isfinite(negative_slope))
        return AX_ERROR(AX_ERR_INVALID, "%s: negative_slope %g must be finite", fn, negative_slope);
    if (negative_slope >= 0) return ax_norm_op(fn, y, x, groups, weight, bias, eps, true, negative_slope, NULL);
    /* A negative slope flips signs, so the backward could not tell the
     * branch from y: compose instead (keeps the pre-activation). */
    ax_tensor *h;
    if (ax_norm_op(fn, &h, x, groups, weight, bias, eps, false, 0, NULL) != AX_OK) return ax_error_status();
    ax_status st = ax_leaky_relu(y, h, negative_slope);
    ax_tensor_free(h);
    return st;
}

/* ---- layer norm ------------------------------------------------------------------------ */

ax_status ax_layer_norm(ax_tensor **y, const ax_tensor *x, int n_normalized, const ax_tensor *weight,
                        const ax_tensor *bias, double eps) {
    const char *fn = "ax_layer_norm";
    *y = NULL;
    if (ax_norm_check_x(fn, x, 1, "[*, *normalized]") != AX_OK) return ax_error_status();
    if (n_normalized < 1 || n_normalized > x->ndim) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: n_normalized %d must be in [1, %d] for x %s", fn, n_normalized, x->ndim,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    }
    const int lead = x->ndim - n_normalized;
    const int64_t *nshape = x->shape + lead;
    if (ax_norm_check_param(fn, "weight", weight, x, n_normalized, nshape) != AX_OK) return ax_error_status();
    if (ax_norm_check_param(fn, "bias", bias, x, n_normalized, nshape) != AX_OK) return ax_error_status();
    if (ax_norm_check_eps(fn, eps) != AX_OK) return ax_error_status();
    int64_t m = 1, kk = 1;
    for (int d = 0; d < lead; d++) m *= x->shape[d];
    for (int d = lead; d < x->ndim; d++) kk *= x->shape[d];
    /* [M, K, 1]: one group of K one-element channels per row, so weight
     * and bias are the kernel's per-channel affine */
    const int64_t vshape[3] = {m, kk, 1};
    ax_tensor *xv = NULL, *wv = NULL, *bv = NULL, *yv = NULL;
    ax_status st = ax_tensor_reshape(&xv, x, 3, vshape);
    if (st == AX_OK && weight) st = ax_tensor_reshape(&wv, weight, 1, &kk);
    if (st == AX_OK && bias) st = ax_tensor_reshape(&bv, bias, 1, &kk);
    if (st == AX_OK) st = ax_norm_op(fn, &yv, xv, 1, wv, bv, eps, false, 0, NULL);
    if (st == AX_OK) st = ax_tensor_reshape(y, yv, x->ndim, x->shape);
    ax_tensor_free(xv);
    ax_tensor_free(wv);
    ax_tensor_free(bv);
    ax_tensor_free(yv);
    return st;
}

/* ---- batch norm ---------------------------------------------------------------------------- */

/* running = (1 - momentum) * running + momentum * value, in place. */
static ax_status ax_norm_running_update(ax_tensor *running, const ax_tensor *value, double momentum) {
    ax_tensor *a = NULL, *b = NULL, *s = NULL;
    ax_status st = ax_mul_scalar(&a, running, 1.0 - momentum);
    if (st == AX_OK) st = ax_mul_scalar(&b, value, momentum);
    if (st == AX_OK) st = ax_add(&s, a, b);
    if (st == AX_OK) st = ax_tensor_copy_(running, s);
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(s);
    return st;
}

/* Training: normalise x^T = [1, C, N*S] per channel with the kernel, and
 * update the running stats (mean from the kernel's double-precision
 * statistics, unbiased variance recomputed by ax_var so it stays exact
 * when var is far below eps). */
static ax_status ax_batch_norm_train(const char *fn, ax_tensor **y, const ax_tensor *x, ax_tensor *rm, ax_tensor *rv,
                                     const ax_tensor *w, const ax_tensor *b, double momentum, double eps) {
    const int64_t n = x->shape[0], c = x->shape[1];
    int64_t s = 1;
    for (int d = 2; d < x->ndim; d++) s *= x->shape[d];
    const int64_t s3[3] = {n, c, s}, t3[3] = {c, n, s}, r3[3] = {1, c, n * s};
    ax_tensor *x3 = NULL, *xt = NULL, *xr = NULL, *yr = NULL, *yt = NULL, *y3 = NULL, *stats = NULL;
    ax_status st = ax_tensor_reshape(&x3, x, 3, s3);
    if (st == AX_OK) st = ax_tensor_transpose(&xt, x3, 0, 1);
    if (st == AX_OK) st = ax_tensor_reshape(&xr, xt, 3, r3);
    if (st == AX_OK) st = ax_norm_op(fn, &yr, xr, c, w, b, eps, false, 0, rm ? &stats : NULL);
    if (st == AX_OK) st = ax_tensor_reshape(&yt, yr, 3, t3);
    if (st == AX_OK) st = ax_tensor_transpose(&y3, yt, 0, 1);
    if (st == AX_OK) st = ax_tensor_reshape(y, y3, x->ndim, x->shape);
    if (st == AX_OK && rm) {
        ax_no_grad_begin();
        ax_tensor *mean = ax_tensor_new_view(stats->storage, AX_DTYPE_F32, 1, &c, NULL, stats->offset);
        ax_tensor *var = NULL, *xf = NULL;
        int dims[AX_MAX_DIMS], nd = 0;
        for (int d = 0; d < x->ndim; d++)
            if (d != 1) dims[nd++] = d;
        st = mean ? AX_OK : ax_error_status();
        if (st == AX_OK) st = ax_norm_f32(&xf, x); /* bf16 x: an f32 variance, as torch */
        if (st == AX_OK) st = ax_var(&var, xf, nd, dims, 1, false);
        ax_tensor_free(xf);
        if (st == AX_OK) st = ax_norm_running_update(rm, mean, momentum);
        if (st == AX_OK) st = ax_norm_running_update(rv, var, momentum);
        ax_tensor_free(mean);
        ax_tensor_free(var);
        ax_no_grad_end();
    }
    ax_tensor *tmp[] = {x3, xt, xr, yr, yt, y3, stats};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) ax_tensor_free(tmp[i]);
    if (st != AX_OK) {
        ax_tensor_free(*y);
        *y = NULL;
    }
    return st;
}

/* Evaluation: y = x * scale + shift, scale = w / sqrt(rv + eps), shift =
 * b - rm * scale, broadcast over [C, 1, ...]; differentiable in x, w, b. */
static ax_status ax_batch_norm_eval(ax_tensor **y, const ax_tensor *x, const ax_tensor *rm, const ax_tensor *rv,
                                    const ax_tensor *w, const ax_tensor *b, double eps) {
    int64_t cshape[AX_MAX_DIMS];
    cshape[0] = x->shape[1];
    for (int d = 1; d < x->ndim - 1; d++) cshape[d] = 1;
    ax_tensor *ve = NULL, *inv = NULL, *scale = NULL, *ms = NULL, *shift = NULL, *sc = NULL, *sh = NULL, *xs = NULL,
              *yf = NULL;
    ax_status st = ax_add_scalar(&ve, rv, eps);
    if (st == AX_OK) st = ax_rsqrt(&inv, ve);
    if (st == AX_OK) st = w ? ax_mul(&scale, inv, w) : (scale = ax_tensor_retain(inv), AX_OK);
    if (st == AX_OK) st = ax_mul(&ms, rm, scale);
    if (st == AX_OK) st = b ? ax_sub(&shift, b, ms) : ax_neg(&shift, ms);
    if (st == AX_OK) st = ax_tensor_reshape(&sc, scale, x->ndim - 1, cshape);
    if (st == AX_OK) st = ax_tensor_reshape(&sh, shift, x->ndim - 1, cshape);
    if (st == AX_OK) st = ax_mul(&xs, x, sc);
    if (st == AX_OK) st = ax_add(&yf, xs, sh);
    if (st == AX_OK)
        st = yf->dtype == x->dtype || ax_autocast_f32_wanted(x) ? (*y = ax_tensor_retain(yf), AX_OK)
                                                                : ax_tensor_to_dtype(y, yf, x->dtype);
    ax_tensor *tmp[] = {ve, inv, scale, ms, shift, sc, sh, xs, yf};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) ax_tensor_free(tmp[i]);
    return st;
}

ax_status ax_batch_norm(ax_tensor **y, const ax_tensor *x, ax_tensor *running_mean, ax_tensor *running_var,
                        const ax_tensor *weight, const ax_tensor *bias, bool training, double momentum,
                        double eps) {
    const char *fn = "ax_batch_norm";
    *y = NULL;
    if (ax_norm_check_x(fn, x, 2, "[N, C, *]") != AX_OK) return ax_error_status();
    const int64_t c = x->shape[1];
    if (!running_mean != !running_var)
        return AX_ERROR(AX_ERR_INVALID, "%s: running_mean and running_var must be given together (got only %s)", fn,
                        running_mean ? "running_mean" : "running_var");
    if (ax_norm_check_param(fn, "running_mean", running_mean, x, 1, &c) != AX_OK) return ax_error_status();
    if (ax_norm_check_param(fn, "running_var", running_var, x, 1, &c) != AX_OK) return ax_error_status();
    if (ax_norm_check_param(fn, "weight", weight, x, 1, &c) != AX_OK) return ax_error_status();
    if (ax_norm_check_param(fn, "bias", bias, x, 1, &c) != AX_OK) return ax_error_status();
    if (ax_norm_check_eps(fn, eps) != AX_OK) return ax_error_status();
    if (!(momentum >= 0 && momentum <= 1))
        return AX_ERROR(AX_ERR_INVALID, "%s: momentum %g must be in [0, 1]", fn, momentum);
    char s[160];
    if (!training) {
        if (!running_mean)
            return AX_ERROR(AX_ERR_INVALID, "%s: evaluation (training = false) of x %s needs running_mean and "
                            "running_var", fn, ax_shape_str(s, sizeof s, x->ndim, x->shape));
        ax_status st = ax_batch_norm_eval(y, x, running_mean, running_var, weight, bias, eps);
        if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
        return st;
    }
    if (ax_tensor_numel(x) / (c ? c : 1) <= 1)
        return AX_ERROR(AX_ERR_INVALID, "%s: expected more than 1 value per channel when training, got x %s", fn,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    ax_status st = ax_batch_norm_train(fn, y, x, running_mean, running_var, weight, bias, momentum, eps);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}
