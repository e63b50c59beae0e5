/* AUG plugin `spatial`: random rotation, scaling and (optional) elastic
 * deformation in ONE resampling pass, as batchgenerators' SpatialTransform
 * (the OpenMind/nnssl pre-training uses rotation +-30 deg per axis with
 * p 0.2, scaling 0.7..1.4 with p 0.2, no elastic deformation).
 *
 * Geometry (batchgenerators' conventions): output voxel x, taken relative to
 * the output centre, samples the input at
 *
 *     p = c_in + S * R^T * (x + e(x)),   R = Rx(a_D) * Ry(a_H) * Rz(a_W)
 *
 * where Rx rotates about the D axis, S = diag(scale) and e is the elastic
 * field (uniform noise in [-1, 1) smoothed by a Gaussian of sigma voxels,
 * times alpha). Rotation and scale are one 3x3 matrix; the field, if any, is
 * transformed by the same matrix and passed to ax_warp as a displacement,
 * so image (trilinear), label and mask (nearest) are each resampled once and
 * stay aligned.
 *
 * Shapes: the output is sample->target when it is set (the loader cut an
 * enlarged patch from extent()) and the input shape otherwise; it is
 * written, centred, into the sample's own buffers and sample->shape is
 * updated. With nothing drawn the sample is just centre-cropped.
 *
 * extent() is exact, not a heuristic: the largest reach of the rotated,
 * scaled patch over every angle it can draw (best-first branch and bound
 * with a Taylor bound, within 0.01 voxel), plus the elastic clamp. With the
 * defaults a 160^3 patch needs a 378x384x376 input (three 30 deg rotations
 * nearly align the patch diagonal with an axis, then scale 1.4);
 * nnU-Net's get_patch_size() rotates about one axis at a time and cuts
 * less, filling the corners it misses.
 *
 * Randomness: 17 draws per call whatever is drawn, then (elastic only) 3
 * values per output voxel read straight from the stream.
 *
 * Differences from batchgenerators: images are trilinear (its default is
 * cubic spline, order 3); the patch centre is the input centre (the loader
 * chooses the patch location); the elastic displacement is clamped at four
 * standard deviations of the smoothed noise so extent() can bound it. The
 * elastic field is smoothed at full resolution (3 separable blurs of radius
 * 4 sigma): correct but slow, like batchgenerators'; it is off by default. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"

#define AX_SPATIAL_PI 3.14159265358979323846
/* Accuracy of extent()'s maximisation, in voxels. */
#define AX_SPATIAL_TOL 1e-2

typedef struct ax_spatial {
    float p_rotation, p_rotation_per_axis, p_scale, p_elastic;
    double rot_max[3]; /* radians, about D, H, W */
    double scale_min, scale_max;
    int independent_scale;
    double alpha_min, alpha_max, sigma_min, sigma_max;
    double elastic_clamp; /* bound on each displacement component, in output voxels (before S R^T) */
    ax_interp_mode image_interp;
    float image_fill;
    uint8_t label_fill;
} ax_spatial;

/* Standard deviation of uniform [-1, 1) noise smoothed by the normalised,
 * 4-sigma-truncated Gaussian of ax_gaussian_blur_f32 along three axes. */
static double ax_spatial_field_std(double sigma) {
    int64_t r = (int64_t)(4.0 * sigma + 0.5);
    if (r < 1) r = 1;
    double sum = 0.0, sq = 0.0;
    for (int64_t j = -r; j <= r; j++) {
        double k = exp(-0.5 * (double)(j * j) / (sigma * sigma));
        sum += k;
        sq += k * k;
    }
    double k2 = sq / (sum * sum); /* sum of squared normalised taps, one axis */
    return sqrt(k2 * k2 * k2 / 3.0);
}

static ax_status ax_spatial_create(void **self, const ax_params *params) {
    ax_spatial s = {
        .p_rotation = (float)ax_params_float(params, "p_rotation"),
        .p_rotation_per_axis = (float)ax_params_float(params, "p_rotation_per_axis"),
        .p_scale = (float)ax_params_float(params, "p_scale"),
        .p_elastic = (float)ax_params_float(params, "p_elastic"),
        .scale_min = ax_params_float(params, "scale_min"),
        .scale_max = ax_params_float(params, "scale_max"),
        .independent_scale = ax_params_bool(params, "independent_scale_per_axis"),
        .alpha_min = ax_params_float(params, "elastic_alpha_min"),
        .alpha_max = ax_params_float(params, "elastic_alpha_max"),
        .sigma_min = ax_params_float(params, "elastic_sigma_min"),
        .sigma_max = ax_params_float(params, "elastic_sigma_max"),
        .image_fill = (float)ax_params_float(params, "image_fill"),
        .label_fill = (uint8_t)ax_params_int(params, "label_fill"),
    };
    double deg[3];
    size_t n = ax_params_floats(params, "rotation_deg", deg, 3);
    if (n != 1 && n != 3)
        return AX_ERROR(AX_ERR_INVALID, "spatial: rotation_deg takes 1 value (all axes) or 3 (D,H,W), got %zu", n);
    for (int a = 0; a < 3; a++) s.rot_max[a] = (n == 1 ? deg[0] : deg[a]) * AX_SPATIAL_PI / 180.0;
    if (!(s.scale_min <= s.scale_max))
        return AX_ERROR(AX_ERR_INVALID, "spatial: scale_min (%g) must be <= scale_max (%g)", s.scale_min,
                        s.scale_max);
    if (!(s.alpha_min <= s.alpha_max))
        return AX_ERROR(AX_ERR_INVALID, "spatial: elastic_alpha_min (%g) must be <= elastic_alpha_max (%g)",
                        s.alpha_min, s.alpha_max);
    if (!(s.sigma_min <= s.sigma_max))
        return AX_ERROR(AX_ERR_INVALID, "spatial: elastic_sigma_min (%g) must be <= elastic_sigma_max (%g)",
                        s.sigma_min, s.sigma_max);
    s.image_interp = strcmp(ax_params_string(params, "image_interp"), "nearest") == 0 ? AX_INTERP_NEAREST
                                                                                       : AX_INTERP_TRILINEAR;
    s.elastic_clamp = s.p_elastic > 0.0f ? 4.0 * s.alpha_max * ax_spatial_field_std(s.sigma_min) : 0.0;
    ax_spatial *m = malloc(sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "spatial: out of memory");
    *m = s;
    *self = m;
    return AX_OK;
}

static void ax_spatial_destroy(void *self) { free(self); }

/* R = Rx(ax) * Ry(ay) * Rz(az), batchgenerators' rotate_coords_3d order. */
static void ax_spatial_rotation(double ax, double ay, double az, double r[3][3]) {
    double cx = cos(ax), sx = sin(ax), cy = cos(ay), sy = sin(ay), cz = cos(az), sz = sin(az);
    double rx[3][3] = {{1, 0, 0}, {0, cx, -sx}, {0, sx, cx}};
    double ry[3][3] = {{cy, 0, sy}, {0, 1, 0}, {-sy, 0, cy}};
    double rz[3][3] = {{cz, -sz, 0}, {sz, cz, 0}, {0, 0, 1}};
    double t[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) t[i][j] = rx[i][0] * ry[0][j] + rx[i][1] * ry[1][j] + rx[i][2] * ry[2][j];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) r[i][j] = t[i][0] * rz[0][j] + t[i][1] * rz[1][j] + t[i][2] * rz[2][j];
}

/* ---- extent ------------------------------------------------------------------- */

/* v = R e_i = Rx(a) Ry(b) Rz(c) e_i and its derivatives dv[k] along the
 * three angles. */
static void ax_spatial_column(const double th[3], int i, double v[3], double dv[3][3]) {
    double cx = cos(th[0]), sx = sin(th[0]), cy = cos(th[1]), sy = sin(th[1]), cz = cos(th[2]), sz = sin(th[2]);
    double w[3] = {i == 0 ? cz : i == 1 ? -sz : 0.0, i == 0 ? sz : i == 1 ? cz : 0.0, i == 2 ? 1.0 : 0.0};
    double dw[3] = {i == 0 ? -sz : i == 1 ? -cz : 0.0, i == 0 ? cz : i == 1 ? -sz : 0.0, 0.0}; /* Rz' e_i */
    /* u = Ry w, du = Ry dw, u_b = Ry' w */
    double u[3] = {cy * w[0] + sy * w[2], w[1], -sy * w[0] + cy * w[2]};
    double du[3] = {cy * dw[0] + sy * dw[2], dw[1], -sy * dw[0] + cy * dw[2]};
    double ub[3] = {-sy * w[0] + cy * w[2], 0.0, -cy * w[0] - sy * w[2]};
    /* v = Rx u; dv/da = Rx' u; dv/db = Rx u_b; dv/dc = Rx du */
    v[0] = u[0];
    v[1] = cx * u[1] - sx * u[2];
    v[2] = sx * u[1] + cx * u[2];
    dv[0][0] = 0.0;
    dv[0][1] = -sx * u[1] - cx * u[2];
    dv[0][2] = cx * u[1] - sx * u[2];
    dv[1][0] = ub[0];
    dv[1][1] = cx * ub[1] - sx * ub[2];
    dv[1][2] = sx * ub[1] + cx * ub[2];
    dv[2][0] = du[0];
    dv[2][1] = cx * du[1] - sx * du[2];
    dv[2][2] = sx * du[1] + cx * du[2];
}

/* How far the patch of half-extents h reaches along input axis i at the
 * box centre th (the return value: sum_j h_j |v_j|, the row i of R^T
 * applied to the farthest corner), and an upper bound of that reach over
 * the box th +- r. The reach is the max over the 8 corners s of
 * phi_s = (s * h) . v; each phi_s is smooth, and every second derivative
 * of v is a product of rotations and rotation derivatives (norm <= 1)
 * applied to a unit vector, so by Taylor
 *     phi_s(th + d) <= phi_s(th) + sum_k |dphi_s/dk| r_k + |h|/2 (sum_k r_k)^2. */
static double ax_spatial_reach(const double th[3], const double r[3], const double h[3], double norm, int i,
                               double *bound) {
    double v[3], dv[3][3];
    ax_spatial_column(th, i, v, dv);
    double reach = h[0] * fabs(v[0]) + h[1] * fabs(v[1]) + h[2] * fabs(v[2]), up = -INFINITY;
    for (int s = 0; s < 8; s++) {
        double sg[3] = {s & 1 ? -h[0] : h[0], s & 2 ? -h[1] : h[1], s & 4 ? -h[2] : h[2]};
        double phi = sg[0] * v[0] + sg[1] * v[1] + sg[2] * v[2];
        for (int k = 0; k < 3; k++) phi += fabs(sg[0] * dv[k][0] + sg[1] * dv[k][1] + sg[2] * dv[k][2]) * r[k];
        up = phi > up ? phi : up;
    }
    double rs = r[0] + r[1] + r[2];
    *bound = up + 0.5 * norm * rs * rs;
    return reach;
}

/* A box of angles with the upper bound of the reach over it. */
typedef struct ax_spatial_box {
    double bound, centre[3], half[3];
} ax_spatial_box;

/* Binary max-heap on bound. */
static void ax_spatial_push(ax_spatial_box *heap, int *n, const ax_spatial_box *b) {
    int i = (*n)++;
    while (i > 0 && heap[(i - 1) / 2].bound < b->bound) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = *b;
}

static ax_spatial_box ax_spatial_pop(ax_spatial_box *heap, int *n) {
    ax_spatial_box top = heap[0], last = heap[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap[c + 1].bound > heap[c].bound) c++;
        if (heap[c].bound <= last.bound) break;
        heap[i] = heap[c];
        i = c;
    }
    if (*n > 0) heap[i] = last;
    return top;
}

/* Max of the reach over the angle box [-m, m] by best-first branch and
 * bound (the box with the highest bound is split in two along its widest
 * angle), so only boxes that may beat the best reach found are refined.
 * The answer is at most `tol` above the true maximum; beyond the step
 * budget it falls back to |h|, which holds for every rotation. */
static double ax_spatial_max_reach(const double m[3], const double h[3], int i, double tol) {
    enum { HEAP = 1 << 16, BUDGET = 100000 };
    double norm = sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
    ax_spatial_box *heap = malloc(HEAP * sizeof *heap);
    if (!heap) return norm;
    ax_spatial_box root = {.half = {m[0], m[1], m[2]}};
    double best = ax_spatial_reach(root.centre, root.half, h, norm, i, &root.bound);
    int n = 0;
    ax_spatial_push(heap, &n, &root);
    for (int steps = 0; n > 0; steps++) {
        if (best + 0.5 >= norm) { /* |h| holds for every rotation and is this close */
            best = norm;
            break;
        }
        if (steps > BUDGET || n > HEAP - 2) {
            best = norm;
            break;
        }
        ax_spatial_box b = ax_spatial_pop(heap, &n);
        if (b.bound <= best + tol) break; /* no box left can beat it */
        int k = b.half[0] >= b.half[1] ? (b.half[0] >= b.half[2] ? 0 : 2) : (b.half[1] >= b.half[2] ? 1 : 2);
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            ax_spatial_box c = b;
            c.half[k] = 0.5 * b.half[k];
            c.centre[k] = b.centre[k] + sgn * c.half[k];
            double f = ax_spatial_reach(c.centre, c.half, h, norm, i, &c.bound);
            if (f > best) best = f;
            if (c.bound > best + tol) ax_spatial_push(heap, &n, &c);
        }
    }
    free(heap);
    return best + tol < norm ? best + tol : norm;
}

static ax_status ax_spatial_extent(const void *self, const int32_t patch[3], int32_t extent[3]) {
    const ax_spatial *s = self;
    for (int a = 0; a < 3; a++)
        if (patch[a] < 1) return AX_ERROR(AX_ERR_INVALID, "spatial: patch[%d] = %d < 1", a, (int)patch[a]);
    double h[3] = {0.5 * (patch[0] - 1), 0.5 * (patch[1] - 1), 0.5 * (patch[2] - 1)};
    double m[3] = {0, 0, 0};
    if (s->p_rotation > 0.0f && s->p_rotation_per_axis > 0.0f)
        for (int a = 0; a < 3; a++) m[a] = s->rot_max[a];
    double scale = s->p_scale > 0.0f && s->scale_max > 1.0 ? s->scale_max : 1.0;
    for (int i = 0; i < 3; i++) {
        double reach = ax_spatial_max_reach(m, h, i, AX_SPATIAL_TOL);
        /* The displacement is transformed by S R^T: its component is at
         * most scale * sqrt(3) * clamp. */
        double e = scale * (reach + sqrt(3.0) * s->elastic_clamp);
        /* Trilinear needs p in [0, E - 1] with p = (E - 1) / 2 +- e; keep
         * E - patch even so the centres coincide on the voxel grid. */
        double need = 2.0 * e + 1.0;
        if (!(need < 65536.0)) return AX_ERROR(AX_ERR_INVALID, "spatial: extent for patch %d too large", patch[i]);
        int32_t ext = patch[i];
        /* The bound is at most 2 * scale * TOL above the true reach: forgive
         * that much so an exact fit (e.g. an unrotated axis) stays tight. */
        while ((double)ext < need - 2.0 * scale * AX_SPATIAL_TOL - 1e-9) ext += 2;
        extent[i] = ext;
    }
    return AX_OK;
}

/* ---- apply -------------------------------------------------------------------- */

/* batchgenerators' scale draw: half the time from [min, 1), else [1, max]. */
static double ax_spatial_scale_draw(ax_rng *r, double lo, double hi) {
    float u = ax_rng_uniform(r), v = ax_rng_uniform(r);
    if (u < 0.5f && lo < 1.0) return lo + ((hi < 1.0 ? hi : 1.0) - lo) * v;
    double a = lo > 1.0 ? lo : 1.0;
    return a + (hi - a) * v;
}

/* Centre-crop every volume of the sample to t, in place (rows move only
 * towards the start of the buffer, in order). */
static void ax_spatial_crop(ax_sample *s, const int32_t t[3]) {
    const int32_t *n = s->shape;
    int32_t o[3] = {(n[0] - t[0]) / 2, (n[1] - t[1]) / 2, (n[2] - t[2]) / 2};
    for (int32_t c = 0; c < s->channels; c++)
        for (int32_t z = 0; z < t[0]; z++)
            for (int32_t y = 0; y < t[1]; y++) {
                size_t src = (((size_t)c * n[0] + (size_t)(z + o[0])) * n[1] + (size_t)(y + o[1])) * n[2] + o[2];
                size_t dst = (((size_t)c * t[0] + (size_t)z) * t[1] + (size_t)y) * t[2];
                memmove(s->image + dst, s->image + src, (size_t)t[2] * sizeof(float));
                if (c == 0 && s->label) memmove(s->label + dst, s->label + src, (size_t)t[2]);
                if (c == 0 && s->mask) memmove(s->mask + dst, s->mask + src, (size_t)t[2]);
            }
}

/* Elastic field at the output shape: [3, D, H, W], A * alpha * smooth(U(-1,1))
 * per voxel, clamped. The noise is read from the rng's stream. */
static ax_status ax_spatial_field(float *disp, const int32_t t[3], double alpha, double sigma, const double a[3][3],
                                  double clamp, ax_rng *rng) {
    size_t n = (size_t)t[0] * (size_t)t[1] * (size_t)t[2];
    ax_rng_fill_uniform(rng->seed, rng->stream, rng->counter, 3 * n, disp);
    ax_rng_seek(rng, rng->counter + 3 * n);
    double sg[3] = {sigma, sigma, sigma};
    for (int k = 0; k < 3; k++) {
        float *f = disp + (size_t)k * n;
        for (size_t i = 0; i < n; i++) f[i] = 2.0f * f[i] - 1.0f;
        ax_status st = ax_gaussian_blur_f32(f, t, sg, AX_BLUR_ZERO);
        if (st != AX_OK) return st;
    }
    float lim = (float)clamp, al = (float)alpha;
    float m[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) m[i][j] = (float)a[i][j];
    float *d0 = disp, *d1 = disp + n, *d2 = disp + 2 * n;
    for (size_t i = 0; i < n; i++) {
        float e[3];
        float v[3] = {al * d0[i], al * d1[i], al * d2[i]};
        for (int k = 0; k < 3; k++) v[k] = v[k] < -lim ? -lim : v[k] > lim ? lim : v[k];
        for (int k = 0; k < 3; k++) e[k] = m[k][0] * v[0] + m[k][1] * v[1] + m[k][2] * v[2];
        d0[i] = e[0];
        d1[i] = e[1];
        d2[i] = e[2];
    }
    return AX_OK;
}

static ax_status ax_spatial_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_spatial *sp = self;
    if (!s->image || s->channels < 1 || s->shape[0] < 1 || s->shape[1] < 1 || s->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "spatial: empty sample (channels %d, shape %dx%dx%d)", s->channels,
                        s->shape[0], s->shape[1], s->shape[2]);
    int32_t t[3];
    int targeted = s->target[0] != 0 || s->target[1] != 0 || s->target[2] != 0;
    for (int a = 0; a < 3; a++) {
        t[a] = targeted ? s->target[a] : s->shape[a];
        if (t[a] < 1 || t[a] > s->shape[a])
            return AX_ERROR(AX_ERR_INVALID, "spatial: target %dx%dx%d does not fit in the sample %dx%dx%d",
                            s->target[0], s->target[1], s->target[2], s->shape[0], s->shape[1], s->shape[2]);
    }
    /* A fixed number of draws (17) before any noise, whatever is drawn. */
    int elastic = ax_rng_bernoulli(rng, sp->p_elastic);
    double alpha = ax_rng_uniform_range(rng, (float)sp->alpha_min, (float)sp->alpha_max);
    double sigma = ax_rng_uniform_range(rng, (float)sp->sigma_min, (float)sp->sigma_max);
    int rotate = ax_rng_bernoulli(rng, sp->p_rotation);
    double angle[3];
    for (int a = 0; a < 3; a++) {
        int on = ax_rng_bernoulli(rng, sp->p_rotation_per_axis);
        double u = ax_rng_uniform(rng);
        angle[a] = rotate && on ? (2.0 * u - 1.0) * sp->rot_max[a] : 0.0;
    }
    int scale = ax_rng_bernoulli(rng, sp->p_scale);
    double sc[3];
    for (int a = 0; a < 3; a++) sc[a] = ax_spatial_scale_draw(rng, sp->scale_min, sp->scale_max);
    if (!sp->independent_scale) sc[1] = sc[2] = sc[0];
    if (!scale) sc[0] = sc[1] = sc[2] = 1.0;
    if (sp->elastic_clamp == 0.0 || alpha == 0.0) elastic = 0;

    if (!elastic && !rotate && !scale) {
        if (t[0] == s->shape[0] && t[1] == s->shape[1] && t[2] == s->shape[2]) return AX_OK;
        ax_spatial_crop(s, t);
        memcpy(s->shape, t, sizeof t);
        return AX_OK;
    }
    /* A = S * R^T */
    double r[3][3], a[3][3];
    ax_spatial_rotation(angle[0], angle[1], angle[2], r);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) a[i][j] = sc[i] * r[j][i];

    size_t vout = (size_t)t[0] * (size_t)t[1] * (size_t)t[2];
    float *img = malloc((size_t)s->channels * vout * sizeof *img);
    uint8_t *lab = s->label || s->mask ? malloc(vout) : NULL;
    float *disp = elastic ? malloc(3 * vout * sizeof *disp) : NULL;
    ax_status st = AX_OK;
    if (!img || ((s->label || s->mask) && !lab) || (elastic && !disp)) {
        st = AX_ERROR(AX_ERR_NOMEM, "spatial: out of memory for a %dx%dx%d patch", t[0], t[1], t[2]);
        goto done;
    }
    if (elastic && (st = ax_spatial_field(disp, t, alpha, sigma, a, sp->elastic_clamp, rng)) != AX_OK) goto done;
    ax_warp w = ax_warp_identity();
    ax_warp_centred(&w, a, t, s->shape);
    w.disp = disp;
    w.interp = sp->image_interp;
    w.fill = sp->image_fill;
    if ((st = ax_warp_f32(img, t, s->image, s->shape, s->channels, &w)) != AX_OK) goto done;
    memcpy(s->image, img, (size_t)s->channels * vout * sizeof *img);
    uint8_t *vols[2] = {s->label, s->mask};
    for (int k = 0; k < 2; k++) {
        if (!vols[k]) continue;
        w.fill = k == 0 ? sp->label_fill : 0.0f;
        if ((st = ax_warp_u8(lab, t, vols[k], s->shape, &w)) != AX_OK) goto done;
        memcpy(vols[k], lab, vout);
    }
    memcpy(s->shape, t, sizeof t);
done:
    free(img);
    free(lab);
    free(disp);
    return st == AX_OK ? AX_OK : ax_error_prefix("spatial");
}

static const ax_param_spec ax_spatial_params[] = {
    {.name = "p_rotation", .type = AX_PARAM_FLOAT, .def = "0.2", .min = 0, .max = 1,
     .doc = "probability per sample of a rotation"},
    {.name = "rotation_deg", .type = AX_PARAM_FLOAT_LIST, .def = "30,30,30", .min = 0, .max = 180,
     .doc = "largest angle in degrees about D,H,W (angles uniform in [-max, max]); one value: all axes"},
    {.name = "p_rotation_per_axis", .type = AX_PARAM_FLOAT, .def = "1", .min = 0, .max = 1,
     .doc = "when rotating, probability that each axis gets a non-zero angle"},
    {.name = "p_scale", .type = AX_PARAM_FLOAT, .def = "0.2", .min = 0, .max = 1,
     .doc = "probability per sample of a scaling"},
    {.name = "scale_min", .type = AX_PARAM_FLOAT, .def = "0.7", .min = 0.05, .max = 20,
     .doc = "smallest scale of the sampling grid (< 1 zooms in); below 1 half the time, as batchgenerators"},
    {.name = "scale_max", .type = AX_PARAM_FLOAT, .def = "1.4", .min = 0.05, .max = 20,
     .doc = "largest scale of the sampling grid (> 1 zooms out)"},
    {.name = "independent_scale_per_axis", .type = AX_PARAM_BOOL, .def = "false",
     .doc = "draw a scale per axis instead of one for all"},
    {.name = "p_elastic", .type = AX_PARAM_FLOAT, .def = "0", .min = 0, .max = 1,
     .doc = "probability per sample of an elastic deformation (reference pre-training: none)"},
    {.name = "elastic_alpha_min", .type = AX_PARAM_FLOAT, .def = "0", .min = 0, .max = 1e5,
     .doc = "smallest alpha: magnitude of the smoothed [-1, 1) noise, as batchgenerators"},
    {.name = "elastic_alpha_max", .type = AX_PARAM_FLOAT, .def = "1000", .min = 0, .max = 1e5,
     .doc = "largest alpha (batchgenerators' default 0..1000)"},
    {.name = "elastic_sigma_min", .type = AX_PARAM_FLOAT, .def = "10", .min = 0.5, .max = 100,
     .doc = "smallest smoothing sigma of the elastic field, in voxels"},
    {.name = "elastic_sigma_max", .type = AX_PARAM_FLOAT, .def = "13", .min = 0.5, .max = 100,
     .doc = "largest smoothing sigma (batchgenerators' default 10..13)"},
    {.name = "image_interp", .type = AX_PARAM_STRING, .def = "linear", .choices = "linear|nearest",
     .doc = "image interpolation (labels and mask are always nearest)"},
    {.name = "image_fill", .type = AX_PARAM_FLOAT, .def = "0", .doc = "image value outside the input"},
    {.name = "label_fill", .type = AX_PARAM_INT, .def = "0", .min = 0, .max = 255,
     .doc = "label outside the input (the mask reads 0)"},
    {0}};

static const ax_aug_ops ax_spatial_ops = {
    .create = ax_spatial_create,
    .destroy = ax_spatial_destroy,
    .apply = ax_spatial_apply,
    .extent = ax_spatial_extent,
};

static const ax_plugin ax_spatial_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "spatial",
    .version = "1.0",
    .summary = "random rotation, scaling and elastic deformation in one resampling pass",
    .license = "MIT",
    .params = ax_spatial_params,
    .ops = &ax_spatial_ops,
    .ops_size = sizeof ax_spatial_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_spatial_plugin, NULL};
    return list;
}
