-- ax.dataset, ax.preprocess, ax.cache_list on tests/fixtures/preprocess.
-- usage: axon run data.lua FIXTURES_DIR TMP_DIR   (prints "data ok")
local ax = require "axon"
local fix, tmp = arg[1], arg[2]
assert(fix and tmp, "usage: data.lua FIXTURES_DIR TMP_DIR")

local function expect_error(want, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error containing: " .. want)
  assert(tostring(err):find(want, 1, true), "error '" .. tostring(err) .. "' lacks '" .. want .. "'")
end

-- nnU-Net raw
local ds = ax.dataset{ format = "nnunet", root = fix .. "/nnunet" }
assert(#ds == 4 and ds:size() == 4, "4 cases")
assert(ds.format == "nnunet" and ds.channels == 1 and ds.root == fix .. "/nnunet")
assert(tostring(ds):find("axon.dataset(nnunet", 1, true))
local c = ds:case(1)
assert(c.name == "c_001" and c.subject == "c_001" and #c.images == 1, c.name)
assert(c.images[1] == fix .. "/nnunet/imagesTr/c_001_0000.nii.gz")
assert(c.label == fix .. "/nnunet/labelsTr/c_001.nii.gz" and c.test == false and c.quality == nil)
local t = ds:case(4)
assert(t.name == "t_001" and t.test == true and t.label == nil)
local labels = ds:labels()
assert(labels.background == 0 and labels.a == 1 and labels.b == 2)
assert(ds:channel_names()[1] == "T1")
expect_error("index out of range [1, 4]", ds.case, ds, 5)

-- split: deterministic, by subject, test cases apart
local s1 = ds:split{ fraction = 0.5, min = 0, max = 10, seed = 3 }
local s2 = ds:split{ fraction = 0.5, min = 0, max = 10, seed = 3 }
assert(#s1.test == 1 and s1.test[1] == 4)
assert(#s1.train + #s1.val == 3 and #s1.val == 2, "round(0.5 * 3) = 2 validation subjects")
for k, v in ipairs(s1.val) do assert(s2.val[k] == v) end
local d = ds:split()
assert(#d.val == 1 and #d.train == 2, "default: min 5, but at most half of 3 subjects")
expect_error("unknown key 'frac' (valid: fraction, min, max, seed)", ds.split, ds, { frac = 0.1 })
expect_error("fraction = 2", ds.split, ds, { fraction = 2 })

-- OpenMind: filters and masks
local om = ax.dataset{ format = "openmind", root = fix .. "/openmind", max_quality = 3.0 }
assert(#om == 1)
local oc = om:case(1)
assert(oc.name == "ds000001_sub-01_T1w" and oc.subject == "ds000001/sub-01" and oc.modality == "T1w")
assert(oc.quality == 1.5 and oc.mask:find("fb_mask.nii.gz", 1, true) and oc.deface_mask:find("deface_mask", 1, true))
local om2 = ax.dataset{ format = "openmind", root = fix .. "/openmind", modalities = { "T2w" } }
assert(#om2 == 1 and om2:case(1).modality == "T2w")
local nd = ax.dataset{ format = "nifti-dir", root = fix .. "/nnunet", glob = "imagesT[rs]/*" }
assert(#nd == 4)

-- bad input: one clear message
expect_error("dataset: unknown key 'rooot'", ax.dataset, { format = "nnunet", rooot = "x" })
expect_error("dataset: 'root' is required", ax.dataset, { format = "nnunet" })
expect_error("dataset.json: no such file", ax.dataset, { format = "nnunet", root = fix })
expect_error("unknown dataset format 'dicom'", ax.dataset, { format = "dicom", root = fix })

-- preprocess, resume, cache listing
local r = ax.preprocess{ dataset = ds, out = tmp .. "/cache", threads = 2, quiet = true }
assert(r.total == 4 and r.done == 3 and r.skipped == 0 and r.failed == 1, "3 done, 1 failed")
assert(r.failures[1].name == "c_003" and r.failures[1].reason:find("c_003.nii.gz: shape [7, 10, 12]", 1, true))
assert(r.index == tmp .. "/cache/index.json")
local again = ax.preprocess{ dataset = ds, out = tmp .. "/cache", quiet = true }
assert(again.done == 0 and again.skipped == 3)
local all = ax.cache_list(tmp .. "/cache")
assert(#all == 3)
local train, val, test = ax.cache_list(tmp .. "/cache", "train"), ax.cache_list(tmp .. "/cache", "val"),
  ax.cache_list(tmp .. "/cache", "test")
assert(#train == 1 and #val == 1 and #test == 1 and test[1] == tmp .. "/cache/t_001.axc")
local sp = ax.preprocess{ dataset = om, out = tmp .. "/om", spacing = 1, mask_norm = true, quiet = true,
                          split = { min = 0 } }
assert(sp.done == 1)
expect_error("preprocess: unknown key 'spacng'", ax.preprocess, { dataset = ds, out = tmp, spacng = 1 })
expect_error("'dataset' must be an open ax.dataset", ax.preprocess, { dataset = "x", out = tmp })
expect_error("spacing (1, -1, 1): need three positive values", ax.preprocess, { dataset = ds, out = tmp .. "/bad", spacing = { 1, -1, 1 } })
expect_error("cache_list: ", ax.cache_list, tmp .. "/nothing")

ds:close()
expect_error("used after close()", ds.size, ds)
print("data ok")
