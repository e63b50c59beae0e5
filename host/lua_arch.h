/* host/lua_arch.h — networks from ARCH plugins in Lua.
 *
 *     local ax = require "axon"
 *     local arch = ax.arch("resenc_unet", { preset = "tiny" })
 *     local net = arch:build{ in_channels = 1, out_channels = 1, seed = 1 }
 *     local y = net:forward(ax.randn({1, 1, 32, 32, 32}, 7))   -- [1, 1, 32, 32, 32]
 *     local opt = ax.optim("sgd", net:parameters(), { lr = 1e-2, momentum = 0.99, nesterov = true })
 *     ax.mse_loss(y, target):backward(); opt:step(); opt:zero_grad()
 *     net:save("runs/x/model.safetensors", { step = "100" })
 *     net:eval(); net:load("runs/x/model.safetensors")   -- strict
 *     print(net:plan().encoder, net:plan().divisor[1])      -- "encoder.stages", 16
 *
 * arch:build{in_channels, out_channels [, seed = 0] [, stream = 0]} -> net
 *     A new network (ARCH build()), weights drawn from the counter RNG
 *     (seed, stream): the same arguments give the same weights.
 * arch:plan(), net:plan() -> {stem, encoder, decoder, input_projection,
 *     output_head, pos_embed (absent when the arch has none), divisor = {D, H, W}}
 * net:forward(x) -> y               x: [N, in_channels, D, H, W]; y: [N, out_channels, D, H, W]
 * net:forward_all(x) -> {y1, y2, ...} every output, highest resolution
 *     first (deep supervision; {net:forward(x)} for a single-output arch)
 * net:parameters() -> {name = tensor}  trainable parameters by dotted name
 *     (the tensors themselves, shared with the network)
 * net:state_dict() -> {name = tensor}  parameters and persistent buffers
 * net:load(path [, strict = true]) -> missing, unexpected (lists of names)
 *     Copies a safetensors state dict in place (ax_module_load_safetensors).
 * net:save(path [, meta]) atomic safetensors write of the state dict with
 *     metadata: arch (plugin name), arch_params (JSON of its parameters),
 *     in_channels, out_channels, then `meta` (string keys; string, number or
 *     boolean values; a key given here replaces an automatic one).
 * net:train([on = true]) -> net, net:eval() -> net, net:training() -> bool
 * net:zero_grad(), net:summary() -> the module tree as text, net:close()
 */
#ifndef AXON_HOST_LUA_ARCH_H
#define AXON_HOST_LUA_ARCH_H

#include <lua.h>

#include "axon/nn.h"
#include "registry.h"

/* Create the network metatable and add build/plan to ARCH instances (once
 * per state, after the plugin-instance metatable exists). */
void ax_lua_arch_open(lua_State *L);

/* For other host bindings (training runners): the network at idx, or a Lua
 * error. Returns its module (borrowed: valid while the userdata lives and
 * is not closed); *inst [optional] receives the ARCH instance that built it
 * (borrowed; a Lua error when that instance was closed). */
ax_module *ax_lua_arch_check_net(lua_State *L, int idx, ax_instance **inst);

#endif
