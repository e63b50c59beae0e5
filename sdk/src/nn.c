/* Modules (axon/nn.h): the generic tree — registration, dotted-name
 * traversal in torch.nn.Module's order, train/eval, RNG streams, state
 * dicts through safetensors, printing — and the built-in layers.
 *
 * A module owns three arrays of named members (parameters, buffers,
 * children), each in registration order. Traversals build dotted names on
 * the way down; "seen" sets (pointer arrays, linear search: networks have
 * hundreds of members, not millions) give torch's de-duplication where
 * torch de-duplicates (named_parameters, named_modules) and not where it
 * does not (state_dict). */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "axon/attention.h"
#include "axon/autograd.h"
#include "axon/conv.h"
#include "axon/nn.h"
#include "axon/norm.h"
#include "axon/ops.h"
#include "axon/pool.h"
#include "axon/safetensors.h"

typedef struct ax_member {
    char *name;
    ax_tensor *t;
    bool persistent;   /* buffers: part of the state dict */
    bool zero_if_missing; /* BatchNorm's num_batches_tracked (torch's old-checkpoint rule) */
} ax_member;

typedef struct ax_child {
    char *name;
    ax_module *m;
} ax_child;

struct ax_module {
    int64_t refs; /* atomic */
    char *type;
    const ax_module_class *origin; /* the class pointer given at creation (identifies built-ins) */
    ax_module_class cls;           /* copy; cls.name points at type */
    void *state;
    bool training;
    uint64_t rng_seed, rng_base, rng_calls;
    ax_member *params, *buffers;
    size_t n_params, n_buffers;
    ax_child *children;
    size_t n_children;
};

/* ==== small utilities ========================================================= */

static char *ax_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* "prefix.name", or "name" for an empty prefix; NULL on OOM. */
static char *ax_join(const char *prefix, const char *name) {
    size_t a = strlen(prefix), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    if (a) {
        memcpy(s, prefix, a);
        s[a++] = '.';
    }
    memcpy(s + a, name, b + 1);
    return s;
}

static uint64_t ax_mix64(uint64_t x) {
    /* splitmix64's finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* A growable set of pointers with linear search. */
typedef struct ax_ptrset {
    const void **p;
    size_t n, cap;
} ax_ptrset;

static bool ax_ptrset_has(const ax_ptrset *s, const void *p) {
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i] == p) return true;
    return false;
}

static ax_status ax_ptrset_add(ax_ptrset *s, const void *p) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        const void **q = realloc(s->p, cap * sizeof *q);
        if (!q) return AX_ERROR(AX_ERR_NOMEM, "ax_module: out of memory");
        s->p = q;
        s->cap = cap;
    }
    s->p[s->n++] = p;
    return AX_OK;
}

static void ax_ptrset_clear(ax_ptrset *s) {
    free(s->p);
    memset(s, 0, sizeof *s);
}

/* ==== named tensor lists ======================================================== */

void ax_named_tensors_clear(ax_named_tensors *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        ax_tensor_free(l->tensors[i]);
    }
    free(l->names);
    free(l->tensors);
    memset(l, 0, sizeof *l);
}

/* A named-tensor list under construction, with per-entry flags the loader
 * needs. */
typedef struct ax_nt_builder {
    ax_named_tensors l;
    bool *zero_if_missing;
    size_t cap;
} ax_nt_builder;

/* Appends (name: stolen, t: retained). */
static ax_status ax_nt_push(ax_nt_builder *b, char *name, ax_tensor *t, bool zero_if_missing) {
    if (!name) return AX_ERROR(AX_ERR_NOMEM, "ax_module: out of memory");
    if (b->l.n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 32;
        char **names = realloc(b->l.names, cap * sizeof *names);
        if (names) b->l.names = names;
        ax_tensor **ts = names ? realloc(b->l.tensors, cap * sizeof *ts) : NULL;
        if (ts) b->l.tensors = ts;
        bool *z = ts ? realloc(b->zero_if_missing, cap * sizeof *z) : NULL;
        if (z) b->zero_if_missing = z;
        if (!z) {
            free(name);
            return AX_ERROR(AX_ERR_NOMEM, "ax_module: out of memory");
        }
        b->cap = cap;
    }
    b->l.names[b->l.n] = name;
    b->l.tensors[b->l.n] = ax_tensor_retain(t);
    b->zero_if_missing[b->l.n] = zero_if_missing;
    b->l.n++;
    return AX_OK;
}

static void ax_nt_builder_clear(ax_nt_builder *b) {
    ax_named_tensors_clear(&b->l);
    free(b->zero_if_missing);
    memset(b, 0, sizeof *b);
}

/* ==== lifetime ===================================================================== */

static atomic_uint_fast64_t ax_modules_created;

ax_status ax_module_new(ax_module **out, const ax_module_class *cls, void *state) {
    if (out) *out = NULL;
    if (!cls || !cls->name || !cls->name[0]) {
        if (cls && cls->free_state && state) cls->free_state(state);
        return AX_ERROR(AX_ERR_INVALID, "ax_module_new: the class needs a non-empty name");
    }
    if (!out) {
        if (cls->free_state && state) cls->free_state(state);
        return AX_ERROR(AX_ERR_INVALID, "ax_module_new: %s: out is NULL", cls->name);
    }
    ax_module *m = calloc(1, sizeof *m);
    char *type = m ? ax_strdup(cls->name) : NULL;
    if (!type) {
        free(m);
        if (cls->free_state && state) cls->free_state(state);
        return AX_ERROR(AX_ERR_NOMEM, "ax_module_new: %s: out of memory", cls->name);
    }
    m->refs = 1;
    m->type = type;
    m->origin = cls;
    m->cls = *cls;
    m->cls.name = type;
    m->state = state;
    m->training = true;
    m->rng_base = ax_mix64(0x6E6E2E6D6F64756Cull ^ (uint64_t)atomic_fetch_add(&ax_modules_created, 1));
    *out = m;
    return AX_OK;
}

ax_module *ax_module_retain(ax_module *m) {
    if (m) atomic_fetch_add((_Atomic int64_t *)&m->refs, 1);
    return m;
}

static void ax_members_free(ax_member *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        ax_tensor_free(v[i].t);
    }
    free(v);
}

void ax_module_free(ax_module *m) {
    if (!m) return;
    if (atomic_fetch_sub((_Atomic int64_t *)&m->refs, 1) != 1) return;
    ax_members_free(m->params, m->n_params);
    ax_members_free(m->buffers, m->n_buffers);
    for (size_t i = 0; i < m->n_children; i++) {
        free(m->children[i].name);
        ax_module_free(m->children[i].m);
    }
    free(m->children);
    if (m->cls.free_state && m->state) m->cls.free_state(m->state);
    free(m->type);
    free(m);
}

const char *ax_module_type(const ax_module *m) { return m ? m->type : NULL; }
void *ax_module_state(const ax_module *m) { return m ? m->state : NULL; }

/* ==== registration ================================================================== */

static const ax_member *ax_member_find(const ax_member *v, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) return &v[i];
    return NULL;
}

static ax_module *ax_own_child(const ax_module *m, const char *name, size_t len) {
    for (size_t i = 0; i < m->n_children; i++)
        if (strlen(m->children[i].name) == len && memcmp(m->children[i].name, name, len) == 0)
            return m->children[i].m;
    return NULL;
}

/* torch's rules for attribute names of registered members. */
static ax_status ax_check_member_name(const char *fn, const ax_module *m, const char *name) {
    if (!m) return AX_ERROR(AX_ERR_INVALID, "%s: module is NULL", fn);
    if (!name || !name[0]) return AX_ERROR(AX_ERR_INVALID, "%s: %s: the name is empty", fn, m->type);
    if (strchr(name, '.')) return AX_ERROR(AX_ERR_INVALID, "%s: %s: name '%s' contains '.'", fn, m->type, name);
    const char *what = ax_member_find(m->params, m->n_params, name)     ? "a parameter"
                       : ax_member_find(m->buffers, m->n_buffers, name) ? "a buffer"
                       : ax_own_child(m, name, strlen(name))            ? "a child"
                                                                        : NULL;
    if (what) return AX_ERROR(AX_ERR_INVALID, "%s: %s already has %s named '%s'", fn, m->type, what, name);
    return AX_OK;
}

static ax_status ax_member_append(ax_member **v, size_t *n, const char *name, ax_tensor *t, bool persistent) {
    char *copy = ax_strdup(name);
    ax_member *grown = copy ? realloc(*v, (*n + 1) * sizeof **v) : NULL;
    if (!grown) {
        free(copy);
        return AX_ERROR(AX_ERR_NOMEM, "ax_module: out of memory registering '%s'", name);
    }
    *v = grown;
    grown[*n] = (ax_member){copy, t, persistent, false};
    (*n)++;
    return AX_OK;
}

ax_status ax_module_add_parameter(ax_module *m, const char *name, ax_tensor *t) {
    const char *fn = "ax_module_add_parameter";
    ax_status st = ax_check_member_name(fn, m, name);
    if (st == AX_OK && !t) st = AX_ERROR(AX_ERR_INVALID, "%s: %s: tensor for '%s' is NULL", fn, m->type, name);
    if (st == AX_OK && !ax_dtype_is_float(t->dtype))
        st = AX_ERROR(AX_ERR_INVALID, "%s: %s: parameter '%s' must be floating point, got %s", fn, m->type, name,
                      ax_dtype_name(t->dtype) ? ax_dtype_name(t->dtype) : "?");
    if (st == AX_OK && t->grad_fn)
        st = AX_ERROR(AX_ERR_INVALID, "%s: %s: parameter '%s' must be a leaf tensor (it was computed by '%s')", fn,
                      m->type, name, t->grad_fn->name);
    if (st == AX_OK) st = ax_tensor_set_requires_grad(t, true);
    if (st == AX_OK) st = ax_member_append(&m->params, &m->n_params, name, t, true);
    if (st != AX_OK) ax_tensor_free(t);
    return st;
}

ax_status ax_module_add_buffer(ax_module *m, const char *name, ax_tensor *t, bool persistent) {
    const char *fn = "ax_module_add_buffer";
    ax_status st = ax_check_member_name(fn, m, name);
    if (st == AX_OK && !t) st = AX_ERROR(AX_ERR_INVALID, "%s: %s: tensor for '%s' is NULL", fn, m->type, name);
    if (st == AX_OK) st = ax_member_append(&m->buffers, &m->n_buffers, name, t, persistent);
    if (st != AX_OK) ax_tensor_free(t);
    return st;
}

/* Is `target` in the tree under `root` (root included)? The tree is acyclic
 * by construction, so plain recursion ends. */
static bool ax_tree_contains(const ax_module *root, const ax_module *target) {
    if (root == target) return true;
    for (size_t i = 0; i < root->n_children; i++)
        if (ax_tree_contains(root->children[i].m, target)) return true;
    return false;
}

ax_status ax_module_add_child(ax_module *m, const char *name, ax_module *child) {
    const char *fn = "ax_module_add_child";
    ax_status st = ax_check_member_name(fn, m, name);
    if (st == AX_OK && !child) st = AX_ERROR(AX_ERR_INVALID, "%s: %s: child '%s' is NULL", fn, m->type, name);
    if (st == AX_OK && ax_tree_contains(child, m))
        st = AX_ERROR(AX_ERR_INVALID, "%s: %s: adding '%s' (%s) would make a cycle: the module is inside it", fn,
                      m->type, name, child->type);
    char *copy = st == AX_OK ? ax_strdup(name) : NULL;
    ax_child *grown = copy ? realloc(m->children, (m->n_children + 1) * sizeof *grown) : NULL;
    if (st == AX_OK && !grown) {
        free(copy);
        st = AX_ERROR(AX_ERR_NOMEM, "%s: %s: out of memory adding '%s'", fn, m->type, name);
    }
    if (st != AX_OK) {
        ax_module_free(child);
        return st;
    }
    m->children = grown;
    m->children[m->n_children++] = (ax_child){copy, child};
    return AX_OK;
}

/* ==== lookup ========================================================================== */

/* The module owning the last component of `path`, and that component. */
static const ax_module *ax_walk(const ax_module *m, const char *path, const char **last) {
    const char *dot;
    while (m && (dot = strchr(path, '.')) != NULL) {
        m = ax_own_child(m, path, (size_t)(dot - path));
        path = dot + 1;
    }
    *last = path;
    return m;
}

ax_module *ax_module_find(const ax_module *m, const char *path) {
    if (!m || !path) return NULL;
    if (!path[0]) return (ax_module *)m;
    const char *last;
    const ax_module *owner = ax_walk(m, path, &last);
    return owner ? ax_own_child(owner, last, strlen(last)) : NULL;
}

ax_tensor *ax_module_get_parameter(const ax_module *m, const char *path) {
    if (!m || !path) return NULL;
    const char *last;
    const ax_module *owner = ax_walk(m, path, &last);
    const ax_member *p = owner ? ax_member_find(owner->params, owner->n_params, last) : NULL;
    return p ? p->t : NULL;
}

ax_tensor *ax_module_get_buffer(const ax_module *m, const char *path) {
    if (!m || !path) return NULL;
    const char *last;
    const ax_module *owner = ax_walk(m, path, &last);
    const ax_member *b = owner ? ax_member_find(owner->buffers, owner->n_buffers, last) : NULL;
    return b ? b->t : NULL;
}

size_t ax_module_child_count(const ax_module *m) { return m ? m->n_children : 0; }

ax_module *ax_module_child(const ax_module *m, size_t i, const char **name) {
    if (!m || i >= m->n_children) {
        if (name) *name = NULL;
        return NULL;
    }
    if (name) *name = m->children[i].name;
    return m->children[i].m;
}

/* Own parameter or buffer by plain name (built-ins' forwards). */
static ax_tensor *ax_own_param(const ax_module *m, const char *name) {
    const ax_member *p = ax_member_find(m->params, m->n_params, name);
    return p ? p->t : NULL;
}

static ax_tensor *ax_own_buffer(const ax_module *m, const char *name) {
    const ax_member *b = ax_member_find(m->buffers, m->n_buffers, name);
    return b ? b->t : NULL;
}

/* ==== traversals ======================================================================== */

typedef enum ax_collect_kind { AX_COLLECT_PARAMS, AX_COLLECT_BUFFERS, AX_COLLECT_STATE } ax_collect_kind;

typedef struct ax_collect {
    ax_collect_kind kind;
    ax_nt_builder b;
    ax_ptrset modules, tensors; /* de-duplication (not for state dicts) */
} ax_collect;

static ax_status ax_collect_members(ax_collect *c, const ax_member *v, size_t n, const char *prefix, bool buffers) {
    for (size_t i = 0; i < n; i++) {
        if (c->kind == AX_COLLECT_STATE) {
            if (buffers && !v[i].persistent) continue;
        } else {
            if (ax_ptrset_has(&c->tensors, v[i].t)) continue;
            if (ax_ptrset_add(&c->tensors, v[i].t) != AX_OK) return ax_error_status();
        }
        if (ax_nt_push(&c->b, ax_join(prefix, v[i].name), v[i].t, v[i].zero_if_missing) != AX_OK)
            return ax_error_status();
    }
    return AX_OK;
}

static ax_status ax_collect_rec(ax_collect *c, const ax_module *m, const char *prefix) {
    if (c->kind != AX_COLLECT_STATE) {
        if (ax_ptrset_has(&c->modules, m)) return AX_OK;
        if (ax_ptrset_add(&c->modules, m) != AX_OK) return ax_error_status();
    }
    if (c->kind != AX_COLLECT_BUFFERS && ax_collect_members(c, m->params, m->n_params, prefix, false) != AX_OK)
        return ax_error_status();
    if (c->kind != AX_COLLECT_PARAMS && ax_collect_members(c, m->buffers, m->n_buffers, prefix, true) != AX_OK)
        return ax_error_status();
    for (size_t i = 0; i < m->n_children; i++) {
        char *sub = ax_join(prefix, m->children[i].name);
        if (!sub) return AX_ERROR(AX_ERR_NOMEM, "ax_module: out of memory");
        ax_status st = ax_collect_rec(c, m->children[i].m, sub);
        free(sub);
        if (st != AX_OK) return st;
    }
    return AX_OK;
}

/* Runs a collection; on success *b holds the result (clear it). */
static ax_status ax_collect_run(const char *fn, const ax_module *m, ax_collect_kind kind, ax_nt_builder *b) {
    memset(b, 0, sizeof *b);
    if (!m) return AX_ERROR(AX_ERR_INVALID, "%s: module is NULL", fn);
    ax_collect c = {.kind = kind};
    ax_status st = ax_collect_rec(&c, m, "");
    ax_ptrset_clear(&c.modules);
    ax_ptrset_clear(&c.tensors);
    if (st != AX_OK) {
        ax_nt_builder_clear(&c.b);
        return ax_error_prefix("%s", fn);
    }
    *b = c.b;
    return AX_OK;
}

static ax_status ax_collect_list(const char *fn, const ax_module *m, ax_collect_kind kind, ax_named_tensors *out) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    ax_nt_builder b;
    if (ax_collect_run(fn, m, kind, &b) != AX_OK) return ax_error_status();
    *out = b.l;
    free(b.zero_if_missing);
    return AX_OK;
}

ax_status ax_module_parameters(const ax_module *m, ax_named_tensors *out) {
    return ax_collect_list("ax_module_parameters", m, AX_COLLECT_PARAMS, out);
}

ax_status ax_module_buffers(const ax_module *m, ax_named_tensors *out) {
    return ax_collect_list("ax_module_buffers", m, AX_COLLECT_BUFFERS, out);
}

ax_status ax_module_state_dict(const ax_module *m, ax_named_tensors *out) {
    return ax_collect_list("ax_module_state_dict", m, AX_COLLECT_STATE, out);
}

static ax_status ax_apply_rec(ax_module *m, const char *path, ax_ptrset *seen, ax_module_visit_fn fn, void *ctx) {
    if (ax_ptrset_has(seen, m)) return AX_OK;
    if (ax_ptrset_add(seen, m) != AX_OK) return ax_error_status();
    ax_status st = fn(m, path, ctx);
    for (size_t i = 0; st == AX_OK && i < m->n_children; i++) {
        char *sub = ax_join(path, m->children[i].name);
        if (!sub) return AX_ERROR(AX_ERR_NOMEM, "ax_module_apply: out of memory");
        st = ax_apply_rec(m->children[i].m, sub, seen, fn, ctx);
        free(sub);
    }
    return st;
}

ax_status ax_module_apply(ax_module *m, ax_module_visit_fn fn, void *ctx) {
    if (!m || !fn) return AX_ERROR(AX_ERR_INVALID, "ax_module_apply: %s is NULL", m ? "fn" : "module");
    ax_ptrset seen = {0};
    ax_status st = ax_apply_rec(m, "", &seen, fn, ctx);
    ax_ptrset_clear(&seen);
    return st;
}

/* ==== mode, grads, RNG ====================================================================== */

void ax_module_train(ax_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (size_t i = 0; i < m->n_children; i++) ax_module_train(m->children[i].m, training);
}

bool ax_module_training(const ax_module *m) { return m && m->training; }

void ax_module_zero_grad(ax_module *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_params; i++) ax_tensor_zero_grad(m->params[i].t);
    for (size_t i = 0; i < m->n_children; i++) ax_module_zero_grad(m->children[i].m);
}

/* Moves t's data (and its grad's) to `device`, keeping the object: the
 * copy's storage is swapped into t and the copy drops the old one. */
static ax_status ax_tensor_move_(ax_tensor *t, ax_device device) {
    ax_device at = t->storage->device;
    ax_tensor *n = NULL;
    ax_status st = AX_OK;
    bool same = at.type == device.type && at.index == device.index;
    ax_no_grad_begin();
    if (!same) st = ax_tensor_to_device(&n, t, device);
    ax_no_grad_end();
    if (st == AX_OK && t->grad) st = ax_tensor_move_(t->grad, device);
    if (st != AX_OK || same) {
        ax_tensor_free(n);
        return st;
    }
    ax_storage *old = t->storage;
    t->storage = n->storage;
    n->storage = old;
    int64_t off = t->offset;
    t->offset = n->offset;
    n->offset = off;
    for (int i = 0; i < t->ndim; i++) {
        int64_t s = t->stride[i];
        t->stride[i] = n->stride[i];
        n->stride[i] = s;
    }
    ax_tensor_free(n);
    return AX_OK;
}

ax_status ax_module_to_device(ax_module *m, ax_device device) {
    if (!m) return AX_ERROR(AX_ERR_INVALID, "ax_module_to_device: module is NULL");
    ax_named_tensors l[2] = {{0}, {0}};
    ax_status st = ax_module_parameters(m, &l[0]);
    if (st == AX_OK) st = ax_module_buffers(m, &l[1]);
    for (int k = 0; k < 2 && st == AX_OK; k++)
        for (size_t i = 0; i < l[k].n && st == AX_OK; i++)
            if ((st = ax_tensor_move_(l[k].tensors[i], device)) != AX_OK)
                ax_error_prefix("ax_module_to_device: %s '%s'", k ? "buffer" : "parameter", l[k].names[i]);
    ax_named_tensors_clear(&l[0]);
    ax_named_tensors_clear(&l[1]);
    return st;
}

static const ax_tensor *ax_module_first_tensor(const ax_module *m, bool params) {
    if (params && m->n_params) return m->params[0].t;
    if (!params && m->n_buffers) return m->buffers[0].t;
    for (size_t i = 0; i < m->n_children; i++) {
        const ax_tensor *t = ax_module_first_tensor(m->children[i].m, params);
        if (t) return t;
    }
    return NULL;
}

ax_device ax_module_device(const ax_module *m) {
    const ax_tensor *t = m ? ax_module_first_tensor(m, true) : NULL;
    if (!t && m) t = ax_module_first_tensor(m, false);
    return t ? t->storage->device : AX_CPU;
}

typedef struct ax_rng_visit {
    uint64_t seed, step, index;
} ax_rng_visit;

static ax_status ax_set_rng_visit(ax_module *m, const char *path, void *ctx) {
    (void)path;
    ax_rng_visit *v = ctx;
    m->rng_seed = v->seed;
    m->rng_base = ax_mix64(ax_mix64(v->step) ^ (v->index++ * 0xD1B54A32D192ED03ull));
    m->rng_calls = 0;
    return AX_OK;
}

void ax_module_set_rng(ax_module *root, uint64_t seed, uint64_t step) {
    if (!root) return;
    ax_rng_visit v = {seed, step, 0};
    /* Can only fail on OOM for the seen-set; modules then keep their old
     * streams, which are still valid streams. */
    (void)ax_module_apply(root, ax_set_rng_visit, &v);
}

void ax_module_next_stream(ax_module *m, uint64_t *seed, uint64_t *stream) {
    uint64_t call = m->rng_calls++;
    if (seed) *seed = m->rng_seed;
    if (stream) *stream = ax_mix64(m->rng_base ^ ax_mix64(call + 1));
}

/* ==== forward ================================================================================ */

ax_status ax_module_forward(ax_module *m, ax_tensor **y, const ax_tensor *x) {
    if (!y) return AX_ERROR(AX_ERR_INVALID, "ax_module_forward: y is NULL");
    *y = NULL;
    if (!m) return AX_ERROR(AX_ERR_INVALID, "ax_module_forward: module is NULL");
    if (!x) return AX_ERROR(AX_ERR_INVALID, "ax_module_forward: %s: x is NULL", m->type);
    if (!m->cls.forward)
        return AX_ERROR(AX_ERR_STATE, "ax_module_forward: %s has no forward (it is a container)", m->type);
    ax_tensor *out = NULL;
    ax_status st = m->cls.forward(m, &out, x);
    if (st == AX_OK && !out) st = AX_ERROR(AX_ERR_INTERNAL, "ax_module_forward: %s's forward gave no output", m->type);
    if (st != AX_OK) {
        ax_tensor_free(out);
        return st;
    }
    *y = out;
    return AX_OK;
}

/* ==== state dict files ========================================================================= */

void ax_load_report_clear(ax_load_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_missing; i++) free(r->missing[i]);
    for (size_t i = 0; i < r->n_unexpected; i++) free(r->unexpected[i]);
    free(r->missing);
    free(r->unexpected);
    memset(r, 0, sizeof *r);
}

/* Everything a load works out before it changes anything. */
typedef struct ax_load_plan {
    ax_nt_builder sd;
    ax_tensor **src;    /* per state-dict key: the file's tensor, or NULL */
    bool *satisfied;    /* per key: it or an alias has a file tensor */
    bool *used;         /* per file tensor: some key took it */
    size_t n_file;
} ax_load_plan;

static void ax_load_plan_clear(ax_load_plan *p) {
    if (p->src)
        for (size_t i = 0; i < p->sd.l.n; i++) ax_tensor_free(p->src[i]);
    free(p->src);
    free(p->satisfied);
    free(p->used);
    ax_nt_builder_clear(&p->sd);
}

static bool ax_dtype_kinds_match(ax_dtype file, ax_dtype model) {
    return ax_dtype_is_float(file) == ax_dtype_is_float(model);
}

/* Reads and checks the file tensor for state-dict key i (shape and dtype kind). */
static ax_status ax_load_take(ax_load_plan *p, const ax_safetensors *f, size_t i, const char *path) {
    const char *key = p->sd.l.names[i];
    const ax_tensor *dst = p->sd.l.tensors[i];
    if (ax_safetensors_get(f, key, &p->src[i]) != AX_OK)
        return ax_error_prefix("ax_module_load_safetensors: %s: %s", path, key);
    const ax_tensor *src = p->src[i];
    char a[200], b[200];
    if (src->ndim != dst->ndim || memcmp(src->shape, dst->shape, (size_t)dst->ndim * sizeof(int64_t)) != 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_module_load_safetensors: %s: %s: file has %s, model has %s", path, key,
                        ax_shape_str(a, sizeof a, src->ndim, src->shape),
                        ax_shape_str(b, sizeof b, dst->ndim, dst->shape));
    if (!ax_dtype_kinds_match(src->dtype, dst->dtype))
        return AX_ERROR(AX_ERR_INVALID,
                        "ax_module_load_safetensors: %s: %s: file has dtype %s, model has %s (no conversion "
                        "between floating and integer tensors)",
                        path, key, ax_dtype_name(src->dtype), ax_dtype_name(dst->dtype));
    return AX_OK;
}

/* Matches keys with file tensors and checks them. */
static ax_status ax_load_match(ax_load_plan *p, const ax_safetensors *f, const char *path) {
    size_t n = p->sd.l.n;
    p->n_file = ax_safetensors_count(f);
    p->src = calloc(n ? n : 1, sizeof *p->src);
    p->satisfied = calloc(n ? n : 1, sizeof *p->satisfied);
    p->used = calloc(p->n_file ? p->n_file : 1, sizeof *p->used);
    if (!p->src || !p->satisfied || !p->used)
        return AX_ERROR(AX_ERR_NOMEM, "ax_module_load_safetensors: %s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < p->n_file; j++) {
            if (strcmp(ax_safetensors_name(f, j), p->sd.l.names[i]) != 0) continue;
            p->used[j] = true;
            if (ax_load_take(p, f, i, path) != AX_OK) return ax_error_status();
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < n && !p->satisfied[i]; k++)
            p->satisfied[i] = p->src[k] && p->sd.l.tensors[k] == p->sd.l.tensors[i];
    }
    return AX_OK;
}

static ax_status ax_report_add(char ***v, size_t *n, const char *name) {
    char *copy = ax_strdup(name);
    char **grown = copy ? realloc(*v, (*n + 1) * sizeof **v) : NULL;
    if (!grown) {
        free(copy);
        return AX_ERROR(AX_ERR_NOMEM, "ax_module_load_safetensors: out of memory");
    }
    *v = grown;
    grown[(*n)++] = copy;
    return AX_OK;
}

static ax_status ax_load_fill_report(const ax_load_plan *p, const ax_safetensors *f, ax_load_report *r) {
    for (size_t i = 0; i < p->sd.l.n; i++)
        if (!p->satisfied[i] && !p->sd.zero_if_missing[i] &&
            ax_report_add(&r->missing, &r->n_missing, p->sd.l.names[i]) != AX_OK)
            return ax_error_status();
    for (size_t j = 0; j < p->n_file; j++)
        if (!p->used[j] && ax_report_add(&r->unexpected, &r->n_unexpected, ax_safetensors_name(f, j)) != AX_OK)
            return ax_error_status();
    return AX_OK;
}

/* "a, b, c (and 4 more)" into buf. */
static void ax_list_names(char *buf, size_t size, char *const *names, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    const size_t shown = n < 6 ? n : 6;
    for (size_t i = 0; i < shown && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", names[i]);
    if (n > shown && len < size) snprintf(buf + len, size - len, " (and %zu more)", n - shown);
}

static ax_status ax_load_strict_error(const char *path, const ax_load_report *r) {
    char miss[1024] = "", unexp[1024] = "";
    ax_list_names(miss, sizeof miss, r->missing, r->n_missing);
    ax_list_names(unexp, sizeof unexp, r->unexpected, r->n_unexpected);
    if (r->n_missing && r->n_unexpected)
        return AX_ERROR(AX_ERR_INVALID,
                        "ax_module_load_safetensors: %s: %zu missing key%s: %s; %zu unexpected key%s: %s", path,
                        r->n_missing, r->n_missing == 1 ? "" : "s", miss, r->n_unexpected,
                        r->n_unexpected == 1 ? "" : "s", unexp);
    if (r->n_missing)
        return AX_ERROR(AX_ERR_NOT_FOUND, "ax_module_load_safetensors: %s: %zu missing key%s: %s", path, r->n_missing,
                        r->n_missing == 1 ? "" : "s", miss);
    return AX_ERROR(AX_ERR_INVALID, "ax_module_load_safetensors: %s: %zu unexpected key%s: %s", path,
                    r->n_unexpected, r->n_unexpected == 1 ? "" : "s", unexp);
}

static ax_status ax_load_apply(const ax_load_plan *p, const char *path) {
    ax_status st = AX_OK;
    ax_no_grad_begin();
    for (size_t i = 0; st == AX_OK && i < p->sd.l.n; i++) {
        ax_tensor *dst = p->sd.l.tensors[i];
        if (p->src[i] && dst->storage->device.type != AX_DEVICE_CPU) { /* a module moved to a device */
            ax_tensor *d = NULL;
            st = ax_tensor_to_device(&d, p->src[i], dst->storage->device);
            if (st == AX_OK) st = ax_tensor_copy_(dst, d);
            ax_tensor_free(d);
        } else if (p->src[i]) {
            st = ax_tensor_copy_(dst, p->src[i]);
        } else if (!p->satisfied[i] && p->sd.zero_if_missing[i]) {
            st = ax_tensor_fill_(dst, 0.0);
        }
        if (st != AX_OK) ax_error_prefix("ax_module_load_safetensors: %s: %s", path, p->sd.l.names[i]);
    }
    ax_no_grad_end();
    return st;
}

ax_status ax_module_load_safetensors(ax_module *m, const char *path, bool strict, ax_load_report *report) {
    if (!m || !path) return AX_ERROR(AX_ERR_INVALID, "ax_module_load_safetensors: %s is NULL", m ? "path" : "module");
    ax_load_plan p = {0};
    ax_load_report local = {0}, *r = report ? report : &local;
    ax_safetensors *f = NULL;
    ax_status st = ax_collect_run("ax_module_load_safetensors", m, AX_COLLECT_STATE, &p.sd);
    if (st == AX_OK) {
        st = ax_safetensors_open(&f, path);
        if (st != AX_OK) ax_error_prefix("ax_module_load_safetensors");
    }
    if (st == AX_OK) st = ax_load_match(&p, f, path);
    if (st == AX_OK) st = ax_load_fill_report(&p, f, r);
    if (st == AX_OK && strict && (r->n_missing || r->n_unexpected)) st = ax_load_strict_error(path, r);
    if (st == AX_OK) st = ax_load_apply(&p, path);
    ax_load_plan_clear(&p);
    ax_safetensors_close(f);
    ax_load_report_clear(&local);
    return st;
}

ax_status ax_module_save_safetensors(const ax_module *m, const char *path, size_t n_meta,
                                     const char *const *meta_keys, const char *const *meta_values) {
    if (!m || !path) return AX_ERROR(AX_ERR_INVALID, "ax_module_save_safetensors: %s is NULL", m ? "path" : "module");
    ax_named_tensors sd;
    if (ax_module_state_dict(m, &sd) != AX_OK) return ax_error_prefix("ax_module_save_safetensors");
    ax_status st = AX_OK;
    /* a module on a device is written from CPU copies */
    for (size_t i = 0; i < sd.n && st == AX_OK; i++) {
        if (sd.tensors[i]->storage->device.type == AX_DEVICE_CPU) continue;
        ax_tensor *h = NULL;
        ax_no_grad_begin();
        st = ax_tensor_to_device(&h, sd.tensors[i], AX_CPU);
        ax_no_grad_end();
        if (st == AX_OK) ax_tensor_free(sd.tensors[i]), sd.tensors[i] = h;
    }
    if (st == AX_OK) st = ax_safetensors_save(path, sd.n, (const char *const *)sd.names, (const ax_tensor *const *)sd.tensors,
                                       n_meta, meta_keys, meta_values);
    if (st != AX_OK) ax_error_prefix("ax_module_save_safetensors");
    ax_named_tensors_clear(&sd);
    return st;
}

/* ==== printing ================================================================================== */

static void ax_indent(FILE *f, int n) {
    for (int i = 0; i < n; i++) fputc(' ', f);
}

static void ax_print_rec(const ax_module *m, FILE *f, int indent) {
    char extra[512] = "";
    if (m->cls.extra_repr) m->cls.extra_repr(m, extra, sizeof extra);
    fprintf(f, "%s(", m->type);
    if (!m->n_children) {
        fprintf(f, "%s)", extra);
        return;
    }
    fputc('\n', f);
    if (extra[0]) {
        ax_indent(f, indent + 2);
        fprintf(f, "%s\n", extra);
    }
    for (size_t i = 0; i < m->n_children; i++) {
        ax_indent(f, indent + 2);
        fprintf(f, "(%s): ", m->children[i].name);
        ax_print_rec(m->children[i].m, f, indent + 2);
        fputc('\n', f);
    }
    ax_indent(f, indent);
    fputc(')', f);
}

void ax_module_print(const ax_module *m, FILE *f) {
    if (!m || !f) return;
    ax_print_rec(m, f, 0);
    fputc('\n', f);
}

/* ==== built-in modules ============================================================================ */

/* A built-in with a calloc'd state struct of `size` bytes (freed with free). */
static ax_status ax_builtin_new(ax_module **out, const ax_module_class *cls, size_t size, void **state) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_nn: %s: out is NULL", cls->name);
    *out = NULL;
    void *s = NULL;
    if (size) {
        s = calloc(1, size);
        if (!s) return AX_ERROR(AX_ERR_NOMEM, "ax_nn: %s: out of memory", cls->name);
    }
    if (ax_module_new(out, cls, s) != AX_OK) return ax_error_status();
    if (state) *state = s;
    return AX_OK;
}

/* Registers a new f32 parameter of `shape`; *t (borrowed) is it. */
static ax_status ax_new_param(ax_module *m, const char *name, int ndim, const int64_t *shape, ax_tensor **t) {
    ax_tensor *p;
    *t = NULL;
    if (ax_tensor_zeros(&p, ndim, shape, AX_DTYPE_F32) != AX_OK) return ax_error_status();
    *t = p;
    return ax_module_add_parameter(m, name, p);
}

static ax_status ax_new_buffer(ax_module *m, const char *name, int ndim, const int64_t *shape, ax_dtype dtype,
                               double value, ax_tensor **t) {
    ax_tensor *b;
    if (ax_tensor_full(&b, ndim, shape, dtype, value) != AX_OK) return ax_error_status();
    if (t) *t = b;
    return ax_module_add_buffer(m, name, b, true);
}

/* Frees a half-built module and returns the pending error. */
static ax_status ax_builtin_fail(ax_module **out) {
    ax_module_free(*out);
    *out = NULL;
    return ax_error_status();
}

static int ax_repr_triple(char *buf, size_t size, const char *key, const int64_t v[3]) {
    return snprintf(buf, size, ", %s=(%lld, %lld, %lld)", key, (long long)v[0], (long long)v[1], (long long)v[2]);
}

/* ---- Conv3d / ConvTranspose3d / Linear -------------------------------------------------------------- */

typedef struct ax_conv_state {
    int64_t in, out, kernel[3];
    ax_conv_params p;
    bool bias;
} ax_conv_state;

static ax_status ax_conv_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_conv_state *s = self->state;
    return ax_conv3d(out, x, ax_own_param(self, "weight"), ax_own_param(self, "bias"), &s->p);
}

static ax_status ax_conv_t_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_conv_state *s = self->state;
    return ax_conv_transpose3d(out, x, ax_own_param(self, "weight"), ax_own_param(self, "bias"), &s->p);
}

static void ax_conv_repr(const ax_module *self, char *buf, size_t size) {
    const ax_conv_state *s = self->state;
    const int64_t one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    int len = snprintf(buf, size, "%lld, %lld", (long long)s->in, (long long)s->out);
    if (len >= 0 && (size_t)len < size) len += ax_repr_triple(buf + len, size - len, "kernel_size", s->kernel);
    if (len >= 0 && (size_t)len < size) len += ax_repr_triple(buf + len, size - len, "stride", s->p.stride);
    if (len >= 0 && (size_t)len < size && memcmp(s->p.padding, zero, sizeof zero))
        len += ax_repr_triple(buf + len, size - len, "padding", s->p.padding);
    if (len >= 0 && (size_t)len < size && memcmp(s->p.dilation, one, sizeof one))
        len += ax_repr_triple(buf + len, size - len, "dilation", s->p.dilation);
    if (len >= 0 && (size_t)len < size && memcmp(s->p.output_padding, zero, sizeof zero))
        len += ax_repr_triple(buf + len, size - len, "output_padding", s->p.output_padding);
    if (len >= 0 && (size_t)len < size && s->p.groups != 1)
        len += snprintf(buf + len, size - len, ", groups=%lld", (long long)s->p.groups);
    if (len >= 0 && (size_t)len < size && !s->bias) snprintf(buf + len, size - len, ", bias=False");
}

static void ax_linear_repr(const ax_module *self, char *buf, size_t size) {
    const ax_conv_state *s = self->state;
    snprintf(buf, size, "in_features=%lld, out_features=%lld, bias=%s", (long long)s->in, (long long)s->out,
             s->bias ? "True" : "False");
}

static const ax_module_class ax_conv3d_class = {"Conv3d", ax_conv_forward, free, ax_conv_repr};
static const ax_module_class ax_conv_t3d_class = {"ConvTranspose3d", ax_conv_t_forward, free, ax_conv_repr};

/* torch's _ConvNd/Linear reset_parameters: kaiming_uniform_(a=sqrt(5)),
 * then bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with weight's fan_in. */
static ax_status ax_reset_affine(ax_tensor *w, ax_tensor *b, ax_rng *rng) {
    if (ax_init_kaiming_uniform_(w, sqrt(5.0), AX_FAN_IN, AX_NL_LEAKY_RELU, rng) != AX_OK) return ax_error_status();
    if (!b) return AX_OK;
    int64_t fan_in;
    if (ax_init_fans(w, &fan_in, NULL) != AX_OK) return ax_error_status();
    if (fan_in == 0) return AX_OK;
    double bound = 1.0 / sqrt((double)fan_in);
    return ax_init_uniform_(b, -bound, bound, rng);
}

static ax_status ax_check_conv_args(const char *fn, int64_t in, int64_t out, const int64_t kernel[3],
                                    const ax_conv_params *p, bool transposed, ax_rng *rng) {
    if (in <= 0 || out <= 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: in_channels %lld and out_channels %lld must be positive", fn,
                        (long long)in, (long long)out);
    if (!kernel) return AX_ERROR(AX_ERR_INVALID, "%s: kernel is NULL", fn);
    if (!rng) return AX_ERROR(AX_ERR_INVALID, "%s: rng is NULL", fn);
    for (int d = 0; d < 3; d++) {
        if (kernel[d] <= 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: kernel (%lld, %lld, %lld) must be positive", fn,
                            (long long)kernel[0], (long long)kernel[1], (long long)kernel[2]);
        if (p->stride[d] <= 0 || p->dilation[d] <= 0 || p->padding[d] < 0 || p->output_padding[d] < 0)
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: dim %d: stride %lld and dilation %lld must be positive, padding %lld and "
                            "output_padding %lld non-negative",
                            fn, d, (long long)p->stride[d], (long long)p->dilation[d], (long long)p->padding[d],
                            (long long)p->output_padding[d]);
        if (!transposed && p->output_padding[d] != 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: output_padding must be 0 for a (non-transposed) convolution", fn);
    }
    if (p->groups <= 0 || in % p->groups || out % p->groups)
        return AX_ERROR(AX_ERR_INVALID, "%s: groups %lld must be positive and divide in_channels %lld and "
                                        "out_channels %lld",
                        fn, (long long)p->groups, (long long)in, (long long)out);
    return AX_OK;
}

static ax_status ax_conv_build(ax_module **out, const ax_module_class *cls, const char *fn, int64_t in, int64_t co,
                               const int64_t kernel[3], const ax_conv_params *p, bool bias, ax_rng *rng) {
    if (out) *out = NULL;
    ax_conv_params q = p ? *p : ax_conv_params_default();
    bool transposed = cls == &ax_conv_t3d_class;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (ax_check_conv_args(fn, in, co, kernel, &q, transposed, rng) != AX_OK) return ax_error_status();
    ax_conv_state *s;
    if (ax_builtin_new(out, cls, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    *s = (ax_conv_state){in, co, {kernel[0], kernel[1], kernel[2]}, q, bias};
    int64_t wshape[5] = {transposed ? in : co, (transposed ? co : in) / q.groups, kernel[0], kernel[1], kernel[2]};
    ax_tensor *w = NULL, *b = NULL;
    if (ax_new_param(*out, "weight", 5, wshape, &w) != AX_OK) return ax_builtin_fail(out);
    if (bias && ax_new_param(*out, "bias", 1, &co, &b) != AX_OK) return ax_builtin_fail(out);
    if (ax_reset_affine(w, b, rng) != AX_OK) {
        ax_error_prefix("%s", fn);
        return ax_builtin_fail(out);
    }
    return AX_OK;
}

ax_status ax_nn_conv3d_new(ax_module **out, int64_t in_channels, int64_t out_channels, const int64_t kernel[3],
                           const ax_conv_params *p, bool bias, ax_rng *rng) {
    return ax_conv_build(out, &ax_conv3d_class, "ax_nn_conv3d_new", in_channels, out_channels, kernel, p, bias, rng);
}

ax_status ax_nn_conv_transpose3d_new(ax_module **out, int64_t in_channels, int64_t out_channels,
                                     const int64_t kernel[3], const ax_conv_params *p, bool bias, ax_rng *rng) {
    return ax_conv_build(out, &ax_conv_t3d_class, "ax_nn_conv_transpose3d_new", in_channels, out_channels, kernel,
                         p, bias, rng);
}

static ax_status ax_linear_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    return ax_linear(out, x, ax_own_param(self, "weight"), ax_own_param(self, "bias"));
}

static const ax_module_class ax_linear_class = {"Linear", ax_linear_forward, free, ax_linear_repr};

ax_status ax_nn_linear_new(ax_module **out, int64_t in_features, int64_t out_features, bool bias, ax_rng *rng) {
    const char *fn = "ax_nn_linear_new";
    if (out) *out = NULL;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (in_features < 0 || out_features < 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: in_features %lld and out_features %lld must be >= 0", fn,
                        (long long)in_features, (long long)out_features);
    if (!rng) return AX_ERROR(AX_ERR_INVALID, "%s: rng is NULL", fn);
    ax_conv_state *s;
    if (ax_builtin_new(out, &ax_linear_class, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    s->in = in_features;
    s->out = out_features;
    s->bias = bias;
    int64_t wshape[2] = {out_features, in_features};
    ax_tensor *w = NULL, *b = NULL;
    if (ax_new_param(*out, "weight", 2, wshape, &w) != AX_OK) return ax_builtin_fail(out);
    if (bias && ax_new_param(*out, "bias", 1, &out_features, &b) != AX_OK) return ax_builtin_fail(out);
    if (ax_reset_affine(w, b, rng) != AX_OK) {
        ax_error_prefix("%s", fn);
        return ax_builtin_fail(out);
    }
    return AX_OK;
}

/* ---- normalisation ------------------------------------------------------------------------------------ */

typedef struct ax_norm_state {
    int64_t channels, groups;
    double eps, momentum;
    bool affine, track, bias;
    int n_norm;
    int64_t norm_shape[AX_MAX_DIMS];
} ax_norm_state;

static ax_status ax_need_5d(const char *type, const ax_tensor *x) {
    if (x->ndim == 5) return AX_OK;
    char s[160];
    return AX_ERROR(AX_ERR_INVALID, "%s: expected a 5-D input [N, C, D, H, W], got x %s", type,
                    ax_shape_str(s, sizeof s, x->ndim, x->shape));
}

static ax_status ax_instance_norm_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_norm_state *s = self->state;
    if (ax_need_5d("InstanceNorm3d", x) != AX_OK) return ax_error_status();
    return ax_instance_norm(out, x, ax_own_param(self, "weight"), ax_own_param(self, "bias"), s->eps);
}

static ax_status ax_group_norm_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_norm_state *s = self->state;
    return ax_group_norm(out, x, s->groups, ax_own_param(self, "weight"), ax_own_param(self, "bias"), s->eps);
}

static ax_status ax_layer_norm_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_norm_state *s = self->state;
    return ax_layer_norm(out, x, s->n_norm, ax_own_param(self, "weight"), ax_own_param(self, "bias"), s->eps);
}

/* torch's _BatchNorm.forward. */
static ax_status ax_batch_norm_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_norm_state *s = self->state;
    if (ax_need_5d("BatchNorm3d", x) != AX_OK) return ax_error_status();
    ax_tensor *rm = ax_own_buffer(self, "running_mean"), *rv = ax_own_buffer(self, "running_var");
    ax_tensor *nbt = ax_own_buffer(self, "num_batches_tracked");
    double factor = isnan(s->momentum) ? 0.0 : s->momentum;
    if (self->training && s->track && nbt) {
        ax_tensor_set(nbt, 0, ax_tensor_get(nbt, 0) + 1);
        if (isnan(s->momentum)) factor = 1.0 / ax_tensor_get(nbt, 0);
    }
    bool batch_stats = self->training || (!rm && !rv);
    bool use_running = !self->training || s->track;
    return ax_batch_norm(out, x, use_running ? rm : NULL, use_running ? rv : NULL, ax_own_param(self, "weight"),
                         ax_own_param(self, "bias"), batch_stats, factor, s->eps);
}

static void ax_inorm_repr(const ax_module *self, char *buf, size_t size) {
    const ax_norm_state *s = self->state;
    snprintf(buf, size, "%lld, eps=%g, momentum=%g, affine=%s, track_running_stats=False", (long long)s->channels,
             s->eps, s->momentum, s->affine ? "True" : "False");
}

static void ax_bnorm_repr(const ax_module *self, char *buf, size_t size) {
    const ax_norm_state *s = self->state;
    char mom[32];
    if (isnan(s->momentum))
        snprintf(mom, sizeof mom, "None");
    else
        snprintf(mom, sizeof mom, "%g", s->momentum);
    snprintf(buf, size, "%lld, eps=%g, momentum=%s, affine=%s, track_running_stats=%s", (long long)s->channels,
             s->eps, mom, s->affine ? "True" : "False", s->track ? "True" : "False");
}

static void ax_gnorm_repr(const ax_module *self, char *buf, size_t size) {
    const ax_norm_state *s = self->state;
    snprintf(buf, size, "%lld, %lld, eps=%g, affine=%s", (long long)s->groups, (long long)s->channels, s->eps,
             s->affine ? "True" : "False");
}

static void ax_lnorm_repr(const ax_module *self, char *buf, size_t size) {
    const ax_norm_state *s = self->state;
    int len = snprintf(buf, size, "(");
    for (int i = 0; i < s->n_norm && len >= 0 && (size_t)len < size; i++)
        len += snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)s->norm_shape[i]);
    if (len >= 0 && (size_t)len < size)
        snprintf(buf + len, size - len, "%s), eps=%g, elementwise_affine=%s", s->n_norm == 1 ? "," : "", s->eps,
                 s->affine ? "True" : "False");
}

static const ax_module_class ax_inorm_class = {"InstanceNorm3d", ax_instance_norm_forward, free, ax_inorm_repr};
static const ax_module_class ax_gnorm_class = {"GroupNorm", ax_group_norm_forward, free, ax_gnorm_repr};
static const ax_module_class ax_lnorm_class = {"LayerNorm", ax_layer_norm_forward, free, ax_lnorm_repr};
static const ax_module_class ax_bnorm_class = {"BatchNorm3d", ax_batch_norm_forward, free, ax_bnorm_repr};

/* weight = ones, bias = zeros, of `shape`. */
static ax_status ax_affine_params(ax_module *m, int ndim, const int64_t *shape, bool bias) {
    ax_tensor *w = NULL, *b = NULL;
    if (ax_new_param(m, "weight", ndim, shape, &w) != AX_OK || ax_init_ones_(w) != AX_OK) return ax_error_status();
    if (bias && ax_new_param(m, "bias", ndim, shape, &b) != AX_OK) return ax_error_status();
    return AX_OK;
}

static ax_status ax_check_eps(const char *fn, double eps) {
    if (eps > 0 && isfinite(eps)) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: eps = %g must be positive", fn, eps);
}

ax_status ax_nn_instance_norm3d_new(ax_module **out, int64_t num_features, double eps, double momentum,
                                    bool affine, bool track_running_stats) {
    const char *fn = "ax_nn_instance_norm3d_new";
    if (out) *out = NULL;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (num_features <= 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: num_features %lld must be positive", fn, (long long)num_features);
    if (ax_check_eps(fn, eps) != AX_OK) return ax_error_status();
    if (track_running_stats)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: track_running_stats=True is not supported (nnU-Net and "
                                            "OpenMind use InstanceNorm3d without running statistics)",
                        fn);
    ax_norm_state *s;
    if (ax_builtin_new(out, &ax_inorm_class, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    *s = (ax_norm_state){.channels = num_features, .eps = eps, .momentum = momentum, .affine = affine};
    if (affine && ax_affine_params(*out, 1, &num_features, true) != AX_OK) return ax_builtin_fail(out);
    return AX_OK;
}

ax_status ax_nn_group_norm_new(ax_module **out, int64_t num_groups, int64_t num_channels, double eps, bool affine) {
    const char *fn = "ax_nn_group_norm_new";
    if (out) *out = NULL;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (num_groups <= 0 || num_channels <= 0 || num_channels % num_groups)
        return AX_ERROR(AX_ERR_INVALID, "%s: num_channels %lld must be divisible by num_groups %lld (both positive)",
                        fn, (long long)num_channels, (long long)num_groups);
    if (ax_check_eps(fn, eps) != AX_OK) return ax_error_status();
    ax_norm_state *s;
    if (ax_builtin_new(out, &ax_gnorm_class, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    *s = (ax_norm_state){.channels = num_channels, .groups = num_groups, .eps = eps, .affine = affine};
    if (affine && ax_affine_params(*out, 1, &num_channels, true) != AX_OK) return ax_builtin_fail(out);
    return AX_OK;
}

ax_status ax_nn_layer_norm_new(ax_module **out, int n, const int64_t *normalized_shape, double eps,
                               bool elementwise_affine, bool bias) {
    const char *fn = "ax_nn_layer_norm_new";
    if (out) *out = NULL;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (n < 1 || n > AX_MAX_DIMS || !normalized_shape)
        return AX_ERROR(AX_ERR_INVALID, "%s: normalized_shape needs 1 to %d dims, got %d", fn, AX_MAX_DIMS, n);
    for (int i = 0; i < n; i++)
        if (normalized_shape[i] <= 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: normalized_shape[%d] = %lld must be positive", fn, i,
                            (long long)normalized_shape[i]);
    if (ax_check_eps(fn, eps) != AX_OK) return ax_error_status();
    ax_norm_state *s;
    if (ax_builtin_new(out, &ax_lnorm_class, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    *s = (ax_norm_state){.eps = eps, .affine = elementwise_affine, .bias = bias, .n_norm = n};
    memcpy(s->norm_shape, normalized_shape, (size_t)n * sizeof(int64_t));
    if (elementwise_affine && ax_affine_params(*out, n, normalized_shape, bias) != AX_OK) return ax_builtin_fail(out);
    return AX_OK;
}

ax_status ax_nn_batch_norm3d_new(ax_module **out, int64_t num_features, double eps, double momentum, bool affine,
                                 bool track_running_stats) {
    const char *fn = "ax_nn_batch_norm3d_new";
    if (out) *out = NULL;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (num_features <= 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: num_features %lld must be positive", fn, (long long)num_features);
    if (ax_check_eps(fn, eps) != AX_OK) return ax_error_status();
    if (!isnan(momentum) && !(momentum >= 0 && momentum <= 1))
        return AX_ERROR(AX_ERR_INVALID, "%s: momentum = %g must be in [0, 1] (or NAN for a cumulative average)", fn,
                        momentum);
    ax_norm_state *s;
    if (ax_builtin_new(out, &ax_bnorm_class, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    *s = (ax_norm_state){
        .channels = num_features, .eps = eps, .momentum = momentum, .affine = affine, .track = track_running_stats};
    if (affine && ax_affine_params(*out, 1, &num_features, true) != AX_OK) return ax_builtin_fail(out);
    if (track_running_stats) {
        if (ax_new_buffer(*out, "running_mean", 1, &num_features, AX_DTYPE_F32, 0.0, NULL) != AX_OK ||
            ax_new_buffer(*out, "running_var", 1, &num_features, AX_DTYPE_F32, 1.0, NULL) != AX_OK ||
            ax_new_buffer(*out, "num_batches_tracked", 0, NULL, AX_DTYPE_I64, 0.0, NULL) != AX_OK)
            return ax_builtin_fail(out);
        (*out)->buffers[(*out)->n_buffers - 1].zero_if_missing = true;
    }
    return AX_OK;
}

/* ---- activations, identity, dropout, pooling ------------------------------------------------------------ */

typedef struct ax_act_state {
    double value; /* negative_slope, or dropout p */
    bool flag;    /* GELU: tanh approximation */
} ax_act_state;

static ax_status ax_relu_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    (void)self;
    return ax_relu(out, x);
}

static ax_status ax_leaky_relu_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_act_state *s = self->state;
    return ax_leaky_relu(out, x, s->value);
}

static ax_status ax_gelu_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_act_state *s = self->state;
    return ax_gelu(out, x, s->flag);
}

static ax_status ax_silu_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    (void)self;
    return ax_silu(out, x);
}

static ax_status ax_sigmoid_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    (void)self;
    return ax_sigmoid(out, x);
}

static ax_status ax_tanh_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    (void)self;
    return ax_tanh(out, x);
}

static ax_status ax_identity_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    (void)self;
    *out = ax_tensor_retain((ax_tensor *)x);
    return AX_OK;
}

static ax_status ax_dropout_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_act_state *s = self->state;
    uint64_t seed = 0, stream = 0;
    bool active = self->training && s->value > 0;
    if (active) ax_module_next_stream(self, &seed, &stream);
    return ax_dropout(out, x, s->value, active, seed, stream);
}

static void ax_leaky_repr(const ax_module *self, char *buf, size_t size) {
    snprintf(buf, size, "negative_slope=%g", ((const ax_act_state *)self->state)->value);
}

static void ax_gelu_repr(const ax_module *self, char *buf, size_t size) {
    snprintf(buf, size, "approximate='%s'", ((const ax_act_state *)self->state)->flag ? "tanh" : "none");
}

static void ax_dropout_repr(const ax_module *self, char *buf, size_t size) {
    snprintf(buf, size, "p=%g, inplace=False", ((const ax_act_state *)self->state)->value);
}

static const ax_module_class ax_relu_class = {"ReLU", ax_relu_forward, NULL, NULL};
static const ax_module_class ax_leaky_class = {"LeakyReLU", ax_leaky_relu_forward, free, ax_leaky_repr};
static const ax_module_class ax_gelu_class = {"GELU", ax_gelu_forward, free, ax_gelu_repr};
static const ax_module_class ax_silu_class = {"SiLU", ax_silu_forward, NULL, NULL};
static const ax_module_class ax_sigmoid_class = {"Sigmoid", ax_sigmoid_forward, NULL, NULL};
static const ax_module_class ax_tanh_class = {"Tanh", ax_tanh_forward, NULL, NULL};
static const ax_module_class ax_identity_class = {"Identity", ax_identity_forward, NULL, NULL};
static const ax_module_class ax_dropout_class = {"Dropout", ax_dropout_forward, free, ax_dropout_repr};

static ax_status ax_act_new(ax_module **out, const ax_module_class *cls, double value, bool flag) {
    ax_act_state *s = NULL;
    if (ax_builtin_new(out, cls, cls->free_state ? sizeof *s : 0, (void **)&s) != AX_OK) return ax_error_status();
    if (s) *s = (ax_act_state){value, flag};
    return AX_OK;
}

ax_status ax_nn_relu_new(ax_module **out) { return ax_act_new(out, &ax_relu_class, 0, false); }

ax_status ax_nn_leaky_relu_new(ax_module **out, double negative_slope) {
    if (!isfinite(negative_slope)) {
        if (out) *out = NULL;
        return AX_ERROR(AX_ERR_INVALID, "ax_nn_leaky_relu_new: negative_slope = %g is not finite", negative_slope);
    }
    return ax_act_new(out, &ax_leaky_class, negative_slope, false);
}

ax_status ax_nn_gelu_new(ax_module **out, bool approximate_tanh) {
    return ax_act_new(out, &ax_gelu_class, 0, approximate_tanh);
}

ax_status ax_nn_silu_new(ax_module **out) { return ax_act_new(out, &ax_silu_class, 0, false); }
ax_status ax_nn_sigmoid_new(ax_module **out) { return ax_act_new(out, &ax_sigmoid_class, 0, false); }
ax_status ax_nn_tanh_new(ax_module **out) { return ax_act_new(out, &ax_tanh_class, 0, false); }
ax_status ax_nn_identity_new(ax_module **out) { return ax_act_new(out, &ax_identity_class, 0, false); }

ax_status ax_nn_dropout_new(ax_module **out, double p) {
    if (!(p >= 0 && p <= 1)) {
        if (out) *out = NULL;
        return AX_ERROR(AX_ERR_INVALID, "ax_nn_dropout_new: dropout probability has to be between 0 and 1, but got %g",
                        p);
    }
    return ax_act_new(out, &ax_dropout_class, p, false);
}

typedef struct ax_pool_state {
    int64_t kernel[3], stride[3], padding[3];
    bool ceil_mode, count_include_pad;
} ax_pool_state;

static ax_status ax_max_pool_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_pool_state *s = self->state;
    return ax_max_pool3d(out, NULL, x, s->kernel, s->stride, s->padding, s->ceil_mode);
}

static ax_status ax_avg_pool_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_pool_state *s = self->state;
    return ax_avg_pool3d(out, x, s->kernel, s->stride, s->padding, s->ceil_mode, s->count_include_pad);
}

static void ax_pool_repr(const ax_module *self, char *buf, size_t size) {
    const ax_pool_state *s = self->state;
    int len = snprintf(buf, size, "kernel_size=(%lld, %lld, %lld)", (long long)s->kernel[0], (long long)s->kernel[1],
                       (long long)s->kernel[2]);
    if (len >= 0 && (size_t)len < size) len += ax_repr_triple(buf + len, size - len, "stride", s->stride);
    if (len >= 0 && (size_t)len < size) ax_repr_triple(buf + len, size - len, "padding", s->padding);
}

static const ax_module_class ax_max_pool_class = {"MaxPool3d", ax_max_pool_forward, free, ax_pool_repr};
static const ax_module_class ax_avg_pool_class = {"AvgPool3d", ax_avg_pool_forward, free, ax_pool_repr};

static ax_status ax_pool_new(ax_module **out, const ax_module_class *cls, const char *fn, const int64_t kernel[3],
                             const int64_t stride[3], const int64_t padding[3], bool ceil_mode,
                             bool count_include_pad) {
    if (out) *out = NULL;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (!kernel) return AX_ERROR(AX_ERR_INVALID, "%s: kernel is NULL", fn);
    for (int d = 0; d < 3; d++)
        if (kernel[d] <= 0 || (stride && stride[d] <= 0) || (padding && padding[d] < 0))
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: dim %d: kernel %lld and stride %lld must be positive, padding %lld >= 0", fn, d,
                            (long long)kernel[d], (long long)(stride ? stride[d] : kernel[d]),
                            (long long)(padding ? padding[d] : 0));
    ax_pool_state *s;
    if (ax_builtin_new(out, cls, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    for (int d = 0; d < 3; d++) {
        s->kernel[d] = kernel[d];
        s->stride[d] = stride ? stride[d] : kernel[d];
        s->padding[d] = padding ? padding[d] : 0;
    }
    s->ceil_mode = ceil_mode;
    s->count_include_pad = count_include_pad;
    return AX_OK;
}

ax_status ax_nn_max_pool3d_new(ax_module **out, const int64_t kernel[3], const int64_t stride[3],
                               const int64_t padding[3], bool ceil_mode) {
    return ax_pool_new(out, &ax_max_pool_class, "ax_nn_max_pool3d_new", kernel, stride, padding, ceil_mode, false);
}

ax_status ax_nn_avg_pool3d_new(ax_module **out, const int64_t kernel[3], const int64_t stride[3],
                               const int64_t padding[3], bool ceil_mode, bool count_include_pad) {
    return ax_pool_new(out, &ax_avg_pool_class, "ax_nn_avg_pool3d_new", kernel, stride, padding, ceil_mode,
                       count_include_pad);
}

/* ---- Sequential ---------------------------------------------------------------------------------------------- */

static ax_status ax_sequential_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    ax_tensor *cur = ax_tensor_retain((ax_tensor *)x);
    for (size_t i = 0; i < self->n_children; i++) {
        ax_tensor *next;
        ax_module *c = self->children[i].m;
        ax_status st = ax_module_forward(c, &next, cur);
        ax_tensor_free(cur);
        if (st != AX_OK) return ax_error_prefix("Sequential[%s] (%s)", self->children[i].name, c->type);
        cur = next;
    }
    *out = cur;
    return AX_OK;
}

static const ax_module_class ax_sequential_class = {"Sequential", ax_sequential_forward, NULL, NULL};

ax_status ax_nn_sequential_append(ax_module *m, ax_module *child) {
    if (!m || m->origin != &ax_sequential_class) {
        ax_module_free(child);
        return AX_ERROR(AX_ERR_INVALID, "ax_nn_sequential_append: module is %s, not a Sequential",
                        m ? m->type : "NULL");
    }
    char name[32];
    snprintf(name, sizeof name, "%zu", m->n_children);
    return ax_module_add_child(m, name, child);
}

ax_status ax_nn_sequential_new(ax_module **out, size_t n, ax_module *const *children) {
    ax_status st = AX_OK;
    if (out) *out = NULL;
    if (!out) st = AX_ERROR(AX_ERR_INVALID, "ax_nn_sequential_new: out is NULL");
    if (st == AX_OK && n && !children) st = AX_ERROR(AX_ERR_INVALID, "ax_nn_sequential_new: children is NULL");
    if (st == AX_OK) st = ax_builtin_new(out, &ax_sequential_class, 0, NULL);
    size_t i = 0;
    for (; st == AX_OK && i < n; i++) {
        st = ax_nn_sequential_append(*out, children[i]);
        if (st != AX_OK) ax_error_prefix("ax_nn_sequential_new: child %zu", i);
    }
    if (st != AX_OK) {
        /* stolen: release the children not yet handed over */
        for (; children && i < n; i++) ax_module_free(children[i]);
        if (out) {
            ax_module_free(*out);
            *out = NULL;
        }
    }
    return st;
}

/* ---- Attention (timm) ------------------------------------------------------------------------------------------- */

typedef struct ax_attn_state {
    int64_t dim, heads, head_dim;
} ax_attn_state;

ax_nn_attention_opts ax_nn_attention_opts_default(void) {
    return (ax_nn_attention_opts){
        .num_heads = 8, .qkv_bias = false, .qk_norm = false, .scale_norm = false, .proj_bias = true,
        .norm_eps = 1e-5, .attn_drop = 0.0, .proj_drop = 0.0};
}

/* The part i (0 q, 1 k, 2 v) of qkv [B, N, 3 dim] as [B, heads, N, head_dim]. */
static ax_status ax_attn_split(ax_tensor **out, const ax_tensor *qkv5, int i) {
    ax_tensor *a = NULL, *b = NULL;
    ax_status st = ax_tensor_narrow(&a, qkv5, 2, i, 1);
    if (st == AX_OK) st = ax_tensor_squeeze(&b, a, 2);
    if (st == AX_OK) st = ax_tensor_transpose(out, b, 1, 2);
    ax_tensor_free(a);
    ax_tensor_free(b);
    return st;
}

/* softmax(q k^T * scale) with dropout on the weights, times v. */
static ax_status ax_attn_explicit(ax_module *drop, ax_tensor **out, const ax_tensor *q, const ax_tensor *k,
                                  const ax_tensor *v, double scale) {
    ax_tensor *qs = NULL, *kt = NULL, *s = NULL, *a = NULL, *ad = NULL;
    ax_status st = ax_mul_scalar(&qs, q, scale);
    if (st == AX_OK) st = ax_tensor_transpose(&kt, k, -2, -1);
    if (st == AX_OK) st = ax_matmul(&s, qs, kt);
    if (st == AX_OK) st = ax_softmax(&a, s, -1);
    if (st == AX_OK) st = ax_module_forward(drop, &ad, a);
    if (st == AX_OK) st = ax_matmul(out, ad, v);
    ax_tensor_free(qs);
    ax_tensor_free(kt);
    ax_tensor_free(s);
    ax_tensor_free(a);
    ax_tensor_free(ad);
    return st;
}

static bool ax_dropout_active(const ax_module *m) {
    return m->origin == &ax_dropout_class && m->training && ((const ax_act_state *)m->state)->value > 0;
}

/* Runs child `name` on *t in place of *t. */
static ax_status ax_attn_child(ax_module *self, const char *name, ax_tensor **t) {
    ax_tensor *next;
    ax_status st = ax_module_forward(ax_own_child(self, name, strlen(name)), &next, *t);
    if (st != AX_OK) return ax_error_prefix("Attention.%s", name);
    ax_tensor_free(*t);
    *t = next;
    return AX_OK;
}

static ax_status ax_attention_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_attn_state *s = self->state;
    char sh[160];
    if (x->ndim != 3 || x->shape[2] != s->dim)
        return AX_ERROR(AX_ERR_INVALID, "Attention: x %s must be [B, N, %lld]",
                        ax_shape_str(sh, sizeof sh, x->ndim, x->shape), (long long)s->dim);
    ax_tensor *qkv = NULL, *qkv5 = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL, *ot = NULL, *h = NULL;
    const int64_t shape5[5] = {x->shape[0], x->shape[1], 3, s->heads, s->head_dim};
    const int64_t shape3[3] = {x->shape[0], x->shape[1], s->dim};
    ax_module *drop = ax_own_child(self, "attn_drop", 9);
    ax_status st = ax_module_forward(ax_own_child(self, "qkv", 3), &qkv, x);
    if (st == AX_OK) st = ax_tensor_reshape(&qkv5, qkv, 5, shape5);
    if (st == AX_OK) st = ax_attn_split(&q, qkv5, 0);
    if (st == AX_OK) st = ax_attn_split(&k, qkv5, 1);
    if (st == AX_OK) st = ax_attn_split(&v, qkv5, 2);
    if (st == AX_OK) st = ax_attn_child(self, "q_norm", &q);
    if (st == AX_OK) st = ax_attn_child(self, "k_norm", &k);
    double scale = 1.0 / sqrt((double)s->head_dim);
    if (st == AX_OK)
        st = ax_dropout_active(drop) ? ax_attn_explicit(drop, &o, q, k, v, scale)
                                     : ax_scaled_dot_product_attention(&o, q, k, v, NULL, false, scale);
    if (st == AX_OK) st = ax_tensor_transpose(&ot, o, 1, 2);
    if (st == AX_OK) st = ax_tensor_reshape(&h, ot, 3, shape3);
    if (st == AX_OK) st = ax_attn_child(self, "norm", &h);
    if (st == AX_OK) st = ax_attn_child(self, "proj", &h);
    if (st == AX_OK) st = ax_attn_child(self, "proj_drop", &h);
    if (st == AX_OK) {
        *out = h;
        h = NULL;
    }
    ax_tensor_free(qkv);
    ax_tensor_free(qkv5);
    ax_tensor_free(q);
    ax_tensor_free(k);
    ax_tensor_free(v);
    ax_tensor_free(o);
    ax_tensor_free(ot);
    ax_tensor_free(h);
    return st;
}

static void ax_attn_repr(const ax_module *self, char *buf, size_t size) {
    const ax_attn_state *s = self->state;
    snprintf(buf, size, "dim=%lld, num_heads=%lld", (long long)s->dim, (long long)s->heads);
}

static const ax_module_class ax_attention_class = {"Attention", ax_attention_forward, free, ax_attn_repr};

/* LayerNorm(n, eps) when on, else Identity. */
static ax_status ax_norm_or_identity(ax_module **out, bool on, int64_t n, double eps) {
    return on ? ax_nn_layer_norm_new(out, 1, &n, eps, true, true) : ax_nn_identity_new(out);
}

static ax_status ax_attention_children(ax_module *m, int64_t dim, int64_t head_dim, const ax_nn_attention_opts *o,
                                       ax_rng *rng) {
    ax_module *c;
    /* construction order = torch's, so rng is consumed alike: qkv, then proj */
    if (ax_nn_linear_new(&c, dim, 3 * dim, o->qkv_bias, rng) != AX_OK || ax_module_add_child(m, "qkv", c) != AX_OK)
        return ax_error_status();
    if (ax_norm_or_identity(&c, o->qk_norm, head_dim, o->norm_eps) != AX_OK ||
        ax_module_add_child(m, "q_norm", c) != AX_OK)
        return ax_error_status();
    if (ax_norm_or_identity(&c, o->qk_norm, head_dim, o->norm_eps) != AX_OK ||
        ax_module_add_child(m, "k_norm", c) != AX_OK)
        return ax_error_status();
    if (ax_nn_dropout_new(&c, o->attn_drop) != AX_OK || ax_module_add_child(m, "attn_drop", c) != AX_OK)
        return ax_error_status();
    if (ax_norm_or_identity(&c, o->scale_norm, dim, o->norm_eps) != AX_OK || ax_module_add_child(m, "norm", c) != AX_OK)
        return ax_error_status();
    if (ax_nn_linear_new(&c, dim, dim, o->proj_bias, rng) != AX_OK || ax_module_add_child(m, "proj", c) != AX_OK)
        return ax_error_status();
    if (ax_nn_dropout_new(&c, o->proj_drop) != AX_OK || ax_module_add_child(m, "proj_drop", c) != AX_OK)
        return ax_error_status();
    return AX_OK;
}

ax_status ax_nn_attention_new(ax_module **out, int64_t dim, const ax_nn_attention_opts *opts, ax_rng *rng) {
    const char *fn = "ax_nn_attention_new";
    ax_nn_attention_opts o = opts ? *opts : ax_nn_attention_opts_default();
    if (out) *out = NULL;
    if (!out) return AX_ERROR(AX_ERR_INVALID, "%s: out is NULL", fn);
    if (!rng) return AX_ERROR(AX_ERR_INVALID, "%s: rng is NULL", fn);
    if (dim <= 0 || o.num_heads <= 0 || dim % o.num_heads)
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %lld should be divisible by num_heads %lld (both positive)", fn,
                        (long long)dim, (long long)o.num_heads);
    ax_attn_state *s;
    if (ax_builtin_new(out, &ax_attention_class, sizeof *s, (void **)&s) != AX_OK) return ax_error_status();
    *s = (ax_attn_state){dim, o.num_heads, dim / o.num_heads};
    if (ax_attention_children(*out, dim, s->head_dim, &o, rng) != AX_OK) {
        ax_error_prefix("%s", fn);
        return ax_builtin_fail(out);
    }
    return AX_OK;
}
