#!/usr/bin/env bash
# The Lua network API (tests/lua/arch.lua) on the resenc_unet and plain_unet
# plugins of the build tree, with PyTorch parity through the fixtures.
. "$abs_top_srcdir/tests/sh/lib.sh"

run "$AXON" run "$abs_top_srcdir/tests/lua/arch.lua" "$TMP" "$abs_top_srcdir/tests/fixtures/archs"
check "arch:build, forward, parameters, training, save/load, plans" eval '[ $rc -eq 0 ] && has "$out" "arch ok"'

cat >"$TMP/bad_build.lua" <<'LUA'
local ax = require "axon"
local net = ax.arch("resenc_unet", { preset = "tiny" }):build{ in_channels = 1, out_channels = 1 }
net:load("/nonexistent/net.safetensors")
LUA
run "$AXON" run "$TMP/bad_build.lua"
check "a missing checkpoint is one error line naming the file" eval '[ $rc -eq 1 ] && has "$(first_line "$err")" "bad_build.lua:3:" && has "$(first_line "$err")" "/nonexistent/net.safetensors"'

finish
