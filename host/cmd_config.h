/* host/cmd_config.h — the command-line front-end of the Lua runners:
 * `axon pretrain|finetune [CONFIG.lua] [--KEY VALUE]...` builds the
 * configuration table of ax.<command>{} and calls it.
 *
 * CONFIG.lua returns the configuration table (it may `require "axon"`);
 * each --KEY VALUE (or --KEY=VALUE) sets the Lua key of the same name
 * (dashes read as underscores) over the file's. A value is read as an
 * integer, a number, true/false, a comma list of those (a table), else a
 * string; a key of spec->bool_keys may stand alone (--resume); a key of
 * spec->list_keys is always a list (--augs mirror). --PREFIX.NAME VALUE
 * sets NAME in the table spec->dotted maps PREFIX to (--arch.preset tiny:
 * arch_params.preset). Keys the runner does not know are passed as strings
 * so that ax.<command> names the valid ones.
 *
 *     static const ax_cmd_dotted dotted[] = {{"arch", "arch_params", "PARAM"}, {"data", "data", "KEY"}, {0}};
 *     static const ax_cmd_config_spec spec = {.command = "pretrain", .keys = ax_lua_pretrain_keys,
 *         .bool_keys = bools, .list_keys = lists, .dotted = dotted, .metrics = metrics};
 *     return ax_cmd_config_run(cli, argc, argv, &spec);
 *
 * After the run it prints "checkpoint: PATH" and
 * "step S: NAME VALUE, NAME VALUE" for spec->metrics (result.metrics).
 */
#ifndef AXON_HOST_CMD_CONFIG_H
#define AXON_HOST_CMD_CONFIG_H

#include "cli.h"

/* --PREFIX.NAME VALUE sets table[NAME]; WORD is how help shows NAME. */
typedef struct ax_cmd_dotted {
    const char *prefix;
    const char *table;
    const char *word;
} ax_cmd_dotted;

typedef struct ax_cmd_config_spec {
    const char *command;               /* "pretrain": the ax.<command> called, and messages */
    const char *const *keys;           /* the runner's keys, NULL-terminated */
    const char *const *bool_keys;      /* NULL-terminated */
    const char *const *list_keys;      /* NULL-terminated */
    const ax_cmd_dotted *dotted;       /* terminated by {0} */
    const char *const *metrics;        /* printed after "step", NULL-terminated */
} ax_cmd_config_spec;

/* The command's exit status: 0 ok, 1 failed (130 interrupted), 2 usage. */
int ax_cmd_config_run(ax_cli *cli, int argc, char **argv, const ax_cmd_config_spec *spec);

#endif
