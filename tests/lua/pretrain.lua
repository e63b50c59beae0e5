-- ax.pretrain{} and ax.load_checkpoint from Lua: the run table, a
-- checkpoint that rebuilds its network alone, and clear errors.
-- usage: axon run pretrain.lua CACHE_DIR WORK_DIR [OPENMIND_ROOT]
local ax = require "axon"
local cache, work, raw = arg[1], arg[2], arg[3]
local function err(f) local ok, e = pcall(f); assert(not ok, "expected an error"); return tostring(e) end
local function has(e, s) assert(e:find(s, 1, true), ("expected %q in %q"):format(s, e)) end

local base = {
  data = cache, arch = "plain_unet",
  arch_params = { preset = "tiny", n_stages = 2, features = {4, 8} },
  method = ax.method("mae", { block = 4, mask_ratio = 0.6 }),
  augs = { ax.aug("mirror") }, patch = {16, 16, 16}, batch = 1, steps = 4,
  save_every = 2, val_batches = 1, threads = 1, progress = false,
}
local function with(t) local c = {} for k, v in pairs(base) do c[k] = v end for k, v in pairs(t) do c[k] = v end return c end

local run = ax.pretrain(with{ out = work .. "/lua_run" })
assert(run.out == work .. "/lua_run")
assert(run.checkpoint == work .. "/lua_run/checkpoints/latest.safetensors", run.checkpoint)
assert(run.step == 4 and run.start_step == 0 and run.skipped == 0)
assert(run.metrics.step == 4 and run.metrics.loss > 0 and run.metrics.val_loss > 0 and run.metrics.lr > 0)
assert(run.metrics.first_val_loss > 0)

-- resuming a finished run does nothing and reports the same step
local again = ax.pretrain(with{ out = work .. "/lua_run", resume = true })
assert(again.start_step == 4 and again.step == 4)

-- the checkpoint alone rebuilds the network
local ck = ax.load_checkpoint(run.checkpoint)
assert(ck.arch == "plain_unet" and ck.method == "mae" and ck.step == 4)
assert(ck.in_channels == 1 and ck.out_channels == 1)
assert(ck.plan.encoder == "encoder.stages" and ck.plan.divisor[1] >= 1)
assert(ck.meta.format == "axon.checkpoint/1" and ck.meta.method_params == '{"mask_ratio":0.6,"block":4}',
       ck.meta.method_params)
local x = ax.randn({1, 1, 16, 16, 16}, 3)
local y = ck.net:eval():forward(x)
assert(y:size(2) == 1 and y:size(5) == 16)
local saved = ax.load(run.checkpoint)
local params = ck.net:state_dict()
local n = 0
for k, v in pairs(saved) do
  n = n + 1
  assert((params[k] - v):abs():max():item() == 0, k)
end
assert(n > 10)

-- another architecture's weights: the load names the mismatching keys and shapes
local other = ax.arch("plain_unet", { preset = "tiny", n_stages = 2, features = {6, 8} }):build{ in_channels = 1, out_channels = 1 }
local e = err(function() other:load(run.checkpoint) end)
has(e, "encoder.stages.0.0.convs.0.conv.weight")
has(e, "[6, 1, 3, 3, 3]")

-- device = "cpu" and amp = "bf16" (a no-op on the CPU, which has no bf16
-- convolutions) give the default run's numbers bit for bit
local same = ax.pretrain(with{ out = work .. "/lua_amp", device = "cpu", amp = "bf16" })
assert(same.metrics.loss == run.metrics.loss and same.metrics.val_loss == run.metrics.val_loss)
has(err(function() ax.pretrain(with{ out = work .. "/x", device = "gpu" }) end), "'gpu' is not a device")
has(err(function() ax.pretrain(with{ out = work .. "/x", device = "cuda:7" }) end), "cuda:7")
has(err(function() ax.pretrain(with{ out = work .. "/x", amp = "fp8" }) end), "amp 'fp8' is not one of bf16, off")

-- configuration errors
has(err(function() ax.pretrain(with{ out = work .. "/x", stepz = 3 }) end),
    "pretrain: unknown key 'stepz' (did you mean 'steps'?); valid: data, out")
has(err(function() ax.pretrain(with{ out = work .. "/x", arch = "plane_unet" }) end),
    "no arch named 'plane_unet' (did you mean 'plain_unet'?)")
has(err(function() ax.pretrain(with{ out = work .. "/x", arch_params = { preset = "huge" } }) end),
    "parameter 'preset' must be one of tiny|S|M|L")
has(err(function() ax.pretrain(with{ out = work .. "/x", method = "mae", method_params = { mask_ration = 0.5 } }) end),
    "unknown parameter 'mask_ration' (did you mean 'mask_ratio'?)")
has(err(function() ax.pretrain(with{ out = work .. "/x", augs = { ax.method("mae") } }) end),
    "aug 'mae' is a method plugin")
has(err(function() ax.pretrain(with{ out = work .. "/x", patch = {16, 16} }) end),
    "'patch' must be a number or a list of 3 numbers")
has(err(function() ax.pretrain(with{ out = work .. "/x", optim = "adam" }) end), "unknown optimizer 'adam'")
has(err(function() ax.pretrain(with{ out = work .. "/lua_run" }) end), "already holds a checkpoint")
has(err(function() ax.pretrain(with{ out = work .. "/lua_run", resume = true, arch = "resenc_unet",
                                     arch_params = { preset = "tiny" } }) end),
    "cannot resume: checkpoint has arch 'plain_unet', this run uses 'resenc_unet'")
has(err(function() ax.pretrain(with{ out = work .. "/x", data = work .. "/nowhere" }) end), "nowhere")
has(err(function() ax.load_checkpoint(work .. "/nowhere.safetensors") end), "nowhere.safetensors")
-- an ax.dataset{} object is preprocessed into OUT/cache first
if raw then
  local ds = ax.dataset{ format = "openmind", root = raw }
  local r = ax.pretrain(with{ data = ds, out = work .. "/lua_ds", steps = 1 })
  assert(r.step == 1)
  assert(#ax.cache_list(work .. "/lua_ds/cache") == #ds)
  has(err(function() ax.pretrain(with{ data = 3, out = work .. "/x" }) end),
      "'data' must be a cache folder, an ax.dataset{} or a dataset table")
end
print("pretrain ok")
