#!/usr/bin/env bash
# The axon command line: version, help, plugins listing and errors.
. "$abs_top_srcdir/tests/sh/lib.sh"

run "$AXON" version
check "version prints the version and ABI" eval '[ $rc -eq 0 ] && has "$out" "axon 0." && has "$out" "plugin ABI 1."'
run "$AXON" --version
check "--version equals version" eval '[ $rc -eq 0 ] && has "$out" "plugin ABI"'
run "$AXON" --help
check "--help lists the commands" eval '[ $rc -eq 0 ] && has "$out" "axon run" && has "$out" "axon plugins" && has "$out" AXON_PLUGIN_PATH'
run "$AXON" help run
check "help run explains arg" eval '[ $rc -eq 0 ] && has "$out" "usage: axon run" && has "$out" "arg"'
run "$AXON" plugins --help
check "COMMAND --help shows that command" eval '[ $rc -eq 0 ] && has "$out" "usage: axon plugins"'
run "$AXON"
check "no command: usage on stderr, status 2" eval '[ $rc -eq 2 ] && has "$err" "usage: axon"'
run "$AXON" plugin
check "unknown command suggests the nearest" eval '[ $rc -eq 2 ] && has "$err" "unknown command '"'"'plugin'"'"' (did you mean '"'"'plugins'"'"'?)"'
run "$AXON" help nope
check "help for an unknown command fails" eval '[ $rc -eq 2 ] && has "$err" "unknown command '"'"'nope'"'"'"'
run "$AXON" --frobnicate
check "unknown option fails with one line" eval '[ $rc -eq 2 ] && [ "$(printf "%s\n" "$err" | wc -l)" -eq 1 ] && has "$err" "--frobnicate"'
run "$AXON" plugins --plugin-path
check "--plugin-path without a directory" eval '[ $rc -eq 2 ] && has "$err" "needs a directory"'

run "$AXON" plugins
check "plugins lists the build tree's mirror aug" eval '[ $rc -eq 0 ] && has "$out" "mirror" && has "$out" "plugins/augs/mirror/.libs/mirror.so"'
run "$AXON" plugins --json
check "plugins --json is an array with the fields" eval '[ $rc -eq 0 ] && has "$out" "\"kind\": \"aug\"" && has "$out" "\"name\": \"mirror\"" && has "$out" "\"file\":" && has "$out" "\"summary\":" && [ "${out:0:1}" = "[" ]'
run "$AXON" plugins --describe mirror
check "--describe prints types, defaults, ranges, docs" eval '[ $rc -eq 0 ] && has "$out" "axes" && has "$out" "int list[3]" && has "$out" "default 1,1,1" && has "$out" "range [0, 1]" && has "$out" "probability of flipping"'
run "$AXON" plugins --describe mirror --json
check "--describe --json has params" eval '[ $rc -eq 0 ] && has "$out" "\"params\"" && has "$out" "\"default\": \"0.5\""'
run "$AXON" plugins --describe mirorr
check "--describe of a missing plugin suggests" eval '[ $rc -eq 1 ] && has "$err" "no plugin named '"'"'mirorr'"'"' (did you mean '"'"'mirror'"'"'?)"'
run "$AXON" plugins --kind gadget
check "unknown kind is refused" eval '[ $rc -eq 2 ] && has "$err" "unknown kind '"'"'gadget'"'"'"'

good=$(good_plugins)
run "$AXON" --plugin-path "$good" plugins
check "--plugin-path adds the test plugins" eval '[ $rc -eq 0 ] && has "$out" test_method && has "$out" test_task && has "$out" mirror'
check "an unavailable backend says why" eval 'has "$out" "[unavailable: no test device on this machine]"'
run env AXON_PLUGIN_PATH="/nonexistent:$good" "$AXON" plugins --kind method
check "AXON_PLUGIN_PATH is searched; --kind filters" eval '[ $rc -eq 0 ] && has "$out" test_method && lacks "$out" mirror'

# Every broken test plugin is reported with its file and reason; the rest load.
run "$AXON" --plugin-path "$abs_top_builddir/tests/plugins/.libs" plugins
check "bad plugins are skipped with reasons" eval '[ $rc -eq 0 ] && has "$out" test_method &&
    has "$err" "wrong_major.so: built for plugin ABI" && has "$err" "newer_minor.so: built for plugin ABI" &&
    has "$err" "no_entry.so: no entry point" && has "$err" "bad_ops_size.so: method" &&
    has "$err" "bad_spec.so: " && has "$err" "duplicate method '"'"'test_method'"'"'"'
check "each problem is one line" eval '[ "$(printf "%s\n" "$err" | grep -c "plugin skipped")" -eq 6 ]'

run env AXON_LOG=shouty "$AXON" version
check "a bad AXON_LOG is reported, not fatal" eval '[ $rc -eq 0 ] && has "$err" "AXON_LOG=shouty"'
run env AXON_LOG=debug "$AXON" plugins
check "AXON_LOG=debug shows loading" eval '[ $rc -eq 0 ] && has "$err" "axon: debug: loaded aug '"'"'mirror'"'"'"'

finish
