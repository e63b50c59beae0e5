/* The device plumbing the CUDA backend relies on, tested without a GPU: a
 * stand-in backend (stand_in_cuda.h: the CPU kernels behind a table
 * registered for AX_DEVICE_CUDA, with its own allocator and transfer)
 * serves "cuda:0", and tensors moved there must round-trip, carry
 * gradients back across the move, meet constants made on their own device (autograd seeds, where /
 * max / slice backward, losses), refuse to mix with CPU tensors, and train
 * the small conv net of train_net.h to the very same losses as the CPU.
 * Runs in every `make check`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/amp.h"
#include "axon/kernels.h"
#include "axon/loss.h"
#include "axon/nn.h"
#include "axon/ops.h"
#include "axon/optim.h"
#include "axon/rng.h"
#include "train_core.h"
#include "stand_in_cuda.h"
#include "train_net.h"

#define OK(e) tn_check((e), #e, __FILE__, __LINE__)

static const ax_device k_dev = {AX_DEVICE_CUDA, 0};

static int setup(void **state) {
    (void)state;
    return stand_in_cuda_register();
}

static ax_tensor *on_dev(const ax_tensor *t) {
    ax_tensor *o;
    OK(ax_tensor_to_device(&o, t, k_dev));
    assert_int_equal(o->storage->device.type, AX_DEVICE_CUDA);
    return o;
}

static void test_device_names(void **state) {
    (void)state;
    ax_device d;
    OK(ax_device_parse("cpu", &d));
    assert_int_equal(d.type, AX_DEVICE_CPU);
    OK(ax_device_parse("cuda", &d));
    assert_true(d.type == AX_DEVICE_CUDA && d.index == 0);
    OK(ax_device_parse("cuda:3", &d));
    assert_true(d.type == AX_DEVICE_CUDA && d.index == 3);
    const char *bad[] = {"gpu", "cuda:", "cuda:x", "cuda:1x", "cuda:-1", "cuda0", "", "CPU"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ax_device_parse(bad[i], &d), AX_ERR_INVALID);
        assert_non_null(strstr(ax_error_message(), "is not a device"));
    }
    setenv("AXON_DEVICE", "cuda:1", 1);
    OK(ax_device_default(&d));
    assert_true(d.type == AX_DEVICE_CUDA && d.index == 1);
    setenv("AXON_DEVICE", "tpu", 1);
    assert_int_equal(ax_device_default(&d), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "AXON_DEVICE=tpu"));
    unsetenv("AXON_DEVICE");
    OK(ax_device_default(&d));
    assert_int_equal(d.type, AX_DEVICE_CPU);
}

static void test_round_trip(void **state) {
    (void)state;
    int64_t shape[3] = {3, 4, 5};
    ax_tensor *x, *xt, *d, *back;
    OK(ax_tensor_randn(&x, 3, shape, AX_DTYPE_F32, 1, 0));
    OK(ax_tensor_transpose(&xt, x, 0, 2)); /* strided source */
    const ax_dtype dts[] = {AX_DTYPE_F32, AX_DTYPE_BF16, AX_DTYPE_I64, AX_DTYPE_U8};
    for (size_t i = 0; i < 4; i++) {
        ax_tensor *c;
        OK(ax_tensor_to_dtype(&c, xt, dts[i]));
        int64_t before = k_transfers;
        d = on_dev(c);
        OK(ax_tensor_to_device(&back, d, AX_CPU));
        assert_int_equal(k_transfers, before + 2);
        assert_true(ax_tensor_same_shape(back, c));
        assert_int_equal(back->dtype, dts[i]);
        for (int64_t j = 0; j < ax_tensor_numel(c); j++) assert_true(ax_tensor_get(back, j) == ax_tensor_get(c, j));
        ax_tensor_free(c);
        ax_tensor_free(d);
        ax_tensor_free(back);
    }
    /* a device index nobody serves */
    ax_tensor *bad = NULL;
    assert_int_not_equal(ax_tensor_to_device(&bad, x, (ax_device){AX_DEVICE_CUDA, 3}), AX_OK);
    assert_null(bad);
    ax_tensor_free(x);
    ax_tensor_free(xt);
    assert_int_equal(k_live_bytes, 0);
}

static void test_grad_across_move(void **state) {
    (void)state;
    int64_t shape[2] = {4, 6};
    ax_tensor *x, *d, *sq, *loss;
    OK(ax_tensor_randn(&x, 2, shape, AX_DTYPE_F32, 2, 0));
    OK(ax_tensor_set_requires_grad(x, true));
    d = on_dev(x);
    assert_true(d->requires_grad);
    OK(ax_mul(&sq, d, d));
    OK(ax_sum(&loss, sq, 0, NULL, false));
    assert_int_equal(loss->storage->device.type, AX_DEVICE_CUDA);
    OK(ax_backward(loss, NULL)); /* the seed is made on the loss's device */
    assert_non_null(x->grad);
    assert_int_equal(x->grad->storage->device.type, AX_DEVICE_CPU);
    for (int64_t i = 0; i < 24; i++) assert_true(ax_tensor_get(x->grad, i) == 2 * ax_tensor_get(x, i));
    ax_tensor *all[] = {x, d, sq, loss};
    for (int i = 0; i < 4; i++) ax_tensor_free(all[i]);
    assert_int_equal(k_live_bytes, 0);
}

static void test_device_constants(void **state) {
    (void)state;
    int64_t shape[3] = {2, 5, 7};
    ax_tensor *x0, *x;
    OK(ax_tensor_randn(&x0, 3, shape, AX_DTYPE_F32, 3, 0));
    x = on_dev(x0);
    OK(ax_tensor_set_requires_grad(x, true));
    ax_tensor *v, *i, *n, *c, *zero0, *zero, *w, *lse, *s1, *s2, *s3, *s4, *t1, *t2;
    OK(ax_max(&v, &i, x, 1, true));                  /* backward: one-hot through arange on the device */
    OK(ax_tensor_narrow(&n, x, 2, 1, 4));            /* backward: zeros on the device */
    OK(ax_tensor_zeros(&zero0, 3, shape, AX_DTYPE_F32));
    zero = on_dev(zero0);
    OK(ax_gt(&c, x, zero));
    OK(ax_where(&w, c, x, zero));                    /* backward: a zero scalar on the device */
    OK(ax_logsumexp(&lse, x, 1, (int[]){2}, false)); /* +inf and 0 constants on the device */
    OK(ax_sum(&s1, v, 0, NULL, false));
    OK(ax_sum(&s2, n, 0, NULL, false));
    OK(ax_sum(&s3, w, 0, NULL, false));
    OK(ax_sum(&s4, lse, 0, NULL, false));
    OK(ax_add(&t1, s1, s2));
    OK(ax_add(&t2, t1, s3));
    ax_tensor *loss;
    OK(ax_add(&loss, t2, s4));
    OK(ax_backward(loss, NULL));
    assert_non_null(x->grad);
    assert_int_equal(x->grad->storage->device.type, AX_DEVICE_CUDA);
    /* and mixing devices is refused, naming the problem */
    ax_tensor *mixed = NULL;
    assert_int_not_equal(ax_add(&mixed, x0, x), AX_OK);
    assert_non_null(strstr(ax_error_message(), "device"));
    ax_tensor *all[] = {x0, x, v, i, n, c, zero0, zero, w, lse, s1, s2, s3, s4, t1, t2, loss};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ax_tensor_free(all[k]);
    assert_int_equal(k_live_bytes, 0);
}

static void test_train_parity(void **state) {
    (void)state;
    tn_net cpu, dev;
    tn_init(&cpu, &dev, k_dev);
    int64_t xs[5] = {2, 1, 8, 8, 8};
    ax_tensor *x, *target, *xd, *td;
    OK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 5, 0));
    OK(ax_tensor_randn(&target, 5, xs, AX_DTYPE_F32, 5, 1));
    xd = on_dev(x);
    td = on_dev(target);
    double first = 0, last = 0;
    for (int s = 0; s < 5; s++) {
        ax_tensor *l1 = tn_forward(&cpu, x, target), *l2 = tn_forward(&dev, xd, td), *l2c;
        assert_int_equal(l2->storage->device.type, AX_DEVICE_CUDA);
        OK(ax_backward(l1, NULL));
        OK(ax_backward(l2, NULL));
        OK(ax_tensor_to_device(&l2c, l2, AX_CPU));
        /* the same kernels in the same order: the same bits */
        assert_true(ax_tensor_get(l1, 0) == ax_tensor_get(l2c, 0));
        if (s == 0) first = ax_tensor_get(l1, 0);
        last = ax_tensor_get(l1, 0);
        tn_sgd_step(&cpu, 0.05);
        tn_sgd_step(&dev, 0.05);
        ax_tensor_free(l1);
        ax_tensor_free(l2);
        ax_tensor_free(l2c);
    }
    assert_true(last < first);
    for (int i = 0; i < TN_NPARAM; i++) {
        ax_tensor_free(cpu.p[i]);
        ax_tensor_free(dev.p[i]);
    }
    ax_tensor_free(x);
    ax_tensor_free(target);
    ax_tensor_free(xd);
    ax_tensor_free(td);
    assert_int_equal(k_live_bytes, 0);
}

/* Bits of tensor t (any device) equal to those of CPU tensor want? */
static bool same_bits(const ax_tensor *t, const ax_tensor *want) {
    ax_tensor *h;
    OK(ax_tensor_to_device(&h, t, AX_CPU));
    bool eq = h->dtype == want->dtype && ax_tensor_same_shape(h, want) &&
              memcmp(ax_tensor_data(h), ax_tensor_data(want), ax_tensor_nbytes(want)) == 0;
    ax_tensor_free(h);
    return eq;
}

/* One optimizer on each side: SGD (nnU-Net's Nesterov with weight decay,
 * clipped hard so clipping scales every step) and AdamW; the device's
 * updates, norms and clipping run through its kernel table and must give
 * the CPU's bits. Then the device optimizer's state survives a file. */
static void run_optim_parity(bool adamw) {
    tn_net cpu, dev;
    tn_init(&cpu, &dev, k_dev);
    int64_t xs[5] = {2, 1, 8, 8, 8};
    ax_tensor *x, *target, *xd, *td;
    OK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 5, 0));
    OK(ax_tensor_randn(&target, 5, xs, AX_DTYPE_F32, 5, 1));
    xd = on_dev(x);
    td = on_dev(target);
    ax_optim *oc, *od;
    if (adamw) {
        OK(ax_adamw_new(&oc, TN_NPARAM, cpu.p, NULL, 1e-2, 0.9, 0.98, 1e-8, 1e-2));
        OK(ax_adamw_new(&od, TN_NPARAM, dev.p, NULL, 1e-2, 0.9, 0.98, 1e-8, 1e-2));
    } else {
        OK(ax_sgd_new(&oc, TN_NPARAM, cpu.p, NULL, 1e-2, 0.99, 0, 3e-5, true));
        OK(ax_sgd_new(&od, TN_NPARAM, dev.p, NULL, 1e-2, 0.99, 0, 3e-5, true));
    }
    double first = 0, last = 0;
    for (int s = 0; s < 6; s++) {
        ax_tensor *l1 = tn_forward(&cpu, x, target), *l2 = tn_forward(&dev, xd, td);
        OK(ax_backward(l1, NULL));
        OK(ax_backward(l2, NULL));
        assert_true(same_bits(l2, l1));
        double n1, n2;
        OK(ax_clip_grad_norm(&n1, TN_NPARAM, cpu.p, 0.05, 2.0));
        OK(ax_clip_grad_norm(&n2, TN_NPARAM, dev.p, 0.05, 2.0));
        assert_true(n1 == n2 && n1 > 0.05); /* clipping happened, identically */
        for (int i = 0; i < TN_NPARAM; i++) assert_int_equal(dev.p[i]->grad->storage->device.type, AX_DEVICE_CUDA);
        OK(ax_optim_step(oc));
        OK(ax_optim_step(od));
        for (int i = 0; i < TN_NPARAM; i++) assert_true(same_bits(dev.p[i], cpu.p[i]));
        if (s == 0) first = ax_tensor_get(l1, 0);
        last = ax_tensor_get(l1, 0);
        ax_optim_zero_grad(oc);
        ax_optim_zero_grad(od);
        ax_tensor_free(l1);
        ax_tensor_free(l2);
    }
    assert_true(last < first);
    /* the state goes through the CPU to a file and back onto the device */
    const char *path = adamw ? "test_device_dispatch.adamw.safetensors" : "test_device_dispatch.sgd.safetensors";
    OK(ax_optim_state_save(od, path));
    ax_optim *o2;
    if (adamw)
        OK(ax_adamw_new(&o2, TN_NPARAM, dev.p, NULL, 1e-2, 0.9, 0.98, 1e-8, 1e-2));
    else
        OK(ax_sgd_new(&o2, TN_NPARAM, dev.p, NULL, 1e-2, 0.99, 0, 3e-5, true));
    OK(ax_optim_state_load(o2, path));
    remove(path);
    /* one more step from the reloaded state matches the CPU's */
    ax_tensor *l1 = tn_forward(&cpu, x, target), *l2 = tn_forward(&dev, xd, td);
    OK(ax_backward(l1, NULL));
    OK(ax_backward(l2, NULL));
    OK(ax_optim_step(oc));
    OK(ax_optim_step(o2));
    for (int i = 0; i < TN_NPARAM; i++) assert_true(same_bits(dev.p[i], cpu.p[i]));
    ax_tensor_free(l1);
    ax_tensor_free(l2);
    ax_optim_free(o2);
    ax_optim_free(oc);
    ax_optim_free(od);
    for (int i = 0; i < TN_NPARAM; i++) {
        ax_tensor_free(cpu.p[i]);
        ax_tensor_free(dev.p[i]);
    }
    ax_tensor *all[] = {x, target, xd, td};
    for (int i = 0; i < 4; i++) ax_tensor_free(all[i]);
    assert_int_equal(k_live_bytes, 0);
}

static void test_optim_sgd(void **state) {
    (void)state;
    run_optim_parity(false);
}

static void test_optim_adamw(void **state) {
    (void)state;
    run_optim_parity(true);
}

/* A non-finite norm on the device leaves the grads alone, like the CPU. */
static void test_clip_nonfinite(void **state) {
    (void)state;
    int64_t n = 5;
    ax_tensor *c, *p, *g0;
    OK(ax_tensor_randn(&c, 1, &n, AX_DTYPE_F32, 9, 0));
    p = on_dev(c);
    ax_tensor_set(c, 2, NAN);
    g0 = on_dev(c);
    p->grad = ax_tensor_retain(g0);
    double norm = 0;
    OK(ax_clip_grad_norm(&norm, 1, &p, 1.0, 2.0));
    assert_true(isnan(norm));
    OK(ax_clip_grad_norm(&norm, 1, &p, 1.0, INFINITY));
    assert_true(isnan(norm));
    assert_true(same_bits(p->grad, c));
    ax_tensor_free(g0);
    ax_tensor_free(p);
    ax_tensor_free(c);
    assert_int_equal(k_live_bytes, 0);
}

static ax_module *small_net(void) {
    ax_rng rng;
    ax_rng_init(&rng, 7, 0);
    ax_module *conv, *norm, *act, *net;
    const int64_t k3[3] = {3, 3, 3};
    ax_conv_params cp = ax_conv_params_default();
    for (int d = 0; d < 3; d++) cp.padding[d] = 1;
    OK(ax_nn_conv3d_new(&conv, 1, 4, k3, &cp, true, &rng));
    OK(ax_nn_instance_norm3d_new(&norm, 4, 1e-5, 0.1, true, false));
    OK(ax_nn_leaky_relu_new(&act, 0.01));
    OK(ax_nn_sequential_new(&net, 3, (ax_module *[]){conv, norm, act}));
    return net;
}

/* module.to(device): same tensor objects, now on the device, names and
 * requires_grad kept; an optimizer made before the move steps the moved
 * parameters; forward, backward and steps give the CPU module's bits. */
static void test_module_to_device(void **state) {
    (void)state;
    ax_module *mc = small_net(), *md = small_net();
    ax_named_tensors before = {0}, after = {0}, pc = {0};
    OK(ax_module_parameters(md, &before));
    OK(ax_module_parameters(mc, &pc));
    ax_optim *od, *oc;
    OK(ax_sgd_new(&od, before.n, before.tensors, (const char *const *)before.names, 1e-2, 0.99, 0, 3e-5, true));
    OK(ax_sgd_new(&oc, pc.n, pc.tensors, (const char *const *)pc.names, 1e-2, 0.99, 0, 3e-5, true));
    assert_int_equal(ax_module_device(md).type, AX_DEVICE_CPU);
    OK(ax_module_to_device(md, k_dev));
    assert_int_equal(ax_module_device(md).type, AX_DEVICE_CUDA);
    OK(ax_module_parameters(md, &after));
    assert_int_equal(after.n, before.n);
    for (size_t i = 0; i < after.n; i++) {
        assert_ptr_equal(after.tensors[i], before.tensors[i]);
        assert_string_equal(after.names[i], before.names[i]);
        assert_true(after.tensors[i]->requires_grad);
        assert_int_equal(after.tensors[i]->storage->device.type, AX_DEVICE_CUDA);
        assert_true(same_bits(after.tensors[i], pc.tensors[i]));
    }
    int64_t xs[5] = {2, 1, 6, 6, 6};
    ax_tensor *x, *xd;
    OK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 21, 0));
    xd = on_dev(x);
    for (int s = 0; s < 3; s++) {
        ax_tensor *yc, *yd, *lc, *ld;
        OK(ax_module_forward(mc, &yc, x));
        OK(ax_module_forward(md, &yd, xd));
        assert_int_equal(yd->storage->device.type, AX_DEVICE_CUDA);
        OK(ax_sum(&lc, yc, 0, NULL, false));
        OK(ax_sum(&ld, yd, 0, NULL, false));
        assert_true(same_bits(yd, yc));
        OK(ax_backward(lc, NULL));
        OK(ax_backward(ld, NULL));
        OK(ax_optim_step(oc));
        OK(ax_optim_step(od));
        ax_optim_zero_grad(oc);
        ax_optim_zero_grad(od);
        ax_tensor *all[] = {yc, yd, lc, ld};
        for (int i = 0; i < 4; i++) ax_tensor_free(all[i]);
    }
    for (size_t i = 0; i < after.n; i++) assert_true(same_bits(after.tensors[i], pc.tensors[i]));
    /* a grad moves with its parameter; and back to the CPU */
    OK(ax_tensor_zeros(&after.tensors[0]->grad, after.tensors[0]->ndim, after.tensors[0]->shape, AX_DTYPE_F32));
    ax_tensor *g = on_dev(after.tensors[0]->grad);
    ax_tensor_free(after.tensors[0]->grad);
    after.tensors[0]->grad = g;
    OK(ax_module_to_device(md, AX_CPU));
    assert_int_equal(after.tensors[0]->grad->storage->device.type, AX_DEVICE_CPU);
    for (size_t i = 0; i < after.n; i++) {
        assert_int_equal(after.tensors[i]->storage->device.type, AX_DEVICE_CPU);
        assert_memory_equal(ax_tensor_data(after.tensors[i]), ax_tensor_data(pc.tensors[i]),
                            ax_tensor_nbytes(pc.tensors[i]));
    }
    /* a device nobody serves: an error naming the parameter */
    assert_int_not_equal(ax_module_to_device(md, (ax_device){AX_DEVICE_CUDA, 5}), AX_OK);
    assert_non_null(strstr(ax_error_message(), "0.weight"));
    ax_optim_free(od);
    ax_optim_free(oc);
    ax_named_tensors_clear(&before);
    ax_named_tensors_clear(&after);
    ax_named_tensors_clear(&pc);
    ax_module_free(mc);
    ax_module_free(md);
    ax_tensor_free(x);
    ax_tensor_free(xd);
    assert_int_equal(k_live_bytes, 0);
}

/* ---- mixed precision ------------------------------------------------------------------- */

static void test_autocast_region(void **state) {
    (void)state;
    assert_int_equal(ax_autocast_dtype(), AX_DTYPE_F32);
    OK(ax_autocast_begin(AX_DTYPE_BF16));
    assert_int_equal(ax_autocast_dtype(), AX_DTYPE_BF16);
    OK(ax_autocast_begin(AX_DTYPE_F32)); /* a disabled region inside */
    assert_int_equal(ax_autocast_dtype(), AX_DTYPE_F32);
    ax_autocast_end();
    assert_int_equal(ax_autocast_dtype(), AX_DTYPE_BF16);
    ax_autocast_end();
    assert_int_equal(ax_autocast_dtype(), AX_DTYPE_F32);
    assert_int_equal(ax_autocast_begin(AX_DTYPE_I64), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "i64"));
}

/* loss = mean(net(x) * r) with r a fixed random tensor on x's device (a
 * plain mean would cancel through the instance norm), in an optional region. */
static ax_tensor *amp_loss(ax_module *net, const ax_tensor *x, ax_dtype region, ax_tensor **y_out) {
    int64_t rs[5] = {2, 4, 6, 6, 6};
    ax_tensor *r0, *r, *yr;
    OK(ax_tensor_randn(&r0, 5, rs, AX_DTYPE_F32, 33, 0));
    OK(ax_tensor_to_device(&r, r0, x->storage->device));
    if (region != AX_DTYPE_F32) OK(ax_autocast_begin(region));
    ax_tensor *y, *loss;
    OK(ax_module_forward(net, &y, x));
    OK(ax_mul(&yr, y, r));
    OK(ax_mean(&loss, yr, 0, NULL, false));
    ax_tensor_free(r0);
    ax_tensor_free(r);
    ax_tensor_free(yr);
    if (region != AX_DTYPE_F32) ax_autocast_end();
    *y_out = y;
    return loss;
}

/* On the CPU, which has no bf16 convolutions, a region changes nothing. */
static void test_autocast_cpu_noop(void **state) {
    (void)state;
    ax_module *a = small_net(), *b = small_net();
    int64_t xs[5] = {2, 1, 6, 6, 6};
    ax_tensor *x, *ya, *yb;
    OK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 31, 0));
    ax_tensor *la = amp_loss(a, x, AX_DTYPE_F32, &ya), *lb = amp_loss(b, x, AX_DTYPE_BF16, &yb);
    assert_int_equal(yb->dtype, AX_DTYPE_F32);
    assert_true(same_bits(yb, ya));
    OK(ax_backward(la, NULL));
    OK(ax_backward(lb, NULL));
    ax_named_tensors pa = {0}, pb = {0};
    OK(ax_module_parameters(a, &pa));
    OK(ax_module_parameters(b, &pb));
    for (size_t i = 0; i < pa.n; i++) assert_true(same_bits(pb.tensors[i]->grad, pa.tensors[i]->grad));
    ax_named_tensors_clear(&pa);
    ax_named_tensors_clear(&pb);
    ax_tensor *all[] = {x, ya, yb, la, lb};
    for (int i = 0; i < 5; i++) ax_tensor_free(all[i]);
    ax_module_free(a);
    ax_module_free(b);
}

/* Largest |a - b| relative to max |b| (both CPU-readable after a move). */
static double rel_err(const ax_tensor *a, const ax_tensor *b) {
    ax_tensor *ha, *hb;
    OK(ax_tensor_to_device(&ha, a, AX_CPU));
    OK(ax_tensor_to_device(&hb, b, AX_CPU));
    double num = 0, den = 0;
    for (int64_t i = 0; i < ax_tensor_numel(hb); i++) {
        double d = fabs(ax_tensor_get(ha, i) - ax_tensor_get(hb, i)), m = fabs(ax_tensor_get(hb, i));
        num = d > num ? d : num;
        den = m > den ? m : den;
    }
    ax_tensor_free(ha);
    ax_tensor_free(hb);
    return den > 0 ? num / den : num;
}

/* On a backend with bf16 convolutions: conv outputs are bf16, instance
 * norm and the mean return f32, the f32 master weights get f32 grads on
 * the device through the casts, close to the f32 run's; a conv alone
 * gives exactly conv(bf16(x), bf16(w)) rounded to bf16. */
static void test_autocast_device(void **state) {
    (void)state;
    ax_module *ref = small_net(), *net = small_net();
    OK(ax_module_to_device(net, k_dev));
    int64_t xs[5] = {2, 1, 6, 6, 6};
    ax_tensor *x, *xd, *yr, *yd;
    OK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 32, 0));
    xd = on_dev(x);
    ax_tensor *lr = amp_loss(ref, x, AX_DTYPE_F32, &yr), *ld = amp_loss(net, xd, AX_DTYPE_BF16, &yd);
    assert_int_equal(yd->dtype, AX_DTYPE_F32); /* leaky_relu of the f32 norm output */
    assert_int_equal(ld->dtype, AX_DTYPE_F32);
    assert_true(rel_err(yd, yr) < 3e-2);
    assert_false(same_bits(yd, yr)); /* bf16 rounding did happen */
    OK(ax_backward(lr, NULL));
    OK(ax_backward(ld, NULL));
    ax_named_tensors pr = {0}, pd = {0};
    OK(ax_module_parameters(ref, &pr));
    OK(ax_module_parameters(net, &pd));
    for (size_t i = 0; i < pd.n; i++) {
        const ax_tensor *g = pd.tensors[i]->grad;
        assert_non_null(g);
        assert_int_equal(g->dtype, AX_DTYPE_F32);
        assert_int_equal(pd.tensors[i]->dtype, AX_DTYPE_F32);
        assert_int_equal(g->storage->device.type, AX_DEVICE_CUDA);
        /* the conv bias feeds an instance norm: its exact grad is 0, both
         * runs give rounding noise only */
        if (strcmp(pd.names[i], "0.bias") != 0) assert_true(rel_err(g, pr.tensors[i]->grad) < 0.1);
    }
    /* one conv: bf16 out, equal to the f32 conv of the rounded operands, rounded */
    ax_tensor *w = ax_module_get_parameter(net, "0.weight"), *b = ax_module_get_parameter(net, "0.bias");
    ax_conv_params cp = ax_conv_params_default();
    for (int d = 0; d < 3; d++) cp.padding[d] = 1;
    ax_tensor *yc, *xb, *wb, *bb, *want0, *want;
    OK(ax_autocast_begin(AX_DTYPE_BF16));
    OK(ax_conv3d(&yc, xd, w, b, &cp));
    ax_autocast_end();
    assert_int_equal(yc->dtype, AX_DTYPE_BF16);
    ax_no_grad_begin();
    OK(ax_tensor_to_dtype(&xb, xd, AX_DTYPE_BF16));
    OK(ax_tensor_to_dtype(&wb, w, AX_DTYPE_BF16));
    OK(ax_tensor_to_dtype(&bb, b, AX_DTYPE_BF16));
    OK(ax_conv3d(&want0, xb, wb, bb, &cp));
    ax_no_grad_end();
    assert_int_equal(want0->dtype, AX_DTYPE_BF16);
    OK(ax_tensor_to_device(&want, want0, AX_CPU));
    assert_true(same_bits(yc, want));
    ax_named_tensors_clear(&pr);
    ax_named_tensors_clear(&pd);
    ax_tensor *all[] = {x, xd, yr, yd, lr, ld, yc, xb, wb, bb, want0, want};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    ax_module_free(ref);
    ax_module_free(net);
    assert_int_equal(k_live_bytes, 0);
}

/* test_cuda_train's net (transposed conv, a bf16 + f32 skip sum) under
 * autocast: the graph runs, every f32 master weight gets an f32 grad. */
static void test_autocast_train_net(void **state) {
    (void)state;
    tn_net cpu, dev;
    tn_init(&cpu, &dev, k_dev);
    int64_t xs[5] = {2, 1, 8, 8, 8};
    ax_tensor *x, *target, *xd, *td;
    OK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 5, 0));
    OK(ax_tensor_randn(&target, 5, xs, AX_DTYPE_F32, 5, 1));
    xd = on_dev(x);
    td = on_dev(target);
    ax_tensor *l1 = tn_forward(&cpu, x, target);
    OK(ax_autocast_begin(AX_DTYPE_BF16));
    ax_tensor *l2 = tn_forward(&dev, xd, td);
    ax_autocast_end();
    assert_int_equal(l2->dtype, AX_DTYPE_F32);
    assert_true(rel_err(l2, l1) < 2e-2 && !same_bits(l2, l1));
    OK(ax_backward(l1, NULL));
    OK(ax_backward(l2, NULL));
    for (int i = 0; i < TN_NPARAM; i++) {
        const ax_tensor *g = dev.p[i]->grad;
        assert_true(g && g->dtype == AX_DTYPE_F32 && g->storage->device.type == AX_DEVICE_CUDA);
        if (i != 1 && i != 5) assert_true(rel_err(g, cpu.p[i]->grad) < 0.1); /* not the biases before norms */
    }
    for (int i = 0; i < TN_NPARAM; i++) {
        ax_tensor_free(cpu.p[i]);
        ax_tensor_free(dev.p[i]);
    }
    ax_tensor *all[] = {x, target, xd, td, l1, l2};
    for (int i = 0; i < 6; i++) ax_tensor_free(all[i]);
    assert_int_equal(k_live_bytes, 0);
}

/* torch.cuda.amp.GradScaler's rules, with grads on the device. */
static void test_grad_scaler(void **state) {
    (void)state;
    ax_grad_scaler *gs;
    assert_int_equal(ax_grad_scaler_new(&gs, 0, 2, 0.5, 3), AX_ERR_INVALID);
    OK(ax_grad_scaler_new(&gs, 1024.0, 2.0, 0.5, 3));
    int64_t n = 4;
    ax_tensor *c, *p;
    OK(ax_tensor_randn(&c, 1, &n, AX_DTYPE_F32, 40, 0));
    p = on_dev(c);
    OK(ax_tensor_set_requires_grad(p, true));
    ax_tensor *sq, *loss, *scaled;
    OK(ax_mul(&sq, p, p));
    OK(ax_sum(&loss, sq, 0, NULL, false));
    OK(ax_grad_scaler_scale(gs, loss, &scaled));
    OK(ax_backward(scaled, NULL));
    bool inf = true;
    OK(ax_grad_scaler_unscale(gs, 1, &p, &inf));
    assert_false(inf);
    ax_tensor *g;
    OK(ax_tensor_to_device(&g, p->grad, AX_CPU));
    for (int64_t i = 0; i < n; i++) /* 2p exactly: powers of two scale without rounding */
        assert_true(ax_tensor_get(g, i) == 2 * ax_tensor_get(c, i));
    ax_tensor_free(g);
    for (int k = 0; k < 3; k++) ax_grad_scaler_update(gs); /* 3 clean steps: grow */
    assert_true(ax_grad_scaler_get_scale(gs) == 2048.0);
    ax_tensor_set(c, 1, INFINITY); /* an overflowed grad: skip and back off */
    ax_tensor_free(p->grad);
    p->grad = on_dev(c);
    OK(ax_grad_scaler_unscale(gs, 1, &p, &inf));
    assert_true(inf);
    ax_grad_scaler_update(gs);
    assert_true(ax_grad_scaler_get_scale(gs) == 1024.0);
    ax_grad_scaler_free(gs);
    ax_tensor *all[] = {c, p, sq, loss, scaled};
    for (int i = 0; i < 5; i++) ax_tensor_free(all[i]);
    assert_int_equal(k_live_bytes, 0);
}

/* ---- the training loop (host/train_core.c) on the device ------------------------------ */

typedef struct run_ctx {
    ax_module *net;
    int64_t fail_at;
} run_ctx;

/* mse(net(x + noise), x) with the batch made on the CPU, as a loader's is. */
static ax_status run_loss(ax_module *net, uint64_t stream, ax_tensor **loss) {
    const int64_t shape[5] = {2, 1, 6, 6, 6};
    ax_tensor *x = NULL, *noise = NULL, *noisy = NULL, *xd = NULL, *nd = NULL, *y = NULL;
    ax_status st = ax_tensor_randn(&x, 5, shape, AX_DTYPE_F32, 77, stream);
    if (st == AX_OK) st = ax_tensor_randn(&noise, 5, shape, AX_DTYPE_F32, 78, stream);
    if (st == AX_OK) st = ax_add(&noisy, x, noise);
    if (st == AX_OK) st = ax_train_to_net_device(net, x, &xd);
    if (st == AX_OK) st = ax_train_to_net_device(net, noisy, &nd);
    if (st == AX_OK) st = ax_module_forward(net, &y, nd);
    if (st == AX_OK) st = ax_mse_loss(loss, y, xd, NULL, AX_LOSS_MEAN);
    ax_tensor *all[] = {x, noise, noisy, xd, nd, y};
    for (int i = 0; i < 6; i++) ax_tensor_free(all[i]);
    return st;
}

static ax_status run_train_hook(void *ctx, int64_t step, ax_tensor **loss) {
    run_ctx *c = ctx;
    if (step == c->fail_at) return AX_ERROR(AX_ERR_IO, "simulated crash at step %lld", (long long)step);
    /* the net is on the run's device inside the loop */
    if (ax_module_device(c->net).type != AX_DEVICE_CUDA && c->fail_at != -2)
        return AX_ERROR(AX_ERR_INTERNAL, "the net is not on the device during the run");
    return run_loss(c->net, (uint64_t)step, loss);
}

static ax_status run_val_hook(void *ctx, double *out) {
    run_ctx *c = ctx;
    ax_tensor *l = NULL;
    ax_status st = run_loss(c->net, 1000, &l);
    if (st == AX_OK) st = ax_train_scalar(l, out);
    ax_tensor_free(l);
    return st;
}

static const char *k_run_amp; /* the runs' amp option */

static ax_status run_one(ax_module *net, const char *dir, const char *device, bool adamw, int64_t fail_at,
                         bool resume, ax_train_result *r) {
    ax_train_opts o = ax_train_opts_default();
    o.amp = k_run_amp;
    o.out = dir;
    o.steps = 8;
    o.save_every = 3;
    o.val_every = 4;
    o.progress = 0;
    o.clip = 0.5; /* clipping is active */
    o.optim.lr = 0.05;
    o.seed = 5;
    o.resume = resume;
    o.device = device;
    if (adamw) o.optim.kind = AX_OPTIM_ADAMW, o.optim.lr = 1e-2;
    run_ctx c = {.net = net, .fail_at = fail_at};
    ax_train_hooks h = {.ctx = &c, .train_loss = run_train_hook, .val_loss = run_val_hook};
    return ax_train_run(net, &o, &h, r);
}

static void assert_same_module(ax_module *a, ax_module *b) {
    ax_named_tensors pa = {0}, pb = {0};
    OK(ax_module_state_dict(a, &pa));
    OK(ax_module_state_dict(b, &pb));
    assert_int_equal(pa.n, pb.n);
    for (size_t i = 0; i < pa.n; i++) {
        assert_int_equal(pa.tensors[i]->storage->device.type, AX_DEVICE_CPU); /* back home after the run */
        assert_true(same_bits(pb.tensors[i], pa.tensors[i]));
    }
    ax_named_tensors_clear(&pa);
    ax_named_tensors_clear(&pb);
}

/* ax_train_run with device "cuda:0": the same losses, norms and weights as
 * on the CPU, checkpoints written from the device, and a crashed device run
 * resumed on the device (model and optimizer state loaded onto it) ends
 * bit-identical to the uninterrupted CPU run. */
static void run_parity(bool adamw) {
    char tmpl[] = "/tmp/axon-devtrain-XXXXXX";
    char *root = mkdtemp(tmpl);
    assert_non_null(root);
    char dc[400], dd[400], dr[400];
    snprintf(dc, sizeof dc, "%s/cpu", root);
    snprintf(dd, sizeof dd, "%s/dev", root);
    snprintf(dr, sizeof dr, "%s/resumed", root);
    ax_module *nc = small_net(), *nd = small_net(), *nr = small_net();
    ax_train_result rc, rd, rr;
    if (run_one(nc, dc, "cpu", adamw, -2, false, &rc) != AX_OK) fail_msg("%s", ax_error_message());
    if (run_one(nd, dd, "cuda:0", adamw, -1, false, &rd) != AX_OK) fail_msg("%s", ax_error_message());
    assert_int_equal(rd.step, 8);
    assert_true(rc.loss == rd.loss && rc.grad_norm == rd.grad_norm && rc.val_loss == rd.val_loss);
    assert_true(rc.first_val_loss == rd.first_val_loss && rd.val_loss < rd.first_val_loss);
    assert_same_module(nd, nc);
    /* crash after the step-6 checkpoint, then resume on the device */
    assert_int_equal(run_one(nr, dr, "cuda:0", adamw, 7, false, &rr), AX_ERR_IO);
    assert_int_equal(ax_module_device(nr).type, AX_DEVICE_CPU); /* moved back on error too */
    ax_module_free(nr);
    nr = small_net();
    if (run_one(nr, dr, "cuda:0", adamw, -1, true, &rr) != AX_OK) fail_msg("%s", ax_error_message());
    assert_int_equal(rr.start_step, 6);
    assert_true(rr.loss == rc.loss && rr.grad_norm == rc.grad_norm);
    assert_same_module(nr, nc);
    /* a bad device string names itself */
    ax_train_result rb;
    char db[400];
    snprintf(db, sizeof db, "%s/bad", root);
    assert_int_equal(run_one(nc, db, "gpu:0", adamw, -1, false, &rb), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "gpu:0"));
    ax_module_free(nc);
    ax_module_free(nd);
    ax_module_free(nr);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(k_live_bytes, 0);
}

static void test_train_run_sgd(void **state) {
    (void)state;
    run_parity(false);
}

static void test_train_run_adamw(void **state) {
    (void)state;
    run_parity(true);
}

/* amp = "bf16" on the device: the loss curve follows the f32 CPU run's
 * within bf16 precision; the weights stay f32; unknown amp names fail. */
static void test_train_run_amp(void **state) {
    (void)state;
    char tmpl[] = "/tmp/axon-devamp-XXXXXX";
    char *root = mkdtemp(tmpl);
    assert_non_null(root);
    char dc[400], dd[400], db[400];
    snprintf(dc, sizeof dc, "%s/cpu", root);
    snprintf(dd, sizeof dd, "%s/amp", root);
    snprintf(db, sizeof db, "%s/bad", root);
    ax_module *nc = small_net(), *nd = small_net();
    ax_train_result rc, rd;
    if (run_one(nc, dc, "cpu", false, -2, false, &rc) != AX_OK) fail_msg("%s", ax_error_message());
    k_run_amp = "bf16";
    if (run_one(nd, dd, "cuda:0", false, -1, false, &rd) != AX_OK) fail_msg("%s", ax_error_message());
    assert_true(rd.loss != rc.loss && fabs(rd.loss - rc.loss) < 0.05 * rc.loss);
    assert_true(fabs(rd.val_loss - rc.val_loss) < 0.05 * rc.val_loss && rd.val_loss < rd.first_val_loss);
    ax_named_tensors p = {0};
    OK(ax_module_parameters(nd, &p));
    for (size_t i = 0; i < p.n; i++) assert_int_equal(p.tensors[i]->dtype, AX_DTYPE_F32);
    ax_named_tensors_clear(&p);
    k_run_amp = "fp8";
    assert_int_equal(run_one(nd, db, "cuda:0", false, -1, false, &rd), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "fp8"));
    k_run_amp = NULL;
    ax_module_free(nc);
    ax_module_free(nd);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(k_live_bytes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_grad_across_move),
        cmocka_unit_test(test_device_constants),
        cmocka_unit_test(test_train_parity),
        cmocka_unit_test(test_optim_sgd),
        cmocka_unit_test(test_optim_adamw),
        cmocka_unit_test(test_clip_nonfinite),
        cmocka_unit_test(test_module_to_device),
        cmocka_unit_test(test_autocast_region),
        cmocka_unit_test(test_autocast_cpu_noop),
        cmocka_unit_test(test_autocast_device),
        cmocka_unit_test(test_autocast_train_net),
        cmocka_unit_test(test_grad_scaler),
        cmocka_unit_test(test_train_run_sgd),
        cmocka_unit_test(test_train_run_adamw),
        cmocka_unit_test(test_train_run_amp),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
