#!/usr/bin/env bash
# Lua scripts under `axon run`: arguments, errors, the axon module.
. "$abs_top_srcdir/tests/sh/lib.sh"
L="$abs_top_srcdir/tests/lua"

run "$AXON" run "$L/args.lua" one "two words" 3
check "arg table and varargs" eval '[ $rc -eq 0 ] && has "$out" "arg0=$L/args.lua" && has "$out" "n=3 varargs=3" && has "$out" "2=two words|two words"'
run "$AXON" run "$L/args.lua"
check "no arguments" eval '[ $rc -eq 0 ] && has "$out" "n=0 varargs=0"'

# Lua shortens chunk names past 60 characters, so use a short path here.
cp "$L/error.lua" "$TMP/error.lua"
run "$AXON" run "$TMP/error.lua"
check "script error: status 1" eval '[ $rc -eq 1 ]'
check "script error: first line is file:line: message" eval '[ "$(first_line "$err")" = "$TMP/error.lua:2: boom from the script" ]'
check "script error: traceback follows" eval 'has "$err" "stack traceback:" && has "$err" "error.lua:4:"'

run "$AXON" run "$L/syntax.lua"
check "syntax error names file and line" eval '[ $rc -eq 1 ] && has "$err" "syntax.lua:1:"'
run "$AXON" run "$L/missing.lua"
check "missing script is one line, status 1" eval '[ $rc -eq 1 ] && has "$err" "cannot open" && [ "$(printf "%s\n" "$err" | wc -l)" -eq 1 ]'
run "$AXON" run --help
check "run --help shows help" eval '[ $rc -eq 0 ] && has "$out" "usage: axon run"'
run "$AXON" run "$L/args.lua" --help
check "--help after the script goes to the script" eval '[ $rc -eq 0 ] && has "$out" "1=--help|--help"'
run "$AXON" run
check "run without a script is a usage error" eval '[ $rc -eq 2 ] && has "$err" "missing SCRIPT.lua"'

good=$(good_plugins)
run "$AXON" run --plugin-path "$good" "$L/module.lua"
check "the axon module (plugins, params, rng)" eval '[ $rc -eq 0 ] && has "$out" "module ok"'

run "$AXON" run "$L/tensor.lua"
check "tensors from Lua (ops, views, autograd, a fit)" eval '[ $rc -eq 0 ] && has "$out" "tensor ok"'

run "$AXON" run "$L/train.lua" "$TMP"
check "optimizers, losses, checkpoints; resume is exact" eval '[ $rc -eq 0 ] && has "$out" "train ok"'
run "$AXON" run "$abs_top_srcdir/scripts/train_mlp.lua" 60 "$TMP/mlp"
check "scripts/train_mlp.lua trains and saves" eval '[ $rc -eq 0 ] && has "$out" "train accuracy" && [ -f "$TMP/mlp/model.safetensors" ]'
run "$AXON" run "$abs_top_srcdir/scripts/train_mlp.lua" 80 "$TMP/mlp"
check "scripts/train_mlp.lua resumes from its checkpoint" eval '[ $rc -eq 0 ] && has "$out" "resumed at step 60"'

cat >"$TMP/bad_param.lua" <<'LUA'
local ax = require "axon"
local m = ax.aug("mirror", { p = 2 })
LUA
run "$AXON" run "$TMP/bad_param.lua"
check "out-of-range parameter: file:line and key, value, range" eval '[ $rc -eq 1 ] && [ "$(first_line "$err")" = "$TMP/bad_param.lua:2: aug '"'"'mirror'"'"': parameter '"'"'p'"'"' = 2 is out of range [0, 1]" ]'

cat >"$TMP/exit.lua" <<'LUA'
os.exit(3)
LUA
run "$AXON" run "$TMP/exit.lua"
check "os.exit status passes through" eval '[ $rc -eq 3 ]'

finish
