#!/usr/bin/python3
"""Compare `axon inspect --json` with nibabel on real NIfTI files.

usage: inspect_nibabel.py AXON [FILE...]

Without FILEs it checks every .nii/.nii.gz shipped by Debian's
python3-nibabel and mricron-data. For each file, nibabel says what axon must
report: the file's shape, datatype, voxel sizes and axis codes, the affine
of nib.as_closest_canonical(img) (within 1e-4), and min/max/mean/sum of
get_fdata() (sum within 1e-5 relative to sum(|x|), as float32 voxels are
summed). Files axon must refuse (more than 4 dimensions, datatypes it does
not read, NaN/Inf voxels) must fail with one line naming the file; NaN files
are then checked again with --allow-nonfinite against nan-aware statistics.
Prints one line per file; exit 0 all good, 1 any failure, 77 no nibabel.
"""
import json
import subprocess
import sys

try:
    import nibabel as nib
    import numpy as np
except ImportError:
    print("skip: nibabel/numpy not importable by", sys.executable)
    sys.exit(77)

DTYPES = {"uint8": "u8", "int8": "i8", "int16": "i16", "uint16": "u16", "int32": "i32",
          "uint32": "u32", "int64": "i64", "float32": "f32", "float64": "f64"}


def debian_files():
    out = []
    for pkg in ("python3-nibabel", "mricron-data"):
        r = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
        out += [l for l in r.stdout.split() if l.endswith(".nii") or l.endswith(".nii.gz")]
    return sorted(set(out))


def load(path):
    """A plain Nifti1/Nifti2 image (CIFTI files too: their header is NIfTI-2)."""
    img = nib.load(path)
    if isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        return img
    return nib.Nifti2Image.from_filename(path)


def axon(ax, path, *opts):
    r = subprocess.run([ax, "inspect", "--json", *opts, path], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def expect_error(ax, path, words):
    rc, out, err = axon(ax, path)
    lines = err.strip().splitlines()
    if rc != 1 or len(lines) != 1 or not lines[0].startswith("axon: inspect: " + path + ": "):
        return "expected one error line naming the file, got rc=%d stderr=%r" % (rc, err)
    if not any(w in lines[0] for w in words):
        return "error does not say %r: %s" % (words, lines[0])
    return None


def compare(ax, path, img, allow_nonfinite=False):
    rc, out, err = axon(ax, path, *(["--allow-nonfinite"] if allow_nonfinite else []))
    if rc != 0:
        return "axon failed: " + err.strip()
    got = json.loads(out)
    if list(got) != ["shape", "dtype", "spacing", "orientation", "affine", "min", "max", "mean", "sum"]:
        return "keys %s" % list(got)
    shape = list(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    shape += [1] * (3 - len(shape))
    if got["shape"] != shape:
        return "shape %s, nibabel %s" % (got["shape"], shape)
    if got["dtype"] != DTYPES[img.get_data_dtype().name]:
        return "dtype %s, nibabel %s" % (got["dtype"], img.get_data_dtype())
    vs = nib.affines.voxel_sizes(img.affine)
    if not np.allclose(got["spacing"], vs, rtol=1e-5, atol=1e-6):
        return "spacing %s, nibabel %s" % (got["spacing"], vs)
    codes = "".join(c or "?" for c in nib.aff2axcodes(img.affine))
    if got["orientation"] != codes:
        return "orientation %s, nibabel %s" % (got["orientation"], codes)
    can = nib.as_closest_canonical(img)
    if not np.allclose(np.array(got["affine"]), can.affine, rtol=0, atol=1e-4):
        return "RAS affine\n%s\nnibabel\n%s" % (np.array(got["affine"]), can.affine)
    x = np.asarray(img.get_fdata(), dtype=np.float64)
    fin = np.isfinite(x)
    xs = x[fin].astype(np.float32).astype(np.float64)  # axon holds float32 voxels
    s, sabs = xs.sum(), np.abs(xs).sum()
    if abs(got["sum"] - s) > 1e-5 * max(abs(s), sabs, 1e-30):
        return "sum %.17g, nibabel %.17g" % (got["sum"], s)
    for key, ref in (("min", xs.min()), ("max", xs.max()), ("mean", xs.mean())):
        tol = 1e-5 * max(abs(ref), np.abs(xs).mean(), 1e-30)
        if got[key] is None or abs(got[key] - ref) > tol:
            return "%s %r, nibabel %r" % (key, got[key], ref)
    return None


def check(ax, path):
    img = load(path)
    dims = img.header["dim"]
    if dims[0] > 4 and any(int(d) > 1 for d in dims[5:dims[0] + 1]):
        return expect_error(ax, path, ["dimensional"])
    if img.get_data_dtype().name not in DTYPES:
        return expect_error(ax, path, ["unsupported datatype"])
    data = img.get_fdata()
    if not np.isfinite(data).all():
        return expect_error(ax, path, ["NaN or Inf"]) or compare(ax, path, img, allow_nonfinite=True)
    return compare(ax, path, img)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    ax = sys.argv[1]
    files = sys.argv[2:] or debian_files()
    if not files:
        print("FAIL: no NIfTI files found (are python3-nibabel and mricron-data installed?)")
        return 1
    bad = 0
    for f in files:
        why = check(ax, f)
        print(("ok     " if why is None else "FAIL   ") + f + ("" if why is None else ": " + why))
        bad += why is not None
    print("%d files, %d failed" % (len(files), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
