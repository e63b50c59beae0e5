/* axon/autograd.h — define-by-run reverse-mode differentiation.
 *
 * An op whose inputs require grad records a node on its output: the
 * backward function, the tensors it saved, and an edge per input (to the
 * input's own node, or to the leaf tensor whose .grad it accumulates).
 * ax_backward() walks the nodes in reverse topological order, accumulates
 * leaf gradients into t->grad, and releases each node's saved tensors as
 * soon as its backward has run, so peak memory falls during the pass.
 *
 *     ax_tensor_set_requires_grad(w, true);
 *     ax_matmul(&y, x, w);            // records a node on y
 *     ax_mse_loss(&loss, y, target, NULL, AX_LOSS_MEAN);
 *     ax_backward(loss, NULL);        // w->grad now holds dloss/dw
 *     ax_tensor_free(loss); ...
 *
 *     ax_no_grad_begin();             // evaluation, EMA updates, optimizers
 *     ...
 *     ax_no_grad_end();
 *
 * Plugin authors compose ops and never write a backward pass. Authors of a
 * new op write one with ax_node_new / ax_node_save / ax_node_attach (see
 * sdk/src/ops_*.c for the pattern). Backward functions run with grad
 * disabled (no higher-order gradients).
 */
#ifndef AXON_AUTOGRAD_H
#define AXON_AUTOGRAD_H

#include <stdbool.h>

#include "axon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AX_NODE_MAX_INPUTS 4
#define AX_NODE_MAX_SAVED 4

typedef struct ax_node ax_node;

/* grad_out: the gradient of the node's output (same shape as the output;
 * borrowed). Write a new reference into grad_in[i] for every input i whose
 * edge is live (ax_node_needs_grad), leave the others NULL. grad_in[i] must
 * have input i's shape. */
typedef ax_status (*ax_backward_fn)(ax_node *node, const ax_tensor *grad_out, ax_tensor **grad_in);

/* Where an input's gradient goes: to the node that made it, or to a leaf. */
typedef struct ax_edge {
    ax_node *node;   /* owned reference, or NULL */
    ax_tensor *leaf; /* owned reference to a leaf that requires grad, or NULL */
} ax_edge;

struct ax_node {
    int64_t refs; /* atomic */
    const char *name; /* op name, static */
    ax_backward_fn backward;
    int n_inputs;
    ax_edge next[AX_NODE_MAX_INPUTS];
    /* input metadata, for reducing broadcast gradients and the like */
    int32_t in_ndim[AX_NODE_MAX_INPUTS];
    int64_t in_shape[AX_NODE_MAX_INPUTS][AX_MAX_DIMS];
    ax_dtype in_dtype[AX_NODE_MAX_INPUTS];
    ax_tensor *saved[AX_NODE_MAX_SAVED]; /* owned; released after backward */
    double f[8];  /* op hyper-parameters */
    int64_t i[AX_MAX_DIMS * 2];
    void *ctx;                   /* [optional] op state */
    void (*ctx_free)(void *ctx); /* [optional] */
    /* engine scratch */
    ax_tensor *grad;
    int pending;
    int visit;  /* id of the backward pass that last saw this node */
    bool done;  /* backward ran; saved tensors are gone */
};

/* Is gradient recording on for this thread? (off inside no-grad scopes) */
bool ax_grad_enabled(void);
/* Nestable no-grad scope for the calling thread. */
void ax_no_grad_begin(void);
void ax_no_grad_end(void);

/* Mark a leaf tensor as trainable. Fails on a non-leaf or non-float tensor. */
ax_status ax_tensor_set_requires_grad(ax_tensor *t, bool requires_grad);
/* Drop t->grad (sets it to NULL). */
void ax_tensor_zero_grad(ax_tensor *t);

/* Run reverse mode from `root`. grad: [optional] d(something)/d(root),
 * shape of root; NULL means ones (root must then have one element).
 * Leaf gradients are added into leaf->grad (allocated on first use). The
 * graph's saved tensors are released: a second backward through the same
 * graph fails with AX_ERR_STATE. */
ax_status ax_backward(ax_tensor *root, const ax_tensor *grad);

/* ---- for op authors ------------------------------------------------------ */

/* True when recording is on and any of the n inputs requires grad. */
bool ax_autograd_wanted(int n, const ax_tensor *const *inputs);
/* New node with one edge per input (live for inputs that require grad).
 * *out is a new reference (give it to ax_node_attach). */
ax_status ax_node_new(ax_node **out, const char *name, ax_backward_fn backward, int n,
                      const ax_tensor *const *inputs);
/* Keep `t` (a new reference is taken) for the backward pass in slot i. */
void ax_node_save(ax_node *node, int slot, const ax_tensor *t);
/* Make `node` the grad_fn of `out` (steals the node reference) and mark
 * out as requiring grad. */
void ax_node_attach(ax_tensor *out, ax_node *node);
/* Whether input i's gradient is wanted. */
bool ax_node_needs_grad(const ax_node *node, int i);
ax_node *ax_node_retain(ax_node *node);
void ax_node_free(ax_node *node); /* NULL-safe; drops one reference */

#ifdef __cplusplus
}
#endif
#endif
