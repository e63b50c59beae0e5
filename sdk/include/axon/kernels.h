/* axon/kernels.h — the compute-kernel table every backend implements.
 *
 * Op front-ends (axon/ops.h) check arguments, record autograd and call
 * these kernels on the backend of the tensors' device. Kernels receive
 * already-allocated outputs with validated shapes; they handle any strides
 * (including 0 for broadcast), and return AX_ERR_UNSUPPORTED for dtypes
 * they lack so the front-end can fall back (e.g. compute bf16 in f32).
 *
 *     const ax_kernels *k = ax_kernels_for(x->storage->device);
 *     if (k->supports(AX_KOP_UNARY, x->dtype)) k->unary(AX_UNARY_EXP, y, x, NULL);
 *
 * Same names and argument order on every backend: outputs, inputs,
 * parameters. The table is append-only; `size` says which members a
 * backend has. The CPU kernels (kernels/cpu) are the reference every other
 * backend is tested against.
 */
#ifndef AXON_KERNELS_H
#define AXON_KERNELS_H

#include <stddef.h>

#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Kernel families, for supports(). Append-only. */
typedef enum ax_kop {
    AX_KOP_COPY = 1,
    AX_KOP_FILL,
    AX_KOP_UNARY,
    AX_KOP_UNARY_BACKWARD,
    AX_KOP_BINARY,
    AX_KOP_WHERE,
    AX_KOP_REDUCE,
    AX_KOP_SOFTMAX,
    AX_KOP_MATMUL,
    AX_KOP_CONV,
    AX_KOP_NORM,
    AX_KOP_POOL,
    AX_KOP_RESAMPLE,
    AX_KOP_INDEX
} ax_kop;

/* Convolution geometry for 3-D (D, H, W) kernels. */
typedef struct ax_conv_params {
    int64_t stride[3], padding[3], dilation[3];
    int64_t output_padding[3]; /* transposed convolution only */
    int64_t groups;
} ax_conv_params;

typedef enum ax_pool_mode { AX_POOL_MAX = 1, AX_POOL_AVG } ax_pool_mode;

typedef struct ax_pool_params {
    ax_pool_mode mode;
    int64_t kernel[3], stride[3], padding[3];
    bool ceil_mode;
    bool count_include_pad; /* avg only */
} ax_pool_params;

typedef enum ax_interp_mode { AX_INTERP_NEAREST = 1, AX_INTERP_TRILINEAR } ax_interp_mode;
typedef enum ax_pad_mode { AX_PAD_CONSTANT = 1, AX_PAD_REFLECT, AX_PAD_REPLICATE } ax_pad_mode;

/* y = f(x; p[0], p[1]). Append-only. */
typedef enum ax_unary_op {
    AX_UNARY_NEG = 1,
    AX_UNARY_EXP,
    AX_UNARY_LOG,
    AX_UNARY_SQRT,
    AX_UNARY_RSQRT,
    AX_UNARY_ABS,
    AX_UNARY_SIGN,
    AX_UNARY_RELU,
    AX_UNARY_LEAKY_RELU, /* p[0] = negative slope */
    AX_UNARY_GELU,       /* exact, with erf */
    AX_UNARY_GELU_TANH,  /* tanh approximation */
    AX_UNARY_SILU,
    AX_UNARY_SIGMOID,
    AX_UNARY_TANH,
    AX_UNARY_SOFTPLUS,   /* p[0] = beta, p[1] = threshold */
    AX_UNARY_CLAMP,      /* p[0] = lo, p[1] = hi (use +-inf for none) */
    AX_UNARY_POW,        /* x ^ p[0] */
    AX_UNARY_AFFINE,     /* p[0] * x + p[1] */
    AX_UNARY_RECIPROCAL
} ax_unary_op;

/* out = a op b with broadcasting. Comparisons write u8 0/1. Append-only. */
typedef enum ax_binary_op {
    AX_BINARY_ADD = 1,
    AX_BINARY_SUB,
    AX_BINARY_MUL,
    AX_BINARY_DIV,
    AX_BINARY_POW,
    AX_BINARY_MAXIMUM,
    AX_BINARY_MINIMUM,
    AX_BINARY_EQ,
    AX_BINARY_NE,
    AX_BINARY_LT,
    AX_BINARY_LE,
    AX_BINARY_GT,
    AX_BINARY_GE
} ax_binary_op;

/* The activation a fused linear layer applies after its bias (the
 * epilogues cuBLASLt offers; GELU is the tanh form, not erf: the function
 * of AX_UNARY_GELU_TANH, evaluated by each backend its own way, so equal
 * to a few f32 ulps). Append-only. */
typedef enum ax_linear_act_op {
    AX_LINEAR_ACT_NONE = 0,
    AX_LINEAR_ACT_RELU,
    AX_LINEAR_ACT_GELU_TANH
} ax_linear_act_op;

typedef enum ax_reduce_op {
    AX_REDUCE_SUM = 1,
    AX_REDUCE_MAX, /* writes the index of the first maximum into idx (i64) when given */
    AX_REDUCE_MIN
} ax_reduce_op;

/* Coefficients of one optimizer update, rounded to f32 by the front-end
 * (axon/optim.h) exactly where PyTorch rounds them, so every backend
 * applies the same f32 arithmetic. fmadd(a, b, c) below is a * b + c
 * rounded once (through double). */
typedef struct ax_sgd_step_params {
    bool has_wd, has_mom, first, nesterov; /* first: buf = d instead of the momentum update */
    float wd, mom, keep, neg_lr;            /* keep = 1 - dampening, neg_lr = -lr */
} ax_sgd_step_params;

typedef struct ax_adamw_step_params {
    float decay;              /* 1 - lr * weight_decay (exactly 1 without decay) */
    float w, b2, one_b2;      /* 1 - beta1, beta2, 1 - beta2 */
    float neg_step, bc2_sqrt; /* -lr / (1 - beta1^t), sqrt(1 - beta2^t) */
    float eps;
} ax_adamw_step_params;

typedef struct ax_kernels {
    size_t size; /* sizeof(ax_kernels) as compiled by the backend */
    const char *name;
    bool (*supports)(ax_kop op, ax_dtype dtype);

    /* memory: nbytes on the device; NULL on failure (error set) */
    void *(*alloc)(size_t nbytes, int32_t device_index);
    void (*release)(void *data, size_t nbytes, int32_t device_index);

    /* dst = src (src broadcasts to dst's shape), converting dtype */
    ax_status (*copy)(ax_tensor *dst, const ax_tensor *src);
    ax_status (*fill)(ax_tensor *dst, double value);
    /* y: shape of x. Integer dtypes support NEG, ABS, SIGN, CLAMP, AFFINE. */
    ax_status (*unary)(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p);
    /* dx = dy * f'(x) (y = f(x) given too; either may be used). All: x's shape. */
    ax_status (*unary_backward)(ax_unary_op op, ax_tensor *dx, const ax_tensor *dy, const ax_tensor *x,
                                const ax_tensor *y, const double *p);
    /* out: broadcast shape of a and b (already expanded views are fine) */
    ax_status (*binary)(ax_binary_op op, ax_tensor *out, const ax_tensor *a, const ax_tensor *b);
    /* out = cond ? a : b; cond u8; all broadcast to out */
    ax_status (*where)(ax_tensor *out, const ax_tensor *cond, const ax_tensor *a, const ax_tensor *b);
    /* Reduce x over the dims whose bit is set in `dims`; out has x's ndim
     * with those dims of size 1. idx: [optional] i64, out's shape. */
    ax_status (*reduce)(ax_reduce_op op, ax_tensor *out, ax_tensor *idx, const ax_tensor *x, uint32_t dims);
    /* y = softmax(x) or log_softmax(x) along dim; y: x's shape */
    ax_status (*softmax)(ax_tensor *y, const ax_tensor *x, int dim, bool log);
    /* dx from dy and y = softmax/log_softmax(x) along dim */
    ax_status (*softmax_backward)(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *y, int dim, bool log);
    /* out[b] = op(a[b]) @ op(b[b]) for contiguous f32 [B, M, K] x [B, K, N]
     * (ta/tb: the operand is stored transposed, [B, K, M] / [B, N, K]);
     * out = alpha * prod + beta * out. */
    ax_status (*matmul)(ax_tensor *out, const ax_tensor *a, const ax_tensor *b, bool ta, bool tb, float alpha,
                        float beta);

    /* ---- convolution (f32; contiguous NCDHW unless the backend says otherwise) */
    /* y: [N, Co, Do, Ho, Wo] = conv(x: [N, Ci, D, H, W], w: [Co, Ci/g, kD, kH, kW]) + b: [optional] [Co] */
    ax_status (*conv3d)(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                        const ax_conv_params *p);
    /* any of dx (=), dw (+=), db (+=) may be NULL */
    ax_status (*conv3d_backward)(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                 const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p);
    /* y: [N, Co, ...] = conv_transpose(x: [N, Ci, ...], w: [Ci, Co/g, kD, kH, kW]) + b: [optional] [Co] */
    ax_status (*conv_transpose3d)(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                                  const ax_conv_params *p);
    ax_status (*conv_transpose3d_backward)(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                           const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p);

    /* ---- normalisation (f32) ----------------------------------------------
     * x: [N, C, *] normalised over groups of C/groups channels and all of *
     * (instance norm: groups = C; layer norm over [C, *]: groups = 1);
     * weight, bias: [optional] [C]; mean, rstd: [N, groups] saved for backward. */
    ax_status (*group_norm)(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                            const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps);
    /* dx (=), dweight (+=), dbias (+=); any may be NULL */
    ax_status (*group_norm_backward)(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                     const ax_tensor *x, const ax_tensor *mean, const ax_tensor *rstd,
                                     const ax_tensor *weight, int64_t groups);

    /* ---- pooling (f32): x [N, C, D, H, W]; idx: [optional] i64 argmax
     * (flat index into each input channel volume) for max pooling */
    ax_status (*pool3d)(ax_tensor *y, ax_tensor *idx, const ax_tensor *x, const ax_pool_params *p);
    ax_status (*pool3d_backward)(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *idx,
                                 const ax_pool_params *p);
    /* adaptive average pooling to y's spatial size (PyTorch's windows) */
    ax_status (*adaptive_avg_pool3d)(ax_tensor *y, const ax_tensor *x);
    ax_status (*adaptive_avg_pool3d_backward)(ax_tensor *dx, const ax_tensor *dy);

    /* ---- resampling and padding (f32): x [N, C, D, H, W] (interpolate may
     * also take 1-D/2-D spatial layouts: [N, C, *] with 1..3 spatial dims) */
    ax_status (*interpolate)(ax_tensor *y, const ax_tensor *x, ax_interp_mode mode, bool align_corners);
    ax_status (*interpolate_backward)(ax_tensor *dx, const ax_tensor *dy, ax_interp_mode mode, bool align_corners);
    /* pads[2*i], pads[2*i+1]: before/after for spatial dim i (D, H, W order) */
    ax_status (*pad)(ax_tensor *y, const ax_tensor *x, const int64_t *pads, int n_spatial, ax_pad_mode mode,
                     double value);
    ax_status (*pad_backward)(ax_tensor *dx, const ax_tensor *dy, const int64_t *pads, int n_spatial,
                              ax_pad_mode mode);

    /* ---- indexing (any dtype for data, i64 indices) -------------------------
     * gather: out[..i..] = x[.. idx[..i..] ..] along dim (idx has out's shape) */
    ax_status (*gather)(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx);
    /* out[.. idx[..i..] ..] += src[..i..] along dim (f32 src) */
    ax_status (*scatter_add)(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src);
    /* out = x.index_select(dim, idx) with idx 1-D */
    ax_status (*index_select)(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx);
    /* out.index_add_(dim, idx, src) (f32) */
    ax_status (*index_add)(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src);

    /* ---- cross-device copies (NULL on the CPU backend) -----------------------
     * dst = src where one of them lives on this backend's device and the
     * other on the CPU: same dtype and shape, both contiguous. Returns once
     * the host may read dst (device -> CPU) or reuse src (CPU -> device). */
    ax_status (*transfer)(ax_tensor *dst, const ax_tensor *src);

    /* ---- optimizer updates (f32, contiguous, all operands one shape) ------
     * torch's single-tensor SGD, per element, d the grad:
     *     d = has_wd ? fmadd(p, wd, g) : g
     *     buf = first ? d : fmadd(d, keep, buf * mom)     (has_mom only)
     *     d = has_mom ? (nesterov ? fmadd(buf, mom, d) : buf) : d
     *     p = fmadd(d, neg_lr, p)
     * buf: [optional] NULL when !has_mom. */
    ax_status (*sgd_step)(ax_tensor *p, ax_tensor *buf, const ax_tensor *g, const ax_sgd_step_params *c);
    /* torch's single-tensor AdamW, per element:
     *     p = p * decay;  m = lerp(m, g, w);  v = v * b2 + one_b2 * g * g
     *     p = p + neg_step * m / (sqrt(v) / bc2_sqrt + eps) */
    ax_status (*adamw_step)(ax_tensor *p, ax_tensor *m, ax_tensor *v, const ax_tensor *g,
                            const ax_adamw_step_params *c);
    /* *acc (in/out) accumulates, in double and in order, sum |x|^p over every
     * element of xs[0..n) (p = INFINITY: *acc = max(*acc, max |x|); NaN
     * propagates). xs: f32 contiguous tensors on this device.
     * The one place an optimizer step waits for the device (once, for
     * *acc); deterministic for a given backend. */
    ax_status (*grad_norm)(double *acc, size_t n, const ax_tensor *const *xs, double p);

    /* ---- fused linear layer (dtypes: those of supports(AX_KOP_MATMUL)) ------
     * y: [M, N] = act(x: [M, K] @ w: [N, K]^T + b: [optional] [N]), all 2-D
     * contiguous and of one dtype (half types accumulate in f32).
     * pre: [optional] [M, N], y's dtype: receives x @ w^T + b, which the GELU
     * backward needs; RELU's backward needs only its sign, which y has, so
     * callers pass NULL and give y to linear_backward instead. */
    ax_status (*linear)(ax_tensor *y, ax_tensor *pre, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                        ax_linear_act_op act);
    /* With dpre = dy * act'(pre): dx: [M, K] = dpre @ w, dw: [N, K] += dpre^T @ x,
     * db: [N] f32 += column sums of dpre; any may be NULL. dy, x, w, dx, dw:
     * contiguous, the dtype of the forward. pre: [M, N] the forward's pre
     * (GELU_TANH), or its pre or y (RELU: only pre > 0 is read), or NULL (NONE). */
    ax_status (*linear_backward)(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                 const ax_tensor *x, const ax_tensor *w, const ax_tensor *pre, ax_linear_act_op act);

    /* ---- fused normalisation + activation (f32) ------------------------------
     * group_norm (same operands as above), then y = leaky_relu(y,
     * negative_slope) in the same write pass: ResEnc's InstanceNorm ->
     * LeakyReLU without a second sweep over y. negative_slope >= 0. */
    ax_status (*group_norm_act)(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps,
                                double negative_slope);
    /* group_norm_backward of dy * leaky_relu'(y): the activation's gradient is
     * taken from y (x's shape, the forward's output; y > 0 exactly where the
     * pre-activation is, for slopes >= 0) while dy is read, in every pass, so
     * no masked copy of dy is written. Equals unary_backward(LEAKY_RELU, y)
     * then group_norm_backward to f32 rounding. dx (=), dweight (+=),
     * dbias (+=); any may be NULL. */
    ax_status (*group_norm_act_backward)(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                         const ax_tensor *x, const ax_tensor *y, const ax_tensor *mean,
                                         const ax_tensor *rstd, const ax_tensor *weight, int64_t groups,
                                         double negative_slope);

    /* ---- fused scaled dot-product attention (dtypes: those of
     * supports(AX_KOP_MATMUL); half types accumulate in f32) --------------------
     * o: [B, L, Ev] = softmax(q: [B, L, E] @ k: [B, S, E]^T * scale) @ v: [B, S, Ev]
     * without materialising the [L, S] scores (FlashAttention-2: tiles and
     * an online softmax). B is every batch and head dim flattened; q, k, v
     * and o contiguous, one dtype. is_causal: query i sees keys j <= i
     * (torch's top-left tril). lse: [B, L] f32, the log-sum-exp of each
     * row's scaled visible scores, kept for the backward; a row with no
     * finite visible score gets lse -inf and o 0 (torch's safe softmax).
     * Backends may return AX_ERR_UNSUPPORTED for head dims they lack. */
    ax_status (*sdpa)(ax_tensor *o, ax_tensor *lse, const ax_tensor *q, const ax_tensor *k, const ax_tensor *v,
                      double scale, bool is_causal);
    /* Gradients of sum(o * dout) from the forward's operands: P is
     * recomputed from q, k and lse, D = rowsum(dout * o). dq: [B, L, E],
     * dk: [B, S, E], dv: [B, S, Ev] (q's dtype, contiguous) are
     * overwritten; any may be NULL. dout: [B, L, Ev], q's dtype. */
    ax_status (*sdpa_backward)(ax_tensor *dq, ax_tensor *dk, ax_tensor *dv, const ax_tensor *dout,
                               const ax_tensor *q, const ax_tensor *k, const ax_tensor *v, const ax_tensor *o,
                               const ax_tensor *lse, double scale, bool is_causal);
} ax_kernels;

/* Does table k have member `m` (k->size covers it and it is set)? Members
 * appended after a backend was built read as absent. */
#define AX_KERNELS_HAS(k, m) ((k)->size >= offsetof(ax_kernels, m) + sizeof((k)->m) && (k)->m != NULL)

/* The kernels for a device (borrowed, static). NULL with an error set when
 * no loaded backend serves it. */
const ax_kernels *ax_kernels_for(ax_device device);
/* The CPU reference kernels (kernels/cpu). */
const ax_kernels *ax_cpu_kernels(void);
/* Register a backend's kernels for a device type (used when a BACKEND
 * plugin is loaded). */
ax_status ax_kernels_register(ax_device_type type, const ax_kernels *kernels);

#ifdef __cplusplus
}
#endif
#endif
