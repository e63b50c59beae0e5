/* nifti_write.c — ax_volume_write: NIfTI-1 (NIfTI-2 when a dimension does
 * not fit NIfTI-1's int16), .nii or .nii.gz by the name.
 *
 * The header is niftilib's nifti_1_header / nifti_2_header filled here; the
 * qform is niftilib's nifti_dmat44_to_quatern of the affine, the sform the
 * affine itself. Voxels go out one channel at a time (converted, rounded
 * and clamped by a strided gather that also undoes the reorientation), into
 * a temporary file next to the target that is fsynced and renamed over it,
 * so readers never see a partial file. gzip level 1, as nibabel writes.
 */
#include "axon/volume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nifti2_io.h>
#include <zlib.h>

#include "volume_internal.h"

static atomic_uint ax_tmp_counter;

static int ax_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* An output stream: plain fd or gzip on a dup of it (so it can be fsynced
 * after zlib closes its descriptor). */
typedef struct ax_wfile {
    int fd;
    gzFile gz;
} ax_wfile;

static int ax_wfile_write(ax_wfile *w, const void *buf, int64_t n) {
    const char *p = buf;
    while (n > 0) {
        int64_t chunk = n < (1 << 30) ? n : (1 << 30);
        if (w->gz) {
            int r = gzwrite(w->gz, p, (unsigned)chunk);
            if (r <= 0) return -1;
            chunk = r;
        } else {
            ssize_t r = write(w->fd, p, (size_t)chunk);
            if (r < 0) {
                if (errno == EINTR) continue;
                return -1;
            }
            chunk = r;
        }
        p += chunk;
        n -= chunk;
    }
    return 0;
}

static void ax_fill_n1(nifti_1_header *h, const int64_t dims[8], int32_t dtype, const double pixdim[8],
                       const double q[6], const double aff[4][4], int qcode, int scode) {
    memset(h, 0, sizeof *h);
    h->sizeof_hdr = 348;
    h->regular = 'r';
    for (int i = 0; i < 8; i++) {
        h->dim[i] = (short)dims[i];
        h->pixdim[i] = (float)pixdim[i];
    }
    h->datatype = (short)dtype;
    h->bitpix = (short)(8 * ax_nifti_dtype_size(dtype));
    h->vox_offset = 352.0f;
    h->scl_slope = 1.0f;
    h->scl_inter = 0.0f;
    h->xyzt_units = NIFTI_UNITS_MM;
    strcpy(h->descrip, "axon");
    h->qform_code = (short)qcode;
    h->sform_code = (short)scode;
    h->quatern_b = (float)q[0];
    h->quatern_c = (float)q[1];
    h->quatern_d = (float)q[2];
    h->qoffset_x = (float)q[3];
    h->qoffset_y = (float)q[4];
    h->qoffset_z = (float)q[5];
    for (int j = 0; j < 4; j++) {
        h->srow_x[j] = (float)aff[0][j];
        h->srow_y[j] = (float)aff[1][j];
        h->srow_z[j] = (float)aff[2][j];
    }
    memcpy(h->magic, "n+1", 4);
}

static void ax_fill_n2(nifti_2_header *h, const int64_t dims[8], int32_t dtype, const double pixdim[8],
                       const double q[6], const double aff[4][4], int qcode, int scode) {
    memset(h, 0, sizeof *h);
    h->sizeof_hdr = 540;
    memcpy(h->magic, "n+2\0\r\n\032\n", 8);
    for (int i = 0; i < 8; i++) {
        h->dim[i] = dims[i];
        h->pixdim[i] = pixdim[i];
    }
    h->datatype = (int16_t)dtype;
    h->bitpix = (int16_t)(8 * ax_nifti_dtype_size(dtype));
    h->vox_offset = 544;
    h->scl_slope = 1.0;
    h->scl_inter = 0.0;
    h->xyzt_units = NIFTI_UNITS_MM;
    strcpy(h->descrip, "axon");
    h->qform_code = qcode;
    h->sform_code = scode;
    h->quatern_b = q[0];
    h->quatern_c = q[1];
    h->quatern_d = q[2];
    h->qoffset_x = q[3];
    h->qoffset_y = q[4];
    h->qoffset_z = q[5];
    for (int j = 0; j < 4; j++) {
        h->srow_x[j] = aff[0][j];
        h->srow_y[j] = aff[1][j];
        h->srow_z[j] = aff[2][j];
    }
}

static ax_status ax_write_body(const ax_volume *v, const char *path, ax_wfile *w, ax_volume_write_mode mode,
                               ax_nifti_dtype dtype) {
    const ax_volume_source *src = &v->source;
    int64_t fdim[3];
    int32_t perm[3] = {0, 1, 2}, flip[3] = {0, 0, 0};
    const double(*aff)[4];
    if (mode == AX_VOLUME_WRITE_ORIGINAL) {
        for (int a = 0; a < 3; a++) {
            perm[a] = src->perm[a];
            flip[a] = src->flip[a] != 0;
        }
        int ok = 1, seen[3] = {0};
        for (int a = 0; a < 3; a++) {
            if (perm[a] < 0 || perm[a] > 2 || seen[perm[a]]) ok = 0;
            else seen[perm[a]] = 1;
        }
        if (!ok) return AX_ERROR(AX_ERR_INVALID, "%s: the volume's source permutation is invalid", path);
        for (int a = 0; a < 3; a++) fdim[perm[a]] = v->shape[2 - a];
        if (fdim[0] != src->dim[0] || fdim[1] != src->dim[1] || fdim[2] != src->dim[2])
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: cannot write in the original grid: the volume is %d x %d x %d (D x H x W), "
                            "its source %lld x %lld x %lld (i x j x k)", path, v->shape[0], v->shape[1],
                            v->shape[2], (long long)src->dim[0], (long long)src->dim[1], (long long)src->dim[2]);
        aff = (const double(*)[4])src->affine;
    } else {
        fdim[0] = v->shape[2];
        fdim[1] = v->shape[1];
        fdim[2] = v->shape[0];
        aff = (const double(*)[4])v->affine;
    }
    nifti_dmat44 m;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) m.m[i][j] = aff[i][j];
    double q[6], dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(m, &q[0], &q[1], &q[2], &q[3], &q[4], &q[5], &dx, &dy, &dz, &qfac);
    int64_t dims[8] = {v->channels > 1 ? 4 : 3, fdim[0], fdim[1], fdim[2], v->channels, 1, 1, 1};
    double pixdim[8] = {qfac, dx, dy, dz, 1, 1, 1, 1};
    int qcode = src->qform_code > 0 ? src->qform_code : src->sform_code > 0 ? src->sform_code : 1;
    int scode = src->sform_code > 0 ? src->sform_code : qcode;
    int big = 0;
    for (int i = 1; i <= 4; i++)
        if (dims[i] > 32767) big = 1;

    unsigned char hdr[544] = {0}; /* header + the 4-byte "no extensions" flag */
    int hsize;
    if (big) {
        nifti_2_header h2;
        ax_fill_n2(&h2, dims, dtype, pixdim, q, aff, qcode, scode);
        memcpy(hdr, &h2, sizeof h2);
        hsize = 544;
    } else {
        nifti_1_header h1;
        ax_fill_n1(&h1, dims, dtype, pixdim, q, aff, qcode, scode);
        memcpy(hdr, &h1, sizeof h1);
        hsize = 352;
    }
    if (ax_wfile_write(w, hdr, hsize) != 0) return AX_ERROR(AX_ERR_IO, "%s: write failed: %s", path, strerror(errno));

    ax_vox_walk walk;
    ax_vox_walk_to_file(&walk, fdim, perm, flip);
    int64_t nvox3 = fdim[0] * fdim[1] * fdim[2];
    int64_t bytes = nvox3 * ax_nifti_dtype_size(dtype);
    void *buf = malloc((size_t)bytes);
    if (!buf) return AX_ERROR(AX_ERR_NOMEM, "%s: cannot allocate %lld bytes", path, (long long)bytes);
    for (int32_t c = 0; c < v->channels; c++) {
        ax_vox_gather_from_f32(buf, dtype, v->data + (int64_t)c * nvox3, &walk);
        if (ax_wfile_write(w, buf, bytes) != 0) {
            int e = errno;
            free(buf);
            return AX_ERROR(AX_ERR_IO, "%s: write failed: %s", path, strerror(e));
        }
    }
    free(buf);
    return AX_OK;
}

ax_status ax_volume_write(const ax_volume *v, const char *path, ax_volume_write_mode mode, ax_nifti_dtype dtype) {
    if (!v || !path || !v->data) return AX_ERROR(AX_ERR_INVALID, "ax_volume_write: NULL argument");
    if (!ax_nifti_dtype_size((int32_t)dtype))
        return AX_ERROR(AX_ERR_INVALID, "%s: unsupported output datatype %d", path, (int)dtype);
    if (mode != AX_VOLUME_WRITE_AS_IS && mode != AX_VOLUME_WRITE_ORIGINAL)
        return AX_ERROR(AX_ERR_INVALID, "%s: bad write mode %d", path, (int)mode);
    if (v->channels < 1 || v->shape[0] < 1 || v->shape[1] < 1 || v->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "%s: bad volume size %d x %d x %d x %d", path, v->channels, v->shape[0],
                        v->shape[1], v->shape[2]);
    if (!ax_ends_with(path, ".nii") && !ax_ends_with(path, ".nii.gz"))
        return AX_ERROR(AX_ERR_INVALID, "%s: the name must end in .nii or .nii.gz", path);
    ax_nifti_init();

    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (!tmp) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", path);
    int fd = -1;
    for (int tries = 0; tries < 100 && fd < 0; tries++) {
        snprintf(tmp, n, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&ax_tmp_counter, 1u));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        ax_status s = AX_ERROR(AX_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    ax_wfile w = {.fd = fd, .gz = NULL};
    ax_status s = AX_OK;
    if (ax_ends_with(path, ".gz")) {
        int gfd = dup(fd);
        w.gz = gfd >= 0 ? gzdopen(gfd, "wb1") : NULL;
        if (!w.gz) {
            if (gfd >= 0) close(gfd);
            s = AX_ERROR(AX_ERR_NOMEM, "%s: cannot start gzip compression", path);
        } else {
            gzbuffer(w.gz, 1 << 17);
        }
    }
    if (s == AX_OK) s = ax_write_body(v, path, &w, mode, dtype);
    if (w.gz) {
        int r = gzclose(w.gz);
        if (s == AX_OK && r != Z_OK) s = AX_ERROR(AX_ERR_IO, "%s: gzip write failed (%d)", path, r);
    }
    if (s == AX_OK && fsync(fd) != 0) s = AX_ERROR(AX_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    if (close(fd) != 0 && s == AX_OK) s = AX_ERROR(AX_ERR_IO, "%s: close: %s", path, strerror(errno));
    if (s == AX_OK && rename(tmp, path) != 0) s = AX_ERROR(AX_ERR_IO, "%s: rename: %s", path, strerror(errno));
    if (s != AX_OK) {
        unlink(tmp);
    } else {
        /* make the rename itself durable */
        char *dir = strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
            int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    free(tmp);
    return s;
}
