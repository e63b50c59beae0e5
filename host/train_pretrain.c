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
#include "train_setup.h"

ax_pretrain_opts ax_pretrain_opts_default(void) {
    ax_pretrain_opts o;
    memset(&o, 0, sizeof o);
    o.train = ax_train_opts_default();
    o.input = ax_train_input_default();
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

static char *ax_pretrain_config_json(const ax_pretrain_opts *o, int64_t in_ch, int64_t out_ch,
                                     const ax_lr_schedule *sched) {
    const ax_train_opts *t = &o->train;
    json_t *j = ax_train_config_begin("pretrain", o->input.data, t->out);
    json_object_set_new(j, "arch", ax_train_plugin_json(o->arch));
    json_object_set_new(j, "method", ax_train_plugin_json(o->method));
    json_object_set_new(j, "augs", ax_train_augs_json(o->input.augs, o->input.n_augs));
    json_object_set_new(j, "in_channels", json_integer(in_ch));
    json_object_set_new(j, "out_channels", json_integer(out_ch));
    ax_train_config_add_run(j, &o->input, t);
    json_object_set_new(j, "schedule",
                        json_pack("{s:s,s:I,s:f,s:f}", "kind", ax_lr_kind_name(sched->kind), "warmup",
                                  (json_int_t)sched->warmup_steps, "power", sched->power, "min_lr", sched->min_lr));
    json_object_set_new(j, "clip", json_real(t->clip));
    json_object_set_new(j, "save_every", json_integer(t->save_every));
    json_object_set_new(j, "keep_every", json_integer(t->keep_every));
    json_object_set_new(j, "val_every", json_integer(t->val_every));
    json_object_set_new(j, "val_batches", json_integer(o->val_batches));
    json_object_set_new(j, "max_nonfinite", json_integer(t->max_nonfinite));
    json_object_set_new(j, "threads", json_integer(o->input.threads));
    json_object_set_new(j, "resume", json_boolean(t->resume));
    return ax_train_config_dump(j);
}

/* ---- setup ------------------------------------------------------------------------- */

static ax_status ax_pretrain_check(const ax_pretrain_opts *o) {
    ax_status st = ax_train_input_check(&o->input, "pretrain");
    if (st != AX_OK) return st;
    if (!o->arch || o->arch->item->plugin->kind != AX_PLUGIN_ARCH)
        return AX_ERROR(AX_ERR_INVALID, "pretrain: 'arch' must be an ARCH plugin instance");
    if (!o->method || o->method->item->plugin->kind != AX_PLUGIN_METHOD)
        return AX_ERROR(AX_ERR_INVALID, "pretrain: 'method' must be a METHOD plugin instance");
    const ax_method_ops *m = o->method->ops;
    if (!m->loss || !m->out_channels)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "method '%s' has no loss()/out_channels() (built for ABI 1.0?)",
                        o->method->item->plugin->name);
    if (o->val_batches < 1)
        return AX_ERROR(AX_ERR_INVALID, "pretrain: val_batches must be >= 1, got %d", o->val_batches);
    return AX_OK;
}

ax_status ax_pretrain_run(const ax_pretrain_opts *o, ax_train_result *res) {
    ax_train_result_reset(res);
    ax_status st = ax_pretrain_check(o);
    if (st != AX_OK) return st;
    ax_pretrain_opts oo = *o; /* device resolved, data pointing at the cache */
    ax_train_opts t = o->train;
    char devname[32], cache[AX_TRAIN_PATH_MAX];
    if ((st = ax_train_prepare(&t, &oo.input, NULL, devname, cache)) != AX_OK) return st;
    o = &oo;
    ax_train_lists l = {0};
    ax_case *c = NULL;
    ax_pretrain p = {.o = o};
    ax_checkpoint_meta meta = {0};
    char *config = NULL;
    if ((st = ax_train_lists_open(&l, o->input.data)) != AX_OK) goto out;
    if ((st = ax_case_open(&c, l.train[0])) != AX_OK) goto out;
    int64_t in_ch = c->channels, out_ch = 0;
    ax_case_close(c);
    const ax_method_ops *m = o->method->ops;
    if ((st = m->out_channels(o->method->self, in_ch, &out_ch)) != AX_OK) goto out;
    ax_arch_plan plan;
    if ((st = ax_train_net_build(&p.net, &plan, o->arch, "pretrain", o->input.patch, t.seed,
                                 AX_PRETRAIN_INIT_STREAM, in_ch, out_ch)) != AX_OK)
        goto out;
    if ((st = ax_checkpoint_meta_build(&meta, o->arch, o->method, in_ch, out_ch)) != AX_OK) goto out;

    ax_lr_schedule sched = t.schedule;
    if (sched.base_lr == 0) sched.base_lr = t.optim.lr;
    if (sched.total_steps == 0) sched.total_steps = t.steps;
    if (!(config = ax_pretrain_config_json(o, in_ch, out_ch, &sched))) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto out;
    }
    ax_train_opts_attach(&t, config, &meta);
    if ((st = ax_train_loader_new(&p.train, &o->input, l.train, l.n_train, t.seed, true, false)) != AX_OK) goto out;
    /* fixed validation batches: no augmentation, their own seed */
    if ((st = ax_train_loader_new(&p.val, &o->input, l.n_val ? l.val : l.train, l.n_val ? l.n_val : l.n_train,
                                  t.seed ^ AX_PRETRAIN_VAL_SALT, false, false)) != AX_OK)
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
    ax_train_lists_clear(&l);
    return st;
}
