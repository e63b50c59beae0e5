/* dataset.c — the dataset object, its accessors and the by-subject split
 * (axon/dataset.h). The layouts live in dataset_nifti_dir.c,
 * dataset_nnunet.c and dataset_openmind.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "axon/rng.h"
#include "dataset_internal.h"

ax_dataset_opts ax_dataset_opts_default(void) {
    ax_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.include_test = true;
    o.max_quality = NAN;
    return o;
}

ax_split_opts ax_split_opts_default(void) {
    return (ax_split_opts){.fraction = 0.01, .min_val = 5, .max_val = 1000, .seed = 12345};
}

const char *ax_split_name(int split) {
    switch (split) {
    case AX_SPLIT_TRAIN: return "train";
    case AX_SPLIT_VAL: return "val";
    case AX_SPLIT_TEST: return "test";
    default: return NULL;
    }
}

/* ---- helpers shared by the layouts --------------------------------------- */

char *ds_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        AX_ERROR(AX_ERR_NOMEM, "out of memory formatting a string");
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *ds_join(const char *a, const char *b) {
    size_t n = strlen(a);
    if (n && a[n - 1] == '/') return ds_printf("%s%s", a, b);
    return ds_printf("%s/%s", a, b);
}

bool ds_is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

bool ds_is_dir(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

size_t ds_nifti_suffix(const char *name) {
    size_t n = strlen(name);
    if (n > 7 && strcmp(name + n - 7, ".nii.gz") == 0) return 7;
    if (n > 4 && strcmp(name + n - 4, ".nii") == 0) return 4;
    return 0;
}

char *ds_bids_subject(const char *rel) {
    const char *p = rel;
    while (p && *p) {
        if (strncmp(p, "sub-", 4) == 0) {
            size_t k = strcspn(p, "/_.");
            char *s = malloc(k + 1);
            if (!s) return NULL;
            memcpy(s, p, k);
            s[k] = '\0';
            return s;
        }
        p = strchr(p, '/');
        if (p) p++;
    }
    return NULL;
}

ds_case *ds_case_add(ax_dataset *ds) {
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? 2 * ds->cap : 64;
        ds_case *c = realloc(ds->cases, cap * sizeof *c);
        if (!c) {
            AX_ERROR(AX_ERR_NOMEM, "%s: out of memory listing cases", ds->root);
            return NULL;
        }
        ds->cases = c, ds->cap = cap;
    }
    ds_case *c = &ds->cases[ds->n++];
    memset(c, 0, sizeof *c);
    c->quality = NAN;
    return c;
}

ax_status ds_case_add_image(ds_case *c, const char *path) {
    char **v = realloc(c->images, ((size_t)c->n_images + 1) * sizeof *v);
    if (!v) return AX_ERROR(AX_ERR_NOMEM, "out of memory listing images");
    c->images = v;
    if (!(v[c->n_images] = strdup(path))) return AX_ERROR(AX_ERR_NOMEM, "out of memory listing images");
    c->n_images++;
    return AX_OK;
}

/* ---- the object ------------------------------------------------------------ */

static void ds_case_clear(ds_case *c) {
    free(c->name);
    free(c->subject);
    free(c->label);
    free(c->mask);
    free(c->deface_mask);
    free(c->modality);
    for (int32_t i = 0; i < c->n_images; i++) free(c->images[i]);
    free(c->images);
}

void ax_dataset_free(ax_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) ds_case_clear(&ds->cases[i]);
    free(ds->cases);
    free(ds->views);
    for (int32_t i = 0; i < ds->channels && ds->channel_names; i++) free(ds->channel_names[i]);
    free(ds->channel_names);
    for (size_t i = 0; i < ds->n_labels; i++) free(ds->label_names[i]);
    free(ds->label_names);
    free(ds->label_ids);
    free(ds->format);
    free(ds->root);
    free(ds);
}

static int ds_cmp_name(const void *a, const void *b) {
    const ds_case *x = *(const ds_case *const *)a, *y = *(const ds_case *const *)b;
    return strcmp(x->name, y->name);
}

/* Names become file names: refuse separators and duplicates. */
static ax_status ds_finish(ax_dataset *ds) {
    if (ds->n == 0) return AX_ERROR(AX_ERR_NOT_FOUND, "%s: %s: no cases found", ds->format, ds->root);
    ds_case **sorted = malloc(ds->n * sizeof *sorted);
    ds->views = calloc(ds->n, sizeof *ds->views);
    if (!sorted || !ds->views) {
        free(sorted);
        return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", ds->root);
    }
    ax_status st = AX_OK;
    for (size_t i = 0; i < ds->n; i++) {
        ds_case *c = &ds->cases[i];
        sorted[i] = c;
        if (!c->name[0] || strchr(c->name, '/') || strcmp(c->name, ".") == 0 || strcmp(c->name, "..") == 0) {
            st = AX_ERROR(AX_ERR_FORMAT, "%s: %s: case name '%s' cannot be a file name", ds->format,
                          c->images[0], c->name);
            break;
        }
        if (!c->subject && !(c->subject = strdup(c->name))) {
            st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", ds->root);
            break;
        }
        ds->views[i] = (ax_dataset_case){.name = c->name,
                                          .subject = c->subject,
                                          .images = (const char *const *)c->images,
                                          .n_images = c->n_images,
                                          .label = c->label,
                                          .mask = c->mask,
                                          .deface_mask = c->deface_mask,
                                          .modality = c->modality,
                                          .quality = c->quality,
                                          .test = c->test};
    }
    if (st == AX_OK) {
        qsort(sorted, ds->n, sizeof *sorted, ds_cmp_name);
        for (size_t i = 1; i < ds->n; i++)
            if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
                st = AX_ERROR(AX_ERR_FORMAT, "%s: two cases are named '%s': %s and %s", ds->format, sorted[i]->name,
                              sorted[i - 1]->images[0], sorted[i]->images[0]);
                break;
            }
    }
    free(sorted);
    return st;
}

ax_status ax_dataset_open(ax_dataset **out, const ax_dataset_opts *o) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_dataset_open: out is NULL");
    *out = NULL;
    if (!o || !o->format || !o->root || !*o->root)
        return AX_ERROR(AX_ERR_INVALID, "ax_dataset_open: format and root are required");
    ax_status (*open_fn)(ax_dataset *, const ax_dataset_opts *) = NULL;
    if (strcmp(o->format, "nifti-dir") == 0)
        open_fn = ds_open_nifti_dir;
    else if (strcmp(o->format, "nnunet") == 0)
        open_fn = ds_open_nnunet;
    else if (strcmp(o->format, "openmind") == 0)
        open_fn = ds_open_openmind;
    else
        return AX_ERROR(AX_ERR_INVALID, "unknown dataset format '%s' (nifti-dir, nnunet, openmind)", o->format);
    if (!ds_is_dir(o->root)) return AX_ERROR(AX_ERR_NOT_FOUND, "%s: %s: not a folder", o->format, o->root);

    ax_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->format = strdup(o->format)) || !(ds->root = strdup(o->root))) {
        ax_dataset_free(ds);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory opening %s", o->root);
    }
    ds->channels = 1;
    ax_status st = open_fn(ds, o);
    if (st == AX_OK && !ds->channel_names) {
        ds->channel_names = calloc((size_t)ds->channels, sizeof *ds->channel_names);
        if (!ds->channel_names) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; st == AX_OK && i < ds->channels; i++)
            if (!(ds->channel_names[i] = ds_printf("%d", (int)i))) st = AX_ERR_NOMEM;
    }
    if (st == AX_OK) st = ds_finish(ds);
    if (st != AX_OK) {
        ax_dataset_free(ds);
        return st;
    }
    *out = ds;
    return AX_OK;
}

size_t ax_dataset_size(const ax_dataset *ds) { return ds ? ds->n : 0; }

const ax_dataset_case *ax_dataset_case_at(const ax_dataset *ds, size_t i) {
    return ds && i < ds->n ? &ds->views[i] : NULL;
}

const char *ax_dataset_format(const ax_dataset *ds) { return ds ? ds->format : NULL; }
const char *ax_dataset_root(const ax_dataset *ds) { return ds ? ds->root : NULL; }
int32_t ax_dataset_channels(const ax_dataset *ds) { return ds ? ds->channels : 0; }

const char *ax_dataset_channel_name(const ax_dataset *ds, int32_t i) {
    return ds && i >= 0 && i < ds->channels ? ds->channel_names[i] : NULL;
}

size_t ax_dataset_n_labels(const ax_dataset *ds) { return ds ? ds->n_labels : 0; }

const char *ax_dataset_label_name(const ax_dataset *ds, size_t i) {
    return ds && i < ds->n_labels ? ds->label_names[i] : NULL;
}

int32_t ax_dataset_label_id(const ax_dataset *ds, size_t i) {
    return ds && i < ds->n_labels ? ds->label_ids[i] : -1;
}

/* ---- split ----------------------------------------------------------------- */

static int ds_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

ax_status ax_dataset_split(const ax_dataset *ds, const ax_split_opts *opts, uint8_t *split) {
    return ds_split_subset(ds, opts, NULL, split);
}

ax_status ds_split_subset(const ax_dataset *ds, const ax_split_opts *opts, const uint8_t *include, uint8_t *split) {
    if (!ds || !split) return AX_ERROR(AX_ERR_INVALID, "ax_dataset_split: dataset and split are required");
    ax_split_opts o = opts ? *opts : ax_split_opts_default();
    if (!(o.fraction >= 0 && o.fraction <= 1))
        return AX_ERROR(AX_ERR_INVALID, "split: fraction = %g is out of range [0, 1]", o.fraction);
    if (o.min_val < 0 || o.max_val < 0 || o.min_val > o.max_val)
        return AX_ERROR(AX_ERR_INVALID, "split: need 0 <= min (%lld) <= max (%lld)", (long long)o.min_val,
                        (long long)o.max_val);

    const char **subj = malloc((ds->n + 1) * sizeof *subj);
    if (!subj) return AX_ERROR(AX_ERR_NOMEM, "split: out of memory");
    size_t ns = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (!ds->cases[i].test && (!include || include[i])) subj[ns++] = ds->cases[i].subject;
    qsort(subj, ns, sizeof *subj, ds_cmp_str);
    size_t nu = 0;
    for (size_t i = 0; i < ns; i++)
        if (nu == 0 || strcmp(subj[nu - 1], subj[i]) != 0) subj[nu++] = subj[i];

    int64_t n_val = (int64_t)llround(o.fraction * (double)nu);
    if (n_val < o.min_val) n_val = o.min_val < (int64_t)nu / 2 ? o.min_val : (int64_t)nu / 2;
    if (n_val > o.max_val) n_val = o.max_val;
    if (n_val > (int64_t)nu - 1) n_val = nu >= 1 ? (int64_t)nu - 1 : 0;

    /* Fisher-Yates over the sorted names: a pure function of names and seed. */
    size_t *perm = malloc((nu + 1) * sizeof *perm);
    uint8_t *is_val = calloc(nu + 1, 1);
    if (!perm || !is_val) {
        free(subj), free(perm), free(is_val);
        return AX_ERROR(AX_ERR_NOMEM, "split: out of memory");
    }
    for (size_t i = 0; i < nu; i++) perm[i] = i;
    ax_rng r;
    ax_rng_init(&r, o.seed, 0);
    for (size_t i = nu; i > 1; i--) {
        size_t j = ax_rng_below(&r, (uint32_t)i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (int64_t k = 0; k < n_val; k++) is_val[perm[k]] = 1;

    for (size_t i = 0; i < ds->n; i++) {
        const ds_case *c = &ds->cases[i];
        if (c->test) {
            split[i] = AX_SPLIT_TEST;
            continue;
        }
        if (include && !include[i]) {
            split[i] = AX_SPLIT_TRAIN;
            continue;
        }
        const char **hit = bsearch(&c->subject, subj, nu, sizeof *subj, ds_cmp_str);
        split[i] = hit && is_val[hit - subj] ? AX_SPLIT_VAL : AX_SPLIT_TRAIN;
    }
    free(subj), free(perm), free(is_val);
    return AX_OK;
}
