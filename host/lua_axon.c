/* The `axon` Lua module: plugin listing and instantiation, RNG, logging,
 * and the script runner. C objects are userdata with __gc and __close. */
#include "lua_axon.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "axon/version.h"
#include "lua_arch.h"
#include "lua_data.h"
#include "lua_finetune.h"
#include "lua_loader.h"
#include "lua_nn.h"
#include "lua_tensor.h"
#include "lua_train.h"

#define AX_LUA_REGISTRY_KEY "axon.registry"
#define AX_LUA_RNG "axon.rng"

static ax_registry *ax_lua_registry(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, AX_LUA_REGISTRY_KEY);
    ax_registry *reg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!reg) luaL_error(L, "axon: module used without a plugin registry");
    return reg;
}

/* Raise the current axon error as a Lua error at the caller's line. */
static int ax_lua_fail(lua_State *L) {
    return luaL_error(L, "%s", ax_error_message());
}

/* ---- plugin descriptions --------------------------------------------- */

static void ax_lua_push_param_value(lua_State *L, const ax_params *p, const ax_param_spec *s) {
    if (!ax_params_is_set(p, s->name) && !s->def) {
        lua_pushnil(L);
        return;
    }
    switch (s->type) {
    case AX_PARAM_INT: lua_pushinteger(L, (lua_Integer)ax_params_int(p, s->name)); return;
    case AX_PARAM_FLOAT: lua_pushnumber(L, ax_params_float(p, s->name)); return;
    case AX_PARAM_BOOL: lua_pushboolean(L, ax_params_bool(p, s->name)); return;
    case AX_PARAM_STRING: lua_pushstring(L, ax_params_string(p, s->name)); return;
    case AX_PARAM_INT_LIST: {
        size_t n = ax_params_ints(p, s->name, NULL, 0);
        int64_t *v = n ? malloc(n * sizeof *v) : NULL;
        lua_createtable(L, (int)n, 0);
        if (v) {
            ax_params_ints(p, s->name, v, n);
            for (size_t i = 0; i < n; i++) {
                lua_pushinteger(L, (lua_Integer)v[i]);
                lua_rawseti(L, -2, (lua_Integer)i + 1);
            }
        }
        free(v);
        return;
    }
    case AX_PARAM_FLOAT_LIST: {
        size_t n = ax_params_floats(p, s->name, NULL, 0);
        double *v = n ? malloc(n * sizeof *v) : NULL;
        lua_createtable(L, (int)n, 0);
        if (v) {
            ax_params_floats(p, s->name, v, n);
            for (size_t i = 0; i < n; i++) {
                lua_pushnumber(L, v[i]);
                lua_rawseti(L, -2, (lua_Integer)i + 1);
            }
        }
        free(v);
        return;
    }
    }
    lua_pushnil(L);
}

static void ax_lua_push_plugin_info(lua_State *L, const ax_registry_item *it) {
    const ax_plugin *p = it->plugin;
    lua_createtable(L, 0, 9);
    lua_pushstring(L, ax_plugin_kind_name(p->kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, p->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, p->version ? p->version : "");
    lua_setfield(L, -2, "version");
    lua_pushstring(L, p->summary ? p->summary : "");
    lua_setfield(L, -2, "summary");
    lua_pushstring(L, p->license ? p->license : "");
    lua_setfield(L, -2, "license");
    lua_pushstring(L, it->path);
    lua_setfield(L, -2, "file");
    lua_pushboolean(L, it->available);
    lua_setfield(L, -2, "available");
    if (!it->available) {
        lua_pushstring(L, it->why);
        lua_setfield(L, -2, "why");
    }
}

/* ax.plugins([kind]) -> { {kind=, name=, version=, summary=, license=, file=, available=}, ... } */
static int ax_lua_plugins(lua_State *L) {
    ax_registry *reg = ax_lua_registry(L);
    const char *kind_name = luaL_optstring(L, 1, NULL);
    ax_plugin_kind kind = 0;
    if (kind_name && !(kind = ax_plugin_kind_parse(kind_name)))
        return luaL_error(L, "unknown plugin kind '%s' (method, arch, aug, task, backend)", kind_name);
    lua_newtable(L);
    lua_Integer n = 0;
    for (size_t i = 0; i < ax_registry_count(reg); i++) {
        const ax_registry_item *it = ax_registry_get(reg, i);
        if (kind && it->plugin->kind != kind) continue;
        ax_lua_push_plugin_info(L, it);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

static const ax_registry_item *ax_lua_find(lua_State *L, ax_plugin_kind kind, const char *name) {
    ax_registry *reg = ax_lua_registry(L);
    const ax_registry_item *it = ax_registry_find(reg, kind, name);
    if (it) return it;
    const char *near = ax_registry_suggest(reg, kind, name);
    const char *what = kind ? ax_plugin_kind_name(kind) : "plugin";
    if (near)
        luaL_error(L, "no %s named '%s' (did you mean '%s'?); see 'axon plugins'", what, name, near);
    luaL_error(L, "no %s named '%s'; see 'axon plugins'", what, name);
    return NULL;
}

/* ax.describe(name [, kind]) -> info table with params = { {name=, type=, default=, min=, max=,
 * choices=, len=, doc=}, ... } */
static int ax_lua_describe(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    const char *kind_name = luaL_optstring(L, 2, NULL);
    ax_plugin_kind kind = kind_name ? ax_plugin_kind_parse(kind_name) : 0;
    if (kind_name && !kind) return luaL_error(L, "unknown plugin kind '%s'", kind_name);
    const ax_registry_item *it = ax_lua_find(L, kind, name);
    ax_lua_push_plugin_info(L, it);
    const ax_param_spec *s = it->plugin->params;
    lua_createtable(L, (int)(s ? ax_param_spec_count(s) : 0), 0);
    for (lua_Integer i = 1; s && s->name; s++, i++) {
        lua_createtable(L, 0, 8);
        lua_pushstring(L, s->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, ax_param_type_name(s->type));
        lua_setfield(L, -2, "type");
        if (s->def) {
            lua_pushstring(L, s->def);
            lua_setfield(L, -2, "default");
        } else {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "required");
        }
        if (s->min < s->max) {
            lua_pushnumber(L, s->min);
            lua_setfield(L, -2, "min");
            lua_pushnumber(L, s->max);
            lua_setfield(L, -2, "max");
        }
        if (s->choices) {
            lua_pushstring(L, s->choices);
            lua_setfield(L, -2, "choices");
        }
        if (s->len) {
            lua_pushinteger(L, s->len);
            lua_setfield(L, -2, "len");
        }
        lua_pushstring(L, s->doc ? s->doc : "");
        lua_setfield(L, -2, "doc");
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "params");
    return 1;
}

/* ---- parameters from a Lua table ---------------------------------------- */

static const char *ax_lua_value_text(lua_State *L, int idx, char *buf, size_t n) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: snprintf(buf, n, "string \"%s\"", lua_tostring(L, idx)); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, n, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, n, "%g", lua_tonumber(L, idx));
        break;
    case LUA_TBOOLEAN: snprintf(buf, n, "%s", lua_toboolean(L, idx) ? "true" : "false"); break;
    default: snprintf(buf, n, "a %s", luaL_typename(L, idx)); break;
    }
    return buf;
}

static int ax_lua_wrong_type(lua_State *L, const char *owner, const ax_param_spec *s, int idx) {
    char got[160], range[96] = "";
    if (s->min < s->max) snprintf(range, sizeof range, " in [%g, %g]", s->min, s->max);
    return luaL_error(L, "%s: parameter '%s' expects %s %s%s, got %s", owner, s->name,
                      s->type == AX_PARAM_INT ? "an" : "a", ax_param_type_name(s->type), range,
                      ax_lua_value_text(L, idx, got, sizeof got));
}

/* Set one parameter from the value at stack index `idx`. */
static void ax_lua_set_param(lua_State *L, ax_params *p, const char *owner, const char *key, int idx) {
    const ax_param_spec *s = ax_params_find(p, key);
    ax_status st = AX_OK;
    if (!s) {
        /* The setter reports unknown keys with the valid ones and a suggestion. */
        ax_params_set_text(p, key, "");
        ax_lua_fail(L);
    }
    switch (s->type) {
    case AX_PARAM_INT:
    case AX_PARAM_FLOAT:
        if (lua_type(L, idx) != LUA_TNUMBER) ax_lua_wrong_type(L, owner, s, idx);
        st = lua_isinteger(L, idx) ? ax_params_set_int(p, key, (int64_t)lua_tointeger(L, idx))
                                   : ax_params_set_float(p, key, lua_tonumber(L, idx));
        break;
    case AX_PARAM_BOOL:
        if (lua_type(L, idx) != LUA_TBOOLEAN) ax_lua_wrong_type(L, owner, s, idx);
        st = ax_params_set_bool(p, key, lua_toboolean(L, idx));
        break;
    case AX_PARAM_STRING:
        if (lua_type(L, idx) != LUA_TSTRING) ax_lua_wrong_type(L, owner, s, idx);
        st = ax_params_set_string(p, key, lua_tostring(L, idx));
        break;
    case AX_PARAM_INT_LIST:
    case AX_PARAM_FLOAT_LIST: {
        if (lua_type(L, idx) != LUA_TTABLE) ax_lua_wrong_type(L, owner, s, idx);
        size_t n = (size_t)lua_rawlen(L, idx);
        if (n == 0) luaL_error(L, "%s: parameter '%s' expects a non-empty list", owner, key);
        double *v = lua_newuserdatauv(L, n * sizeof *v, 0); /* freed by the GC, even on error */
        bool all_int = true;
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i + 1);
            if (lua_type(L, -1) != LUA_TNUMBER) {
                char got[160];
                luaL_error(L, "%s: parameter '%s' element %d must be a number, got %s", owner, key,
                           (int)i + 1, ax_lua_value_text(L, -1, got, sizeof got));
            }
            all_int = all_int && lua_isinteger(L, -1);
            v[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        if (s->type == AX_PARAM_INT_LIST && all_int) {
            int64_t *w = lua_newuserdatauv(L, n * sizeof *w, 0);
            for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, idx, (lua_Integer)i + 1);
                w[i] = (int64_t)lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
            st = ax_params_set_ints(p, key, w, n);
            lua_pop(L, 1);
        } else {
            st = ax_params_set_floats(p, key, v, n);
        }
        lua_pop(L, 1);
        break;
    }
    }
    if (st != AX_OK) ax_lua_fail(L);
}

/* ---- plugin instances ------------------------------------------------- */

typedef struct ax_lua_instance {
    ax_instance *inst;
} ax_lua_instance;

static ax_lua_instance *ax_lua_check_instance(lua_State *L, int idx) {
    ax_lua_instance *u = luaL_checkudata(L, idx, AX_LUA_INSTANCE);
    if (!u->inst) luaL_error(L, "plugin instance used after it was closed");
    return u;
}

ax_instance *ax_lua_test_instance(lua_State *L, int idx) {
    ax_lua_instance *u = luaL_testudata(L, idx, AX_LUA_INSTANCE);
    if (!u) return NULL;
    if (!u->inst) luaL_error(L, "plugin instance used after it was closed");
    return u->inst;
}

static int ax_lua_instance_gc(lua_State *L) {
    ax_lua_instance *u = luaL_checkudata(L, 1, AX_LUA_INSTANCE);
    ax_instance_free(u->inst);
    u->inst = NULL;
    return 0;
}

static int ax_lua_instance_tostring(lua_State *L) {
    ax_lua_instance *u = luaL_checkudata(L, 1, AX_LUA_INSTANCE);
    if (!u->inst) return lua_pushliteral(L, "axon.plugin (closed)"), 1;
    const ax_plugin *p = u->inst->item->plugin;
    lua_pushfstring(L, "axon.%s<%s>", ax_plugin_kind_name(p->kind), p->name);
    return 1;
}

static int ax_lua_instance_index(lua_State *L) {
    ax_lua_instance *u = ax_lua_check_instance(L, 1);
    const char *key = luaL_checkstring(L, 2);
    const ax_registry_item *it = u->inst->item;
    if (strcmp(key, "params") == 0) {
        const ax_param_spec *s = ax_params_spec(u->inst->params);
        lua_newtable(L);
        for (; s && s->name; s++) {
            ax_lua_push_param_value(L, u->inst->params, s);
            lua_setfield(L, -2, s->name);
        }
        return 1;
    }
    if (strcmp(key, "close") == 0) {
        lua_pushcfunction(L, ax_lua_instance_gc);
        return 1;
    }
    ax_lua_push_plugin_info(L, it);
    lua_getfield(L, -1, key);
    return 1;
}

/* Frees a parameter set if a Lua error unwinds before it reaches its instance. */
static int ax_lua_params_guard_gc(lua_State *L) {
    ax_params **slot = lua_touserdata(L, 1);
    if (slot && *slot) {
        ax_params_free(*slot);
        *slot = NULL;
    }
    return 0;
}

/* ax.<kind>(name [, params]) */
static int ax_lua_instantiate(lua_State *L, ax_plugin_kind kind) {
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2); /* the objects pushed below start at index 3 */
    const ax_registry_item *it = ax_lua_find(L, kind, name);
    char owner[160];
    snprintf(owner, sizeof owner, "%s '%s'", ax_plugin_kind_name(kind), name);

    /* Userdata first, so the params are owned by something the GC sees if a
     * setter raises an error below. */
    ax_lua_instance *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->inst = NULL;
    luaL_setmetatable(L, AX_LUA_INSTANCE);

    static const ax_param_spec no_params[] = {{0}};
    ax_params *p;
    if (ax_params_new(&p, it->plugin->params ? it->plugin->params : no_params, owner) != AX_OK)
        return ax_lua_fail(L);
    ax_params **slot = lua_newuserdatauv(L, sizeof *slot, 0); /* guard for p */
    *slot = p;
    lua_newtable(L);
    lua_pushcfunction(L, ax_lua_params_guard_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);

    if (!lua_isnoneornil(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "%s: parameter names must be strings, got a %s key", owner,
                                  luaL_typename(L, -2));
            ax_lua_set_param(L, p, owner, lua_tostring(L, -2), lua_gettop(L));
            lua_pop(L, 1);
        }
    }
    *slot = NULL; /* ax_instance_new takes p, whatever happens */
    lua_pop(L, 1);
    if (ax_instance_new(&u->inst, it, p) != AX_OK) return ax_lua_fail(L);
    return 1;
}

static int ax_lua_method(lua_State *L) { return ax_lua_instantiate(L, AX_PLUGIN_METHOD); }
static int ax_lua_arch(lua_State *L) { return ax_lua_instantiate(L, AX_PLUGIN_ARCH); }
static int ax_lua_aug(lua_State *L) { return ax_lua_instantiate(L, AX_PLUGIN_AUG); }
static int ax_lua_task(lua_State *L) { return ax_lua_instantiate(L, AX_PLUGIN_TASK); }
static int ax_lua_backend(lua_State *L) { return ax_lua_instantiate(L, AX_PLUGIN_BACKEND); }

/* ---- RNG ------------------------------------------------------------------ */

static ax_rng *ax_lua_check_rng(lua_State *L) { return luaL_checkudata(L, 1, AX_LUA_RNG); }

/* ax.rng(seed [, stream]) */
static int ax_lua_rng_new(lua_State *L) {
    uint64_t seed = (uint64_t)luaL_checkinteger(L, 1);
    uint64_t stream = (uint64_t)luaL_optinteger(L, 2, 0);
    ax_rng *r = lua_newuserdatauv(L, sizeof *r, 0);
    ax_rng_init(r, seed, stream);
    luaL_setmetatable(L, AX_LUA_RNG);
    return 1;
}

/* r:uniform() in [0,1), r:uniform(lo, hi) in [lo,hi) */
static int ax_lua_rng_uniform(lua_State *L) {
    ax_rng *r = ax_lua_check_rng(L);
    if (lua_isnoneornil(L, 2)) {
        lua_pushnumber(L, ax_rng_uniform(r));
    } else {
        double lo = luaL_checknumber(L, 2), hi = luaL_checknumber(L, 3);
        luaL_argcheck(L, lo < hi, 3, "empty range: need lo < hi");
        lua_pushnumber(L, ax_rng_uniform_range(r, (float)lo, (float)hi));
    }
    return 1;
}

static int ax_lua_rng_normal(lua_State *L) {
    ax_rng *r = ax_lua_check_rng(L);
    double mean = luaL_optnumber(L, 2, 0.0), std = luaL_optnumber(L, 3, 1.0);
    lua_pushnumber(L, mean + std * ax_rng_normal(r));
    return 1;
}

static int ax_lua_rng_u32(lua_State *L) {
    lua_pushinteger(L, ax_rng_u32(ax_lua_check_rng(L)));
    return 1;
}

/* r:below(n): integer in [0, n) */
static int ax_lua_rng_below(lua_State *L) {
    ax_rng *r = ax_lua_check_rng(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n > 0 && n <= (lua_Integer)UINT32_MAX, 2, "must be in [1, 2^32-1]");
    lua_pushinteger(L, ax_rng_below(r, (uint32_t)n));
    return 1;
}

static int ax_lua_rng_bernoulli(lua_State *L) {
    ax_rng *r = ax_lua_check_rng(L);
    double p = luaL_checknumber(L, 2);
    luaL_argcheck(L, p >= 0.0 && p <= 1.0, 2, "probability must be in [0, 1]");
    lua_pushboolean(L, ax_rng_bernoulli(r, (float)p));
    return 1;
}

static int ax_lua_rng_seek(lua_State *L) {
    ax_rng *r = ax_lua_check_rng(L);
    ax_rng_seek(r, (uint64_t)luaL_checkinteger(L, 2));
    lua_settop(L, 1);
    return 1;
}

/* r:state() -> seed, stream, counter */
static int ax_lua_rng_state(lua_State *L) {
    ax_rng *r = ax_lua_check_rng(L);
    lua_pushinteger(L, (lua_Integer)r->seed);
    lua_pushinteger(L, (lua_Integer)r->stream);
    lua_pushinteger(L, (lua_Integer)r->counter);
    return 3;
}

static int ax_lua_rng_tostring(lua_State *L) {
    ax_rng *r = ax_lua_check_rng(L);
    lua_pushfstring(L, "axon.rng(seed=%I, stream=%I, counter=%I)", (lua_Integer)r->seed,
                    (lua_Integer)r->stream, (lua_Integer)r->counter);
    return 1;
}

/* ---- misc ------------------------------------------------------------------ */

/* ax.log(level, fmt, ...) with string.format semantics; ax.log(tensor) is
 * the elementwise logarithm. */
static int ax_lua_log(lua_State *L) {
    if (ax_lua_is_tensor(L, 1)) return ax_lua_tensor_log(L);
    const char *lv = luaL_checkstring(L, 1);
    ax_log_level level;
    if (!ax_log_level_parse(lv, &level) || level == AX_LOG_LEVEL_OFF)
        return luaL_error(L, "unknown log level '%s' (debug, info, warn, error)", lv);
    if (!ax_log_enabled(level)) return 0;
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 2);
    lua_call(L, lua_gettop(L) - 2, 1);
    ax_log_write(level, "%s", lua_tostring(L, -1));
    return 0;
}

static int ax_lua_module(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"plugins", ax_lua_plugins}, {"describe", ax_lua_describe}, {"method", ax_lua_method},
        {"arch", ax_lua_arch},       {"aug", ax_lua_aug},           {"task", ax_lua_task},
        {"backend", ax_lua_backend}, {"rng", ax_lua_rng_new},       {"log", ax_lua_log},
        {NULL, NULL}};
    lua_newtable(L);
    ax_lua_tensor_register(L); /* first: the module's own names below win */
    luaL_setfuncs(L, fns, 0);
    ax_lua_train_register(L);
    ax_lua_finetune_register(L);
    ax_lua_data_register(L);
    ax_lua_loader_register(L);
    lua_pushstring(L, ax_version());
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, AX_ABI_MAJOR);
    lua_setfield(L, -2, "abi_major");
    lua_pushinteger(L, AX_ABI_MINOR);
    lua_setfield(L, -2, "abi_minor");
    return 1;
}

void ax_lua_open(lua_State *L, ax_registry *reg) {
    lua_pushlightuserdata(L, reg);
    lua_setfield(L, LUA_REGISTRYINDEX, AX_LUA_REGISTRY_KEY);

    static const luaL_Reg inst_meta[] = {{"__gc", ax_lua_instance_gc},
                                         {"__close", ax_lua_instance_gc},
                                         {"__tostring", ax_lua_instance_tostring},
                                         {"__index", ax_lua_instance_index},
                                         {NULL, NULL}};
    luaL_newmetatable(L, AX_LUA_INSTANCE);
    luaL_setfuncs(L, inst_meta, 0);
    lua_pop(L, 1);

    ax_lua_tensor_open(L);
    ax_lua_nn_open(L);
    ax_lua_arch_open(L); /* after the plugin-instance metatable */

    static const luaL_Reg rng_methods[] = {
        {"uniform", ax_lua_rng_uniform}, {"normal", ax_lua_rng_normal}, {"u32", ax_lua_rng_u32},
        {"below", ax_lua_rng_below},     {"bernoulli", ax_lua_rng_bernoulli},
        {"seek", ax_lua_rng_seek},       {"state", ax_lua_rng_state},   {NULL, NULL}};
    luaL_newmetatable(L, AX_LUA_RNG);
    luaL_newlib(L, rng_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ax_lua_rng_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    /* require "axon" */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, ax_lua_module);
    lua_setfield(L, -2, "axon");
    lua_pop(L, 1);

    /* Native code enters only as axon plugins, whose ABI the loader checks. */
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, -2, "loadlib");
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "cpath");
        lua_getfield(L, -1, "searchers");
        if (lua_istable(L, -1)) {
            /* keep the preload and Lua-file searchers (1, 2); drop C (3, 4) */
            lua_pushnil(L);
            lua_rawseti(L, -2, 4);
            lua_pushnil(L);
            lua_rawseti(L, -2, 3);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Message handler: append a traceback to the error message. */
static int ax_lua_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int ax_lua_run_script(ax_registry *reg, const char *script, int argc, char **argv) {
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "axon: out of memory creating a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    ax_lua_open(L, reg);

    lua_createtable(L, argc, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, ax_lua_traceback);
    int handler = lua_gettop(L);
    int rc = 0;
    if (luaL_loadfile(L, script) != LUA_OK) {
        /* Already "file:line: message" for syntax errors, "cannot open ..." otherwise. */
        fprintf(stderr, "axon: %s\n", lua_tostring(L, -1));
        rc = 1;
    } else {
        for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]); /* also as `...` */
        if (lua_pcall(L, argc, 0, handler) != LUA_OK) {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            rc = 1;
        }
    }
    lua_close(L); /* runs __gc: instances are destroyed before the registry goes */
    return rc;
}
