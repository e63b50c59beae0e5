/* `axon plugins [--json] [--describe NAME] [--kind KIND]` */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"
#include "cli.h"
#include "registry.h"

static json_t *ax_plugin_json(const ax_registry_item *it, int with_params) {
    const ax_plugin *p = it->plugin;
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(ax_plugin_kind_name(p->kind)));
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "version", json_string(p->version ? p->version : ""));
    json_object_set_new(o, "summary", json_string(p->summary ? p->summary : ""));
    json_object_set_new(o, "license", json_string(p->license ? p->license : ""));
    json_object_set_new(o, "file", json_string(it->path));
    json_object_set_new(o, "available", json_boolean(it->available));
    if (!it->available) json_object_set_new(o, "why", json_string(it->why));
    if (!with_params) return o;
    json_t *arr = json_array();
    for (const ax_param_spec *s = p->params; s && s->name; s++) {
        json_t *q = json_object();
        json_object_set_new(q, "name", json_string(s->name));
        json_object_set_new(q, "type", json_string(ax_param_type_name(s->type)));
        json_object_set_new(q, "default", s->def ? json_string(s->def) : json_null());
        if (s->min < s->max) {
            json_object_set_new(q, "min", json_real(s->min));
            json_object_set_new(q, "max", json_real(s->max));
        }
        if (s->choices) json_object_set_new(q, "choices", json_string(s->choices));
        if (s->len) json_object_set_new(q, "len", json_integer(s->len));
        json_object_set_new(q, "doc", json_string(s->doc ? s->doc : ""));
        json_array_append_new(arr, q);
    }
    json_object_set_new(o, "params", arr);
    return o;
}

static void ax_describe_text(const ax_registry_item *it) {
    const ax_plugin *p = it->plugin;
    printf("%s %s %s — %s\n", ax_plugin_kind_name(p->kind), p->name, p->version ? p->version : "",
           p->summary ? p->summary : "");
    printf("  file:    %s\n", it->path);
    if (p->license) printf("  license: %s\n", p->license);
    printf("  ABI:     %u.%u\n", p->abi_major, p->abi_minor);
    if (!it->available) printf("  status:  unavailable: %s\n", it->why);
    if (!p->params || !p->params->name) {
        printf("  parameters: none\n");
        return;
    }
    printf("  parameters:\n");
    for (const ax_param_spec *s = p->params; s->name; s++) {
        char range[128] = "";
        if (s->min < s->max) snprintf(range, sizeof range, "  range [%g, %g]", s->min, s->max);
        if (s->choices) snprintf(range, sizeof range, "  one of %s", s->choices);
        char len[32] = "";
        if (s->len) snprintf(len, sizeof len, "[%u]", s->len);
        printf("    %-16s %s%s  default %s%s\n", s->name, ax_param_type_name(s->type), len,
               s->def ? s->def : "(required)", range);
        if (s->doc && *s->doc) printf("    %16s %s\n", "", s->doc);
    }
}

int ax_cmd_plugins(ax_cli *cli, int argc, char **argv) {
    int json = 0;
    const char *describe = NULL, *kind_name = NULL;
    for (int i = 0; i < argc; i++) {
        int t = ax_cli_take_plugin_path(cli, argc, argv, &i);
        if (t < 0) return 2;
        if (t) continue;
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--describe") == 0 && i + 1 < argc) {
            describe = argv[++i];
        } else if (strncmp(argv[i], "--describe=", 11) == 0) {
            describe = argv[i] + 11;
        } else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
            kind_name = argv[++i];
        } else {
            fprintf(stderr, "axon plugins: unknown argument '%s'; see 'axon help plugins'\n", argv[i]);
            return 2;
        }
    }
    ax_plugin_kind kind = 0;
    if (kind_name && !(kind = ax_plugin_kind_parse(kind_name))) {
        fprintf(stderr, "axon plugins: unknown kind '%s' (method, arch, aug, task, backend)\n", kind_name);
        return 2;
    }
    ax_registry *reg = ax_cli_registry_open(cli);
    if (!reg) return 1;
    int rc = 0;
    if (describe) {
        const ax_registry_item *it = ax_registry_find(reg, kind, describe);
        if (!it) {
            const char *near = ax_registry_suggest(reg, kind, describe);
            fprintf(stderr, "axon plugins: no plugin named '%s'%s%s%s\n", describe,
                    near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
            rc = 1;
        } else if (json) {
            json_t *o = ax_plugin_json(it, 1);
            json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            putchar('\n');
            json_decref(o);
        } else {
            ax_describe_text(it);
        }
    } else if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < ax_registry_count(reg); i++) {
            const ax_registry_item *it = ax_registry_get(reg, i);
            if (!kind || it->plugin->kind == kind) json_array_append_new(arr, ax_plugin_json(it, 1));
        }
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(arr);
    } else {
        size_t shown = 0;
        printf("%-8s %-20s %-10s %s\n", "KIND", "NAME", "VERSION", "SUMMARY / FILE");
        for (int k = AX_PLUGIN_KIND_FIRST; k <= AX_PLUGIN_KIND_LAST; k++) {
            if (kind && k != (int)kind) continue;
            for (size_t i = 0; i < ax_registry_count(reg); i++) {
                const ax_registry_item *it = ax_registry_get(reg, i);
                const ax_plugin *p = it->plugin;
                if ((int)p->kind != k) continue;
                printf("%-8s %-20s %-10s %s\n", ax_plugin_kind_name(p->kind), p->name,
                       p->version ? p->version : "", p->summary ? p->summary : "");
                if (!it->available) printf("%-8s %-20s %-10s [unavailable: %s]\n", "", "", "", it->why);
                printf("%-8s %-20s %-10s %s\n", "", "", "", it->path);
                shown++;
            }
        }
        if (!shown) printf("(no plugins found; use --plugin-path DIR or AXON_PLUGIN_PATH)\n");
    }
    ax_registry_free(reg);
    return rc;
}
