-- ax.loader on a cache folder (arg[1]) with labels: shapes, dtypes, label
-- values, determinism across thread counts, seek, and errors.
-- Run by tests/sh/demo_data.sh after `axon data demo` + `axon preprocess`.
local ax = require "axon"
local cache = assert(arg[1], "usage: loader.lua CACHE")

local function open(threads, augs)
    return ax.loader{ cache = cache, split = "all", patch = {16, 24, 20}, batch = 3, threads = threads,
                      seed = 11, labels = true, augs = augs, oversample_fg = 0.5 }
end

local function same(a, b) return a:ne(b):sum():item() == 0 end

local ld = open(2, { ax.aug("mirror") })
local x, y = ld:next()
local s = x:shape()
assert(#s == 5 and s[1] == 3 and s[2] == 1 and s[3] == 16 and s[4] == 24 and s[5] == 20,
       "image shape " .. table.concat(s, "x"))
assert(x.dtype == "f32", x.dtype)
local t = y:shape()
assert(#t == 5 and t[1] == 3 and t[2] == 1 and t[3] == 16, "label shape " .. table.concat(t, "x"))
assert(y.dtype == "u8", y.dtype)
local yf = y:to("f32")
assert(yf:max():item() <= 4 and yf:min():item() >= 0 and yf:max():item() >= 1, "labels outside 0..4 or no foreground")
assert(ld:step() == 1)
print("shapes ok")

-- 1 thread and 3 threads, the same bytes (through the enlarging spatial
-- aug and mirror); seek replays
local function chain() return { ax.aug("spatial", { p_rotation = 0.5, p_scale = 0.5 }), ax.aug("mirror") } end
local a, b = open(1, chain()), open(3, chain())
local first = {}
for k = 1, 4 do
    local xa, ya = a:next()
    local xb, yb = b:next()
    assert(same(xa, xb) and same(ya, yb), "thread counts disagree at step " .. (k - 1))
    first[k] = xa
end
a:seek(2)
local x2 = a:next()
assert(same(x2, first[3]), "seek(2) does not replay step 2")
assert(not same(first[1], first[2]), "consecutive steps are identical")
a:close()
b:close()
print("determinism ok")

-- errors name the problem
local function fails(pattern, f)
    local ok, err = pcall(f)
    assert(not ok, "expected an error matching " .. pattern)
    assert(tostring(err):find(pattern, 1, true), "error '" .. tostring(err) .. "' lacks '" .. pattern .. "'")
end
fails("unknown key 'patchsize'", function() ax.loader{ cache = cache, patchsize = 3 } end)
fails("exactly one of cache", function() ax.loader{ patch = 8 } end)
fails("not an ax.aug", function() ax.loader{ cache = cache, augs = { 42 } } end)
fails("unknown split 'nope'", function() ax.loader{ cache = cache, split = "nope" } end)
fails("bad.axc", function() ax.loader{ paths = { cache .. "/bad.axc" } } end)
fails("closed", function() ld:close(); ld:next() end)
print("errors ok")
