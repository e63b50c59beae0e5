/* Reductions and softmax. sum, max/min and softmax have kernels and
 * backward rules; mean, var, std, logsumexp and norm are compositions whose
 * gradients come from the ops they are made of. */
#include <math.h>
#include <string.h>

#include "axon/amp.h"
#include "ops_internal.h"

ax_status ax_op_dims_mask(const char *fn, const ax_tensor *x, int n, const int *dims, uint32_t *mask) {
    *mask = 0;
    if (n == 0) {
        *mask = x->ndim ? (uint32_t)((1u << x->ndim) - 1) : 0;
        return AX_OK;
    }
    for (int i = 0; i < n; i++) {
        int d = dims[i] < 0 ? dims[i] + x->ndim : dims[i];
        if (d < 0 || d >= x->ndim) {
            char s[160];
            return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for x %s", fn, dims[i],
                            ax_shape_str(s, sizeof s, x->ndim, x->shape));
        }
        if (*mask & (1u << d)) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d given twice", fn, dims[i]);
        *mask |= 1u << d;
    }
    return AX_OK;
}

void ax_reduced_shape(const ax_tensor *x, uint32_t mask, bool keepdim, int *ndim, int64_t *shape) {
    int n = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (mask & (1u << d)) {
            if (keepdim) shape[n++] = 1;
        } else {
            shape[n++] = x->shape[d];
        }
    }
    *ndim = n;
}

static int64_t ax_reduced_count(const ax_tensor *x, uint32_t mask) {
    int64_t c = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask & (1u << d)) c *= x->shape[d];
    return c;
}

/* Run a reduction kernel in f32 into a keepdim-shaped result (and idx). */
static ax_status ax_reduce_raw(const char *fn, ax_reduce_op op, ax_tensor **out, ax_tensor **idx, const ax_tensor *x,
                               uint32_t mask) {
    int nd;
    int64_t shape[AX_MAX_DIMS];
    *out = NULL;
    if (idx) *idx = NULL;
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_reduced_shape(x, mask, true, &nd, shape);
    ax_tensor *cx = NULL, *o = NULL, *ix = NULL;
    ax_status st = x->dtype == AX_DTYPE_F32 ? (cx = ax_tensor_retain((ax_tensor *)x), AX_OK)
                                            : ax_cast_nograd(&cx, x, AX_DTYPE_F32);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, nd, shape, AX_DTYPE_F32, x->storage->device);
    if (st == AX_OK && idx) st = ax_tensor_empty_on(&ix, nd, shape, AX_DTYPE_I64, x->storage->device);
    if (st == AX_OK && op != AX_REDUCE_SUM && ax_tensor_numel(x) == 0)
        st = AX_ERROR(AX_ERR_INVALID, "%s: reduction of an empty tensor has no identity", fn);
    if (st == AX_OK) st = k->reduce(op, o, ix, cx, mask);
    ax_tensor_free(cx);
    if (st != AX_OK) {
        ax_tensor_free(o);
        ax_tensor_free(ix);
        return st;
    }
    *out = o;
    if (idx) *idx = ix;
    return AX_OK;
}

/* Drop the reduced dims of a keepdim result (a view), or keep it. */
static ax_status ax_finish_keepdim(ax_tensor **out, ax_tensor *kept, const ax_tensor *x, uint32_t mask,
                                   bool keepdim) {
    if (keepdim) {
        *out = kept;
        return AX_OK;
    }
    int nd;
    int64_t shape[AX_MAX_DIMS];
    ax_reduced_shape(x, mask, false, &nd, shape);
    ax_status st = ax_tensor_view(out, kept, nd, shape);
    ax_tensor_free(kept);
    return st;
}

/* Convert a f32 result to x's float dtype (bf16 in, bf16 out). */
static ax_status ax_to_input_dtype(ax_tensor **t, const ax_tensor *x) {
    if (!ax_dtype_is_float(x->dtype) || x->dtype == (*t)->dtype) return AX_OK;
    ax_tensor *c;
    ax_status st = ax_tensor_to_dtype(&c, *t, x->dtype);
    ax_tensor_free(*t);
    *t = st == AX_OK ? c : NULL;
    return st;
}

/* ---- sum ------------------------------------------------------------------- */

static ax_status ax_sum_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    /* g has the reduced shape; view it with kept dims, then broadcast. */
    int64_t kshape[AX_MAX_DIMS];
    int nd = node->in_ndim[0];
    uint32_t mask = (uint32_t)node->i[0];
    for (int d = 0; d < nd; d++) kshape[d] = (mask & (1u << d)) ? 1 : node->in_shape[0][d];
    ax_tensor *gk, *ge;
    if (ax_tensor_reshape(&gk, g, nd, kshape) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_expand(&ge, gk, nd, node->in_shape[0]);
    ax_tensor_free(gk);
    if (st != AX_OK) return st;
    gin[0] = ge;
    return ax_grad_fit(node, 0, &gin[0]);
}

static ax_status ax_sum_mask(ax_tensor **out, const ax_tensor *x, uint32_t mask, bool keepdim) {
    ax_tensor *o;
    if (ax_reduce_raw("ax_sum", AX_REDUCE_SUM, &o, NULL, x, mask) != AX_OK) return ax_error_status();
    if (!ax_dtype_is_float(x->dtype)) {
        /* integer sums come back as i64, like torch */
        ax_tensor *c;
        ax_status st = ax_cast_nograd(&c, o, AX_DTYPE_I64);
        ax_tensor_free(o);
        if (st != AX_OK) return st;
        o = c;
    }
    ax_tensor *r;
    ax_status st = ax_finish_keepdim(&r, o, x, mask, keepdim);
    if (st == AX_OK) st = ax_to_input_dtype(&r, x);
    if (st == AX_OK && ax_autograd_wanted(1, &x)) {
        ax_node *node;
        st = ax_node_new(&node, "sum", ax_sum_backward, 1, &x);
        if (st == AX_OK) {
            node->i[0] = mask;
            /* r may be a view recorded by autograd already? no: grad off for
             * kernels' outputs, so r has no grad_fn here. */
            ax_node_attach(r, node);
        }
    }
    if (st != AX_OK) {
        ax_tensor_free(r);
        return st;
    }
    *out = r;
    return AX_OK;
}

ax_status ax_sum(ax_tensor **out, const ax_tensor *x, int n, const int *dims, bool keepdim) {
    uint32_t mask;
    *out = NULL;
    if (x && ax_autocast_f32_wanted(x)) { /* autocast (axon/amp.h): sums run in f32 */
        ax_tensor *xf = NULL;
        ax_status st = ax_autocast_f32(&xf, x);
        if (st == AX_OK) st = ax_sum(out, xf, n, dims, keepdim);
        ax_tensor_free(xf);
        return st;
    }
    if (ax_op_dims_mask("ax_sum", x, n, dims, &mask) != AX_OK) return ax_error_status();
    return ax_sum_mask(out, x, mask, keepdim);
}

ax_status ax_sum_to(ax_tensor **out, const ax_tensor *x, int ndim, const int64_t *shape) {
    uint32_t mask = 0;
    int lead = x->ndim - ndim;
    *out = NULL;
    if (lead < 0) goto bad;
    for (int d = 0; d < x->ndim; d++) {
        int sd = d - lead;
        if (sd < 0)
            mask |= 1u << d;
        else if (shape[sd] == 1 && x->shape[d] != 1)
            mask |= 1u << d;
        else if (shape[sd] != x->shape[d])
            goto bad;
    }
    if (!mask) return ax_tensor_reshape(out, x, ndim, shape);
    ax_tensor *s;
    if (ax_sum_mask(&s, x, mask, true) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_reshape(out, s, ndim, shape);
    ax_tensor_free(s);
    return st;
bad:;
    char a[160], b[160];
    return AX_ERROR(AX_ERR_INVALID, "ax_sum_to: cannot reduce %s to %s", ax_shape_str(a, sizeof a, x->ndim, x->shape),
                    ax_shape_str(b, sizeof b, ndim, shape));
}

/* ---- compositions -------------------------------------------------------------- */

ax_status ax_mean(ax_tensor **out, const ax_tensor *x, int n, const int *dims, bool keepdim) {
    uint32_t mask;
    *out = NULL;
    if (ax_op_dims_mask("ax_mean", x, n, dims, &mask) != AX_OK) return ax_error_status();
    if (ax_op_need_float("ax_mean", "x", x) != AX_OK) return ax_error_status();
    int64_t c = ax_reduced_count(x, mask);
    ax_tensor *s;
    if (ax_sum_mask(&s, x, mask, keepdim) != AX_OK) return ax_error_status();
    ax_status st = ax_mul_scalar(out, s, c ? 1.0 / (double)c : NAN);
    ax_tensor_free(s);
    return st;
}

ax_status ax_var(ax_tensor **out, const ax_tensor *x, int n, const int *dims, int correction, bool keepdim) {
    uint32_t mask;
    *out = NULL;
    if (ax_op_dims_mask("ax_var", x, n, dims, &mask) != AX_OK) return ax_error_status();
    if (ax_op_need_float("ax_var", "x", x) != AX_OK) return ax_error_status();
    if (correction < 0) return AX_ERROR(AX_ERR_INVALID, "ax_var: correction %d must be >= 0", correction);
    int64_t c = ax_reduced_count(x, mask);
    double denom = (double)(c - correction);
    ax_tensor *m = NULL, *d = NULL, *d2 = NULL, *s = NULL;
    ax_status st = ax_mean(&m, x, n, dims, true);
    if (st == AX_OK) st = ax_sub(&d, x, m);
    if (st == AX_OK) st = ax_mul(&d2, d, d);
    if (st == AX_OK) st = ax_sum_mask(&s, d2, mask, keepdim);
    if (st == AX_OK) st = ax_mul_scalar(out, s, denom > 0 ? 1.0 / denom : NAN);
    ax_tensor_free(m);
    ax_tensor_free(d);
    ax_tensor_free(d2);
    ax_tensor_free(s);
    return st;
}

ax_status ax_std(ax_tensor **out, const ax_tensor *x, int n, const int *dims, int correction, bool keepdim) {
    ax_tensor *v;
    *out = NULL;
    if (ax_var(&v, x, n, dims, correction, keepdim) != AX_OK) {
        ax_error_prefix("ax_std");
        return ax_error_status();
    }
    ax_status st = ax_sqrt(out, v);
    ax_tensor_free(v);
    return st;
}

ax_status ax_logsumexp(ax_tensor **out, const ax_tensor *x, int n, const int *dims, bool keepdim) {
    uint32_t mask;
    *out = NULL;
    if (ax_op_dims_mask("ax_logsumexp", x, n, dims, &mask) != AX_OK) return ax_error_status();
    if (ax_op_need_float("ax_logsumexp", "x", x) != AX_OK) return ax_error_status();
    /* log(sum(exp(x - m))) + m with m = max, held constant: its gradient
     * contributions cancel exactly. Infinite maxima are replaced by 0 so
     * that an all -inf slice gives -inf, not NaN. */
    ax_tensor *m = NULL, *fin = NULL, *zero = NULL, *mm = NULL, *d = NULL, *e = NULL, *s = NULL, *l = NULL, *mk = NULL;
    ax_status st = ax_reduce_raw("ax_logsumexp", AX_REDUCE_MAX, &m, NULL, x, mask);
    if (st == AX_OK) {
        ax_tensor *ab;
        st = ax_abs(&ab, m);
        if (st == AX_OK) {
            ax_tensor *inf;
            st = ax_tensor_full_on(&inf, 0, NULL, AX_DTYPE_F32, INFINITY, x->storage->device);
            if (st == AX_OK) st = ax_lt(&fin, ab, inf);
            ax_tensor_free(inf);
        }
        ax_tensor_free(ab);
    }
    if (st == AX_OK) st = ax_tensor_full_on(&zero, 0, NULL, AX_DTYPE_F32, 0.0, x->storage->device);
    if (st == AX_OK) st = ax_where(&mm, fin, m, zero);
    if (st == AX_OK) st = ax_sub(&d, x, mm);
    if (st == AX_OK) st = ax_exp(&e, d);
    if (st == AX_OK) st = ax_sum_mask(&s, e, mask, true);
    if (st == AX_OK) st = ax_log(&l, s);
    if (st == AX_OK) st = ax_add(&mk, l, mm);
    if (st == AX_OK) st = ax_to_input_dtype(&mk, x);
    if (st == AX_OK) {
        st = ax_finish_keepdim(out, mk, x, mask, keepdim);
        mk = NULL;
    }
    ax_tensor *all[] = {m, fin, zero, mm, d, e, s, l, mk};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    return st;
}

ax_status ax_norm(ax_tensor **out, const ax_tensor *x, double p, int n, const int *dims, bool keepdim) {
    uint32_t mask;
    *out = NULL;
    if (ax_op_dims_mask("ax_norm", x, n, dims, &mask) != AX_OK) return ax_error_status();
    if (ax_op_need_float("ax_norm", "x", x) != AX_OK) return ax_error_status();
    if (!(p > 0) || !isfinite(p)) return AX_ERROR(AX_ERR_INVALID, "ax_norm: p = %g must be finite and > 0", p);
    ax_tensor *a = NULL, *ap = NULL, *s = NULL;
    ax_status st;
    if (p == 2) {
        st = ax_mul(&ap, x, x);
    } else {
        st = ax_abs(&a, x);
        if (st == AX_OK) st = p == 1 ? (ap = ax_tensor_retain(a), AX_OK) : ax_pow_scalar(&ap, a, p);
    }
    if (st == AX_OK) st = ax_sum_mask(&s, ap, mask, keepdim);
    if (st == AX_OK) st = p == 1 ? (*out = ax_tensor_retain(s), AX_OK) : p == 2 ? ax_sqrt(out, s) : ax_pow_scalar(out, s, 1.0 / p);
    ax_tensor_free(a);
    ax_tensor_free(ap);
    ax_tensor_free(s);
    return st;
}

/* ---- max / min with indices ------------------------------------------------ */

/* The gradient goes to the selected index: one-hot(idx) along dim * g. */
static ax_status ax_maxmin_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *idx = node->saved[0]; /* keepdim shape, i64 */
    int dim = (int)node->i[0], nd = node->in_ndim[0];
    int64_t len = node->in_shape[0][dim];
    int64_t ashape[AX_MAX_DIMS];
    for (int d = 0; d < nd; d++) ashape[d] = d == dim ? len : 1;
    ax_tensor *ar = NULL, *arv = NULL, *hot = NULL, *gk = NULL, *zero = NULL, *r = NULL;
    ax_status st = ax_tensor_arange(&ar, 0, (double)len, 1, AX_DTYPE_I64);
    if (st == AX_OK && idx->storage->device.type != AX_DEVICE_CPU) {
        ax_tensor *moved;
        st = ax_tensor_to_device(&moved, ar, idx->storage->device);
        ax_tensor_free(ar);
        ar = st == AX_OK ? moved : NULL;
    }
    if (st == AX_OK) st = ax_tensor_view(&arv, ar, nd, ashape);
    if (st == AX_OK) st = ax_eq(&hot, arv, idx);
    if (st == AX_OK) st = ax_tensor_reshape(&gk, g, idx->ndim, idx->shape);
    if (st == AX_OK) st = ax_tensor_full_on(&zero, 0, NULL, g->dtype, 0.0, g->storage->device);
    if (st == AX_OK) st = ax_where(&r, hot, gk, zero);
    ax_tensor *all[] = {ar, arv, hot, gk, zero};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    if (st != AX_OK) {
        ax_tensor_free(r);
        return st;
    }
    gin[0] = r;
    return ax_grad_fit(node, 0, &gin[0]);
}

static ax_status ax_maxmin(const char *fn, ax_reduce_op op, ax_tensor **values, ax_tensor **indices,
                           const ax_tensor *x, int dim, bool keepdim) {
    *values = NULL;
    if (indices) *indices = NULL;
    int d = ax_tensor_dim(x, dim);
    if (d < 0 || x->ndim == 0) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for x %s", fn, dim,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    }
    if (ax_op_need_float(fn, "x", x) != AX_OK) return ax_error_status();
    uint32_t mask = 1u << d;
    ax_tensor *v, *ix;
    if (ax_reduce_raw(fn, op, &v, &ix, x, mask) != AX_OK) return ax_error_status();
    ax_status st = ax_to_input_dtype(&v, x);
    if (st == AX_OK && ax_autograd_wanted(1, &x)) {
        ax_node *node;
        st = ax_node_new(&node, fn + 3, ax_maxmin_backward, 1, &x);
        if (st == AX_OK) {
            node->i[0] = d;
            ax_node_save(node, 0, ix);
            ax_node_attach(v, node);
        }
    }
    ax_tensor *vr = NULL, *ir = NULL;
    if (st == AX_OK) {
        st = ax_finish_keepdim(&vr, v, x, mask, keepdim);
        v = NULL;
    }
    if (st == AX_OK && indices) {
        st = ax_finish_keepdim(&ir, ix, x, mask, keepdim);
        ix = NULL;
    }
    ax_tensor_free(v);
    ax_tensor_free(ix);
    if (st != AX_OK) {
        ax_tensor_free(vr);
        ax_tensor_free(ir);
        return st;
    }
    *values = vr;
    if (indices) *indices = ir;
    return AX_OK;
}

ax_status ax_max(ax_tensor **values, ax_tensor **indices, const ax_tensor *x, int dim, bool keepdim) {
    return ax_maxmin("ax_max", AX_REDUCE_MAX, values, indices, x, dim, keepdim);
}

ax_status ax_min(ax_tensor **values, ax_tensor **indices, const ax_tensor *x, int dim, bool keepdim) {
    return ax_maxmin("ax_min", AX_REDUCE_MIN, values, indices, x, dim, keepdim);
}

/* ---- softmax ------------------------------------------------------------------- */

static ax_status ax_softmax_backward_rule(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *y = node->saved[0];
    const ax_kernels *k = ax_op_kernels(y);
    if (!k) return ax_error_status();
    ax_tensor *gc, *dx;
    if (ax_cast_nograd(&gc, g, AX_DTYPE_F32) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_empty_like(&dx, y, AX_DTYPE_F32);
    if (st == AX_OK) st = k->softmax_backward(dx, gc, y, (int)node->i[0], node->i[1] != 0);
    ax_tensor_free(gc);
    if (st != AX_OK) {
        ax_tensor_free(dx);
        return st;
    }
    gin[0] = dx;
    return ax_grad_fit(node, 0, &gin[0]);
}

static ax_status ax_softmax_op(const char *fn, ax_tensor **out, const ax_tensor *x, int dim, bool log) {
    *out = NULL;
    int d = ax_tensor_dim(x, dim);
    if (d < 0) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for x %s", fn, dim,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    }
    if (ax_op_need_float(fn, "x", x) != AX_OK) return ax_error_status();
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_tensor *cx = NULL, *y = NULL;
    ax_status st = ax_cast_nograd(&cx, x, AX_DTYPE_F32);
    if (st == AX_OK) st = ax_tensor_empty_like(&y, cx, AX_DTYPE_F32);
    if (st == AX_OK) st = x->ndim == 0 ? ax_tensor_fill_(y, log ? 0.0 : 1.0) : k->softmax(y, cx, d, log);
    ax_tensor_free(cx);
    ax_tensor *r = NULL;
    if (st == AX_OK) {
        if (x->dtype == AX_DTYPE_F32 || ax_autocast_f32_wanted(x)) { /* autocast: f32 out */
            r = ax_tensor_retain(y);
        } else {
            st = ax_cast_nograd(&r, y, x->dtype);
        }
    }
    if (st == AX_OK && x->ndim > 0 && ax_autograd_wanted(1, &x)) {
        ax_node *node;
        st = ax_node_new(&node, fn + 3, ax_softmax_backward_rule, 1, &x);
        if (st == AX_OK) {
            ax_tensor *ya = ax_alias(y);
            node->i[0] = d;
            node->i[1] = log;
            if (ya) ax_node_save(node, 0, ya);
            ax_tensor_free(ya);
            ax_node_attach(r, node);
        }
    }
    ax_tensor_free(y);
    if (st != AX_OK) {
        ax_tensor_free(r);
        return st;
    }
    *out = r;
    return AX_OK;
}

ax_status ax_softmax(ax_tensor **out, const ax_tensor *x, int dim) {
    return ax_softmax_op("ax_softmax", out, x, dim, false);
}

ax_status ax_log_softmax(ax_tensor **out, const ax_tensor *x, int dim) {
    return ax_softmax_op("ax_log_softmax", out, x, dim, true);
}
