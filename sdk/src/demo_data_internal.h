/* Private pieces of the demo-data generator (sdk/src/demo_data*.c): the
 * prepared templates and the synthesis of one subject. */
#ifndef AXON_DEMO_DATA_INTERNAL_H
#define AXON_DEMO_DATA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/demo.h"
#include "axon/status.h"

/* The templates on their own grid (RAS, D = z, H = y, W = x). */
typedef struct ax_demo_templates {
    int32_t shape[3];  /* D, H, W */
    double spacing[3]; /* mm */
    float *t1;         /* [D, H, W] T1 intensity scaled so white matter is about 0.7, smoothed for the output spacing */
    uint8_t *label;    /* [D, H, W] ax_demo_label */
    uint8_t *head;     /* [D, H, W] 1 on the head (holes filled) */
    uint8_t *face;     /* [D, H, W] 1 on the anterior-inferior face, outside the brain */
} ax_demo_templates;

/* Read ch2, ch2bet and aal from `dir` and prepare them for output voxels of
 * about `spacing` mm. */
ax_status ax_demo_templates_load(ax_demo_templates *t, const char *dir, double spacing);
void ax_demo_templates_free(ax_demo_templates *t);

typedef enum ax_demo_contrast {
    AX_DEMO_T1W = 0,
    AX_DEMO_T2W = 1,
    AX_DEMO_FLAIR = 2,
    AX_DEMO_PDW = 3
} ax_demo_contrast;

/* BIDS suffix of a contrast ("T1w", ...; static). */
const char *ax_demo_contrast_name(ax_demo_contrast c);

typedef struct ax_demo_subject_opts {
    uint64_t seed;
    uint64_t stream;        /* the subject's own random stream */
    double spacing;         /* mm */
    bool vary_geometry;     /* random voxel size (1-1.35x) and field of view (78-100%) */
    ax_demo_contrast contrast;
    bool deface;            /* zero the face and report it in `deface` */
} ax_demo_subject_opts;

/* One synthetic scan: all arrays [D, H, W] of `shape`, owned (free with
 * ax_demo_subject_clear). */
typedef struct ax_demo_subject {
    int32_t shape[3];
    double spacing[3];
    float *image;           /* intensities in scanner-like units (0 .. a few thousand) */
    uint8_t *label;         /* ax_demo_label */
    uint8_t *head;          /* fb_mask */
    uint8_t *deface;        /* 1 where the face was removed */
    double quality;         /* image_quality_score, 1 (best) .. 5 */
} ax_demo_subject;

ax_status ax_demo_subject_make(const ax_demo_templates *t, const ax_demo_subject_opts *o, ax_demo_subject *s);
void ax_demo_subject_clear(ax_demo_subject *s);

#endif
