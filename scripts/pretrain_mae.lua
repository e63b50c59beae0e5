-- MAE pre-training of a tiny residual-encoder U-Net on the demo data: the
-- OpenMind-layout scans of `axon data demo` (generated here when missing),
-- preprocessed into OUT/cache, then masked auto-encoding with the reference
-- CNN recipe (SGD-Nesterov, poly schedule, grad clip 12) scaled down to run
-- in minutes on 2 cores. Rerun it to continue where it stopped.
--
--   axon run scripts/pretrain_mae.lua [OUT] [STEPS] [DEMO_DIR]
--   (defaults: runs/pretrain_mae, 200, data/demo; $AXON names the axon
--   executable used to generate the demo data, default "axon")
local ax = require "axon"
local out = arg[1] or "runs/pretrain_mae"
local steps = math.tointeger(tonumber(arg[2] or "200")) or error("STEPS must be an integer")
local demo = arg[3] or "data/demo"

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

if not exists(demo .. "/pretrain/openneuro_metadata.csv") then
  local axon = os.getenv("AXON") or "axon"
  print(("generating the demo data in %s"):format(demo))
  local ok = os.execute(("%q data demo %q"):format(axon, demo))
  if not ok then error("could not run '" .. axon .. " data demo'; set $AXON to the axon executable") end
end

local run = ax.pretrain{
  data = { root = demo .. "/pretrain", format = "openmind" },
  out = out,
  arch = ax.arch("resenc_unet", { preset = "tiny" }),
  method = ax.method("mae", { mask_ratio = 0.75, block = 8 }),
  augs = { ax.aug("mirror") },
  patch = {32, 32, 32}, batch = 2, steps = steps,
  optim = "sgd", lr = 1e-2, momentum = 0.99, nesterov = true, weight_decay = 3e-5,
  schedule = "poly", clip = 12,
  val_every = math.max(1, steps // 5), save_every = math.max(1, steps // 10), val_batches = 2,
  resume = true,
}
print(("validation loss: %.4f (untrained) -> %.4f after %d steps"):format(
  run.metrics.first_val_loss or 0 / 0, run.metrics.val_loss or 0 / 0, run.step))
print("checkpoint: " .. run.checkpoint)
