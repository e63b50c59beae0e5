/* The threaded batch loader (axon/loader.h).
 *
 * Work is handed out one sample at a time in global order t = step * batch
 * + b, so a slow augmentation on one sample does not hold back a whole
 * batch. Batch k lives in slot k % prefetch of a ring; a worker may claim a
 * sample only while its step is within `prefetch` steps of the consumer.
 * Each worker writes its sample straight into the batch tensors (disjoint
 * regions, no lock), through a private scratch box when the chain needs an
 * enlarged cut. Batch buffers come from a small pool and return to it when
 * the caller's last view of a batch goes, so steady state allocates nothing.
 */
#include "axon/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axon/cache.h"
#include "axon/rng.h"
#include "loader_internal.h"

/* ---- buffer pool ---------------------------------------------------------- */

/* Outlives the loader while any batch tensor it lent is alive: every lent
 * buffer holds a reference. */
typedef struct ax_loader_pool {
    pthread_mutex_t mu;
    int64_t refs;
    size_t nbytes[2]; /* image, label */
    void **free_list[2];
    int n_free[2];
    int cap;
} ax_loader_pool;

static void ax_loader_pool_unref_locked(ax_loader_pool *p, bool *destroy) {
    *destroy = --p->refs == 0;
}

static void ax_loader_pool_destroy(ax_loader_pool *p) {
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < p->n_free[k]; i++) free(p->free_list[k][i]);
        free(p->free_list[k]);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void ax_loader_pool_unref(ax_loader_pool *p) {
    bool destroy;
    pthread_mutex_lock(&p->mu);
    ax_loader_pool_unref_locked(p, &destroy);
    pthread_mutex_unlock(&p->mu);
    if (destroy) ax_loader_pool_destroy(p);
}

/* ax_tensor_wrap release: back to the free list, or freed when it is full
 * or the loader is gone. */
static void ax_loader_pool_release(void *data, size_t nbytes, void *ctx) {
    ax_loader_pool *p = ctx;
    bool destroy;
    pthread_mutex_lock(&p->mu);
    int k = nbytes == p->nbytes[0] ? 0 : 1;
    if (p->refs > 1 && p->n_free[k] < p->cap)
        p->free_list[k][p->n_free[k]++] = data;
    else
        free(data);
    ax_loader_pool_unref_locked(p, &destroy);
    pthread_mutex_unlock(&p->mu);
    if (destroy) ax_loader_pool_destroy(p);
}

static ax_status ax_loader_pool_new(ax_loader_pool **out, size_t image_bytes, size_t label_bytes, int cap) {
    ax_loader_pool *p = calloc(1, sizeof *p);
    if (!p) return AX_ERROR(AX_ERR_NOMEM, "ax_loader_new: out of memory");
    p->refs = 1;
    p->nbytes[0] = image_bytes;
    p->nbytes[1] = label_bytes;
    p->cap = cap;
    p->free_list[0] = calloc((size_t)cap, sizeof(void *));
    p->free_list[1] = calloc((size_t)cap, sizeof(void *));
    if (!p->free_list[0] || !p->free_list[1] || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->free_list[0]);
        free(p->free_list[1]);
        free(p);
        return AX_ERROR(AX_ERR_NOMEM, "ax_loader_new: out of memory");
    }
    *out = p;
    return AX_OK;
}

/* A contiguous tensor of `shape` on a pool buffer of kind k (0 image f32,
 * 1 label u8). *out: new reference. */
static ax_status ax_loader_pool_tensor(ax_loader_pool *p, int k, const int64_t shape[5], ax_tensor **out) {
    void *buf = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->n_free[k] > 0) buf = p->free_list[k][--p->n_free[k]];
    p->refs++;
    pthread_mutex_unlock(&p->mu);
    size_t nbytes = p->nbytes[k];
    if (!buf) {
        /* 64-byte aligned for vector loads; the size is rounded up as
         * aligned_alloc requires. */
        buf = aligned_alloc(64, (nbytes + 63) / 64 * 64);
        if (!buf) {
            ax_loader_pool_unref(p);
            return AX_ERROR(AX_ERR_NOMEM, "ax_loader: out of memory allocating a %zu-byte batch", nbytes);
        }
    }
    ax_status st = ax_tensor_wrap(out, 5, shape, k == 0 ? AX_DTYPE_F32 : AX_DTYPE_U8, buf, nbytes,
                                  ax_loader_pool_release, p);
    if (st != AX_OK) ax_loader_pool_release(buf, nbytes, p);
    return st;
}

/* ---- the loader ------------------------------------------------------------ */

typedef struct ax_loader_slot {
    int64_t step;      /* the step being filled; valid when open */
    bool open;
    int32_t done;      /* samples finished (with or without error) */
    ax_tensor *image;  /* [N, C, D, H, W], reused while the slot keeps it */
    ax_tensor *label;  /* [N, 1, D, H, W] or NULL */
    ax_status err;     /* of the lowest failing sample index */
    int32_t err_b;
    char err_msg[512];
} ax_loader_slot;

struct ax_loader {
    /* read-only after ax_loader_new */
    ax_case **cases;
    size_t n_cases;
    int32_t channels;
    int32_t patch[3];
    int32_t extent[3];
    bool enlarged;     /* extent != patch: cut into scratch, crop after the chain */
    int32_t batch;
    int32_t threads;
    int32_t prefetch;
    uint64_t seed;
    double oversample_fg;
    bool labels;
    ax_loader_aug *augs;
    size_t n_augs;

    pthread_t *workers;
    int32_t n_started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers: a sample may be claimed, or stop */
    pthread_cond_t done_cv; /* consumer/seek: a sample finished */
    int64_t next_task;      /* next unclaimed global sample index */
    int64_t consumer_step;  /* the step ax_loader_next returns next */
    int32_t in_flight;
    bool paused;            /* seek in progress: claim nothing */
    bool stop;
    ax_loader_slot *slots;  /* [prefetch] */
    ax_loader_pool *pool;
};

ax_loader_opts ax_loader_opts_default(void) {
    ax_loader_opts o;
    memset(&o, 0, sizeof o);
    o.patch[0] = o.patch[1] = o.patch[2] = 64;
    o.batch = 2;
    o.threads = 0;
    o.prefetch = 0;
    o.seed = 0;
    o.oversample_fg = 0.33;
    o.labels = false;
    o.enlarge = 1.0;
    return o;
}

/* Per-worker scratch: the enlarged box (image and label), allocated once. */
typedef struct ax_loader_scratch {
    float *image;
    uint8_t *label;
} ax_loader_scratch;

static size_t ax_loader_voxels(const int32_t s[3]) { return (size_t)s[0] * (size_t)s[1] * (size_t)s[2]; }

/* Produce sample b of `step` into the slot's tensors. Errors name the AUG,
 * the case file, the step and the sample. */
static ax_status ax_loader_make_sample(const ax_loader *ld, ax_loader_scratch *scratch, int64_t step, int32_t b,
                                       float *out_image, uint8_t *out_label) {
    uint64_t g = (uint64_t)step * (uint64_t)ld->batch + (uint64_t)b;
    ax_rng rng;
    ax_rng_init(&rng, ld->seed, g);
    const ax_case *c = ld->cases[ax_rng_below(&rng, (uint32_t)ld->n_cases)];
    int32_t start[3];
    bool fg;
    ax_loader_place(c, ld->patch, ld->extent, ld->oversample_fg, &rng, start, &fg);

    ax_sample s;
    memset(&s, 0, sizeof s);
    s.image = ld->enlarged ? scratch->image : out_image;
    s.label = ld->labels ? (ld->enlarged ? scratch->label : out_label) : NULL;
    s.channels = ld->channels;
    memcpy(s.shape, ld->extent, sizeof s.shape);
    memcpy(s.target, ld->patch, sizeof s.target);
    for (int a = 0; a < 3; a++) s.spacing[a] = (float)c->spacing[a];
    /* Scratch boxes may discard their zero pages past the patch-sized
     * prefix the chain writes its output to; batch memory is always written. */
    size_t pv = ax_loader_voxels(ld->patch);
    ax_loader_cut_f32(s.image, ld->extent, c->image, c->shape, c->channels, start,
                      ld->enlarged ? pv * (size_t)ld->channels * sizeof(float) : SIZE_MAX);
    if (s.label) ax_loader_cut_u8(s.label, ld->extent, c->label, c->shape, start, ld->enlarged ? pv : SIZE_MAX);

    for (size_t i = 0; i < ld->n_augs; i++) {
        const ax_loader_aug *aug = &ld->augs[i];
        ax_rng_init(&rng, ld->seed, g);
        ax_rng_seek(&rng, AX_LOADER_AUG_WORD * (uint64_t)(i + 1));
        ax_error_clear();
        ax_status st = aug->ops->apply(aug->self, &s, &rng);
        if (st != AX_OK) {
            if (ax_error_status() == AX_OK) AX_ERROR(st, "failed without a message (%s)", ax_status_str(st));
            ax_error_prefix("aug '%s' (case %s, step %lld, sample %d)", aug->name, c->path, (long long)step, (int)b);
            return st;
        }
        bool bad = s.channels != ld->channels;
        for (int a = 0; a < 3; a++) bad = bad || s.shape[a] < ld->patch[a] || s.shape[a] > ld->extent[a];
        if (bad)
            return AX_ERROR(AX_ERR_INTERNAL,
                            "aug '%s' (case %s, step %lld, sample %d): left a %d-channel %dx%dx%d sample; "
                            "the loader needs %d channels and between %dx%dx%d and %dx%dx%d",
                            aug->name, c->path, (long long)step, (int)b, s.channels, s.shape[0], s.shape[1],
                            s.shape[2], ld->channels, ld->patch[0], ld->patch[1], ld->patch[2], ld->extent[0],
                            ld->extent[1], ld->extent[2]);
    }
    if (ld->enlarged) {
        ax_loader_crop_f32(out_image, ld->patch, s.image, s.shape, ld->channels);
        if (s.label) ax_loader_crop_u8(out_label, ld->patch, s.label, s.shape);
    } else if (s.image != out_image) {
        /* An augmentation swapped the buffer; keep the loader's promise of
         * writing the batch tensor. */
        memcpy(out_image, s.image, ax_loader_voxels(ld->patch) * (size_t)ld->channels * sizeof(float));
        if (s.label && s.label != out_label) memcpy(out_label, s.label, ax_loader_voxels(ld->patch));
    }
    return AX_OK;
}

/* Give the slot batch tensors (kept from its last use when the caller did
 * not take them). Called with ld->mu held. */
static ax_status ax_loader_slot_open(ax_loader *ld, ax_loader_slot *sl, int64_t step) {
    sl->step = step;
    sl->open = true;
    sl->done = 0;
    sl->err = AX_OK;
    sl->err_b = -1;
    sl->err_msg[0] = '\0';
    int64_t shape[5] = {ld->batch, ld->channels, ld->patch[0], ld->patch[1], ld->patch[2]};
    if (!sl->image && ax_loader_pool_tensor(ld->pool, 0, shape, &sl->image) != AX_OK) return ax_error_status();
    shape[1] = 1;
    if (ld->labels && !sl->label && ax_loader_pool_tensor(ld->pool, 1, shape, &sl->label) != AX_OK)
        return ax_error_status();
    return AX_OK;
}

static void ax_loader_slot_fail(ax_loader_slot *sl, int32_t b, ax_status st, const char *msg) {
    if (sl->err != AX_OK && sl->err_b <= b) return;
    sl->err = st;
    sl->err_b = b;
    snprintf(sl->err_msg, sizeof sl->err_msg, "%s", msg);
}

static void *ax_loader_worker(void *arg) {
    ax_loader *ld = arg;
    ax_loader_scratch scratch = {NULL, NULL};
    bool scratch_ok = true;
    size_t ev = ax_loader_voxels(ld->extent);
    if (ld->enlarged) {
        scratch.image = ax_loader_scratch_alloc(ev * (size_t)ld->channels * sizeof(float));
        scratch.label = ld->labels ? ax_loader_scratch_alloc(ev) : NULL;
        scratch_ok = scratch.image && (!ld->labels || scratch.label);
    }
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop &&
               (ld->paused || ld->next_task >= (ld->consumer_step + ld->prefetch) * (int64_t)ld->batch))
            pthread_cond_wait(&ld->work_cv, &ld->mu);
        if (ld->stop) break;
        int64_t t = ld->next_task++;
        int64_t step = t / ld->batch;
        int32_t b = (int32_t)(t % ld->batch);
        ax_loader_slot *sl = &ld->slots[step % ld->prefetch];
        ax_status st = AX_OK;
        if (b == 0) st = ax_loader_slot_open(ld, sl, step);
        if (st != AX_OK) ax_loader_slot_fail(sl, b, st, ax_error_message());
        bool run = sl->err == AX_OK || sl->err_b > b;
        float *img = NULL;
        uint8_t *lbl = NULL;
        if (run && sl->image) {
            size_t pv = ax_loader_voxels(ld->patch);
            img = (float *)ax_tensor_data(sl->image) + (size_t)b * pv * (size_t)ld->channels;
            if (sl->label) lbl = (uint8_t *)ax_tensor_data(sl->label) + (size_t)b * pv;
        }
        ld->in_flight++;
        pthread_mutex_unlock(&ld->mu);

        char msg[512] = "";
        if (img) {
            if (!scratch_ok)
                st = AX_ERROR(AX_ERR_NOMEM, "ax_loader: out of memory allocating a worker's %dx%dx%d scratch box",
                              ld->extent[0], ld->extent[1], ld->extent[2]);
            else
                st = ax_loader_make_sample(ld, &scratch, step, b, img, lbl);
            if (st != AX_OK) snprintf(msg, sizeof msg, "%s", ax_error_message());
        }

        pthread_mutex_lock(&ld->mu);
        if (st != AX_OK) ax_loader_slot_fail(sl, b, st, msg);
        sl->done++;
        ld->in_flight--;
        pthread_cond_broadcast(&ld->done_cv);
    }
    pthread_mutex_unlock(&ld->mu);
    ax_loader_scratch_free(scratch.image, ev * (size_t)ld->channels * sizeof(float));
    ax_loader_scratch_free(scratch.label, ev);
    return NULL;
}

static void ax_loader_stop_workers(ax_loader *ld) {
    pthread_mutex_lock(&ld->mu);
    ld->stop = true;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mu);
    for (int32_t i = 0; i < ld->n_started; i++) pthread_join(ld->workers[i], NULL);
    ld->n_started = 0;
}

void ax_loader_free(ax_loader *ld) {
    if (!ld) return;
    if (ld->workers) ax_loader_stop_workers(ld);
    if (ld->slots)
        for (int32_t i = 0; i < ld->prefetch; i++) {
            ax_tensor_free(ld->slots[i].image);
            ax_tensor_free(ld->slots[i].label);
        }
    if (ld->pool) ax_loader_pool_unref(ld->pool);
    for (size_t i = 0; i < ld->n_cases; i++) ax_case_close(ld->cases[i]);
    for (size_t i = 0; ld->augs && i < ld->n_augs; i++) free((char *)ld->augs[i].name);
    free(ld->augs);
    free(ld->cases);
    free(ld->slots);
    free(ld->workers);
    if (ld->workers) {
        pthread_cond_destroy(&ld->work_cv);
        pthread_cond_destroy(&ld->done_cv);
        pthread_mutex_destroy(&ld->mu);
    }
    free(ld);
}

static ax_status ax_loader_check_opts(const ax_loader_opts *o) {
    if (!o) return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: no options");
    if (!o->paths || o->n_paths == 0) return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: no case files given");
    for (int a = 0; a < 3; a++)
        if (o->patch[a] < 1 || o->patch[a] > 4096)
            return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: patch %dx%dx%d: each size must be in 1..4096", o->patch[0],
                            o->patch[1], o->patch[2]);
    if (o->batch < 1 || o->batch > 65536)
        return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: batch %d: must be in 1..65536", o->batch);
    if (o->threads < 0 || o->threads > 1024)
        return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: threads %d: must be in 0..1024 (0: all CPUs)", o->threads);
    if (o->prefetch < 0 || o->prefetch > 4096)
        return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: prefetch %d: must be in 0..4096 (0: 2 * threads)",
                        o->prefetch);
    if (!(o->oversample_fg >= 0 && o->oversample_fg <= 1))
        return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: oversample_fg %g: must be in [0, 1]", o->oversample_fg);
    if (!(o->enlarge == 0 || (o->enlarge >= 1 && o->enlarge <= 4)))
        return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: enlarge %g: must be 1..4 (or 0/1: from the augs)",
                        o->enlarge);
    if (o->n_augs && !o->augs) return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: n_augs %zu but no augs", o->n_augs);
    for (size_t i = 0; i < o->n_augs; i++)
        if (!o->augs[i].ops || !o->augs[i].ops->apply)
            return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: aug %zu (%s) has no apply()", i,
                            o->augs[i].name ? o->augs[i].name : "unnamed");
    return AX_OK;
}

/* The box every sample is cut as: the largest extent any AUG asks for, at
 * least patch * enlarge. */
static ax_status ax_loader_extent(ax_loader *ld, const ax_loader_opts *o) {
    for (int a = 0; a < 3; a++) {
        ld->extent[a] = ld->patch[a];
        if (o->enlarge > 1) {
            double e = (double)ld->patch[a] * o->enlarge;
            int32_t ei = (int32_t)e;
            if ((double)ei < e) ei++;
            if (ei > ld->extent[a]) ld->extent[a] = ei;
        }
    }
    for (size_t i = 0; i < ld->n_augs; i++) {
        const ax_loader_aug *aug = &ld->augs[i];
        if (!aug->ops->extent) continue;
        int32_t e[3] = {0, 0, 0};
        if (aug->ops->extent(aug->self, ld->patch, e) != AX_OK)
            return ax_error_prefix("ax_loader_new: aug '%s': extent", aug->name);
        for (int a = 0; a < 3; a++) {
            if (e[a] < ld->patch[a] || e[a] > 8 * ld->patch[a] + 64)
                return AX_ERROR(AX_ERR_INVALID,
                                "ax_loader_new: aug '%s' asks for an extent of %dx%dx%d for a %dx%dx%d patch", aug->name,
                                e[0], e[1], e[2], ld->patch[0], ld->patch[1], ld->patch[2]);
            if (e[a] > ld->extent[a]) ld->extent[a] = e[a];
        }
    }
    ld->enlarged = false;
    for (int a = 0; a < 3; a++) ld->enlarged = ld->enlarged || ld->extent[a] != ld->patch[a];
    return AX_OK;
}

static ax_status ax_loader_open_cases(ax_loader *ld, const ax_loader_opts *o) {
    ld->cases = calloc(o->n_paths, sizeof *ld->cases);
    if (!ld->cases) return AX_ERROR(AX_ERR_NOMEM, "ax_loader_new: out of memory");
    for (size_t i = 0; i < o->n_paths; i++) {
        if (!o->paths[i]) return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: case path %zu is NULL", i);
        if (ax_case_open(&ld->cases[i], o->paths[i]) != AX_OK) return ax_error_status();
        ld->n_cases = i + 1;
        const ax_case *c = ld->cases[i];
        if (c->channels < 1 || !c->image)
            return AX_ERROR(AX_ERR_FORMAT, "ax_loader_new: %s: no image channels", o->paths[i]);
        if (i == 0) ld->channels = c->channels;
        if (c->channels != ld->channels)
            return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: %s has %d channels, %s has %d: a batch needs one count",
                            o->paths[i], c->channels, o->paths[0], ld->channels);
        if (ld->labels && !c->label)
            return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: %s has no label volume, but labels were asked for",
                            o->paths[i]);
    }
    if (o->n_paths > UINT32_MAX) return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: too many cases (%zu)", o->n_paths);
    return AX_OK;
}

ax_status ax_loader_new(ax_loader **out, const ax_loader_opts *opts) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_loader_new: out is NULL");
    *out = NULL;
    if (ax_loader_check_opts(opts) != AX_OK) return ax_error_status();
    ax_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return AX_ERROR(AX_ERR_NOMEM, "ax_loader_new: out of memory");
    memcpy(ld->patch, opts->patch, sizeof ld->patch);
    ld->batch = opts->batch;
    ld->threads = opts->threads;
    if (ld->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        ld->threads = n < 1 ? 1 : n > 256 ? 256 : (int32_t)n;
    }
    ld->prefetch = opts->prefetch ? opts->prefetch : 2 * ld->threads;
    if (ld->prefetch < 1) ld->prefetch = 1;
    ld->seed = opts->seed;
    ld->oversample_fg = opts->oversample_fg;
    ld->labels = opts->labels;
    ax_status st = AX_OK;

    if (opts->n_augs) {
        ld->augs = calloc(opts->n_augs, sizeof *ld->augs);
        if (!ld->augs) {
            st = AX_ERROR(AX_ERR_NOMEM, "ax_loader_new: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < opts->n_augs; i++) {
            ld->augs[i] = opts->augs[i];
            char fallback[32];
            snprintf(fallback, sizeof fallback, "#%zu", i);
            ld->augs[i].name = strdup(opts->augs[i].name ? opts->augs[i].name : fallback);
            ld->n_augs = i + 1;
            if (!ld->augs[i].name) {
                st = AX_ERROR(AX_ERR_NOMEM, "ax_loader_new: out of memory");
                goto fail;
            }
        }
    }
    if ((st = ax_loader_extent(ld, opts)) != AX_OK) goto fail;
    if ((st = ax_loader_open_cases(ld, opts)) != AX_OK) goto fail;

    size_t pv = ax_loader_voxels(ld->patch);
    if ((st = ax_loader_pool_new(&ld->pool, pv * (size_t)ld->batch * (size_t)ld->channels * sizeof(float),
                                 pv * (size_t)ld->batch, 4)) != AX_OK)
        goto fail;
    ld->slots = calloc((size_t)ld->prefetch, sizeof *ld->slots);
    ld->workers = calloc((size_t)ld->threads, sizeof *ld->workers);
    if (!ld->slots || !ld->workers) {
        free(ld->workers);
        ld->workers = NULL;
        st = AX_ERROR(AX_ERR_NOMEM, "ax_loader_new: out of memory");
        goto fail;
    }
    if (pthread_mutex_init(&ld->mu, NULL) != 0 || pthread_cond_init(&ld->work_cv, NULL) != 0 ||
        pthread_cond_init(&ld->done_cv, NULL) != 0) {
        /* Practically unreachable on Linux; leave the sync objects alone. */
        free(ld->workers);
        ld->workers = NULL;
        st = AX_ERROR(AX_ERR_INTERNAL, "ax_loader_new: cannot create a mutex");
        goto fail;
    }
    for (int32_t i = 0; i < ld->threads; i++) {
        if (pthread_create(&ld->workers[i], NULL, ax_loader_worker, ld) != 0) {
            st = AX_ERROR(AX_ERR_INTERNAL, "ax_loader_new: cannot start worker thread %d of %d", i + 1, ld->threads);
            goto fail;
        }
        ld->n_started = i + 1;
    }
    *out = ld;
    return AX_OK;
fail:
    ax_loader_free(ld);
    return st;
}

ax_status ax_loader_seek(ax_loader *ld, int64_t step) {
    if (!ld) return AX_ERROR(AX_ERR_INVALID, "ax_loader_seek: loader is NULL");
    if (step < 0 || step > INT64_MAX / ld->batch / 2)
        return AX_ERROR(AX_ERR_INVALID, "ax_loader_seek: step %lld out of range", (long long)step);
    pthread_mutex_lock(&ld->mu);
    ld->paused = true;
    /* Samples in flight write into slot tensors; wait for them before the
     * slots change hands. */
    while (ld->in_flight > 0) pthread_cond_wait(&ld->done_cv, &ld->mu);
    for (int32_t i = 0; i < ld->prefetch; i++) ld->slots[i].open = false;
    ld->consumer_step = step;
    ld->next_task = step * ld->batch;
    ld->paused = false;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mu);
    return AX_OK;
}

ax_status ax_loader_next(ax_loader *ld, ax_batch *out) {
    if (!ld || !out) return AX_ERROR(AX_ERR_INVALID, "ax_loader_next: NULL argument");
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&ld->mu);
    int64_t step = ld->consumer_step;
    ax_loader_slot *sl = &ld->slots[step % ld->prefetch];
    while (!(sl->open && sl->step == step && sl->done == ld->batch)) pthread_cond_wait(&ld->done_cv, &ld->mu);
    if (sl->err != AX_OK) {
        /* The failing step stays current: calling again reports it again;
         * ax_loader_seek moves on. */
        ax_status st = sl->err;
        char msg[sizeof sl->err_msg];
        memcpy(msg, sl->err_msg, sizeof msg);
        pthread_mutex_unlock(&ld->mu);
        return AX_ERROR(st, "%s", msg);
    }
    out->image = sl->image;
    out->label = sl->label;
    out->step = step;
    sl->image = NULL;
    sl->label = NULL;
    sl->open = false;
    ld->consumer_step = step + 1;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mu);
    return AX_OK;
}

void ax_batch_clear(ax_batch *b) {
    if (!b) return;
    ax_tensor_free(b->image);
    ax_tensor_free(b->label);
    b->image = NULL;
    b->label = NULL;
}
