#!/usr/bin/env bash
# The fused instance_norm + leaky_relu kernels (group_norm_act members)
# against the two-kernel path and PyTorch, in one run: builds
# tests/bench/bench_normact.c against a built tree, then alternates it with
# tests/bench/bench_normact.py (same shape, threads and iterations) for R
# rounds, printing every line, the machine's load before and after, and the
# ratios of the medians (torch / axon fused op).
#
#     tests/bench/bench_normact.sh [--build DIR] [--threads N] [--iters N] [--rounds R]
#
# Needs gcc and python3 with torch. Not run by `make check`.
set -eu
. "$(dirname "$0")/bench_lib.sh"

build=build threads=2 iters=10 rounds=2
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=${2:-}; shift 2 ;;
        --threads) threads=${2:-}; shift 2 ;;
        --iters) iters=${2:-}; shift 2 ;;
        --rounds) rounds=${2:-}; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "bench_normact.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
ax_bench_posint bench_normact.sh "--threads, --iters and --rounds" "$threads" "$iters" "$rounds"
ax_bench_locate
ax_bench_need_lib bench_normact.sh
ax_bench_tmpdir
ax_bench_cc bench_normact "$tmp/bench_normact"

ax_bench_alternate bench_normact "$rounds" "$threads" "$iters"

# the best round's median fwd+bwd of each variant
fused=$(ax_bench_best "$tmp/axon.txt" "op      ax_instance_norm_leaky_relu, fused")
fallback=$(ax_bench_best "$tmp/axon.txt" "op      ax_instance_norm_leaky_relu, fallback")
kfused=$(ax_bench_best "$tmp/axon.txt" "kernels fused members")
kold=$(ax_bench_best "$tmp/axon.txt" "kernels two-kernel path")
torch=$(ax_bench_best "$tmp/torch.txt" "torch F.instance_norm")
awk -v f="$fused" -v o="$fallback" -v kf="$kfused" -v ko="$kold" -v t="$torch" -v th="$threads" 'BEGIN {
    printf "summary (threads %d, fwd+bwd, best round of medians):\n", th
    printf "  kernels: fused %.1f ms, two-kernel %.1f ms: fused is %.2fx faster\n", kf, ko, ko / kf
    printf "  op:      fused %.1f ms, fallback %.1f ms: fused is %.2fx faster\n", f, o, o / f
    printf "  torch:   %.1f ms: axon fused op is %.2fx faster than torch\n", t, t / f
}'
