/* The demo collection's layout (axon/demo.h): OpenMind folders and CSV for
 * pre-training, nnU-Net raw folders and dataset.json for segmentation. The
 * images themselves come from demo_data_synth.c. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "axon/cache.h"
#include "axon/rng.h"
#include "axon/volume.h"
#include "demo_data_internal.h"

/* Random streams of the three sets: one per subject, far apart. */
#define AX_DEMO_STREAM_PRETRAIN 0x100000u
#define AX_DEMO_STREAM_SEG_TRAIN 0x200000u
#define AX_DEMO_STREAM_SEG_TEST 0x300000u
#define AX_DEMO_STREAM_META 0x400000u

ax_demo_opts ax_demo_opts_default(void) {
    ax_demo_opts o;
    memset(&o, 0, sizeof o);
    o.templates = AX_DEMO_TEMPLATES;
    o.subjects = 16;
    o.seg_train = 8;
    o.seg_test = 4;
    o.datasets = 3;
    o.seed = 0;
    o.spacing = 3.0;
    return o;
}

/* mkdir -p */
static ax_status ax_demo_mkdirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return AX_ERROR(AX_ERR_INVALID, "demo: bad output path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return AX_ERROR(AX_ERR_IO, "demo: cannot create folder %s: %s", buf, strerror(errno));
        struct stat sb;
        if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return AX_ERROR(AX_ERR_IO, "demo: %s exists and is not a folder", buf);
        buf[i] = c;
    }
    return AX_OK;
}

#if defined(__GNUC__)
static ax_status ax_demo_path(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#endif
static ax_status ax_demo_path(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) return AX_ERROR(AX_ERR_INVALID, "demo: output path too long (%.80s...)", buf);
    return AX_OK;
}

/* Write one [D, H, W] array as a NIfTI volume of the subject's geometry. */
static ax_status ax_demo_write(const ax_demo_subject *s, const float *f32, const uint8_t *u8, const char *path,
                               ax_nifti_dtype dtype) {
    ax_volume *v;
    if (ax_volume_new(&v, 1, s->shape, s->spacing) != AX_OK) return ax_error_status();
    size_t n = (size_t)s->shape[0] * (size_t)s->shape[1] * (size_t)s->shape[2];
    if (f32)
        memcpy(v->data, f32, n * sizeof(float));
    else
        for (size_t i = 0; i < n; i++) v->data[i] = u8[i];
    ax_status st = ax_volume_write(v, path, AX_VOLUME_WRITE_AS_IS, dtype);
    ax_volume_free(v);
    return st;
}

/* ---- pre-training set ------------------------------------------------------ */

typedef struct ax_demo_buf {
    char *data;
    size_t len, cap;
} ax_demo_buf;

#if defined(__GNUC__)
static ax_status ax_demo_buf_printf(ax_demo_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
static ax_status ax_demo_buf_printf(ax_demo_buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return AX_ERROR(AX_ERR_INTERNAL, "demo: formatting failed");
        if (b->data && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return AX_OK;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(b->data, cap);
        if (!p) return AX_ERROR(AX_ERR_NOMEM, "demo: out of memory");
        b->data = p;
        b->cap = cap;
    }
}

static const char *const ax_demo_manufacturers[] = {"Siemens", "GE", "Philips"};

static ax_status ax_demo_pretrain(const char *out, const ax_demo_opts *o, const ax_demo_templates *t) {
    char root[4096], dir[4096], stem[256], path[4096];
    ax_status st;
    if ((st = ax_demo_path(root, sizeof root, "%s/pretrain", out)) != AX_OK) return st;
    ax_demo_buf csv = {NULL, 0, 0};
    st = ax_demo_buf_printf(&csv,
                            "image_path,anon_mask_path,anat_mask_path,modality,unique_id,image_quality_score,"
                            "age,sex,handedness,derived_from,is_brain_extract,manufacturer,"
                            "magnetic_field_strength,repetition_time,echo_time\n");
    for (int32_t i = 0; i < o->subjects && st == AX_OK; i++) {
        ax_rng rng;
        ax_rng_init(&rng, o->seed, AX_DEMO_STREAM_META + (uint64_t)i);
        float u = ax_rng_uniform(&rng);
        ax_demo_contrast c = u < 0.4f ? AX_DEMO_T1W : u < 0.65f ? AX_DEMO_T2W : u < 0.85f ? AX_DEMO_FLAIR : AX_DEMO_PDW;
        bool deface = ax_rng_bernoulli(&rng, 0.6f);
        int age = 18 + (int)ax_rng_below(&rng, 63);
        const char *sex = ax_rng_bernoulli(&rng, 0.5f) ? "F" : "M";
        const char *hand = ax_rng_bernoulli(&rng, 0.9f) ? "R" : "L";
        const char *maker = ax_demo_manufacturers[ax_rng_below(&rng, 3)];
        double field = ax_rng_bernoulli(&rng, 0.7f) ? 3.0 : 1.5;
        static const double tr[4] = {2.3, 3.2, 9.0, 3.0}, te[4] = {0.003, 0.09, 0.1, 0.015};

        int ds = 1 + i % (o->datasets > 0 ? o->datasets : 1);
        char ds_name[16], sub[32];
        snprintf(ds_name, sizeof ds_name, "ds%06d", ds);
        snprintf(sub, sizeof sub, "sub-%03d", i + 1);
        snprintf(stem, sizeof stem, "%s_%s", sub, ax_demo_contrast_name(c));
        if ((st = ax_demo_path(dir, sizeof dir, "%s/OpenMind/%s/%s/anat/%s__Data", root, ds_name, sub, stem)) != AX_OK ||
            (st = ax_demo_mkdirs(dir)) != AX_OK)
            break;

        ax_demo_subject s;
        ax_demo_subject_opts so = {.seed = o->seed,
                                   .stream = AX_DEMO_STREAM_PRETRAIN + (uint64_t)i,
                                   .spacing = o->spacing,
                                   .vary_geometry = true,
                                   .contrast = c,
                                   .deface = deface};
        if ((st = ax_demo_subject_make(t, &so, &s)) != AX_OK) break;
        if ((st = ax_demo_path(path, sizeof path, "%s/OpenMind/%s/%s/anat/%s.nii.gz", root, ds_name, sub, stem)) == AX_OK)
            st = ax_demo_write(&s, s.image, NULL, path, AX_NIFTI_I16);
        if (st == AX_OK && (st = ax_demo_path(path, sizeof path, "%s/fb_mask.nii.gz", dir)) == AX_OK)
            st = ax_demo_write(&s, NULL, s.head, path, AX_NIFTI_U8);
        if (st == AX_OK && (st = ax_demo_path(path, sizeof path, "%s/deface_mask.nii.gz", dir)) == AX_OK)
            st = ax_demo_write(&s, NULL, s.deface, path, AX_NIFTI_U8);
        double q = s.quality;
        ax_demo_subject_clear(&s);
        if (st != AX_OK) break;
        /* Paths relative to OpenMind/, as nnssl's converter reads them. */
        st = ax_demo_buf_printf(&csv,
                                "%s/%s/anat/%s.nii.gz,%s/%s/anat/%s__Data/deface_mask.nii.gz,"
                                "%s/%s/anat/%s__Data/fb_mask.nii.gz,%s,%s_%s_%s,%.2f,%d,%s,%s,,False,%s,%.1f,%.3f,%.3f\n",
                                ds_name, sub, stem, ds_name, sub, stem, ds_name, sub, stem, ax_demo_contrast_name(c),
                                ds_name, sub, ax_demo_contrast_name(c), q, age, sex, hand, maker, field, tr[c], te[c]);
    }
    if (st == AX_OK && (st = ax_demo_path(path, sizeof path, "%s/openneuro_metadata.csv", root)) == AX_OK)
        st = ax_cache_write_file(path, csv.data, csv.len);
    free(csv.data);
    return st;
}

/* ---- segmentation set -------------------------------------------------------- */

static ax_status ax_demo_seg_case(const char *root, const ax_demo_opts *o, const ax_demo_templates *t, bool test,
                                  int32_t index, int32_t number) {
    char path[4096];
    ax_demo_subject s;
    uint64_t base = test ? AX_DEMO_STREAM_SEG_TEST : AX_DEMO_STREAM_SEG_TRAIN;
    ax_demo_subject_opts so = {.seed = o->seed,
                               .stream = base + (uint64_t)index,
                               .spacing = o->spacing,
                               .vary_geometry = false,
                               .contrast = AX_DEMO_T1W,
                               .deface = false};
    ax_status st = ax_demo_subject_make(t, &so, &s);
    if (st != AX_OK) return st;
    const char *images = test ? "imagesTs" : "imagesTr", *labels = test ? "labelsTs" : "labelsTr";
    if ((st = ax_demo_path(path, sizeof path, "%s/%s/DemoBrain_%03d_0000.nii.gz", root, images, number)) == AX_OK)
        st = ax_demo_write(&s, s.image, NULL, path, AX_NIFTI_F32);
    if (st == AX_OK && (st = ax_demo_path(path, sizeof path, "%s/%s/DemoBrain_%03d.nii.gz", root, labels, number)) == AX_OK)
        st = ax_demo_write(&s, NULL, s.label, path, AX_NIFTI_U8);
    ax_demo_subject_clear(&s);
    return st;
}

static ax_status ax_demo_dataset_json(const char *root, const ax_demo_opts *o) {
    json_t *j = json_object(), *ch = json_object(), *lab = json_object(), *det = json_object();
    json_object_set_new(ch, "0", json_string("T1"));
    json_object_set_new(j, "channel_names", ch);
    static const char *const names[AX_DEMO_N_LABELS] = {"background", "brain", "cerebrum_left", "cerebrum_right",
                                                        "cerebellum"};
    static const char *const docs[AX_DEMO_N_LABELS] = {
        "outside the brain",
        "brain (ch2bet brain extraction) not in a region below: white matter, brainstem, ventricles",
        "left cerebral grey matter (AAL regions 1-90, odd ids)",
        "right cerebral grey matter (AAL regions 1-90, even ids)",
        "cerebellum and vermis (AAL regions 91-116)"};
    for (int k = 0; k < AX_DEMO_N_LABELS; k++) {
        json_object_set_new(lab, names[k], json_integer(k));
        json_object_set_new(det, names[k], json_string(docs[k]));
    }
    json_object_set_new(j, "labels", lab);
    json_object_set_new(j, "numTraining", json_integer(o->seg_train));
    json_object_set_new(j, "numTest", json_integer(o->seg_test));
    json_object_set_new(j, "file_ending", json_string(".nii.gz"));
    json_object_set_new(j, "name", json_string("DemoBrain"));
    json_object_set_new(j, "description",
                        json_string("Synthetic T1 heads from the Colin27 template (ch2) under random smooth "
                                    "deformations, bias fields and noise, generated by axon data demo"));
    json_object_set_new(j, "label_details", det);
    json_object_set_new(j, "reference", json_string("Colin27 (ch2, ch2bet) and AAL from mricron-data"));
    json_object_set_new(j, "spacing_mm", json_real(o->spacing));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text) return AX_ERROR(AX_ERR_NOMEM, "demo: out of memory writing dataset.json");
    char path[4096];
    ax_status st = ax_demo_path(path, sizeof path, "%s/dataset.json", root);
    if (st == AX_OK) {
        size_t n = strlen(text);
        text[n] = '\n'; /* replaces the NUL: write n + 1 bytes below */
        st = ax_cache_write_file(path, text, n + 1);
    }
    free(text);
    return st;
}

static ax_status ax_demo_seg(const char *out, const ax_demo_opts *o, const ax_demo_templates *t) {
    char root[4096], dir[4096];
    ax_status st;
    if ((st = ax_demo_path(root, sizeof root, "%s/seg/Dataset001_DemoBrain", out)) != AX_OK) return st;
    static const char *const sub[4] = {"imagesTr", "labelsTr", "imagesTs", "labelsTs"};
    for (int k = 0; k < 4; k++)
        if ((st = ax_demo_path(dir, sizeof dir, "%s/%s", root, sub[k])) != AX_OK || (st = ax_demo_mkdirs(dir)) != AX_OK)
            return st;
    for (int32_t i = 0; i < o->seg_train; i++)
        if ((st = ax_demo_seg_case(root, o, t, false, i, i + 1)) != AX_OK) return st;
    for (int32_t i = 0; i < o->seg_test; i++)
        if ((st = ax_demo_seg_case(root, o, t, true, i, o->seg_train + i + 1)) != AX_OK) return st;
    return ax_demo_dataset_json(root, o);
}

ax_status ax_demo_generate(const char *out, const ax_demo_opts *opts) {
    ax_demo_opts o = opts ? *opts : ax_demo_opts_default();
    if (!out || !*out) return AX_ERROR(AX_ERR_INVALID, "demo: no output folder");
    if (!o.templates) o.templates = AX_DEMO_TEMPLATES;
    if (o.subjects < 0 || o.subjects > 100000 || o.seg_train < 0 || o.seg_train > 999 || o.seg_test < 0 ||
        o.seg_train + o.seg_test > 999)
        return AX_ERROR(AX_ERR_INVALID,
                        "demo: subjects %d must be in 0..100000, seg-train %d and seg-test %d >= 0 with a sum <= 999",
                        o.subjects, o.seg_train, o.seg_test);
    if (o.datasets < 1 || o.datasets > 999999)
        return AX_ERROR(AX_ERR_INVALID, "demo: datasets %d must be in 1..999999", o.datasets);
    if (!(o.spacing >= 0.5 && o.spacing <= 10.0))
        return AX_ERROR(AX_ERR_INVALID, "demo: spacing %g mm must be in 0.5..10", o.spacing);
    ax_status st = ax_demo_mkdirs(out);
    if (st != AX_OK) return st;
    ax_demo_templates t;
    if ((st = ax_demo_templates_load(&t, o.templates, o.spacing)) != AX_OK) return st;
    if (o.subjects > 0) st = ax_demo_pretrain(out, &o, &t);
    if (st == AX_OK && o.seg_train + o.seg_test > 0) st = ax_demo_seg(out, &o, &t);
    ax_demo_templates_free(&t);
    return st;
}
