/* dataset_internal.h — what the dataset layouts (dataset_*.c) share. */
#ifndef AXON_DATASET_INTERNAL_H
#define AXON_DATASET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "axon/dataset.h"

/* A case under construction: every string owned (malloc). */
typedef struct ds_case {
    char *name, *subject, *label, *mask, *deface_mask, *modality;
    char **images;
    int32_t n_images;
    double quality;
    bool test;
} ds_case;

struct ax_dataset {
    char *format, *root;
    ds_case *cases;
    ax_dataset_case *views; /* filled by ds_finish: the public, const view of cases */
    size_t n, cap;
    int32_t channels;
    char **channel_names;   /* [channels] */
    char **label_names;     /* [n_labels] */
    int32_t *label_ids;
    size_t n_labels;
};

/* Append a zeroed case; NULL on out of memory (error set). */
ds_case *ds_case_add(ax_dataset *ds);
/* Append `path` (copied) to the case's images. */
ax_status ds_case_add_image(ds_case *c, const char *path);
/* "a/b" from a and b; new string or NULL (error set). */
char *ds_join(const char *a, const char *b);
/* malloc'd printf; NULL on out of memory (error set). */
char *ds_printf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
bool ds_is_file(const char *path);
bool ds_is_dir(const char *path);
/* Length of a .nii or .nii.gz suffix of `name`, 0 when neither. */
size_t ds_nifti_suffix(const char *name);
/* The "sub-*" component of a relative path (new string), NULL when none. */
char *ds_bids_subject(const char *rel);

/* ax_dataset_split over the cases with include[i] != 0 (all when NULL);
 * the others get AX_SPLIT_TRAIN and do not count. */
ax_status ds_split_subset(const ax_dataset *ds, const ax_split_opts *opts, const uint8_t *include, uint8_t *split);

ax_status ds_open_nifti_dir(ax_dataset *ds, const ax_dataset_opts *o);
ax_status ds_open_nnunet(ax_dataset *ds, const ax_dataset_opts *o);
ax_status ds_open_openmind(ax_dataset *ds, const ax_dataset_opts *o);

#endif
