/* `axon pretrain [CONFIG.lua] [--KEY VALUE]...`: ax.pretrain{} from the
 * command line. CONFIG.lua returns the configuration table (it may use
 * `require "axon"`); each --KEY VALUE (or --KEY=VALUE) sets the Lua key of
 * the same name (dashes read as underscores) and wins over the file;
 * --arch.NAME VALUE and --method.NAME VALUE set plugin parameters,
 * --data.KEY VALUE the keys of a dataset table (root, format, spacing, ...). */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "cli.h"
#include "lua_axon.h"
#include "lua_train.h"
#include "registry.h"

typedef struct ax_pretrain_cli {
    int argc;
    char **argv;
    const char *config;
} ax_pretrain_cli;

static bool ax_pretrain_is_bool_key(const char *k) {
    return strcmp(k, "resume") == 0 || strcmp(k, "nesterov") == 0 || strcmp(k, "progress") == 0;
}

/* Push a command-line value: integer, number, true/false, a comma list of
 * those (a table), else the string. Names in a list stay strings. */
static void ax_pretrain_push_value(lua_State *L, const char *text, bool force_list) {
    if (strchr(text, ',') || force_list) {
        lua_newtable(L);
        char *copy = strdup(text), *save = NULL;
        if (!copy) luaL_error(L, "out of memory");
        lua_Integer i = 0;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            ax_pretrain_push_value(L, tok, false);
            lua_rawseti(L, -2, ++i);
        }
        free(copy);
        return;
    }
    if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
        lua_pushboolean(L, text[0] == 't');
        return;
    }
    if (lua_stringtonumber(L, text) == 0) lua_pushstring(L, text);
}

static int ax_pretrain_main(lua_State *L) {
    ax_pretrain_cli *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (c->config) {
        if (luaL_loadfile(L, c->config) != LUA_OK) return lua_error(L);
        lua_call(L, 0, 1);
        if (!lua_istable(L, -1))
            return luaL_error(L, "%s: must return the configuration table, got a %s", c->config, luaL_typename(L, -1));
    } else {
        lua_newtable(L);
    }
    int cfg = lua_gettop(L);
    for (int i = 0; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return luaL_error(L, "unexpected argument '%s'; see 'axon help pretrain'", a);
        char key[128];
        const char *eq = strchr(a + 2, '=');
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl >= sizeof key) return luaL_error(L, "option too long: %s", a);
        memcpy(key, a + 2, kl);
        key[kl] = '\0';
        for (char *p = key; *p; p++)
            if (*p == '-') *p = '_';
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (ax_pretrain_is_bool_key(key) && (i + 1 >= c->argc || strncmp(c->argv[i + 1], "--", 2) == 0))
                value = "true";
            else if (i + 1 < c->argc)
                value = c->argv[++i];
            else
                return luaL_error(L, "option --%s needs a value", key);
        }
        char *dot = strchr(key, '.');
        if (dot) {
            *dot = '\0';
            if (strcmp(key, "arch") != 0 && strcmp(key, "method") != 0 && strcmp(key, "data") != 0)
                return luaL_error(L, "--%s.%s: only arch.PARAM, method.PARAM and data.KEY are dotted options", key,
                                  dot + 1);
            const char *tbl = key[0] == 'a' ? "arch_params" : key[0] == 'm' ? "method_params" : "data";
            lua_getfield(L, cfg, tbl);
            if (!lua_istable(L, -1)) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_setfield(L, cfg, tbl);
            }
            ax_pretrain_push_value(L, value, false);
            lua_setfield(L, -2, dot + 1);
            lua_pop(L, 1);
            continue;
        }
        bool known = false;
        for (const char *const *k = ax_lua_pretrain_keys; *k && !known; k++) known = strcmp(*k, key) == 0;
        if (!known) {
            /* let ax.pretrain name the valid keys */
            lua_pushstring(L, value);
            lua_setfield(L, cfg, key);
            continue;
        }
        ax_pretrain_push_value(L, value, strcmp(key, "augs") == 0);
        lua_setfield(L, cfg, key);
    }
    lua_getglobal(L, "require");
    lua_pushliteral(L, "axon");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "pretrain");
    lua_pushvalue(L, cfg);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "checkpoint");
    printf("checkpoint: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "metrics");
    int m = lua_gettop(L);
    const char *names[3] = {"step", "loss", "val_loss"};
    const char *vals[3];
    for (int k = 0; k < 3; k++) {
        lua_getfield(L, m, names[k]);
        vals[k] = luaL_tolstring(L, -1, NULL); /* stays on the stack */
    }
    printf("step %s: loss %s, val_loss %s\n", vals[0], vals[1], vals[2]);
    return 0;
}

int ax_cmd_pretrain(ax_cli *cli, int argc, char **argv) {
    ax_pretrain_cli c = {0};
    int i = 0;
    for (; i < argc; i++) {
        int t = ax_cli_take_plugin_path(cli, argc, argv, &i);
        if (t < 0) return 2;
        if (!t) break;
    }
    if (i < argc && strncmp(argv[i], "--", 2) != 0) c.config = argv[i++];
    c.argc = argc - i;
    c.argv = argv + i;
    if (!c.config && c.argc == 0) {
        fprintf(stderr, "axon pretrain: give CONFIG.lua and/or --KEY VALUE options; see 'axon help pretrain'\n");
        return 2;
    }
    ax_registry *reg;
    if (ax_registry_new(&reg) != AX_OK) {
        fprintf(stderr, "axon: %s\n", ax_error_message());
        return 1;
    }
    ax_registry_scan_default(reg, cli->plugin_path, cli->n_plugin_path);
    for (size_t k = 0; k < ax_registry_problem_count(reg); k++)
        AX_LOG_WARN("plugin skipped: %s", ax_registry_problem(reg, k));
    lua_State *L = luaL_newstate();
    if (!L) {
        ax_registry_free(reg);
        fprintf(stderr, "axon: out of memory\n");
        return 1;
    }
    luaL_openlibs(L);
    ax_lua_open(L, reg);
    ax_error_clear();
    lua_pushcfunction(L, ax_pretrain_main);
    lua_pushlightuserdata(L, &c);
    int rc = 0;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "axon pretrain: %s\n", lua_tostring(L, -1));
        rc = ax_error_status() == AX_ERR_INTERRUPTED ? 130 : 1;
    }
    lua_close(L);
    ax_registry_free(reg);
    return rc;
}
