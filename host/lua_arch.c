/* Networks from ARCH plugins in Lua (see lua_arch.h): arch:build{} and
 * arch:plan() on plugin instances, and the network userdata. */
#include "lua_arch.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_axon.h"
#include "lua_tensor.h"

#define AX_LUA_NET "axon.net"

typedef struct ax_lua_net {
    ax_module *m;                     /* owned; NULL once closed */
    int64_t in_channels, out_channels;
    char arch[64];                    /* the plugin's name, for messages */
} ax_lua_net;

static int ax_lua_arch_fail(lua_State *L) { return luaL_error(L, "%s", ax_error_message()); }

static ax_instance *ax_lua_arch_instance(lua_State *L, int idx) {
    ax_instance *inst = ax_lua_test_instance(L, idx);
    if (!inst) luaL_typeerror(L, idx, AX_LUA_INSTANCE);
    if (inst->item->plugin->kind != AX_PLUGIN_ARCH)
        luaL_error(L, "%s '%s' is not an arch", ax_plugin_kind_name(inst->item->plugin->kind), inst->item->plugin->name);
    return inst;
}

static ax_lua_net *ax_lua_check_net(lua_State *L, int idx) {
    ax_lua_net *u = luaL_checkudata(L, idx, AX_LUA_NET);
    if (!u->m) luaL_error(L, "network used after it was closed");
    return u;
}

/* The arch instance a network was built by (its user value). */
static ax_instance *ax_lua_net_instance(lua_State *L, int idx) {
    lua_getiuservalue(L, idx, 1);
    ax_instance *inst = ax_lua_arch_instance(L, -1);
    lua_pop(L, 1);
    return inst;
}

ax_module *ax_lua_arch_check_net(lua_State *L, int idx, ax_instance **inst) {
    idx = lua_absindex(L, idx);
    ax_lua_net *u = ax_lua_check_net(L, idx);
    if (inst) *inst = ax_lua_net_instance(L, idx);
    return u->m;
}

/* ---- plans ------------------------------------------------------------------ */

static int ax_lua_push_plan(lua_State *L, ax_instance *inst) {
    const ax_arch_ops *ops = inst->ops;
    if (!ops->plan) return luaL_error(L, "arch '%s' has no plan()", inst->item->plugin->name);
    ax_arch_plan plan;
    memset(&plan, 0, sizeof plan);
    if (ops->plan(inst->self, &plan) != AX_OK) return ax_lua_arch_fail(L);
    lua_createtable(L, 0, 7);
    const char *keys[] = {"stem", "encoder", "decoder", "input_projection", "output_head", "pos_embed"};
    const char *vals[] = {plan.stem, plan.encoder, plan.decoder, plan.input_projection, plan.output_head,
                          plan.pos_embed};
    for (int i = 0; i < 6; i++) {
        if (!vals[i]) continue;
        lua_pushstring(L, vals[i]);
        lua_setfield(L, -2, keys[i]);
    }
    lua_createtable(L, 3, 0);
    for (int d = 0; d < 3; d++) {
        lua_pushinteger(L, plan.divisor[d]);
        lua_rawseti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "divisor");
    return 1;
}

static int ax_lua_arch_plan(lua_State *L) { return ax_lua_push_plan(L, ax_lua_arch_instance(L, 1)); }

/* ---- arch:build{} -------------------------------------------------------------------- */

static lua_Integer ax_lua_build_int(lua_State *L, const char *key, lua_Integer def, bool required) {
    lua_getfield(L, 2, key);
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (lua_isnil(L, -1)) {
        if (required) luaL_error(L, "arch:build: '%s' is required", key);
        v = def;
    } else if (!isnum) {
        luaL_error(L, "arch:build: '%s' must be an integer, got %s", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static int ax_lua_arch_build(lua_State *L) {
    ax_instance *inst = ax_lua_arch_instance(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    static const char *const valid[] = {"in_channels", "out_channels", "seed", "stream", NULL};
    for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        bool ok = false;
        for (int i = 0; k && valid[i]; i++) ok = ok || strcmp(k, valid[i]) == 0;
        if (!ok)
            return luaL_error(L, "arch:build: unknown option '%s'; valid: in_channels, out_channels, seed, stream",
                              k ? k : luaL_typename(L, -2));
    }
    lua_Integer in = ax_lua_build_int(L, "in_channels", 0, true), out = ax_lua_build_int(L, "out_channels", 0, true);
    lua_Integer seed = ax_lua_build_int(L, "seed", 0, false), stream = ax_lua_build_int(L, "stream", 0, false);
    if (in < 1 || out < 1)
        return luaL_error(L, "arch:build: in_channels (%I) and out_channels (%I) must be >= 1", in, out);
    const ax_arch_ops *ops = inst->ops;
    if (!ops->build) return luaL_error(L, "arch '%s' has no build()", inst->item->plugin->name);

    ax_lua_net *u = lua_newuserdatauv(L, sizeof *u, 1);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, AX_LUA_NET);
    lua_pushvalue(L, 1); /* the instance lives as long as its networks */
    lua_setiuservalue(L, -2, 1);
    u->in_channels = in;
    u->out_channels = out;
    snprintf(u->arch, sizeof u->arch, "%s", inst->item->plugin->name);
    ax_rng rng;
    ax_rng_init(&rng, (uint64_t)seed, (uint64_t)stream);
    if (ops->build(inst->self, &u->m, in, out, &rng) != AX_OK) {
        u->m = NULL;
        return ax_lua_arch_fail(L);
    }
    return 1;
}

/* ---- network methods ------------------------------------------------------------------ */

static int ax_lua_net_gc(lua_State *L) {
    ax_lua_net *u = luaL_checkudata(L, 1, AX_LUA_NET);
    ax_module_free(u->m);
    u->m = NULL;
    return 0;
}

static int ax_lua_net_tostring(lua_State *L) {
    ax_lua_net *u = luaL_checkudata(L, 1, AX_LUA_NET);
    if (!u->m) return lua_pushliteral(L, "axon.net (closed)"), 1;
    lua_pushfstring(L, "axon.net<%s %s, %I -> %I channels>", u->arch, ax_module_type(u->m),
                    (lua_Integer)u->in_channels, (lua_Integer)u->out_channels);
    return 1;
}

static int ax_lua_net_forward(lua_State *L) {
    ax_lua_net *u = ax_lua_check_net(L, 1);
    ax_tensor *x = ax_lua_check_tensor(L, 2), *y = NULL;
    if (ax_module_forward(u->m, &y, x) != AX_OK) return ax_lua_arch_fail(L);
    ax_lua_push_tensor(L, y);
    return 1;
}

static int ax_lua_net_forward_all(lua_State *L) {
    ax_lua_net *u = ax_lua_check_net(L, 1);
    ax_tensor *x = ax_lua_check_tensor(L, 2), *outs[16] = {NULL};
    ax_instance *inst = ax_lua_net_instance(L, 1);
    const ax_arch_ops *ops = inst->ops;
    int n = 0;
    if (ops->forward_all) {
        if (ops->forward_all(inst->self, u->m, x, outs, 16, &n) != AX_OK) return ax_lua_arch_fail(L);
    } else {
        if (ax_module_forward(u->m, &outs[0], x) != AX_OK) return ax_lua_arch_fail(L);
        n = 1;
    }
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        ax_lua_push_tensor(L, outs[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* Push {name = tensor} from a named list (the list is cleared). */
static int ax_lua_push_named(lua_State *L, ax_status st, ax_named_tensors *l) {
    if (st != AX_OK) return ax_lua_arch_fail(L);
    lua_createtable(L, 0, (int)l->n);
    for (size_t i = 0; i < l->n; i++) {
        ax_lua_push_tensor(L, ax_tensor_retain(l->tensors[i]));
        lua_setfield(L, -2, l->names[i]);
    }
    ax_named_tensors_clear(l);
    return 1;
}

static int ax_lua_net_parameters(lua_State *L) {
    ax_named_tensors l = {0};
    return ax_lua_push_named(L, ax_module_parameters(ax_lua_check_net(L, 1)->m, &l), &l);
}

static int ax_lua_net_state_dict(lua_State *L) {
    ax_named_tensors l = {0};
    return ax_lua_push_named(L, ax_module_state_dict(ax_lua_check_net(L, 1)->m, &l), &l);
}

static void ax_lua_push_names(lua_State *L, char **names, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static int ax_lua_net_load(lua_State *L) {
    ax_lua_net *u = ax_lua_check_net(L, 1);
    const char *path = luaL_checkstring(L, 2);
    bool strict = lua_isnoneornil(L, 3) ? true : lua_toboolean(L, 3);
    ax_load_report rep = {0};
    if (ax_module_load_safetensors(u->m, path, strict, &rep) != AX_OK) {
        ax_load_report_clear(&rep);
        return ax_lua_arch_fail(L);
    }
    ax_lua_push_names(L, rep.missing, rep.n_missing);
    ax_lua_push_names(L, rep.unexpected, rep.n_unexpected);
    ax_load_report_clear(&rep);
    return 2;
}

/* net:save(path [, meta]) */
static int ax_lua_net_save(lua_State *L) {
    ax_lua_net *u = ax_lua_check_net(L, 1);
    const char *path = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    ax_instance *inst = ax_lua_net_instance(L, 1);

    /* the metadata as a Lua table (index 4): automatic keys, then the user's */
    lua_newtable(L);
    char *json = ax_params_to_json(inst->params);
    if (!json) return luaL_error(L, "net:save: out of memory");
    lua_pushstring(L, json);
    free(json);
    lua_setfield(L, 4, "arch_params");
    lua_pushstring(L, inst->item->plugin->name);
    lua_setfield(L, 4, "arch");
    lua_pushfstring(L, "%I", (lua_Integer)u->in_channels);
    lua_setfield(L, 4, "in_channels");
    lua_pushfstring(L, "%I", (lua_Integer)u->out_channels);
    lua_setfield(L, 4, "out_channels");
    if (!lua_isnil(L, 3))
        for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1)) {
            int vt = lua_type(L, -1);
            if (lua_type(L, -2) != LUA_TSTRING || (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN))
                return luaL_error(L, "net:save: metadata keys must be strings and values strings, numbers or "
                                     "booleans");
            lua_pushvalue(L, -2);
            if (vt == LUA_TBOOLEAN)
                lua_pushstring(L, lua_toboolean(L, -2) ? "true" : "false");
            else
                luaL_tolstring(L, -2, NULL);
            lua_settable(L, 4);
        }
    size_t nm = 0;
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) nm++;
    const char **keys = lua_newuserdatauv(L, nm * sizeof *keys, 0); /* freed by the GC */
    const char **vals = lua_newuserdatauv(L, nm * sizeof *vals, 0);
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) {
        keys[i] = lua_tostring(L, -2); /* alive: they are in table 4 */
        vals[i++] = lua_tostring(L, -1);
    }
    if (ax_module_save_safetensors(u->m, path, nm, keys, vals) != AX_OK) return ax_lua_arch_fail(L);
    return 0;
}

static int ax_lua_net_train(lua_State *L) {
    ax_lua_net *u = ax_lua_check_net(L, 1);
    ax_module_train(u->m, lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2));
    lua_settop(L, 1);
    return 1;
}

static int ax_lua_net_eval(lua_State *L) {
    ax_module_eval(ax_lua_check_net(L, 1)->m);
    lua_settop(L, 1);
    return 1;
}

static int ax_lua_net_training(lua_State *L) {
    lua_pushboolean(L, ax_module_training(ax_lua_check_net(L, 1)->m));
    return 1;
}

static int ax_lua_net_zero_grad(lua_State *L) {
    ax_module_zero_grad(ax_lua_check_net(L, 1)->m);
    return 0;
}

static int ax_lua_net_plan(lua_State *L) {
    ax_lua_check_net(L, 1);
    return ax_lua_push_plan(L, ax_lua_net_instance(L, 1));
}

static int ax_lua_net_summary(lua_State *L) {
    ax_lua_net *u = ax_lua_check_net(L, 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return luaL_error(L, "net:summary: out of memory");
    ax_module_print(u->m, f);
    fclose(f);
    lua_pushlstring(L, buf, len);
    free(buf);
    return 1;
}

/* ---- registration ------------------------------------------------------------------------- */

/* The plugin-instance __index, extended: ARCH instances gain build and plan;
 * everything else goes to lua_axon.c's __index (upvalue 1). */
static int ax_lua_arch_index(lua_State *L) {
    const char *key = lua_tostring(L, 2);
    ax_instance *inst = ax_lua_test_instance(L, 1);
    if (key && inst && inst->item->plugin->kind == AX_PLUGIN_ARCH) {
        if (strcmp(key, "build") == 0) return lua_pushcfunction(L, ax_lua_arch_build), 1;
        if (strcmp(key, "plan") == 0) return lua_pushcfunction(L, ax_lua_arch_plan), 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

void ax_lua_arch_open(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"forward", ax_lua_net_forward},       {"forward_all", ax_lua_net_forward_all},
        {"parameters", ax_lua_net_parameters}, {"state_dict", ax_lua_net_state_dict},
        {"load", ax_lua_net_load},             {"save", ax_lua_net_save},
        {"train", ax_lua_net_train},           {"eval", ax_lua_net_eval},
        {"training", ax_lua_net_training},     {"zero_grad", ax_lua_net_zero_grad},
        {"plan", ax_lua_net_plan},             {"summary", ax_lua_net_summary},
        {"close", ax_lua_net_gc},              {NULL, NULL}};
    luaL_newmetatable(L, AX_LUA_NET);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ax_lua_net_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ax_lua_net_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, ax_lua_net_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    if (luaL_getmetatable(L, AX_LUA_INSTANCE) == LUA_TTABLE) {
        lua_getfield(L, -1, "__index");
        lua_pushcclosure(L, ax_lua_arch_index, 1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
