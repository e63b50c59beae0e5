/* dataset_nifti_dir.c — "nifti-dir": every NIfTI under a folder. */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset_internal.h"

typedef struct nd_list {
    char **v;
    size_t n, cap;
} nd_list;

static ax_status nd_push(nd_list *l, char *s) {
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "out of memory walking a folder");
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return AX_ERROR(AX_ERR_NOMEM, "out of memory walking a folder");
        }
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = s;
    return AX_OK;
}

/* Relative paths of NIfTI files under root/rel (rel "" for root). Hidden
 * entries are skipped; symlinks are followed (stat), with a depth limit
 * against loops. */
static ax_status nd_walk(const char *root, const char *rel, int depth, nd_list *out) {
    if (depth > 64) return AX_ERROR(AX_ERR_FORMAT, "nifti-dir: %s/%s: folders nested too deep (a symlink loop?)", root, rel);
    char *dir = *rel ? ds_join(root, rel) : strdup(root);
    if (!dir) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d) {
        ax_status st = AX_ERROR(AX_ERR_IO, "nifti-dir: %s: %s", dir, strerror(errno));
        free(dir);
        return st;
    }
    ax_status st = AX_OK;
    struct dirent *e;
    while (st == AX_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *sub = *rel ? ds_printf("%s/%s", rel, e->d_name) : strdup(e->d_name);
        char *full = sub ? ds_join(root, sub) : NULL;
        struct stat s;
        if (!sub || !full) {
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        } else if (stat(full, &s) != 0) {
            /* a dangling link: not a dataset file */
        } else if (S_ISDIR(s.st_mode)) {
            st = nd_walk(root, sub, depth + 1, out);
        } else if (S_ISREG(s.st_mode) && ds_nifti_suffix(e->d_name)) {
            st = nd_push(out, sub);
            sub = NULL;
        }
        free(sub);
        free(full);
    }
    closedir(d);
    free(dir);
    return st;
}

static int nd_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

ax_status ds_open_nifti_dir(ax_dataset *ds, const ax_dataset_opts *o) {
    nd_list files = {0};
    ax_status st = nd_walk(o->root, "", 0, &files);
    if (st == AX_OK && files.n) qsort(files.v, files.n, sizeof *files.v, nd_cmp);
    for (size_t i = 0; st == AX_OK && i < files.n; i++) {
        const char *rel = files.v[i];
        if (o->glob && *o->glob && fnmatch(o->glob, rel, 0) != 0) continue;
        ds_case *c = ds_case_add(ds);
        if (!c) {
            st = ax_error_status();
            break;
        }
        size_t n = strlen(rel) - ds_nifti_suffix(rel);
        char *full = ds_join(o->root, rel);
        c->name = malloc(n + 1);
        if (!full || !c->name) {
            free(full);
            st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t k = 0; k < n; k++) c->name[k] = rel[k] == '/' ? '_' : rel[k];
        c->name[n] = '\0';
        c->subject = ds_bids_subject(rel);
        st = ds_case_add_image(c, full);
        free(full);
    }
    for (size_t i = 0; i < files.n; i++) free(files.v[i]);
    free(files.v);
    if (st == AX_OK && ds->n == 0) {
        if (o->glob && *o->glob)
            return AX_ERROR(AX_ERR_NOT_FOUND, "nifti-dir: %s: no .nii/.nii.gz file matches '%s' (%zu NIfTI files in all)",
                            o->root, o->glob, files.n);
        return AX_ERROR(AX_ERR_NOT_FOUND, "nifti-dir: %s: no .nii/.nii.gz files", o->root);
    }
    return st;
}
