#!/usr/bin/env bash
# Segmentation fine-tuning, prediction and evaluation end to end on demo
# data with a tiny U-Net: transfer copies exactly the stem/encoder keys,
# predictions keep the input's shape and affine (also for a non-RAS input),
# a killed-and-resumed fine-tuning equals an uninterrupted one bit for bit,
# and bad inputs give one clear error naming the file.
. "$abs_top_srcdir/tests/sh/lib.sh"
export AXON_NUM_THREADS=2
D="$TMP/demo"
S="$D/seg/Dataset001_DemoBrain"
run "$AXON" data demo "$D" --subjects 2 --seg-train 4 --seg-test 2 --spacing 4 --seed 3
check "demo data" eval '[ $rc -eq 0 ] && [ -f "$S/dataset.json" ]'

NET="--arch plain_unet --arch.preset tiny --arch.n_stages 3 --arch.features 4,8,16"
run "$AXON" pretrain --data.root "$D/pretrain" --data.format openmind --out "$TMP/mae" $NET --method mae \
    --method.block 8 --patch 32,32,32 --batch 1 --steps 2 --threads 2 --progress false
check "MAE pre-training (2 steps)" eval '[ $rc -eq 0 ] && [ -f "$TMP/mae/checkpoints/latest.safetensors" ]'
MAE="$TMP/mae/checkpoints/latest.safetensors"

FT="--task segmentation --task.classes 5 --patch 32,32,32 --batch 1 --threads 2 --val-cases 1 --progress false"
# the split: 1 validation case, 3 training cases
SPLIT="--split.fraction 0.25 --split.min 1"
run "$AXON" finetune --data.root "$S" --out "$TMP/ft0" $FT $SPLIT --init "$MAE" --steps 1 --lr 0 --weight-decay 0
check "fine-tune from the MAE checkpoint, arch from its metadata" eval '[ $rc -eq 0 ] && has "$out" "val_dice_mean" && has "$err" "stem/encoder tensors transferred"'
check "the dataset was preprocessed into OUT/cache with a validation split" eval 'grep -q "\"split\": \"val\"" "$TMP/ft0/cache/index.json"'
run "$AXON" finetune --data "$TMP/ft0/cache" --out "$TMP/sc0" $FT $NET --steps 1 --lr 0 --weight-decay 0
check "the same network from scratch" eval '[ $rc -eq 0 ]'
# lr 0: the weights after one step are the initial ones
cat >"$TMP/st.py" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}, json.loads(b[8:8 + n]).get("__metadata__", {})
ft, meta = load(sys.argv[1]); mae, _ = load(sys.argv[2]); sc, _ = load(sys.argv[3])
# dynamic_network_architectures' decoder holds the encoder too: "decoder.encoder.*" are the same tensors
enc = [k for k in ft if k.startswith("encoder.") or k.startswith("decoder.encoder.")]
dec = [k for k in ft if k not in enc]
bad = [k for k in enc if ft[k] != mae.get(k)]
assert all(k in mae for k in enc), "checkpoint lacks %s" % [k for k in enc if k not in mae][:3]
assert enc and not bad, "encoder keys differ from the checkpoint: %s" % bad[:3]
bad = [k for k in dec if ft[k] != sc[k]]
assert dec and not bad, "decoder keys differ from a fresh network: %s" % bad[:3]
same = [k for k in dec if k in mae and mae[k] == ft[k]]
assert not same, "decoder keys copied from the checkpoint: %s" % same[:3]
assert "plan" in meta and meta.get("task") == "segmentation" and "preprocess" in meta, meta.keys()
print("transfer ok: %d encoder keys copied, %d decoder keys fresh" % (len(enc), len(dec)))
PY
run python3 "$TMP/st.py" "$TMP/ft0/checkpoints/latest.safetensors" "$MAE" "$TMP/sc0/checkpoints/latest.safetensors"
check "transfer: exactly the stem+encoder keys come from the checkpoint, the decoder is fresh" eval '[ $rc -eq 0 ] && has "$out" "transfer ok"'

# exact resume (sawtooth: the decoder-only phase spans the kill)
C="$TMP/ft0/cache"
R="--data $C $FT --init $MAE --steps 8 --save-every 2 --val-every 4 --schedule sawtooth --decoder-steps 6 --warmup 1 --lr 0.01 --keep-every 4"
run "$AXON" finetune --out "$TMP/ref" $R
check "reference sawtooth run" eval '[ $rc -eq 0 ] && grep -q "\"sawtooth\"" "$TMP/ref/config.json"'
cat >"$TMP/frozen.py" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}
s4, s8, mae = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
enc = [k for k in s4 if k.startswith("encoder.")]
dec = [k for k in s4 if not k.startswith("encoder.") and not k.startswith("decoder.encoder.") and k.endswith("weight")]
assert all(s4[k] == mae[k] for k in enc), "the encoder moved during the decoder-only phase"
assert any(s8[k] != mae[k] for k in enc), "the encoder never trained"
assert any(s4[k] != s8[k] for k in dec), "the decoder did not train"
print("sawtooth ok")
PY
run python3 "$TMP/frozen.py" "$TMP/ref/checkpoints/step_000000004.safetensors" "$TMP/ref/checkpoints/latest.safetensors" "$MAE"
check "sawtooth: stem+encoder frozen for the decoder-only steps, trained after" eval '[ $rc -eq 0 ] && has "$out" "sawtooth ok"'
"$AXON" finetune --out "$TMP/killed" $R >"$TMP/bg.out" 2>"$TMP/bg.err" &
pid=$!
i=0
while [ ! -f "$TMP/killed/checkpoints/state_000000004.json" ] && [ $i -lt 2400 ] && kill -0 $pid 2>/dev/null; do
    sleep 0.05
    i=$((i + 1))
done
kill -KILL $pid 2>/dev/null
wait $pid
bgrc=$?
check "SIGKILL stopped the fine-tuning before its end (status $bgrc)" eval '[ $bgrc -eq 137 ] && ! grep -q "\"step\":8" "$TMP/killed/metrics.jsonl"'
run "$AXON" finetune --out "$TMP/killed" $R --resume
check "resume after SIGKILL finishes" eval '[ $rc -eq 0 ] && has "$err" "resuming $TMP/killed at step"'
check "fine-tune SIGKILL + resume == uninterrupted, bit for bit" cmp "$TMP/ref/checkpoints/latest.safetensors" "$TMP/killed/checkpoints/latest.safetensors"
check "validation Dice per class in metrics.jsonl" eval 'grep -q "\"step\":8,.*\"val_loss\":[0-9.e-]*,\"val_dice_mean\":[0-9.e-]*,\"val_dice_1\":" "$TMP/ref/metrics.jsonl"'

# prediction: the input's shape and affine, also for a non-RAS input
mkdir -p "$TMP/in"
cp "$S"/imagesTs/*_0000.nii.gz "$TMP/in/"
cat >"$TMP/reorient.py" <<'PY'
import sys, nibabel as nib, numpy as np
img = nib.load(sys.argv[1])
# LPS-like storage: flip the first two axes, swap them, keep the world positions
data = np.asanyarray(img.dataobj)[::-1, ::-1, :].transpose(1, 0, 2)
flip = np.diag([-1.0, -1.0, 1.0, 1.0])
flip[0, 3], flip[1, 3] = img.shape[0] - 1, img.shape[1] - 1
swap = np.eye(4)[[1, 0, 2, 3]]
aff = img.affine @ flip @ swap
nib.save(nib.Nifti1Image(data.astype(np.float32), aff), sys.argv[2])
print("".join(nib.aff2axcodes(aff)))
PY
run python3 "$TMP/reorient.py" "$S/imagesTs/DemoBrain_005_0000.nii.gz" "$TMP/in/Odd_001_0000.nii.gz"
check "a non-RAS copy of a test case" eval '[ $rc -eq 0 ] && lacks "$out" "RAS"'
run "$AXON" predict -i "$TMP/in" -o "$TMP/pred" -m "$TMP/ref" --no-mirror
check "axon predict writes every case" eval '[ $rc -eq 0 ] && has "$out" "predicted 3 cases" && [ -f "$TMP/pred/Odd_001.nii.gz" ] && [ -f "$TMP/pred/DemoBrain_005.nii.gz" ]'
cat >"$TMP/geom.py" <<'PY'
import sys, nibabel as nib, numpy as np
a, b = nib.load(sys.argv[1]), nib.load(sys.argv[2])
assert a.shape == b.shape, (a.shape, b.shape)
assert np.allclose(a.affine, b.affine, atol=1e-4), (a.affine, b.affine)
assert b.get_data_dtype() == np.uint8, b.get_data_dtype()
v = np.asanyarray(b.dataobj)
assert v.max() <= 4
print("geometry ok", a.shape, "".join(nib.aff2axcodes(b.affine)))
PY
run python3 "$TMP/geom.py" "$TMP/in/Odd_001_0000.nii.gz" "$TMP/pred/Odd_001.nii.gz"
check "the non-RAS prediction has its input's shape, affine, u8" eval '[ $rc -eq 0 ] && has "$out" "geometry ok"'
run python3 "$TMP/geom.py" "$S/imagesTs/DemoBrain_005_0000.nii.gz" "$TMP/pred/DemoBrain_005.nii.gz"
check "the RAS prediction has its input's shape and affine" eval '[ $rc -eq 0 ] && has "$out" "geometry ok"'
run python3 -c "import nibabel as nib, numpy as np, sys; a = np.asanyarray(nib.load(sys.argv[1]).dataobj); b = np.asanyarray(nib.load(sys.argv[2]).dataobj); print('same' if (a[::-1, ::-1, :].transpose(1, 0, 2) == b).all() else 'differ')" "$TMP/pred/DemoBrain_005.nii.gz" "$TMP/pred/Odd_001.nii.gz"
check "the reoriented input gets the reoriented prediction" eval '[ $rc -eq 0 ] && has "$out" "same"'
run "$AXON" inspect --json "$TMP/pred/DemoBrain_005.nii.gz"
check "axon inspect reads the prediction" eval '[ $rc -eq 0 ] && has "$out" "\"dtype\": \"u8\""'

# evaluation
mkdir -p "$TMP/pred_ts"
cp "$TMP/pred"/DemoBrain_*.nii.gz "$TMP/pred_ts/"
run "$AXON" evaluate --pred "$TMP/pred_ts" --ref "$S/labelsTs" --classes 5 -o "$TMP/eval.json"
check "axon evaluate: per-case and mean Dice and HD95, JSON written" eval '[ $rc -eq 0 ] && has "$out" "\"dice_mean\"" && grep -q "\"hd95_mean\"" "$TMP/eval.json" && [ "$(grep -c "\"name\": \"DemoBrain_" "$TMP/eval.json")" -eq 2 ]'
run "$AXON" evaluate --pred "$TMP/pred_ts" --ref "$S/labelsTr" --classes 5
check "evaluate: a missing prediction names both files" eval '[ $rc -eq 1 ] && has "$err" "no prediction $TMP/pred_ts/DemoBrain_001.nii.gz for the reference $S/labelsTr/DemoBrain_001.nii.gz"'

# a broken case is skipped and reported, the rest go on
cp -r "$TMP/in" "$TMP/in_broken"
head -c 300 "$S/imagesTs/DemoBrain_005_0000.nii.gz" >"$TMP/in_broken/Broken_001_0000.nii.gz"
run "$AXON" predict -i "$TMP/in_broken" -o "$TMP/pred_b" -m "$TMP/ref/checkpoints/latest.safetensors" --no-mirror
check "predict skips a broken case, reports it and goes on" eval '[ $rc -eq 0 ] && has "$out" "predicted 3 cases" && has "$out" "1 skipped" && has "$err" "skipped Broken_001" && has "$err" "Broken_001_0000.nii.gz" && [ ! -f "$TMP/pred_b/Broken_001.nii.gz" ]'

# bad inputs: one clear error naming the file
cp -r "$TMP/in" "$TMP/in_mixed"
cp "$TMP/in/Odd_001_0000.nii.gz" "$TMP/in_mixed/Odd_001_0001.nii.gz"
run "$AXON" predict -i "$TMP/in_mixed" -o "$TMP/pred_m" -m "$TMP/ref"
check "mixed channel counts: an error naming the file" eval '[ $rc -eq 1 ] && has "$err" "$TMP/in_mixed/Odd_001_0001.nii.gz" && has "$err" "mixed channel counts" && [ "$(printf "%s\n" "$err" | wc -l)" -eq 1 ]'
run "$AXON" predict -i "$TMP/in" -o "$TMP/pred_x" -m "$MAE"
check "predict with a pre-training checkpoint: not a fine-tuned model" eval '[ $rc -eq 1 ] && has "$err" "$MAE: no \"task\""'
cat >"$TMP/noplan.lua" <<LUA
local ax = require "axon"
local net = ax.arch("plain_unet", { preset = "tiny", n_stages = 3, features = {4, 8, 16} }):build{ in_channels = 1, out_channels = 1 }
net:save("$TMP/noplan.safetensors")
LUA
run "$AXON" run "$TMP/noplan.lua"
run "$AXON" finetune --data "$C" --out "$TMP/e1" $FT $NET --init "$TMP/noplan.safetensors" --steps 1
check "a checkpoint without an adaptation plan: error naming it" eval '[ $rc -eq 1 ] && has "$err" "$TMP/noplan.safetensors: no adaptation plan"'
run "$AXON" finetune --data "$C" --out "$TMP/e2" $FT --arch resenc_unet --arch.preset tiny --init "$MAE" --steps 1
check "a checkpoint of an incompatible architecture: error naming it and the keys" eval '[ $rc -eq 1 ] && has "$err" "$MAE" && has "$err" "encoder."'
# a label whose geometry differs from its image
cp -r "$S" "$TMP/geo"
python3 -c "import nibabel as nib, sys; l = nib.load(sys.argv[1]); a = l.affine.copy(); a[0, 3] += 20; nib.save(nib.Nifti1Image(l.get_fdata().astype('uint8'), a), sys.argv[1])" "$TMP/geo/labelsTr/DemoBrain_002.nii.gz"
run "$AXON" finetune --data.root "$TMP/geo" --out "$TMP/e3" $FT $NET $SPLIT --steps 1
check "a label whose geometry differs from its image: the case is skipped naming the file" eval '[ $rc -eq 0 ] && has "$err" "DemoBrain_002 skipped" && has "$err" "$TMP/geo/labelsTr/DemoBrain_002.nii.gz"'
run "$AXON" finetune --data "$C" --out "$TMP/e4" $FT $NET --schedule zigzag --steps 2
check "unknown schedule lists the valid ones" eval '[ $rc -eq 1 ] && has "$err" "unknown schedule '"'"'zigzag'"'"'; valid: warmup_poly, sawtooth"'
run "$AXON" finetune --data "$C" --out "$TMP/e5" --task segmentation --patch 32,32,32 --steps 1
check "no arch and no init" eval '[ $rc -eq 1 ] && has "$err" "give '"'"'arch'"'"', or '"'"'init'"'"'"'

finish
