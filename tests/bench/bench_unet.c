/* Benchmark: training steps of a 4-stage residual 3-D U-Net (nnU-Net ResEnc
 * style) on a [N, 1, S, S, S] f32 volume, against tests/bench/bench_unet.py
 * (the same network in plain torch.nn, same optimizer, same thread count).
 * Not built by `make check`. From the source tree root, after building
 * libaxon in ./build:
 *
 *     gcc -O2 -std=c11 -fopenmp -Isdk/include -Ibuild/sdk/include tests/bench/bench_unet.c \
 *         -o /tmp/bench_unet -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs
 *     /tmp/bench_unet [threads [N [S [steps]]]]
 *     python3 tests/bench/bench_unet.py [same arguments]
 *
 * Defaults: 2 threads, N = 2, S = 64, 10 timed steps after one warm-up step.
 * S must be divisible by 8 (three stride-2 stages).
 *
 * Network (dynamic_network_architectures' ResidualEncoderUNet with one
 * BasicBlockD per stage, conv biases on as in the ResEnc-L config):
 *   stem      conv 1->32 k3 p1, InstanceNorm3d(affine, eps 1e-5), LeakyReLU(0.01)
 *   encoder   stages of 32, 64, 128, 256 features, strides 1, 2, 2, 2; each one
 *             BasicBlockD: conv k3 stride s -> IN -> LReLU -> conv k3 -> IN,
 *             plus the skip (identity when the shape is unchanged, else
 *             AvgPool3d(s) + conv 1x1x1 + IN), then LReLU(sum)
 *   decoder   for stages 3, 2, 1: ConvTranspose3d k = s = 2 to the shallower
 *             width, cat([up, skip], dim 1), conv k3 p1 -> IN -> LReLU
 *   head      conv 1x1x1 32 -> 1
 * Loss: MSE against a fixed random target. Optimizer: SGD lr 1e-2, momentum
 * 0.99, nesterov, weight decay 3e-5 (nnU-Net's). Init: PyTorch's default
 * reset_parameters() formulas (as axon/nn.h's modules), drawn from axon's
 * counter RNG, so the numbers differ from torch's; the initial loss is
 * printed so both can be seen to be in the same range.
 *
 * A step is optimizer zero_grad + forward + loss + backward + SGD step. The
 * output gives the median and minimum per step in milliseconds of wall time,
 * and the process's peak RSS (getrusage ru_maxrss) before the first step
 * (model, optimizer, input and target built), after the warm-up step and
 * after the last step.
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <axon/axon.h>

#define UNET_STAGES 4
#define UNET_MAX_PARAMS 96
#define UNET_MAX_STEPS 1000

static const int64_t unet_features[UNET_STAGES] = {32, 64, 128, 256};
static const int64_t unet_strides[UNET_STAGES] = {1, 2, 2, 2};
static const double unet_eps = 1e-5, unet_slope = 0.01;

/* A conv's weight and bias (both trainable leaves). */
typedef struct unet_conv {
    ax_tensor *w, *b;
    int64_t k, stride, pad;
    int transposed;
} unet_conv;

/* InstanceNorm3d's affine weight and bias. */
typedef struct unet_norm {
    ax_tensor *w, *b;
} unet_norm;

/* BasicBlockD; has_skip_conv is 0 when the skip is the identity. */
typedef struct unet_block {
    unet_conv conv1, conv2, skip_conv;
    unet_norm norm1, norm2, skip_norm;
    int64_t stride;
    int has_skip_conv;
} unet_block;

typedef struct unet {
    unet_conv stem;
    unet_norm stem_norm;
    unet_block enc[UNET_STAGES];
    unet_conv up[UNET_STAGES - 1];      /* up[s]: stage s+1 -> stage s width */
    unet_conv dec_conv[UNET_STAGES - 1]; /* dec_conv[s]: 2 f[s] -> f[s] */
    unet_norm dec_norm[UNET_STAGES - 1];
    unet_conv head;
    ax_tensor *params[UNET_MAX_PARAMS]; /* borrowed views of the above */
    size_t n_params;
} unet;

static ax_status unet_leaf(unet *net, ax_tensor **t, int ndim, const int64_t *shape) {
    ax_status st = ax_tensor_zeros(t, ndim, shape, AX_DTYPE_F32);
    if (st != AX_OK) return st;
    if (net->n_params == UNET_MAX_PARAMS)
        return AX_ERROR(AX_ERR_INVALID, "bench_unet: more than %d parameters", UNET_MAX_PARAMS);
    net->params[net->n_params++] = *t;
    return ax_tensor_set_requires_grad(*t, true);
}

/* torch's Conv3d/ConvTranspose3d.reset_parameters(): kaiming_uniform_(a =
 * sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and so is the bias; torch
 * takes fan_in from weight.size(1), i.e. Co for the transposed layout. */
static ax_status unet_conv_new(unet *net, unet_conv *c, int64_t ci, int64_t co, int64_t k, int64_t stride,
                               int64_t pad, int transposed, ax_rng *rng) {
    int64_t ws[5] = {transposed ? ci : co, transposed ? co : ci, k, k, k}, bs[1] = {co};
    c->k = k, c->stride = stride, c->pad = pad, c->transposed = transposed;
    ax_status st = unet_leaf(net, &c->w, 5, ws);
    if (st == AX_OK) st = unet_leaf(net, &c->b, 1, bs);
    double bound = 1.0 / sqrt((double)(ws[1] * k * k * k));
    if (st == AX_OK) st = ax_init_uniform_(c->w, -bound, bound, rng);
    if (st == AX_OK) st = ax_init_uniform_(c->b, -bound, bound, rng);
    return st;
}

static ax_status unet_norm_new(unet *net, unet_norm *n, int64_t c) {
    int64_t s[1] = {c};
    ax_status st = unet_leaf(net, &n->w, 1, s);
    if (st == AX_OK) st = unet_leaf(net, &n->b, 1, s);
    if (st == AX_OK) st = ax_init_ones_(n->w);
    return st; /* bias stays zero */
}

static ax_status unet_build(unet *net, ax_rng *rng) {
    ax_status st = unet_conv_new(net, &net->stem, 1, unet_features[0], 3, 1, 1, 0, rng);
    if (st == AX_OK) st = unet_norm_new(net, &net->stem_norm, unet_features[0]);
    int64_t cin = unet_features[0];
    for (int s = 0; s < UNET_STAGES && st == AX_OK; s++) {
        unet_block *b = &net->enc[s];
        int64_t f = unet_features[s];
        b->stride = unet_strides[s];
        b->has_skip_conv = b->stride != 1 || cin != f;
        st = unet_conv_new(net, &b->conv1, cin, f, 3, b->stride, 1, 0, rng);
        if (st == AX_OK) st = unet_norm_new(net, &b->norm1, f);
        if (st == AX_OK) st = unet_conv_new(net, &b->conv2, f, f, 3, 1, 1, 0, rng);
        if (st == AX_OK) st = unet_norm_new(net, &b->norm2, f);
        if (st == AX_OK && b->has_skip_conv) st = unet_conv_new(net, &b->skip_conv, cin, f, 1, 1, 0, 0, rng);
        if (st == AX_OK && b->has_skip_conv) st = unet_norm_new(net, &b->skip_norm, f);
        cin = f;
    }
    for (int s = UNET_STAGES - 2; s >= 0 && st == AX_OK; s--) {
        int64_t f = unet_features[s], deeper = unet_features[s + 1], k = unet_strides[s + 1];
        st = unet_conv_new(net, &net->up[s], deeper, f, k, k, 0, 1, rng);
        if (st == AX_OK) st = unet_conv_new(net, &net->dec_conv[s], 2 * f, f, 3, 1, 1, 0, rng);
        if (st == AX_OK) st = unet_norm_new(net, &net->dec_norm[s], f);
    }
    if (st == AX_OK) st = unet_conv_new(net, &net->head, unet_features[0], 1, 1, 1, 0, 0, rng);
    return st;
}

static void unet_free(unet *net) {
    for (size_t i = 0; i < net->n_params; i++) ax_tensor_free(net->params[i]);
    net->n_params = 0;
}

static ax_status unet_conv_apply(ax_tensor **y, const unet_conv *c, const ax_tensor *x) {
    ax_conv_params p = ax_conv_params_default();
    for (int d = 0; d < 3; d++) p.stride[d] = c->stride, p.padding[d] = c->pad;
    return c->transposed ? ax_conv_transpose3d(y, x, c->w, c->b, &p) : ax_conv3d(y, x, c->w, c->b, &p);
}

/* conv -> IN -> LeakyReLU, with the fused norm + activation op. */
static ax_status unet_conv_norm_act(ax_tensor **y, const unet_conv *c, const unet_norm *n, const ax_tensor *x) {
    ax_tensor *h = NULL;
    *y = NULL;
    ax_status st = unet_conv_apply(&h, c, x);
    if (st == AX_OK) st = ax_instance_norm_leaky_relu(y, h, n->w, n->b, unet_eps, unet_slope);
    ax_tensor_free(h);
    return st;
}

/* conv -> IN, no activation. */
static ax_status unet_conv_norm(ax_tensor **y, const unet_conv *c, const unet_norm *n, const ax_tensor *x) {
    ax_tensor *h = NULL;
    *y = NULL;
    ax_status st = unet_conv_apply(&h, c, x);
    if (st == AX_OK) st = ax_instance_norm(y, h, n->w, n->b, unet_eps);
    ax_tensor_free(h);
    return st;
}

/* BasicBlockD: LReLU(IN(conv2(LReLU(IN(conv1(x))))) + skip(x)). */
static ax_status unet_block_apply(ax_tensor **y, const unet_block *b, const ax_tensor *x) {
    ax_tensor *h1 = NULL, *h2 = NULL, *pooled = NULL, *skip = NULL, *sum = NULL;
    *y = NULL;
    ax_status st = unet_conv_norm_act(&h1, &b->conv1, &b->norm1, x);
    if (st == AX_OK) st = unet_conv_norm(&h2, &b->conv2, &b->norm2, h1);
    if (st == AX_OK && b->has_skip_conv) {
        const ax_tensor *src = x;
        if (b->stride != 1) {
            int64_t k[3] = {b->stride, b->stride, b->stride};
            st = ax_avg_pool3d(&pooled, x, k, k, NULL, false, true);
            src = pooled;
        }
        if (st == AX_OK) st = unet_conv_norm(&skip, &b->skip_conv, &b->skip_norm, src);
    }
    if (st == AX_OK) st = ax_add(&sum, h2, b->has_skip_conv ? skip : x);
    if (st == AX_OK) st = ax_leaky_relu(y, sum, unet_slope);
    ax_tensor_free(h1);
    ax_tensor_free(h2);
    ax_tensor_free(pooled);
    ax_tensor_free(skip);
    ax_tensor_free(sum);
    return st;
}

/* y: [N, 1, S, S, S] from x: [N, 1, S, S, S]. */
static ax_status unet_forward(ax_tensor **y, const unet *net, const ax_tensor *x) {
    ax_tensor *skips[UNET_STAGES] = {NULL}, *h = NULL, *cur = NULL;
    *y = NULL;
    ax_status st = unet_conv_norm_act(&h, &net->stem, &net->stem_norm, x);
    for (int s = 0; s < UNET_STAGES && st == AX_OK; s++) {
        st = unet_block_apply(&skips[s], &net->enc[s], s == 0 ? h : skips[s - 1]);
    }
    ax_tensor_free(h);
    h = NULL;
    if (st == AX_OK) cur = ax_tensor_retain(skips[UNET_STAGES - 1]);
    for (int s = UNET_STAGES - 2; s >= 0 && st == AX_OK; s--) {
        ax_tensor *up = NULL, *cat = NULL, *next = NULL;
        st = unet_conv_apply(&up, &net->up[s], cur);
        if (st == AX_OK) st = ax_cat(&cat, 2, (const ax_tensor *const[]){up, skips[s]}, 1);
        if (st == AX_OK) st = unet_conv_norm_act(&next, &net->dec_conv[s], &net->dec_norm[s], cat);
        ax_tensor_free(up);
        ax_tensor_free(cat);
        ax_tensor_free(cur);
        cur = next;
    }
    if (st == AX_OK) st = unet_conv_apply(y, &net->head, cur);
    ax_tensor_free(cur);
    for (int s = 0; s < UNET_STAGES; s++) ax_tensor_free(skips[s]);
    return st;
}

/* One training step; *loss_value receives the loss before the update. */
static ax_status unet_step(const unet *net, ax_optim *opt, const ax_tensor *x, const ax_tensor *target,
                           double *loss_value) {
    ax_tensor *y = NULL, *loss = NULL;
    ax_optim_zero_grad(opt);
    ax_status st = unet_forward(&y, net, x);
    if (st == AX_OK) st = ax_mse_loss(&loss, y, target, NULL, AX_LOSS_MEAN);
    if (st == AX_OK) *loss_value = ax_tensor_get(loss, 0);
    if (st == AX_OK) st = ax_backward(loss, NULL);
    ax_tensor_free(y);
    ax_tensor_free(loss);
    if (st == AX_OK) st = ax_optim_step(opt);
    return st;
}

static int unet_fail(const char *what) {
    fprintf(stderr, "bench_unet: %s: %s\n", what, ax_error_message());
    return 1;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t n = argc > 2 ? atoll(argv[2]) : 2, s = argc > 3 ? atoll(argv[3]) : 64;
    int steps = argc > 4 ? atoi(argv[4]) : 10;
    if (threads < 1 || n < 1 || s < 8 || s % 8 != 0 || steps < 1 || steps > UNET_MAX_STEPS) {
        fprintf(stderr, "usage: %s [threads>=1 [N>=1 [S, a multiple of 8 [steps 1..%d]]]]\n", argv[0],
                UNET_MAX_STEPS);
        return 2;
    }
    ax_set_num_threads(threads);
    unet net = {0};
    ax_rng rng;
    ax_rng_init(&rng, 1234, 0);
    if (unet_build(&net, &rng) != AX_OK) return unet_fail("building the network");
    int64_t n_weights = 0;
    for (size_t i = 0; i < net.n_params; i++) n_weights += ax_tensor_numel(net.params[i]);

    ax_tensor *x = NULL, *target = NULL;
    int64_t shape[5] = {n, 1, s, s, s};
    if (ax_tensor_randn(&x, 5, shape, AX_DTYPE_F32, 1, 0) != AX_OK ||
        ax_tensor_randn(&target, 5, shape, AX_DTYPE_F32, 2, 0) != AX_OK)
        return unet_fail("making the input");
    ax_optim *opt = NULL;
    if (ax_sgd_new(&opt, net.n_params, net.params, NULL, 1e-2, 0.99, 0, 3e-5, true) != AX_OK)
        return unet_fail("making the optimizer");

    printf("axon unet 4-stage ResEnc, %lld parameters, N=%lld 1x%lld^3, %d threads\n", (long long)n_weights,
           (long long)n, (long long)s, ax_num_threads());
    long rss_before = ax_bench_peak_rss_mib();
    double *ms = calloc((size_t)steps, sizeof *ms), loss0 = NAN, loss = NAN;
    if (!ms) return 1;
    for (int it = -1; it < steps; it++) {
        double t0 = ax_bench_now_ms();
        if (unet_step(&net, opt, x, target, &loss) != AX_OK) return unet_fail("training step");
        double t1 = ax_bench_now_ms();
        if (it < 0) {
            loss0 = loss;
            printf("axon unet initial loss %.4f (warm-up step %.1f ms, peak RSS %ld MiB)\n", loss0, t1 - t0,
                   ax_bench_peak_rss_mib());
            fflush(stdout);
        } else {
            ms[it] = t1 - t0;
        }
    }
    long rss_after = ax_bench_peak_rss_mib();
    printf("axon unet final loss %.4f\n", loss);
    ax_bench_sort(ms, steps);
    printf("axon unet N=%lld 1x%lld^3, %d threads, %d steps: median %.1f ms, min %.1f ms, "
           "peak RSS %ld MiB (before training %ld MiB)\n",
           (long long)n, (long long)s, ax_num_threads(), steps, ms[steps / 2], ms[0], rss_after, rss_before);
    free(ms);
    ax_optim_free(opt);
    ax_tensor_free(x);
    ax_tensor_free(target);
    unet_free(&net);
    return 0;
}
