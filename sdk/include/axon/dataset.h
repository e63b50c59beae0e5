/* axon/dataset.h — the cases of a dataset on disk, before preprocessing.
 *
 * A dataset is a list of cases; a case is one or more channel images of
 * the same voxel grid, optionally a label map, an anatomy mask and a deface
 * mask, and the subject it belongs to (validation splits never cut through
 * a subject). Three layouts are understood:
 *
 *   "nifti-dir"  every .nii / .nii.gz under `root`, recursively (sorted),
 *                optionally filtered by an fnmatch(3) `glob` on the path
 *                relative to root ("*" also crosses "/"). One channel per
 *                file; the subject is the path's `sub-*` component when there
 *                is one, else the case name.
 *   "nnunet"     nnU-Net raw: root/dataset.json (channel_names, labels,
 *                numTraining, file_ending), imagesTr/<case>_<XXXX><ending>
 *                (one file per channel XXXX = 0000, 0001, ...),
 *                labelsTr/<case><ending>, and optionally imagesTs/ (cases
 *                marked `test`, labels from labelsTs/ when present).
 *   "openmind"   the OpenMind layout: root/openneuro_metadata.csv listing
 *                images (image_path, anon_mask_path, anat_mask_path,
 *                modality, image_quality_score; paths relative to root or
 *                to root/OpenMind) of OpenMind/<ds>/sub-XX/[ses-YY/]anat/.
 *                Masks default to <stem>__Data/{fb_mask,deface_mask}.nii.gz.
 *                Filters: quality score <= max_quality, modality include and
 *                exclude lists. The subject is "<ds>/sub-*".
 *
 *     ax_dataset_opts o = ax_dataset_opts_default();
 *     o.format = "nnunet";
 *     o.root = "nnUNet_raw/Dataset004_Hippocampus";
 *     ax_dataset *ds;
 *     if (ax_dataset_open(&ds, &o) != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *         // "nnunet: .../dataset.json: numTraining is 260 but imagesTr has 259 cases"
 *     for (size_t i = 0; i < ax_dataset_size(ds); i++)
 *         puts(ax_dataset_case_at(ds, i)->images[0]);
 *     uint8_t *split = malloc(ax_dataset_size(ds));     // AX_SPLIT_TRAIN / _VAL / _TEST
 *     ax_split_opts so = ax_split_opts_default();        // 1% of subjects, min 5, max 1000
 *     ax_dataset_split(ds, &so, split);
 *     ax_dataset_free(ds);
 *
 * The small RFC 4180 CSV reader used for the OpenMind metadata is public
 * too (quoted fields, doubled quotes, commas and newlines in quotes, CRLF,
 * a UTF-8 byte-order mark).
 *
 * Errors name the file, the key or column, and the value.
 */
#ifndef AXON_DATASET_H
#define AXON_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One case. Strings are owned by the dataset (borrowed by callers). */
typedef struct ax_dataset_case {
    const char *name;          /* unique; usable as a file name ("<name>.axc") */
    const char *subject;       /* grouping key of the split */
    const char *const *images; /* [n_images] full paths, channel order */
    int32_t n_images;
    const char *label;         /* [optional] full path of the label map */
    const char *mask;          /* [optional] anatomy (foreground) mask */
    const char *deface_mask;   /* [optional] anonymised region */
    const char *modality;      /* [optional] e.g. "T1w" */
    double quality;            /* image quality score (1 best .. 5 worst); NaN when unknown */
    bool test;                 /* a held-out test case (nnU-Net imagesTs) */
} ax_dataset_case;

typedef struct ax_dataset ax_dataset;

typedef struct ax_dataset_opts {
    const char *format;        /* "nifti-dir", "nnunet" or "openmind" */
    const char *root;          /* the dataset folder */
    const char *glob;          /* [optional] nifti-dir: fnmatch pattern on the relative path */
    bool include_test;         /* nnunet: also list imagesTs (default true) */
    const char *csv;           /* [optional] openmind: metadata file (default root/openneuro_metadata.csv) */
    double max_quality;        /* openmind: keep score <= this; NaN = no filter (default) */
    const char *const *modalities;         /* [optional] openmind: keep only these ... */
    size_t n_modalities;
    const char *const *exclude_modalities; /* [optional] ... and drop these */
    size_t n_exclude_modalities;
    bool skip_missing;         /* openmind: drop rows whose image is missing (default: error) */
} ax_dataset_opts;

ax_dataset_opts ax_dataset_opts_default(void);

/* *out: new (ax_dataset_free). An empty result (nothing matched) is an
 * error naming the root and the filters. */
ax_status ax_dataset_open(ax_dataset **out, const ax_dataset_opts *opts);
void ax_dataset_free(ax_dataset *ds); /* NULL-safe */

size_t ax_dataset_size(const ax_dataset *ds);
/* Case i < size (borrowed); NULL when out of range. */
const ax_dataset_case *ax_dataset_case_at(const ax_dataset *ds, size_t i);
const char *ax_dataset_format(const ax_dataset *ds); /* borrowed */
const char *ax_dataset_root(const ax_dataset *ds);   /* borrowed */
/* Channels per case: dataset.json's channel_names for nnunet, else 1. */
int32_t ax_dataset_channels(const ax_dataset *ds);
/* Channel name i (borrowed): "T1", ...; "0" when unnamed. */
const char *ax_dataset_channel_name(const ax_dataset *ds, int32_t i);
/* Label classes (nnunet dataset.json "labels", incl. background); 0 otherwise. */
size_t ax_dataset_n_labels(const ax_dataset *ds);
/* Class i's name (borrowed) and id; the order of dataset.json. */
const char *ax_dataset_label_name(const ax_dataset *ds, size_t i);
int32_t ax_dataset_label_id(const ax_dataset *ds, size_t i);

/* ---- train / validation split ------------------------------------------ */

enum { AX_SPLIT_TRAIN = 0, AX_SPLIT_VAL = 1, AX_SPLIT_TEST = 2 };

/* "train", "val", "test" (static); NULL for other values. */
const char *ax_split_name(int split);

typedef struct ax_split_opts {
    double fraction;     /* of subjects in validation (default 0.01) */
    int64_t min_val;     /* at least this many validation subjects (default 5) */
    int64_t max_val;     /* at most (default 1000) */
    uint64_t seed;       /* (default 12345) */
} ax_split_opts;

ax_split_opts ax_split_opts_default(void);

/* split: [size] out, one AX_SPLIT_* per case. Validation takes
 * round(fraction * subjects) subjects, raised to min_val (but the minimum
 * never takes more than half of the subjects), lowered to max_val, and
 * always leaves one subject for training. Subjects are
 * sorted by name, then shuffled with the seed (Philox, axon/rng.h): the
 * result depends only on the subject names and the options, not on the
 * case order. Test cases stay AX_SPLIT_TEST and are not counted. */
ax_status ax_dataset_split(const ax_dataset *ds, const ax_split_opts *opts, uint8_t *split);

/* ---- CSV ------------------------------------------------------------------ */

typedef struct ax_csv {
    size_t n_rows;        /* data rows (the header excluded, blank lines skipped) */
    size_t n_cols;
    char **header;        /* [n_cols] */
    char **cells;         /* [n_rows, n_cols] */
    size_t *lines;        /* [n_rows] 1-based line of each row in the file (for messages) */
    char *path;           /* the name given to messages */
} ax_csv;

/* Read a CSV file whose first row is the header; every row must have as
 * many fields as the header (error naming the file and line otherwise).
 * *out: new (ax_csv_free). */
ax_status ax_csv_read(ax_csv **out, const char *path);
/* The same from memory; `name` labels messages. */
ax_status ax_csv_parse(ax_csv **out, const char *text, size_t len, const char *name);
void ax_csv_free(ax_csv *csv); /* NULL-safe */
/* Column index of `name`, -1 when absent. */
int ax_csv_column(const ax_csv *csv, const char *name);
/* Cell (borrowed); "" when col < 0. */
const char *ax_csv_cell(const ax_csv *csv, size_t row, int col);
/* AX_ERR_FORMAT "<file>: missing required column '<name>'" for the first of
 * names[0..n) that is absent. */
ax_status ax_csv_require(const ax_csv *csv, const char *const *names, size_t n);

#ifdef __cplusplus
}
#endif
#endif
