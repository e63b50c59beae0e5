/* dataset_nnunet.c — "nnunet": the nnU-Net v2 raw layout.
 *
 * dataset.json gives channel_names {"0": "T1", ...} (v1's "modality" is
 * accepted too), labels {"background": 0, ...}, numTraining and
 * file_ending. Cases are found from the image file names
 * <case>_<XXXX><file_ending>; every case needs every channel, and training
 * cases a label file labelsTr/<case><file_ending>. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dataset_internal.h"

typedef struct nn_entry {
    char *id;
    int channel;
} nn_entry;

static int nn_cmp(const void *a, const void *b) {
    const nn_entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->channel > y->channel) - (x->channel < y->channel);
}

static ax_status nn_parse_json(ax_dataset *ds, const char *jpath, char **ending, int64_t *num_training) {
    json_error_t je;
    json_t *j = json_load_file(jpath, 0, &je);
    if (!j) {
        if (!ds_is_file(jpath)) return AX_ERROR(AX_ERR_NOT_FOUND, "nnunet: %s: no such file", jpath);
        return AX_ERROR(AX_ERR_FORMAT, "nnunet: %s:%d:%d: bad JSON: %s", jpath, je.line, je.column, je.text);
    }
    ax_status st = AX_OK;
    if (!json_is_object(j)) {
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: not a JSON object", jpath);
        goto done;
    }
    const char *ckey = "channel_names";
    json_t *ch = json_object_get(j, ckey);
    if (!ch) ch = json_object_get(j, ckey = "modality");
    if (!json_is_object(ch) || json_object_size(ch) == 0) {
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: key 'channel_names' is missing or not a non-empty object", jpath);
        goto done;
    }
    size_t nch = json_object_size(ch);
    if (nch > 9999) {
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: '%s' has %zu channels", jpath, ckey, nch);
        goto done;
    }
    ds->channels = (int32_t)nch;
    ds->channel_names = calloc(nch, sizeof *ds->channel_names);
    if (!ds->channel_names) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(ch, key, v) {
        char *endp;
        long k = strtol(key, &endp, 10);
        if (!*key || *endp || k < 0 || k >= (long)nch || ds->channel_names[k]) {
            st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: '%s' key \"%s\": channels must be numbered 0..%zu", jpath, ckey,
                          key, nch - 1);
            goto done;
        }
        if (!json_is_string(v)) {
            st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: '%s'.\"%s\" is not a string", jpath, ckey, key);
            goto done;
        }
        if (!(ds->channel_names[k] = strdup(json_string_value(v)))) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            goto done;
        }
    }

    json_t *labels = json_object_get(j, "labels");
    if (!json_is_object(labels) || json_object_size(labels) == 0) {
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: key 'labels' is missing or not a non-empty object", jpath);
        goto done;
    }
    size_t nl = json_object_size(labels);
    ds->label_names = calloc(nl, sizeof *ds->label_names);
    ds->label_ids = calloc(nl, sizeof *ds->label_ids);
    if (!ds->label_names || !ds->label_ids) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto done;
    }
    bool has_bg = false;
    json_object_foreach(labels, key, v) {
        if (json_is_array(v)) {
            st = AX_ERROR(AX_ERR_UNSUPPORTED, "nnunet: %s: 'labels'.\"%s\": region-based labels are not supported",
                          jpath, key);
            goto done;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255) {
            st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: 'labels'.\"%s\" must be an integer in [0, 255]", jpath, key);
            goto done;
        }
        int32_t id = (int32_t)json_integer_value(v);
        for (size_t k = 0; k < ds->n_labels; k++)
            if (ds->label_ids[k] == id) {
                st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: 'labels': \"%s\" and \"%s\" share id %d", jpath,
                              ds->label_names[k], key, (int)id);
                goto done;
            }
        if (id == 0) has_bg = true;
        if (!(ds->label_names[ds->n_labels] = strdup(key))) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            goto done;
        }
        ds->label_ids[ds->n_labels++] = id;
    }
    if (!has_bg) {
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: 'labels' has no background (a class with id 0)", jpath);
        goto done;
    }

    json_t *nt = json_object_get(j, "numTraining");
    if (!json_is_integer(nt) || json_integer_value(nt) < 0) {
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: key 'numTraining' is missing or not a non-negative integer", jpath);
        goto done;
    }
    *num_training = json_integer_value(nt);

    json_t *fe = json_object_get(j, "file_ending");
    if (!json_is_string(fe)) {
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: key 'file_ending' is missing or not a string", jpath);
        goto done;
    }
    const char *e = json_string_value(fe);
    if (strcmp(e, ".nii.gz") != 0 && strcmp(e, ".nii") != 0) {
        st = AX_ERROR(AX_ERR_UNSUPPORTED, "nnunet: %s: 'file_ending' \"%s\": only .nii.gz and .nii are supported",
                      jpath, e);
        goto done;
    }
    if (!(*ending = strdup(e))) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
done:
    json_decref(j);
    return st;
}

/* Entries <id>_<XXXX><ending> of `dir`, sorted by id then channel. Files
 * with another ending are ignored (nnU-Net does the same); a file with
 * the ending but no _XXXX channel suffix is an error. */
static ax_status nn_scan(const char *dir, const char *ending, nn_entry **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return AX_ERROR(errno == ENOENT ? AX_ERR_NOT_FOUND : AX_ERR_IO, "nnunet: %s: %s", dir, strerror(errno));
    nn_entry *v = NULL;
    size_t n = 0, cap = 0;
    ax_status st = AX_OK;
    size_t el = strlen(ending);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *f = e->d_name;
        size_t fl = strlen(f);
        if (f[0] == '.' || fl <= el || strcmp(f + fl - el, ending) != 0) continue;
        size_t stem = fl - el;
        bool ok = stem >= 6 && f[stem - 5] == '_';
        for (size_t k = stem - 4; ok && k < stem; k++) ok = isdigit((unsigned char)f[k]);
        if (!ok) {
            st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s/%s: image name lacks the channel suffix _XXXX (e.g. case_0000%s)",
                          dir, f, ending);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            nn_entry *w = realloc(v, cap * sizeof *w);
            if (!w) {
                st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
                break;
            }
            v = w;
        }
        v[n].channel = atoi(f + stem - 4);
        if (!(v[n].id = strndup(f, stem - 5))) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (st != AX_OK) {
        for (size_t i = 0; i < n; i++) free(v[i].id);
        free(v);
        return st;
    }
    if (n > 1) qsort(v, n, sizeof *v, nn_cmp); /* qsort(NULL, 0) is undefined: an empty imagesTr */
    *out = v;
    *n_out = n;
    return AX_OK;
}

/* Cases of one images folder; labels from `labels_dir` (required when
 * `need_label`). Returns the number of cases in *n_cases. */
static ax_status nn_add_cases(ax_dataset *ds, const char *images_dir, const char *labels_dir, bool need_label,
                              bool test, const char *ending, size_t *n_cases) {
    nn_entry *v;
    size_t n;
    *n_cases = 0;
    ax_status st = nn_scan(images_dir, ending, &v, &n);
    if (st != AX_OK) return st;
    for (size_t i = 0; i < n && st == AX_OK;) {
        size_t j = i;
        while (j < n && strcmp(v[j].id, v[i].id) == 0) j++;
        /* v[i..j) are one case's channels, sorted */
        for (size_t k = i; k < j && st == AX_OK; k++) {
            if (v[k].channel >= ds->channels)
                st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s/%s_%04d%s: channel %d, but dataset.json names %d channel%s",
                              images_dir, v[k].id, v[k].channel, ending, v[k].channel, (int)ds->channels,
                              ds->channels == 1 ? "" : "s");
        }
        for (int c = 0; c < ds->channels && st == AX_OK; c++) {
            bool found = false;
            for (size_t k = i; k < j; k++) found |= v[k].channel == c;
            if (!found)
                st = AX_ERROR(AX_ERR_NOT_FOUND, "nnunet: case '%s': missing channel %d (%s/%s_%04d%s)", v[i].id, c,
                              images_dir, v[i].id, c, ending);
        }
        if (st != AX_OK) break;
        ds_case *c = ds_case_add(ds);
        if (!c) {
            st = ax_error_status();
            break;
        }
        c->test = test;
        if (!(c->name = strdup(v[i].id))) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        for (int ch = 0; ch < ds->channels && st == AX_OK; ch++) {
            char *p = ds_printf("%s/%s_%04d%s", images_dir, v[i].id, ch, ending);
            st = p ? ds_case_add_image(c, p) : AX_ERR_NOMEM;
            free(p);
        }
        if (st == AX_OK && labels_dir) {
            char *lp = ds_printf("%s/%s%s", labels_dir, v[i].id, ending);
            if (!lp) {
                st = AX_ERR_NOMEM;
            } else if (ds_is_file(lp)) {
                c->label = lp;
            } else {
                if (need_label) st = AX_ERROR(AX_ERR_NOT_FOUND, "nnunet: case '%s': missing label file %s", v[i].id, lp);
                free(lp);
            }
        }
        (*n_cases)++;
        i = j;
    }
    for (size_t i = 0; i < n; i++) free(v[i].id);
    free(v);
    return st;
}

ax_status ds_open_nnunet(ax_dataset *ds, const ax_dataset_opts *o) {
    char *jpath = ds_join(o->root, "dataset.json");
    char *itr = ds_join(o->root, "imagesTr"), *ltr = ds_join(o->root, "labelsTr");
    char *its = ds_join(o->root, "imagesTs"), *lts = ds_join(o->root, "labelsTs");
    char *ending = NULL;
    int64_t num_training = 0;
    ax_status st = AX_OK;
    if (!jpath || !itr || !ltr || !its || !lts) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
    if (st == AX_OK) st = nn_parse_json(ds, jpath, &ending, &num_training);
    if (st == AX_OK && !ds_is_dir(itr)) st = AX_ERROR(AX_ERR_NOT_FOUND, "nnunet: %s: no such folder", itr);
    if (st == AX_OK && !ds_is_dir(ltr)) st = AX_ERROR(AX_ERR_NOT_FOUND, "nnunet: %s: no such folder", ltr);
    size_t n_tr = 0, n_ts = 0;
    if (st == AX_OK) st = nn_add_cases(ds, itr, ltr, true, false, ending, &n_tr);
    if (st == AX_OK && (int64_t)n_tr != num_training)
        st = AX_ERROR(AX_ERR_FORMAT, "nnunet: %s: numTraining is %lld but %s has %zu cases", jpath,
                      (long long)num_training, itr, n_tr);
    if (st == AX_OK && o->include_test && ds_is_dir(its))
        st = nn_add_cases(ds, its, ds_is_dir(lts) ? lts : NULL, false, true, ending, &n_ts);
    free(jpath), free(itr), free(ltr), free(its), free(lts), free(ending);
    return st;
}
