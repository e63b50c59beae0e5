/* dataset_openmind.c — "openmind": OpenMind/<ds>/sub-XX/[ses-YY/]anat/<stem>.nii.gz
 * listed in openneuro_metadata.csv, with <stem>__Data/{fb_mask,deface_mask}.nii.gz. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "dataset_internal.h"

static const char *const om_required[] = {"image_path", "anon_mask_path", "anat_mask_path", "modality",
                                          "image_quality_score"};

/* A CSV path: absolute, or relative to root, or to root/OpenMind. Returns
 * a new string (the first candidate that exists, else root/p). */
static char *om_resolve(const char *root, const char *p) {
    if (p[0] == '/') return strdup(p);
    char *a = ds_join(root, p);
    if (!a || ds_is_file(a)) return a;
    char *om = ds_join(root, "OpenMind");
    char *b = om ? ds_join(om, p) : NULL;
    free(om);
    if (b && ds_is_file(b)) {
        free(a);
        return b;
    }
    free(b);
    return a;
}

static bool om_in(const char *s, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (list[i] && strcmp(s, list[i]) == 0) return true;
    return false;
}

/* "<stem>__Data/<file>" beside `image` if it exists (new string), else NULL. */
static char *om_default_mask(const char *image, const char *file) {
    size_t n = strlen(image) - ds_nifti_suffix(image);
    char *p = ds_printf("%.*s__Data/%s", (int)n, image, file);
    if (p && !ds_is_file(p)) {
        free(p);
        p = NULL;
    }
    return p;
}

/* The path component "ds<digits>" (new string) or NULL. */
static char *om_dataset_id(const char *path) {
    const char *p = path;
    while (p && *p) {
        if (p[0] == 'd' && p[1] == 's' && p[2] >= '0' && p[2] <= '9') {
            size_t k = strcspn(p, "/");
            bool digits = true;
            for (size_t i = 2; i < k; i++) digits &= p[i] >= '0' && p[i] <= '9';
            if (digits) return strndup(p, k);
        }
        p = strchr(p, '/');
        if (p) p++;
    }
    return NULL;
}

/* A listed mask: resolved path, or an error naming the CSV line. */
static ax_status om_mask(const ax_csv *csv, size_t row, const char *root, const char *cell, const char *image,
                         const char *default_file, const char *column, char **out, bool *missing) {
    *out = NULL;
    if (!*cell) {
        *out = om_default_mask(image, default_file);
        return AX_OK;
    }
    char *p = om_resolve(root, cell);
    if (!p) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    if (!ds_is_file(p)) {
        *missing = true;
        ax_status st = AX_ERROR(AX_ERR_NOT_FOUND, "openmind: %s:%zu: %s '%s': no such file (%s)", csv->path,
                                csv->lines[row], column, cell, p);
        free(p);
        return st;
    }
    *out = p;
    return AX_OK;
}

ax_status ds_open_openmind(ax_dataset *ds, const ax_dataset_opts *o) {
    char *csv_path = o->csv && *o->csv ? strdup(o->csv) : ds_join(o->root, "openneuro_metadata.csv");
    if (!csv_path) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    ax_csv *csv = NULL;
    ax_status st = ax_csv_read(&csv, csv_path);
    if (st != AX_OK) {
        ax_error_prefix("openmind");
        free(csv_path);
        return st;
    }
    free(csv_path);
    st = ax_csv_require(csv, om_required, sizeof om_required / sizeof om_required[0]);
    if (st != AX_OK) {
        ax_error_prefix("openmind");
        ax_csv_free(csv);
        return st;
    }
    int c_img = ax_csv_column(csv, "image_path"), c_anon = ax_csv_column(csv, "anon_mask_path");
    int c_anat = ax_csv_column(csv, "anat_mask_path"), c_mod = ax_csv_column(csv, "modality");
    int c_q = ax_csv_column(csv, "image_quality_score");
    bool filter_q = !isnan(o->max_quality);
    size_t n_missing = 0, n_filtered = 0;

    for (size_t r = 0; r < csv->n_rows && st == AX_OK; r++) {
        const char *img = ax_csv_cell(csv, r, c_img), *mod = ax_csv_cell(csv, r, c_mod);
        const char *qs = ax_csv_cell(csv, r, c_q);
        if (!*img) {
            st = AX_ERROR(AX_ERR_FORMAT, "openmind: %s:%zu: empty image_path", csv->path, csv->lines[r]);
            break;
        }
        double q = NAN;
        if (*qs) {
            char *end;
            errno = 0;
            q = strtod(qs, &end);
            while (*end == ' ') end++;
            if (end == qs || *end || errno == ERANGE) {
                st = AX_ERROR(AX_ERR_FORMAT, "openmind: %s:%zu: image_quality_score '%s' is not a number", csv->path,
                              csv->lines[r], qs);
                break;
            }
        }
        if ((filter_q && !(q <= o->max_quality)) || (o->n_modalities && !om_in(mod, o->modalities, o->n_modalities)) ||
            om_in(mod, o->exclude_modalities, o->n_exclude_modalities)) {
            n_filtered++;
            continue;
        }
        char *path = om_resolve(o->root, img), *mask = NULL, *deface = NULL;
        if (!path) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            break;
        }
        bool missing = false;
        if (!ds_is_file(path)) {
            missing = true;
            st = AX_ERROR(AX_ERR_NOT_FOUND, "openmind: %s:%zu: image_path '%s': no such file (%s)", csv->path,
                          csv->lines[r], img, path);
        }
        if (st == AX_OK)
            st = om_mask(csv, r, o->root, ax_csv_cell(csv, r, c_anat), path, "fb_mask.nii.gz", "anat_mask_path",
                         &mask, &missing);
        if (st == AX_OK)
            st = om_mask(csv, r, o->root, ax_csv_cell(csv, r, c_anon), path, "deface_mask.nii.gz", "anon_mask_path",
                         &deface, &missing);
        if (st != AX_OK) {
            free(path), free(mask), free(deface);
            if (missing && o->skip_missing) {
                AX_LOG_WARN("%s (skipped)", ax_error_message());
                ax_error_clear();
                st = AX_OK;
                n_missing++;
                continue;
            }
            break;
        }
        ds_case *c = ds_case_add(ds);
        if (!c) {
            free(path), free(mask), free(deface);
            st = ax_error_status();
            break;
        }
        c->mask = mask;
        c->deface_mask = deface;
        c->quality = q;
        st = ds_case_add_image(c, path);
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t stem = strlen(base) - ds_nifti_suffix(base);
        char *dsid = om_dataset_id(img);
        char *sub = ds_bids_subject(img);
        if (st == AX_OK) {
            c->name = dsid ? ds_printf("%s_%.*s", dsid, (int)stem, base) : strndup(base, stem);
            c->subject = dsid && sub ? ds_printf("%s/%s", dsid, sub) : sub ? strdup(sub) : NULL;
            c->modality = strdup(mod);
            if (!c->name || !c->modality) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        }
        free(dsid), free(sub), free(path);
    }
    if (st == AX_OK && ds->n == 0)
        st = AX_ERROR(AX_ERR_NOT_FOUND, "openmind: %s: no image left (%zu rows, %zu filtered out, %zu missing)",
                      csv->path, csv->n_rows, n_filtered, n_missing);
    if (st == AX_OK && n_missing)
        AX_LOG_WARN("openmind: %s: %zu listed images or masks are missing (skipped)", csv->path, n_missing);
    ax_csv_free(csv);
    return st;
}
