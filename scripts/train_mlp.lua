-- scripts/train_mlp.lua — a complete training loop written in Lua with
-- axon's tensors: a two-layer MLP classifying points of three interleaved
-- spirals, AdamW with linear warm-up then cosine decay, gradient clipping,
-- a checkpoint (weights + optimizer state) that a rerun resumes from.
--
--   axon run scripts/train_mlp.lua [steps] [out_dir]
local ax = require "axon"
local steps = tonumber(arg[1] or "300")
local out = arg[2] or "runs/train_mlp"
os.execute("mkdir -p '" .. out .. "'")

-- data: 3 spirals of 200 points, labels 0..2 (deterministic from the RNG)
local n, classes = 600, 3
local pts, labels = {}, {}
local rng = ax.rng(7, 0)
for i = 0, n - 1 do
  local c = i % classes
  local r = (i // classes) / (n / classes)
  local t = c * 2 * math.pi / classes + r * 4 + rng:normal() * 0.15
  pts[#pts + 1] = {r * math.cos(t), r * math.sin(t)}
  labels[#labels + 1] = c
end
local x = ax.tensor(pts)
local y = ax.tensor(labels, "i64")

-- parameters, initialised like torch.nn.Linear (uniform +-1/sqrt(fan_in))
local function linear_init(fan_in, fan_out, seed)
  local bound = 1 / math.sqrt(fan_in)
  local w = (ax.rand({fan_out, fan_in}, seed) * 2 - 1) * bound
  local b = (ax.rand({fan_out}, seed, 1) * 2 - 1) * bound
  return w:requires_grad(), b:requires_grad()
end
local p = {}
p["0.weight"], p["0.bias"] = linear_init(2, 64, 1)
p["2.weight"], p["2.bias"] = linear_init(64, classes, 2)

local function forward(input)
  local h = ax.linear(input, p["0.weight"], p["0.bias"]):relu()
  return ax.linear(h, p["2.weight"], p["2.bias"])
end

local opt = ax.optim("adamw", p, {lr = 1e-2, weight_decay = 1e-4})
local sched = {kind = "cosine", base_lr = 1e-2, total_steps = steps, warmup_steps = steps // 10, min_lr = 1e-4}

-- resume if a checkpoint exists
local start = 0
local f = io.open(out .. "/model.safetensors")
if f then
  f:close()
  local saved, meta = ax.load(out .. "/model.safetensors")
  ax.no_grad(function()
    for name, t in pairs(p) do p[name] = saved[name]:clone():requires_grad() end
  end)
  opt = ax.optim("adamw", p, {lr = 1e-2, weight_decay = 1e-4})
  opt:load(out .. "/optim.safetensors")
  start = tonumber(meta.step)
  print(("resumed at step %d"):format(start))
end

local loss
for step = start, steps - 1 do
  opt:set_lr(ax.lr_at(sched, step))
  loss = ax.cross_entropy(forward(x), y)
  loss:backward()
  ax.clip_grad_norm(p, 1.0)
  opt:step()
  opt:zero_grad()
  if step % 50 == 0 or step == steps - 1 then
    print(("step %4d  loss %.4f  lr %.2e"):format(step, loss:item(), opt:lr()))
  end
end

local acc = ax.no_grad(function()
  local _, pred = forward(x):max(2)
  return pred:eq(y):sum():item() / n
end)
print(("train accuracy %.3f"):format(acc))
ax.save(out .. "/model.safetensors", p, {step = tostring(steps), arch = "mlp-2-64-3"})
opt:save(out .. "/optim.safetensors")
return acc
