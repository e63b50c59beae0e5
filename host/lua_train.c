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
#include "lua_config.h"
#include "lua_data.h"
#include "registry.h"
#include "train_checkpoint.h"
#include "train_pretrain.h"

const char *const ax_lua_pretrain_keys[] = {
    "data",         "out",      "arch",     "arch_params", "method",   "method_params", "augs",   "patch",
    "batch",        "steps",    "seed",     "optim",       "lr",       "momentum",      "nesterov", "weight_decay",
    "betas",        "eps",      "schedule", "warmup",      "power",    "min_lr",        "clip",   "save_every",
    "keep_every",   "val_every", "val_batches", "log_every", "max_nonfinite", "resume",  "threads", "progress",
    "oversample_fg", "spacing", "device", "amp", NULL};

static int ax_lua_fail(lua_State *L) { return luaL_error(L, "%s", ax_error_message()); }

static const char *const ax_lua_dataset_keys[] = {"root", "format", "glob", "csv", "max_quality", "modalities",
                                                 "exclude_modalities", "skip_missing", NULL};

/* A string list at t[key] as a GC-owned array (the strings stay in t). */
static const char *const *ax_cfg_strings(lua_State *L, int t, const char *key, size_t *n) {
    *n = 0;
    if (!ax_lua_cfg_get(L, t, key)) return NULL;
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
    static const char *W = "pretrain";
    ax_lua_cfg_check_keys(L, t, "pretrain: data", ax_lua_dataset_keys);
    d->root = ax_lua_cfg_str(L, t, W, "root", NULL);
    if (!d->root) luaL_error(L, "pretrain: data.root is required (or give data = \"CACHE_FOLDER\")");
    d->format = ax_lua_cfg_str(L, t, W, "format", "nifti-dir");
    d->glob = ax_lua_cfg_str(L, t, W, "glob", NULL);
    d->csv = ax_lua_cfg_str(L, t, W, "csv", NULL);
    d->max_quality = ax_lua_cfg_num(L, t, W, "max_quality", NAN, 0, 100);
    d->modalities = ax_cfg_strings(L, t, "modalities", &d->n_modalities);
    d->exclude_modalities = ax_cfg_strings(L, t, "exclude_modalities", &d->n_exclude_modalities);
    d->skip_missing = ax_lua_cfg_bool(L, t, W, "skip_missing", d->skip_missing);
}

/* ax.pretrain{...} -> { checkpoint =, out =, step =, skipped =, metrics = {...} } */
static int ax_lua_pretrain(lua_State *L) {
    static const char *W = "pretrain";
    const int cfg = 1, ax = ax_lua_runner_begin(L, W, ax_lua_pretrain_keys);
    ax_pretrain_opts o = ax_pretrain_opts_default();
    ax_train_opts *t = &o.train;
    ax_dataset_opts dso = ax_dataset_opts_default();
    ax_lua_runner_data(L, cfg, W, &o.input, &dso, ax_lua_dataset_opts);
    ax_lua_runner r = {t, &o.input, t->optim.lr, 3e-4};
    ax_lua_runner_read(L, cfg, ax, W, &r);

    if (!ax_lua_cfg_get(L, cfg, "arch")) luaL_error(L, "pretrain: 'arch' is required");
    o.arch = ax_lua_cfg_push_instance(L, W, ax, lua_gettop(L), "arch", "arch_params", cfg);
    if (!ax_lua_cfg_get(L, cfg, "method")) luaL_error(L, "pretrain: 'method' is required");
    o.method = ax_lua_cfg_push_instance(L, W, ax, lua_gettop(L), "method", "method_params", cfg);
    o.val_batches = (int32_t)ax_lua_cfg_int(L, cfg, W, "val_batches", o.val_batches, 1, 100000);
    if (ax_lr_kind_parse(ax_lua_cfg_str(L, cfg, W, "schedule", "poly"), &t->schedule.kind) != AX_OK) ax_lua_fail(L);
    t->schedule.warmup_steps = ax_lua_cfg_int(L, cfg, W, "warmup", 0, 0, INT64_MAX / 4);
    t->schedule.power = ax_lua_cfg_num(L, cfg, W, "power", t->schedule.power, 1e-9, 1e3);
    t->schedule.min_lr = ax_lua_cfg_num(L, cfg, W, "min_lr", 0, 0, 1e6);

    ax_train_result res;
    if (ax_pretrain_run(&o, &res) != AX_OK) return ax_lua_fail(L);
    ax_lua_push_train_result(L, &res, t->out);
    return 1;
}

/* ---- checkpoints ---------------------------------------------------------------------- */

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
