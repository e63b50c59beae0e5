/* `axon inspect FILE [--json] [--allow-nonfinite]`: what a NIfTI file holds
 * and what axon makes of it. Shape, datatype, voxel sizes and orientation
 * codes describe the file as stored (i, j, k order, like nibabel's
 * img.shape, voxel_sizes(img.affine) and aff2axcodes); the affine and the
 * statistics describe the volume after scaling and reorientation to RAS,
 * i.e. exactly what training reads. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/status.h"
#include "axon/volume.h"
#include "cli.h"

typedef struct ax_inspect_stats {
    double min, max, mean, sum;
    int64_t count, nonfinite;
} ax_inspect_stats;

static void ax_inspect_stats_compute(const ax_volume *v, ax_inspect_stats *st) {
    int64_t n = (int64_t)v->channels * v->shape[0] * v->shape[1] * v->shape[2];
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        float x = v->data[i];
        if (!isfinite(x)) continue;
        if (x < mn) mn = x;
        if (x > mx) mx = x;
        sum += x;
        count++;
    }
    st->min = count ? mn : NAN;
    st->max = count ? mx : NAN;
    st->sum = sum;
    st->mean = count ? sum / (double)count : NAN;
    st->count = count;
    st->nonfinite = n - count;
}

static json_t *ax_json_number(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static int ax_inspect_json(const ax_volume *v, const ax_inspect_stats *st) {
    const ax_volume_source *s = &v->source;
    json_t *o = json_object(), *shape = json_array(), *spacing = json_array(), *aff = json_array();
    for (int i = 0; i < 3; i++) json_array_append_new(shape, json_integer(s->dim[i]));
    if (v->channels > 1) json_array_append_new(shape, json_integer(v->channels));
    double vs[3];
    for (int c = 0; c < 3; c++)
        vs[c] = sqrt(s->affine[0][c] * s->affine[0][c] + s->affine[1][c] * s->affine[1][c] +
                     s->affine[2][c] * s->affine[2][c]);
    for (int i = 0; i < 3; i++) json_array_append_new(spacing, json_real(vs[i]));
    for (int i = 0; i < 4; i++) {
        json_t *row = json_array();
        for (int j = 0; j < 4; j++) json_array_append_new(row, json_real(v->affine[i][j]));
        json_array_append_new(aff, row);
    }
    const char *dt = ax_nifti_dtype_name(s->datatype);
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "dtype", json_string(dt ? dt : "?"));
    json_object_set_new(o, "spacing", spacing);
    json_object_set_new(o, "orientation", json_string(s->orientation));
    json_object_set_new(o, "affine", aff);
    json_object_set_new(o, "min", ax_json_number(st->min));
    json_object_set_new(o, "max", ax_json_number(st->max));
    json_object_set_new(o, "mean", ax_json_number(st->mean));
    json_object_set_new(o, "sum", json_real(st->sum));
    int rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    printf("\n");
    return rc == 0 ? 0 : 1;
}

static void ax_inspect_text(const char *path, const ax_volume *v, const ax_inspect_stats *st) {
    const ax_volume_source *s = &v->source;
    const char *dt = ax_nifti_dtype_name(s->datatype);
    printf("file:         %s (NIfTI-%d)\n", path, s->nifti_version);
    printf("shape:        %lld x %lld x %lld", (long long)s->dim[0], (long long)s->dim[1], (long long)s->dim[2]);
    if (v->channels > 1) printf(" x %d", v->channels);
    printf("\ndtype:        %s\n", dt ? dt : "?");
    double vs[3];
    for (int c = 0; c < 3; c++)
        vs[c] = sqrt(s->affine[0][c] * s->affine[0][c] + s->affine[1][c] * s->affine[1][c] +
                     s->affine[2][c] * s->affine[2][c]);
    printf("spacing:      %g x %g x %g mm\n", vs[0], vs[1], vs[2]);
    printf("orientation:  %s (sform_code %d, qform_code %d)\n", s->orientation, s->sform_code, s->qform_code);
    printf("RAS array:    %d x %d x %d (D x H x W)%s\n", v->shape[0], v->shape[1], v->shape[2],
           s->reoriented ? ", reoriented" : "");
    printf("RAS affine:\n");
    for (int i = 0; i < 4; i++)
        printf("  [%12.6f %12.6f %12.6f %12.6f]\n", v->affine[i][0], v->affine[i][1], v->affine[i][2], v->affine[i][3]);
    printf("min %.9g  max %.9g  mean %.9g  sum %.17g\n", st->min, st->max, st->mean, st->sum);
    if (st->nonfinite) printf("non-finite voxels: %lld (left out of the statistics)\n", (long long)st->nonfinite);
}

int ax_cmd_inspect(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    int json = 0;
    const char *path = NULL;
    ax_volume_read_opts o = ax_volume_read_opts_default();
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--allow-nonfinite") == 0) o.allow_nonfinite = true;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "axon inspect: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "axon inspect: unexpected argument '%s'\n", argv[i]);
            return 2;
        } else path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: axon inspect FILE [--json] [--allow-nonfinite]\n");
        return 2;
    }
    ax_volume *v = NULL;
    if (ax_volume_read(&v, path, &o) != AX_OK) {
        /* the library's message already starts with the file name */
        fprintf(stderr, "axon: inspect: %s\n", ax_error_message());
        return 1;
    }
    ax_inspect_stats st;
    ax_inspect_stats_compute(v, &st);
    int rc = 0;
    if (json) rc = ax_inspect_json(v, &st);
    else ax_inspect_text(path, v, &st);
    ax_volume_free(v);
    return rc;
}
