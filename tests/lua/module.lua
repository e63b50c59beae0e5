-- the axon module: plugins, parameters, rng, sandbox
local ax = require "axon"
assert(require("axon") == ax, "require returns the same table")
assert(type(ax.version) == "string" and ax.abi_major == 1)
assert(package.loadlib == nil, "no native loading outside axon")

local names = {}
for _, p in ipairs(ax.plugins()) do names[p.kind .. ":" .. p.name] = p end
assert(names["aug:mirror"], "mirror listed")
assert(names["method:test_method"], "test plugin listed")
assert(names["backend:test_backend"].available == false)
assert(names["task:test_task"] and names["task:segmentation"], "task plugins listed")

local d = ax.describe("test_method")
assert(d.kind == "method" and #d.params == 7)
assert(d.params[1].name == "n" and d.params[1].type == "int" and d.params[1].default == "3")
assert(d.params[1].min == 1 and d.params[1].max == 10)

-- defaults, then user values
local m = ax.method("test_method")
assert(m.params.n == 3 and m.params.ratio == 0.75 and m.params.flag == false and m.params.mode == "mse")
assert(#m.params.patch == 3 and m.params.patch[1] == 64)
m = ax.method("test_method", { n = 5, ratio = 1, flag = true, mode = "l1", patch = {8, 16, 32},
                                weights = {0.25, 2} })
assert(m.params.n == 5 and m.params.ratio == 1.0 and m.params.flag and m.params.mode == "l1")
assert(m.params.patch[3] == 32 and m.params.weights[1] == 0.25)
assert(m.kind == "method" and m.name == "test_method" and m.file:match("good%.so$"))
assert(tostring(m) == "axon.method<test_method>")
do local closing <close> = ax.method("test_method") end
m:close()
assert(not pcall(function() return m.params end), "closed instance refuses use")

-- every bad parameter is one clear error naming key and value
local function err(f)
  local ok, e = pcall(f)
  assert(not ok, "expected an error")
  return e
end
local function expect(e, s)
  assert(e:find(s, 1, true), ("expected %q in %q"):format(s, e))
end
expect(err(function() ax.method("test_method", { nn = 2 }) end), "unknown parameter 'nn' (did you mean 'n'?)")
expect(err(function() ax.method("test_method", { n = 11 }) end), "'n' = 11 is out of range [1, 10]")
expect(err(function() ax.method("test_method", { n = "3" }) end), "parameter 'n' expects an int in [1, 10], got string \"3\"")
expect(err(function() ax.method("test_method", { n = 2.5 }) end), "2.5")
expect(err(function() ax.method("test_method", { flag = 1 }) end), "parameter 'flag' expects a bool, got 1")
expect(err(function() ax.method("test_method", { mode = "ssim" }) end), "must be one of mse|l1")
expect(err(function() ax.method("test_method", { patch = {8, 8} }) end), "'patch'")
expect(err(function() ax.method("test_method", { patch = {8, "x", 8} }) end), "element 2 must be a number")
expect(err(function() ax.method("test_method", { [1] = 2 }) end), "parameter names must be strings")
expect(err(function() ax.method("test_method", { fail_create = true }) end), "refusing to start")
expect(err(function() ax.task("test_task") end), "classes")
expect(err(function() ax.method("test_methd") end), "no method named 'test_methd' (did you mean 'test_method'?)")
expect(err(function() ax.aug("test_method") end), "no aug named 'test_method'")
expect(err(function() ax.backend("test_backend") end), "unavailable here: no test device")
assert(ax.task("test_task", { classes = 3 }).params.classes == 3)
-- errors point at the script line that made the call
expect(err(function() ax.method("test_method", { n = 0 }) end), "module.lua:")

-- rng: same seed and stream, same numbers; streams differ
local a, b, c = ax.rng(7, 1), ax.rng(7, 1), ax.rng(7, 2)
for _ = 1, 5 do assert(a:uniform() == b:uniform()) end
assert(a:normal() == b:normal())
assert(ax.rng(7, 1):u32() ~= c:u32())
local x = a:uniform(10, 20); assert(x >= 10 and x < 20)
local k = a:below(6); assert(k >= 0 and k < 6 and math.type(k) == "integer")
local s, st, ctr = a:state(); assert(s == 7 and st == 1 and ctr > 0)
local r1 = ax.rng(3):seek(100):u32()
local r2 = ax.rng(3); for _ = 1, 100 do r2:u32() end
assert(r1 == r2:u32(), "seek equals drawing")
expect(err(function() a:below(0) end), "bad argument")
ax.log("debug", "hidden %d", 1)
expect(err(function() ax.log("loud", "x") end), "unknown log level 'loud'")
print("module ok")
