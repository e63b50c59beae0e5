/* ax.finetune{}, ax.predict{}, ax.evaluate{} and ax.report{} (lua_finetune.h).
 * Configuration tables are checked key by key: an unknown key is an error
 * naming the nearest valid one and listing them all. */
#include "lua_finetune.h"

#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/dataset.h"
#include "lua_axon.h"
#include "lua_data.h"
#include "registry.h"
#include "report.h"
#include "train_finetune.h"

#define AX_LUA_REGISTRY_KEY "axon.registry"

const char *const ax_lua_finetune_keys[] = {
    "data",       "out",       "task",          "task_params",   "arch",          "arch_params",
    "init",       "augs",      "patch",         "batch",         "steps",         "seed",
    "optim",      "lr",        "momentum",      "nesterov",      "weight_decay",  "betas",
    "eps",        "schedule",  "warmup",        "decoder_steps", "clip",          "save_every",
    "keep_every", "val_every", "val_cases",     "log_every",     "max_nonfinite", "resume",
    "threads",    "progress",  "oversample_fg", "spacing",       "split",         "deep_supervision",
    NULL};

static int ax_lf_fail(lua_State *L) { return luaL_error(L, "%s", ax_error_message()); }

static ax_registry *ax_lf_registry(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, AX_LUA_REGISTRY_KEY);
    ax_registry *reg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!reg) luaL_error(L, "axon: module used without a plugin registry");
    return reg;
}

static double ax_lf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- configuration fields (what: the function, for messages) --------------------- */

static void ax_lf_check_keys(lua_State *L, int cfg, const char *what, const char *const *valid) {
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

static bool ax_lf_get(lua_State *L, int cfg, const char *key) {
    lua_getfield(L, cfg, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}

static double ax_lf_num(lua_State *L, int cfg, const char *what, const char *key, double def, double lo, double hi) {
    if (!ax_lf_get(L, cfg, key)) return def;
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "%s: '%s' must be a number, got a %s", what, key, luaL_typename(L, -1));
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) luaL_error(L, "%s: '%s' = %g is out of range [%g, %g]", what, key, v, lo, hi);
    return v;
}

static int64_t ax_lf_int(lua_State *L, int cfg, const char *what, const char *key, int64_t def, int64_t lo,
                         int64_t hi) {
    if (!ax_lf_get(L, cfg, key)) return def;
    if (!lua_isinteger(L, -1)) {
        if (lua_type(L, -1) == LUA_TNUMBER)
            luaL_error(L, "%s: '%s' must be an integer, got %g", what, key, lua_tonumber(L, -1));
        luaL_error(L, "%s: '%s' must be an integer, got a %s", what, key, luaL_typename(L, -1));
    }
    int64_t v = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (v < lo || v > hi)
        luaL_error(L, "%s: '%s' = %lld is out of range [%lld, %lld]", what, key, (long long)v, (long long)lo,
                   (long long)hi);
    return v;
}

static bool ax_lf_bool(lua_State *L, int cfg, const char *what, const char *key, bool def) {
    if (!ax_lf_get(L, cfg, key)) return def;
    if (!lua_isboolean(L, -1))
        luaL_error(L, "%s: '%s' must be true or false, got a %s", what, key, luaL_typename(L, -1));
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while cfg holds it. */
static const char *ax_lf_str(lua_State *L, int cfg, const char *what, const char *key, const char *def) {
    if (!ax_lf_get(L, cfg, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: '%s' must be a string, got a %s", what, key, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

static void ax_lf_nums(lua_State *L, int cfg, const char *what, const char *key, int n, double *out) {
    if (!ax_lf_get(L, cfg, key)) return;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        for (int i = 0; i < n; i++)
            out[i] = lua_tonumber(L, -1);
    } else if (lua_type(L, -1) == LUA_TTABLE && (int)lua_rawlen(L, -1) == n) {
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, -1, i + 1);
            if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: '%s' element %d must be a number", what, key, i + 1);
            out[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "%s: '%s' must be a number or a list of %d numbers", what, key, n);
    }
    lua_pop(L, 1);
}

/* A plugin instance from the value at `value`: an object, or a name made
 * with ax.<kind>(name, cfg[params_key]). Leaves the object on the stack. */
static const ax_instance *ax_lf_push_instance(lua_State *L, int ax, int value, const char *kindname,
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
        if (params_key && ax_lf_get(L, cfg, params_key))
            luaL_error(L, "finetune: '%s' only goes with %s given by name", params_key, kindname);
    }
    const ax_instance *inst = ax_lua_test_instance(L, -1);
    if (!inst) luaL_error(L, "finetune: %s must be a plugin name or an ax.%s(...) object", kindname, kindname);
    if (inst->item->plugin->kind != ax_plugin_kind_parse(kindname))
        luaL_error(L, "finetune: %s '%s' is a %s plugin", kindname, inst->item->plugin->name,
                   ax_plugin_kind_name(inst->item->plugin->kind));
    return inst;
}

static void ax_lf_push_num(lua_State *L, double v) {
    if (isnan(v))
        lua_pushnil(L);
    else
        lua_pushnumber(L, v);
}

static const char *const ax_lf_dataset_keys[] = {"root", "format", "glob", NULL};
static const char *const ax_lf_split_keys[] = {"fraction", "min", "max", "seed", NULL};

/* ---- ax.finetune ------------------------------------------------------------------------ */

static int ax_lua_finetune(lua_State *L) {
    static const char *W = "finetune";
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkstack(L, 40, "finetune");
    lua_settop(L, 1);
    const int cfg = 1;
    ax_lf_check_keys(L, cfg, W, ax_lua_finetune_keys);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "axon");
    lua_call(L, 1, 1);
    const int ax = lua_gettop(L);

    ax_finetune_opts o = ax_finetune_opts_default();
    ax_train_opts *t = &o.train;
    ax_dataset_opts dso = ax_dataset_opts_default();
    if (!ax_lf_get(L, cfg, "data")) luaL_error(L, "finetune: 'data' (a cache folder or a dataset) is required");
    if (lua_type(L, -1) == LUA_TSTRING) {
        o.data = lua_tostring(L, -1);
    } else if (lua_istable(L, -1)) {
        int d = lua_gettop(L);
        ax_lf_check_keys(L, d, "finetune: data", ax_lf_dataset_keys);
        dso.root = ax_lf_str(L, d, W, "root", NULL);
        if (!dso.root) luaL_error(L, "finetune: data.root is required (or give data = \"CACHE_FOLDER\")");
        dso.format = ax_lf_str(L, d, W, "format", "nnunet");
        dso.glob = ax_lf_str(L, d, W, "glob", NULL);
        o.dataset = &dso;
    } else if ((o.dataset_object = ax_lua_test_dataset(L, -1)) == NULL) {
        luaL_error(L, "finetune: 'data' must be a cache folder, an ax.dataset{} or a dataset table, got a %s",
                   luaL_typename(L, -1));
    }
    ax_lf_nums(L, cfg, W, "spacing", 3, o.spacing);
    if (ax_lf_get(L, cfg, "split")) {
        int s = lua_gettop(L);
        if (!lua_istable(L, s)) luaL_error(L, "finetune: 'split' must be a table {fraction, min, max, seed}");
        ax_lf_check_keys(L, s, "finetune: split", ax_lf_split_keys);
        o.split.fraction = ax_lf_num(L, s, W, "fraction", o.split.fraction, 0, 1);
        o.split.min_val = ax_lf_int(L, s, W, "min", o.split.min_val, 0, INT64_MAX / 4);
        o.split.max_val = ax_lf_int(L, s, W, "max", o.split.max_val, 0, INT64_MAX / 4);
        o.split.seed = (uint64_t)ax_lf_int(L, s, W, "seed", (int64_t)o.split.seed, 0, INT64_MAX);
    }
    t->out = ax_lf_str(L, cfg, W, "out", NULL);
    if (!t->out) luaL_error(L, "finetune: 'out' (the run folder) is required");
    if (!ax_lf_get(L, cfg, "task"))
        luaL_error(L, "finetune: 'task' is required, e.g. ax.task(\"segmentation\", {classes = 2})");
    o.task = ax_lf_push_instance(L, ax, lua_gettop(L), "task", "task_params", cfg);
    if (ax_lf_get(L, cfg, "arch")) o.arch = ax_lf_push_instance(L, ax, lua_gettop(L), "arch", "arch_params", cfg);
    o.init = ax_lf_str(L, cfg, W, "init", NULL);
    if (!o.arch && !o.init) luaL_error(L, "finetune: give 'arch', or 'init' (a checkpoint that names its arch)");
    o.registry = ax_lf_registry(L);

    if (ax_lf_get(L, cfg, "augs")) {
        if (!lua_istable(L, -1)) luaL_error(L, "finetune: 'augs' must be a list of augmentations");
        int list = lua_gettop(L);
        o.n_augs = (size_t)lua_rawlen(L, list);
        luaL_checkstack(L, (int)o.n_augs + 8, "finetune: augs");
        const ax_instance **augs = lua_newuserdatauv(L, (o.n_augs ? o.n_augs : 1) * sizeof *augs, 0);
        for (size_t i = 0; i < o.n_augs; i++) {
            lua_rawgeti(L, list, (lua_Integer)i + 1);
            augs[i] = ax_lf_push_instance(L, ax, lua_gettop(L), "aug", NULL, cfg);
        }
        o.augs = augs;
    }
    double patch[3] = {64, 64, 64};
    ax_lf_nums(L, cfg, W, "patch", 3, patch);
    for (int i = 0; i < 3; i++) {
        if (patch[i] < 1 || patch[i] > 4096 || patch[i] != floor(patch[i]))
            luaL_error(L, "finetune: 'patch' sizes must be integers in [1, 4096], got %g", patch[i]);
        o.patch[i] = (int32_t)patch[i];
    }
    o.batch = (int32_t)ax_lf_int(L, cfg, W, "batch", o.batch, 1, 4096);
    o.threads = (int32_t)ax_lf_int(L, cfg, W, "threads", 0, 0, 1024);
    o.val_cases = (int32_t)ax_lf_int(L, cfg, W, "val_cases", 0, 0, 1000000);
    o.oversample_fg = ax_lf_num(L, cfg, W, "oversample_fg", o.oversample_fg, 0.0, 1.0);
    o.deep_supervision = ax_lf_bool(L, cfg, W, "deep_supervision", false);
    t->steps = ax_lf_int(L, cfg, W, "steps", t->steps, 1, INT64_MAX / 4);
    t->seed = (uint64_t)ax_lf_int(L, cfg, W, "seed", (int64_t)t->seed, 0, INT64_MAX);
    if (ax_train_optim_parse(ax_lf_str(L, cfg, W, "optim", "sgd"), &t->optim.kind) != AX_OK) ax_lf_fail(L);
    /* the reference's recipes: smaller rates when starting from a checkpoint */
    if (t->optim.kind == AX_OPTIM_ADAMW)
        t->optim.weight_decay = 0.05, t->optim.lr = o.init ? 1e-4 : 3e-4;
    else
        t->optim.lr = o.init ? 1e-3 : 1e-2;
    t->optim.lr = ax_lf_num(L, cfg, W, "lr", t->optim.lr, 0, 1e6);
    t->optim.momentum = ax_lf_num(L, cfg, W, "momentum", t->optim.momentum, 0, 1);
    t->optim.nesterov = ax_lf_bool(L, cfg, W, "nesterov", t->optim.nesterov);
    t->optim.weight_decay = ax_lf_num(L, cfg, W, "weight_decay", t->optim.weight_decay, 0, 1e6);
    double betas[2] = {t->optim.beta1, t->optim.beta2};
    ax_lf_nums(L, cfg, W, "betas", 2, betas);
    t->optim.beta1 = betas[0], t->optim.beta2 = betas[1];
    t->optim.eps = ax_lf_num(L, cfg, W, "eps", t->optim.eps, 0, 1);
    const char *sched = ax_lf_str(L, cfg, W, "schedule", "warmup_poly");
    if (strcmp(sched, "warmup_poly") == 0)
        o.schedule = AX_FINETUNE_WARMUP_POLY;
    else if (strcmp(sched, "sawtooth") == 0)
        o.schedule = AX_FINETUNE_SAWTOOTH;
    else
        luaL_error(L, "finetune: unknown schedule '%s'; valid: warmup_poly, sawtooth", sched);
    o.warmup = ax_lf_int(L, cfg, W, "warmup", -1, -1, INT64_MAX / 4);
    o.decoder_steps = ax_lf_int(L, cfg, W, "decoder_steps", -1, -1, INT64_MAX / 4);
    t->clip = ax_lf_num(L, cfg, W, "clip", t->clip, 0, INFINITY);
    t->save_every = ax_lf_int(L, cfg, W, "save_every", t->save_every, 1, INT64_MAX / 4);
    t->keep_every = ax_lf_int(L, cfg, W, "keep_every", 0, 0, INT64_MAX / 4);
    t->val_every = ax_lf_int(L, cfg, W, "val_every", 0, 0, INT64_MAX / 4);
    t->log_every = ax_lf_int(L, cfg, W, "log_every", 0, 0, INT64_MAX / 4);
    t->max_nonfinite = (int)ax_lf_int(L, cfg, W, "max_nonfinite", t->max_nonfinite, 1, 1000000);
    t->resume = ax_lf_bool(L, cfg, W, "resume", false);
    if (ax_lf_get(L, cfg, "progress")) {
        if (lua_isboolean(L, -1))
            t->progress = lua_toboolean(L, -1) ? -1 : 0;
        else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "lines") == 0)
            t->progress = 1;
        else
            luaL_error(L, "finetune: 'progress' must be true, false or \"lines\"");
        lua_pop(L, 1);
    }

    ax_finetune_result r;
    double t0 = ax_lf_now();
    if (ax_finetune_run(&o, &r) != AX_OK) return ax_lf_fail(L);
    double secs = ax_lf_now() - t0;
    lua_createtable(L, 0, 10);
    lua_pushstring(L, r.train.checkpoint);
    lua_setfield(L, -2, "checkpoint");
    lua_pushstring(L, t->out);
    lua_setfield(L, -2, "out");
    lua_pushinteger(L, r.train.step);
    lua_setfield(L, -2, "step");
    lua_pushinteger(L, r.train.start_step);
    lua_setfield(L, -2, "start_step");
    lua_pushinteger(L, r.train.skipped);
    lua_setfield(L, -2, "skipped");
    lua_pushinteger(L, (lua_Integer)r.n_transferred);
    lua_setfield(L, -2, "transferred");
    lua_pushinteger(L, (lua_Integer)r.n_adapted);
    lua_setfield(L, -2, "adapted");
    lua_pushnumber(L, secs);
    lua_setfield(L, -2, "seconds");
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, r.train.step);
    lua_setfield(L, -2, "step");
    ax_lf_push_num(L, r.train.loss);
    lua_setfield(L, -2, "loss");
    ax_lf_push_num(L, r.train.lr);
    lua_setfield(L, -2, "lr");
    ax_lf_push_num(L, r.train.val_loss);
    lua_setfield(L, -2, "val_loss");
    ax_lf_push_num(L, r.train.first_val_loss);
    lua_setfield(L, -2, "first_val_loss");
    ax_lf_push_num(L, r.val_dice_mean);
    lua_setfield(L, -2, "val_dice_mean");
    lua_createtable(L, r.n_classes, 0);
    for (int c = 1; c < r.n_classes && c < AX_FINETUNE_MAX_CLASSES; c++) {
        ax_lf_push_num(L, r.val_dice[c]);
        lua_rawseti(L, -2, c);
    }
    lua_setfield(L, -2, "val_dice");
    lua_setfield(L, -2, "metrics");
    return 1;
}

/* ---- ax.predict ---------------------------------------------------------------------------- */

static const char *const ax_lf_predict_keys[] = {"model", "input", "output", "mirror", "threads", "progress", NULL};

static int ax_lua_predict(lua_State *L) {
    static const char *W = "predict";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ax_lf_check_keys(L, 1, W, ax_lf_predict_keys);
    ax_predict_opts o = ax_predict_opts_default();
    o.model = ax_lf_str(L, 1, W, "model", NULL);
    o.input = ax_lf_str(L, 1, W, "input", NULL);
    o.output = ax_lf_str(L, 1, W, "output", NULL);
    if (!o.model || !o.input || !o.output) luaL_error(L, "predict: 'model', 'input' and 'output' are required");
    if (ax_lf_get(L, 1, "mirror")) {
        if (!lua_isboolean(L, -1)) luaL_error(L, "predict: 'mirror' must be true or false");
        o.mirror = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    o.threads = (int32_t)ax_lf_int(L, 1, W, "threads", 0, 0, 1024);
    o.progress = ax_lf_bool(L, 1, W, "progress", true);
    o.registry = ax_lf_registry(L);
    ax_predict_report rep;
    ax_status st = ax_predict_run(&o, &rep);
    if (st != AX_OK) {
        ax_predict_report_free(&rep);
        return ax_lf_fail(L);
    }
    lua_createtable(L, 0, 4);
    lua_createtable(L, (int)rep.n_done, 0);
    for (size_t i = 0; i < rep.n_done; i++) {
        lua_pushstring(L, rep.names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "done");
    lua_createtable(L, (int)rep.n_failed, 0);
    for (size_t i = 0; i < rep.n_failed; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, rep.failed_names[i]);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, rep.failed_reasons[i]);
        lua_setfield(L, -2, "reason");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "failed");
    lua_pushstring(L, o.output);
    lua_setfield(L, -2, "output");
    ax_predict_report_free(&rep);
    return 1;
}

/* ---- ax.evaluate ---------------------------------------------------------------------------- */

static void ax_lf_push_json(lua_State *L, json_t *v) {
    switch (json_typeof(v)) {
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); return;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); return;
    case JSON_TRUE: lua_pushboolean(L, 1); return;
    case JSON_FALSE: lua_pushboolean(L, 0); return;
    case JSON_STRING: lua_pushstring(L, json_string_value(v)); return;
    case JSON_ARRAY:
        lua_createtable(L, (int)json_array_size(v), 0);
        for (size_t i = 0; i < json_array_size(v); i++) {
            ax_lf_push_json(L, json_array_get(v, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        lua_newtable(L);
        json_object_foreach(v, k, x) {
            ax_lf_push_json(L, x);
            lua_setfield(L, -2, k);
        }
        return;
    }
    default: lua_pushnil(L); return; /* null: NaN, undefined */
    }
}

static const char *const ax_lf_evaluate_keys[] = {"pred", "ref", "classes", "hd95", "out", NULL};

static int ax_lua_evaluate(lua_State *L) {
    static const char *W = "evaluate";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ax_lf_check_keys(L, 1, W, ax_lf_evaluate_keys);
    ax_evaluate_opts o = ax_evaluate_opts_default();
    o.pred = ax_lf_str(L, 1, W, "pred", NULL);
    o.ref = ax_lf_str(L, 1, W, "ref", NULL);
    if (!o.pred || !o.ref) luaL_error(L, "evaluate: 'pred' and 'ref' (folders) are required");
    if (!ax_lf_get(L, 1, "classes")) luaL_error(L, "evaluate: 'classes' (K, background included) is required");
    lua_pop(L, 1);
    o.classes = (int32_t)ax_lf_int(L, 1, W, "classes", 2, 2, 256);
    o.hd95 = ax_lf_bool(L, 1, W, "hd95", true);
    o.out_json = ax_lf_str(L, 1, W, "out", NULL);
    char *text = NULL;
    if (ax_evaluate_run(&o, &text) != AX_OK) return ax_lf_fail(L);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    if (!j) return luaL_error(L, "evaluate: out of memory");
    ax_lf_push_json(L, j);
    json_decref(j);
    return 1;
}

/* ---- ax.report ------------------------------------------------------------------------------- */

static const char *const ax_lf_report_keys[] = {"out",   "title",   "intro", "runs", "table",
                                                "notes", "preview", "cases", NULL};

/* t[key] as a list of strings (GC-anchored array of n). */
static const char **ax_lf_string_list(lua_State *L, int t, const char *what, size_t *n) {
    int list = lua_gettop(L);
    (void)t;
    *n = (size_t)lua_rawlen(L, list);
    luaL_checkstack(L, 8, "report");
    const char **v = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *v, 0); /* stays on the stack: GC-owned */
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        if (lua_type(L, -1) == LUA_TNUMBER) lua_tostring(L, -1); /* converts in place */
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "report: %s[%d] must be a string", what, (int)i + 1);
        v[i] = lua_tostring(L, -1);
        lua_rawseti(L, list, (lua_Integer)i + 1); /* keep the string alive in the list */
    }
    return v;
}

static int ax_lua_report(lua_State *L) {
    static const char *W = "report";
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkstack(L, 120, "report");
    lua_settop(L, 1);
    ax_lf_check_keys(L, 1, W, ax_lf_report_keys);
    ax_report_opts o = ax_report_opts_default();
    o.out = ax_lf_str(L, 1, W, "out", NULL);
    if (!o.out) luaL_error(L, "report: 'out' (the .html file) is required");
    o.title = ax_lf_str(L, 1, W, "title", o.title);
    o.intro = ax_lf_str(L, 1, W, "intro", NULL);
    o.notes = ax_lf_str(L, 1, W, "notes", NULL);
    o.preview_run = ax_lf_str(L, 1, W, "preview", NULL);
    o.registry = ax_lf_registry(L);
    ax_report_run runs[16];
    if (ax_lf_get(L, 1, "runs")) {
        int list = lua_gettop(L);
        if (!lua_istable(L, list)) luaL_error(L, "report: 'runs' must be a list of {name =, dir =}");
        size_t n = (size_t)lua_rawlen(L, list);
        if (n > 16) luaL_error(L, "report: at most 16 runs");
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, list, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            if (!lua_istable(L, e)) luaL_error(L, "report: runs[%d] must be {name =, dir =}", (int)i + 1);
            runs[i].name = ax_lf_str(L, e, W, "name", "run");
            runs[i].dir = ax_lf_str(L, e, W, "dir", NULL);
            if (!runs[i].dir) luaL_error(L, "report: runs[%d].dir is required", (int)i + 1);
        }
        o.runs = runs;
        o.n_runs = n;
    }
    if (ax_lf_get(L, 1, "table")) {
        int tb = lua_gettop(L);
        if (!lua_istable(L, tb)) luaL_error(L, "report: 'table' must be {header = {...}, rows = {{...}, ...}}");
        o.table_title = ax_lf_str(L, tb, W, "title", NULL);
        if (!ax_lf_get(L, tb, "header")) luaL_error(L, "report: table.header is required");
        o.table_header = ax_lf_string_list(L, tb, "table.header", &o.table_cols);
        if (!ax_lf_get(L, tb, "rows")) luaL_error(L, "report: table.rows is required");
        int rows = lua_gettop(L);
        o.table_rows = (size_t)lua_rawlen(L, rows);
        size_t n_cells = o.table_rows * o.table_cols;
        const char **cells = lua_newuserdatauv(L, (n_cells > 0 ? n_cells : 1) * sizeof *cells, 0);
        for (size_t r = 0; r < o.table_rows; r++) {
            lua_rawgeti(L, rows, (lua_Integer)r + 1);
            if (!lua_istable(L, -1)) luaL_error(L, "report: table.rows[%d] must be a list", (int)r + 1);
            size_t nc;
            const char **row = ax_lf_string_list(L, 0, "table.rows[]", &nc);
            if (nc != o.table_cols)
                luaL_error(L, "report: table.rows[%d] has %d cells, the header %d", (int)r + 1, (int)nc,
                           (int)o.table_cols);
            memcpy(cells + r * o.table_cols, row, nc * sizeof *row);
        }
        o.table_cells = cells;
    }
    ax_report_case cases[8];
    if (ax_lf_get(L, 1, "cases")) {
        int list = lua_gettop(L);
        size_t n = (size_t)lua_rawlen(L, list);
        if (n > 8) luaL_error(L, "report: at most 8 cases");
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, list, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            if (!lua_istable(L, e)) luaL_error(L, "report: cases[%d] must be a table", (int)i + 1);
            memset(&cases[i], 0, sizeof cases[i]);
            cases[i].title = ax_lf_str(L, e, W, "title", "case");
            cases[i].image = ax_lf_str(L, e, W, "image", NULL);
            cases[i].label = ax_lf_str(L, e, W, "label", NULL);
            if (!cases[i].image) luaL_error(L, "report: cases[%d].image is required", (int)i + 1);
            if (ax_lf_get(L, e, "preds")) {
                int pl = lua_gettop(L);
                size_t np = (size_t)lua_rawlen(L, pl);
                if (np > 4) luaL_error(L, "report: at most 4 predictions per case");
                for (size_t k = 0; k < np; k++) {
                    lua_rawgeti(L, pl, (lua_Integer)k + 1);
                    int q = lua_gettop(L);
                    cases[i].pred_names[k] = ax_lf_str(L, q, W, "name", "prediction");
                    cases[i].preds[k] = ax_lf_str(L, q, W, "path", NULL);
                    if (!cases[i].preds[k])
                        luaL_error(L, "report: cases[%d].preds[%d].path is required", (int)i + 1, (int)k + 1);
                }
                cases[i].n_preds = np;
            }
        }
        o.cases = cases;
        o.n_cases = n;
    }
    if (ax_report_write(&o) != AX_OK) return ax_lf_fail(L);
    lua_pushstring(L, o.out);
    return 1;
}

void ax_lua_finetune_register(lua_State *L) {
    static const luaL_Reg fns[] = {{"finetune", ax_lua_finetune},
                                   {"predict", ax_lua_predict},
                                   {"evaluate", ax_lua_evaluate},
                                   {"report", ax_lua_report},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
