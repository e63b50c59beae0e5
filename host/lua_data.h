/* host/lua_data.h — datasets, preprocessing and the cache in Lua
 * (see lua_data.c):
 *
 *     local ax = require "axon"
 *     local ds = ax.dataset{ format = "nnunet", root = "raw/Dataset004_Hippocampus" }
 *     print(#ds, ds:size(), ds.channels, ds.format)
 *     local c = ds:case(1)        -- {name, subject, images = {...}, label, mask, deface_mask,
 *                                 --  modality, quality, test}
 *     local s = ds:split{ fraction = 0.2, min = 1, max = 100, seed = 7 }
 *     for _, i in ipairs(s.val) do print(ds:case(i).name) end     -- 1-based case indices
 *     local r = ax.preprocess{ dataset = ds, out = "cache/hippo", spacing = {1, 1, 1}, threads = 4 }
 *     print(r.done, r.skipped, r.failed)                           -- r.failures = {{name, reason}}
 *     -- (an error when the options are bad or every case failed)
 *     for _, p in ipairs(ax.cache_list("cache/hippo", "train")) do print(p) end
 */
#ifndef AXON_HOST_LUA_DATA_H
#define AXON_HOST_LUA_DATA_H

#include <lua.h>

#include "axon/dataset.h"

/* Add dataset, preprocess and cache_list to the module table on top of
 * the stack (creates the dataset metatable on first use). */
void ax_lua_data_register(lua_State *L);

/* The dataset at stack index idx, or NULL when it is not one (or closed).
 * Borrowed: valid while the Lua value lives. */
const ax_dataset *ax_lua_test_dataset(lua_State *L, int idx);

#endif
