/* preprocess.c — the preprocessing driver (axon/preprocess.h): options,
 * worker threads over cases, resume by parameter hash, the index, the
 * summary. One case's work is in preprocess_case.c. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "axon/cache.h"
#include "dataset_internal.h"
#include "preprocess_internal.h"

ax_preprocess_opts ax_preprocess_opts_default(void) {
    ax_preprocess_opts o;
    memset(&o, 0, sizeof o);
    o.crop_to_mask = true;
    o.max_fg = 10000;
    o.geometry_tol = 1e-4;
    o.split = ax_split_opts_default();
    return o;
}

void ax_preprocess_report_free(ax_preprocess_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_failed; i++) {
        if (r->failed_names) free(r->failed_names[i]);
        if (r->failed_reasons) free(r->failed_reasons[i]);
    }
    free(r->failed_names);
    free(r->failed_reasons);
    memset(r, 0, sizeof *r);
}

/* ---- progress ---------------------------------------------------------------- */

void ax_preprocess_progress_print(void *ctx, size_t finished, size_t total, const char *name, bool skipped,
                                  ax_status status, const char *reason) {
    FILE *f = ctx ? ctx : stderr;
    bool tty = isatty(fileno(f));
    if (tty) {
        const int width = 30;
        int fill = total ? (int)((double)finished / (double)total * width) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        if (status != AX_OK) fprintf(f, "\r\033[K%s: failed: %s\n", name, reason ? reason : ax_status_str(status));
        fprintf(f, "\r\033[K[%s] %zu/%zu %.40s", bar, finished, total, name);
        if (finished == total) fputc('\n', f);
    } else if (status != AX_OK) {
        fprintf(f, "[%zu/%zu] %s failed: %s\n", finished, total, name, reason ? reason : ax_status_str(status));
    } else {
        fprintf(f, "[%zu/%zu] %s %s\n", finished, total, name, skipped ? "up to date" : "done");
    }
    fflush(f);
}

/* ---- parameters hash --------------------------------------------------------- */

static uint64_t pp_hash_str(uint64_t h, const char *s) { return pp_fnv(h, s, strlen(s) + 1); }

/* Everything that changes a case file: the options that matter, and each
 * input's path, size and modification time. */
static void pp_case_hash(const ax_preprocess_opts *o, const ax_dataset_case *dc, char out[17]) {
    char buf[256];
    snprintf(buf, sizeof buf, "axc1|%.17g,%.17g,%.17g|%d|%d|%lld|%.17g", o->spacing[0], o->spacing[1], o->spacing[2],
             (int)o->mask_norm, (int)o->crop_to_mask, (long long)o->max_fg, o->geometry_tol);
    uint64_t h = pp_hash_str(PP_FNV_INIT, buf);
    const char *files[64];
    int n = 0;
    for (int32_t i = 0; i < dc->n_images && n < 60; i++) files[n++] = dc->images[i];
    files[n++] = dc->label ? dc->label : "-";
    files[n++] = dc->mask ? dc->mask : "-";
    for (int i = 0; i < n; i++) {
        h = pp_hash_str(h, files[i]);
        struct stat sb;
        if (strcmp(files[i], "-") != 0 && stat(files[i], &sb) == 0) {
            snprintf(buf, sizeof buf, "%lld|%lld.%09ld", (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
                     (long)sb.st_mtim.tv_nsec);
            h = pp_hash_str(h, buf);
        }
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The case file exists, opens cleanly and carries `hash`. */
static bool pp_up_to_date(const char *path, const char *hash, double spacing[3]) {
    ax_case *c;
    if (access(path, F_OK) != 0) return false;
    if (ax_case_open(&c, path) != AX_OK) {
        ax_error_clear();
        return false;
    }
    bool ok = false;
    json_t *j = json_loads(c->json, 0, NULL);
    json_t *h = json_object_get(j, "params_hash");
    if (json_is_string(h) && strcmp(json_string_value(h), hash) == 0) {
        ok = true;
        for (int a = 0; a < 3; a++) spacing[a] = c->spacing[a];
    }
    json_decref(j);
    ax_case_close(c);
    return ok;
}

/* ---- workers ----------------------------------------------------------------- */

typedef struct pp_slot {
    ax_status status;
    bool skipped;
    char *reason;
    double spacing[3];
} pp_slot;

typedef struct pp_run {
    const ax_dataset *ds;
    const ax_preprocess_opts *opts;
    pp_ctx ctx;
    pp_slot *slots;
    atomic_size_t next;
    size_t finished;
    pthread_mutex_t lock;
} pp_run;

static char *pp_case_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 6;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s.axc", dir, name);
    return p;
}

static void *pp_worker(void *arg) {
    pp_run *r = arg;
    size_t total = ax_dataset_size(r->ds);
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= total) break;
        const ax_dataset_case *dc = ax_dataset_case_at(r->ds, i);
        pp_slot *s = &r->slots[i];
        char hash[17];
        pp_case_hash(r->opts, dc, hash);
        char *path = pp_case_path(r->opts->out, dc->name);
        if (!path) {
            s->status = AX_ERR_NOMEM;
            s->reason = strdup("out of memory");
        } else if (!r->opts->force && pp_up_to_date(path, hash, s->spacing)) {
            s->skipped = true;
        } else {
            s->status = pp_case_run(&r->ctx, dc, path, hash, s->spacing);
            if (s->status != AX_OK) s->reason = strdup(ax_error_message());
        }
        free(path);
        pthread_mutex_lock(&r->lock);
        r->finished++;
        if (r->opts->progress)
            r->opts->progress(r->opts->progress_ctx, r->finished, total, dc->name, s->skipped, s->status, s->reason);
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

/* ---- index ------------------------------------------------------------------- */

static int pp_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static ax_status pp_write_index(const pp_run *r, const uint8_t *split) {
    const ax_dataset *ds = r->ds;
    const ax_preprocess_opts *o = r->opts;
    size_t n = ax_dataset_size(ds);
    json_t *idx = json_object();
    json_object_set_new(idx, "format", json_string("axon-cache"));
    json_object_set_new(idx, "version", json_integer(1));
    json_object_set_new(idx, "channels", json_integer(ax_dataset_channels(ds)));
    json_t *chn = json_array();
    for (int32_t c = 0; c < ax_dataset_channels(ds); c++)
        json_array_append_new(chn, json_string(ax_dataset_channel_name(ds, c)));
    json_object_set_new(idx, "channel_names", chn);

    /* the target spacing, or the median of the cases' own */
    double sp[3];
    bool keep = o->spacing[0] <= 0 && o->spacing[1] <= 0 && o->spacing[2] <= 0;
    double *col = malloc((n + 1) * sizeof *col);
    if (!col) {
        json_decref(idx);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    for (int a = 0; a < 3; a++) {
        if (!keep) {
            sp[a] = o->spacing[a];
            continue;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (r->slots[i].status == AX_OK) col[k++] = r->slots[i].spacing[a];
        qsort(col, k, sizeof *col, pp_cmp_double);
        sp[a] = k ? (k % 2 ? col[k / 2] : 0.5 * (col[k / 2 - 1] + col[k / 2])) : 0.0;
    }
    free(col);
    json_t *spj = json_array();
    for (int a = 0; a < 3; a++) json_array_append_new(spj, json_real(sp[a]));
    json_object_set_new(idx, "spacing", spj);
    json_object_set_new(idx, "spacing_source", json_string(keep ? "median of the cases' own" : "target"));
    json_t *labels = json_object();
    for (size_t k = 0; k < ax_dataset_n_labels(ds); k++)
        json_object_set_new(labels, ax_dataset_label_name(ds, k), json_integer(ax_dataset_label_id(ds, k)));
    json_object_set_new(idx, "labels", labels);
    json_t *src = json_object();
    json_object_set_new(src, "format", json_string(ax_dataset_format(ds)));
    json_object_set_new(src, "root", json_string(ax_dataset_root(ds)));
    json_object_set_new(idx, "dataset", src);
    json_t *cases = json_array(), *failed = json_array();
    for (size_t i = 0; i < n; i++) {
        const ax_dataset_case *dc = ax_dataset_case_at(ds, i);
        json_t *e = json_object();
        json_object_set_new(e, "name", json_string(dc->name));
        if (r->slots[i].status != AX_OK) {
            json_object_set_new(e, "reason", json_string(r->slots[i].reason ? r->slots[i].reason : ""));
            json_array_append_new(failed, e);
            continue;
        }
        char *file = malloc(strlen(dc->name) + 5);
        if (file) sprintf(file, "%s.axc", dc->name);
        json_object_set_new(e, "file", file ? json_string(file) : json_null());
        free(file);
        json_object_set_new(e, "subject", json_string(dc->subject));
        json_object_set_new(e, "split", json_string(ax_split_name(split[i])));
        json_array_append_new(cases, e);
    }
    json_object_set_new(idx, "cases", cases);
    json_object_set_new(idx, "failed", failed);
    char *text = json_dumps(idx, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    json_decref(idx);
    if (!text) return AX_ERROR(AX_ERR_NOMEM, "out of memory writing index.json");
    char *path = malloc(strlen(o->out) + 16);
    ax_status st = AX_ERR_NOMEM;
    if (path) {
        sprintf(path, "%s/index.json", o->out);
        size_t len = strlen(text);
        text[len] = '\n'; /* json_dumps' NUL becomes the final newline */
        st = ax_cache_write_file(path, text, len + 1);
    } else {
        AX_ERROR(AX_ERR_NOMEM, "out of memory writing index.json");
    }
    free(path);
    free(text);
    return st;
}

/* mkdir -p */
static ax_status pp_mkdirs(const char *dir) {
    char *p = strdup(dir);
    if (!p) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                ax_status st = AX_ERROR(AX_ERR_IO, "%s: cannot create the folder: %s", p, strerror(errno));
                free(p);
                return st;
            }
            if (end) break;
            *s = '/';
        }
    }
    free(p);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return AX_ERROR(AX_ERR_IO, "%s: not a folder", dir);
    if (access(dir, W_OK) != 0) return AX_ERROR(AX_ERR_IO, "%s: not writable: %s", dir, strerror(errno));
    return AX_OK;
}

ax_status ax_preprocess_run(const ax_dataset *ds, const ax_preprocess_opts *opts, ax_preprocess_report *report) {
    if (report) memset(report, 0, sizeof *report);
    if (!ds || !opts) return AX_ERROR(AX_ERR_INVALID, "ax_preprocess_run: dataset and options are required");
    const ax_preprocess_opts *o = opts;
    if (!o->out || !*o->out) return AX_ERROR(AX_ERR_INVALID, "preprocess: no output folder given");
    bool keep = o->spacing[0] <= 0 && o->spacing[1] <= 0 && o->spacing[2] <= 0;
    for (int a = 0; a < 3 && !keep; a++)
        if (!(o->spacing[a] > 0) || !isfinite(o->spacing[a]) || o->spacing[a] > 1e4)
            return AX_ERROR(AX_ERR_INVALID, "preprocess: spacing (%g, %g, %g): need three positive values in mm, or none",
                            o->spacing[0], o->spacing[1], o->spacing[2]);
    if (o->threads < 0 || o->threads > 4096)
        return AX_ERROR(AX_ERR_INVALID, "preprocess: threads = %d is out of range [0, 4096]", (int)o->threads);
    if (o->max_fg < 0) return AX_ERROR(AX_ERR_INVALID, "preprocess: max_fg = %lld < 0", (long long)o->max_fg);
    if (!(o->geometry_tol >= 0)) return AX_ERROR(AX_ERR_INVALID, "preprocess: geometry_tol = %g", o->geometry_tol);

    size_t n = ax_dataset_size(ds);
    uint8_t *split = malloc(n + 1);
    if (!split) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    ax_status st = ax_dataset_split(ds, &o->split, split); /* checks the options before any work */
    if (st == AX_OK) st = pp_mkdirs(o->out);
    if (st != AX_OK) {
        free(split);
        return st;
    }

    pp_run r;
    memset(&r, 0, sizeof r);
    r.ds = ds;
    r.opts = o;
    r.ctx.opts = o;
    r.ctx.channels = ax_dataset_channels(ds);
    for (int k = 0; k < 256; k++) r.ctx.allowed[k] = ax_dataset_n_labels(ds) == 0;
    for (size_t k = 0; k < ax_dataset_n_labels(ds); k++) r.ctx.allowed[ax_dataset_label_id(ds, k) & 255] = true;
    r.slots = calloc(n, sizeof *r.slots);
    if (!r.slots) {
        free(split);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    atomic_init(&r.next, 0);
    pthread_mutex_init(&r.lock, NULL);

    long nt = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (nt < 1) nt = 1;
    if ((size_t)nt > n) nt = (long)n;
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    long started = 0;
    if (th)
        for (; started < nt; started++)
            if (pthread_create(&th[started], NULL, pp_worker, &r) != 0) break;
    if (started == 0) pp_worker(&r); /* no threads to be had: do it here */
    for (long t = 0; t < started; t++) pthread_join(th[t], NULL);
    free(th);
    pthread_mutex_destroy(&r.lock);

    ax_preprocess_report rep;
    memset(&rep, 0, sizeof rep);
    rep.n_total = n;
    rep.failed_names = calloc(n + 1, sizeof *rep.failed_names);
    rep.failed_reasons = calloc(n + 1, sizeof *rep.failed_reasons);
    for (size_t i = 0; i < n; i++) {
        pp_slot *s = &r.slots[i];
        if (s->status != AX_OK) {
            if (rep.failed_names && rep.failed_reasons) {
                rep.failed_names[rep.n_failed] = strdup(ax_dataset_case_at(ds, i)->name);
                rep.failed_reasons[rep.n_failed] = s->reason ? strdup(s->reason) : NULL;
            }
            rep.n_failed++;
        } else if (s->skipped) {
            rep.n_skipped++;
        } else {
            rep.n_done++;
        }
    }
    /* the split over the cases that made it into the cache, so failures
     * never leave the training set empty */
    uint8_t *ok = malloc(n + 1);
    if (!ok) {
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) ok[i] = r.slots[i].status == AX_OK;
        st = ds_split_subset(ds, &o->split, ok, split);
        free(ok);
    }
    if (st == AX_OK) st = pp_write_index(&r, split);
    if (st == AX_OK && n > 0 && rep.n_failed == n) {
        const pp_slot *s0 = &r.slots[0];
        st = AX_ERROR(s0->status, "preprocess: every case failed (%zu); the first, %s: %s", n,
                      ax_dataset_case_at(ds, 0)->name, s0->reason ? s0->reason : ax_status_str(s0->status));
    }
    for (size_t i = 0; i < n; i++) free(r.slots[i].reason);
    free(r.slots);
    free(split);
    if (report)
        *report = rep;
    else
        ax_preprocess_report_free(&rep);
    return st;
}
