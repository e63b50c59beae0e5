/* Prediction with a fine-tuned network and evaluation of label maps (see
 * train_finetune.h). Inputs go through the same preprocessing as the
 * training data (ax_preprocess_run over a temporary nnU-Net raw view of the
 * input folder), so spacing, cropping and normalisation cannot drift. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "train_finetune.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/cache.h"
#include "axon/log.h"
#include "axon/preprocess.h"
#include "axon/safetensors.h"
#include "axon/segment.h"
#include "axon/volume.h"
#include "train_checkpoint.h"
#include "train_setup.h"

ax_predict_opts ax_predict_opts_default(void) {
    ax_predict_opts o;
    memset(&o, 0, sizeof o);
    o.mirror = -1;
    o.progress = 1;
    return o;
}

ax_evaluate_opts ax_evaluate_opts_default(void) {
    ax_evaluate_opts o;
    memset(&o, 0, sizeof o);
    o.classes = 2;
    o.hd95 = true;
    return o;
}

static void ax_strv_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void ax_predict_report_free(ax_predict_report *r) {
    if (!r) return;
    ax_strv_free(r->names, r->n_done);
    ax_strv_free(r->failed_names, r->n_failed);
    ax_strv_free(r->failed_reasons, r->n_failed);
    memset(r, 0, sizeof *r);
}

static ax_status ax_strv_push(char ***v, size_t *n, const char *s) {
    char **w = realloc(*v, (*n + 1) * sizeof *w);
    if (!w) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    *v = w;
    if (!(w[*n] = strdup(s))) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    (*n)++;
    return AX_OK;
}

static ax_status ax_predict_fail(ax_predict_report *r, const char *name, const char *reason) {
    AX_LOG_WARN("predict: %s skipped: %s", name, reason);
    char **w = realloc(r->failed_reasons, (r->n_failed + 1) * sizeof *w);
    if (!w) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    r->failed_reasons = w;
    if (!(w[r->n_failed] = strdup(reason))) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    size_t n = r->n_failed;
    ax_status st = ax_strv_push(&r->failed_names, &n, name);
    if (st != AX_OK) {
        free(w[r->n_failed]);
        return st;
    }
    r->n_failed = n;
    return AX_OK;
}

/* ---- the input folder ---------------------------------------------------------------- */

typedef struct ax_pin {
    char *file; /* entry name */
    char *id;   /* case */
    int channel;
} ax_pin;

static int ax_pin_cmp(const void *a, const void *b) {
    const ax_pin *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->channel > y->channel) - (x->channel < y->channel);
}

static size_t ax_nifti_ending(const char *f) {
    size_t n = strlen(f);
    if (n > 7 && strcmp(f + n - 7, ".nii.gz") == 0) return 7;
    if (n > 4 && strcmp(f + n - 4, ".nii") == 0) return 4;
    return 0;
}

static void ax_pins_free(ax_pin *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i].file), free(v[i].id);
    free(v);
}

/* <case>_<XXXX>.nii[.gz] entries of dir, sorted; checks that every case
 * has channels 0..channels-1 and nothing else, and one file ending. */
static ax_status ax_predict_scan(const char *dir, int64_t channels, ax_pin **out, size_t *n_out, const char **ending) {
    DIR *d = opendir(dir);
    if (!d) return AX_ERROR(errno == ENOENT ? AX_ERR_NOT_FOUND : AX_ERR_IO, "predict: %s: %s", dir, strerror(errno));
    ax_pin *v = NULL;
    size_t n = 0;
    ax_status st = AX_OK;
    struct dirent *e;
    *ending = NULL;
    while ((e = readdir(d)) != NULL && st == AX_OK) {
        const char *f = e->d_name;
        size_t el = ax_nifti_ending(f);
        if (f[0] == '.' || !el) continue;
        const char *end = el == 7 ? ".nii.gz" : ".nii";
        if (*ending && strcmp(*ending, end) != 0) {
            st = AX_ERROR(AX_ERR_FORMAT, "predict: %s/%s: the folder mixes .nii and .nii.gz files; use one", dir, f);
            break;
        }
        *ending = end;
        size_t stem = strlen(f) - el;
        bool ok = stem >= 6 && f[stem - 5] == '_';
        for (size_t k = stem - 4; ok && k < stem; k++)
            ok = isdigit((unsigned char)f[k]);
        if (!ok) {
            st = AX_ERROR(AX_ERR_FORMAT, "predict: %s/%s: image name lacks the channel suffix _XXXX (e.g. case_0000%s)",
                          dir, f, end);
            break;
        }
        ax_pin *w = realloc(v, (n + 1) * sizeof *w);
        if (!w) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            break;
        }
        v = w;
        v[n].channel = atoi(f + stem - 4);
        v[n].file = strdup(f);
        v[n].id = strndup(f, stem - 5);
        n++;
        if (!v[n - 1].file || !v[n - 1].id) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    closedir(d);
    if (st == AX_OK && n == 0) st = AX_ERROR(AX_ERR_NOT_FOUND, "predict: %s: no <case>_0000.nii[.gz] images", dir);
    if (st == AX_OK) qsort(v, n, sizeof *v, ax_pin_cmp);
    for (size_t i = 0; i < n && st == AX_OK;) {
        size_t j = i;
        while (j < n && strcmp(v[j].id, v[i].id) == 0)
            j++;
        int64_t have = (int64_t)(j - i);
        for (size_t k = i; k < j && st == AX_OK; k++)
            if (v[k].channel != (int)(k - i) || v[k].channel >= channels)
                st = AX_ERROR(AX_ERR_FORMAT,
                              "predict: %s/%s: case '%s' has %lld channel file%s (_%04d..), the model takes %lld "
                              "channel%s (_0000.._%04lld): mixed channel counts",
                              dir, v[k].channel >= channels ? v[k].file : v[i].file, v[i].id, (long long)have,
                              have == 1 ? "" : "s", v[i].channel, (long long)channels, channels == 1 ? "" : "s",
                              (long long)channels - 1);
        if (st == AX_OK && have != channels)
            st = AX_ERROR(AX_ERR_FORMAT,
                          "predict: %s/%s: case '%s' has %lld channel file%s, the model takes %lld (_0000.._%04lld): "
                          "mixed channel counts",
                          dir, v[i].file, v[i].id, (long long)have, have == 1 ? "" : "s", (long long)channels,
                          (long long)channels - 1);
        i = j;
    }
    if (st != AX_OK) {
        ax_pins_free(v, n);
        return st;
    }
    *out = v;
    *n_out = n;
    return AX_OK;
}

static int ax_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static void ax_rm_tree(const char *dir) { nftw(dir, ax_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static ax_status ax_mkdir(const char *p) {
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        return AX_ERROR(AX_ERR_IO, "%s: cannot create folder: %s", p, strerror(errno));
    return AX_OK;
}

/* tmp/raw: an nnU-Net raw dataset whose imagesTs links to the inputs. */
static ax_status ax_predict_raw(const char *tmp, const char *input, const ax_pin *v, size_t n, int64_t channels,
                                const char *ending, char *raw, size_t raw_n) {
    char p[AX_TRAIN_PATH_MAX], target[PATH_MAX], src[AX_TRAIN_PATH_MAX];
    if ((size_t)snprintf(raw, raw_n, "%s/raw", tmp) >= raw_n) return AX_ERROR(AX_ERR_INVALID, "path too long: %s", tmp);
    ax_status st = ax_mkdir(raw);
    const char *subs[3] = {"imagesTr", "labelsTr", "imagesTs"};
    for (int i = 0; i < 3 && st == AX_OK; i++) {
        if ((size_t)snprintf(p, sizeof p, "%s/%s", raw, subs[i]) >= sizeof p)
            return AX_ERROR(AX_ERR_INVALID, "path too long: %s", raw);
        st = ax_mkdir(p);
    }
    for (size_t i = 0; i < n && st == AX_OK; i++) {
        if ((size_t)snprintf(src, sizeof src, "%s/%s", input, v[i].file) >= sizeof src)
            return AX_ERROR(AX_ERR_INVALID, "path too long: %s", input);
        if (!realpath(src, target)) {
            st = AX_ERROR(AX_ERR_IO, "predict: %s: %s", src, strerror(errno));
            break;
        }
        if ((size_t)snprintf(p, sizeof p, "%s/imagesTs/%s", raw, v[i].file) >= sizeof p)
            return AX_ERROR(AX_ERR_INVALID, "path too long: %s", raw);
        if (symlink(target, p) != 0) st = AX_ERROR(AX_ERR_IO, "predict: cannot link %s: %s", p, strerror(errno));
    }
    if (st != AX_OK) return st;
    json_t *ch = json_object();
    for (int64_t c = 0; c < channels; c++) {
        char k[24];
        snprintf(k, sizeof k, "%lld", (long long)c);
        json_object_set_new(ch, k, json_string(k));
    }
    json_t *j = json_pack("{s:o,s:{s:i},s:i,s:s}", "channel_names", ch, "labels", "background", 0, "numTraining", 0,
                          "file_ending", ending);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    if (!text) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    if ((size_t)snprintf(p, sizeof p, "%s/dataset.json", raw) >= sizeof p) {
        free(text);
        return AX_ERROR(AX_ERR_INVALID, "path too long: %s", raw);
    }
    st = ax_cache_write_file(p, text, strlen(text));
    free(text);
    return st;
}

/* ---- the model -------------------------------------------------------------------------- */

typedef struct ax_pmodel {
    char ckpt[AX_TRAIN_PATH_MAX];
    ax_module *net;
    ax_instance *arch, *task;
    ax_checkpoint_info info;
    double spacing[3];
    bool mask_norm;
} ax_pmodel;

static void ax_pmodel_clear(ax_pmodel *m) {
    ax_module_free(m->net);
    ax_instance_free(m->arch);
    ax_instance_free(m->task);
    memset(m, 0, sizeof *m);
}

static ax_status ax_pmodel_load(ax_pmodel *m, const ax_predict_opts *o) {
    struct stat sb;
    if (stat(o->model, &sb) != 0) return AX_ERROR(AX_ERR_NOT_FOUND, "predict: model %s: %s", o->model, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        snprintf(m->ckpt, sizeof m->ckpt, "%s/checkpoints/latest.safetensors", o->model);
    else
        snprintf(m->ckpt, sizeof m->ckpt, "%s", o->model);
    ax_safetensors *f;
    ax_status st = ax_safetensors_open(&f, m->ckpt);
    if (st != AX_OK) return st;
    const char *task = ax_safetensors_metadata(f, "task");
    const char *tparams = ax_safetensors_metadata(f, "task_params");
    const char *patch = ax_safetensors_metadata(f, "patch");
    const char *pp = ax_safetensors_metadata(f, "preprocess");
    if (!task || !patch || !pp) {
        st = AX_ERROR(AX_ERR_FORMAT,
                      "%s: no \"task\", \"patch\" and \"preprocess\" metadata: not a fine-tuned checkpoint (axon "
                      "finetune writes them)",
                      m->ckpt);
        ax_safetensors_close(f);
        return st;
    }
    json_t *pj = json_loads(pp, 0, NULL), *patch_j = json_loads(patch, 0, NULL);
    json_t *sp = pj ? json_object_get(pj, "spacing") : NULL;
    for (int i = 0; i < 3 && json_is_array(sp); i++)
        m->spacing[i] = json_number_value(json_array_get(sp, (size_t)i));
    m->mask_norm = pj && json_is_true(json_object_get(pj, "mask_norm"));
    char patch_txt[64] = "";
    if (json_is_array(patch_j) && json_array_size(patch_j) == 3)
        snprintf(patch_txt, sizeof patch_txt, "%lld,%lld,%lld",
                 (long long)json_integer_value(json_array_get(patch_j, 0)),
                 (long long)json_integer_value(json_array_get(patch_j, 1)),
                 (long long)json_integer_value(json_array_get(patch_j, 2)));
    json_decref(pj);
    json_decref(patch_j);
    const ax_registry_item *it = ax_registry_find(o->registry, AX_PLUGIN_TASK, task);
    ax_params *p = NULL;
    if (!it) st = AX_ERROR(AX_ERR_NOT_FOUND, "%s: task plugin '%s' is not on the plugin path", m->ckpt, task);
    if (st == AX_OK) st = ax_checkpoint_params_from_json(&p, it->plugin->params, task, tparams ? tparams : "{}");
    ax_safetensors_close(f);
    /* the sliding window at the training patch unless the task was given one */
    if (st == AX_OK && patch_txt[0] && !ax_params_is_set(p, "patch")) st = ax_params_set_text(p, "patch", patch_txt);
    if (st == AX_OK && o->mirror >= 0) st = ax_params_set_bool(p, "mirror", o->mirror != 0);
    if (st != AX_OK) {
        ax_params_free(p);
        return st;
    }
    if ((st = ax_instance_new(&m->task, it, p)) != AX_OK) return st;
    const ax_task_ops *t = m->task->ops;
    if (!t->predict || !t->decode) return AX_ERROR(AX_ERR_UNSUPPORTED, "task '%s' has no predict()/decode()", task);
    char devname[32];
    const char *device = NULL;
    ax_device dev;
    if ((st = ax_train_device_resolve(o->device, devname, &device)) != AX_OK) return st;
    if ((st = ax_checkpoint_rebuild(o->registry, m->ckpt, &m->net, &m->arch, &m->info)) != AX_OK) return st;
    ax_module_train(m->net, false);
    /* the task's sliding window moves each window to the net's device and its logits back */
    if (ax_device_parse(device, &dev) == AX_OK && dev.type != AX_DEVICE_CPU &&
        (st = ax_module_to_device(m->net, dev)) != AX_OK)
        return ax_error_prefix("device %s", device);
    return AX_OK;
}

/* One preprocessed case -> OUTPUT/<name><ending>. */
static ax_status ax_predict_case(const ax_pmodel *m, const char *case_path, const char *output, const char *ending,
                                 char *name, size_t name_n) {
    ax_case *c = NULL;
    ax_status st = ax_case_open(&c, case_path);
    if (st != AX_OK) return st;
    json_t *meta = json_loads(c->json, 0, NULL);
    snprintf(name, name_n, "%s", meta ? json_string_value(json_object_get(meta, "name")) : "");
    json_decref(meta);
    int64_t xs[5] = {1, c->channels, c->shape[0], c->shape[1], c->shape[2]};
    size_t vox = (size_t)c->shape[0] * (size_t)c->shape[1] * (size_t)c->shape[2];
    ax_tensor *x = NULL, *logits = NULL, *labels = NULL;
    ax_volume *v = NULL;
    const ax_task_ops *t = m->task->ops;
    st = ax_tensor_wrap(&x, 5, xs, AX_DTYPE_F32, (void *)c->image, vox * (size_t)c->channels * sizeof(float), NULL,
                        NULL);
    if (st == AX_OK) st = t->predict(m->task->self, m->net, x, &logits);
    if (st == AX_OK) st = t->decode(m->task->self, logits, &labels);
    if (st == AX_OK && (labels->dtype != AX_DTYPE_U8 || ax_tensor_numel(labels) != (int64_t)vox))
        st = AX_ERROR(AX_ERR_INTERNAL, "task decode returned a %s map of %lld voxels for %zu",
                      ax_dtype_name(labels->dtype), (long long)ax_tensor_numel(labels), vox);
    ax_tensor *lc = NULL;
    if (st == AX_OK) st = ax_tensor_contiguous(&lc, labels);
    if (st == AX_OK) st = ax_case_restore_labels(&v, ax_tensor_data(lc), c->shape, c->json);
    char path[AX_TRAIN_PATH_MAX];
    if (st == AX_OK && (size_t)snprintf(path, sizeof path, "%s/%s%s", output, name, ending) >= sizeof path)
        st = AX_ERROR(AX_ERR_INVALID, "path too long: %s/%s", output, name);
    if (st == AX_OK) st = ax_volume_write(v, path, AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_U8);
    ax_tensor_free(lc);
    ax_volume_free(v);
    ax_tensor_free(labels);
    ax_tensor_free(logits);
    ax_tensor_free(x);
    ax_case_close(c);
    return st;
}

ax_status ax_predict_run(const ax_predict_opts *o, ax_predict_report *rep) {
    memset(rep, 0, sizeof *rep);
    if (!o->model || !o->input || !o->output || !o->registry)
        return AX_ERROR(AX_ERR_INVALID, "predict: model, input, output and the plugin registry are required");
    ax_pmodel m;
    memset(&m, 0, sizeof m);
    ax_status st = ax_pmodel_load(&m, o);
    if (st != AX_OK) {
        ax_pmodel_clear(&m);
        return st;
    }
    ax_pin *pins = NULL;
    size_t np = 0;
    const char *ending = NULL;
    char tmp[AX_TRAIN_PATH_MAX], raw[AX_TRAIN_PATH_MAX], cache[AX_TRAIN_PATH_MAX];
    tmp[0] = '\0';
    char **paths = NULL;
    size_t n = 0;
    ax_dataset *ds = NULL;
    if ((st = ax_predict_scan(o->input, m.info.in_channels, &pins, &np, &ending)) != AX_OK) goto out;
    if ((st = ax_train_mkdirs(o->output)) != AX_OK) goto out;
    snprintf(tmp, sizeof tmp, "%s/.axon_predict.%ld", o->output, (long)getpid());
    ax_rm_tree(tmp);
    if ((st = ax_mkdir(tmp)) != AX_OK) goto out;
    if ((st = ax_predict_raw(tmp, o->input, pins, np, m.info.in_channels, ending, raw, sizeof raw)) != AX_OK) goto out;
    ax_dataset_opts dso = ax_dataset_opts_default();
    dso.format = "nnunet";
    dso.root = raw;
    if ((st = ax_dataset_open(&ds, &dso)) != AX_OK) goto out;
    snprintf(cache, sizeof cache, "%s/cache", tmp);
    ax_preprocess_opts po = ax_preprocess_opts_default();
    po.out = cache;
    memcpy(po.spacing, m.spacing, sizeof po.spacing);
    po.mask_norm = m.mask_norm;
    po.threads = o->threads;
    po.split.min_val = 0;
    po.split.fraction = 0;
    ax_preprocess_report pr;
    memset(&pr, 0, sizeof pr);
    st = ax_preprocess_run(ds, &po, &pr);
    for (size_t i = 0; i < pr.n_failed; i++) {
        ax_status s2 = ax_predict_fail(rep, pr.failed_names[i], pr.failed_reasons[i]);
        if (s2 != AX_OK) st = s2;
    }
    ax_preprocess_report_free(&pr);
    if (st != AX_OK) goto out;
    if ((st = ax_cache_list(cache, NULL, &paths, &n)) != AX_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        char name[256] = "";
        ax_status cs = ax_predict_case(&m, paths[i], o->output, ending, name, sizeof name);
        if (cs == AX_ERR_NOMEM) {
            st = cs;
            goto out;
        }
        if (cs != AX_OK) {
            if ((st = ax_predict_fail(rep, name[0] ? name : paths[i], ax_error_message())) != AX_OK) goto out;
            continue;
        }
        if ((st = ax_strv_push(&rep->names, &rep->n_done, name)) != AX_OK) goto out;
        if (o->progress) fprintf(stderr, "predict: [%zu/%zu] %s/%s%s\n", i + 1, n, o->output, name, ending);
    }
    if (rep->n_done == 0)
        st = AX_ERROR(AX_ERR_INVALID, "predict: every case of %s failed (%zu); the first: %s: %s", o->input,
                      rep->n_failed, rep->n_failed ? rep->failed_names[0] : "?",
                      rep->n_failed ? rep->failed_reasons[0] : "?");
out:
    if (paths) ax_cache_paths_free(paths, n);
    ax_dataset_free(ds);
    if (tmp[0]) ax_rm_tree(tmp);
    ax_pins_free(pins, np);
    ax_pmodel_clear(&m);
    return st;
}

/* ---- evaluation ------------------------------------------------------------------------------ */

static int ax_str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A label volume as a [D, H, W] u8 tensor (values rounded; outside 0..255 an error). */
static ax_status ax_eval_labels(const ax_volume *v, const char *path, ax_tensor **out) {
    if (v->channels != 1)
        return AX_ERROR(AX_ERR_FORMAT, "%s: a label map has one channel, this has %d", path, v->channels);
    int64_t shape[3] = {v->shape[0], v->shape[1], v->shape[2]};
    ax_status st = ax_tensor_empty(out, 3, shape, AX_DTYPE_U8);
    if (st != AX_OK) return st;
    uint8_t *d = ax_tensor_data(*out);
    int64_t n = shape[0] * shape[1] * shape[2];
    for (int64_t i = 0; i < n; i++) {
        float x = v->data[i];
        if (!(x >= -0.5f && x < 255.5f)) {
            ax_tensor_free(*out);
            *out = NULL;
            return AX_ERROR(AX_ERR_FORMAT, "%s: voxel %lld holds %g, not a label in 0..255", path, (long long)i, x);
        }
        d[i] = (uint8_t)lrintf(x);
    }
    return AX_OK;
}

static json_t *ax_json_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

ax_status ax_evaluate_run(const ax_evaluate_opts *o, char **summary_json) {
    *summary_json = NULL;
    if (!o->pred || !o->ref) return AX_ERROR(AX_ERR_INVALID, "evaluate: pred and ref folders are required");
    if (o->classes < 2 || o->classes > 256)
        return AX_ERROR(AX_ERR_INVALID, "evaluate: classes must be in [2, 256], got %d", o->classes);
    DIR *d = opendir(o->ref);
    if (!d) return AX_ERROR(AX_ERR_NOT_FOUND, "evaluate: %s: %s", o->ref, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    ax_status st = AX_OK;
    struct dirent *e;
    while ((e = readdir(d)) && st == AX_OK)
        if (e->d_name[0] != '.' && ax_nifti_ending(e->d_name)) st = ax_strv_push(&names, &n, e->d_name);
    closedir(d);
    if (st == AX_OK && n == 0) st = AX_ERROR(AX_ERR_NOT_FOUND, "evaluate: %s: no .nii/.nii.gz label maps", o->ref);
    if (st != AX_OK) {
        ax_strv_free(names, n);
        return st;
    }
    qsort(names, n, sizeof *names, ax_str_cmp);
    const int K = o->classes;
    double *dsum = calloc((size_t)K * 2, sizeof *dsum), *hsum = calloc((size_t)K * 2, sizeof *hsum);
    int *dn = calloc((size_t)K * 2, sizeof *dn), *hn = calloc((size_t)K * 2, sizeof *hn);
    double *dv = calloc((size_t)K, sizeof *dv), *hv = calloc((size_t)K, sizeof *hv);
    json_t *cases = json_array();
    if (!dsum || !hsum || !dn || !hn || !dv || !hv) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == AX_OK; i++) {
        char rp[AX_TRAIN_PATH_MAX], pp[AX_TRAIN_PATH_MAX];
        snprintf(rp, sizeof rp, "%s/%s", o->ref, names[i]);
        snprintf(pp, sizeof pp, "%s/%s", o->pred, names[i]);
        struct stat sb;
        if (stat(pp, &sb) != 0) {
            st = AX_ERROR(AX_ERR_NOT_FOUND, "evaluate: no prediction %s for the reference %s", pp, rp);
            break;
        }
        ax_volume *rv = NULL, *pv = NULL;
        ax_tensor *rt = NULL, *pt = NULL;
        st = ax_volume_read(&rv, rp, NULL);
        if (st == AX_OK) st = ax_volume_read(&pv, pp, NULL);
        if (st == AX_OK && memcmp(rv->shape, pv->shape, sizeof rv->shape) != 0)
            st = AX_ERROR(AX_ERR_INVALID, "evaluate: %s is %dx%dx%d but the reference %s is %dx%dx%d", pp, pv->shape[0],
                          pv->shape[1], pv->shape[2], rp, rv->shape[0], rv->shape[1], rv->shape[2]);
        if (st == AX_OK) st = ax_eval_labels(rv, rp, &rt);
        if (st == AX_OK) st = ax_eval_labels(pv, pp, &pt);
        if (st == AX_OK) st = ax_seg_dice(dv, pt, rt, K);
        for (int c = 1; c < K && st == AX_OK && o->hd95; c++)
            st = ax_seg_hd95(&hv[c], pt, rt, c, rv->spacing);
        if (st == AX_OK) {
            size_t el = ax_nifti_ending(names[i]);
            char cname[256];
            snprintf(cname, sizeof cname, "%.*s", (int)(strlen(names[i]) - el), names[i]);
            json_t *jc = json_pack("{s:s}", "name", cname), *jd = json_object(), *jh = json_object();
            for (int c = 1; c < K; c++) {
                char k[16];
                snprintf(k, sizeof k, "%d", c);
                json_object_set_new(jd, k, ax_json_num(dv[c]));
                if (!isnan(dv[c])) dsum[c] += dv[c], dn[c]++;
                if (o->hd95) {
                    json_object_set_new(jh, k, ax_json_num(hv[c]));
                    if (!isnan(hv[c])) hsum[c] += hv[c], hn[c]++;
                }
            }
            double dm = ax_nanmean(dv + 1, K - 1);
            json_object_set_new(jc, "dice", jd);
            json_object_set_new(jc, "dice_mean", ax_json_num(dm));
            if (!isnan(dm)) dsum[0] += dm, dn[0]++;
            if (o->hd95) {
                double hm = ax_nanmean(hv + 1, K - 1);
                json_object_set_new(jc, "hd95", jh);
                json_object_set_new(jc, "hd95_mean", ax_json_num(hm));
                if (!isnan(hm)) hsum[0] += hm, hn[0]++;
            } else {
                json_decref(jh);
            }
            json_array_append_new(cases, jc);
        }
        ax_tensor_free(rt);
        ax_tensor_free(pt);
        ax_volume_free(rv);
        ax_volume_free(pv);
    }
    if (st == AX_OK) {
        json_t *mean = json_object(), *md = json_object(), *mh = json_object();
        for (int c = 1; c < K; c++) {
            char k[16];
            snprintf(k, sizeof k, "%d", c);
            json_object_set_new(md, k, ax_json_num(dn[c] ? dsum[c] / dn[c] : NAN));
            json_object_set_new(mh, k, ax_json_num(hn[c] ? hsum[c] / hn[c] : NAN));
        }
        json_object_set_new(mean, "dice", md);
        json_object_set_new(mean, "dice_mean", ax_json_num(dn[0] ? dsum[0] / dn[0] : NAN));
        if (o->hd95) {
            json_object_set_new(mean, "hd95", mh);
            json_object_set_new(mean, "hd95_mean", ax_json_num(hn[0] ? hsum[0] / hn[0] : NAN));
        } else {
            json_decref(mh);
        }
        json_t *j = json_pack("{s:i,s:s,s:s,s:O,s:o}", "classes", K, "pred", o->pred, "ref", o->ref, "cases", cases,
                              "mean", mean);
        *summary_json = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(j);
        if (!*summary_json) st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        if (st == AX_OK && o->out_json) st = ax_cache_write_file(o->out_json, *summary_json, strlen(*summary_json));
        if (st != AX_OK) {
            free(*summary_json);
            *summary_json = NULL;
        }
    }
    json_decref(cases);
    free(dsum), free(hsum), free(dn), free(hn), free(dv), free(hv);
    ax_strv_free(names, n);
    return st;
}
