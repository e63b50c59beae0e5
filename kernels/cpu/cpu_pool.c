/* Max / average pooling and adaptive average pooling over NCDHW volumes,
 * forward and backward, with PyTorch's window rules.
 *
 * Any strides are accepted for every operand (a plane is addressed through
 * its strides, the W loop included), so views need no copy.
 *
 * Determinism: a forward output depends on its own window only, walked in
 * (d, h, w) order; the forward loops are parallel over rows of outputs. A
 * backward pass accumulates into dx, and windows overlap when stride <
 * kernel, so no two threads ever write one dx plane region: work items are
 * (plane, slab of input depths), and the item owning a slab walks every
 * output in order, adding only what lands in its slab. Each dx element so
 * receives its contributions in the same order as in a one-thread run, and
 * results are bit-identical for any thread count (slabs only exist to keep
 * threads busy when N * C is small).
 */
#include <math.h>
#include <stdint.h>

#include "cpu_iter.h"
#include "cpu_kernels.h"

/* One 5-D f32 operand: data at its offset, shape and strides. */
typedef struct ax_vol {
    float *p;
    int64_t n, c, d, h, w;
    int64_t sn, sc, sd, sh, sw;
} ax_vol;

static ax_vol ax_vol_of(const ax_tensor *t) {
    ax_vol v = {(float *)ax_tensor_data(t),
                t->shape[0], t->shape[1], t->shape[2], t->shape[3], t->shape[4],
                t->stride[0], t->stride[1], t->stride[2], t->stride[3], t->stride[4]};
    return v;
}

/* Offset of plane nc = n * C + c. */
static inline int64_t ax_vol_plane(const ax_vol *v, int64_t nc) { return (nc / v->c) * v->sn + (nc % v->c) * v->sc; }

static inline int64_t ax_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t ax_max64(int64_t a, int64_t b) { return a > b ? a : b; }

static bool ax_is_5d(const ax_tensor *t, ax_dtype dtype) { return t && t->ndim == 5 && t->dtype == dtype; }

static ax_status ax_pool_bad(const char *fn, const ax_tensor *a, const ax_tensor *b) {
    char s1[160], s2[160];
    return AX_ERROR(AX_ERR_INVALID, "%s: expects 5-D operands of matching N, C (f32 data, i64 indices), got %s and %s",
                    fn, ax_shape_str(s1, sizeof s1, a->ndim, a->shape), ax_shape_str(s2, sizeof s2, b->ndim, b->shape));
}

/* Zero depths [d0, d1) of one plane of dx (any strides). */
static void ax_vol_zero_slab(const ax_vol *v, int64_t nc, int64_t d0, int64_t d1) {
    float *base = v->p + ax_vol_plane(v, nc);
    for (int64_t d = d0; d < d1; d++)
        for (int64_t h = 0; h < v->h; h++) {
            float *r = base + d * v->sd + h * v->sh;
            for (int64_t w = 0; w < v->w; w++) r[w * v->sw] = 0.0f;
        }
}

/* Slabs of input depth per plane for a backward pass: one when the planes
 * alone keep every thread busy. Never changes results, only who computes. */
static int64_t ax_backward_slabs(int64_t planes, int64_t depth) {
    int64_t t = ax_num_threads();
    if (planes >= t || depth <= 1) return 1;
    int64_t s = (2 * t + planes - 1) / ax_max64(planes, 1);
    return ax_min64(s, depth);
}

/* ---- max / avg pooling ------------------------------------------------------------ */

/* Window of output o along one axis, as PyTorch computes it: [lo, hi)
 * clipped to the input, and the padded extent used by count_include_pad. */
typedef struct ax_win {
    int64_t lo, hi, padded;
} ax_win;

static inline ax_win ax_pool_win(int64_t o, int64_t k, int64_t s, int64_t pad, int64_t in) {
    int64_t start = o * s - pad, end = ax_min64(start + k, in + pad);
    ax_win w = {ax_max64(start, 0), ax_min64(end, in), end - start};
    return w;
}

/* One row of max-pooled outputs: y[od, oh, :] of plane nc. */
static void ax_max_pool_row(const ax_vol *y, int64_t *idx, const ax_vol *ix, const ax_vol *x, const ax_pool_params *p,
                            int64_t nc, int64_t od, int64_t oh) {
    ax_win wd = ax_pool_win(od, p->kernel[0], p->stride[0], p->padding[0], x->d);
    ax_win wh = ax_pool_win(oh, p->kernel[1], p->stride[1], p->padding[1], x->h);
    const float *xp = x->p + ax_vol_plane(x, nc);
    float *yr = y->p + ax_vol_plane(y, nc) + od * y->sd + oh * y->sh;
    int64_t *ir = idx ? idx + ax_vol_plane(ix, nc) + od * ix->sd + oh * ix->sh : NULL;
    for (int64_t ow = 0; ow < y->w; ow++) {
        ax_win ww = ax_pool_win(ow, p->kernel[2], p->stride[2], p->padding[2], x->w);
        /* PyTorch: start from -inf at the window's first element; a larger
         * value or any NaN takes over (so the last NaN wins). */
        float best = -INFINITY;
        int64_t bi = (wd.lo * x->h + wh.lo) * x->w + ww.lo;
        for (int64_t d = wd.lo; d < wd.hi; d++)
            for (int64_t h = wh.lo; h < wh.hi; h++) {
                const float *xr = xp + d * x->sd + h * x->sh;
                int64_t base = (d * x->h + h) * x->w;
                for (int64_t w = ww.lo; w < ww.hi; w++) {
                    float v = xr[w * x->sw];
                    if (v > best || isnan(v)) {
                        best = v;
                        bi = base + w;
                    }
                }
            }
        yr[ow * y->sw] = best;
        if (ir) ir[ow * ix->sw] = bi;
    }
}

static void ax_avg_pool_row(const ax_vol *y, const ax_vol *x, const ax_pool_params *p, int64_t nc, int64_t od,
                            int64_t oh) {
    ax_win wd = ax_pool_win(od, p->kernel[0], p->stride[0], p->padding[0], x->d);
    ax_win wh = ax_pool_win(oh, p->kernel[1], p->stride[1], p->padding[1], x->h);
    const float *xp = x->p + ax_vol_plane(x, nc);
    float *yr = y->p + ax_vol_plane(y, nc) + od * y->sd + oh * y->sh;
    for (int64_t ow = 0; ow < y->w; ow++) {
        ax_win ww = ax_pool_win(ow, p->kernel[2], p->stride[2], p->padding[2], x->w);
        if (wd.lo >= wd.hi || wh.lo >= wh.hi || ww.lo >= ww.hi) {
            yr[ow * y->sw] = 0.0f; /* cannot happen with valid geometry; PyTorch writes 0 */
            continue;
        }
        double sum = 0;
        for (int64_t d = wd.lo; d < wd.hi; d++)
            for (int64_t h = wh.lo; h < wh.hi; h++) {
                const float *xr = xp + d * x->sd + h * x->sh;
                for (int64_t w = ww.lo; w < ww.hi; w++) sum += xr[w * x->sw];
            }
        int64_t div = p->count_include_pad ? wd.padded * wh.padded * ww.padded
                                           : (wd.hi - wd.lo) * (wh.hi - wh.lo) * (ww.hi - ww.lo);
        yr[ow * y->sw] = (float)(sum / (double)div);
    }
}

ax_status ax_cpu_pool3d(ax_tensor *y, ax_tensor *idx, const ax_tensor *x, const ax_pool_params *p) {
    if (!ax_is_5d(x, AX_DTYPE_F32) || !ax_is_5d(y, AX_DTYPE_F32) || x->shape[0] != y->shape[0] ||
        x->shape[1] != y->shape[1])
        return ax_pool_bad("ax_cpu_pool3d", x, y);
    if (idx && (!ax_is_5d(idx, AX_DTYPE_I64) || !ax_tensor_same_shape(idx, y))) return ax_pool_bad("ax_cpu_pool3d", y, idx);
    ax_vol xv = ax_vol_of(x), yv = ax_vol_of(y), iv = {0};
    int64_t *ip = NULL;
    if (idx) {
        /* the same addressing as y, on i64 data */
        iv = (ax_vol){NULL, idx->shape[0], idx->shape[1], idx->shape[2], idx->shape[3], idx->shape[4],
                      idx->stride[0], idx->stride[1], idx->stride[2], idx->stride[3], idx->stride[4]};
        ip = (int64_t *)ax_tensor_data(idx);
    }
    bool max = p->mode == AX_POOL_MAX;
    int64_t rows = yv.n * yv.c * yv.d * yv.h;
    int64_t work = rows * yv.w * p->kernel[0] * p->kernel[1] * p->kernel[2];
    (void)work; /* used only by OpenMP */
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oh = r % yv.h, od = (r / yv.h) % yv.d, nc = r / (yv.h * yv.d);
        if (max)
            ax_max_pool_row(&yv, ip, &iv, &xv, p, nc, od, oh);
        else
            ax_avg_pool_row(&yv, &xv, p, nc, od, oh);
    }
    return AX_OK;
}

/* dx[idx] += dy for the indices of plane nc that fall in depths [d0, d1),
 * in output order. Returns false on an index outside the plane (a corrupt
 * idx; nothing is written for it). */
static bool ax_max_pool_slab_backward(const ax_vol *dx, const ax_vol *dy, const int64_t *ip, const ax_vol *iv,
                                      int64_t nc, int64_t d0, int64_t d1) {
    bool ok = true;
    float *gx = dx->p + ax_vol_plane(dx, nc);
    const float *gy = dy->p + ax_vol_plane(dy, nc);
    const int64_t *ib = ip + ax_vol_plane(iv, nc);
    int64_t hw = dx->h * dx->w, vol = dx->d * hw;
    for (int64_t od = 0; od < dy->d; od++)
        for (int64_t oh = 0; oh < dy->h; oh++) {
            const float *gr = gy + od * dy->sd + oh * dy->sh;
            const int64_t *ir = ib + od * iv->sd + oh * iv->sh;
            for (int64_t ow = 0; ow < dy->w; ow++) {
                int64_t i = ir[ow * iv->sw];
                if (i < 0 || i >= vol) {
                    ok = false;
                    continue;
                }
                int64_t d = i / hw;
                if (d < d0 || d >= d1) continue;
                gx[d * dx->sd + (i % hw / dx->w) * dx->sh + (i % dx->w) * dx->sw] += gr[ow * dy->sw];
            }
        }
    return ok;
}

static void ax_avg_pool_slab_backward(const ax_vol *dx, const ax_vol *dy, const ax_pool_params *p, int64_t nc,
                                      int64_t d0, int64_t d1) {
    float *gx = dx->p + ax_vol_plane(dx, nc);
    const float *gy = dy->p + ax_vol_plane(dy, nc);
    for (int64_t od = 0; od < dy->d; od++) {
        ax_win wd = ax_pool_win(od, p->kernel[0], p->stride[0], p->padding[0], dx->d);
        int64_t dlo = ax_max64(wd.lo, d0), dhi = ax_min64(wd.hi, d1);
        if (dlo >= dhi) continue;
        for (int64_t oh = 0; oh < dy->h; oh++) {
            ax_win wh = ax_pool_win(oh, p->kernel[1], p->stride[1], p->padding[1], dx->h);
            const float *gr = gy + od * dy->sd + oh * dy->sh;
            for (int64_t ow = 0; ow < dy->w; ow++) {
                ax_win ww = ax_pool_win(ow, p->kernel[2], p->stride[2], p->padding[2], dx->w);
                if (wh.lo >= wh.hi || ww.lo >= ww.hi) continue;
                int64_t div = p->count_include_pad ? wd.padded * wh.padded * ww.padded
                                                   : (wd.hi - wd.lo) * (wh.hi - wh.lo) * (ww.hi - ww.lo);
                float g = gr[ow * dy->sw] / (float)div;
                for (int64_t d = dlo; d < dhi; d++)
                    for (int64_t h = wh.lo; h < wh.hi; h++) {
                        float *xr = gx + d * dx->sd + h * dx->sh;
                        for (int64_t w = ww.lo; w < ww.hi; w++) xr[w * dx->sw] += g;
                    }
            }
        }
    }
}

ax_status ax_cpu_pool3d_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *idx, const ax_pool_params *p) {
    if (!ax_is_5d(dx, AX_DTYPE_F32) || !ax_is_5d(dy, AX_DTYPE_F32) || dx->shape[0] != dy->shape[0] ||
        dx->shape[1] != dy->shape[1])
        return ax_pool_bad("ax_cpu_pool3d_backward", dx, dy);
    bool max = p->mode == AX_POOL_MAX;
    if (max && !idx) return AX_ERROR(AX_ERR_INVALID, "ax_cpu_pool3d_backward: max pooling needs the argmax indices");
    if (max && (!ax_is_5d(idx, AX_DTYPE_I64) || !ax_tensor_same_shape(idx, dy)))
        return ax_pool_bad("ax_cpu_pool3d_backward", dy, idx);
    ax_vol xv = ax_vol_of(dx), yv = ax_vol_of(dy), iv = {0};
    const int64_t *ip = NULL;
    if (max) {
        iv = (ax_vol){NULL, idx->shape[0], idx->shape[1], idx->shape[2], idx->shape[3], idx->shape[4],
                      idx->stride[0], idx->stride[1], idx->stride[2], idx->stride[3], idx->stride[4]};
        ip = (const int64_t *)ax_tensor_data(idx);
    }
    int64_t planes = xv.n * xv.c, slabs = ax_backward_slabs(planes, xv.d), items = planes * slabs;
    int64_t taps = max ? 1 : p->kernel[0] * p->kernel[1] * p->kernel[2];
    int64_t work = planes * (xv.d * xv.h * xv.w + yv.d * yv.h * yv.w * taps);
    (void)work; /* used only by OpenMP */
    bool ok = true;
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static) reduction(&& : ok)
    for (int64_t it = 0; it < items; it++) {
        int64_t nc = it / slabs, s = it % slabs;
        int64_t d0 = s * xv.d / slabs, d1 = (s + 1) * xv.d / slabs;
        ax_vol_zero_slab(&xv, nc, d0, d1);
        if (max)
            ok = ax_max_pool_slab_backward(&xv, &yv, ip, &iv, nc, d0, d1) && ok;
        else
            ax_avg_pool_slab_backward(&xv, &yv, p, nc, d0, d1);
    }
    if (!ok) return AX_ERROR(AX_ERR_INVALID, "ax_cpu_pool3d_backward: an argmax index lies outside its input plane");
    return AX_OK;
}

/* ---- adaptive average pooling --------------------------------------------------------- */

/* PyTorch's adaptive windows along one axis: [floor(o * in / out),
 * ceil((o + 1) * in / out)), written without overflow-prone products. */
static inline int64_t ax_adaptive_start(int64_t o, int64_t out, int64_t in) { return (o / out) * in + ((o % out) * in) / out; }
static inline int64_t ax_adaptive_end(int64_t o, int64_t out, int64_t in) {
    return 1 + ((o + 1) * in - 1) / out;
}

static void ax_adaptive_row(const ax_vol *y, const ax_vol *x, int64_t nc, int64_t od, int64_t oh) {
    int64_t d0 = ax_adaptive_start(od, y->d, x->d), d1 = ax_adaptive_end(od, y->d, x->d);
    int64_t h0 = ax_adaptive_start(oh, y->h, x->h), h1 = ax_adaptive_end(oh, y->h, x->h);
    const float *xp = x->p + ax_vol_plane(x, nc);
    float *yr = y->p + ax_vol_plane(y, nc) + od * y->sd + oh * y->sh;
    for (int64_t ow = 0; ow < y->w; ow++) {
        int64_t w0 = ax_adaptive_start(ow, y->w, x->w), w1 = ax_adaptive_end(ow, y->w, x->w);
        double sum = 0;
        for (int64_t d = d0; d < d1; d++)
            for (int64_t h = h0; h < h1; h++) {
                const float *xr = xp + d * x->sd + h * x->sh;
                for (int64_t w = w0; w < w1; w++) sum += xr[w * x->sw];
            }
        yr[ow * y->sw] = (float)(sum / (double)((d1 - d0) * (h1 - h0) * (w1 - w0)));
    }
}

ax_status ax_cpu_adaptive_avg_pool3d(ax_tensor *y, const ax_tensor *x) {
    if (!ax_is_5d(x, AX_DTYPE_F32) || !ax_is_5d(y, AX_DTYPE_F32) || x->shape[0] != y->shape[0] ||
        x->shape[1] != y->shape[1])
        return ax_pool_bad("ax_cpu_adaptive_avg_pool3d", x, y);
    ax_vol xv = ax_vol_of(x), yv = ax_vol_of(y);
    if (ax_tensor_numel(y) > 0 && (xv.d < 1 || xv.h < 1 || xv.w < 1))
        return ax_pool_bad("ax_cpu_adaptive_avg_pool3d", x, y);
    int64_t rows = yv.n * yv.c * yv.d * yv.h;
    /* each input element is read about once per output it falls in */
    int64_t work = ax_tensor_numel(x) + ax_tensor_numel(y);
    (void)work; /* used only by OpenMP */
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oh = r % yv.h, od = (r / yv.h) % yv.d, nc = r / (yv.h * yv.d);
        ax_adaptive_row(&yv, &xv, nc, od, oh);
    }
    return AX_OK;
}

static void ax_adaptive_slab_backward(const ax_vol *dx, const ax_vol *dy, int64_t nc, int64_t dlo, int64_t dhi) {
    float *gx = dx->p + ax_vol_plane(dx, nc);
    const float *gy = dy->p + ax_vol_plane(dy, nc);
    for (int64_t od = 0; od < dy->d; od++) {
        int64_t d0 = ax_adaptive_start(od, dy->d, dx->d), d1 = ax_adaptive_end(od, dy->d, dx->d);
        int64_t a = ax_max64(d0, dlo), b = ax_min64(d1, dhi);
        if (a >= b) continue;
        for (int64_t oh = 0; oh < dy->h; oh++) {
            int64_t h0 = ax_adaptive_start(oh, dy->h, dx->h), h1 = ax_adaptive_end(oh, dy->h, dx->h);
            const float *gr = gy + od * dy->sd + oh * dy->sh;
            for (int64_t ow = 0; ow < dy->w; ow++) {
                int64_t w0 = ax_adaptive_start(ow, dy->w, dx->w), w1 = ax_adaptive_end(ow, dy->w, dx->w);
                float g = gr[ow * dy->sw] / (float)((d1 - d0) * (h1 - h0) * (w1 - w0));
                for (int64_t d = a; d < b; d++)
                    for (int64_t h = h0; h < h1; h++) {
                        float *xr = gx + d * dx->sd + h * dx->sh;
                        for (int64_t w = w0; w < w1; w++) xr[w * dx->sw] += g;
                    }
            }
        }
    }
}

ax_status ax_cpu_adaptive_avg_pool3d_backward(ax_tensor *dx, const ax_tensor *dy) {
    if (!ax_is_5d(dx, AX_DTYPE_F32) || !ax_is_5d(dy, AX_DTYPE_F32) || dx->shape[0] != dy->shape[0] ||
        dx->shape[1] != dy->shape[1])
        return ax_pool_bad("ax_cpu_adaptive_avg_pool3d_backward", dx, dy);
    ax_vol xv = ax_vol_of(dx), yv = ax_vol_of(dy);
    if (ax_tensor_numel(dy) > 0 && (xv.d < 1 || xv.h < 1 || xv.w < 1))
        return ax_pool_bad("ax_cpu_adaptive_avg_pool3d_backward", dx, dy);
    int64_t planes = xv.n * xv.c, slabs = ax_backward_slabs(planes, xv.d), items = planes * slabs;
    int64_t work = ax_tensor_numel(dx) + ax_tensor_numel(dy);
    (void)work; /* used only by OpenMP */
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t it = 0; it < items; it++) {
        int64_t nc = it / slabs, s = it % slabs;
        int64_t d0 = s * xv.d / slabs, d1 = (s + 1) * xv.d / slabs;
        ax_vol_zero_slab(&xv, nc, d0, d1);
        ax_adaptive_slab_backward(&xv, &yv, nc, d0, d1);
    }
    return AX_OK;
}
