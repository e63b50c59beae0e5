/* `axon pretrain [CONFIG.lua] [--KEY VALUE]...`: ax.pretrain{} from the
 * command line (host/cmd_config.h). --arch.NAME VALUE and --method.NAME
 * VALUE set plugin parameters, --data.KEY VALUE the keys of a dataset
 * table (root, format, spacing, ...). */
#include "cli.h"
#include "cmd_config.h"
#include "lua_train.h"

int ax_cmd_pretrain(ax_cli *cli, int argc, char **argv) {
    static const char *const bools[] = {"resume", "nesterov", "progress", NULL};
    static const char *const lists[] = {"augs", NULL};
    static const char *const metrics[] = {"loss", "val_loss", NULL};
    static const ax_cmd_dotted dotted[] = {
        {"arch", "arch_params", "PARAM"}, {"method", "method_params", "PARAM"}, {"data", "data", "KEY"}, {0}};
    static const ax_cmd_config_spec spec = {.command = "pretrain",
                                            .keys = ax_lua_pretrain_keys,
                                            .bool_keys = bools,
                                            .list_keys = lists,
                                            .dotted = dotted,
                                            .metrics = metrics};
    return ax_cmd_config_run(cli, argc, argv, &spec);
}
