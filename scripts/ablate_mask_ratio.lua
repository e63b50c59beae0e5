-- Mask-ratio ablation of MAE pre-training (the reference ran 30/45/60/75/90%):
-- one short run per ratio, the final validation loss of each in
-- OUT/results.csv. Finished ratios (already in the CSV) are skipped when
-- the script is rerun, and an interrupted run resumes from its checkpoint.
--
--   axon run scripts/ablate_mask_ratio.lua [OUT] [STEPS] [DATA] [RATIOS]
--   (defaults: runs/ablate_mask_ratio, 200, data/demo, 0.3,0.45,0.6,0.75,0.9;
--   DATA is a preprocessed cache folder or a demo folder from `axon data demo`)
local ax = require "axon"
local out = arg[1] or "runs/ablate_mask_ratio"
local steps = math.tointeger(tonumber(arg[2] or "200")) or error("STEPS must be an integer")
local data_arg = arg[3] or "data/demo"
local ratios = {}
for r in (arg[4] or "0.3,0.45,0.6,0.75,0.9"):gmatch("[^,]+") do
  ratios[#ratios + 1] = tonumber(r) or error("not a ratio: " .. r)
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local data = data_arg
if not exists(data_arg .. "/index.json") then
  data = { root = data_arg .. "/pretrain", format = "openmind" } -- preprocessed by the first run
end

-- results so far: ratio text -> CSV line
local csv = out .. "/results.csv"
local header = "mask_ratio,val_loss,first_val_loss,train_loss,steps"
local done, order = {}, {}
if exists(csv) then
  for line in io.lines(csv) do
    local r = line:match("^([^,]+),")
    if r and line ~= header then
      done[r] = line
      order[#order + 1] = r
    end
  end
end

local function save()
  local tmp = csv .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(header, "\n")
  for _, r in ipairs(order) do f:write(done[r], "\n") end
  f:close()
  assert(os.rename(tmp, csv))
end

for _, ratio in ipairs(ratios) do
  local key = tostring(ratio)
  if done[key] then
    print(key .. ": done")
  else
    local run = ax.pretrain{
      data = data, out = ("%s/mask_%s"):format(out, key),
      arch = "plain_unet", arch_params = { preset = "tiny", n_stages = 3, features = {4, 8, 16} },
      method = "mae", method_params = { mask_ratio = ratio, block = 4 },
      augs = { ax.aug("mirror") }, patch = {16, 16, 16}, batch = 2, steps = steps,
      lr = 1e-2, momentum = 0.9, val_batches = 2, save_every = math.max(1, steps // 4),
      progress = false, resume = true,
    }
    if type(data) == "table" then data = run.out .. "/cache" end
    done[key] = ("%s,%.6g,%.6g,%.6g,%d"):format(key, run.metrics.val_loss, run.metrics.first_val_loss or 0 / 0,
                                               run.metrics.loss, run.step)
    order[#order + 1] = key
    save()
    print(("%s: val_loss %.4f"):format(key, run.metrics.val_loss))
  end
end
print("results: " .. csv)
