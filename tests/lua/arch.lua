-- networks from ARCH plugins: build, forward, parameters, train, save/load,
-- plans, and PyTorch parity through a committed fixture.
-- usage: axon run arch.lua TMPDIR [FIXTURES]   (FIXTURES: tests/fixtures/archs)
local ax = require "axon"
local dir, fixtures = arg[1] or "/tmp", arg[2]
local function err(f, ...) local ok, e = pcall(f, ...); assert(not ok, "expected an error"); return tostring(e) end
local function has(e, s) assert(e:find(s, 1, true), ("expected %q in %q"):format(s, e)) end
local function count(t) local n = 0; for _ in pairs(t) do n = n + 1 end; return n end
local function maxdiff(a, b) return (a - b):abs():max():item() end

local arch = ax.arch("resenc_unet", { preset = "tiny" })
local net = arch:build{ in_channels = 1, out_channels = 2, seed = 1 }
assert(tostring(net) == "axon.net<resenc_unet ResidualEncoderUNet, 1 -> 2 channels>", tostring(net))
assert(arch.name == "resenc_unet" and arch.params.preset == "tiny", "the instance still answers its fields")

-- plans, from the instance and from the network
for _, p in ipairs({ arch:plan(), net:plan() }) do
  assert(p.stem == "encoder.stem" and p.encoder == "encoder.stages" and p.decoder == "decoder")
  assert(p.input_projection == "encoder.stem.convs.0.conv" and p.output_head == "decoder.seg_layers")
  assert(p.pos_embed == nil and p.divisor[1] == 8 and p.divisor[3] == 8)
end
assert(ax.arch("plain_unet", { preset = "S" }):plan().stem == "encoder.stages.0")

-- parameters are the network's own tensors, by PyTorch name
local params = net:parameters()
assert(count(params) == 69, count(params))
assert(count(net:state_dict()) == 216)
local w = params["encoder.stem.convs.0.conv.weight"]
assert(w:shape()[1] == 8 and w:shape()[2] == 1 and w:shape()[5] == 3)

-- forward; same seed, same network
local x = ax.randn({ 2, 1, 16, 16, 16 }, 3)
local y = net:forward(x)
assert(y:shape()[1] == 2 and y:shape()[2] == 2 and y:shape()[5] == 16)
local twin = arch:build{ in_channels = 1, out_channels = 2, seed = 1 }
assert(maxdiff(twin:forward(x), y) == 0, "same seed, same weights")
local other = arch:build{ in_channels = 1, out_channels = 2, seed = 2 }
assert(maxdiff(other:forward(x), y) > 0, "another seed, other weights")

-- deep supervision: every decoder output, highest resolution first
local ds = ax.arch("resenc_unet", { preset = "tiny", deep_supervision = true })
             :build{ in_channels = 1, out_channels = 3 }
local outs = ds:forward_all(x)
assert(#outs == 3 and outs[1]:shape()[3] == 16 and outs[2]:shape()[3] == 8 and outs[3]:shape()[3] == 4)
assert(outs[1]:shape()[2] == 3)
assert(#net:forward_all(x) == 1)
-- per-stage parameters as Lua lists
local small = ax.arch("plain_unet", { n_stages = 3, features = { 4, 8, 16 }, convs_per_stage = { 1 },
                                      n_conv_per_stage_decoder = { 1, 1 }, norm = "batch", nonlin = "relu" })
local sn = small:build{ in_channels = 2, out_channels = 1, seed = 4 }
assert(sn:forward(ax.randn({ 1, 2, 8, 8, 8 }, 5)):shape()[2] == 1)
assert(sn:state_dict()["encoder.stages.0.0.convs.0.norm.running_mean"], "BatchNorm buffers in the state dict")

-- a few SGD steps on a fixed target lower the loss; train/eval modes
assert(net:training())
local target = ax.randn({ 2, 2, 16, 16, 16 }, 9) * 0.1
local opt = ax.optim("sgd", net:parameters(), { lr = 1e-2, momentum = 0.9 })
local first, last
for step = 1, 6 do
  local loss = ax.mse_loss(net:forward(x), target)
  loss:backward()
  opt:step()
  opt:zero_grad()
  first = first or loss:item()
  last = loss:item()
end
assert(last < first, ("loss did not fall: %g -> %g"):format(first, last))
assert(net:eval() == net and not net:training())
net:train(); assert(net:training()); net:train(false); assert(not net:training())

-- save with metadata, load into another network: identical outputs
local path = dir .. "/resenc_tiny.safetensors"
net:save(path, { step = 6, note = "lua test", resumed = false })
local saved, meta = ax.load(path)
assert(count(saved) == 216)
assert(meta.arch == "resenc_unet" and meta.in_channels == "1" and meta.out_channels == "2")
assert(meta.step == "6" and meta.note == "lua test" and meta.resumed == "false")
assert(meta.arch_params:find('"preset": "tiny"', 1, true), meta.arch_params)
other:eval()
local missing, unexpected = other:load(path)
assert(#missing == 0 and #unexpected == 0)
assert(maxdiff(other:forward(x), net:forward(x)) == 0, "loaded network differs")

-- the wrong checkpoint: strict load names the problem; non-strict lists keys
local plain = ax.arch("plain_unet", { preset = "tiny" }):build{ in_channels = 1, out_channels = 2 }
local ppath = dir .. "/plain_tiny.safetensors"
plain:save(ppath)
has(err(net.load, net, ppath), "missing keys: encoder.stem.convs.0.conv.weight")
missing, unexpected = net:load(ppath, false)
assert(#missing > 100 and #unexpected > 100, #missing .. " " .. #unexpected)
local wide = ax.arch("resenc_unet", { preset = "tiny", features = { 16 } }):build{ in_channels = 1, out_channels = 2 }
has(err(wide.load, wide, path),
    "encoder.stem.convs.0.conv.weight: file has [8, 1, 3, 3, 3], model has [16, 1, 3, 3, 3]")

-- argument errors
has(err(arch.build, arch, { in_channels = 0, out_channels = 1 }), "must be >= 1")
has(err(arch.build, arch, { in_channels = 1 }), "'out_channels' is required")
has(err(arch.build, arch, { in_channels = 1, out_channels = 1, sed = 3 }), "unknown option 'sed'")
has(err(net.forward, net, ax.randn({ 1, 1, 12, 16, 16 }, 1)), "not a multiple of 8x8x8")
has(err(ax.arch, "resenc_unet", { preset = "XL" }), "must be one of tiny|S|M|L")
has(err(ax.arch, "resenc_unet", { n_stages = 4, features = { 8, 16 } }), "parameter 'features' has 2 values")
-- a features list alone sets the number of stages
assert(ax.arch("resenc_unet", { preset = "tiny", features = { 4, 8, 16 } }):plan().divisor[1] == 4)

-- PyTorch parity: weights saved by PyTorch, its output on the same input
if fixtures then
  local ref = arch:build{ in_channels = 1, out_channels = 2 }
  ref:load(fixtures .. "/resenc_tiny.safetensors")
  ref:eval()
  local io = ax.load(fixtures .. "/resenc_tiny_io.safetensors")
  local scale = io.y0:abs():max():item()
  local d = maxdiff(ref:forward(io.x), io.y0)
  assert(d <= 1e-4 * scale, ("PyTorch parity: max difference %g (scale %g)"):format(d, scale))
  -- for make_archs.py --check-axon: an axon-initialised network and its output
  local mine = arch:build{ in_channels = 1, out_channels = 2, seed = 5 }
  mine:eval()
  mine:save(dir .. "/resenc_tiny_axon.safetensors")
  local y0 = ax.no_grad(function() return mine:forward(io.x) end)
  ax.save(dir .. "/resenc_tiny_axon_io.safetensors", { x = io.x, y0 = y0 })
end

-- closing
net:close()
has(err(net.forward, net, x), "network used after it was closed")
local a2 = ax.arch("resenc_unet", { preset = "tiny" })
local n2 = a2:build{ in_channels = 1, out_channels = 1 }
a2:close()
has(err(n2.plan, n2), "plugin instance used after it was closed")
assert(n2:forward(ax.randn({ 1, 1, 8, 8, 8 }, 1)):shape()[2] == 1, "a network outlives its closed instance")
print("arch ok")
