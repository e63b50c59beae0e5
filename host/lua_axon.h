/* host/lua_axon.h — the `axon` Lua module and the script runner.
 *
 *     local ax = require "axon"
 *     for _, p in ipairs(ax.plugins()) do print(p.kind, p.name) end
 *     local m = ax.aug("mirror", { p = 0.5 })   -- validated against its spec
 *     print(m.name, m.params.p)
 *     local r = ax.rng(42, 0); print(r:uniform(), r:normal())
 */
#ifndef AXON_HOST_LUA_AXON_H
#define AXON_HOST_LUA_AXON_H

#include <lua.h>

#include "registry.h"

/* Make `require "axon"` available in L, bound to `reg` (borrowed: it must
 * outlive L). Also removes package.loadlib and the C-library searchers:
 * native code enters only as axon plugins. */
void ax_lua_open(lua_State *L, ax_registry *reg);

/* Run `script` in a fresh lua_State with arg = {[0] = script, args...}.
 * Errors print "file:line: message" and a traceback to stderr.
 * Returns 0 on success, 1 on a script error. */
int ax_lua_run_script(ax_registry *reg, const char *script, int argc, char **argv);

/* Metatable of the plugin instances that ax.method/arch/aug/task/backend
 * return (other host modules extend it, see lua_arch.c). */
#define AX_LUA_INSTANCE "axon.plugin"

/* The plugin instance at stack index idx (borrowed, lives as long as the
 * Lua value), or NULL when the value is not one. A closed instance raises
 * a Lua error. */
ax_instance *ax_lua_test_instance(lua_State *L, int idx);

#endif
