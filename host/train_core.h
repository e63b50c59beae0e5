/* host/train_core.h — the generic training loop shared by the runners
 * (pre-training now, segmentation fine-tuning next): optimizer and
 * schedule, gradient clipping, skipping of non-finite steps, periodic
 * validation, checkpoints with exact resume, SIGINT/SIGTERM handling,
 * progress output and metrics.jsonl.
 *
 * A runner supplies the network and two callbacks (the loss of training
 * step k, the validation loss) and metadata for the weights file:
 *
 *     static ax_status my_loss(void *ctx, int64_t step, ax_tensor **loss) {
 *         ... batch k of the loader, method RNG from (seed, step) ...
 *     }
 *     ax_train_opts o = ax_train_opts_default();
 *     o.out = "runs/mae"; o.steps = 1000; o.resume = true;
 *     ax_train_hooks h = { .ctx = me, .train_loss = my_loss, .val_loss = my_val };
 *     ax_train_result r;
 *     if (ax_train_run(net, &o, &h, &r) != AX_OK) fprintf(stderr, "axon: %s\n", ax_error_message());
 *     printf("%s at step %lld\n", r.checkpoint, (long long)r.step);
 *
 * Run folder (o.out):
 *     config.json                    o.config_json, written at start
 *     metrics.jsonl                  one JSON object per logged step:
 *                                    {"step", "loss", "lr", "grad_norm", "time"[, "val_loss"][, "skipped"]};
 *                                    a fresh run starts with {"step": 0, "val_loss", "time"}, the
 *                                    untrained network's validation loss
 *     checkpoints/latest.safetensors weights + metadata (o.meta_* and "step")
 *     checkpoints/state_<step>.optim.safetensors, state_<step>.json
 *                                    optimizer buffers, and step, seed, loader
 *                                    position, RNG and skip counters
 *     checkpoints/step_<step>.safetensors  every o.keep_every steps
 * `step` in files counts finished steps: a checkpoint at step s resumes at
 * loop index s. Every file is written atomically (temporary, fsync,
 * rename); the state is written first and the weights last, and the
 * weights name their state file, so a kill at any moment leaves a
 * consistent pair (older state files are removed only after the weights
 * that replace them are on disk).
 *
 * Exact resume: the batch and every random draw of step k must depend only
 * on (seed, k) (the loader's contract; the method RNG is derived from
 * (seed, k); ax_module_set_rng(net, seed, k) is called per step), so a run
 * killed with SIGKILL and resumed ends with the same weights, bit for bit
 * on the CPU, as one that never stopped.
 *
 * A step whose loss or gradient norm is NaN/Inf is skipped (no update) and
 * counted; after o.max_nonfinite consecutive ones the run stops with
 * AX_ERR_INVALID, leaving the last good checkpoint in place.
 * SIGINT/SIGTERM: the handler only sets a flag; the loop saves a checkpoint
 * at the next step boundary and returns AX_ERR_INTERRUPTED.
 */
#ifndef AXON_HOST_TRAIN_CORE_H
#define AXON_HOST_TRAIN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/nn.h"
#include "axon/optim.h"
#include "axon/status.h"

#define AX_TRAIN_PATH_MAX 4096

/* Optimizer settings (see axon/optim.h for the update rules). */
typedef struct ax_train_optim {
    ax_optim_kind kind;  /* AX_OPTIM_SGD (default) or AX_OPTIM_ADAMW */
    double lr;           /* base learning rate (default 1e-2) */
    double momentum;     /* SGD (default 0.99) */
    bool nesterov;       /* SGD (default true) */
    double weight_decay; /* default 3e-5 */
    double beta1, beta2; /* AdamW (defaults 0.9, 0.98: the reference's Transformer setting) */
    double eps;          /* AdamW (default 1e-8) */
} ax_train_optim;

typedef struct ax_train_opts {
    const char *out;          /* run folder (created) */
    int64_t steps;            /* total steps (> 0) */
    uint64_t seed;
    ax_train_optim optim;
    ax_lr_schedule schedule;  /* base_lr and total_steps are filled from optim.lr and steps
                               * when left 0; default poly 0.9 without warm-up */
    double clip;              /* global grad-norm clip; <= 0 disables (default 12) */
    int64_t save_every;       /* latest checkpoint every N steps (default 50; the last step always) */
    int64_t keep_every;       /* also keep step_<s>.safetensors every N steps (0: never) */
    int64_t val_every;        /* validation every N steps (0: only at the end) */
    int64_t log_every;        /* metrics/plain progress line every N steps (0: about 20 lines a run) */
    int max_nonfinite;        /* consecutive NaN/Inf steps before giving up (default 5) */
    bool resume;              /* continue from out/checkpoints/latest.safetensors when present */
    int progress;             /* -1: bar on a terminal, lines otherwise (default); 0: quiet; 1: lines */
    const char *config_json;  /* [optional] the resolved configuration, saved as out/config.json */
    size_t n_meta;            /* weights-file metadata (besides "step" and "state") */
    const char *const *meta_keys;
    const char *const *meta_values;
    /* [optional] where the net trains: "cpu", "cuda", "cuda:N"; NULL: where the
     * net already is (the runners pass $AXON_DEVICE, else "cpu", from
     * ax_train_device_resolve). The net is moved there for the run
     * (ax_module_to_device) and back to where it was when the run ends; the
     * hooks receive it there and must put their batches on its device
     * (ax_train_to_net_device). Syncs with a GPU per step: the logged loss
     * value and the gradient norm (one small read each). */
    const char *device;
    /* [optional] "bf16": the training loss is computed in a bf16 autocast
     * region (axon/amp.h: convolutions and matmuls in bf16 where the
     * device's backend has them, f32 master weights, norms/losses in f32);
     * NULL or "off": f32. Backward, clipping and the step run outside it. */
    const char *amp;
} ax_train_opts;

ax_train_opts ax_train_opts_default(void);
/* "sgd"/"adamw" -> kind; AX_ERR_INVALID naming the choices. */
ax_status ax_train_optim_parse(const char *name, ax_optim_kind *kind);

typedef struct ax_train_hooks {
    void *ctx;
    /* The loss of loop step `step` (0-based). *loss: new reference, a
     * scalar that requires grad. The network is in training mode. */
    ax_status (*train_loss)(void *ctx, int64_t step, ax_tensor **loss);
    /* [optional] The mean validation loss over fixed batches. Runs in eval
     * mode under no-grad. */
    ax_status (*val_loss)(void *ctx, double *loss);
    /* [optional] The learning rate of step `step`, for a schedule that
     * ax_lr_schedule cannot express (fine-tuning's two warm-ups); a pure
     * function of the step, so a resumed run gets the same rates. NULL:
     * o->schedule. */
    double (*lr_at)(void *ctx, int64_t step);
    /* [optional] More validation numbers (e.g. Dice), logged beside
     * val_loss: val_loss() fills val_metric_values[0..n_val_metrics)
     * (runner-owned arrays), NaN for "undefined". */
    size_t n_val_metrics;
    const char *const *val_metric_names;
    const double *val_metric_values;
} ax_train_hooks;

typedef struct ax_train_result {
    int64_t step;          /* finished steps */
    int64_t start_step;    /* where this call began (0, or the resumed step) */
    double loss;           /* last finite training loss (NaN if none) */
    double lr, grad_norm;
    double val_loss;       /* last validation loss (NaN if none) */
    double first_val_loss; /* validation loss before the first step (fresh runs with val_loss; else NaN) */
    int64_t skipped;       /* non-finite steps skipped over the whole run */
    bool interrupted;      /* stopped by SIGINT/SIGTERM */
    char checkpoint[AX_TRAIN_PATH_MAX]; /* out/checkpoints/latest.safetensors ("" if none) */
} ax_train_result;

/* Train `net` (borrowed; its parameters are updated in place). res is
 * filled also on failure as far as the run got. Errors: bad options, a
 * run folder that holds a checkpoint without o.resume (AX_ERR_STATE),
 * a hook error (with its message), AX_ERR_INVALID after too many
 * non-finite steps, AX_ERR_INTERRUPTED after a signal (checkpoint saved). */
ax_status ax_train_run(ax_module *net, const ax_train_opts *o, const ax_train_hooks *h, ax_train_result *res);

/* ---- helpers shared with the runners ---------------------------------------- */

/* *out = x on the device of net's parameters: x itself (retained) when it
 * is already there, else a copy (ax_tensor_to_device). */
ax_status ax_train_to_net_device(const ax_module *net, const ax_tensor *x, ax_tensor **out);
/* The first element of t (any device) as a double. */
ax_status ax_train_scalar(const ax_tensor *t, double *v);

/* mkdir -p. */
ax_status ax_train_mkdirs(const char *path);

#endif
