/* safetensors.c — .safetensors files (axon/safetensors.h).
 *
 * Reading maps the whole file once (copy-on-write) and validates the header
 * the way the reference Rust implementation does; ax_safetensors_get() then
 * wraps slices of the mapping as tensors. The mapping is refcounted: the
 * handle holds one reference, every wrapped tensor another, dropped by the
 * storage's release callback, so the last of them unmaps the file.
 *
 * Writing reproduces the bytes of Python's safetensors (0.4-0.8, checked
 * against 0.8.0): compact serde_json header with serde's string escapes,
 * tensors sorted by dtype (the Rust Dtype enum's order, descending) then by
 * name, header padded with spaces to a multiple of 8.
 */
#include "axon/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "file_internal.h"

/* The Rust implementation's limit; a larger length means "not this format". */
#define ST_MAX_HEADER 100000000u
/* Tensor names quoted in errors are cut to this many bytes. */
#define ST_Q 200

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ST_BIG_ENDIAN 1
#else
#define ST_BIG_ENDIAN 0
#endif

/* ---- dtypes ------------------------------------------------------------ */

typedef struct st_dtype {
    const char *name; /* as spelled in the header */
    unsigned bits;    /* per element */
    ax_dtype dtype;   /* 0: valid in safetensors, unknown to axon */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 32, AX_DTYPE_F32}, {"BF16", 16, AX_DTYPE_BF16}, {"F16", 16, AX_DTYPE_F16},
    {"I32", 32, AX_DTYPE_I32}, {"I64", 64, AX_DTYPE_I64},   {"U8", 8, AX_DTYPE_U8},
    {"BOOL", 8, AX_DTYPE_U8},
    /* known to safetensors only: validated at open, refused by get */
    {"F64", 64, 0}, {"I8", 8, 0}, {"I16", 16, 0}, {"U16", 16, 0}, {"U32", 32, 0}, {"U64", 64, 0},
    {"C64", 64, 0}, {"F8_E5M2", 8, 0}, {"F8_E4M3", 8, 0}, {"F8_E8M0", 8, 0}, {"F4", 4, 0},
    {"F6_E2M3", 6, 0}, {"F6_E3M2", 6, 0},
};

static const st_dtype *st_dtype_find(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

/* Header name of an axon dtype; NULL if unknown. */
static const char *st_dtype_name(ax_dtype d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].name;
    return NULL;
}

/* Position of an axon dtype in the Rust Dtype enum (BOOL, U8, ..., I16,
 * U16, F16, BF16, I32, U32, F32, F64, I64, U64); writers sort descending. */
static int st_dtype_rank(ax_dtype d) {
    switch (d) {
    case AX_DTYPE_U8: return 1;
    case AX_DTYPE_F16: return 2;
    case AX_DTYPE_BF16: return 3;
    case AX_DTYPE_I32: return 4;
    case AX_DTYPE_F32: return 5;
    case AX_DTYPE_I64: return 6;
    }
    return 0;
}

/* ---- the mapping -------------------------------------------------------- */

typedef struct st_map {
    atomic_llong refs;
    void *base;
    size_t size;
} st_map;

static void st_map_unref(st_map *m) {
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    munmap(m->base, m->size);
    free(m);
}

/* Counts release callbacks on this thread: ax_tensor_wrap may or may not
 * have called it when it fails, and only this tells the two apart. */
static _Thread_local unsigned long st_releases;

static void st_tensor_release(void *data, size_t nbytes, void *ctx) {
    (void)data, (void)nbytes;
    st_releases++;
    st_map_unref(ctx);
}

/* ---- the handle --------------------------------------------------------- */

typedef struct st_entry {
    const char *name; /* a key of f->root */
    const st_dtype *dt;
    int ndim;
    int64_t shape[AX_MAX_DIMS];
    uint64_t begin, end; /* relative to f->data */
    size_t pos;          /* in the header: orders empty tensors at one offset */
} st_entry;

struct ax_safetensors {
    char *path;
    st_map *map;
    unsigned char *data; /* first byte after the header */
    size_t data_size;
    json_t *root; /* owns every name, key and metadata value */
    json_t *meta; /* "__metadata__" (borrowed from root), NULL if none */
    st_entry *entries; /* sorted by data offsets */
    size_t n;
    st_entry **by_name; /* sorted by name, for get */
    const char **meta_keys;
    size_t n_meta;
};

void ax_safetensors_close(ax_safetensors *f) {
    if (!f) return;
    free(f->meta_keys);
    free(f->by_name);
    free(f->entries);
    json_decref(f->root);
    st_map_unref(f->map);
    free(f->path);
    free(f);
}

/* ---- header parsing ----------------------------------------------------- */

static ax_status st_parse_metadata(ax_safetensors *f, json_t *v) {
    if (json_is_null(v)) return AX_OK;
    if (!json_is_object(v)) return AX_ERROR(AX_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", f->path);
    f->meta = v;
    f->meta_keys = calloc(json_object_size(v) + 1, sizeof *f->meta_keys);
    if (!f->meta_keys) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory reading metadata", f->path);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (!json_is_string(val))
            return AX_ERROR(AX_ERR_FORMAT, "%s: metadata '%.*s' is not a string", f->path, ST_Q, key);
        f->meta_keys[f->n_meta++] = key;
    }
    return AX_OK;
}

/* A non-negative JSON integer into *out. */
static bool st_uint(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static ax_status st_parse_entry(const ax_safetensors *f, const char *name, json_t *v, st_entry *e) {
    const char *p = f->path;
    e->name = name;
    if (!json_is_object(v))
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': entry is not a JSON object", p, ST_Q, name);
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!json_object_get(v, fields[i]))
            return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': missing \"%s\"", p, ST_Q, name, fields[i]);

    json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': \"dtype\" is not a string", p, ST_Q, name);
    e->dt = st_dtype_find(json_string_value(jd));
    if (!e->dt)
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': unknown dtype \"%.40s\"", p, ST_Q, name,
                        json_string_value(jd));

    json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': \"shape\" is not an array", p, ST_Q, name);
    size_t nd = json_array_size(js);
    if (nd > AX_MAX_DIMS)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: tensor '%.*s': shape has %zu dims; axon supports at most %d", p,
                        ST_Q, name, nd, AX_MAX_DIMS);
    e->ndim = (int)nd;
    bool negative = false;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': \"shape\" must be an array of integers", p, ST_Q,
                            name);
        e->shape[i] = (int64_t)json_integer_value(d);
        negative |= e->shape[i] < 0;
    }
    char shape[200];
    ax_shape_str(shape, sizeof shape, e->ndim, e->shape);
    if (negative)
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': shape %s has a negative dim", p, ST_Q, name, shape);

    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !st_uint(json_array_get(jo, 0), &e->begin) ||
        !st_uint(json_array_get(jo, 1), &e->end))
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': \"data_offsets\" must be [begin, end], two integers >= 0",
                        p, ST_Q, name);
    if (e->end < e->begin)
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': data_offsets [%llu, %llu] end before they begin", p, ST_Q,
                        name, (unsigned long long)e->begin, (unsigned long long)e->end);

    /* bits = numel * bits per element, with overflow checks */
    uint64_t bits = e->dt->bits;
    for (int i = 0; i < e->ndim; i++) {
        uint64_t d = (uint64_t)e->shape[i];
        if (d && bits > UINT64_MAX / 8 / d)
            return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': shape %s is too large", p, ST_Q, name, shape);
        bits *= d;
    }
    if (bits % 8)
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': shape %s of %s does not fill whole bytes", p, ST_Q, name,
                        shape, e->dt->name);
    if (e->end - e->begin != bits / 8)
        return AX_ERROR(AX_ERR_FORMAT, "%s: tensor '%.*s': data_offsets [%llu, %llu] do not match shape %s of %s (%llu bytes)",
                        p, ST_Q, name, (unsigned long long)e->begin, (unsigned long long)e->end, shape, e->dt->name,
                        (unsigned long long)(bits / 8));
    if (e->end > f->data_size)
        return AX_ERROR(AX_ERR_FORMAT,
                        "%s: tensor '%.*s': data_offsets [%llu, %llu] run past the end of the data (%zu bytes after "
                        "the header; truncated file?)",
                        p, ST_Q, name, (unsigned long long)e->begin, (unsigned long long)e->end, f->data_size);
    return AX_OK;
}

static int st_cmp_offsets(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int st_cmp_names(const void *a, const void *b) {
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

/* The tensors must tile [0, data_size) exactly, in offset order. */
static ax_status st_check_tiling(const ax_safetensors *f) {
    uint64_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        const st_entry *e = &f->entries[i], *prev = i ? &f->entries[i - 1] : NULL;
        if (e->begin < at)
            return AX_ERROR(AX_ERR_FORMAT, "%s: tensors '%.*s' [%llu, %llu] and '%.*s' [%llu, %llu] overlap", f->path,
                            ST_Q, prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end, ST_Q,
                            e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->begin > at)
            return AX_ERROR(AX_ERR_FORMAT,
                            "%s: tensor '%.*s': hole of %llu bytes in the data before data_offsets [%llu, %llu] "
                            "(the data before it ends at %llu)",
                            f->path, ST_Q, e->name, (unsigned long long)(e->begin - at), (unsigned long long)e->begin,
                            (unsigned long long)e->end, (unsigned long long)at);
        at = e->end;
    }
    if (at != f->data_size)
        return AX_ERROR(AX_ERR_FORMAT, "%s: %llu bytes after the end of the last tensor (the tensors cover %llu of %zu data bytes)",
                        f->path, (unsigned long long)(f->data_size - at), (unsigned long long)at, f->data_size);
    return AX_OK;
}

static ax_status st_parse(ax_safetensors *f) {
    const unsigned char *b = f->map->base;
    size_t size = f->map->size;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    if (n > ST_MAX_HEADER)
        return AX_ERROR(AX_ERR_FORMAT, "%s: header length %llu is over the %u-byte limit (not a safetensors file?)",
                        f->path, (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return AX_ERROR(AX_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes follow it; "
                        "truncated file?)", f->path, (unsigned long long)n, size - 8);
    f->data = (unsigned char *)f->map->base + 8 + n;
    f->data_size = size - 8 - (size_t)n;

    json_error_t je;
    f->root = json_loadb((const char *)b + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!f->root)
        return AX_ERROR(AX_ERR_FORMAT, "%s: header is not valid JSON: %s (at byte %d of %llu)", f->path, je.text,
                        je.position, (unsigned long long)n);
    if (!json_is_object(f->root)) return AX_ERROR(AX_ERR_FORMAT, "%s: header is not a JSON object", f->path);

    size_t count = json_object_size(f->root);
    f->entries = calloc(count + 1, sizeof *f->entries);
    f->by_name = calloc(count + 1, sizeof *f->by_name);
    if (!f->entries || !f->by_name) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory reading the header", f->path);
    const char *key;
    json_t *v;
    json_object_foreach(f->root, key, v) {
        ax_status st;
        if (strcmp(key, "__metadata__") == 0) {
            st = st_parse_metadata(f, v);
        } else {
            st = st_parse_entry(f, key, v, &f->entries[f->n]);
            f->entries[f->n].pos = f->n;
            f->n++;
        }
        if (st != AX_OK) return st;
    }
    qsort(f->entries, f->n, sizeof *f->entries, st_cmp_offsets);
    if (st_check_tiling(f) != AX_OK) return ax_error_status();
    for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->entries[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, st_cmp_names);
    return AX_OK;
}

ax_status ax_safetensors_open(ax_safetensors **out, const char *path) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_safetensors_open: out is NULL");
    *out = NULL;
    if (!path) return AX_ERROR(AX_ERR_INVALID, "ax_safetensors_open: path is NULL");
    if (ST_BIG_ENDIAN) return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: safetensors needs a little-endian host", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return AX_ERROR(e == ENOENT ? AX_ERR_NOT_FOUND : AX_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return AX_ERROR(AX_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return AX_ERROR(AX_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return AX_ERROR(AX_ERR_FORMAT, "%s: file is %lld bytes, too short for a safetensors file (at least 8)", path,
                        (long long)sb.st_size);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: file too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    /* Private and writable: tensors may be written (copy-on-write), the file never is. */
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED) return AX_ERROR(AX_ERR_IO, "%s: cannot map %zu bytes: %s", path, size, strerror(e));

    ax_safetensors *f = calloc(1, sizeof *f);
    st_map *m = calloc(1, sizeof *m);
    char *p = strdup(path);
    if (!f || !m || !p) {
        free(f), free(m), free(p);
        munmap(base, size);
        return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", path);
    }
    atomic_init(&m->refs, 1);
    m->base = base;
    m->size = size;
    f->map = m;
    f->path = p;
    if (st_parse(f) != AX_OK) {
        ax_status st = ax_error_status();
        ax_safetensors_close(f);
        return st;
    }
    *out = f;
    return AX_OK;
}

/* ---- queries -------------------------------------------------------------- */

size_t ax_safetensors_count(const ax_safetensors *f) { return f ? f->n : 0; }

const char *ax_safetensors_name(const ax_safetensors *f, size_t i) {
    return f && i < f->n ? f->entries[i].name : NULL;
}

size_t ax_safetensors_metadata_count(const ax_safetensors *f) { return f ? f->n_meta : 0; }

const char *ax_safetensors_metadata_key(const ax_safetensors *f, size_t i) {
    return f && i < f->n_meta ? f->meta_keys[i] : NULL;
}

const char *ax_safetensors_metadata(const ax_safetensors *f, const char *key) {
    if (!f || !f->meta || !key) return NULL;
    return json_string_value(json_object_get(f->meta, key));
}

static int st_cmp_key(const void *key, const void *elem) {
    return strcmp(key, (*(st_entry *const *)elem)->name);
}

ax_status ax_safetensors_get(const ax_safetensors *f, const char *name, ax_tensor **out) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_safetensors_get: out is NULL");
    *out = NULL;
    if (!f || !name) return AX_ERROR(AX_ERR_INVALID, "ax_safetensors_get: %s is NULL", f ? "name" : "the file");
    st_entry *const *found = f->n ? bsearch(name, f->by_name, f->n, sizeof *f->by_name, st_cmp_key) : NULL;
    if (!found) {
        if (!f->n) return AX_ERROR(AX_ERR_NOT_FOUND, "%s: no tensor named '%.*s' (the file has none)", f->path, ST_Q, name);
        return AX_ERROR(AX_ERR_NOT_FOUND, "%s: no tensor named '%.*s' (%zu tensors: '%.*s'%s%.*s%s%s)", f->path, ST_Q,
                        name, f->n, ST_Q, f->entries[0].name, f->n > 1 ? ", '" : "", ST_Q,
                        f->n > 1 ? f->entries[1].name : "", f->n > 1 ? "'" : "", f->n > 2 ? ", ..." : "");
    }
    const st_entry *e = *found;
    if (!e->dt->dtype)
        return AX_ERROR(AX_ERR_UNSUPPORTED,
                        "%s: tensor '%.*s' has dtype %s, which axon does not support (F32, BF16, F16, I32, I64, U8, BOOL)",
                        f->path, ST_Q, name, e->dt->name);
    void *data = f->data + e->begin;
    size_t nbytes = (size_t)(e->end - e->begin);
    ax_status st;
    if ((uintptr_t)data % ax_dtype_size(e->dt->dtype)) {
        /* Misaligned for its dtype: hand out an aligned copy. */
        st = ax_tensor_from_buffer(out, e->ndim, e->shape, e->dt->dtype, data, nbytes);
    } else {
        atomic_fetch_add(&f->map->refs, 1);
        unsigned long before = st_releases;
        st = ax_tensor_wrap(out, e->ndim, e->shape, e->dt->dtype, data, nbytes, st_tensor_release, f->map);
        if (st != AX_OK && st_releases == before) st_map_unref(f->map);
    }
    if (st != AX_OK) return ax_error_prefix("%s: tensor '%.*s'", f->path, ST_Q, name);
    return AX_OK;
}

/* ---- writing ------------------------------------------------------------ */

/* A growing string; `failed` once an allocation failed. */
typedef struct st_buf {
    char *s;
    size_t n, cap;
    bool failed;
} st_buf;

static void st_put(st_buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->failed = true;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void st_puts(st_buf *b, const char *s) { st_put(b, s, strlen(s)); }

static void st_put_u64(st_buf *b, uint64_t v) {
    char t[24];
    st_put(b, t, (size_t)snprintf(t, sizeof t, "%llu", (unsigned long long)v));
}

/* A JSON string with serde_json's escapes: \" \\ \b \f \n \r \t, other
 * control characters as \u00xx (lower-case hex), everything else raw. */
static void st_put_json_string(st_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    st_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        const char *esc = NULL;
        switch (*c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        }
        if (esc) {
            st_puts(b, esc);
        } else if (*c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};
            st_put(b, u, 6);
        } else {
            st_put(b, (const char *)c, 1);
        }
    }
    st_put(b, "\"", 1);
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
 * which a JSON header must be. */
static bool st_utf8_ok(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s, n;
        uint32_t cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

/* One tensor or metadata entry being written. */
typedef struct st_item {
    const char *name;
    size_t idx;
    int rank; /* dtype order; 0 for metadata */
} st_item;

static int st_cmp_item_name(const void *a, const void *b) {
    return strcmp(((const st_item *)a)->name, ((const st_item *)b)->name);
}

/* Writers' order: dtype rank descending, then name. */
static int st_cmp_item_write(const void *a, const void *b) {
    const st_item *x = a, *y = b;
    if (x->rank != y->rank) return x->rank > y->rank ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Sort items by name and report the first duplicate. */
static ax_status st_check_unique(const char *path, st_item *items, size_t n, const char *what) {
    qsort(items, n, sizeof *items, st_cmp_item_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(items[i - 1].name, items[i].name) == 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: duplicate %s '%.*s'", path, what, ST_Q, items[i].name);
    return AX_OK;
}

static ax_status st_check_args(const char *path, size_t n, const char *const *names, const ax_tensor *const *tensors,
                               size_t n_meta, const char *const *keys, const char *const *values) {
    if (n && (!names || !tensors))
        return AX_ERROR(AX_ERR_INVALID, "%s: %zu tensors to save but %s is NULL", path, n, names ? "tensors" : "names");
    if (n_meta && (!keys || !values))
        return AX_ERROR(AX_ERR_INVALID, "%s: %zu metadata entries to save but %s is NULL", path, n_meta,
                        keys ? "meta_values" : "meta_keys");
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i];
        if (!nm) return AX_ERROR(AX_ERR_INVALID, "%s: names[%zu] is NULL", path, i);
        if (!*nm) return AX_ERROR(AX_ERR_INVALID, "%s: names[%zu] is empty", path, i);
        if (strcmp(nm, "__metadata__") == 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: a tensor cannot be named '__metadata__' (reserved for metadata)", path);
        if (!st_utf8_ok(nm)) return AX_ERROR(AX_ERR_INVALID, "%s: names[%zu] is not valid UTF-8", path, i);
        const ax_tensor *t = tensors[i];
        if (!t) return AX_ERROR(AX_ERR_INVALID, "%s: tensor '%.*s' is NULL", path, ST_Q, nm);
        if (!st_dtype_name(t->dtype))
            return AX_ERROR(AX_ERR_INVALID, "%s: tensor '%.*s' has unknown dtype %d", path, ST_Q, nm, (int)t->dtype);
        if (t->storage->device.type != AX_DEVICE_CPU)
            return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: tensor '%.*s' is not on the CPU; copy it there first", path, ST_Q,
                            nm);
    }
    for (size_t i = 0; i < n_meta; i++) {
        if (!keys[i] || !values[i])
            return AX_ERROR(AX_ERR_INVALID, "%s: meta_%s[%zu] is NULL", path, keys[i] ? "values" : "keys", i);
        if (!st_utf8_ok(keys[i]) || !st_utf8_ok(values[i]))
            return AX_ERROR(AX_ERR_INVALID, "%s: metadata '%.*s' is not valid UTF-8", path, ST_Q, keys[i]);
    }
    return AX_OK;
}

static ax_status st_write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t k = write(fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
        if (k < 0) {
            if (errno == EINTR) continue;
            return AX_ERR_IO;
        }
        p += k;
        n -= (size_t)k;
    }
    return AX_OK;
}

/* Write header + data to `tmp`, then replace `path` with it (ax_file_commit). */
static ax_status st_write_file(const char *path, const char *tmp, const st_buf *header, size_t n,
                               ax_tensor *const *parts) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return AX_ERROR(AX_ERR_IO, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)header->n >> (8 * i));
    bool ok = st_write_all(fd, len, 8) == AX_OK && st_write_all(fd, header->s, header->n) == AX_OK;
    for (size_t i = 0; ok && i < n; i++) ok = st_write_all(fd, ax_tensor_data(parts[i]), ax_tensor_nbytes(parts[i])) == AX_OK;
    return ax_file_commit(fd, tmp, path, ok);
}

ax_status ax_safetensors_save(const char *path, size_t n, const char *const *names,
                              const ax_tensor *const *tensors, size_t n_meta, const char *const *meta_keys,
                              const char *const *meta_values) {
    if (!path || !*path) return AX_ERROR(AX_ERR_INVALID, "ax_safetensors_save: path is NULL or empty");
    if (ST_BIG_ENDIAN) return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: safetensors needs a little-endian host", path);
    if (st_check_args(path, n, names, tensors, n_meta, meta_keys, meta_values) != AX_OK) return ax_error_status();

    ax_status st = AX_OK;
    st_item *items = calloc(n + 1, sizeof *items), *meta = calloc(n_meta + 1, sizeof *meta);
    ax_tensor **parts = calloc(n + 1, sizeof *parts); /* contiguous, in write order */
    st_buf h = {0};
    char *tmp = NULL;
    if (!items || !meta || !parts) {
        st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) items[i] = (st_item){names[i], i, st_dtype_rank(tensors[i]->dtype)};
    for (size_t i = 0; i < n_meta; i++) meta[i] = (st_item){meta_keys[i], i, 0};
    if ((st = st_check_unique(path, items, n, "tensor name")) != AX_OK) goto done;
    if ((st = st_check_unique(path, meta, n_meta, "metadata key")) != AX_OK) goto done; /* also sorts them */
    qsort(items, n, sizeof *items, st_cmp_item_write);

    st_put(&h, "{", 1);
    if (n_meta) {
        st_puts(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) st_put(&h, ",", 1);
            st_put_json_string(&h, meta[i].name);
            st_put(&h, ":", 1);
            st_put_json_string(&h, meta_values[meta[i].idx]);
        }
        st_put(&h, "}", 1);
    }
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const ax_tensor *t = tensors[items[i].idx];
        if ((st = ax_tensor_contiguous(&parts[i], t)) != AX_OK) {
            ax_error_prefix("%s: tensor '%.*s'", path, ST_Q, items[i].name);
            goto done;
        }
        uint64_t nb = ax_tensor_nbytes(parts[i]);
        if (i || n_meta) st_put(&h, ",", 1);
        st_put_json_string(&h, items[i].name);
        st_puts(&h, ":{\"dtype\":\"");
        st_puts(&h, st_dtype_name(t->dtype));
        st_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) st_put(&h, ",", 1);
            st_put_u64(&h, (uint64_t)t->shape[d]);
        }
        st_puts(&h, "],\"data_offsets\":[");
        st_put_u64(&h, at);
        st_put(&h, ",", 1);
        st_put_u64(&h, at + nb);
        st_puts(&h, "]}");
        at += nb;
    }
    st_put(&h, "}", 1);
    while (h.n % 8) st_put(&h, " ", 1);
    size_t tlen = strlen(path) + 32;
    tmp = malloc(tlen);
    if (h.failed || !tmp) {
        st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory building the header", path);
        goto done;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    st = st_write_file(path, tmp, &h, n, parts);

done:
    for (size_t i = 0; parts && i < n; i++) ax_tensor_free(parts[i]);
    free(parts);
    free(items);
    free(meta);
    free(h.s);
    free(tmp);
    return st;
}
