/* Resampling through a 3x4 matrix plus an optional displacement field
 * (axon/warp.h).
 *
 * Each output row (d, h) is a straight line in input space,
 * p(w) = b + w * s, so coordinates come from one multiply-add per axis. A
 * row is processed in two stages: the first turns coordinates into source
 * offsets and fractions for the voxels whose whole stencil lies inside the
 * input (the interval of such w is solved once per row when there is no
 * displacement), marking the rest; the second blends every channel from
 * those arrays, so the coordinate work is shared across channels and the
 * blend loop has no bounds checks. Marked voxels take the slower border
 * path, which handles fill/edge semantics and any coordinate (NaN, huge).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/warp.h"

/* Stencils closer than this to the grid's edge take the border path, so a
 * coordinate computed one ulp differently can never reach past the input. */
#define AX_WARP_EPS 1e-7

typedef struct ax_warp_geom {
    double b[3], s[3];      /* row origin and step (input voxels) */
    double lo[3], hi[3];    /* fast path iff lo <= p < hi on every axis */
    int64_t n[3];           /* input D, H, W */
    int64_t stride[3];      /* input strides in elements */
    int64_t out_w;          /* output row length */
    size_t out_vox, in_vox; /* voxels per channel */
    const float *disp;      /* [3, oD, oH, oW] or NULL */
    size_t row;             /* index of the row's first voxel in out */
} ax_warp_geom;

ax_warp ax_warp_identity(void) {
    ax_warp w;
    memset(&w, 0, sizeof w);
    for (int a = 0; a < 3; a++) w.matrix[a][a] = 1.0;
    w.interp = AX_INTERP_TRILINEAR;
    w.fill = 0.0f;
    w.border = AX_WARP_BORDER_FILL;
    return w;
}

void ax_warp_centred(ax_warp *w, const double a[3][3], const int32_t out_shape[3], const int32_t in_shape[3]) {
    for (int i = 0; i < 3; i++) {
        double t = 0.5 * (in_shape[i] - 1);
        for (int j = 0; j < 3; j++) {
            w->matrix[i][j] = a[i][j];
            t -= a[i][j] * 0.5 * (out_shape[j] - 1);
        }
        w->matrix[i][3] = t;
    }
}

/* Checks shared by both entry points (channels and interp are f32's). */
static ax_status ax_warp_check(const void *out, const int32_t out_shape[3], const void *in, const int32_t in_shape[3],
                               const ax_warp *w) {
    if (!out || !in || !out_shape || !in_shape || !w)
        return AX_ERROR(AX_ERR_INVALID, "warp: NULL buffer, shape or warp");
    for (int a = 0; a < 3; a++)
        if (out_shape[a] < 1 || in_shape[a] < 1)
            return AX_ERROR(AX_ERR_INVALID, "warp: shapes must be >= 1, got in %dx%dx%d out %dx%dx%d",
                            (int)in_shape[0], (int)in_shape[1], (int)in_shape[2], (int)out_shape[0],
                            (int)out_shape[1], (int)out_shape[2]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            if (!isfinite(w->matrix[i][j]))
                return AX_ERROR(AX_ERR_INVALID, "warp: matrix[%d][%d] is not finite", i, j);
    if (w->border != AX_WARP_BORDER_FILL && w->border != AX_WARP_BORDER_EDGE)
        return AX_ERROR(AX_ERR_INVALID, "warp: unknown border mode %d", (int)w->border);
    return AX_OK;
}

static void ax_warp_geom_init(ax_warp_geom *g, const int32_t out_shape[3], const int32_t in_shape[3],
                              const ax_warp *w, int linear) {
    for (int a = 0; a < 3; a++) {
        g->n[a] = in_shape[a];
        g->s[a] = w->matrix[a][2];
        /* Linear reads i and i+1 with i = floor(p): p in [0, n-1). Nearest
         * reads floor(p + 0.5): p in [-0.5, n-0.5). */
        g->lo[a] = (linear ? 0.0 : -0.5) + AX_WARP_EPS;
        g->hi[a] = (linear ? (double)in_shape[a] - 1.0 : (double)in_shape[a] - 0.5) - AX_WARP_EPS;
    }
    g->stride[2] = 1;
    g->stride[1] = in_shape[2];
    g->stride[0] = (int64_t)in_shape[1] * in_shape[2];
    g->out_w = out_shape[2];
    g->out_vox = (size_t)out_shape[0] * (size_t)out_shape[1] * (size_t)out_shape[2];
    g->in_vox = (size_t)in_shape[0] * (size_t)in_shape[1] * (size_t)in_shape[2];
    g->disp = w->disp;
}

static void ax_warp_geom_row(ax_warp_geom *g, const ax_warp *w, int64_t d, int64_t h, const int32_t out_shape[3]) {
    for (int a = 0; a < 3; a++) g->b[a] = w->matrix[a][0] * (double)d + w->matrix[a][1] * (double)h + w->matrix[a][3];
    g->row = ((size_t)d * (size_t)out_shape[1] + (size_t)h) * (size_t)out_shape[2];
}

/* Input coordinates of output voxel w of the current row. */
static inline void ax_warp_coord(const ax_warp_geom *g, int64_t w, double p[3]) {
    for (int a = 0; a < 3; a++) p[a] = g->b[a] + (double)w * g->s[a];
    if (g->disp)
        for (int a = 0; a < 3; a++) p[a] += (double)g->disp[(size_t)a * g->out_vox + g->row + (size_t)w];
}

static inline int ax_warp_inside(const ax_warp_geom *g, const double p[3]) {
    return p[0] >= g->lo[0] && p[0] < g->hi[0] && p[1] >= g->lo[1] && p[1] < g->hi[1] && p[2] >= g->lo[2] &&
           p[2] < g->hi[2];
}

/* Without displacement the fast voxels of a row form one interval [lo, hi)
 * (each axis's condition is a half-line in w). Solve it in real arithmetic,
 * then settle the ends with the exact predicate. */
static void ax_warp_row_interval(const ax_warp_geom *g, int64_t *lo_out, int64_t *hi_out) {
    double lo = 0.0, hi = (double)g->out_w;
    for (int a = 0; a < 3; a++) {
        double b = g->b[a], s = g->s[a];
        if (s == 0.0) {
            if (!(b >= g->lo[a] && b < g->hi[a])) hi = -1.0;
            continue;
        }
        double t0 = (g->lo[a] - b) / s, t1 = (g->hi[a] - b) / s;
        if (t0 > t1) {
            double t = t0;
            t0 = t1;
            t1 = t;
        }
        if (t0 > lo) lo = t0;
        if (t1 < hi) hi = t1;
    }
    int64_t l = 0, r = 0;
    if (hi > lo) {
        l = (int64_t)ceil(lo);
        r = (int64_t)ceil(hi);
        if (l < 0) l = 0;
        if (r > g->out_w) r = g->out_w;
    }
    double p[3];
    if (l < r) {
        /* Grow or shrink each end by the exact test (the set is an interval). */
        while (l > 0 && (ax_warp_coord(g, l - 1, p), ax_warp_inside(g, p))) l--;
        while (l < r && (ax_warp_coord(g, l, p), !ax_warp_inside(g, p))) l++;
        while (r < g->out_w && (ax_warp_coord(g, r, p), ax_warp_inside(g, p))) r++;
        while (r > l && (ax_warp_coord(g, r - 1, p), !ax_warp_inside(g, p))) r--;
    }
    if (l >= r) l = r = 0;
    *lo_out = l;
    *hi_out = r;
}

/* ---- linear ----------------------------------------------------------------- */

/* Scratch for one row: offset of the stencil's first voxel (-1: border
 * path) and the three fractions. */
typedef struct ax_warp_row {
    int64_t *off;
    float *t0, *t1, *t2;
} ax_warp_row;

static void ax_warp_row_linear(const ax_warp_geom *g, ax_warp_row *r) {
    int64_t lo, hi, n = g->out_w;
    if (!g->disp) {
        ax_warp_row_interval(g, &lo, &hi);
        for (int64_t w = 0; w < lo; w++) r->off[w] = -1;
        for (int64_t w = hi; w < n; w++) r->off[w] = -1;
        const double b0 = g->b[0], b1 = g->b[1], b2 = g->b[2], s0 = g->s[0], s1 = g->s[1], s2 = g->s[2];
        const int64_t st0 = g->stride[0], st1 = g->stride[1];
        for (int64_t w = lo; w < hi; w++) {
            double x0 = b0 + (double)w * s0, x1 = b1 + (double)w * s1, x2 = b2 + (double)w * s2;
            int64_t i0 = (int64_t)x0, i1 = (int64_t)x1, i2 = (int64_t)x2; /* x >= 0: truncation is floor */
            r->t0[w] = (float)(x0 - (double)i0);
            r->t1[w] = (float)(x1 - (double)i1);
            r->t2[w] = (float)(x2 - (double)i2);
            r->off[w] = i0 * st0 + i1 * st1 + i2;
        }
        return;
    }
    for (int64_t w = 0; w < n; w++) {
        double p[3];
        ax_warp_coord(g, w, p);
        if (!ax_warp_inside(g, p)) {
            r->off[w] = -1;
            continue;
        }
        int64_t i0 = (int64_t)p[0], i1 = (int64_t)p[1], i2 = (int64_t)p[2];
        r->t0[w] = (float)(p[0] - (double)i0);
        r->t1[w] = (float)(p[1] - (double)i1);
        r->t2[w] = (float)(p[2] - (double)i2);
        r->off[w] = i0 * g->stride[0] + i1 * g->stride[1] + i2;
    }
}

static inline float ax_warp_lerp(float a, float b, float t) { return a + (b - a) * t; }

/* One voxel by the general rule: fill or clamp per stencil corner. */
static float ax_warp_border_linear(const ax_warp_geom *g, const float *src, int64_t w, const ax_warp *wp) {
    double p[3];
    ax_warp_coord(g, w, p);
    int64_t i[3][2];
    int ok[3][2];
    float t[3];
    for (int a = 0; a < 3; a++) {
        double x = p[a], nmax = (double)(g->n[a] - 1);
        if (wp->border == AX_WARP_BORDER_EDGE) {
            x = x > 0.0 ? (x < nmax ? x : nmax) : 0.0; /* NaN -> 0 */
        } else if (!(x > -1.0 && x < (double)g->n[a])) {
            return wp->fill; /* no corner inside (or NaN) */
        }
        double f = floor(x);
        i[a][0] = (int64_t)f;
        i[a][1] = i[a][0] + 1;
        t[a] = (float)(x - f);
        /* On a grid point the second corner has weight 0: reuse the first
         * so an edge voxel comes back exactly, even with a NaN fill. */
        if (t[a] == 0.0f || (wp->border == AX_WARP_BORDER_EDGE && i[a][1] > g->n[a] - 1)) i[a][1] = i[a][0];
        ok[a][0] = i[a][0] >= 0 && i[a][0] < g->n[a];
        ok[a][1] = i[a][1] >= 0 && i[a][1] < g->n[a];
    }
    float v[2][2][2];
    for (int z = 0; z < 2; z++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++)
                v[z][y][x] = ok[0][z] && ok[1][y] && ok[2][x]
                                 ? src[i[0][z] * g->stride[0] + i[1][y] * g->stride[1] + i[2][x]]
                                 : wp->fill;
    float c00 = ax_warp_lerp(v[0][0][0], v[0][0][1], t[2]), c01 = ax_warp_lerp(v[0][1][0], v[0][1][1], t[2]);
    float c10 = ax_warp_lerp(v[1][0][0], v[1][0][1], t[2]), c11 = ax_warp_lerp(v[1][1][0], v[1][1][1], t[2]);
    return ax_warp_lerp(ax_warp_lerp(c00, c01, t[1]), ax_warp_lerp(c10, c11, t[1]), t[0]);
}

static void ax_warp_blend_row(const ax_warp_geom *g, const ax_warp_row *r, const float *src, float *dst,
                              const ax_warp *wp) {
    const int64_t sd = g->stride[0], sh = g->stride[1];
    for (int64_t w = 0; w < g->out_w; w++) {
        int64_t o = r->off[w];
        if (o < 0) {
            dst[w] = ax_warp_border_linear(g, src, w, wp);
            continue;
        }
        const float *q = src + o;
        float tw = r->t2[w], th = r->t1[w], td = r->t0[w];
        float c00 = ax_warp_lerp(q[0], q[1], tw), c01 = ax_warp_lerp(q[sh], q[sh + 1], tw);
        float c10 = ax_warp_lerp(q[sd], q[sd + 1], tw), c11 = ax_warp_lerp(q[sd + sh], q[sd + sh + 1], tw);
        dst[w] = ax_warp_lerp(ax_warp_lerp(c00, c01, th), ax_warp_lerp(c10, c11, th), td);
    }
}

/* ---- nearest ---------------------------------------------------------------- */

/* Source offset of every voxel of the row, -1 for `fill`. */
static void ax_warp_row_nearest(const ax_warp_geom *g, const ax_warp *wp, int64_t *off) {
    int64_t lo = 0, hi = 0, n = g->out_w;
    if (!g->disp) {
        ax_warp_row_interval(g, &lo, &hi);
        const double b0 = g->b[0] + 0.5, b1 = g->b[1] + 0.5, b2 = g->b[2] + 0.5;
        const double s0 = g->s[0], s1 = g->s[1], s2 = g->s[2];
        for (int64_t w = lo; w < hi; w++) {
            int64_t i0 = (int64_t)(b0 + (double)w * s0), i1 = (int64_t)(b1 + (double)w * s1),
                    i2 = (int64_t)(b2 + (double)w * s2);
            off[w] = i0 * g->stride[0] + i1 * g->stride[1] + i2;
        }
    }
    for (int64_t w = 0; w < n; w++) {
        if (w == lo && hi > lo) {
            w = hi - 1;
            continue;
        }
        double p[3];
        ax_warp_coord(g, w, p);
        int64_t o = 0;
        for (int a = 0; a < 3 && o >= 0; a++) {
            double x = p[a] + 0.5, nmax = (double)g->n[a];
            if (wp->border == AX_WARP_BORDER_EDGE) {
                x = x > 0.0 ? (x < nmax ? x : nmax - 1.0) : 0.0;
            } else if (!(x >= 0.0 && x < nmax)) {
                o = -1;
                break;
            }
            o += (int64_t)x * g->stride[a];
        }
        off[w] = o;
    }
}

/* ---- entry points ------------------------------------------------------------ */

ax_status ax_warp_f32(float *out, const int32_t out_shape[3], const float *in, const int32_t in_shape[3],
                      int32_t channels, const ax_warp *w) {
    ax_status st = ax_warp_check(out, out_shape, in, in_shape, w);
    if (st != AX_OK) return st;
    if (channels < 1) return AX_ERROR(AX_ERR_INVALID, "warp: channels must be >= 1, got %d", (int)channels);
    if (w->interp != AX_INTERP_NEAREST && w->interp != AX_INTERP_TRILINEAR)
        return AX_ERROR(AX_ERR_INVALID, "warp: unknown interpolation %d", (int)w->interp);
    int linear = w->interp == AX_INTERP_TRILINEAR;
    ax_warp_geom g;
    ax_warp_geom_init(&g, out_shape, in_shape, w, linear);
    size_t n = (size_t)out_shape[2];
    int64_t *off = malloc(n * sizeof *off);
    float *t = linear ? malloc(3 * n * sizeof *t) : NULL;
    if (!off || (linear && !t)) {
        free(off);
        free(t);
        return AX_ERROR(AX_ERR_NOMEM, "warp: out of memory for a row of %zu voxels", n);
    }
    ax_warp_row r = {.off = off, .t0 = t, .t1 = t ? t + n : NULL, .t2 = t ? t + 2 * n : NULL};
    for (int64_t d = 0; d < out_shape[0]; d++)
        for (int64_t h = 0; h < out_shape[1]; h++) {
            ax_warp_geom_row(&g, w, d, h, out_shape);
            if (linear) {
                ax_warp_row_linear(&g, &r);
                for (int32_t c = 0; c < channels; c++)
                    ax_warp_blend_row(&g, &r, in + (size_t)c * g.in_vox, out + (size_t)c * g.out_vox + g.row, w);
            } else {
                ax_warp_row_nearest(&g, w, off);
                for (int32_t c = 0; c < channels; c++) {
                    const float *src = in + (size_t)c * g.in_vox;
                    float *dst = out + (size_t)c * g.out_vox + g.row;
                    for (size_t i = 0; i < n; i++) dst[i] = off[i] >= 0 ? src[off[i]] : w->fill;
                }
            }
        }
    free(off);
    free(t);
    return AX_OK;
}

ax_status ax_warp_u8(uint8_t *out, const int32_t out_shape[3], const uint8_t *in, const int32_t in_shape[3],
                     const ax_warp *w) {
    ax_status st = ax_warp_check(out, out_shape, in, in_shape, w);
    if (st != AX_OK) return st;
    ax_warp_geom g;
    ax_warp_geom_init(&g, out_shape, in_shape, w, 0);
    size_t n = (size_t)out_shape[2];
    int64_t *off = malloc(n * sizeof *off);
    if (!off) return AX_ERROR(AX_ERR_NOMEM, "warp: out of memory for a row of %zu voxels", n);
    float f = w->fill;
    uint8_t fill = f >= 0.0f ? (f < 255.0f ? (uint8_t)f : 255) : 0; /* truncated, NaN -> 0 */
    for (int64_t d = 0; d < out_shape[0]; d++)
        for (int64_t h = 0; h < out_shape[1]; h++) {
            ax_warp_geom_row(&g, w, d, h, out_shape);
            ax_warp_row_nearest(&g, w, off);
            uint8_t *dst = out + g.row;
            for (size_t i = 0; i < n; i++) dst[i] = off[i] >= 0 ? in[off[i]] : fill;
        }
    free(off);
    return AX_OK;
}

/* ---- Gaussian smoothing --------------------------------------------------------- */

/* Index of tap position i on an axis of n voxels. */
static int64_t ax_blur_reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

/* Normalised kernel of radius r = (int)(4 sigma + 0.5); caller frees. */
static float *ax_blur_kernel(double sigma, int64_t *radius) {
    int64_t r = (int64_t)(4.0 * sigma + 0.5);
    if (r < 1) r = 1;
    float *k = malloc((size_t)(2 * r + 1) * sizeof *k);
    if (!k) return NULL;
    double sum = 0.0;
    for (int64_t j = -r; j <= r; j++) sum += k[j + r] = (float)exp(-0.5 * (double)(j * j) / (sigma * sigma));
    for (int64_t j = 0; j <= 2 * r; j++) k[j] = (float)(k[j] / sum);
    *radius = r;
    return k;
}

/* Smooth along one axis: `lines` independent lines of n taps, `inner`
 * contiguous elements apart (inner == 1: along rows). dst and src must not
 * overlap. For inner > 1 the innermost loop runs over contiguous elements. */
static void ax_blur_axis(float *dst, const float *src, int64_t outer, int64_t n, int64_t inner, const float *k,
                         int64_t r, ax_blur_border border, float *pad) {
    for (int64_t o = 0; o < outer; o++) {
        const float *s = src + o * n * inner;
        float *t = dst + o * n * inner;
        if (inner == 1) {
            for (int64_t i = -r; i < n + r; i++) {
                int64_t j = border == AX_BLUR_REFLECT ? ax_blur_reflect(i, n) : i;
                pad[i + r] = j >= 0 && j < n ? s[j] : 0.0f;
            }
            for (int64_t i = 0; i < n; i++) t[i] = 0.0f;
            for (int64_t j = 0; j <= 2 * r; j++) {
                const float kj = k[j], *p = pad + j;
                for (int64_t i = 0; i < n; i++) t[i] += kj * p[i];
            }
            continue;
        }
        for (int64_t i = 0; i < n; i++) {
            float *row = t + i * inner;
            for (int64_t x = 0; x < inner; x++) row[x] = 0.0f;
            for (int64_t j = -r; j <= r; j++) {
                int64_t q = border == AX_BLUR_REFLECT ? ax_blur_reflect(i + j, n) : i + j;
                if (q < 0 || q >= n) continue;
                const float kj = k[j + r], *p = s + q * inner;
                for (int64_t x = 0; x < inner; x++) row[x] += kj * p[x];
            }
        }
    }
}

ax_status ax_gaussian_blur_f32(float *x, const int32_t shape[3], const double sigma[3], ax_blur_border border) {
    if (!x || !shape || !sigma) return AX_ERROR(AX_ERR_INVALID, "gaussian blur: NULL buffer, shape or sigma");
    if (border != AX_BLUR_REFLECT && border != AX_BLUR_ZERO)
        return AX_ERROR(AX_ERR_INVALID, "gaussian blur: unknown border mode %d", (int)border);
    for (int a = 0; a < 3; a++) {
        if (shape[a] < 1) return AX_ERROR(AX_ERR_INVALID, "gaussian blur: shape[%d] = %d < 1", a, (int)shape[a]);
        if (!(sigma[a] >= 0.0 && sigma[a] <= 1000.0))
            return AX_ERROR(AX_ERR_INVALID, "gaussian blur: sigma[%d] = %g outside [0, 1000]", a, sigma[a]);
    }
    int64_t n[3] = {shape[0], shape[1], shape[2]};
    size_t vox = (size_t)n[0] * (size_t)n[1] * (size_t)n[2];
    float *tmp = malloc(vox * sizeof *tmp);
    float *pad = malloc((size_t)(n[2] + 2 * 4001) * sizeof *pad);
    if (!tmp || !pad) {
        free(tmp);
        free(pad);
        return AX_ERROR(AX_ERR_NOMEM, "gaussian blur: out of memory for %zu voxels", vox);
    }
    ax_status st = AX_OK;
    for (int a = 0; a < 3; a++) {
        if (sigma[a] == 0.0) continue;
        int64_t r;
        float *k = ax_blur_kernel(sigma[a], &r);
        if (!k) {
            st = AX_ERROR(AX_ERR_NOMEM, "gaussian blur: out of memory");
            break;
        }
        int64_t outer = a == 0 ? 1 : a == 1 ? n[0] : n[0] * n[1];
        int64_t inner = a == 0 ? n[1] * n[2] : a == 1 ? n[2] : 1;
        ax_blur_axis(tmp, x, outer, n[a], inner, k, r, border, pad);
        memcpy(x, tmp, vox * sizeof *x);
        free(k);
    }
    free(tmp);
    free(pad);
    return st;
}
