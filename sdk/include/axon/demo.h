/* axon/demo.h — a small synthetic brain-MRI collection for the demo and the
 * tests: a pre-training set in the OpenMind layout and a segmentation set in
 * nnU-Net raw format, both drawn from real templates (the Colin27 T1 head
 * `ch2`, its brain extraction `ch2bet` and the AAL atlas, as Debian's
 * mricron-data installs them in /usr/share/mricron/templates).
 *
 *     ax_demo_opts o = ax_demo_opts_default();   // 16 + 8 + 4 subjects, 3 mm
 *     o.seed = 7;
 *     if (ax_demo_generate("data/demo", &o) != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *
 * writes
 *
 *     data/demo/pretrain/openneuro_metadata.csv
 *     data/demo/pretrain/OpenMind/ds00000X/sub-NNN/anat/sub-NNN_<modality>.nii.gz
 *     data/demo/pretrain/OpenMind/ds00000X/sub-NNN/anat/sub-NNN_<modality>__Data/{fb_mask,deface_mask}.nii.gz
 *     data/demo/seg/Dataset001_DemoBrain/dataset.json
 *     data/demo/seg/Dataset001_DemoBrain/{imagesTr,labelsTr,imagesTs,labelsTs}/DemoBrain_NNN[_0000].nii.gz
 *
 * Every subject is the template pushed through a random smooth deformation
 * (a random affine plus a coarse random displacement grid upsampled with
 * ax_warp), a random field of view and voxel size (pre-training only), a
 * tissue-intensity curve mimicking T1w, T2w, FLAIR or PDw contrast, a smooth
 * multiplicative bias field and Rician noise. The CSV's paths are relative
 * to pretrain/OpenMind/ (as in the real OpenMind release); fb_mask is 1 on
 * the head, deface_mask 1 where the face was removed (all 0 when the scan
 * was not defaced); image_quality_score (1 best .. 5 worst) grows with the
 * noise and bias drawn. Segmentation labels (AX_DEMO_LABEL_*) are listed in
 * dataset.json under "labels"; training and test cases come from the same
 * generator with independent random streams.
 *
 * The output depends only on (templates, options): the same seed gives the
 * same bytes. Every file is written atomically; the CSV and dataset.json come
 * last, so a complete folder has them.
 */
#ifndef AXON_DEMO_H
#define AXON_DEMO_H

#include <stdint.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default template folder (Debian/Ubuntu package mricron-data). */
#define AX_DEMO_TEMPLATES "/usr/share/mricron/templates"

/* Segmentation classes of the demo set. AAL regions 1-90 are cerebral grey
 * matter (odd: left, even: right), 91-116 cerebellum and vermis; the rest
 * of the brain extraction (white matter, brainstem, ventricles) is "brain". */
typedef enum ax_demo_label {
    AX_DEMO_LABEL_BACKGROUND = 0,
    AX_DEMO_LABEL_BRAIN = 1,          /* inside the ch2bet brain, not one of the regions below */
    AX_DEMO_LABEL_CEREBRUM_LEFT = 2,  /* left cerebral grey matter (AAL 1-90, odd) */
    AX_DEMO_LABEL_CEREBRUM_RIGHT = 3, /* right cerebral grey matter (AAL 1-90, even) */
    AX_DEMO_LABEL_CEREBELLUM = 4      /* cerebellum and vermis (AAL 91-116) */
} ax_demo_label;
#define AX_DEMO_N_LABELS 5

typedef struct ax_demo_opts {
    const char *templates; /* folder with ch2, ch2bet, aal .nii.gz (default AX_DEMO_TEMPLATES) */
    int32_t subjects;      /* pre-training subjects, one scan each (default 16) */
    int32_t seg_train;     /* segmentation training cases (default 8) */
    int32_t seg_test;      /* segmentation test cases (default 4) */
    int32_t datasets;      /* dsXXXXXX folders the subjects are spread over (default 3) */
    uint64_t seed;         /* default 0 */
    double spacing;        /* output voxel size in mm (default 3: volumes about 60^3);
                            * pre-training scans vary from 1x to 1.35x of it per axis */
} ax_demo_opts;

ax_demo_opts ax_demo_opts_default(void);

/* Generate the demo collection under `out` (created if needed; existing
 * files of the same names are replaced). Errors name the template or the
 * output file. */
ax_status ax_demo_generate(const char *out, const ax_demo_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
