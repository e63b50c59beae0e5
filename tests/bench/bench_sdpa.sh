#!/usr/bin/env bash
# Fused attention (the sdpa members) against the composite path and
# PyTorch's F.scaled_dot_product_attention, forward + backward, in one run:
# builds tests/bench/bench_sdpa.c against a built tree, then alternates it
# with tests/bench/bench_sdpa.py (same shape, threads and iterations) for R
# rounds, printing every line, the machine's load before and after, and the
# ratios of the best rounds' medians.
#
#     tests/bench/bench_sdpa.sh [--build DIR] [--threads N] [--iters N] [--rounds R] [--len L]
#
# Needs gcc and python3 with torch. Not run by `make check`.
set -eu
. "$(dirname "$0")/bench_lib.sh"

build=build threads=2 iters=5 rounds=2 len=2048
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=${2:-}; shift 2 ;;
        --threads) threads=${2:-}; shift 2 ;;
        --iters) iters=${2:-}; shift 2 ;;
        --rounds) rounds=${2:-}; shift 2 ;;
        --len) len=${2:-}; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "bench_sdpa.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
ax_bench_posint bench_sdpa.sh "--threads, --iters, --rounds and --len" "$threads" "$iters" "$rounds" "$len"
ax_bench_locate
ax_bench_need_lib bench_sdpa.sh
ax_bench_tmpdir
ax_bench_cc bench_sdpa "$tmp/bench_sdpa"

ax_bench_alternate bench_sdpa "$rounds" "$threads" "$iters" "$len"

fused=$(ax_bench_best "$tmp/axon.txt" "axon fused (")
comp=$(ax_bench_best "$tmp/axon.txt" "axon composite (")
torch=$(ax_bench_best "$tmp/torch.txt" "torch F.scaled_dot_product_attention")
awk -v f="$fused" -v c="$comp" -v t="$torch" -v th="$threads" -v l="$len" 'BEGIN {
    printf "summary (B 2, H 8, L = S = %d, E 64, threads %d, fwd+bwd, best round of medians):\n", l, th
    printf "  fused %.1f ms, composite %.1f ms: fused is %.2fx faster\n", f, c, c / f
    printf "  torch %.1f ms: axon fused is %.2fx %s than torch\n", t, (t > f ? t / f : f / t), (t > f ? "faster" : "slower")
}'
