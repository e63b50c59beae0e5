/* Segmentation metrics: Dice per class, exact EDT, HD95 (medpy's). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/segment.h"

double ax_nanmean(const double *v, int n) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) s += v[i], k++;
    return k ? s / k : NAN;
}

/* A contiguous CPU label map of an integer dtype (a new reference). */
static ax_status label_map(ax_tensor **out, const ax_tensor *t, const char *fn, const char *arg) {
    char sb[96];
    *out = NULL;
    if (!t) return AX_ERROR(AX_ERR_INVALID, "%s: %s is NULL", fn, arg);
    if (t->dtype != AX_DTYPE_U8 && t->dtype != AX_DTYPE_I32 && t->dtype != AX_DTYPE_I64)
        return AX_ERROR(AX_ERR_INVALID, "%s: %s %s is %s (want u8, i32 or i64 labels)", fn, arg,
                        ax_shape_str(sb, sizeof sb, t->ndim, t->shape), ax_dtype_name(t->dtype));
    if (t->storage->device.type != AX_DEVICE_CPU) return ax_tensor_to_device(out, t, AX_CPU);
    return ax_tensor_contiguous(out, t);
}

static inline int64_t label_at(const void *p, ax_dtype dt, int64_t i) {
    switch (dt) {
    case AX_DTYPE_U8: return ((const uint8_t *)p)[i];
    case AX_DTYPE_I32: return ((const int32_t *)p)[i];
    default: return ((const int64_t *)p)[i];
    }
}

static ax_status two_maps(ax_tensor **a, ax_tensor **b, const ax_tensor *pred, const ax_tensor *ref, const char *fn) {
    char sa[96], sb[96];
    *a = *b = NULL;
    ax_status st = label_map(a, pred, fn, "pred");
    if (st == AX_OK) st = label_map(b, ref, fn, "ref");
    if (st == AX_OK && !ax_tensor_same_shape(*a, *b))
        st = AX_ERROR(AX_ERR_INVALID, "%s: pred %s and ref %s differ in shape", fn,
                      ax_shape_str(sa, sizeof sa, pred->ndim, pred->shape),
                      ax_shape_str(sb, sizeof sb, ref->ndim, ref->shape));
    if (st != AX_OK) {
        ax_tensor_free(*a);
        ax_tensor_free(*b);
        *a = *b = NULL;
    }
    return st;
}

ax_status ax_seg_dice(double *dice, const ax_tensor *pred, const ax_tensor *ref, int n_classes) {
    if (!dice || n_classes < 1)
        return AX_ERROR(AX_ERR_INVALID, "ax_seg_dice: %d classes (want >= 1, and room for them)", n_classes);
    ax_tensor *a, *b;
    ax_status st = two_maps(&a, &b, pred, ref, "ax_seg_dice");
    if (st != AX_OK) return st;
    int64_t *cnt = calloc((size_t)n_classes * 3, sizeof *cnt); /* tp, fp, fn */
    if (!cnt) {
        ax_tensor_free(a);
        ax_tensor_free(b);
        return AX_ERROR(AX_ERR_NOMEM, "ax_seg_dice: out of memory");
    }
    int64_t *tp = cnt, *fp = cnt + n_classes, *fn = cnt + 2 * n_classes;
    const void *pa = ax_tensor_data(a), *pb = ax_tensor_data(b);
    const int64_t n = ax_tensor_numel(a), k = n_classes;
    for (int64_t i = 0; i < n; i++) {
        int64_t p = label_at(pa, a->dtype, i), r = label_at(pb, b->dtype, i);
        bool pin = p >= 0 && p < k, rin = r >= 0 && r < k;
        if (p == r) {
            if (pin) tp[p]++;
        } else {
            if (pin) fp[p]++;
            if (rin) fn[r]++;
        }
    }
    for (int c = 0; c < n_classes; c++) {
        int64_t den = 2 * tp[c] + fp[c] + fn[c];
        dice[c] = den ? 2.0 * (double)tp[c] / (double)den : NAN;
    }
    free(cnt);
    ax_tensor_free(a);
    ax_tensor_free(b);
    return AX_OK;
}

/* ---- exact EDT ---------------------------------------------------------------- */

/* Lower envelope of parabolas (Felzenszwalb & Huttenlocher 2012) on one
 * line of n samples spaced `h` apart: d[q] = min_p (h (q - p))^2 + f[p],
 * skipping f[p] == INFINITY. v, z: scratch of n and n + 1. */
static void edt_line(double *d, const double *f, int64_t n, double h, int64_t *v, double *z) {
    int64_t k = -1;
    for (int64_t q = 0; q < n; q++) {
        if (f[q] == INFINITY) continue;
        const double pq = h * (double)q, fq = f[q] + pq * pq;
        double s = -INFINITY;
        while (k >= 0) {
            const double pv = h * (double)v[k];
            s = (fq - (f[v[k]] + pv * pv)) / (2.0 * (pq - pv));
            if (s > z[k]) break;
            k--;
        }
        k++;
        v[k] = q;
        z[k] = k == 0 ? -INFINITY : s;
        z[k + 1] = INFINITY;
    }
    if (k < 0) {
        for (int64_t q = 0; q < n; q++) d[q] = INFINITY;
        return;
    }
    int64_t j = 0;
    for (int64_t q = 0; q < n; q++) {
        const double pq = h * (double)q;
        while (z[j + 1] < pq) j++;
        const double dq = pq - h * (double)v[j];
        d[q] = dq * dq + f[v[j]];
    }
}

/* Envelope along one axis of g [D, H, W] in place. */
static ax_status edt_axis(double *g, const int64_t shape[3], int axis, double h) {
    const int64_t n = shape[axis];
    const int64_t stride = axis == 2 ? 1 : axis == 1 ? shape[2] : shape[1] * shape[2];
    /* lines: every index of the two other axes */
    const int64_t o1 = axis == 0 ? shape[1] : shape[0], o2 = axis == 2 ? shape[1] : shape[2];
    const int64_t s1 = axis == 0 ? shape[2] : shape[1] * shape[2], s2 = axis == 2 ? shape[2] : 1;
    const int64_t lines = o1 * o2;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(ax_num_threads()) if (lines * n >= 32768) reduction(| : failed)
#endif
    {
        double *f = malloc((size_t)n * 2 * sizeof *f), *z = malloc((size_t)(n + 1) * sizeof *z);
        int64_t *v = malloc((size_t)n * sizeof *v);
        if (!f || !z || !v) {
            failed = 1;
        } else {
            double *d = f + n;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t l = 0; l < lines; l++) {
                double *base = g + (l / o2) * s1 + (l % o2) * s2;
                for (int64_t i = 0; i < n; i++) f[i] = base[i * stride];
                edt_line(d, f, n, h, v, z);
                for (int64_t i = 0; i < n; i++) base[i * stride] = d[i];
            }
        }
        free(f);
        free(z);
        free(v);
    }
    return failed ? AX_ERROR(AX_ERR_NOMEM, "ax_edt_squared: out of memory for a line of %lld", (long long)n)
                  : AX_OK;
}

ax_status ax_edt_squared(double *out, const uint8_t *feature, const int64_t shape[3], const double spacing[3]) {
    if (!out || !feature || !shape || !spacing) return AX_ERROR(AX_ERR_INVALID, "ax_edt_squared: NULL argument");
    for (int a = 0; a < 3; a++) {
        if (shape[a] < 1)
            return AX_ERROR(AX_ERR_INVALID, "ax_edt_squared: shape[%d] = %lld (want >= 1)", a, (long long)shape[a]);
        if (!(spacing[a] > 0) || !isfinite(spacing[a]))
            return AX_ERROR(AX_ERR_INVALID, "ax_edt_squared: spacing[%d] = %g (want > 0)", a, spacing[a]);
    }
    const int64_t n = shape[0] * shape[1] * shape[2];
    for (int64_t i = 0; i < n; i++) out[i] = feature[i] ? 0.0 : INFINITY;
    ax_status st = AX_OK;
    for (int a = 2; a >= 0 && st == AX_OK; a--) st = edt_axis(out, shape, a, spacing[a]);
    return st;
}

/* ---- HD95 ------------------------------------------------------------------------ */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Surface of mask m (shape `full`) inside the box [lo, lo + box): voxels of
 * m with a 6-neighbour outside m or outside the volume -> s (box-shaped). */
static int64_t surface(uint8_t *s, const uint8_t *m, const int64_t full[3], const int64_t lo[3], const int64_t box[3]) {
    const int64_t sy = full[2], sz = full[1] * full[2];
    int64_t count = 0;
    for (int64_t z = 0; z < box[0]; z++)
        for (int64_t y = 0; y < box[1]; y++)
            for (int64_t x = 0; x < box[2]; x++) {
                const int64_t Z = z + lo[0], Y = y + lo[1], X = x + lo[2];
                const int64_t i = Z * sz + Y * sy + X;
                uint8_t on = 0;
                if (m[i]) {
                    on = Z == 0 || Z == full[0] - 1 || Y == 0 || Y == full[1] - 1 || X == 0 || X == full[2] - 1 ||
                         !m[i - sz] || !m[i + sz] || !m[i - sy] || !m[i + sy] || !m[i - 1] || !m[i + 1];
                }
                s[(z * box[1] + y) * box[2] + x] = on;
                count += on;
            }
    return count;
}

ax_status ax_mask_hd95(double *out, const uint8_t *a, const uint8_t *b, const int64_t shape[3],
                       const double spacing[3]) {
    if (!out || !a || !b || !shape || !spacing) return AX_ERROR(AX_ERR_INVALID, "ax_mask_hd95: NULL argument");
    double diag = 0;
    for (int i = 0; i < 3; i++) {
        if (shape[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "ax_mask_hd95: shape[%d] = %lld (want >= 1)", i, (long long)shape[i]);
        if (!(spacing[i] > 0) || !isfinite(spacing[i]))
            return AX_ERROR(AX_ERR_INVALID, "ax_mask_hd95: spacing[%d] = %g (want > 0)", i, spacing[i]);
        diag += (double)shape[i] * spacing[i] * (double)shape[i] * spacing[i];
    }
    /* bounding box of a | b: every surface voxel lies inside it */
    int64_t lo[3] = {shape[0], shape[1], shape[2]}, hi[3] = {-1, -1, -1};
    bool any_a = false, any_b = false;
    for (int64_t z = 0; z < shape[0]; z++)
        for (int64_t y = 0; y < shape[1]; y++) {
            const int64_t row = (z * shape[1] + y) * shape[2];
            for (int64_t x = 0; x < shape[2]; x++) {
                const bool ia = a[row + x] != 0, ib = b[row + x] != 0;
                if (!(ia || ib)) continue;
                any_a |= ia, any_b |= ib;
                const int64_t p[3] = {z, y, x};
                for (int k = 0; k < 3; k++) {
                    if (p[k] < lo[k]) lo[k] = p[k];
                    if (p[k] > hi[k]) hi[k] = p[k];
                }
            }
        }
    if (!any_a && !any_b) {
        *out = NAN;
        return AX_OK;
    }
    if (!any_a || !any_b) {
        *out = sqrt(diag);
        return AX_OK;
    }
    const int64_t box[3] = {hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1};
    const int64_t nb = box[0] * box[1] * box[2];
    uint8_t *sa = malloc((size_t)nb * 2);
    double *dt = malloc((size_t)nb * sizeof *dt);
    double *dist = NULL;
    ax_status st = AX_OK;
    if (!sa || !dt) st = AX_ERROR(AX_ERR_NOMEM, "ax_mask_hd95: out of memory for a %lld-voxel box", (long long)nb);
    if (st == AX_OK) {
        uint8_t *sb = sa + nb;
        const int64_t na = surface(sa, a, shape, lo, box), nbs = surface(sb, b, shape, lo, box);
        dist = malloc((size_t)(na + nbs) * sizeof *dist);
        if (!dist) st = AX_ERROR(AX_ERR_NOMEM, "ax_mask_hd95: out of memory");
        int64_t k = 0;
        /* a's surface to b's, then b's to a's */
        for (int pass = 0; pass < 2 && st == AX_OK; pass++) {
            const uint8_t *from = pass ? sb : sa, *to = pass ? sa : sb;
            st = ax_edt_squared(dt, to, box, spacing);
            for (int64_t i = 0; i < nb && st == AX_OK; i++)
                if (from[i]) dist[k++] = sqrt(dt[i]);
        }
        if (st == AX_OK) {
            qsort(dist, (size_t)k, sizeof *dist, cmp_double);
            const double rank = 0.95 * (double)(k - 1);
            const int64_t i0 = (int64_t)floor(rank);
            const int64_t i1 = i0 + 1 < k ? i0 + 1 : i0;
            const double t = rank - (double)i0;
            /* numpy's lerp, symmetric in its two ends */
            *out = t >= 0.5 ? dist[i1] - (dist[i1] - dist[i0]) * (1 - t) : dist[i0] + (dist[i1] - dist[i0]) * t;
        }
    }
    free(sa);
    free(dt);
    free(dist);
    return st;
}

ax_status ax_seg_hd95(double *out, const ax_tensor *pred, const ax_tensor *ref, int64_t label,
                      const double spacing[3]) {
    char sb[96];
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_seg_hd95: NULL result");
    ax_tensor *a, *b;
    ax_status st = two_maps(&a, &b, pred, ref, "ax_seg_hd95");
    if (st != AX_OK) return st;
    if (a->ndim != 3) {
        st = AX_ERROR(AX_ERR_INVALID, "ax_seg_hd95: label maps %s (want [D, H, W])",
                      ax_shape_str(sb, sizeof sb, a->ndim, a->shape));
    }
    const int64_t n = ax_tensor_numel(a);
    uint8_t *m = st == AX_OK ? malloc((size_t)n * 2) : NULL;
    if (st == AX_OK && !m) st = AX_ERROR(AX_ERR_NOMEM, "ax_seg_hd95: out of memory");
    if (st == AX_OK) {
        const void *pa = ax_tensor_data(a), *pb = ax_tensor_data(b);
        for (int64_t i = 0; i < n; i++) {
            m[i] = label_at(pa, a->dtype, i) == label;
            m[n + i] = label_at(pb, b->dtype, i) == label;
        }
        st = ax_mask_hd95(out, m, m + n, a->shape, spacing);
    }
    free(m);
    ax_tensor_free(a);
    ax_tensor_free(b);
    return st;
}
