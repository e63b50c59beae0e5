/* host/lua_finetune.h — fine-tuning, prediction, evaluation and the HTML
 * report in Lua (see lua_finetune.c):
 *
 *     local ax = require "axon"
 *     local seg = ax.finetune{ task = ax.task("segmentation", { classes = 5 }),
 *                              init = "runs/mae/checkpoints/latest.safetensors",  -- arch from its metadata
 *                              data = { root = "data/seg/Dataset001_DemoBrain", format = "nnunet" },
 *                              patch = {32, 32, 32}, batch = 2, steps = 200, schedule = "warmup_poly",
 *                              out = "runs/seg_mae", resume = true }
 *     print(seg.checkpoint, seg.metrics.val_dice_mean, seg.seconds)
 *     local p = ax.predict{ model = seg.out, input = ".../imagesTs", output = "runs/seg_mae/pred",
 *                           mirror = false, device = "cuda:0" }  -- p.done = {names}, p.failed = {{name =, reason =}}
 *     local e = ax.evaluate{ pred = "runs/seg_mae/pred", ref = ".../labelsTs", classes = 5,
 *                            out = "runs/seg_mae/eval.json" }
 *     print(e.mean.dice_mean, e.mean.dice["1"], e.cases[1].name)
 *     ax.report{ out = "runs/demo/report.html", title = "...", ... }   -- host/report.h
 *
 * ax.finetune keys: ax_lua_finetune_keys (mapped onto ax_finetune_opts,
 * host/train_finetune.h); data is a cache folder, an ax.dataset{} or a
 * table {root =, format = "nnunet", glob =} preprocessed into <out>/cache
 * (at `spacing`, validation split `split = {fraction =, min =, max =,
 * seed =}`). lr defaults to 1e-3 with init and 1e-2 without (SGD; AdamW
 * 1e-4 / 3e-4 with weight decay 0.05), the reference's CNN recipe.
 * device ("cpu", "cuda", "cuda:N"; default $AXON_DEVICE, else the CPU) and
 * amp ("bf16", "off") as for ax.pretrain; ax.predict takes device too.
 * The keys both runners share are read by ax_lua_runner_read (lua_config.h).
 */
#ifndef AXON_HOST_LUA_FINETUNE_H
#define AXON_HOST_LUA_FINETUNE_H

#include <lua.h>

/* Add finetune, predict, evaluate and report to the module table on top
 * of the stack. */
void ax_lua_finetune_register(lua_State *L);

/* The finetune configuration keys, NULL-terminated (for `axon finetune`). */
extern const char *const ax_lua_finetune_keys[];

#endif
