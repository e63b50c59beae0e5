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

ax_status ax_linear(ax_tensor **out, const ax_tensor *x, const ax_tensor *weight, const ax_tensor *bias) {
    char sx[160], sw[160];
    *out = NULL;
    if (weight->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != weight->shape[1])
        return AX_ERROR(AX_ERR_INVALID, "ax_linear: x %s does not fit weight %s (want [..., in] and [out, in])",
                        ax_shape_str(sx, sizeof sx, x->ndim, x->shape),
                        ax_shape_str(sw, sizeof sw, weight->ndim, weight->shape));
    if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
        return AX_ERROR(AX_ERR_INVALID, "ax_linear: bias %s does not match weight %s (want [out])",
                        ax_shape_str(sx, sizeof sx, bias->ndim, bias->shape),
                        ax_shape_str(sw, sizeof sw, weight->ndim, weight->shape));
    ax_tensor *wt = NULL, *y = NULL;
    ax_status st = ax_tensor_transpose(&wt, weight, 0, 1); /* a transposed view: no copy */
    if (st == AX_OK) st = ax_matmul(&y, x, wt);
    ax_tensor_free(wt);
    if (st == AX_OK && bias) {
        /* autocast: the bias joins the product's half dtype (recorded cast) */
        ax_tensor *bl = NULL;
        st = y->dtype != bias->dtype && ax_autocast_dtype() == y->dtype ? ax_tensor_to_dtype(&bl, bias, y->dtype)
                                                                         : (bl = ax_tensor_retain((ax_tensor *)bias), AX_OK);
        if (st == AX_OK) st = ax_add(out, y, bl);
        ax_tensor_free(bl);
        ax_tensor_free(y);
        return st;
    }
    if (st != AX_OK) {
        ax_tensor_free(y);
        return st;
    }
    *out = y;
    return AX_OK;
}
