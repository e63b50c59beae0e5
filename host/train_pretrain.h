/* host/train_pretrain.h — the self-supervised pre-training runner: a
 * preprocessed cache folder, AUG plugins in the loader, an ARCH plugin
 * built for the data's channels and the METHOD's output channels, and the
 * generic loop of train_core.h.
 *
 *     ax_pretrain_opts o = ax_pretrain_opts_default();
 *     o.train.out = "runs/mae"; o.train.steps = 2000;
 *     o.input.data = "runs/mae/cache";         // from `axon preprocess`
 *     o.arch = arch; o.method = mae;           // ax_instance (borrowed)
 *     o.input.augs = augs; o.input.n_augs = 2;
 *     o.input.patch[0] = o.input.patch[1] = o.input.patch[2] = 64; o.input.batch = 2;
 *     ax_train_result r;
 *     if (ax_pretrain_run(&o, &r) != AX_OK) fprintf(stderr, "axon: %s\n", ax_error_message());
 *
 * Step k trains on the loader's batch k (seed o.train.seed) with the
 * method's RNG stream (seed ^ AX_PRETRAIN_METHOD_SALT, k). Validation
 * averages the method's loss over o.val_batches fixed batches of the
 * cache's "val" split (the loader at steps 0.. of seed ^
 * AX_PRETRAIN_VAL_SALT, no augmentation, method streams 0..), so every
 * evaluation of every run with the same seed sees the same patches and
 * masks. A cache without "val" cases validates on "train" cases (with a
 * warning).
 */
#ifndef AXON_HOST_TRAIN_PRETRAIN_H
#define AXON_HOST_TRAIN_PRETRAIN_H

#include "axon/dataset.h"
#include "registry.h"
#include "train_core.h"
#include "train_setup.h"

#define AX_PRETRAIN_METHOD_SALT 0x6d6574686f64ull /* "method" */
#define AX_PRETRAIN_VAL_SALT 0x76616c6964ull      /* "valid" */
#define AX_PRETRAIN_INIT_STREAM 0x696e6974ull     /* "init": weight initialisation */

typedef struct ax_pretrain_opts {
    ax_train_opts train;        /* loop, optimizer, schedule, checkpoints */
    ax_train_input input;       /* data, augmentations, patch, batch, loader threads (train_setup.h;
                                 * oversample_fg default 0: pre-training samples uniformly) */
    const ax_instance *arch;    /* ARCH instance (borrowed) */
    const ax_instance *method;  /* METHOD instance (borrowed) */
    int32_t val_batches;        /* default 2 */
} ax_pretrain_opts;

ax_pretrain_opts ax_pretrain_opts_default(void);

/* Run (or resume) a pre-training. The run folder gets config.json (every
 * resolved setting), metrics.jsonl and checkpoints/ (train_core.h), whose
 * weights rebuild the network alone (train_checkpoint.h). */
ax_status ax_pretrain_run(const ax_pretrain_opts *o, ax_train_result *res);

#endif
