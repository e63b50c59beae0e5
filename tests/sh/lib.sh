# tests/sh/lib.sh — tiny harness for the shell tests. Each test script
# sources this, calls `t NAME COMMAND...`-style checks and ends with
# `finish`, which prints "sh: N passed, M failed" (scripts/test counts it).
set -u
: "${abs_top_builddir:?run through make check}" "${abs_top_srcdir:?run through make check}"
AXON="$abs_top_builddir/host/axon"
TMP=$(mktemp -d /tmp/axon-sh-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
npass=0
nfail=0

# run CMD...: capture stdout, stderr and the exit status in $out $err $rc
run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    out=$(cat "$TMP/out")
    err=$(cat "$TMP/err")
}

# check NAME COND...: COND is a command (usually `test` or has/lacks)
check() {
    local name=$1
    shift
    if "$@"; then
        npass=$((npass + 1))
        echo "ok - $name"
    else
        nfail=$((nfail + 1))
        echo "FAIL - $name"
        echo "  rc=$rc"
        echo "  stdout: $(printf '%s' "$out" | head -n 20)"
        echo "  stderr: $(printf '%s' "$err" | head -n 20)"
    fi
}

has() { case "$1" in *"$2"*) return 0 ;; esac; return 1; }
lacks() { ! has "$1" "$2"; }
first_line() { printf '%s\n' "$1" | head -n 1; }

# A directory with only the good test plugin, for --plugin-path.
good_plugins() {
    mkdir -p "$TMP/good"
    cp "$abs_top_builddir/tests/plugins/.libs/good.so" "$TMP/good/"
    echo "$TMP/good"
}

finish() {
    echo "sh: $npass passed, $nfail failed"
    [ "$nfail" -eq 0 ]
}
