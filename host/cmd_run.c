/* `axon run SCRIPT.lua [args...]` */
#include <stdio.h>
#include <string.h>

#include "axon/axon.h"
#include "cli.h"
#include "lua_axon.h"
#include "registry.h"

ax_registry *ax_cli_registry_open(const ax_cli *cli) {
    ax_registry *reg;
    if (ax_registry_new(&reg) != AX_OK) {
        fprintf(stderr, "axon: %s\n", ax_error_message());
        return NULL;
    }
    ax_registry_scan_default(reg, cli->plugin_path, cli->n_plugin_path);
    for (size_t k = 0; k < ax_registry_problem_count(reg); k++)
        AX_LOG_WARN("plugin skipped: %s", ax_registry_problem(reg, k));
    return reg;
}

int ax_cmd_run(ax_cli *cli, int argc, char **argv) {
    int i = 0;
    for (; i < argc; i++) {
        int t = ax_cli_take_plugin_path(cli, argc, argv, &i);
        if (t < 0) return 2;
        if (!t) break;
    }
    if (i >= argc) {
        fprintf(stderr, "axon run: missing SCRIPT.lua; see 'axon help run'\n");
        return 2;
    }
    const char *script = argv[i];
    ax_registry *reg = ax_cli_registry_open(cli);
    if (!reg) return 1;
    int rc = ax_lua_run_script(reg, script, argc - i - 1, argv + i + 1);
    ax_registry_free(reg);
    return rc;
}
