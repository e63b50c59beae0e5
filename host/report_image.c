/* Images of the report: orthogonal slices of volumes (RAS, as read by
 * ax_volume_read) with label overlays, and a METHOD's preview, as inline
 * PNG data URIs. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/cache.h"
#include "axon/safetensors.h"
#include "axon/volume.h"
#include "report_internal.h"
#include "train_checkpoint.h"
#include "train_core.h"

/* A 3D scalar field [D, H, W] with its voxel size. */
typedef struct ax_img3 {
    const float *v;   /* [D, H, W] intensities, or NULL */
    const uint8_t *l; /* [D, H, W] labels, or NULL */
    int32_t shape[3];
    double spacing[3];
} ax_img3;

static int ax_float_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 0.5 and 99.5 percentiles of v[0..n) (a strided sample of at most 200k). */
static void ax_img_window(const float *v, size_t n, float *lo, float *hi) {
    size_t stride = n > 200000 ? n / 200000 : 1, m = 0;
    float *s = malloc((n / stride + 1) * sizeof *s);
    if (!s) {
        *lo = 0, *hi = 1;
        return;
    }
    for (size_t i = 0; i < n; i += stride)
        s[m++] = v[i];
    qsort(s, m, sizeof *s, ax_float_cmp);
    *lo = s[(size_t)(0.005 * (double)(m - 1))];
    *hi = s[(size_t)(0.995 * (double)(m - 1))];
    if (!(*hi > *lo)) *hi = *lo + 1;
    free(s);
}

static const uint8_t ax_label_rgb[8][3] = {{0, 0, 0},     {250, 220, 40}, {230, 40, 40},  {40, 110, 240},
                                           {40, 200, 80}, {200, 60, 220}, {40, 220, 220}, {250, 140, 20}};

/* View 0 axial (d fixed; rows h, anterior up), 1 coronal (h fixed; rows d,
 * superior up), 2 sagittal (w fixed; rows d, superior up). Voxel (row r,
 * col c) -> index in [D, H, W]; *rows, *cols and the pixel sizes in mm. */
static void ax_view_dims(const ax_img3 *im, int view, int *rows, int *cols, double *rmm, double *cmm) {
    const int32_t *s = im->shape;
    const double *sp = im->spacing;
    if (view == 0)
        *rows = s[1], *cols = s[2], *rmm = sp[1], *cmm = sp[2];
    else if (view == 1)
        *rows = s[0], *cols = s[2], *rmm = sp[0], *cmm = sp[2];
    else
        *rows = s[0], *cols = s[1], *rmm = sp[0], *cmm = sp[1];
}

static size_t ax_view_index(const ax_img3 *im, int view, int r, int c) {
    const int32_t *s = im->shape;
    size_t D = (size_t)s[0], H = (size_t)s[1], W = (size_t)s[2];
    (void)D;
    if (view == 0) return ((size_t)(s[0] / 2) * H + (size_t)(s[1] - 1 - r)) * W + (size_t)c;
    if (view == 1) return ((size_t)(s[0] - 1 - r) * H + (size_t)(s[1] / 2)) * W + (size_t)c;
    return ((size_t)(s[0] - 1 - r) * H + (size_t)c) * W + (size_t)(s[2] / 2);
}

/* One view as an <img>: grey intensities (window lo..hi) with the labels
 * blended over them (or the labels alone on black when there is no image). */
static ax_status ax_view_png(ax_sbuf *b, const ax_img3 *im, const uint8_t *labels, int view, float lo, float hi,
                             double px_per_mm, const char *alt) {
    int rows, cols;
    double rmm, cmm;
    ax_view_dims(im, view, &rows, &cols, &rmm, &cmm);
    uint8_t *rgb = malloc((size_t)rows * (size_t)cols * 3);
    if (!rgb) return AX_ERROR(AX_ERR_NOMEM, "report: out of memory");
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t i = ax_view_index(im, view, r, c);
            double g = im->v ? (im->v[i] - lo) / (hi - lo) : 0;
            g = g < 0 ? 0 : g > 1 ? 1 : g;
            double px[3] = {255 * g, 255 * g, 255 * g};
            if (labels && labels[i]) {
                const uint8_t *col = ax_label_rgb[labels[i] % 8 ? labels[i] % 8 : 7];
                double a = im->v ? 0.45 : 1.0;
                for (int k = 0; k < 3; k++)
                    px[k] = (1 - a) * px[k] + a * col[k];
            }
            uint8_t *p = rgb + ((size_t)r * (size_t)cols + (size_t)c) * 3;
            for (int k = 0; k < 3; k++)
                p[k] = (uint8_t)lrint(px[k]);
        }
    uint8_t *png = NULL;
    size_t n = 0;
    ax_status st = ax_png_encode(rgb, cols, rows, 3, &png, &n);
    free(rgb);
    if (st != AX_OK) return st;
    char *b64 = ax_base64(png, n);
    free(png);
    if (!b64) return AX_ERROR(AX_ERR_NOMEM, "report: out of memory");
    ax_sbuf_printf(b, "<img alt=\"%s\" width=\"%d\" height=\"%d\" src=\"data:image/png;base64,%s\">", alt,
                   (int)lround(cols * cmm * px_per_mm), (int)lround(rows * rmm * px_per_mm), b64);
    free(b64);
    return AX_OK;
}

static ax_status ax_panel(ax_sbuf *b, const ax_img3 *im, const uint8_t *labels, float lo, float hi, double ppm,
                          const char *caption) {
    static const char *const views[3] = {"axial", "coronal", "sagittal"};
    ax_sbuf_puts(b, "<div class=\"panel\"><div>");
    ax_status st = AX_OK;
    for (int v = 0; v < 3 && st == AX_OK; v++)
        st = ax_view_png(b, im, labels, v, lo, hi, ppm, views[v]);
    ax_sbuf_puts(b, "</div>");
    ax_sbuf_text(b, caption);
    ax_sbuf_puts(b, "</div>\n");
    return st;
}

static double ax_ppm(const ax_img3 *im) {
    double ext = 0;
    for (int i = 0; i < 3; i++)
        ext = fmax(ext, im->shape[i] * im->spacing[i]);
    return ext > 0 ? 150.0 / ext : 1;
}

/* A label volume as u8 (rounded), checked against the image's grid. */
static ax_status ax_read_labels(const char *path, const ax_volume *img, const char *img_path, uint8_t **out) {
    ax_volume *v = NULL;
    ax_status st = ax_volume_read(&v, path, NULL);
    if (st != AX_OK) return st;
    if (memcmp(v->shape, img->shape, sizeof v->shape) != 0 || v->channels != 1) {
        st = AX_ERROR(AX_ERR_INVALID, "report: %s is %dx%dx%d (%d channels) but its image %s is %dx%dx%d", path,
                      v->shape[0], v->shape[1], v->shape[2], v->channels, img_path, img->shape[0], img->shape[1],
                      img->shape[2]);
        ax_volume_free(v);
        return st;
    }
    size_t n = (size_t)v->shape[0] * (size_t)v->shape[1] * (size_t)v->shape[2];
    *out = malloc(n ? n : 1);
    if (!*out) {
        ax_volume_free(v);
        return AX_ERROR(AX_ERR_NOMEM, "report: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        float x = v->data[i];
        (*out)[i] = x > 0 && x < 255.5f ? (uint8_t)lrintf(x) : 0;
    }
    ax_volume_free(v);
    return AX_OK;
}

ax_status ax_report_case_html(ax_sbuf *b, const ax_report_case *c) {
    ax_volume *img = NULL;
    ax_status st = ax_volume_read(&img, c->image, NULL);
    if (st != AX_OK) return st;
    ax_img3 im = {.v = img->data};
    memcpy(im.shape, img->shape, sizeof im.shape);
    memcpy(im.spacing, img->spacing, sizeof im.spacing);
    size_t n = (size_t)im.shape[0] * (size_t)im.shape[1] * (size_t)im.shape[2];
    float lo, hi;
    ax_img_window(im.v, n, &lo, &hi);
    double ppm = ax_ppm(&im);
    ax_sbuf_puts(b, "<h3>");
    ax_sbuf_text(b, c->title);
    ax_sbuf_puts(b, "</h3><div class=\"case\">\n");
    st = ax_panel(b, &im, NULL, lo, hi, ppm, "image");
    uint8_t *lab = NULL;
    if (st == AX_OK && c->label && (st = ax_read_labels(c->label, img, c->image, &lab)) == AX_OK)
        st = ax_panel(b, &im, lab, lo, hi, ppm, "reference label");
    free(lab);
    for (size_t k = 0; k < c->n_preds && st == AX_OK; k++) {
        uint8_t *p = NULL;
        if ((st = ax_read_labels(c->preds[k], img, c->image, &p)) == AX_OK)
            st = ax_panel(b, &im, p, lo, hi, ppm, c->pred_names[k] ? c->pred_names[k] : "prediction");
        free(p);
    }
    ax_sbuf_puts(b, "</div>\n");
    ax_volume_free(img);
    return st;
}

/* ---- the METHOD preview of a pre-training run --------------------------------------------- */

/* The centre patch of channel 0.. of a case, zero-padded: [1, C, p...]. */
static ax_status ax_center_patch(const ax_case *c, const int64_t p[3], ax_tensor **out) {
    int64_t shape[5] = {1, c->channels, p[0], p[1], p[2]};
    ax_status st = ax_tensor_zeros(out, 5, shape, AX_DTYPE_F32);
    if (st != AX_OK) return st;
    float *d = ax_tensor_data(*out);
    int64_t off[3];
    for (int i = 0; i < 3; i++)
        off[i] = (c->shape[i] - p[i]) / 2; /* source start (negative: pad) */
    for (int64_t ch = 0; ch < c->channels; ch++)
        for (int64_t z = 0; z < p[0]; z++) {
            int64_t sz = z + off[0];
            if (sz < 0 || sz >= c->shape[0]) continue;
            for (int64_t y = 0; y < p[1]; y++) {
                int64_t sy = y + off[1];
                if (sy < 0 || sy >= c->shape[1]) continue;
                for (int64_t x = 0; x < p[2]; x++) {
                    int64_t sx = x + off[2];
                    if (sx < 0 || sx >= c->shape[2]) continue;
                    d[((ch * p[0] + z) * p[1] + y) * p[2] + x] =
                        c->image[((ch * c->shape[0] + sz) * c->shape[1] + sy) * c->shape[2] + sx];
                }
            }
        }
    return AX_OK;
}

static ax_status ax_preview_method(ax_registry *reg, const char *ckpt, ax_instance **out) {
    ax_safetensors *f;
    ax_status st = ax_safetensors_open(&f, ckpt);
    if (st != AX_OK) return st;
    const char *name = ax_safetensors_metadata(f, "method");
    const char *params = ax_safetensors_metadata(f, "method_params");
    const ax_registry_item *it = name ? ax_registry_find(reg, AX_PLUGIN_METHOD, name) : NULL;
    ax_params *p = NULL;
    if (!name)
        st = AX_ERROR(AX_ERR_FORMAT, "report: %s: no metadata \"method\": not a pre-training checkpoint", ckpt);
    else if (!it)
        st = AX_ERROR(AX_ERR_NOT_FOUND, "report: %s: method plugin '%s' is not on the plugin path", ckpt, name);
    if (st == AX_OK) st = ax_checkpoint_params_from_json(&p, it->plugin->params, name, params ? params : "{}");
    ax_safetensors_close(f);
    if (st != AX_OK) return st;
    return ax_instance_new(out, it, p);
}

ax_status ax_report_preview_html(ax_sbuf *b, const char *run, ax_registry *reg) {
    if (!reg) return AX_ERROR(AX_ERR_INVALID, "report: the preview needs the plugin registry");
    char ckpt[AX_TRAIN_PATH_MAX], cfgp[AX_TRAIN_PATH_MAX];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/latest.safetensors", run);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", run);
    json_error_t je;
    json_t *cfg = json_load_file(cfgp, 0, &je);
    if (!cfg) return AX_ERROR(AX_ERR_NOT_FOUND, "report: %s: %s", cfgp, je.text);
    const char *data = json_string_value(json_object_get(cfg, "data"));
    json_t *pj = json_object_get(cfg, "patch");
    int64_t patch[3];
    for (size_t i = 0; i < 3; i++)
        patch[i] = pj ? (int64_t)json_integer_value(json_array_get(pj, i)) : 0;
    ax_status st = AX_OK;
    if (!data || patch[0] < 1 || patch[1] < 1 || patch[2] < 1)
        st = AX_ERROR(AX_ERR_FORMAT, "report: %s: no \"data\" cache or \"patch\": not a pre-training run", cfgp);
    ax_module *net = NULL;
    ax_instance *arch = NULL, *method = NULL;
    char **paths = NULL;
    size_t np = 0;
    ax_case *c = NULL;
    ax_tensor *x = NULL, *view = NULL, *y = NULL;
    if (st == AX_OK) st = ax_checkpoint_rebuild(reg, ckpt, &net, &arch, NULL);
    if (st == AX_OK) st = ax_preview_method(reg, ckpt, &method);
    const ax_method_ops *m = method ? method->ops : NULL;
    if (st == AX_OK && !m->preview)
        st = AX_ERROR(AX_ERR_UNSUPPORTED, "report: method '%s' has no preview()", method->item->plugin->name);
    if (st == AX_OK) st = ax_cache_list(data, "val", &paths, &np);
    if (st == AX_OK && np == 0) {
        ax_cache_paths_free(paths, np);
        paths = NULL;
        st = ax_cache_list(data, "train", &paths, &np);
    }
    if (st == AX_OK && np == 0) st = AX_ERROR(AX_ERR_NOT_FOUND, "report: %s: the cache has no cases", data);
    if (st == AX_OK) st = ax_case_open(&c, paths[0]);
    if (st == AX_OK) st = ax_center_patch(c, patch, &x);
    if (st == AX_OK) {
        ax_rng r;
        ax_rng_init(&r, 1234, 0);
        ax_module_train(net, false);
        ax_no_grad_begin();
        st = m->preview(method->self, net, x, &r, &view, &y);
        ax_no_grad_end();
    }
    if (st == AX_OK && (!ax_tensor_same_shape(view, x) || !ax_tensor_same_shape(y, x)))
        st = AX_ERROR(AX_ERR_INTERNAL, "report: preview of '%s' changed the shape", method->item->plugin->name);
    ax_tensor *vc = NULL, *yc = NULL;
    if (st == AX_OK) st = ax_tensor_contiguous(&vc, view);
    if (st == AX_OK) st = ax_tensor_contiguous(&yc, y);
    if (st == AX_OK) {
        ax_img3 im = {.v = ax_tensor_data(x), .shape = {(int32_t)patch[0], (int32_t)patch[1], (int32_t)patch[2]}};
        memcpy(im.spacing, c->spacing, sizeof im.spacing);
        size_t n = (size_t)(patch[0] * patch[1] * patch[2]);
        float lo, hi;
        ax_img_window(im.v, n, &lo, &hi);
        double ppm = ax_ppm(&im);
        ax_sbuf_printf(b,
                       "<p class=\"note\">Centre %lldx%lldx%lld patch of %s (channel 0), method '%s', "
                       "checkpoint %s.</p><div class=\"preview\">\n",
                       (long long)patch[0], (long long)patch[1], (long long)patch[2], paths[0],
                       method->item->plugin->name, ckpt);
        st = ax_panel(b, &im, NULL, lo, hi, ppm, "input");
        ax_img3 iv = im, iy = im;
        iv.v = ax_tensor_data(vc);
        iy.v = ax_tensor_data(yc);
        if (st == AX_OK) st = ax_panel(b, &iv, NULL, lo, hi, ppm, "masked input (the method's view)");
        if (st == AX_OK) st = ax_panel(b, &iy, NULL, lo, hi, ppm, "reconstruction");
        ax_sbuf_puts(b, "</div>\n");
    }
    ax_tensor_free(vc), ax_tensor_free(yc);
    ax_tensor_free(x), ax_tensor_free(view), ax_tensor_free(y);
    ax_case_close(c);
    if (paths) ax_cache_paths_free(paths, np);
    ax_module_free(net);
    ax_instance_free(arch);
    ax_instance_free(method);
    json_decref(cfg);
    return st;
}
