/* lua_data.c — ax.dataset, ax.preprocess and ax.cache_list (lua_data.h).
 * Option tables are checked key by key: an unknown key is an error that
 * lists the valid ones. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "axon/cache.h"
#include "axon/preprocess.h"
#include "lua_data.h"

#define AX_LUA_DATASET "axon.dataset"
#define AX_LUA_MAX_LIST 256

typedef struct ax_lua_dataset {
    ax_dataset *ds;
} ax_lua_dataset;

/* Every key of table t is one of keys[] (NULL-terminated). */
static void ax_lua_check_keys(lua_State *L, int t, const char *what, const char *const *keys) {
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        bool ok = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (const char *const *k = keys; *k; k++) ok |= strcmp(*k, lua_tostring(L, -1)) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *k = keys; *k; k++) {
                if (k != keys) luaL_addstring(&b, ", ");
                luaL_addstring(&b, *k);
            }
            luaL_pushresult(&b);
            const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2);
            luaL_error(L, "%s: unknown key '%s' (valid: %s)", what, key, lua_tostring(L, -1));
        }
    }
}

static const char *ax_lua_opt_string(lua_State *L, int t, const char *what, const char *key) {
    lua_getfield(L, t, key);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: '%s' must be a string, got a %s", what, key, luaL_typename(L, -1));
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the string stays alive: it is referenced by the table */
    return s;
}

static bool ax_lua_opt_number(lua_State *L, int t, const char *what, const char *key, double *out) {
    lua_getfield(L, t, key);
    bool has = !lua_isnil(L, -1);
    if (has) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "%s: '%s' must be a number, got a %s", what, key, luaL_typename(L, -1));
        *out = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return has;
}

static bool ax_lua_opt_integer(lua_State *L, int t, const char *what, const char *key, lua_Integer lo, lua_Integer hi,
                               lua_Integer *out) {
    lua_getfield(L, t, key);
    bool has = !lua_isnil(L, -1);
    if (has) {
        int isint;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint) luaL_error(L, "%s: '%s' must be an integer, got %s", what, key, luaL_tolstring(L, -1, NULL));
        if (v < lo || v > hi)
            luaL_error(L, "%s: '%s' = %I is out of range [%I, %I]", what, key, v, lo, hi);
        *out = v;
    }
    lua_pop(L, 1);
    return has;
}

static bool ax_lua_opt_bool(lua_State *L, int t, const char *what, const char *key, bool dflt) {
    lua_getfield(L, t, key);
    bool v = dflt;
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1)) luaL_error(L, "%s: '%s' must be a boolean, got a %s", what, key, luaL_typename(L, -1));
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* A list of strings t[key] into items (pointers into the table's strings). */
static size_t ax_lua_opt_list(lua_State *L, int t, const char *what, const char *key, const char **items) {
    lua_getfield(L, t, key);
    size_t n = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
        items[n++] = lua_tostring(L, -1);
    } else if (lua_istable(L, -1)) {
        lua_Integer len = luaL_len(L, -1);
        if (len > AX_LUA_MAX_LIST) luaL_error(L, "%s: '%s' has more than %d entries", what, key, AX_LUA_MAX_LIST);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: '%s'[%I] must be a string", what, key, i);
            items[n++] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "%s: '%s' must be a list of strings, got a %s", what, key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return n;
}

/* ---- ax.dataset ---------------------------------------------------------------- */

static ax_lua_dataset *ax_lua_check_ds(lua_State *L, int idx) {
    ax_lua_dataset *u = luaL_checkudata(L, idx, AX_LUA_DATASET);
    if (!u->ds) luaL_error(L, "dataset: used after close()");
    return u;
}

const ax_dataset *ax_lua_test_dataset(lua_State *L, int idx) {
    ax_lua_dataset *u = luaL_testudata(L, idx, AX_LUA_DATASET);
    return u ? u->ds : NULL;
}

static const char *const ax_lua_dataset_keys[] = {"format",       "root",          "glob",
                                                  "include_test", "csv",           "max_quality",
                                                  "modalities",   "exclude_modalities", "skip_missing",
                                                  NULL};

static int ax_lua_dataset_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *what = "dataset";
    ax_lua_check_keys(L, 1, what, ax_lua_dataset_keys);
    ax_dataset_opts o = ax_dataset_opts_default();
    const char *mods[AX_LUA_MAX_LIST], *excl[AX_LUA_MAX_LIST];
    o.format = ax_lua_opt_string(L, 1, what, "format");
    o.root = ax_lua_opt_string(L, 1, what, "root");
    if (!o.format) return luaL_error(L, "dataset: 'format' is required (nifti-dir, nnunet, openmind)");
    if (!o.root) return luaL_error(L, "dataset: 'root' is required");
    o.glob = ax_lua_opt_string(L, 1, what, "glob");
    o.csv = ax_lua_opt_string(L, 1, what, "csv");
    o.include_test = ax_lua_opt_bool(L, 1, what, "include_test", true);
    o.skip_missing = ax_lua_opt_bool(L, 1, what, "skip_missing", false);
    ax_lua_opt_number(L, 1, what, "max_quality", &o.max_quality);
    o.n_modalities = ax_lua_opt_list(L, 1, what, "modalities", mods);
    o.modalities = mods;
    o.n_exclude_modalities = ax_lua_opt_list(L, 1, what, "exclude_modalities", excl);
    o.exclude_modalities = excl;

    ax_lua_dataset *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->ds = NULL;
    luaL_setmetatable(L, AX_LUA_DATASET);
    if (ax_dataset_open(&u->ds, &o) != AX_OK) return luaL_error(L, "dataset: %s", ax_error_message());
    return 1;
}

static int ax_lua_dataset_gc(lua_State *L) {
    ax_lua_dataset *u = luaL_checkudata(L, 1, AX_LUA_DATASET);
    ax_dataset_free(u->ds);
    u->ds = NULL;
    return 0;
}

static int ax_lua_dataset_size(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)ax_dataset_size(ax_lua_check_ds(L, 1)->ds));
    return 1;
}

static void ax_lua_set_str(lua_State *L, const char *key, const char *v) {
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
}

static int ax_lua_dataset_case(lua_State *L) {
    const ax_dataset *ds = ax_lua_check_ds(L, 1)->ds;
    lua_Integer i = luaL_checkinteger(L, 2);
    lua_Integer n = (lua_Integer)ax_dataset_size(ds);
    if (i < 1 || i > n) return luaL_error(L, "dataset:case(%I): index out of range [1, %I]", i, n);
    const ax_dataset_case *c = ax_dataset_case_at(ds, (size_t)(i - 1));
    lua_createtable(L, 0, 10);
    ax_lua_set_str(L, "name", c->name);
    ax_lua_set_str(L, "subject", c->subject);
    lua_createtable(L, c->n_images, 0);
    for (int32_t k = 0; k < c->n_images; k++) {
        lua_pushstring(L, c->images[k]);
        lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "images");
    ax_lua_set_str(L, "label", c->label);
    ax_lua_set_str(L, "mask", c->mask);
    ax_lua_set_str(L, "deface_mask", c->deface_mask);
    ax_lua_set_str(L, "modality", c->modality);
    if (!isnan(c->quality)) {
        lua_pushnumber(L, c->quality);
        lua_setfield(L, -2, "quality");
    }
    lua_pushboolean(L, c->test);
    lua_setfield(L, -2, "test");
    return 1;
}

static const char *const ax_lua_split_keys[] = {"fraction", "min", "max", "seed", NULL};

/* Split options from the table at t (absent: defaults). */
static ax_split_opts ax_lua_split_opts(lua_State *L, int t, const char *what) {
    ax_split_opts o = ax_split_opts_default();
    if (lua_isnoneornil(L, t)) return o;
    luaL_checktype(L, t, LUA_TTABLE);
    ax_lua_check_keys(L, t, what, ax_lua_split_keys);
    ax_lua_opt_number(L, t, what, "fraction", &o.fraction);
    lua_Integer v;
    if (ax_lua_opt_integer(L, t, what, "min", 0, LUA_MAXINTEGER, &v)) o.min_val = v;
    if (ax_lua_opt_integer(L, t, what, "max", 0, LUA_MAXINTEGER, &v)) o.max_val = v;
    if (ax_lua_opt_integer(L, t, what, "seed", 0, LUA_MAXINTEGER, &v)) o.seed = (uint64_t)v;
    return o;
}

static int ax_lua_dataset_split(lua_State *L) {
    const ax_dataset *ds = ax_lua_check_ds(L, 1)->ds;
    ax_split_opts o = ax_lua_split_opts(L, 2, "dataset:split");
    size_t n = ax_dataset_size(ds);
    uint8_t *s = malloc(n + 1);
    if (!s) return luaL_error(L, "dataset:split: out of memory");
    if (ax_dataset_split(ds, &o, s) != AX_OK) {
        free(s);
        return luaL_error(L, "dataset:split: %s", ax_error_message());
    }
    lua_createtable(L, 0, 3);
    const char *names[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; k++) {
        lua_newtable(L);
        lua_Integer m = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == k) {
                lua_pushinteger(L, (lua_Integer)i + 1);
                lua_rawseti(L, -2, ++m);
            }
        lua_setfield(L, -2, names[k]);
    }
    free(s);
    return 1;
}

static int ax_lua_dataset_labels(lua_State *L) {
    const ax_dataset *ds = ax_lua_check_ds(L, 1)->ds;
    lua_newtable(L);
    for (size_t k = 0; k < ax_dataset_n_labels(ds); k++) {
        lua_pushinteger(L, ax_dataset_label_id(ds, k));
        lua_setfield(L, -2, ax_dataset_label_name(ds, k));
    }
    return 1;
}

static int ax_lua_dataset_channel_names(lua_State *L) {
    const ax_dataset *ds = ax_lua_check_ds(L, 1)->ds;
    lua_newtable(L);
    for (int32_t c = 0; c < ax_dataset_channels(ds); c++) {
        lua_pushstring(L, ax_dataset_channel_name(ds, c));
        lua_rawseti(L, -2, c + 1);
    }
    return 1;
}

static int ax_lua_dataset_index(lua_State *L) {
    ax_lua_dataset *u = luaL_checkudata(L, 1, AX_LUA_DATASET);
    const char *k = luaL_checkstring(L, 2);
    if (u->ds) {
        if (strcmp(k, "format") == 0) return lua_pushstring(L, ax_dataset_format(u->ds)), 1;
        if (strcmp(k, "root") == 0) return lua_pushstring(L, ax_dataset_root(u->ds)), 1;
        if (strcmp(k, "channels") == 0) return lua_pushinteger(L, ax_dataset_channels(u->ds)), 1;
    }
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static int ax_lua_dataset_tostring(lua_State *L) {
    ax_lua_dataset *u = luaL_checkudata(L, 1, AX_LUA_DATASET);
    if (!u->ds) return lua_pushliteral(L, "axon.dataset(closed)"), 1;
    lua_pushfstring(L, "axon.dataset(%s, %s, %I cases)", ax_dataset_format(u->ds), ax_dataset_root(u->ds),
                    (lua_Integer)ax_dataset_size(u->ds));
    return 1;
}

/* ---- ax.preprocess ------------------------------------------------------------- */

static const char *const ax_lua_pp_keys[] = {"dataset", "out",    "spacing", "threads", "mask_norm",    "crop_to_mask",
                                             "force",   "max_fg", "split",   "quiet",   "geometry_tol", NULL};

static int ax_lua_preprocess(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *what = "preprocess";
    ax_lua_check_keys(L, 1, what, ax_lua_pp_keys);
    lua_getfield(L, 1, "dataset");
    const ax_dataset *ds = ax_lua_test_dataset(L, -1);
    if (!ds) return luaL_error(L, "preprocess: 'dataset' must be an open ax.dataset{...}, got a %s", luaL_typename(L, -1));
    lua_pop(L, 1); /* still referenced by the table */
    ax_preprocess_opts o = ax_preprocess_opts_default();
    o.out = ax_lua_opt_string(L, 1, what, "out");
    if (!o.out) return luaL_error(L, "preprocess: 'out' (the cache folder) is required");
    lua_getfield(L, 1, "spacing");
    if (lua_isnumber(L, -1)) {
        o.spacing[0] = o.spacing[1] = o.spacing[2] = lua_tonumber(L, -1);
    } else if (lua_istable(L, -1)) {
        if (luaL_len(L, -1) != 3) return luaL_error(L, "preprocess: 'spacing' must be a number or {d, h, w}");
        for (int a = 0; a < 3; a++) {
            lua_rawgeti(L, -1, a + 1);
            if (!lua_isnumber(L, -1)) return luaL_error(L, "preprocess: spacing[%d] must be a number", a + 1);
            o.spacing[a] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "preprocess: 'spacing' must be a number or {d, h, w}, got a %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    lua_Integer v;
    if (ax_lua_opt_integer(L, 1, what, "threads", 0, 4096, &v)) o.threads = (int32_t)v;
    if (ax_lua_opt_integer(L, 1, what, "max_fg", 0, LUA_MAXINTEGER, &v)) o.max_fg = v;
    ax_lua_opt_number(L, 1, what, "geometry_tol", &o.geometry_tol);
    o.mask_norm = ax_lua_opt_bool(L, 1, what, "mask_norm", false);
    o.crop_to_mask = ax_lua_opt_bool(L, 1, what, "crop_to_mask", true);
    o.force = ax_lua_opt_bool(L, 1, what, "force", false);
    if (!ax_lua_opt_bool(L, 1, what, "quiet", false)) {
        o.progress = ax_preprocess_progress_print;
        o.progress_ctx = stderr;
    }
    lua_getfield(L, 1, "split");
    o.split = ax_lua_split_opts(L, lua_gettop(L), "preprocess: split");
    lua_pop(L, 1);

    ax_preprocess_report rep;
    ax_status st = ax_preprocess_run(ds, &o, &rep);
    if (st != AX_OK) {
        ax_preprocess_report_free(&rep);
        const char *msg = ax_error_message();
        return luaL_error(L, "%s%s", strncmp(msg, "preprocess:", 11) == 0 ? "" : "preprocess: ", msg);
    }
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)rep.n_total);
    lua_setfield(L, -2, "total");
    lua_pushinteger(L, (lua_Integer)rep.n_done);
    lua_setfield(L, -2, "done");
    lua_pushinteger(L, (lua_Integer)rep.n_skipped);
    lua_setfield(L, -2, "skipped");
    lua_pushinteger(L, (lua_Integer)rep.n_failed);
    lua_setfield(L, -2, "failed");
    lua_createtable(L, (int)rep.n_failed, 0);
    for (size_t k = 0; k < rep.n_failed; k++) {
        lua_createtable(L, 0, 2);
        ax_lua_set_str(L, "name", rep.failed_names[k]);
        ax_lua_set_str(L, "reason", rep.failed_reasons[k]);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "failures");
    lua_pushfstring(L, "%s/index.json", o.out);
    lua_setfield(L, -2, "index");
    ax_preprocess_report_free(&rep);
    return 1;
}

/* ax.cache_list(dir [, split]) -> {paths} */
static int ax_lua_cache_list(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    const char *split = luaL_optstring(L, 2, NULL);
    char **paths;
    size_t n;
    if (ax_cache_list(dir, split, &paths, &n) != AX_OK) return luaL_error(L, "cache_list: %s", ax_error_message());
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, paths[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    ax_cache_paths_free(paths, n);
    return 1;
}

void ax_lua_data_register(lua_State *L) {
    if (luaL_newmetatable(L, AX_LUA_DATASET)) {
        static const luaL_Reg meta[] = {{"__gc", ax_lua_dataset_gc},       {"__close", ax_lua_dataset_gc},
                                        {"__len", ax_lua_dataset_size},    {"__index", ax_lua_dataset_index},
                                        {"__tostring", ax_lua_dataset_tostring}, {NULL, NULL}};
        static const luaL_Reg methods[] = {{"size", ax_lua_dataset_size},
                                           {"case", ax_lua_dataset_case},
                                           {"split", ax_lua_dataset_split},
                                           {"labels", ax_lua_dataset_labels},
                                           {"channel_names", ax_lua_dataset_channel_names},
                                           {"close", ax_lua_dataset_gc},
                                           {NULL, NULL}};
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"dataset", ax_lua_dataset_new},
                                   {"preprocess", ax_lua_preprocess},
                                   {"cache_list", ax_lua_cache_list},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
