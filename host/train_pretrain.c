/* The pre-training runner (see train_pretrain.h). */
#include "train_pretrain.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/cache.h"
#include "axon/loader.h"
#include "axon/log.h"
#include "axon/preprocess.h"
#include "train_checkpoint.h"

ax_pretrain_opts ax_pretrain_opts_default(void) {
    ax_pretrain_opts o;
    memset(&o, 0, sizeof o);
    o.train = ax_train_opts_default();
    o.patch[0] = o.patch[1] = o.patch[2] = 64;
    o.batch = 2;
    o.val_batches = 2;
    return o;
}

typedef struct ax_pretrain {
    const ax_pretrain_opts *o;
    ax_module *net;
    ax_loader *train, *val;
    int64_t next_step; /* the train loader's position */
    /* On a GPU, batch k+1 is fetched and its copy queued before step k's
     * kernels, so the copy overlaps them (the backend's H2D copies do not
     * wait for the device). */
    ax_tensor *ahead;  /* the prefetched batch image, on the net's device */
    int64_t ahead_step;
} ax_pretrain;

static ax_status ax_pretrain_batch(ax_loader *ld, int64_t want, ax_batch *b) {
    ax_status st = ax_loader_next(ld, b);
    if (st != AX_OK) return st;
    if (b->step != want) {
        ax_batch_clear(b);
        return AX_ERROR(AX_ERR_INTERNAL, "loader returned batch %lld for step %lld", (long long)b->step,
                        (long long)want);
    }
    return AX_OK;
}

/* The image of batch `step` on the net's device (new reference). */
static ax_status ax_pretrain_image(ax_pretrain *p, int64_t step, ax_tensor **x) {
    ax_status st = AX_OK;
    *x = NULL;
    if (step != p->next_step && (st = ax_loader_seek(p->train, step)) != AX_OK) return st;
    ax_batch b = {0};
    if ((st = ax_pretrain_batch(p->train, step, &b)) != AX_OK) return st;
    p->next_step = step + 1;
    st = ax_train_to_net_device(p->net, b.image, x);
    ax_batch_clear(&b);
    return st;
}

static ax_status ax_pretrain_train_loss(void *ctx, int64_t step, ax_tensor **loss) {
    ax_pretrain *p = ctx;
    ax_status st = AX_OK;
    ax_tensor *x = NULL; /* the batch on the net's device */
    if (p->ahead && p->ahead_step == step) {
        x = p->ahead;
        p->ahead = NULL;
    } else {
        ax_tensor_free(p->ahead);
        p->ahead = NULL;
        if ((st = ax_pretrain_image(p, step, &x)) != AX_OK) return st;
    }
    if (ax_module_device(p->net).type != AX_DEVICE_CPU && step + 1 < p->o->train.steps) {
        if ((st = ax_pretrain_image(p, step + 1, &p->ahead)) != AX_OK) {
            ax_tensor_free(x);
            return st;
        }
        p->ahead_step = step + 1;
    }
    ax_rng r;
    ax_rng_init(&r, p->o->train.seed ^ AX_PRETRAIN_METHOD_SALT, (uint64_t)step);
    const ax_method_ops *m = p->o->method->ops;
    st = m->loss(p->o->method->self, p->net, x, &r, loss);
    ax_tensor_free(x);
    return st;
}

static ax_status ax_pretrain_val_loss(void *ctx, double *out) {
    ax_pretrain *p = ctx;
    ax_status st = ax_loader_seek(p->val, 0);
    double sum = 0;
    const ax_method_ops *m = p->o->method->ops;
    for (int32_t k = 0; st == AX_OK && k < p->o->val_batches; k++) {
        ax_batch b = {0};
        if ((st = ax_pretrain_batch(p->val, k, &b)) != AX_OK) break;
        ax_rng r;
        ax_rng_init(&r, p->o->train.seed ^ AX_PRETRAIN_VAL_SALT, (uint64_t)k);
        ax_tensor *loss = NULL, *x = NULL;
        double v = NAN;
        st = ax_train_to_net_device(p->net, b.image, &x);
        if (st == AX_OK) st = m->loss(p->o->method->self, p->net, x, &r, &loss);
        if (st == AX_OK) st = ax_train_scalar(loss, &v);
        if (st == AX_OK) sum += v;
        ax_tensor_free(loss);
        ax_tensor_free(x);
        ax_batch_clear(&b);
    }
    *out = sum / (double)p->o->val_batches;
    return st;
}

/* ---- the resolved configuration -------------------------------------------------- */

static json_t *ax_pretrain_plugin_json(const ax_instance *inst) {
    char *pj = ax_checkpoint_params_json(inst->params); /* what was set: presets resolve in the plugin */
    json_t *params = pj ? json_loads(pj, 0, NULL) : NULL;
    free(pj);
    return json_pack("{s:s,s:o}", "name", inst->item->plugin->name, "params", params ? params : json_object());
}

static char *ax_pretrain_config_json(const ax_pretrain_opts *o, int64_t in_ch, int64_t out_ch,
                                     const ax_lr_schedule *sched) {
    const ax_train_opts *t = &o->train;
    json_t *j = json_object();
    json_object_set_new(j, "runner", json_string("pretrain"));
    json_object_set_new(j, "data", json_string(o->data));
    json_object_set_new(j, "out", json_string(t->out));
    json_object_set_new(j, "arch", ax_pretrain_plugin_json(o->arch));
    json_object_set_new(j, "method", ax_pretrain_plugin_json(o->method));
    json_t *augs = json_array();
    for (size_t i = 0; i < o->n_augs; i++) json_array_append_new(augs, ax_pretrain_plugin_json(o->augs[i]));
    json_object_set_new(j, "augs", augs);
    json_object_set_new(j, "in_channels", json_integer(in_ch));
    json_object_set_new(j, "out_channels", json_integer(out_ch));
    json_object_set_new(j, "patch", json_pack("[iii]", o->patch[0], o->patch[1], o->patch[2]));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "steps", json_integer(t->steps));
    json_object_set_new(j, "seed", json_integer((json_int_t)t->seed));
    json_t *opt = json_object();
    json_object_set_new(opt, "kind", json_string(ax_optim_kind_name(t->optim.kind)));
    json_object_set_new(opt, "lr", json_real(t->optim.lr));
    json_object_set_new(opt, "weight_decay", json_real(t->optim.weight_decay));
    if (t->optim.kind == AX_OPTIM_SGD) {
        json_object_set_new(opt, "momentum", json_real(t->optim.momentum));
        json_object_set_new(opt, "nesterov", json_boolean(t->optim.nesterov));
    } else {
        json_object_set_new(opt, "betas", json_pack("[ff]", t->optim.beta1, t->optim.beta2));
        json_object_set_new(opt, "eps", json_real(t->optim.eps));
    }
    json_object_set_new(j, "optim", opt);
    json_object_set_new(j, "schedule",
                        json_pack("{s:s,s:I,s:f,s:f}", "kind", ax_lr_kind_name(sched->kind), "warmup",
                                  (json_int_t)sched->warmup_steps, "power", sched->power, "min_lr", sched->min_lr));
    json_object_set_new(j, "clip", json_real(t->clip));
    json_object_set_new(j, "save_every", json_integer(t->save_every));
    json_object_set_new(j, "keep_every", json_integer(t->keep_every));
    json_object_set_new(j, "val_every", json_integer(t->val_every));
    json_object_set_new(j, "val_batches", json_integer(o->val_batches));
    json_object_set_new(j, "max_nonfinite", json_integer(t->max_nonfinite));
    json_object_set_new(j, "threads", json_integer(o->threads));
    json_object_set_new(j, "resume", json_boolean(t->resume));
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

/* ---- setup ------------------------------------------------------------------------- */

static ax_status ax_pretrain_check(const ax_pretrain_opts *o) {
    if ((!o->data || !*o->data) && !o->dataset && !o->dataset_object)
        return AX_ERROR(AX_ERR_INVALID, "pretrain: 'data' (a cache folder or a dataset) is required");
    if (!o->arch || o->arch->item->plugin->kind != AX_PLUGIN_ARCH)
        return AX_ERROR(AX_ERR_INVALID, "pretrain: 'arch' must be an ARCH plugin instance");
    if (!o->method || o->method->item->plugin->kind != AX_PLUGIN_METHOD)
        return AX_ERROR(AX_ERR_INVALID, "pretrain: 'method' must be a METHOD plugin instance");
    for (size_t i = 0; i < o->n_augs; i++)
        if (!o->augs[i] || o->augs[i]->item->plugin->kind != AX_PLUGIN_AUG)
            return AX_ERROR(AX_ERR_INVALID, "pretrain: augs[%zu] is not an AUG plugin instance", i + 1);
    const ax_method_ops *m = o->method->ops;
    if (!m->loss || !m->out_channels)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "method '%s' has no loss()/out_channels() (built for ABI 1.0?)",
                        o->method->item->plugin->name);
    const ax_arch_ops *a = o->arch->ops;
    if (!a->build || !a->plan)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "arch '%s' has no build()/plan() (built for ABI 1.0?)",
                        o->arch->item->plugin->name);
    for (int i = 0; i < 3; i++)
        if (o->patch[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "pretrain: patch sizes must be >= 1, got %d,%d,%d", o->patch[0],
                            o->patch[1], o->patch[2]);
    if (o->batch < 1) return AX_ERROR(AX_ERR_INVALID, "pretrain: batch must be >= 1, got %d", o->batch);
    if (o->val_batches < 1)
        return AX_ERROR(AX_ERR_INVALID, "pretrain: val_batches must be >= 1, got %d", o->val_batches);
    return AX_OK;
}

/* The dataset preprocessed into <out>/cache (path written to cache). */
static ax_status ax_pretrain_preprocess(const ax_pretrain_opts *o, char *cache, size_t n) {
    if ((size_t)snprintf(cache, n, "%s/cache", o->train.out) >= n)
        return AX_ERROR(AX_ERR_INVALID, "path too long: %s", o->train.out);
    ax_dataset *ds = NULL;
    ax_status st = o->dataset_object ? AX_OK : ax_dataset_open(&ds, o->dataset);
    if (st != AX_OK) return st;
    ax_preprocess_opts po = ax_preprocess_opts_default();
    po.out = cache;
    memcpy(po.spacing, o->spacing, sizeof po.spacing);
    po.threads = o->threads;
    if (o->train.progress != 0) po.progress = ax_preprocess_progress_print;
    ax_preprocess_report rep;
    memset(&rep, 0, sizeof rep);
    st = ax_preprocess_run(o->dataset_object ? o->dataset_object : ds, &po, &rep);
    for (size_t i = 0; i < rep.n_failed; i++)
        AX_LOG_WARN("preprocess: %s skipped: %s", rep.failed_names[i], rep.failed_reasons[i]);
    ax_preprocess_report_free(&rep);
    ax_dataset_free(ds);
    return st;
}

static ax_status ax_pretrain_loader(ax_loader **ld, const ax_pretrain_opts *o, char **paths, size_t n, uint64_t seed,
                                    bool augment) {
    ax_loader_opts lo = ax_loader_opts_default();
    ax_loader_aug *augs = NULL;
    if (augment && o->n_augs) {
        augs = calloc(o->n_augs, sizeof *augs);
        if (!augs) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < o->n_augs; i++) {
            augs[i].ops = o->augs[i]->ops;
            augs[i].self = o->augs[i]->self;
            augs[i].name = o->augs[i]->item->plugin->name;
        }
    }
    lo.paths = (const char *const *)paths;
    lo.n_paths = n;
    memcpy(lo.patch, o->patch, sizeof lo.patch);
    lo.batch = o->batch;
    lo.threads = o->threads;
    lo.seed = seed;
    lo.oversample_fg = o->oversample_fg;
    lo.augs = augs;
    lo.n_augs = augment ? o->n_augs : 0;
    ax_status st = ax_loader_new(ld, &lo);
    free(augs); /* the loader copies the chain */
    return st;
}

ax_status ax_pretrain_run(const ax_pretrain_opts *o, ax_train_result *res) {
    memset(res, 0, sizeof *res);
    res->loss = res->lr = res->grad_norm = res->val_loss = res->first_val_loss = NAN;
    ax_status st = ax_pretrain_check(o);
    if (st != AX_OK) return st;
    char **tr = NULL, **va = NULL;
    size_t ntr = 0, nva = 0;
    ax_case *c = NULL;
    ax_pretrain p = {.o = o};
    ax_checkpoint_meta meta = {0};
    char *config = NULL;
    char cache[AX_TRAIN_PATH_MAX];
    ax_pretrain_opts oo = *o; /* with data pointing at the cache */
    if (!o->data || !*o->data) {
        if ((st = ax_train_mkdirs(o->train.out)) != AX_OK) return st;
        if ((st = ax_pretrain_preprocess(o, cache, sizeof cache)) != AX_OK) return st;
        oo.data = cache;
    }
    o = &oo;
    p.o = o;
    if ((st = ax_cache_list(o->data, "train", &tr, &ntr)) != AX_OK) goto out;
    if (ntr == 0) {
        st = AX_ERROR(AX_ERR_INVALID, "%s: the cache has no training cases", o->data);
        goto out;
    }
    if ((st = ax_cache_list(o->data, "val", &va, &nva)) != AX_OK) goto out;
    if (nva == 0) AX_LOG_WARN("%s: no validation cases; validating on training cases", o->data);

    if ((st = ax_case_open(&c, tr[0])) != AX_OK) goto out;
    int64_t in_ch = c->channels, out_ch = 0;
    ax_case_close(c);
    const ax_method_ops *m = o->method->ops;
    if ((st = m->out_channels(o->method->self, in_ch, &out_ch)) != AX_OK) goto out;

    const ax_arch_ops *a = o->arch->ops;
    ax_arch_plan plan;
    memset(&plan, 0, sizeof plan);
    if ((st = a->plan(o->arch->self, &plan)) != AX_OK) goto out;
    for (int i = 0; i < 3; i++)
        if (plan.divisor[i] > 1 && o->patch[i] % plan.divisor[i] != 0) {
            st = AX_ERROR(AX_ERR_INVALID,
                          "pretrain: patch %d,%d,%d is not a multiple of %d,%d,%d, which arch '%s' needs", o->patch[0],
                          o->patch[1], o->patch[2], plan.divisor[0], plan.divisor[1], plan.divisor[2],
                          o->arch->item->plugin->name);
            goto out;
        }
    ax_rng init;
    ax_rng_init(&init, o->train.seed, AX_PRETRAIN_INIT_STREAM);
    if ((st = a->build(o->arch->self, &p.net, in_ch, out_ch, &init)) != AX_OK) {
        ax_error_prefix("arch '%s': build", o->arch->item->plugin->name);
        goto out;
    }
    if ((st = ax_checkpoint_meta_build(&meta, o->arch, o->method, in_ch, out_ch)) != AX_OK) goto out;

    ax_train_opts t = o->train;
    char devname[32];
    if (!t.device) { /* pre-training defaults to $AXON_DEVICE (else the CPU) */
        ax_device d;
        if ((st = ax_device_default(&d)) != AX_OK) goto out;
        snprintf(devname, sizeof devname, d.type == AX_DEVICE_CPU ? "cpu" : "cuda:%d", (int)d.index);
        t.device = devname;
    }
    ax_lr_schedule sched = t.schedule;
    if (sched.base_lr == 0) sched.base_lr = t.optim.lr;
    if (sched.total_steps == 0) sched.total_steps = t.steps;
    if (!(config = ax_pretrain_config_json(o, in_ch, out_ch, &sched))) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto out;
    }
    t.config_json = config;
    t.n_meta = meta.n;
    t.meta_keys = (const char *const *)meta.keys;
    t.meta_values = (const char *const *)meta.values;

    if ((st = ax_pretrain_loader(&p.train, o, tr, ntr, t.seed, true)) != AX_OK) goto out;
    if ((st = ax_pretrain_loader(&p.val, o, nva ? va : tr, nva ? nva : ntr, t.seed ^ AX_PRETRAIN_VAL_SALT, false)) !=
        AX_OK)
        goto out;
    ax_train_hooks h = {.ctx = &p, .train_loss = ax_pretrain_train_loss, .val_loss = ax_pretrain_val_loss};
    st = ax_train_run(p.net, &t, &h, res);
out:
    ax_tensor_free(p.ahead);
    ax_loader_free(p.train);
    ax_loader_free(p.val);
    ax_module_free(p.net);
    ax_checkpoint_meta_clear(&meta);
    free(config);
    if (tr) ax_cache_paths_free(tr, ntr);
    if (va) ax_cache_paths_free(va, nva);
    return st;
}
