/* axon/cache.h — the preprocessed-case cache: what `axon preprocess` writes
 * and the loader maps.
 *
 * A cache folder holds one file per case, `<name>.axc`, and an index,
 * `index.json`. A case file is made to be mmap()ed: a fixed header, a JSON
 * metadata block, then raw little-endian arrays at 4096-byte aligned offsets:
 *
 *     offset 0     char magic[8] = "AXCASE1\n"
 *              8   uint64 json_offset, json_size      (metadata, UTF-8 JSON)
 *             24   uint64 image_offset                 float32 [C, D, H, W]
 *             32   uint64 label_offset                 uint8   [D, H, W] or 0 (none)
 *             40   uint64 mask_offset                  uint8   [D, H, W] or 0 (none)
 *             48   uint64 fg_offset, fg_count          int32   [fg_count, 3] (d, h, w)
 *             64   int32  channels, shape[3]
 *             80   double spacing[3]
 *            104   ... zero up to 4096
 *
 * The JSON metadata carries what is needed to map a prediction back to the
 * input file: {"name", "subject", "images": [paths], "label": path|null,
 * "spacing": [d,h,w], "original_spacing", "shape_after_crop", "crop_box":
 * [[d0,d1],[h0,h1],[w0,w1]] in the RAS grid before resampling, "source":
 * {ax_volume_source fields}, "norm": [{"mean", "std"} per channel],
 * "classes": [ids present]}. `fg` lists up to 10000 voxel coordinates of
 * labelled (label > 0) voxels, or of mask voxels when there is no label,
 * so the loader can oversample foreground without scanning the volume.
 * axon preprocess also writes: "shape" (this file's [D,H,W]),
 * "original_shape" and "affine" (the whole RAS volume before cropping),
 * "mask", "modality", "quality" (null when unknown), "crop_by"
 * ("mask"|"nonzero"|"none"), "mask_norm", "fg_of" ("label"|"mask"|"none")
 * and "params_hash" (what resuming compares). crop_box bounds are
 * half-open: voxels d0 <= d < d1. "classes" lists the ids > 0 present.
 *
 * index.json: {"format": "axon-cache", "version": 1, "channels": C,
 * "spacing": [d,h,w], "labels": {"name": id}, "cases": [{"name", "file",
 * "subject", "split": "train"|"val"|"test"}]}. axon preprocess adds
 * "channel_names", "spacing_source" (target, or the median of the cases'
 * own when none was given), "dataset": {"format", "root"} and "failed":
 * [{"name", "reason"}] (cases not in the cache).
 *
 *     ax_case *c;
 *     if (ax_case_open(&c, "cache/sub-01.axc") != AX_OK) ...
 *     const float *img = c->image;                // [C, D, H, W], read-only mapping
 *     ax_case_close(c);
 *
 * Files are written atomically (temporary name, fsync, rename), so a killed
 * preprocessing run leaves whole cases or none.
 */
#ifndef AXON_CACHE_H
#define AXON_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"
#include "axon/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AX_CASE_MAGIC "AXCASE1\n"
#define AX_CASE_ALIGN 4096

typedef struct ax_case {
    const float *image;      /* [C, D, H, W] (borrowed from the mapping, read-only) */
    const uint8_t *label;    /* [optional] [D, H, W] class ids */
    const uint8_t *mask;     /* [optional] [D, H, W] anatomy 0/1 */
    const int32_t *fg;       /* [optional] [n_fg, 3] foreground voxel coordinates (d, h, w) */
    int64_t n_fg;
    int32_t channels;
    int32_t shape[3];        /* D, H, W */
    double spacing[3];
    const char *json;        /* the metadata (borrowed, NUL-terminated copy) */
    const char *path;        /* borrowed */
    void *impl;
} ax_case;

/* Map a case file; checks magic, offsets and sizes against the file size.
 * Also refused, with a message naming the file: a bad shape or spacing,
 * an array offset not a multiple of 4096, foreground points outside the
 * volume, metadata that is not a JSON object. *out: new (ax_case_close). */
ax_status ax_case_open(ax_case **out, const char *path);
void ax_case_close(ax_case *c); /* NULL-safe */

/* What ax_case_write stores. image: [C, D, H, W]; label, mask, fg optional. */
typedef struct ax_case_desc {
    const float *image;
    const uint8_t *label;
    const uint8_t *mask;
    const int32_t *fg;
    int64_t n_fg;
    int32_t channels;
    int32_t shape[3];
    double spacing[3];
    const char *json;        /* metadata object, serialised */
} ax_case_desc;

/* Atomic write of one case file. The JSON follows the header at offset
 * 4096; each array starts at the next 4096-byte boundary. */
ax_status ax_case_write(const char *path, const ax_case_desc *desc);

/* Atomic write of `n` bytes to `path` (a temporary name in the same
 * folder, fsync, rename, fsync of the folder): how index.json is written. */
ax_status ax_cache_write_file(const char *path, const void *data, size_t n);

/* The cases of a cache folder's index.json in one split ("train", "val",
 * "test", or NULL for all), as full paths. *paths: new array of new
 * strings, free with ax_cache_paths_free. */
ax_status ax_cache_list(const char *dir, const char *split, char ***paths, size_t *n);
void ax_cache_paths_free(char **paths, size_t n);

#ifdef __cplusplus
}
#endif
#endif
