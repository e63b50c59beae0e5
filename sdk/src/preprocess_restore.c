/* preprocess_restore.c — a label map in a case's cache grid back to its
 * input's grid (ax_case_restore_labels, axon/preprocess.h): the inverse
 * of crop + resample, driven by the case metadata. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "preprocess_internal.h"

static bool rs_ivec(json_t *a, int32_t *out, int n) {
    if (!json_is_array(a) || (int)json_array_size(a) != n) return false;
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) return false;
        out[i] = (int32_t)json_integer_value(v);
    }
    return true;
}

static bool rs_dvec(json_t *a, double *out, int n) {
    if (!json_is_array(a) || (int)json_array_size(a) != n) return false;
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_number(v)) return false;
        out[i] = json_number_value(v);
    }
    return true;
}

static bool rs_affine(json_t *a, double m[4][4]) {
    if (!json_is_array(a) || json_array_size(a) != 4) return false;
    for (int r = 0; r < 4; r++)
        if (!rs_dvec(json_array_get(a, (size_t)r), m[r], 4)) return false;
    return true;
}

static bool rs_int(json_t *o, const char *key, int32_t *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) return false;
    *out = (int32_t)json_integer_value(v);
    return true;
}

static bool rs_source(json_t *s, ax_volume_source *src) {
    if (!json_is_object(s)) return false;
    int32_t dim[3];
    if (!rs_ivec(json_object_get(s, "dim"), dim, 3)) return false;
    for (int a = 0; a < 3; a++) src->dim[a] = dim[a];
    if (!rs_affine(json_object_get(s, "affine"), src->affine)) return false;
    if (!rs_ivec(json_object_get(s, "perm"), src->perm, 3) || !rs_ivec(json_object_get(s, "flip"), src->flip, 3))
        return false;
    if (!rs_int(s, "datatype", &src->datatype) || !rs_int(s, "nifti_version", &src->nifti_version) ||
        !rs_int(s, "sform_code", &src->sform_code) || !rs_int(s, "qform_code", &src->qform_code))
        return false;
    json_t *o = json_object_get(s, "orientation"), *r = json_object_get(s, "reoriented");
    if (!json_is_string(o) || strlen(json_string_value(o)) > 3 || !json_is_boolean(r)) return false;
    memset(src->orientation, 0, sizeof src->orientation);
    memcpy(src->orientation, json_string_value(o), strlen(json_string_value(o)));
    src->reoriented = json_is_true(r);
    return true;
}

ax_status ax_case_restore_labels(ax_volume **out, const uint8_t *labels, const int32_t shape[3], const char *meta_json) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_case_restore_labels: out is NULL");
    *out = NULL;
    if (!labels || !shape || !meta_json)
        return AX_ERROR(AX_ERR_INVALID, "ax_case_restore_labels: labels, shape and metadata are required");
    json_error_t je;
    json_t *m = json_loads(meta_json, 0, &je);
    if (!json_is_object(m)) {
        json_decref(m);
        return AX_ERROR(AX_ERR_FORMAT, "ax_case_restore_labels: metadata is not a JSON object: %s", je.text);
    }
    char name[256];
    const char *jn = json_string_value(json_object_get(m, "name"));
    snprintf(name, sizeof name, "%s", jn ? jn : "(unnamed case)");
    int32_t cur[3], full[3], cs[3], box[3][2];
    double sp[3], aff[4][4];
    ax_volume_source src;
    memset(&src, 0, sizeof src);
    ax_status st = AX_OK;
    const char *bad = NULL;
    json_t *jb = json_object_get(m, "crop_box");
    if (!rs_ivec(json_object_get(m, "shape"), cur, 3)) bad = "shape";
    else if (!rs_ivec(json_object_get(m, "original_shape"), full, 3)) bad = "original_shape";
    else if (!rs_ivec(json_object_get(m, "shape_after_crop"), cs, 3)) bad = "shape_after_crop";
    else if (!rs_dvec(json_object_get(m, "original_spacing"), sp, 3)) bad = "original_spacing";
    else if (!rs_affine(json_object_get(m, "affine"), aff)) bad = "affine";
    else if (!rs_source(json_object_get(m, "source"), &src)) bad = "source";
    else if (!json_is_array(jb) || json_array_size(jb) != 3) bad = "crop_box";
    for (int a = 0; !bad && a < 3; a++) {
        if (!rs_ivec(json_array_get(jb, (size_t)a), box[a], 2) || box[a][0] < 0 || box[a][1] > full[a] ||
            box[a][1] - box[a][0] != cs[a] || cs[a] <= 0 || cur[a] <= 0)
            bad = "crop_box";
    }
    json_decref(m);
    if (bad) return AX_ERROR(AX_ERR_FORMAT, "ax_case_restore_labels: %s: metadata key '%s' is missing or inconsistent", name, bad);
    for (int a = 0; a < 3; a++)
        if (shape[a] != cur[a])
            return AX_ERROR(AX_ERR_INVALID, "ax_case_restore_labels: %s: labels are [%d, %d, %d], the case is [%d, %d, %d]",
                            name, (int)shape[0], (int)shape[1], (int)shape[2], (int)cur[0], (int)cur[1], (int)cur[2]);

    size_t cn = (size_t)cs[0] * (size_t)cs[1] * (size_t)cs[2];
    uint8_t *crop = malloc(cn);
    if (!crop) return AX_ERROR(AX_ERR_NOMEM, "ax_case_restore_labels: %s: out of memory", name);
    st = pp_resample_u8(crop, cs, labels, cur);
    ax_volume *v = NULL;
    if (st == AX_OK) st = ax_volume_new(&v, 1, full, sp);
    if (st != AX_OK) {
        free(crop);
        return st;
    }
    const uint8_t *p = crop;
    for (int32_t d = 0; d < cs[0]; d++)
        for (int32_t h = 0; h < cs[1]; h++) {
            float *row = v->data + ((size_t)(d + box[0][0]) * (size_t)full[1] + (size_t)(h + box[1][0])) * (size_t)full[2] +
                         (size_t)box[2][0];
            for (int32_t w = 0; w < cs[2]; w++) row[w] = (float)p[w];
            p += cs[2];
        }
    free(crop);
    memcpy(v->affine, aff, sizeof aff);
    v->source = src;
    *out = v;
    return AX_OK;
}
