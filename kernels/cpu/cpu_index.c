/* Indexing kernels: gather, scatter_add, index_select, index_add.
 *
 * Two loops do all the work. The gather loop reads x at the position of
 * each output element with the coordinate along `dim` replaced by an index;
 * the scatter loop adds each source element into `out` at its position with
 * that coordinate replaced. index_select and index_add are the same loops
 * with the 1-D index viewed (stride 0) over the whole output/source shape.
 *
 * Bounds: every kernel first scans its indices and fails on the first one
 * (in C order over the index tensor) outside [0, size) with nothing written,
 * so no kernel ever reads or writes out of bounds whatever the indices hold.
 * Shape rules are checked here too (cheap), not only by the front-ends.
 *
 * Determinism: gather is a pure copy. Scatter collisions can only happen
 * between elements that differ in their `dim` coordinate alone, so the
 * threads split the other coordinates (never touching the same output) and
 * each walks `dim` in ascending order: every output element receives its
 * additions in index order, the same for any thread count (no atomics).
 * The flip side: a scatter whose index has no extent outside `dim` (e.g.
 * a 1-D scatter_add) runs on one thread.
 */
#include <stdint.h>
#include <string.h>

#include "cpu_iter.h"
#include "cpu_kernels.h"
#include "tensor_internal.h"

/* Elements of a row handed to one thread at a time: a long row (a
 * contiguous tensor collapses to one) must still use every thread. */
#define AX_INDEX_BLOCK 4096

static int64_t ax_min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int ax_norm_dim(int dim, int ndim) {
    int n = ndim ? ndim : 1;
    if (dim < 0) dim += n;
    return dim >= 0 && dim < n ? dim : -1;
}

/* A header over t's memory with another shape and strides (no reference
 * taken: it lives on the stack for one kernel call). */
static ax_tensor ax_view_header(const ax_tensor *t, int ndim, const int64_t *shape, const int64_t *stride) {
    ax_tensor v = *t;
    v.ndim = ndim;
    for (int d = 0; d < AX_MAX_DIMS; d++) {
        v.shape[d] = d < ndim ? shape[d] : 1;
        v.stride[d] = d < ndim ? stride[d] : 0;
    }
    v.grad = NULL;
    v.grad_fn = NULL;
    return v;
}

/* ---- bounds ------------------------------------------------------------------ */

/* First index (C order over idx) outside [0, size): AX_OK when none, else
 * an error naming `fn`, the value, its position and the dim. */
static ax_status ax_index_check_bounds(const char *fn, const ax_tensor *idx, int dim, int64_t size) {
    ax_iter it;
    ax_iter_init(&it, 1, (const ax_tensor *[]){idx});
    int64_t rows = ax_iter_rows(&it), inner = it.inner, is = it.inner_stride[0];
    const int64_t *base = (const int64_t *)it.base[0];
    int64_t first = INT64_MAX;
    /* rows * inner walks idx in C order, so a row's first bad element plus
     * r * inner is its C-order position; min() picks the same one for any
     * thread count. */
#pragma omp parallel for reduction(min : first) if (rows * inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (r * inner >= first) continue;
        int64_t off;
        ax_iter_row(&it, r, &off);
        const int64_t *p = base + off;
        for (int64_t j = 0; j < inner; j++) {
            int64_t v = p[j * is];
            if (v < 0 || v >= size) {
                if (r * inner + j < first) first = r * inner + j;
                break;
            }
        }
    }
    if (first == INT64_MAX) return AX_OK;
    int64_t off;
    ax_iter_row(&it, first / inner, &off);
    int64_t v = base[off + (first % inner) * is];
    return AX_ERROR(AX_ERR_INVALID, "%s: index %lld at position %lld is out of range for dim %d of size %lld", fn,
                    (long long)v, (long long)first, dim, (long long)size);
}

/* ---- the two loops ------------------------------------------------------------- */

static inline void ax_copy_elem(char *d, const char *s, size_t es) {
    switch (es) {
    case 1: *d = *s; break;
    case 2: memcpy(d, s, 2); break;
    case 4: memcpy(d, s, 4); break;
    default: memcpy(d, s, 8); break;
    }
}

/* out[p] = x[p with coordinate dim := idx[p]] for every p in out's shape.
 * iv: an i64 header of out's shape (strides may be 0); indices in range. */
static void ax_gather_run(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *iv) {
    int64_t xs[AX_MAX_DIMS];
    for (int d = 0; d < out->ndim; d++) xs[d] = d == dim ? 0 : x->stride[d];
    ax_tensor xv = ax_view_header(x, out->ndim, out->shape, xs);
    ax_iter it;
    ax_iter_init(&it, 3, (const ax_tensor *[]){out, iv, &xv});
    size_t es = ax_dtype_size(out->dtype);
    int64_t rows = ax_iter_rows(&it), inner = it.inner, xd = x->stride[dim];
    int64_t os = it.inner_stride[0], is = it.inner_stride[1], xis = it.inner_stride[2];
    int64_t nb = (inner + AX_INDEX_BLOCK - 1) / AX_INDEX_BLOCK, tasks = rows * nb;
#pragma omp parallel for if (rows * inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t r = t / nb, j0 = (t % nb) * AX_INDEX_BLOCK, j1 = ax_min64(j0 + AX_INDEX_BLOCK, inner);
        int64_t off[3];
        ax_iter_row(&it, r, off);
        char *o = it.base[0] + (size_t)off[0] * es;
        const int64_t *ip = (const int64_t *)it.base[1] + off[1];
        const char *xp = it.base[2] + (size_t)off[2] * es;
        if (is == 0 && os == 1 && xis == 1) {
            /* one index for the whole row (index_select off the last dim):
             * a plain contiguous copy */
            memcpy(o + (size_t)j0 * es, xp + (size_t)(j0 + ip[0] * xd) * es, (size_t)(j1 - j0) * es);
            continue;
        }
        if (es == 4) { /* f32 and i32: the common case, without a switch per element */
            uint32_t *o4 = (uint32_t *)o;
            const uint32_t *x4 = (const uint32_t *)xp;
            for (int64_t j = j0; j < j1; j++) o4[j * os] = x4[j * xis + ip[j * is] * xd];
            continue;
        }
        for (int64_t j = j0; j < j1; j++)
            ax_copy_elem(o + (size_t)(j * os) * es, xp + (size_t)(j * xis + ip[j * is] * xd) * es, es);
    }
}

/* out[q with coordinate dim := idx[p]] += src[p] for every p in iv's shape,
 * where q is p's position in out (f32). iv: i64 header (strides may be 0);
 * indices in range. */
static void ax_scatter_add_run(ax_tensor *out, int dim, const ax_tensor *iv, const ax_tensor *src) {
    /* the outer positions: iv's shape with dim flattened to 1 */
    int n = iv->ndim;
    int64_t oshape[AX_MAX_DIMS];
    memcpy(oshape, iv->shape, sizeof oshape);
    int64_t kn = iv->shape[dim];
    oshape[dim] = 1;
    ax_tensor ov = ax_view_header(out, n, oshape, out->stride);
    ax_tensor io = ax_view_header(iv, n, oshape, iv->stride);
    ax_tensor so = ax_view_header(src, n, oshape, src->stride);
    ax_iter it;
    ax_iter_init(&it, 3, (const ax_tensor *[]){&ov, &io, &so});
    int64_t rows = ax_iter_rows(&it), inner = it.inner;
    int64_t os = it.inner_stride[0], is = it.inner_stride[1], ss = it.inner_stride[2];
    int64_t od = out->stride[dim], ik = iv->stride[dim], sk = src->stride[dim];
    if (kn == 0) return;
    /* each task walks all kn source slices of its block: shorter blocks
     * when kn is long, so an embedding gradient ([V, D] += [N, D]) still
     * spreads over the threads */
    int64_t blk = AX_INDEX_BLOCK / kn < 64 ? 64 : AX_INDEX_BLOCK / kn;
    int64_t nb = (inner + blk - 1) / blk, tasks = rows * nb;
#pragma omp parallel for if (rows * inner * kn >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t r = t / nb, j0 = (t % nb) * blk, j1 = ax_min64(j0 + blk, inner);
        int64_t off[3];
        ax_iter_row(&it, r, off);
        float *o = (float *)it.base[0] + off[0];
        const int64_t *ip = (const int64_t *)it.base[1] + off[1];
        const float *sp = (const float *)it.base[2] + off[2];
        /* k outermost, ascending: each output element sums in index order */
        for (int64_t k = 0; k < kn; k++) {
            const int64_t *ipk = ip + k * ik;
            const float *spk = sp + k * sk;
            if (is == 0) {
                float *ok = o + ipk[0] * od;
                for (int64_t j = j0; j < j1; j++) ok[j * os] += spk[j * ss];
            } else {
                for (int64_t j = j0; j < j1; j++) o[j * os + ipk[j * is] * od] += spk[j * ss];
            }
        }
    }
}

/* ---- argument checks ------------------------------------------------------------ */

static ax_status ax_index_dtype_check(const char *fn, const ax_tensor *idx) {
    if (idx->dtype == AX_DTYPE_I64) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: index must be i64, got %s", fn, ax_dtype_name(idx->dtype));
}

static ax_status ax_f32_check(const char *fn, const char *arg, const ax_tensor *t) {
    if (t->dtype == AX_DTYPE_F32) return AX_OK;
    return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %s must be f32 on the CPU, got %s", fn, arg, ax_dtype_name(t->dtype));
}

/* idx.size(d) <= t.size(d) for every d (except `skip`, when >= 0). */
static ax_status ax_index_fits(const char *fn, const ax_tensor *idx, const char *arg, const ax_tensor *t, int skip) {
    if (idx->ndim != t->ndim) goto bad;
    for (int d = 0; d < t->ndim; d++)
        if (d != skip && idx->shape[d] > t->shape[d]) goto bad;
    return AX_OK;
bad:;
    char a[160], b[160];
    return AX_ERROR(AX_ERR_INVALID, "%s: index %s does not fit in %s %s%s", fn,
                    ax_shape_str(a, sizeof a, idx->ndim, idx->shape), arg, ax_shape_str(b, sizeof b, t->ndim, t->shape),
                    skip >= 0 ? " outside dim" : "");
}

/* t's shape with `dim` of size n equals want's? */
static bool ax_shape_but_dim(const ax_tensor *t, const ax_tensor *want, int dim, int64_t n) {
    if (t->ndim != want->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != (d == dim ? n : want->shape[d])) return false;
    return true;
}

/* A header viewing the 1-D (or 0-dim) idx along `dim` of `like`'s shape. */
static ax_tensor ax_index_spread(const ax_tensor *idx, const ax_tensor *like, int dim) {
    int64_t stride[AX_MAX_DIMS] = {0};
    stride[dim] = idx->ndim ? idx->stride[0] : 0;
    return ax_view_header(idx, like->ndim, like->shape, stride);
}

/* ---- the kernels ------------------------------------------------------------------ */

ax_status ax_cpu_gather(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx) {
    const char *fn = "ax_gather";
    int d = ax_norm_dim(dim, x->ndim);
    if (ax_index_dtype_check(fn, idx) != AX_OK) return ax_error_status();
    if (d < 0 || x->ndim == 0) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for %d dims", fn, dim, x->ndim);
    if (out->dtype != x->dtype)
        return AX_ERROR(AX_ERR_INVALID, "%s: out dtype %s != x dtype %s", fn, ax_dtype_name(out->dtype),
                        ax_dtype_name(x->dtype));
    if (!ax_tensor_same_shape(out, idx)) {
        char a[160], b[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: out %s must have index's shape %s", fn,
                        ax_shape_str(a, sizeof a, out->ndim, out->shape),
                        ax_shape_str(b, sizeof b, idx->ndim, idx->shape));
    }
    if (ax_index_fits(fn, idx, "x", x, d) != AX_OK) return ax_error_status();
    if (ax_index_check_bounds(fn, idx, d, x->shape[d]) != AX_OK) return ax_error_status();
    ax_gather_run(out, x, d, idx);
    return AX_OK;
}

ax_status ax_cpu_scatter_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src) {
    const char *fn = "ax_scatter_add";
    int d = ax_norm_dim(dim, out->ndim);
    if (ax_index_dtype_check(fn, idx) != AX_OK || ax_f32_check(fn, "out", out) != AX_OK ||
        ax_f32_check(fn, "src", src) != AX_OK)
        return ax_error_status();
    if (d < 0 || out->ndim == 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for %d dims", fn, dim, out->ndim);
    if (ax_index_fits(fn, idx, "src", src, -1) != AX_OK || ax_index_fits(fn, idx, "out", out, d) != AX_OK)
        return ax_error_status();
    if (ax_index_check_bounds(fn, idx, d, out->shape[d]) != AX_OK) return ax_error_status();
    ax_scatter_add_run(out, d, idx, src);
    return AX_OK;
}

ax_status ax_cpu_index_select(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx) {
    const char *fn = "ax_index_select";
    int d = ax_norm_dim(dim, x->ndim);
    if (ax_index_dtype_check(fn, idx) != AX_OK) return ax_error_status();
    if (d < 0 || x->ndim == 0) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for %d dims", fn, dim, x->ndim);
    if (idx->ndim > 1) return AX_ERROR(AX_ERR_INVALID, "%s: index must be 1-D, got %d dims", fn, idx->ndim);
    if (out->dtype != x->dtype)
        return AX_ERROR(AX_ERR_INVALID, "%s: out dtype %s != x dtype %s", fn, ax_dtype_name(out->dtype),
                        ax_dtype_name(x->dtype));
    int64_t n = ax_tensor_numel(idx);
    if (!ax_shape_but_dim(out, x, d, n)) {
        char a[160], b[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: out %s must be x %s with dim %d of size %lld", fn,
                        ax_shape_str(a, sizeof a, out->ndim, out->shape), ax_shape_str(b, sizeof b, x->ndim, x->shape),
                        d, (long long)n);
    }
    if (ax_index_check_bounds(fn, idx, d, x->shape[d]) != AX_OK) return ax_error_status();
    ax_tensor iv = ax_index_spread(idx, out, d);
    ax_gather_run(out, x, d, &iv);
    return AX_OK;
}

ax_status ax_cpu_index_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src) {
    const char *fn = "ax_index_add";
    int d = ax_norm_dim(dim, out->ndim);
    if (ax_index_dtype_check(fn, idx) != AX_OK || ax_f32_check(fn, "out", out) != AX_OK ||
        ax_f32_check(fn, "src", src) != AX_OK)
        return ax_error_status();
    if (d < 0 || out->ndim == 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for %d dims", fn, dim, out->ndim);
    if (idx->ndim > 1) return AX_ERROR(AX_ERR_INVALID, "%s: index must be 1-D, got %d dims", fn, idx->ndim);
    int64_t n = ax_tensor_numel(idx);
    if (!ax_shape_but_dim(src, out, d, n)) {
        char a[160], b[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: src %s must be out %s with dim %d of size %lld", fn,
                        ax_shape_str(a, sizeof a, src->ndim, src->shape), ax_shape_str(b, sizeof b, out->ndim, out->shape),
                        d, (long long)n);
    }
    if (ax_index_check_bounds(fn, idx, d, out->shape[d]) != AX_OK) return ax_error_status();
    ax_tensor iv = ax_index_spread(idx, src, d);
    ax_scatter_add_run(out, d, &iv, src);
    return AX_OK;
}
