/* TASK plugin `segmentation`: nnU-Net's Dice + CE loss with deep
 * supervision, Gaussian sliding-window inference with mirroring, argmax
 * decoding, Dice and HD95 per class (axon/segment.h does the work). */
#include <axon/axon.h>
#include <axon/segment.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SEG_MAX_OUTS = 16, SEG_NAME = 24 };

typedef struct seg_task {
    int64_t classes;
    ax_seg_loss_config loss;
    bool highest_only;          /* deep_supervision = highest */
    int n_ds;                   /* explicit ds_weights, 0 when not given */
    double ds[SEG_MAX_OUTS];
    ax_sliding_window window;
    bool hd95;
    int n_metrics;
    char (*names)[SEG_NAME];    /* [n_metrics] */
} seg_task;

static void seg_destroy(void *self) {
    seg_task *t = self;
    if (!t) return;
    free(t->names);
    free(t);
}

static ax_status seg_create(void **self, const ax_params *p) {
    seg_task *t = calloc(1, sizeof *t);
    if (!t) return AX_ERROR(AX_ERR_NOMEM, "segmentation: out of memory");
    t->classes = ax_params_int(p, "classes");
    t->loss = ax_seg_loss_config_default();
    const char *loss = ax_params_string(p, "loss");
    if (strcmp(loss, "ce") == 0) t->loss.weight_dice = 0;
    else if (strcmp(loss, "dice") == 0) t->loss.weight_ce = 0;
    t->loss.batch_dice = ax_params_bool(p, "batch_dice");
    t->loss.do_bg = ax_params_bool(p, "do_bg");
    t->loss.smooth = ax_params_float(p, "smooth");
    t->highest_only = strcmp(ax_params_string(p, "deep_supervision"), "highest") == 0;
    if (ax_params_is_set(p, "ds_weights")) {
        size_t n = ax_params_floats(p, "ds_weights", t->ds, SEG_MAX_OUTS);
        double sum = 0;
        for (size_t i = 0; i < n && i < SEG_MAX_OUTS; i++) sum += t->ds[i];
        if (n > SEG_MAX_OUTS || !(sum > 0)) {
            seg_destroy(t);
            return AX_ERROR(AX_ERR_INVALID, "segmentation: ds_weights has %zu values summing to %g (want 1..%d "
                            "values, sum > 0)",
                            n, sum, SEG_MAX_OUTS);
        }
        for (size_t i = 0; i < n; i++) t->ds[i] /= sum;
        t->n_ds = (int)n;
    }
    int64_t patch[3];
    ax_params_ints(p, "patch", patch, 3);
    t->window = ax_sliding_window_default();
    memcpy(t->window.patch, patch, sizeof patch);
    t->window.step = ax_params_float(p, "step");
    t->window.sigma_scale = ax_params_float(p, "sigma_scale");
    if (ax_params_bool(p, "mirror")) {
        int64_t axes[3];
        size_t n = ax_params_ints(p, "mirror_axes", axes, 3);
        for (size_t i = 0; i < n && i < 3; i++) t->window.mirror_axes |= 1 << axes[i];
    }
    t->hd95 = ax_params_bool(p, "hd95");
    /* metric names: dice_<c> for c >= 1, dice_mean, then the same for hd95 */
    const int per = (int)t->classes; /* K - 1 classes + the mean */
    t->n_metrics = per * (t->hd95 ? 2 : 1);
    t->names = calloc((size_t)t->n_metrics, sizeof *t->names);
    if (!t->names) {
        seg_destroy(t);
        return AX_ERROR(AX_ERR_NOMEM, "segmentation: out of memory");
    }
    for (int m = 0; m < (t->hd95 ? 2 : 1); m++) {
        const char *what = m ? "hd95" : "dice";
        for (int c = 1; c < per; c++) snprintf(t->names[m * per + c - 1], SEG_NAME, "%s_%d", what, c);
        snprintf(t->names[m * per + per - 1], SEG_NAME, "%s_mean", what);
    }
    *self = t;
    return AX_OK;
}

static ax_status seg_out_channels(const void *self, int64_t *out) {
    const seg_task *t = self;
    *out = t->classes;
    return AX_OK;
}

static ax_status seg_loss(const void *self, ax_tensor *const *outputs, int n, const ax_tensor *target,
                          ax_tensor **loss) {
    const seg_task *t = self;
    if (n < 1 || n > SEG_MAX_OUTS)
        return AX_ERROR(AX_ERR_INVALID, "segmentation: loss of %d outputs (want 1..%d)", n, SEG_MAX_OUTS);
    for (int i = 0; i < n; i++)
        if (!outputs[i] || outputs[i]->ndim != 5 || outputs[i]->shape[1] != t->classes)
            return AX_ERROR(AX_ERR_INVALID, "segmentation: output %d has %lld channels, the task has %lld classes",
                            i, outputs[i] && outputs[i]->ndim == 5 ? (long long)outputs[i]->shape[1] : -1LL,
                            (long long)t->classes);
    double w[SEG_MAX_OUTS] = {0};
    if (t->n_ds) {
        if (t->n_ds != n)
            return AX_ERROR(AX_ERR_INVALID, "segmentation: ds_weights has %d values for %d outputs", t->n_ds, n);
        memcpy(w, t->ds, (size_t)n * sizeof *w);
    } else if (t->highest_only) {
        w[0] = 1;
    } else {
        ax_deep_supervision_weights(w, n);
    }
    return ax_seg_loss(loss, outputs, w, n, target, &t->loss);
}

static ax_status seg_predict(const void *self, ax_module *net, const ax_tensor *x, ax_tensor **out) {
    const seg_task *t = self;
    ax_tensor *y = NULL;
    ax_status st = ax_sliding_window_predict(&y, net, x, &t->window);
    if (st != AX_OK) return ax_error_prefix("segmentation");
    if (y->shape[1] != t->classes) {
        long long k = (long long)y->shape[1];
        ax_tensor_free(y);
        return AX_ERROR(AX_ERR_INVALID, "segmentation: the network predicts %lld channels, the task has %lld classes",
                        k, (long long)t->classes);
    }
    *out = y;
    return AX_OK;
}

static ax_status seg_decode(const void *self, const ax_tensor *pred, ax_tensor **labels) {
    const seg_task *t = self;
    if (!pred || pred->ndim != 5 || pred->shape[1] != t->classes)
        return AX_ERROR(AX_ERR_INVALID, "segmentation: decode wants [1, %lld, D, H, W] scores", (long long)t->classes);
    return ax_seg_argmax(labels, pred);
}

static ax_status seg_evaluate(const void *self, const ax_tensor *pred, const ax_tensor *ref, const double spacing[3],
                              ax_task_metric *metrics, int max_metrics, int *n) {
    const seg_task *t = self;
    *n = t->n_metrics;
    if (!metrics) return AX_OK;
    if (max_metrics < t->n_metrics)
        return AX_ERROR(AX_ERR_INVALID, "segmentation: evaluate reports %d metrics, room for %d", t->n_metrics,
                        max_metrics);
    const int per = (int)t->classes;
    double *v = malloc((size_t)per * sizeof *v);
    if (!v) return AX_ERROR(AX_ERR_NOMEM, "segmentation: out of memory");
    ax_status st = ax_seg_dice(v, pred, ref, per);
    if (st == AX_OK) {
        /* v[0] is the background: nnU-Net reports foreground classes only */
        for (int c = 1; c < per; c++) metrics[c - 1] = (ax_task_metric){t->names[c - 1], v[c]};
        metrics[per - 1] = (ax_task_metric){t->names[per - 1], ax_nanmean(v + 1, per - 1)};
    }
    for (int c = 1; c < per && st == AX_OK && t->hd95; c++) {
        st = ax_seg_hd95(&v[c], pred, ref, c, spacing);
        if (st == AX_OK) metrics[per + c - 1] = (ax_task_metric){t->names[per + c - 1], v[c]};
    }
    if (st == AX_OK && t->hd95) metrics[2 * per - 1] = (ax_task_metric){t->names[2 * per - 1], ax_nanmean(v + 1, per - 1)};
    free(v);
    return st == AX_OK ? AX_OK : ax_error_prefix("segmentation");
}

static const ax_param_spec seg_params[] = {
    {.name = "classes", .type = AX_PARAM_INT, .def = "2", .min = 2, .max = 256,
     .doc = "output classes K, background included (labels 0..K-1)"},
    {.name = "loss", .type = AX_PARAM_STRING, .def = "dice_ce", .choices = "dice_ce|ce|dice",
     .doc = "nnU-Net's soft Dice + cross entropy (1:1), or one of them"},
    {.name = "batch_dice", .type = AX_PARAM_BOOL, .def = "false",
     .doc = "Dice over the whole batch instead of per sample (nnU-Net 3d_fullres: false)"},
    {.name = "do_bg", .type = AX_PARAM_BOOL, .def = "false", .doc = "include the background in the Dice loss"},
    {.name = "smooth", .type = AX_PARAM_FLOAT, .def = "1e-5", .min = 0, .max = 1,
     .doc = "soft Dice smoothing term"},
    {.name = "deep_supervision", .type = AX_PARAM_STRING, .def = "nnunet", .choices = "nnunet|highest",
     .doc = "several outputs: nnunet = weights 1/2^i, coarsest 0, normalised; highest = full resolution only"},
    {.name = "ds_weights", .type = AX_PARAM_FLOAT_LIST, .def = "1", .min = 0, .max = 1e6,
     .doc = "explicit per-output loss weights (highest resolution first, normalised); overrides deep_supervision "
            "when set"},
    {.name = "patch", .type = AX_PARAM_INT_LIST, .def = "160,160,160", .len = 3, .min = 1, .max = 4096,
     .doc = "sliding-window size D,H,W (the fine-tuning patch)"},
    {.name = "step", .type = AX_PARAM_FLOAT, .def = "0.5", .min = 0.01, .max = 1,
     .doc = "window step as a fraction of the patch (nnU-Net 0.5)"},
    {.name = "sigma_scale", .type = AX_PARAM_FLOAT, .def = "0.125", .min = 0, .max = 10,
     .doc = "Gaussian importance sigma = patch * sigma_scale; 0 = flat"},
    {.name = "mirror", .type = AX_PARAM_BOOL, .def = "true", .doc = "test-time mirroring (nnU-Net's default)"},
    {.name = "mirror_axes", .type = AX_PARAM_INT_LIST, .def = "0,1,2", .min = 0, .max = 2,
     .doc = "spatial axes mirrored at test time (0 = D, 1 = H, 2 = W); every combination is averaged"},
    {.name = "hd95", .type = AX_PARAM_BOOL, .def = "true", .doc = "also report the 95% Hausdorff distance (mm)"},
    {0}};

static const ax_task_ops seg_ops = {
    .create = seg_create,
    .destroy = seg_destroy,
    .out_channels = seg_out_channels,
    .loss = seg_loss,
    .predict = seg_predict,
    .decode = seg_decode,
    .evaluate = seg_evaluate,
};

static const ax_plugin seg_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_TASK,
    .name = "segmentation",
    .version = "1.0",
    .summary = "semantic segmentation: Dice+CE, Gaussian sliding window, Dice and HD95",
    .license = "MIT",
    .params = seg_params,
    .ops = &seg_ops,
    .ops_size = sizeof seg_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&seg_plugin, NULL};
    return list;
}
