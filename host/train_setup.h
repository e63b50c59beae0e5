/* host/train_setup.h — the setup both training runners (train_pretrain.c,
 * train_finetune.c) do before the loop of train_core.h: the data (a cache
 * folder, or a dataset preprocessed into <out>/cache first) and its
 * train/val lists, the network built from the ARCH plugin, the loader,
 * the device, and the resolved configuration for config.json.
 *
 *     ax_train_opts t = o->train;
 *     ax_train_input in = o->input;
 *     char devname[32], cache[AX_TRAIN_PATH_MAX];
 *     ax_train_prepare(&t, &in, NULL, devname, cache);     // t.device, in.data: the cache folder
 *     ax_train_lists lists;
 *     ax_train_lists_open(&lists, in.data);                 // train (>= 1) and val paths
 *     ax_train_net_build(&net, &plan, arch, "pretrain", in.patch, t.seed, stream, in_ch, out_ch);
 *     ax_train_loader_new(&loader, &in, lists.train, lists.n_train, t.seed, true, false);
 *     json_t *j = ax_train_config_begin("pretrain", in.data, t.out);  // then the runner's keys
 *     ax_train_config_add_run(j, &in, &t);                             // patch .. optim
 *     char *text = ax_train_config_dump(j);                             // steals j
 *     ax_train_lists_clear(&lists);
 */
#ifndef AXON_HOST_TRAIN_SETUP_H
#define AXON_HOST_TRAIN_SETUP_H

#include <jansson.h>

#include "axon/dataset.h"
#include "axon/loader.h"
#include "axon/preprocess.h"
#include "registry.h"
#include "train_checkpoint.h"
#include "train_core.h"

/* What a runner trains on and how it samples it. */
typedef struct ax_train_input {
    const char *data;                 /* a cache folder (index.json), or NULL with one of: */
    const ax_dataset_opts *dataset;   /* a dataset on disk, preprocessed into <out>/cache first
                                       * (cases already there and up to date are kept) */
    const ax_dataset *dataset_object; /* the same, already open (borrowed) */
    double spacing[3];                /* preprocessing target (all 0: each case's own) */
    const ax_instance *const *augs;   /* [optional] AUG instances in order (borrowed) */
    size_t n_augs;
    int32_t patch[3];                 /* D, H, W (default 64^3) */
    int32_t batch;                    /* default 2 */
    int32_t threads;                  /* loader and preprocessing threads (0: online CPUs) */
    double oversample_fg;             /* loader foreground oversampling (default 0) */
} ax_train_input;

ax_train_input ax_train_input_default(void);
/* Data given, AUG instances, patch and batch >= 1; errors start with `what`. */
ax_status ax_train_input_check(const ax_train_input *in, const char *what);

/* Before a run: t->device resolved (ax_train_device_resolve, into
 * devname[32]), and in->data the cache folder: given, or the dataset
 * preprocessed into <t->out>/cache (into cache[AX_TRAIN_PATH_MAX]; with
 * `split` [optional]; failed cases warned about). */
ax_status ax_train_prepare(ax_train_opts *t, ax_train_input *in, const ax_split_opts *split, char *devname,
                           char *cache);

/* The cache's "train" (at least one, else an error naming the folder) and
 * "val" cases as paths (owned; ax_train_lists_clear). */
typedef struct ax_train_lists {
    char **train, **val;
    size_t n_train, n_val;
} ax_train_lists;

ax_status ax_train_lists_open(ax_train_lists *l, const char *data);
void ax_train_lists_clear(ax_train_lists *l); /* zeroes it */

/* The ARCH instance's network for in_ch -> out_ch, weights drawn from
 * Philox (seed, stream); *plan: the arch's plan. Fails (naming `what`, the
 * patch and the arch) when the patch is not a multiple of the plan's
 * divisor, or the arch lacks build()/plan(). *net: new reference. */
ax_status ax_train_net_build(ax_module **net, ax_arch_plan *plan, const ax_instance *arch, const char *what,
                             const int32_t patch[3], uint64_t seed, uint64_t stream, int64_t in_ch, int64_t out_ch);

/* A loader over the cases paths[0..n) with in's patch, batch, threads and
 * foreground oversampling; in's augmentations when `augment`; label maps
 * in the batches when `labels`. */
ax_status ax_train_loader_new(ax_loader **ld, const ax_train_input *in, char **paths, size_t n, uint64_t seed,
                              bool augment, bool labels);

/* dev, or $AXON_DEVICE (else "cpu") when dev is NULL, checked: a bad name
 * fails naming the key "device" and the value. *out: dev or buf ([32]). */
ax_status ax_train_device_resolve(const char *dev, char *buf, const char **out);

/* res with its numbers NaN and the rest zero. */
void ax_train_result_reset(ax_train_result *res);
/* t->config_json and the weights-file metadata from meta (both borrowed). */
void ax_train_opts_attach(ax_train_opts *t, const char *config_json, const ax_checkpoint_meta *meta);
/* Append key = value (steals value, a malloc'd string; NULL: out of memory). */
ax_status ax_train_meta_add(ax_checkpoint_meta *m, const char *key, char *value);

/* config.json pieces, in the order both runners write them. */
/* {"runner", "data", "out"} (new reference) */
json_t *ax_train_config_begin(const char *runner, const char *data, const char *out);
/* {"name", "params": what was set} of a plugin instance (new reference) */
json_t *ax_train_plugin_json(const ax_instance *inst);
/* [plugin json of each aug] (new reference) */
json_t *ax_train_augs_json(const ax_instance *const *augs, size_t n);
/* adds "patch", "batch", "steps", "seed" and "optim" to j */
void ax_train_config_add_run(json_t *j, const ax_train_input *in, const ax_train_opts *t);
/* The text of j, indented, in insertion order; steals j. NULL: out of memory. */
char *ax_train_config_dump(json_t *j);

#endif
