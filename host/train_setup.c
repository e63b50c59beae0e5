/* Run setup shared by the training runners (train_setup.h). */
#include "train_setup.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/cache.h"
#include "axon/log.h"

ax_train_input ax_train_input_default(void) {
    ax_train_input in;
    memset(&in, 0, sizeof in);
    in.patch[0] = in.patch[1] = in.patch[2] = 64;
    in.batch = 2;
    return in;
}

ax_status ax_train_input_check(const ax_train_input *in, const char *what) {
    if ((!in->data || !*in->data) && !in->dataset && !in->dataset_object)
        return AX_ERROR(AX_ERR_INVALID, "%s: 'data' (a cache folder or a dataset) is required", what);
    for (size_t i = 0; i < in->n_augs; i++)
        if (!in->augs[i] || in->augs[i]->item->plugin->kind != AX_PLUGIN_AUG)
            return AX_ERROR(AX_ERR_INVALID, "%s: augs[%zu] is not an AUG plugin instance", what, i + 1);
    for (int i = 0; i < 3; i++)
        if (in->patch[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: patch sizes must be >= 1, got %d,%d,%d", what, in->patch[0],
                            in->patch[1], in->patch[2]);
    if (in->batch < 1) return AX_ERROR(AX_ERR_INVALID, "%s: batch must be >= 1, got %d", what, in->batch);
    return AX_OK;
}

/* The dataset preprocessed into <out>/cache (the path written to cache). */
static ax_status ax_train_preprocess(const ax_train_input *in, const ax_split_opts *split, int progress,
                                     const char *out, char *cache) {
    ax_status st = ax_train_mkdirs(out);
    if (st != AX_OK) return st;
    if ((size_t)snprintf(cache, AX_TRAIN_PATH_MAX, "%s/cache", out) >= AX_TRAIN_PATH_MAX)
        return AX_ERROR(AX_ERR_INVALID, "path too long: %s", out);
    ax_dataset *ds = NULL;
    st = in->dataset_object ? AX_OK : ax_dataset_open(&ds, in->dataset);
    if (st != AX_OK) return st;
    ax_preprocess_opts po = ax_preprocess_opts_default();
    po.out = cache;
    memcpy(po.spacing, in->spacing, sizeof po.spacing);
    po.threads = in->threads;
    if (split) po.split = *split;
    if (progress != 0) po.progress = ax_preprocess_progress_print;
    ax_preprocess_report rep;
    memset(&rep, 0, sizeof rep);
    st = ax_preprocess_run(in->dataset_object ? in->dataset_object : ds, &po, &rep);
    for (size_t i = 0; i < rep.n_failed; i++)
        AX_LOG_WARN("preprocess: %s skipped: %s", rep.failed_names[i], rep.failed_reasons[i]);
    ax_preprocess_report_free(&rep);
    ax_dataset_free(ds);
    return st;
}

ax_status ax_train_prepare(ax_train_opts *t, ax_train_input *in, const ax_split_opts *split, char *devname,
                           char *cache) {
    ax_status st = ax_train_device_resolve(t->device, devname, &t->device);
    if (st != AX_OK || (in->data && *in->data)) return st;
    if ((st = ax_train_preprocess(in, split, t->progress, t->out, cache)) == AX_OK) in->data = cache;
    return st;
}

ax_status ax_train_lists_open(ax_train_lists *l, const char *data) {
    memset(l, 0, sizeof *l);
    ax_status st = ax_cache_list(data, "train", &l->train, &l->n_train);
    if (st == AX_OK && l->n_train == 0)
        st = AX_ERROR(AX_ERR_INVALID, "%s: the cache has no training cases", data);
    if (st == AX_OK) st = ax_cache_list(data, "val", &l->val, &l->n_val);
    if (st == AX_OK && l->n_val == 0) AX_LOG_WARN("%s: no validation cases; validating on training cases", data);
    if (st != AX_OK) ax_train_lists_clear(l);
    return st;
}

void ax_train_lists_clear(ax_train_lists *l) {
    if (l->train) ax_cache_paths_free(l->train, l->n_train);
    if (l->val) ax_cache_paths_free(l->val, l->n_val);
    memset(l, 0, sizeof *l);
}

ax_status ax_train_net_build(ax_module **net, ax_arch_plan *plan, const ax_instance *arch, const char *what,
                             const int32_t patch[3], uint64_t seed, uint64_t stream, int64_t in_ch, int64_t out_ch) {
    *net = NULL;
    const ax_arch_ops *a = arch->ops;
    if (!a->build || !a->plan)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "arch '%s' has no build()/plan() (built for ABI 1.0?)",
                        arch->item->plugin->name);
    memset(plan, 0, sizeof *plan);
    ax_status st = a->plan(arch->self, plan);
    if (st != AX_OK) return st;
    for (int i = 0; i < 3; i++)
        if (plan->divisor[i] > 1 && patch[i] % plan->divisor[i] != 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: patch %d,%d,%d is not a multiple of %d,%d,%d, which arch '%s' needs",
                            what, patch[0], patch[1], patch[2], plan->divisor[0], plan->divisor[1], plan->divisor[2],
                            arch->item->plugin->name);
    ax_rng init;
    ax_rng_init(&init, seed, stream);
    if ((st = a->build(arch->self, net, in_ch, out_ch, &init)) != AX_OK)
        ax_error_prefix("arch '%s': build", arch->item->plugin->name);
    return st;
}

ax_status ax_train_loader_new(ax_loader **ld, const ax_train_input *in, char **paths, size_t n, uint64_t seed,
                              bool augment, bool labels) {
    ax_loader_opts lo = ax_loader_opts_default();
    size_t n_augs = augment ? in->n_augs : 0;
    ax_loader_aug *augs = NULL;
    if (n_augs) {
        augs = calloc(n_augs, sizeof *augs);
        if (!augs) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n_augs; i++) {
            augs[i].ops = in->augs[i]->ops;
            augs[i].self = in->augs[i]->self;
            augs[i].name = in->augs[i]->item->plugin->name;
        }
    }
    lo.paths = (const char *const *)paths;
    lo.n_paths = n;
    memcpy(lo.patch, in->patch, sizeof lo.patch);
    lo.batch = in->batch;
    lo.threads = in->threads;
    lo.seed = seed;
    lo.oversample_fg = in->oversample_fg;
    lo.augs = augs;
    lo.n_augs = n_augs;
    lo.labels = labels;
    ax_status st = ax_loader_new(ld, &lo);
    free(augs); /* the loader copies the chain */
    return st;
}

ax_status ax_train_device_resolve(const char *dev, char *buf, const char **out) {
    ax_device d;
    *out = dev;
    if (dev) return ax_device_parse(dev, &d) == AX_OK ? AX_OK : ax_error_prefix("device");
    ax_status st = ax_device_default(&d);
    if (st != AX_OK) return ax_error_prefix("device");
    snprintf(buf, 32, d.type == AX_DEVICE_CPU ? "cpu" : "cuda:%d", (int)d.index);
    *out = buf;
    return AX_OK;
}

void ax_train_result_reset(ax_train_result *res) {
    memset(res, 0, sizeof *res);
    res->loss = res->lr = res->grad_norm = res->val_loss = res->first_val_loss = NAN;
}

void ax_train_opts_attach(ax_train_opts *t, const char *config_json, const ax_checkpoint_meta *meta) {
    t->config_json = config_json;
    t->n_meta = meta->n;
    t->meta_keys = (const char *const *)meta->keys;
    t->meta_values = (const char *const *)meta->values;
}

ax_status ax_train_meta_add(ax_checkpoint_meta *m, const char *key, char *value) {
    if (!value) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    if (m->n >= sizeof m->keys / sizeof m->keys[0]) {
        free(value);
        return AX_ERROR(AX_ERR_INTERNAL, "checkpoint metadata: too many keys");
    }
    m->keys[m->n] = strdup(key);
    m->values[m->n] = value;
    if (!m->keys[m->n]) {
        free(value);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    m->n++;
    return AX_OK;
}

/* ---- config.json ------------------------------------------------------------------- */

json_t *ax_train_config_begin(const char *runner, const char *data, const char *out) {
    json_t *j = json_object();
    json_object_set_new(j, "runner", json_string(runner));
    json_object_set_new(j, "data", json_string(data));
    json_object_set_new(j, "out", json_string(out));
    return j;
}

json_t *ax_train_plugin_json(const ax_instance *inst) {
    char *pj = ax_checkpoint_params_json(inst->params); /* what was set: presets resolve in the plugin */
    json_t *params = pj ? json_loads(pj, 0, NULL) : NULL;
    free(pj);
    return json_pack("{s:s,s:o}", "name", inst->item->plugin->name, "params", params ? params : json_object());
}

json_t *ax_train_augs_json(const ax_instance *const *augs, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, ax_train_plugin_json(augs[i]));
    return a;
}

void ax_train_config_add_run(json_t *j, const ax_train_input *in, const ax_train_opts *t) {
    json_object_set_new(j, "patch", json_pack("[iii]", in->patch[0], in->patch[1], in->patch[2]));
    json_object_set_new(j, "batch", json_integer(in->batch));
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
}

char *ax_train_config_dump(json_t *j) {
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return s;
}
