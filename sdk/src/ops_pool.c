/* Pooling, adaptive average pooling, interpolation and padding: argument
 * checks with PyTorch's rules, dtype handling (kernels compute f32) and
 * autograd records. The math is in the backend's kernels (kernels/cpu/
 * cpu_pool.c, cpu_resample.c). */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "axon/pool.h"
#include "ops_internal.h"

/* ---- shared helpers ----------------------------------------------------------- */

/* The backend's kernels, if it has this family (the table is append-only). */
static const ax_kernels *ax_pool_kernels(const char *fn, const ax_tensor *t) {
    const ax_kernels *k = ax_op_kernels(t);
    if (!k) return NULL;
    if (k->size < offsetof(ax_kernels, pad_backward) + sizeof k->pad_backward || !k->pool3d || !k->pool3d_backward ||
        !k->adaptive_avg_pool3d || !k->adaptive_avg_pool3d_backward || !k->interpolate || !k->interpolate_backward ||
        !k->pad || !k->pad_backward) {
        AX_ERROR(AX_ERR_UNSUPPORTED, "%s: the %s backend has no pooling / resampling kernels", fn, k->name);
        return NULL;
    }
    return k;
}

/* t as f32 for the kernels: a new reference to t itself when it is one. */
static ax_status ax_as_f32(ax_tensor **out, const ax_tensor *t) {
    if (t->dtype == AX_DTYPE_F32) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_cast_nograd(out, t, AX_DTYPE_F32);
}

/* Replace the f32 kernel result *t by its conversion to dtype. */
static ax_status ax_f32_to(ax_tensor **t, ax_dtype dtype) {
    if ((*t)->dtype == dtype) return AX_OK;
    ax_tensor *c;
    ax_status st = ax_cast_nograd(&c, *t, dtype);
    ax_tensor_free(*t);
    *t = st == AX_OK ? c : NULL;
    return st;
}

static char *ax_triple_str(char *buf, size_t n, const int64_t v[3]) {
    snprintf(buf, n, "(%lld, %lld, %lld)", (long long)v[0], (long long)v[1], (long long)v[2]);
    return buf;
}

static ax_status ax_need_x(const char *fn, const ax_tensor *x) {
    if (!x) return AX_ERROR(AX_ERR_INVALID, "%s: x is NULL", fn);
    return AX_OK;
}

/* Run body5 on a 5-D view of an unbatched [C, D, H, W] x and drop the batch
 * dim of its outputs again (the views carry the gradient). */
typedef ax_status (*ax_pool5_fn)(ax_tensor **y, ax_tensor **idx, const ax_tensor *x, const void *args);

static ax_status ax_pool_batched(const char *fn, ax_pool5_fn body5, ax_tensor **y, ax_tensor **idx, const ax_tensor *x,
                                 const void *args) {
    *y = NULL;
    if (idx) *idx = NULL;
    if (ax_need_x(fn, x) != AX_OK) return ax_error_status();
    if (x->ndim == 5) return body5(y, idx, x, args);
    if (x->ndim != 4) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: x must be [N, C, D, H, W] or [C, D, H, W], got %s", fn,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    }
    ax_tensor *x5 = NULL, *y5 = NULL, *i5 = NULL;
    ax_status st = ax_tensor_unsqueeze(&x5, x, 0);
    if (st == AX_OK) st = body5(&y5, idx ? &i5 : NULL, x5, args);
    if (st == AX_OK) st = ax_tensor_squeeze(y, y5, 0);
    if (st == AX_OK && idx) st = ax_tensor_squeeze(idx, i5, 0);
    ax_tensor_free(x5);
    ax_tensor_free(y5);
    ax_tensor_free(i5);
    if (st != AX_OK) {
        ax_tensor_free(*y);
        *y = NULL;
        if (idx) {
            ax_tensor_free(*idx);
            *idx = NULL;
        }
    }
    return st;
}

/* ---- max / avg pooling --------------------------------------------------------- */

typedef struct ax_pool_args {
    const char *fn;
    ax_pool_params p;
} ax_pool_args;

/* PyTorch's pooling_output_shape (dilation 1). */
static int64_t ax_pool_out_size(int64_t in, int64_t k, int64_t s, int64_t pad, bool ceil_mode) {
    int64_t num = in + 2 * pad - k + (ceil_mode ? s - 1 : 0);
    int64_t q = num >= 0 ? num / s : -((-num + s - 1) / s); /* floor division */
    int64_t out = q + 1;
    if (ceil_mode && (out - 1) * s >= in + pad) out--;
    return out;
}

/* Check pooling geometry against x (5-D) and compute the output size. */
static ax_status ax_pool_check(const char *fn, const ax_pool_params *p, const ax_tensor *x, int64_t out[3]) {
    char s1[64], s2[64], s3[160], s4[64], s5[64];
    for (int i = 0; i < 3; i++) {
        if (p->kernel[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: kernel %s must be positive", fn, ax_triple_str(s1, sizeof s1, p->kernel));
        if (p->stride[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: stride %s must be positive", fn, ax_triple_str(s1, sizeof s1, p->stride));
        if (p->padding[i] < 0 || p->padding[i] > p->kernel[i] / 2)
            return AX_ERROR(AX_ERR_INVALID, "%s: padding %s must be >= 0 and at most half of kernel %s (as in PyTorch)",
                            fn, ax_triple_str(s1, sizeof s1, p->padding), ax_triple_str(s2, sizeof s2, p->kernel));
    }
    for (int d = 1; d < 5; d++)
        if (x->shape[d] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: x %s must have non-empty C, D, H, W", fn,
                            ax_shape_str(s3, sizeof s3, x->ndim, x->shape));
    bool small = false;
    for (int i = 0; i < 3; i++) {
        out[i] = ax_pool_out_size(x->shape[2 + i], p->kernel[i], p->stride[i], p->padding[i], p->ceil_mode);
        small = small || out[i] < 1;
    }
    if (small)
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: x %s with kernel %s, stride %s, padding %s gives output size %s: the kernel is larger "
                        "than the padded input",
                        fn, ax_shape_str(s3, sizeof s3, x->ndim, x->shape), ax_triple_str(s1, sizeof s1, p->kernel),
                        ax_triple_str(s2, sizeof s2, p->stride), ax_triple_str(s4, sizeof s4, p->padding),
                        ax_triple_str(s5, sizeof s5, out));
    return AX_OK;
}

static void ax_pool_params_save(ax_node *node, const ax_pool_params *p) {
    for (int i = 0; i < 3; i++) {
        node->i[i] = p->kernel[i];
        node->i[3 + i] = p->stride[i];
        node->i[6 + i] = p->padding[i];
    }
    node->i[9] = p->mode;
    node->i[10] = p->ceil_mode;
    node->i[11] = p->count_include_pad;
}

static ax_pool_params ax_pool_params_load(const ax_node *node) {
    ax_pool_params p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < 3; i++) {
        p.kernel[i] = node->i[i];
        p.stride[i] = node->i[3 + i];
        p.padding[i] = node->i[6 + i];
    }
    p.mode = (ax_pool_mode)node->i[9];
    p.ceil_mode = node->i[10] != 0;
    p.count_include_pad = node->i[11] != 0;
    return p;
}

static ax_status ax_pool_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    ax_pool_params p = ax_pool_params_load(node);
    const ax_kernels *k = ax_pool_kernels(node->name, g);
    if (!k) return ax_error_status();
    ax_tensor *gc = NULL, *dx = NULL;
    ax_status st = ax_as_f32(&gc, g);
    if (st == AX_OK) st = ax_tensor_empty_on(&dx, node->in_ndim[0], node->in_shape[0], AX_DTYPE_F32, g->storage->device);
    if (st == AX_OK) st = k->pool3d_backward(dx, gc, node->saved[0], &p);
    ax_tensor_free(gc);
    if (st != AX_OK) {
        ax_tensor_free(dx);
        return st;
    }
    gin[0] = dx;
    return ax_grad_fit(node, 0, &gin[0]);
}

/* The 5-D body of max and avg pooling. */
static ax_status ax_pool5(ax_tensor **y, ax_tensor **indices, const ax_tensor *x, const void *args) {
    const ax_pool_args *a = args;
    const char *fn = a->fn;
    const ax_pool_params p = a->p;
    bool max = p.mode == AX_POOL_MAX;
    int64_t out[3];
    if (ax_op_need_float(fn, "x", x) != AX_OK) return ax_error_status();
    if (ax_pool_check(fn, &p, x, out) != AX_OK) return ax_error_status();
    const ax_kernels *k = ax_pool_kernels(fn, x);
    if (!k) return ax_error_status();
    bool grad = ax_autograd_wanted(1, &x);
    int64_t shape[5] = {x->shape[0], x->shape[1], out[0], out[1], out[2]};
    ax_tensor *cx = NULL, *o = NULL, *ix = NULL;
    ax_status st = ax_as_f32(&cx, x);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, 5, shape, AX_DTYPE_F32, x->storage->device);
    if (st == AX_OK && max && (indices || grad)) st = ax_tensor_empty_on(&ix, 5, shape, AX_DTYPE_I64, x->storage->device);
    if (st == AX_OK) st = k->pool3d(o, ix, cx, &p);
    ax_tensor_free(cx);
    if (st == AX_OK) st = ax_f32_to(&o, x->dtype);
    if (st == AX_OK && grad) {
        ax_node *node;
        st = ax_node_new(&node, max ? "max_pool3d" : "avg_pool3d", ax_pool_backward, 1, &x);
        if (st == AX_OK) {
            ax_pool_params_save(node, &p);
            if (max) ax_node_save(node, 0, ix);
            ax_node_attach(o, node);
        }
    }
    if (st != AX_OK) {
        if (!strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
        ax_tensor_free(o);
        ax_tensor_free(ix);
        return st;
    }
    *y = o;
    if (indices)
        *indices = ix;
    else
        ax_tensor_free(ix);
    return AX_OK;
}

/* Pool params from the user's arrays (stride NULL = kernel, padding NULL = 0). */
static ax_status ax_pool_args_make(ax_pool_args *a, const char *fn, ax_pool_mode mode, const int64_t kernel[3],
                                   const int64_t stride[3], const int64_t padding[3], bool ceil_mode,
                                   bool count_include_pad) {
    memset(a, 0, sizeof *a);
    a->fn = fn;
    if (!kernel) return AX_ERROR(AX_ERR_INVALID, "%s: kernel is NULL", fn);
    a->p.mode = mode;
    a->p.ceil_mode = ceil_mode;
    a->p.count_include_pad = count_include_pad;
    for (int i = 0; i < 3; i++) {
        a->p.kernel[i] = kernel[i];
        a->p.stride[i] = stride ? stride[i] : kernel[i];
        a->p.padding[i] = padding ? padding[i] : 0;
    }
    return AX_OK;
}

ax_status ax_max_pool3d(ax_tensor **y, ax_tensor **indices, const ax_tensor *x, const int64_t kernel[3],
                        const int64_t stride[3], const int64_t padding[3], bool ceil_mode) {
    ax_pool_args a;
    *y = NULL;
    if (indices) *indices = NULL;
    if (ax_pool_args_make(&a, "ax_max_pool3d", AX_POOL_MAX, kernel, stride, padding, ceil_mode, false) != AX_OK)
        return ax_error_status();
    return ax_pool_batched(a.fn, ax_pool5, y, indices, x, &a);
}

ax_status ax_avg_pool3d(ax_tensor **y, const ax_tensor *x, const int64_t kernel[3], const int64_t stride[3],
                        const int64_t padding[3], bool ceil_mode, bool count_include_pad) {
    ax_pool_args a;
    *y = NULL;
    if (ax_pool_args_make(&a, "ax_avg_pool3d", AX_POOL_AVG, kernel, stride, padding, ceil_mode, count_include_pad) !=
        AX_OK)
        return ax_error_status();
    return ax_pool_batched(a.fn, ax_pool5, y, NULL, x, &a);
}

/* ---- adaptive average pooling --------------------------------------------------- */

static ax_status ax_adaptive_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_kernels *k = ax_pool_kernels("ax_adaptive_avg_pool3d", g);
    if (!k) return ax_error_status();
    ax_tensor *gc = NULL, *dx = NULL;
    ax_status st = ax_as_f32(&gc, g);
    if (st == AX_OK) st = ax_tensor_empty_on(&dx, node->in_ndim[0], node->in_shape[0], AX_DTYPE_F32, g->storage->device);
    if (st == AX_OK) st = k->adaptive_avg_pool3d_backward(dx, gc);
    ax_tensor_free(gc);
    if (st != AX_OK) {
        ax_tensor_free(dx);
        return st;
    }
    gin[0] = dx;
    return ax_grad_fit(node, 0, &gin[0]);
}

static ax_status ax_adaptive5(ax_tensor **y, ax_tensor **unused, const ax_tensor *x, const void *args) {
    const char *fn = "ax_adaptive_avg_pool3d";
    const int64_t *size = args;
    char s1[160], s2[64];
    (void)unused;
    if (ax_op_need_float(fn, "x", x) != AX_OK) return ax_error_status();
    for (int i = 0; i < 3; i++)
        if (size[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: out_size %s must be >= 1 for x %s", fn,
                            ax_triple_str(s2, sizeof s2, size), ax_shape_str(s1, sizeof s1, x->ndim, x->shape));
    for (int d = 1; d < 5; d++)
        if (x->shape[d] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: x %s must have non-empty C, D, H, W", fn,
                            ax_shape_str(s1, sizeof s1, x->ndim, x->shape));
    const ax_kernels *k = ax_pool_kernels(fn, x);
    if (!k) return ax_error_status();
    int64_t shape[5] = {x->shape[0], x->shape[1], size[0], size[1], size[2]};
    ax_tensor *cx = NULL, *o = NULL;
    ax_status st = ax_as_f32(&cx, x);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, 5, shape, AX_DTYPE_F32, x->storage->device);
    if (st == AX_OK) st = k->adaptive_avg_pool3d(o, cx);
    ax_tensor_free(cx);
    if (st == AX_OK) st = ax_f32_to(&o, x->dtype);
    if (st == AX_OK) st = ax_op_record(o, "adaptive_avg_pool3d", ax_adaptive_backward, 1, &x, 0, NULL, 0, NULL);
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *y = o;
    return AX_OK;
}

ax_status ax_adaptive_avg_pool3d(ax_tensor **y, const ax_tensor *x, const int64_t out_size[3]) {
    if (!out_size) {
        *y = NULL;
        return AX_ERROR(AX_ERR_INVALID, "ax_adaptive_avg_pool3d: out_size is NULL");
    }
    return ax_pool_batched("ax_adaptive_avg_pool3d", ax_adaptive5, y, NULL, x, out_size);
}

/* ---- interpolation --------------------------------------------------------------- */

static ax_status ax_interp_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_kernels *k = ax_pool_kernels("ax_interpolate", g);
    if (!k) return ax_error_status();
    ax_tensor *gc = NULL, *dx = NULL;
    ax_status st = ax_as_f32(&gc, g);
    if (st == AX_OK) st = ax_tensor_empty_on(&dx, node->in_ndim[0], node->in_shape[0], AX_DTYPE_F32, g->storage->device);
    if (st == AX_OK) st = k->interpolate_backward(dx, gc, (ax_interp_mode)node->i[0], node->i[1] != 0);
    ax_tensor_free(gc);
    if (st != AX_OK) {
        ax_tensor_free(dx);
        return st;
    }
    gin[0] = dx;
    return ax_grad_fit(node, 0, &gin[0]);
}

static ax_status ax_interp_check_x(const char *fn, const ax_tensor *x, ax_interp_mode mode, bool align_corners) {
    char s[160];
    if (ax_need_x(fn, x) != AX_OK) return ax_error_status();
    if (x->ndim < 3 || x->ndim > 5)
        return AX_ERROR(AX_ERR_INVALID, "%s: x must be [N, C, W], [N, C, H, W] or [N, C, D, H, W], got %s", fn,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    if (mode != AX_INTERP_NEAREST && mode != AX_INTERP_TRILINEAR)
        return AX_ERROR(AX_ERR_INVALID, "%s: unknown mode %d (AX_INTERP_NEAREST or AX_INTERP_TRILINEAR)", fn, (int)mode);
    if (mode == AX_INTERP_NEAREST && align_corners)
        return AX_ERROR(AX_ERR_INVALID, "%s: align_corners is only for linear modes, not nearest (as in PyTorch)", fn);
    if (mode == AX_INTERP_TRILINEAR && ax_op_need_float(fn, "x", x) != AX_OK) return ax_error_status();
    for (int d = 1; d < x->ndim; d++)
        if (x->shape[d] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: x %s must have non-empty channel and spatial dims", fn,
                            ax_shape_str(s, sizeof s, x->ndim, x->shape));
    return AX_OK;
}

static ax_status ax_interp_run(const char *fn, ax_tensor **y, const ax_tensor *x, const int64_t *size,
                               ax_interp_mode mode, bool align_corners) {
    char s1[160], s2[160];
    int sp = x->ndim - 2;
    for (int i = 0; i < sp; i++)
        if (size[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: output size %s must be >= 1 for x %s", fn,
                            ax_shape_str(s2, sizeof s2, sp, size), ax_shape_str(s1, sizeof s1, x->ndim, x->shape));
    const ax_kernels *k = ax_pool_kernels(fn, x);
    if (!k) return ax_error_status();
    int64_t shape[5] = {x->shape[0], x->shape[1]};
    for (int i = 0; i < sp; i++) shape[2 + i] = size[i];
    ax_tensor *cx = NULL, *o = NULL;
    ax_status st = ax_as_f32(&cx, x);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, x->ndim, shape, AX_DTYPE_F32, x->storage->device);
    if (st == AX_OK) st = k->interpolate(o, cx, mode, align_corners);
    ax_tensor_free(cx);
    if (st == AX_OK) st = ax_f32_to(&o, x->dtype);
    if (st == AX_OK && ax_dtype_is_float(x->dtype) && ax_autograd_wanted(1, &x)) {
        ax_node *node;
        st = ax_node_new(&node, "interpolate", ax_interp_backward, 1, &x);
        if (st == AX_OK) {
            node->i[0] = mode;
            node->i[1] = align_corners;
            ax_node_attach(o, node);
        }
    }
    if (st != AX_OK) {
        if (!strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
        ax_tensor_free(o);
        return st;
    }
    *y = o;
    return AX_OK;
}

ax_status ax_interpolate(ax_tensor **y, const ax_tensor *x, const int64_t *size, ax_interp_mode mode,
                         bool align_corners) {
    const char *fn = "ax_interpolate";
    *y = NULL;
    if (ax_interp_check_x(fn, x, mode, align_corners) != AX_OK) return ax_error_status();
    if (!size) return AX_ERROR(AX_ERR_INVALID, "%s: size is NULL", fn);
    return ax_interp_run(fn, y, x, size, mode, align_corners);
}

ax_status ax_interpolate_scale(ax_tensor **y, const ax_tensor *x, const double *scale, ax_interp_mode mode,
                               bool align_corners) {
    const char *fn = "ax_interpolate_scale";
    char s[160];
    *y = NULL;
    if (ax_interp_check_x(fn, x, mode, align_corners) != AX_OK) return ax_error_status();
    if (!scale) return AX_ERROR(AX_ERR_INVALID, "%s: scale is NULL", fn);
    int64_t size[3];
    for (int i = 0; i < x->ndim - 2; i++) {
        double v = floor((double)x->shape[2 + i] * scale[i]);
        if (!(scale[i] > 0) || !(v >= 1) || v > 9.0e15)
            return AX_ERROR(AX_ERR_INVALID, "%s: scale %g of spatial dim %d of x %s gives no valid output size", fn,
                            scale[i], i, ax_shape_str(s, sizeof s, x->ndim, x->shape));
        size[i] = (int64_t)v;
    }
    return ax_interp_run(fn, y, x, size, mode, align_corners);
}

/* ---- padding ---------------------------------------------------------------------- */

static ax_status ax_pad_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_kernels *k = ax_pool_kernels("ax_pad", g);
    if (!k) return ax_error_status();
    int ns = (int)node->f[0];
    ax_pad_mode mode = (ax_pad_mode)node->f[1];
    ax_tensor *gc = NULL, *dx = NULL;
    ax_status st = ax_as_f32(&gc, g);
    if (st == AX_OK) st = ax_tensor_empty_on(&dx, node->in_ndim[0], node->in_shape[0], AX_DTYPE_F32, g->storage->device);
    if (st == AX_OK) st = k->pad_backward(dx, gc, node->i, ns, mode);
    ax_tensor_free(gc);
    if (st != AX_OK) {
        ax_tensor_free(dx);
        return st;
    }
    gin[0] = dx;
    return ax_grad_fit(node, 0, &gin[0]);
}

/* Check torch-order pads and convert them to the kernels' order (padded
 * dims in dim order), filling y's shape. */
static ax_status ax_pad_plan(const ax_tensor *x, int n_pads, const int64_t *pads, ax_pad_mode mode, int *ns,
                             int64_t *kpads, int64_t *shape) {
    const char *fn = "ax_pad";
    char s[160];
    if (mode != AX_PAD_CONSTANT && mode != AX_PAD_REFLECT && mode != AX_PAD_REPLICATE)
        return AX_ERROR(AX_ERR_INVALID, "%s: unknown mode %d (AX_PAD_CONSTANT, AX_PAD_REFLECT or AX_PAD_REPLICATE)", fn,
                        (int)mode);
    ax_shape_str(s, sizeof s, x->ndim, x->shape);
    if (!pads || n_pads < 2 || n_pads % 2)
        return AX_ERROR(AX_ERR_INVALID, "%s: n_pads %d must be even and >= 2 (with pads given) for x %s", fn, n_pads, s);
    int n = n_pads / 2;
    if (n > x->ndim)
        return AX_ERROR(AX_ERR_INVALID, "%s: %d pads pad %d dims but x %s has %d", fn, n_pads, n, s, x->ndim);
    const char *mname = mode == AX_PAD_REFLECT ? "reflect" : "replicate";
    if (mode != AX_PAD_CONSTANT && (n > 3 || n >= x->ndim))
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: %s padding pads the last 1 to 3 dims after at least one leading dim; %d pads for x %s",
                        fn, mname, n_pads, s);
    int first = x->ndim - n;
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    for (int i = 0; i < n; i++) {
        int d = first + i, j = n - 1 - i; /* torch lists the last dim first */
        int64_t before = pads[2 * j], after = pads[2 * j + 1], in = x->shape[d];
        kpads[2 * i] = before;
        kpads[2 * i + 1] = after;
        if (mode == AX_PAD_REFLECT && (before >= in || after >= in))
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: reflect padding (%lld, %lld) of dim %d must be smaller than its size %lld in x %s "
                            "(as in PyTorch)",
                            fn, (long long)before, (long long)after, d, (long long)in, s);
        if (mode == AX_PAD_REPLICATE && in < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: replicate padding of empty dim %d of x %s", fn, d, s);
        shape[d] = in + before + after;
        int64_t least = mode == AX_PAD_CONSTANT ? 0 : 1;
        if (shape[d] < least)
            return AX_ERROR(AX_ERR_INVALID, "%s: pads (%lld, %lld) shrink dim %d of x %s to %lld (must be >= %lld)", fn,
                            (long long)before, (long long)after, d, s, (long long)shape[d], (long long)least);
    }
    *ns = n;
    return AX_OK;
}

ax_status ax_pad(ax_tensor **y, const ax_tensor *x, int n_pads, const int64_t *pads, ax_pad_mode mode, double value) {
    const char *fn = "ax_pad";
    *y = NULL;
    if (ax_need_x(fn, x) != AX_OK) return ax_error_status();
    int ns = 0;
    int64_t kpads[2 * AX_MAX_DIMS], shape[AX_MAX_DIMS];
    if (ax_pad_plan(x, n_pads, pads, mode, &ns, kpads, shape) != AX_OK) return ax_error_status();
    const ax_kernels *k = ax_pool_kernels(fn, x);
    if (!k) return ax_error_status();
    ax_tensor *cx = NULL, *o = NULL;
    ax_status st = ax_as_f32(&cx, x);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, x->ndim, shape, AX_DTYPE_F32, x->storage->device);
    if (st == AX_OK) st = k->pad(o, cx, kpads, ns, mode, value);
    ax_tensor_free(cx);
    if (st == AX_OK) st = ax_f32_to(&o, x->dtype);
    if (st == AX_OK && ax_dtype_is_float(x->dtype) && ax_autograd_wanted(1, &x)) {
        ax_node *node;
        st = ax_node_new(&node, "pad", ax_pad_backward, 1, &x);
        if (st == AX_OK) {
            for (int i = 0; i < 2 * ns; i++) node->i[i] = kpads[i];
            node->f[0] = ns;
            node->f[1] = mode;
            ax_node_attach(o, node);
        }
    }
    if (st != AX_OK) {
        if (!strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
        ax_tensor_free(o);
        return st;
    }
    *y = o;
    return AX_OK;
}
