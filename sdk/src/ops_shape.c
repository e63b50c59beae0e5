/* Joining, splitting and indexing ops (axon/shape.h).
 *
 * split/chunk are narrow views (their gradient comes from the view's own
 * node); stack is unsqueeze + cat; embedding is index_select + view;
 * masked_fill is where(). cat, gather, scatter_add and index_select run
 * backend kernels and have backward rules here. Index bounds are checked by
 * the kernels (they fail before touching memory), so every backend reports
 * bad indices the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "axon/shape.h"
#include "ops_internal.h"

/* ---- helpers ------------------------------------------------------------------- */

static ax_status ax_need_dims(const char *fn, const char *arg, const ax_tensor *t) {
    if (t->ndim >= 1) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: %s must have at least 1 dim, got a 0-dim tensor", fn, arg);
}

/* dim normalised against ndim, or an error naming fn and the shape. */
static ax_status ax_shape_dim(const char *fn, const char *arg, const ax_tensor *t, int dim, int *d) {
    *d = dim < 0 ? dim + t->ndim : dim;
    if (*d >= 0 && *d < t->ndim) return AX_OK;
    char s[160];
    return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for %s %s", fn, dim, arg,
                    ax_shape_str(s, sizeof s, t->ndim, t->shape));
}

static ax_status ax_need_index(const char *fn, const char *arg, const ax_tensor *idx) {
    if (idx->dtype == AX_DTYPE_I64) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: %s must be i64, got %s", fn, arg, ax_dtype_name(idx->dtype));
}

/* Zeros of a shape on a device (through its backend). */
static ax_status ax_zeros_on(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, ax_device device) {
    if (ax_tensor_empty_on(out, ndim, shape, dtype, device) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_fill_(*out, 0.0);
    if (st != AX_OK) {
        ax_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

/* t converted to dtype without autograd (a new reference to t when it
 * already has it). */
static ax_status ax_as_dtype_nograd(ax_tensor **out, const ax_tensor *t, ax_dtype dtype) {
    if (t->dtype == dtype) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_cast_nograd(out, t, dtype);
}

/* The dtype a gather-like kernel runs in: x's own, or f32 for a float
 * dtype the backend lacks. */
static ax_status ax_copy_dtype(const char *fn, const ax_kernels *k, const ax_tensor *x, ax_dtype *cd) {
    *cd = x->dtype;
    if (k->supports(AX_KOP_INDEX, x->dtype)) return AX_OK;
    if (ax_dtype_is_float(x->dtype) && k->supports(AX_KOP_INDEX, AX_DTYPE_F32)) {
        *cd = AX_DTYPE_F32;
        return AX_OK;
    }
    return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: the %s backend has no indexing kernels for %s", fn, k->name,
                    ax_dtype_name(x->dtype));
}

/* Replace *t by its conversion to dtype (no autograd), if it differs. */
static ax_status ax_convert_to(ax_tensor **t, ax_dtype dtype) {
    if ((*t)->dtype == dtype) return AX_OK;
    ax_tensor *c;
    ax_status st = ax_cast_nograd(&c, *t, dtype);
    ax_tensor_free(*t);
    *t = st == AX_OK ? c : NULL;
    return st;
}

/* A node named `name` with inputs, the index saved in slot 0 and dim in
 * i[0], attached to out (nothing when autograd is not wanted). */
static ax_status ax_record_indexed(ax_tensor *out, const char *name, ax_backward_fn bw, int n,
                                   const ax_tensor *const *inputs, const ax_tensor *index, int dim) {
    if (!ax_autograd_wanted(n, inputs)) return AX_OK;
    ax_node *node;
    if (ax_node_new(&node, name, bw, n, inputs) != AX_OK) return ax_error_status();
    ax_node_save(node, 0, index);
    node->i[0] = dim;
    ax_node_attach(out, node);
    return AX_OK;
}

/* ---- cat ---------------------------------------------------------------------- */

/* node->i[0] = dim; edge e covers [i[1 + 2e], + i[2 + 2e]) of the output. */
static ax_status ax_cat_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    int d = (int)node->i[0];
    for (int e = 0; e < node->n_inputs; e++) {
        if (!ax_node_needs_grad(node, e)) continue;
        if (ax_tensor_narrow(&gin[e], g, d, node->i[1 + 2 * e], node->i[2 + 2 * e]) != AX_OK ||
            ax_grad_fit(node, e, &gin[e]) != AX_OK)
            return ax_error_status();
    }
    return AX_OK;
}

/* The dtype of a concatenation: the inputs' own when they agree; for
 * mixed float inputs the widest (f32, or f32 for bf16 with f16), as
 * torch.cat promotes. The U-Net decoder under autocast needs it: its
 * upsampled bf16 half meets an f32 skip (norms compute in f32). */
static ax_dtype ax_cat_dtype(ax_dtype a, ax_dtype b) {
    if (a == b) return a;
    if (!ax_dtype_is_float(a) || !ax_dtype_is_float(b)) return (ax_dtype)0;
    return AX_DTYPE_F32;
}

/* Shapes and devices of ts agree (dim d may differ, or none when d < 0);
 * *dtype: the output's (ax_cat_dtype). */
static ax_status ax_cat_check(const char *fn, int n, const ax_tensor *const *ts, int dim, int *d, ax_dtype *dtype) {
    if (n < 1 || !ts) return AX_ERROR(AX_ERR_INVALID, "%s: needs at least one tensor, got %d", fn, n);
    for (int i = 0; i < n; i++)
        if (!ts[i]) return AX_ERROR(AX_ERR_INVALID, "%s: ts[%d] is NULL", fn, i);
    const ax_tensor *r = ts[0];
    if (ax_need_dims(fn, "ts[0]", r) != AX_OK || ax_shape_dim(fn, "ts[0]", r, dim, d) != AX_OK ||
        ax_op_same_device(fn, n, ts) != AX_OK)
        return ax_error_status();
    *dtype = r->dtype;
    for (int i = 1; i < n; i++) {
        const ax_tensor *t = ts[i];
        ax_dtype dt = ax_cat_dtype(*dtype, t->dtype);
        if (!dt)
            return AX_ERROR(AX_ERR_INVALID, "%s: ts[%d] is %s but ts[0] is %s (only float dtypes promote: convert first)",
                            fn, i, ax_dtype_name(t->dtype), ax_dtype_name(r->dtype));
        *dtype = dt;
        bool ok = t->ndim == r->ndim;
        for (int k = 0; ok && k < r->ndim; k++) ok = k == *d || t->shape[k] == r->shape[k];
        if (!ok) {
            char a[160], b[160];
            return AX_ERROR(AX_ERR_INVALID, "%s: ts[%d] %s does not match ts[0] %s outside dim %d", fn, i,
                            ax_shape_str(a, sizeof a, t->ndim, t->shape), ax_shape_str(b, sizeof b, r->ndim, r->shape),
                            *d);
        }
    }
    return AX_OK;
}

/* Concatenate checked inputs along d into dtype dt; records one node whose
 * edges are the inputs that require grad, so at most AX_NODE_MAX_INPUTS of
 * them (their gradients return in their own dtypes). */
static ax_status ax_cat_flat(ax_tensor **out, int n, const ax_tensor *const *ts, int d, ax_dtype dt) {
    const ax_tensor *r = ts[0];
    int64_t shape[AX_MAX_DIMS];
    memcpy(shape, r->shape, sizeof shape);
    shape[d] = 0;
    for (int i = 0; i < n; i++) shape[d] += ts[i]->shape[d];
    ax_tensor *o;
    if (ax_tensor_empty_on(&o, r->ndim, shape, dt, r->storage->device) != AX_OK) return ax_error_status();
    const ax_tensor *grad_in[AX_NODE_MAX_INPUTS];
    int64_t span[AX_NODE_MAX_INPUTS][2];
    int ng = 0;
    bool want = ax_autograd_wanted(n, ts);
    ax_status st = AX_OK;
    int64_t start = 0;
    for (int i = 0; i < n && st == AX_OK; i++) {
        int64_t len = ts[i]->shape[d];
        ax_tensor *v;
        st = ax_tensor_narrow(&v, o, d, start, len); /* o has no history: not recorded */
        if (st == AX_OK) st = ax_tensor_copy_(v, ts[i]);
        ax_tensor_free(v);
        if (want && ts[i]->requires_grad) {
            grad_in[ng] = ts[i];
            span[ng][0] = start;
            span[ng][1] = len;
            ng++;
        }
        start += len;
    }
    if (st == AX_OK && want) {
        ax_node *node;
        st = ax_node_new(&node, "cat", ax_cat_backward, ng, grad_in);
        if (st == AX_OK) {
            node->i[0] = d;
            for (int e = 0; e < ng; e++) node->i[1 + 2 * e] = span[e][0], node->i[2 + 2 * e] = span[e][1];
            ax_node_attach(o, node);
        }
    }
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *out = o;
    return AX_OK;
}

static int ax_count_grad(int n, const ax_tensor *const *ts) {
    int c = 0;
    for (int i = 0; i < n; i++) c += ts[i]->requires_grad;
    return c;
}

/* With more trainable inputs than a node has edges, cat groups of them
 * first (each group a node of its own) and then the groups: extra copies,
 * but only for wide concatenations under autograd. */
static ax_status ax_cat_tree(ax_tensor **out, int n, const ax_tensor *const *ts, int d, ax_dtype dt) {
    if (!ax_grad_enabled() || ax_count_grad(n, ts) <= AX_NODE_MAX_INPUTS) return ax_cat_flat(out, n, ts, d, dt);
    ax_tensor *part[AX_NODE_MAX_INPUTS] = {NULL};
    int per = (n + AX_NODE_MAX_INPUTS - 1) / AX_NODE_MAX_INPUTS, np = 0;
    ax_status st = AX_OK;
    for (int s = 0; s < n && st == AX_OK; s += per, np++) {
        int m = n - s < per ? n - s : per;
        if (m == 1)
            part[np] = ax_tensor_retain((ax_tensor *)ts[s]);
        else
            st = ax_cat_tree(&part[np], m, ts + s, d, dt);
    }
    if (st == AX_OK) st = ax_cat_flat(out, np, (const ax_tensor *const *)part, d, dt);
    for (int i = 0; i < np; i++) ax_tensor_free(part[i]);
    return st;
}

ax_status ax_cat(ax_tensor **out, int n, const ax_tensor *const *ts, int dim) {
    int d;
    ax_dtype dt;
    *out = NULL;
    if (ax_cat_check("ax_cat", n, ts, dim, &d, &dt) != AX_OK) return ax_error_status();
    ax_status st = ax_cat_tree(out, n, ts, d, dt);
    if (st != AX_OK && !strstr(ax_error_message(), "ax_cat")) ax_error_prefix("ax_cat");
    return st;
}

ax_status ax_stack(ax_tensor **out, int n, const ax_tensor *const *ts, int dim) {
    const char *fn = "ax_stack";
    *out = NULL;
    if (n < 1 || !ts) return AX_ERROR(AX_ERR_INVALID, "%s: needs at least one tensor, got %d", fn, n);
    for (int i = 0; i < n; i++)
        if (!ts[i]) return AX_ERROR(AX_ERR_INVALID, "%s: ts[%d] is NULL", fn, i);
    const ax_tensor *r = ts[0];
    for (int i = 1; i < n; i++) {
        if (!ax_tensor_same_shape(ts[i], r)) {
            char a[160], b[160];
            return AX_ERROR(AX_ERR_INVALID, "%s: ts[%d] %s != ts[0] %s: stacked tensors need one shape", fn, i,
                            ax_shape_str(a, sizeof a, ts[i]->ndim, ts[i]->shape),
                            ax_shape_str(b, sizeof b, r->ndim, r->shape));
        }
    }
    int d = dim < 0 ? dim + r->ndim + 1 : dim;
    if (d < 0 || d > r->ndim || r->ndim >= AX_MAX_DIMS) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for stacking ts[0] %s", fn, dim,
                        ax_shape_str(s, sizeof s, r->ndim, r->shape));
    }
    ax_tensor **u = calloc((size_t)n, sizeof *u);
    if (!u) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for %d views", fn, n);
    ax_status st = AX_OK;
    for (int i = 0; i < n && st == AX_OK; i++) st = ax_tensor_unsqueeze(&u[i], ts[i], d);
    int cd;
    ax_dtype dt;
    if (st == AX_OK) st = ax_cat_check(fn, n, (const ax_tensor *const *)u, d, &cd, &dt);
    if (st == AX_OK) st = ax_cat_tree(out, n, (const ax_tensor *const *)u, cd, dt);
    for (int i = 0; i < n; i++) ax_tensor_free(u[i]);
    free(u);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

/* ---- split / chunk -------------------------------------------------------------- */

/* outs[i] = narrow(x, d, ..., sizes[i]) for i < n; all or nothing. */
static ax_status ax_split_views(const char *fn, ax_tensor **outs, const ax_tensor *x, int n, const int64_t *sizes,
                                int d) {
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        if (ax_tensor_narrow(&outs[i], x, d, start, sizes[i]) != AX_OK) {
            for (int j = 0; j < i; j++) {
                ax_tensor_free(outs[j]);
                outs[j] = NULL;
            }
            ax_error_prefix("%s", fn);
            return ax_error_status();
        }
        start += sizes[i];
    }
    return AX_OK;
}

/* n pieces of `piece` along d of x (the last holds the rest). */
static ax_status ax_split_even(const char *fn, ax_tensor **outs, int *n_out, int max_out, const ax_tensor *x, int d,
                               int64_t piece, int64_t n) {
    if (n > max_out) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: %lld pieces along dim %d of x %s do not fit in max_out %d", fn,
                        (long long)n, d, ax_shape_str(s, sizeof s, x->ndim, x->shape), max_out);
    }
    int64_t *sizes = malloc((size_t)(n > 0 ? n : 1) * sizeof *sizes), left = x->shape[d];
    if (!sizes) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for %lld sizes", fn, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        sizes[i] = left < piece ? left : piece;
        left -= sizes[i];
    }
    ax_status st = ax_split_views(fn, outs, x, (int)n, sizes, d);
    free(sizes);
    if (st == AX_OK) *n_out = (int)n;
    return st;
}

static ax_status ax_split_prepare(const char *fn, ax_tensor **outs, int *n_out, int max_out, const ax_tensor *x,
                                  int dim, int *d) {
    *n_out = 0;
    if (!outs || max_out < 0) return AX_ERROR(AX_ERR_INVALID, "%s: outs is NULL or max_out %d < 0", fn, max_out);
    for (int i = 0; i < max_out; i++) outs[i] = NULL;
    if (ax_need_dims(fn, "x", x) != AX_OK || ax_shape_dim(fn, "x", x, dim, d) != AX_OK) return ax_error_status();
    return AX_OK;
}

ax_status ax_split(ax_tensor **outs, int *n_out, int max_out, const ax_tensor *x, int64_t split_size, int dim) {
    const char *fn = "ax_split";
    int d;
    if (ax_split_prepare(fn, outs, n_out, max_out, x, dim, &d) != AX_OK) return ax_error_status();
    int64_t size = x->shape[d];
    if (split_size < 0 || (split_size == 0 && size > 0))
        return AX_ERROR(AX_ERR_INVALID, "%s: split_size %lld must be >= 1 for dim %d of size %lld", fn,
                        (long long)split_size, d, (long long)size);
    int64_t n = size == 0 ? 1 : (size - 1) / split_size + 1; /* ceil, without overflow */
    return ax_split_even(fn, outs, n_out, max_out, x, d, split_size, n);
}

ax_status ax_split_sizes(ax_tensor **outs, const ax_tensor *x, int n, const int64_t *sizes, int dim) {
    const char *fn = "ax_split_sizes";
    int d, got;
    if (n < 1 || !sizes) return AX_ERROR(AX_ERR_INVALID, "%s: needs at least one size, got %d", fn, n);
    if (ax_split_prepare(fn, outs, &got, n, x, dim, &d) != AX_OK) return ax_error_status();
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: sizes[%d] = %lld is negative", fn, i, (long long)sizes[i]);
        sum += sizes[i];
    }
    if (sum != x->shape[d]) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: sizes add up to %lld, not to dim %d of x %s", fn, (long long)sum, d,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    }
    return ax_split_views(fn, outs, x, n, sizes, d);
}

ax_status ax_chunk(ax_tensor **outs, int *n_out, int max_out, const ax_tensor *x, int chunks, int dim) {
    const char *fn = "ax_chunk";
    int d;
    if (ax_split_prepare(fn, outs, n_out, max_out, x, dim, &d) != AX_OK) return ax_error_status();
    if (chunks < 1) return AX_ERROR(AX_ERR_INVALID, "%s: chunks %d must be >= 1", fn, chunks);
    int64_t size = x->shape[d], piece = (size + chunks - 1) / chunks;
    /* torch.chunk: an empty dim still gives `chunks` (empty) pieces */
    int64_t n = size == 0 ? chunks : (size + piece - 1) / piece;
    return ax_split_even(fn, outs, n_out, max_out, x, d, piece, n);
}

/* ---- gather / scatter_add ----------------------------------------------------------- */

/* out = gather(x, d, index) with the kernel, no autograd; out's dtype is
 * x's. */
static ax_status ax_gather_raw(const char *fn, ax_tensor **out, const ax_tensor *x, int d, const ax_tensor *index) {
    *out = NULL;
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_dtype cd;
    if (ax_copy_dtype(fn, k, x, &cd) != AX_OK) return ax_error_status();
    ax_tensor *cx = NULL, *o = NULL;
    ax_status st = ax_as_dtype_nograd(&cx, x, cd);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, index->ndim, index->shape, cd, x->storage->device);
    if (st == AX_OK) st = k->gather(o, cx, d, index);
    if (st == AX_OK) st = ax_convert_to(&o, x->dtype);
    ax_tensor_free(cx);
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *out = o;
    return AX_OK;
}

/* dst (f32, a fresh tensor) += scatter of src (any float) along d at index. */
static ax_status ax_scatter_add_into(ax_tensor *dst, int d, const ax_tensor *index, const ax_tensor *src) {
    const ax_kernels *k = ax_op_kernels(dst);
    if (!k) return ax_error_status();
    ax_tensor *s;
    if (ax_as_dtype_nograd(&s, src, AX_DTYPE_F32) != AX_OK) return ax_error_status();
    ax_status st = k->scatter_add(dst, d, index, s);
    ax_tensor_free(s);
    return st;
}

static ax_status ax_gather_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *index = node->saved[0];
    ax_tensor *z;
    if (ax_zeros_on(&z, node->in_ndim[0], node->in_shape[0], AX_DTYPE_F32, g->storage->device) != AX_OK)
        return ax_error_status();
    ax_status st = ax_scatter_add_into(z, (int)node->i[0], index, g);
    if (st != AX_OK) {
        ax_tensor_free(z);
        return st;
    }
    gin[0] = z;
    return ax_grad_fit(node, 0, &gin[0]);
}

/* index: i64 with x's ndim, no larger than x outside dim d (and than
 * `other` everywhere, when given). */
static ax_status ax_check_index_shape(const char *fn, const ax_tensor *index, const ax_tensor *x, int d,
                                      const ax_tensor *other, const char *other_name) {
    char a[160], b[160];
    if (index->ndim != x->ndim)
        return AX_ERROR(AX_ERR_INVALID, "%s: index %s must have x's %d dims (x %s)", fn,
                        ax_shape_str(a, sizeof a, index->ndim, index->shape), x->ndim,
                        ax_shape_str(b, sizeof b, x->ndim, x->shape));
    for (int k = 0; k < x->ndim; k++)
        if (k != d && index->shape[k] > x->shape[k])
            return AX_ERROR(AX_ERR_INVALID, "%s: index %s is larger than x %s in dim %d (only dim %d may be)", fn,
                            ax_shape_str(a, sizeof a, index->ndim, index->shape),
                            ax_shape_str(b, sizeof b, x->ndim, x->shape), k, d);
    if (!other) return AX_OK;
    if (other->ndim != x->ndim)
        return AX_ERROR(AX_ERR_INVALID, "%s: %s %s must have x's %d dims", fn, other_name,
                        ax_shape_str(a, sizeof a, other->ndim, other->shape), x->ndim);
    for (int k = 0; k < x->ndim; k++)
        if (index->shape[k] > other->shape[k])
            return AX_ERROR(AX_ERR_INVALID, "%s: index %s is larger than %s %s in dim %d", fn,
                            ax_shape_str(a, sizeof a, index->ndim, index->shape), other_name,
                            ax_shape_str(b, sizeof b, other->ndim, other->shape), k);
    return AX_OK;
}

ax_status ax_gather(ax_tensor **out, const ax_tensor *x, int dim, const ax_tensor *index) {
    const char *fn = "ax_gather";
    int d;
    *out = NULL;
    if (ax_op_same_device(fn, 2, (const ax_tensor *[]){x, index}) != AX_OK ||
        ax_need_index(fn, "index", index) != AX_OK || ax_need_dims(fn, "x", x) != AX_OK ||
        ax_shape_dim(fn, "x", x, dim, &d) != AX_OK || ax_check_index_shape(fn, index, x, d, NULL, NULL) != AX_OK)
        return ax_error_status();
    ax_tensor *o;
    if (ax_gather_raw(fn, &o, x, d, index) != AX_OK) return ax_error_status();
    ax_status st = ax_record_indexed(o, "gather", ax_gather_backward, 1, &x, index, d);
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *out = o;
    return AX_OK;
}

/* dx = g; dsrc = gather(g, dim, index), zero-padded to src's shape. */
static ax_status ax_scatter_add_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *index = node->saved[0];
    int d = (int)node->i[0];
    if (ax_node_needs_grad(node, 0)) {
        gin[0] = ax_tensor_retain((ax_tensor *)g);
        if (ax_grad_fit(node, 0, &gin[0]) != AX_OK) return ax_error_status();
    }
    if (!ax_node_needs_grad(node, 1)) return AX_OK;
    ax_tensor *gs;
    if (ax_gather_raw("ax_scatter_add", &gs, g, d, index) != AX_OK) return ax_error_status();
    bool same = index->ndim == node->in_ndim[1] &&
                !memcmp(index->shape, node->in_shape[1], (size_t)index->ndim * sizeof(int64_t));
    if (!same) {
        ax_tensor *z, *v = NULL;
        ax_status st = ax_zeros_on(&z, node->in_ndim[1], node->in_shape[1], gs->dtype, g->storage->device);
        if (st == AX_OK) {
            v = ax_tensor_new_view(z->storage, z->dtype, index->ndim, index->shape, z->stride, z->offset);
            st = v ? ax_tensor_copy_(v, gs) : ax_error_status();
        }
        ax_tensor_free(v);
        ax_tensor_free(gs);
        if (st != AX_OK) {
            ax_tensor_free(z);
            return st;
        }
        gs = z;
    }
    gin[1] = gs;
    return ax_grad_fit(node, 1, &gin[1]);
}

ax_status ax_scatter_add(ax_tensor **out, const ax_tensor *x, int dim, const ax_tensor *index,
                         const ax_tensor *src) {
    const char *fn = "ax_scatter_add";
    int d;
    *out = NULL;
    if (ax_op_same_device(fn, 3, (const ax_tensor *[]){x, index, src}) != AX_OK ||
        ax_need_index(fn, "index", index) != AX_OK || ax_op_need_float(fn, "x", x) != AX_OK)
        return ax_error_status();
    if (src->dtype != x->dtype)
        return AX_ERROR(AX_ERR_INVALID, "%s: src is %s but x is %s (they must match)", fn, ax_dtype_name(src->dtype),
                        ax_dtype_name(x->dtype));
    if (ax_need_dims(fn, "x", x) != AX_OK || ax_shape_dim(fn, "x", x, dim, &d) != AX_OK ||
        ax_check_index_shape(fn, index, x, d, src, "src") != AX_OK)
        return ax_error_status();
    ax_tensor *o;
    if (ax_tensor_empty_on(&o, x->ndim, x->shape, AX_DTYPE_F32, x->storage->device) != AX_OK)
        return ax_error_status();
    ax_status st = ax_tensor_copy_(o, x);
    if (st == AX_OK) st = ax_scatter_add_into(o, d, index, src);
    if (st == AX_OK) st = ax_convert_to(&o, x->dtype);
    if (st == AX_OK)
        st = ax_record_indexed(o, "scatter_add", ax_scatter_add_backward, 2, (const ax_tensor *[]){x, src}, index, d);
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *out = o;
    return AX_OK;
}

/* ---- index_select / embedding ----------------------------------------------------------- */

static ax_status ax_index_select_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *index = node->saved[0];
    const ax_kernels *k = ax_op_kernels(g);
    if (!k) return ax_error_status();
    ax_tensor *z, *g32 = NULL;
    if (ax_zeros_on(&z, node->in_ndim[0], node->in_shape[0], AX_DTYPE_F32, g->storage->device) != AX_OK)
        return ax_error_status();
    ax_status st = ax_as_dtype_nograd(&g32, g, AX_DTYPE_F32);
    if (st == AX_OK) st = k->index_add(z, (int)node->i[0], index, g32);
    ax_tensor_free(g32);
    if (st != AX_OK) {
        ax_tensor_free(z);
        return st;
    }
    gin[0] = z;
    return ax_grad_fit(node, 0, &gin[0]);
}

ax_status ax_index_select(ax_tensor **out, const ax_tensor *x, int dim, const ax_tensor *index) {
    const char *fn = "ax_index_select";
    int d;
    *out = NULL;
    if (ax_op_same_device(fn, 2, (const ax_tensor *[]){x, index}) != AX_OK ||
        ax_need_index(fn, "index", index) != AX_OK || ax_need_dims(fn, "x", x) != AX_OK ||
        ax_shape_dim(fn, "x", x, dim, &d) != AX_OK)
        return ax_error_status();
    if (index->ndim > 1) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: index %s must be 1-D", fn,
                        ax_shape_str(s, sizeof s, index->ndim, index->shape));
    }
    const ax_kernels *k = ax_op_kernels(x);
    if (!k) return ax_error_status();
    ax_dtype cd;
    if (ax_copy_dtype(fn, k, x, &cd) != AX_OK) return ax_error_status();
    int64_t shape[AX_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = ax_tensor_numel(index);
    ax_tensor *cx = NULL, *o = NULL;
    ax_status st = ax_as_dtype_nograd(&cx, x, cd);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, x->ndim, shape, cd, x->storage->device);
    if (st == AX_OK) st = k->index_select(o, cx, d, index);
    if (st == AX_OK) st = ax_convert_to(&o, x->dtype);
    ax_tensor_free(cx);
    if (st == AX_OK) st = ax_record_indexed(o, "index_select", ax_index_select_backward, 1, &x, index, d);
    if (st != AX_OK) {
        ax_tensor_free(o);
        return st;
    }
    *out = o;
    return AX_OK;
}

ax_status ax_embedding(ax_tensor **out, const ax_tensor *weight, const ax_tensor *indices) {
    const char *fn = "ax_embedding";
    char a[160], b[160];
    *out = NULL;
    if (ax_op_same_device(fn, 2, (const ax_tensor *[]){weight, indices}) != AX_OK ||
        ax_need_index(fn, "indices", indices) != AX_OK)
        return ax_error_status();
    if (weight->ndim != 2)
        return AX_ERROR(AX_ERR_INVALID, "%s: weight %s must be 2-D [V, D]", fn,
                        ax_shape_str(a, sizeof a, weight->ndim, weight->shape));
    if (indices->ndim + 1 > AX_MAX_DIMS)
        return AX_ERROR(AX_ERR_INVALID, "%s: indices %s leave no room for the embedding dim (at most %d dims)", fn,
                        ax_shape_str(a, sizeof a, indices->ndim, indices->shape), AX_MAX_DIMS);
    int64_t n = ax_tensor_numel(indices), shape[AX_MAX_DIMS];
    memcpy(shape, indices->shape, (size_t)indices->ndim * sizeof(int64_t));
    shape[indices->ndim] = weight->shape[1];
    ax_tensor *flat = NULL, *rows = NULL;
    ax_status st = ax_tensor_reshape(&flat, indices, 1, &n);
    if (st == AX_OK) st = ax_index_select(&rows, weight, 0, flat);
    if (st == AX_OK) st = ax_tensor_view(out, rows, indices->ndim + 1, shape);
    ax_tensor_free(flat);
    ax_tensor_free(rows);
    if (st != AX_OK)
        ax_error_prefix("%s: indices %s into weight %s", fn, ax_shape_str(a, sizeof a, indices->ndim, indices->shape),
                        ax_shape_str(b, sizeof b, weight->ndim, weight->shape));
    return st;
}

/* ---- masked_fill ------------------------------------------------------------------------- */

ax_status ax_masked_fill(ax_tensor **out, const ax_tensor *x, const ax_tensor *mask, double value) {
    const char *fn = "ax_masked_fill";
    int nd;
    int64_t shape[AX_MAX_DIMS];
    *out = NULL;
    if (ax_op_same_device(fn, 2, (const ax_tensor *[]){x, mask}) != AX_OK) return ax_error_status();
    if (mask->dtype != AX_DTYPE_U8)
        return AX_ERROR(AX_ERR_INVALID, "%s: mask must be u8 (a comparison's result), got %s", fn,
                        ax_dtype_name(mask->dtype));
    if (!ax_broadcast_shape(x, mask, &nd, shape)) {
        char a[160], b[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: cannot broadcast mask %s with x %s", fn,
                        ax_shape_str(a, sizeof a, mask->ndim, mask->shape), ax_shape_str(b, sizeof b, x->ndim, x->shape));
    }
    ax_tensor *v;
    if (ax_tensor_empty_on(&v, 0, NULL, x->dtype, x->storage->device) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_fill_(v, value);
    if (st == AX_OK) st = ax_where(out, mask, v, x);
    ax_tensor_free(v);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}
