/* The trainer core and checkpoints (host/train_core.h, train_checkpoint.h):
 * exact resume after a crash and after SIGTERM, non-finite steps, the run
 * folder's files, and checkpoints that rebuild their network from metadata
 * alone through the registry (plain_unet) or name their mismatches.
 * The core is driven by a small denoising network built from nn modules and
 * a synthetic batch per step that depends only on (seed, step). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/cache.h"
#include "axon/conv.h"
#include "axon/loss.h"
#include "axon/nn.h"
#include "axon/safetensors.h"
#include "registry.h"
#include "train_checkpoint.h"
#include "train_core.h"

static ax_registry *reg;
static char root[256];

static int ax_setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/axon-ckpt-XXXXXX");
    if (!mkdtemp(root)) return -1;
    if (ax_registry_new(&reg) != AX_OK) return -1;
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    return ax_registry_find(reg, AX_PLUGIN_ARCH, "plain_unet") ? 0 : -1;
}

static int ax_teardown(void **state) {
    (void)state;
    ax_registry_free(reg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a small network and synthetic data ---------------------------------------------- */

static ax_module *small_net(uint64_t seed) {
    ax_rng r;
    ax_rng_init(&r, seed, 0);
    ax_module *c1, *n1, *a1, *c2, *net;
    const int64_t k3[3] = {3, 3, 3};
    ax_conv_params p = ax_conv_params_default();
    p.padding[0] = p.padding[1] = p.padding[2] = 1;
    assert_int_equal(ax_nn_conv3d_new(&c1, 1, 4, k3, &p, true, &r), AX_OK);
    assert_int_equal(ax_nn_instance_norm3d_new(&n1, 4, 1e-5, 0.1, true, false), AX_OK);
    assert_int_equal(ax_nn_leaky_relu_new(&a1, 0.01), AX_OK);
    assert_int_equal(ax_nn_conv3d_new(&c2, 4, 1, k3, &p, true, &r), AX_OK);
    assert_int_equal(ax_nn_sequential_new(&net, 4, (ax_module *[]){c1, n1, a1, c2}), AX_OK);
    return net;
}

typedef struct hook_ctx {
    ax_module *net;
    int64_t nan_from, nan_to; /* [from, to): the loss is NaN */
    int64_t raise_at;         /* raise SIGTERM inside this step (-1: never) */
    int64_t fail_at;          /* return an error at this step (-1: never) */
    int calls;
} hook_ctx;

static ax_status batch_loss(ax_module *net, uint64_t seed, uint64_t stream, ax_tensor **loss) {
    const int64_t shape[5] = {2, 1, 6, 6, 6};
    ax_tensor *x, *noise, *noisy, *y;
    ax_status st = ax_tensor_randn(&x, 5, shape, AX_DTYPE_F32, seed, stream);
    if (st != AX_OK) return st;
    st = ax_tensor_randn(&noise, 5, shape, AX_DTYPE_F32, seed + 1, stream);
    if (st == AX_OK) st = ax_add(&noisy, x, noise);
    if (st == AX_OK) st = ax_module_forward(net, &y, noisy);
    if (st == AX_OK) st = ax_mse_loss(loss, y, x, NULL, AX_LOSS_MEAN);
    ax_tensor_free(y);
    ax_tensor_free(noisy);
    ax_tensor_free(noise);
    ax_tensor_free(x);
    return st;
}

static ax_status hook_train(void *ctx, int64_t step, ax_tensor **loss) {
    hook_ctx *h = ctx;
    h->calls++;
    if (step == h->fail_at) return AX_ERROR(AX_ERR_IO, "simulated crash at step %lld", (long long)step);
    if (step == h->raise_at) raise(SIGTERM);
    ax_status st = batch_loss(h->net, 77, (uint64_t)step, loss);
    if (st == AX_OK && step >= h->nan_from && step < h->nan_to) {
        ax_tensor *l2;
        st = ax_mul_scalar(&l2, *loss, NAN);
        ax_tensor_free(*loss);
        *loss = l2;
    }
    return st;
}

static ax_status hook_val(void *ctx, double *out) {
    hook_ctx *h = ctx;
    ax_tensor *l;
    ax_status st = batch_loss(h->net, 999, 0, &l);
    if (st == AX_OK) *out = ax_tensor_get(l, 0);
    ax_tensor_free(l);
    return st;
}

static ax_train_opts opts_for(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", root, name);
    ax_train_opts o = ax_train_opts_default();
    o.out = buf;
    o.steps = 12;
    o.save_every = 4;
    o.val_every = 6;
    o.progress = 0;
    o.optim.lr = 0.05;
    o.optim.momentum = 0.9;
    o.seed = 5;
    return o;
}

static hook_ctx hooks_for(ax_module *net) {
    return (hook_ctx){.net = net, .nan_from = -1, .nan_to = -1, .raise_at = -1, .fail_at = -1};
}

static void assert_same_weights(ax_module *a, ax_module *b) {
    ax_named_tensors pa = {0}, pb = {0};
    assert_int_equal(ax_module_state_dict(a, &pa), AX_OK);
    assert_int_equal(ax_module_state_dict(b, &pb), AX_OK);
    assert_int_equal(pa.n, pb.n);
    for (size_t i = 0; i < pa.n; i++) {
        assert_string_equal(pa.names[i], pb.names[i]);
        assert_int_equal(ax_tensor_nbytes(pa.tensors[i]), ax_tensor_nbytes(pb.tensors[i]));
        assert_memory_equal(ax_tensor_data(pa.tensors[i]), ax_tensor_data(pb.tensors[i]),
                            ax_tensor_nbytes(pa.tensors[i]));
    }
    ax_named_tensors_clear(&pa);
    ax_named_tensors_clear(&pb);
}

static int64_t count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int64_t n = 0;
    while (fgets(line, sizeof line, f)) n += !needle || strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static bool exists(const char *dir, const char *name) {
    char p[512];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* A run that crashed after its step-8 checkpoint, resumed in a new process
 * (a fresh network with other initial weights), ends bit-identical to an
 * uninterrupted one; metrics.jsonl holds each step once. */
static void test_resume_after_crash_is_exact(void **state) {
    (void)state;
    char da[300], db[300];
    ax_module *a = small_net(1);
    hook_ctx ha = hooks_for(a);
    ax_train_opts oa = opts_for("a", da, sizeof da);
    ax_train_hooks h = {.ctx = &ha, .train_loss = hook_train, .val_loss = hook_val};
    ax_train_result ra;
    if (ax_train_run(a, &oa, &h, &ra) != AX_OK) fail_msg("%s", ax_error_message());
    assert_int_equal(ra.step, 12);
    assert_true(ra.val_loss < ra.first_val_loss); /* it learns */

    ax_module *b = small_net(1);
    hook_ctx hb = hooks_for(b);
    hb.fail_at = 10;
    ax_train_opts ob = opts_for("b", db, sizeof db);
    h.ctx = &hb;
    ax_train_result rb;
    assert_int_equal(ax_train_run(b, &ob, &h, &rb), AX_ERR_IO);
    assert_non_null(strstr(ax_error_message(), "step 10: simulated crash"));
    assert_int_equal(rb.step, 10);
    ax_module_free(b);

    /* without resume the folder is refused */
    b = small_net(2);
    hb = hooks_for(b);
    h.ctx = &hb;
    assert_int_equal(ax_train_run(b, &ob, &h, &rb), AX_ERR_STATE);
    assert_non_null(strstr(ax_error_message(), "already holds a checkpoint"));
    ob.resume = true;
    if (ax_train_run(b, &ob, &h, &rb) != AX_OK) fail_msg("%s", ax_error_message());
    assert_int_equal(rb.start_step, 8);
    assert_int_equal(hb.calls, 4);
    assert_same_weights(a, b);
    assert_true(rb.val_loss == ra.val_loss);

    char mp[400];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", db);
    assert_int_equal(count_lines(mp, "\"step\":9,"), 1);
    assert_int_equal(count_lines(mp, "\"step\":10,"), 1);
    assert_int_equal(count_lines(mp, "\"step\":0,"), 1);
    assert_int_equal(count_lines(mp, NULL), count_lines(mp, "\"step\""));
    /* only the newest state is kept; the weights name it */
    char ck[400];
    snprintf(ck, sizeof ck, "%s/checkpoints", db);
    assert_true(exists(ck, "state_000000012.json") && exists(ck, "state_000000012.optim.safetensors"));
    assert_false(exists(ck, "state_000000008.json"));
    ax_safetensors *f;
    snprintf(ck, sizeof ck, "%s/checkpoints/latest.safetensors", db);
    assert_int_equal(ax_safetensors_open(&f, ck), AX_OK);
    assert_string_equal(ax_safetensors_metadata(f, "step"), "12");
    assert_string_equal(ax_safetensors_metadata(f, "state"), "state_000000012");
    ax_safetensors_close(f);
    ax_module_free(b);
    ax_module_free(a);
}

/* SIGTERM inside step 5: the loop saves at the step boundary and returns
 * AX_ERR_INTERRUPTED; resuming reaches the uninterrupted weights. */
static void test_sigterm_saves_and_resumes(void **state) {
    (void)state;
    char da[300], db[300];
    ax_module *a = small_net(3);
    hook_ctx ha = hooks_for(a);
    ax_train_opts oa = opts_for("sa", da, sizeof da);
    ax_train_hooks h = {.ctx = &ha, .train_loss = hook_train, .val_loss = hook_val};
    ax_train_result r;
    assert_int_equal(ax_train_run(a, &oa, &h, &r), AX_OK);

    ax_module *b = small_net(3);
    hook_ctx hb = hooks_for(b);
    hb.raise_at = 5;
    ax_train_opts ob = opts_for("sb", db, sizeof db);
    h.ctx = &hb;
    assert_int_equal(ax_train_run(b, &ob, &h, &r), AX_ERR_INTERRUPTED);
    assert_true(r.interrupted);
    assert_int_equal(r.step, 6);
    assert_non_null(strstr(ax_error_message(), "interrupted by signal 15 at step 6; checkpoint saved"));
    ax_module_free(b);
    b = small_net(4);
    hb = hooks_for(b);
    h.ctx = &hb;
    ob.resume = true;
    assert_int_equal(ax_train_run(b, &ob, &h, &r), AX_OK);
    assert_int_equal(r.start_step, 6);
    assert_same_weights(a, b);
    ax_module_free(b);
    ax_module_free(a);
}

/* NaN losses: skipped and counted; too many in a row stop the run with the
 * last good checkpoint left in place. */
static void test_nonfinite_steps(void **state) {
    (void)state;
    char d[300];
    ax_module *a = small_net(5);
    hook_ctx ha = hooks_for(a);
    ha.nan_from = 3, ha.nan_to = 5;
    ax_train_opts o = opts_for("nan1", d, sizeof d);
    ax_train_hooks h = {.ctx = &ha, .train_loss = hook_train, .val_loss = hook_val};
    ax_train_result r;
    assert_int_equal(ax_train_run(a, &o, &h, &r), AX_OK);
    assert_int_equal(r.skipped, 2);
    assert_true(isfinite(r.loss));
    char mp[400];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", d);
    assert_int_equal(count_lines(mp, "\"skipped\":"), 2);
    ax_module_free(a);

    a = small_net(5);
    ha = hooks_for(a);
    ha.nan_from = 5, ha.nan_to = 100;
    o = opts_for("nan2", d, sizeof d);
    o.max_nonfinite = 3;
    o.save_every = 2;
    h.ctx = &ha;
    assert_int_equal(ax_train_run(a, &o, &h, &r), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "3 consecutive steps with a non-finite loss"));
    assert_non_null(strstr(ax_error_message(), "last good checkpoint is"));
    assert_int_equal(r.skipped, 3);
    assert_int_equal(ha.calls, 8); /* steps 0..7: 5, 6, 7 were NaN */
    ax_safetensors *f;
    assert_int_equal(ax_safetensors_open(&f, r.checkpoint), AX_OK);
    assert_string_equal(ax_safetensors_metadata(f, "step"), "4"); /* not 6: that one was inside the NaN run */
    ax_safetensors_close(f);
    ax_module_free(a);
}

static void test_bad_options(void **state) {
    (void)state;
    char d[300];
    ax_module *a = small_net(6);
    hook_ctx ha = hooks_for(a);
    ax_train_hooks h = {.ctx = &ha, .train_loss = hook_train};
    ax_train_result r;
    ax_train_opts o = opts_for("bad", d, sizeof d);
    o.steps = 0;
    assert_int_equal(ax_train_run(a, &o, &h, &r), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "steps must be >= 1"));
    o = opts_for("bad", d, sizeof d);
    o.schedule.warmup_steps = 20;
    assert_int_equal(ax_train_run(a, &o, &h, &r), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "warm-up (20 steps) must be shorter than the run (12 steps)"));
    o = opts_for("bad", d, sizeof d);
    o.out = NULL;
    assert_int_equal(ax_train_run(a, &o, &h, &r), AX_ERR_INVALID);
    ax_optim_kind k;
    assert_int_equal(ax_train_optim_parse("adam", &k), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "valid: sgd, adamw"));
    ax_module_free(a);
}

/* ---- checkpoints through the registry ----------------------------------------------------- */

static ax_instance *plain_unet(const char *features) {
    const ax_registry_item *it = ax_registry_find(reg, AX_PLUGIN_ARCH, "plain_unet");
    ax_params *p;
    assert_int_equal(ax_params_new(&p, it->plugin->params, "arch 'plain_unet'"), AX_OK);
    assert_int_equal(ax_params_set_string(p, "preset", "tiny"), AX_OK);
    assert_int_equal(ax_params_set_int(p, "n_stages", 2), AX_OK);
    assert_int_equal(ax_params_set_text(p, "features", features), AX_OK);
    ax_instance *inst;
    if (ax_instance_new(&inst, it, p) != AX_OK) fail_msg("%s", ax_error_message());
    return inst;
}

static ax_module *build(ax_instance *arch, uint64_t seed) {
    ax_module *net;
    ax_rng r;
    ax_rng_init(&r, seed, 0);
    const ax_arch_ops *ops = arch->ops;
    if (ops->build(arch->self, &net, 1, 1, &r) != AX_OK) fail_msg("%s", ax_error_message());
    return net;
}

static void save_with_meta(ax_module *net, ax_instance *arch, const char *path) {
    ax_checkpoint_meta m;
    if (ax_checkpoint_meta_build(&m, arch, NULL, 1, 1) != AX_OK) fail_msg("%s", ax_error_message());
    assert_int_equal(ax_module_save_safetensors(net, path, m.n, (const char *const *)m.keys,
                                                (const char *const *)m.values),
                     AX_OK);
    ax_checkpoint_meta_clear(&m);
}

/* The file alone rebuilds the same network: same state dict, same output. */
static void test_rebuild_from_metadata(void **state) {
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/unet.safetensors", root);
    ax_instance *arch = plain_unet("4,8");
    ax_module *net = build(arch, 11);
    save_with_meta(net, arch, path);

    ax_module *back;
    ax_instance *arch2;
    ax_checkpoint_info info;
    if (ax_checkpoint_rebuild(reg, path, &back, &arch2, &info) != AX_OK) fail_msg("%s", ax_error_message());
    assert_string_equal(info.arch, "plain_unet");
    assert_int_equal(info.in_channels, 1);
    assert_int_equal(info.out_channels, 1);
    assert_same_weights(net, back);
    const int64_t shape[5] = {1, 1, 8, 8, 8};
    ax_tensor *x, *y1, *y2;
    assert_int_equal(ax_tensor_randn(&x, 5, shape, AX_DTYPE_F32, 3, 0), AX_OK);
    assert_int_equal(ax_module_forward(net, &y1, x), AX_OK);
    assert_int_equal(ax_module_forward(back, &y2, x), AX_OK);
    assert_memory_equal(ax_tensor_data(y1), ax_tensor_data(y2), ax_tensor_nbytes(y1));
    /* only the parameters that were set are recorded: the preset resolves the rest */
    ax_safetensors *f;
    assert_int_equal(ax_safetensors_open(&f, path), AX_OK);
    assert_string_equal(ax_safetensors_metadata(f, "arch_params"),
                        "{\"preset\":\"tiny\",\"n_stages\":2,\"features\":[4,8]}");
    assert_non_null(strstr(ax_safetensors_metadata(f, "plan"), "\"divisor\":["));
    ax_safetensors_close(f);
    ax_tensor_free(y1);
    ax_tensor_free(y2);
    ax_tensor_free(x);
    ax_module_free(back);
    ax_instance_free(arch2);
    ax_module_free(net);
    ax_instance_free(arch);
}

/* Another architecture's weights, and metadata naming a missing plugin or
 * parameter: errors that name the keys, shapes and names. */
static void test_mismatch_errors(void **state) {
    (void)state;
    char path[300], other[300];
    snprintf(path, sizeof path, "%s/wide.safetensors", root);
    snprintf(other, sizeof other, "%s/other.safetensors", root);
    ax_instance *wide = plain_unet("6,8"), *narrow = plain_unet("4,8");
    ax_module *wnet = build(wide, 1), *nnet = build(narrow, 1);
    save_with_meta(wnet, wide, path);
    assert_int_equal(ax_checkpoint_load_weights(nnet, path), AX_ERR_INVALID);
    const char *msg = ax_error_message();
    assert_non_null(strstr(msg, "does not fit this network (arch 'plain_unet' in the file)"));
    assert_non_null(
        strstr(msg, "encoder.stages.0.0.convs.0.conv.weight: file [6, 1, 3, 3, 3], network [4, 1, 3, 3, 3]"));
    assert_non_null(strstr(msg, "more)"));

    /* a file from a different network: missing and unexpected keys */
    ax_module *small = small_net(1);
    assert_int_equal(ax_module_save_safetensors(small, other, 0, NULL, NULL), AX_OK);
    assert_int_equal(ax_checkpoint_load_weights(nnet, other), AX_ERR_INVALID);
    msg = ax_error_message();
    assert_non_null(strstr(msg, ": missing in file"));
    assert_non_null(strstr(msg, "0.weight: not in network"));
    /* no metadata at all */
    ax_module *back;
    ax_instance *barch;
    assert_int_equal(ax_checkpoint_rebuild(reg, other, &back, &barch, NULL), AX_ERR_FORMAT);
    assert_non_null(strstr(ax_error_message(), "not an axon checkpoint"));
    assert_null(back);

    /* metadata naming an arch that is not installed, or a parameter it lacks */
    const char *keys[4] = {"arch", "arch_params", "in_channels", "out_channels"};
    const char *vals[4] = {"plane_unet", "{}", "1", "1"};
    assert_int_equal(ax_module_save_safetensors(small, other, 4, keys, vals), AX_OK);
    assert_int_equal(ax_checkpoint_rebuild(reg, other, &back, &barch, NULL), AX_ERR_NOT_FOUND);
    assert_non_null(strstr(ax_error_message(), "needs arch plugin 'plane_unet', which is not on the plugin path (did "
                                               "you mean 'plain_unet'?)"));
    vals[0] = "plain_unet";
    vals[1] = "{\"featurs\":[4,8]}";
    assert_int_equal(ax_module_save_safetensors(small, other, 4, keys, vals), AX_OK);
    assert_int_equal(ax_checkpoint_rebuild(reg, other, &back, &barch, NULL), AX_ERR_NOT_FOUND);
    assert_non_null(strstr(ax_error_message(), "unknown parameter 'featurs' (did you mean 'features'?)"));
    vals[1] = "{\"n_stages\":2,\"features\":[4,8]}";
    assert_int_equal(ax_module_save_safetensors(small, other, 4, keys, vals), AX_OK);
    assert_int_equal(ax_checkpoint_rebuild(reg, other, &back, &barch, NULL), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "does not fit this network"));
    assert_null(back);
    assert_null(barch);

    ax_module_free(small);
    ax_module_free(wnet);
    ax_module_free(nnet);
    ax_instance_free(wide);
    ax_instance_free(narrow);
}

static void test_atomic_write(void **state) {
    (void)state;
    char p[300];
    snprintf(p, sizeof p, "%s/sub/dir", root);
    assert_int_equal(ax_train_mkdirs(p), AX_OK);
    snprintf(p, sizeof p, "%s/sub/dir/x.json", root);
    assert_int_equal(ax_cache_write_file(p, "{}", 2), AX_OK);
    assert_int_equal(count_lines(p, "{}"), 1);
    snprintf(p, sizeof p, "%s/missing/x.json", root);
    assert_int_equal(ax_cache_write_file(p, "{}", 2), AX_ERR_IO);
    assert_non_null(strstr(ax_error_message(), "missing/x.json: cannot create the temporary file"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_after_crash_is_exact), cmocka_unit_test(test_sigterm_saves_and_resumes),
        cmocka_unit_test(test_nonfinite_steps),             cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_rebuild_from_metadata),       cmocka_unit_test(test_mismatch_errors),
        cmocka_unit_test(test_atomic_write),
    };
    return cmocka_run_group_tests(tests, ax_setup, ax_teardown);
}
