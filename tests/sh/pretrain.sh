#!/usr/bin/env bash
# Pre-training runner end to end on demo data (`axon data demo`, a cache
# made by the runner itself): the validation loss falls over 50 steps, a run
# killed with SIGKILL or stopped with SIGTERM and resumed ends with the same
# weights as an uninterrupted one (bitwise: the checkpoints are the same
# bytes), ax.pretrain/ax.load_checkpoint in Lua, the scripts, and errors.
. "$abs_top_srcdir/tests/sh/lib.sh"
export AXON_NUM_THREADS=2
D="$TMP/demo"
run "$AXON" data demo "$D" --subjects 8 --seg-train 1 --seg-test 1
check "demo data" eval '[ $rc -eq 0 ] && [ -f "$D/pretrain/openneuro_metadata.csv" ]'

# a tiny U-Net (2-3 stages, 4-16 features) on 16^3 patches keeps this quick
NET="--arch plain_unet --arch.preset tiny --arch.n_stages 3 --arch.features 4,8,16 --method mae --method.block 4"
COMMON="$NET --patch 16,16,16 --batch 2 --threads 2 --lr 0.01 --momentum 0.9 --augs mirror"

run "$AXON" pretrain --data.root "$D/pretrain" --data.format openmind --out "$TMP/r50" $COMMON \
    --steps 50 --val-every 25 --save-every 25 --keep-every 25 --progress lines
check "50 steps from a dataset: exit 0, checkpoint printed" eval '[ $rc -eq 0 ] && has "$out" "checkpoint: $TMP/r50/checkpoints/latest.safetensors"'
check "the dataset was preprocessed into OUT/cache" eval '[ -f "$TMP/r50/cache/index.json" ]'
check "run folder: config.json, metrics.jsonl, latest and step_25" eval '[ -f "$TMP/r50/config.json" ] && [ -f "$TMP/r50/metrics.jsonl" ] && [ -f "$TMP/r50/checkpoints/step_000000025.safetensors" ]'
check "plain progress lines when not a terminal" eval 'has "$err" "step 50/50 loss" && has "$err" "steps/s ETA"'
v0=$(grep '"step":0,' "$TMP/r50/metrics.jsonl" | sed 's/.*"val_loss":\([^,}]*\).*/\1/')
v50=$(grep '"step":50,' "$TMP/r50/metrics.jsonl" | sed 's/.*"val_loss":\([^,}]*\).*/\1/')
check "validation loss falls over 50 steps ($v0 -> $v50)" awk -v a="$v0" -v b="$v50" 'BEGIN { exit !(a > 0 && b > 0 && b < 0.8 * a) }'
check "metrics.jsonl lines carry step, loss, lr, grad_norm, time" eval 'grep -q "^{\"step\":12,\"loss\":[0-9.e-]*,\"lr\":[0-9.e-]*,\"grad_norm\":[0-9.e-]*,\"time\":" "$TMP/r50/metrics.jsonl"'
check "config.json holds the resolved settings" eval 'grep -q "\"momentum\": 0.9" "$TMP/r50/config.json" && grep -q "\"mae\"" "$TMP/r50/config.json"'
C="$TMP/r50/cache"

# exact resume: uninterrupted vs SIGKILLed-and-resumed vs SIGTERMed-and-resumed
R="--data $C $COMMON --steps 12 --save-every 2 --val-every 6 --progress false"
run "$AXON" pretrain --out "$TMP/ref" $R
check "reference run" eval '[ $rc -eq 0 ]'
# start, wait for a checkpoint, stop with signal $1, then resume
stop_and_resume() {
    local dir=$1 sig=$2
    "$AXON" pretrain --out "$dir" $R >"$TMP/bg.out" 2>"$TMP/bg.err" &
    local pid=$! i=0
    while [ ! -f "$dir/checkpoints/state_000000004.json" ] && [ $i -lt 1200 ] && kill -0 $pid 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
    kill -"$sig" $pid 2>/dev/null
    wait $pid
    bgrc=$?
}
stop_and_resume "$TMP/killed" KILL
check "SIGKILL stopped the run before its end (status $bgrc)" eval '[ $bgrc -eq 137 ] && ! grep -q "\"step\":12" "$TMP/killed/metrics.jsonl"'
run "$AXON" pretrain --out "$TMP/killed" $R --resume
check "resume after SIGKILL finishes" eval '[ $rc -eq 0 ] && has "$err" "resuming $TMP/killed at step"'
check "SIGKILL + resume == uninterrupted, bit for bit" cmp "$TMP/ref/checkpoints/latest.safetensors" "$TMP/killed/checkpoints/latest.safetensors"
check "metrics.jsonl has each step once after the resume" eval '[ "$(grep -c "\"step\":" "$TMP/killed/metrics.jsonl")" -eq "$(grep -c "\"step\":" "$TMP/ref/metrics.jsonl")" ]'

stop_and_resume "$TMP/termed" TERM
check "SIGTERM: checkpoint saved, status 130, a clear message" eval '[ $bgrc -eq 130 ] && grep -q "interrupted by signal 15 at step [0-9]*; checkpoint saved in $TMP/termed/checkpoints/latest.safetensors" "$TMP/bg.err"'
run "$AXON" pretrain --out "$TMP/termed" $R --resume
check "SIGTERM + resume == uninterrupted, bit for bit" eval '[ $rc -eq 0 ] && cmp "$TMP/ref/checkpoints/latest.safetensors" "$TMP/termed/checkpoints/latest.safetensors"'

# errors: one clear line, non-zero status
run "$AXON" pretrain --out "$TMP/ref" $R
check "an existing run folder needs --resume" eval '[ $rc -eq 1 ] && has "$err" "already holds a checkpoint; resume it"'
run "$AXON" pretrain --out "$TMP/e1" $R --stepz 3
check "unknown key: suggestion and the valid keys" eval '[ $rc -eq 1 ] && has "$err" "unknown key '"'"'stepz'"'"' (did you mean '"'"'steps'"'"'?); valid: data, out, arch"'
run "$AXON" pretrain --out "$TMP/e2" $R --arch plane_unet
check "unknown arch plugin" eval '[ $rc -eq 1 ] && has "$err" "no arch named '"'"'plane_unet'"'"' (did you mean '"'"'plain_unet'"'"'?)"'
run "$AXON" pretrain --out "$TMP/e3" $R --method.mask_ratio 2
check "out-of-range method parameter" eval '[ $rc -eq 1 ] && has "$err" "mask_ratio" && has "$err" "out of range"'
run "$AXON" pretrain --out "$TMP/e4" $R --data "$TMP/nowhere"
check "missing cache folder names it" eval '[ $rc -eq 1 ] && has "$err" "$TMP/nowhere"'
run "$AXON" pretrain --out "$TMP/ref" $R --resume --arch.features 4,8,32
check "resume with another network: the mismatching keys and shapes" eval '[ $rc -eq 1 ] && has "$err" "does not fit this network" && has "$err" "file [16"'
run "$AXON" pretrain
check "no configuration is a usage error" eval '[ $rc -eq 2 ] && has "$err" "see '"'"'axon help pretrain'"'"'"'

# Lua: the run table, load_checkpoint, errors
run "$AXON" run "$abs_top_srcdir/tests/lua/pretrain.lua" "$C" "$TMP" "$D/pretrain"
check "ax.pretrain / ax.load_checkpoint from Lua" eval '[ $rc -eq 0 ] && has "$out" "pretrain ok"'

# a CONFIG.lua file, overridden from the command line
cat >"$TMP/cfg.lua" <<LUA
local ax = require "axon"
return { data = "$C", arch = ax.arch("plain_unet", { preset = "tiny", n_stages = 2, features = {4, 8} }),
         method = "mae", method_params = { block = 4 }, patch = {16, 16, 16}, batch = 1, steps = 100,
         val_batches = 1, threads = 1 }
LUA
run "$AXON" pretrain "$TMP/cfg.lua" --steps 3 --out "$TMP/cfg" --optim adamw --schedule cosine --warmup 1
check "CONFIG.lua with flags over it (AdamW, warm-up, cosine)" eval '[ $rc -eq 0 ] && has "$out" "step 3:" && grep -q "\"adamw\"" "$TMP/cfg/config.json" && grep -q "\"cosine\"" "$TMP/cfg/config.json"'

# the scripts
run "$AXON" run "$abs_top_srcdir/scripts/pretrain_mae.lua" "$TMP/script_mae" 3 "$D"
check "scripts/pretrain_mae.lua" eval '[ $rc -eq 0 ] && [ -f "$TMP/script_mae/checkpoints/latest.safetensors" ] && has "$out" "validation loss"'
run "$AXON" run "$abs_top_srcdir/scripts/ablate_mask_ratio.lua" "$TMP/ablate" 2 "$C" 0.3,0.6
check "scripts/ablate_mask_ratio.lua writes the CSV" eval '[ $rc -eq 0 ] && [ "$(wc -l <"$TMP/ablate/results.csv")" -eq 3 ] && grep -q "^0.3," "$TMP/ablate/results.csv"'
run "$AXON" run "$abs_top_srcdir/scripts/ablate_mask_ratio.lua" "$TMP/ablate" 2 "$C" 0.3,0.6,0.9
check "the ablation skips finished ratios when rerun" eval '[ $rc -eq 0 ] && has "$out" "0.3: done" && has "$out" "0.6: done" && [ "$(wc -l <"$TMP/ablate/results.csv")" -eq 4 ]'

finish
