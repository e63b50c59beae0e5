-- optimizers, schedules, losses and checkpoints from Lua; a resumed run
-- equals an uninterrupted one bit for bit
local ax = require "axon"
local dir = arg[1] or "/tmp"
local function err(f) local ok, e = pcall(f); assert(not ok, "expected an error"); return e end
local function has(e, s) assert(e:find(s, 1, true), ("expected %q in %q"):format(s, e)) end

local x = ax.randn({32, 4}, 1)
local y = (x:matmul(ax.tensor({{1}, {-1}, {2}, {0.5}})) + 0.1):gt(0.5):view(-1):to("i64")

local function fresh()
  return {w = (ax.randn({2, 4}, 5) * 0.1):requires_grad(), b = ax.zeros({2}):requires_grad()}
end
local function train(p, opt, from, to)
  for step = from, to - 1 do
    opt:set_lr(ax.lr_at({kind = "poly", base_lr = 0.1, total_steps = 40, warmup_steps = 5}, step))
    local loss = ax.cross_entropy(ax.linear(x, p.w, p.b), y, {label_smoothing = 0.1})
    loss:backward()
    ax.clip_grad_norm(p, 5)
    opt:step()
    opt:zero_grad()
  end
end

for _, kind in ipairs({"sgd", "adamw"}) do
  local opts = kind == "sgd" and {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-4}
                              or {lr = 0.1, weight_decay = 0.05}
  local a = fresh()
  local oa = ax.optim(kind, a, opts)
  train(a, oa, 0, 40)

  local b = fresh()
  local ob = ax.optim(kind, b, opts)
  train(b, ob, 0, 20)
  ax.save(dir .. "/w.safetensors", b, {step = "20"})
  ob:save(dir .. "/o.safetensors")
  local saved, meta = ax.load(dir .. "/w.safetensors")
  assert(meta.step == "20")
  local c = {w = saved.w:clone():detach():requires_grad(), b = saved.b:clone():detach():requires_grad()}
  local oc = ax.optim(kind, c, opts)
  oc:load(dir .. "/o.safetensors")
  assert(oc:steps() == 20)
  train(c, oc, 20, 40)
  for name in pairs(a) do
    local diff = (a[name] - c[name]):abs():max():item()
    assert(diff == 0, ("%s %s: resumed run differs by %g"):format(kind, name, diff))
  end
  local acc = ax.no_grad(function()
    local _, pred = ax.linear(x, a.w, a.b):max(2)
    return pred:eq(y):sum():item() / 32
  end)
  assert(acc > 0.8, kind .. " did not learn: " .. acc)
end

-- losses against hand-computed values
local p, t = ax.tensor({1, 2, 3}), ax.tensor({1, 0, 5})
assert(math.abs(ax.mse_loss(p, t):item() - 8 / 3) < 1e-6)
assert(ax.l1_loss(p, t, {reduction = "sum"}):item() == 4)
assert(ax.mse_loss(p, t, {mask = ax.tensor({0, 1, 0})}):item() == 4)
assert(math.abs(ax.cross_entropy(ax.tensor({{0, 0}}), ax.tensor({1}, "i64")):item() - math.log(2)) < 1e-6)
has(err(function() ax.mse_loss(p, t, {reduce = "sum"}) end), "unknown option 'reduce'; valid: mask, reduction")
has(err(function() ax.optim("adam", {p}) end), "unknown optimizer 'adam'")
has(err(function() ax.optim("sgd", {ax.ones(2):requires_grad() * 2}, {lr = 1}) end), "not a leaf")
has(err(function() ax.lr_at({kind = "poly", base_lr = 1, total_steps = 0}, 0) end), "total_steps")

-- shape ops
local parts = ax.arange(10):split(4)
assert(#parts == 3 and parts[3]:numel() == 2)
assert(ax.cat({ax.ones(2), ax.zeros(3)}):numel() == 5 and ax.stack({ax.ones(2), ax.ones(2)}, 1):size(1) == 2)
assert(ax.arange(6):view(2, 3):chunk(3, 2)[2]:get(2, 1) == 4)
-- a small 3D conv net (conv, instance norm, leaky relu, pooling, upsampling) learns to denoise
local clean = ax.randn({2, 1, 8, 8, 8}, 21):sigmoid()
local noisy = clean + ax.randn({2, 1, 8, 8, 8}, 22) * 0.3
local net = {
  w1 = (ax.randn({4, 1, 3, 3, 3}, 23) * 0.3):requires_grad(), b1 = ax.zeros({4}):requires_grad(),
  g1 = ax.ones({4}):requires_grad(), n1 = ax.zeros({4}):requires_grad(),
  w2 = (ax.randn({4, 1, 2, 2, 2}, 24) * 0.3):requires_grad(), b2 = ax.zeros({1}):requires_grad(),
}
local function denoise(v)
  local h = ax.conv3d(v, net.w1, net.b1, {padding = 1})
  h = ax.instance_norm(h, net.g1, net.n1):leaky_relu(0.01)
  h = ax.avg_pool3d(h, 2)
  return ax.conv_transpose3d(h, net.w2, net.b2, {stride = 2}) + v
end
local copt = ax.optim("adamw", net, {lr = 1e-2, weight_decay = 0})
local l0, l1
for step = 1, 30 do
  local l = ax.mse_loss(denoise(noisy), clean)
  l0 = l0 or l:item()
  l1 = l:item()
  l:backward()
  copt:step()
  copt:zero_grad()
end
assert(l1 < 0.7 * l0, ("conv net did not learn: %g -> %g"):format(l0, l1))
print("train ok")
