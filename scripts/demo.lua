-- scripts/demo.lua — what axon can do end to end today: discover plugins,
-- inspect their declared parameters, instantiate them with validated
-- parameters, draw reproducible random numbers, and train a network with
-- tensors, autograd and AdamW from Lua. Grows into the pre-train /
-- fine-tune demo as those pipelines land.
local ax = require "axon"

print(("axon %s, plugin ABI %d.%d"):format(ax.version, ax.abi_major, ax.abi_minor))
print()
print("plugins found:")
for _, p in ipairs(ax.plugins()) do
  local status = p.available and "" or ("  [unavailable: " .. p.why .. "]")
  print(("  %-8s %-14s %s%s"):format(p.kind, p.name, p.summary, status))
end

print()
local d = ax.describe("mirror", "aug")
print(("parameters of aug '%s':"):format(d.name))
for _, q in ipairs(d.params) do
  print(("  %-6s %-10s default %-8s %s"):format(q.name, q.type, q.default or "-", q.doc))
end

local mirror = ax.aug("mirror", { axes = {1, 1, 0}, p = 0.5 })
print()
print(("instantiated %s with axes={%s}, p=%g"):format(tostring(mirror),
  table.concat(mirror.params.axes, ","), mirror.params.p))

-- A typo is caught before anything runs, with the nearest valid key.
local ok, err = pcall(ax.aug, "mirror", { axis = {1, 1, 1} })
print("a typo in a parameter is refused:")
print("  " .. (ok and "(not refused!)" or err))

-- The RNG depends only on (seed, stream, counter): per-sample streams give
-- the same augmentation draws on any number of threads.
local function draws(seed, stream)
  local r = ax.rng(seed, stream)
  local t = {}
  for i = 1, 4 do t[i] = ("%.4f"):format(r:uniform()) end
  return table.concat(t, " ")
end
print()
print("counter-based RNG, seed 42:")
for stream = 0, 2 do print(("  sample %d: %s"):format(stream, draws(42, stream))) end
assert(draws(42, 1) == draws(42, 1))
-- Tensors, autograd and an optimizer: train a small classifier end to end
-- (scripts/train_mlp.lua; its checkpoint lands in runs/demo/mlp).
print()
print("training a 2-layer MLP on three spirals (scripts/train_mlp.lua):")
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local saved_arg = arg
arg = {[0] = here .. "/train_mlp.lua", "300", "runs/demo/mlp"}
os.remove("runs/demo/mlp/model.safetensors") -- train from scratch every time
local acc = dofile(here .. "/train_mlp.lua")
arg = saved_arg
assert(acc > 0.8, "the MLP should fit the spirals")
print()
print("demo ok")
