#!/usr/bin/env bash
# The HTML report (ax.report{}): written from real runs of a tiny network
# (MAE pre-training, fine-tuning, prediction), self-contained, and rendered
# by headless Chromium with every image decoded, every SVG curve drawn and a
# silent console. Skips (77) only when Chromium is missing and cannot be
# installed.
. "$abs_top_srcdir/tests/sh/lib.sh"
export AXON_NUM_THREADS=2
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >"$TMP/apt.log" 2>&1
    CHROMIUM=$(command -v chromium || true)
fi
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: chromium is not installed and cannot be installed here"
    exit 77
fi

D="$TMP/demo"
S="$D/seg/Dataset001_DemoBrain"
run "$AXON" data demo "$D" --subjects 2 --seg-train 3 --seg-test 1 --spacing 4 --seed 4
check "demo data" eval '[ $rc -eq 0 ]'
cat >"$TMP/report.lua" <<LUA
local ax = require "axon"
local arch = ax.arch("plain_unet", { preset = "tiny", n_stages = 3, features = {4, 8, 16} })
local mae = ax.pretrain{ data = { root = "$D/pretrain", format = "openmind" }, out = "$TMP/mae", arch = arch,
  method = ax.method("mae", { block = 8 }), patch = {32, 32, 32}, batch = 1, steps = 3, val_every = 1,
  threads = 2, progress = false }
local seg = ax.finetune{ task = ax.task("segmentation", { classes = 5, mirror = false }), init = mae.checkpoint,
  data = { root = "$S" }, split = { fraction = 0.34, min = 1 }, patch = {32, 32, 32}, batch = 1, steps = 3,
  val_every = 1, val_cases = 1, threads = 2, out = "$TMP/seg", progress = false }
local p = ax.predict{ model = seg.out, input = "$S/imagesTs", output = "$TMP/pred", progress = false }
assert(#p.done == 1 and #p.failed == 0)
local e = ax.evaluate{ pred = "$TMP/pred", ref = "$S/labelsTs", classes = 5, out = "$TMP/eval.json" }
local rows = {}
for c = 1, 4 do rows[c] = { tostring(c), ("%.3f"):format(e.mean.dice[tostring(c)] or 0) } end
ax.report{ out = "$TMP/report.html", title = "report <test> & more", intro = "a tiny run",
  runs = { { name = "MAE", dir = mae.out }, { name = "fine-tune", dir = seg.out } },
  table = { title = "Dice", header = { "class", "Dice" }, rows = rows },
  preview = mae.out,
  cases = { { title = "DemoBrain_004", image = "$S/imagesTs/DemoBrain_004_0000.nii.gz",
              label = "$S/labelsTs/DemoBrain_004.nii.gz",
              preds = { { name = "MAE init", path = "$TMP/pred/DemoBrain_004.nii.gz" } } } } }
print("report written")
LUA
run "$AXON" run "$TMP/report.lua"
check "ax.report writes the report" eval '[ $rc -eq 0 ] && has "$out" "report written" && [ -s "$TMP/report.html" ]'
check "no temporary file left (atomic write)" eval '[ -z "$(ls "$TMP" | grep "report.html.tmp")" ]'
H=$(cat "$TMP/report.html")
check "title escaped, tables, curves of both runs, preview, case panels" eval 'has "$H" "report &lt;test&gt; &amp; more" && has "$H" "<table id=\"results\">" && has "$H" "<table id=\"throughput\">" && has "$H" "validation Dice" && has "$H" "loss: MAE" && has "$H" "loss: fine-tune" && has "$H" "masked input" && has "$H" "reconstruction" && has "$H" "reference label" && has "$H" "MAE init"'
check "self-contained: no script, nothing loaded from elsewhere" eval 'lacks "$H" "<script" && lacks "$H" "src=\"http" && lacks "$H" "href=" && [ "$(grep -o "src=\"data:image/png;base64," "$TMP/report.html" | wc -l)" -eq 18 ]'
# 3 slices x (input, masked, reconstruction) + 3 x (image, label, prediction) = 18 images;
# curves: Dice (1 path) + per run loss (2) + lr (1)
run python3 "$abs_top_srcdir/tests/sh/report_check.py" "$CHROMIUM" "$TMP/report.html" 18 7
check "Chromium renders it: every image decoded, every curve drawn, silent console" eval '[ $rc -eq 0 ] && has "$out" "\"img\": 18"'
run python3 "$abs_top_srcdir/tests/sh/report_check.py" "$CHROMIUM" "$TMP/report.html" 18 7 --break-image
check "the check catches an image that does not decode" eval '[ $rc -eq 1 ] && has "$out" "17 of 18 images decoded"'
cat >"$TMP/bad.lua" <<LUA
local ax = require "axon"
ax.report{ out = "$TMP/bad.html", runs = { { name = "nothing", dir = "$TMP/nowhere" } } }
LUA
run "$AXON" run "$TMP/bad.lua"
check "a run folder without metrics.jsonl: error naming the file" eval '[ $rc -eq 1 ] && has "$err" "$TMP/nowhere/metrics.jsonl" && [ ! -f "$TMP/bad.html" ]'
finish
