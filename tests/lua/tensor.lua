-- tensors from Lua: construction, views, ops, metamethods, autograd, errors
local ax = require "axon"
local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-5) * (1 + math.abs(b)) end
local function err(f) local ok, e = pcall(f); assert(not ok, "expected an error"); return e end
local function has(e, s) assert(e:find(s, 1, true), ("expected %q in %q"):format(s, e)) end

-- construction
local a = ax.tensor({{1, 2, 3}, {4, 5, 6}})
assert(a.dtype == "f32" and a.ndim == 2 and #a == 2 and a:numel() == 6)
assert(a:size(1) == 2 and a:size(-1) == 3 and a:shape()[2] == 3)
assert(a:get(2, 3) == 6 and a:totable()[1][2] == 2)
assert(ax.tensor(3.5):item() == 3.5 and ax.tensor(3.5).ndim == 0)
assert(ax.zeros({2, 2}):sum():item() == 0 and ax.ones(2, 3):sum():item() == 6)
assert(ax.full({2}, 7, "i32").dtype == "i32")
local r = ax.arange(0, 10, 2)
assert(r.dtype == "i64" and r:numel() == 5 and r:get(5) == 8)
assert(ax.arange(1.5).dtype == "f32")
assert(ax.rand({4}, 1, 2):totable()[3] == ax.rand({4}, 1, 2):totable()[3], "counter-based")
assert(ax.randn({100}, 1):mean():item() ~= ax.randn({100}, 2):mean():item())
has(err(function() ax.tensor({{1, 2}, {3}}) end), "ragged")
has(err(function() ax.tensor({"x"}) end), "element 1 is a string")
has(err(function() ax.zeros({2}, "f64") end), "unknown dtype 'f64'")

-- views (1-based dims)
local t = ax.arange(24, nil, nil, "f32"):view(2, 3, 4)
assert(t:permute(3, 1, 2):size(1) == 4)
assert(t:transpose(1, 3):contiguous():get(4, 3, 2) == t:get(2, 3, 4))
assert(t:narrow(2, 2, 2):get(1, 1, 1) == 4)
assert(t:slice(3, 2, -1, 2):size(3) == 2)          -- elements 2 and 4 of dim 3
assert(t:unsqueeze(1):size(1) == 1 and t:unsqueeze(1):squeeze().ndim == 3)
assert(ax.ones(3, 1):expand({3, 5}):sum():item() == 15)
assert(t:reshape(-1):numel() == 24 and t:transpose(1, 2):reshape(6, 4):get(2, 1) == 12)
has(err(function() t:transpose(1, 2):view(24) end), "use reshape")
has(err(function() t:transpose(0, 1) end), "1-based")

-- ops and metamethods; Lua numbers keep the tensor's dtype
local b = (a + 1) * 2 - a / 2
assert(close(b:get(1, 1), 3.5))
assert(((-a) ^ 2):sum():item() == 91)
assert((ax.arange(3) * 2).dtype == "i64" and (ax.arange(3) * 2.5).dtype == "f32")
assert((a:to("bf16") * 2).dtype == "bf16")
assert(close(a:exp():log():sum():item(), 21, 1e-5))
assert(a:gt(3):sum():item() == 3 and a:gt(3).dtype == "u8")
assert(ax.where(a:gt(3), a, 0):sum():item() == 15)
assert(close(a:softmax(2):sum():item(), 2))
assert(close(a:mean():item(), 3.5) and close(a:var():item(), 3.5))
local v, i = a:max(2)
assert(v:get(1) == 3 and i:get(2) == 2, "index tensors are 0-based (data), dims 1-based")
assert(a:max():item() == 6 and a:min():item() == 1)
assert(close(a:norm():item(), math.sqrt(91)))
assert(a:matmul(a:transpose(1, 2)):get(1, 2) == 32)
assert(close(ax.gelu(ax.tensor(1)):item(), 0.8413447, 1e-6))
assert(close(ax.log(ax.tensor(math.exp(2))):item(), 2, 1e-6))
has(err(function() return a + ax.ones(3, 2) end), "ax_add: cannot broadcast a [2, 3] with b [3, 2]")
has(err(function() return a:matmul(a) end), "ax_matmul: inner dims differ")
has(err(function() return a:item() end), "has 6 elements")

-- autograd: a least-squares fit with plain gradient descent
local x = ax.randn({64, 3}, 11)
local w_true = ax.tensor({{1.5}, {-2}, {0.5}})
local y = x:matmul(w_true) + 0.25
local w = ax.zeros({3, 1}):requires_grad()
local c = ax.zeros({1}):requires_grad()
local first
for step = 1, 200 do
  local loss = ((x:matmul(w) + c - y) ^ 2):mean()
  first = first or loss:item()
  loss:backward()
  ax.no_grad(function()
    w = (w - w.grad * 0.1):detach():requires_grad()
    c = (c - c.grad * 0.1):detach():requires_grad()
  end)
end
assert(close(w:get(1, 1), 1.5, 1e-3) and close(w:get(2, 1), -2, 1e-3) and close(c:item(), 0.25, 1e-3))
assert(first > 1)
local z = ax.tensor({1, 2}):requires_grad()
local l = (z * z):sum()
l:backward()
assert(z.grad:get(2) == 4 and z.is_leaf and l.grad_fn == "sum")
has(err(function() l:backward() end), "already used by a backward pass")
has(err(function() (z + 1):requires_grad() end), "only leaf tensors")
assert(ax.no_grad(function() return (z * 2).grad_fn end) == nil)
do local tmp <close> = ax.ones(2) end
print("tensor ok")
