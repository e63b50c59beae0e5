/* preprocess_case.c — one case: read, check geometry, crop, normalise,
 * resample, list foreground, write (axon/preprocess.h steps 1-6). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "axon/cache.h"
#include "axon/rng.h"
#include "preprocess_internal.h"

typedef struct pp_work {
    ax_volume **vols;         /* [n_images] */
    int32_t n_vols;
    ax_volume *label_vol, *mask_vol;
    float *image;             /* [C, D, H, W] full grid (points into vols[0] when C == 1 and one file) */
    bool image_owned;
    uint8_t *label, *mask;    /* full grid */
    float *crop_img;          /* [C, cd, ch, cw] */
    uint8_t *crop_label, *crop_mask;
    float *out_img;
    uint8_t *out_label, *out_mask;
    int32_t *fg;
} pp_work;

static void pp_work_free(pp_work *w) {
    for (int32_t i = 0; i < w->n_vols; i++) ax_volume_free(w->vols[i]);
    free(w->vols);
    ax_volume_free(w->label_vol);
    ax_volume_free(w->mask_vol);
    if (w->image_owned) free(w->image);
    free(w->label), free(w->mask);
    if (w->out_img != w->crop_img) free(w->out_img);
    free(w->crop_img);
    if (w->out_label != w->crop_label) free(w->out_label);
    free(w->crop_label);
    if (w->out_mask != w->crop_mask) free(w->out_mask);
    free(w->crop_mask);
    free(w->fg);
}

static size_t nvox3(const int32_t s[3]) { return (size_t)s[0] * (size_t)s[1] * (size_t)s[2]; }

/* `b` lies on `a`'s voxel grid: same shape, affine within tolerance. */
static ax_status pp_check_grid(const ax_volume *a, const char *a_path, const ax_volume *b, const char *b_path,
                               double tol) {
    if (a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1] || a->shape[2] != b->shape[2])
        return AX_ERROR(AX_ERR_FORMAT, "%s: shape [%d, %d, %d] differs from %s's [%d, %d, %d]", b_path,
                        (int)b->shape[0], (int)b->shape[1], (int)b->shape[2], a_path, (int)a->shape[0],
                        (int)a->shape[1], (int)a->shape[2]);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) {
            double x = a->affine[r][c], y = b->affine[r][c];
            if (fabs(x - y) > tol * (1.0 + fabs(x)))
                return AX_ERROR(AX_ERR_FORMAT, "%s: affine differs from %s's (entry [%d][%d]: %.6g vs %.6g)", b_path,
                                a_path, r, c, y, x);
        }
    return AX_OK;
}

static ax_status pp_read(ax_volume **out, const char *path) {
    ax_volume_read_opts ro = ax_volume_read_opts_default();
    return ax_volume_read(out, path, &ro);
}

/* A label volume as class ids; values must be integers in [0, 255] that
 * the dataset declares. */
static ax_status pp_label_u8(uint8_t *dst, const ax_volume *v, const char *path, const bool allowed[256]) {
    size_t n = nvox3(v->shape);
    for (size_t i = 0; i < n; i++) {
        float x = v->data[i];
        if (!(x >= 0 && x <= 255) || x != floorf(x))
            return AX_ERROR(AX_ERR_FORMAT, "%s: label value %g at voxel %zu is not a class id in [0, 255]", path,
                            (double)x, i);
        uint8_t id = (uint8_t)x;
        if (!allowed[id])
            return AX_ERROR(AX_ERR_FORMAT, "%s: label value %d is not one of the dataset's labels", path, (int)id);
        dst[i] = id;
    }
    return AX_OK;
}

/* Bounding box [lo, hi) of the voxels where sel(i) holds; false when none. */
static bool pp_bbox_u8(const uint8_t *m, const int32_t s[3], int32_t lo[3], int32_t hi[3]) {
    lo[0] = s[0], lo[1] = s[1], lo[2] = s[2];
    hi[0] = hi[1] = hi[2] = 0;
    size_t i = 0;
    for (int32_t d = 0; d < s[0]; d++)
        for (int32_t h = 0; h < s[1]; h++) {
            const uint8_t *row = m + i;
            int32_t first = -1, last = -1;
            for (int32_t w = 0; w < s[2]; w++)
                if (row[w]) {
                    if (first < 0) first = w;
                    last = w;
                }
            i += (size_t)s[2];
            if (first < 0) continue;
            if (d < lo[0]) lo[0] = d;
            if (d + 1 > hi[0]) hi[0] = d + 1;
            if (h < lo[1]) lo[1] = h;
            if (h + 1 > hi[1]) hi[1] = h + 1;
            if (first < lo[2]) lo[2] = first;
            if (last + 1 > hi[2]) hi[2] = last + 1;
        }
    return hi[0] > lo[0];
}

/* dst: [C, box] <- src: [C, s] (elem bytes per voxel). */
static void pp_crop(void *dst, const void *src, const int32_t s[3], int32_t channels, const int32_t lo[3],
                    const int32_t cs[3], size_t elem) {
    char *o = dst;
    const char *in = src;
    for (int32_t c = 0; c < channels; c++)
        for (int32_t d = 0; d < cs[0]; d++)
            for (int32_t h = 0; h < cs[1]; h++) {
                size_t si = (((size_t)c * (size_t)s[0] + (size_t)(d + lo[0])) * (size_t)s[1] + (size_t)(h + lo[1])) *
                                (size_t)s[2] +
                            (size_t)lo[2];
                memcpy(o, in + si * elem, (size_t)cs[2] * elem);
                o += (size_t)cs[2] * elem;
            }
}

static json_t *pp_json_vec(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static json_t *pp_json_ivec(const int32_t *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *pp_json_affine(const double m[4][4]) {
    json_t *a = json_array();
    for (int r = 0; r < 4; r++) json_array_append_new(a, pp_json_vec(m[r], 4));
    return a;
}

static json_t *pp_json_source(const ax_volume_source *s) {
    json_t *o = json_object();
    int32_t dim[3] = {(int32_t)s->dim[0], (int32_t)s->dim[1], (int32_t)s->dim[2]};
    json_object_set_new(o, "dim", pp_json_ivec(dim, 3));
    json_object_set_new(o, "affine", pp_json_affine(s->affine));
    json_object_set_new(o, "perm", pp_json_ivec(s->perm, 3));
    json_object_set_new(o, "flip", pp_json_ivec(s->flip, 3));
    json_object_set_new(o, "datatype", json_integer(s->datatype));
    json_object_set_new(o, "nifti_version", json_integer(s->nifti_version));
    json_object_set_new(o, "sform_code", json_integer(s->sform_code));
    json_object_set_new(o, "qform_code", json_integer(s->qform_code));
    char orient[4];
    memcpy(orient, s->orientation, 3);
    orient[3] = '\0';
    json_object_set_new(o, "orientation", json_string(orient));
    json_object_set_new(o, "reoriented", json_boolean(s->reoriented));
    return o;
}

static json_t *pp_json_str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* Up to `max` of the n_sel voxels where sel[i] != 0, chosen by selection
 * sampling (Knuth's algorithm S): uniform, in voxel order, one pass, the
 * same for the same seed. */
static int64_t pp_foreground(int32_t *fg, int64_t max, const uint8_t *sel, const int32_t s[3], int64_t n_sel,
                             uint64_t seed) {
    ax_rng r;
    ax_rng_init(&r, seed, 0);
    int64_t need = n_sel < max ? n_sel : max, left = n_sel, k = 0;
    size_t i = 0;
    for (int32_t d = 0; d < s[0] && k < need; d++)
        for (int32_t h = 0; h < s[1] && k < need; h++)
            for (int32_t w = 0; w < s[2]; w++, i++) {
                if (!sel[i]) continue;
                bool take = need - k >= left || (double)ax_rng_uniform(&r) * (double)left < (double)(need - k);
                left--;
                if (!take) continue;
                fg[3 * k] = d, fg[3 * k + 1] = h, fg[3 * k + 2] = w;
                if (++k == need) break;
            }
    return k;
}

ax_status pp_case_run(const pp_ctx *ctx, const ax_dataset_case *dc, const char *path, const char *hash,
                      double spacing_out[3]) {
    const ax_preprocess_opts *o = ctx->opts;
    pp_work w;
    memset(&w, 0, sizeof w);
    ax_status st = AX_OK;
    json_t *meta = NULL;
    char *json = NULL;

    /* 1. read and check */
    if (dc->n_images <= 0) return AX_ERROR(AX_ERR_INVALID, "case '%s' has no image", dc->name);
    if (!(w.vols = calloc((size_t)dc->n_images, sizeof *w.vols))) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    int32_t C = 0;
    for (int32_t i = 0; i < dc->n_images; i++) {
        if ((st = pp_read(&w.vols[i], dc->images[i])) != AX_OK) goto done;
        w.n_vols = i + 1;
        C += w.vols[i]->channels;
        if (i > 0 && (st = pp_check_grid(w.vols[0], dc->images[0], w.vols[i], dc->images[i], o->geometry_tol)) != AX_OK)
            goto done;
    }
    if (C != ctx->channels) {
        st = AX_ERROR(AX_ERR_FORMAT, "%s: %d channel%s, the dataset has %d per case", dc->images[0], (int)C,
                      C == 1 ? "" : "s", (int)ctx->channels);
        goto done;
    }
    const ax_volume *ref = w.vols[0];
    int32_t S[3] = {ref->shape[0], ref->shape[1], ref->shape[2]};
    size_t N = nvox3(S);
    if (w.n_vols == 1) {
        w.image = ref->data;
    } else {
        if (!(w.image = malloc((size_t)C * N * sizeof *w.image))) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            goto done;
        }
        w.image_owned = true;
        size_t off = 0;
        for (int32_t i = 0; i < w.n_vols; i++) {
            memcpy(w.image + off, w.vols[i]->data, (size_t)w.vols[i]->channels * N * sizeof *w.image);
            off += (size_t)w.vols[i]->channels * N;
        }
    }
    if (dc->label) {
        if ((st = pp_read(&w.label_vol, dc->label)) != AX_OK) goto done;
        if (w.label_vol->channels != 1) {
            st = AX_ERROR(AX_ERR_FORMAT, "%s: a label map must have one volume, not %d", dc->label,
                          (int)w.label_vol->channels);
            goto done;
        }
        if ((st = pp_check_grid(ref, dc->images[0], w.label_vol, dc->label, o->geometry_tol)) != AX_OK) goto done;
        if (!(w.label = malloc(N))) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((st = pp_label_u8(w.label, w.label_vol, dc->label, ctx->allowed)) != AX_OK) goto done;
        ax_volume_free(w.label_vol);
        w.label_vol = NULL;
    }
    if (dc->mask) {
        if ((st = pp_read(&w.mask_vol, dc->mask)) != AX_OK) goto done;
        if ((st = pp_check_grid(ref, dc->images[0], w.mask_vol, dc->mask, o->geometry_tol)) != AX_OK) goto done;
        if (!(w.mask = malloc(N))) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < N; i++) w.mask[i] = w.mask_vol->data[i] > 0.5f;
        ax_volume_free(w.mask_vol);
        w.mask_vol = NULL;
    }

    /* 2. crop box; `region` marks the nonzero (or mask) voxels for norm */
    uint8_t *nonzero = malloc(N);
    if (!nonzero) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto done;
    }
    memset(nonzero, 0, N);
    for (int32_t c = 0; c < C; c++) {
        const float *x = w.image + (size_t)c * N;
        for (size_t i = 0; i < N; i++) nonzero[i] |= x[i] != 0.0f;
    }
    int32_t lo[3] = {0, 0, 0}, hi[3] = {S[0], S[1], S[2]};
    const char *crop_by = "none";
    if (w.mask && o->crop_to_mask && pp_bbox_u8(w.mask, S, lo, hi)) {
        crop_by = "mask";
    } else if (pp_bbox_u8(nonzero, S, lo, hi)) {
        crop_by = "nonzero";
    } else {
        lo[0] = lo[1] = lo[2] = 0;
        hi[0] = S[0], hi[1] = S[1], hi[2] = S[2];
    }
    int32_t cs[3] = {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
    size_t CN = nvox3(cs);
    w.crop_img = malloc((size_t)C * CN * sizeof *w.crop_img);
    uint8_t *crop_region = malloc(CN);
    if (w.label) w.crop_label = malloc(CN);
    if (w.mask) w.crop_mask = malloc(CN);
    if (!w.crop_img || !crop_region || (w.label && !w.crop_label) || (w.mask && !w.crop_mask)) {
        free(nonzero), free(crop_region);
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto done;
    }
    pp_crop(w.crop_img, w.image, S, C, lo, cs, sizeof(float));
    pp_crop(crop_region, w.mask ? w.mask : nonzero, S, 1, lo, cs, 1);
    if (w.label) pp_crop(w.crop_label, w.label, S, 1, lo, cs, 1);
    if (w.mask) pp_crop(w.crop_mask, w.mask, S, 1, lo, cs, 1);
    free(nonzero);

    /* 3. z-score per channel (double accumulation: volumes reach 1e7 voxels) */
    double *mean = calloc((size_t)C, sizeof *mean), *sd = calloc((size_t)C, sizeof *sd);
    if (!mean || !sd) {
        free(mean), free(sd), free(crop_region);
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int32_t c = 0; c < C; c++) {
        float *x = w.crop_img + (size_t)c * CN;
        double s1 = 0, s2 = 0;
        size_t n = 0;
        for (size_t i = 0; i < CN; i++) {
            if (o->mask_norm && !crop_region[i]) continue;
            s1 += x[i];
            n++;
        }
        double m = n ? s1 / (double)n : 0.0;
        for (size_t i = 0; i < CN; i++) {
            if (o->mask_norm && !crop_region[i]) continue;
            double dlt = x[i] - m;
            s2 += dlt * dlt;
        }
        double v = n ? sqrt(s2 / (double)n) : 0.0;
        mean[c] = m, sd[c] = v;
        const float fm = (float)m, inv = (float)(1.0 / (v > 1e-8 ? v : 1e-8));
        if (o->mask_norm) {
            for (size_t i = 0; i < CN; i++) x[i] = crop_region[i] ? (x[i] - fm) * inv : 0.0f;
        } else {
            for (size_t i = 0; i < CN; i++) x[i] = (x[i] - fm) * inv;
        }
    }
    free(crop_region);

    /* 4. resample */
    double sp[3] = {ref->spacing[0], ref->spacing[1], ref->spacing[2]};
    bool keep = o->spacing[0] <= 0 && o->spacing[1] <= 0 && o->spacing[2] <= 0;
    int32_t os[3];
    for (int a = 0; a < 3; a++) {
        if (keep) {
            os[a] = cs[a];
            spacing_out[a] = sp[a];
        } else {
            double n = round((double)cs[a] * sp[a] / o->spacing[a]);
            os[a] = n < 1 ? 1 : n > (1 << 20) ? (1 << 20) : (int32_t)n;
            spacing_out[a] = o->spacing[a];
        }
    }
    size_t ON = nvox3(os);
    if (os[0] == cs[0] && os[1] == cs[1] && os[2] == cs[2]) {
        w.out_img = w.crop_img, w.out_label = w.crop_label, w.out_mask = w.crop_mask;
    } else {
        w.out_img = malloc((size_t)C * ON * sizeof *w.out_img);
        if (w.crop_label) w.out_label = malloc(ON);
        if (w.crop_mask) w.out_mask = malloc(ON);
        if (!w.out_img || (w.crop_label && !w.out_label) || (w.crop_mask && !w.out_mask)) {
            free(mean), free(sd);
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory resampling to [%d, %d, %d]", (int)os[0], (int)os[1], (int)os[2]);
            goto done;
        }
        st = pp_resample_f32(w.out_img, os, w.crop_img, cs, C);
        if (st == AX_OK && w.crop_label) st = pp_resample_u8(w.out_label, os, w.crop_label, cs);
        if (st == AX_OK && w.crop_mask) st = pp_resample_u8(w.out_mask, os, w.crop_mask, cs);
        if (st != AX_OK) {
            free(mean), free(sd);
            ax_error_prefix("%s: resampling", dc->name);
            goto done;
        }
    }

    /* 5. foreground and classes */
    const uint8_t *sel = w.out_label ? w.out_label : w.out_mask;
    int64_t n_fg = 0;
    bool present[256] = {false};
    if (sel) {
        int64_t n_sel = 0;
        for (size_t i = 0; i < ON; i++) {
            if (w.out_label) present[w.out_label[i]] = true;
            n_sel += sel[i] != 0;
        }
        int64_t max = o->max_fg < n_sel ? o->max_fg : n_sel;
        if (max > 0) {
            if (!(w.fg = malloc((size_t)max * 3 * sizeof *w.fg))) {
                free(mean), free(sd);
                st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
                goto done;
            }
            uint64_t seed = pp_fnv(PP_FNV_INIT, dc->name, strlen(dc->name));
            n_fg = pp_foreground(w.fg, max, sel, os, n_sel, seed);
        }
    }

    /* 6. metadata and file */
    meta = json_object();
    json_object_set_new(meta, "name", json_string(dc->name));
    json_object_set_new(meta, "subject", pp_json_str_or_null(dc->subject));
    json_t *imgs = json_array();
    for (int32_t i = 0; i < dc->n_images; i++) json_array_append_new(imgs, json_string(dc->images[i]));
    json_object_set_new(meta, "images", imgs);
    json_object_set_new(meta, "label", pp_json_str_or_null(dc->label));
    json_object_set_new(meta, "mask", pp_json_str_or_null(dc->mask));
    json_object_set_new(meta, "modality", pp_json_str_or_null(dc->modality));
    json_object_set_new(meta, "quality", isnan(dc->quality) ? json_null() : json_real(dc->quality));
    json_object_set_new(meta, "spacing", pp_json_vec(spacing_out, 3));
    json_object_set_new(meta, "shape", pp_json_ivec(os, 3));
    json_object_set_new(meta, "original_spacing", pp_json_vec(sp, 3));
    json_object_set_new(meta, "original_shape", pp_json_ivec(S, 3));
    json_object_set_new(meta, "affine", pp_json_affine(ref->affine));
    json_object_set_new(meta, "shape_after_crop", pp_json_ivec(cs, 3));
    json_t *box = json_array();
    for (int a = 0; a < 3; a++) {
        int32_t b[2] = {lo[a], hi[a]};
        json_array_append_new(box, pp_json_ivec(b, 2));
    }
    json_object_set_new(meta, "crop_box", box);
    json_object_set_new(meta, "crop_by", json_string(crop_by));
    json_object_set_new(meta, "source", pp_json_source(&ref->source));
    json_t *norm = json_array();
    for (int32_t c = 0; c < C; c++) {
        json_t *e = json_object();
        json_object_set_new(e, "mean", json_real(mean[c]));
        json_object_set_new(e, "std", json_real(sd[c]));
        json_array_append_new(norm, e);
    }
    free(mean), free(sd);
    json_object_set_new(meta, "norm", norm);
    json_object_set_new(meta, "mask_norm", json_boolean(o->mask_norm));
    json_t *classes = json_array();
    for (int k = 1; k < 256; k++)
        if (present[k]) json_array_append_new(classes, json_integer(k));
    json_object_set_new(meta, "classes", classes);
    json_object_set_new(meta, "fg_of", json_string(w.out_label ? "label" : w.out_mask ? "mask" : "none"));
    json_object_set_new(meta, "params_hash", json_string(hash));
    json = json_dumps(meta, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!json) {
        st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory serialising the metadata", dc->name);
        goto done;
    }
    ax_case_desc desc = {.image = w.out_img,
                         .label = w.out_label,
                         .mask = w.out_mask,
                         .fg = w.fg,
                         .n_fg = n_fg,
                         .channels = C,
                         .shape = {os[0], os[1], os[2]},
                         .spacing = {spacing_out[0], spacing_out[1], spacing_out[2]},
                         .json = json};
    st = ax_case_write(path, &desc);
done:
    free(json);
    json_decref(meta);
    pp_work_free(&w);
    return st;
}
