/* host/cli.h — the axon command-line commands. Each returns the process
 * exit status: 0 ok, 1 failure, 2 usage error. */
#ifndef AXON_HOST_CLI_H
#define AXON_HOST_CLI_H

#include <stddef.h>

/* Global options shared by every command. */
typedef struct ax_cli {
    const char **plugin_path; /* --plugin-path DIR, in order given */
    size_t n_plugin_path;
} ax_cli;

int ax_cmd_plugins(ax_cli *cli, int argc, char **argv);
/* Print the help of one command to stdout; 0, or 2 for an unknown name. */
int ax_cli_help(const char *command);
int ax_cmd_run(ax_cli *cli, int argc, char **argv);
int ax_cmd_pretrain(ax_cli *cli, int argc, char **argv);
/* `axon finetune`, `axon predict`, `axon evaluate` (host/cmd_finetune.c, cmd_predict.c) */
int ax_cmd_finetune(ax_cli *cli, int argc, char **argv);
int ax_cmd_predict(ax_cli *cli, int argc, char **argv);
int ax_cmd_evaluate(ax_cli *cli, int argc, char **argv);
/* `axon inspect FILE [--json]` (host/cmd_inspect.c) */
int ax_cmd_inspect(ax_cli *cli, int argc, char **argv);
/* `axon data demo OUT [...]` (host/cmd_data.c) */
int ax_cmd_data(ax_cli *cli, int argc, char **argv);

/* `axon preprocess ...` (host/cmd_preprocess.c) */
int ax_cmd_preprocess(ax_cli *cli, int argc, char **argv);

/* Parse "--plugin-path DIR" / "--plugin-path=DIR" at argv[*i]; 1 if taken
 * (advancing *i), 0 if not this option, -1 on a usage error (printed). */
int ax_cli_take_plugin_path(ax_cli *cli, int argc, char **argv, int *i);

/* The registry every plugin-using command starts from: the standard search
 * (ax_registry_scan_default) over cli's --plugin-path dirs, each skipped
 * plugin logged as one "axon: warn: plugin skipped: ..." line. NULL after
 * printing "axon: <error>" to stderr (the caller exits 1). In host/cmd_run.c,
 * the host library, so tests that link it without main.c get it too.
 * Returns a new registry; free it with ax_registry_free. */
struct ax_registry *ax_cli_registry_open(const ax_cli *cli);

#endif
