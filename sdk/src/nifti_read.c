/* nifti_read.c — ax_volume_read: NIfTI-1/-2, .nii or .nii.gz, to float32 RAS.
 *
 * niftilib's own readers print to stderr and trust the header (a corrupt
 * file can make them read past buffers or allocate absurd sizes), so the
 * bytes are read here with zlib in one pass: header, then the voxels in
 * slabs converted as they arrive (nifti_slabs.c), then the rest of the
 * stream so the gzip CRC is checked. Every size is validated before
 * niftilib sees the header; niftilib then decodes it (byte order, qform
 * quaternion, sform, scaling) through nifti_convert_n1hdr2nim /
 * nifti_convert_n2hdr2nim, and its nifti_swap_Nbytes swaps big-endian
 * voxels. Conversion to float, scaling and the reorientation are one
 * strided scatter per slab (volume.c).
 */
#include "axon/volume.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <nifti2_io.h>
#include <zlib.h>

#include "volume_internal.h"

#define AX_N1_SIZE 348
#define AX_N2_SIZE 540
/* deflate cannot expand data more than ~1032:1; more means a bad header */
#define AX_GZ_MAX_RATIO 1100
/* zlib reads at most INT_MAX bytes per call */
#define AX_GZ_CHUNK (1 << 30)

static pthread_once_t ax_nifti_once = PTHREAD_ONCE_INIT;
static void ax_nifti_quiet(void) { nifti_set_debug_level(0); }

void ax_nifti_init(void) { pthread_once(&ax_nifti_once, ax_nifti_quiet); }

static uint32_t ax_bswap32(uint32_t x) {
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

/* zlib's message for the stream's error, without the "path: " it prepends. */
static const char *ax_gz_message(gzFile f, int *code) {
    const char *m = gzerror(f, code);
    if (*code == Z_ERRNO) return strerror(errno);
    const char *sep = m ? strstr(m, ": ") : NULL;
    return sep ? sep + 2 : m ? m : "unknown zlib error";
}

int64_t ax_nifti_gz_read(gzFile f, void *buf, int64_t n, const char **err) {
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got < AX_GZ_CHUNK ? n - got : AX_GZ_CHUNK;
        int r = gzread(f, (char *)buf + got, (unsigned)want);
        if (r < 0) {
            int code;
            *err = ax_gz_message(f, &code);
            return -1;
        }
        if (r == 0) break;
        got += r;
    }
    return got;
}

/* After a short read: was it a cut gzip stream (zlib says so) or a plain EOF? */
static const char *ax_gz_short_kind(gzFile f) {
    int code;
    gzerror(f, &code);
    return code == Z_BUF_ERROR ? "truncated gzip stream" : "truncated";
}

/* The header fields validation needs, host byte order, either version. */
typedef struct ax_hdr_info {
    int version; /* 1 or 2 */
    int swapped;
    int64_t dim[8];
    int32_t datatype;
    int64_t vox_offset;
    char magic[4];
} ax_hdr_info;

static ax_status ax_hdr_decode(const char *path, const unsigned char *raw, int version, int swapped,
                               ax_hdr_info *hi) {
    memset(hi, 0, sizeof *hi);
    hi->version = version;
    hi->swapped = swapped;
    if (version == 1) {
        nifti_1_header h;
        memcpy(&h, raw, sizeof h);
        if (swapped) swap_nifti_header(&h, 1);
        for (int i = 0; i < 8; i++) hi->dim[i] = h.dim[i];
        hi->datatype = h.datatype;
        if (!isfinite(h.vox_offset) || h.vox_offset < 0 || h.vox_offset > 1e15)
            return AX_ERROR(AX_ERR_FORMAT, "%s: bad vox_offset %g", path, (double)h.vox_offset);
        hi->vox_offset = (int64_t)h.vox_offset;
        memcpy(hi->magic, h.magic, 4);
    } else {
        nifti_2_header h;
        memcpy(&h, raw, sizeof h);
        if (swapped) swap_nifti_header(&h, 2);
        for (int i = 0; i < 8; i++) hi->dim[i] = h.dim[i];
        hi->datatype = h.datatype;
        if (h.vox_offset < 0)
            return AX_ERROR(AX_ERR_FORMAT, "%s: bad vox_offset %lld", path, (long long)h.vox_offset);
        hi->vox_offset = h.vox_offset;
        memcpy(hi->magic, h.magic, 4);
    }
    return AX_OK;
}

static ax_status ax_hdr_validate(const char *path, const ax_hdr_info *hi) {
    const char *want = hi->version == 1 ? "n+1" : "n+2";
    if (memcmp(hi->magic, want, 4) != 0) {
        if (hi->magic[0] == 'n' && hi->magic[1] == 'i' && hi->magic[3] == '\0')
            return AX_ERROR(AX_ERR_UNSUPPORTED,
                            "%s: a NIfTI header/image pair (.hdr/.img) is not supported; "
                            "convert it to a single .nii/.nii.gz", path);
        return AX_ERROR(AX_ERR_FORMAT, "%s: not a NIfTI file (no NIfTI-%d magic; Analyze 7.5 is not supported)",
                        path, hi->version);
    }
    int64_t nd = hi->dim[0];
    if (nd < 1 || nd > 7) return AX_ERROR(AX_ERR_FORMAT, "%s: bad number of dimensions dim[0] = %lld", path, (long long)nd);
    for (int i = 1; i <= nd; i++)
        if (hi->dim[i] <= 0)
            return AX_ERROR(AX_ERR_FORMAT, "%s: %s dimension: dim[%d] = %lld", path,
                            hi->dim[i] == 0 ? "zero" : "negative", i, (long long)hi->dim[i]);
    for (int i = 5; i <= nd; i++)
        if (hi->dim[i] > 1)
            return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %lld-dimensional data (dim[%d] = %lld); at most 4 are supported",
                            path, (long long)nd, i, (long long)hi->dim[i]);
    for (int i = 1; i <= 3 && i <= nd; i++)
        if (hi->dim[i] > INT32_MAX)
            return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: dim[%d] = %lld is too large", path, i, (long long)hi->dim[i]);
    if (nd >= 4 && hi->dim[4] > INT32_MAX)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: dim[4] = %lld is too large", path, (long long)hi->dim[4]);
    if (!ax_nifti_dtype_size(hi->datatype)) {
        const char *name = nifti_datatype_string(hi->datatype);
        return AX_ERROR(AX_ERR_UNSUPPORTED,
                        "%s: unsupported datatype %s (%d); supported: u8 i8 i16 u16 i32 u32 i64 f32 f64", path,
                        name ? name : "?", (int)hi->datatype);
    }
    return AX_OK;
}

/* nibabel's affine for a file without sform or qform: pixdim on the
 * diagonal, x flipped, origin at the centre voxel. */
static void ax_pixdim_affine(const nifti_image *nim, const int64_t dim[3], double a[4][4]) {
    /* niftilib sets bad pixdims (0, NaN) to 1 within dim[0]; nibabel pads
     * missing dimensions' zooms with 1 */
    double z[3] = {nim->dx, nim->ndim >= 2 ? nim->dy : 1.0, nim->ndim >= 3 ? nim->dz : 1.0};
    memset(a, 0, 16 * sizeof(double));
    z[0] = -z[0];
    for (int i = 0; i < 3; i++) {
        a[i][i] = z[i];
        a[i][3] = -((double)dim[i] - 1) / 2.0 * z[i];
    }
    a[3][3] = 1.0;
}

/* The voxels of a volume: large blocks 2 MiB-aligned and marked for
 * transparent huge pages (a 140 MB volume otherwise costs ~35k page faults,
 * as much time as the conversion itself). free() releases either kind. */
static float *ax_alloc_voxels(int64_t n) {
    size_t bytes = (size_t)n * sizeof(float);
    const size_t huge = (size_t)2 << 20;
    if (bytes < 2 * huge) return malloc(bytes ? bytes : 1);
    size_t len = (bytes + huge - 1) / huge * huge;
    void *p = NULL;
    if (posix_memalign(&p, huge, len) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* a hint; fine to fail */
#endif
    return p;
}

typedef struct ax_read_ctx {
    const char *path;
    gzFile f;
    nifti_image *nim;
    ax_volume *v;
} ax_read_ctx;

static void ax_read_ctx_free(ax_read_ctx *c) {
    if (c->f) gzclose(c->f);
    if (c->nim) nifti_image_free(c->nim);
    ax_volume_free(c->v);
}

static ax_status ax_volume_read_impl(ax_read_ctx *c, ax_volume **out, const ax_volume_read_opts *o) {
    const char *path = c->path;
    struct stat st;
    if (stat(path, &st) != 0)
        return AX_ERROR(errno == ENOENT ? AX_ERR_NOT_FOUND : AX_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return AX_ERROR(AX_ERR_IO, "%s: not a regular file", path);
    c->f = gzopen(path, "rb");
    if (!c->f) return AX_ERROR(AX_ERR_IO, "%s: %s", path, errno ? strerror(errno) : "cannot open");
    gzbuffer(c->f, 1 << 17);

    /* ---- header */
    unsigned char raw[AX_N2_SIZE];
    const char *err = NULL;
    int64_t got = ax_nifti_gz_read(c->f, raw, AX_N1_SIZE, &err);
    if (got < 0) return AX_ERROR(AX_ERR_FORMAT, "%s: corrupt gzip data: %s", path, err);
    if (got < 4) return AX_ERROR(AX_ERR_FORMAT, "%s: not a NIfTI file (%lld bytes)", path, (long long)got);
    int32_t sz;
    memcpy(&sz, raw, 4);
    int version = 0, swapped = 0;
    if (sz == AX_N1_SIZE) version = 1;
    else if (sz == AX_N2_SIZE) version = 2;
    else if ((int32_t)ax_bswap32((uint32_t)sz) == AX_N1_SIZE) version = 1, swapped = 1;
    else if ((int32_t)ax_bswap32((uint32_t)sz) == AX_N2_SIZE) version = 2, swapped = 1;
    else return AX_ERROR(AX_ERR_FORMAT, "%s: not a NIfTI file (sizeof_hdr is neither 348 nor 540)", path);
    int hsize = version == 1 ? AX_N1_SIZE : AX_N2_SIZE;
    if (got == AX_N1_SIZE && hsize > AX_N1_SIZE) {
        int64_t more = ax_nifti_gz_read(c->f, raw + AX_N1_SIZE, hsize - AX_N1_SIZE, &err);
        if (more < 0) return AX_ERROR(AX_ERR_FORMAT, "%s: corrupt gzip data: %s", path, err);
        got += more;
    }
    if (got < hsize)
        return AX_ERROR(AX_ERR_FORMAT, "%s: %s: a NIfTI-%d header needs %d bytes, file has %lld", path,
                        ax_gz_short_kind(c->f), version, hsize, (long long)got);
    ax_hdr_info hi;
    ax_status s = ax_hdr_decode(path, raw, version, swapped, &hi);
    if (s != AX_OK) return s;
    if ((s = ax_hdr_validate(path, &hi)) != AX_OK) return s;

    ax_nifti_init();
    if (version == 1) {
        nifti_1_header h1;
        memcpy(&h1, raw, sizeof h1);
        c->nim = nifti_convert_n1hdr2nim(h1, NULL);
    } else {
        nifti_2_header h2;
        memcpy(&h2, raw, sizeof h2);
        c->nim = nifti_convert_n2hdr2nim(h2, NULL);
    }
    if (!c->nim) return AX_ERROR(AX_ERR_FORMAT, "%s: niftilib rejected the header", path);
    const nifti_image *nim = c->nim;

    /* ---- sizes */
    int64_t fdim[3] = {hi.dim[1], hi.dim[0] >= 2 ? hi.dim[2] : 1, hi.dim[0] >= 3 ? hi.dim[3] : 1};
    int64_t nt = hi.dim[0] >= 4 ? hi.dim[4] : 1;
    int esize = ax_nifti_dtype_size(hi.datatype);
    int64_t nvox3;
    if (__builtin_mul_overflow(fdim[0], fdim[1], &nvox3) || __builtin_mul_overflow(nvox3, fdim[2], &nvox3) ||
        nvox3 > ((int64_t)1 << 40) / 8 / nt)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %lld x %lld x %lld x %lld voxels is too large", path,
                        (long long)fdim[0], (long long)fdim[1], (long long)fdim[2], (long long)nt);
    if (o->volume >= nt)
        return AX_ERROR(AX_ERR_INVALID, "%s: volume %d requested, the file has %lld", path, o->volume, (long long)nt);
    int64_t nchan = o->volume >= 0 ? 1 : nt;
    int64_t vbytes = nvox3 * esize;
    int64_t total = vbytes * nt; /* the whole data block the header describes */
    int64_t offset = hi.vox_offset < hsize + 4 ? hsize + 4 : hi.vox_offset;
    int direct = gzdirect(c->f);
    if (direct && (int64_t)st.st_size < offset + total)
        return AX_ERROR(AX_ERR_FORMAT, "%s: truncated: header says %lld bytes of data at offset %lld, file has %lld bytes",
                        path, (long long)total, (long long)offset, (long long)st.st_size);
    if (!direct && total / AX_GZ_MAX_RATIO > (int64_t)st.st_size)
        return AX_ERROR(AX_ERR_FORMAT, "%s: truncated or corrupt: header says %lld bytes of data, more than a "
                        "%lld-byte gzip file can hold", path, (long long)total, (long long)st.st_size);

    /* ---- geometry */
    ax_volume *v = c->v = calloc(1, sizeof *v);
    if (!v) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", path);
    ax_volume_source *src = &v->source;
    const nifti_dmat44 *m = nim->sform_code > 0 ? &nim->sto_xyz : nim->qform_code > 0 ? &nim->qto_xyz : NULL;
    if (m)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) src->affine[i][j] = m->m[i][j];
    else
        ax_pixdim_affine(nim, fdim, src->affine);
    for (int i = 0; i < 3; i++) src->dim[i] = fdim[i];
    src->datatype = hi.datatype;
    src->nifti_version = version;
    src->sform_code = nim->sform_code;
    src->qform_code = nim->qform_code;
    ax_affine_axcodes(src->affine, src->orientation);
    if (o->reorient) {
        ax_affine_ras_perm(src->affine, src->perm, src->flip);
    } else {
        for (int a = 0; a < 3; a++) src->perm[a] = a, src->flip[a] = 0;
    }
    src->reoriented = false;
    for (int a = 0; a < 3; a++)
        if (src->perm[a] != a || src->flip[a]) src->reoriented = true;
    ax_affine_reorient(src->affine, fdim, src->perm, src->flip, v->affine);
    double vs[3];
    ax_affine_voxel_sizes(v->affine, vs);
    v->channels = (int32_t)nchan;
    for (int a = 0; a < 3; a++) {
        v->shape[2 - a] = (int32_t)fdim[src->perm[a]];
        v->spacing[2 - a] = vs[a];
    }

    /* ---- voxels: scaling as nibabel applies it (slope 0 or non-finite: none) */
    double slope = nim->scl_slope, inter = nim->scl_inter;
    int scale = slope != 0 && isfinite(slope) && !(slope == 1 && inter == 0);
    if (!isfinite(inter)) inter = 0;
    int swap = nim->byteorder != nifti_short_order() && esize > 1;
    int64_t skip = offset + (o->volume >= 0 ? o->volume * vbytes : 0);
    if (gzseek(c->f, (z_off_t)skip, SEEK_SET) < 0) {
        int code;
        const char *msg = ax_gz_message(c->f, &code);
        return AX_ERROR(AX_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
    }
    int64_t n = nvox3 * nchan;
    v->data = ax_alloc_voxels(n);
    if (!v->data) return AX_ERROR(AX_ERR_NOMEM, "%s: cannot allocate %lld voxels", path, (long long)n);
    int64_t bad = 0, done = 0;
    if (hi.datatype == AX_NIFTI_F32 && !scale && !swap && !src->reoriented) {
        /* already what we want: decompress straight into the volume */
        done = ax_nifti_gz_read(c->f, v->data, n * 4, &err);
        if (done < 0) return AX_ERROR(AX_ERR_FORMAT, "%s: corrupt gzip data: %s", path, err);
        if (done == n * 4)
            for (int64_t i = 0; i < n; i++) bad += !(v->data[i] - v->data[i] == 0.0f);
    } else {
        ax_vox_scatter sc;
        ax_vox_scatter_from_file(&sc, fdim, src->perm, src->flip);
        ax_slab_job job = {.f = c->f, .out = v->data, .nvox3 = nvox3, .sc = &sc, .nchan = nchan,
                           .dtype = hi.datatype, .esize = esize, .swap = swap, .scale = scale,
                           .slope = slope, .inter = inter};
        memcpy(job.dim, fdim, sizeof job.dim);
        ax_status rs = ax_nifti_read_slabs(&job, &done, &bad, &err);
        if (rs == AX_ERR_NOMEM) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", path);
        if (rs != AX_OK) return AX_ERROR(AX_ERR_FORMAT, "%s: corrupt gzip data: %s", path, err);
    }
    if (done < n * esize)
        return AX_ERROR(AX_ERR_FORMAT, "%s: %s: header says %lld bytes of data, file has %lld", path,
                        ax_gz_short_kind(c->f), (long long)total, (long long)(skip - offset + done));
    if (!direct) {
        /* read to the end so zlib checks the CRC and length of every member */
        char sink[1 << 14];
        int r;
        while ((r = gzread(c->f, sink, sizeof sink)) > 0) {}
        int code;
        const char *msg = ax_gz_message(c->f, &code);
        if (r < 0) return AX_ERROR(AX_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
        if (code == Z_BUF_ERROR)
            return AX_ERROR(AX_ERR_FORMAT, "%s: truncated gzip stream (data ends before its checksum)", path);
    }
    if (bad && !o->allow_nonfinite)
        return AX_ERROR(AX_ERR_FORMAT, "%s: %lld of %lld voxels are NaN or Inf", path, (long long)bad, (long long)n);
    *out = v;
    c->v = NULL;
    return AX_OK;
}

ax_status ax_volume_read(ax_volume **out, const char *path, const ax_volume_read_opts *opts) {
    if (!out || !path) return AX_ERROR(AX_ERR_INVALID, "ax_volume_read: NULL argument");
    *out = NULL;
    ax_volume_read_opts o = opts ? *opts : ax_volume_read_opts_default();
    if (o.volume < -1) return AX_ERROR(AX_ERR_INVALID, "%s: bad volume index %d", path, o.volume);
    ax_read_ctx c = {.path = path};
    ax_status s = ax_volume_read_impl(&c, out, &o);
    ax_read_ctx_free(&c);
    return s;
}
