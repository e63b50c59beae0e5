/* Elementwise ops and activations: argument checks, dtype promotion,
 * broadcasting, autograd records; the math is in the backend's kernels. */
#include <math.h>
#include <string.h>

#include "ops_internal.h"

/* ---- shared helpers ------------------------------------------------------- */

ax_status ax_op_same_device(const char *fn, int n, const ax_tensor *const *ts) {
    for (int i = 1; i < n; i++) {
        const ax_device a = ts[0]->storage->device, b = ts[i]->storage->device;
        if (a.type != b.type || a.index != b.index)
            return AX_ERROR(AX_ERR_INVALID, "%s: inputs on different devices (%s:%d and %s:%d)", fn,
                            a.type == AX_DEVICE_CPU ? "cpu" : "cuda", a.index, b.type == AX_DEVICE_CPU ? "cpu" : "cuda",
                            b.index);
    }
    return AX_OK;
}

ax_status ax_op_need_float(const char *fn, const char *arg, const ax_tensor *t) {
    if (ax_dtype_is_float(t->dtype)) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: %s must be a floating tensor, got %s", fn, arg, ax_dtype_name(t->dtype));
}

ax_status ax_cast_nograd(ax_tensor **out, const ax_tensor *t, ax_dtype dtype) {
    ax_no_grad_begin();
    ax_status st = ax_tensor_to_dtype(out, t, dtype);
    ax_no_grad_end();
    return st;
}

ax_tensor *ax_alias(const ax_tensor *t) {
    return ax_tensor_new_view(t->storage, t->dtype, t->ndim, t->shape, t->stride, t->offset);
}

ax_status ax_op_record(ax_tensor *out, const char *name, ax_backward_fn backward, int n,
                       const ax_tensor *const *inputs, int nsaved, const ax_tensor *const *saved, int nf,
                       const double *f) {
    if (!ax_autograd_wanted(n, inputs)) return AX_OK;
    ax_node *node;
    if (ax_node_new(&node, name, backward, n, inputs) != AX_OK) return ax_error_status();
    for (int i = 0; i < nsaved; i++) {
        if (!saved[i]) continue;
        if (saved[i] == out) { /* the op's own output: save an alias, not a cycle */
            ax_tensor *a = ax_alias(out);
            if (!a) {
                ax_node_free(node);
                return ax_error_status();
            }
            ax_node_save(node, i, a);
            ax_tensor_free(a);
        } else {
            ax_node_save(node, i, saved[i]);
        }
    }
    for (int i = 0; i < nf; i++) node->f[i] = f[i];
    ax_node_attach(out, node);
    return AX_OK;
}

ax_status ax_grad_fit(ax_node *node, int i, ax_tensor **g) {
    ax_tensor *t = *g;
    if (t->ndim != node->in_ndim[i] || memcmp(t->shape, node->in_shape[i], (size_t)t->ndim * sizeof(int64_t))) {
        ax_tensor *s;
        ax_status st = ax_sum_to(&s, t, node->in_ndim[i], node->in_shape[i]);
        ax_tensor_free(t);
        *g = NULL;
        if (st != AX_OK) return st;
        t = s;
    }
    if (t->dtype != node->in_dtype[i] && ax_dtype_is_float(node->in_dtype[i])) {
        ax_tensor *c;
        ax_status st = ax_tensor_to_dtype(&c, t, node->in_dtype[i]);
        ax_tensor_free(t);
        *g = NULL;
        if (st != AX_OK) return st;
        t = c;
    }
    *g = t;
    return AX_OK;
}

/* The dtype kernels compute in: f32 for any float, else the wider int. */
static ax_dtype ax_compute_dtype(ax_dtype a, ax_dtype b) {
    if (ax_dtype_is_float(a) || ax_dtype_is_float(b)) return AX_DTYPE_F32;
    if (a == AX_DTYPE_I64 || b == AX_DTYPE_I64) return AX_DTYPE_I64;
    if (a == AX_DTYPE_I32 || b == AX_DTYPE_I32) return AX_DTYPE_I32;
    return AX_DTYPE_U8;
}

/* The dtype of the result: like PyTorch's promotion among our dtypes. */
static ax_dtype ax_result_dtype(ax_dtype a, ax_dtype b) {
    if (a == b) return a;
    bool fa = ax_dtype_is_float(a), fb = ax_dtype_is_float(b);
    if (fa && !fb) return a;
    if (fb && !fa) return b;
    if (fa && fb) return AX_DTYPE_F32; /* bf16 with f16, or either with f32 */
    return ax_compute_dtype(a, b);
}

/* t converted to dtype (a new reference to t itself when it already is). */
static ax_status ax_as_dtype(ax_tensor **out, const ax_tensor *t, ax_dtype dtype) {
    if (t->dtype == dtype) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_cast_nograd(out, t, dtype);
}

/* ---- binary ---------------------------------------------------------------- */

static bool ax_binary_is_compare(ax_binary_op op) { return op >= AX_BINARY_EQ; }

/* out = a op b, no autograd. */
static ax_status ax_binary_raw(const char *fn, ax_binary_op op, ax_tensor **out, const ax_tensor *a,
                               const ax_tensor *b) {
    int ndim;
    int64_t shape[AX_MAX_DIMS];
    *out = NULL;
    if (ax_op_same_device(fn, 2, (const ax_tensor *[]){a, b}) != AX_OK) return ax_error_status();
    if (!ax_broadcast_shape(a, b, &ndim, shape)) {
        char sa[160], sb[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: cannot broadcast a %s with b %s", fn,
                        ax_shape_str(sa, sizeof sa, a->ndim, a->shape), ax_shape_str(sb, sizeof sb, b->ndim, b->shape));
    }
    ax_dtype cd = ax_compute_dtype(a->dtype, b->dtype), rd = ax_result_dtype(a->dtype, b->dtype);
    if ((op == AX_BINARY_DIV || op == AX_BINARY_POW) && !ax_dtype_is_float(cd)) cd = rd = AX_DTYPE_F32;
    const ax_kernels *k = ax_op_kernels(a);
    if (!k) return ax_error_status();
    ax_tensor *ca = NULL, *cb = NULL, *o = NULL;
    ax_status st = ax_as_dtype(&ca, a, cd);
    if (st == AX_OK) st = ax_as_dtype(&cb, b, cd);
    if (st == AX_OK)
        st = ax_tensor_empty_on(&o, ndim, shape, ax_binary_is_compare(op) ? AX_DTYPE_U8 : cd, a->storage->device);
    if (st == AX_OK) st = k->binary(op, o, ca, cb);
    if (st == AX_OK && !ax_binary_is_compare(op) && rd != cd) {
        ax_tensor *r;
        st = ax_cast_nograd(&r, o, rd);
        ax_tensor_free(o);
        o = st == AX_OK ? r : NULL;
    }
    ax_tensor_free(ca);
    ax_tensor_free(cb);
    if (st != AX_OK) {
        ax_tensor_free(o);
        if (!strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
        return st;
    }
    *out = o;
    return AX_OK;
}

static ax_status ax_add_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    for (int i = 0; i < 2; i++) {
        if (!ax_node_needs_grad(node, i)) continue;
        gin[i] = ax_tensor_retain((ax_tensor *)g);
        if (ax_grad_fit(node, i, &gin[i]) != AX_OK) return ax_error_status();
    }
    return AX_OK;
}

static ax_status ax_sub_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    if (ax_node_needs_grad(node, 0)) {
        gin[0] = ax_tensor_retain((ax_tensor *)g);
        if (ax_grad_fit(node, 0, &gin[0]) != AX_OK) return ax_error_status();
    }
    if (ax_node_needs_grad(node, 1)) {
        if (ax_neg(&gin[1], g) != AX_OK || ax_grad_fit(node, 1, &gin[1]) != AX_OK) return ax_error_status();
    }
    return AX_OK;
}

static ax_status ax_mul_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    for (int i = 0; i < 2; i++) {
        if (!ax_node_needs_grad(node, i)) continue;
        if (ax_mul(&gin[i], g, node->saved[1 - i]) != AX_OK || ax_grad_fit(node, i, &gin[i]) != AX_OK)
            return ax_error_status();
    }
    return AX_OK;
}

/* out = a / b: da = g / b, db = -g * out / b */
static ax_status ax_div_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *b = node->saved[1], *out = node->saved[2];
    if (ax_node_needs_grad(node, 0))
        if (ax_div(&gin[0], g, b) != AX_OK || ax_grad_fit(node, 0, &gin[0]) != AX_OK) return ax_error_status();
    if (ax_node_needs_grad(node, 1)) {
        ax_tensor *t, *u;
        if (ax_mul(&t, g, out) != AX_OK) return ax_error_status();
        ax_status st = ax_div(&u, t, b);
        ax_tensor_free(t);
        if (st != AX_OK) return st;
        st = ax_neg(&gin[1], u);
        ax_tensor_free(u);
        if (st != AX_OK || ax_grad_fit(node, 1, &gin[1]) != AX_OK) return ax_error_status();
    }
    return AX_OK;
}

/* out = a ^ b: da = g * b * a^(b-1), db = g * out * log(a) */
static ax_status ax_pow_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *a = node->saved[0], *b = node->saved[1], *out = node->saved[2];
    ax_status st = AX_OK;
    if (ax_node_needs_grad(node, 0)) {
        ax_tensor *bm1 = NULL, *p = NULL, *t = NULL;
        st = ax_add_scalar(&bm1, b, -1.0);
        if (st == AX_OK) st = ax_pow(&p, a, bm1);
        if (st == AX_OK) st = ax_mul(&t, p, b);
        if (st == AX_OK) st = ax_mul(&gin[0], g, t);
        ax_tensor_free(bm1);
        ax_tensor_free(p);
        ax_tensor_free(t);
        if (st == AX_OK) st = ax_grad_fit(node, 0, &gin[0]);
        if (st != AX_OK) return st;
    }
    if (ax_node_needs_grad(node, 1)) {
        ax_tensor *la = NULL, *t = NULL;
        st = ax_log(&la, a);
        if (st == AX_OK) st = ax_mul(&t, out, la);
        if (st == AX_OK) st = ax_mul(&gin[1], g, t);
        ax_tensor_free(la);
        ax_tensor_free(t);
        if (st == AX_OK) st = ax_grad_fit(node, 1, &gin[1]);
    }
    return st;
}

/* maximum/minimum: the winner takes the gradient; ties split it, as PyTorch. */
static ax_status ax_minmax_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *a = node->saved[0], *b = node->saved[1];
    bool is_max = node->f[0] > 0;
    ax_status st = AX_OK;
    for (int i = 0; i < 2 && st == AX_OK; i++) {
        if (!ax_node_needs_grad(node, i)) continue;
        const ax_tensor *me = i == 0 ? a : b, *other = i == 0 ? b : a;
        ax_tensor *win = NULL, *tie = NULL, *wf = NULL, *tf = NULL, *w = NULL, *m = NULL;
        st = is_max ? ax_gt(&win, me, other) : ax_lt(&win, me, other);
        if (st == AX_OK) st = ax_eq(&tie, me, other);
        if (st == AX_OK) st = ax_cast_nograd(&wf, win, g->dtype);
        if (st == AX_OK) st = ax_cast_nograd(&tf, tie, g->dtype);
        if (st == AX_OK) {
            ax_tensor *half;
            st = ax_mul_scalar(&half, tf, 0.5);
            if (st == AX_OK) st = ax_add(&w, wf, half);
            ax_tensor_free(half);
        }
        if (st == AX_OK) st = ax_mul(&m, g, w);
        if (st == AX_OK) {
            gin[i] = m;
            m = NULL;
            st = ax_grad_fit(node, i, &gin[i]);
        }
        ax_tensor_free(win);
        ax_tensor_free(tie);
        ax_tensor_free(wf);
        ax_tensor_free(tf);
        ax_tensor_free(w);
        ax_tensor_free(m);
    }
    return st;
}

static ax_status ax_binary_front(const char *fn, ax_binary_op op, ax_tensor **out, const ax_tensor *a,
                              const ax_tensor *b) {
    if (ax_binary_raw(fn, op, out, a, b) != AX_OK) return ax_error_status();
    if (ax_binary_is_compare(op)) return AX_OK;
    ax_backward_fn bw = NULL;
    int nsaved = 0;
    double f = 0;
    switch (op) {
    case AX_BINARY_ADD: bw = ax_add_backward; break;
    case AX_BINARY_SUB: bw = ax_sub_backward; break;
    case AX_BINARY_MUL: bw = ax_mul_backward, nsaved = 2; break;
    case AX_BINARY_DIV: bw = ax_div_backward, nsaved = 3; break;
    case AX_BINARY_POW: bw = ax_pow_backward, nsaved = 3; break;
    case AX_BINARY_MAXIMUM: bw = ax_minmax_backward, nsaved = 2, f = 1; break;
    case AX_BINARY_MINIMUM: bw = ax_minmax_backward, nsaved = 2, f = -1; break;
    default: return AX_OK;
    }
    const ax_tensor *saved[3] = {a, b, *out};
    if (ax_op_record(*out, fn + 3, bw, 2, (const ax_tensor *[]){a, b}, nsaved, saved, 1, &f) != AX_OK) {
        ax_tensor_free(*out);
        *out = NULL;
        return ax_error_status();
    }
    return AX_OK;
}

ax_status ax_add(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_add", AX_BINARY_ADD, out, a, b);
}
ax_status ax_sub(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_sub", AX_BINARY_SUB, out, a, b);
}
ax_status ax_mul(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_mul", AX_BINARY_MUL, out, a, b);
}
ax_status ax_div(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_div", AX_BINARY_DIV, out, a, b);
}
ax_status ax_pow(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_pow", AX_BINARY_POW, out, a, b);
}
ax_status ax_maximum(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_maximum", AX_BINARY_MAXIMUM, out, a, b);
}
ax_status ax_minimum(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_minimum", AX_BINARY_MINIMUM, out, a, b);
}
ax_status ax_eq(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_eq", AX_BINARY_EQ, out, a, b);
}
ax_status ax_ne(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_ne", AX_BINARY_NE, out, a, b);
}
ax_status ax_lt(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_lt", AX_BINARY_LT, out, a, b);
}
ax_status ax_le(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_le", AX_BINARY_LE, out, a, b);
}
ax_status ax_gt(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_gt", AX_BINARY_GT, out, a, b);
}
ax_status ax_ge(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    return ax_binary_front("ax_ge", AX_BINARY_GE, out, a, b);
}

/* ---- where ------------------------------------------------------------------ */

static ax_status ax_where_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *cond = node->saved[0];
    ax_tensor *zero;
    if (ax_tensor_full_on(&zero, 0, NULL, g->dtype, 0.0, g->storage->device) != AX_OK) return ax_error_status();
    ax_status st = AX_OK;
    for (int i = 1; i < 3 && st == AX_OK; i++) {
        if (!ax_node_needs_grad(node, i)) continue;
        st = i == 1 ? ax_where(&gin[i], cond, g, zero) : ax_where(&gin[i], cond, zero, g);
        if (st == AX_OK) st = ax_grad_fit(node, i, &gin[i]);
    }
    ax_tensor_free(zero);
    return st;
}

ax_status ax_where(ax_tensor **out, const ax_tensor *cond, const ax_tensor *a, const ax_tensor *b) {
    const char *fn = "ax_where";
    int n1, n2;
    int64_t s1[AX_MAX_DIMS], s2[AX_MAX_DIMS];
    *out = NULL;
    if (ax_op_same_device(fn, 3, (const ax_tensor *[]){cond, a, b}) != AX_OK) return ax_error_status();
    if (cond->dtype != AX_DTYPE_U8)
        return AX_ERROR(AX_ERR_INVALID, "ax_where: cond must be u8 (a comparison's result), got %s",
                        ax_dtype_name(cond->dtype));
    ax_tensor tmp;
    if (!ax_broadcast_shape(a, b, &n1, s1)) goto bad;
    tmp = *a;
    tmp.ndim = n1;
    memcpy(tmp.shape, s1, sizeof s1);
    if (!ax_broadcast_shape(cond, &tmp, &n2, s2)) goto bad;
    ax_dtype rd = ax_result_dtype(a->dtype, b->dtype);
    const ax_kernels *k = ax_op_kernels(a);
    if (!k) return ax_error_status();
    ax_tensor *ca = NULL, *cb = NULL, *o = NULL;
    ax_status st = ax_as_dtype(&ca, a, rd);
    if (st == AX_OK) st = ax_as_dtype(&cb, b, rd);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, n2, s2, rd, a->storage->device);
    if (st == AX_OK) st = k->where(o, cond, ca, cb);
    ax_tensor_free(ca);
    ax_tensor_free(cb);
    if (st == AX_OK)
        st = ax_op_record(o, "where", ax_where_backward, 3, (const ax_tensor *[]){cond, a, b}, 1,
                          (const ax_tensor *[]){cond}, 0, NULL);
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *out = o;
    return AX_OK;
bad:;
    char x[160], y[160], z[160];
    return AX_ERROR(AX_ERR_INVALID, "ax_where: cannot broadcast cond %s, a %s and b %s",
                    ax_shape_str(x, sizeof x, cond->ndim, cond->shape), ax_shape_str(y, sizeof y, a->ndim, a->shape),
                    ax_shape_str(z, sizeof z, b->ndim, b->shape));
}

/* ---- unary ------------------------------------------------------------------- */

static ax_status ax_unary_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *x = node->saved[0], *y = node->saved[1];
    ax_unary_op op = (ax_unary_op)node->i[0];
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    /* Kernels take f32; x and y are kept in the compute dtype. */
    ax_tensor *gc, *dx;
    if (ax_as_dtype(&gc, g, AX_DTYPE_F32) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_empty_like(&dx, x, AX_DTYPE_F32);
    if (st == AX_OK) st = k->unary_backward(op, dx, gc, x, y, node->f);
    ax_tensor_free(gc);
    if (st != AX_OK) {
        ax_tensor_free(dx);
        return st;
    }
    gin[0] = dx;
    return ax_grad_fit(node, 0, &gin[0]);
}

/* Shared front-end: floats compute in f32; integer inputs only for the ops
 * the kernels take on integers. */
static ax_status ax_unary_front(const char *fn, ax_unary_op op, ax_tensor **out, const ax_tensor *x, double p0,
                             double p1) {
    double p[2] = {p0, p1};
    *out = NULL;
    bool int_ok = op == AX_UNARY_NEG || op == AX_UNARY_ABS || op == AX_UNARY_SIGN || op == AX_UNARY_CLAMP ||
                  op == AX_UNARY_AFFINE;
    ax_dtype cd = ax_dtype_is_float(x->dtype) ? AX_DTYPE_F32 : x->dtype;
    if (!ax_dtype_is_float(x->dtype) && !int_ok) cd = AX_DTYPE_F32; /* e.g. exp of ints, as torch */
    if (op == AX_UNARY_AFFINE && !ax_dtype_is_float(x->dtype) && (p0 != floor(p0) || p1 != floor(p1)))
        cd = AX_DTYPE_F32;
    ax_dtype rd = ax_dtype_is_float(x->dtype) ? x->dtype : cd;
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_tensor *cx = NULL, *y = NULL;
    ax_status st = ax_as_dtype(&cx, x, cd);
    if (st == AX_OK) st = ax_tensor_empty_like(&y, cx, cd);
    if (st == AX_OK) st = k->unary(op, y, cx, p);
    if (st == AX_OK && ax_autograd_wanted(1, &x)) {
        ax_node *node;
        st = ax_node_new(&node, fn + 3, ax_unary_backward, 1, &x);
        if (st == AX_OK) {
            node->i[0] = op;
            node->f[0] = p0;
            node->f[1] = p1;
            ax_node_save(node, 0, cx);
            /* an alias of y: y itself may become the output, which owns the node */
            ax_tensor *ya = ax_alias(y);
            if (ya) ax_node_save(node, 1, ya);
            else st = ax_error_status();
            ax_tensor_free(ya);
        }
        if (st == AX_OK && rd != cd) {
            ax_tensor *r;
            st = ax_cast_nograd(&r, y, rd);
            ax_tensor_free(y);
            y = st == AX_OK ? r : NULL;
        }
        if (st == AX_OK)
            ax_node_attach(y, node);
        else
            ax_node_free(node);
    } else if (st == AX_OK && rd != cd) {
        ax_tensor *r;
        st = ax_cast_nograd(&r, y, rd);
        ax_tensor_free(y);
        y = st == AX_OK ? r : NULL;
    }
    ax_tensor_free(cx);
    if (st != AX_OK) {
        ax_tensor_free(y);
        if (!strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
        return st;
    }
    *out = y;
    return AX_OK;
}

ax_status ax_neg(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_neg", AX_UNARY_NEG, out, x, 0, 0); }
ax_status ax_exp(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_exp", AX_UNARY_EXP, out, x, 0, 0); }
ax_status ax_log(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_log", AX_UNARY_LOG, out, x, 0, 0); }
ax_status ax_sqrt(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_sqrt", AX_UNARY_SQRT, out, x, 0, 0); }
ax_status ax_rsqrt(ax_tensor **out, const ax_tensor *x) {
    return ax_unary_front("ax_rsqrt", AX_UNARY_RSQRT, out, x, 0, 0);
}
ax_status ax_abs(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_abs", AX_UNARY_ABS, out, x, 0, 0); }
ax_status ax_clamp(ax_tensor **out, const ax_tensor *x, double lo, double hi) {
    if (lo > hi) return AX_ERROR(AX_ERR_INVALID, "ax_clamp: lo %g > hi %g", lo, hi);
    return ax_unary_front("ax_clamp", AX_UNARY_CLAMP, out, x, lo, hi);
}
ax_status ax_relu(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_relu", AX_UNARY_RELU, out, x, 0, 0); }
ax_status ax_leaky_relu(ax_tensor **out, const ax_tensor *x, double negative_slope) {
    return ax_unary_front("ax_leaky_relu", AX_UNARY_LEAKY_RELU, out, x, negative_slope, 0);
}
ax_status ax_gelu(ax_tensor **out, const ax_tensor *x, bool approximate) {
    return ax_unary_front("ax_gelu", approximate ? AX_UNARY_GELU_TANH : AX_UNARY_GELU, out, x, 0, 0);
}
ax_status ax_silu(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_silu", AX_UNARY_SILU, out, x, 0, 0); }
ax_status ax_sigmoid(ax_tensor **out, const ax_tensor *x) {
    return ax_unary_front("ax_sigmoid", AX_UNARY_SIGMOID, out, x, 0, 0);
}
ax_status ax_tanh(ax_tensor **out, const ax_tensor *x) { return ax_unary_front("ax_tanh", AX_UNARY_TANH, out, x, 0, 0); }
ax_status ax_softplus(ax_tensor **out, const ax_tensor *x, double beta, double threshold) {
    if (beta == 0) return AX_ERROR(AX_ERR_INVALID, "ax_softplus: beta must not be 0");
    return ax_unary_front("ax_softplus", AX_UNARY_SOFTPLUS, out, x, beta, threshold);
}
ax_status ax_add_scalar(ax_tensor **out, const ax_tensor *x, double s) {
    return ax_unary_front("ax_add_scalar", AX_UNARY_AFFINE, out, x, 1.0, s);
}
ax_status ax_mul_scalar(ax_tensor **out, const ax_tensor *x, double s) {
    return ax_unary_front("ax_mul_scalar", AX_UNARY_AFFINE, out, x, s, 0.0);
}
ax_status ax_pow_scalar(ax_tensor **out, const ax_tensor *x, double exponent) {
    return ax_unary_front("ax_pow_scalar", AX_UNARY_POW, out, x, exponent, 0);
}
