/* host/train_pretrain.h — the self-supervised pre-training runner: a
 * preprocessed cache folder, AUG plugins in the loader, an ARCH plugin
 * built for the data's channels and the METHOD's output channels, and the
 * generic loop of train_core.h.
 *
 *     ax_pretrain_opts o = ax_pretrain_opts_default();
 *     o.train.out = "runs/mae"; o.train.steps = 2000;
 *     o.data = "runs/mae/cache";               // from `axon preprocess`
 *     o.arch = arch; o.method = mae;           // ax_instance (borrowed)
 *     o.augs = augs; o.n_augs = 2;
 *     o.patch[0] = o.patch[1] = o.patch[2] = 64; o.batch = 2;
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

#define AX_PRETRAIN_METHOD_SALT 0x6d6574686f64ull /* "method" */
#define AX_PRETRAIN_VAL_SALT 0x76616c6964ull      /* "valid" */
#define AX_PRETRAIN_INIT_STREAM 0x696e6974ull     /* "init": weight initialisation */

typedef struct ax_pretrain_opts {
    ax_train_opts train;        /* loop, optimizer, schedule, checkpoints */
    const char *data;           /* cache folder with index.json, or NULL with `dataset`/`dataset_object` */
    /* [optional] a dataset on disk, preprocessed into <out>/cache first
     * (cases already there and up to date are kept, so a resumed run does
     * not redo them) with `spacing` (all 0: each case's own). */
    const ax_dataset_opts *dataset;
    const ax_dataset *dataset_object; /* [optional] instead of `dataset`: an open one (borrowed) */
    double spacing[3];
    const ax_instance *arch;    /* ARCH instance (borrowed) */
    const ax_instance *method;  /* METHOD instance (borrowed) */
    const ax_instance *const *augs; /* [optional] AUG instances in order (borrowed) */
    size_t n_augs;
    int32_t patch[3];           /* D, H, W (default 64^3) */
    int32_t batch;              /* default 2 */
    int32_t threads;            /* loader threads (0: online CPUs) */
    int32_t val_batches;        /* default 2 */
    double oversample_fg;       /* loader foreground oversampling (default 0: pre-training samples uniformly) */
} ax_pretrain_opts;

ax_pretrain_opts ax_pretrain_opts_default(void);

/* Run (or resume) a pre-training. The run folder gets config.json (every
 * resolved setting), metrics.jsonl and checkpoints/ (train_core.h), whose
 * weights rebuild the network alone (train_checkpoint.h). */
ax_status ax_pretrain_run(const ax_pretrain_opts *o, ax_train_result *res);

#endif
