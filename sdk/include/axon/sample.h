/* axon/sample.h — one training sample as plain buffers.
 *
 * This is what a data-loader thread hands to AUG plugins: an image with C
 * channels and optional label and mask volumes of the same spatial shape,
 * all contiguous, C-order, owned by the loader.
 *
 *     float img[2 * 32 * 32 * 32];
 *     ax_sample s = { .image = img, .channels = 2, .shape = {32, 32, 32},
 *                     .spacing = {1, 1, 1} };
 *     aug->apply(self, &s, &rng);
 */
#ifndef AXON_SAMPLE_H
#define AXON_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_sample {
    float *image;       /* image: [C, D, H, W], contiguous (borrowed) */
    uint8_t *label;     /* [optional] label: [D, H, W] class ids (borrowed) */
    uint8_t *mask;      /* [optional] mask: [D, H, W] anatomy 0/1 (borrowed) */
    int32_t channels;   /* C */
    int32_t shape[3];   /* D, H, W */
    float spacing[3];   /* voxel size in mm along D, H, W */
    /* ABI 1.1: when non-zero, the sample was cut larger than the patch the
     * loader wants (see ax_aug_ops.extent); an augmentation that resamples
     * produces exactly this shape, centred, and updates `shape`. The loader
     * centre-crops whatever is still larger after the chain. */
    int32_t target[3];
    int32_t flags;      /* zero */
    void *reserved[2];
} ax_sample;

/* Number of voxels in one channel: D*H*W. */
static inline size_t ax_sample_voxels(const ax_sample *s) {
    return (size_t)s->shape[0] * (size_t)s->shape[1] * (size_t)s->shape[2];
}

#ifdef __cplusplus
}
#endif
#endif
