/* `axon predict -i IN_DIR -o OUT_DIR -m RUN` and
 * `axon evaluate --pred DIR --ref DIR --classes K`: ax_predict_run and
 * ax_evaluate_run (host/train_finetune.h) from the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "cli.h"
#include "registry.h"
#include "train_finetune.h"

/* "--opt VALUE" or "--opt=VALUE" (also a short alias) at argv[*i]. */
static const char *ax_cli_value(int argc, char **argv, int *i, const char *opt, const char *alias) {
    const char *a = argv[*i];
    size_t n = strlen(opt);
    if ((strcmp(a, opt) == 0 || (alias && strcmp(a, alias) == 0)) && *i + 1 < argc) return argv[++*i];
    if (strncmp(a, opt, n) == 0 && a[n] == '=') return a + n + 1;
    return NULL;
}

int ax_cmd_predict(ax_cli *cli, int argc, char **argv) {
    ax_predict_opts o = ax_predict_opts_default();
    for (int i = 0; i < argc; i++) {
        int t = ax_cli_take_plugin_path(cli, argc, argv, &i);
        if (t < 0) return 2;
        if (t) continue;
        const char *v;
        if ((v = ax_cli_value(argc, argv, &i, "--input", "-i")))
            o.input = v;
        else if ((v = ax_cli_value(argc, argv, &i, "--output", "-o")))
            o.output = v;
        else if ((v = ax_cli_value(argc, argv, &i, "--model", "-m")))
            o.model = v;
        else if ((v = ax_cli_value(argc, argv, &i, "--threads", NULL)))
            o.threads = atoi(v);
        else if (strcmp(argv[i], "--mirror") == 0)
            o.mirror = 1;
        else if (strcmp(argv[i], "--no-mirror") == 0)
            o.mirror = 0;
        else if (strcmp(argv[i], "--quiet") == 0)
            o.progress = 0;
        else {
            fprintf(stderr, "axon predict: unexpected argument '%s'; see 'axon help predict'\n", argv[i]);
            return 2;
        }
    }
    if (!o.input || !o.output || !o.model) {
        fprintf(stderr, "axon predict: -i IN_DIR, -o OUT_DIR and -m RUN are required; see 'axon help predict'\n");
        return 2;
    }
    ax_registry *reg = ax_cli_registry_open(cli);
    if (!reg) return 1;
    o.registry = reg;
    ax_predict_report rep;
    ax_status st = ax_predict_run(&o, &rep);
    int rc = 0;
    if (st != AX_OK) {
        fprintf(stderr, "axon predict: %s\n", ax_error_message());
        rc = 1;
    } else {
        printf("predicted %zu case%s into %s", rep.n_done, rep.n_done == 1 ? "" : "s", o.output);
        if (rep.n_failed) printf("; %zu skipped", rep.n_failed);
        printf("\n");
        for (size_t i = 0; i < rep.n_failed; i++)
            fprintf(stderr, "axon predict: skipped %s: %s\n", rep.failed_names[i], rep.failed_reasons[i]);
    }
    ax_predict_report_free(&rep);
    ax_registry_free(reg);
    return rc;
}

int ax_cmd_evaluate(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    ax_evaluate_opts o = ax_evaluate_opts_default();
    bool have_k = false;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = ax_cli_value(argc, argv, &i, "--pred", NULL)))
            o.pred = v;
        else if ((v = ax_cli_value(argc, argv, &i, "--ref", NULL)))
            o.ref = v;
        else if ((v = ax_cli_value(argc, argv, &i, "--output", "-o")))
            o.out_json = v;
        else if ((v = ax_cli_value(argc, argv, &i, "--classes", NULL)))
            o.classes = atoi(v), have_k = true;
        else if (strcmp(argv[i], "--no-hd95") == 0)
            o.hd95 = false;
        else {
            fprintf(stderr, "axon evaluate: unexpected argument '%s'; see 'axon help evaluate'\n", argv[i]);
            return 2;
        }
    }
    if (!o.pred || !o.ref || !have_k) {
        fprintf(stderr, "axon evaluate: --pred DIR, --ref DIR and --classes K are required\n");
        return 2;
    }
    char *json = NULL;
    if (ax_evaluate_run(&o, &json) != AX_OK) {
        fprintf(stderr, "axon evaluate: %s\n", ax_error_message());
        return 1;
    }
    printf("%s\n", json);
    free(json);
    return 0;
}
