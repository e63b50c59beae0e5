/* Private pieces of the batch loader (sdk/src/loader*.c): patch placement,
 * cutting a box out of a case with zero fill, and centre cropping. They are
 * pure functions of their arguments, so the threaded part in loader.c only
 * schedules them. */
#ifndef AXON_LOADER_INTERNAL_H
#define AXON_LOADER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/cache.h"
#include "axon/rng.h"

/* Words of a sample's RNG stream: patch placement reads from word 0, AUG i
 * from word AX_LOADER_AUG_WORD * (i + 1), so one augmentation's draws never
 * shift another's and adding an AUG at the end keeps the earlier ones. */
#define AX_LOADER_AUG_WORD ((uint64_t)1 << 40)

/* Where to cut one sample: the low corner `start` (D, H, W; may be negative
 * or run past the volume, that part reads zero) of an `extent` box whose
 * centre is the centre of the `patch` the loader will keep.
 * With probability p_fg, and when the case lists foreground voxels, the
 * patch is centred on a random fg voxel jittered by up to patch/4 per axis
 * (so the voxel stays inside the final patch); otherwise the patch is placed
 * uniformly so that it lies inside the volume (or, along an axis where the
 * volume is smaller than the patch, so that the volume lies inside it).
 * *fg tells which branch was taken. */
void ax_loader_place(const ax_case *c, const int32_t patch[3], const int32_t extent[3], double p_fg, ax_rng *rng,
                     int32_t start[3], bool *fg);

/* dst: [C, E0, E1, E2] = the box [start, start + extent) of src: [C, S0, S1, S2],
 * zero outside src. The first `keep` bytes of dst are written as usual;
 * past them dst must be memory from ax_loader_scratch_alloc, whose large
 * zero ranges may be returned to the kernel rather than written. SIZE_MAX:
 * any memory, always written. */
void ax_loader_cut_f32(float *dst, const int32_t extent[3], const float *src, const int32_t shape[3],
                       int32_t channels, const int32_t start[3], size_t keep);
/* The same for one u8 volume. */
void ax_loader_cut_u8(uint8_t *dst, const int32_t extent[3], const uint8_t *src, const int32_t shape[3],
                      const int32_t start[3], size_t keep);

/* Page-aligned private anonymous memory for a worker's scratch box (NULL
 * on failure), and its release. */
void *ax_loader_scratch_alloc(size_t nbytes);
void ax_loader_scratch_free(void *p, size_t nbytes);

/* dst: [C, P0, P1, P2] = the centred P box of src: [C, S0, S1, S2], S >= P;
 * the low corner is (S - P) / 2 rounded down. */
void ax_loader_crop_f32(float *dst, const int32_t patch[3], const float *src, const int32_t shape[3],
                        int32_t channels);
void ax_loader_crop_u8(uint8_t *dst, const int32_t patch[3], const uint8_t *src, const int32_t shape[3]);

#endif
