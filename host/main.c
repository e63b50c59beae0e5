/* axon — the host executable: parses the command line and dispatches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"
#include "cli.h"
#include "registry.h"

typedef struct ax_command {
    const char *name;
    int (*run)(ax_cli *cli, int argc, char **argv);
    const char *usage;
    const char *help;
} ax_command;

static int ax_cmd_version(ax_cli *cli, int argc, char **argv);
static int ax_cmd_help(ax_cli *cli, int argc, char **argv);

static const ax_command ax_commands[] = {
    {"run", ax_cmd_run, "axon run [--plugin-path DIR] SCRIPT.lua [ARGS...]",
     "Run an experiment script. The script gets its arguments in the global\n"
     "table `arg` (arg[0] is the script) and as `...`; `require \"axon\"` gives\n"
     "the axon module. A script error prints file:line: message and a\n"
     "traceback, and axon exits with status 1."},
    {"pretrain", ax_cmd_pretrain,
     "axon pretrain [--plugin-path DIR] [CONFIG.lua] [--KEY VALUE]...",
     "Self-supervised pre-training (the Lua ax.pretrain{}). CONFIG.lua returns\n"
     "the configuration table; each --KEY VALUE sets the key of the same name\n"
     "(dashes read as underscores) over the file's; lists are comma-separated;\n"
     "--arch.PARAM / --method.PARAM set plugin parameters, --data.KEY a dataset\n"
     "(root, format, glob, ...) preprocessed into OUT/cache. Keys: data (a\n"
     "cache folder or dataset), out, arch, method, augs, patch, batch, steps,\n"
     "seed, optim (sgd|adamw), lr, momentum, nesterov, weight_decay, betas,\n"
     "eps, schedule (poly|cosine|constant), warmup, power, min_lr, clip,\n"
     "save_every, keep_every, val_every, val_batches, log_every, max_nonfinite,\n"
     "resume, threads, progress, oversample_fg, spacing. Example:\n"
     "  axon pretrain --data runs/demo/cache --out runs/mae --arch plain_unet \\\n"
     "    --arch.preset tiny --method mae --method.block 8 --patch 32,32,32 \\\n"
     "    --steps 200 --resume\n"
     "The run folder gets config.json, metrics.jsonl and checkpoints/.\n"
     "SIGINT/SIGTERM save a checkpoint and exit with status 130."},
    {"finetune", ax_cmd_finetune, "axon finetune [--plugin-path DIR] [CONFIG.lua] [--KEY VALUE]...",
     "Segmentation fine-tuning (the Lua ax.finetune{}), options as for pretrain.\n"
     "Keys: data (a cache folder or dataset; --data.root/--data.format, default\n"
     "nnunet), out, task (+ --task.classes K ...), arch (optional with init),\n"
     "init (a pre-training checkpoint: stem + encoder transferred), augs, patch,\n"
     "batch, steps, seed, optim, lr (1e-3 with init, 1e-2 without), momentum,\n"
     "nesterov, weight_decay, schedule (warmup_poly|sawtooth), warmup,\n"
     "decoder_steps, clip, save_every, val_every, val_cases, resume, threads,\n"
     "spacing, --split.fraction/min/max/seed, deep_supervision. Example:\n"
     "  axon finetune --data.root data/demo/seg/Dataset001_DemoBrain --out runs/seg \\\n"
     "    --task segmentation --task.classes 5 --init runs/mae/checkpoints/latest.safetensors \\\n"
     "    --patch 32,32,32 --steps 200 --resume\n"
     "Validation logs val_loss and val_dice_* to metrics.jsonl."},
    {"predict", ax_cmd_predict, "axon predict [--plugin-path DIR] -i IN_DIR -o OUT_DIR -m RUN [--mirror|--no-mirror]",
     "Segment every <case>_<XXXX>.nii[.gz] of IN_DIR (nnU-Net imagesTs layout)\n"
     "with the fine-tuned model RUN (a run folder or its weights file):\n"
     "preprocessed as its training data, Gaussian sliding window at the\n"
     "training patch (--mirror/--no-mirror: test-time mirroring, default the\n"
     "task's), written to OUT_DIR/<case>.nii[.gz] (u8) in the input's own grid\n"
     "and affine. Broken cases are reported and skipped; the exit status is 1\n"
     "only when every case failed or the model/folder cannot be used.\n"
     "Options: --threads N, --quiet."},
    {"evaluate", ax_cmd_evaluate, "axon evaluate --pred DIR --ref DIR --classes K [--no-hd95] [-o SUMMARY.json]",
     "Dice (and HD95, mm) per class of every reference label map in --ref\n"
     "against the prediction of the same file name in --pred; prints (and with\n"
     "-o writes) a JSON summary with per-case values and means."},
    {"plugins", ax_cmd_plugins, "axon plugins [--plugin-path DIR] [--json] [--kind KIND] [--describe NAME]",
     "List every plugin found on the search path (kind, name, version,\n"
     "summary, file). --describe NAME prints one plugin's parameters with\n"
     "types, defaults, ranges and docs. Files that fail to load are listed on\n"
     "stderr with the reason; the others still load.\n"
     "Search path: --plugin-path DIR (repeatable), then $AXON_PLUGIN_PATH\n"
     "(colon-separated), then the build tree when axon runs from it, else\n"
     "the install directory " AX_PLUGIN_DIR "."},
    {"inspect", ax_cmd_inspect, "axon inspect FILE [--json] [--allow-nonfinite]",
     "Describe a NIfTI file (.nii, .nii.gz; NIfTI-1 or -2): its shape,\n"
     "datatype, voxel sizes and orientation codes as stored, the affine after\n"
     "reorientation to RAS, and min/max/mean/sum of the scaled voxels. --json\n"
     "prints one object with keys shape, dtype, spacing, orientation, affine,\n"
     "min, max, mean, sum. NaN/Inf voxels are an error unless --allow-nonfinite\n"
     "(then the statistics leave them out). A bad file prints\n"
     "'axon: inspect: FILE: problem' and exits with status 1."},
    {"data", ax_cmd_data,
     "axon data demo OUT [--subjects N] [--seg-train N] [--seg-test N] [--seed S] [--spacing MM] [--datasets N] "
     "[--templates DIR]",
     "Generate the synthetic demo collection under OUT from the Colin27/AAL\n"
     "templates of Debian's mricron-data (--templates, default\n"
     "/usr/share/mricron/templates): OUT/pretrain in the OpenMind layout\n"
     "(openneuro_metadata.csv, dsXXXXXX/sub-NNN/anat/, fb_mask and deface_mask;\n"
     "--subjects, default 16, spread over --datasets folders, default 3) and\n"
     "OUT/seg/Dataset001_DemoBrain in nnU-Net raw format (--seg-train, default 8;\n"
     "--seg-test, default 4; labels 0 background, 1 brain, 2 left and 3 right\n"
     "cerebral grey matter, 4 cerebellum). Subjects are random smooth\n"
     "deformations of the template with T1w/T2w/FLAIR/PDw-like contrast, bias\n"
     "and noise, at --spacing mm (default 3). The same --seed (default 0) gives\n"
     "the same files."},
    {"preprocess", ax_cmd_preprocess,
     "axon preprocess --format F --root DIR -o CACHE [--spacing D,H,W] [--threads N] [--mask-norm] [...]",
     "Preprocess a dataset into a cache folder of case files (<name>.axc) and\n"
     "index.json: read every channel (reoriented to RAS), the label and the\n"
     "anatomy mask; check they share one voxel grid; crop to the mask or to the\n"
     "nonzero voxels; z-score each channel; resample to --spacing (mm along\n"
     "D,H,W, or one value for all; default: keep each case's own); list\n"
     "foreground voxels; write.\n"
     "Formats: nifti-dir (every .nii/.nii.gz under --root, --glob PATTERN),\n"
     "nnunet (dataset.json, imagesTr, labelsTr, imagesTs; --no-test),\n"
     "openmind (openneuro_metadata.csv; --csv FILE, --max-quality Q,\n"
     "--modality A,B, --exclude-modality A,B, --skip-missing).\n"
     "Options: --threads N (0 = all CPUs), --mask-norm (statistics and output\n"
     "inside the mask / nonzero region only), --no-mask-crop, --max-fg N\n"
     "(default 10000), --force (redo cases that are up to date), --quiet.\n"
     "Validation split by subject: --val-fraction F (0.01), --val-min N (5),\n"
     "--val-max N (1000), --seed S (12345).\n"
     "A rerun skips cases whose file matches the inputs and parameters. Broken\n"
     "cases are reported with the reason and skipped; the exit status is 1\n"
     "only when every case failed or the dataset cannot be listed, 2 for bad\n"
     "arguments."},
    {"version", ax_cmd_version, "axon version", "Print the axon version and the plugin ABI version."},
    {"help", ax_cmd_help, "axon help [COMMAND]", "Show help for axon or for one command."},
};
#define AX_N_COMMANDS (sizeof ax_commands / sizeof ax_commands[0])

static void ax_usage(FILE *f) {
    fprintf(f,
            "usage: axon [--plugin-path DIR]... COMMAND [ARGS...]\n"
            "\n"
            "axon: self-supervised pre-training and fine-tuning of 3D medical-image networks.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < AX_N_COMMANDS; i++) fprintf(f, "  %s\n", ax_commands[i].usage);
    fprintf(f,
            "\n"
            "options:\n"
            "  --plugin-path DIR   search DIR for plugins first (repeatable)\n"
            "  -h, --help          show this help; 'axon help COMMAND' for one command\n"
            "  --version           same as 'axon version'\n"
            "\n"
            "environment:\n"
            "  AXON_LOG            debug|info|warn|error|off (default info)\n"
            "  AXON_PLUGIN_PATH    colon-separated plugin directories\n");
}

static const ax_command *ax_command_find(const char *name) {
    for (size_t i = 0; i < AX_N_COMMANDS; i++)
        if (strcmp(ax_commands[i].name, name) == 0) return &ax_commands[i];
    return NULL;
}

static const char *ax_command_suggest(const char *name) {
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < AX_N_COMMANDS; i++) {
        size_t d = ax_edit_distance(name, ax_commands[i].name);
        if (d < best_d) best_d = d, best = ax_commands[i].name;
    }
    return best;
}

static int ax_cmd_version(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    if (argc > 0) {
        fprintf(stderr, "axon version: unexpected argument '%s'\n", argv[0]);
        return 2;
    }
    printf("axon %s (plugin ABI %u.%u)\n", ax_version(), AX_ABI_MAJOR, AX_ABI_MINOR);
    return 0;
}

static int ax_cmd_help(ax_cli *cli, int argc, char **argv) {
    (void)cli;
    if (argc == 0) {
        ax_usage(stdout);
        return 0;
    }
    const ax_command *c = ax_command_find(argv[0]);
    if (!c) {
        const char *near = ax_command_suggest(argv[0]);
        fprintf(stderr, "axon help: unknown command '%s'%s%s%s\n", argv[0], near ? " (did you mean '" : "",
                near ? near : "", near ? "'?)" : "");
        return 2;
    }
    printf("usage: %s\n\n%s\n", c->usage, c->help);
    return 0;
}

int ax_cli_help(const char *command) {
    char *name = (char *)command;
    return ax_cmd_help(NULL, 1, &name);
}

int ax_cli_take_plugin_path(ax_cli *cli, int argc, char **argv, int *i) {
    const char *dir = NULL;
    if (strcmp(argv[*i], "--plugin-path") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "axon: --plugin-path needs a directory\n");
            return -1;
        }
        dir = argv[++*i];
    } else if (strncmp(argv[*i], "--plugin-path=", 14) == 0) {
        dir = argv[*i] + 14;
    } else {
        return 0;
    }
    const char **p = realloc(cli->plugin_path, (cli->n_plugin_path + 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "axon: out of memory\n");
        return -1;
    }
    p[cli->n_plugin_path++] = dir;
    cli->plugin_path = p;
    return 1;
}

int main(int argc, char **argv) {
    ax_cli cli = {0};
    int rc = 2, i = 1;
    ax_log_get_level(); /* report a bad AXON_LOG before anything else */
    for (; i < argc; i++) {
        int t = ax_cli_take_plugin_path(&cli, argc, argv, &i);
        if (t < 0) goto out;
        if (t) continue;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            ax_usage(stdout);
            rc = 0;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            rc = ax_cmd_version(&cli, 0, NULL);
            goto out;
        }
        if (argv[i][0] == '-') {
            fprintf(stderr, "axon: unknown option '%s'; see 'axon --help'\n", argv[i]);
            goto out;
        }
        break;
    }
    if (i >= argc) {
        ax_usage(stderr);
        goto out;
    }
    const ax_command *c = ax_command_find(argv[i]);
    if (!c) {
        const char *near = ax_command_suggest(argv[i]);
        fprintf(stderr, "axon: unknown command '%s'%s%s%s; see 'axon --help'\n", argv[i],
                near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        goto out;
    }
    /* `axon CMD --help`; for run only before the script, whose own
     * arguments may well include --help. */
    if (c->run != ax_cmd_help)
        for (int j = i + 1; j < argc; j++) {
            if (strcmp(argv[j], "-h") == 0 || strcmp(argv[j], "--help") == 0) {
                rc = ax_cli_help(c->name);
                goto out;
            }
            if (c->run == ax_cmd_run && argv[j][0] != '-' && strcmp(argv[j - 1], "--plugin-path") != 0) break;
        }
    rc = c->run(&cli, argc - i - 1, argv + i + 1);
out:
    free(cli.plugin_path);
    return rc;
}
