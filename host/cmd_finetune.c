/* `axon finetune [CONFIG.lua] [--KEY VALUE]...`: ax.finetune{} from the
 * command line (host/cmd_config.h). --arch.NAME / --task.NAME VALUE set
 * plugin parameters, --data.KEY VALUE the keys of a dataset table (root,
 * format, glob) and --split.KEY the validation split (fraction, min, max,
 * seed). */
#include "cli.h"
#include "cmd_config.h"
#include "lua_finetune.h"

int ax_cmd_finetune(ax_cli *cli, int argc, char **argv) {
    static const char *const bools[] = {"resume", "nesterov", "progress", "deep_supervision", NULL};
    static const char *const lists[] = {"augs", NULL};
    static const char *const metrics[] = {"loss", "val_loss", "val_dice_mean", NULL};
    static const ax_cmd_dotted dotted[] = {{"arch", "arch_params", "PARAM"},
                                           {"task", "task_params", "PARAM"},
                                           {"data", "data", "KEY"},
                                           {"split", "split", "KEY"},
                                           {0}};
    static const ax_cmd_config_spec spec = {.command = "finetune",
                                            .keys = ax_lua_finetune_keys,
                                            .bool_keys = bools,
                                            .list_keys = lists,
                                            .dotted = dotted,
                                            .metrics = metrics};
    return ax_cmd_config_run(cli, argc, argv, &spec);
}
