/* The shared `axon pretrain|finetune` front-end (cmd_config.h). */
#include "cmd_config.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "lua_axon.h"
#include "registry.h"

typedef struct ax_cmd_config {
    const ax_cmd_config_spec *spec;
    int argc;
    char **argv;
    const char *config;
} ax_cmd_config;

static bool ax_cmd_config_listed(const char *const *list, const char *key) {
    for (; list && *list; list++)
        if (strcmp(*list, key) == 0) return true;
    return false;
}

/* Push a command-line value: integer, number, true/false, a comma list of
 * those (a table), else the string. Names in a list stay strings. */
static void ax_cmd_config_push_value(lua_State *L, const char *text, bool force_list) {
    if (strchr(text, ',') || force_list) {
        lua_newtable(L);
        char *copy = strdup(text), *save = NULL;
        if (!copy) luaL_error(L, "out of memory");
        lua_Integer i = 0;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            ax_cmd_config_push_value(L, tok, false);
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

/* "only arch.PARAM, method.PARAM and data.KEY are dotted options" */
static int ax_cmd_config_dotted_error(lua_State *L, const ax_cmd_dotted *dotted, const char *key, const char *name) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const ax_cmd_dotted *d = dotted; d->prefix; d++) {
        if (d != dotted) luaL_addstring(&b, d[1].prefix ? ", " : " and ");
        luaL_addstring(&b, d->prefix);
        luaL_addchar(&b, '.');
        luaL_addstring(&b, d->word);
    }
    luaL_pushresult(&b);
    return luaL_error(L, "--%s.%s: only %s are dotted options", key, name, lua_tostring(L, -1));
}

/* cfg[table][name] = value, creating the table. */
static void ax_cmd_config_set_dotted(lua_State *L, int cfg, const char *table, const char *name, const char *value) {
    lua_getfield(L, cfg, table);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, cfg, table);
    }
    ax_cmd_config_push_value(L, value, false);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* Apply argv's options to the configuration table at cfg. */
static int ax_cmd_config_options(lua_State *L, const ax_cmd_config *c, int cfg) {
    const ax_cmd_config_spec *spec = c->spec;
    for (int i = 0; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return luaL_error(L, "unexpected argument '%s'; see 'axon help %s'", a, spec->command);
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
            if (ax_cmd_config_listed(spec->bool_keys, key) &&
                (i + 1 >= c->argc || strncmp(c->argv[i + 1], "--", 2) == 0))
                value = "true";
            else if (i + 1 < c->argc)
                value = c->argv[++i];
            else
                return luaL_error(L, "option --%s needs a value", key);
        }
        char *dot = strchr(key, '.');
        if (dot) {
            *dot = '\0';
            const ax_cmd_dotted *d = spec->dotted;
            while (d->prefix && strcmp(d->prefix, key) != 0) d++;
            if (!d->prefix) return ax_cmd_config_dotted_error(L, spec->dotted, key, dot + 1);
            ax_cmd_config_set_dotted(L, cfg, d->table, dot + 1, value);
            continue;
        }
        if (!ax_cmd_config_listed(spec->keys, key))
            lua_pushstring(L, value); /* let ax.<command> name the valid keys */
        else
            ax_cmd_config_push_value(L, value, ax_cmd_config_listed(spec->list_keys, key));
        lua_setfield(L, cfg, key);
    }
    return 0;
}

static int ax_cmd_config_main(lua_State *L) {
    ax_cmd_config *c = lua_touserdata(L, 1);
    const ax_cmd_config_spec *spec = c->spec;
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
    ax_cmd_config_options(L, c, cfg);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "axon");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, spec->command);
    lua_pushvalue(L, cfg);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "checkpoint");
    printf("checkpoint: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, -1, "metrics");
    int m = lua_gettop(L);
    lua_getfield(L, m, "step");
    printf("step %s", luaL_tolstring(L, -1, NULL)); /* the strings stay on the stack */
    for (const char *const *k = spec->metrics; *k; k++) {
        lua_getfield(L, m, *k);
        printf("%s%s %s", k == spec->metrics ? ": " : ", ", *k, luaL_tolstring(L, -1, NULL));
    }
    printf("\n");
    return 0;
}

int ax_cmd_config_run(ax_cli *cli, int argc, char **argv, const ax_cmd_config_spec *spec) {
    ax_cmd_config c = {.spec = spec};
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
        fprintf(stderr, "axon %s: give CONFIG.lua and/or --KEY VALUE options; see 'axon help %s'\n", spec->command,
                spec->command);
        return 2;
    }
    ax_registry *reg = ax_cli_registry_open(cli);
    if (!reg) return 1;
    lua_State *L = luaL_newstate();
    if (!L) {
        ax_registry_free(reg);
        fprintf(stderr, "axon: out of memory\n");
        return 1;
    }
    luaL_openlibs(L);
    ax_lua_open(L, reg);
    ax_error_clear();
    lua_pushcfunction(L, ax_cmd_config_main);
    lua_pushlightuserdata(L, &c);
    int rc = 0;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "axon %s: %s\n", spec->command, lua_tostring(L, -1));
        rc = ax_error_status() == AX_ERR_INTERRUPTED ? 130 : 1;
    }
    lua_close(L);
    ax_registry_free(reg);
    return rc;
}
