/* Configuration-table readers shared by the Lua runners (lua_config.h). */
#include "lua_config.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "lua_axon.h"
#include "lua_data.h"

void ax_lua_push_key_list(lua_State *L, const char *const *keys) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *const *v = keys; *v; v++) {
        if (v != keys) luaL_addstring(&b, ", ");
        luaL_addstring(&b, *v);
    }
    luaL_pushresult(&b);
}

void ax_lua_cfg_check_keys(lua_State *L, int cfg, const char *what, const char *const *valid) {
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
        ax_lua_push_key_list(L, valid);
        luaL_error(L, "%s: unknown key '%s'%s%s%s; valid: %s", what, k, near ? " (did you mean '" : "",
                   near ? near : "", near ? "'?)" : "", lua_tostring(L, -1));
    }
}

bool ax_lua_cfg_get(lua_State *L, int cfg, const char *key) {
    lua_getfield(L, cfg, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}

double ax_lua_cfg_num(lua_State *L, int cfg, const char *what, const char *key, double def, double lo, double hi) {
    if (!ax_lua_cfg_get(L, cfg, key)) return def;
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "%s: '%s' must be a number, got a %s", what, key, luaL_typename(L, -1));
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) luaL_error(L, "%s: '%s' = %g is out of range [%g, %g]", what, key, v, lo, hi);
    return v;
}

int64_t ax_lua_cfg_int(lua_State *L, int cfg, const char *what, const char *key, int64_t def, int64_t lo,
                       int64_t hi) {
    if (!ax_lua_cfg_get(L, cfg, key)) return def;
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

bool ax_lua_cfg_bool(lua_State *L, int cfg, const char *what, const char *key, bool def) {
    if (!ax_lua_cfg_get(L, cfg, key)) return def;
    if (!lua_isboolean(L, -1))
        luaL_error(L, "%s: '%s' must be true or false, got a %s", what, key, luaL_typename(L, -1));
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

const char *ax_lua_cfg_str(lua_State *L, int cfg, const char *what, const char *key, const char *def) {
    if (!ax_lua_cfg_get(L, cfg, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: '%s' must be a string, got a %s", what, key, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

void ax_lua_cfg_nums(lua_State *L, int cfg, const char *what, const char *key, int n, double *out) {
    if (!ax_lua_cfg_get(L, cfg, key)) return;
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

const ax_instance *ax_lua_cfg_push_instance(lua_State *L, const char *what, int ax, int value, const char *kindname,
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
        if (params_key && ax_lua_cfg_get(L, cfg, params_key))
            luaL_error(L, "%s: '%s' only goes with %s given by name", what, params_key, kindname);
    }
    const ax_instance *inst = ax_lua_test_instance(L, -1);
    if (!inst) luaL_error(L, "%s: %s must be a plugin name or an ax.%s(...) object", what, kindname, kindname);
    if (inst->item->plugin->kind != ax_plugin_kind_parse(kindname))
        luaL_error(L, "%s: %s '%s' is a %s plugin", what, kindname, inst->item->plugin->name,
                   ax_plugin_kind_name(inst->item->plugin->kind));
    return inst;
}

void ax_lua_push_num(lua_State *L, double v) {
    if (isnan(v))
        lua_pushnil(L);
    else
        lua_pushnumber(L, v);
}

void ax_lua_push_json(lua_State *L, json_t *v) {
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
    default: lua_pushnil(L); return; /* null: NaN, undefined */
    }
}

/* ---- the keys both runners share ---------------------------------------------------- */

int ax_lua_runner_begin(lua_State *L, const char *what, const char *const *keys) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkstack(L, 40, what);
    lua_settop(L, 1);
    ax_lua_cfg_check_keys(L, 1, what, keys);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "axon");
    lua_call(L, 1, 1);
    return lua_gettop(L);
}

void ax_lua_runner_data(lua_State *L, int cfg, const char *what, ax_train_input *in, ax_dataset_opts *dso,
                        void (*read_table)(lua_State *L, int t, ax_dataset_opts *dso)) {
    if (!ax_lua_cfg_get(L, cfg, "data"))
        luaL_error(L, "%s: 'data' (a cache folder, an ax.dataset{} or a dataset table) is required", what);
    if (lua_type(L, -1) == LUA_TSTRING) {
        in->data = lua_tostring(L, -1);
    } else if (lua_istable(L, -1)) {
        read_table(L, lua_gettop(L), dso);
        in->dataset = dso;
    } else if ((in->dataset_object = ax_lua_test_dataset(L, -1)) == NULL) {
        luaL_error(L, "%s: 'data' must be a cache folder, an ax.dataset{} or a dataset table, got a %s", what,
                   luaL_typename(L, -1));
    }
}

static void ax_lua_runner_input(lua_State *L, int cfg, int ax, const char *what, ax_train_input *in) {
    if (ax_lua_cfg_get(L, cfg, "augs")) {
        if (!lua_istable(L, -1)) luaL_error(L, "%s: 'augs' must be a list of augmentations", what);
        int list = lua_gettop(L);
        in->n_augs = (size_t)lua_rawlen(L, list);
        luaL_checkstack(L, (int)in->n_augs + 8, "augs");
        const ax_instance **augs = lua_newuserdatauv(L, (in->n_augs ? in->n_augs : 1) * sizeof *augs, 0); /* GC-owned */
        for (size_t i = 0; i < in->n_augs; i++) {
            lua_rawgeti(L, list, (lua_Integer)i + 1);
            augs[i] = ax_lua_cfg_push_instance(L, what, ax, lua_gettop(L), "aug", NULL, cfg);
        }
        in->augs = augs;
    }
    double patch[3] = {in->patch[0], in->patch[1], in->patch[2]};
    ax_lua_cfg_nums(L, cfg, what, "patch", 3, patch);
    for (int i = 0; i < 3; i++) {
        if (patch[i] < 1 || patch[i] > 4096 || patch[i] != floor(patch[i]))
            luaL_error(L, "%s: 'patch' sizes must be integers in [1, 4096], got %g", what, patch[i]);
        in->patch[i] = (int32_t)patch[i];
    }
    in->batch = (int32_t)ax_lua_cfg_int(L, cfg, what, "batch", in->batch, 1, 4096);
    in->threads = (int32_t)ax_lua_cfg_int(L, cfg, what, "threads", in->threads, 0, 1024);
    in->oversample_fg = ax_lua_cfg_num(L, cfg, what, "oversample_fg", in->oversample_fg, 0.0, 1.0);
    ax_lua_cfg_nums(L, cfg, what, "spacing", 3, in->spacing);
}

static void ax_lua_runner_optim(lua_State *L, int cfg, const char *what, ax_lua_runner *r) {
    ax_train_optim *op = &r->train->optim;
    if (ax_train_optim_parse(ax_lua_cfg_str(L, cfg, what, "optim", "sgd"), &op->kind) != AX_OK)
        luaL_error(L, "%s", ax_error_message());
    if (op->kind == AX_OPTIM_ADAMW)
        op->weight_decay = 0.05, op->lr = r->adamw_lr; /* the reference's Transformer recipe */
    else
        op->lr = r->sgd_lr;
    op->lr = ax_lua_cfg_num(L, cfg, what, "lr", op->lr, 0, 1e6);
    op->momentum = ax_lua_cfg_num(L, cfg, what, "momentum", op->momentum, 0, 1);
    op->nesterov = ax_lua_cfg_bool(L, cfg, what, "nesterov", op->nesterov);
    op->weight_decay = ax_lua_cfg_num(L, cfg, what, "weight_decay", op->weight_decay, 0, 1e6);
    double betas[2] = {op->beta1, op->beta2};
    ax_lua_cfg_nums(L, cfg, what, "betas", 2, betas);
    op->beta1 = betas[0], op->beta2 = betas[1];
    op->eps = ax_lua_cfg_num(L, cfg, what, "eps", op->eps, 0, 1);
}

void ax_lua_runner_read(lua_State *L, int cfg, int ax, const char *what, ax_lua_runner *r) {
    ax_train_opts *t = r->train;
    t->out = ax_lua_cfg_str(L, cfg, what, "out", NULL);
    if (!t->out) luaL_error(L, "%s: 'out' (the run folder) is required", what);
    ax_lua_runner_input(L, cfg, ax, what, r->input);
    t->steps = ax_lua_cfg_int(L, cfg, what, "steps", t->steps, 1, INT64_MAX / 4);
    t->seed = (uint64_t)ax_lua_cfg_int(L, cfg, what, "seed", (int64_t)t->seed, 0, INT64_MAX);
    ax_lua_runner_optim(L, cfg, what, r);
    t->clip = ax_lua_cfg_num(L, cfg, what, "clip", t->clip, 0, INFINITY);
    t->save_every = ax_lua_cfg_int(L, cfg, what, "save_every", t->save_every, 1, INT64_MAX / 4);
    t->keep_every = ax_lua_cfg_int(L, cfg, what, "keep_every", t->keep_every, 0, INT64_MAX / 4);
    t->val_every = ax_lua_cfg_int(L, cfg, what, "val_every", t->val_every, 0, INT64_MAX / 4);
    t->log_every = ax_lua_cfg_int(L, cfg, what, "log_every", t->log_every, 0, INT64_MAX / 4);
    t->max_nonfinite = (int)ax_lua_cfg_int(L, cfg, what, "max_nonfinite", t->max_nonfinite, 1, 1000000);
    t->resume = ax_lua_cfg_bool(L, cfg, what, "resume", t->resume);
    t->device = ax_lua_cfg_str(L, cfg, what, "device", t->device); /* checked by the run: "cpu", "cuda", "cuda:N" */
    t->amp = ax_lua_cfg_str(L, cfg, what, "amp", t->amp);          /* checked by the run: "bf16", "off" */
    if (ax_lua_cfg_get(L, cfg, "progress")) {
        if (lua_isboolean(L, -1))
            t->progress = lua_toboolean(L, -1) ? -1 : 0;
        else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "lines") == 0)
            t->progress = 1;
        else
            luaL_error(L, "%s: 'progress' must be true, false or \"lines\"", what);
        lua_pop(L, 1);
    }
}

void ax_lua_push_train_result(lua_State *L, const ax_train_result *r, const char *out) {
    lua_createtable(L, 0, 10);
    lua_pushstring(L, r->checkpoint);
    lua_setfield(L, -2, "checkpoint");
    lua_pushstring(L, out);
    lua_setfield(L, -2, "out");
    lua_pushinteger(L, r->step);
    lua_setfield(L, -2, "step");
    lua_pushinteger(L, r->start_step);
    lua_setfield(L, -2, "start_step");
    lua_pushinteger(L, r->skipped);
    lua_setfield(L, -2, "skipped");
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, r->step);
    lua_setfield(L, -2, "step");
    const char *names[] = {"loss", "lr", "grad_norm", "val_loss", "first_val_loss"};
    const double values[] = {r->loss, r->lr, r->grad_norm, r->val_loss, r->first_val_loss};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ax_lua_push_num(L, values[i]);
        lua_setfield(L, -2, names[i]);
    }
    lua_setfield(L, -2, "metrics");
}
