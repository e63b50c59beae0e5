/* Views: new headers on the same storage, recorded by autograd so
 * gradients flow back through reshapes, permutes, slices and expands. */
#include <string.h>

#include "axon/autograd.h"
#include "axon/ops.h"
#include "tensor_internal.h"

bool ax_broadcastable_to(const ax_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim > ndim) return false;
    for (int i = 0; i < t->ndim; i++) {
        int64_t a = t->shape[t->ndim - 1 - i], b = shape[ndim - 1 - i];
        if (a != b && a != 1) return false;
    }
    return true;
}

bool ax_broadcast_shape(const ax_tensor *a, const ax_tensor *b, int *ndim, int64_t *out) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int64_t x = i < a->ndim ? a->shape[a->ndim - 1 - i] : 1;
        int64_t y = i < b->ndim ? b->shape[b->ndim - 1 - i] : 1;
        if (x != y && x != 1 && y != 1) return false;
        out[n - 1 - i] = x == 1 ? y : x;
    }
    *ndim = n;
    return true;
}

/* ---- backward rules ------------------------------------------------------ */

/* view, reshape, squeeze, unsqueeze: the gradient takes the input's shape. */
static ax_status ax_reshape_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    return ax_tensor_reshape(&gin[0], g, node->in_ndim[0], node->in_shape[0]);
}

static ax_status ax_permute_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    int inv[AX_MAX_DIMS];
    for (int i = 0; i < node->in_ndim[0]; i++) inv[node->i[i]] = i;
    return ax_tensor_permute(&gin[0], g, inv);
}

/* narrow/slice: scatter the gradient into zeros of the input's shape. */
static ax_status ax_slice_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    ax_tensor *z, *v;
    if (ax_tensor_full_on(&z, node->in_ndim[0], node->in_shape[0], g->dtype, 0.0, g->storage->device) != AX_OK)
        return ax_error_status();
    int dim = (int)node->i[0];
    if (ax_tensor_slice(&v, z, dim, node->i[1], node->i[2], node->i[3]) != AX_OK) {
        ax_tensor_free(z);
        return ax_error_status();
    }
    ax_status st = ax_tensor_copy_(v, g);
    ax_tensor_free(v);
    if (st != AX_OK) {
        ax_tensor_free(z);
        return st;
    }
    gin[0] = z;
    return AX_OK;
}

static ax_status ax_expand_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    return ax_sum_to(&gin[0], g, node->in_ndim[0], node->in_shape[0]);
}

/* Wrap `view` (a new header on t's storage) into *out, recording a node. */
static ax_status ax_view_finish(ax_tensor **out, ax_tensor *view, const ax_tensor *t, const char *name,
                                ax_backward_fn backward, const int64_t *ints, int n_ints) {
    if (!view) return ax_error_status();
    if (ax_autograd_wanted(1, &t)) {
        ax_node *node;
        if (ax_node_new(&node, name, backward, 1, &t) != AX_OK) {
            ax_tensor_free(view);
            return ax_error_status();
        }
        for (int i = 0; i < n_ints; i++) node->i[i] = ints[i];
        ax_node_attach(view, node);
    }
    *out = view;
    return AX_OK;
}

/* ---- views ----------------------------------------------------------------- */

/* Resolve one -1 in shape against numel. */
static ax_status ax_infer_shape(const char *fn, const ax_tensor *t, int ndim, const int64_t *shape, int64_t *res) {
    int64_t known = 1, numel = ax_tensor_numel(t);
    int infer = -1;
    if (ndim < 0 || ndim > AX_MAX_DIMS) return AX_ERROR(AX_ERR_INVALID, "%s: %d dims (at most %d)", fn, ndim, AX_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        res[i] = shape[i];
        if (shape[i] == -1) {
            if (infer >= 0) return AX_ERROR(AX_ERR_INVALID, "%s: more than one -1 in the shape", fn);
            infer = i;
        } else if (shape[i] < 0) {
            return AX_ERROR(AX_ERR_INVALID, "%s: negative size %lld", fn, (long long)shape[i]);
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) res[infer] = known ? numel / known : 0;
    int64_t total = 1;
    for (int i = 0; i < ndim; i++) total *= res[i];
    if (total != numel) {
        char a[160], b[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: cannot view %s (%lld elements) as %s (%lld elements)", fn,
                        ax_shape_str(a, sizeof a, t->ndim, t->shape), (long long)numel,
                        ax_shape_str(b, sizeof b, ndim, res), (long long)total);
    }
    return AX_OK;
}

/* Strides for viewing t as `shape` without copying, if the existing
 * strides allow it: walk t's dims from the right in runs that are
 * contiguous among themselves, and require the new dims to tile each run. */
static bool ax_view_strides(const ax_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
    if (ax_tensor_numel(t) == 0 || t->ndim == 0) {
        int64_t s = 1;
        for (int i = ndim - 1; i >= 0; i--) stride[i] = s, s *= shape[i] ? shape[i] : 1;
        return true;
    }
    int view_d = ndim - 1;
    int64_t base = t->stride[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        if (d == 0 || (t->shape[d - 1] != 1 && t->stride[d - 1] != tensor_numel * base)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                stride[view_d] = view_numel * base;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                base = t->stride[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

ax_status ax_tensor_view(ax_tensor **out, const ax_tensor *t, int ndim, const int64_t *shape) {
    int64_t res[AX_MAX_DIMS], stride[AX_MAX_DIMS];
    *out = NULL;
    if (ax_infer_shape("ax_tensor_view", t, ndim, shape, res) != AX_OK) return ax_error_status();
    if (!ax_view_strides(t, ndim, res, stride)) {
        char a[160], b[160];
        return AX_ERROR(AX_ERR_INVALID,
                        "ax_tensor_view: the strides of %s cannot express shape %s without a copy; use reshape",
                        ax_shape_str(a, sizeof a, t->ndim, t->shape), ax_shape_str(b, sizeof b, ndim, res));
    }
    ax_tensor *v = ax_tensor_new_view(t->storage, t->dtype, ndim, res, stride, t->offset);
    return ax_view_finish(out, v, t, "view", ax_reshape_backward, NULL, 0);
}

ax_status ax_tensor_reshape(ax_tensor **out, const ax_tensor *t, int ndim, const int64_t *shape) {
    int64_t res[AX_MAX_DIMS], stride[AX_MAX_DIMS];
    *out = NULL;
    if (ax_infer_shape("ax_tensor_reshape", t, ndim, shape, res) != AX_OK) return ax_error_status();
    if (ax_view_strides(t, ndim, res, stride)) return ax_tensor_view(out, t, ndim, res);
    /* A copy: contiguous() records its own node when needed. */
    ax_tensor *c;
    if (ax_tensor_contiguous(&c, t) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_view(out, c, ndim, res);
    ax_tensor_free(c);
    return st;
}

ax_status ax_tensor_permute(ax_tensor **out, const ax_tensor *t, const int *perm) {
    int64_t shape[AX_MAX_DIMS], stride[AX_MAX_DIMS], ints[AX_MAX_DIMS];
    bool seen[AX_MAX_DIMS] = {false};
    *out = NULL;
    for (int i = 0; i < t->ndim; i++) {
        int p = perm[i] < 0 ? perm[i] + t->ndim : perm[i];
        if (p < 0 || p >= t->ndim || seen[p])
            return AX_ERROR(AX_ERR_INVALID, "ax_tensor_permute: perm[%d] = %d is not a permutation of %d dims", i,
                            perm[i], t->ndim);
        seen[p] = true;
        shape[i] = t->shape[p];
        stride[i] = t->stride[p];
        ints[i] = p;
    }
    ax_tensor *v = ax_tensor_new_view(t->storage, t->dtype, t->ndim, shape, stride, t->offset);
    return ax_view_finish(out, v, t, "permute", ax_permute_backward, ints, t->ndim);
}

ax_status ax_tensor_transpose(ax_tensor **out, const ax_tensor *t, int dim0, int dim1) {
    int a = ax_tensor_dim(t, dim0), b = ax_tensor_dim(t, dim1);
    *out = NULL;
    if (a < 0 || b < 0 || t->ndim == 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_transpose: dims %d, %d out of range for %d dims", dim0, dim1,
                        t->ndim);
    int perm[AX_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return ax_tensor_permute(out, t, perm);
}

ax_status ax_tensor_slice(ax_tensor **out, const ax_tensor *t, int dim, int64_t start, int64_t end, int64_t step) {
    int d = ax_tensor_dim(t, dim);
    *out = NULL;
    if (d < 0 || t->ndim == 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_slice: dim %d out of range for %d dims", dim, t->ndim);
    if (step < 1) return AX_ERROR(AX_ERR_INVALID, "ax_tensor_slice: step %lld must be >= 1", (long long)step);
    int64_t n = t->shape[d];
    if (start < 0) start += n;
    if (end < 0) end += n;
    start = start < 0 ? 0 : start > n ? n : start;
    end = end < start ? start : end > n ? n : end;
    int64_t shape[AX_MAX_DIMS], stride[AX_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(stride, t->stride, sizeof stride);
    shape[d] = (end - start + step - 1) / step;
    stride[d] = t->stride[d] * step;
    ax_tensor *v = ax_tensor_new_view(t->storage, t->dtype, t->ndim, shape, stride, t->offset + start * t->stride[d]);
    int64_t ints[4] = {d, start, end, step};
    return ax_view_finish(out, v, t, "slice", ax_slice_backward, ints, 4);
}

ax_status ax_tensor_narrow(ax_tensor **out, const ax_tensor *t, int dim, int64_t start, int64_t length) {
    int d = ax_tensor_dim(t, dim);
    *out = NULL;
    if (d < 0 || t->ndim == 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_narrow: dim %d out of range for %d dims", dim, t->ndim);
    if (start < 0 || length < 0 || start + length > t->shape[d])
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_narrow: [%lld, %lld) is outside dim %d of size %lld",
                        (long long)start, (long long)(start + length), d, (long long)t->shape[d]);
    return ax_tensor_slice(out, t, d, start, start + length, 1);
}

ax_status ax_tensor_expand(ax_tensor **out, const ax_tensor *t, int ndim, const int64_t *shape) {
    int64_t res[AX_MAX_DIMS], stride[AX_MAX_DIMS];
    *out = NULL;
    if (ndim < t->ndim || ndim > AX_MAX_DIMS) goto bad;
    for (int i = ndim - 1, j = t->ndim - 1; i >= 0; i--, j--) {
        int64_t want = shape[i];
        if (j >= 0) {
            if (want == -1) want = t->shape[j];
            if (t->shape[j] == want) {
                res[i] = want;
                stride[i] = t->stride[j];
            } else if (t->shape[j] == 1 && want >= 0) {
                res[i] = want;
                stride[i] = 0;
            } else {
                goto bad;
            }
        } else {
            if (want < 0) goto bad;
            res[i] = want;
            stride[i] = 0;
        }
    }
    ax_tensor *v = ax_tensor_new_view(t->storage, t->dtype, ndim, res, stride, t->offset);
    return ax_view_finish(out, v, t, "expand", ax_expand_backward, NULL, 0);
bad:;
    char a[160], b[160];
    return AX_ERROR(AX_ERR_INVALID, "ax_tensor_expand: cannot expand %s to %s",
                    ax_shape_str(a, sizeof a, t->ndim, t->shape), ax_shape_str(b, sizeof b, ndim, shape));
}

ax_status ax_tensor_squeeze(ax_tensor **out, const ax_tensor *t, int dim) {
    int64_t shape[AX_MAX_DIMS];
    int n = 0;
    *out = NULL;
    if (dim == AX_ALL_DIMS) {
        for (int i = 0; i < t->ndim; i++)
            if (t->shape[i] != 1) shape[n++] = t->shape[i];
    } else {
        int d = ax_tensor_dim(t, dim);
        if (d < 0 || t->ndim == 0)
            return AX_ERROR(AX_ERR_INVALID, "ax_tensor_squeeze: dim %d out of range for %d dims", dim, t->ndim);
        if (t->shape[d] != 1) {
            char a[160];
            return AX_ERROR(AX_ERR_INVALID, "ax_tensor_squeeze: dim %d of %s has size %lld, not 1", dim,
                            ax_shape_str(a, sizeof a, t->ndim, t->shape), (long long)t->shape[d]);
        }
        for (int i = 0; i < t->ndim; i++)
            if (i != d) shape[n++] = t->shape[i];
    }
    return ax_tensor_view(out, t, n, shape);
}

ax_status ax_tensor_unsqueeze(ax_tensor **out, const ax_tensor *t, int dim) {
    *out = NULL;
    if (dim < 0) dim += t->ndim + 1;
    if (dim < 0 || dim > t->ndim || t->ndim >= AX_MAX_DIMS)
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_unsqueeze: dim %d out of range for %d dims", dim, t->ndim);
    int64_t shape[AX_MAX_DIMS];
    for (int i = 0, j = 0; i <= t->ndim; i++) shape[i] = i == dim ? 1 : t->shape[j++];
    return ax_tensor_view(out, t, t->ndim + 1, shape);
}

ax_status ax_tensor_detach(ax_tensor **out, const ax_tensor *t) {
    *out = ax_tensor_new_view(t->storage, t->dtype, t->ndim, t->shape, t->stride, t->offset);
    return *out ? AX_OK : ax_error_status();
}
