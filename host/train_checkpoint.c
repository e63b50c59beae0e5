/* Checkpoints that rebuild their own network (see train_checkpoint.h). */
#include "train_checkpoint.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/safetensors.h"

static ax_status ax_meta_add(ax_checkpoint_meta *m, const char *k, char *v_owned) {
    if (!v_owned) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    if (m->n >= sizeof m->keys / sizeof m->keys[0]) {
        free(v_owned);
        return AX_ERROR(AX_ERR_INTERNAL, "checkpoint metadata: too many keys");
    }
    m->keys[m->n] = strdup(k);
    m->values[m->n] = v_owned;
    if (!m->keys[m->n]) {
        free(v_owned);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    m->n++;
    return AX_OK;
}

static char *ax_meta_int(int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return strdup(buf);
}

void ax_checkpoint_meta_clear(ax_checkpoint_meta *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) free(m->keys[i]), free(m->values[i]);
    memset(m, 0, sizeof *m);
}

char *ax_checkpoint_plan_json(const ax_arch_plan *p) {
    json_t *j = json_object();
    const char *names[6] = {"stem", "encoder", "decoder", "input_projection", "output_head", "pos_embed"};
    const char *vals[6] = {p->stem, p->encoder, p->decoder, p->input_projection, p->output_head, p->pos_embed};
    for (int i = 0; i < 6; i++) json_object_set_new(j, names[i], vals[i] ? json_string(vals[i]) : json_null());
    json_object_set_new(j, "divisor", json_pack("[iii]", (int)p->divisor[0], (int)p->divisor[1], (int)p->divisor[2]));
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

char *ax_checkpoint_params_json(const ax_params *p) {
    char *all = ax_params_to_json(p);
    json_t *j = all ? json_loads(all, 0, NULL) : NULL;
    free(all);
    if (!j) return NULL;
    json_t *set = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) if (ax_params_is_set(p, k)) json_object_set(set, k, v);
    json_decref(j);
    /* 15 digits read best ("0.6", not "0.59999999999999998"); 17 when some
     * value would not read back exactly */
    char *s = json_dumps(set, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_t *back = s ? json_loads(s, 0, NULL) : NULL;
    if (s && (!back || !json_equal(back, set))) {
        free(s);
        s = json_dumps(set, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    }
    json_decref(back);
    json_decref(set);
    return s;
}

ax_status ax_checkpoint_meta_build(ax_checkpoint_meta *m, const ax_instance *arch, const ax_instance *method,
                                   int64_t in_channels, int64_t out_channels) {
    memset(m, 0, sizeof *m);
    const ax_arch_ops *aops = arch->ops;
    ax_arch_plan plan;
    memset(&plan, 0, sizeof plan);
    if (!aops->plan)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "arch '%s' has no plan() (built for ABI 1.0?)", arch->item->plugin->name);
    ax_status st = aops->plan(arch->self, &plan);
    if (st != AX_OK) return ax_error_prefix("arch '%s': plan", arch->item->plugin->name);
    st = ax_meta_add(m, "format", strdup(AX_CHECKPOINT_FORMAT));
    if (st == AX_OK) st = ax_meta_add(m, "arch", strdup(arch->item->plugin->name));
    if (st == AX_OK) st = ax_meta_add(m, "arch_params", ax_checkpoint_params_json(arch->params));
    if (st == AX_OK && method) st = ax_meta_add(m, "method", strdup(method->item->plugin->name));
    if (st == AX_OK && method) st = ax_meta_add(m, "method_params", ax_checkpoint_params_json(method->params));
    if (st == AX_OK) st = ax_meta_add(m, "in_channels", ax_meta_int(in_channels));
    if (st == AX_OK) st = ax_meta_add(m, "out_channels", ax_meta_int(out_channels));
    if (st == AX_OK) st = ax_meta_add(m, "plan", ax_checkpoint_plan_json(&plan));
    if (st != AX_OK) ax_checkpoint_meta_clear(m);
    return st;
}

/* ---- parameters from JSON ------------------------------------------------------------ */

static ax_status ax_json_value_text(json_t *v, char *buf, size_t n) {
    switch (json_typeof(v)) {
    case JSON_INTEGER: snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return AX_OK;
    case JSON_REAL: snprintf(buf, n, "%.17g", json_real_value(v)); return AX_OK;
    case JSON_TRUE: snprintf(buf, n, "true"); return AX_OK;
    case JSON_FALSE: snprintf(buf, n, "false"); return AX_OK;
    case JSON_STRING: snprintf(buf, n, "%s", json_string_value(v)); return AX_OK;
    case JSON_ARRAY: {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < json_array_size(v); i++) {
            char one[64];
            if (ax_json_value_text(json_array_get(v, i), one, sizeof one) != AX_OK) return AX_ERR_INVALID;
            int w = snprintf(buf + used, n - used, "%s%s", i ? "," : "", one);
            if (w < 0 || (size_t)w >= n - used) return AX_ERR_INVALID;
            used += (size_t)w;
        }
        return AX_OK;
    }
    default: return AX_ERR_INVALID;
    }
}

ax_status ax_checkpoint_params_from_json(ax_params **out, const ax_param_spec *spec, const char *owner,
                                         const char *json) {
    static const ax_param_spec none[] = {{0}};
    json_error_t je;
    json_t *j = json_loads(json ? json : "{}", 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return AX_ERROR(AX_ERR_FORMAT, "%s: parameters are not a JSON object: %s", owner, j ? "" : je.text);
    }
    ax_status st = ax_params_new(out, spec ? spec : none, owner);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (st != AX_OK) break;
        if (json_is_null(v)) continue; /* an unset required value */
        char text[1024];
        if (ax_json_value_text(v, text, sizeof text) != AX_OK) {
            st = AX_ERROR(AX_ERR_FORMAT, "%s: parameter '%s' has an unusable JSON value", owner, key);
            break;
        }
        st = ax_params_set_text(*out, key, text);
    }
    json_decref(j);
    if (st != AX_OK) {
        ax_params_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- weights ------------------------------------------------------------------------------ */

typedef struct ax_mismatch {
    char text[1536];
    size_t used;
    int shown, more;
    int per_kind[3];
} ax_mismatch;

/* kind: 0 shape, 1 missing, 2 unexpected; the first 3 of each are shown. */
static void ax_mismatch_add(ax_mismatch *m, int kind, const char *fmt, const char *key, const char *a,
                            const char *b) {
    if (m->per_kind[kind]++ >= 3) {
        m->more++;
        return;
    }
    char one[512];
    snprintf(one, sizeof one, fmt, key, a, b);
    int w = snprintf(m->text + m->used, sizeof m->text - m->used, "%s%s", m->shown ? "; " : "", one);
    if (w > 0 && (size_t)w < sizeof m->text - m->used) m->used += (size_t)w;
    m->shown++;
}

ax_status ax_checkpoint_load_weights(ax_module *net, const char *path) {
    ax_safetensors *f;
    ax_status st = ax_safetensors_open(&f, path);
    if (st != AX_OK) return st;
    ax_named_tensors sd = {0};
    if ((st = ax_module_state_dict(net, &sd)) != AX_OK) {
        ax_safetensors_close(f);
        return st;
    }
    ax_mismatch mm = {0};
    char a[96], b[96];
    for (size_t i = 0; i < sd.n; i++) {
        ax_tensor *t = NULL;
        ax_status g = ax_safetensors_get(f, sd.names[i], &t);
        if (g == AX_ERR_NOT_FOUND) {
            ax_mismatch_add(&mm, 1, "%s: missing in file%s%s", sd.names[i], "", "");
        } else if (g == AX_OK && !ax_tensor_same_shape(t, sd.tensors[i])) {
            ax_mismatch_add(&mm, 0, "%s: file %s, network %s", sd.names[i],
                            ax_shape_str(a, sizeof a, t->ndim, t->shape),
                            ax_shape_str(b, sizeof b, sd.tensors[i]->ndim, sd.tensors[i]->shape));
        }
        ax_tensor_free(t);
    }
    for (size_t i = 0; i < ax_safetensors_count(f); i++) {
        const char *name = ax_safetensors_name(f, i);
        bool known = false;
        for (size_t k = 0; k < sd.n && !known; k++) known = strcmp(sd.names[k], name) == 0;
        if (!known) ax_mismatch_add(&mm, 2, "%s: not in network%s%s", name, "", "");
    }
    ax_named_tensors_clear(&sd);
    if (mm.shown) {
        const char *arch = ax_safetensors_metadata(f, "arch");
        char more[48] = "";
        if (mm.more) snprintf(more, sizeof more, " (%d more)", mm.more);
        st = AX_ERROR(AX_ERR_INVALID, "%s: does not fit this network%s%s%s: %s%s", path, arch ? " (arch '" : "",
                      arch ? arch : "", arch ? "' in the file)" : "", mm.text, more);
        ax_safetensors_close(f);
        return st;
    }
    ax_safetensors_close(f);
    ax_load_report rep = {0};
    st = ax_module_load_safetensors(net, path, true, &rep);
    ax_load_report_clear(&rep);
    return st;
}

/* ---- rebuild ------------------------------------------------------------------------------ */

static ax_status ax_meta_int_of(ax_safetensors *f, const char *path, const char *key, int64_t *out) {
    const char *v = ax_safetensors_metadata(f, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || *end || end == v)
        return AX_ERROR(AX_ERR_FORMAT, "%s: metadata '%s' missing or not an integer (not an axon checkpoint?)", path,
                        key);
    *out = x;
    return AX_OK;
}

ax_status ax_checkpoint_rebuild(ax_registry *reg, const char *path, ax_module **net, ax_instance **arch,
                                ax_checkpoint_info *info) {
    *net = NULL;
    *arch = NULL;
    ax_safetensors *f;
    ax_status st = ax_safetensors_open(&f, path);
    if (st != AX_OK) return st;
    ax_checkpoint_info in = {0};
    const char *name = ax_safetensors_metadata(f, "arch");
    const char *pjson = ax_safetensors_metadata(f, "arch_params");
    const char *method = ax_safetensors_metadata(f, "method");
    if (!name || !pjson) {
        st = AX_ERROR(AX_ERR_FORMAT, "%s: no 'arch' and 'arch_params' metadata: not an axon checkpoint", path);
        goto fail;
    }
    if ((st = ax_meta_int_of(f, path, "in_channels", &in.in_channels)) != AX_OK) goto fail;
    if ((st = ax_meta_int_of(f, path, "out_channels", &in.out_channels)) != AX_OK) goto fail;
    const char *step = ax_safetensors_metadata(f, "step");
    in.step = step ? strtoll(step, NULL, 10) : 0;
    snprintf(in.arch, sizeof in.arch, "%s", name);
    snprintf(in.method, sizeof in.method, "%s", method ? method : "");
    const ax_registry_item *it = ax_registry_find(reg, AX_PLUGIN_ARCH, name);
    if (!it) {
        const char *near = ax_registry_suggest(reg, AX_PLUGIN_ARCH, name);
        st = AX_ERROR(AX_ERR_NOT_FOUND, "%s: needs arch plugin '%s', which is not on the plugin path%s%s%s", path, name,
                      near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "; see 'axon plugins'");
        goto fail;
    }
    char owner[160];
    snprintf(owner, sizeof owner, "%s: arch '%s'", path, name);
    ax_params *p;
    if ((st = ax_checkpoint_params_from_json(&p, it->plugin->params, owner, pjson)) != AX_OK) goto fail;
    if ((st = ax_instance_new(arch, it, p)) != AX_OK) goto fail;
    const ax_arch_ops *ops = (*arch)->ops;
    if (!ops->build) {
        st = AX_ERROR(AX_ERR_UNSUPPORTED, "arch '%s' has no build() (built for ABI 1.0?)", name);
        goto fail;
    }
    ax_rng rng;
    ax_rng_init(&rng, 0, 0); /* every weight is overwritten by the file */
    if ((st = ops->build((*arch)->self, net, in.in_channels, in.out_channels, &rng)) != AX_OK) {
        ax_error_prefix("%s: arch '%s': build", path, name);
        goto fail;
    }
    ax_safetensors_close(f);
    f = NULL;
    if ((st = ax_checkpoint_load_weights(*net, path)) != AX_OK) goto fail;
    if (info) *info = in;
    return AX_OK;
fail:
    ax_safetensors_close(f);
    ax_module_free(*net);
    ax_instance_free(*arch);
    *net = NULL;
    *arch = NULL;
    return st;
}
