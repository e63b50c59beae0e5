/* host/lua_loader.h — the threaded batch loader in Lua (see lua_loader.c):
 *
 *     local ax = require "axon"
 *     local ld = ax.loader{ cache = "runs/demo/cache", split = "train",
 *                           patch = {64, 64, 64}, batch = 2, threads = 4, seed = 1,
 *                           augs = { ax.aug("mirror") }, labels = true }
 *     local x, y = ld:next()    -- x: [N, C, D, H, W] f32, y: [N, 1, D, H, W] u8 (labels only)
 *     ld:seek(100)              -- the batches of step 100, 101, ...
 *     print(ld:step(), ld)      -- the step next() returns next
 *     ld:close()                -- also on garbage collection / <close>
 *
 * ax.loader{...} keys (all but one of cache/paths optional):
 *   cache = DIR        a cache folder (ax_cache_list); split = "train"
 *                      (default), "val", "test" or "all"
 *   paths = {...}      case files (.axc) instead of a cache
 *   patch = {D, H, W}  or one number for a cube (default 64)
 *   batch = 2, threads = all CPUs, prefetch = 2 * threads, seed = 0,
 *   oversample_fg = 0.33, labels = false, enlarge = 1,
 *   augs = { ax.aug(...), ... }   applied in order; kept alive by the loader
 *                      (do not :close() one while a loader that uses it is open:
 *                      its workers call it in the background)
 * The batch of step k depends only on (seed, k); see axon/loader.h.
 */
#ifndef AXON_HOST_LUA_LOADER_H
#define AXON_HOST_LUA_LOADER_H

#include <lua.h>

/* Add `loader` to the module table on top of the stack (creates the loader
 * metatable on first use). */
void ax_lua_loader_register(lua_State *L);

#endif
