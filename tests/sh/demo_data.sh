#!/usr/bin/env bash
# `axon data demo`: layout, CSV columns, dataset.json, label values,
# determinism for a seed, and errors. Needs Debian's mricron-data
# (scripts/lib.sh installs it); python3 with nibabel reads the volumes back.
. "$abs_top_srcdir/tests/sh/lib.sh"

TEMPLATES=/usr/share/mricron/templates
if [ ! -f "$TEMPLATES/ch2.nii.gz" ]; then
    echo "skip: $TEMPLATES/ch2.nii.gz missing (install mricron-data)"
    exit 77
fi

D="$TMP/demo"
run "$AXON" data demo "$D" --subjects 4 --seg-train 2 --seg-test 1 --seed 5 --spacing 4
check "demo generates and reports both sets" eval '[ $rc -eq 0 ] && has "$out" "4 subjects" && has "$out" "2 training and 1 test"'

P="$D/pretrain"
S="$D/seg/Dataset001_DemoBrain"
n_img=$(find "$P/OpenMind" -path '*/anat/*.nii.gz' ! -path '*__Data*' | wc -l)
n_fb=$(find "$P/OpenMind" -path '*__Data/fb_mask.nii.gz' | wc -l)
n_def=$(find "$P/OpenMind" -path '*__Data/deface_mask.nii.gz' | wc -l)
check "OpenMind layout: 4 scans, each with fb_mask and deface_mask" eval '[ "$n_img" -eq 4 ] && [ "$n_fb" -eq 4 ] && [ "$n_def" -eq 4 ]'
check "scans live in dsXXXXXX/sub-NNN/anat" eval 'ls "$P"/OpenMind/ds00000[1-3]/sub-00[1-4]/anat/sub-00[1-4]_*.nii.gz >/dev/null'
check "nnU-Net raw layout" eval '[ -f "$S/dataset.json" ] && [ -f "$S/imagesTr/DemoBrain_001_0000.nii.gz" ] && [ -f "$S/labelsTr/DemoBrain_002.nii.gz" ] && [ -f "$S/imagesTs/DemoBrain_003_0000.nii.gz" ] && [ -f "$S/labelsTs/DemoBrain_003.nii.gz" ]'
check "no temporary files left" eval '[ -z "$(find "$D" -name "*.tmp*" -o -name ".*" -type f)" ]'

# Contents, read back with nibabel.
run python3 - "$D" <<'EOF'
import csv, json, os, sys
import numpy as np
import nibabel as nib

root = sys.argv[1]
pre = os.path.join(root, "pretrain")
rows = list(csv.DictReader(open(os.path.join(pre, "openneuro_metadata.csv"))))
need = ["image_path", "anon_mask_path", "anat_mask_path", "modality", "unique_id", "image_quality_score"]
missing = [c for c in need if c not in rows[0]]
assert not missing, f"CSV lacks {missing}"
assert len(rows) == 4, len(rows)
for r in rows:
    assert r["unique_id"][:8] == r["image_path"][:8], r  # nnssl: dataset id = unique_id[:8]
    assert r["modality"] in ("T1w", "T2w", "FLAIR", "PDw"), r["modality"]
    q = float(r["image_quality_score"])
    assert 1 <= q <= 5, q
    img = nib.load(os.path.join(pre, "OpenMind", r["image_path"]))
    fb = np.asarray(nib.load(os.path.join(pre, "OpenMind", r["anat_mask_path"])).dataobj)
    anon = np.asarray(nib.load(os.path.join(pre, "OpenMind", r["anon_mask_path"])).dataobj)
    x = np.asarray(img.dataobj).astype(float)
    assert fb.shape == x.shape == anon.shape, (fb.shape, x.shape)
    assert set(np.unique(fb)) <= {0, 1} and set(np.unique(anon)) <= {0, 1}
    assert fb.mean() > 0.2, "head mask nearly empty"
    # the head is brighter than the air around it, and defaced voxels are 0
    assert x[fb == 1].mean() > 3 * x[fb == 0].mean(), r["image_path"]
    assert np.all(x[anon == 1] == 0)
    assert max(x.shape) <= 60 and min(x.shape) >= 20, x.shape   # 4-5.4 mm voxels, 78-100% of the head
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")

seg = os.path.join(root, "seg", "Dataset001_DemoBrain")
ds = json.load(open(os.path.join(seg, "dataset.json")))
assert ds["labels"] == {"background": 0, "brain": 1, "cerebrum_left": 2, "cerebrum_right": 3, "cerebellum": 4}, ds["labels"]
assert ds["channel_names"] == {"0": "T1"} and ds["file_ending"] == ".nii.gz" and ds["numTraining"] == 2
for split, cases in (("Tr", ["DemoBrain_001", "DemoBrain_002"]), ("Ts", ["DemoBrain_003"])):
    for c in cases:
        lab = nib.load(os.path.join(seg, "labels" + split, c + ".nii.gz"))
        img = nib.load(os.path.join(seg, "images" + split, c + "_0000.nii.gz"))
        l = np.asarray(lab.dataobj)
        assert l.dtype == np.uint8 and l.shape == img.shape, (l.dtype, l.shape, img.shape)
        assert set(np.unique(l)) == {0, 1, 2, 3, 4}, np.unique(l)
        assert np.allclose(lab.affine, img.affine)
        # left grey matter lies left of right grey matter (RAS: x grows to the right)
        assert np.nonzero(l == 2)[0].mean() < np.nonzero(l == 3)[0].mean()
print("contents ok")
EOF
check "CSV columns, masks, label values and geometry" eval '[ $rc -eq 0 ] && has "$out" "contents ok"'

# The same seed gives the same data; another seed does not.
run "$AXON" data demo "$TMP/again" --subjects 4 --seg-train 2 --seg-test 1 --seed 5 --spacing 4
same=yes
for f in $(cd "$D" && find . -type f | sort); do
    cmp -s <(gzip -dcf "$D/$f") <(gzip -dcf "$TMP/again/$f") || same="no: $f"
done
check "same seed, same files" eval '[ $rc -eq 0 ] && [ "$same" = yes ]'
run "$AXON" data demo "$TMP/other" --subjects 1 --seg-train 1 --seg-test 0 --seed 6 --spacing 4
check "another seed, other images" eval '[ $rc -eq 0 ] && ! cmp -s <(gzip -dc "$D/seg/Dataset001_DemoBrain/imagesTr/DemoBrain_001_0000.nii.gz") <(gzip -dc "$TMP/other/seg/Dataset001_DemoBrain/imagesTr/DemoBrain_001_0000.nii.gz")'

# axon inspect reads the outputs (when this build has it).
if "$AXON" help inspect >/dev/null 2>&1; then
    run "$AXON" inspect "$S/labelsTr/DemoBrain_001.nii.gz"
    check "axon inspect reads a label file" eval '[ $rc -eq 0 ] && has "$out" "u8"'
    img=$(find "$P/OpenMind" -path '*/anat/*.nii.gz' ! -path '*__Data*' | head -n 1)
    run "$AXON" inspect "$img" --json
    check "axon inspect reads a scan" eval '[ $rc -eq 0 ] && has "$out" "\"shape\"" && has "$out" "i16"'
fi

# End to end: both sets preprocess into caches, and ax.loader reads one
# (tests/lua/loader.lua: shapes, labels, 1 vs 3 threads, seek, errors).
if "$AXON" help preprocess >/dev/null 2>&1; then
    run "$AXON" preprocess --format openmind --root "$P" -o "$TMP/cache_pre" --quiet
    check "the pre-training set preprocesses (openmind)" eval '[ $rc -eq 0 ] && has "$out" "4 done" && has "$out" "0 failed"'
    run "$AXON" preprocess --format nnunet --root "$S" -o "$TMP/cache_seg" --quiet
    check "the segmentation set preprocesses (nnunet)" eval '[ $rc -eq 0 ] && has "$out" "3 done" && has "$out" "0 failed"'
    run "$AXON" run "$abs_top_srcdir/tests/lua/loader.lua" "$TMP/cache_seg"
    check "ax.loader on the demo cache" eval '[ $rc -eq 0 ] && has "$out" "shapes ok" && has "$out" "determinism ok" && has "$out" "errors ok"'
fi

# Errors: one line naming the problem, usage errors exit 2.
run "$AXON" data demo "$TMP/x" --templates "$TMP/nowhere"
check "missing templates name the file" eval '[ $rc -eq 1 ] && has "$err" "ch2.nii.gz" && has "$err" "mricron-data"'
run "$AXON" data demo "$TMP/x" --spacing 0
check "bad spacing is a usage error" eval '[ $rc -eq 2 ] && has "$err" "--spacing"'
run "$AXON" data demo "$TMP/x" --subjects many
check "bad count is a usage error" eval '[ $rc -eq 2 ] && has "$err" "--subjects '"'"'many'"'"'"'
run "$AXON" data demo
check "missing output folder" eval '[ $rc -eq 2 ] && has "$err" "output folder"'
run "$AXON" data frobnicate
check "unknown action" eval '[ $rc -eq 2 ] && has "$err" "unknown action"'
touch "$TMP/file"
run "$AXON" data demo "$TMP/file/sub" --subjects 1 --seg-train 0 --seg-test 0
check "output under a file is refused" eval '[ $rc -eq 1 ] && has "$err" "$TMP/file"'
run "$AXON" help data
check "help data documents the labels" eval '[ $rc -eq 0 ] && has "$out" "cerebellum" && has "$out" "--seg-train"'

finish
