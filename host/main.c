/* axon — the host executable: parses the command line and dispatches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"
#include "cli.h"
#include "registry.h"

typedef struct ax_command {
    const char *name;
    int (*run)(ax_cli *cli, int argc, char **argv);
    const char *usage;
    const char *help;
} ax_command;

static int ax_cmd_version(ax_cli *cli, int argc, char **argv);
static int ax_cmd_help(ax_cli *cli, int argc, char **argv);

static const ax_command ax_commands[] = {
    {"run", ax_cmd_run, "axon run [--plugin-path DIR] SCRIPT.lua [ARGS...]",
     "Run an experiment script. The script gets its arguments in the global\n"
     "table `arg` (arg[0] is the script) and as `...`; `require \"axon\"` gives\n"
     "the axon module. A script error prints file:line: message and a\n"
     "traceback, and axon exits with status 1."},
    {"plugins", ax_cmd_plugins, "axon plugins [--plugin-path DIR] [--json] [--kind KIND] [--describe NAME]",
     "List every plugin found on the search path (kind, name, version,\n"
     "summary, file). --describe NAME prints one plugin's parameters with\n"
     "types, defaults, ranges and docs. Files that fail to load are listed on\n"
     "stderr with the reason; the others still load.\n"
     "Search path: --plugin-path DIR (repeatable), then $AXON_PLUGIN_PATH\n"
     "(colon-separated), then the build tree when axon runs from it, else\n"
     "the install directory " AX_PLUGIN_DIR "."},
    {"version", ax_cmd_version, "axon version", "Print the axon version and the plugin ABI version."},
    {"help", ax_cmd_help, "axon help [COMMAND]", "Show help for axon or for one command."},
};
#define AX_N_COMMANDS (sizeof ax_commands / sizeof ax_commands[0])

static void ax_usage(FILE *f) {
    fprintf(f,
            "usage: axon [--plugin-path DIR]... COMMAND [ARGS...]\n"
            "\n"
            "axon: self-supervised pre-training and fine-tuning of 3D medical-image networks.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < AX_N_COMMANDS; i++) fprintf(f, "  %s\n", ax_commands[i].usage);
    fprintf(f,
            "\n"
            "options:\n"
            "  --plugin-path DIR   search DIR for plugins first (repeatable)\n"
            "  -h, --help          show this help; 'axon help COMMAND' for one command\n"
            "  --version           same as 'axon version'\n"
            "\n"
            "environment:\n"
            "  AXON_LOG            debug|info|warn|error|off (default info)\n"
            "  AXON_PLUGIN_PATH    colon-separated plugin directories\n");
}

static const ax_command *ax_command_find(const char *name) {
    for (size_t i = 0; i < AX_N_COMMANDS; i++)
        if (strcmp(ax_commands[i].name, name) == 0) return &ax_commands[i];
    return NULL;
}

static const char *ax_command_suggest(const char *name) {
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < AX_N_COMMANDS; i++) {
        size_t d = ax_edit_distance(name, ax_commands[i].name);
        if (d < best_d) best_d = d, best = ax_commands[i].name;
    }
    return best;
}

static int ax_cmd_version(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    if (argc > 0) {
        fprintf(stderr, "axon version: unexpected argument '%s'\n", argv[0]);
        return 2;
    }
    printf("axon %s (plugin ABI %u.%u)\n", ax_version(), AX_ABI_MAJOR, AX_ABI_MINOR);
    return 0;
}

static int ax_cmd_help(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    if (argc == 0) {
        ax_usage(stdout);
        return 0;
    }
    const ax_command *c = ax_command_find(argv[0]);
    if (!c) {
        const char *near = ax_command_suggest(argv[0]);
        fprintf(stderr, "axon help: unknown command '%s'%s%s%s\n", argv[0], near ? " (did you mean '" : "",
                near ? near : "", near ? "'?)" : "");
        return 2;
    }
    printf("usage: %s\n\n%s\n", c->usage, c->help);
    return 0;
}

int ax_cli_help(const char *command) {
    char *name = (char *)command;
    return ax_cmd_help(NULL, 1, &name);
}

int ax_cli_take_plugin_path(ax_cli *cli, int argc, char **argv, int *i) {
    const char *dir = NULL;
    if (strcmp(argv[*i], "--plugin-path") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "axon: --plugin-path needs a directory\n");
            return -1;
        }
        dir = argv[++*i];
    } else if (strncmp(argv[*i], "--plugin-path=", 14) == 0) {
        dir = argv[*i] + 14;
    } else {
        return 0;
    }
    const char **p = realloc(cli->plugin_path, (cli->n_plugin_path + 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "axon: out of memory\n");
        return -1;
    }
    p[cli->n_plugin_path++] = dir;
    cli->plugin_path = p;
    return 1;
}

int main(int argc, char **argv) {
    ax_cli cli = {0};
    int rc = 2, i = 1;
    ax_log_get_level(); /* report a bad AXON_LOG before anything else */
    for (; i < argc; i++) {
        int t = ax_cli_take_plugin_path(&cli, argc, argv, &i);
        if (t < 0) goto out;
        if (t) continue;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            ax_usage(stdout);
            rc = 0;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            rc = ax_cmd_version(&cli, 0, NULL);
            goto out;
        }
        if (argv[i][0] == '-') {
            fprintf(stderr, "axon: unknown option '%s'; see 'axon --help'\n", argv[i]);
            goto out;
        }
        break;
    }
    if (i >= argc) {
        ax_usage(stderr);
        goto out;
    }
    const ax_command *c = ax_command_find(argv[i]);
    if (!c) {
        const char *near = ax_command_suggest(argv[i]);
        fprintf(stderr, "axon: unknown command '%s'%s%s%s; see 'axon --help'\n", argv[i],
                near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        goto out;
    }
    /* `axon CMD --help`; for run only before the script, whose own
     * arguments may well include --help. */
    if (c->run != ax_cmd_help)
        for (int j = i + 1; j < argc; j++) {
            if (strcmp(argv[j], "-h") == 0 || strcmp(argv[j], "--help") == 0) {
                rc = ax_cli_help(c->name);
                goto out;
            }
            if (c->run == ax_cmd_run && argv[j][0] != '-' && strcmp(argv[j - 1], "--plugin-path") != 0) break;
        }
    rc = c->run(&cli, argc - i - 1, argv + i + 1);
out:
    free(cli.plugin_path);
    return rc;
}
