-- scripts/demo.lua — the main job, end to end on synthetic brain MRI:
--   1. `axon data demo`: pre-training scans (OpenMind layout) and a
--      segmentation set (nnU-Net raw: brain + coarse regions, held-out test
--      cases with labels);
--   2. MAE pre-training of a tiny residual-encoder U-Net on the scans;
--   3. segmentation fine-tuning from the MAE checkpoint (stem + encoder
--      transferred) and from scratch, with the same budget and the
--      reference CNN recipes (SGD-Nesterov; lr 1e-3 from a checkpoint, 1e-2
--      from scratch; linear warm-up then poly), mirroring along every axis
--      but left-right (the hemisphere labels are lateralised);
--   4. prediction of the test cases (NIfTI in their own geometry) and
--      evaluation (Dice, HD95), a table on stdout, and runs/demo/report.html.
--
--   axon run scripts/demo.lua [--full] [--seed N] [--out DIR] [--lr-init LR]
--
-- --lr-init sets the fine-tuning rate of the MAE-initialised run (default:
-- the reference's 1e-3; the run folder is then seg_mae_lr<LR>).
-- Default settings finish in about 9 minutes on 2 idle CPU cores (527 s
-- measured); --full runs 4x longer schedules on 3x the data. Runs live in OUT/seed<N>/ and resume when
-- the script is run again ($AXON: the axon executable for `axon data demo`;
-- by default the one running this script).
local ax = require "axon"

local full, seed, out, lr_init = false, 0, "runs/demo", nil
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--full" then full = true
  elseif a == "--seed" then seed = math.tointeger(tonumber(arg[i + 1] or "")) or error("--seed needs an integer"); i = i + 1
  elseif a == "--out" then out = arg[i + 1] or error("--out needs a folder"); i = i + 1
  elseif a == "--lr-init" then lr_init = tonumber(arg[i + 1] or "") or error("--lr-init needs a number"); i = i + 1
  else error(("unknown argument '%s' (valid: --full, --seed N, --out DIR, --lr-init LR)"):format(a)) end
  i = i + 1
end

local S = full and {
  subjects = 48, seg_train = 20, seg_test = 6, pt_steps = 12000, ft_steps = 3000, val_every = 500, val_cases = 4,
} or {
  subjects = 16, seg_train = 10, seg_test = 4, pt_steps = 3000, ft_steps = 800, val_every = 200, val_cases = 2,
}
local patch = {32, 32, 32}
local dir = ("%s/seed%d%s"):format(out, seed, full and "_full" or "")

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function sh(cmd)
  local ok = os.execute(cmd)
  if not ok then error("command failed: " .. cmd) end
end

local function axon_exe()
  if os.getenv("AXON") then return os.getenv("AXON") end
  local p = io.popen("readlink /proc/$PPID/exe 2>/dev/null")
  local exe = p and p:read("l")
  if p then p:close() end
  return (exe and exe ~= "") and exe or "axon"
end

local t_start, c_start = os.time(), os.clock()
local function stamp(what)
  print(("[%4ds wall, %5.0fs CPU] %s"):format(os.time() - t_start, os.clock() - c_start, what))
end

-- 1. data ------------------------------------------------------------------------------
local data = dir .. "/data"
local seg = data .. "/seg/Dataset001_DemoBrain"
if not exists(seg .. "/dataset.json") then
  sh(("%q data demo %q --subjects %d --seg-train %d --seg-test %d --seed %d >/dev/null"):format(
    axon_exe(), data, S.subjects, S.seg_train, S.seg_test, seed))
end
local ds = ax.dataset{ format = "nnunet", root = seg }
local names = {}
for name, id in pairs(ds:labels()) do names[id] = name end
local classes = #names + 1 -- ids 0..K-1
ds:close()
stamp(("data: %d pre-training subjects, %d+%d segmentation cases, %d classes in %s"):format(
  S.subjects, S.seg_train, S.seg_test, classes, data))

-- 2. MAE pre-training ------------------------------------------------------------------------
local arch = ax.arch("resenc_unet", { preset = "tiny" })
local t0 = os.time()
local mae = ax.pretrain{
  data = { root = data .. "/pretrain", format = "openmind" }, out = dir .. "/mae",
  arch = arch, method = ax.method("mae", { mask_ratio = 0.75, block = 8 }),
  augs = { ax.aug("mirror") }, patch = patch, batch = 2, steps = S.pt_steps, seed = seed,
  optim = "sgd", lr = 1e-2, schedule = "poly", clip = 12,
  val_every = S.pt_steps // 4, save_every = S.pt_steps // 4, resume = true, progress = "lines",
}
local pt_wall = os.time() - t0
local v0 = mae.metrics.first_val_loss -- NaN for a resumed run: its first validation was in an earlier process
stamp(("MAE pre-training: %d steps, validation loss %s%.4f"):format(
  mae.step, (v0 and v0 == v0) and ("%.4f -> "):format(v0) or "", mae.metrics.val_loss or 0 / 0))

-- 3. fine-tuning, both inits --------------------------------------------------------------------
local function finetune(name, init, lr)
  local t = os.time()
  local r = ax.finetune{
    lr = lr,
    task = ax.task("segmentation", { classes = classes, patch = patch, mirror = false }),
    arch = (not init) and arch or nil, init = init,
    data = { root = seg, format = "nnunet" }, split = { fraction = 0.2, min = 2, seed = seed },
    patch = patch, batch = 2, steps = S.ft_steps, seed = seed, schedule = "warmup_poly",
    -- no flips along W (left-right): the labels are lateralised, and a flipped
    -- left hemisphere still labelled "left" would make the two classes the same
    augs = { ax.aug("mirror", { axes = { 1, 1, 0 } }) },
    val_every = S.val_every, val_cases = S.val_cases, save_every = S.val_every,
    out = dir .. "/" .. name, resume = true, progress = "lines",
  }
  r.wall = os.time() - t
  stamp(("fine-tune %s: %d steps, validation Dice %.3f (%d tensors transferred)"):format(
    name, r.step, r.metrics.val_dice_mean or 0 / 0, r.transferred))
  return r
end
local runs = { mae = finetune(lr_init and ("seg_mae_lr" .. lr_init) or "seg_mae", mae.checkpoint, lr_init),
               scratch = finetune("seg_scratch", nil) }

-- 4. predict + evaluate --------------------------------------------------------------------------
local evals = {}
for _, k in ipairs({ "mae", "scratch" }) do
  local r = runs[k]
  local p = ax.predict{ model = r.out, input = seg .. "/imagesTs", output = r.out .. "/pred", mirror = false,
                        progress = false }
  for _, f in ipairs(p.failed) do print(("  %s: skipped %s: %s"):format(k, f.name, f.reason)) end
  evals[k] = ax.evaluate{ pred = r.out .. "/pred", ref = seg .. "/labelsTs", classes = classes,
                          out = r.out .. "/evaluation.json" }
end
stamp("prediction and evaluation of the test cases")

-- table ---------------------------------------------------------------------------------------------
local function f3(v) return v and ("%.3f"):format(v) or "-" end
local header = { "class", "Dice, MAE init", "Dice, from scratch", "MAE - scratch" }
local rows = {}
for c = 1, classes - 1 do
  local a, b = evals.mae.mean.dice[tostring(c)], evals.scratch.mean.dice[tostring(c)]
  rows[#rows + 1] = { ("%d %s"):format(c, names[c] or "?"), f3(a), f3(b), (a and b) and ("%+.3f"):format(a - b) or "-" }
end
local ma, mb = evals.mae.mean.dice_mean, evals.scratch.mean.dice_mean
rows[#rows + 1] = { "mean", f3(ma), f3(mb), (ma and mb) and ("%+.3f"):format(ma - mb) or "-" }
rows[#rows + 1] = { "HD95 mean (mm)", f3(evals.mae.mean.hd95_mean), f3(evals.scratch.mean.hd95_mean), "" }
rows[#rows + 1] = { "fine-tune steps", tostring(runs.mae.step), tostring(runs.scratch.step), "" }
rows[#rows + 1] = { "fine-tune wall time (s)", tostring(runs.mae.wall), tostring(runs.scratch.wall), "" }
rows[#rows + 1] = { "pre-training steps / wall (s)", ("%d / %d"):format(mae.step, pt_wall), "-", "" }

print()
print(("Test-set Dice (%d held-out cases, seed %d%s):"):format(S.seg_test, seed, full and ", --full" or ""))
print(("  %-30s %14s %18s %14s"):format(table.unpack(header)))
for _, r in ipairs(rows) do print(("  %-30s %14s %18s %14s"):format(table.unpack(r))) end

-- report ---------------------------------------------------------------------------------------------
local first = evals.mae.cases[1].name
local report = {
  title = ("axon demo: MAE pre-training and segmentation fine-tuning (seed %d%s)"):format(seed, full and ", full" or ""),
  intro = ("A tiny residual-encoder U-Net pre-trained with MAE on %d synthetic brain MRI scans for %d steps, then "
    .. "fine-tuned for %d steps to segment %d classes on %d cases, from the MAE checkpoint (lr %g) and from "
    .. "scratch (lr 1e-2), %s^3 patches, batch 2. Test Dice on %d held-out cases (sliding window, no mirroring)."):format(
    S.subjects, mae.step, S.ft_steps, classes - 1, S.seg_train, lr_init or 1e-3, patch[1], S.seg_test),
  runs = { { name = "MAE pre-training", dir = mae.out }, { name = "fine-tune, MAE init", dir = runs.mae.out },
           { name = "fine-tune, from scratch", dir = runs.scratch.out } },
  table = { title = "Test-set Dice", header = header, rows = rows },
  notes = ("Total %d s wall, %.0f s CPU."):format(os.time() - t_start, os.clock() - c_start),
  preview = mae.out,
  cases = { { title = "test case " .. first, image = seg .. "/imagesTs/" .. first .. "_0000.nii.gz",
              label = seg .. "/labelsTs/" .. first .. ".nii.gz",
              preds = { { name = "MAE init", path = runs.mae.out .. "/pred/" .. first .. ".nii.gz" },
                        { name = "from scratch", path = runs.scratch.out .. "/pred/" .. first .. ".nii.gz" } } } },
}
-- the main report is the reference recipe's; a --lr-init variant gets its own file
local tag = lr_init and ("_lr" .. lr_init) or ""
report.out = dir .. "/report" .. tag .. ".html"
ax.report(report)
if not lr_init then
  report.out = out .. "/report.html"
  ax.report(report)
end
stamp("report: " .. report.out)
print(("RESULT seed=%d dice_mae=%s dice_scratch=%s steps=%d wall_s=%d cpu_s=%.0f"):format(
  seed, f3(ma), f3(mb), S.ft_steps, os.time() - t_start, os.clock() - c_start))
