/* Interpolation (nearest, linear / bilinear / trilinear) and padding
 * (constant, reflect, replicate), forward and backward, with PyTorch's
 * index and weight rules.
 *
 * Interpolation works on [N, C, *] with 1..3 spatial dims; fewer than three
 * are handled as "phantom" leading dims of size 1 that take one tap with
 * weight 1 (so 1-D and 2-D results match torch's linear / bilinear, not a
 * degenerate trilinear). Per-axis tables of source offsets and weights are
 * built once per call, so the inner W loop is two loads and two FMAs per
 * input row.
 *
 * Determinism (bit-identical results for any thread count): forward
 * outputs are independent (parallel over rows). Linear backward folds dy
 * one axis at a time as gathers with a fixed tap order per element (see
 * "linear backward"). Nearest backward scatters one add per output; its
 * work items are (plane, slab of input depths), the item owning a slab
 * walking every output in order and adding only what lands in its slab, so
 * every dx element gets its contributions in one-thread order. Padding's
 * backward is parallel over output rows for constant padding (each input
 * element has at most one source) and over the unpadded leading dims for
 * reflect / replicate.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_iter.h"
#include "cpu_kernels.h"

static inline int64_t ax_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t ax_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- interpolation ------------------------------------------------------------------ */

/* An [N, C, *] f32 operand seen as [N, C, D, H, W] (missing spatial dims:
 * size 1, stride 0). */
typedef struct ax_vol {
    float *p;
    int64_t n, c, d, h, w;
    int64_t sn, sc, sd, sh, sw;
} ax_vol;

static ax_vol ax_vol_of(const ax_tensor *t) {
    int sp = t->ndim - 2;
    int64_t sz[3] = {1, 1, 1}, st[3] = {0, 0, 0};
    for (int i = 0; i < sp; i++) {
        sz[3 - sp + i] = t->shape[2 + i];
        st[3 - sp + i] = t->stride[2 + i];
    }
    ax_vol v = {(float *)ax_tensor_data(t), t->shape[0], t->shape[1], sz[0], sz[1], sz[2],
                t->stride[0], t->stride[1], st[0], st[1], st[2]};
    return v;
}

static inline int64_t ax_vol_plane(const ax_vol *v, int64_t nc) { return (nc / v->c) * v->sn + (nc % v->c) * v->sc; }

/* Per output position along one axis: source offsets (index * stride) and
 * weights. Nearest uses off0 only. taps: 2, or 1 for a phantom axis. */
typedef struct ax_axis {
    int64_t *off0, *off1;
    int64_t *i0, *i1; /* the indices themselves, for slab tests */
    float *l0, *l1;
    int taps;
} ax_axis;

/* PyTorch's area_pixel_compute_scale (in float, as torch computes it). */
static float ax_linear_scale(int64_t in, int64_t out, bool align_corners) {
    if (align_corners) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)in / (float)out;
}

/* PyTorch's compute_source_index_and_lambda: the source position, clamped
 * at 0 without align_corners, split into index and weight. */
static void ax_linear_entry(int64_t o, int64_t in, int64_t out, float scale, bool align_corners, int64_t *i0,
                            int64_t *i1, float *l0, float *l1) {
    if (in == out) {
        *i0 = *i1 = o;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    float src;
    if (align_corners) {
        src = scale * (float)o;
    } else {
        src = (float)((double)scale * ((double)o + 0.5) - 0.5);
        if (src < 0) src = 0;
    }
    int64_t i = ax_min64((int64_t)floorf(src), in - 1);
    float lam = fminf(fmaxf(src - (float)i, 0.0f), 1.0f);
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l1 = lam;
    *l0 = 1.0f - lam;
}

/* PyTorch's nearest_idx for mode 'nearest'. */
static int64_t ax_nearest_entry(int64_t o, int64_t in, int64_t out) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    float scale = (float)in / (float)out;
    return ax_min64((int64_t)floorf((float)o * scale), in - 1);
}

static void ax_axis_fill(ax_axis *a, int64_t in, int64_t out, int64_t stride, bool phantom, ax_interp_mode mode,
                         bool align_corners) {
    a->taps = phantom || mode == AX_INTERP_NEAREST ? 1 : 2;
    float scale = ax_linear_scale(in, out, align_corners);
    for (int64_t o = 0; o < out; o++) {
        if (phantom) {
            a->i0[o] = a->i1[o] = 0;
            a->l0[o] = 1.0f;
            a->l1[o] = 0.0f;
        } else if (mode == AX_INTERP_NEAREST) {
            a->i0[o] = a->i1[o] = ax_nearest_entry(o, in, out);
            a->l0[o] = 1.0f;
            a->l1[o] = 0.0f;
        } else {
            ax_linear_entry(o, in, out, scale, align_corners, &a->i0[o], &a->i1[o], &a->l0[o], &a->l1[o]);
        }
        a->off0[o] = a->i0[o] * stride;
        a->off1[o] = a->i1[o] * stride;
    }
}

/* Tables for the three axes in one allocation (free axes[0].off0). */
static ax_status ax_axes_build(ax_axis axes[3], const ax_vol *in, const ax_vol *out, int sp, ax_interp_mode mode,
                               bool align_corners) {
    int64_t isz[3] = {in->d, in->h, in->w}, osz[3] = {out->d, out->h, out->w};
    int64_t ist[3] = {in->sd, in->sh, in->sw};
    int64_t total = osz[0] + osz[1] + osz[2];
    /* per entry: 4 int64 + 2 float */
    char *buf = malloc((size_t)total * (4 * sizeof(int64_t) + 2 * sizeof(float)) + 1);
    if (!buf) return AX_ERROR(AX_ERR_NOMEM, "ax_cpu_interpolate: out of memory for index tables");
    int64_t *ip = (int64_t *)buf;
    float *fp = (float *)(ip + 4 * total);
    for (int k = 0; k < 3; k++) {
        ax_axis *a = &axes[k];
        a->off0 = ip;
        a->off1 = ip + osz[k];
        a->i0 = ip + 2 * osz[k];
        a->i1 = ip + 3 * osz[k];
        a->l0 = fp;
        a->l1 = fp + osz[k];
        ip += 4 * osz[k];
        fp += 2 * osz[k];
        ax_axis_fill(a, isz[k], osz[k], ist[k], k < 3 - sp, mode, align_corners);
    }
    return AX_OK;
}

static bool ax_interp_ok(const ax_tensor *a, const ax_tensor *b) {
    if (a->dtype != AX_DTYPE_F32 || b->dtype != AX_DTYPE_F32 || a->ndim != b->ndim || a->ndim < 3 || a->ndim > 5)
        return false;
    if (a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1]) return false;
    for (int i = 2; i < a->ndim; i++)
        if ((a->shape[i] < 1) != (b->shape[i] < 1)) return false;
    return true;
}

static ax_status ax_interp_bad(const char *fn, const ax_tensor *a, const ax_tensor *b) {
    char s1[160], s2[160];
    return AX_ERROR(AX_ERR_INVALID,
                    "%s: expects f32 [N, C, *] operands with 1 to 3 matching spatial dims and equal N, C, got %s and %s",
                    fn, ax_shape_str(s1, sizeof s1, a->ndim, a->shape), ax_shape_str(s2, sizeof s2, b->ndim, b->shape));
}

/* Linear interpolation along W of one input row. */
static inline float ax_lerp_w(const float *r, const ax_axis *aw, int64_t ow) {
    return r[aw->off0[ow]] * aw->l0[ow] + r[aw->off1[ow]] * aw->l1[ow];
}

/* One output row y[nc, od, oh, :]. The nesting (W innermost, then H, then
 * D, each as a * l0 + b * l1) is torch's. */
static void ax_interp_row(const ax_vol *y, const ax_vol *x, const ax_axis ax[3], int sp, ax_interp_mode mode, int64_t nc,
                          int64_t od, int64_t oh) {
    const float *xp = x->p + ax_vol_plane(x, nc);
    float *yr = y->p + ax_vol_plane(y, nc) + od * y->sd + oh * y->sh;
    const ax_axis *ad = &ax[0], *ah = &ax[1], *aw = &ax[2];
    int64_t ys = y->sw;
    if (mode == AX_INTERP_NEAREST) {
        const float *r = xp + ad->off0[od] + ah->off0[oh];
        for (int64_t ow = 0; ow < y->w; ow++) yr[ow * ys] = r[aw->off0[ow]];
        return;
    }
    const float *r00 = xp + ad->off0[od] + ah->off0[oh], *r01 = xp + ad->off0[od] + ah->off1[oh];
    const float *r10 = xp + ad->off1[od] + ah->off0[oh], *r11 = xp + ad->off1[od] + ah->off1[oh];
    float d0 = ad->l0[od], d1 = ad->l1[od], h0 = ah->l0[oh], h1 = ah->l1[oh];
    if (sp == 3) {
        for (int64_t ow = 0; ow < y->w; ow++) {
            float a = ax_lerp_w(r00, aw, ow) * h0 + ax_lerp_w(r01, aw, ow) * h1;
            float b = ax_lerp_w(r10, aw, ow) * h0 + ax_lerp_w(r11, aw, ow) * h1;
            yr[ow * ys] = a * d0 + b * d1;
        }
    } else if (sp == 2) {
        for (int64_t ow = 0; ow < y->w; ow++) yr[ow * ys] = ax_lerp_w(r00, aw, ow) * h0 + ax_lerp_w(r01, aw, ow) * h1;
    } else {
        for (int64_t ow = 0; ow < y->w; ow++) yr[ow * ys] = ax_lerp_w(r00, aw, ow);
    }
}

ax_status ax_cpu_interpolate(ax_tensor *y, const ax_tensor *x, ax_interp_mode mode, bool align_corners) {
    if (!ax_interp_ok(y, x)) return ax_interp_bad("ax_cpu_interpolate", x, y);
    if (mode != AX_INTERP_NEAREST && mode != AX_INTERP_TRILINEAR)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_interpolate: unknown mode %d", (int)mode);
    ax_vol xv = ax_vol_of(x), yv = ax_vol_of(y);
    int64_t rows = yv.n * yv.c * yv.d * yv.h;
    if (rows == 0 || yv.w == 0) return AX_OK;
    int sp = x->ndim - 2;
    ax_axis ax[3];
    if (ax_axes_build(ax, &xv, &yv, sp, mode, align_corners) != AX_OK) return ax_error_status();
    int64_t work = rows * yv.w * (mode == AX_INTERP_NEAREST ? 1 : 4);
    (void)work; /* used only by OpenMP */
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oh = r % yv.h, od = (r / yv.h) % yv.d, nc = r / (yv.h * yv.d);
        ax_interp_row(&yv, &xv, ax, sp, mode, nc, od, oh);
    }
    free(ax[0].off0);
    return AX_OK;
}

/* Slabs of input depth per plane for a backward pass (see the top). */
static int64_t ax_backward_slabs(int64_t planes, int64_t depth) {
    int64_t t = ax_num_threads();
    if (planes >= t || depth <= 1) return 1;
    int64_t s = (2 * t + planes - 1) / ax_max64(planes, 1);
    return ax_min64(s, depth);
}

static void ax_vol_zero_slab(const ax_vol *v, int64_t nc, int64_t d0, int64_t d1) {
    float *base = v->p + ax_vol_plane(v, nc);
    for (int64_t d = d0; d < d1; d++)
        for (int64_t h = 0; h < v->h; h++) {
            float *r = base + d * v->sd + h * v->sh;
            for (int64_t w = 0; w < v->w; w++) r[w * v->sw] = 0.0f;
        }
}

/* Nearest's transpose on one plane, restricted to input depths [dlo,
 * dhi): dx[src] += dy in output order, one add per output, which is
 * torch's order too (bit-identical results). */
static void ax_nearest_slab_backward(const ax_vol *dx, const ax_vol *dy, const ax_axis ax[3], int64_t nc, int64_t dlo,
                                     int64_t dhi) {
    float *gx = dx->p + ax_vol_plane(dx, nc);
    const float *gy = dy->p + ax_vol_plane(dy, nc);
    const ax_axis *ad = &ax[0], *ah = &ax[1], *aw = &ax[2];
    const int64_t *woff = aw->off0;
    for (int64_t od = 0; od < dy->d; od++) {
        if (ad->i0[od] < dlo || ad->i0[od] >= dhi) continue;
        for (int64_t oh = 0; oh < dy->h; oh++) {
            const float *gr = gy + od * dy->sd + oh * dy->sh;
            float *r = gx + ad->off0[od] + ah->off0[oh];
            int64_t sw = dy->sw;
            for (int64_t ow = 0; ow < dy->w; ow++) r[woff[ow]] += gr[ow * sw];
        }
    }
}

/* ---- linear backward: the transposed weights, one axis at a time --------------------
 *
 * Trilinear interpolation is separable, so its transpose is too: fold dy
 * along D, then H, then W, each pass a gather ("input i collects the
 * outputs whose taps hit it") written with '=' into a fresh buffer. No two
 * writers share an element, the D and H passes run over contiguous rows,
 * and the work is about a quarter of an 8-tap scatter. Every element's sum
 * has a fixed order (its taps by ascending output index), so the result
 * does not depend on how the planes or rows are spread over threads. */

/* For each input index i of one axis: the (output, weight) taps that read
 * it, by ascending output. */
typedef struct ax_csr {
    int64_t *start; /* in + 1 */
    int64_t *o;
    float *w;
} ax_csr;

static ax_status ax_csr_build(ax_csr *c, const ax_axis *a, int64_t in, int64_t out) {
    int64_t ne = a->taps * out;
    c->start = calloc((size_t)(in + 1), sizeof(int64_t));
    c->o = malloc((size_t)ne * sizeof(int64_t) + 1);
    c->w = malloc((size_t)ne * sizeof(float) + 1);
    int64_t *cur = malloc((size_t)in * sizeof(int64_t) + 1);
    if (!c->start || !c->o || !c->w || !cur) {
        free(cur);
        return AX_ERROR(AX_ERR_NOMEM, "ax_cpu_interpolate_backward: out of memory for tap tables");
    }
    for (int64_t o = 0; o < out; o++) {
        c->start[a->i0[o] + 1]++;
        if (a->taps == 2) c->start[a->i1[o] + 1]++;
    }
    for (int64_t i = 0; i < in; i++) {
        c->start[i + 1] += c->start[i];
        cur[i] = c->start[i];
    }
    for (int64_t o = 0; o < out; o++) {
        int64_t e = cur[a->i0[o]]++;
        c->o[e] = o;
        c->w[e] = a->l0[o];
        if (a->taps == 2) {
            e = cur[a->i1[o]]++;
            c->o[e] = o;
            c->w[e] = a->l1[o];
        }
    }
    free(cur);
    return AX_OK;
}

static void ax_csr_free(ax_csr *c) {
    free(c->start);
    free(c->o);
    free(c->w);
}

/* A strided 3-D block of f32 (one plane, or a scratch buffer). */
typedef struct ax_blk {
    float *p;
    int64_t n[3], s[3];
} ax_blk;

static ax_blk ax_blk_contig(float *p, int64_t n0, int64_t n1, int64_t n2) {
    ax_blk b = {p, {n0, n1, n2}, {n1 * n2, n2, 1}};
    return b;
}

/* out row = sum over input i's taps of w * (in row at the tap's output):
 * rows of n elements, strides so / si, taps `step` elements apart in in. */
static void ax_gather_rows(float *out, int64_t so, const float *in, int64_t step, int64_t si, int64_t n,
                           const ax_csr *c, int64_t i) {
    int64_t e0 = c->start[i], e1 = c->start[i + 1];
    if (so == 1 && si == 1) {
        for (int64_t k = 0; k < n; k++) out[k] = 0.0f;
        for (int64_t e = e0; e < e1; e++) {
            const float *r = in + c->o[e] * step;
            float w = c->w[e];
            for (int64_t k = 0; k < n; k++) out[k] += w * r[k];
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) out[k * so] = 0.0f;
    for (int64_t e = e0; e < e1; e++) {
        const float *r = in + c->o[e] * step;
        float w = c->w[e];
        for (int64_t k = 0; k < n; k++) out[k * so] += w * r[k * si];
    }
}

/* Fold axis 0 (out->n[0] inputs from in->n[0] outputs). */
static void ax_fold_axis0(const ax_blk *out, const ax_blk *in, const ax_csr *c, bool par) {
    (void)par; /* used only by OpenMP */
    int64_t rows = out->n[0] * out->n[1];
#pragma omp parallel for if (par && rows * out->n[2] >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r / out->n[1], j = r % out->n[1];
        ax_gather_rows(out->p + i * out->s[0] + j * out->s[1], out->s[2], in->p + j * in->s[1], in->s[0], in->s[2],
                       out->n[2], c, i);
    }
}

/* Fold axis 1. */
static void ax_fold_axis1(const ax_blk *out, const ax_blk *in, const ax_csr *c, bool par) {
    (void)par; /* used only by OpenMP */
    int64_t rows = out->n[0] * out->n[1];
#pragma omp parallel for if (par && rows * out->n[2] >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t d = r / out->n[1], i = r % out->n[1];
        ax_gather_rows(out->p + d * out->s[0] + i * out->s[1], out->s[2], in->p + d * in->s[0], in->s[1], in->s[2],
                       out->n[2], c, i);
    }
}

/* Fold axis 2: a gather within each row. */
static void ax_fold_axis2(const ax_blk *out, const ax_blk *in, const ax_csr *c, bool par) {
    (void)par; /* used only by OpenMP */
    int64_t rows = out->n[0] * out->n[1];
#pragma omp parallel for if (par && rows * in->n[2] >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t d = r / out->n[1], h = r % out->n[1];
        const float *src = in->p + d * in->s[0] + h * in->s[1];
        float *dst = out->p + d * out->s[0] + h * out->s[1];
        for (int64_t i = 0; i < out->n[2]; i++) {
            float acc = 0.0f;
            for (int64_t e = c->start[i]; e < c->start[i + 1]; e++) acc += c->w[e] * src[c->o[e] * in->s[2]];
            dst[i * out->s[2]] = acc;
        }
    }
}

/* dx plane nc from dy plane nc; buf holds the two intermediate blocks. */
static void ax_linear_plane_backward(const ax_vol *dx, const ax_vol *dy, const ax_csr csr[3], int sp, int64_t nc,
                                     float *buf, bool par) {
    ax_blk src = {dy->p + ax_vol_plane(dy, nc), {dy->d, dy->h, dy->w}, {dy->sd, dy->sh, dy->sw}};
    ax_blk dst = {dx->p + ax_vol_plane(dx, nc), {dx->d, dx->h, dx->w}, {dx->sd, dx->sh, dx->sw}};
    ax_blk t1, t2;
    if (sp == 3) {
        t1 = ax_blk_contig(buf, dx->d, dy->h, dy->w);
        ax_fold_axis0(&t1, &src, &csr[0], par);
        src = t1;
    }
    if (sp >= 2) {
        t2 = ax_blk_contig(buf + dx->d * dy->h * dy->w, dx->d, dx->h, dy->w);
        ax_fold_axis1(&t2, &src, &csr[1], par);
        src = t2;
    }
    ax_fold_axis2(&dst, &src, &csr[2], par);
}

static ax_status ax_linear_backward(const ax_vol *xv, const ax_vol *yv, const ax_axis ax[3], int sp) {
    ax_csr csr[3];
    memset(csr, 0, sizeof csr);
    int64_t isz[3] = {xv->d, xv->h, xv->w}, osz[3] = {yv->d, yv->h, yv->w};
    ax_status st = AX_OK;
    for (int k = 3 - sp; k < 3 && st == AX_OK; k++) st = ax_csr_build(&csr[k], &ax[k], isz[k], osz[k]);
    int64_t planes = xv->n * xv->c;
    int64_t scratch = xv->d * yv->h * yv->w + xv->d * xv->h * yv->w;
    int64_t work = planes * (yv->d * yv->h * yv->w + scratch);
    (void)work; /* used only by OpenMP */
    bool ok = st == AX_OK;
    if (ok && planes >= ax_num_threads()) {
        /* enough planes: one per thread at a time, each with its scratch */
#pragma omp parallel if (work >= AX_PAR_MIN_ELEMS)
        {
            float *buf = malloc((size_t)scratch * sizeof(float) + 1);
            if (!buf) {
#pragma omp atomic write
                ok = false;
            }
#pragma omp for schedule(static)
            for (int64_t nc = 0; nc < planes; nc++)
                if (buf) ax_linear_plane_backward(xv, yv, csr, sp, nc, buf, false);
            free(buf);
        }
    } else if (ok) {
        /* few planes: one at a time, each pass parallel over its rows */
        float *buf = malloc((size_t)scratch * sizeof(float) + 1);
        ok = buf != NULL;
        for (int64_t nc = 0; ok && nc < planes; nc++) ax_linear_plane_backward(xv, yv, csr, sp, nc, buf, true);
        free(buf);
    }
    for (int k = 0; k < 3; k++) ax_csr_free(&csr[k]);
    if (!ok && st == AX_OK) st = AX_ERROR(AX_ERR_NOMEM, "ax_cpu_interpolate_backward: out of memory for scratch");
    return st;
}

ax_status ax_cpu_interpolate_backward(ax_tensor *dx, const ax_tensor *dy, ax_interp_mode mode, bool align_corners) {
    if (!ax_interp_ok(dx, dy)) return ax_interp_bad("ax_cpu_interpolate_backward", dx, dy);
    if (mode != AX_INTERP_NEAREST && mode != AX_INTERP_TRILINEAR)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_interpolate_backward: unknown mode %d", (int)mode);
    ax_vol xv = ax_vol_of(dx), yv = ax_vol_of(dy);
    int64_t planes = xv.n * xv.c;
    if (planes == 0 || xv.d * xv.h * xv.w == 0) return AX_OK;
    int sp = dx->ndim - 2;
    ax_axis ax[3];
    /* offsets index dx: the tables are built against dx's strides */
    if (ax_axes_build(ax, &xv, &yv, sp, mode, align_corners) != AX_OK) return ax_error_status();
    if (mode == AX_INTERP_TRILINEAR) {
        ax_status st = ax_linear_backward(&xv, &yv, ax, sp);
        free(ax[0].off0);
        return st;
    }
    /* nearest: one tap per output, scattered in torch's order */
    int64_t slabs = ax_backward_slabs(planes, xv.d), items = planes * slabs;
    int64_t work = planes * (xv.d * xv.h * xv.w + yv.d * yv.h * yv.w);
    (void)work; /* used only by OpenMP */
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t it = 0; it < items; it++) {
        int64_t nc = it / slabs, s = it % slabs;
        int64_t d0 = s * xv.d / slabs, d1 = (s + 1) * xv.d / slabs;
        ax_vol_zero_slab(&xv, nc, d0, d1);
        ax_nearest_slab_backward(&xv, &yv, ax, nc, d0, d1);
    }
    free(ax[0].off0);
    return AX_OK;
}

/* ---- padding ---------------------------------------------------------------------------- */

/* Source index along a padded dim of size `in` for output index o, or -1
 * for a constant-filled position. Negative pads crop; the formulas are
 * torch's for every sign of the pads. */
static int64_t ax_pad_source(int64_t o, int64_t before, int64_t in, ax_pad_mode mode) {
    int64_t i = o - before;
    if (i >= 0 && i < in) return i;
    switch (mode) {
    case AX_PAD_REFLECT: return i < 0 ? -i : 2 * (in - 1) - i;
    case AX_PAD_REPLICATE: return i < 0 ? 0 : in - 1;
    default: return -1;
    }
}

/* y's rows (all dims but the last) mapped to x's. */
typedef struct ax_pad_job {
    int nd, first; /* ndim, first padded dim */
    const ax_tensor *y, *x;
    int64_t *map[AX_MAX_DIMS]; /* padded dims only: y index -> x index or -1 */
    int64_t rows, groups, rows_per_group; /* groups: products of the unpadded dims */
} ax_pad_job;

static ax_status ax_pad_job_init(ax_pad_job *j, const char *fn, const ax_tensor *y, const ax_tensor *x,
                                 const int64_t *pads, int n_spatial, ax_pad_mode mode) {
    char s1[160], s2[160];
    memset(j, 0, sizeof *j);
    bool ok = x->dtype == AX_DTYPE_F32 && y->dtype == AX_DTYPE_F32 && x->ndim == y->ndim && n_spatial >= 1 &&
              n_spatial <= x->ndim && (mode == AX_PAD_CONSTANT || mode == AX_PAD_REFLECT || mode == AX_PAD_REPLICATE);
    int first = x->ndim - n_spatial;
    for (int d = 0; ok && d < x->ndim; d++) {
        int64_t want = x->shape[d];
        if (d >= first) {
            want += pads[2 * (d - first)] + pads[2 * (d - first) + 1];
            /* reflect / replicate need a source inside x for every output */
            if (mode != AX_PAD_CONSTANT && y->shape[d] > 0 &&
                (x->shape[d] < 1 ||
                 (mode == AX_PAD_REFLECT && (pads[2 * (d - first)] >= x->shape[d] || pads[2 * (d - first) + 1] >= x->shape[d]))))
                ok = false;
        }
        ok = ok && y->shape[d] == want;
    }
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID, "%s: bad operands x %s, y %s for %d padded dims (mode %d)", fn,
                        ax_shape_str(s1, sizeof s1, x->ndim, x->shape), ax_shape_str(s2, sizeof s2, y->ndim, y->shape),
                        n_spatial, (int)mode);
    j->nd = x->ndim;
    j->first = first;
    j->x = x;
    j->y = y;
    int64_t total = 0;
    for (int d = first; d < j->nd; d++) total += y->shape[d];
    int64_t *buf = malloc((size_t)total * sizeof(int64_t) + 1);
    if (!buf) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for index tables", fn);
    for (int d = first; d < j->nd; d++) {
        j->map[d] = buf;
        for (int64_t o = 0; o < y->shape[d]; o++)
            buf[o] = ax_pad_source(o, pads[2 * (d - first)], x->shape[d], mode);
        buf += y->shape[d];
    }
    j->rows = 1;
    for (int d = 0; d < j->nd - 1; d++) j->rows *= y->shape[d];
    j->groups = 1;
    for (int d = 0; d < first; d++) j->groups *= y->shape[d];
    j->rows_per_group = j->groups ? j->rows / j->groups : 0;
    if (j->nd - 1 < first) j->rows_per_group = 1; /* cannot happen: the last dim is always padded */
    return AX_OK;
}

static void ax_pad_job_free(ax_pad_job *j) { free(j->map[j->first]); }

/* Offsets of row r in y and x; false when the row lies in constant padding. */
static bool ax_pad_row(const ax_pad_job *j, int64_t r, int64_t *yoff, int64_t *xoff) {
    int64_t yo = 0, xo = 0;
    bool inside = true;
    for (int d = j->nd - 2; d >= 0; d--) {
        int64_t n = j->y->shape[d], i = r % n;
        r /= n;
        yo += i * j->y->stride[d];
        int64_t s = d >= j->first ? j->map[d][i] : i;
        if (s < 0)
            inside = false;
        else
            xo += s * j->x->stride[d];
    }
    *yoff = yo;
    *xoff = xo;
    return inside;
}

ax_status ax_cpu_pad(ax_tensor *y, const ax_tensor *x, const int64_t *pads, int n_spatial, ax_pad_mode mode,
                     double value) {
    ax_pad_job j;
    if (ax_pad_job_init(&j, "ax_cpu_pad", y, x, pads, n_spatial, mode) != AX_OK) return ax_error_status();
    const float *xp = ax_tensor_data(x);
    float *yp = ax_tensor_data(y);
    int last = j.nd - 1;
    int64_t yw = y->shape[last], sy = y->stride[last], sx = x->stride[last];
    const int64_t *mw = j.map[last];
    float v = (float)value;
#pragma omp parallel for if (j.rows * yw >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < j.rows; r++) {
        int64_t yo, xo;
        bool inside = ax_pad_row(&j, r, &yo, &xo);
        float *yr = yp + yo;
        const float *xr = xp + xo;
        if (!inside) {
            for (int64_t o = 0; o < yw; o++) yr[o * sy] = v;
            continue;
        }
        for (int64_t o = 0; o < yw; o++) {
            int64_t s = mw[o];
            yr[o * sy] = s < 0 ? v : xr[s * sx];
        }
    }
    ax_pad_job_free(&j);
    return AX_OK;
}

/* Zero dx through the same row walk (its rows are x-shaped here). */
static void ax_zero_rows(ax_tensor *t) {
    int nd = t->ndim;
    int64_t rows = 1, w = t->shape[nd - 1], s = t->stride[nd - 1];
    for (int d = 0; d < nd - 1; d++) rows *= t->shape[d];
    float *p = ax_tensor_data(t);
#pragma omp parallel for if (rows * w >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, q = r;
        for (int d = nd - 2; d >= 0; d--) {
            off += (q % t->shape[d]) * t->stride[d];
            q /= t->shape[d];
        }
        for (int64_t o = 0; o < w; o++) p[off + o * s] = 0.0f;
    }
}

/* dx[src] += dy over rows [r0, r1) of dy, in order. */
static void ax_pad_rows_backward(const ax_pad_job *j, float *gx, const float *gy, int64_t r0, int64_t r1) {
    int last = j->nd - 1;
    int64_t yw = j->y->shape[last], sy = j->y->stride[last], sx = j->x->stride[last];
    const int64_t *mw = j->map[last];
    for (int64_t r = r0; r < r1; r++) {
        int64_t yo, xo;
        if (!ax_pad_row(j, r, &yo, &xo)) continue;
        const float *yr = gy + yo;
        float *xr = gx + xo;
        for (int64_t o = 0; o < yw; o++)
            if (mw[o] >= 0) xr[mw[o] * sx] += yr[o * sy];
    }
}

ax_status ax_cpu_pad_backward(ax_tensor *dx, const ax_tensor *dy, const int64_t *pads, int n_spatial,
                              ax_pad_mode mode) {
    ax_pad_job j;
    if (ax_pad_job_init(&j, "ax_cpu_pad_backward", dy, dx, pads, n_spatial, mode) != AX_OK) return ax_error_status();
    float *gx = ax_tensor_data(dx);
    const float *gy = ax_tensor_data(dy);
    ax_zero_rows(dx);
    int64_t work = ax_tensor_numel(dy);
    (void)work; /* used only by OpenMP */
    if (mode == AX_PAD_CONSTANT) {
        /* each dx element has at most one source: rows never collide */
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static)
        for (int64_t r = 0; r < j.rows; r++) ax_pad_rows_backward(&j, gx, gy, r, r + 1);
    } else {
        /* reflections fold several dy rows onto one dx row: a group of
         * unpadded leading indices is one thread's */
#pragma omp parallel for if (work >= AX_PAR_MIN_ELEMS) schedule(static)
        for (int64_t g = 0; g < j.groups; g++)
            ax_pad_rows_backward(&j, gx, gy, g * j.rows_per_group, (g + 1) * j.rows_per_group);
    }
    ax_pad_job_free(&j);
    return AX_OK;
}
