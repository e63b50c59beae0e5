/* cache.c — case files and the cache index (axon/cache.h).
 *
 * A case file is written front to back in one pass (header, JSON, then
 * each array at the next 4096-byte boundary) into a temporary file that is
 * fsynced and renamed; opening maps it read-only and checks every offset
 * and size against the file size before handing out pointers, so a
 * truncated or corrupted file is an error, never a read past the mapping. */
#include "axon/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "file_internal.h"

#define CASE_HEADER_BYTES 104 /* the fields; the header block is padded to AX_CASE_ALIGN */

typedef struct case_impl {
    void *map;
    size_t size;
    char *json;
    char *path;
} case_impl;

/* ---- little-endian fields ------------------------------------------------ */

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_i32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(u >> (8 * i));
}
static void put_f64(unsigned char *p, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(p, u);
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static int32_t get_i32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return (int32_t)v;
}
static double get_f64(const unsigned char *p) {
    uint64_t u = get_u64(p);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static uint64_t align_up(uint64_t x) { return (x + AX_CASE_ALIGN - 1) / AX_CASE_ALIGN * AX_CASE_ALIGN; }

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- atomic files -------------------------------------------------------- */

static ax_status write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return AX_ERR_IO;
        }
        p += k;
        n -= (size_t)k;
    }
    return AX_OK;
}

static atomic_uint cache_tmp_counter;

/* "<path>.tmp.<pid>.<n>": unique per process and call, in the same folder. */
static char *tmp_name(const char *path) {
    unsigned n = atomic_fetch_add(&cache_tmp_counter, 1u);
    size_t len = strlen(path) + 48;
    char *t = malloc(len);
    if (t) snprintf(t, len, "%s.tmp.%ld.%u", path, (long)getpid(), n);
    return t;
}

ax_status ax_file_commit(int fd, const char *tmp, const char *path, bool ok) {
    const char *step = ok ? NULL : "write";
    int e = errno;
    if (ok && fsync(fd) != 0) ok = false, step = "fsync", e = errno;
    if (close(fd) != 0 && ok) ok = false, step = "close", e = errno;
    if (ok && rename(tmp, path) != 0) ok = false, step = "rename", e = errno;
    if (!ok) {
        unlink(tmp);
        return AX_ERROR(AX_ERR_IO, "%s: cannot save (%s of %s failed): %s", path, step, tmp, strerror(e));
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return AX_ERROR(AX_ERR_NOMEM, "%s: saved, but out of memory syncing its folder", path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ax_status st = AX_OK;
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP))
        st = AX_ERROR(AX_ERR_IO, "%s: saved, but syncing the folder %s failed: %s", path, dir, strerror(errno));
    if (dfd >= 0) close(dfd);
    free(dir);
    return st;
}

ax_status ax_cache_write_file(const char *path, const void *data, size_t n) {
    if (!path || (!data && n)) return AX_ERROR(AX_ERR_INVALID, "ax_cache_write_file: path and data are required");
    char *tmp = tmp_name(path);
    if (!tmp) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        ax_status st = AX_ERROR(AX_ERR_IO, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return st;
    }
    ax_status st = ax_file_commit(fd, tmp, path, write_all(fd, data, n) == AX_OK);
    free(tmp);
    return st;
}

/* ---- writing a case ------------------------------------------------------ */

static bool check_shape(const int32_t shape[3], int32_t channels, uint64_t *nvox) {
    if (channels <= 0 || channels > 65535) return false;
    uint64_t n = 1;
    for (int a = 0; a < 3; a++) {
        if (shape[a] <= 0 || shape[a] > (1 << 20)) return false;
        n *= (uint64_t)shape[a];
    }
    if (n > ((uint64_t)1 << 40)) return false;
    *nvox = n;
    return true;
}

ax_status ax_case_write(const char *path, const ax_case_desc *d) {
    if (!path || !d) return AX_ERROR(AX_ERR_INVALID, "ax_case_write: path and desc are required");
    uint64_t nvox;
    if (!check_shape(d->shape, d->channels, &nvox))
        return AX_ERROR(AX_ERR_INVALID, "ax_case_write: %s: bad shape [%d, %d, %d, %d]", path, (int)d->channels,
                        (int)d->shape[0], (int)d->shape[1], (int)d->shape[2]);
    if (!d->image) return AX_ERROR(AX_ERR_INVALID, "ax_case_write: %s: image is NULL", path);
    if (d->n_fg < 0 || (d->n_fg > 0 && !d->fg))
        return AX_ERROR(AX_ERR_INVALID, "ax_case_write: %s: n_fg = %lld without coordinates", path, (long long)d->n_fg);
    for (int a = 0; a < 3; a++)
        if (!(d->spacing[a] > 0) || !isfinite(d->spacing[a]))
            return AX_ERROR(AX_ERR_INVALID, "ax_case_write: %s: spacing[%d] = %g", path, a, d->spacing[a]);
    if (!host_is_little_endian())
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: case files need a little-endian host", path);
    const char *json = d->json ? d->json : "{}";
    uint64_t json_size = strlen(json);

    uint64_t off = AX_CASE_ALIGN;
    uint64_t json_off = off;
    off = align_up(off + json_size);
    uint64_t image_off = off;
    uint64_t image_bytes = (uint64_t)d->channels * nvox * sizeof(float);
    off = align_up(off + image_bytes);
    uint64_t label_off = 0, mask_off = 0, fg_off = 0;
    if (d->label) label_off = off, off = align_up(off + nvox);
    if (d->mask) mask_off = off, off = align_up(off + nvox);
    if (d->n_fg > 0) fg_off = off;

    unsigned char hdr[AX_CASE_ALIGN];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, AX_CASE_MAGIC, 8);
    put_u64(hdr + 8, json_off);
    put_u64(hdr + 16, json_size);
    put_u64(hdr + 24, image_off);
    put_u64(hdr + 32, label_off);
    put_u64(hdr + 40, mask_off);
    put_u64(hdr + 48, fg_off);
    put_u64(hdr + 56, (uint64_t)d->n_fg);
    put_i32(hdr + 64, d->channels);
    for (int a = 0; a < 3; a++) put_i32(hdr + 68 + 4 * a, d->shape[a]);
    for (int a = 0; a < 3; a++) put_f64(hdr + 80 + 8 * a, d->spacing[a]);

    char *tmp = tmp_name(path);
    if (!tmp) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        ax_status st = AX_ERROR(AX_ERR_IO, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return st;
    }
    static const unsigned char zeros[AX_CASE_ALIGN];
    uint64_t pos = 0;
    bool ok = true;
#define CASE_PUT(buf, n)                                                                                               \
    do {                                                                                                               \
        if (ok) ok = write_all(fd, (buf), (size_t)(n)) == AX_OK;                                                      \
        pos += (uint64_t)(n);                                                                                          \
    } while (0)
#define CASE_PAD_TO(target)                                                                                            \
    do {                                                                                                               \
        while (ok && pos < (target)) {                                                                                 \
            uint64_t k_ = (target) - pos < AX_CASE_ALIGN ? (target) - pos : AX_CASE_ALIGN;                             \
            CASE_PUT(zeros, k_);                                                                                       \
        }                                                                                                              \
    } while (0)
    CASE_PUT(hdr, sizeof hdr);
    CASE_PUT(json, json_size);
    CASE_PAD_TO(image_off);
    CASE_PUT(d->image, image_bytes);
    if (d->label) {
        CASE_PAD_TO(label_off);
        CASE_PUT(d->label, nvox);
    }
    if (d->mask) {
        CASE_PAD_TO(mask_off);
        CASE_PUT(d->mask, nvox);
    }
    if (d->n_fg > 0) {
        CASE_PAD_TO(fg_off);
        CASE_PUT(d->fg, (uint64_t)d->n_fg * 3 * sizeof(int32_t));
    }
#undef CASE_PUT
#undef CASE_PAD_TO
    ax_status st = ax_file_commit(fd, tmp, path, ok);
    free(tmp);
    return st;
}

/* ---- opening a case ------------------------------------------------------ */

void ax_case_close(ax_case *c) {
    if (!c) return;
    case_impl *im = c->impl;
    if (im) {
        if (im->map && im->map != MAP_FAILED) munmap(im->map, im->size);
        free(im->json);
        free(im->path);
        free(im);
    }
    free(c);
}

/* An array of `bytes` at `off` lies inside the file, after the header, aligned. */
static ax_status check_array(const char *path, const char *what, uint64_t off, uint64_t bytes, uint64_t size) {
    if (off % AX_CASE_ALIGN != 0 || off < AX_CASE_ALIGN)
        return AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: corrupt header: %s offset %llu is not a multiple of %d",
                        path, what, (unsigned long long)off, AX_CASE_ALIGN);
    if (off > size || bytes > size - off)
        return AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: truncated: %s needs %llu bytes at offset %llu, file has %llu",
                        path, what, (unsigned long long)bytes, (unsigned long long)off, (unsigned long long)size);
    return AX_OK;
}

ax_status ax_case_open(ax_case **out, const char *path) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_case_open: out is NULL");
    *out = NULL;
    if (!path) return AX_ERROR(AX_ERR_INVALID, "ax_case_open: path is NULL");
    if (!host_is_little_endian())
        return AX_ERROR(AX_ERR_UNSUPPORTED, "ax_case_open: %s: case files need a little-endian host", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return AX_ERROR(errno == ENOENT ? AX_ERR_NOT_FOUND : AX_ERR_IO, "ax_case_open: %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        ax_status st = AX_ERROR(AX_ERR_IO, "ax_case_open: %s: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < CASE_HEADER_BYTES) {
        close(fd);
        return AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: truncated: %llu bytes, the header alone needs %d", path,
                        (unsigned long long)size, CASE_HEADER_BYTES);
    }
    ax_case *c = calloc(1, sizeof *c);
    case_impl *im = calloc(1, sizeof *im);
    if (!c || !im || !(im->path = strdup(path))) {
        close(fd);
        free(c);
        if (im) free(im->path);
        free(im);
        return AX_ERROR(AX_ERR_NOMEM, "ax_case_open: %s: out of memory", path);
    }
    c->impl = im;
    c->path = im->path;
    im->size = (size_t)size;
    im->map = mmap(NULL, im->size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (im->map == MAP_FAILED) {
        im->map = NULL;
        ax_case_close(c);
        return AX_ERROR(AX_ERR_IO, "ax_case_open: %s: mmap: %s", path, strerror(e));
    }
    const unsigned char *h = im->map;
    ax_status st = AX_OK;
    if (memcmp(h, AX_CASE_MAGIC, 8) != 0) {
        st = AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: not an axon case file (bad magic)", path);
        goto fail;
    }
    uint64_t json_off = get_u64(h + 8), json_size = get_u64(h + 16);
    uint64_t image_off = get_u64(h + 24), label_off = get_u64(h + 32), mask_off = get_u64(h + 40);
    uint64_t fg_off = get_u64(h + 48), fg_count = get_u64(h + 56);
    c->channels = get_i32(h + 64);
    for (int a = 0; a < 3; a++) c->shape[a] = get_i32(h + 68 + 4 * a);
    for (int a = 0; a < 3; a++) c->spacing[a] = get_f64(h + 80 + 8 * a);
    uint64_t nvox;
    if (!check_shape(c->shape, c->channels, &nvox)) {
        st = AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: corrupt header: shape [%d, %d, %d, %d]", path,
                      (int)c->channels, (int)c->shape[0], (int)c->shape[1], (int)c->shape[2]);
        goto fail;
    }
    for (int a = 0; a < 3; a++)
        if (!(c->spacing[a] > 0) || !isfinite(c->spacing[a])) {
            st = AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: corrupt header: spacing[%d] = %g", path, a, c->spacing[a]);
            goto fail;
        }
    if (json_off < CASE_HEADER_BYTES || json_off > size || json_size > size - json_off || json_size > (1u << 30)) {
        st = AX_ERROR(AX_ERR_FORMAT,
                      "ax_case_open: %s: truncated or corrupt: metadata of %llu bytes at offset %llu, file has %llu",
                      path, (unsigned long long)json_size, (unsigned long long)json_off, (unsigned long long)size);
        goto fail;
    }
    if ((st = check_array(path, "image", image_off, (uint64_t)c->channels * nvox * 4, size)) != AX_OK) goto fail;
    if (label_off && (st = check_array(path, "label", label_off, nvox, size)) != AX_OK) goto fail;
    if (mask_off && (st = check_array(path, "mask", mask_off, nvox, size)) != AX_OK) goto fail;
    if (fg_count) {
        if (fg_count > nvox) {
            st = AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: corrupt header: %llu foreground points in %llu voxels",
                          path, (unsigned long long)fg_count, (unsigned long long)nvox);
            goto fail;
        }
        if ((st = check_array(path, "foreground list", fg_off, fg_count * 12, size)) != AX_OK) goto fail;
        const int32_t *fg = (const int32_t *)((const char *)im->map + fg_off);
        for (uint64_t k = 0; k < fg_count; k++)
            for (int a = 0; a < 3; a++)
                if (fg[3 * k + a] < 0 || fg[3 * k + a] >= c->shape[a]) {
                    st = AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: corrupt: foreground point %llu (%d, %d, %d) is outside [%d, %d, %d]",
                                  path, (unsigned long long)k, (int)fg[3 * k], (int)fg[3 * k + 1], (int)fg[3 * k + 2],
                                  (int)c->shape[0], (int)c->shape[1], (int)c->shape[2]);
                    goto fail;
                }
        c->fg = fg;
        c->n_fg = (int64_t)fg_count;
    }
    im->json = malloc(json_size + 1);
    if (!im->json) {
        st = AX_ERROR(AX_ERR_NOMEM, "ax_case_open: %s: out of memory", path);
        goto fail;
    }
    memcpy(im->json, (const char *)im->map + json_off, json_size);
    im->json[json_size] = '\0';
    json_error_t je;
    json_t *meta = json_loadb(im->json, json_size, 0, &je);
    if (!json_is_object(meta)) {
        st = AX_ERROR(AX_ERR_FORMAT, "ax_case_open: %s: corrupt metadata: %s", path,
                      meta ? "not a JSON object" : je.text);
        json_decref(meta);
        goto fail;
    }
    json_decref(meta);
    c->json = im->json;
    c->image = (const float *)((const char *)im->map + image_off);
    c->label = label_off ? (const uint8_t *)im->map + label_off : NULL;
    c->mask = mask_off ? (const uint8_t *)im->map + mask_off : NULL;
    *out = c;
    return AX_OK;
fail:
    ax_case_close(c);
    return st;
}

/* ---- the index ----------------------------------------------------------- */

void ax_cache_paths_free(char **paths, size_t n) {
    if (!paths) return;
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

ax_status ax_cache_list(const char *dir, const char *split, char ***paths, size_t *n) {
    if (!dir || !paths || !n) return AX_ERROR(AX_ERR_INVALID, "ax_cache_list: dir, paths and n are required");
    *paths = NULL;
    *n = 0;
    if (split && strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))
        return AX_ERROR(AX_ERR_INVALID, "ax_cache_list: unknown split '%s' (train, val, test)", split);
    size_t dl = strlen(dir);
    char *ipath = malloc(dl + 16);
    if (!ipath) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    snprintf(ipath, dl + 16, "%s%sindex.json", dir, dl && dir[dl - 1] == '/' ? "" : "/");
    json_error_t je;
    json_t *j = json_load_file(ipath, 0, &je);
    ax_status st = AX_OK;
    if (!j) {
        struct stat sb;
        if (stat(ipath, &sb) != 0)
            st = AX_ERROR(AX_ERR_NOT_FOUND, "%s: no such file (not a cache folder? run axon preprocess)", ipath);
        else
            st = AX_ERROR(AX_ERR_FORMAT, "%s:%d:%d: bad JSON: %s", ipath, je.line, je.column, je.text);
        free(ipath);
        return st;
    }
    json_t *fmt = json_object_get(j, "format"), *ver = json_object_get(j, "version");
    json_t *cases = json_object_get(j, "cases");
    char **v = NULL;
    size_t k = 0;
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "axon-cache") != 0) {
        st = AX_ERROR(AX_ERR_FORMAT, "%s: key 'format' is not \"axon-cache\"", ipath);
    } else if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        st = AX_ERROR(AX_ERR_UNSUPPORTED, "%s: key 'version': only version 1 is supported", ipath);
    } else if (!json_is_array(cases)) {
        st = AX_ERROR(AX_ERR_FORMAT, "%s: key 'cases' is missing or not an array", ipath);
    } else if (!(v = calloc(json_array_size(cases) + 1, sizeof *v))) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; st == AX_OK && i < json_array_size(cases); i++) {
        json_t *e = json_array_get(cases, i);
        json_t *file = json_object_get(e, "file"), *sp = json_object_get(e, "split");
        if (!json_is_string(file) || !*json_string_value(file) || strchr(json_string_value(file), '/')) {
            st = AX_ERROR(AX_ERR_FORMAT, "%s: cases[%zu].file is missing or not a plain file name", ipath, i);
            break;
        }
        if (!json_is_string(sp)) {
            st = AX_ERROR(AX_ERR_FORMAT, "%s: cases[%zu].split is missing or not a string", ipath, i);
            break;
        }
        if (split && strcmp(json_string_value(sp), split) != 0) continue;
        const char *f = json_string_value(file);
        size_t len = dl + strlen(f) + 2;
        if (!(v[k] = malloc(len))) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(v[k], len, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", f);
        k++;
    }
    json_decref(j);
    free(ipath);
    if (st != AX_OK) {
        ax_cache_paths_free(v, k);
        return st;
    }
    *paths = v;
    *n = k;
    return AX_OK;
}
