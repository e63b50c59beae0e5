/* ax.pretrain{...} and ax.load_checkpoint(path): the training runners'
 * Lua face. A configuration table is checked key by key (unknown keys are
 * an error listing the valid ones) and mapped onto ax_pretrain_opts. */
#include "lua_train.h"

#include "lua_axon.h"

#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/dataset.h"
#include "axon/safetensors.h"
#include "lua_data.h"
#include "registry.h"
#include "train_checkpoint.h"
#include "train_pretrain.h"

/* lua_axon.c's plugin instances: userdata whose first member is the ax_instance *. */

const char *const ax_lua_pretrain_keys[] = {
    "data",         "out",      "arch",     "arch_params", "method",   "method_params", "augs",   "patch",
    "batch",        "steps",    "seed",     "optim",       "lr",       "momentum",      "nesterov", "weight_decay",
    "betas",        "eps",      "schedule", "warmup",      "power",    "min_lr",        "clip",   "save_every",
    "keep_every",   "val_every", "val_batches", "log_every", "max_nonfinite", "resume",  "threads", "progress",
    "oversample_fg", "spacing", "device", "amp", NULL};

static int ax_lua_fail(lua_State *L) { return luaL_error(L, "%s", ax_error_message()); }

/* ---- configuration fields --------------------------------------------------------- */

static void ax_cfg_check_keys(lua_State *L, int cfg, const char *what, const char *const *valid) {
    lua_pushnil(L);
    while (lua_next(L, cfg)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: keys must be strings, got a %s", what, luaL_typename(L, -1));
        const char *k = lua_tostring(L, -1);
        bool ok = false;
        const char *near = NULL;
        size_t best = 3;
        for (const char *const *v = valid; *v && !ok; v++) {
            ok = strcmp(*v, k) == 0;
            size_t d = ax_edit_distance(k, *v);
            if (d < best) best = d, near = *v;
        }
        if (ok) continue;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *const *v = valid; *v; v++) {
            if (v != valid) luaL_addstring(&b, ", ");
            luaL_addstring(&b, *v);
        }
        luaL_pushresult(&b);
        luaL_error(L, "%s: unknown key '%s'%s%s%s; valid: %s", what, k, near ? " (did you mean '" : "",
                   near ? near : "", near ? "'?)" : "", lua_tostring(L, -1));
    }
}

/* Pushes cfg[key]; returns false (and pops it) when nil. */
static bool ax_cfg_get(lua_State *L, int cfg, const char *key) {
    lua_getfield(L, cfg, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}

static double ax_cfg_num(lua_State *L, int cfg, const char *key, double def, double lo, double hi) {
    if (!ax_cfg_get(L, cfg, key)) return def;
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "pretrain: '%s' must be a number, got a %s", key, luaL_typename(L, -1));
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) luaL_error(L, "pretrain: '%s' = %g is out of range [%g, %g]", key, v, lo, hi);
    return v;
}

static int64_t ax_cfg_int(lua_State *L, int cfg, const char *key, int64_t def, int64_t lo, int64_t hi) {
    if (!ax_cfg_get(L, cfg, key)) return def;
    if (!lua_isinteger(L, -1)) {
        if (lua_type(L, -1) == LUA_TNUMBER)
            luaL_error(L, "pretrain: '%s' must be an integer, got %g", key, lua_tonumber(L, -1));
        luaL_error(L, "pretrain: '%s' must be an integer, got a %s", key, luaL_typename(L, -1));
    }
    int64_t v = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (v < lo || v > hi)
        luaL_error(L, "pretrain: '%s' = %lld is out of range [%lld, %lld]", key, (long long)v, (long long)lo,
                   (long long)hi);
    return v;
}

static bool ax_cfg_bool(lua_State *L, int cfg, const char *key, bool def) {
    if (!ax_cfg_get(L, cfg, key)) return def;
    if (!lua_isboolean(L, -1))
        luaL_error(L, "pretrain: '%s' must be true or false, got a %s", key, luaL_typename(L, -1));
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while cfg holds it. */
static const char *ax_cfg_str(lua_State *L, int cfg, const char *key, const char *def) {
    if (!ax_cfg_get(L, cfg, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "pretrain: '%s' must be a string, got a %s", key, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

/* A list of n numbers, or one number for all n. */
static void ax_cfg_nums(lua_State *L, int cfg, const char *key, int n, double *out) {
    if (!ax_cfg_get(L, cfg, key)) return;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        for (int i = 0; i < n; i++) out[i] = lua_tonumber(L, -1);
    } else if (lua_type(L, -1) == LUA_TTABLE && (int)lua_rawlen(L, -1) == n) {
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, -1, i + 1);
            if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "pretrain: '%s' element %d must be a number", key, i + 1);
            out[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "pretrain: '%s' must be a number or a list of %d numbers", key, n);
    }
    lua_pop(L, 1);
}

/* An instance from cfg[key]: a plugin object, or a name (created with
 * ax.<kind>(name, cfg[params_key])). Leaves the object on the stack, which
 * keeps it alive for the run. */
static const ax_instance *ax_cfg_push_instance(lua_State *L, int ax, int value, const char *kindname,
                                               const char *params_key, int cfg) {
    if (lua_type(L, value) == LUA_TSTRING) {
        lua_getfield(L, ax, kindname);
        lua_pushvalue(L, value);
        if (params_key)
            lua_getfield(L, cfg, params_key);
        else
            lua_pushnil(L);
        lua_call(L, 2, 1);
    } else {
        lua_pushvalue(L, value);
        if (params_key && ax_cfg_get(L, cfg, params_key))
            luaL_error(L, "pretrain: '%s' only goes with %s given by name", params_key, kindname);
    }
    const ax_instance *inst = ax_lua_test_instance(L, -1);
    if (!inst) luaL_error(L, "pretrain: %s must be a plugin name or an ax.%s(...) object", kindname, kindname);
    if (inst->item->plugin->kind != ax_plugin_kind_parse(kindname))
        luaL_error(L, "pretrain: %s '%s' is a %s plugin", kindname, inst->item->plugin->name,
                   ax_plugin_kind_name(inst->item->plugin->kind));
    return inst;
}

static const char *const ax_lua_dataset_keys[] = {"root", "format", "glob", "csv", "max_quality", "modalities",
                                                 "exclude_modalities", "skip_missing", NULL};

/* A string list at t[key] as a GC-owned array (the strings stay in t). */
static const char *const *ax_cfg_strings(lua_State *L, int t, const char *key, size_t *n) {
    *n = 0;
    if (!ax_cfg_get(L, t, key)) return NULL;
    if (!lua_istable(L, -1)) luaL_error(L, "pretrain: data.%s must be a list of strings", key);
    int list = lua_gettop(L);
    *n = (size_t)lua_rawlen(L, list);
    const char **v = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *v, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, key); /* anchored until the next call */
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "pretrain: data.%s[%d] must be a string", key, (int)i + 1);
        v[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

/* data = { root =, format =, ... }: a dataset preprocessed into <out>/cache. */
static void ax_lua_dataset_opts(lua_State *L, int t, ax_dataset_opts *d) {
    ax_cfg_check_keys(L, t, "pretrain: data", ax_lua_dataset_keys);
    d->root = ax_cfg_str(L, t, "root", NULL);
    if (!d->root) luaL_error(L, "pretrain: data.root is required (or give data = \"CACHE_FOLDER\")");
    d->format = ax_cfg_str(L, t, "format", "nifti-dir");
    d->glob = ax_cfg_str(L, t, "glob", NULL);
    d->csv = ax_cfg_str(L, t, "csv", NULL);
    d->max_quality = ax_cfg_num(L, t, "max_quality", NAN, 0, 100);
    d->modalities = ax_cfg_strings(L, t, "modalities", &d->n_modalities);
    d->exclude_modalities = ax_cfg_strings(L, t, "exclude_modalities", &d->n_exclude_modalities);
    d->skip_missing = ax_cfg_bool(L, t, "skip_missing", d->skip_missing);
}

static void ax_push_num_or_nil(lua_State *L, double v) {
    if (isfinite(v))
        lua_pushnumber(L, v);
    else if (isnan(v))
        lua_pushnil(L);
    else
        lua_pushnumber(L, v);
}

/* ax.pretrain{...} -> { checkpoint =, out =, step =, skipped =, interrupted =, metrics = {...} } */
static int ax_lua_pretrain(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    const int cfg = 1;
    ax_cfg_check_keys(L, cfg, "pretrain", ax_lua_pretrain_keys);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "axon");
    lua_call(L, 1, 1);
    const int ax = lua_gettop(L);

    ax_pretrain_opts o = ax_pretrain_opts_default();
    ax_train_opts *t = &o.train;
    ax_dataset_opts dso = ax_dataset_opts_default();
    if (!ax_cfg_get(L, cfg, "data"))
        luaL_error(L, "pretrain: 'data' (a preprocessed cache folder or a dataset table) is required");
    if (lua_type(L, -1) == LUA_TSTRING) {
        o.data = lua_tostring(L, -1);
    } else if (lua_istable(L, -1)) {
        ax_lua_dataset_opts(L, lua_gettop(L), &dso);
        o.dataset = &dso;
    } else if ((o.dataset_object = ax_lua_test_dataset(L, -1)) == NULL) {
        luaL_error(L, "pretrain: 'data' must be a cache folder, an ax.dataset{} or a dataset table, got a %s",
                   luaL_typename(L, -1));
    }
    ax_cfg_nums(L, cfg, "spacing", 3, o.spacing);
    t->out = ax_cfg_str(L, cfg, "out", NULL);
    if (!t->out) luaL_error(L, "pretrain: 'out' (the run folder) is required");

    if (!ax_cfg_get(L, cfg, "arch")) luaL_error(L, "pretrain: 'arch' is required");
    o.arch = ax_cfg_push_instance(L, ax, lua_gettop(L), "arch", "arch_params", cfg);
    if (!ax_cfg_get(L, cfg, "method")) luaL_error(L, "pretrain: 'method' is required");
    o.method = ax_cfg_push_instance(L, ax, lua_gettop(L), "method", "method_params", cfg);

    const ax_instance **augs = NULL;
    if (ax_cfg_get(L, cfg, "augs")) {
        if (!lua_istable(L, -1)) luaL_error(L, "pretrain: 'augs' must be a list of augmentations");
        int list = lua_gettop(L);
        o.n_augs = (size_t)lua_rawlen(L, list);
        augs = lua_newuserdatauv(L, (o.n_augs ? o.n_augs : 1) * sizeof *augs, 0); /* GC-owned */
        for (size_t i = 0; i < o.n_augs; i++) {
            lua_rawgeti(L, list, (lua_Integer)i + 1);
            augs[i] = ax_cfg_push_instance(L, ax, lua_gettop(L), "aug", NULL, cfg);
        }
        o.augs = augs;
    }

    double patch[3] = {64, 64, 64};
    ax_cfg_nums(L, cfg, "patch", 3, patch);
    for (int i = 0; i < 3; i++) {
        if (patch[i] < 1 || patch[i] > 4096 || patch[i] != floor(patch[i]))
            luaL_error(L, "pretrain: 'patch' sizes must be integers in [1, 4096], got %g", patch[i]);
        o.patch[i] = (int32_t)patch[i];
    }
    o.batch = (int32_t)ax_cfg_int(L, cfg, "batch", o.batch, 1, 4096);
    o.threads = (int32_t)ax_cfg_int(L, cfg, "threads", 0, 0, 1024);
    o.val_batches = (int32_t)ax_cfg_int(L, cfg, "val_batches", o.val_batches, 1, 100000);
    o.oversample_fg = ax_cfg_num(L, cfg, "oversample_fg", 0.0, 0.0, 1.0);
    t->steps = ax_cfg_int(L, cfg, "steps", t->steps, 1, INT64_MAX / 4);
    t->seed = (uint64_t)ax_cfg_int(L, cfg, "seed", (int64_t)t->seed, 0, INT64_MAX);
    if (ax_train_optim_parse(ax_cfg_str(L, cfg, "optim", "sgd"), &t->optim.kind) != AX_OK) ax_lua_fail(L);
    if (t->optim.kind == AX_OPTIM_ADAMW) t->optim.weight_decay = 0.05, t->optim.lr = 3e-4; /* reference ViT */
    t->optim.lr = ax_cfg_num(L, cfg, "lr", t->optim.lr, 0, 1e6);
    t->optim.momentum = ax_cfg_num(L, cfg, "momentum", t->optim.momentum, 0, 1);
    t->optim.nesterov = ax_cfg_bool(L, cfg, "nesterov", t->optim.nesterov);
    t->optim.weight_decay = ax_cfg_num(L, cfg, "weight_decay", t->optim.weight_decay, 0, 1e6);
    double betas[2] = {t->optim.beta1, t->optim.beta2};
    ax_cfg_nums(L, cfg, "betas", 2, betas);
    t->optim.beta1 = betas[0], t->optim.beta2 = betas[1];
    t->optim.eps = ax_cfg_num(L, cfg, "eps", t->optim.eps, 0, 1);
    if (ax_lr_kind_parse(ax_cfg_str(L, cfg, "schedule", "poly"), &t->schedule.kind) != AX_OK) ax_lua_fail(L);
    t->schedule.warmup_steps = ax_cfg_int(L, cfg, "warmup", 0, 0, INT64_MAX / 4);
    t->schedule.power = ax_cfg_num(L, cfg, "power", t->schedule.power, 1e-9, 1e3);
    t->schedule.min_lr = ax_cfg_num(L, cfg, "min_lr", 0, 0, 1e6);
    t->clip = ax_cfg_num(L, cfg, "clip", t->clip, 0, INFINITY);
    t->save_every = ax_cfg_int(L, cfg, "save_every", t->save_every, 1, INT64_MAX / 4);
    t->keep_every = ax_cfg_int(L, cfg, "keep_every", 0, 0, INT64_MAX / 4);
    t->val_every = ax_cfg_int(L, cfg, "val_every", 0, 0, INT64_MAX / 4);
    t->log_every = ax_cfg_int(L, cfg, "log_every", 0, 0, INT64_MAX / 4);
    t->max_nonfinite = (int)ax_cfg_int(L, cfg, "max_nonfinite", t->max_nonfinite, 1, 1000000);
    t->resume = ax_cfg_bool(L, cfg, "resume", false);
    t->device = ax_cfg_str(L, cfg, "device", NULL); /* checked by the run: "cpu", "cuda", "cuda:N" */
    t->amp = ax_cfg_str(L, cfg, "amp", NULL);       /* checked by the run: "bf16", "off" */
    if (ax_cfg_get(L, cfg, "progress")) {
        if (lua_isboolean(L, -1))
            t->progress = lua_toboolean(L, -1) ? -1 : 0;
        else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "lines") == 0)
            t->progress = 1;
        else
            luaL_error(L, "pretrain: 'progress' must be true, false or \"lines\"");
        lua_pop(L, 1);
    }

    ax_train_result r;
    ax_status st = ax_pretrain_run(&o, &r);
    if (st != AX_OK) return ax_lua_fail(L);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, r.checkpoint);
    lua_setfield(L, -2, "checkpoint");
    lua_pushstring(L, t->out);
    lua_setfield(L, -2, "out");
    lua_pushinteger(L, r.step);
    lua_setfield(L, -2, "step");
    lua_pushinteger(L, r.start_step);
    lua_setfield(L, -2, "start_step");
    lua_pushinteger(L, r.skipped);
    lua_setfield(L, -2, "skipped");
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, r.step);
    lua_setfield(L, -2, "step");
    ax_push_num_or_nil(L, r.loss);
    lua_setfield(L, -2, "loss");
    ax_push_num_or_nil(L, r.lr);
    lua_setfield(L, -2, "lr");
    ax_push_num_or_nil(L, r.grad_norm);
    lua_setfield(L, -2, "grad_norm");
    ax_push_num_or_nil(L, r.val_loss);
    lua_setfield(L, -2, "val_loss");
    ax_push_num_or_nil(L, r.first_val_loss);
    lua_setfield(L, -2, "first_val_loss");
    lua_setfield(L, -2, "metrics");
    return 1;
}

/* ---- checkpoints ---------------------------------------------------------------------- */

/* Push a JSON value as a Lua value (objects as tables, arrays as lists). */
static void ax_lua_push_json(lua_State *L, json_t *v) {
    switch (json_typeof(v)) {
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); return;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); return;
    case JSON_TRUE: lua_pushboolean(L, 1); return;
    case JSON_FALSE: lua_pushboolean(L, 0); return;
    case JSON_STRING: lua_pushstring(L, json_string_value(v)); return;
    case JSON_ARRAY:
        lua_createtable(L, (int)json_array_size(v), 0);
        for (size_t i = 0; i < json_array_size(v); i++) {
            ax_lua_push_json(L, json_array_get(v, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        lua_newtable(L);
        json_object_foreach(v, k, x) {
            ax_lua_push_json(L, x);
            lua_setfield(L, -2, k);
        }
        return;
    }
    default: lua_pushnil(L); return;
    }
}

/* ax.load_checkpoint(path) -> { net =, arch =, method =, step =, in_channels =, out_channels =,
 * plan =, meta = {...} }: the network rebuilt from the file's metadata alone
 * (ax.arch(arch, arch_params):build{...}, then net:load(path), strict). */
static int ax_lua_load_checkpoint(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    ax_safetensors *f;
    if (ax_safetensors_open(&f, path) != AX_OK) return ax_lua_fail(L);
    lua_newtable(L); /* 2: meta */
    for (size_t i = 0; i < ax_safetensors_metadata_count(f); i++) {
        const char *k = ax_safetensors_metadata_key(f, i);
        lua_pushstring(L, ax_safetensors_metadata(f, k));
        lua_setfield(L, 2, k);
    }
    ax_safetensors_close(f);
    lua_getfield(L, 2, "arch");
    lua_getfield(L, 2, "arch_params");
    lua_getfield(L, 2, "in_channels");
    lua_getfield(L, 2, "out_channels");
    if (!lua_isstring(L, 3) || !lua_isstring(L, 4) || !lua_isstring(L, 5) || !lua_isstring(L, 6))
        return luaL_error(L, "%s: no arch, arch_params, in_channels and out_channels metadata: not an axon checkpoint",
                          path);
    json_error_t je;
    json_t *params = json_loads(lua_tostring(L, 4), 0, &je);
    if (!params || !json_is_object(params)) {
        json_decref(params);
        return luaL_error(L, "%s: metadata arch_params is not a JSON object", path);
    }
    lua_getglobal(L, "require"); /* 7: ax */
    lua_pushliteral(L, "axon");
    lua_call(L, 1, 1);
    lua_getfield(L, 7, "arch"); /* ax.arch(name, params): a clear error for an unknown plugin */
    lua_pushvalue(L, 3);
    ax_lua_push_json(L, params);
    json_decref(params);
    lua_call(L, 2, 1); /* 8: arch */
    lua_getfield(L, 8, "build");
    lua_pushvalue(L, 8);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)strtoll(lua_tostring(L, 5), NULL, 10));
    lua_setfield(L, -2, "in_channels");
    lua_pushinteger(L, (lua_Integer)strtoll(lua_tostring(L, 6), NULL, 10));
    lua_setfield(L, -2, "out_channels");
    lua_call(L, 2, 1); /* 9: net */
    lua_getfield(L, 9, "load");
    lua_pushvalue(L, 9);
    lua_pushvalue(L, 1);
    lua_call(L, 2, 0);

    lua_createtable(L, 0, 8);
    lua_pushvalue(L, 9);
    lua_setfield(L, -2, "net");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "arch");
    lua_getfield(L, 2, "method");
    lua_setfield(L, -2, "method");
    lua_getfield(L, 2, "step");
    lua_Integer step = lua_isstring(L, -1) ? (lua_Integer)strtoll(lua_tostring(L, -1), NULL, 10) : 0;
    lua_pop(L, 1);
    lua_pushinteger(L, step);
    lua_setfield(L, -2, "step");
    lua_pushinteger(L, (lua_Integer)strtoll(lua_tostring(L, 5), NULL, 10));
    lua_setfield(L, -2, "in_channels");
    lua_pushinteger(L, (lua_Integer)strtoll(lua_tostring(L, 6), NULL, 10));
    lua_setfield(L, -2, "out_channels");
    lua_getfield(L, 2, "plan");
    json_t *plan = lua_isstring(L, -1) ? json_loads(lua_tostring(L, -1), 0, NULL) : NULL;
    lua_pop(L, 1);
    if (plan) {
        ax_lua_push_json(L, plan);
        json_decref(plan);
        lua_setfield(L, -2, "plan");
    }
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "meta");
    return 1;
}

void ax_lua_train_register(lua_State *L) {
    static const luaL_Reg fns[] = {{"pretrain", ax_lua_pretrain}, {"load_checkpoint", ax_lua_load_checkpoint},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
