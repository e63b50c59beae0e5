/* `axon data demo OUT [--subjects N] [--seg-train N] [--seg-test N]
 *  [--seed S] [--spacing MM] [--datasets N] [--templates DIR]` */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/demo.h"
#include "axon/status.h"
#include "cli.h"

/* The option's value: "--name=V" or "--name V". NULL (usage printed) when
 * missing. */
static const char *ax_data_value(int argc, char **argv, int *i, const char *name) {
    size_t n = strlen(name);
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "axon data demo: %s needs a value\n", name);
        return NULL;
    }
    return argv[++*i];
}

static int ax_data_int(const char *name, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "axon data demo: %s '%s': expected an integer in %lld..%lld\n", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int ax_data_demo(int argc, char **argv) {
    ax_demo_opts o = ax_demo_opts_default();
    const char *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        long long x;
        static const char *const int_opts[] = {"--subjects", "--seg-train", "--seg-test", "--seed", "--datasets"};
        int matched = 0;
        for (size_t k = 0; k < sizeof int_opts / sizeof int_opts[0]; k++) {
            size_t n = strlen(int_opts[k]);
            if (strncmp(a, int_opts[k], n) != 0 || (a[n] != '\0' && a[n] != '=')) continue;
            matched = 1;
            if (!(v = ax_data_value(argc, argv, &i, int_opts[k]))) return 2;
            long long hi = k == 3 ? LLONG_MAX : k == 0 ? 100000 : k == 4 ? 999999 : 999;
            if (ax_data_int(int_opts[k], v, k == 4 ? 1 : 0, hi, &x) != 0) return 2;
            if (k == 0) o.subjects = (int32_t)x;
            if (k == 1) o.seg_train = (int32_t)x;
            if (k == 2) o.seg_test = (int32_t)x;
            if (k == 3) o.seed = (uint64_t)x;
            if (k == 4) o.datasets = (int32_t)x;
        }
        if (matched) continue;
        if (strncmp(a, "--spacing", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
            if (!(v = ax_data_value(argc, argv, &i, "--spacing"))) return 2;
            char *end;
            double s = strtod(v, &end);
            if (end == v || *end || !(s >= 0.5 && s <= 10.0)) {
                fprintf(stderr, "axon data demo: --spacing '%s': expected millimetres in 0.5..10\n", v);
                return 2;
            }
            o.spacing = s;
        } else if (strncmp(a, "--templates", 11) == 0 && (a[11] == '\0' || a[11] == '=')) {
            if (!(o.templates = ax_data_value(argc, argv, &i, "--templates"))) return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "axon data demo: unknown option '%s' (see 'axon help data')\n", a);
            return 2;
        } else if (!out) {
            out = a;
        } else {
            fprintf(stderr, "axon data demo: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "axon data demo: missing the output folder (see 'axon help data')\n");
        return 2;
    }
    if (ax_demo_generate(out, &o) != AX_OK) {
        fprintf(stderr, "axon: data demo: %s\n", ax_error_message());
        return 1;
    }
    printf("%s/pretrain: %d subjects in the OpenMind layout (openneuro_metadata.csv)\n", out, (int)o.subjects);
    printf("%s/seg/Dataset001_DemoBrain: %d training and %d test cases (nnU-Net raw), %g mm\n", out,
           (int)o.seg_train, (int)o.seg_test, o.spacing);
    return 0;
}

int ax_cmd_data(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    if (argc < 1) {
        fprintf(stderr, "axon data: missing the action (demo); see 'axon help data'\n");
        return 2;
    }
    if (strcmp(argv[0], "demo") == 0) return ax_data_demo(argc - 1, argv + 1);
    fprintf(stderr, "axon data: unknown action '%s' (demo)\n", argv[0]);
    return 2;
}
