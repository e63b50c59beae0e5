/* Adaptation plans in checkpoint metadata, and the transfer of pre-trained
 * stem + encoder weights into a fine-tuning network. */
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/ops.h"
#include "axon/safetensors.h"
#include "axon/segment.h"

/* ---- plan <-> JSON ------------------------------------------------------------ */

typedef struct plan_role {
    const char *key;
    size_t offset;
} plan_role;

static const plan_role plan_roles[] = {
    {"stem", offsetof(ax_arch_plan, stem)},
    {"encoder", offsetof(ax_arch_plan, encoder)},
    {"decoder", offsetof(ax_arch_plan, decoder)},
    {"input_projection", offsetof(ax_arch_plan, input_projection)},
    {"output_head", offsetof(ax_arch_plan, output_head)},
    {"pos_embed", offsetof(ax_arch_plan, pos_embed)},
};
enum { N_ROLES = sizeof plan_roles / sizeof plan_roles[0] };

static const char **role_slot(ax_arch_plan *p, int i) { return (const char **)((char *)p + plan_roles[i].offset); }
static const char *role_of(const ax_arch_plan *p, int i) {
    return *(const char *const *)((const char *)p + plan_roles[i].offset);
}

ax_status ax_arch_plan_to_json(char **json, const ax_arch_plan *plan) {
    if (!json || !plan) return AX_ERROR(AX_ERR_INVALID, "ax_arch_plan_to_json: NULL argument");
    *json = NULL;
    json_t *o = json_object(), *div = json_array();
    bool ok = o && div;
    for (int i = 0; i < N_ROLES && ok; i++) {
        const char *v = role_of(plan, i);
        ok = json_object_set_new(o, plan_roles[i].key, v ? json_string(v) : json_null()) == 0;
    }
    for (int i = 0; i < 3 && ok; i++) ok = json_array_append_new(div, json_integer(plan->divisor[i])) == 0;
    if (ok) {
        ok = json_object_set_new(o, "divisor", div) == 0;
        div = NULL;
    }
    if (ok) *json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    json_decref(div);
    if (!*json) return AX_ERROR(AX_ERR_NOMEM, "ax_arch_plan_to_json: out of memory (or a role is not UTF-8)");
    return AX_OK;
}

void ax_arch_plan_clear(ax_arch_plan *plan) {
    if (!plan) return;
    for (int i = 0; i < N_ROLES; i++) free((char *)role_of(plan, i));
    memset(plan, 0, sizeof *plan);
}

ax_status ax_arch_plan_parse(ax_arch_plan *plan, const char *json) {
    if (!plan || !json) return AX_ERROR(AX_ERR_INVALID, "ax_arch_plan_parse: NULL argument");
    memset(plan, 0, sizeof *plan);
    json_error_t err;
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!o) return AX_ERROR(AX_ERR_FORMAT, "plan is not JSON: %s (column %d)", err.text, err.column);
    ax_status st = AX_OK;
    if (!json_is_object(o)) st = AX_ERROR(AX_ERR_FORMAT, "plan is not a JSON object");
    for (int i = 0; i < N_ROLES && st == AX_OK; i++) {
        json_t *v = json_object_get(o, plan_roles[i].key);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v)) {
            st = AX_ERROR(AX_ERR_FORMAT, "plan: \"%s\" is not a string or null", plan_roles[i].key);
            break;
        }
        char *s = strdup(json_string_value(v));
        if (!s) st = AX_ERROR(AX_ERR_NOMEM, "ax_arch_plan_parse: out of memory");
        *role_slot(plan, i) = s;
    }
    json_t *div = st == AX_OK ? json_object_get(o, "divisor") : NULL;
    if (div) {
        if (!json_is_array(div) || json_array_size(div) != 3)
            st = AX_ERROR(AX_ERR_FORMAT, "plan: \"divisor\" is not an array of 3 integers");
        for (int i = 0; i < 3 && st == AX_OK; i++) {
            json_t *d = json_array_get(div, (size_t)i);
            if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > INT32_MAX)
                st = AX_ERROR(AX_ERR_FORMAT, "plan: \"divisor\"[%d] is not an integer in 0..%d", i, INT32_MAX);
            else
                plan->divisor[i] = (int32_t)json_integer_value(d);
        }
    }
    json_decref(o);
    if (st != AX_OK) ax_arch_plan_clear(plan);
    return st;
}

/* ---- transfer ------------------------------------------------------------------- */

void ax_transfer_report_clear(ax_transfer_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_copied; i++) free(r->copied[i]);
    for (size_t i = 0; i < r->n_adapted; i++) free(r->adapted[i]);
    free(r->copied);
    free(r->adapted);
    memset(r, 0, sizeof *r);
}

/* Length of `prefix` when `key` is prefix itself or lies under it
 * ("prefix.x"), else 0. */
static size_t under(const char *key, const char *prefix) {
    if (!prefix || !*prefix) return 0;
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0 || (key[n] != '\0' && key[n] != '.')) return 0;
    return n;
}

typedef struct pair {
    size_t net;      /* index in the net's state dict */
    ax_tensor *src;  /* the checkpoint's tensor */
    bool adapt;      /* input projection with another channel count */
} pair;

/* Appends "; " + text to a bounded message buffer. */
static void note(char *msg, size_t size, int *count, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void note(char *msg, size_t size, int *count, const char *fmt, ...) {
    if (++*count > 4) return;
    size_t len = strlen(msg);
    if (len + 8 >= size) return;
    if (len) len += (size_t)snprintf(msg + len, size - len, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + len, size - len, fmt, ap);
    va_end(ap);
}

static char *sh(char *buf, size_t size, const ax_tensor *t) { return ax_shape_str(buf, size, t->ndim, t->shape); }

/* dst[:, c] = sum_j src[:, j] / C for every c. */
static ax_status spread_channels(ax_tensor *dst, const ax_tensor *src) {
    ax_tensor *f = NULL, *s = NULL, *m = NULL, *e = NULL;
    ax_status st = ax_tensor_to_dtype(&f, src, AX_DTYPE_F32);
    if (st == AX_OK) st = ax_sum(&s, f, 1, (const int[]){1}, true);
    if (st == AX_OK) st = ax_mul_scalar(&m, s, 1.0 / (double)dst->shape[1]);
    if (st == AX_OK) st = ax_tensor_expand(&e, m, dst->ndim, dst->shape);
    if (st == AX_OK) st = ax_tensor_copy_(dst, e);
    ax_tensor_free(f);
    ax_tensor_free(s);
    ax_tensor_free(m);
    ax_tensor_free(e);
    return st;
}

static ax_status report_add(char ***list, size_t *n, const char *name) {
    char **l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l) return AX_ERROR(AX_ERR_NOMEM, "ax_transfer_pretrained: out of memory");
    *list = l;
    if (!(l[*n] = strdup(name))) return AX_ERROR(AX_ERR_NOMEM, "ax_transfer_pretrained: out of memory");
    (*n)++;
    return AX_OK;
}

ax_status ax_transfer_pretrained(ax_module *net, const char *checkpoint, const ax_arch_plan *plan,
                                 int64_t in_channels, ax_transfer_report *rep) {
    if (!net || !checkpoint) return AX_ERROR(AX_ERR_INVALID, "ax_transfer_pretrained: NULL argument");
    if (in_channels < 1)
        return AX_ERROR(AX_ERR_INVALID, "ax_transfer_pretrained: in_channels %lld (want >= 1)",
                        (long long)in_channels);
    ax_safetensors *f = NULL;
    ax_status st = ax_safetensors_open(&f, checkpoint);
    if (st != AX_OK) return st;
    ax_arch_plan ck = {0};
    const char *meta = ax_safetensors_metadata(f, AX_CKPT_META_PLAN);
    if (!meta) {
        ax_safetensors_close(f);
        return AX_ERROR(AX_ERR_FORMAT, "%s: no adaptation plan (__metadata__ key \"%s\"), so its encoder and stem "
                        "keys are unknown; use a checkpoint saved by an axon pre-training run",
                        checkpoint, AX_CKPT_META_PLAN);
    }
    st = ax_arch_plan_parse(&ck, meta);
    if (st != AX_OK) {
        ax_safetensors_close(f);
        return ax_error_prefix("%s", checkpoint);
    }
    const ax_arch_plan *dp = plan ? plan : &ck;
    const char *src_role[2] = {ck.stem, ck.encoder}, *dst_role[2] = {dp->stem, dp->encoder};
    char msg[1536] = "";
    int n_mismatch = 0, n_missing = 0;
    ax_named_tensors sd = {0};
    pair *pairs = NULL;
    size_t n_pairs = 0, n_skipped = 0;
    bool *covered = NULL;
    if (!ck.stem && !ck.encoder)
        st = AX_ERROR(AX_ERR_FORMAT, "%s: its plan names neither a stem nor an encoder", checkpoint);
    for (int r = 0; r < 2 && st == AX_OK; r++)
        if (src_role[r] && !dst_role[r])
            st = AX_ERROR(AX_ERR_INVALID, "%s: the checkpoint has a %s (\"%s\") but the network's plan has none",
                          checkpoint, r ? "encoder" : "stem", src_role[r]);
    if (st == AX_OK) st = ax_module_state_dict(net, &sd);
    const size_t nf = ax_safetensors_count(f);
    if (st == AX_OK) {
        pairs = calloc(nf ? nf : 1, sizeof *pairs);
        covered = calloc(sd.n ? sd.n : 1, sizeof *covered);
        if (!pairs || !covered) st = AX_ERROR(AX_ERR_NOMEM, "ax_transfer_pretrained: out of memory");
    }
    /* the input projection's weight, by identity: a module registered under
     * two names (dynamic_network_architectures' "conv" and "all_modules.0")
     * puts it in the state dict twice */
    char proj[512] = "";
    const ax_tensor *proj_w = NULL;
    if (dp->input_projection) {
        snprintf(proj, sizeof proj, "%s.weight", dp->input_projection);
        proj_w = ax_module_get_parameter(net, proj);
        if (!proj_w) proj_w = ax_module_get_buffer(net, proj);
    }
    char sa[96], sb[96], name[1024];
    for (size_t i = 0; i < nf && st == AX_OK; i++) {
        const char *key = ax_safetensors_name(f, i);
        int role = -1;
        size_t plen = 0;
        for (int r = 0; r < 2 && role < 0; r++)
            if ((plen = under(key, src_role[r])) != 0) role = r;
        if (role < 0) {
            n_skipped++;
            continue;
        }
        int len = snprintf(name, sizeof name, "%s%s", dst_role[role], key + plen);
        if (len < 0 || (size_t)len >= sizeof name) {
            st = AX_ERROR(AX_ERR_INVALID, "%s: key '%s' is too long", checkpoint, key);
            break;
        }
        size_t j = 0;
        while (j < sd.n && strcmp(sd.names[j], name) != 0) j++;
        if (j == sd.n) {
            note(msg, sizeof msg, &n_missing, "'%s' has no '%s' in the network", key, name);
            continue;
        }
        ax_tensor *src = NULL;
        st = ax_safetensors_get(f, key, &src);
        if (st != AX_OK) {
            ax_error_prefix("%s", checkpoint);
            break;
        }
        const ax_tensor *dst = sd.tensors[j];
        bool same = ax_tensor_same_shape(src, dst), adapt = false;
        if (!same && proj_w && dst == proj_w && src->ndim == dst->ndim && dst->ndim >= 2) {
            adapt = true;
            for (int d = 0; d < dst->ndim; d++)
                if (d != 1 && src->shape[d] != dst->shape[d]) adapt = false;
        }
        if (!same && !adapt) {
            note(msg, sizeof msg, &n_mismatch, "%s: checkpoint has %s, network has %s", name, sh(sa, sizeof sa, src),
                 sh(sb, sizeof sb, dst));
            ax_tensor_free(src);
            continue;
        }
        if (!ax_dtype_is_float(src->dtype) && src->dtype != dst->dtype) {
            note(msg, sizeof msg, &n_mismatch, "%s: checkpoint has %s, network has %s", name,
                 ax_dtype_name(src->dtype), ax_dtype_name(dst->dtype));
            ax_tensor_free(src);
            continue;
        }
        covered[j] = true;
        pairs[n_pairs++] = (pair){.net = j, .src = src, .adapt = adapt};
    }
    /* every stem / encoder key of the network must come from the checkpoint */
    for (size_t j = 0; j < sd.n && st == AX_OK; j++) {
        if (covered[j]) continue;
        for (int r = 0; r < 2; r++)
            if (src_role[r] && under(sd.names[j], dst_role[r])) {
                note(msg, sizeof msg, &n_missing, "network key '%s' is not in the checkpoint", sd.names[j]);
                break;
            }
    }
    if (st == AX_OK && n_pairs == 0 && !n_missing && !n_mismatch)
        st = AX_ERROR(AX_ERR_FORMAT, "%s: no tensor under the plan's stem \"%s\" or encoder \"%s\"", checkpoint,
                      ck.stem ? ck.stem : "(none)", ck.encoder ? ck.encoder : "(none)");
    if (st == AX_OK && (n_missing || n_mismatch))
        st = AX_ERROR(AX_ERR_INVALID, "%s: the stem/encoder does not fit the network (%d shape mismatches, %d "
                      "missing keys): %s%s",
                      checkpoint, n_mismatch, n_missing, msg, n_missing + n_mismatch > 4 ? "; ..." : "");
    if (st == AX_OK && proj_w && (proj_w->ndim < 2 || proj_w->shape[1] != in_channels))
        st = AX_ERROR(AX_ERR_INVALID, "ax_transfer_pretrained: the network's input projection %s is %s, not %lld "
                      "input channels",
                      proj, sh(sa, sizeof sa, proj_w), (long long)in_channels);
    /* everything checked: now write (the net stays untouched on any error above) */
    ax_transfer_report r = {0};
    const bool writing = st == AX_OK;
    if (writing) ax_no_grad_begin();
    for (size_t i = 0; i < n_pairs && st == AX_OK; i++) {
        ax_tensor *dst = sd.tensors[pairs[i].net];
        st = pairs[i].adapt ? spread_channels(dst, pairs[i].src) : ax_tensor_copy_(dst, pairs[i].src);
        if (st != AX_OK) ax_error_prefix("%s: %s", checkpoint, sd.names[pairs[i].net]);
    }
    if (writing) ax_no_grad_end();
    /* the report in state-dict order */
    for (size_t j = 0; j < sd.n && st == AX_OK && rep; j++) {
        if (!covered[j]) continue;
        st = report_add(&r.copied, &r.n_copied, sd.names[j]);
        for (size_t i = 0; i < n_pairs && st == AX_OK; i++)
            if (pairs[i].net == j && pairs[i].adapt) st = report_add(&r.adapted, &r.n_adapted, sd.names[j]);
    }
    r.n_skipped = n_skipped;
    if (st == AX_OK && rep) *rep = r;
    else ax_transfer_report_clear(&r);
    for (size_t i = 0; i < n_pairs; i++) ax_tensor_free(pairs[i].src);
    free(pairs);
    free(covered);
    ax_named_tensors_clear(&sd);
    ax_arch_plan_clear(&ck);
    ax_safetensors_close(f);
    return st;
}
