/* host/lua_nn.h — optimizers, losses, attention and shape ops in Lua
 * (see lua_nn.c). */
#ifndef AXON_HOST_LUA_NN_H
#define AXON_HOST_LUA_NN_H

#include <lua.h>

/* Create the optimizer metatable (once per state). */
void ax_lua_nn_open(lua_State *L);
/* Add the functions to the module table on top of the stack. */
void ax_lua_nn_register(lua_State *L);
/* Add tensor methods (split, gather, ...) to the methods table on top. */
void ax_lua_nn_methods(lua_State *L);

#endif
