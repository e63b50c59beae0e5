#!/usr/bin/env bash
# `axon inspect`: output against nibabel on the NIfTI files Debian ships
# (python3-nibabel's test data, mricron-data's templates), and bad files.
. "$abs_top_srcdir/tests/sh/lib.sh"

PY=/usr/bin/python3
if ! "$PY" -c 'import nibabel, numpy' 2>/dev/null; then
    echo "skip: $PY cannot import nibabel and numpy (apt-get install python3-nibabel)"
    exit 77
fi

run "$PY" "$abs_top_srcdir/tests/sh/inspect_nibabel.py" "$AXON"
check "inspect --json agrees with nibabel on Debian's NIfTI files" eval '[ $rc -eq 0 ] && has "$out" " 0 failed"'
printf '%s\n' "$out" | grep -v '^ok ' || true

FIX="$abs_top_srcdir/tests/fixtures/nifti"
run "$AXON" inspect "$FIX/las_i16.nii.gz"
check "inspect text: orientation, dtype and RAS affine" eval '[ $rc -eq 0 ] && has "$out" "orientation:  LAS" && has "$out" "dtype:        i16" && has "$out" "RAS affine:"'

printf 'not a nifti file at all, just some text\n' >"$TMP/text.nii"
run "$AXON" inspect "$TMP/text.nii"
check "not NIfTI: one line naming the file, status 1" eval '[ $rc -eq 1 ] && [ "$err" = "axon: inspect: $TMP/text.nii: not a NIfTI file (sizeof_hdr is neither 348 nor 540)" ] && [ -z "$out" ]'

head -c 400 "$FIX/las_i16.nii" >"$TMP/cut.nii"
run "$AXON" inspect --json "$TMP/cut.nii"
check "truncated .nii: one line naming the file" eval '[ $rc -eq 1 ] && [ "$(printf "%s\n" "$err" | wc -l)" -eq 1 ] && has "$err" "axon: inspect: $TMP/cut.nii: truncated"'

head -c 150 "$FIX/las_i16.nii.gz" >"$TMP/cut.nii.gz"
run "$AXON" inspect "$TMP/cut.nii.gz"
check "truncated .nii.gz: one line naming the file" eval '[ $rc -eq 1 ] && [ "$(printf "%s\n" "$err" | wc -l)" -eq 1 ] && has "$err" "axon: inspect: $TMP/cut.nii.gz: truncated"'

run "$AXON" inspect "$TMP/missing.nii.gz"
check "missing file" eval '[ $rc -eq 1 ] && [ "$err" = "axon: inspect: $TMP/missing.nii.gz: No such file or directory" ]'

run "$AXON" inspect
check "no file: usage, status 2" eval '[ $rc -eq 2 ] && has "$err" "usage: axon inspect"'
run "$AXON" inspect --frob x.nii
check "unknown option: status 2" eval '[ $rc -eq 2 ] && has "$err" "--frob"'
run "$AXON" help inspect
check "help inspect lists the JSON keys" eval '[ $rc -eq 0 ] && has "$out" "usage: axon inspect" && has "$out" "orientation"'

finish
