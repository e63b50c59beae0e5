/* preprocess_internal.h — what preprocess.c, preprocess_case.c,
 * preprocess_resample.c and preprocess_restore.c share. */
#ifndef AXON_PREPROCESS_INTERNAL_H
#define AXON_PREPROCESS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/preprocess.h"

/* What one worker needs beyond the options. */
typedef struct pp_ctx {
    const ax_preprocess_opts *opts;
    int32_t channels;          /* expected channels per case */
    bool allowed[256];         /* label ids the dataset declares (all true when it declares none) */
} pp_ctx;

/* Preprocess case `dc` into the case file `path`; `hash` goes into the
 * metadata as "params_hash". *spacing_out: the case's final spacing. */
ax_status pp_case_run(const pp_ctx *ctx, const ax_dataset_case *dc, const char *path, const char *hash,
                      double spacing_out[3]);

/* Resample with edge values replicated (ax_warp border EDGE), half-voxel aligned (a voxel's
 * centre maps to (o + 0.5) * in / out - 0.5, as skimage.transform.resize).
 * out: [C, os], in: [C, is]. Identity shapes copy. */
ax_status pp_resample_f32(float *out, const int32_t os[3], const float *in, const int32_t is[3], int32_t channels);
/* out: [os], in: [is]; nearest. */
ax_status pp_resample_u8(uint8_t *out, const int32_t os[3], const uint8_t *in, const int32_t is[3]);

/* 64-bit FNV-1a, continued from `h` (start with PP_FNV_INIT). */
#define PP_FNV_INIT 0xcbf29ce484222325ull
uint64_t pp_fnv(uint64_t h, const void *data, size_t n);

#endif
