/* host/registry.h — finding, loading and instantiating plugins.
 *
 * The registry owns every dlopen()ed plugin file. Loading never stops at a
 * bad file: each failure is kept as one "path: reason" line (see
 * ax_registry_problems) and the other files still load.
 *
 *     ax_registry *reg;
 *     ax_registry_new(&reg);
 *     ax_registry_scan_dir(reg, "/usr/lib/axon/plugins");
 *     const ax_registry_item *it = ax_registry_find(reg, AX_PLUGIN_AUG, "mirror");
 *     ax_instance *aug;
 *     ax_params *p;
 *     ax_params_new(&p, it->plugin->params, "mirror");
 *     ax_instance_new(&aug, it, p);   // steals p, calls create()
 *     ...
 *     ax_instance_free(aug);          // destroy(), then frees p
 *     ax_registry_free(reg);          // dlclose()s, after all instances are gone
 */
#ifndef AXON_HOST_REGISTRY_H
#define AXON_HOST_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "axon/plugin.h"

typedef struct ax_registry ax_registry;

typedef struct ax_registry_item {
    const ax_plugin *plugin; /* borrowed from the loaded file */
    const char *path;        /* canonical path of the file it came from */
    bool available;          /* BACKEND probe() result; true for other kinds */
    const char *why;         /* reason when !available, else "" */
} ax_registry_item;

/* *out: new registry; free with ax_registry_free. */
ax_status ax_registry_new(ax_registry **out);
void ax_registry_free(ax_registry *reg); /* NULL-safe */

/* Load one file. On failure the reason is recorded as a problem and also
 * returned as the current error. A file already loaded (same canonical path)
 * is skipped silently. */
ax_status ax_registry_load_file(ax_registry *reg, const char *path);
/* Load every "*.so" in `dir` (not recursive), in name order. A missing
 * directory is not an error. Returns the number of descriptors added. */
size_t ax_registry_scan_dir(ax_registry *reg, const char *dir);
/* Like scan_dir, for a libtool build tree: every ".libs" folder under `root`
 * (depth <= 4). */
size_t ax_registry_scan_build_tree(ax_registry *reg, const char *root);

/* The standard search: `extra` dirs (from --plugin-path, may be NULL/0),
 * then $AXON_PLUGIN_PATH (colon-separated), then the build tree when this
 * executable runs from it, else the install directory. */
void ax_registry_scan_default(ax_registry *reg, const char *const *extra, size_t n_extra);

size_t ax_registry_count(const ax_registry *reg);
const ax_registry_item *ax_registry_get(const ax_registry *reg, size_t i); /* borrowed */
/* kind 0 matches any kind. NULL when absent (no error set). */
const ax_registry_item *ax_registry_find(const ax_registry *reg, ax_plugin_kind kind,
                                         const char *name);
/* Nearest registered name of `kind` (0 = any) by edit distance, or NULL. */
const char *ax_registry_suggest(const ax_registry *reg, ax_plugin_kind kind, const char *name);

size_t ax_registry_problem_count(const ax_registry *reg);
const char *ax_registry_problem(const ax_registry *reg, size_t i); /* borrowed */

/* A live plugin instance. */
typedef struct ax_instance {
    const ax_registry_item *item; /* borrowed */
    ax_params *params;            /* owned */
    void *self;                   /* plugin state from create() */
    const void *ops;              /* host-sized copy of the plugin's ops */
} ax_instance;

/* Check `params` (ax_params_check), copy the ops (members past the plugin's
 * ops_size are NULL) and call create(). Steals `params`, also on failure. */
ax_status ax_instance_new(ax_instance **out, const ax_registry_item *item, ax_params *params);
void ax_instance_free(ax_instance *inst); /* NULL-safe */

#endif
