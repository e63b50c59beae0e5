/* Group normalisation: the one kernel behind instance, group, layer and
 * batch norm (the op front-ends pick the view; see axon/kernels.h).
 *
 * x: [N, C, *] with S = prod(*), C-contiguous (the front-ends pass it so;
 * strided operands are copied first), so the L = C/groups * S elements of
 * one (sample, group) "unit" are contiguous. Every unit is handled start
 * to finish by one thread:
 *
 *   forward   one pass for the moments, one pass writing y while the unit
 *             is still in cache;
 *   backward  one pass for the per-channel sums of dy and dy*(x - mean),
 *             one pass writing dx.
 *
 * Moments are accumulated in double around a shift k (the mean of the
 * unit's first elements), so var = E[(x-k)^2] - E[x-k]^2 loses nothing
 * to cancellation unless the data sit millions of standard deviations
 * from k; the result matches a two-pass variance to ~1e-12 relative at a
 * single read of x.
 *
 * Fused activation (group_norm_act, group_norm_act_backward): the forward
 * applies leaky_relu in the write pass; the backward takes the
 * activation's gradient from y (y > 0 exactly where the pre-activation is,
 * for slopes >= 0) as it reads dy, in every pass that reads dy, so no
 * masked copy of dy is ever written. Each gated value is the float the
 * unfused unary_backward(LEAKY_RELU) would have stored, so the fused
 * kernels give the unfused results bit for bit.
 *
 * Determinism: a unit's sums are computed by one thread in a fixed order
 * (an `omp simd` reduction, whose lane split is fixed at compile time),
 * and dweight/dbias are reduced per channel over the samples in order, so
 * results are bit-identical for any thread count.
 */
#include <math.h>
#include <stdlib.h>

#include "axon/autograd.h"
#include "cpu_iter.h"
#include "cpu_kernels.h"
#include "tensor_internal.h"

/* Channels with fewer elements than this do not keep per-(n, c) partial
 * sums for dweight/dbias (the buffer would rival x in size); their
 * channel sums are recomputed by a second, channel-parallel pass. */
#define AX_NORM_PARTIALS_MIN_S 16
/* That pass, for short channels: channels per task (contiguous runs of a
 * row), and the most row chunks whose partial sums are kept. */
#define AX_NORM_CHANNEL_BLOCK 1024
#define AX_NORM_ROW_CHUNKS 64
/* Elements averaged for the shift of the moments (a few: an outlier among
 * them only moves the shift, costing accuracy only at absurd ratios). */
#define AX_NORM_SHIFT_ELEMS 16

typedef struct ax_norm_geom {
    int64_t n, c, s;  /* samples, channels, elements per channel */
    int64_t groups, cpg, len; /* groups, channels per group, elements per unit */
} ax_norm_geom;

static ax_status ax_norm_geom_of(const char *fn, const ax_tensor *x, int64_t groups, ax_norm_geom *g) {
    if (x->ndim < 2 || groups < 1 || x->shape[1] % groups != 0) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: x %s cannot be split into %lld groups", fn,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape), (long long)groups);
    }
    g->n = x->shape[0];
    g->c = x->shape[1];
    g->s = 1;
    for (int d = 2; d < x->ndim; d++) g->s *= x->shape[d];
    g->groups = groups;
    g->cpg = g->c / groups;
    g->len = g->cpg * g->s;
    return AX_OK;
}

/* The kernels trust the front-end for values, but not for sizes: a wrong
 * shape would be an out-of-bounds write. */
static ax_status ax_norm_check_shapes(const char *fn, const ax_norm_geom *g, const ax_tensor *x, const ax_tensor *out,
                                      const char *out_name, const ax_tensor *mean, const ax_tensor *rstd,
                                      const ax_tensor *const *per_channel, int n_per_channel) {
    char a[160], b[160];
    if (out && !ax_tensor_same_shape(out, x))
        return AX_ERROR(AX_ERR_INVALID, "%s: %s %s does not match x %s", fn, out_name,
                        ax_shape_str(a, sizeof a, out->ndim, out->shape), ax_shape_str(b, sizeof b, x->ndim, x->shape));
    const ax_tensor *stats[2] = {mean, rstd};
    for (int i = 0; i < 2; i++)
        if (stats[i]->ndim != 2 || stats[i]->shape[0] != g->n || stats[i]->shape[1] != g->groups)
            return AX_ERROR(AX_ERR_INVALID, "%s: %s %s must be [%lld, %lld]", fn, i ? "rstd" : "mean",
                            ax_shape_str(a, sizeof a, stats[i]->ndim, stats[i]->shape), (long long)g->n,
                            (long long)g->groups);
    for (int i = 0; i < n_per_channel; i++) {
        const ax_tensor *t = per_channel[i];
        if (t && (t->ndim != 1 || t->shape[0] != g->c))
            return AX_ERROR(AX_ERR_INVALID, "%s: per-channel tensor %s must be [%lld]", fn,
                            ax_shape_str(a, sizeof a, t->ndim, t->shape), (long long)g->c);
    }
    return AX_OK;
}

static ax_status ax_norm_need_f32(const char *fn, const char *arg, const ax_tensor *t) {
    if (!t || t->dtype == AX_DTYPE_F32) return AX_OK;
    return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %s is %s; the CPU kernel takes f32", fn, arg, ax_dtype_name(t->dtype));
}

/* Contiguous f32 data of t: t's own, or that of a copy left in *tmp. */
static const float *ax_norm_in(const ax_tensor *t, ax_tensor **tmp) {
    *tmp = NULL;
    if (!t) return NULL;
    if (ax_tensor_is_contiguous(t)) return ax_tensor_data(t);
    ax_no_grad_begin();
    ax_status st = ax_tensor_contiguous(tmp, t);
    ax_no_grad_end();
    return st == AX_OK ? ax_tensor_data(*tmp) : NULL;
}

/* Where to write t: in place when contiguous, else a scratch tensor that
 * ax_norm_out_finish copies back. */
static float *ax_norm_out(ax_tensor *t, ax_tensor **tmp) {
    *tmp = NULL;
    if (!t) return NULL;
    if (ax_tensor_is_contiguous(t)) return ax_tensor_data(t);
    return ax_tensor_empty_like(tmp, t, AX_DTYPE_F32) == AX_OK ? ax_tensor_data(*tmp) : NULL;
}

static ax_status ax_norm_out_finish(ax_tensor *t, ax_tensor *tmp) {
    if (!tmp) return AX_OK;
    ax_status st = ax_tensor_copy_(t, tmp);
    ax_tensor_free(tmp);
    return st;
}

/* weight or bias data, or (absent) a buffer of c copies of `value` left in
 * *buf, so the loops below carry no per-element branches (which would stop
 * them vectorising). */
static const float *ax_norm_param(const ax_tensor *t, ax_tensor **tmp, float **buf, int64_t c, float value) {
    *buf = NULL;
    if (t) return ax_norm_in(t, tmp);
    *tmp = NULL;
    *buf = malloc((size_t)(c > 0 ? c : 1) * sizeof **buf);
    if (!*buf) {
        AX_ERROR(AX_ERR_NOMEM, "ax_cpu_group_norm: out of memory for %lld channels", (long long)c);
        return NULL;
    }
    for (int64_t i = 0; i < c; i++) (*buf)[i] = value;
    return *buf;
}

/* s1 = sum(x - k), s2 = sum((x - k)^2), in double. */
static void ax_norm_moments(const float *x, int64_t n, double k, double *s1, double *s2) {
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - k;
        a += d;
        b += d * d;
    }
    *s1 = a;
    *s2 = b;
}

/* leaky_relu's gradient from its output: dy where y > 0, else slope * dy
 * (unary_backward's LEAKY_RELU formula with x = y). */
static inline float ax_norm_gate(float dy, float y, float slope) { return y > 0 ? dy : dy * slope; }

/* sdy = sum(dy), sdx = sum(dy * (x - mu)), in double. */
static void ax_norm_row_sums(const float *dy, const float *x, int64_t n, double mu, double *sdy, double *sdx) {
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        double d = dy[i];
        a += d;
        b += d * ((double)x[i] - mu);
    }
    *sdy = a;
    *sdx = b;
}

/* The same with dy gated by the activation's gradient from y. */
static void ax_norm_row_sums_act(const float *dy, const float *y, float slope, const float *x, int64_t n, double mu,
                                 double *sdy, double *sdx) {
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < n; i++) {
        double d = ax_norm_gate(dy[i], y[i], slope);
        a += d;
        b += d * ((double)x[i] - mu);
    }
    *sdy = a;
    *sdx = b;
}

/* Row sums of dy (y: [optional] the activation's output to gate dy with). */
static void ax_norm_row_sums_any(const float *dy, const float *y, float slope, const float *x, int64_t n, double mu,
                                 double *sdy, double *sdx) {
    if (y) ax_norm_row_sums_act(dy, y, slope, x, n, mu, sdy, sdx);
    else ax_norm_row_sums(dy, x, n, mu, sdy, sdx);
}

/* ---- forward ----------------------------------------------------------------- */

/* One unit: L contiguous elements from channel c0 on. w, b: [C]. act:
 * y = leaky_relu(norm, slope) written in the same pass. */
static void ax_norm_forward_unit(float *y, const float *x, const ax_norm_geom *g, int64_t c0, const float *w,
                                 const float *b, double eps, bool act, float slope, float *mean_out, float *rstd_out) {
    const int64_t len = g->len, s = g->s;
    double mean = 0, var = 0;
    if (len > 0) {
        int64_t nk = len < AX_NORM_SHIFT_ELEMS ? len : AX_NORM_SHIFT_ELEMS;
        double k = 0, s1, s2;
        for (int64_t i = 0; i < nk; i++) k += x[i];
        k /= (double)nk;
        ax_norm_moments(x, len, k, &s1, &s2);
        double m1 = s1 / (double)len;
        mean = k + m1;
        var = s2 / (double)len - m1 * m1;
        if (var < 0) var = 0;
    }
    double rstd = 1.0 / sqrt(var + eps);
    *mean_out = (float)mean;
    *rstd_out = (float)rstd;
    /* y = (x - mean) * rstd * w + b, with mean split into two floats so
     * that x - mean stays exact when |mean| >> std */
    const float mhi = (float)mean, mlo = (float)(mean - (double)mhi), rf = (float)rstd;
    if (s == 1) { /* layer norm's [M, K, 1] view: one element per channel */
        const float *wc = w + c0, *bc = b + c0;
        if (act) {
#pragma omp simd
            for (int64_t c = 0; c < g->cpg; c++) {
                const float t = ((x[c] - mhi) - mlo) * (rf * wc[c]) + bc[c];
                y[c] = t > 0 ? t : t * slope;
            }
            return;
        }
#pragma omp simd
        for (int64_t c = 0; c < g->cpg; c++) y[c] = ((x[c] - mhi) - mlo) * (rf * wc[c]) + bc[c];
        return;
    }
    for (int64_t c = 0; c < g->cpg; c++) {
        const float a = rf * w[c0 + c], bb = b[c0 + c];
        const float *xc = x + c * s;
        float *yc = y + c * s;
        if (act) {
            /* leaky_relu's own formula (cpu_unary.c) on the float the unfused
             * path would have stored */
#pragma omp simd
            for (int64_t i = 0; i < s; i++) {
                const float t = ((xc[i] - mhi) - mlo) * a + bb;
                yc[i] = t > 0 ? t : t * slope;
            }
            continue;
        }
#pragma omp simd
        for (int64_t i = 0; i < s; i++) yc[i] = ((xc[i] - mhi) - mlo) * a + bb;
    }
}

/* leaky_relu slopes the fused kernels take: >= 0, so the backward can read
 * the branch from y. */
static ax_status ax_norm_check_slope(const char *fn, double slope) {
    if (slope >= 0 && isfinite(slope)) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: negative_slope %g must be finite and >= 0", fn, slope);
}

/* group_norm, then leaky_relu(slope) when act. */
static ax_status ax_norm_forward(const char *fn, ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                 const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps, bool act,
                                 float slope) {
    ax_norm_geom g;
    if (ax_norm_geom_of(fn, x, groups, &g) != AX_OK) return ax_error_status();
    const ax_tensor *f32s[] = {y, mean, rstd, x, weight, bias};
    const char *names[] = {"y", "mean", "rstd", "x", "weight", "bias"};
    for (int i = 0; i < 6; i++)
        if (ax_norm_need_f32(fn, names[i], f32s[i]) != AX_OK) return ax_error_status();
    if (ax_norm_check_shapes(fn, &g, x, y, "y", mean, rstd, (const ax_tensor *[]){weight, bias}, 2) != AX_OK)
        return ax_error_status();
    ax_tensor *tx = NULL, *tw = NULL, *tb = NULL, *ty = NULL;
    float *ones = NULL, *zeros = NULL;
    const float *xd = ax_norm_in(x, &tx), *wd = ax_norm_param(weight, &tw, &ones, g.c, 1.0f);
    const float *bd = ax_norm_param(bias, &tb, &zeros, g.c, 0.0f);
    float *yd = ax_norm_out(y, &ty);
    ax_status st = AX_OK;
    if ((!xd && g.len * g.n * g.groups != 0) || !wd || !bd || (!yd && ax_tensor_numel(y) != 0))
        st = ax_error_status();
    if (st == AX_OK) {
        float *md = ax_tensor_data(mean), *rd = ax_tensor_data(rstd);
        const int64_t ms0 = mean->stride[0], ms1 = mean->stride[1], rs0 = rstd->stride[0], rs1 = rstd->stride[1];
        const int64_t units = g.n * g.groups;
#pragma omp parallel for if (units > 1 && units * g.len >= AX_PAR_MIN_ELEMS) schedule(static)
        for (int64_t u = 0; u < units; u++) {
            int64_t n = u / g.groups, gi = u % g.groups;
            int64_t off = u * g.len;
            ax_norm_forward_unit(yd + off, xd + off, &g, gi * g.cpg, wd, bd, eps, act, slope, md + n * ms0 + gi * ms1,
                                 rd + n * rs0 + gi * rs1);
        }
        st = ax_norm_out_finish(y, ty);
        ty = NULL;
    }
    free(ones);
    free(zeros);
    ax_tensor_free(tx);
    ax_tensor_free(tw);
    ax_tensor_free(tb);
    ax_tensor_free(ty);
    return st;
}

ax_status ax_cpu_group_norm(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                            const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps) {
    return ax_norm_forward("ax_cpu_group_norm", y, mean, rstd, x, weight, bias, groups, eps, false, 0.0f);
}

ax_status ax_cpu_group_norm_act(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps,
                                double negative_slope) {
    const char *fn = "ax_cpu_group_norm_act";
    if (ax_norm_check_slope(fn, negative_slope) != AX_OK) return ax_error_status();
    return ax_norm_forward(fn, y, mean, rstd, x, weight, bias, groups, eps, true, (float)negative_slope);
}

/* ---- backward ---------------------------------------------------------------- */

/* dx for one unit (w: [C]); per-channel partial sums (sum dy*(x - mean), sum dy)
 * go to part[2c], part[2c+1] when part is given. ya: [optional] the
 * activation's output; dy is gated by it wherever it is read. */
static void ax_norm_backward_unit(float *dx, const float *dy, const float *ya, float slope, const float *x,
                                  const ax_norm_geom *g, int64_t c0, const float *w, float meanf, float rstdf,
                                  double *part) {
    const int64_t s = g->s, cpg = g->cpg;
    const double mu = meanf, r = rstdf;
    double swdy = 0, swdx = 0; /* sum over the unit of w * dy and w * dy * (x - mu) */
    if (s == 1) {
        const float *wc = w + c0;
        if (ya) {
#pragma omp simd reduction(+ : swdy, swdx)
            for (int64_t c = 0; c < cpg; c++) {
                double d = (double)ax_norm_gate(dy[c], ya[c], slope) * (double)wc[c];
                swdy += d;
                swdx += d * ((double)x[c] - mu);
            }
        } else {
#pragma omp simd reduction(+ : swdy, swdx)
            for (int64_t c = 0; c < cpg; c++) {
                double d = (double)dy[c] * (double)wc[c];
                swdy += d;
                swdx += d * ((double)x[c] - mu);
            }
        }
    } else {
        for (int64_t c = 0; c < cpg; c++) {
            double sdy, sdx, wv = w[c0 + c];
            ax_norm_row_sums_any(dy + c * s, ya ? ya + c * s : NULL, slope, x + c * s, s, mu, &sdy, &sdx);
            swdy += wv * sdy;
            swdx += wv * sdx;
            if (part) {
                part[2 * c] = sdx;
                part[2 * c + 1] = sdy;
            }
        }
    }
    if (!dx) return;
    /* dx = r * (w dy - mean(w dy) - xhat * mean(w dy xhat)), xhat = (x - mu) r */
    const double inv_len = g->len ? 1.0 / (double)g->len : 0.0;
    const float bx = (float)(-r * r * r * swdx * inv_len), d0 = (float)(-r * swdy * inv_len), rf = rstdf;
    if (s == 1) {
        const float *wc = w + c0;
        if (ya) {
#pragma omp simd
            for (int64_t c = 0; c < cpg; c++)
                dx[c] = (rf * wc[c]) * ax_norm_gate(dy[c], ya[c], slope) + bx * (x[c] - meanf) + d0;
            return;
        }
#pragma omp simd
        for (int64_t c = 0; c < cpg; c++) dx[c] = (rf * wc[c]) * dy[c] + bx * (x[c] - meanf) + d0;
        return;
    }
    for (int64_t c = 0; c < cpg; c++) {
        const float a = rf * w[c0 + c];
        const float *dyc = dy + c * s, *xc = x + c * s;
        float *dxc = dx + c * s;
        if (ya) {
            const float *yc = ya + c * s;
#pragma omp simd
            for (int64_t i = 0; i < s; i++) dxc[i] = a * ax_norm_gate(dyc[i], yc[i], slope) + bx * (xc[i] - meanf) + d0;
            continue;
        }
#pragma omp simd
        for (int64_t i = 0; i < s; i++) dxc[i] = a * dyc[i] + bx * (xc[i] - meanf) + d0;
    }
}

/* dweight[c] += sum_n r[n, g(c)] * sum_s dy (x - mean), dbias[c] += sum dy,
 * recomputing the channel sums of long channels (S >= AX_NORM_PARTIALS_MIN_S):
 * one channel per task, samples in order, i.e. exactly the arithmetic of the
 * partial sums the dx pass keeps. */
static void ax_norm_long_channel_sums(float *dw, int64_t dws, float *db, int64_t dbs, const float *dy,
                                      const float *ya, float slope, const float *x, const ax_norm_geom *g,
                                      const float *md, int64_t ms0, int64_t ms1, const float *rd, int64_t rs0,
                                      int64_t rs1) {
#pragma omp parallel for if (g->c > 1 && g->n * g->c * g->s >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t c = 0; c < g->c; c++) {
        const int64_t gi = c / g->cpg;
        double aw = 0, ab = 0;
        for (int64_t n = 0; n < g->n; n++) {
            int64_t off = (n * g->c + c) * g->s;
            double sdy, sdx;
            ax_norm_row_sums_any(dy + off, ya ? ya + off : NULL, slope, x + off, g->s, md[n * ms0 + gi * ms1], &sdy,
                                 &sdx);
            aw += sdx * (double)rd[n * rs0 + gi * rs1];
            ab += sdy;
        }
        if (dw) dw[c * dws] += (float)aw;
        if (db) db[c * dbs] += (float)ab;
    }
}

/* The same for short channels (layer norm's one-element ones): samples are
 * streamed in row order, in a fixed number of row chunks (from the shape,
 * never the thread count) times blocks of AX_NORM_CHANNEL_BLOCK channels,
 * each task adding into its own partial sums; the chunks' partials are then
 * added in chunk order. */
static ax_status ax_norm_short_channel_sums(float *dw, int64_t dws, float *db, int64_t dbs, const float *dy,
                                            const float *ya, float slope, const float *x, const ax_norm_geom *g,
                                            const float *md, int64_t ms0, int64_t ms1, const float *rd, int64_t rs0,
                                            int64_t rs1) {
    const int64_t c = g->c, s = g->s, row = c * s;
    /* partials take nchunks * C * 16 bytes: at most ~x's size, and at most
     * AX_NORM_ROW_CHUNKS chunks */
    int64_t nchunks = g->n * s / AX_NORM_PARTIALS_MIN_S;
    nchunks = nchunks < 1 ? 1 : nchunks > AX_NORM_ROW_CHUNKS ? AX_NORM_ROW_CHUNKS : nchunks;
    if (nchunks > g->n) nchunks = g->n > 0 ? g->n : 1;
    const int64_t rows = (g->n + nchunks - 1) / nchunks;
    const int64_t nblocks = (c + AX_NORM_CHANNEL_BLOCK - 1) / AX_NORM_CHANNEL_BLOCK, tasks = nchunks * nblocks;
    double *part = calloc((size_t)(nchunks * c * 2), sizeof *part);
    if (!part && nchunks * c > 0)
        return AX_ERROR(AX_ERR_NOMEM, "ax_cpu_group_norm_backward: out of memory for %lld channel sums",
                        (long long)(nchunks * c));
#pragma omp parallel for if (tasks > 1 && g->n * row >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t k = t / nblocks, c0 = (t % nblocks) * AX_NORM_CHANNEL_BLOCK;
        const int64_t nc = c - c0 < AX_NORM_CHANNEL_BLOCK ? c - c0 : AX_NORM_CHANNEL_BLOCK;
        const int64_t n1 = (k + 1) * rows < g->n ? (k + 1) * rows : g->n;
        double *pw = part + k * c * 2 + c0, *pb = part + k * c * 2 + c + c0;
        for (int64_t n = k * rows; n < n1; n++) {
            const float *dyn = dy + n * row + c0 * s, *xn = x + n * row + c0 * s;
            const float *yn = ya ? ya + n * row + c0 * s : NULL;
            if (s == 1 && g->groups == 1) { /* layer norm: one mean and rstd per row */
                const double mu = md[n * ms0], r = rd[n * rs0];
                if (yn) {
#pragma omp simd
                    for (int64_t j = 0; j < nc; j++) {
                        double d = ax_norm_gate(dyn[j], yn[j], slope);
                        pw[j] += d * ((double)xn[j] - mu) * r;
                        pb[j] += d;
                    }
                    continue;
                }
#pragma omp simd
                for (int64_t j = 0; j < nc; j++) {
                    double d = dyn[j];
                    pw[j] += d * ((double)xn[j] - mu) * r;
                    pb[j] += d;
                }
                continue;
            }
            for (int64_t j = 0; j < nc; j++) {
                const int64_t gi = (c0 + j) / g->cpg;
                const double mu = md[n * ms0 + gi * ms1];
                double sdy = 0, sdx = 0;
                for (int64_t i = 0; i < s; i++) {
                    double d = yn ? ax_norm_gate(dyn[j * s + i], yn[j * s + i], slope) : dyn[j * s + i];
                    sdy += d;
                    sdx += d * ((double)xn[j * s + i] - mu);
                }
                pw[j] += sdx * (double)rd[n * rs0 + gi * rs1];
                pb[j] += sdy;
            }
        }
    }
    for (int64_t ch = 0; ch < c; ch++) {
        double aw = 0, ab = 0;
        for (int64_t k = 0; k < nchunks; k++) {
            aw += part[k * c * 2 + ch];
            ab += part[k * c * 2 + c + ch];
        }
        if (dw) dw[ch * dws] += (float)aw;
        if (db) db[ch * dbs] += (float)ab;
    }
    free(part);
    return AX_OK;
}

/* group_norm_backward; y: [optional] the output of a fused leaky_relu(slope),
 * whose gradient gates dy. */
static ax_status ax_norm_backward_run(const char *fn, ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias,
                                      const ax_tensor *dy, const ax_tensor *x, const ax_tensor *y, const ax_tensor *mean,
                                      const ax_tensor *rstd, const ax_tensor *weight, int64_t groups, float slope) {
    ax_norm_geom g;
    if (ax_norm_geom_of(fn, x, groups, &g) != AX_OK) return ax_error_status();
    const ax_tensor *f32s[] = {dx, dweight, dbias, dy, x, y, mean, rstd, weight};
    const char *names[] = {"dx", "dweight", "dbias", "dy", "x", "y", "mean", "rstd", "weight"};
    for (int i = 0; i < 9; i++)
        if (ax_norm_need_f32(fn, names[i], f32s[i]) != AX_OK) return ax_error_status();
    if (ax_norm_check_shapes(fn, &g, x, dx, "dx", mean, rstd, (const ax_tensor *[]){dweight, dbias, weight}, 3) != AX_OK ||
        ax_norm_check_shapes(fn, &g, x, dy, "dy", mean, rstd, NULL, 0) != AX_OK ||
        ax_norm_check_shapes(fn, &g, x, y, "y", mean, rstd, NULL, 0) != AX_OK)
        return ax_error_status();
    if (!dx && !dweight && !dbias) return AX_OK;
    ax_tensor *tx = NULL, *tdy = NULL, *ty = NULL, *tw = NULL, *tdx = NULL;
    float *ones = NULL;
    const float *xd = ax_norm_in(x, &tx), *dyd = ax_norm_in(dy, &tdy), *wd = ax_norm_param(weight, &tw, &ones, g.c, 1.0f);
    const float *yd = ax_norm_in(y, &ty);
    float *dxd = ax_norm_out(dx, &tdx);
    double *part = NULL;
    ax_status st = AX_OK;
    const int64_t numel = g.n * g.c * g.s, units = g.n * g.groups;
    if ((numel && (!xd || !dyd || (y && !yd) || (dx && !dxd))) || !wd) st = ax_error_status();
    const float *md = ax_tensor_data(mean), *rd = ax_tensor_data(rstd);
    const int64_t ms0 = mean->stride[0], ms1 = mean->stride[1], rs0 = rstd->stride[0], rs1 = rstd->stride[1];
    bool want_wb = dweight || dbias;
    /* Keep the channel sums of the dx pass when they are worth it (a few
     * per (n, c), next to S elements); otherwise a second pass redoes them. */
    bool partials = want_wb && dx && g.s >= AX_NORM_PARTIALS_MIN_S;
    if (st == AX_OK && partials) {
        part = malloc((size_t)(g.n * g.c * 2) * sizeof *part);
        if (!part) st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for %lld channel sums", fn, (long long)(g.n * g.c));
    }
    if (st == AX_OK && dx) {
#pragma omp parallel for if (units > 1 && numel >= AX_PAR_MIN_ELEMS) schedule(static)
        for (int64_t u = 0; u < units; u++) {
            int64_t n = u / g.groups, gi = u % g.groups, off = u * g.len;
            ax_norm_backward_unit(dxd + off, dyd + off, yd ? yd + off : NULL, slope, xd + off, &g, gi * g.cpg, wd,
                                  md[n * ms0 + gi * ms1], rd[n * rs0 + gi * rs1],
                                  part ? part + 2 * (n * g.c + gi * g.cpg) : NULL);
        }
    }
    if (st == AX_OK && want_wb) {
        float *dwd = dweight ? ax_tensor_data(dweight) : NULL, *dbd = dbias ? ax_tensor_data(dbias) : NULL;
        int64_t dws = dweight ? dweight->stride[0] : 0, dbs = dbias ? dbias->stride[0] : 0;
        if (partials) {
            /* per channel, samples in order: ax_norm_long_channel_sums's arithmetic */
            for (int64_t c = 0; c < g.c; c++) {
                int64_t gi = c / g.cpg;
                double aw = 0, ab = 0;
                for (int64_t n = 0; n < g.n; n++) {
                    aw += part[2 * (n * g.c + c)] * (double)rd[n * rs0 + gi * rs1];
                    ab += part[2 * (n * g.c + c) + 1];
                }
                if (dwd) dwd[c * dws] += (float)aw;
                if (dbd) dbd[c * dbs] += (float)ab;
            }
        } else if (g.s >= AX_NORM_PARTIALS_MIN_S) {
            ax_norm_long_channel_sums(dwd, dws, dbd, dbs, dyd, yd, slope, xd, &g, md, ms0, ms1, rd, rs0, rs1);
        } else {
            st = ax_norm_short_channel_sums(dwd, dws, dbd, dbs, dyd, yd, slope, xd, &g, md, ms0, ms1, rd, rs0, rs1);
        }
    }
    if (st == AX_OK && dx) {
        st = ax_norm_out_finish(dx, tdx);
        tdx = NULL;
    }
    free(part);
    free(ones);
    ax_tensor_free(tx);
    ax_tensor_free(tdy);
    ax_tensor_free(ty);
    ax_tensor_free(tw);
    ax_tensor_free(tdx);
    return st;
}

ax_status ax_cpu_group_norm_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                     const ax_tensor *x, const ax_tensor *mean, const ax_tensor *rstd,
                                     const ax_tensor *weight, int64_t groups) {
    return ax_norm_backward_run("ax_cpu_group_norm_backward", dx, dweight, dbias, dy, x, NULL, mean, rstd, weight,
                                groups, 0.0f);
}

ax_status ax_cpu_group_norm_act_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                         const ax_tensor *x, const ax_tensor *y, const ax_tensor *mean,
                                         const ax_tensor *rstd, const ax_tensor *weight, int64_t groups,
                                         double negative_slope) {
    const char *fn = "ax_cpu_group_norm_act_backward";
    if (ax_norm_check_slope(fn, negative_slope) != AX_OK) return ax_error_status();
    if (!y) return AX_ERROR(AX_ERR_INVALID, "%s: y (the activation's output) is NULL", fn);
    return ax_norm_backward_run(fn, dx, dweight, dbias, dy, x, y, mean, rstd, weight, groups, (float)negative_slope);
}
