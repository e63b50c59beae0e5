/* The autograd tape: nodes, edges and the backward pass. */
#include "axon/autograd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "axon/kernels.h"
#include "axon/log.h"
#include "axon/ops.h"
#include "tensor_internal.h"

static _Thread_local int ax_no_grad_depth;

bool ax_grad_enabled(void) { return ax_no_grad_depth == 0; }
void ax_no_grad_begin(void) { ax_no_grad_depth++; }
void ax_no_grad_end(void) {
    if (ax_no_grad_depth > 0) ax_no_grad_depth--;
}

ax_status ax_tensor_set_requires_grad(ax_tensor *t, bool requires_grad) {
    if (t->grad_fn)
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_set_requires_grad: only leaf tensors can be marked (this one "
                                        "comes from '%s'); use ax_tensor_detach first",
                        t->grad_fn->name);
    if (requires_grad && !ax_dtype_is_float(t->dtype))
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_set_requires_grad: %s tensors cannot require grad",
                        ax_dtype_name(t->dtype));
    t->requires_grad = requires_grad;
    return AX_OK;
}

void ax_tensor_zero_grad(ax_tensor *t) {
    ax_tensor_free(t->grad);
    t->grad = NULL;
}

bool ax_autograd_wanted(int n, const ax_tensor *const *inputs) {
    if (!ax_grad_enabled()) return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad) return true;
    return false;
}

ax_status ax_node_new(ax_node **out, const char *name, ax_backward_fn backward, int n,
                      const ax_tensor *const *inputs) {
    *out = NULL;
    if (n > AX_NODE_MAX_INPUTS) return AX_ERROR(AX_ERR_INTERNAL, "%s: %d inputs (at most %d)", name, n, AX_NODE_MAX_INPUTS);
    ax_node *node = calloc(1, sizeof *node);
    if (!node) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory recording autograd", name);
    node->refs = 1;
    node->name = name;
    node->backward = backward;
    node->n_inputs = n;
    for (int i = 0; i < n; i++) {
        const ax_tensor *t = inputs[i];
        if (!t) continue;
        node->in_ndim[i] = t->ndim;
        memcpy(node->in_shape[i], t->shape, sizeof t->shape);
        node->in_dtype[i] = t->dtype;
        if (!t->requires_grad) continue;
        if (t->grad_fn)
            node->next[i].node = ax_node_retain(t->grad_fn);
        else
            node->next[i].leaf = ax_tensor_retain((ax_tensor *)t);
    }
    *out = node;
    return AX_OK;
}

void ax_node_save(ax_node *node, int slot, const ax_tensor *t) {
    ax_tensor_free(node->saved[slot]);
    node->saved[slot] = ax_tensor_retain((ax_tensor *)t);
}

void ax_node_attach(ax_tensor *out, ax_node *node) {
    ax_node_free(out->grad_fn);
    out->grad_fn = node;
    out->requires_grad = true;
}

bool ax_node_needs_grad(const ax_node *node, int i) {
    return i < node->n_inputs && (node->next[i].node || node->next[i].leaf);
}

ax_node *ax_node_retain(ax_node *node) {
    if (node) atomic_fetch_add((_Atomic int64_t *)&node->refs, 1);
    return node;
}

static void ax_node_release_saved(ax_node *node) {
    for (int i = 0; i < AX_NODE_MAX_SAVED; i++) {
        ax_tensor_free(node->saved[i]);
        node->saved[i] = NULL;
    }
    if (node->ctx_free) node->ctx_free(node->ctx);
    node->ctx = NULL;
    node->ctx_free = NULL;
}

/* Long graphs (thousands of nodes) would recurse through ax_tensor_free ->
 * ax_node_free; nodes reaching zero while a release is under way are queued
 * and freed by the outermost call instead. */
static _Thread_local ax_node **ax_free_queue;
static _Thread_local size_t ax_free_n, ax_free_cap;
static _Thread_local bool ax_freeing;

static void ax_node_destroy(ax_node *node) {
    ax_node_release_saved(node);
    ax_tensor_free(node->grad);
    for (int i = 0; i < node->n_inputs; i++) {
        ax_node_free(node->next[i].node);
        ax_tensor_free(node->next[i].leaf);
    }
    free(node);
}

void ax_node_free(ax_node *node) {
    if (!node) return;
    if (atomic_fetch_sub((_Atomic int64_t *)&node->refs, 1) != 1) return;
    if (ax_freeing) {
        if (ax_free_n == ax_free_cap) {
            size_t cap = ax_free_cap ? ax_free_cap * 2 : 64;
            ax_node **q = realloc(ax_free_queue, cap * sizeof *q);
            if (!q) { /* cannot queue: recurse instead */
                ax_node_destroy(node);
                return;
            }
            ax_free_queue = q;
            ax_free_cap = cap;
        }
        ax_free_queue[ax_free_n++] = node;
        return;
    }
    ax_freeing = true;
    ax_node_destroy(node);
    while (ax_free_n) ax_node_destroy(ax_free_queue[--ax_free_n]);
    ax_freeing = false;
    free(ax_free_queue);
    ax_free_queue = NULL;
    ax_free_cap = 0;
}

/* ---- backward ------------------------------------------------------------- */

typedef struct ax_node_list {
    ax_node **v;
    size_t n, cap;
} ax_node_list;

static int ax_list_push(ax_node_list *l, ax_node *node) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        ax_node **v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = node;
    return 0;
}

/* A node's incoming gradient: the first one is kept as is (no copy: nobody
 * writes to it), later ones are summed out of place, since the first may be
 * shared with another edge (add's backward hands g to both inputs). */
static ax_status ax_accumulate_node(ax_tensor **acc, const ax_tensor *g) {
    if (!*acc) {
        *acc = ax_tensor_retain((ax_tensor *)g);
        return AX_OK;
    }
    ax_tensor *sum;
    if (ax_add(&sum, *acc, g) != AX_OK) return ax_error_status();
    ax_tensor_free(*acc);
    *acc = sum;
    return AX_OK;
}

/* A leaf's .grad: owned exclusively (optimizers update it in place), in the
 * leaf's dtype; later gradients are added in place. */
static ax_status ax_accumulate_leaf(ax_tensor **acc, const ax_tensor *g, ax_dtype acc_dtype) {
    if (!*acc) {
        ax_tensor *c;
        if (ax_tensor_empty_like(&c, g, acc_dtype) != AX_OK) return ax_error_status();
        if (ax_tensor_copy_(c, g) != AX_OK) {
            ax_tensor_free(c);
            return ax_error_status();
        }
        *acc = c;
        return AX_OK;
    }
    const ax_kernels *k = ax_kernels_for((*acc)->storage->device);
    if (!k) return ax_error_status();
    if ((*acc)->dtype == g->dtype) return k->binary(AX_BINARY_ADD, *acc, *acc, g);
    ax_tensor *c;
    if (ax_tensor_to_dtype(&c, g, (*acc)->dtype) != AX_OK) return ax_error_status();
    ax_status st = k->binary(AX_BINARY_ADD, *acc, *acc, c);
    ax_tensor_free(c);
    return st;
}

static _Atomic int ax_backward_pass_id;

ax_status ax_backward(ax_tensor *root, const ax_tensor *grad) {
    if (!root->requires_grad)
        return AX_ERROR(AX_ERR_INVALID, "ax_backward: the tensor does not require grad (no input of the "
                                        "computation had requires_grad, or it ran under no-grad)");
    ax_tensor *g0 = NULL;
    if (grad) {
        if (!ax_tensor_same_shape(grad, root)) {
            char a[160], b[160];
            return AX_ERROR(AX_ERR_INVALID, "ax_backward: grad %s does not match the root's shape %s",
                            ax_shape_str(a, sizeof a, grad->ndim, grad->shape),
                            ax_shape_str(b, sizeof b, root->ndim, root->shape));
        }
        g0 = ax_tensor_retain((ax_tensor *)grad);
    } else {
        if (ax_tensor_numel(root) != 1) {
            char a[160];
            return AX_ERROR(AX_ERR_INVALID, "ax_backward: root of shape %s has more than one element; pass grad",
                            ax_shape_str(a, sizeof a, root->ndim, root->shape));
        }
        if (ax_tensor_full_on(&g0, root->ndim, root->shape, root->dtype, 1.0, root->storage->device) != AX_OK)
            return ax_error_status();
    }
    ax_status st = AX_OK;
    ax_no_grad_begin();
    if (!root->grad_fn) {
        st = ax_accumulate_leaf(&root->grad, g0, root->dtype);
        ax_tensor_free(g0);
        ax_no_grad_end();
        return st;
    }

    /* Count, for every reachable node, how many consumers will send it a
     * gradient; a node runs once all of them have. */
    int pass = ++ax_backward_pass_id;
    ax_node_list all = {0}, stack = {0}, ready = {0};
    if (ax_list_push(&stack, root->grad_fn)) goto oom;
    root->grad_fn->visit = pass;
    root->grad_fn->pending = 0;
    while (stack.n) {
        ax_node *node = stack.v[--stack.n];
        if (node->done) {
            st = AX_ERROR(AX_ERR_STATE, "ax_backward: the graph through '%s' was already used by a backward "
                                        "pass (its saved tensors are freed); run the forward again",
                          node->name);
            goto out;
        }
        if (ax_list_push(&all, node)) goto oom;
        for (int i = 0; i < node->n_inputs; i++) {
            ax_node *next = node->next[i].node;
            if (!next) continue;
            if (next->visit != pass) {
                next->visit = pass;
                next->pending = 0;
                if (ax_list_push(&stack, next)) goto oom;
            }
            next->pending++;
        }
    }

    root->grad_fn->grad = g0;
    g0 = NULL;
    if (ax_list_push(&ready, root->grad_fn)) goto oom;
    while (ready.n) {
        ax_node *node = ready.v[--ready.n];
        ax_tensor *gin[AX_NODE_MAX_INPUTS] = {NULL};
        if (node->grad) {
            st = node->backward(node, node->grad, gin);
            if (st != AX_OK) {
                ax_error_prefix("backward of '%s'", node->name);
                for (int i = 0; i < AX_NODE_MAX_INPUTS; i++) ax_tensor_free(gin[i]);
                goto out;
            }
        }
        ax_tensor_free(node->grad);
        node->grad = NULL;
        ax_node_release_saved(node);
        node->done = true;
        for (int i = 0; i < node->n_inputs; i++) {
            ax_edge *e = &node->next[i];
            if (gin[i] && (e->node || e->leaf)) {
                if (gin[i]->ndim != node->in_ndim[i] ||
                    memcmp(gin[i]->shape, node->in_shape[i], (size_t)gin[i]->ndim * sizeof(int64_t)) != 0) {
                    char a[160], b[160];
                    st = AX_ERROR(AX_ERR_INTERNAL, "backward of '%s': gradient %d has shape %s, input has %s",
                                  node->name, i, ax_shape_str(a, sizeof a, gin[i]->ndim, gin[i]->shape),
                                  ax_shape_str(b, sizeof b, node->in_ndim[i], node->in_shape[i]));
                } else if (e->node) {
                    st = ax_accumulate_node(&e->node->grad, gin[i]);
                } else {
                    st = ax_accumulate_leaf(&e->leaf->grad, gin[i], e->leaf->dtype);
                }
            }
            if (st == AX_OK && e->node && --e->node->pending == 0 && ax_list_push(&ready, e->node)) {
                ax_tensor_free(gin[i]);
                goto oom;
            }
            ax_tensor_free(gin[i]);
            gin[i] = NULL;
            if (st != AX_OK) {
                for (int j = i + 1; j < node->n_inputs; j++) ax_tensor_free(gin[j]);
                goto out;
            }
        }
    }
    goto out;
oom:
    st = AX_ERROR(AX_ERR_NOMEM, "ax_backward: out of memory");
out:
    /* On failure, drop partial gradients held by nodes. */
    for (size_t i = 0; i < all.n; i++) {
        ax_tensor_free(all.v[i]->grad);
        all.v[i]->grad = NULL;
    }
    ax_tensor_free(g0);
    free(all.v);
    free(stack.v);
    free(ready.v);
    ax_no_grad_end();
    return st;
}
