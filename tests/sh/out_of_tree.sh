#!/usr/bin/env bash
# Install axon into a staging directory, build a plugin against the
# installed SDK with only pkg-config and cc, then load and use it.
. "$abs_top_srcdir/tests/sh/lib.sh"

stage="$TMP/stage"
run ${MAKE:-make} -C "$abs_top_builddir" install DESTDIR="$stage"
check "make install into a staging dir" eval '[ $rc -eq 0 ]'

pc=$(find "$stage" -name axon.pc | head -n 1)
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$stage"
check "axon.pc is installed" test -n "$pc"
run pkg-config --cflags --libs axon
check "pkg-config axon resolves" eval '[ $rc -eq 0 ] && has "$out" "-laxon"'
check "SDK headers are installed" test -f "$stage$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=includedir axon)/axon/axon.h"
libdir="$stage$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=libdir axon)"
installed_axon=$(find "$stage" -path '*/bin/axon' -type f | head -n 1)
plugins_dir="$stage$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=pluginsdir axon)"
check "the mirror plugin is installed" test -f "$plugins_dir/mirror.so"

mkdir -p "$TMP/mine"
run ${CC:-cc} -std=c11 -Wall -Wextra -Werror -shared -fPIC "$abs_top_srcdir/tests/plugins/out_of_tree.c" \
    -o "$TMP/mine/oot_scale.so" $(pkg-config --cflags --libs axon)
check "cc -shared builds a plugin against the installed SDK" eval '[ $rc -eq 0 ] && [ -f "$TMP/mine/oot_scale.so" ]'

export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export AXON_PLUGIN_PATH="$plugins_dir"
run "$installed_axon" --plugin-path "$TMP/mine" plugins
check "the installed axon lists it beside the installed plugins" eval '[ $rc -eq 0 ] && has "$out" oot_scale && has "$out" mirror && [ -z "$err" ]'

cat >"$TMP/use.lua" <<'LUA'
local ax = require "axon"
local s = ax.aug("oot_scale", { factor = 2.5 })
assert(s.params.factor == 2.5 and s.kind == "aug")
print("instantiated " .. tostring(s) .. " from " .. s.file)
local ok, e = pcall(ax.aug, "oot_scale", { factor = 0 })
assert(not ok and e:find("out of range", 1, true), e)
LUA
run "$installed_axon" run --plugin-path "$TMP/mine" "$TMP/use.lua"
check "a Lua script instantiates the out-of-tree plugin" eval '[ $rc -eq 0 ] && has "$out" "instantiated axon.aug<oot_scale>"'

finish
