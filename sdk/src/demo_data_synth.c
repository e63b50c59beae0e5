/* The demo-data generator's image synthesis: templates prepared once, then
 * one subject per call as a pure function of (templates, options). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/rng.h"
#include "axon/volume.h"
#include "axon/warp.h"
#include "demo_data_internal.h"

#define AX_DEMO_PI 3.14159265358979323846

/* ch2 is a uint8 T1 whose white matter sits near 110 and scalp fat near
 * 160: divide so white matter lands near 0.7 and the contrast curves below
 * can name tissues by position. */
#define AX_DEMO_T1_SCALE 160.0f
/* Below this (raw ch2 units) a voxel connected to the border is air. */
#define AX_DEMO_AIR 12.0f

/* Words of a subject's stream; each field below starts at its own offset so
 * adding a draw to one never shifts another. */
#define AX_DEMO_STREAM_NOISE ((uint64_t)1 << 40)
#define AX_DEMO_STREAM_FLOW ((uint64_t)2 << 40)
#define AX_DEMO_STREAM_BIAS ((uint64_t)3 << 40)
#define AX_DEMO_FLOW_GRID 5
#define AX_DEMO_BIAS_GRID 4

const char *ax_demo_contrast_name(ax_demo_contrast c) {
    switch (c) {
    case AX_DEMO_T1W: return "T1w";
    case AX_DEMO_T2W: return "T2w";
    case AX_DEMO_FLAIR: return "FLAIR";
    case AX_DEMO_PDW: return "PDw";
    }
    return "T1w";
}

void ax_demo_templates_free(ax_demo_templates *t) {
    if (!t) return;
    free(t->t1);
    free(t->label);
    free(t->head);
    free(t->face);
    memset(t, 0, sizeof *t);
}

static ax_status ax_demo_read(ax_volume **v, const char *dir, const char *name) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) return AX_ERROR(AX_ERR_INVALID, "demo: template folder name too long: %s", dir);
    ax_status st = ax_volume_read(v, path, NULL);
    if (st != AX_OK)
        return ax_error_prefix("demo: template %s (install Debian's mricron-data or pass another folder)", name);
    if ((*v)->channels != 1) {
        int c = (*v)->channels;
        ax_volume_free(*v);
        *v = NULL;
        return AX_ERROR(AX_ERR_FORMAT, "demo: template %s has %d volumes, expected 1", path, c);
    }
    return AX_OK;
}

/* Head = everything not reachable from the grid's border through air. */
static ax_status ax_demo_head_mask(uint8_t *head, const float *raw, const int32_t s[3]) {
    size_t n = (size_t)s[0] * (size_t)s[1] * (size_t)s[2];
    int64_t *queue = malloc(n * sizeof *queue);
    if (!queue) return AX_ERROR(AX_ERR_NOMEM, "demo: out of memory for the head mask");
    memset(head, 1, n);
    size_t qn = 0;
    const int64_t sh = s[2], sd = (int64_t)s[1] * s[2];
    for (int32_t d = 0; d < s[0]; d++)
        for (int32_t h = 0; h < s[1]; h++)
            for (int32_t w = 0; w < s[2]; w++) {
                bool border = d == 0 || h == 0 || w == 0 || d == s[0] - 1 || h == s[1] - 1 || w == s[2] - 1;
                int64_t i = d * sd + h * sh + w;
                if (border && raw[i] < AX_DEMO_AIR && head[i]) {
                    head[i] = 0;
                    queue[qn++] = i;
                }
            }
    for (size_t q = 0; q < qn; q++) {
        int64_t i = queue[q];
        int32_t d = (int32_t)(i / sd), h = (int32_t)(i / sh % s[1]), w = (int32_t)(i % sh);
        int64_t nb[6];
        int k = 0;
        if (d > 0) nb[k++] = i - sd;
        if (d < s[0] - 1) nb[k++] = i + sd;
        if (h > 0) nb[k++] = i - sh;
        if (h < s[1] - 1) nb[k++] = i + sh;
        if (w > 0) nb[k++] = i - 1;
        if (w < s[2] - 1) nb[k++] = i + 1;
        for (int j = 0; j < k; j++)
            if (head[nb[j]] && raw[nb[j]] < AX_DEMO_AIR) {
                head[nb[j]] = 0;
                queue[qn++] = nb[j];
            }
    }
    free(queue);
    return AX_OK;
}

static uint8_t ax_demo_aal_class(float aal) {
    int r = (int)lrintf(aal);
    if (r >= 1 && r <= 90) return r % 2 ? AX_DEMO_LABEL_CEREBRUM_LEFT : AX_DEMO_LABEL_CEREBRUM_RIGHT;
    if (r >= 91 && r <= 116) return AX_DEMO_LABEL_CEREBELLUM;
    return AX_DEMO_LABEL_BACKGROUND;
}

ax_status ax_demo_templates_load(ax_demo_templates *t, const char *dir, double spacing) {
    memset(t, 0, sizeof *t);
    ax_volume *ch2 = NULL, *bet = NULL, *aal = NULL;
    ax_status st;
    if ((st = ax_demo_read(&ch2, dir, "ch2.nii.gz")) != AX_OK) goto done;
    if ((st = ax_demo_read(&bet, dir, "ch2bet.nii.gz")) != AX_OK) goto done;
    if ((st = ax_demo_read(&aal, dir, "aal.nii.gz")) != AX_OK) goto done;
    for (int a = 0; a < 3; a++)
        if (bet->shape[a] != ch2->shape[a] || aal->shape[a] != ch2->shape[a]) {
            st = AX_ERROR(AX_ERR_FORMAT, "demo: %s/ch2bet.nii.gz and aal.nii.gz must share ch2.nii.gz's %dx%dx%d grid",
                          dir, ch2->shape[0], ch2->shape[1], ch2->shape[2]);
            goto done;
        }
    memcpy(t->shape, ch2->shape, sizeof t->shape);
    memcpy(t->spacing, ch2->spacing, sizeof t->spacing);
    size_t n = (size_t)t->shape[0] * (size_t)t->shape[1] * (size_t)t->shape[2];
    t->t1 = malloc(n * sizeof *t->t1);
    t->label = malloc(n);
    t->head = malloc(n);
    t->face = malloc(n);
    if (!t->t1 || !t->label || !t->head || !t->face) {
        st = AX_ERROR(AX_ERR_NOMEM, "demo: out of memory for the templates");
        goto done;
    }
    if ((st = ax_demo_head_mask(t->head, ch2->data, t->shape)) != AX_OK) goto done;
    for (int32_t d = 0; d < t->shape[0]; d++)
        for (int32_t h = 0; h < t->shape[1]; h++)
            for (int32_t w = 0; w < t->shape[2]; w++) {
                size_t i = ((size_t)d * (size_t)t->shape[1] + (size_t)h) * (size_t)t->shape[2] + (size_t)w;
                t->t1[i] = ch2->data[i] / AX_DEMO_T1_SCALE;
                uint8_t c = ax_demo_aal_class(aal->data[i]);
                if (c == AX_DEMO_LABEL_BACKGROUND && bet->data[i] > 0) c = AX_DEMO_LABEL_BRAIN;
                t->label[i] = c;
                /* World y (anterior) and z (superior) of this voxel, in mm
                 * from the template's origin (Colin27: the AC). */
                double y = 0, z = 0;
                const double v[3] = {w, h, d};
                for (int k = 0; k < 3; k++) {
                    y += ch2->affine[1][k] * v[k];
                    z += ch2->affine[2][k] * v[k];
                }
                y += ch2->affine[1][3];
                z += ch2->affine[2][3];
                t->face[i] = t->head[i] && c == AX_DEMO_LABEL_BACKGROUND && y > 40.0 && z < 5.0 - 0.25 * (y - 40.0);
            }
    /* Anti-aliasing before sampling at `spacing`: a Gaussian of ~0.4 output
     * voxels. */
    double sigma[3];
    for (int a = 0; a < 3; a++) sigma[a] = spacing > t->spacing[a] ? 0.4 * spacing / t->spacing[a] : 0.0;
    st = ax_gaussian_blur_f32(t->t1, t->shape, sigma, AX_BLUR_ZERO);
done:
    ax_volume_free(ch2);
    ax_volume_free(bet);
    ax_volume_free(aal);
    if (st != AX_OK) ax_demo_templates_free(t);
    return st;
}

void ax_demo_subject_clear(ax_demo_subject *s) {
    if (!s) return;
    free(s->image);
    free(s->label);
    free(s->head);
    free(s->deface);
    memset(s, 0, sizeof *s);
}

/* A smooth random field on `out` shape: a coarse grid of `g`^3 normals
 * (times `amp`, `channels` of them) upsampled trilinearly. f: [channels, out]. */
static ax_status ax_demo_smooth_field(float *f, const int32_t out[3], int32_t channels, int32_t g, double amp,
                                      uint64_t seed, uint64_t stream, uint64_t first) {
    size_t gn = (size_t)g * (size_t)g * (size_t)g * (size_t)channels;
    float coarse[3 * 8 * 8 * 8];
    if (gn > sizeof coarse / sizeof coarse[0]) return AX_ERROR(AX_ERR_INTERNAL, "demo: coarse grid too large");
    ax_rng_fill_normal(seed, stream, first, gn, coarse);
    for (size_t i = 0; i < gn; i++) coarse[i] *= (float)amp;
    ax_warp w = ax_warp_identity();
    w.border = AX_WARP_BORDER_EDGE;
    for (int a = 0; a < 3; a++) w.matrix[a][a] = out[a] > 1 ? (double)(g - 1) / (double)(out[a] - 1) : 0.0;
    int32_t gs[3] = {g, g, g};
    return ax_warp_f32(f, out, coarse, gs, channels, &w);
}

/* Rotation about the D (z), H (y) and W (x) axes by angles in radians,
 * composed as Rz * Ry * Rx in (d, h, w) coordinates. */
static void ax_demo_rotation(double r[3][3], const double ang[3]) {
    double rz[3][3] = {{1, 0, 0}, {0, cos(ang[0]), -sin(ang[0])}, {0, sin(ang[0]), cos(ang[0])}};
    double ry[3][3] = {{cos(ang[1]), 0, sin(ang[1])}, {0, 1, 0}, {-sin(ang[1]), 0, cos(ang[1])}};
    double rx[3][3] = {{cos(ang[2]), -sin(ang[2]), 0}, {sin(ang[2]), cos(ang[2]), 0}, {0, 0, 1}};
    double t[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            t[i][j] = 0;
            for (int k = 0; k < 3; k++) t[i][j] += rz[i][k] * ry[k][j];
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            r[i][j] = 0;
            for (int k = 0; k < 3; k++) r[i][j] += t[i][k] * rx[k][j];
        }
}

/* Tissue-intensity curve: piecewise linear through knots at fixed
 * positions of the scaled T1 (air 0, skull 0.1, CSF 0.2, grey matter 0.53,
 * white matter 0.71, fat 1; ch2's histogram peaks inside ch2bet),
 * values per contrast. Non-monotone for T2w/FLAIR/PDw, as the real ones
 * invert or flatten parts of the T1 ordering. */
#define AX_DEMO_KNOTS 8
static const float ax_demo_knot_t[AX_DEMO_KNOTS] = {0.0f, 0.1f, 0.2f, 0.53f, 0.62f, 0.71f, 1.0f, 1.6f};
static const float ax_demo_knot_y[4][AX_DEMO_KNOTS] = {
    /* T1w   */ {0.0f, 0.1f, 0.2f, 0.53f, 0.62f, 0.71f, 1.0f, 1.3f},
    /* T2w   */ {0.0f, 0.15f, 0.9f, 0.6f, 0.5f, 0.35f, 0.7f, 0.8f},
    /* FLAIR */ {0.0f, 0.1f, 0.15f, 0.65f, 0.55f, 0.45f, 0.6f, 0.7f},
    /* PDw   */ {0.0f, 0.2f, 0.7f, 0.75f, 0.68f, 0.6f, 0.8f, 0.9f},
};

static void ax_demo_apply_curve(float *x, size_t n, const float *ky) {
    for (size_t i = 0; i < n; i++) {
        float t = x[i];
        if (t <= 0.0f) {
            x[i] = 0.0f;
            continue;
        }
        int k = 1;
        while (k < AX_DEMO_KNOTS - 1 && t > ax_demo_knot_t[k]) k++;
        float t0 = ax_demo_knot_t[k - 1], t1 = ax_demo_knot_t[k];
        float u = (t - t0) / (t1 - t0);
        x[i] = ky[k - 1] + u * (ky[k] - ky[k - 1]);
    }
}

ax_status ax_demo_subject_make(const ax_demo_templates *t, const ax_demo_subject_opts *o, ax_demo_subject *s) {
    memset(s, 0, sizeof *s);
    ax_rng rng;
    ax_rng_init(&rng, o->seed, o->stream);

    /* Geometry: voxel size, field of view, a random affine. */
    double frac[3], off[3], ang[3];
    for (int a = 0; a < 3; a++) {
        s->spacing[a] = o->spacing * (o->vary_geometry ? ax_rng_uniform_range(&rng, 1.0f, 1.35f) : 1.0);
        frac[a] = o->vary_geometry ? ax_rng_uniform_range(&rng, 0.78f, 1.0f) : 1.0;
        double ext = t->shape[a] * t->spacing[a];
        off[a] = ax_rng_uniform_range(&rng, -1.0f, 1.0f) * 0.5 * (1.0 - frac[a]) * ext +
                 ax_rng_uniform_range(&rng, -3.0f, 3.0f);
        ang[a] = ax_rng_uniform_range(&rng, -8.0f, 8.0f) * AX_DEMO_PI / 180.0;
        s->shape[a] = (int32_t)lround(ext * frac[a] / s->spacing[a]);
        if (s->shape[a] < 8) s->shape[a] = 8;
    }
    double scale = ax_rng_uniform_range(&rng, 0.92f, 1.08f);
    double r[3][3];
    ax_demo_rotation(r, ang);
    ax_warp w = ax_warp_identity();
    for (int i = 0; i < 3; i++) {
        double tr = off[i] / t->spacing[i] + 0.5 * (t->shape[i] - 1);
        for (int j = 0; j < 3; j++) {
            w.matrix[i][j] = scale * r[i][j] * s->spacing[j] / t->spacing[i];
            tr -= w.matrix[i][j] * 0.5 * (s->shape[j] - 1);
        }
        w.matrix[i][3] = tr;
    }

    /* Intensity model draws. */
    float ky[AX_DEMO_KNOTS];
    for (int k = 0; k < AX_DEMO_KNOTS; k++)
        ky[k] = ax_demo_knot_y[o->contrast][k] * (k ? ax_rng_uniform_range(&rng, 0.9f, 1.1f) : 0.0f);
    double noise = ax_rng_uniform_range(&rng, 0.005f, 0.05f);
    double bias = ax_rng_uniform_range(&rng, 0.0f, 0.3f);
    double gain = ax_rng_uniform_range(&rng, 300.0f, 2500.0f);
    s->quality = 1.0 + 2.5 * (noise - 0.005) / 0.045 + 1.5 * bias / 0.3;
    s->quality = round(s->quality * 100.0) / 100.0;

    size_t n = (size_t)s->shape[0] * (size_t)s->shape[1] * (size_t)s->shape[2];
    ax_status st = AX_OK;
    float *flow = malloc(3 * n * sizeof *flow);
    float *field = malloc(n * sizeof *field);
    float *noise2 = malloc(2 * n * sizeof *noise2);
    s->image = malloc(n * sizeof *s->image);
    s->label = malloc(n);
    s->head = malloc(n);
    s->deface = calloc(n, 1);
    uint8_t *face = malloc(n);
    if (!flow || !field || !noise2 || !s->image || !s->label || !s->head || !s->deface || !face) {
        st = AX_ERROR(AX_ERR_NOMEM, "demo: out of memory for a %dx%dx%d subject", s->shape[0], s->shape[1], s->shape[2]);
        goto done;
    }
    /* Smooth deformation: ~3 mm displacements on a 5^3 control grid. */
    if ((st = ax_demo_smooth_field(flow, s->shape, 3, AX_DEMO_FLOW_GRID, 3.0 / t->spacing[0], o->seed, o->stream,
                                   AX_DEMO_STREAM_FLOW)) != AX_OK)
        goto done;
    w.disp = flow;
    if ((st = ax_warp_f32(s->image, s->shape, t->t1, t->shape, 1, &w)) != AX_OK) goto done;
    if ((st = ax_warp_u8(s->label, s->shape, t->label, t->shape, &w)) != AX_OK) goto done;
    if ((st = ax_warp_u8(s->head, s->shape, t->head, t->shape, &w)) != AX_OK) goto done;
    if ((st = ax_warp_u8(face, s->shape, t->face, t->shape, &w)) != AX_OK) goto done;

    ax_demo_apply_curve(s->image, n, ky);
    /* Bias: exp of a smooth field with standard deviation `bias`. */
    if ((st = ax_demo_smooth_field(field, s->shape, 1, AX_DEMO_BIAS_GRID, bias, o->seed, o->stream,
                                   AX_DEMO_STREAM_BIAS)) != AX_OK)
        goto done;
    /* Rician noise: the magnitude of a complex signal with Gaussian noise on
     * both parts. */
    ax_rng_fill_normal(o->seed, o->stream, AX_DEMO_STREAM_NOISE, 2 * n, noise2);
    for (size_t i = 0; i < n; i++) {
        float x = s->image[i] * expf(field[i]);
        float re = x + (float)noise * noise2[2 * i], im = (float)noise * noise2[2 * i + 1];
        x = sqrtf(re * re + im * im) * (float)gain;
        if (o->deface && face[i]) {
            x = 0.0f;
            s->deface[i] = 1;
        }
        s->image[i] = x;
    }
done:
    free(flow);
    free(field);
    free(noise2);
    free(face);
    if (st != AX_OK) ax_demo_subject_clear(s);
    return st;
}
