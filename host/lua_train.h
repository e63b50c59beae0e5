/* host/lua_train.h — the training runners in Lua (see lua_train.c):
 *
 *     local ax = require "axon"
 *     local run = ax.pretrain{ data = "runs/demo/cache", out = "runs/mae",
 *                              arch = ax.arch("plain_unet", {...}), method = ax.method("mae"),
 *                              augs = { ax.aug("mirror") }, patch = {32, 32, 32}, batch = 2,
 *                              steps = 200, lr = 1e-2, resume = true }
 *     print(run.checkpoint, run.metrics.val_loss)
 *
 * data: a preprocessed cache folder (index.json), an ax.dataset{...}, or a
 * table {root =, format =, glob =, csv =, max_quality =, modalities =,
 * exclude_modalities =, skip_missing =} (axon/dataset.h); the last two are
 * preprocessed into <out>/cache first (at `spacing`, default each case's own;
 * up-to-date cases are kept). Other keys: ax_lua_pretrain_keys, mapped onto
 * ax_pretrain_opts / ax_train_opts (host/train_pretrain.h, train_core.h);
 * device ("cpu", "cuda", "cuda:N"; default $AXON_DEVICE, else the CPU) and
 * amp ("bf16", "off"). The keys ax.finetune shares are read by
 * ax_lua_runner_read (lua_config.h).
 *     local ck = ax.load_checkpoint(run.checkpoint)   -- rebuilt from metadata alone
 *     local y = ck.net:forward(x)                     -- an axon.net (host/lua_arch.h)
 */
#ifndef AXON_HOST_LUA_TRAIN_H
#define AXON_HOST_LUA_TRAIN_H

#include <lua.h>

/* Add pretrain and load_checkpoint to the module table on top of the stack
 * (creates the metatables it needs on first use). */
void ax_lua_train_register(lua_State *L);

/* The pretrain configuration keys, NULL-terminated (for `axon pretrain`). */
extern const char *const ax_lua_pretrain_keys[];

#endif
