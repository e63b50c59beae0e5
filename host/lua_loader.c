/* ax.loader{...}: axon/loader.h in Lua (usage in lua_loader.h). The
 * loader userdata keeps the AUG instances it uses in its user value, so
 * they cannot be collected while workers call them. */
#include "lua_loader.h"

#include "lua_axon.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "axon/cache.h"
#include "axon/loader.h"
#include "lua_tensor.h"
#include "registry.h"

#define AX_LUA_LOADER "axon.loader"

typedef struct ax_lua_loader {
    ax_loader *ld;
    int64_t step;  /* the step next() returns next */
    int labels;
} ax_lua_loader;

static ax_lua_loader *ax_lua_check_loader(lua_State *L, int idx) {
    ax_lua_loader *u = luaL_checkudata(L, idx, AX_LUA_LOADER);
    if (!u->ld) luaL_error(L, "loader used after it was closed");
    return u;
}

static int ax_lua_loader_gc(lua_State *L) {
    ax_lua_loader *u = luaL_checkudata(L, 1, AX_LUA_LOADER);
    ax_loader_free(u->ld); /* joins the workers before the augs can go */
    u->ld = NULL;
    return 0;
}

static int ax_lua_loader_tostring(lua_State *L) {
    ax_lua_loader *u = luaL_checkudata(L, 1, AX_LUA_LOADER);
    if (!u->ld) return lua_pushliteral(L, "axon.loader (closed)"), 1;
    lua_pushfstring(L, "axon.loader (next step %I)", (lua_Integer)u->step);
    return 1;
}

/* ld:next() -> image [, label] */
static int ax_lua_loader_next(lua_State *L) {
    ax_lua_loader *u = ax_lua_check_loader(L, 1);
    ax_batch b;
    if (ax_loader_next(u->ld, &b) != AX_OK) return luaL_error(L, "%s", ax_error_message());
    u->step = b.step + 1;
    ax_lua_push_tensor(L, b.image);
    if (!u->labels) return 1;
    ax_lua_push_tensor(L, b.label);
    return 2;
}

/* ld:seek(k) */
static int ax_lua_loader_seek(lua_State *L) {
    ax_lua_loader *u = ax_lua_check_loader(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    if (ax_loader_seek(u->ld, (int64_t)k) != AX_OK) return luaL_error(L, "%s", ax_error_message());
    u->step = (int64_t)k;
    return 0;
}

static int ax_lua_loader_step(lua_State *L) {
    ax_lua_loader *u = ax_lua_check_loader(L, 1);
    lua_pushinteger(L, (lua_Integer)u->step);
    return 1;
}

/* ---- ax.loader{...} --------------------------------------------------------- */

static const char *const ax_lua_loader_keys[] = {"cache", "split", "paths", "patch", "batch", "threads", "prefetch",
                                                 "seed", "oversample_fg", "labels", "enlarge", "augs", NULL};

static lua_Integer ax_lua_opt_int(lua_State *L, const char *key, lua_Integer def, lua_Integer lo, lua_Integer hi) {
    lua_getfield(L, 1, key);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "ax.loader: %s must be an integer, got %s", key, luaL_typename(L, -1));
        if (v < lo || v > hi)
            luaL_error(L, "ax.loader: %s = %I is out of range %I..%I", key, (lua_Integer)v, (lua_Integer)lo,
                       (lua_Integer)hi);
    }
    lua_pop(L, 1);
    return v;
}

static double ax_lua_opt_num(lua_State *L, const char *key, double def) {
    lua_getfield(L, 1, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "ax.loader: %s must be a number, got %s", key, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Case paths: new array of new strings in *paths (freed by the guard). */
typedef struct ax_lua_paths {
    char **paths;
    size_t n;
    int from_cache;
} ax_lua_paths;

static int ax_lua_paths_gc(lua_State *L) {
    ax_lua_paths *p = lua_touserdata(L, 1);
    if (p->from_cache)
        ax_cache_paths_free(p->paths, p->n);
    else {
        for (size_t i = 0; i < p->n; i++) free(p->paths[i]);
        free(p->paths);
    }
    p->paths = NULL;
    p->n = 0;
    return 0;
}

static void ax_lua_loader_paths(lua_State *L, ax_lua_paths *p) {
    lua_getfield(L, 1, "cache");
    lua_getfield(L, 1, "paths");
    int has_cache = !lua_isnil(L, -2), has_paths = !lua_isnil(L, -1);
    if (has_cache == has_paths) luaL_error(L, "ax.loader: give exactly one of cache = DIR or paths = {...}");
    if (has_cache) {
        const char *dir = lua_tostring(L, -2);
        if (!dir) luaL_error(L, "ax.loader: cache must be a folder name");
        lua_getfield(L, 1, "split");
        const char *split = luaL_optstring(L, -1, "train");
        if (strcmp(split, "all") == 0) split = NULL;
        p->from_cache = 1;
        if (ax_cache_list(dir, split, &p->paths, &p->n) != AX_OK) luaL_error(L, "ax.loader: %s", ax_error_message());
        if (p->n == 0) luaL_error(L, "ax.loader: %s has no cases in split '%s'", dir, split ? split : "all");
        lua_pop(L, 3);
        return;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "ax.loader: paths must be a list of case files");
    size_t n = (size_t)lua_rawlen(L, -1);
    if (n == 0) luaL_error(L, "ax.loader: paths is empty");
    p->paths = calloc(n, sizeof *p->paths);
    if (!p->paths) luaL_error(L, "ax.loader: out of memory");
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        const char *s = lua_tostring(L, -1);
        if (!s || lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "ax.loader: paths[%d] is not a string", (int)i + 1);
        p->paths[i] = strdup(s);
        if (!p->paths[i]) luaL_error(L, "ax.loader: out of memory");
        p->n = i + 1;
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
}

/* augs: fills `augs` (n entries, memory owned by a Lua userdata at the top
 * of the stack) and stores the instances in the table at `keep`. */
static ax_loader_aug *ax_lua_loader_augs(lua_State *L, int keep, size_t *n_out) {
    *n_out = 0;
    lua_getfield(L, 1, "augs");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L); /* keeps the stack shape of the other branch */
        return NULL;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "ax.loader: augs must be a list of ax.aug(...) instances");
    size_t n = (size_t)lua_rawlen(L, -1);
    ax_loader_aug *augs = lua_newuserdatauv(L, (n ? n : 1) * sizeof *augs, 0);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -2, (lua_Integer)i + 1);
        const ax_instance *inst = ax_lua_test_instance(L, -1);
        if (!inst) luaL_error(L, "ax.loader: augs[%d] is a %s, not an ax.aug(...) instance", (int)i + 1, luaL_typename(L, -1));
        if (inst->item->plugin->kind != AX_PLUGIN_AUG)
            luaL_error(L, "ax.loader: augs[%d] is a %s plugin ('%s'), not an aug", (int)i + 1,
                       ax_plugin_kind_name(inst->item->plugin->kind), inst->item->plugin->name);
        augs[i].ops = inst->ops;
        augs[i].self = inst->self;
        augs[i].name = inst->item->plugin->name;
        lua_rawseti(L, keep, (lua_Integer)i + 1);
    }
    lua_remove(L, -2); /* the augs table; the array userdata stays on top */
    *n_out = n;
    return augs;
}

static int ax_lua_loader_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* Unknown keys are mistakes (a typo would silently use a default). */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        int known = 0;
        for (int i = 0; k && ax_lua_loader_keys[i]; i++) known |= strcmp(k, ax_lua_loader_keys[i]) == 0;
        if (!known) luaL_error(L, "ax.loader: unknown key '%s'", k ? k : luaL_typename(L, -2));
        lua_pop(L, 1);
    }

    ax_loader_opts o = ax_loader_opts_default();
    lua_getfield(L, 1, "patch");
    if (lua_type(L, -1) == LUA_TNUMBER) {
        lua_Integer v = luaL_checkinteger(L, -1);
        o.patch[0] = o.patch[1] = o.patch[2] = (int32_t)(v < 0 ? 0 : v > 4096 ? 4097 : v);
    } else if (lua_istable(L, -1)) {
        if (lua_rawlen(L, -1) != 3) luaL_error(L, "ax.loader: patch must be {D, H, W} or one number");
        for (int a = 0; a < 3; a++) {
            lua_rawgeti(L, -1, a + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_error(L, "ax.loader: patch[%d] must be an integer", a + 1);
            o.patch[a] = (int32_t)(v < 0 ? 0 : v > 4096 ? 4097 : v);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "ax.loader: patch must be {D, H, W} or one number");
    }
    lua_pop(L, 1);
    o.batch = (int32_t)ax_lua_opt_int(L, "batch", o.batch, 1, 65536);
    o.threads = (int32_t)ax_lua_opt_int(L, "threads", 0, 0, 1024);
    o.prefetch = (int32_t)ax_lua_opt_int(L, "prefetch", 0, 0, 4096);
    o.seed = (uint64_t)ax_lua_opt_int(L, "seed", 0, 0, LUA_MAXINTEGER);
    o.oversample_fg = ax_lua_opt_num(L, "oversample_fg", o.oversample_fg);
    o.enlarge = ax_lua_opt_num(L, "enlarge", o.enlarge);
    lua_getfield(L, 1, "labels");
    o.labels = lua_toboolean(L, -1);
    lua_pop(L, 1);

    /* The loader userdata first, with a table of kept instances as its user
     * value; everything allocated below is owned by Lua values. */
    ax_lua_loader *u = lua_newuserdatauv(L, sizeof *u, 1); /* 2 */
    u->ld = NULL;
    u->step = 0;
    u->labels = o.labels;
    luaL_setmetatable(L, AX_LUA_LOADER);
    lua_newtable(L); /* 3: kept instances */
    ax_lua_paths *p = lua_newuserdatauv(L, sizeof *p, 0); /* 4 */
    memset(p, 0, sizeof *p);
    lua_newtable(L);
    lua_pushcfunction(L, ax_lua_paths_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    ax_lua_loader_paths(L, p);
    ax_loader_aug *augs = ax_lua_loader_augs(L, 3, &o.n_augs); /* 5 */
    o.augs = augs;
    o.paths = (const char *const *)p->paths;
    o.n_paths = p->n;
    if (ax_loader_new(&u->ld, &o) != AX_OK) return luaL_error(L, "ax.loader: %s", ax_error_message());
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, 2, 1);
    lua_pushvalue(L, 2);
    return 1;
}

void ax_lua_loader_register(lua_State *L) {
    if (luaL_newmetatable(L, AX_LUA_LOADER)) {
        static const luaL_Reg methods[] = {{"next", ax_lua_loader_next},
                                           {"seek", ax_lua_loader_seek},
                                           {"step", ax_lua_loader_step},
                                           {"close", ax_lua_loader_gc},
                                           {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ax_lua_loader_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, ax_lua_loader_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, ax_lua_loader_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, ax_lua_loader_new);
    lua_setfield(L, -2, "loader");
}
