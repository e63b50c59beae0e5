#!/usr/bin/env bash
# Run every axon benchmark in tests/bench against its PyTorch counterpart and
# print a Markdown table of times and peak memory. See tests/bench/README.md.
#
#     tests/bench/run_all.sh [--threads N] [--rounds R] [--unet-steps K] [--only LIST]
#                            [--torch-env ASSIGNMENTS] [--build DIR] [--logs DIR]
#
# Needs a built tree in ./build (libaxon in build/sdk/.libs), gcc, python3
# with torch, and GNU time (/usr/bin/time; `apt-get install -y time`).
set -u
. "$(dirname "$0")/bench_lib.sh"

usage() {
    cat <<'EOF'
usage: tests/bench/run_all.sh [options]

Builds every tests/bench/*.c against the tree's build, then runs each axon
benchmark and its PyTorch counterpart (tests/bench/*.py) with the same
arguments and thread count, alternating axon and torch runs (R rounds each)
so that background load hits both alike; keeps each side's best median
(bench_norm reports a best-of itself) and prints a Markdown table.

options:
  --threads N      threads for both libraries (default 2)
  --rounds R       runs per side and benchmark (default 3)
  --unet-steps K   timed U-Net training steps per run (default 10)
  --only LIST      comma-separated subset of: conv,convT,matmul,norm,unet,nifti
  --torch-env ASSIGNMENTS
                   space-separated VAR=VALUE settings for the torch runs only,
                   e.g. "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" (glibc >= 2.35:
                   transparent huge pages for malloc's large blocks, as libaxon
                   asks for its own large tensors); by default both sides run
                   as shipped
  --build DIR      configured and built tree (default ./build; must contain
                   sdk/.libs/libaxon.so)
  --logs DIR       keep every run's output there (default: a temporary
                   directory, removed at exit)
  -h, --help       this text

exit status: 0 all ran, 1 some benchmark failed, 2 usage error or no build.
EOF
}

threads=2 rounds=3 unet_steps=10 only="conv,convT,matmul,norm,unet,nifti" build=build logs="" torch_env=""
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --rounds) rounds=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --unet-steps) unet_steps=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --only) only=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --build) build=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --logs) logs=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --torch-env) torch_env=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run_all.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
ax_bench_posint run_all.sh "--threads, --rounds and --unet-steps" "$threads" "$rounds" "$unet_steps"

# Everything below runs from the source tree root.
root=$(cd "$(dirname "$0")/../.." && pwd) || exit 2
cd "$root" || exit 2
case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -d "$build" ] || [ ! -e "$build/sdk/.libs/libaxon.so" ]; then
    echo "run_all.sh: no built tree at $build (want $build/sdk/.libs/libaxon.so)." >&2
    echo "  Build it first: mkdir -p build && cd build && ../configure && make -j\$(nproc)" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "run_all.sh: python3 not found" >&2; exit 2; }
python3 -c 'import torch' 2>/dev/null || { echo "run_all.sh: python3 cannot import torch" >&2; exit 2; }

gnu_time=""
if /usr/bin/time -v true >/dev/null 2>&1; then
    gnu_time=/usr/bin/time
else
    echo "run_all.sh: GNU time not found: peak RSS of bench_conv/bench_norm will read n/a" >&2
    echo "  (install it with: apt-get install -y time)" >&2
fi

if [ -n "$logs" ]; then
    mkdir -p "$logs" || exit 2
    work=$logs
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/axon-bench.XXXXXX") || exit 2
    trap 'rm -rf "$work"' EXIT
fi
export OMP_NUM_THREADS=$threads
failed=0

say() { echo "$*" >&2; }

# ---- build ---------------------------------------------------------------
# Link against a snapshot of libaxon taken now, so that a rebuild of the tree
# while the benchmarks run cannot mix library versions between rows.
mkdir -p "$work/lib" || exit 2
if ! cp -L "$build"/sdk/.libs/libaxon.so "$build"/sdk/.libs/libaxon.so.[0-9]* "$work/lib/"; then
    echo "run_all.sh: cannot copy libaxon from $build/sdk/.libs" >&2
    exit 2
fi
lib_date=$(date -r "$build/sdk/.libs/libaxon.so" '+%Y-%m-%d %H:%M:%S' 2>/dev/null)
say "libaxon snapshot: $build, built ${lib_date:-?}"
for src in tests/bench/*.c; do
    name=$(basename "$src" .c)
    say "building $name"
    if ! gcc -O2 -fopenmp -Isdk/include -I"$build/sdk/include" "$src" -o "$work/$name" \
        -L"$work/lib" -laxon -lm -Wl,-rpath,"$work/lib" 2>"$work/$name.build.log"; then
        say "run_all.sh: building $name failed:"
        cat "$work/$name.build.log" >&2
        failed=1
    fi
done

# ---- running and parsing -------------------------------------------------
# run SIDE NAME TAG ARGS...: runs the axon binary (SIDE=axon) or the Python
# script (SIDE=torch) of bench NAME under GNU time; output in $work/TAG.out,
# time's report in $work/TAG.time.
run() {
    local side=$1 name=$2 tag=$3
    shift 3
    local cmd
    if [ "$side" = axon ]; then
        [ -x "$work/$name" ] || return 1
        cmd=("$work/$name" "$@")
    else
        cmd=(python3 "tests/bench/$name.py" "$@")
        # word splitting on purpose: "A=1 B=2" -> env A=1 B=2 python3 ...
        # shellcheck disable=SC2206
        [ -n "$torch_env" ] && cmd=(env $torch_env "${cmd[@]}")
    fi
    if [ -n "$gnu_time" ]; then
        "$gnu_time" -v -o "$work/$tag.time" "${cmd[@]}" >"$work/$tag.out" 2>"$work/$tag.err"
    else
        : >"$work/$tag.time"
        "${cmd[@]}" >"$work/$tag.out" 2>"$work/$tag.err"
    fi
}

# GNU time's peak RSS of run TAG in MiB (empty if unknown).
time_rss() {
    awk -F': *' '/Maximum resident set size/ { printf "%d", $2 / 1024 }' "$work/$1.time" 2>/dev/null
}

# parse KIND TAG -> "ms peak_mib baseline_mib" (fields "-" when unknown).
#   conv:   bench_conv's "total median X ms" line; RSS from GNU time
#   matmul: "median X ms, ... peak RSS Z MiB"
#   norm:   bench_norm's fused / F.instance_norm + leaky_relu_ line, "fwd+bwd X ms"
#           (a best-of); RSS from GNU time
#   nifti:  "threads: median X ms, ... peak RSS Z MiB" (bench_nifti vs nibabel + numpy)
#   unet:   the "N steps: median X ms, ... peak RSS Z MiB (before training W MiB)"
#           line (the warm-up line before it has a peak RSS too)
parse() {
    local kind=$1 out="$work/$2.out" ms="" peak="" base=""
    case "$kind" in
        conv) ms=$(awk '$1 == "total" && $2 == "median" { print $3; exit }' "$out") ;;
        matmul) ms=$(sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' "$out" | head -n 1)
                peak=$(sed -n 's/.*peak RSS \([0-9]*\) MiB.*/\1/p' "$out" | head -n 1) ;;
        nifti) ms=$(sed -n 's/.*threads: median \([0-9.]*\) ms.*/\1/p' "$out" | head -n 1)
               peak=$(sed -n 's/.*peak RSS \([0-9]*\) MiB.*/\1/p' "$out" | head -n 1) ;;
        norm) ms=$(grep -E 'fused ax_instance_norm_leaky_relu|F\.instance_norm \+ leaky_relu_' "$out" |
                   sed -n 's/.*fwd+bwd *\([0-9.]*\) ms.*/\1/p' | head -n 1) ;;
        unet) local line
              line=$(grep ' steps: median ' "$out" | head -n 1)
              ms=$(echo "$line" | sed -n 's/.* steps: median \([0-9.]*\) ms.*/\1/p')
              peak=$(echo "$line" | sed -n 's/.*peak RSS \([0-9]*\) MiB.*/\1/p')
              base=$(echo "$line" | sed -n 's/.*before training \([0-9]*\) MiB.*/\1/p') ;;
    esac
    [ -n "$peak" ] || peak=$(time_rss "$2")
    echo "${ms:--} ${peak:--} ${base:--}"
}

# min / max of two numbers where "-" means unknown
num_min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-") print b; else if (b == "-") print a; else print (a + 0 < b + 0 ? a : b) }'; }
num_max() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-") print b; else if (b == "-") print a; else print (a + 0 > b + 0 ? a : b) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 <= 0) print "n/a"; else printf "%.2f", a / b }'; }
diff_or() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else print a - b }'; }

# Runtime baselines for the benches that do not print one: the peak RSS of a
# process that loads the library and does (almost) nothing — bench_matmul
# with a 1x1 matrix (for torch: the interpreter plus torch).
say "measuring runtime baselines (bench_matmul 1x1)"
base_axon=- base_torch=-
if run axon bench_matmul base.axon "$threads" 1 1; then base_axon=$(parse matmul base.axon | cut -d' ' -f2); fi
if run torch bench_matmul base.torch "$threads" 1 1; then base_torch=$(parse matmul base.torch | cut -d' ' -f2); fi

rows=()
# bench KEY LABEL NAME KIND ARGS...: R alternating rounds, one table row.
bench() {
    local key=$1 label=$2 name=$3 kind=$4
    shift 4
    case ",$only," in *",$key,"*) ;; *) return 0 ;; esac
    local best_a=- best_t=- peak_a=- peak_t=- bl_a=$base_axon bl_t=$base_torch r side res ms peak base
    for r in $(seq 1 "$rounds"); do
        for side in axon torch; do
            local tag="$key.$side.$r"
            if run "$side" "$name" "$tag" "$@"; then
                res=$(parse "$kind" "$tag")
                read -r ms peak base <<<"$res"
                say "[$key] round $r/$rounds $side: $ms ms, peak RSS $peak MiB"
                if [ "$side" = axon ]; then
                    best_a=$(num_min "$best_a" "$ms"); peak_a=$(num_max "$peak_a" "$peak")
                    [ "$base" = - ] || bl_a=$base
                else
                    best_t=$(num_min "$best_t" "$ms"); peak_t=$(num_max "$peak_t" "$peak")
                    [ "$base" = - ] || bl_t=$base
                fi
            else
                say "[$key] round $r/$rounds $side FAILED; its output:"
                tail -n 5 "$work/$tag.out" "$work/$tag.err" >&2 2>/dev/null
                failed=1
            fi
        done
    done
    local ws_a ws_t
    ws_a=$(diff_or "$peak_a" "$bl_a")
    ws_t=$(diff_or "$peak_t" "$bl_t")
    rows+=("| $label | $best_a | $best_t | $(ratio "$best_a" "$best_t") | $peak_a | $peak_t | $(ratio "$peak_a" "$peak_t") | $bl_a | $bl_t | $ws_a | $ws_t | $(ratio "$ws_a" "$ws_t") |")
}

load_before=$(ax_bench_loadavg 2>/dev/null)
bench conv "conv3d fwd+bwd (N=2, 32->32, 64^3, k3, p1)" bench_conv conv "$threads" 2 32 64 5 0
bench convT "conv_transpose3d fwd+bwd k2 s2 (N=2, 32->32, 32^3 -> 64^3)" bench_conv conv "$threads" 2 32 64 5 1
bench matmul "matmul 4096^2 (fwd)" bench_matmul matmul "$threads" 4096 5
bench norm "instance_norm+leaky_relu fwd+bwd 2x32x64^3 (best of 10)" bench_norm norm "$threads" 10
bench nifti "NIfTI read + RAS + z-score, ch2better.nii.gz (vs nibabel + numpy)" bench_nifti nifti "$threads" 10
bench unet "U-Net training step, 2x1x64^3 (median of $unet_steps steps)" bench_unet unet "$threads" 2 64 "$unet_steps"
load_after=$(ax_bench_loadavg 2>/dev/null)

# ---- table ------------------------------------------------------------------
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
echo
echo "Machine: $(nproc) CPUs ($cpu), $threads threads per library, best of $rounds alternating runs per side."
[ -n "$torch_env" ] && echo "torch runs with: $torch_env"
echo "libaxon: $build, built ${lib_date:-?}. Load average (1/5/15 min): before ${load_before:-?}, after ${load_after:-?}."
echo
echo "| benchmark | axon ms | torch ms | time ratio (axon/torch) | axon peak RSS MiB | torch peak RSS MiB | memory ratio | axon baseline MiB | torch baseline MiB | axon working set MiB | torch working set MiB | working-set ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for row in "${rows[@]}"; do echo "$row"; done
echo
echo "Times: best over rounds of each run's median (bench_norm: its best of 10). Peak RSS: the largest"
echo "over rounds. Baseline: RSS before the timed work (U-Net: printed by the bench after building"
echo "the model; others: a bench_matmul 1x1 run, i.e. the runtime alone). Working set = peak - baseline."
[ -n "$logs" ] && echo "Raw outputs: $logs"
exit $failed
