/* host/train_finetune.h — segmentation fine-tuning, prediction and
 * evaluation: the downstream half of the OpenMind benchmark.
 *
 * Fine-tuning trains an ARCH network for a TASK (out_channels from the
 * task) on a preprocessed cache (labels on), with the generic loop of
 * train_core.h, optionally starting from a pre-training checkpoint whose
 * stem and encoder are transferred (ax_transfer_pretrained; the decoder
 * starts fresh):
 *
 *     ax_finetune_opts o = ax_finetune_opts_default();
 *     o.train.out = "runs/seg"; o.train.steps = 1000;
 *     o.input.data = "runs/seg/cache";      // or o.input.dataset: preprocessed into out/cache
 *     o.task = seg;                         // ax_instance of "segmentation" (borrowed)
 *     o.init = "runs/mae/checkpoints/latest.safetensors";   // [optional]
 *     o.registry = reg;                     // to rebuild the arch from init when o.arch is NULL
 *     o.input.patch[0] = o.input.patch[1] = o.input.patch[2] = 64;
 *     ax_finetune_result r;
 *     if (ax_finetune_run(&o, &r) != AX_OK) fprintf(stderr, "axon: %s\n", ax_error_message());
 *
 * Schedules (the reference's CNN recipe: SGD-Nesterov, lr 1e-3 from a
 * checkpoint, 1e-2 from scratch):
 *   AX_FINETUNE_WARMUP_POLY  whole-network linear warm-up over `warmup`
 *                            steps, then poly 0.9 to the end;
 *   AX_FINETUNE_SAWTOOTH     nnssl's PretrainedTrainer_sawtooth: the decoder
 *                            alone (stem and encoder excluded from the
 *                            update; the input projection trains too when
 *                            its channels were adapted) warms up over
 *                            decoder_steps / 2 and trains with poly until
 *                            decoder_steps; then the whole network warms up
 *                            over `warmup` steps and trains with poly.
 * A parameter excluded from the update gets no gradient at all (it does
 * not require grad during those steps), which SGD and AdamW treat exactly
 * as a parameter missing from the optimizer. Unlike nnssl, the decoder's
 * momentum carries over into the whole-network phase.
 *
 * Validation (every val_every steps and at the end): each validation case
 * whole, Gaussian sliding window with the training patch, no mirroring; the
 * task's loss of the averaged logits and the Dice per class of their
 * argmax, averaged over cases: metrics.jsonl gets val_loss, val_dice_mean
 * and val_dice_<c>.
 *
 * Weights files carry, besides train_checkpoint.h's keys, "task" and
 * "task_params", "patch" ([D,H,W] JSON) and "preprocess" ({"spacing",
 * "mask_norm", "channels"} JSON), so `axon predict` needs the checkpoint
 * alone.
 */
#ifndef AXON_HOST_TRAIN_FINETUNE_H
#define AXON_HOST_TRAIN_FINETUNE_H

#include "axon/dataset.h"
#include "registry.h"
#include "train_core.h"
#include "train_setup.h"

#define AX_FINETUNE_VAL_SALT 0x76616c6964ull  /* "valid" */
#define AX_FINETUNE_INIT_STREAM 0x696e6974ull /* "init": weight initialisation */
#define AX_FINETUNE_MAX_CLASSES 32            /* Dice columns logged per validation */

typedef enum ax_finetune_schedule {
    AX_FINETUNE_WARMUP_POLY = 0,
    AX_FINETUNE_SAWTOOTH = 1
} ax_finetune_schedule;

typedef struct ax_finetune_opts {
    ax_train_opts train;        /* loop, optimizer, checkpoints (its schedule is set from the fields below) */
    ax_train_input input;       /* data, augmentations, patch, batch, loader threads (train_setup.h;
                                 * oversample_fg default 0.33, nnU-Net's) */
    ax_split_opts split;        /* validation split of the preprocessing */
    const ax_instance *task;    /* TASK instance (borrowed) */
    const ax_instance *arch;    /* [optional with init] ARCH instance (borrowed) */
    const char *init;           /* [optional] pre-training checkpoint: stem + encoder are transferred */
    ax_registry *registry;      /* [optional] to rebuild the arch from init's metadata */
    ax_finetune_schedule schedule;
    int64_t warmup;             /* whole-network warm-up steps (-1: steps / 20, the reference's 50 of 1000) */
    int64_t decoder_steps;      /* sawtooth: decoder-only steps (-1: steps / 20) */
    int32_t val_cases;          /* validation cases evaluated (0: all) */
    bool deep_supervision;      /* train on every output (the reference fine-tunes without) */
} ax_finetune_opts;

/* Defaults: SGD lr 1e-2 (set 1e-3 when fine-tuning from a checkpoint),
 * momentum 0.99, Nesterov, weight decay 3e-5, clip 12, warm-up poly. */
ax_finetune_opts ax_finetune_opts_default(void);

typedef struct ax_finetune_result {
    ax_train_result train;
    double val_dice_mean;        /* last validation's mean Dice (NaN if none) */
    int n_classes;               /* K, background included */
    double val_dice[AX_FINETUNE_MAX_CLASSES]; /* per class (index 0 unused) */
    size_t n_transferred;        /* keys copied from init (0 without) */
    size_t n_adapted;            /* of those, input projections adapted to the channels */
} ax_finetune_result;

/* Run (or resume) a fine-tuning; the run folder is train_core.h's. */
ax_status ax_finetune_run(const ax_finetune_opts *o, ax_finetune_result *res);

/* The learning rate of step `step` (0-based) of a fine-tuning schedule
 * with base rate `lr` over `steps` steps (warmup/decoder_steps resolved,
 * >= 0). Pure, for tests and plots. */
double ax_finetune_lr(ax_finetune_schedule kind, double lr, int64_t steps, int64_t warmup, int64_t decoder_steps,
                      int64_t step);

/* ---- prediction ------------------------------------------------------------------ */

typedef struct ax_predict_opts {
    const char *model;          /* run folder (its checkpoints/latest.safetensors) or a weights file */
    const char *input;          /* folder of <case>_<XXXX>.nii[.gz] (nnU-Net imagesTs) */
    const char *output;         /* folder for <case>.nii[.gz] label maps (created) */
    ax_registry *registry;      /* plugins for the arch and the task */
    int mirror;                 /* test-time mirroring: 1 on, 0 off, -1 the task's setting */
    int32_t threads;            /* preprocessing threads (0: online CPUs) */
    int progress;               /* 0 quiet, else a line per case on stderr */
    const char *device;         /* [optional] where the network runs: "cpu", "cuda", "cuda:N"; NULL:
                                 * $AXON_DEVICE, else the CPU. Label maps are decoded on the CPU. */
} ax_predict_opts;

ax_predict_opts ax_predict_opts_default(void);

typedef struct ax_predict_report {
    size_t n_done;
    size_t n_failed;
    char **names;               /* [n_done] cases written */
    char **failed_names;        /* [n_failed] */
    char **failed_reasons;      /* [n_failed] one line naming the file */
} ax_predict_report;

void ax_predict_report_free(ax_predict_report *r); /* NULL-safe; zeroes it */

/* Preprocess every input case as the model's training data was (its
 * recorded spacing and normalisation), predict with the task (Gaussian
 * sliding window at the training patch), decode, map back to the input's
 * own grid and write a u8 NIfTI named like the case. A broken case is
 * skipped and reported in *rep; the call fails only on bad arguments, a
 * model that cannot be loaded, an input folder whose cases do not all
 * have the model's channel count (the error names the file), or when
 * every case failed. rep: filled also on failure. */
ax_status ax_predict_run(const ax_predict_opts *o, ax_predict_report *rep);

/* ---- evaluation ------------------------------------------------------------------ */

typedef struct ax_evaluate_opts {
    const char *pred;           /* folder of predicted label maps */
    const char *ref;            /* folder of reference label maps (the same file names) */
    int32_t classes;            /* K, background included (>= 2) */
    bool hd95;                  /* also HD95 per class (mm) */
    const char *out_json;       /* [optional] summary file (atomic write) */
} ax_evaluate_opts;

ax_evaluate_opts ax_evaluate_opts_default(void);

/* Dice (and HD95) of every reference case against its prediction.
 * *summary_json: new string (free()) holding
 *   {"classes": K, "cases": [{"name", "dice": {"1": d, ...}, "dice_mean",
 *    ["hd95": {...}, "hd95_mean"]}], "mean": {"dice": {...}, "dice_mean", ...}}
 * (NaN written as null: a class in neither map). A missing prediction or a
 * shape mismatch is an error naming both files. */
ax_status ax_evaluate_run(const ax_evaluate_opts *o, char **summary_json);

#endif
