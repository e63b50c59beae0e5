#!/usr/bin/env bash
# Loader benchmark: the reference MAE pre-training pipeline (160^3 patches
# from a 1 mm brain, `spatial` rotation+scaling with p 0.2 each, `mirror`)
# with axon's loader on 1 thread and on all CPUs, side by side with
# batchgenerators and batchgeneratorsv2 (single process) on the same case,
# in one run. Prints a Markdown table; see tests/bench/README.md.
#
#     tests/bench/bench_loader.sh [--build DIR] [--steps N] [--patch P] [--threads LIST] [--rounds R]
#
# The input is Colin27 at 0.5 mm (mricron-data's ch2better.nii.gz),
# preprocessed by `axon preprocess` to 1 mm (cropped, z-scored): one case
# of about 150x185x160 voxels. Needs a built tree, gcc, python3 with
# numpy, torch, batchgenerators and batchgeneratorsv2.
set -u
. "$(dirname "$0")/bench_lib.sh"
build=build steps=10 patch=160 threads="1,$(nproc)" rounds=2
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=${2:-}; shift 2 || exit 2 ;;
        --steps) steps=${2:-}; shift 2 || exit 2 ;;
        --patch) patch=${2:-}; shift 2 || exit 2 ;;
        --threads) threads=${2:-}; shift 2 || exit 2 ;;
        --rounds) rounds=${2:-}; shift 2 || exit 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_loader.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
ax_bench_locate
[ -x "$build/host/axon" ] && [ -f "$build/sdk/.libs/libaxon.so" ] ||
    { echo "bench_loader.sh: no built tree in $build (--build DIR)" >&2; exit 2; }
template=/usr/share/mricron/templates/ch2better.nii.gz
[ -f "$template" ] || { echo "bench_loader.sh: $template missing (apt-get install mricron-data)" >&2; exit 2; }

ax_bench_tmpdir /tmp/axon-bench-loader-XXXXXX
mkdir -p "$tmp/raw"
cp "$template" "$tmp/raw/"
"$build/host/axon" preprocess --format nifti-dir --root "$tmp/raw" --spacing 1,1,1 -o "$tmp/cache" --quiet >/dev/null ||
    { echo "bench_loader.sh: preprocessing failed" >&2; exit 1; }
ax_bench_cc bench_loader "$tmp/bench_loader" -D_DEFAULT_SOURCE -ldl ||
    { echo "bench_loader.sh: cannot build bench_loader.c" >&2; exit 1; }

# Alternate the two sides so background load hits both alike; keep each
# configuration's best round.
: >"$tmp/all"
for r in $(seq "$rounds"); do
    "$tmp/bench_loader" "$tmp/cache" "$build/plugins/augs" "$steps" "$patch" "$threads" | tee -a "$tmp/all" >&2
    python3 "$src/tests/bench/bench_loader.py" "$tmp/cache/ch2better.axc" --steps "$steps" --patch "$patch" |
        tee -a "$tmp/all" >&2
done

python3 - "$tmp/all" "$patch" "$(nproc)" <<'EOF'
import re, sys
best = {}
for line in open(sys.argv[1]):
    m = re.match(r"(.+?): \d+ patches in [\d.]+ s: ([\d.]+) patches/s wall, ([\d.]+) patches/CPU-s", line)
    if m:
        name, wall, cpu = m.group(1), float(m.group(2)), float(m.group(3))
        if name not in best or wall > best[name][0]:
            best[name] = (wall, cpu)
refs = [(k.split(" (")[0], v[1]) for k, v in best.items() if k.startswith("batchgenerators")]
print(f"\n{sys.argv[2]}^3 patches, spatial (rot/scale p 0.2) + mirror, {sys.argv[3]} CPUs\n")
print("| pipeline | patches/s (wall) | patches per CPU-second | " +
      " | ".join(f"per core vs {r}" for r, _ in refs) + " |")
print("|---|---:|---:|" + "---:|" * len(refs))
for name, (wall, cpu) in best.items():
    ratios = " | ".join(f"{cpu / r:.1f}x" for _, r in refs)
    print(f"| {name} | {wall:.2f} | {cpu:.2f} | {ratios} |")
EOF
