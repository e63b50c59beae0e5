/* A plugin as a user would write it outside axon's source tree: built by
 * tests/sh/out_of_tree.sh against the *installed* SDK with only
 * `cc -shared $(pkg-config --cflags --libs axon)`. */
#include <axon/axon.h>
#include <stdlib.h>

typedef struct scale {
    float factor;
} scale;

static ax_status scale_create(void **self, const ax_params *params) {
    scale *s = malloc(sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "scale: out of memory");
    s->factor = (float)ax_params_float(params, "factor");
    *self = s;
    return AX_OK;
}

static void scale_destroy(void *self) { free(self); }

static ax_status scale_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const scale *sc = self;
    size_t n = ax_sample_voxels(s) * (size_t)s->channels;
    (void)rng;
    for (size_t i = 0; i < n; i++) s->image[i] *= sc->factor;
    return AX_OK;
}

static const ax_param_spec scale_params[] = {
    {.name = "factor", .type = AX_PARAM_FLOAT, .def = "1", .min = 0.01, .max = 100,
     .doc = "intensity multiplier"},
    {0}};

static const ax_aug_ops scale_ops = {
    .create = scale_create, .destroy = scale_destroy, .apply = scale_apply};

static const ax_plugin scale_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "oot_scale",
    .version = "1.0",
    .summary = "multiply intensities (out-of-tree test plugin)",
    .license = "MIT",
    .params = scale_params,
    .ops = &scale_ops,
    .ops_size = sizeof scale_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&scale_plugin, NULL};
    return list;
}
