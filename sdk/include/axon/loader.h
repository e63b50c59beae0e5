/* axon/loader.h — the threaded training-batch loader.
 *
 * Worker threads cut patches from preprocessed cases (axon/cache.h), run the
 * augmentation chain (AUG plugin ops, each with its own RNG stream) and
 * collate batches into a bounded prefetch queue. The batch for step k
 * depends only on (seed, k): sample b of step k uses the RNG stream
 * (seed, k * batch + b) for case choice, patch position and every
 * augmentation, so 1 thread and 16 threads give the same bytes, and a
 * resumed run gets the batches it would have had.
 *
 *     ax_loader_opts o = ax_loader_opts_default();
 *     o.paths = paths; o.n_paths = n;          // from ax_cache_list()
 *     o.patch[0] = o.patch[1] = o.patch[2] = 64;
 *     o.batch = 2; o.threads = 4; o.seed = 1234;
 *     o.augs = augs; o.n_augs = 2;             // { ops, self } pairs
 *     ax_loader *ld;
 *     ax_loader_new(&ld, &o);
 *     ax_loader_seek(ld, start_step);          // resume
 *     for (...) {
 *         ax_batch b;
 *         ax_loader_next(ld, &b);              // b.image: [N, C, D, H, W]
 *         ...
 *         ax_batch_clear(&b);
 *     }
 *     ax_loader_free(ld);                      // joins the workers
 *
 * Patch sampling: a case chosen uniformly, then a uniform position (the
 * patch inside the volume, or the volume inside the patch along an axis
 * where it is smaller), or with probability `oversample_fg` a patch centred
 * on a random voxel of the case's fg list, jittered by up to patch/4 per
 * axis so the voxel stays inside. When an augmentation has extent(), every
 * sample is cut at the largest extent of the chain (at least patch *
 * enlarge), centred on the patch, with sample.target = patch; the chain's
 * output is centre-cropped to `patch` afterwards, so rotation loses no
 * border. Regions outside the volume are zero (image) and 0 (label). The
 * sample's mask is not filled (NULL).
 *
 * Random words: sample b of step k reads stream (seed, k * batch + b);
 * placement from word 0, AUG i (0-based) from word (i + 1) * 2^40, so one
 * augmentation's draws never shift another's.
 *
 * Memory: each worker owns one scratch box of the extent (untouched zero
 * pages are not written); batch tensors come from a small pool and go back
 * to it when the caller's last view is freed, so a steady loop allocates
 * nothing. Batches stay valid after ax_loader_free.
 *
 * Errors: a failing augmentation (or a chain that leaves a wrong shape)
 * fails ax_loader_next for that step with "aug 'NAME' (case FILE, step K,
 * sample B): message" (the lowest failing sample of the step); the loader
 * stays on that step, reporting it again, until ax_loader_seek.
 */
#ifndef AXON_LOADER_H
#define AXON_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/plugin.h"
#include "axon/status.h"
#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One augmentation in the chain: the plugin's ops and its instance
 * (borrowed; must outlive the loader). */
typedef struct ax_loader_aug {
    const ax_aug_ops *ops;
    const void *self;
    const char *name;        /* for error messages */
} ax_loader_aug;

typedef struct ax_loader_opts {
    const char *const *paths; /* case files (borrowed during ax_loader_new) */
    size_t n_paths;
    int32_t patch[3];         /* D, H, W of the output patch (default 64^3) */
    int32_t batch;            /* N (default 2) */
    int32_t threads;          /* worker threads (default 0: online CPUs) */
    int32_t prefetch;         /* batches queued ahead (default 0: 2 * threads) */
    uint64_t seed;
    double oversample_fg;     /* fraction of samples centred on foreground (default 0.33) */
    const ax_loader_aug *augs; /* [optional] applied in order */
    size_t n_augs;
    bool labels;              /* also collate labels (segmentation); default false */
    double enlarge;           /* patch enlargement factor for spatial augs (default 1: computed from the augs) */
} ax_loader_opts;

ax_loader_opts ax_loader_opts_default(void);

typedef struct ax_batch {
    ax_tensor *image;        /* [N, C, D, H, W] float32 (owned by the batch) */
    ax_tensor *label;        /* [N, 1, D, H, W] uint8, NULL unless opts.labels */
    int64_t step;            /* k */
} ax_batch;

typedef struct ax_loader ax_loader;

/* Opens every case (errors name the file), starts the workers at step 0.
 * *out: new (ax_loader_free). */
ax_status ax_loader_new(ax_loader **out, const ax_loader_opts *opts);
/* Restart the stream at step k (waits for samples in flight, drops queued
 * batches); clears a reported worker error. */
ax_status ax_loader_seek(ax_loader *ld, int64_t step);
/* The next batch, in step order; blocks until it is ready. An error from a
 * worker (a failing augmentation) is returned here with its message. */
ax_status ax_loader_next(ax_loader *ld, ax_batch *out);
void ax_batch_clear(ax_batch *b);
/* Stops and joins the workers, unmaps the cases. NULL-safe. */
void ax_loader_free(ax_loader *ld);

#ifdef __cplusplus
}
#endif
#endif
