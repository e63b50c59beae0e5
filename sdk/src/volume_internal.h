/* volume_internal.h — shared by volume.c, nifti_read.c and nifti_write.c:
 * orientation maths and the strided voxel copies. Not installed. */
#ifndef AXON_VOLUME_INTERNAL_H
#define AXON_VOLUME_INTERNAL_H

#include <stdint.h>

#include <zlib.h>

#include "axon/volume.h"

/* nibabel's io_orientation(): for voxel axis i (0=i/W, 1=j/H, 2=k/D) the
 * world axis it runs along most (out_axis[i], 0=x 1=y 2=z) and its sign
 * (+1 towards R/A/S, -1 towards L/P/I). Ties go to the first axis, as
 * numpy's argmax does. An axis the affine leaves undetermined (all-zero
 * column) gets out_axis -1, sign 0. */
void ax_affine_ornt(const double affine[4][4], int32_t out_axis[3], int32_t sign[3]);

/* The reorientation to RAS for an affine: for RAS-array axis a, the file
 * axis perm[a] it is read from and whether it is reversed (flip[a]), as in
 * ax_volume_source. Undetermined axes take the unused file axes in order. */
void ax_affine_ras_perm(const double affine[4][4], int32_t perm[3], int32_t flip[3]);

/* new_affine = affine @ M where M maps a RAS-array index to the file index
 * (nibabel's inv_ornt_aff): the exact affine of the reoriented voxels.
 * dim: the file's ni, nj, nk. */
void ax_affine_reorient(const double affine[4][4], const int64_t dim[3], const int32_t perm[3],
                        const int32_t flip[3], double out[4][4]);

/* Voxel sizes along the affine's three voxel axes (column norms). */
void ax_affine_voxel_sizes(const double affine[4][4], double out[3]);

/* A strided walk over a 3D grid: out index (d, h, w) reads element
 * base + d*stride[0] + h*stride[1] + w*stride[2] of the source. */
typedef struct ax_vox_walk {
    int64_t shape[3]; /* D, H, W of the destination */
    int64_t base;
    int64_t stride[3];
} ax_vox_walk;

/* The walk that reads a RAS-array (W fastest; the file's dims fdim[0..2] =
 * ni, nj, nk permuted by perm) so that the destination is in file order
 * (i fastest): how a volume is written back in its original orientation. */
void ax_vox_walk_to_file(ax_vox_walk *w, const int64_t fdim[3], const int32_t perm[3],
                         const int32_t flip[3]);

/* Where file voxel (i, j, k) of one 3D volume lands in the RAS array:
 * base + i*stride[0] + j*stride[1] + k*stride[2]. */
typedef struct ax_vox_scatter {
    int64_t base;
    int64_t stride[3];
} ax_vox_scatter;

void ax_vox_scatter_from_file(ax_vox_scatter *sc, const int64_t fdim[3], const int32_t perm[3],
                              const int32_t flip[3]);

/* Converts file slices k0 .. k0+nk-1 (src: [nk, nj, ni] of NIfTI datatype
 * `dtype`, native byte order) to float, times slope plus inter when scale,
 * and stores them at their RAS positions in out (one 3D volume). Reading a
 * file in slabs this way keeps the raw bytes in cache. Returns the number
 * of non-finite results. */
int64_t ax_vox_scatter_to_f32(float *out, const ax_vox_scatter *sc, const void *src, int32_t dtype, int64_t ni,
                              int64_t nj, int64_t k0, int64_t nk, int scale, double slope, double inter,
                              int parallel);

/* What ax_nifti_read_slabs needs: the open stream positioned at the first
 * voxel wanted, and how to convert and place what it holds. */
typedef struct ax_slab_job {
    gzFile f;
    float *out;               /* [nchan, D, H, W] */
    int64_t nvox3;            /* voxels per volume */
    const ax_vox_scatter *sc; /* file (i, j, k) -> RAS position within a volume */
    int64_t dim[3];           /* ni, nj, nk */
    int64_t nchan;            /* volumes to read */
    int32_t dtype;
    int esize, swap, scale;
    double slope, inter;
} ax_slab_job;

/* Reads and converts nchan volumes (nifti_slabs.c). *done: bytes read (less
 * than asked when the file is short; the caller reports truncation). *bad:
 * non-finite voxels. AX_ERR_FORMAT with *err set on a zlib error. Sets no
 * error message itself. */
ax_status ax_nifti_read_slabs(const ax_slab_job *job, int64_t *done, int64_t *bad, const char **err);

/* gzread of exactly n bytes unless the stream ends; returns the count, or
 * -1 on a zlib/IO error (*err: its message, without the file name). */
int64_t ax_nifti_gz_read(gzFile f, void *buf, int64_t n, const char **err);

/* dst (datatype `dtype`, contiguous in walk order) = float src gathered
 * along `walk`; integer types round half to even and clamp, NaN -> 0. */
void ax_vox_gather_from_f32(void *dst, int32_t dtype, const float *src, const ax_vox_walk *walk);

/* Silences niftilib (its debug level is global); call before using it. */
void ax_nifti_init(void);

/* Bytes per voxel of a supported datatype, 0 otherwise. */
int ax_nifti_dtype_size(int32_t dtype);

#endif
