/* Descriptor checks behind axon/plugin.h: what the loader verifies before a
 * plugin is used. */
#include "axon/plugin.h"

#include <stdio.h>
#include <string.h>

static const char *const ax_kind_names[] = {NULL, "method", "arch", "aug", "task", "backend"};

const char *ax_plugin_kind_name(ax_plugin_kind kind) {
    if (kind < AX_PLUGIN_KIND_FIRST || kind > AX_PLUGIN_KIND_LAST) return NULL;
    return ax_kind_names[kind];
}

ax_plugin_kind ax_plugin_kind_parse(const char *name) {
    for (int k = AX_PLUGIN_KIND_FIRST; name && k <= AX_PLUGIN_KIND_LAST; k++)
        if (strcmp(name, ax_kind_names[k]) == 0) return (ax_plugin_kind)k;
    return (ax_plugin_kind)0;
}

/* Sizes at ABI 1.0. When a minor version appends members to an ops struct,
 * its entry here stays: older plugins remain loadable. */
size_t ax_plugin_ops_min_size(ax_plugin_kind kind) {
    switch (kind) {
    /* ABI 1.0 gave METHOD, ARCH and TASK their lifecycle only. */
    case AX_PLUGIN_METHOD: return sizeof(ax_plugin_base_ops);
    case AX_PLUGIN_ARCH: return sizeof(ax_plugin_base_ops);
    case AX_PLUGIN_AUG: return offsetof(ax_aug_ops, apply) + sizeof(((ax_aug_ops *)0)->apply);
    case AX_PLUGIN_TASK: return sizeof(ax_plugin_base_ops);
    case AX_PLUGIN_BACKEND: return sizeof(ax_backend_ops);
    }
    return 0;
}

size_t ax_plugin_ops_host_size(ax_plugin_kind kind) {
    switch (kind) {
    case AX_PLUGIN_METHOD: return sizeof(ax_method_ops);
    case AX_PLUGIN_ARCH: return sizeof(ax_arch_ops);
    case AX_PLUGIN_AUG: return sizeof(ax_aug_ops);
    case AX_PLUGIN_TASK: return sizeof(ax_task_ops);
    case AX_PLUGIN_BACKEND: return sizeof(ax_backend_ops);
    }
    return 0;
}

static int ax_plugin_name_ok(const char *s) {
    if (!s || !(*s >= 'a' && *s <= 'z')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

ax_status ax_plugin_check(const ax_plugin *p) {
    if (!p) return AX_ERROR(AX_ERR_INVALID, "NULL descriptor");
    if (p->abi_major != AX_ABI_MAJOR)
        return AX_ERROR(AX_ERR_ABI, "built for plugin ABI %u.%u, this axon speaks ABI %u.%u (major must match)",
                        p->abi_major, p->abi_minor, AX_ABI_MAJOR, AX_ABI_MINOR);
    if (p->abi_minor > AX_ABI_MINOR)
        return AX_ERROR(AX_ERR_ABI, "built for plugin ABI %u.%u, newer than this axon's %u.%u; upgrade axon",
                        p->abi_major, p->abi_minor, AX_ABI_MAJOR, AX_ABI_MINOR);
    const char *kind = ax_plugin_kind_name(p->kind);
    if (!kind) return AX_ERROR(AX_ERR_ABI, "unknown plugin kind %d", (int)p->kind);
    if (!ax_plugin_name_ok(p->name))
        return AX_ERROR(AX_ERR_INVALID, "%s plugin name '%s' must match [a-z][a-z0-9_]*", kind,
                        p->name ? p->name : "(null)");
    if (!p->ops)
        return AX_ERROR(AX_ERR_INVALID, "%s '%s' has no ops table", kind, p->name);
    size_t lo = ax_plugin_ops_min_size(p->kind), hi = ax_plugin_ops_host_size(p->kind);
    if (p->ops_size < lo || p->ops_size > hi)
        return AX_ERROR(AX_ERR_ABI, "%s '%s' has ops_size %zu; ABI %u.%u expects %zu..%zu bytes", kind,
                        p->name, p->ops_size, AX_ABI_MAJOR, AX_ABI_MINOR, lo, hi);
    /* Entry points a kind cannot work without (all in its ABI x.0 part). */
    if (p->kind == AX_PLUGIN_AUG && !((const ax_aug_ops *)p->ops)->apply)
        return AX_ERROR(AX_ERR_INVALID, "aug '%s' has no apply()", p->name);
    for (size_t i = 0; i < sizeof p->reserved / sizeof p->reserved[0]; i++)
        if (p->reserved[i])
            return AX_ERROR(AX_ERR_ABI, "%s '%s' sets reserved[%zu]; reserved fields must be zero", kind, p->name, i);
    char owner[96];
    snprintf(owner, sizeof owner, "%s '%s'", kind, p->name);
    if (p->params && ax_param_spec_check(p->params, owner) != AX_OK) return ax_error_status();
    return AX_OK;
}
