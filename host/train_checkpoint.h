/* host/train_checkpoint.h — checkpoints that rebuild their own network.
 *
 * A weights file written by the runners is a safetensors state dict whose
 * __metadata__ holds (all values are strings):
 *     "format"        "axon.checkpoint/1"
 *     "arch"          ARCH plugin name, "arch_params" the parameters set (JSON object)
 *     "method"        METHOD plugin name, "method_params" the parameters set (JSON)
 *     "in_channels", "out_channels"   what the network was built for
 *     "plan"          the ARCH plan (JSON: stem, encoder, decoder,
 *                     input_projection, output_head, pos_embed, divisor)
 *     "step", "state" written by the trainer (train_core.h)
 * so the file alone rebuilds its network through the plugin registry:
 *
 *     ax_module *net; ax_instance *arch; ax_checkpoint_info info;
 *     if (ax_checkpoint_rebuild(reg, "runs/mae/checkpoints/latest.safetensors",
 *                               &net, &arch, &info) != AX_OK) ...
 *     ... use net (its code lives in the arch plugin: free net before arch,
 *     and both before the registry) ...
 *     ax_module_free(net); ax_instance_free(arch);
 */
#ifndef AXON_HOST_TRAIN_CHECKPOINT_H
#define AXON_HOST_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "axon/nn.h"
#include "registry.h"

#define AX_CHECKPOINT_FORMAT "axon.checkpoint/1"

/* Metadata of a run's weights files, owned strings (ax_checkpoint_meta_clear). */
typedef struct ax_checkpoint_meta {
    size_t n;
    char *keys[16];
    char *values[16];
} ax_checkpoint_meta;

/* Fill m from the arch and method instances (method [optional]) and the
 * channel counts; the plan comes from the ARCH plan op. */
ax_status ax_checkpoint_meta_build(ax_checkpoint_meta *m, const ax_instance *arch, const ax_instance *method,
                                   int64_t in_channels, int64_t out_channels);
void ax_checkpoint_meta_clear(ax_checkpoint_meta *m);

/* The parameters the user set, as a JSON object (new string, free()):
 * unset ones are left out so that a plugin whose defaults depend on other
 * parameters (a preset) resolves them the same way when rebuilt. NULL on OOM. */
char *ax_checkpoint_params_json(const ax_params *p);

/* The ARCH plan as JSON (new string, free()). NULL on OOM. */
char *ax_checkpoint_plan_json(const ax_arch_plan *plan);

/* A parameter set for `spec` from a JSON object {"key": value} as written
 * by ax_params_to_json; unknown keys and bad values are the params
 * module's errors (naming the key and the valid ones). *out: new. */
ax_status ax_checkpoint_params_from_json(ax_params **out, const ax_param_spec *spec, const char *owner,
                                         const char *json);

/* Load a weights file into net, strictly. Before anything is copied the
 * file's keys and shapes are compared with net's state dict; a mismatch is
 * one AX_ERR_INVALID listing the first three offenders of each kind, e.g.
 * "ckpt.safetensors: does not fit this network (arch 'plain_unet' in the
 * file): 0.weight: file [8, 1, 3, 3, 3], network [4, 1, 3, 3, 3];
 * missing in file: 1.bias; not in network: 2.weight (3 more)". */
ax_status ax_checkpoint_load_weights(ax_module *net, const char *path);

typedef struct ax_checkpoint_info {
    char arch[64], method[64];
    int64_t in_channels, out_channels, step;
} ax_checkpoint_info;

/* Rebuild the network of a checkpoint from its metadata alone: find the
 * ARCH plugin in reg (a clear error when it is not on the plugin path),
 * recreate its parameters, build it for the recorded channels and load the
 * weights. *net and *arch: new (free net first); info: [optional]. */
ax_status ax_checkpoint_rebuild(ax_registry *reg, const char *path, ax_module **net, ax_instance **arch,
                                ax_checkpoint_info *info);

#endif
