/* host/report.h — a self-contained HTML report of an experiment: curves of
 * every run's metrics.jsonl (inline SVG), a throughput table, a results
 * table given by the caller, the METHOD preview of a pre-training run
 * (MAE: input, masked input, reconstruction) and orthogonal slices of test
 * cases with their label and predictions (inline PNG). No scripts, no
 * network: the file opens anywhere.
 *
 *     ax_report_run runs[] = {{"MAE pre-training", "runs/demo/mae"},
 *                             {"fine-tune, MAE init", "runs/demo/seg_mae"}};
 *     ax_report_opts o = ax_report_opts_default();
 *     o.out = "runs/demo/report.html"; o.title = "axon demo";
 *     o.runs = runs; o.n_runs = 2;
 *     o.preview_run = "runs/demo/mae"; o.registry = reg;   // [optional]
 *     if (ax_report_write(&o) != AX_OK) fprintf(stderr, "axon: %s\n", ax_error_message());
 *
 * The file is written atomically. A run without metrics.jsonl, a preview
 * that cannot be computed or a case that cannot be read is an error naming
 * the file (a report should not silently miss what it was asked to show).
 */
#ifndef AXON_HOST_REPORT_H
#define AXON_HOST_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"
#include "registry.h"

typedef struct ax_report_run {
    const char *name; /* legend */
    const char *dir;  /* run folder: metrics.jsonl, config.json */
} ax_report_run;

/* One case shown as axial / coronal / sagittal slices through its centre. */
typedef struct ax_report_case {
    const char *title;
    const char *image;          /* NIfTI (first channel shown) */
    const char *label;          /* [optional] reference label map */
    const char *preds[4];       /* [optional] predicted label maps */
    const char *pred_names[4];
    size_t n_preds;
} ax_report_case;

typedef struct ax_report_opts {
    const char *out;            /* the .html file */
    const char *title;
    const char *intro;          /* [optional] paragraph under the title (plain text, escaped) */
    const char *notes;          /* [optional] paragraph after the results */
    const ax_report_run *runs;
    size_t n_runs;
    const char *table_title;    /* [optional] */
    const char *const *table_header; /* [table_cols] */
    size_t table_cols;
    const char *const *table_cells;  /* [table_rows, table_cols] row-major */
    size_t table_rows;
    const char *preview_run;    /* [optional] pre-training run whose METHOD preview is shown */
    ax_registry *registry;      /* needed with preview_run */
    const ax_report_case *cases;
    size_t n_cases;
} ax_report_opts;

ax_report_opts ax_report_opts_default(void);

ax_status ax_report_write(const ax_report_opts *o);

/* ---- pieces (report_png.c) ----------------------------------------------------------- */

/* PNG of 8-bit pixels, `channels` 1 (grey) or 3 (RGB), rows top first.
 * pixels: [h, w, channels]. *png: new buffer (free()), *n its size. */
ax_status ax_png_encode(const uint8_t *pixels, int w, int h, int channels, uint8_t **png, size_t *n);

/* Base64 (RFC 4648, padded) of data[0..n): new NUL-terminated string, NULL on OOM. */
char *ax_base64(const uint8_t *data, size_t n);

#endif
