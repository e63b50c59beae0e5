/* `axon preprocess --format F --root DIR -o CACHE [options]`: a dataset on
 * disk -> a cache folder of case files (axon/preprocess.h). Progress goes
 * to stderr (a bar on a terminal, one line per case otherwise); the
 * summary to stdout. Exit status: 0 when at least one case is in the
 * cache, 1 when the dataset cannot be listed or every case failed, 2 for
 * bad arguments. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/dataset.h"
#include "axon/preprocess.h"
#include "axon/status.h"
#include "cli.h"

#define PP_MAX_LIST 64

/* "--name VALUE" or "--name=VALUE" at argv[*i]; NULL if not this option.
 * *bad is set when the value is missing. */
static const char *pp_take(int argc, char **argv, int *i, const char *name, const char *alias, bool *bad) {
    const char *a = argv[*i];
    const char *names[2] = {name, alias};
    for (int k = 0; k < 2; k++) {
        const char *n = names[k];
        if (!n) continue;
        size_t len = strlen(n);
        if (strncmp(a, n, len) != 0) continue;
        if (a[len] == '=') return a + len + 1;
        if (a[len] != '\0') continue;
        if (*i + 1 >= argc) {
            fprintf(stderr, "axon preprocess: %s needs a value; see 'axon help preprocess'\n", n);
            *bad = true;
            return NULL;
        }
        return argv[++*i];
    }
    return NULL;
}

static bool pp_parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool pp_parse_long(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* "a,b,c" -> up to PP_MAX_LIST pointers into a copy (freed by the caller). */
static char *pp_split_list(const char *s, const char **items, size_t *n) {
    char *copy = strdup(s);
    if (!copy) return NULL;
    *n = 0;
    for (char *tok = strtok(copy, ","); tok && *n < PP_MAX_LIST; tok = strtok(NULL, ","))
        if (*tok) items[(*n)++] = tok;
    return copy;
}

static int pp_usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "axon preprocess: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; see 'axon help preprocess'\n");
    return 2;
}

int ax_cmd_preprocess(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    ax_dataset_opts dso = ax_dataset_opts_default();
    ax_preprocess_opts po = ax_preprocess_opts_default();
    const char *mods[PP_MAX_LIST], *excl[PP_MAX_LIST];
    char *mods_buf = NULL, *excl_buf = NULL;
    bool quiet = false;
    int rc = 2;
    for (int i = 0; i < argc; i++) {
        bool bad = false;
        const char *v;
        const char *a = argv[i];
        if ((v = pp_take(argc, argv, &i, "--format", NULL, &bad))) {
            dso.format = v;
        } else if ((v = pp_take(argc, argv, &i, "--root", NULL, &bad))) {
            dso.root = v;
        } else if ((v = pp_take(argc, argv, &i, "--out", "-o", &bad))) {
            po.out = v;
        } else if ((v = pp_take(argc, argv, &i, "--spacing", NULL, &bad))) {
            char extra;
            int k = sscanf(v, "%lf,%lf,%lf%c", &po.spacing[0], &po.spacing[1], &po.spacing[2], &extra);
            if (k == 1 && !strchr(v, ',')) po.spacing[1] = po.spacing[2] = po.spacing[0]; /* isotropic */
            if ((k != 3 && !(k == 1 && !strchr(v, ','))) || !(po.spacing[0] > 0 && po.spacing[1] > 0 && po.spacing[2] > 0) ||
                !isfinite(po.spacing[0] + po.spacing[1] + po.spacing[2])) {
                rc = pp_usage_error("--spacing '%s': expected three positive numbers d,h,w (mm) or one", v);
                goto done;
            }
        } else if ((v = pp_take(argc, argv, &i, "--threads", "-j", &bad))) {
            long long t;
            if (!pp_parse_long(v, 0, 4096, &t)) {
                rc = pp_usage_error("--threads '%s': expected 0..4096", v);
                goto done;
            }
            po.threads = (int32_t)t;
        } else if ((v = pp_take(argc, argv, &i, "--glob", NULL, &bad))) {
            dso.glob = v;
        } else if ((v = pp_take(argc, argv, &i, "--csv", NULL, &bad))) {
            dso.csv = v;
        } else if ((v = pp_take(argc, argv, &i, "--max-quality", NULL, &bad))) {
            if (!pp_parse_double(v, &dso.max_quality)) {
                rc = pp_usage_error("--max-quality '%s': expected a number", v);
                goto done;
            }
        } else if ((v = pp_take(argc, argv, &i, "--modality", NULL, &bad))) {
            free(mods_buf);
            if (!(mods_buf = pp_split_list(v, mods, &dso.n_modalities))) goto done;
            dso.modalities = mods;
        } else if ((v = pp_take(argc, argv, &i, "--exclude-modality", NULL, &bad))) {
            free(excl_buf);
            if (!(excl_buf = pp_split_list(v, excl, &dso.n_exclude_modalities))) goto done;
            dso.exclude_modalities = excl;
        } else if ((v = pp_take(argc, argv, &i, "--val-fraction", NULL, &bad))) {
            if (!pp_parse_double(v, &po.split.fraction) || po.split.fraction < 0 || po.split.fraction > 1) {
                rc = pp_usage_error("--val-fraction '%s': expected a number in [0, 1]", v);
                goto done;
            }
        } else if ((v = pp_take(argc, argv, &i, "--val-min", NULL, &bad))) {
            long long t;
            if (!pp_parse_long(v, 0, INT64_MAX, &t)) {
                rc = pp_usage_error("--val-min '%s': expected a non-negative integer", v);
                goto done;
            }
            po.split.min_val = t;
        } else if ((v = pp_take(argc, argv, &i, "--val-max", NULL, &bad))) {
            long long t;
            if (!pp_parse_long(v, 0, INT64_MAX, &t)) {
                rc = pp_usage_error("--val-max '%s': expected a non-negative integer", v);
                goto done;
            }
            po.split.max_val = t;
        } else if ((v = pp_take(argc, argv, &i, "--seed", NULL, &bad))) {
            long long t;
            if (!pp_parse_long(v, 0, INT64_MAX, &t)) {
                rc = pp_usage_error("--seed '%s': expected a non-negative integer", v);
                goto done;
            }
            po.split.seed = (uint64_t)t;
        } else if ((v = pp_take(argc, argv, &i, "--max-fg", NULL, &bad))) {
            long long t;
            if (!pp_parse_long(v, 0, INT64_MAX, &t)) {
                rc = pp_usage_error("--max-fg '%s': expected a non-negative integer", v);
                goto done;
            }
            po.max_fg = t;
        } else if (bad) {
            goto done;
        } else if (strcmp(a, "--mask-norm") == 0) {
            po.mask_norm = true;
        } else if (strcmp(a, "--no-mask-crop") == 0) {
            po.crop_to_mask = false;
        } else if (strcmp(a, "--no-test") == 0) {
            dso.include_test = false;
        } else if (strcmp(a, "--skip-missing") == 0) {
            dso.skip_missing = true;
        } else if (strcmp(a, "--force") == 0) {
            po.force = true;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            rc = ax_cli_help("preprocess");
            goto done;
        } else {
            rc = pp_usage_error("unknown option '%s'", a);
            goto done;
        }
        if (bad) goto done;
    }
    if (!dso.format || !dso.root || !po.out) {
        rc = pp_usage_error("%s", !dso.format ? "missing --format" : !dso.root ? "missing --root" : "missing -o CACHE");
        goto done;
    }
    if (strcmp(dso.format, "nifti-dir") && strcmp(dso.format, "nnunet") && strcmp(dso.format, "openmind")) {
        rc = pp_usage_error("unknown --format '%s' (nifti-dir, nnunet, openmind)", dso.format);
        goto done;
    }
    if (po.split.min_val > po.split.max_val) {
        rc = pp_usage_error("%s", "--val-min is larger than --val-max");
        goto done;
    }

    rc = 1;
    ax_dataset *ds;
    if (ax_dataset_open(&ds, &dso) != AX_OK) {
        fprintf(stderr, "axon: preprocess: %s\n", ax_error_message());
        goto done;
    }
    if (!quiet) {
        po.progress = ax_preprocess_progress_print;
        po.progress_ctx = stderr;
    }
    ax_preprocess_report rep;
    ax_status st = ax_preprocess_run(ds, &po, &rep);
    if (st != AX_OK && rep.n_total == 0) {
        fprintf(stderr, "axon: preprocess: %s\n", ax_error_message());
        ax_dataset_free(ds);
        goto done;
    }
    printf("preprocess: %zu case%s: %zu done, %zu skipped (up to date), %zu failed -> %s/index.json\n", rep.n_total,
           rep.n_total == 1 ? "" : "s", rep.n_done, rep.n_skipped, rep.n_failed, po.out);
    for (size_t k = 0; k < rep.n_failed; k++)
        printf("  failed: %s: %s\n", rep.failed_names[k] ? rep.failed_names[k] : "?",
               rep.failed_reasons[k] ? rep.failed_reasons[k] : "?");
    if (st != AX_OK) fprintf(stderr, "axon: preprocess: %s\n", ax_error_message());
    rc = st == AX_OK ? 0 : 1;
    ax_preprocess_report_free(&rep);
    ax_dataset_free(ds);
done:
    free(mods_buf);
    free(excl_buf);
    return rc;
}
