/* axon/volume.h — 3D/4D medical images in memory, read from and written to
 * NIfTI-1 / NIfTI-2 (.nii, .nii.gz) through niftilib's nifti2 API.
 *
 * A volume is float32 voxels [C, D, H, W] in C order plus the geometry that
 * maps voxels to scanner space. Axis convention (the same as SimpleITK's
 * arrays and so nnU-Net's): W is NIfTI's i (fastest in the file), H is j,
 * D is k. spacing[] follows D, H, W. The affine maps the NIfTI voxel index
 * (i, j, k, 1) = (w, h, d, 1) to world millimetres in RAS+ (x right,
 * y anterior, z superior), as in nibabel.
 *
 *     ax_volume *v;
 *     ax_volume_read_opts o = ax_volume_read_opts_default();   // RAS, all volumes
 *     if (ax_volume_read(&v, "ch2better.nii.gz", &o) != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *         // "x.nii.gz: truncated gzip stream: header says 7221032 bytes of data, file has 4096"
 *     printf("%d x %d x %d, %s\n", v->shape[0], v->shape[1], v->shape[2], v->source.orientation);
 *     ...                                            // v->data: [C, D, H, W]
 *     ax_volume_write(v, "out.nii.gz", AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_F32);
 *     ax_volume_free(v);
 *
 * Reading applies the scaling (scl_slope/scl_inter when slope is non-zero
 * and finite), picks the geometry by sform > qform > pixdim precedence (as
 * nibabel's img.affine: with neither form, pixdim on the diagonal, x
 * flipped, origin at the centre voxel) and, unless told not to, reorients
 * the voxels to RAS (a permutation and flips, no interpolation; the axes
 * nibabel's as_closest_canonical picks, also for oblique affines) with the
 * affine updated exactly. spacing[] is the voxel size of the RAS affine's
 * columns (equal to pixdim unless the sform says otherwise). `source` keeps
 * what the file had, so ax_volume_write(..., AX_VOLUME_WRITE_ORIGINAL, ...)
 * puts a prediction back in the input's own orientation and affine.
 *
 * Errors (axon/status.h) start with the file name, then the problem: not
 * NIfTI, truncated, corrupt gzip, zero or negative dimension, unsupported
 * datatype, NaN/Inf voxels (refused unless opts.allow_nonfinite), more than
 * 4 dimensions (trailing dimensions of size 1 are fine), a .hdr/.img pair.
 * The whole gzip stream is checked (CRC and length), sizes are checked
 * against the file before anything is allocated, and niftilib never prints.
 * Thread-safe: distinct volumes may be read and written concurrently.
 */
#ifndef AXON_VOLUME_H
#define AXON_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* On-disk voxel types (values are NIfTI's DT_* codes). */
typedef enum ax_nifti_dtype {
    AX_NIFTI_U8 = 2,
    AX_NIFTI_I16 = 4,
    AX_NIFTI_I32 = 8,
    AX_NIFTI_F32 = 16,
    AX_NIFTI_F64 = 64,
    AX_NIFTI_I8 = 256,
    AX_NIFTI_U16 = 512,
    AX_NIFTI_U32 = 768,
    AX_NIFTI_I64 = 1024
} ax_nifti_dtype;

/* "u8", "i16", ... (static, borrowed); NULL when unknown. */
const char *ax_nifti_dtype_name(int nifti_datatype);

/* Where a volume came from: enough to write a result back in the input's
 * own voxel grid and orientation. */
typedef struct ax_volume_source {
    int64_t dim[3];        /* file's ni, nj, nk (W, H, D before reorientation) */
    double affine[4][4];   /* file's voxel -> world (RAS+ mm), after precedence */
    int32_t perm[3];       /* RAS-array axis a (0=W/i, 1=H/j, 2=D/k) came from file axis perm[a] */
    int32_t flip[3];       /* 1 when that axis was reversed */
    int32_t datatype;      /* the file's NIfTI datatype */
    int32_t nifti_version; /* 1 or 2 */
    int32_t sform_code, qform_code;
    char orientation[4];   /* the file's axis codes, e.g. "LAS" (NUL-terminated) */
    bool reoriented;       /* data was permuted/flipped to RAS */
} ax_volume_source;

typedef struct ax_volume {
    float *data;           /* [C, D, H, W], C order, owned by the volume */
    int32_t channels;      /* C (4D files: the 4th dimension, or 1 when a volume was chosen) */
    int32_t shape[3];      /* D, H, W */
    double spacing[3];     /* mm along D, H, W */
    double affine[4][4];   /* voxel (w, h, d, 1) -> world RAS+ mm, for `data` as it is */
    ax_volume_source source;
} ax_volume;

typedef struct ax_volume_read_opts {
    bool reorient;         /* to RAS (default true) */
    int32_t volume;        /* 4D: -1 = all volumes as channels (default), else that index */
    bool allow_nonfinite;  /* accept NaN/Inf voxels (default false: error naming the count) */
} ax_volume_read_opts;

ax_volume_read_opts ax_volume_read_opts_default(void);

/* *out: new volume (ax_volume_free). opts may be NULL (defaults). */
ax_status ax_volume_read(ax_volume **out, const char *path, const ax_volume_read_opts *opts);

/* A zeroed volume with identity-like geometry from `spacing` (RAS, origin 0).
 * *out: new volume. */
ax_status ax_volume_new(ax_volume **out, int32_t channels, const int32_t shape[3], const double spacing[3]);

void ax_volume_free(ax_volume *v); /* NULL-safe */

typedef enum ax_volume_write_mode {
    AX_VOLUME_WRITE_AS_IS = 0,   /* the voxels and affine as they are in memory */
    AX_VOLUME_WRITE_ORIGINAL = 1 /* undo the reorientation: the source file's grid, orientation and affine */
} ax_volume_write_mode;

/* Write `v` as NIfTI-1 (.nii or .nii.gz by the name; NIfTI-2 when a
 * dimension exceeds NIfTI-1's 32767), datatype `dtype` (integer types
 * round half to even and clamp, NaN -> 0; labels usually AX_NIFTI_U8).
 * C > 1 writes a 4D file. sform and qform both carry the affine (codes
 * from the source, else 1); scl_slope 1, scl_inter 0. ORIGINAL needs
 * v->shape to be the source grid permuted (AX_ERR_INVALID otherwise).
 * The write is atomic: a temporary file in the same folder, fsync, then
 * rename; .nii.gz uses gzip level 1, as nibabel does. */
ax_status ax_volume_write(const ax_volume *v, const char *path, ax_volume_write_mode mode, ax_nifti_dtype dtype);

/* Orientation codes of an affine's axes, e.g. "RAS" or "LAS"
 * (nibabel's aff2axcodes; '?' for an axis the affine leaves undetermined):
 * out must hold 4 chars. */
void ax_affine_axcodes(const double affine[4][4], char out[4]);

#ifdef __cplusplus
}
#endif
#endif
