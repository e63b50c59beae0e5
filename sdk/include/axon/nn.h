/* axon/nn.h — modules: trees of layers with PyTorch's parameter names,
 * PyTorch's default initialisation, train/eval mode, and state dicts that
 * load from and save to safetensors files PyTorch reads and writes.
 *
 * A module (ax_module) has a type name ("Conv3d"), a forward function, and
 * three ordered lists of named members:
 *   parameters  float leaf tensors that require grad (what optimizers train)
 *   buffers     tensors saved with the model but not trained (BatchNorm's
 *               running_mean, running_var, num_batches_tracked)
 *   children    sub-modules
 * The dotted names ("encoder.stages.0.blocks.0.conv1.conv.weight") and their
 * order are torch.nn.Module's: a module's own parameters in registration
 * order, then each child's, depth first. So a state dict exported from a
 * PyTorch model built with the same structure loads unchanged:
 *
 *     # Python
 *     from safetensors.torch import save_file
 *     save_file({k: v.contiguous() for k, v in model.state_dict().items()}, "m.safetensors")
 *
 *     // C: a tiny network, then PyTorch's weights into it
 *     ax_rng init;
 *     ax_rng_init(&init, 1234, 0);             // reproducible default init
 *     ax_module *net, *conv, *norm, *act;
 *     int64_t k3[3] = {3, 3, 3};
 *     ax_conv_params p = ax_conv_params_default();
 *     p.padding[0] = p.padding[1] = p.padding[2] = 1;
 *     ax_nn_conv3d_new(&conv, 1, 32, k3, &p, true, &init);
 *     ax_nn_instance_norm3d_new(&norm, 32, 1e-5, 0.1, true, false);
 *     ax_nn_leaky_relu_new(&act, 0.01);
 *     ax_nn_sequential_new(&net, 3, (ax_module *[]){conv, norm, act});   // "0", "1", "2"
 *     ax_load_report rep = {0};
 *     if (ax_module_load_safetensors(net, "m.safetensors", true, &rep) != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *         // e.g. "ax_module_load_safetensors: m.safetensors: 0.weight: file has
 *         //       [32, 2, 3, 3, 3], model has [32, 1, 3, 3, 3]"
 *     ax_load_report_clear(&rep);
 *     ax_module_eval(net);
 *     ax_tensor *y;
 *     ax_module_forward(net, &y, x);           // x: [N, 1, D, H, W]
 *     ax_module_save_safetensors(net, "ours.safetensors", 0, NULL, NULL);
 *     ax_module_free(net);                     // frees the whole tree
 *
 * Plugins build their own layers as custom modules: an ax_module_class with
 * a forward callback, private state, and children/parameters registered
 * with ax_module_add_*; a network is a tree of those (see ax_module_new).
 *
 * Ownership: modules are reference counted. Every `ax_module **out` receives
 * a new reference, released with ax_module_free() (NULL-safe), which frees
 * the module with its members when the last reference goes. The
 * ax_module_add_* functions and the Sequential constructor STEAL the
 * reference passed to them (module or tensor) — also when they fail — so a
 * tree is built without bookkeeping. To put one module under two names
 * (dynamic_network_architectures' ConvDropoutNormReLU registers its conv
 * both as "conv" and as "all_modules.0"), pass ax_module_retain(child) the
 * second time. Borrowed lookups (ax_module_find, ax_module_get_parameter,
 * ...) stay valid while the module lives.
 *
 * Shared members are handled like PyTorch: parameters and buffers appear
 * once (under their first name) in ax_module_parameters / ax_module_buffers,
 * but under every name in the state dict; loading accepts a file that has
 * any one of a tensor's names (safetensors.torch.save_model keeps only one).
 *
 * Random numbers: initialisers and stochastic modules use the counter RNG
 * (axon/rng.h), so results never depend on the thread count. Constructors
 * take an ax_rng position that they advance; building the same tree from
 * the same (seed, stream) gives the same weights.
 *
 * Threads: a module tree is not thread-safe; one forward at a time (forward
 * updates BatchNorm's running stats and the dropout stream counters).
 * Errors follow axon/status.h and name the function, the key and shapes.
 */
#ifndef AXON_NN_H
#define AXON_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "axon/kernels.h"
#include "axon/rng.h"
#include "axon/status.h"
#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_module ax_module;

/* ==== modules ============================================================== */

/* out: new reference (the caller owns it); x: borrowed. The module is
 * passed non-const because forward may update buffers (BatchNorm) and RNG
 * counters (Dropout). */
typedef ax_status (*ax_module_forward_fn)(ax_module *self, ax_tensor **out, const ax_tensor *x);

/* What a custom module does. Copied by ax_module_new (the name too); the
 * function pointers must stay valid while the module lives. */
typedef struct ax_module_class {
    const char *name;             /* type name, e.g. "BasicBlockD"; non-empty */
    ax_module_forward_fn forward; /* [optional] NULL: a container that cannot be called */
    void (*free_state)(void *state); /* [optional] releases the private state */
    /* [optional] one-line description of the hyper-parameters for
     * ax_module_print (PyTorch's extra_repr), e.g. "4, 8, kernel_size=(3, 3, 3)";
     * writes at most `size` bytes including the NUL, like snprintf. */
    void (*extra_repr)(const ax_module *self, char *buf, size_t size);
} ax_module_class;

/* A module of class `cls` with private `state` (taken over: on failure too,
 * cls->free_state(state) is called when the module goes). Training mode,
 * no members yet: register them with ax_module_add_*.
 *
 *     typedef struct { double scale; } block_state;
 *     static ax_status block_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
 *         ax_tensor *h = NULL;
 *         block_state *s = ax_module_state(self);
 *         ax_status st = ax_module_forward(ax_module_find(self, "conv"), &h, x);
 *         if (st == AX_OK) st = ax_mul_scalar(out, h, s->scale);
 *         ax_tensor_free(h);
 *         return st;
 *     }
 *     static const ax_module_class block_class = {"Block", block_forward, free, NULL};
 *     block_state *s = malloc(sizeof *s);   // NULL-checked in real code
 *     s->scale = 0.5;
 *     ax_module_new(&m, &block_class, s);
 *     ax_module_add_child(m, "conv", conv);  // state-dict keys "conv.weight", ...
 */
ax_status ax_module_new(ax_module **out, const ax_module_class *cls, void *state);

ax_module *ax_module_retain(ax_module *m); /* returns m */
void ax_module_free(ax_module *m);         /* NULL-safe; drops one reference */

/* Type name ("Conv3d", or the custom class's); borrowed. */
const char *ax_module_type(const ax_module *m);
/* The private state given to ax_module_new (built-ins: internal). */
void *ax_module_state(const ax_module *m);

/* y = m(x). Fails with AX_ERR_STATE for a module without forward. Errors of
 * Sequential's children are prefixed with the child's index and type, e.g.
 * "Sequential[1] (Conv3d): ax_conv3d: x [2, 3, 8, 8, 8] has 3 channels ...".
 * y: new reference, NULL on failure; x: borrowed. */
ax_status ax_module_forward(ax_module *m, ax_tensor **y, const ax_tensor *x);

/* ---- registration ----------------------------------------------------------
 * Names: non-empty, without '.', unique among m's parameters, buffers and
 * children (torch's register_* rules). Each call steals its last argument,
 * also on failure. */

/* Registers t (a floating-point leaf tensor) as a parameter and sets its
 * requires_grad (freeze it afterwards with ax_tensor_set_requires_grad). */
ax_status ax_module_add_parameter(ax_module *m, const char *name, ax_tensor *t);
/* Registers a buffer of any dtype. persistent: part of the state dict
 * (torch's register_buffer(persistent=True)); a non-persistent buffer (RoPE
 * tables, say) is neither saved nor expected on load. */
ax_status ax_module_add_buffer(ax_module *m, const char *name, ax_tensor *t, bool persistent);
/* Appends a child. Fails when m is child itself or inside child's tree (a
 * cycle). */
ax_status ax_module_add_child(ax_module *m, const char *name, ax_module *child);

/* ---- lookup (borrowed results, NULL when absent) ---------------------------- */

/* Descendant at a dotted path ("encoder.stages.0"); "" is m itself. */
ax_module *ax_module_find(const ax_module *m, const char *path);
/* Parameter or buffer at a dotted path ("encoder.stem.convs.0.conv.weight"). */
ax_tensor *ax_module_get_parameter(const ax_module *m, const char *path);
ax_tensor *ax_module_get_buffer(const ax_module *m, const char *path);
/* m's own children in order: count, then child i and its name. */
size_t ax_module_child_count(const ax_module *m);
ax_module *ax_module_child(const ax_module *m, size_t i, const char **name);

/* ---- collections ------------------------------------------------------------ */

/* Parallel arrays of n dotted names (owned copies) and tensors (new
 * references); shaped for ax_safetensors_save and ax_sgd_new/ax_adamw_new:
 *     ax_sgd_new(&opt, l.n, l.tensors, (const char *const *)l.names, ...) */
typedef struct ax_named_tensors {
    size_t n;
    char **names;
    ax_tensor **tensors;
} ax_named_tensors;

/* Frees the names, releases the tensors, and zeroes *l (NULL-safe). */
void ax_named_tensors_clear(ax_named_tensors *l);

/* torch's named_parameters(): own parameters, then the children's, depth
 * first; a module or tensor reached twice is listed once, under its first
 * name. *out is overwritten (clear it before reuse). */
ax_status ax_module_parameters(const ax_module *m, ax_named_tensors *out);
/* torch's named_buffers(), the same way (non-persistent buffers too). */
ax_status ax_module_buffers(const ax_module *m, ax_named_tensors *out);
/* torch's state_dict(): per module its parameters then its persistent
 * buffers, then its children; every name of a shared tensor is listed. */
ax_status ax_module_state_dict(const ax_module *m, ax_named_tensors *out);

/* Calls fn on m and every descendant, pre-order, each module once (torch's
 * named_modules(), "" for m itself), e.g. to re-initialise every Conv3d.
 * Stops at and returns the first error fn returns. */
typedef ax_status (*ax_module_visit_fn)(ax_module *mod, const char *path, void *ctx);
ax_status ax_module_apply(ax_module *m, ax_module_visit_fn fn, void *ctx);

/* ---- mode, gradients --------------------------------------------------------- */

/* Sets the training flag of m and all descendants (torch's train()/eval()).
 * New modules are in training mode. */
void ax_module_train(ax_module *m, bool training);
static inline void ax_module_eval(ax_module *m) { ax_module_train(m, false); }
bool ax_module_training(const ax_module *m);

/* Drops the grad of every parameter (set_to_none, like torch's zero_grad()). */
void ax_module_zero_grad(ax_module *m);

/* torch's module.to(device): moves every parameter and buffer of m and its
 * descendants (and any grad they hold) to `device`, in place: the tensor
 * objects stay the same (names, requires_grad, references held by others
 * all remain valid), only their storage changes, so an optimizer created
 * before or after sees the moved tensors. Other views of the old storage
 * (e.g. a tensor sliced from a parameter) keep the old data. On error
 * (no backend, out of memory; the message names the tensor) the tensors
 * moved so far stay moved and the rest stay put: move the module again,
 * e.g. back to where it was, before using it. */
ax_status ax_module_to_device(ax_module *m, ax_device device);
/* The device of m's first parameter (else first buffer; else the CPU). */
ax_device ax_module_device(const ax_module *m);

/* ---- randomness of stochastic modules -----------------------------------------
 * A stochastic module (Dropout, or a custom one) asks for a fresh
 * (seed, stream) on every draw with ax_module_next_stream. The stream is a
 * hash of (step, the module's pre-order index in the tree it was seeded
 * from, the number of draws since): reproducible, and distinct per module,
 * step and call. Call ax_module_set_rng(root, seed, step) at the start of
 * every training step; until the first call, modules use seed 0 and their
 * creation order in the process. */
void ax_module_set_rng(ax_module *root, uint64_t seed, uint64_t step);
void ax_module_next_stream(ax_module *m, uint64_t *seed, uint64_t *stream);

/* ---- state dicts in safetensors files ------------------------------------------ */

/* What a load found beside the keys it used: state-dict keys with no tensor
 * in the file, and file tensors the model has no key for (owned strings,
 * in state-dict and file order). Clear with ax_load_report_clear. */
typedef struct ax_load_report {
    size_t n_missing;
    char **missing;
    size_t n_unexpected;
    char **unexpected;
} ax_load_report;

void ax_load_report_clear(ax_load_report *r); /* NULL-safe; zeroes *r */

/* Copies the file's tensors into m's state dict (in place: parameters stay
 * the same tensor objects, so optimizers keep working).
 * Every key present in both must agree in shape, else the load fails naming
 * it: "<path>: encoder.stem.convs.0.conv.weight: file has [32, 1, 3, 3, 3],
 * model has [32, 2, 3, 3, 3]" (also when !strict, as in PyTorch). Floating
 * file tensors (F32, BF16, F16) convert to the model tensor's floating dtype
 * and integer ones to its integer dtype; float <-> integer is an error.
 * strict: any missing or unexpected key is an error listing them.
 * A missing BatchNorm num_batches_tracked is set to 0, as torch does for
 * old checkpoints. A shared tensor is satisfied by any of its names.
 * Everything is checked before anything is copied: on error m is unchanged.
 * Tensors of a module on a device are filled there (the file is read on
 * the host and copied over).
 * report: [optional] filled (also when the load fails on strictness);
 * pass a zeroed or cleared report. Do not load between a forward and its
 * backward. */
ax_status ax_module_load_safetensors(ax_module *m, const char *path, bool strict, ax_load_report *report);

/* Writes m's state dict (every key, shared tensors once per name) with
 * n_meta metadata strings (may be 0 with NULL arrays), atomically
 * (ax_safetensors_save; tensors on a device are written from CPU copies).
 * PyTorch reads it with
 *     model.load_state_dict(safetensors.torch.load_file(path), strict=True)
 * (safetensors.torch.load_model instead rejects the extra names of shared
 * tensors: it only takes save_model's de-duplicated files). */
ax_status ax_module_save_safetensors(const ax_module *m, const char *path, size_t n_meta,
                                     const char *const *meta_keys, const char *const *meta_values);

/* PyTorch-like tree print, e.g.
 *     Sequential(
 *       (0): Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))
 *       (1): InstanceNorm3d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=False)
 *     ) */
void ax_module_print(const ax_module *m, FILE *f);

/* ==== built-in modules =========================================================
 * Constructors take torch.nn's constructor arguments and name their members
 * like torch.nn; parameters are f32 and initialised like torch's
 * reset_parameters(), drawing from `rng` (advanced; never NULL for modules
 * that have random parameters). *out: new module, NULL on error. */

/* Conv3d: weight [Co, Ci/groups, kD, kH, kW], bias [Co] (if bias);
 * init kaiming_uniform_(a = sqrt(5)) (= U(-1/sqrt(fan_in), 1/sqrt(fan_in)))
 * and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = Ci/groups * kD kH kW.
 * p: [optional] stride, padding, dilation, groups (NULL: defaults; its
 * output_padding must be 0). Forward: x [N, Ci, D, H, W] -> ax_conv3d. */
ax_status ax_nn_conv3d_new(ax_module **out, int64_t in_channels, int64_t out_channels, const int64_t kernel[3],
                           const ax_conv_params *p, bool bias, ax_rng *rng);
/* ConvTranspose3d: weight [Ci, Co/groups, kD, kH, kW], bias [Co]; same init
 * with torch's fan_in of that layout (Co/groups * kD kH kW).
 * Forward -> ax_conv_transpose3d. */
ax_status ax_nn_conv_transpose3d_new(ax_module **out, int64_t in_channels, int64_t out_channels,
                                     const int64_t kernel[3], const ax_conv_params *p, bool bias, ax_rng *rng);
/* Linear: weight [out, in], bias [out]; init as Conv3d with fan_in = in.
 * Forward: x [..., in] -> [..., out]. */
ax_status ax_nn_linear_new(ax_module **out, int64_t in_features, int64_t out_features, bool bias, ax_rng *rng);

/* InstanceNorm3d: affine gives weight (ones) and bias (zeros) [C].
 * track_running_stats = true is not supported (AX_ERR_UNSUPPORTED);
 * momentum is then unused. Forward: x [N, C, D, H, W]. */
ax_status ax_nn_instance_norm3d_new(ax_module **out, int64_t num_features, double eps, double momentum,
                                    bool affine, bool track_running_stats);
/* GroupNorm: weight, bias [C] (affine). Forward: x [N, C, *]. */
ax_status ax_nn_group_norm_new(ax_module **out, int64_t num_groups, int64_t num_channels, double eps, bool affine);
/* LayerNorm over the last n dims of shape normalized_shape: weight (ones)
 * and, when bias, bias (zeros) of that shape if elementwise_affine. */
ax_status ax_nn_layer_norm_new(ax_module **out, int n, const int64_t *normalized_shape, double eps,
                               bool elementwise_affine, bool bias);
/* BatchNorm3d: weight, bias [C] (affine); buffers running_mean (zeros),
 * running_var (ones) [C] and num_batches_tracked (i64, shape []) when
 * track_running_stats. momentum NAN means torch's None (cumulative
 * average). Training: batch statistics, running stats updated and
 * num_batches_tracked incremented; eval: the running stats (batch stats
 * without tracking). Forward: x [N, C, D, H, W]. */
ax_status ax_nn_batch_norm3d_new(ax_module **out, int64_t num_features, double eps, double momentum, bool affine,
                                 bool track_running_stats);

/* Activations (no parameters; torch's inplace flag has no meaning here). */
ax_status ax_nn_relu_new(ax_module **out);
ax_status ax_nn_leaky_relu_new(ax_module **out, double negative_slope);
/* approximate_tanh: torch's GELU(approximate='tanh'); false = 'none' (erf). */
ax_status ax_nn_gelu_new(ax_module **out, bool approximate_tanh);
ax_status ax_nn_silu_new(ax_module **out);
ax_status ax_nn_sigmoid_new(ax_module **out);
ax_status ax_nn_tanh_new(ax_module **out);
/* y = x (a new reference to x itself). */
ax_status ax_nn_identity_new(ax_module **out);
/* Dropout(p), 0 <= p <= 1: ax_dropout with a fresh stream per call in
 * training (ax_module_next_stream); identity in eval mode. */
ax_status ax_nn_dropout_new(ax_module **out, double p);

/* Pooling (no parameters). stride NULL = kernel (torch's default);
 * padding NULL = 0. Forward: x [N, C, D, H, W]. */
ax_status ax_nn_max_pool3d_new(ax_module **out, const int64_t kernel[3], const int64_t stride[3],
                               const int64_t padding[3], bool ceil_mode);
ax_status ax_nn_avg_pool3d_new(ax_module **out, const int64_t kernel[3], const int64_t stride[3],
                               const int64_t padding[3], bool ceil_mode, bool count_include_pad);

/* Sequential: children named "0", "1", ... (stolen, also on failure);
 * forward chains them. n may be 0 (identity); children may be NULL only
 * when n is 0. */
ax_status ax_nn_sequential_new(ax_module **out, size_t n, ax_module *const *children);
/* Appends child (stolen) under the next index. m must be a Sequential. */
ax_status ax_nn_sequential_append(ax_module *m, ax_module *child);

/* timm's Attention (timm.layers.Attention, as in ViT blocks): children
 *   qkv (Linear(dim, 3 dim, bias=qkv_bias)), q_norm, k_norm
 *   (LayerNorm(head_dim, eps=norm_eps) with qk_norm, else Identity),
 *   attn_drop (Dropout), norm (LayerNorm(dim) with scale_norm, else
 *   Identity), proj (Linear(dim, dim, bias=proj_bias)), proj_drop (Dropout)
 * so the state-dict keys are timm's. Forward: x [B, N, dim] -> [B, N, dim]:
 * qkv split into heads, q_norm/k_norm, softmax(q k^T / sqrt(head_dim)) v
 * (ax_scaled_dot_product_attention; with attention dropout in training the
 * product is spelled out so the weights can be dropped), heads merged,
 * norm, proj, proj_drop. */
typedef struct ax_nn_attention_opts {
    int64_t num_heads; /* divides dim; default 8 */
    bool qkv_bias;     /* default false */
    bool qk_norm;      /* default false */
    bool scale_norm;   /* default false */
    bool proj_bias;    /* default true */
    double norm_eps;   /* LayerNorm eps of q_norm/k_norm/norm; default 1e-5 */
    double attn_drop;  /* default 0 */
    double proj_drop;  /* default 0 */
} ax_nn_attention_opts;

ax_nn_attention_opts ax_nn_attention_opts_default(void);
/* opts: [optional] NULL = ax_nn_attention_opts_default(). */
ax_status ax_nn_attention_new(ax_module **out, int64_t dim, const ax_nn_attention_opts *opts, ax_rng *rng);

/* ==== initialisers (torch.nn.init) ==============================================
 * Each fills t in place (any strides, any floating dtype: values are drawn
 * in double/f32 and rounded once), outside autograd. Random ones draw from
 * the counter RNG at rng's position and advance it: element i (C order)
 * uses word rng->counter + i (uniform-based) or the word pair of normal
 * number ceil(rng->counter / 2) + i, so the values depend on (seed, stream,
 * counter, shape) only, never on the thread count. Formulas are
 * torch.nn.init's; the numbers differ from torch's generator, their
 * distributions do not. A tensor with no elements is left alone. */

typedef enum ax_fan_mode { AX_FAN_IN = 0, AX_FAN_OUT = 1 } ax_fan_mode;

typedef enum ax_nonlinearity {
    AX_NL_LINEAR = 0, /* also conv1d/2d/3d, conv_transpose*: gain 1 */
    AX_NL_SIGMOID,    /* 1 */
    AX_NL_TANH,       /* 5/3 */
    AX_NL_RELU,       /* sqrt(2) */
    AX_NL_LEAKY_RELU, /* sqrt(2 / (1 + param^2)); torch's default param 0.01 */
    AX_NL_SELU        /* 3/4 */
} ax_nonlinearity;

/* torch.nn.init.calculate_gain(nonlinearity, param). */
double ax_init_calculate_gain(ax_nonlinearity nl, double param);
/* torch's _calculate_fan_in_and_fan_out: for t [O, I, *k] (ndim >= 2),
 * fan_in = I * prod(k), fan_out = O * prod(k). Either output may be NULL. */
ax_status ax_init_fans(const ax_tensor *t, int64_t *fan_in, int64_t *fan_out);

ax_status ax_init_constant_(ax_tensor *t, double value);
ax_status ax_init_zeros_(ax_tensor *t);
ax_status ax_init_ones_(ax_tensor *t);
/* U(a, b), a <= b. */
ax_status ax_init_uniform_(ax_tensor *t, double a, double b, ax_rng *rng);
/* N(mean, std^2), std >= 0. */
ax_status ax_init_normal_(ax_tensor *t, double mean, double std, ax_rng *rng);
/* N(mean, std^2) truncated to [a, b] (absolute bounds, like torch and timm),
 * by the inverse CDF of a uniform draw, as torch does. a < b. */
ax_status ax_init_trunc_normal_(ax_tensor *t, double mean, double std, double a, double b, ax_rng *rng);
/* He init: std = gain(nl, a) / sqrt(fan); uniform bound sqrt(3) std. torch's
 * defaults are a = 0, AX_FAN_IN, AX_NL_LEAKY_RELU. ndim >= 2. */
ax_status ax_init_kaiming_uniform_(ax_tensor *t, double a, ax_fan_mode mode, ax_nonlinearity nl, ax_rng *rng);
ax_status ax_init_kaiming_normal_(ax_tensor *t, double a, ax_fan_mode mode, ax_nonlinearity nl, ax_rng *rng);
/* Glorot init: std = gain sqrt(2 / (fan_in + fan_out)); uniform bound
 * sqrt(3) std. ndim >= 2. */
ax_status ax_init_xavier_uniform_(ax_tensor *t, double gain, ax_rng *rng);
ax_status ax_init_xavier_normal_(ax_tensor *t, double gain, ax_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
