#!/usr/bin/env bash
# `axon preprocess` on the committed fixtures (tests/fixtures/preprocess):
# summary and exit status, resume, broken cases, bad arguments, bad
# datasets; then the Lua bindings (tests/lua/data.lua).
. "$abs_top_srcdir/tests/sh/lib.sh"
F="$abs_top_srcdir/tests/fixtures/preprocess"

run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/c1" --threads 2
check "nnunet: 3 done, the mismatched case reported and skipped, status 0" eval '[ $rc -eq 0 ] &&
  has "$out" "preprocess: 4 cases: 3 done, 0 skipped (up to date), 1 failed -> $TMP/c1/index.json" &&
  has "$out" "failed: c_003: $F/nnunet/labelsTr/c_003.nii.gz: shape [7, 10, 12] differs from"'
check "case files and index written" eval '[ -f "$TMP/c1/c_001.axc" ] && [ -f "$TMP/c1/t_001.axc" ] &&
  [ ! -f "$TMP/c1/c_003.axc" ] && has "$(cat "$TMP/c1/index.json")" "\"format\": \"axon-cache\""'
check "no temporary files left" eval '[ -z "$(ls "$TMP/c1" | grep tmp)" ]'
check "progress: one plain line per case when not a terminal" eval 'has "$err" "c_001 done" && has "$err" "[4/4]" &&
  has "$err" "c_003 failed: $F/nnunet/labelsTr/c_003.nii.gz"'

run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/c1"
check "rerun: finished cases are skipped" eval '[ $rc -eq 0 ] && has "$out" "0 done, 3 skipped (up to date), 1 failed" &&
  has "$err" "c_001 up to date"'
run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/c1" --spacing 1,1,1 -q
check "another spacing: done again, quietly" eval '[ $rc -eq 0 ] && has "$out" "3 done, 0 skipped" && [ -z "$err" ]'
run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/c1" --spacing 1 -q
check "one spacing value is isotropic: the same parameters" eval '[ $rc -eq 0 ] && has "$out" "0 done, 3 skipped"'

run "$AXON" preprocess --format openmind --root "$F/openmind" -o "$TMP/om" --max-quality 3 --mask-norm
check "openmind: quality filter and masks" eval '[ $rc -eq 0 ] && has "$out" "1 case: 1 done" &&
  [ -f "$TMP/om/ds000001_sub-01_T1w.axc" ]'
run "$AXON" preprocess --format openmind --root "$F/openmind" -o "$TMP/om2" --exclude-modality T1w,FLAIR -q
check "openmind: modality exclusion" eval '[ $rc -eq 0 ] && [ -f "$TMP/om2/ds000001_sub-02_T2w.axc" ] &&
  [ ! -f "$TMP/om2/ds000001_sub-01_T1w.axc" ]'
run "$AXON" preprocess --format nifti-dir --root "$F/nnunet" --glob 'imagesTr/*' -o "$TMP/nd" -q
check "nifti-dir with a glob" eval '[ $rc -eq 0 ] && has "$out" "3 cases: 3 done"'

# bad datasets: one line naming the file, status 1
mkdir -p "$TMP/bad"
cp -r "$F/nnunet" "$TMP/bad/nn"
chmod -R u+w "$TMP/bad/nn" # the source tree is read-only under distcheck
rm "$TMP/bad/nn/labelsTr/c_002.nii.gz"
run "$AXON" preprocess --format nnunet --root "$TMP/bad/nn" -o "$TMP/c2"
check "missing label file: status 1, names the file" eval '[ $rc -eq 1 ] &&
  [ "$err" = "axon: preprocess: nnunet: case '"'"'c_002'"'"': missing label file $TMP/bad/nn/labelsTr/c_002.nii.gz" ]'
printf '{"channel_names": {"0": "T1"}, "labels": {"background": 0}, "numTraining": 2, "file_ending": ".nii.gz"}' \
    >"$TMP/bad/nn/dataset.json"
cp "$F/nnunet/labelsTr/c_002.nii.gz" "$TMP/bad/nn/labelsTr/"
run "$AXON" preprocess --format nnunet --root "$TMP/bad/nn" -o "$TMP/c2"
check "numTraining mismatch" eval '[ $rc -eq 1 ] && has "$err" "dataset.json: numTraining is 2 but" && has "$err" "has 3 cases"'
printf '{"channel_names": {"0": "T1"},\n "labels": }' >"$TMP/bad/nn/dataset.json"
run "$AXON" preprocess --format nnunet --root "$TMP/bad/nn" -o "$TMP/c2"
check "bad dataset.json names file and line" eval '[ $rc -eq 1 ] && has "$err" "$TMP/bad/nn/dataset.json:2:"'
mkdir -p "$TMP/bad/om"
printf 'image_path,modality,image_quality_score\r\nx.nii.gz,T1w,1\r\n' >"$TMP/bad/om/openneuro_metadata.csv"
run "$AXON" preprocess --format openmind --root "$TMP/bad/om" -o "$TMP/c3"
check "CSV without a required column" eval '[ $rc -eq 1 ] &&
  has "$err" "$TMP/bad/om/openneuro_metadata.csv: missing required column '"'"'anon_mask_path'"'"'"'
mkdir -p "$TMP/bad/broken"
printf 'not a nifti file' >"$TMP/bad/broken/a.nii"
printf 'not a nifti file either' >"$TMP/bad/broken/b.nii.gz"
run "$AXON" preprocess --format nifti-dir --root "$TMP/bad/broken" -o "$TMP/c4" -q
check "every case broken: status 1 with reasons" eval '[ $rc -eq 1 ] && has "$out" "2 failed" &&
  has "$out" "failed: a: " && has "$out" "a.nii" && has "$err" "every case failed"'

# bad arguments: status 2
run "$AXON" preprocess --format nnunet --root "$F/nnunet"
check "missing -o" eval '[ $rc -eq 2 ] && has "$err" "missing -o CACHE"'
run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/x" --spacing 1,0,1
check "bad --spacing" eval '[ $rc -eq 2 ] && has "$err" "--spacing '"'"'1,0,1'"'"'"'
run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/x" --spacing 1,1
check "--spacing needs three values" eval '[ $rc -eq 2 ] && has "$err" "three positive numbers"'
run "$AXON" preprocess --format dicom --root "$F/nnunet" -o "$TMP/x"
check "unknown format" eval '[ $rc -eq 2 ] && has "$err" "unknown --format '"'"'dicom'"'"'"'
run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/x" --threads lots
check "bad --threads" eval '[ $rc -eq 2 ] && has "$err" "--threads '"'"'lots'"'"'"'
run "$AXON" preprocess --format nnunet --root "$F/nnunet" -o "$TMP/x" --frobnicate
check "unknown option" eval '[ $rc -eq 2 ] && has "$err" "unknown option '"'"'--frobnicate'"'"'"'
run "$AXON" preprocess --format nnunet --root
check "option without a value" eval '[ $rc -eq 2 ] && has "$err" "--root needs a value"'
run "$AXON" help preprocess
check "help preprocess" eval '[ $rc -eq 0 ] && has "$out" "axon preprocess --format F --root DIR -o CACHE"'

# the Lua bindings
run "$AXON" run "$abs_top_srcdir/tests/lua/data.lua" "$F" "$TMP/lua"
check "ax.dataset, ax.preprocess, ax.cache_list from Lua" eval '[ $rc -eq 0 ] && has "$out" "data ok"'

finish
