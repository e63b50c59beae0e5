/* host/lua_tensor.h — tensors in the axon Lua module (see lua_tensor.c). */
#ifndef AXON_HOST_LUA_TENSOR_H
#define AXON_HOST_LUA_TENSOR_H

#include <lua.h>

#include "axon/tensor.h"

/* Create the tensor metatable in L (once per state). */
void ax_lua_tensor_open(lua_State *L);
/* Add the tensor functions to the module table on top of the stack. */
void ax_lua_tensor_register(lua_State *L);
/* Push a tensor as userdata (steals the reference). */
void ax_lua_push_tensor(lua_State *L, ax_tensor *t);
/* The tensor at idx (borrowed), or a Lua error. */
ax_tensor *ax_lua_check_tensor(lua_State *L, int idx);
/* NULL for nil/none, else as ax_lua_check_tensor. */
ax_tensor *ax_lua_opt_tensor(lua_State *L, int idx);
/* Is the value at idx a tensor? */
int ax_lua_is_tensor(lua_State *L, int idx);
/* t:log() — exported because ax.log(x) shares its name with logging. */
int ax_lua_tensor_log(lua_State *L);

#endif
