/* axon/safetensors.h — read and write .safetensors files (PyTorch / Hugging Face).
 *
 * Layout of a file: an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON, then the tensor data:
 *
 *     {"__metadata__": {"arch": "unet3d", "step": "1200"},
 *      "enc.w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
 *
 * data_offsets are [begin, end) byte offsets relative to the first byte
 * after the header; the tensors tile the data area exactly (no overlaps,
 * no holes, nothing after the last one). Data is little-endian C order.
 *
 * Reading maps the file and hands out tensors that view the mapping: no
 * copy, and a tensor stays valid after ax_safetensors_close() until it is
 * freed itself (the mapping is refcounted).
 *
 *     ax_safetensors *f;
 *     ax_tensor *w;
 *     if (ax_safetensors_open(&f, "model.safetensors") != AX_OK) ...;
 *     for (size_t i = 0; i < ax_safetensors_count(f); i++)
 *         printf("%s\n", ax_safetensors_name(f, i));
 *     const char *arch = ax_safetensors_metadata(f, "arch"); // NULL if absent
 *     if (ax_safetensors_get(f, "enc.w", &w) != AX_OK) ...;     // [2, 3] f32
 *     ax_safetensors_close(f);                                 // w still valid
 *     ...
 *     ax_tensor_free(w);                                       // unmaps the file
 *
 * Writing produces the bytes Python's safetensors.torch.save_file writes for
 * the same tensors and metadata (see ax_safetensors_save), atomically:
 *
 *     const char *names[] = {"enc.w", "enc.b"};
 *     const ax_tensor *ts[] = {w, b};
 *     const char *keys[] = {"arch"}, *vals[] = {"unet3d"};
 *     if (ax_safetensors_save("model.safetensors", 2, names, ts, 1, keys, vals) != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *
 * Dtypes: F32, BF16, F16, I32, I64 and U8 map to the axon dtypes of the same
 * name; BOOL reads as U8 (0/1). Other safetensors dtypes (F64, I16, F8_*, ...)
 * are accepted by ax_safetensors_open, so the rest of such a file can be read,
 * but ax_safetensors_get fails for those tensors with AX_ERR_UNSUPPORTED.
 *
 * Errors name the file and the tensor or key, e.g.
 * "model.safetensors: tensor 'encoder.w': data_offsets [0, 12] do not match
 * shape [2, 3] of F32 (24 bytes)". Malformed files give AX_ERR_FORMAT, never
 * a crash; a missing file AX_ERR_NOT_FOUND; other system errors AX_ERR_IO.
 *
 * Threads: once opened, one ax_safetensors may be read from several threads
 * at once (count, name, get, metadata); close must not race with them.
 * Little-endian hosts only (AX_ERR_UNSUPPORTED elsewhere).
 */
#ifndef AXON_SAFETENSORS_H
#define AXON_SAFETENSORS_H

#include <stddef.h>

#include "axon/status.h"
#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An opened file: the mapping plus its parsed, validated header. */
typedef struct ax_safetensors ax_safetensors;

/* Map `path` and validate its header: header length within the file (and at
 * most 100,000,000 bytes), JSON syntax (no duplicate keys), every entry's
 * fields and types, dtype known, at most AX_MAX_DIMS dims, dims >= 0,
 * end - begin == numel * dtype size, offsets inside the data area, and the
 * tensors tiling the data area with no overlap, hole or trailing bytes.
 * *out: new handle, released with ax_safetensors_close(); NULL on error.
 *
 * The file is mapped copy-on-write (MAP_PRIVATE, opened read-only): writing
 * into a tensor from ax_safetensors_get() changes this process's copy, never
 * the file. Do not truncate or rewrite the file in place while its tensors
 * live (that would be SIGBUS); replacing it with rename(), as
 * ax_safetensors_save() does, is safe: the old mapping keeps the old file.
 * Being writable, the mapping counts against the commit limit where the
 * kernel does strict overcommit accounting (vm.overcommit_memory = 2). */
ax_status ax_safetensors_open(ax_safetensors **out, const char *path);

/* NULL-safe. Tensors from ax_safetensors_get() stay valid; the mapping goes
 * when the last of them is freed. Borrowed strings from f die here. */
void ax_safetensors_close(ax_safetensors *f);

/* Number of tensors in the file. */
size_t ax_safetensors_count(const ax_safetensors *f);

/* Name of tensor i (i < count), in the order of their data in the file
 * (which is how writers sort them: dtype, then name). Borrowed, valid until
 * ax_safetensors_close(); NULL if i is out of range. */
const char *ax_safetensors_name(const ax_safetensors *f, size_t i);

/* The tensor called `name`. *out: new reference (ax_tensor_free()), a
 * contiguous CPU tensor with the file's shape (ndim 0 for shape []) that views
 * the mapping without copying. safetensors does not align tensor data; when
 * the data of a tensor is not aligned to its element size, *out is an
 * aligned copy instead. Errors: AX_ERR_NOT_FOUND (no such tensor),
 * AX_ERR_UNSUPPORTED (a dtype axon lacks, e.g. F64). */
ax_status ax_safetensors_get(const ax_safetensors *f, const char *name, ax_tensor **out);

/* Value of metadata `key` from "__metadata__"; borrowed, valid until
 * ax_safetensors_close(); NULL if absent. */
const char *ax_safetensors_metadata(const ax_safetensors *f, const char *key);

/* Number of metadata entries and key i (i < count), in header order;
 * borrowed, valid until ax_safetensors_close(); NULL if out of range. */
size_t ax_safetensors_metadata_count(const ax_safetensors *f);
const char *ax_safetensors_metadata_key(const ax_safetensors *f, size_t i);

/* Write n named tensors and n_meta metadata strings to `path`.
 *
 * names[i] names tensors[i] (borrowed; any CPU tensor, contiguous or not,
 * of any axon dtype; U8 is written as "U8"). Names must be non-empty, valid
 * UTF-8, unique, and not "__metadata__". meta_keys/meta_values may be NULL
 * when n_meta is 0, in which case no "__metadata__" is written.
 *
 * Bytes: the header is compact JSON, as Python's safetensors writes it:
 * "__metadata__" first (its keys sorted bytewise — Python's order there is
 * random, so its files match ours when it has one key or happens to sort
 * them), then the tensors sorted by dtype (I64, F32, I32, BF16, F16, U8)
 * then bytewise by name, each as {"dtype","shape","data_offsets"}; the
 * header is padded with spaces to a multiple of 8 bytes; the data follows
 * in the same order, packed.
 *
 * Atomic: writes "<path>.tmp.<pid>", fsyncs it, renames it over `path` and
 * fsyncs the directory; on failure the temporary file is removed, `path` is
 * untouched, and the error names the path and the system's reason. */
ax_status ax_safetensors_save(const char *path, size_t n, const char *const *names,
                              const ax_tensor *const *tensors, size_t n_meta, const char *const *meta_keys,
                              const char *const *meta_values);

#ifdef __cplusplus
}
#endif
#endif
