# Shared shell helpers for the benchmark drivers in tests/bench (bench_*.sh,
# run_all.sh). Sourced, not run:
#
#     . "$(dirname "$0")/bench_lib.sh"
#     build=build threads=2
#     ...parse options...
#     ax_bench_posint bench_x.sh "--threads" "$threads"
#     ax_bench_locate               # sets $src, makes $build absolute
#     ax_bench_need_lib bench_x.sh  # exits 2 without $build/sdk/.libs/libaxon.so
#     ax_bench_tmpdir               # sets $tmp, removed at exit
#     ax_bench_cc bench_x "$tmp/bench_x"
#     ax_bench_alternate bench_x "$rounds" "$threads" "$iters"

# ax_bench_posint PROG WHAT VALUE...: exits 2 with "PROG: WHAT take a
# positive integer, got 'V'" unless every VALUE is a positive integer.
ax_bench_posint() {
    local prog=$1 what=$2 v
    shift 2
    for v in "$@"; do
        case "$v" in
            ''|*[!0-9]*|0) echo "$prog: $what take a positive integer, got '$v'" >&2
                           exit 2 ;;
        esac
    done
}

# ax_bench_locate: sets src to the source tree root (two levels above this
# file) and makes $build absolute against it.
ax_bench_locate() {
    src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd) || exit 2
    case "$build" in /*) ;; *) build="$src/$build" ;; esac
}

# ax_bench_need_lib PROG: exits 2 unless $build holds a built libaxon.
ax_bench_need_lib() {
    if [ ! -f "$build/sdk/.libs/libaxon.so" ]; then
        echo "$1: no libaxon in $build/sdk/.libs (build the tree first, or pass --build DIR)" >&2
        exit 2
    fi
}

# ax_bench_tmpdir [TEMPLATE]: sets tmp to a new directory, removed at exit.
ax_bench_tmpdir() {
    tmp=$(mktemp -d ${1:+"$1"}) || exit 2
    trap 'rm -rf "$tmp"' EXIT
}

# ax_bench_cc NAME OUT [FLAG...]: builds tests/bench/NAME.c against
# $src/$build (libaxon found at run time through an rpath) into OUT.
ax_bench_cc() {
    local name=$1 out=$2
    shift 2
    gcc -O2 -std=c11 -I"$src/sdk/include" -I"$build/sdk/include" "$src/tests/bench/$name.c" \
        -L"$build/sdk/.libs" -laxon -Wl,-rpath,"$build/sdk/.libs" -lm -o "$out" "$@"
}

# ax_bench_loadavg: the 1, 5 and 15 minute load averages.
ax_bench_loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ax_bench_alternate NAME ROUNDS ARG...: ROUNDS times, runs $tmp/NAME and
# then tests/bench/NAME.py with the same ARGs, so that background load hits
# both alike; prints everything, framed by the load before and after, and
# appends the outputs to $tmp/axon.txt and $tmp/torch.txt.
ax_bench_alternate() {
    local name=$1 rounds=$2 r
    shift 2
    echo "load before: $(ax_bench_loadavg) ($(nproc) cores)"
    for r in $(seq "$rounds"); do
        echo "-- round $r"
        "$tmp/$name" "$@" | tee -a "$tmp/axon.txt"
        python3 "$src/tests/bench/$name.py" "$@" | tee -a "$tmp/torch.txt"
    done
    echo "load after: $(ax_bench_loadavg)"
}

# ax_bench_best FILE PATTERN: the smallest "fwd+bwd N ms" among FILE's lines
# that contain PATTERN (the best round's median).
ax_bench_best() { grep -F "$2" "$1" | sed -E 's/.*fwd\+bwd +([0-9.]+) ms.*/\1/' | sort -g | head -n1; }
