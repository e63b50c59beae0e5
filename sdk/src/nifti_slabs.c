/* nifti_slabs.c — the voxel half of ax_volume_read: decompress the file's
 * slices in slabs of a few MiB and convert each into the RAS volume while
 * it is still in cache.
 *
 * Inflating is sequential and takes about as long as converting, zeroing
 * and writing the float volume together, so with more than one thread
 * allowed (omp_get_max_threads() > 1) the two overlap: this thread inflates
 * into a ring of slabs while a helper thread converts the filled ones. One
 * thread (ax_set_num_threads(1), or a loader worker that asked for it) does
 * both in turn.
 */
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nifti2_io.h>

#include "volume_internal.h"

#define AX_SLAB_BYTES ((int64_t)1 << 20)
#define AX_SLAB_RING 3

typedef struct ax_slab {
    void *raw;
    int64_t ch, k0, cnt; /* channel, first slice, slices */
} ax_slab;

typedef struct ax_slab_pipe {
    const ax_slab_job *job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ax_slab ring[AX_SLAB_RING];
    int64_t produced, consumed;
    int finished; /* the producer will add no more slabs */
    int64_t bad;
} ax_slab_pipe;

static int64_t ax_slab_convert(const ax_slab_job *j, const ax_slab *s, int parallel) {
    return ax_vox_scatter_to_f32(j->out + s->ch * j->nvox3, j->sc, s->raw, j->dtype, j->dim[0], j->dim[1], s->k0,
                                 s->cnt, j->scale, j->slope, j->inter, parallel);
}

static void *ax_slab_consumer(void *arg) {
    ax_slab_pipe *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->consumed == p->produced && !p->finished) pthread_cond_wait(&p->cv, &p->mu);
        if (p->consumed == p->produced) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        const ax_slab *s = &p->ring[p->consumed % AX_SLAB_RING];
        pthread_mutex_unlock(&p->mu);
        p->bad += ax_slab_convert(p->job, s, 0);
        pthread_mutex_lock(&p->mu);
        p->consumed++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Fills slab s with the next slices; returns bytes read, -1 on a zlib error. */
static int64_t ax_slab_fill(const ax_slab_job *j, ax_slab *s, int64_t s0, int64_t per, const char **err) {
    const int64_t slice = j->dim[0] * j->dim[1] * j->esize;
    s->ch = s0 / j->dim[2];
    s->k0 = s0 % j->dim[2];
    s->cnt = per < j->dim[2] - s->k0 ? per : j->dim[2] - s->k0; /* a slab never spans two volumes */
    int64_t want = s->cnt * slice;
    int64_t got = ax_nifti_gz_read(j->f, s->raw, want, err);
    if (got == want && j->swap) nifti_swap_Nbytes(s->cnt * j->dim[0] * j->dim[1], j->esize, s->raw);
    return got;
}

ax_status ax_nifti_read_slabs(const ax_slab_job *j, int64_t *done, int64_t *bad, const char **err) {
    const int64_t slice = j->dim[0] * j->dim[1] * j->esize, nslices = j->dim[2] * j->nchan;
    int64_t per = AX_SLAB_BYTES / slice;
    if (per < 1) per = 1;
    if (per > nslices) per = nslices;
    const int64_t nslabs = (nslices + per - 1) / per; /* at least; volume ends split more */
    int pipelined = nslabs >= 2 * AX_SLAB_RING && omp_get_max_threads() > 1;
    int nbuf = pipelined ? AX_SLAB_RING : 1;
    ax_slab_pipe p;
    memset(&p, 0, sizeof p);
    p.job = j;
    *done = *bad = 0;
    *err = NULL;
    ax_status s = AX_OK;
    for (int b = 0; b < nbuf; b++)
        if (!(p.ring[b].raw = malloc((size_t)(per * slice)))) s = AX_ERR_NOMEM;
    pthread_t th;
    if (s == AX_OK && pipelined) {
        pthread_mutex_init(&p.mu, NULL);
        pthread_cond_init(&p.cv, NULL);
        if (pthread_create(&th, NULL, ax_slab_consumer, &p) != 0) {
            pthread_cond_destroy(&p.cv);
            pthread_mutex_destroy(&p.mu);
            pipelined = 0;
        }
    }
    for (int64_t s0 = 0; s == AX_OK && s0 < nslices;) {
        ax_slab *sl = &p.ring[0];
        if (pipelined) {
            pthread_mutex_lock(&p.mu);
            while (p.produced - p.consumed == AX_SLAB_RING) pthread_cond_wait(&p.cv, &p.mu);
            pthread_mutex_unlock(&p.mu);
            sl = &p.ring[p.produced % AX_SLAB_RING];
        }
        int64_t got = ax_slab_fill(j, sl, s0, per, err);
        if (got < 0) {
            s = AX_ERR_FORMAT;
            break;
        }
        *done += got;
        if (got < sl->cnt * slice) break; /* truncated: the caller says so */
        s0 += sl->cnt;
        if (pipelined) {
            pthread_mutex_lock(&p.mu);
            p.produced++;
            pthread_cond_broadcast(&p.cv);
            pthread_mutex_unlock(&p.mu);
        } else {
            p.bad += ax_slab_convert(j, sl, 1);
        }
    }
    if (pipelined) {
        pthread_mutex_lock(&p.mu);
        p.finished = 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        pthread_join(th, NULL);
        pthread_cond_destroy(&p.cv);
        pthread_mutex_destroy(&p.mu);
    }
    for (int b = 0; b < nbuf; b++) free(p.ring[b].raw);
    *bad = p.bad;
    return s;
}
