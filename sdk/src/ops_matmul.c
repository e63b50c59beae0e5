/* Matrix products with torch.matmul's broadcasting rules, and linear. */
#include <string.h>

#include "axon/amp.h"
#include "ops_internal.h"

/* Is t an [B, R, C] f32 tensor stored contiguously (0) or as the transpose
 * of a contiguous [B, C, R] (1)? -1 otherwise. */
static int ax_mm_layout(const ax_tensor *t) {
    if (t->dtype != AX_DTYPE_F32 || t->ndim != 3) return -1;
    int64_t b = t->shape[0], r = t->shape[1], c = t->shape[2];
    bool bstride_ok = b == 1 || t->stride[0] == r * c;
    if (bstride_ok && (c == 1 || t->stride[2] == 1) && (r == 1 || t->stride[1] == c)) return 0;
    if (bstride_ok && (r == 1 || t->stride[1] == 1) && (c == 1 || t->stride[2] == r)) return 1;
    return -1;
}

/* [B, R, C] operand as the kernel wants it: *use is contiguous or a
 * transposed-contiguous view of f32 data; *trans says which. */
static ax_status ax_mm_operand(ax_tensor **use, bool *trans, const ax_tensor *t) {
    int layout = ax_mm_layout(t);
    if (layout >= 0) {
        *use = ax_tensor_retain((ax_tensor *)t);
        *trans = layout == 1;
        return AX_OK;
    }
    ax_tensor *c;
    if (ax_cast_nograd(&c, t, AX_DTYPE_F32) != AX_OK) return ax_error_status();
    *use = c;
    *trans = false;
    return AX_OK;
}

/* out[B, M, N] = a[B, M, K] @ b[B, K, N], any strides and float dtype. */
static ax_status ax_bmm_raw(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    const ax_kernels *k = ax_op_kernels(a);
    if (!k) return ax_error_status();
    ax_tensor *ua = NULL, *ub = NULL, *o = NULL;
    bool ta = false, tb = false;
    ax_status st = ax_mm_operand(&ua, &ta, a);
    if (st == AX_OK) st = ax_mm_operand(&ub, &tb, b);
    int64_t shape[3] = {a->shape[0], a->shape[1], b->shape[2]};
    if (st == AX_OK) st = ax_tensor_empty_on(&o, 3, shape, AX_DTYPE_F32, a->storage->device);
    if (st == AX_OK && ax_tensor_numel(o) > 0) {
        if (a->shape[2] == 0)
            st = ax_tensor_fill_(o, 0.0);
        else {
            /* The kernel takes operands in their stored layout. */
            ax_tensor *sa = NULL, *sb = NULL;
            st = ta ? ax_tensor_transpose(&sa, ua, 1, 2) : (sa = ax_tensor_retain(ua), AX_OK);
            if (st == AX_OK) st = tb ? ax_tensor_transpose(&sb, ub, 1, 2) : (sb = ax_tensor_retain(ub), AX_OK);
            if (st == AX_OK) st = k->matmul(o, sa, sb, ta, tb, 1.0f, 0.0f);
            ax_tensor_free(sa);
            ax_tensor_free(sb);
        }
    }
    ax_tensor_free(ua);
    ax_tensor_free(ub);
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *out = o;
    return AX_OK;
}

/* The forward of matmul on already broadcast [..., M, K] x [..., K, N]. */
static ax_status ax_matmul_nd(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    int nd = a->ndim;
    int64_t batch = 1;
    for (int d = 0; d < nd - 2; d++) batch *= a->shape[d];
    int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[nd - 1];
    ax_tensor *a3 = NULL, *b3 = NULL, *o3 = NULL;
    ax_status st = ax_tensor_reshape(&a3, a, 3, (int64_t[]){batch, M, K});
    if (st == AX_OK) st = ax_tensor_reshape(&b3, b, 3, (int64_t[]){batch, K, N});
    if (st == AX_OK) st = ax_bmm_raw(&o3, a3, b3);
    ax_tensor_free(a3);
    ax_tensor_free(b3);
    if (st != AX_OK) return st;
    int64_t shape[AX_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[nd - 1] = N;
    st = ax_tensor_reshape(out, o3, nd, shape);
    ax_tensor_free(o3);
    return st;
}

/* out = a @ b with a_b, b_b the promoted, broadcast operands saved:
 * da = g @ b_b^T and db = a_b^T @ g, then summed back to the promoted
 * operand's shape (broadcast batch dims) and reshaped to the input's. */
static ax_status ax_matmul_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *a = node->saved[0], *b = node->saved[1];
    int nd = a->ndim;
    int64_t gshape[AX_MAX_DIMS];
    memcpy(gshape, a->shape, sizeof gshape);
    gshape[nd - 1] = b->shape[nd - 1];
    ax_tensor *gg;
    if (ax_tensor_reshape(&gg, g, nd, gshape) != AX_OK) return ax_error_status();
    ax_status st = AX_OK;
    for (int i = 0; i < 2 && st == AX_OK; i++) {
        if (!ax_node_needs_grad(node, i)) continue;
        ax_tensor *t = NULL, *r = NULL, *s = NULL;
        st = ax_tensor_transpose(&t, i == 0 ? b : a, -1, -2);
        if (st == AX_OK) st = i == 0 ? ax_matmul_nd(&r, gg, t) : ax_matmul_nd(&r, t, gg);
        /* promoted (unbroadcast) shape: a 1-D input was [1, K] or [K, 1] */
        int pn = node->in_ndim[i];
        int64_t pshape[AX_MAX_DIMS];
        memcpy(pshape, node->in_shape[i], sizeof pshape);
        if (pn == 1) {
            if (i == 0) pshape[1] = pshape[0], pshape[0] = 1;
            else pshape[1] = 1;
            pn = 2;
        }
        if (st == AX_OK) st = ax_sum_to(&s, r, pn, pshape);
        if (st == AX_OK) st = ax_tensor_reshape(&gin[i], s, node->in_ndim[i], node->in_shape[i]);
        ax_tensor_free(t);
        ax_tensor_free(r);
        ax_tensor_free(s);
        if (st == AX_OK) st = ax_grad_fit(node, i, &gin[i]);
    }
    ax_tensor_free(gg);
    return st;
}

static ax_status ax_matmul_any(ax_tensor **out, const ax_tensor *a, const ax_tensor *b);

/* Inside an autocast region (axon/amp.h) both operands are cast to the
 * region's half dtype by recorded casts; the product is half. */
ax_status ax_matmul(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    *out = NULL;
    if (!a || !b || !ax_autocast_lowp_wanted(a->dtype == AX_DTYPE_F32 ? a : b, AX_KOP_MATMUL))
        return ax_matmul_any(out, a, b);
    ax_tensor *al = NULL, *bl = NULL;
    ax_status st = ax_autocast_lowp(&al, a, AX_KOP_MATMUL);
    if (st == AX_OK) st = ax_autocast_lowp(&bl, b, AX_KOP_MATMUL);
    if (st == AX_OK) st = ax_matmul_any(out, al, bl);
    ax_tensor_free(al);
    ax_tensor_free(bl);
    return st;
}

static ax_status ax_matmul_any(ax_tensor **out, const ax_tensor *a, const ax_tensor *b) {
    const char *fn = "ax_matmul";
    char sa[160], sb[160];
    *out = NULL;
    if (ax_op_same_device(fn, 2, (const ax_tensor *[]){a, b}) != AX_OK) return ax_error_status();
    if (ax_op_need_float(fn, "a", a) != AX_OK || ax_op_need_float(fn, "b", b) != AX_OK) return ax_error_status();
    if (a->ndim == 0 || b->ndim == 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: operands must have at least 1 dim, got a %s and b %s", fn,
                        ax_shape_str(sa, sizeof sa, a->ndim, a->shape), ax_shape_str(sb, sizeof sb, b->ndim, b->shape));
    /* Promote 1-D operands: a [K] -> [1, K], b [K] -> [K, 1]. */
    ax_tensor *pa = NULL, *pb = NULL, *ea = NULL, *eb = NULL, *o = NULL, *r = NULL;
    ax_status st = a->ndim == 1 ? ax_tensor_unsqueeze(&pa, a, 0) : (pa = ax_tensor_retain((ax_tensor *)a), AX_OK);
    if (st == AX_OK) st = b->ndim == 1 ? ax_tensor_unsqueeze(&pb, b, 1) : (pb = ax_tensor_retain((ax_tensor *)b), AX_OK);
    if (st != AX_OK) goto done;
    if (pa->shape[pa->ndim - 1] != pb->shape[pb->ndim - 2]) {
        st = AX_ERROR(AX_ERR_INVALID, "%s: inner dims differ: a %s, b %s", fn,
                      ax_shape_str(sa, sizeof sa, a->ndim, a->shape), ax_shape_str(sb, sizeof sb, b->ndim, b->shape));
        goto done;
    }
    /* Broadcast the batch dims. */
    ax_tensor ba = *pa, bb = *pb;
    ba.ndim -= 2;
    bb.ndim -= 2;
    int nb;
    int64_t batch[AX_MAX_DIMS];
    if (!ax_broadcast_shape(&ba, &bb, &nb, batch) || nb + 2 > AX_MAX_DIMS) {
        st = AX_ERROR(AX_ERR_INVALID, "%s: batch dims do not broadcast: a %s, b %s", fn,
                      ax_shape_str(sa, sizeof sa, a->ndim, a->shape), ax_shape_str(sb, sizeof sb, b->ndim, b->shape));
        goto done;
    }
    int64_t shape_a[AX_MAX_DIMS], shape_b[AX_MAX_DIMS];
    memcpy(shape_a, batch, sizeof batch);
    memcpy(shape_b, batch, sizeof batch);
    shape_a[nb] = pa->shape[pa->ndim - 2];
    shape_a[nb + 1] = pa->shape[pa->ndim - 1];
    shape_b[nb] = pb->shape[pb->ndim - 2];
    shape_b[nb + 1] = pb->shape[pb->ndim - 1];
    ax_no_grad_begin(); /* the views are internal; the node below records the op */
    st = ax_tensor_expand(&ea, pa, nb + 2, shape_a);
    if (st == AX_OK) st = ax_tensor_expand(&eb, pb, nb + 2, shape_b);
    if (st == AX_OK) st = ax_matmul_nd(&o, ea, eb);
    ax_no_grad_end();
    if (st != AX_OK) goto done;
    /* Drop the promoted dims again. */
    int64_t oshape[AX_MAX_DIMS];
    int on = 0;
    for (int d = 0; d < nb; d++) oshape[on++] = batch[d];
    if (a->ndim > 1) oshape[on++] = shape_a[nb];
    if (b->ndim > 1) oshape[on++] = shape_b[nb + 1];
    ax_no_grad_begin();
    st = ax_tensor_reshape(&r, o, on, oshape);
    ax_no_grad_end();
    if (st == AX_OK && a->dtype != AX_DTYPE_F32 && a->dtype == b->dtype) {
        ax_tensor *c;
        st = ax_cast_nograd(&c, r, a->dtype);
        ax_tensor_free(r);
        r = st == AX_OK ? c : NULL;
    }
    if (st == AX_OK)
        st = ax_op_record(r, "matmul", ax_matmul_backward, 2, (const ax_tensor *[]){a, b}, 2,
                          (const ax_tensor *[]){ea, eb}, 0, NULL);
done:
    ax_tensor_free(pa);
    ax_tensor_free(pb);
    ax_tensor_free(ea);
    ax_tensor_free(eb);
    ax_tensor_free(o);
    if (st != AX_OK) {
        ax_tensor_free(r);
        return st;
    }
    *out = r;
    return AX_OK;
}

/* ---- linear ----------------------------------------------------------------------
 * Through the backend's fused member (one GEMM plus one epilogue pass, and
 * the matching backward) when the table has it and x, weight and bias share
 * a dtype it supports; otherwise matmul + add + activation as ops. */

static ax_status ax_linear_check(const char *fn, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias,
                                 ax_linear_act_op act) {
    char sx[160], sw[160];
    if (!x || !weight) return AX_ERROR(AX_ERR_INVALID, "%s: %s is NULL", fn, !x ? "x" : "weight");
    if (act != AX_LINEAR_ACT_NONE && act != AX_LINEAR_ACT_RELU && act != AX_LINEAR_ACT_GELU_TANH)
        return AX_ERROR(AX_ERR_INVALID, "%s: act %d is not an ax_linear_act_op (NONE, RELU, GELU_TANH)", fn, (int)act);
    if (ax_op_same_device(fn, bias ? 3 : 2, (const ax_tensor *[]){x, weight, bias}) != AX_OK) return ax_error_status();
    if (ax_op_need_float(fn, "x", x) != AX_OK || ax_op_need_float(fn, "weight", weight) != AX_OK ||
        (bias && ax_op_need_float(fn, "bias", bias) != AX_OK))
        return ax_error_status();
    if (weight->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != weight->shape[1])
        return AX_ERROR(AX_ERR_INVALID, "%s: x %s does not fit weight %s (want [..., in] and [out, in])", fn,
                        ax_shape_str(sx, sizeof sx, x->ndim, x->shape),
                        ax_shape_str(sw, sizeof sw, weight->ndim, weight->shape));
    if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
        return AX_ERROR(AX_ERR_INVALID, "%s: bias %s does not match weight %s (want [out])", fn,
                        ax_shape_str(sx, sizeof sx, bias->ndim, bias->shape),
                        ax_shape_str(sw, sizeof sw, weight->ndim, weight->shape));
    return AX_OK;
}

/* matmul with a transposed view of weight, add, activation: three ops. */
static ax_status ax_linear_compose(ax_tensor **out, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias,
                                   ax_linear_act_op act) {
    ax_tensor *wt = NULL, *y = NULL, *z = NULL;
    ax_status st = ax_tensor_transpose(&wt, weight, 0, 1); /* a transposed view: no copy */
    if (st == AX_OK) st = ax_matmul_any(&y, x, wt);
    ax_tensor_free(wt);
    if (st == AX_OK && bias) {
        st = ax_add(&z, y, bias);
        ax_tensor_free(y);
        y = z;
    }
    if (st == AX_OK && act != AX_LINEAR_ACT_NONE) {
        st = act == AX_LINEAR_ACT_RELU ? ax_relu(&z, y) : ax_gelu(&z, y, true);
        ax_tensor_free(y);
        y = z;
    }
    if (st != AX_OK) {
        ax_tensor_free(y);
        return st;
    }
    *out = y;
    return AX_OK;
}

/* t as a contiguous tensor of dtype dt, not recorded (t itself when it is one). */
static ax_status ax_linear_stage(ax_tensor **out, const ax_tensor *t, ax_dtype dt) {
    *out = NULL;
    if (!t) return AX_OK;
    if (t->dtype != dt) return ax_cast_nograd(out, t, dt);
    ax_no_grad_begin();
    ax_status st = ax_tensor_contiguous(out, t);
    ax_no_grad_end();
    return st;
}

/* t [..., c] as a contiguous [rows, c] of dtype dt (no autograd). */
static ax_status ax_linear_stage_2d(ax_tensor **out, const ax_tensor *t, ax_dtype dt, int64_t rows, int64_t c) {
    ax_tensor *s = NULL;
    *out = NULL;
    ax_status st = ax_linear_stage(&s, t, dt);
    if (st != AX_OK) return st;
    ax_no_grad_begin();
    st = ax_tensor_reshape(out, s, 2, (int64_t[]){rows, c});
    ax_no_grad_end();
    ax_tensor_free(s);
    return st;
}

/* Saved: x as [M, K] (slot 0), weight (1), and pre (GELU) or y (RELU) [M, N]
 * (2), all staged as the kernels take them; f[0] = act. */
static ax_status ax_linear_fused_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *x = node->saved[0], *w = node->saved[1], *pre = node->saved[2];
    ax_linear_act_op act = (ax_linear_act_op)node->f[0];
    bool need_x = ax_node_needs_grad(node, 0), need_w = ax_node_needs_grad(node, 1),
         need_b = node->n_inputs > 2 && ax_node_needs_grad(node, 2);
    const ax_kernels *k = ax_op_kernels(g);
    if (!k) return ax_error_status();
    ax_device dev = g->storage->device;
    int64_t m = x->shape[0], n = w->shape[0];
    ax_tensor *gc = NULL, *dx = NULL, *dw = NULL, *db = NULL;
    ax_status st = ax_linear_stage_2d(&gc, g, x->dtype, m, n);
    if (st == AX_OK && need_x) st = ax_tensor_empty_on(&dx, 2, x->shape, x->dtype, dev);
    if (st == AX_OK && need_w) st = ax_tensor_empty_on(&dw, 2, w->shape, w->dtype, dev);
    if (st == AX_OK && need_w) st = ax_tensor_fill_(dw, 0.0);
    if (st == AX_OK && need_b) st = ax_tensor_empty_on(&db, 1, &n, AX_DTYPE_F32, dev);
    if (st == AX_OK && need_b) st = ax_tensor_fill_(db, 0.0);
    if (st == AX_OK) st = k->linear_backward(dx, dw, db, gc, x, w, pre, act);
    ax_tensor_free(gc);
    if (st == AX_OK && dx) { /* back to x's leading dims */
        ax_tensor *r;
        st = ax_tensor_reshape(&r, dx, node->in_ndim[0], node->in_shape[0]);
        ax_tensor_free(dx);
        dx = st == AX_OK ? r : NULL;
    }
    ax_tensor *outs[3] = {dx, dw, db};
    for (int i = 0; i < 3; i++) {
        if (st == AX_OK && outs[i]) {
            st = ax_grad_fit(node, i, &outs[i]); /* to the input's dtype */
            gin[i] = outs[i];
        } else {
            ax_tensor_free(outs[i]);
        }
        outs[i] = NULL;
    }
    return st;
}

static ax_status ax_linear_fused(const ax_kernels *k, ax_tensor **out, const ax_tensor *x, const ax_tensor *weight,
                                 const ax_tensor *bias, ax_linear_act_op act) {
    int64_t kk = weight->shape[1], n = weight->shape[0], m = 1;
    for (int d = 0; d < x->ndim - 1; d++) m *= x->shape[d];
    ax_dtype dt = x->dtype;
    ax_device dev = x->storage->device;
    const ax_tensor *inputs[3] = {x, weight, bias};
    int nin = bias ? 3 : 2;
    bool grad = ax_autograd_wanted(nin, inputs);
    ax_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL, *pre = NULL, *r = NULL;
    ax_status st = ax_linear_stage_2d(&xc, x, dt, m, kk);
    if (st == AX_OK) st = ax_linear_stage(&wc, weight, dt);
    if (st == AX_OK) st = ax_linear_stage(&bc, bias, dt);
    if (st == AX_OK) st = ax_tensor_empty_on(&y, 2, (int64_t[]){m, n}, dt, dev);
    if (st == AX_OK && grad && act == AX_LINEAR_ACT_GELU_TANH) st = ax_tensor_empty_on(&pre, 2, y->shape, dt, dev);
    if (st == AX_OK) st = k->linear(y, pre, xc, wc, bc, act);
    int64_t shape[AX_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = n;
    if (st == AX_OK) {
        ax_no_grad_begin();
        st = ax_tensor_reshape(&r, y, x->ndim, shape);
        ax_no_grad_end();
    }
    /* RELU's backward reads y's sign: y itself (a separate header from r,
     * which carries the node, so no reference cycle) */
    const ax_tensor *saved[3] = {xc, wc, act == AX_LINEAR_ACT_GELU_TANH ? pre : act == AX_LINEAR_ACT_RELU ? y : NULL};
    const double f[1] = {(double)act};
    if (st == AX_OK) st = ax_op_record(r, "linear", ax_linear_fused_backward, nin, inputs, 3, saved, 1, f);
    ax_tensor_free(xc);
    ax_tensor_free(wc);
    ax_tensor_free(bc);
    ax_tensor_free(y);
    ax_tensor_free(pre);
    if (st != AX_OK) {
        ax_tensor_free(r);
        return st;
    }
    *out = r;
    return AX_OK;
}

static ax_status ax_linear_any(ax_tensor **out, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias,
                               ax_linear_act_op act) {
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    bool fused = AX_KERNELS_HAS(k, linear) && AX_KERNELS_HAS(k, linear_backward) && weight->dtype == x->dtype &&
                 (!bias || bias->dtype == x->dtype) && k->supports(AX_KOP_MATMUL, x->dtype);
    return fused ? ax_linear_fused(k, out, x, weight, bias, act) : ax_linear_compose(out, x, weight, bias, act);
}

/* Inside an autocast region (axon/amp.h) x, weight and bias are cast to the
 * region's half dtype by recorded casts, as ax_matmul casts its operands;
 * the output is half. */
static ax_status ax_linear_run(const char *fn, ax_tensor **out, const ax_tensor *x, const ax_tensor *weight,
                               const ax_tensor *bias, ax_linear_act_op act) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out (the output pointer) is NULL", fn);
    *out = NULL;
    if (ax_linear_check(fn, x, weight, bias, act) != AX_OK) return ax_error_status();
    if (!ax_autocast_lowp_wanted(x->dtype == AX_DTYPE_F32 ? x : weight, AX_KOP_MATMUL))
        return ax_linear_any(out, x, weight, bias, act);
    ax_tensor *xl = NULL, *wl = NULL, *bl = NULL;
    ax_status st = ax_autocast_lowp(&xl, x, AX_KOP_MATMUL);
    if (st == AX_OK) st = ax_autocast_lowp(&wl, weight, AX_KOP_MATMUL);
    if (st == AX_OK) st = ax_autocast_lowp(&bl, bias, AX_KOP_MATMUL);
    if (st == AX_OK) st = ax_linear_any(out, xl, wl, bl, act);
    ax_tensor_free(xl);
    ax_tensor_free(wl);
    ax_tensor_free(bl);
    return st;
}

ax_status ax_linear(ax_tensor **out, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias) {
    return ax_linear_run("ax_linear", out, x, weight, bias, AX_LINEAR_ACT_NONE);
}

ax_status ax_linear_act(ax_tensor **out, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias,
                        ax_linear_act_op act) {
    return ax_linear_run("ax_linear_act", out, x, weight, bias, act);
}
