/* The segmentation fine-tuning runner (see train_finetune.h). */
#include "train_finetune.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/cache.h"
#include "axon/loader.h"
#include "axon/log.h"
#include "axon/preprocess.h"
#include "axon/safetensors.h"
#include "axon/segment.h"
#include "train_checkpoint.h"
#include "train_setup.h"

ax_finetune_opts ax_finetune_opts_default(void) {
    ax_finetune_opts o;
    memset(&o, 0, sizeof o);
    o.train = ax_train_opts_default();
    o.split = ax_split_opts_default();
    o.input = ax_train_input_default();
    o.input.oversample_fg = 0.33;
    o.warmup = -1;
    o.decoder_steps = -1;
    return o;
}

/* ---- schedules ------------------------------------------------------------------------ */

/* nnssl's PolyLRScheduler_offset: lr (1 - (s - a) / (b - a))^0.9 on [a, b). */
static double ax_ft_poly_offset(double lr, int64_t s, int64_t a, int64_t b) {
    if (b <= a) return lr;
    return ax_lr_poly(s - a, b - a, lr, 0.9);
}

/* Linear warm-up over [a, b): lr / (b - a) * (s - a + 1). */
static double ax_ft_warm(double lr, int64_t s, int64_t a, int64_t b) {
    return lr / (double)(b - a) * (double)(s - a + 1);
}

double ax_finetune_lr(ax_finetune_schedule kind, double lr, int64_t steps, int64_t warmup, int64_t decoder_steps,
                      int64_t step) {
    if (step < 0) step = 0;
    if (kind == AX_FINETUNE_SAWTOOTH) {
        int64_t half = decoder_steps / 2, whole = decoder_steps + warmup;
        if (step < half) return ax_ft_warm(lr, step, 0, half);
        if (step < decoder_steps) return ax_ft_poly_offset(lr, step, half, decoder_steps);
        if (step < whole) return ax_ft_warm(lr, step, decoder_steps, whole);
        return ax_ft_poly_offset(lr, step, whole, steps);
    }
    if (step < warmup) return ax_ft_warm(lr, step, 0, warmup);
    return ax_ft_poly_offset(lr, step, warmup, steps);
}

/* ---- the run ----------------------------------------------------------------------------- */

typedef struct ax_ft {
    const ax_finetune_opts *o;
    int64_t warmup, decoder_steps;
    ax_module *net;
    const ax_arch_ops *arch_ops;
    const void *arch_self;
    const ax_task_ops *task;
    const void *task_self;
    ax_loader *train;
    int64_t next_step;
    ax_case **val;
    size_t n_val;
    int64_t classes;
    ax_tensor **frozen; /* sawtooth: stem + encoder parameters (borrowed from the net) */
    size_t n_frozen;
    /* validation numbers, ax_train_hooks.val_metric_* */
    size_t n_metrics;
    char names[AX_FINETUNE_MAX_CLASSES + 1][32];
    const char *name_ptrs[AX_FINETUNE_MAX_CLASSES + 1];
    double values[AX_FINETUNE_MAX_CLASSES + 1];
} ax_ft;

static double ax_ft_lr_at(void *ctx, int64_t step) {
    ax_ft *f = ctx;
    return ax_finetune_lr(f->o->schedule, f->o->train.optim.lr, f->o->train.steps, f->warmup, f->decoder_steps, step);
}

/* Sawtooth: the stem and encoder take part only from decoder_steps on. */
static void ax_ft_set_frozen(ax_ft *f, bool frozen) {
    for (size_t i = 0; i < f->n_frozen; i++)
        ax_tensor_set_requires_grad(f->frozen[i], !frozen);
}

static ax_status ax_ft_outputs(ax_ft *f, const ax_tensor *x, ax_tensor **outs, int *n) {
    if (f->o->deep_supervision && f->arch_ops->forward_all)
        return f->arch_ops->forward_all(f->arch_self, f->net, x, outs, 16, n);
    *n = 1;
    return ax_module_forward(f->net, &outs[0], x);
}

static ax_status ax_ft_train_loss(void *ctx, int64_t step, ax_tensor **loss) {
    ax_ft *f = ctx;
    ax_status st = AX_OK;
    if (f->n_frozen) ax_ft_set_frozen(f, step < f->decoder_steps);
    if (step != f->next_step && (st = ax_loader_seek(f->train, step)) != AX_OK) return st;
    ax_batch b = {0};
    if ((st = ax_loader_next(f->train, &b)) != AX_OK) return st;
    if (b.step != step) {
        ax_batch_clear(&b);
        return AX_ERROR(AX_ERR_INTERNAL, "loader returned batch %lld for step %lld", (long long)b.step,
                        (long long)step);
    }
    f->next_step = step + 1;
    ax_tensor *outs[16] = {0}, *x = NULL;
    int n = 0;
    st = ax_train_to_net_device(f->net, b.image, &x);
    if (st == AX_OK) st = ax_ft_outputs(f, x, outs, &n);
    /* the label stays on the CPU: the task resizes it there and moves it to the outputs' device */
    if (st == AX_OK) st = f->task->loss(f->task_self, outs, n, b.label, loss);
    for (int i = 0; i < n; i++)
        ax_tensor_free(outs[i]);
    ax_tensor_free(x);
    ax_batch_clear(&b);
    return st;
}

/* Case image and label as tensors over the mapping (read-only use). */
static ax_status ax_ft_case_tensors(const ax_case *c, ax_tensor **x, ax_tensor **y) {
    int64_t xs[5] = {1, c->channels, c->shape[0], c->shape[1], c->shape[2]};
    int64_t ys[5] = {1, 1, c->shape[0], c->shape[1], c->shape[2]};
    size_t vox = (size_t)c->shape[0] * (size_t)c->shape[1] * (size_t)c->shape[2];
    *x = *y = NULL;
    ax_status st =
        ax_tensor_wrap(x, 5, xs, AX_DTYPE_F32, (void *)c->image, vox * (size_t)c->channels * sizeof(float), NULL, NULL);
    if (st == AX_OK && y && c->label) st = ax_tensor_wrap(y, 5, ys, AX_DTYPE_U8, (void *)c->label, vox, NULL, NULL);
    return st;
}

static ax_status ax_ft_val_loss(void *ctx, double *out) {
    ax_ft *f = ctx;
    ax_sliding_window sw = ax_sliding_window_default();
    for (int i = 0; i < 3; i++)
        sw.patch[i] = f->o->input.patch[i];
    sw.mirror_axes = 0; /* validation: no test-time mirroring, for speed */
    double loss_sum = 0;
    int K = (int)f->classes;
    double dsum[AX_FINETUNE_MAX_CLASSES] = {0};
    int dcount[AX_FINETUNE_MAX_CLASSES] = {0};
    double mean_sum = 0;
    int mean_n = 0;
    ax_status st = AX_OK;
    for (size_t i = 0; i < f->n_val && st == AX_OK; i++) {
        ax_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL, *lab = NULL, *ref = NULL;
        st = ax_ft_case_tensors(f->val[i], &x, &y);
        double v = NAN;
        /* windows run on the net's device; the logits come back to the CPU */
        if (st == AX_OK) st = ax_sliding_window_predict(&logits, f->net, x, &sw);
        if (st == AX_OK) st = f->task->loss(f->task_self, &logits, 1, y, &loss);
        if (st == AX_OK) st = ax_train_scalar(loss, &v);
        if (st == AX_OK) loss_sum += v;
        if (st == AX_OK) st = ax_seg_argmax(&lab, logits);
        if (st == AX_OK) st = ax_tensor_reshape(&ref, y, 3, lab->shape);
        double d[256];
        if (st == AX_OK) st = ax_seg_dice(d, lab, ref, K);
        if (st == AX_OK) {
            for (int c = 1; c < K && c < AX_FINETUNE_MAX_CLASSES; c++)
                if (!isnan(d[c])) dsum[c] += d[c], dcount[c]++;
            double m = ax_nanmean(d + 1, K - 1);
            if (!isnan(m)) mean_sum += m, mean_n++;
        }
        if (st != AX_OK) ax_error_prefix("validation case %s", f->val[i]->path);
        ax_tensor_free(x), ax_tensor_free(y), ax_tensor_free(logits), ax_tensor_free(loss), ax_tensor_free(lab);
        ax_tensor_free(ref);
    }
    *out = f->n_val ? loss_sum / (double)f->n_val : NAN;
    f->values[0] = mean_n ? mean_sum / mean_n : NAN;
    for (int c = 1; c < K && (size_t)c < f->n_metrics; c++)
        f->values[c] = dcount[c] ? dsum[c] / dcount[c] : NAN;
    return st;
}

/* ---- setup -------------------------------------------------------------------------------- */

static ax_status ax_ft_check(const ax_finetune_opts *o) {
    ax_status st = ax_train_input_check(&o->input, "finetune");
    if (st != AX_OK) return st;
    if (!o->task || o->task->item->plugin->kind != AX_PLUGIN_TASK)
        return AX_ERROR(AX_ERR_INVALID, "finetune: 'task' must be a TASK plugin instance");
    const ax_task_ops *t = o->task->ops;
    if (!t->out_channels || !t->loss)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "task '%s' has no out_channels()/loss() (built for ABI 1.0?)",
                        o->task->item->plugin->name);
    if (!o->arch && !o->init)
        return AX_ERROR(AX_ERR_INVALID, "finetune: give 'arch', or 'init' (a checkpoint that names its arch)");
    if (o->arch && o->arch->item->plugin->kind != AX_PLUGIN_ARCH)
        return AX_ERROR(AX_ERR_INVALID, "finetune: 'arch' must be an ARCH plugin instance");
    if (!o->arch && !o->registry)
        return AX_ERROR(AX_ERR_INVALID, "finetune: rebuilding the arch from 'init' needs the plugin registry");
    if (o->val_cases < 0) return AX_ERROR(AX_ERR_INVALID, "finetune: val_cases must be >= 0");
    return AX_OK;
}

/* The ARCH instance a checkpoint was written by (its metadata alone). */
static ax_status ax_ft_arch_from_checkpoint(ax_registry *reg, const char *path, ax_instance **out) {
    ax_safetensors *f;
    ax_status st = ax_safetensors_open(&f, path);
    if (st != AX_OK) return st;
    const char *name = ax_safetensors_metadata(f, AX_CKPT_META_ARCH);
    const char *params = ax_safetensors_metadata(f, AX_CKPT_META_ARCH_PARAMS);
    if (!name) {
        ax_safetensors_close(f);
        return AX_ERROR(AX_ERR_FORMAT, "%s: no metadata \"arch\": give 'arch' to fine-tune from this checkpoint", path);
    }
    const ax_registry_item *it = ax_registry_find(reg, AX_PLUGIN_ARCH, name);
    if (!it) {
        st = AX_ERROR(AX_ERR_NOT_FOUND, "%s: arch plugin '%s' is not on the plugin path", path, name);
        ax_safetensors_close(f);
        return st;
    }
    ax_params *p = NULL;
    st = ax_checkpoint_params_from_json(&p, it->plugin->params, name, params ? params : "{}");
    ax_safetensors_close(f);
    if (st != AX_OK) return ax_error_prefix("%s", path);
    return ax_instance_new(out, it, p);
}

/* The cache's preprocessing, as predict must repeat it. */
static json_t *ax_ft_preprocess_json(const char *cache, const ax_case *c) {
    json_t *meta = json_loads(c->json, 0, NULL);
    json_t *mn = meta ? json_object_get(meta, "mask_norm") : NULL;
    char idx_path[AX_TRAIN_PATH_MAX];
    snprintf(idx_path, sizeof idx_path, "%s/index.json", cache);
    json_t *idx = json_load_file(idx_path, 0, NULL);
    json_t *sp = idx ? json_object_get(idx, "spacing") : NULL;
    json_t *src = idx ? json_object_get(idx, "spacing_source") : NULL;
    /* a cache made with each case's own spacing has no target */
    bool own = json_is_string(src) && strcmp(json_string_value(src), "target") != 0;
    json_t *j = json_pack("{s:O,s:b,s:i}", "spacing", (json_is_array(sp) && !own) ? sp : json_null(), "mask_norm",
                          json_is_true(mn), "channels", (int)c->channels);
    json_decref(meta);
    json_decref(idx);
    return j;
}

static char *ax_ft_config_json(const ax_finetune_opts *o, const ax_instance *arch, int64_t in_ch, int64_t out_ch,
                               const json_t *pp, int64_t warmup, int64_t decoder_steps) {
    const ax_train_opts *t = &o->train;
    json_t *j = ax_train_config_begin("finetune", o->input.data, t->out);
    json_object_set_new(j, "task", ax_train_plugin_json(o->task));
    json_object_set_new(j, "arch", ax_train_plugin_json(arch));
    json_object_set_new(j, "init", o->init ? json_string(o->init) : json_null());
    json_object_set_new(j, "augs", ax_train_augs_json(o->input.augs, o->input.n_augs));
    json_object_set_new(j, "in_channels", json_integer(in_ch));
    json_object_set_new(j, "out_channels", json_integer(out_ch));
    json_object_set_new(j, "preprocess", json_deep_copy(pp));
    ax_train_config_add_run(j, &o->input, t);
    json_object_set_new(j, "schedule",
                        json_pack("{s:s,s:I,s:I}", "kind",
                                  o->schedule == AX_FINETUNE_SAWTOOTH ? "sawtooth" : "warmup_poly", "warmup",
                                  (json_int_t)warmup, "decoder_steps", (json_int_t)decoder_steps));
    json_object_set_new(j, "deep_supervision", json_boolean(o->deep_supervision));
    json_object_set_new(j, "oversample_fg", json_real(o->input.oversample_fg));
    json_object_set_new(j, "clip", json_real(t->clip));
    json_object_set_new(j, "save_every", json_integer(t->save_every));
    json_object_set_new(j, "val_every", json_integer(t->val_every));
    json_object_set_new(j, "val_cases", json_integer(o->val_cases));
    json_object_set_new(j, "threads", json_integer(o->input.threads));
    json_object_set_new(j, "resume", json_boolean(t->resume));
    return ax_train_config_dump(j);
}

static bool ax_ft_has_prefix(const char *name, const char *prefix) {
    size_t n = prefix ? strlen(prefix) : 0;
    return n && strncmp(name, prefix, n) == 0 && (name[n] == '.' || name[n] == '\0');
}

/* Sawtooth: the parameters under the plan's stem and encoder, except the
 * input projection when transfer adapted it (nnssl trains it with the
 * decoder then). */
static ax_status ax_ft_collect_frozen(ax_ft *f, const ax_arch_plan *plan, bool adapted) {
    ax_named_tensors p = {0};
    ax_status st = ax_module_parameters(f->net, &p);
    if (st != AX_OK) return st;
    f->frozen = calloc(p.n ? p.n : 1, sizeof *f->frozen);
    if (!f->frozen) {
        ax_named_tensors_clear(&p);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < p.n; i++) {
        const char *nm = p.names[i];
        if (!ax_ft_has_prefix(nm, plan->stem) && !ax_ft_has_prefix(nm, plan->encoder)) continue;
        if (ax_ft_has_prefix(nm, plan->decoder)) continue;
        if (adapted && ax_ft_has_prefix(nm, plan->input_projection)) continue;
        f->frozen[f->n_frozen++] = p.tensors[i]; /* the net keeps it alive */
    }
    ax_named_tensors_clear(&p);
    if (f->n_frozen == 0)
        return AX_ERROR(AX_ERR_INVALID, "finetune: sawtooth: the arch plan names no stem/encoder parameters");
    return AX_OK;
}

ax_status ax_finetune_run(const ax_finetune_opts *o, ax_finetune_result *res) {
    memset(res, 0, sizeof *res);
    ax_train_result *tr = &res->train;
    ax_train_result_reset(tr);
    res->val_dice_mean = NAN;
    for (int i = 0; i < AX_FINETUNE_MAX_CLASSES; i++)
        res->val_dice[i] = NAN;
    ax_status st = ax_ft_check(o);
    if (st != AX_OK) return st;
    ax_finetune_opts oo = *o; /* device resolved, data pointing at the cache */
    ax_train_opts t = o->train;
    char devname[32], cache[AX_TRAIN_PATH_MAX];
    if ((st = ax_train_prepare(&t, &oo.input, &o->split, devname, cache)) != AX_OK) return st;
    o = &oo;
    ax_ft f;
    memset(&f, 0, sizeof f);
    f.o = o;
    f.task = o->task->ops;
    f.task_self = o->task->self;
    ax_train_lists l = {0};
    ax_case *c0 = NULL;
    ax_instance *own_arch = NULL;
    ax_checkpoint_meta meta = {0};
    char *config = NULL;
    json_t *pp = NULL;
    ax_transfer_report rep = {0};

    if ((st = ax_train_lists_open(&l, o->input.data)) != AX_OK) goto out;
    if ((st = ax_case_open(&c0, l.train[0])) != AX_OK) goto out;
    if (!c0->label) {
        st = AX_ERROR(AX_ERR_INVALID, "%s: the case has no label map: fine-tuning needs a labelled dataset",
                      l.train[0]);
        goto out;
    }
    int64_t in_ch = c0->channels, out_ch = 0;
    if (!(pp = ax_ft_preprocess_json(o->input.data, c0))) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = f.task->out_channels(o->task->self, &out_ch)) != AX_OK) goto out;
    f.classes = out_ch;
    res->n_classes = (int)out_ch;

    const ax_instance *arch = o->arch;
    if (!arch) {
        if ((st = ax_ft_arch_from_checkpoint(o->registry, o->init, &own_arch)) != AX_OK) goto out;
        arch = own_arch;
    }
    f.arch_ops = arch->ops;
    f.arch_self = arch->self;
    ax_arch_plan plan;
    if ((st = ax_train_net_build(&f.net, &plan, arch, "finetune", o->input.patch, t.seed,
                                 AX_FINETUNE_INIT_STREAM, in_ch, out_ch)) != AX_OK)
        goto out;
    if (o->init) {
        if ((st = ax_transfer_pretrained(f.net, o->init, &plan, in_ch, &rep)) != AX_OK) {
            ax_error_prefix("finetune: init");
            goto out;
        }
        res->n_transferred = rep.n_copied;
        res->n_adapted = rep.n_adapted;
        AX_LOG_INFO("init %s: %zu stem/encoder tensors transferred (%zu adapted to %lld channels), %zu left out",
                    o->init, rep.n_copied, rep.n_adapted, (long long)in_ch, rep.n_skipped);
    }

    const int64_t steps = o->train.steps;
    f.warmup = o->warmup >= 0 ? o->warmup : steps / 20;
    f.decoder_steps = o->schedule == AX_FINETUNE_SAWTOOTH ? (o->decoder_steps >= 0 ? o->decoder_steps : steps / 20) : 0;
    if (f.warmup + f.decoder_steps >= steps) {
        st = AX_ERROR(AX_ERR_INVALID,
                      "finetune: warm-up (%lld) and decoder-only (%lld) steps leave nothing of %lld steps",
                      (long long)f.warmup, (long long)f.decoder_steps, (long long)steps);
        goto out;
    }
    if (o->schedule == AX_FINETUNE_SAWTOOTH && f.decoder_steps > 0 &&
        (st = ax_ft_collect_frozen(&f, &plan, rep.n_adapted > 0)) != AX_OK)
        goto out;

    /* checkpoint metadata: rebuild + how to predict */
    if ((st = ax_checkpoint_meta_build(&meta, arch, NULL, in_ch, out_ch)) != AX_OK) goto out;
    if ((st = ax_train_meta_add(&meta, "task", strdup(o->task->item->plugin->name))) != AX_OK) goto out;
    if ((st = ax_train_meta_add(&meta, "task_params", ax_checkpoint_params_json(o->task->params))) != AX_OK)
        goto out;
    char patch_txt[64];
    snprintf(patch_txt, sizeof patch_txt, "[%d,%d,%d]", o->input.patch[0], o->input.patch[1], o->input.patch[2]);
    if ((st = ax_train_meta_add(&meta, "patch", strdup(patch_txt))) != AX_OK) goto out;
    if ((st = ax_train_meta_add(&meta, "preprocess", json_dumps(pp, JSON_COMPACT | JSON_PRESERVE_ORDER))) != AX_OK)
        goto out;

    t.schedule.kind = AX_LR_POLY;
    t.schedule.warmup_steps = 0;
    if (!(config = ax_ft_config_json(o, arch, in_ch, out_ch, pp, f.warmup, f.decoder_steps))) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto out;
    }
    ax_train_opts_attach(&t, config, &meta);
    if ((st = ax_train_loader_new(&f.train, &o->input, l.train, l.n_train, t.seed, true, true)) != AX_OK) goto out;
    char **vsrc = l.n_val ? l.val : l.train;
    size_t nv = l.n_val ? l.n_val : l.n_train;
    if (o->val_cases > 0 && (size_t)o->val_cases < nv) nv = (size_t)o->val_cases;
    f.val = calloc(nv ? nv : 1, sizeof *f.val);
    if (!f.val) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nv && st == AX_OK; i++) {
        st = ax_case_open(&f.val[i], vsrc[i]);
        if (st == AX_OK) f.n_val++;
        if (st == AX_OK && !f.val[i]->label)
            st = AX_ERROR(AX_ERR_INVALID, "%s: validation case without a label map", vsrc[i]);
    }
    if (st != AX_OK) goto out;

    f.n_metrics = (size_t)(out_ch < AX_FINETUNE_MAX_CLASSES ? out_ch : AX_FINETUNE_MAX_CLASSES);
    snprintf(f.names[0], sizeof f.names[0], "val_dice_mean");
    for (size_t c = 1; c < f.n_metrics; c++)
        snprintf(f.names[c], sizeof f.names[c], "val_dice_%d", (int)c);
    for (size_t c = 0; c < f.n_metrics; c++)
        f.name_ptrs[c] = f.names[c], f.values[c] = NAN;
    ax_train_hooks h = {.ctx = &f,
                        .train_loss = ax_ft_train_loss,
                        .val_loss = ax_ft_val_loss,
                        .lr_at = ax_ft_lr_at,
                        .n_val_metrics = f.n_metrics,
                        .val_metric_names = f.name_ptrs,
                        .val_metric_values = f.values};
    st = ax_train_run(f.net, &t, &h, tr);
    res->val_dice_mean = f.values[0];
    for (size_t c = 1; c < f.n_metrics; c++)
        res->val_dice[c] = f.values[c];
out:
    if (f.n_frozen) ax_ft_set_frozen(&f, false);
    free(f.frozen);
    ax_loader_free(f.train);
    for (size_t i = 0; i < f.n_val; i++)
        ax_case_close(f.val[i]);
    free(f.val);
    ax_module_free(f.net);
    ax_instance_free(own_arch);
    ax_checkpoint_meta_clear(&meta);
    ax_transfer_report_clear(&rep);
    json_decref(pp);
    free(config);
    ax_case_close(c0);
    ax_train_lists_clear(&l);
    return st;
}
