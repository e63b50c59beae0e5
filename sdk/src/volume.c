/* volume.c — ax_volume lifetime, datatypes, orientation maths and the
 * strided voxel copies shared by the NIfTI reader and writer.
 *
 * Orientation follows nibabel: io_orientation() takes the rotation closest
 * to the affine's (polar decomposition, here by a one-sided Jacobi SVD of the
 * 3x3 direction matrix), then gives each voxel axis the world axis it runs
 * along most, removing that world axis from the later choices. The RAS array
 * is the file array flipped and transposed accordingly, and its affine is
 * the file's times the index map (nibabel's inv_ornt_aff), so it is exact.
 */
#include "axon/volume.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "volume_internal.h"

/* ---- datatypes ----------------------------------------------------------- */

const char *ax_nifti_dtype_name(int nifti_datatype) {
    switch (nifti_datatype) {
    case AX_NIFTI_U8: return "u8";
    case AX_NIFTI_I8: return "i8";
    case AX_NIFTI_I16: return "i16";
    case AX_NIFTI_U16: return "u16";
    case AX_NIFTI_I32: return "i32";
    case AX_NIFTI_U32: return "u32";
    case AX_NIFTI_I64: return "i64";
    case AX_NIFTI_F32: return "f32";
    case AX_NIFTI_F64: return "f64";
    default: return NULL;
    }
}

int ax_nifti_dtype_size(int32_t dtype) {
    switch (dtype) {
    case AX_NIFTI_U8:
    case AX_NIFTI_I8: return 1;
    case AX_NIFTI_I16:
    case AX_NIFTI_U16: return 2;
    case AX_NIFTI_I32:
    case AX_NIFTI_U32:
    case AX_NIFTI_F32: return 4;
    case AX_NIFTI_I64:
    case AX_NIFTI_F64: return 8;
    default: return 0;
    }
}

/* ---- lifetime ------------------------------------------------------------ */

ax_volume_read_opts ax_volume_read_opts_default(void) {
    ax_volume_read_opts o = {.reorient = true, .volume = -1, .allow_nonfinite = false};
    return o;
}

ax_status ax_volume_new(ax_volume **out, int32_t channels, const int32_t shape[3], const double spacing[3]) {
    if (!out || !shape || !spacing) return AX_ERROR(AX_ERR_INVALID, "ax_volume_new: NULL argument");
    *out = NULL;
    if (channels < 1 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "ax_volume_new: bad size %d x %d x %d x %d (channels x D x H x W)",
                        channels, shape[0], shape[1], shape[2]);
    for (int a = 0; a < 3; a++)
        if (!(spacing[a] > 0) || !isfinite(spacing[a]))
            return AX_ERROR(AX_ERR_INVALID, "ax_volume_new: spacing[%d] = %g must be positive", a, spacing[a]);
    size_t n = (size_t)channels * (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2];
    ax_volume *v = calloc(1, sizeof *v);
    if (v) v->data = calloc(n, sizeof(float));
    if (!v || !v->data) {
        free(v);
        return AX_ERROR(AX_ERR_NOMEM, "ax_volume_new: cannot allocate %zu voxels", n);
    }
    v->channels = channels;
    memcpy(v->shape, shape, sizeof v->shape);
    memcpy(v->spacing, spacing, sizeof v->spacing);
    /* voxel (w, h, d): x along W, y along H, z along D */
    v->affine[0][0] = spacing[2];
    v->affine[1][1] = spacing[1];
    v->affine[2][2] = spacing[0];
    v->affine[3][3] = 1.0;
    ax_volume_source *s = &v->source;
    s->dim[0] = shape[2];
    s->dim[1] = shape[1];
    s->dim[2] = shape[0];
    memcpy(s->affine, v->affine, sizeof s->affine);
    for (int a = 0; a < 3; a++) s->perm[a] = a;
    s->datatype = AX_NIFTI_F32;
    s->nifti_version = 1;
    memcpy(s->orientation, "RAS", 4);
    *out = v;
    return AX_OK;
}

void ax_volume_free(ax_volume *v) {
    if (!v) return;
    free(v->data);
    free(v);
}

/* ---- orientation ----------------------------------------------------------- */

/* One-sided Jacobi SVD of a 3x3 matrix: b <- U*S (columns), v <- V, so
 * a = U S V^T. Accurate for tiny singular values, unlike eig(a^T a). */
static void ax_svd3(double b[3][3], double v[3][3]) {
    memset(v, 0, 9 * sizeof(double));
    for (int i = 0; i < 3; i++) v[i][i] = 1.0;
    for (int sweep = 0; sweep < 60; sweep++) {
        int rotated = 0;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                double al = 0, be = 0, ga = 0;
                for (int r = 0; r < 3; r++) {
                    al += b[r][p] * b[r][p];
                    be += b[r][q] * b[r][q];
                    ga += b[r][p] * b[r][q];
                }
                if (ga == 0 || fabs(ga) <= DBL_EPSILON * sqrt(al * be)) continue;
                rotated = 1;
                double zeta = (be - al) / (2 * ga);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1 + zeta * zeta));
                double c = 1 / sqrt(1 + t * t), s = c * t;
                for (int r = 0; r < 3; r++) {
                    double bp = b[r][p], bq = b[r][q];
                    b[r][p] = c * bp - s * bq;
                    b[r][q] = s * bp + c * bq;
                    double vp = v[r][p], vq = v[r][q];
                    v[r][p] = c * vp - s * vq;
                    v[r][q] = s * vp + c * vq;
                }
            }
        if (!rotated) break;
    }
}

void ax_affine_ornt(const double affine[4][4], int32_t out_axis[3], int32_t sign[3]) {
    double b[3][3], v[3][3], r[3][3] = {{0}};
    for (int c = 0; c < 3; c++) {
        double z = 0;
        for (int i = 0; i < 3; i++) z += affine[i][c] * affine[i][c];
        z = sqrt(z);
        if (z == 0) z = 1; /* a zero column stays zero, as in nibabel */
        for (int i = 0; i < 3; i++) b[i][c] = affine[i][c] / z;
    }
    ax_svd3(b, v);
    double s[3], smax = 0;
    for (int c = 0; c < 3; c++) {
        s[c] = sqrt(b[0][c] * b[0][c] + b[1][c] * b[1][c] + b[2][c] * b[2][c]);
        if (s[c] > smax) smax = s[c];
    }
    double tol = smax * 3 * DBL_EPSILON; /* numpy's rank threshold */
    /* R = sum over kept singular values of u_c v_c^T: the closest
     * shear-free (orthogonal on its range) matrix to the directions */
    for (int c = 0; c < 3; c++) {
        if (!(s[c] > tol)) continue;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) r[i][j] += b[i][c] / s[c] * v[j][c];
    }
    for (int in = 0; in < 3; in++) {
        out_axis[in] = -1;
        sign[in] = 0;
        int best = -1;
        double bestv = 0;
        for (int o = 0; o < 3; o++)
            if (fabs(r[o][in]) > 1e-8 && fabs(r[o][in]) > bestv) bestv = fabs(r[o][in]), best = o;
        if (best < 0) continue;
        /* np.argmax over the whole column: the largest, first on ties */
        for (int o = 0; o < 3; o++)
            if (fabs(r[o][in]) == bestv) {
                best = o;
                break;
            }
        out_axis[in] = best;
        sign[in] = r[best][in] < 0 ? -1 : 1;
        for (int j = 0; j < 3; j++) r[best][j] = 0;
    }
}

void ax_affine_ras_perm(const double affine[4][4], int32_t perm[3], int32_t flip[3]) {
    int32_t out_axis[3], sign[3];
    ax_affine_ornt(affine, out_axis, sign);
    int used_out[3] = {0}, used_in[3] = {0};
    for (int a = 0; a < 3; a++) perm[a] = -1, flip[a] = 0;
    for (int i = 0; i < 3; i++)
        if (out_axis[i] >= 0) {
            perm[out_axis[i]] = i;
            flip[out_axis[i]] = sign[i] < 0;
            used_out[out_axis[i]] = used_in[i] = 1;
        }
    for (int a = 0; a < 3; a++) {
        if (used_out[a]) continue;
        for (int i = 0; i < 3; i++)
            if (!used_in[i]) {
                perm[a] = i;
                used_in[i] = 1;
                break;
            }
    }
}

void ax_affine_reorient(const double affine[4][4], const int64_t dim[3], const int32_t perm[3],
                        const int32_t flip[3], double out[4][4]) {
    double m[4][4] = {{0}};
    for (int a = 0; a < 3; a++) {
        m[perm[a]][a] = flip[a] ? -1.0 : 1.0;
        m[perm[a]][3] = flip[a] ? (double)(dim[perm[a]] - 1) : 0.0;
    }
    m[3][3] = 1.0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double acc = 0;
            for (int k = 0; k < 4; k++) acc += affine[i][k] * m[k][j];
            out[i][j] = acc;
        }
}

void ax_affine_voxel_sizes(const double affine[4][4], double out[3]) {
    for (int c = 0; c < 3; c++)
        out[c] = sqrt(affine[0][c] * affine[0][c] + affine[1][c] * affine[1][c] + affine[2][c] * affine[2][c]);
}

void ax_affine_axcodes(const double affine[4][4], char out[4]) {
    static const char labels[3][2] = {{'L', 'R'}, {'P', 'A'}, {'I', 'S'}};
    int32_t out_axis[3], sign[3];
    ax_affine_ornt(affine, out_axis, sign);
    for (int i = 0; i < 3; i++) out[i] = out_axis[i] < 0 ? '?' : labels[out_axis[i]][sign[i] > 0];
    out[3] = '\0';
}

/* ---- strided walks --------------------------------------------------------- */

void ax_vox_walk_to_file(ax_vox_walk *w, const int64_t fdim[3], const int32_t perm[3],
                         const int32_t flip[3]) {
    const int64_t rs[3] = {1, fdim[perm[0]], fdim[perm[0]] * fdim[perm[1]]};
    w->base = 0;
    for (int a = 0; a < 3; a++) {
        int f = perm[a];
        if (flip[a]) w->base += (fdim[f] - 1) * rs[a];
        w->shape[2 - f] = fdim[f];
        w->stride[2 - f] = flip[a] ? -rs[a] : rs[a];
    }
}

/* ---- conversions ---------------------------------------------------------- */

/* Rows run in parallel once a block is large enough to repay the threads. */
#define AX_VOX_PARALLEL_MIN (1 << 18)

void ax_vox_scatter_from_file(ax_vox_scatter *sc, const int64_t fdim[3], const int32_t perm[3],
                              const int32_t flip[3]) {
    const int64_t rs[3] = {1, fdim[perm[0]], fdim[perm[0]] * fdim[perm[1]]};
    sc->base = 0;
    for (int a = 0; a < 3; a++) {
        int f = perm[a];
        if (flip[a]) sc->base += (fdim[f] - 1) * rs[a];
        sc->stride[f] = flip[a] ? -rs[a] : rs[a];
    }
}

/* dst[i * ds] = convert(src[i]) for one file row; a switch per row and plain
 * typed loops, which the compiler vectorises for ds = 1. Returns the number
 * of non-finite results. */
static int64_t ax_row_to_f32(float *restrict dst, int64_t ds, const void *src, int32_t dtype, int64_t n, int scale,
                             double slope, double inter) {
#define AX_ROW_CASE(T)                                                                                   \
    {                                                                                                    \
        const T *restrict s = (const T *)src;                                                            \
        if (ds == 1 && scale)                                                                            \
            for (int64_t i = 0; i < n; i++) dst[i] = (float)((double)s[i] * slope + inter);               \
        else if (ds == 1)                                                                                \
            for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];                                         \
        else if (scale)                                                                                  \
            for (int64_t i = 0; i < n; i++) dst[i * ds] = (float)((double)s[i] * slope + inter);          \
        else                                                                                             \
            for (int64_t i = 0; i < n; i++) dst[i * ds] = (float)s[i];                                    \
    }                                                                                                    \
    break;
    switch (dtype) {
    case AX_NIFTI_U8: AX_ROW_CASE(uint8_t)
    case AX_NIFTI_I8: AX_ROW_CASE(int8_t)
    case AX_NIFTI_I16: AX_ROW_CASE(int16_t)
    case AX_NIFTI_U16: AX_ROW_CASE(uint16_t)
    case AX_NIFTI_I32: AX_ROW_CASE(int32_t)
    case AX_NIFTI_U32: AX_ROW_CASE(uint32_t)
    case AX_NIFTI_I64: AX_ROW_CASE(int64_t)
    case AX_NIFTI_F32: AX_ROW_CASE(float)
    case AX_NIFTI_F64: AX_ROW_CASE(double)
    default: break;
    }
#undef AX_ROW_CASE
    /* integers without scaling cannot produce NaN/Inf (even u64 fits a float) */
    if (!scale && dtype != AX_NIFTI_F32 && dtype != AX_NIFTI_F64) return 0;
    int64_t bad = 0;
    if (ds == 1)
        for (int64_t i = 0; i < n; i++) bad += !(dst[i] - dst[i] == 0.0f);
    else
        for (int64_t i = 0; i < n; i++) bad += !(dst[i * ds] - dst[i * ds] == 0.0f);
    return bad;
}

int64_t ax_vox_scatter_to_f32(float *out, const ax_vox_scatter *sc, const void *src, int32_t dtype, int64_t ni,
                              int64_t nj, int64_t k0, int64_t nk, int scale, double slope, double inter,
                              int parallel) {
    const int64_t rows = nj * nk;
    const int esize = ax_nifti_dtype_size(dtype);
    int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (parallel && rows * ni >= AX_VOX_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t k = k0 + r / nj, j = r % nj;
        float *dst = out + sc->base + j * sc->stride[1] + k * sc->stride[2];
        bad += ax_row_to_f32(dst, sc->stride[0], (const char *)src + r * ni * esize, dtype, ni, scale, slope, inter);
    }
    return bad;
}

/* Clamp to [lo, hi] (integers), then round half to even; NaN -> 0. Adding
 * and subtracting 1.5 * 2^52 rounds in the current (nearest-even) mode
 * without a libm call, so the loops vectorise. */
static inline double ax_round_clamp(float v, double lo, double hi) {
    double x = (double)v;
    if (!(x == x)) return 0;
    x = x < lo ? lo : x > hi ? hi : x;
    if (fabs(x) < 4503599627370496.0) x = (x + 6755399441055744.0) - 6755399441055744.0;
    return x;
}

static void ax_row_from_f32(void *dst, int32_t dtype, const float *restrict s, int64_t sw, int64_t n) {
#define AX_ROW_INT(T, LO, HI)                                                                            \
    {                                                                                                    \
        T *restrict d = (T *)dst;                                                                        \
        if (sw == 1)                                                                                     \
            for (int64_t i = 0; i < n; i++) d[i] = (T)ax_round_clamp(s[i], (LO), (HI));                   \
        else                                                                                             \
            for (int64_t i = 0; i < n; i++) d[i] = (T)ax_round_clamp(s[i * sw], (LO), (HI));              \
    }                                                                                                    \
    break;
    switch (dtype) {
    case AX_NIFTI_U8: AX_ROW_INT(uint8_t, 0.0, 255.0)
    case AX_NIFTI_I8: AX_ROW_INT(int8_t, -128.0, 127.0)
    case AX_NIFTI_I16: AX_ROW_INT(int16_t, -32768.0, 32767.0)
    case AX_NIFTI_U16: AX_ROW_INT(uint16_t, 0.0, 65535.0)
    case AX_NIFTI_I32: AX_ROW_INT(int32_t, -2147483648.0, 2147483647.0)
    case AX_NIFTI_U32: AX_ROW_INT(uint32_t, 0.0, 4294967295.0)
    case AX_NIFTI_I64: {
        int64_t *d = (int64_t *)dst;
        for (int64_t i = 0; i < n; i++) {
            double x = ax_round_clamp(s[i * sw], -9223372036854775808.0, 9223372036854775808.0);
            /* 2^63 itself does not fit */
            d[i] = x >= 9223372036854775808.0 ? INT64_MAX : (int64_t)x;
        }
        break;
    }
    case AX_NIFTI_F32: {
        float *d = (float *)dst;
        if (sw == 1) memcpy(d, s, (size_t)n * sizeof(float));
        else
            for (int64_t i = 0; i < n; i++) d[i] = s[i * sw];
        break;
    }
    case AX_NIFTI_F64: {
        double *d = (double *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = (double)s[i * sw];
        break;
    }
    default: break;
    }
#undef AX_ROW_INT
}

void ax_vox_gather_from_f32(void *dst, int32_t dtype, const float *src, const ax_vox_walk *walk) {
    const int64_t nd = walk->shape[0], nh = walk->shape[1], nw = walk->shape[2];
    const int64_t rows = nd * nh;
    const int size = ax_nifti_dtype_size(dtype);
#pragma omp parallel for schedule(static) if (rows * nw >= AX_VOX_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t d = r / nh, h = r % nh;
        int64_t off = walk->base + d * walk->stride[0] + h * walk->stride[1];
        ax_row_from_f32((char *)dst + r * nw * size, dtype, src + off, walk->stride[2], nw);
    }
}
