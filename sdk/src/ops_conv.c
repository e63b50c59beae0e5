/* Convolution front-ends: argument checks with PyTorch's rules, f32
 * contiguous staging for the kernels, and autograd through the backend's
 * backward kernels (dx, dw, db computed only where needed). */
#include <string.h>

#include "axon/amp.h"
#include "axon/conv.h"
#include "ops_internal.h"

/* Bound on stride/padding/dilation/output_padding so size arithmetic
 * cannot overflow. */
#define AX_CONV_PARAM_MAX ((int64_t)1 << 31)

ax_conv_params ax_conv_params_default(void) {
    ax_conv_params p;
    memset(&p, 0, sizeof p);
    for (int d = 0; d < 3; d++) p.stride[d] = p.dilation[d] = 1;
    p.groups = 1;
    return p;
}

static bool ax_conv_in_range(const int64_t *v, int64_t lo) {
    for (int d = 0; d < 3; d++)
        if (v[d] < lo || v[d] >= AX_CONV_PARAM_MAX) return false;
    return true;
}

/* "[a, b, c]" of a 3-vector into buf. */
static const char *ax_conv_vec(char *buf, size_t size, const int64_t *v) {
    return ax_shape_str(buf, size, 3, v);
}

static ax_status ax_conv_check_params(const char *fn, bool transposed, const ax_conv_params *p) {
    char s1[96], s2[96], s3[96];
    if (p->groups < 1 || p->groups >= AX_CONV_PARAM_MAX)
        return AX_ERROR(AX_ERR_INVALID, "%s: groups must be >= 1, got %lld", fn, (long long)p->groups);
    if (!ax_conv_in_range(p->stride, 1))
        return AX_ERROR(AX_ERR_INVALID, "%s: stride must be >= 1 in every dim, got %s", fn,
                        ax_conv_vec(s1, sizeof s1, p->stride));
    if (!ax_conv_in_range(p->padding, 0))
        return AX_ERROR(AX_ERR_INVALID, "%s: padding must be >= 0 in every dim, got %s", fn,
                        ax_conv_vec(s1, sizeof s1, p->padding));
    if (!ax_conv_in_range(p->dilation, 1))
        return AX_ERROR(AX_ERR_INVALID, "%s: dilation must be >= 1 in every dim, got %s", fn,
                        ax_conv_vec(s1, sizeof s1, p->dilation));
    if (!transposed) {
        for (int d = 0; d < 3; d++)
            if (p->output_padding[d] != 0)
                return AX_ERROR(AX_ERR_INVALID, "%s: output_padding %s is for transposed convolution; must be 0", fn,
                                ax_conv_vec(s1, sizeof s1, p->output_padding));
        return AX_OK;
    }
    if (!ax_conv_in_range(p->output_padding, 0))
        return AX_ERROR(AX_ERR_INVALID, "%s: output_padding must be >= 0 in every dim, got %s", fn,
                        ax_conv_vec(s1, sizeof s1, p->output_padding));
    for (int d = 0; d < 3; d++)
        if (p->output_padding[d] >= p->stride[d] && p->output_padding[d] >= p->dilation[d])
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: output_padding %s must be smaller than stride %s or dilation %s in every dim", fn,
                            ax_conv_vec(s1, sizeof s1, p->output_padding), ax_conv_vec(s2, sizeof s2, p->stride),
                            ax_conv_vec(s3, sizeof s3, p->dilation));
    return AX_OK;
}

/* Validate everything and compute y's shape. */
static ax_status ax_conv_check(const char *fn, bool transposed, const ax_tensor *x, const ax_tensor *w,
                               const ax_tensor *b, const ax_conv_params *p, int64_t *yshape) {
    char sx[160], sw[160], sb[160], s1[96], s2[96], s3[96];
    if (!x || !w) return AX_ERROR(AX_ERR_INVALID, "%s: %s is NULL", fn, !x ? "x" : "w");
    int n = b ? 3 : 2;
    if (ax_op_same_device(fn, n, (const ax_tensor *[]){x, w, b}) != AX_OK) return ax_error_status();
    if (ax_op_need_float(fn, "x", x) != AX_OK || ax_op_need_float(fn, "w", w) != AX_OK ||
        (b && ax_op_need_float(fn, "b", b) != AX_OK))
        return ax_error_status();
    if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
        return AX_ERROR(AX_ERR_INVALID, "%s: x (%s), w (%s)%s%s%s must share one dtype", fn, ax_dtype_name(x->dtype),
                        ax_dtype_name(w->dtype), b ? " and b (" : "", b ? ax_dtype_name(b->dtype) : "", b ? ")" : "");
    ax_shape_str(sx, sizeof sx, x->ndim, x->shape);
    ax_shape_str(sw, sizeof sw, w->ndim, w->shape);
    if (x->ndim != 5) return AX_ERROR(AX_ERR_INVALID, "%s: x must be 5-D [N, C, D, H, W], got %s", fn, sx);
    if (w->ndim != 5)
        return AX_ERROR(AX_ERR_INVALID, "%s: w must be 5-D %s, got %s", fn,
                        transposed ? "[Ci, Co/groups, kD, kH, kW]" : "[Co, Ci/groups, kD, kH, kW]", sw);
    for (int d = 1; d < 5; d++)
        if (x->shape[d] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: x %s has an empty channel or spatial dim", fn, sx);
    for (int d = 0; d < 5; d++)
        if (w->shape[d] < 1) return AX_ERROR(AX_ERR_INVALID, "%s: w %s has an empty dim", fn, sw);
    if (ax_conv_check_params(fn, transposed, p) != AX_OK) return ax_error_status();
    int64_t g = p->groups, ci = x->shape[1], co;
    if (transposed) {
        if (w->shape[0] != ci)
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: x %s has %lld channels but w %s (layout [Ci, Co/groups, k...]) wants %lld", fn, sx,
                            (long long)ci, sw, (long long)w->shape[0]);
        if (ci % g)
            return AX_ERROR(AX_ERR_INVALID, "%s: x %s: in channels %lld are not divisible by groups %lld", fn, sx,
                            (long long)ci, (long long)g);
        co = w->shape[1] * g;
    } else {
        if (ci % g)
            return AX_ERROR(AX_ERR_INVALID, "%s: x %s: in channels %lld are not divisible by groups %lld", fn, sx,
                            (long long)ci, (long long)g);
        if (w->shape[1] * g != ci)
            return AX_ERROR(AX_ERR_INVALID, "%s: x %s has %lld channels but w %s with groups %lld wants %lld", fn, sx,
                            (long long)ci, sw, (long long)g, (long long)(w->shape[1] * g));
        co = w->shape[0];
        if (co % g)
            return AX_ERROR(AX_ERR_INVALID, "%s: w %s: out channels %lld are not divisible by groups %lld", fn, sw,
                            (long long)co, (long long)g);
    }
    if (b && (b->ndim != 1 || b->shape[0] != co))
        return AX_ERROR(AX_ERR_INVALID, "%s: b %s must be [Co] = [%lld] for x %s and w %s", fn,
                        ax_shape_str(sb, sizeof sb, b->ndim, b->shape), (long long)co, sx, sw);
    yshape[0] = x->shape[0];
    yshape[1] = co;
    for (int d = 0; d < 3; d++) {
        int64_t in = x->shape[2 + d], range = p->dilation[d] * (w->shape[2 + d] - 1) + 1, out;
        if (transposed)
            out = (in - 1) * p->stride[d] - 2 * p->padding[d] + range + p->output_padding[d];
        else { /* floor division, as PyTorch reports sizes for too-small inputs */
            int64_t span = in + 2 * p->padding[d] - range;
            out = (span >= 0 ? span / p->stride[d] : -((-span + p->stride[d] - 1) / p->stride[d])) + 1;
        }
        if (out < 1)
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: output size %lld < 1 in spatial dim %d for x %s, w %s, stride %s, padding %s, "
                            "dilation %s",
                            fn, (long long)out, d, sx, sw, ax_conv_vec(s1, sizeof s1, p->stride),
                            ax_conv_vec(s2, sizeof s2, p->padding), ax_conv_vec(s3, sizeof s3, p->dilation));
        yshape[2 + d] = out;
    }
    return AX_OK;
}

/* The dtype the kernels compute in: a half type when x and w share it and
 * the backend has native half convolutions (cuDNN: f32 accumulation),
 * else f32. */
static ax_dtype ax_conv_compute_dtype(const ax_kernels *k, const ax_tensor *x, const ax_tensor *w) {
    if (x->dtype != AX_DTYPE_F32 && x->dtype == w->dtype && ax_dtype_is_float(x->dtype) && k->supports(AX_KOP_CONV, x->dtype))
        return x->dtype;
    return AX_DTYPE_F32;
}

/* t as a contiguous tensor of dtype dt the kernels can take (a new
 * reference to t itself when it already is one). Not recorded by autograd. */
static ax_status ax_conv_stage_as(ax_tensor **out, const ax_tensor *t, ax_dtype dt) {
    *out = NULL;
    if (!t) return AX_OK;
    if (t->dtype != dt) return ax_cast_nograd(out, t, dt); /* a fresh contiguous copy */
    ax_no_grad_begin();
    ax_status st = ax_tensor_contiguous(out, t);
    ax_no_grad_end();
    return st;
}

static ax_status ax_conv_stage(ax_tensor **out, const ax_tensor *t) { return ax_conv_stage_as(out, t, AX_DTYPE_F32); }

static void ax_conv_pack(ax_node *node, const ax_conv_params *p) {
    for (int d = 0; d < 3; d++) {
        node->i[d] = p->stride[d];
        node->i[3 + d] = p->padding[d];
        node->i[6 + d] = p->dilation[d];
        node->i[9 + d] = p->output_padding[d];
    }
    node->i[12] = p->groups;
}

static ax_conv_params ax_conv_unpack(const ax_node *node) {
    ax_conv_params p;
    for (int d = 0; d < 3; d++) {
        p.stride[d] = node->i[d];
        p.padding[d] = node->i[3 + d];
        p.dilation[d] = node->i[6 + d];
        p.output_padding[d] = node->i[9 + d];
    }
    p.groups = node->i[12];
    return p;
}

/* Saved: x (slot 0) and w (slot 1) as given (not the f32 copies, so bf16
 * inputs keep their size until backward). */
static ax_status ax_conv_backward_any(ax_node *node, const ax_tensor *g, ax_tensor **gin, bool transposed) {
    ax_conv_params p = ax_conv_unpack(node);
    const ax_tensor *x = node->saved[0], *w = node->saved[1];
    bool need_x = ax_node_needs_grad(node, 0), need_w = ax_node_needs_grad(node, 1),
         need_b = node->n_inputs > 2 && ax_node_needs_grad(node, 2);
    const ax_kernels *k = ax_op_kernels(g);
    if (!k) return ax_error_status();
    ax_tensor *gc = NULL, *xc = NULL, *wc = NULL, *dx = NULL, *dw = NULL, *db = NULL;
    ax_device dev = g->storage->device;
    ax_dtype cd = ax_conv_compute_dtype(k, x, w); /* dx, dw in it; db stays f32 */
    ax_status st = ax_conv_stage_as(&gc, g, cd);
    if (st == AX_OK) st = ax_conv_stage_as(&xc, x, cd);
    if (st == AX_OK) st = ax_conv_stage_as(&wc, w, cd);
    if (st == AX_OK && need_x) st = ax_tensor_empty_on(&dx, 5, x->shape, cd, dev);
    if (st == AX_OK && need_w) st = ax_tensor_empty_on(&dw, 5, w->shape, cd, dev);
    if (st == AX_OK && need_w) st = ax_tensor_fill_(dw, 0.0);
    if (st == AX_OK && need_b) st = ax_tensor_empty_on(&db, 1, &gc->shape[1], AX_DTYPE_F32, dev);
    if (st == AX_OK && need_b) st = ax_tensor_fill_(db, 0.0);
    if (st == AX_OK)
        st = transposed ? k->conv_transpose3d_backward(dx, dw, db, gc, xc, wc, &p)
                        : k->conv3d_backward(dx, dw, db, gc, xc, wc, &p);
    ax_tensor_free(gc);
    ax_tensor_free(xc);
    ax_tensor_free(wc);
    ax_tensor *outs[3] = {dx, dw, db};
    for (int i = 0; i < 3; i++) {
        if (st == AX_OK && outs[i]) {
            st = ax_grad_fit(node, i, &outs[i]); /* back to the input's dtype */
            gin[i] = outs[i];
        } else {
            ax_tensor_free(outs[i]);
        }
        outs[i] = NULL;
    }
    return st;
}

static ax_status ax_conv3d_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    return ax_conv_backward_any(node, g, gin, false);
}

static ax_status ax_conv_transpose3d_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    return ax_conv_backward_any(node, g, gin, true);
}

static ax_status ax_conv_any(const char *fn, bool transposed, ax_tensor **y, const ax_tensor *x, const ax_tensor *w,
                             const ax_tensor *b, const ax_conv_params *params) {
    if (!y) return AX_ERROR(AX_ERR_INVALID, "%s: y (the output pointer) is NULL", fn);
    *y = NULL;
    ax_conv_params p = params ? *params : ax_conv_params_default();
    int64_t yshape[5];
    if (ax_conv_check(fn, transposed, x, w, b, &p, yshape) != AX_OK) return ax_error_status();
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_tensor *xc = NULL, *wc = NULL, *bc = NULL, *o = NULL, *r = NULL;
    ax_dtype cd = ax_conv_compute_dtype(k, x, w);
    ax_status st = ax_conv_stage_as(&xc, x, cd);
    if (st == AX_OK) st = ax_conv_stage_as(&wc, w, cd);
    if (st == AX_OK) st = ax_conv_stage(&bc, b);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, 5, yshape, cd, x->storage->device);
    if (st == AX_OK)
        st = transposed ? k->conv_transpose3d(o, xc, wc, bc, &p) : k->conv3d(o, xc, wc, bc, &p);
    ax_tensor_free(xc);
    ax_tensor_free(wc);
    ax_tensor_free(bc);
    if (st == AX_OK && x->dtype != cd) {
        st = ax_cast_nograd(&r, o, x->dtype);
        ax_tensor_free(o);
    } else {
        r = o;
    }
    o = NULL;
    const ax_tensor *inputs[3] = {x, w, b};
    int n = b ? 3 : 2;
    if (st == AX_OK && ax_autograd_wanted(n, inputs)) {
        ax_node *node;
        st = ax_node_new(&node, transposed ? "conv_transpose3d" : "conv3d",
                         transposed ? ax_conv_transpose3d_backward : ax_conv3d_backward, n, inputs);
        if (st == AX_OK) {
            ax_node_save(node, 0, x);
            ax_node_save(node, 1, w);
            ax_conv_pack(node, &p);
            ax_node_attach(r, node);
        }
    }
    if (st != AX_OK) {
        ax_tensor_free(r);
        return st;
    }
    *y = r;
    return AX_OK;
}

/* Inside an autocast region (axon/amp.h) x, w and b are cast to the
 * region's half dtype by recorded casts (the f32 master weights get f32
 * gradients through them) and the output is half. */
static ax_status ax_conv_autocast(const char *fn, bool transposed, ax_tensor **y, const ax_tensor *x,
                                  const ax_tensor *w, const ax_tensor *b, const ax_conv_params *p) {
    if (!x || !w || !ax_autocast_lowp_wanted(x->dtype == AX_DTYPE_F32 ? x : w, AX_KOP_CONV))
        return ax_conv_any(fn, transposed, y, x, w, b, p);
    ax_tensor *xl = NULL, *wl = NULL, *bl = NULL;
    ax_status st = ax_autocast_lowp(&xl, x, AX_KOP_CONV);
    if (st == AX_OK) st = ax_autocast_lowp(&wl, w, AX_KOP_CONV);
    if (st == AX_OK) st = ax_autocast_lowp(&bl, b, AX_KOP_CONV);
    if (st == AX_OK) st = ax_conv_any(fn, transposed, y, xl, wl, bl, p);
    else if (y) *y = NULL;
    ax_tensor_free(xl);
    ax_tensor_free(wl);
    ax_tensor_free(bl);
    return st;
}

ax_status ax_conv3d(ax_tensor **y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                    const ax_conv_params *p) {
    return ax_conv_autocast("ax_conv3d", false, y, x, w, b, p);
}

ax_status ax_conv_transpose3d(ax_tensor **y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                              const ax_conv_params *p) {
    return ax_conv_autocast("ax_conv_transpose3d", true, y, x, w, b, p);
}
