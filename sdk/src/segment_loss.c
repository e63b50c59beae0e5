/* nnU-Net's segmentation loss: Dice + cross entropy, deep supervision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/loss.h"
#include "axon/segment.h"

ax_seg_loss_config ax_seg_loss_config_default(void) {
    return (ax_seg_loss_config){.weight_ce = 1.0, .weight_dice = 1.0, .smooth = 1e-5, .batch_dice = false,
                                .do_bg = false};
}

ax_status ax_deep_supervision_weights(double *w, int n) {
    if (!w || n < 1) return AX_ERROR(AX_ERR_INVALID, "ax_deep_supervision_weights: n = %d (want >= 1)", n);
    if (n == 1) {
        w[0] = 1.0;
        return AX_OK;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) w[i] = ldexp(1.0, -i);
    w[n - 1] = 0; /* nnU-Net drops the coarsest output */
    for (int i = 0; i < n; i++) sum += w[i];
    for (int i = 0; i < n; i++) w[i] /= sum;
    return AX_OK;
}

static char *shape_of(char *buf, size_t size, const ax_tensor *t) { return ax_shape_str(buf, size, t->ndim, t->shape); }

ax_status ax_seg_resize_labels(ax_tensor **out, const ax_tensor *labels, const int64_t size[3]) {
    char sb[96];
    if (!out || !labels || !size) return AX_ERROR(AX_ERR_INVALID, "ax_seg_resize_labels: NULL argument");
    *out = NULL;
    if (labels->ndim != 5 || labels->shape[1] != 1 || labels->dtype != AX_DTYPE_U8)
        return AX_ERROR(AX_ERR_INVALID, "ax_seg_resize_labels: labels %s %s (want [N, 1, D, H, W] u8)",
                        shape_of(sb, sizeof sb, labels), ax_dtype_name(labels->dtype));
    if (labels->storage->device.type != AX_DEVICE_CPU)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "ax_seg_resize_labels: labels must be on the CPU");
    for (int i = 0; i < 3; i++)
        if (size[i] < 1)
            return AX_ERROR(AX_ERR_INVALID, "ax_seg_resize_labels: size[%d] = %lld (want >= 1)", i,
                            (long long)size[i]);
    if (size[0] == labels->shape[2] && size[1] == labels->shape[3] && size[2] == labels->shape[4]) {
        *out = ax_tensor_retain((ax_tensor *)labels);
        return AX_OK;
    }
    ax_tensor *src = NULL, *dst = NULL;
    ax_status st = ax_tensor_contiguous(&src, labels);
    const int64_t n = labels->shape[0], in[3] = {labels->shape[2], labels->shape[3], labels->shape[4]};
    const int64_t shape[5] = {n, 1, size[0], size[1], size[2]};
    if (st == AX_OK) st = ax_tensor_empty(&dst, 5, shape, AX_DTYPE_U8);
    if (st != AX_OK) {
        ax_tensor_free(src);
        return st;
    }
    /* nearest-exact: source floor((i + 0.5) * in / out), clamped */
    int64_t *heap = malloc((size_t)(size[0] + size[1] + size[2]) * sizeof *heap);
    if (!heap) {
        ax_tensor_free(src);
        ax_tensor_free(dst);
        return AX_ERROR(AX_ERR_NOMEM, "ax_seg_resize_labels: out of memory");
    }
    int64_t *map[3] = {heap, heap + size[0], heap + size[0] + size[1]};
    for (int a = 0; a < 3; a++) {
        double scale = (double)in[a] / (double)size[a];
        for (int64_t i = 0; i < size[a]; i++) {
            int64_t s = (int64_t)floor(((double)i + 0.5) * scale);
            map[a][i] = s < in[a] ? s : in[a] - 1;
        }
    }
    const uint8_t *s = ax_tensor_data(src);
    uint8_t *d = ax_tensor_data(dst);
    for (int64_t b = 0; b < n; b++) {
        const uint8_t *sb0 = s + b * in[0] * in[1] * in[2];
        uint8_t *db0 = d + b * size[0] * size[1] * size[2];
        for (int64_t z = 0; z < size[0]; z++)
            for (int64_t y = 0; y < size[1]; y++) {
                const uint8_t *row = sb0 + (map[0][z] * in[1] + map[1][y]) * in[2];
                uint8_t *o = db0 + (z * size[1] + y) * size[2];
                for (int64_t x = 0; x < size[2]; x++) o[x] = row[map[2][x]];
            }
    }
    free(heap);
    ax_tensor_free(src);
    *out = dst;
    return AX_OK;
}

ax_status ax_dice_ce_loss(ax_tensor **out, const ax_tensor *logits, const ax_tensor *target,
                          const ax_seg_loss_config *cfg) {
    char sa[96], sb[96];
    if (!out || !logits || !target) return AX_ERROR(AX_ERR_INVALID, "ax_dice_ce_loss: NULL argument");
    *out = NULL;
    ax_seg_loss_config c = cfg ? *cfg : ax_seg_loss_config_default();
    if (logits->ndim != 5 || !ax_dtype_is_float(logits->dtype) || logits->shape[1] < 2)
        return AX_ERROR(AX_ERR_INVALID, "ax_dice_ce_loss: logits %s %s (want [N, K, D, H, W] float, K >= 2)",
                        shape_of(sa, sizeof sa, logits), ax_dtype_name(logits->dtype));
    if (target->ndim != 5 || target->dtype != AX_DTYPE_U8 || target->shape[1] != 1 ||
        target->shape[0] != logits->shape[0] || target->shape[2] != logits->shape[2] ||
        target->shape[3] != logits->shape[3] || target->shape[4] != logits->shape[4])
        return AX_ERROR(AX_ERR_INVALID, "ax_dice_ce_loss: target %s %s does not match logits %s (want [%lld, 1, "
                        "%lld, %lld, %lld] u8)",
                        shape_of(sa, sizeof sa, target), ax_dtype_name(target->dtype),
                        shape_of(sb, sizeof sb, logits), (long long)logits->shape[0], (long long)logits->shape[2],
                        (long long)logits->shape[3], (long long)logits->shape[4]);
    if (!(c.weight_ce >= 0) || !(c.weight_dice >= 0) || c.weight_ce + c.weight_dice <= 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_dice_ce_loss: weights ce %g, dice %g (want >= 0, not both 0)",
                        c.weight_ce, c.weight_dice);
    ax_tensor *ce = NULL, *dc = NULL, *probs = NULL, *t = NULL, *a = NULL, *b = NULL;
    ax_status st = AX_OK;
    if (target->storage->device.type == AX_DEVICE_CPU) {
        const int64_t n = ax_tensor_numel(target), k = logits->shape[1];
        ax_tensor *tc = NULL;
        st = ax_tensor_contiguous(&tc, target);
        const uint8_t *v = st == AX_OK ? ax_tensor_data(tc) : NULL;
        uint8_t hi = 0;
        for (int64_t i = 0; i < n && v; i++) hi = v[i] > hi ? v[i] : hi;
        ax_tensor_free(tc);
        if (st == AX_OK && hi >= k)
            st = AX_ERROR(AX_ERR_INVALID, "ax_dice_ce_loss: target has class %u, logits only %lld classes", hi,
                          (long long)k);
        if (st != AX_OK) return st;
    }
    /* a CPU target (the loader's) for logits on a device */
    ax_tensor *tgt = NULL;
    const ax_device ld = logits->storage->device, td = target->storage->device;
    if (ld.type != td.type || ld.index != td.index) st = ax_tensor_to_device(&tgt, target, ld);
    else tgt = ax_tensor_retain((ax_tensor *)target);
    if (st != AX_OK) return st;
    if (c.weight_ce > 0) {
        st = ax_tensor_squeeze(&t, tgt, 1);
        if (st == AX_OK) st = ax_cross_entropy(&ce, logits, t, NULL, AX_IGNORE_INDEX, 0.0, AX_LOSS_MEAN);
        if (st == AX_OK) st = ax_mul_scalar(&a, ce, c.weight_ce);
    }
    if (st == AX_OK && c.weight_dice > 0) {
        st = ax_softmax(&probs, logits, 1);
        if (st == AX_OK) st = ax_soft_dice_loss(&dc, probs, tgt, NULL, c.smooth, c.batch_dice, c.do_bg);
        if (st == AX_OK) st = ax_mul_scalar(&b, dc, c.weight_dice);
    }
    if (st == AX_OK) {
        if (a && b) st = ax_add(out, a, b);
        else *out = ax_tensor_retain(a ? a : b);
    }
    ax_tensor_free(tgt);
    ax_tensor_free(ce);
    ax_tensor_free(dc);
    ax_tensor_free(probs);
    ax_tensor_free(t);
    ax_tensor_free(a);
    ax_tensor_free(b);
    if (st != AX_OK) ax_error_prefix("ax_dice_ce_loss");
    return st;
}

ax_status ax_seg_loss(ax_tensor **out, ax_tensor *const *outputs, const double *weights, int n,
                      const ax_tensor *target, const ax_seg_loss_config *cfg) {
    enum { MAX_OUTS = 16 };
    if (!out || !outputs || !target) return AX_ERROR(AX_ERR_INVALID, "ax_seg_loss: NULL argument");
    *out = NULL;
    if (n < 1 || n > MAX_OUTS) return AX_ERROR(AX_ERR_INVALID, "ax_seg_loss: %d outputs (want 1..%d)", n, MAX_OUTS);
    double w[MAX_OUTS];
    if (weights) memcpy(w, weights, (size_t)n * sizeof *w);
    else ax_deep_supervision_weights(w, n);
    for (int i = 0; i < n; i++)
        if (!(w[i] >= 0) || !isfinite(w[i]))
            return AX_ERROR(AX_ERR_INVALID, "ax_seg_loss: weight %d is %g (want finite, >= 0)", i, w[i]);
    ax_tensor *total = NULL, *cpu = NULL;
    /* deep-supervision targets are resized on the CPU, then follow each output */
    ax_status st = target->storage->device.type == AX_DEVICE_CPU ? (cpu = ax_tensor_retain((ax_tensor *)target), AX_OK)
                                                                   : ax_tensor_to_device(&cpu, target, AX_CPU);
    for (int i = 0; i < n && st == AX_OK; i++) {
        if (w[i] == 0) continue;
        const ax_tensor *o = outputs[i];
        if (!o || o->ndim != 5) {
            st = AX_ERROR(AX_ERR_INVALID, "ax_seg_loss: output %d is not [N, K, D, H, W]", i);
            break;
        }
        ax_tensor *ti = NULL, *li = NULL, *wi = NULL, *sum = NULL;
        st = ax_seg_resize_labels(&ti, cpu, &o->shape[2]);
        if (st == AX_OK) st = ax_dice_ce_loss(&li, o, ti, cfg);
        if (st == AX_OK) st = w[i] == 1.0 ? (wi = ax_tensor_retain(li), AX_OK) : ax_mul_scalar(&wi, li, w[i]);
        if (st == AX_OK) {
            if (total) {
                st = ax_add(&sum, total, wi);
                ax_tensor_free(total);
                total = sum;
            } else {
                total = ax_tensor_retain(wi);
            }
        }
        if (st != AX_OK) ax_error_prefix("output %d", i);
        ax_tensor_free(ti);
        ax_tensor_free(li);
        ax_tensor_free(wi);
    }
    ax_tensor_free(cpu);
    if (st == AX_OK && !total) st = AX_ERROR(AX_ERR_INVALID, "ax_seg_loss: every weight is 0");
    if (st != AX_OK) {
        ax_tensor_free(total);
        return st;
    }
    *out = total;
    return AX_OK;
}
