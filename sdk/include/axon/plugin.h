/* axon/plugin.h — the plugin ABI.
 *
 * A plugin is a shared object exporting one function, ax_plugin_entry(),
 * which returns a NULL-terminated array of descriptors. Each descriptor
 * names one METHOD, ARCH, AUG, TASK or BACKEND, declares its parameters and
 * points at a kind-specific table of functions (its "ops").
 *
 *     #include <axon/axon.h>
 *
 *     static ax_status flip_apply(const void *self, ax_sample *s, ax_rng *rng) {
 *         ...
 *         return AX_OK;
 *     }
 *     static const ax_aug_ops flip_ops = { .apply = flip_apply };
 *     static const ax_param_spec flip_params[] = {
 *         { .name = "p", .type = AX_PARAM_FLOAT, .def = "0.5", .min = 0, .max = 1,
 *           .doc = "probability of flipping each axis" },
 *         { 0 }
 *     };
 *     static const ax_plugin flip = {
 *         AX_PLUGIN_HEADER, .kind = AX_PLUGIN_AUG, .name = "flip", .version = "1.0",
 *         .summary = "random flips", .license = "MIT", .params = flip_params,
 *         .ops = &flip_ops, .ops_size = sizeof flip_ops,
 *     };
 *     AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
 *         static const ax_plugin *const list[] = { &flip, NULL };
 *         return list;
 *     }
 *
 *     cc -shared -fPIC flip.c -o flip.so $(pkg-config --cflags --libs axon)
 *
 * Compatibility rules (checked by the host's loader, see PLUGINS.md):
 *  - abi_major/abi_minor come first in the descriptor and never move;
 *  - a plugin loads iff its abi_major equals the host's and its abi_minor is
 *    not newer than the host's;
 *  - the kind enum, the parameter types and every ops struct are append-only:
 *    a minor version only adds members at the end, so ops_size tells the host
 *    which members an older plugin has (members past ops_size are NULL);
 *  - a new kind-independent descriptor field takes a reserved slot.
 *
 * Ownership: descriptors, specs and ops are static data of the plugin and
 * must live as long as the .so is loaded. `self` pointers made by create()
 * are owned by the host and released through destroy().
 */
#ifndef AXON_PLUGIN_H
#define AXON_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "axon/nn.h"
#include "axon/params.h"
#include "axon/rng.h"
#include "axon/sample.h"
#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AX_ABI_MAJOR 1u
#define AX_ABI_MINOR 1u

/* The one symbol the host looks up in every plugin file. */
#define AX_PLUGIN_ENTRY_SYMBOL "ax_plugin_entry"

#if defined(__GNUC__)
#define AX_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define AX_PLUGIN_EXPORT
#endif

/* Append-only; values are part of the ABI. */
typedef enum ax_plugin_kind {
    AX_PLUGIN_METHOD = 1,  /* self-supervised method: views/masks + loss */
    AX_PLUGIN_ARCH = 2,    /* network architecture */
    AX_PLUGIN_AUG = 3,     /* data augmentation on one sample */
    AX_PLUGIN_TASK = 4,    /* downstream task: head, loss, evaluation */
    AX_PLUGIN_BACKEND = 5  /* compute backend (kernels) */
} ax_plugin_kind;

#define AX_PLUGIN_KIND_FIRST AX_PLUGIN_METHOD
#define AX_PLUGIN_KIND_LAST AX_PLUGIN_BACKEND

/* "method", "arch", "aug", "task", "backend"; NULL for an unknown value
 * (static, borrowed). */
const char *ax_plugin_kind_name(ax_plugin_kind kind);
/* Inverse of ax_plugin_kind_name; 0 when `name` is none of them. */
ax_plugin_kind ax_plugin_kind_parse(const char *name);

/* Every kind's ops begin with these two members, so the host can create and
 * destroy an instance of any kind the same way. Both are optional: a
 * stateless plugin leaves them NULL and receives self == NULL.
 *
 * create: read the (already validated) parameters and allocate state.
 *         `params` is borrowed and lives as long as the instance.
 *         On failure return an error set with AX_ERROR and leave *self alone. */
#define AX_PLUGIN_BASE_OPS                                                     \
    ax_status (*create)(void **self, const ax_params *params);                 \
    void (*destroy)(void *self)

typedef struct ax_plugin_base_ops {
    AX_PLUGIN_BASE_OPS;
} ax_plugin_base_ops;

/* AUG: transforms one sample in place. apply() runs concurrently on loader
 * threads, each with its own sample and rng, so it must treat self as
 * read-only. All randomness must come from `rng`: the same (rng, sample)
 * gives the same result on any thread count. */
typedef struct ax_aug_ops {
    AX_PLUGIN_BASE_OPS;
    ax_status (*apply)(const void *self, ax_sample *sample, ax_rng *rng);
    /* ABI 1.1, [optional]: the input extent (D, H, W) this augmentation
     * needs to produce a `patch` with no border lost (rotation, scaling);
     * NULL means it needs exactly `patch`. The loader cuts the largest
     * extent of its chain and sets sample->target = patch. */
    ax_status (*extent)(const void *self, const int32_t patch[3], int32_t extent[3]);
} ax_aug_ops;

/* METHOD, ARCH, TASK: ABI 1.0 carried only their lifecycle; ABI 1.1 appends
 * the compute entry points below (a 1.0 plugin of these kinds still loads,
 * and the host reports "has no build()" when it is used). */

/* METHOD: a self-supervised objective around a backbone. */
typedef struct ax_method_ops {
    AX_PLUGIN_BASE_OPS;
    /* Output channels the backbone must produce for `in_channels` input
     * channels (MAE reconstructs the input: out = in). */
    ax_status (*out_channels)(const void *self, int64_t in_channels, int64_t *out);
    /* The loss of one batch. x: [N, C, D, H, W] float32 images (borrowed);
     * `net` is the backbone built by the ARCH plugin (borrowed, in training
     * mode); every random draw comes from `rng`, so a step is reproducible
     * from (seed, step). *loss: new reference, a scalar that requires grad. */
    ax_status (*loss)(const void *self, ax_module *net, const ax_tensor *x, ax_rng *rng, ax_tensor **loss);
    /* [optional] For reports: the method's view of x and the network's
     * answer. x: [N, C, D, H, W]; *view, *output: new references of x's
     * shape (MAE: the masked input and the reconstruction). Runs under
     * no-grad. */
    ax_status (*preview)(const void *self, ax_module *net, const ax_tensor *x, ax_rng *rng, ax_tensor **view,
                         ax_tensor **output);
} ax_method_ops;

/* What an architecture tells fine-tuning about its parameter names: each
 * field is a dotted prefix of state-dict keys (static strings, NULL when the
 * role does not exist). Weight transfer copies `stem` and `encoder`, leaves
 * `decoder` fresh, and adapts `input_projection` to another channel count. */
typedef struct ax_arch_plan {
    const char *stem;             /* e.g. "encoder.stem" */
    const char *encoder;          /* e.g. "encoder.stages" */
    const char *decoder;          /* e.g. "decoder" */
    const char *input_projection; /* e.g. "encoder.stem.convs.0.conv" */
    const char *output_head;      /* e.g. "decoder.seg_layers" */
    const char *pos_embed;        /* Transformers: resized when the patch changes */
    int32_t divisor[3];           /* patch sizes must be multiples (D, H, W) */
    void *reserved[4];
} ax_arch_plan;

/* ARCH: builds networks. The module tree's parameter names must equal the
 * PyTorch reference's so state dicts move both ways. */
typedef struct ax_arch_ops {
    AX_PLUGIN_BASE_OPS;
    /* A new network for in_channels -> out_channels. *out: new reference;
     * its forward takes x: [N, in_channels, D, H, W] and returns
     * [N, out_channels, D, H, W] (the full-resolution output). Weights are
     * initialised from `rng` (same seed, same weights). */
    ax_status (*build)(const void *self, ax_module **out, int64_t in_channels, int64_t out_channels, ax_rng *rng);
    /* Fill *plan (see ax_arch_plan). */
    ax_status (*plan)(const void *self, ax_arch_plan *plan);
    /* [optional] Deep supervision: every output, highest resolution first.
     * outs[i]: new references, *n_outs set (at most max_outs). NULL when
     * the architecture has a single output. */
    ax_status (*forward_all)(const void *self, ax_module *net, const ax_tensor *x, ax_tensor **outs, int max_outs,
                             int *n_outs);
} ax_arch_ops;

/* One number a TASK reports for one case (see ax_task_ops.evaluate). */
typedef struct ax_task_metric {
    const char *name; /* borrowed from the task instance, e.g. "dice_1", "dice_mean", "hd95_1" */
    double value;     /* NaN: undefined for this case (an empty reference and
                       * prediction); averages over cases skip NaN */
} ax_task_metric;

/* TASK: what a downstream task adds around a network: the head size, the
 * training loss, whole-volume inference, decoding and metrics. The
 * fine-tuning runner builds the network with the ARCH plugin for
 * out_channels(), trains it on loss(), and validates / predicts with
 * predict() -> decode() -> evaluate(). */
typedef struct ax_task_ops {
    AX_PLUGIN_BASE_OPS;
    /* Output channels the network must produce (segmentation: the number of
     * classes K, background included). */
    ax_status (*out_channels)(const void *self, int64_t *out);
    /* The training loss of one batch. outputs[i]: borrowed [N, K, D_i, H_i, W_i]
     * network outputs (logits), highest resolution first (deep supervision;
     * n == 1 without); target: borrowed [N, 1, D, H, W] u8 class ids at
     * outputs[0]'s resolution (the task resamples it for lower ones).
     * *loss: new reference, a scalar that requires grad when the outputs do. */
    ax_status (*loss)(const void *self, ax_tensor *const *outputs, int n, const ax_tensor *target, ax_tensor **loss);
    /* Whole-volume inference. x: borrowed [1, C, D, H, W] f32, one
     * preprocessed volume of any size (segmentation: sliding window, padded
     * when smaller than the patch). `net` (borrowed) is called on windows
     * under no-grad and should be in eval mode; it may live on another
     * device than x (windows are moved to its parameters' device).
     * *out: new reference, [1, K, D, H, W] f32 on the CPU: the task's raw
     * prediction (segmentation: averaged logits). */
    ax_status (*predict)(const void *self, ax_module *net, const ax_tensor *x, ax_tensor **out);
    /* predict()'s output [1, K, D, H, W] -> *labels: new reference, [D, H, W]
     * u8 (segmentation: argmax over K). */
    ax_status (*decode)(const void *self, const ax_tensor *pred, ax_tensor **labels);
    /* Metrics of one case. pred, ref: borrowed [D, H, W] integer label maps
     * (u8, i32 or i64) of the same shape; spacing: voxel size in mm (D, H,
     * W). Writes up to max_metrics entries and sets *n to the count the task
     * reports (the same names, in the same order, for every case of one
     * instance); with metrics == NULL it only sets *n. */
    ax_status (*evaluate)(const void *self, const ax_tensor *pred, const ax_tensor *ref, const double spacing[3],
                          ax_task_metric *metrics, int max_metrics, int *n);
} ax_task_ops;

/* BACKEND: probe() says whether the backend can run on this machine (a GPU
 * backend without a device or driver answers no, with the reason in `why`,
 * NUL-terminated, at most `why_size` bytes). NULL means always available. */
typedef struct ax_backend_ops {
    AX_PLUGIN_BASE_OPS;
    ax_status (*probe)(char *why, size_t why_size);
} ax_backend_ops;

typedef struct ax_plugin {
    uint32_t abi_major;          /* first, always: AX_ABI_MAJOR at build time */
    uint32_t abi_minor;          /* AX_ABI_MINOR at build time */
    ax_plugin_kind kind;
    const char *name;            /* [a-z][a-z0-9_]*, unique per kind */
    const char *version;         /* the plugin's own version, free form */
    const char *summary;         /* one line */
    const char *license;         /* SPDX identifier */
    const ax_param_spec *params; /* [optional] terminated by { 0 } */
    const void *ops;             /* the kind's ops struct */
    size_t ops_size;             /* sizeof that struct as compiled */
    void *reserved[8];           /* zero */
} ax_plugin;

/* Fills the two ABI fields; use first in a designated initialiser. */
#define AX_PLUGIN_HEADER .abi_major = AX_ABI_MAJOR, .abi_minor = AX_ABI_MINOR

/* The entry point every plugin exports (NULL-terminated array, static). */
typedef const ax_plugin *const *(*ax_plugin_entry_fn)(void);
AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void);

/* Smallest ops_size accepted for a kind (its ops struct at ABI x.0), and
 * the host's own sizeof; 0 for an unknown kind. */
size_t ax_plugin_ops_min_size(ax_plugin_kind kind);
size_t ax_plugin_ops_host_size(ax_plugin_kind kind);

/* Check one descriptor against this library's ABI: version, kind, name,
 * ops and ops_size, parameter spec. AX_OK or AX_ERR_ABI/AX_ERR_INVALID with
 * the reason (without the file name, which the caller adds). */
ax_status ax_plugin_check(const ax_plugin *plugin);

#ifdef __cplusplus
}
#endif
#endif
