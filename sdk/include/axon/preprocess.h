/* axon/preprocess.h — a dataset on disk -> a cache of case files
 * (axon/cache.h), and predictions back to each input's own geometry.
 *
 * Per case, in parallel over cases:
 *   1. read every channel (ax_volume_read, reoriented to RAS), the label and
 *      the anatomy mask; all must share the first image's shape and affine
 *      (within `geometry_tol`), else the case fails with a reason naming
 *      the file;
 *   2. crop to the anatomy mask's bounding box when there is one (and
 *      `crop_to_mask`), else to the nonzero voxels of any channel (nnU-Net's
 *      crop_to_nonzero, without its hole filling), else keep the whole
 *      volume;
 *   3. z-score each channel: mean and std over the cropped box, or, with
 *      `mask_norm`, over the anatomy mask (or the nonzero region when there
 *      is no mask) with voxels outside set to 0 — nnU-Net's
 *      ZScoreNormalization with use_mask_for_norm;
 *   4. resample to `spacing` (trilinear images, nearest labels and masks,
 *      edge values replicated, half-voxel aligned as skimage's resize that
 *      nnU-Net uses; new shape = round(shape * old / new spacing)); with no
 *      target spacing each case keeps its own;
 *   5. list up to `max_fg` labelled voxels (mask voxels when there is no
 *      label), chosen by seeded selection sampling so a rerun picks the
 *      same ones, and the classes present;
 *   6. write <out>/<name>.axc atomically. Its metadata holds a hash of the
 *      inputs (path, size, mtime) and of the parameters; a later run skips a
 *      case whose file carries the same hash (resume), unless `force`.
 * Finally <out>/index.json lists every case written or up to date with its
 * subject and split (axon/dataset.h: ax_dataset_split over those cases,
 * so failed cases never leave the training set empty), and the failed ones
 * with their reasons under "failed".
 *
 *     ax_preprocess_opts o = ax_preprocess_opts_default();
 *     o.out = "cache/hippocampus";
 *     o.spacing[0] = o.spacing[1] = o.spacing[2] = 1.0;
 *     ax_preprocess_report rep;
 *     if (ax_preprocess_run(ds, &o, &rep) != AX_OK) ...     // bad arguments or every case failed
 *     printf("%zu done, %zu skipped, %zu failed\n", rep.n_done, rep.n_skipped, rep.n_failed);
 *     for (size_t i = 0; i < rep.n_failed; i++) printf("%s: %s\n", rep.failed_names[i], rep.failed_reasons[i]);
 *     ax_preprocess_report_free(&rep);
 *
 * Predictions go back the other way:
 *
 *     ax_case *c; ax_case_open(&c, "cache/hippocampus/hippocampus_001.axc");
 *     uint8_t *pred = ...;                                  // [D, H, W] in the cache grid
 *     ax_volume *v;
 *     ax_case_restore_labels(&v, pred, c->shape, c->json);  // the input's RAS grid
 *     ax_volume_write(v, "pred.nii.gz", AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_U8);  // its own orientation
 */
#ifndef AXON_PREPROCESS_H
#define AXON_PREPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/dataset.h"
#include "axon/status.h"
#include "axon/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Progress: called once per finished case (done, skipped or failed), from
 * the worker that finished it but never concurrently. status: AX_OK for
 * done or skipped, else the failure; reason: NULL or the failure message. */
typedef void (*ax_preprocess_progress_fn)(void *ctx, size_t finished, size_t total, const char *name, bool skipped,
                                          ax_status status, const char *reason);

typedef struct ax_preprocess_opts {
    const char *out;            /* cache folder (created when missing) */
    double spacing[3];          /* target mm along D, H, W; all 0 = keep each case's own (default) */
    int32_t threads;            /* worker threads; 0 = online CPUs (default) */
    bool mask_norm;             /* z-score inside the mask / nonzero region only (default false) */
    bool crop_to_mask;          /* crop to the anatomy mask when there is one (default true) */
    bool force;                 /* redo cases that are up to date (default false) */
    int64_t max_fg;             /* foreground points kept per case (default 10000) */
    double geometry_tol;        /* affine entries may differ by tol * (1 + |value|) (default 1e-4) */
    ax_split_opts split;        /* validation split written to index.json */
    ax_preprocess_progress_fn progress; /* [optional] */
    void *progress_ctx;
} ax_preprocess_opts;

ax_preprocess_opts ax_preprocess_opts_default(void);

typedef struct ax_preprocess_report {
    size_t n_total;
    size_t n_done;              /* written by this run */
    size_t n_skipped;           /* up to date from an earlier run */
    size_t n_failed;
    char **failed_names;        /* [n_failed] owned by the report */
    char **failed_reasons;      /* [n_failed] one line each, naming the file */
} ax_preprocess_report;

/* Preprocess every case of `ds` into opts->out. Broken cases are reported
 * in *report and skipped; the call fails (report still filled) only for
 * bad options, an unwritable folder or index, or when every case failed.
 * report: [optional]; free with ax_preprocess_report_free. */
ax_status ax_preprocess_run(const ax_dataset *ds, const ax_preprocess_opts *opts, ax_preprocess_report *report);
void ax_preprocess_report_free(ax_preprocess_report *report); /* NULL-safe; zeroes it */

/* A ready-made progress callback. ctx: a FILE * (stderr when NULL). On a
 * terminal it redraws one bar line; otherwise it prints one line per case
 * ("[3/40] sub-01_T1w done"), failures always with their reason. */
void ax_preprocess_progress_print(void *ctx, size_t finished, size_t total, const char *name, bool skipped,
                                  ax_status status, const char *reason);

/* Map a label map in a case's cache grid back to the grid of its input:
 * undo the resampling (nearest) and the crop (zeros outside the box).
 * labels: [D, H, W] (shape = the case's shape); meta_json: the case's
 * metadata (ax_case.json). *out: new single-channel volume whose affine
 * and `source` are the input's, so ax_volume_write(...,
 * AX_VOLUME_WRITE_ORIGINAL, ...) reproduces the input's own voxel grid,
 * orientation and affine. */
ax_status ax_case_restore_labels(ax_volume **out, const uint8_t *labels, const int32_t shape[3], const char *meta_json);

#ifdef __cplusplus
}
#endif
#endif
