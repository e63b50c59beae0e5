# scripts/lib.sh — shared by scripts/demo and scripts/test: install what a
# fresh Debian 12 machine lacks, then configure and build out of tree.
# Source it; do not run it.

AX_DEBS="build-essential autoconf automake libtool pkgconf make \
liblua5.4-dev libnifti2-dev libdnnl-dev libjansson-dev zlib1g-dev libcmocka-dev \
python3-nibabel mricron-data python3-numpy chromium"

ax_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Install the Debian packages that are missing (as root, or through sudo).
ax_install_deps() {
    local missing=() p
    for p in $AX_DEBS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    ax_say "installing Debian packages: ${missing[*]}"
    local sudo=
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || { echo "axon: apt-get update failed" >&2; return 1; }
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { echo "axon: apt-get install ${missing[*]} failed" >&2; return 1; }
}

# ax_build DIR [configure args...]: autoreconf when needed, configure DIR
# when its flags changed or it was never configured, then make.
ax_build() {
    local dir=$1
    shift
    local top
    top=$(pwd)
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
        ax_say "autoreconf"
        autoreconf -fi >/dev/null 2>&1 || autoreconf -fi || return 1
    fi
    mkdir -p "$dir"
    local want="$*"
    if [ ! -f "$dir/Makefile" ] || [ "$(cat "$dir/.axon-configure-args" 2>/dev/null)" != "$want" ]; then
        ax_say "configure $want (in $dir)"
        (cd "$dir" && "$top/configure" "$@" >configure.out 2>&1) ||
            { tail -n 30 "$dir/configure.out" >&2; return 1; }
        printf '%s' "$want" >"$dir/.axon-configure-args"
    fi
    ax_say "make (in $dir)"
    make -C "$dir" -j"$(nproc)" >"$dir/make.out" 2>&1 || { grep -E -B2 -A8 'error|Error' "$dir/make.out" | head -n 80 >&2; return 1; }
}
