/* Sliding-window inference with Gaussian weighting and mirroring (nnU-Net). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/pool.h"
#include "axon/segment.h"

#define AX_SW_MAX_STARTS 4096

ax_sliding_window ax_sliding_window_default(void) {
    return (ax_sliding_window){.patch = {128, 128, 128}, .step = 0.5, .sigma_scale = 0.125, .mirror_axes = 0};
}

ax_status ax_sliding_window_starts(int64_t *starts, int max, int *n, int64_t size, int64_t patch, double step) {
    if (!n) return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_starts: NULL count");
    *n = 0;
    if (patch < 1 || size < patch)
        return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_starts: size %lld, patch %lld (want size >= patch >= 1)",
                        (long long)size, (long long)patch);
    if (!(step > 0 && step <= 1))
        return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_starts: step %g (want 0 < step <= 1)", step);
    double target = (double)patch * step;
    int64_t count = (int64_t)ceil((double)(size - patch) / target) + 1;
    if (count > INT32_MAX) count = INT32_MAX;
    *n = (int)count;
    if (count > max || !starts)
        return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_starts: %lld windows for size %lld, patch %lld, step %g "
                        "exceed the room for %d",
                        (long long)count, (long long)size, (long long)patch, step, max);
    double actual = count > 1 ? (double)(size - patch) / (double)(count - 1) : 0.0;
    /* np.round rounds half to even, as rint in the default rounding mode */
    for (int64_t i = 0; i < count; i++) starts[i] = (int64_t)rint(actual * (double)i);
    return AX_OK;
}

/* One axis of the separable Gaussian: scipy's kernel (radius
 * int(4 sigma + 0.5)) around patch // 2, divided by its centre value. */
static void gauss_axis(float *g, int64_t patch, double sigma_scale) {
    if (sigma_scale <= 0) {
        for (int64_t i = 0; i < patch; i++) g[i] = 1.0f;
        return;
    }
    double sigma = (double)patch * sigma_scale;
    int64_t radius = (int64_t)(4.0 * sigma + 0.5), c = patch / 2;
    for (int64_t i = 0; i < patch; i++) {
        int64_t d = i - c;
        g[i] = (d < -radius || d > radius) ? 0.0f : (float)exp(-0.5 * (double)(d * d) / (sigma * sigma));
    }
}

ax_status ax_gaussian_importance(ax_tensor **out, const int64_t patch[3], double sigma_scale) {
    if (!out || !patch) return AX_ERROR(AX_ERR_INVALID, "ax_gaussian_importance: NULL argument");
    *out = NULL;
    for (int i = 0; i < 3; i++)
        if (patch[i] < 1 || patch[i] > (1 << 16))
            return AX_ERROR(AX_ERR_INVALID, "ax_gaussian_importance: patch[%d] = %lld (want 1..65536)", i,
                            (long long)patch[i]);
    if (!(sigma_scale >= 0) || !isfinite(sigma_scale))
        return AX_ERROR(AX_ERR_INVALID, "ax_gaussian_importance: sigma_scale %g (want >= 0)", sigma_scale);
    ax_tensor *t = NULL;
    ax_status st = ax_tensor_empty(&t, 3, patch, AX_DTYPE_F32);
    if (st != AX_OK) return st;
    float *g[3];
    float *buf = malloc((size_t)(patch[0] + patch[1] + patch[2]) * sizeof *buf);
    if (!buf) {
        ax_tensor_free(t);
        return AX_ERROR(AX_ERR_NOMEM, "ax_gaussian_importance: out of memory");
    }
    g[0] = buf, g[1] = buf + patch[0], g[2] = buf + patch[0] + patch[1];
    for (int a = 0; a < 3; a++) gauss_axis(g[a], patch[a], sigma_scale);
    float *m = ax_tensor_data(t), lo = INFINITY;
    for (int64_t z = 0; z < patch[0]; z++)
        for (int64_t y = 0; y < patch[1]; y++) {
            float zy = g[0][z] * g[1][y];
            float *row = m + (z * patch[1] + y) * patch[2];
            for (int64_t x = 0; x < patch[2]; x++) {
                row[x] = zy * g[2][x];
                if (row[x] > 0 && row[x] < lo) lo = row[x];
            }
        }
    /* a zero weight would make voxels covered only by window borders 0 / 0 */
    int64_t n = patch[0] * patch[1] * patch[2];
    for (int64_t i = 0; i < n; i++)
        if (m[i] == 0) m[i] = lo;
    free(buf);
    *out = t;
    return AX_OK;
}

/* Reverse a contiguous [1, C, D, H, W] f32 tensor along the spatial axes in
 * `axes` (AX_MIRROR_* bits), into a new contiguous tensor. */
static ax_status flip_copy(ax_tensor **out, const ax_tensor *x, int axes) {
    ax_tensor *y = NULL;
    ax_status st = ax_tensor_empty(&y, 5, x->shape, AX_DTYPE_F32);
    if (st != AX_OK) return st;
    const int64_t c = x->shape[1], d = x->shape[2], h = x->shape[3], w = x->shape[4];
    const float *s = ax_tensor_data(x);
    float *o = ax_tensor_data(y);
    const bool fd = axes & AX_MIRROR_D, fh = axes & AX_MIRROR_H, fw = axes & AX_MIRROR_W;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) schedule(static) num_threads(ax_num_threads()) if (c * d * h * w >= 65536)
#endif
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t z = 0; z < d; z++) {
            int64_t sz = fd ? d - 1 - z : z;
            for (int64_t yy = 0; yy < h; yy++) {
                int64_t sy = fh ? h - 1 - yy : yy;
                const float *row = s + ((ci * d + sz) * h + sy) * w;
                float *orow = o + ((ci * d + z) * h + yy) * w;
                if (fw)
                    for (int64_t xx = 0; xx < w; xx++) orow[xx] = row[w - 1 - xx];
                else
                    memcpy(orow, row, (size_t)w * sizeof *row);
            }
        }
    *out = y;
    return AX_OK;
}

/* A CPU f32 contiguous tensor with t's values (t itself when it is one). */
static ax_status to_cpu_f32(ax_tensor **out, const ax_tensor *t) {
    ax_tensor *a = NULL, *b = NULL;
    ax_status st = AX_OK;
    if (t->storage->device.type != AX_DEVICE_CPU) st = ax_tensor_to_device(&a, t, AX_CPU);
    else a = ax_tensor_retain((ax_tensor *)t);
    if (st == AX_OK && a->dtype != AX_DTYPE_F32) {
        st = ax_tensor_to_dtype(&b, a, AX_DTYPE_F32);
        ax_tensor_free(a);
        a = b;
    }
    if (st == AX_OK) {
        st = ax_tensor_contiguous(&b, a);
        ax_tensor_free(a);
        a = b;
    }
    if (st != AX_OK) {
        ax_tensor_free(a);
        return st;
    }
    *out = a;
    return AX_OK;
}

/* net(x) on `dev`, returned as a CPU f32 contiguous tensor; x is CPU. */
static ax_status forward_on(ax_tensor **out, ax_module *net, const ax_tensor *x, ax_device dev) {
    ax_tensor *xd = NULL, *y = NULL;
    ax_status st = AX_OK;
    if (dev.type != AX_DEVICE_CPU) st = ax_tensor_to_device(&xd, x, dev);
    else xd = ax_tensor_retain((ax_tensor *)x);
    if (st == AX_OK) st = ax_module_forward(net, &y, xd);
    ax_tensor_free(xd);
    if (st == AX_OK) st = to_cpu_f32(out, y);
    ax_tensor_free(y);
    return st;
}

/* The window's logits, averaged over the mirror combinations. */
static ax_status predict_window(ax_tensor **out, ax_module *net, const ax_tensor *win, int mirror, ax_device dev) {
    ax_tensor *acc = NULL;
    ax_status st = forward_on(&acc, net, win, dev);
    if (st != AX_OK || !mirror) {
        *out = acc;
        return st;
    }
    int count = 1;
    float *a = ax_tensor_data(acc);
    const int64_t n = ax_tensor_numel(acc);
    for (int combo = 1; combo < 8 && st == AX_OK; combo++) {
        if ((combo & ~mirror) != 0) continue;
        ax_tensor *xf = NULL, *yf = NULL, *yb = NULL;
        st = flip_copy(&xf, win, combo);
        if (st == AX_OK) st = forward_on(&yf, net, xf, dev);
        if (st == AX_OK && !ax_tensor_same_shape(yf, acc))
            st = AX_ERROR(AX_ERR_INVALID, "mirrored window gave another output shape");
        if (st == AX_OK) st = flip_copy(&yb, yf, combo);
        if (st == AX_OK) {
            const float *b = ax_tensor_data(yb);
            for (int64_t i = 0; i < n; i++) a[i] += b[i];
            count++;
        }
        ax_tensor_free(xf);
        ax_tensor_free(yf);
        ax_tensor_free(yb);
    }
    if (st == AX_OK && count > 1) {
        const float inv = 1.0f / (float)count;
        for (int64_t i = 0; i < n; i++) a[i] *= inv;
    }
    if (st != AX_OK) {
        ax_tensor_free(acc);
        return st;
    }
    *out = acc;
    return AX_OK;
}

static ax_device net_device(const ax_module *net) {
    ax_named_tensors l = {0};
    ax_device dev = AX_CPU;
    if (ax_module_parameters(net, &l) == AX_OK && l.n > 0) dev = l.tensors[0]->storage->device;
    ax_named_tensors_clear(&l);
    return dev;
}

typedef struct sw_state {
    ax_tensor *xp;     /* padded input [1, C, Dp, Hp, Wp] f32 contiguous */
    ax_tensor *gauss;  /* [P] */
    float *sum;        /* [K, Dp, Hp, Wp], after the first window */
    float *weight;     /* [Dp, Hp, Wp] */
    int64_t k;
} sw_state;

static void sw_state_clear(sw_state *s) {
    ax_tensor_free(s->xp);
    ax_tensor_free(s->gauss);
    free(s->sum);
    free(s->weight);
}

static void accumulate(sw_state *s, const float *pred, const int64_t start[3], const int64_t patch[3],
                       const int64_t padded[3]) {
    const float *g = ax_tensor_data(s->gauss);
    const int64_t P = patch[0] * patch[1] * patch[2], V = padded[0] * padded[1] * padded[2];
    const int64_t nk = s->k;
    float *sum = s->sum, *weight = s->weight;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) schedule(static) num_threads(ax_num_threads()) if (nk * P >= 65536)
#endif
    for (int64_t k = -1; k < nk; k++)
        for (int64_t z = 0; z < patch[0]; z++)
            for (int64_t y = 0; y < patch[1]; y++) {
                const float *grow = g + (z * patch[1] + y) * patch[2];
                int64_t off = ((start[0] + z) * padded[1] + start[1] + y) * padded[2] + start[2];
                if (k < 0) { /* the weights, once per window */
                    float *wrow = weight + off;
                    for (int64_t x = 0; x < patch[2]; x++) wrow[x] += grow[x];
                } else {
                    const float *prow = pred + k * P + (z * patch[1] + y) * patch[2];
                    float *srow = sum + k * V + off;
                    for (int64_t x = 0; x < patch[2]; x++) srow[x] += prow[x] * grow[x];
                }
            }
}

static ax_status sliding_window_run(ax_tensor **out, ax_module *net, const ax_tensor *x,
                                    const ax_sliding_window *cfg);

ax_status ax_sliding_window_predict(ax_tensor **out, ax_module *net, const ax_tensor *x,
                                    const ax_sliding_window *cfg) {
    /* no graph for the padding and window copies of an x that requires grad */
    ax_no_grad_begin();
    ax_status st = sliding_window_run(out, net, x, cfg);
    ax_no_grad_end();
    return st;
}

static ax_status sliding_window_run(ax_tensor **out, ax_module *net, const ax_tensor *x,
                                    const ax_sliding_window *cfg) {
    char sb[96];
    if (!out || !net || !x || !cfg) return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_predict: NULL argument");
    *out = NULL;
    if (x->ndim != 5 || x->shape[0] != 1 || !ax_dtype_is_float(x->dtype) || ax_tensor_numel(x) == 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_predict: x %s %s (want [1, C, D, H, W] float)",
                        ax_shape_str(sb, sizeof sb, x->ndim, x->shape), ax_dtype_name(x->dtype));
    if ((cfg->mirror_axes & ~7) != 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_predict: mirror_axes 0x%x (want AX_MIRROR_* bits)",
                        (unsigned)cfg->mirror_axes);
    const int64_t *patch = cfg->patch, *size = &x->shape[2];
    int64_t padded[3], lo[3];
    int64_t *starts[3] = {NULL, NULL, NULL};
    int nstarts[3];
    sw_state s = {0};
    ax_status st = AX_OK;
    for (int a = 0; a < 3; a++) {
        if (patch[a] < 1)
            return AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_predict: patch[%d] = %lld (want >= 1)", a,
                            (long long)patch[a]);
        padded[a] = size[a] > patch[a] ? size[a] : patch[a];
        lo[a] = (padded[a] - size[a]) / 2;
    }
    int64_t *starts_buf = malloc(3 * AX_SW_MAX_STARTS * sizeof *starts_buf);
    if (!starts_buf) return AX_ERROR(AX_ERR_NOMEM, "ax_sliding_window_predict: out of memory");
    for (int a = 0; a < 3 && st == AX_OK; a++) {
        starts[a] = starts_buf + a * AX_SW_MAX_STARTS;
        st = ax_sliding_window_starts(starts[a], AX_SW_MAX_STARTS, &nstarts[a], padded[a], patch[a], cfg->step);
    }
    ax_tensor *xc = NULL;
    if (st == AX_OK) st = to_cpu_f32(&xc, x);
    if (st == AX_OK) {
        /* torch.nn.functional.pad order: W first; the odd voxel goes after */
        int64_t pads[6];
        for (int a = 0; a < 3; a++) {
            pads[2 * (2 - a)] = lo[a];
            pads[2 * (2 - a) + 1] = padded[a] - size[a] - lo[a];
        }
        if (pads[0] || pads[1] || pads[2] || pads[3] || pads[4] || pads[5])
            st = ax_pad(&s.xp, xc, 6, pads, AX_PAD_CONSTANT, 0.0);
        else
            s.xp = ax_tensor_retain(xc);
    }
    ax_tensor_free(xc);
    if (st == AX_OK) st = ax_gaussian_importance(&s.gauss, patch, cfg->sigma_scale);
    const int64_t V = padded[0] * padded[1] * padded[2];
    if (st == AX_OK && !(s.weight = calloc((size_t)V, sizeof *s.weight)))
        st = AX_ERROR(AX_ERR_NOMEM, "ax_sliding_window_predict: out of memory for %lld voxels", (long long)V);
    ax_device dev = net_device(net);
    for (int iz = 0; iz < (st == AX_OK ? nstarts[0] : 0); iz++)
        for (int iy = 0; iy < nstarts[1] && st == AX_OK; iy++)
            for (int ix = 0; ix < nstarts[2] && st == AX_OK; ix++) {
                const int64_t at[3] = {starts[0][iz], starts[1][iy], starts[2][ix]};
                ax_tensor *v0 = NULL, *v1 = NULL, *v2 = NULL, *win = NULL, *pred = NULL;
                st = ax_tensor_narrow(&v0, s.xp, 2, at[0], patch[0]);
                if (st == AX_OK) st = ax_tensor_narrow(&v1, v0, 3, at[1], patch[1]);
                if (st == AX_OK) st = ax_tensor_narrow(&v2, v1, 4, at[2], patch[2]);
                if (st == AX_OK) st = ax_tensor_contiguous(&win, v2);
                if (st == AX_OK) st = predict_window(&pred, net, win, cfg->mirror_axes, dev);
                if (st == AX_OK && (pred->ndim != 5 || pred->shape[0] != 1 || pred->shape[2] != patch[0] ||
                                    pred->shape[3] != patch[1] || pred->shape[4] != patch[2] ||
                                    (s.sum && pred->shape[1] != s.k)))
                    st = AX_ERROR(AX_ERR_INVALID, "ax_sliding_window_predict: the network maps a [1, %lld, %lld, "
                                  "%lld, %lld] window to %s (want [1, K, %lld, %lld, %lld])",
                                  (long long)x->shape[1], (long long)patch[0], (long long)patch[1],
                                  (long long)patch[2], ax_shape_str(sb, sizeof sb, pred->ndim, pred->shape),
                                  (long long)patch[0], (long long)patch[1], (long long)patch[2]);
                if (st == AX_OK && !s.sum) {
                    s.k = pred->shape[1];
                    if (!(s.sum = calloc((size_t)(s.k * V), sizeof *s.sum)))
                        st = AX_ERROR(AX_ERR_NOMEM, "ax_sliding_window_predict: out of memory for [%lld, %lld, "
                                      "%lld, %lld] logits",
                                      (long long)s.k, (long long)padded[0], (long long)padded[1],
                                      (long long)padded[2]);
                }
                if (st == AX_OK) accumulate(&s, ax_tensor_data(pred), at, patch, padded);
                ax_tensor_free(v0);
                ax_tensor_free(v1);
                ax_tensor_free(v2);
                ax_tensor_free(win);
                ax_tensor_free(pred);
            }
    ax_tensor *y = NULL;
    if (st == AX_OK) {
        const int64_t shape[5] = {1, s.k, size[0], size[1], size[2]};
        st = ax_tensor_empty(&y, 5, shape, AX_DTYPE_F32);
    }
    if (st == AX_OK) {
        float *o = ax_tensor_data(y);
        const int64_t nk = s.k;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) schedule(static) num_threads(ax_num_threads()) if (nk * V >= 65536)
#endif
        for (int64_t k = 0; k < nk; k++)
            for (int64_t z = 0; z < size[0]; z++)
                for (int64_t yy = 0; yy < size[1]; yy++) {
                    int64_t off = ((z + lo[0]) * padded[1] + yy + lo[1]) * padded[2] + lo[2];
                    const float *srow = s.sum + k * V + off, *wrow = s.weight + off;
                    float *orow = o + ((k * size[0] + z) * size[1] + yy) * size[2];
                    for (int64_t xx = 0; xx < size[2]; xx++) orow[xx] = srow[xx] / wrow[xx];
                }
        *out = y;
    }
    free(starts_buf);
    sw_state_clear(&s);
    if (st != AX_OK) ax_error_prefix("ax_sliding_window_predict");
    return st;
}

ax_status ax_seg_argmax(ax_tensor **labels, const ax_tensor *scores) {
    char sb[96];
    if (!labels || !scores) return AX_ERROR(AX_ERR_INVALID, "ax_seg_argmax: NULL argument");
    *labels = NULL;
    if (scores->ndim != 5 || scores->shape[0] != 1 || scores->shape[1] < 1 || scores->shape[1] > 256)
        return AX_ERROR(AX_ERR_INVALID, "ax_seg_argmax: scores %s (want [1, K, D, H, W], 1 <= K <= 256)",
                        ax_shape_str(sb, sizeof sb, scores->ndim, scores->shape));
    ax_tensor *c = NULL, *y = NULL;
    ax_status st = to_cpu_f32(&c, scores);
    if (st == AX_OK) st = ax_tensor_empty(&y, 3, &scores->shape[2], AX_DTYPE_U8);
    if (st != AX_OK) {
        ax_tensor_free(c);
        return st;
    }
    const int64_t k = scores->shape[1], v = scores->shape[2] * scores->shape[3] * scores->shape[4];
    const float *p = ax_tensor_data(c);
    uint8_t *o = ax_tensor_data(y);
    float *best = malloc((size_t)v * sizeof *best);
    if (!best) {
        ax_tensor_free(c);
        ax_tensor_free(y);
        return AX_ERROR(AX_ERR_NOMEM, "ax_seg_argmax: out of memory");
    }
    memcpy(best, p, (size_t)v * sizeof *best);
    memset(o, 0, (size_t)v);
    /* class-major sweeps: contiguous reads, vectorisable */
    for (int64_t ci = 1; ci < k; ci++) {
        const float *pc = p + ci * v;
        for (int64_t i = 0; i < v; i++)
            if (pc[i] > best[i]) best[i] = pc[i], o[i] = (uint8_t)ci;
    }
    free(best);
    ax_tensor_free(c);
    *labels = y;
    return AX_OK;
}
