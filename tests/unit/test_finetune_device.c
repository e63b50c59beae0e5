/* Fine-tuning on a device, tested without a GPU: the stand-in backend of
 * tests/cuda/stand_in_cuda.h serves "cuda:0" with the CPU kernels, so a
 * run there (train batches moved to the net's device, validation windows
 * run there, losses read back with ax_train_scalar) must give the very
 * same metrics and checkpoint bytes as the same run on the CPU; device
 * defaults to $AXON_DEVICE; a device that is not one ("tpu") or does not
 * exist ("cuda:7") and an unknown amp fail naming the key and the value;
 * amp reaches the loop.
 * The data: a small synthetic labelled cache (a bright ball per case). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cuda/stand_in_cuda.h"
#include "axon/cache.h"
#include "axon/rng.h"
#include "cli.h"
#include "registry.h"
#include "train_finetune.h"

#define N 16 /* case edge */

static ax_registry *reg;
static ax_instance *arch, *task;
static char root[256], cache[300];

static void fail_on(ax_status st, const char *what) {
    if (st != AX_OK) fail_msg("%s: %s", what, ax_error_message());
}

static ax_instance *instance(ax_plugin_kind kind, const char *name, const char *const *kv) {
    const ax_registry_item *it = ax_registry_find(reg, kind, name);
    if (!it) fail_msg("plugin %s not found in the build tree", name);
    ax_params *p = NULL;
    fail_on(ax_params_new(&p, it->plugin->params, name), name);
    for (; *kv; kv += 2)
        fail_on(ax_params_set_text(p, kv[0], kv[1]), kv[0]);
    ax_instance *inst = NULL;
    fail_on(ax_instance_new(&inst, it, p), name);
    return inst;
}

/* Case k: noise plus a ball of intensity 2 (label 1) at a case-dependent centre. */
static void write_case(int k, const char *name) {
    static float img[N * N * N];
    static uint8_t lab[N * N * N];
    static int32_t fg[N * N * N * 3];
    ax_rng r;
    ax_rng_init(&r, 99, (uint64_t)k);
    int64_t n_fg = 0;
    double c = 6 + k, rad = 3.5;
    for (int d = 0; d < N; d++)
        for (int h = 0; h < N; h++)
            for (int w = 0; w < N; w++) {
                size_t i = ((size_t)d * N + (size_t)h) * N + (size_t)w;
                bool in = (d - c) * (d - c) + (h - 8) * (h - 8) + (w - c) * (w - c) <= rad * rad;
                lab[i] = in;
                img[i] = (float)(ax_rng_uniform(&r) - 0.5) + (in ? 2.0f : 0.0f);
                if (in) fg[n_fg * 3] = d, fg[n_fg * 3 + 1] = h, fg[n_fg * 3 + 2] = w, n_fg++;
            }
    char path[400], json[200];
    snprintf(path, sizeof path, "%s/%s.axc", cache, name);
    snprintf(json, sizeof json, "{\"name\": \"%s\", \"mask_norm\": false, \"classes\": [1]}", name);
    ax_case_desc desc = {.image = img, .label = lab, .fg = fg, .n_fg = n_fg, .channels = 1,
                         .shape = {N, N, N}, .spacing = {1, 1, 1}, .json = json};
    fail_on(ax_case_write(path, &desc), path);
}

static int setup(void **state) {
    (void)state;
    if (stand_in_cuda_register() != 0) return -1;
    if (ax_registry_new(&reg) != AX_OK) return -1;
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    snprintf(root, sizeof root, "/tmp/axon_ftdev.%ld", (long)getpid());
    snprintf(cache, sizeof cache, "%s/cache", root);
    if (ax_train_mkdirs(cache) != AX_OK) return -1;
    const char *names[3] = {"c0", "c1", "c2"};
    for (int k = 0; k < 3; k++)
        write_case(k, names[k]);
    const char *index = "{\"format\": \"axon-cache\", \"version\": 1, \"channels\": 1, \"spacing\": [1, 1, 1],"
                        " \"spacing_source\": \"target\", \"labels\": {\"background\": 0, \"ball\": 1}, \"cases\": ["
                        "{\"name\": \"c0\", \"file\": \"c0.axc\", \"subject\": \"c0\", \"split\": \"train\"},"
                        "{\"name\": \"c1\", \"file\": \"c1.axc\", \"subject\": \"c1\", \"split\": \"train\"},"
                        "{\"name\": \"c2\", \"file\": \"c2.axc\", \"subject\": \"c2\", \"split\": \"val\"}]}";
    char path[400];
    snprintf(path, sizeof path, "%s/index.json", cache);
    if (ax_cache_write_file(path, index, strlen(index)) != AX_OK) return -1;
    static const char *const arch_kv[] = {"preset", "tiny", "n_stages", "2", "features", "4,8", NULL};
    static const char *const task_kv[] = {"classes", "2", NULL};
    arch = instance(AX_PLUGIN_ARCH, "plain_unet", arch_kv);
    task = instance(AX_PLUGIN_TASK, "segmentation", task_kv);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ax_instance_free(arch);
    ax_instance_free(task);
    ax_registry_free(reg);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Fine-tune 4 steps (validation at 2 and 4) into root/<out>. */
static ax_status run(const char *out, const char *device, const char *amp, ax_finetune_result *r) {
    static char dir[8][400];
    static int n;
    char *d = dir[n++ % 8];
    snprintf(d, 400, "%s/%s", root, out);
    ax_finetune_opts o = ax_finetune_opts_default();
    o.input.data = cache;
    o.task = task;
    o.arch = arch;
    o.input.patch[0] = o.input.patch[1] = o.input.patch[2] = N;
    o.input.batch = 2;
    o.input.threads = 1;
    o.train.out = d;
    o.train.steps = 4;
    o.train.val_every = 2;
    o.train.progress = 0;
    o.train.device = device;
    o.train.amp = amp;
    o.warmup = 1;
    return ax_finetune_run(&o, r);
}

static char *slurp(const char *out, const char *file, size_t *n) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", root, out, file);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    b[len] = '\0';
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* metrics.jsonl without the wall-clock "time": the loss curve. */
static json_t *curve(const char *out) {
    size_t n;
    char *text = slurp(out, "metrics.jsonl", &n);
    json_t *all = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        json_object_del(j, "time");
        json_array_append_new(all, j);
    }
    free(text);
    return all;
}

static void assert_same_files(const char *a, const char *b, const char *file) {
    size_t na, nb;
    char *x = slurp(a, file, &na), *y = slurp(b, file, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    free(x);
    free(y);
}

static void test_device_same_as_cpu(void **state) {
    (void)state;
    unsetenv("AXON_DEVICE");
    ax_finetune_result rc, rd, re;
    fail_on(run("cpu", NULL, NULL, &rc), "cpu run");
    int64_t before = k_transfers;
    fail_on(run("dev", "cuda:0", NULL, &rd), "cuda:0 run");
    assert_true(k_transfers > before + 4); /* weights there and back, a batch per step, windows */
    assert_int_equal(k_live_bytes, 0);     /* the net came back to where it was */
    assert_int_equal(rd.train.step, 4);
    assert_true(isfinite(rc.train.loss) && isfinite(rc.train.val_loss) && isfinite(rc.val_dice_mean));
    assert_true(rd.train.loss == rc.train.loss);
    assert_true(rd.train.val_loss == rc.train.val_loss);
    assert_true(rd.train.first_val_loss == rc.train.first_val_loss);
    assert_true(rd.val_dice_mean == rc.val_dice_mean);
    json_t *a = curve("cpu"), *b = curve("dev");
    assert_int_equal(json_array_size(a), 5); /* step 0 (validation) and steps 1..4 */
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    assert_same_files("cpu", "dev", "checkpoints/latest.safetensors");

    /* no device given: $AXON_DEVICE */
    setenv("AXON_DEVICE", "cuda:0", 1);
    before = k_transfers;
    fail_on(run("env", NULL, NULL, &re), "AXON_DEVICE run");
    unsetenv("AXON_DEVICE");
    assert_true(k_transfers > before + 4);
    assert_true(re.train.loss == rc.train.loss);
    assert_same_files("cpu", "env", "checkpoints/latest.safetensors");
}

static void test_device_errors(void **state) {
    (void)state;
    ax_finetune_result r;
    assert_int_equal(run("tpu", "tpu", NULL, &r), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "device: 'tpu' is not a device"));
    assert_int_not_equal(run("cuda7", "cuda:7", NULL, &r), AX_OK);
    assert_non_null(strstr(ax_error_message(), "device cuda:7"));
    assert_int_equal(k_live_bytes, 0);
    assert_int_equal(run("fp8", "cuda:0", "fp8", &r), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "amp 'fp8' is not one of bf16, off"));
    setenv("AXON_DEVICE", "gpu", 1);
    assert_int_equal(run("envbad", NULL, NULL, &r), AX_ERR_INVALID);
    unsetenv("AXON_DEVICE");
    assert_non_null(strstr(ax_error_message(), "AXON_DEVICE=gpu"));

    /* prediction checks its device before it reads any input */
    ax_predict_opts po = ax_predict_opts_default();
    char model[400], out[400];
    snprintf(model, sizeof model, "%s/dev", root);
    snprintf(out, sizeof out, "%s/pred", root);
    po.model = model;
    po.input = root;
    po.output = out;
    po.registry = reg;
    po.device = "tpu";
    ax_predict_report rep;
    assert_int_equal(ax_predict_run(&po, &rep), AX_ERR_INVALID);
    ax_predict_report_free(&rep);
    assert_non_null(strstr(ax_error_message(), "device: 'tpu' is not a device"));
}

/* host/main.c's option parser (not in the library): the test passes its
 * plugin folders in the ax_cli itself, so there is none to take. */
int ax_cli_take_plugin_path(ax_cli *cli, int argc, char **argv, int *i) {
    (void)cli, (void)argc;
    return strcmp(argv[*i], "--plugin-path") == 0 ? -1 : 0;
}

/* `axon finetune --device cuda:0`: the command line reaches the same run. */
static void test_cli_device(void **state) {
    (void)state;
    const char *dirs[] = {AX_TEST_BUILD_PLUGINS "/archs/plain_unet/.libs",
                          AX_TEST_BUILD_PLUGINS "/tasks/segmentation/.libs"};
    ax_cli cli = {dirs, 2};
    char out[400];
    snprintf(out, sizeof out, "%s/cli", root);
    char *argv[] = {"--data", cache, "--out", out, "--task", "segmentation", "--task.classes", "2", "--arch",
                    "plain_unet", "--arch.preset", "tiny", "--arch.n-stages", "2", "--arch.features", "4,8", "--patch",
                    "16", "--batch", "2", "--threads", "1", "--steps", "4", "--val-every", "2", "--warmup", "1",
                    "--progress", "false", "--device", "cuda:0"};
    int argc = (int)(sizeof argv / sizeof argv[0]);
    int64_t before = k_transfers;
    assert_int_equal(ax_cmd_finetune(&cli, argc, argv), 0);
    assert_true(k_transfers > before + 4);
    assert_same_files("cpu", "cli", "checkpoints/latest.safetensors");
    argv[argc - 1] = "tpu";
    argv[3] = "/nonexistent/never";
    assert_int_equal(ax_cmd_finetune(&cli, argc, argv), 1);
    assert_non_null(strstr(ax_error_message(), "device: 'tpu' is not a device"));
}

/* amp reaches the loop: "off" and "bf16" on the CPU (no bf16 convolutions
 * there, so a no-op) give the f32 run bit for bit. */
static void test_amp_keys(void **state) {
    (void)state;
    ax_finetune_result rc, ro, rb;
    fail_on(run("amp_f32", "cpu", NULL, &rc), "amp unset");
    fail_on(run("amp_off", "cpu", "off", &ro), "amp off");
    fail_on(run("amp_bf16", "cpu", "bf16", &rb), "amp bf16");
    assert_true(ro.train.loss == rc.train.loss && rb.train.loss == rc.train.loss);
    assert_true(rb.train.val_loss == rc.train.val_loss);
    assert_same_files("amp_f32", "amp_bf16", "checkpoints/latest.safetensors");
}

/* amp = "bf16" on the stand-in device, which (like cuDNN) has bf16
 * convolutions: the decoder joins bf16 upsampled maps with f32 skips (norms
 * compute in f32), which ax_cat promotes; the run stays finite and close
 * to the f32 run without equalling it. */
static void test_amp_bf16_device(void **state) {
    (void)state;
    ax_finetune_result rf, rb;
    fail_on(run("amp_dev_f32", "cuda:0", NULL, &rf), "amp unset on cuda:0");
    fail_on(run("amp_dev_bf16", "cuda:0", "bf16", &rb), "amp bf16 on cuda:0");
    assert_true(isfinite(rb.train.loss) && isfinite(rb.train.val_loss));
    assert_true(rb.train.loss != rf.train.loss);
    assert_true(fabs(rb.train.loss - rf.train.loss) < 0.05 * fabs(rf.train.loss));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_same_as_cpu),
        cmocka_unit_test(test_device_errors),
        cmocka_unit_test(test_cli_device),
        cmocka_unit_test(test_amp_keys),
        cmocka_unit_test(test_amp_bf16_device),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
