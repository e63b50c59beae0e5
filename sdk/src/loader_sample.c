/* Patch placement, cutting with zero fill and centre cropping for the batch
 * loader: row-wise memcpy/memset, so the copies run at memory bandwidth. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loader_internal.h"

/* Zero n bytes at p. Below `keep` (an address) always by writing; from
 * `keep` on (p lies in a private anonymous mapping, see
 * ax_loader_scratch_alloc) large ranges are handed back to the kernel
 * instead: their pages read as zero again and cost nothing until written.
 * An enlarged cut is mostly outside the volume (a 160^3 patch under the
 * reference rotation and scaling is cut as ~380^3, 220 MB, around a
 * ~150x185x160 brain), so this replaces writing ~200 MB of zeros per sample
 * with page-table updates. The region below `keep` is where augmentations
 * write their (patch-sized) output, so discarding it would only trade the
 * memset for page faults. */
static void ax_loader_zero(unsigned char *p, size_t n, const unsigned char *keep) {
#if defined(__linux__) && defined(MADV_DONTNEED)
    static size_t page;
    if (!page) {
        long ps = sysconf(_SC_PAGESIZE);
        page = ps > 0 ? (size_t)ps : 4096;
    }
    uintptr_t lo = (uintptr_t)p, hi = lo + n, k = (uintptr_t)keep;
    if (k < hi && hi - (k > lo ? k : lo) >= 16 * page) {
        uintptr_t a = k > lo ? k : lo;
        a = (a + page - 1) / page * page;
        uintptr_t b = hi / page * page;
        memset(p, 0, a - lo);
        memset((unsigned char *)b, 0, hi - b);
        if (madvise((void *)a, b - a, MADV_DONTNEED) != 0) memset((void *)a, 0, b - a);
        return;
    }
#else
    (void)keep;
#endif
    memset(p, 0, n);
}

void *ax_loader_scratch_alloc(size_t nbytes) {
    if (nbytes == 0) nbytes = 1;
    void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* A hint: rotations read the box along oblique lines, and 2 MB pages
     * cut the TLB misses (~5-10% per sample measured). */
    madvise(p, nbytes, MADV_HUGEPAGE);
#endif
    return p;
}

void ax_loader_scratch_free(void *p, size_t nbytes) {
    if (p) munmap(p, nbytes ? nbytes : 1);
}

static int32_t ax_loader_uniform_start(ax_rng *rng, int32_t size, int32_t patch) {
    int32_t lo = size >= patch ? 0 : size - patch;
    int32_t hi = size >= patch ? size - patch : 0;
    return lo + (int32_t)ax_rng_below(rng, (uint32_t)(hi - lo) + 1u);
}

void ax_loader_place(const ax_case *c, const int32_t patch[3], const int32_t extent[3], double p_fg, ax_rng *rng,
                     int32_t start[3], bool *fg) {
    int32_t p0[3];
    /* Always draw the coin, so the uniform branch reads the same words
     * whether or not the case has a foreground list. */
    bool want_fg = ax_rng_uniform(rng) < (float)p_fg;
    *fg = want_fg && c->fg && c->n_fg > 0;
    if (*fg) {
        uint32_t n = c->n_fg > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)c->n_fg;
        const int32_t *v = c->fg + 3 * (size_t)ax_rng_below(rng, n);
        for (int a = 0; a < 3; a++) {
            int32_t q = patch[a] / 4;
            int32_t jitter = (int32_t)ax_rng_below(rng, 2u * (uint32_t)q + 1u) - q;
            p0[a] = v[a] + jitter - patch[a] / 2;
        }
    } else {
        for (int a = 0; a < 3; a++) p0[a] = ax_loader_uniform_start(rng, c->shape[a], patch[a]);
    }
    for (int a = 0; a < 3; a++) start[a] = p0[a] - (extent[a] - patch[a]) / 2;
}

/* The overlap of [start, start + n) with [0, size) as [lo, hi) offsets into
 * the box; lo == hi when empty. */
static void ax_loader_overlap(int32_t start, int32_t n, int32_t size, int32_t *lo, int32_t *hi) {
    int64_t a = start < 0 ? -(int64_t)start : 0;
    int64_t b = (int64_t)size - start;
    if (b > n) b = n;
    if (b < a) b = a;
    *lo = (int32_t)a;
    *hi = (int32_t)b;
}

/* One volume of `elem`-byte voxels. */
static void ax_loader_cut_bytes(unsigned char *dst, const int32_t e[3], const unsigned char *src,
                                const int32_t s[3], const int32_t start[3], size_t elem, const unsigned char *keep) {
    int32_t lo[3], hi[3];
    for (int a = 0; a < 3; a++) ax_loader_overlap(start[a], e[a], s[a], &lo[a], &hi[a]);
    size_t row = (size_t)e[2] * elem, plane = row * (size_t)e[1];
    if (lo[0] == hi[0] || lo[1] == hi[1] || lo[2] == hi[2]) {
        ax_loader_zero(dst, plane * (size_t)e[0], keep);
        return;
    }
    ax_loader_zero(dst, plane * (size_t)lo[0], keep);
    size_t left = (size_t)lo[2] * elem, mid = (size_t)(hi[2] - lo[2]) * elem, right = row - left - mid;
    for (int32_t d = lo[0]; d < hi[0]; d++) {
        unsigned char *pd = dst + plane * (size_t)d;
        ax_loader_zero(pd, row * (size_t)lo[1], keep);
        const unsigned char *sd = src + ((size_t)(start[0] + d) * (size_t)s[1]) * (size_t)s[2] * elem;
        for (int32_t h = lo[1]; h < hi[1]; h++) {
            unsigned char *ph = pd + row * (size_t)h;
            const unsigned char *sh = sd + ((size_t)(start[1] + h) * (size_t)s[2] + (size_t)(start[2] + lo[2])) * elem;
            if (left) memset(ph, 0, left);
            memcpy(ph + left, sh, mid);
            if (right) memset(ph + left + mid, 0, right);
        }
        ax_loader_zero(pd + row * (size_t)hi[1], row * (size_t)(e[1] - hi[1]), keep);
    }
    ax_loader_zero(dst + plane * (size_t)hi[0], plane * (size_t)(e[0] - hi[0]), keep);
}

static const unsigned char *ax_loader_keep(const void *dst, size_t keep) {
    uintptr_t d = (uintptr_t)dst;
    return (const unsigned char *)(keep > UINTPTR_MAX - d ? UINTPTR_MAX : d + keep);
}

void ax_loader_cut_f32(float *dst, const int32_t extent[3], const float *src, const int32_t shape[3],
                       int32_t channels, const int32_t start[3], size_t keep) {
    size_t ev = (size_t)extent[0] * (size_t)extent[1] * (size_t)extent[2];
    size_t sv = (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2];
    for (int32_t c = 0; c < channels; c++)
        ax_loader_cut_bytes((unsigned char *)(dst + (size_t)c * ev), extent,
                            (const unsigned char *)(src + (size_t)c * sv), shape, start, sizeof(float),
                            ax_loader_keep(dst, keep));
}

void ax_loader_cut_u8(uint8_t *dst, const int32_t extent[3], const uint8_t *src, const int32_t shape[3],
                      const int32_t start[3], size_t keep) {
    ax_loader_cut_bytes(dst, extent, src, shape, start, 1, ax_loader_keep(dst, keep));
}

static void ax_loader_crop_bytes(unsigned char *dst, const int32_t p[3], const unsigned char *src,
                                 const int32_t s[3], size_t elem) {
    int32_t o[3];
    for (int a = 0; a < 3; a++) o[a] = (s[a] - p[a]) / 2;
    size_t row = (size_t)p[2] * elem;
    if (s[0] == p[0] && s[1] == p[1] && s[2] == p[2]) {
        /* The usual case after a resampling AUG: one large copy, which
         * libc streams past the cache. */
        memcpy(dst, src, row * (size_t)p[0] * (size_t)p[1]);
        return;
    }
    for (int32_t d = 0; d < p[0]; d++)
        for (int32_t h = 0; h < p[1]; h++)
            memcpy(dst + ((size_t)d * (size_t)p[1] + (size_t)h) * row,
                   src + (((size_t)(o[0] + d) * (size_t)s[1] + (size_t)(o[1] + h)) * (size_t)s[2] + (size_t)o[2]) * elem,
                   row);
}

void ax_loader_crop_f32(float *dst, const int32_t patch[3], const float *src, const int32_t shape[3],
                        int32_t channels) {
    size_t pv = (size_t)patch[0] * (size_t)patch[1] * (size_t)patch[2];
    size_t sv = (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2];
    for (int32_t c = 0; c < channels; c++)
        ax_loader_crop_bytes((unsigned char *)(dst + (size_t)c * pv), patch,
                             (const unsigned char *)(src + (size_t)c * sv), shape, sizeof(float));
}

void ax_loader_crop_u8(uint8_t *dst, const int32_t patch[3], const uint8_t *src, const int32_t shape[3]) {
    ax_loader_crop_bytes(dst, patch, src, shape, 1);
}
