/* Scaled dot-product attention and 3-D rotary position embeddings
 * (axon/attention.h). Attention without a mask runs the backend's fused
 * kernels (sdpa / sdpa_backward: tiles and an online softmax, one autograd
 * node) when the table has them; otherwise, and for RoPE, compositions of
 * differentiable ops (matmul, softmax, where, elementwise products) give
 * the gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/amp.h"
#include "axon/attention.h"
#include "ops_internal.h"

static void ax_free_n(ax_tensor **ts, size_t n) {
    for (size_t i = 0; i < n; i++) ax_tensor_free(ts[i]);
}

/* t moved to like's device (a new reference to t when already there). */
static ax_status ax_onto_device_of(ax_tensor **out, ax_tensor *t, const ax_tensor *like) {
    ax_device a = t->storage->device, b = like->storage->device;
    if (a.type == b.type && a.index == b.index) {
        *out = ax_tensor_retain(t);
        return AX_OK;
    }
    return ax_tensor_to_device(out, t, b);
}

/* A 0-dim constant on like's device. */
static ax_status ax_const_like(ax_tensor **out, double value, ax_dtype dtype, const ax_tensor *like) {
    ax_tensor *c;
    *out = NULL;
    if (ax_tensor_scalar(&c, value, dtype) != AX_OK) return ax_error_status();
    ax_status st = ax_onto_device_of(out, c, like);
    ax_tensor_free(c);
    return st;
}

/* ---- scaled dot-product attention ------------------------------------------------ */

/* NumPy broadcast of two shapes; false when they do not broadcast. */
static bool ax_bcast_shapes(int na, const int64_t *a, int nb, const int64_t *b, int *nd, int64_t *out) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t x = i < n - na ? 1 : a[i - (n - na)], y = i < n - nb ? 1 : b[i - (n - nb)];
        if (x != y && x != 1 && y != 1) return false;
        out[i] = x == 1 ? y : x;
    }
    *nd = n;
    return true;
}

/* Argument checks; on success fills the scores' shape [..., L, S]. */
static ax_status ax_sdpa_check(const ax_tensor *q, const ax_tensor *k, const ax_tensor *v, const ax_tensor *mask,
                               bool is_causal, double scale, int *nds, int64_t *sshape) {
    const char *fn = "ax_scaled_dot_product_attention";
    char a[160], b[160], c[160];
    const ax_tensor *qkv[] = {q, k, v};
    const char *names[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        if (ax_op_need_float(fn, names[i], qkv[i]) != AX_OK) return ax_error_status();
        if (qkv[i]->ndim < 2)
            return AX_ERROR(AX_ERR_INVALID, "%s: %s %s must have at least 2 dims [..., length, features]", fn,
                            names[i], ax_shape_str(a, sizeof a, qkv[i]->ndim, qkv[i]->shape));
    }
    const ax_tensor *all[] = {q, k, v, mask};
    if (ax_op_same_device(fn, mask ? 4 : 3, all) != AX_OK) return ax_error_status();
    if (k->dtype != q->dtype || v->dtype != q->dtype)
        return AX_ERROR(AX_ERR_INVALID, "%s: q, k and v must share a dtype, got %s, %s and %s", fn,
                        ax_dtype_name(q->dtype), ax_dtype_name(k->dtype), ax_dtype_name(v->dtype));
    const int64_t L = q->shape[q->ndim - 2], E = q->shape[q->ndim - 1], S = k->shape[k->ndim - 2];
    ax_shape_str(a, sizeof a, q->ndim, q->shape);
    ax_shape_str(b, sizeof b, k->ndim, k->shape);
    ax_shape_str(c, sizeof c, v->ndim, v->shape);
    if (k->shape[k->ndim - 1] != E)
        return AX_ERROR(AX_ERR_INVALID, "%s: q %s and k %s differ in the feature dim", fn, a, b);
    if (v->shape[v->ndim - 2] != S)
        return AX_ERROR(AX_ERR_INVALID, "%s: k %s and v %s differ in the key length", fn, b, c);
    int n1, n2;
    int64_t s1[AX_MAX_DIMS], s2[AX_MAX_DIMS];
    if (!ax_bcast_shapes(q->ndim - 2, q->shape, k->ndim - 2, k->shape, &n1, s1) ||
        !ax_bcast_shapes(n1, s1, v->ndim - 2, v->shape, &n2, s2))
        return AX_ERROR(AX_ERR_INVALID, "%s: the batch dims of q %s, k %s and v %s do not broadcast", fn, a, b, c);
    if (n2 + 2 > AX_MAX_DIMS) return AX_ERROR(AX_ERR_INVALID, "%s: too many batch dims", fn);
    s2[n2] = L;
    s2[n2 + 1] = S;
    *nds = n2 + 2;
    memcpy(sshape, s2, (size_t)(n2 + 2) * sizeof(int64_t));
    if (mask) {
        if (mask->dtype != AX_DTYPE_U8 && !ax_dtype_is_float(mask->dtype))
            return AX_ERROR(AX_ERR_INVALID, "%s: attn_mask must be u8 (1 = attend) or float (added), got %s", fn,
                            ax_dtype_name(mask->dtype));
        if (!ax_broadcastable_to(mask, *nds, sshape))
            return AX_ERROR(AX_ERR_INVALID, "%s: attn_mask %s does not broadcast to the scores %s", fn,
                            ax_shape_str(a, sizeof a, mask->ndim, mask->shape), ax_shape_str(b, sizeof b, *nds, sshape));
        if (is_causal)
            return AX_ERROR(AX_ERR_INVALID, "%s: attn_mask and is_causal may not be set together (as in torch)", fn);
    }
    if (!isfinite(scale)) return AX_ERROR(AX_ERR_INVALID, "%s: scale = %g is not finite", fn, scale);
    return AX_OK;
}

/* u8 [L, S]: key j is visible from query i when j <= i. */
static ax_status ax_causal_mask(ax_tensor **out, int64_t L, int64_t S, const ax_tensor *like) {
    ax_tensor *r = NULL, *c = NULL, *rv = NULL, *cv = NULL, *m = NULL;
    ax_status st = ax_tensor_arange(&r, 0, (double)L, 1, AX_DTYPE_I64);
    if (st == AX_OK) st = ax_tensor_arange(&c, 0, (double)S, 1, AX_DTYPE_I64);
    if (st == AX_OK) st = ax_tensor_view(&rv, r, 2, (int64_t[]){L, 1});
    if (st == AX_OK) st = ax_tensor_view(&cv, c, 2, (int64_t[]){1, S});
    if (st == AX_OK) st = ax_ge(&m, rv, cv);
    if (st == AX_OK) st = ax_onto_device_of(out, m, like);
    ax_tensor *tmp[] = {r, c, rv, cv, m};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

/* Whether every element of a u8 tensor is nonzero; false off the CPU (the
 * caller then takes the path that is right either way). */
static bool ax_all_set(const ax_tensor *ok) {
    if (ok->storage->device.type != AX_DEVICE_CPU) return false;
    ax_tensor *c;
    if (ax_tensor_contiguous(&c, ok) != AX_OK) return false;
    const uint8_t *d = ax_tensor_data(c);
    bool all = true;
    for (int64_t i = 0, n = ax_tensor_numel(c); i < n && all; i++) all = d[i] != 0;
    ax_tensor_free(c);
    return all;
}

/* softmax over the last dim where a row of all -inf gives zeros (and zero
 * gradients) instead of NaN: such rows are softmaxed as zeros and masked. */
static ax_status ax_safe_softmax(ax_tensor **out, const ax_tensor *s, const ax_tensor *ninf) {
    ax_tensor *mx = NULL, *ok = NULL, *zero = NULL, *s2 = NULL, *p = NULL;
    ax_no_grad_begin();
    ax_status st = ax_max(&mx, NULL, s, -1, true);
    if (st == AX_OK) st = ax_gt(&ok, mx, ninf);
    ax_no_grad_end();
    if (st == AX_OK && ax_all_set(ok)) {
        st = ax_softmax(out, s, -1);
    } else if (st == AX_OK) {
        st = ax_const_like(&zero, 0.0, s->dtype, s);
        if (st == AX_OK) st = ax_where(&s2, ok, s, zero);
        if (st == AX_OK) st = ax_softmax(&p, s2, -1);
        if (st == AX_OK) st = ax_where(out, ok, p, zero);
    }
    ax_tensor *tmp[] = {mx, ok, zero, s2, p};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

/* ---- fused path ------------------------------------------------------------------ */

/* t [..., n, c] as a contiguous [B, n, c] of dtype dt (no autograd), its
 * batch dims first broadcast to bshape (nb dims, B elements). */
static ax_status ax_sdpa_stage(ax_tensor **out, const ax_tensor *t, ax_dtype dt, int nb, const int64_t *bshape,
                               int64_t B) {
    int64_t full[AX_MAX_DIMS];
    const int64_t n = t->shape[t->ndim - 2], c = t->shape[t->ndim - 1];
    memcpy(full, bshape, (size_t)nb * sizeof(int64_t));
    full[nb] = n;
    full[nb + 1] = c;
    ax_tensor *e = NULL, *cc = NULL, *cd = NULL;
    *out = NULL;
    ax_no_grad_begin();
    ax_status st = ax_tensor_expand(&e, t, nb + 2, full);
    if (st == AX_OK) st = ax_tensor_contiguous(&cc, e);
    if (st == AX_OK && cc->dtype != dt) st = ax_tensor_to_dtype(&cd, cc, dt);
    if (st == AX_OK) st = ax_tensor_reshape(out, cd ? cd : cc, 3, (int64_t[]){B, n, c});
    ax_no_grad_end();
    ax_tensor *tmp[] = {e, cc, cd};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

/* t [B, n, c] viewed as [bshape..., n, c] (no autograd). */
static ax_status ax_sdpa_unflatten(ax_tensor **out, const ax_tensor *t, int nb, const int64_t *bshape) {
    int64_t full[AX_MAX_DIMS];
    memcpy(full, bshape, (size_t)nb * sizeof(int64_t));
    full[nb] = t->shape[1];
    full[nb + 1] = t->shape[2];
    ax_no_grad_begin();
    ax_status st = ax_tensor_reshape(out, t, nb + 2, full);
    ax_no_grad_end();
    return st;
}

static void ax_sdpa_lse_free(void *lse) { ax_tensor_free(lse); }

/* Saved: q, k, v as [B, *, *] (slots 0-2) and o [B, L, Ev] (3), as the
 * kernels took them; lse [B, L] in ctx; f = {scale, is_causal, batch dims};
 * i[0 .. batch dims) = the broadcast batch shape. */
static ax_status ax_sdpa_fused_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    const ax_tensor *q = node->saved[0], *k = node->saved[1], *v = node->saved[2], *o = node->saved[3];
    const ax_tensor *lse = node->ctx;
    const double scale = node->f[0];
    const bool causal = node->f[1] != 0;
    const int nb = (int)node->f[2];
    const ax_kernels *kt = ax_op_kernels(g);
    if (!kt) return ax_error_status();
    ax_device dev = g->storage->device;
    ax_tensor *gc = NULL, *d[3] = {NULL, NULL, NULL};
    const ax_tensor *like[3] = {q, k, v};
    ax_status st = ax_sdpa_stage(&gc, g, o->dtype, nb, node->i, o->shape[0]);
    for (int i = 0; i < 3 && st == AX_OK; i++)
        if (ax_node_needs_grad(node, i)) st = ax_tensor_empty_on(&d[i], 3, like[i]->shape, q->dtype, dev);
    if (st == AX_OK) st = kt->sdpa_backward(d[0], d[1], d[2], gc, q, k, v, o, lse, scale, causal);
    ax_tensor_free(gc);
    for (int i = 0; i < 3; i++) {
        if (st == AX_OK && d[i]) {
            ax_tensor *r = NULL;
            st = ax_sdpa_unflatten(&r, d[i], nb, node->i);
            if (st == AX_OK) st = ax_grad_fit(node, i, &r); /* sums broadcast batch dims away */
            gin[i] = r;
        }
        ax_tensor_free(d[i]);
        d[i] = NULL;
    }
    return st;
}

/* The fused kernels on q, k, v whose batch dims broadcast to bshape (nb
 * dims). AX_ERR_UNSUPPORTED (error set) when the backend declines the
 * shapes; the caller then composes. */
static ax_status ax_sdpa_fused(const ax_kernels *kt, ax_tensor **out, const ax_tensor *q, const ax_tensor *k,
                               const ax_tensor *v, bool is_causal, double scale, int nb, const int64_t *bshape) {
    int64_t B = 1;
    for (int i = 0; i < nb; i++) B *= bshape[i];
    const int64_t L = q->shape[q->ndim - 2], Ev = v->shape[v->ndim - 1];
    const ax_dtype dt = q->dtype;
    const ax_device dev = q->storage->device;
    ax_tensor *qc = NULL, *kc = NULL, *vc = NULL, *o = NULL, *lse = NULL, *r = NULL;
    ax_status st = ax_sdpa_stage(&qc, q, dt, nb, bshape, B);
    if (st == AX_OK) st = ax_sdpa_stage(&kc, k, dt, nb, bshape, B);
    if (st == AX_OK) st = ax_sdpa_stage(&vc, v, dt, nb, bshape, B);
    if (st == AX_OK) st = ax_tensor_empty_on(&o, 3, (int64_t[]){B, L, Ev}, dt, dev);
    if (st == AX_OK) st = ax_tensor_empty_on(&lse, 2, (int64_t[]){B, L}, AX_DTYPE_F32, dev);
    if (st == AX_OK) st = kt->sdpa(o, lse, qc, kc, vc, scale, is_causal);
    if (st == AX_OK) st = ax_sdpa_unflatten(&r, o, nb, bshape);
    const ax_tensor *inputs[3] = {q, k, v}, *saved[4] = {qc, kc, vc, o};
    const double f[3] = {scale, is_causal ? 1.0 : 0.0, (double)nb};
    if (st == AX_OK) st = ax_op_record(r, "scaled_dot_product_attention", ax_sdpa_fused_backward, 3, inputs, 4, saved,
                                       3, f);
    if (st == AX_OK && r->grad_fn) {
        memcpy(r->grad_fn->i, bshape, (size_t)nb * sizeof(int64_t));
        r->grad_fn->ctx = ax_tensor_retain(lse);
        r->grad_fn->ctx_free = ax_sdpa_lse_free;
    }
    ax_tensor *tmp[] = {qc, kc, vc, o, lse};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK) {
        ax_tensor_free(r);
        return st;
    }
    *out = r;
    return AX_OK;
}

/* Whether the fused kernels apply: no mask, a dtype the backend multiplies
 * in, and a table that has them. Inside an autocast region q, k and v are
 * first cast to its half dtype (recorded), as ax_matmul would cast them;
 * *ql, *kl, *vl receive the operands to use (new references). */
static bool ax_sdpa_fusable(const ax_kernels *kt, const ax_tensor *q, const ax_tensor *k, const ax_tensor *v,
                            const ax_tensor *attn_mask, ax_tensor **ql, ax_tensor **kl, ax_tensor **vl) {
    *ql = *kl = *vl = NULL;
    if (attn_mask || !AX_KERNELS_HAS(kt, sdpa) || !AX_KERNELS_HAS(kt, sdpa_backward)) return false;
    ax_status st = ax_autocast_lowp(ql, q, AX_KOP_MATMUL);
    if (st == AX_OK) st = ax_autocast_lowp(kl, k, AX_KOP_MATMUL);
    if (st == AX_OK) st = ax_autocast_lowp(vl, v, AX_KOP_MATMUL);
    if (st == AX_OK && (*ql)->dtype == (*kl)->dtype && (*ql)->dtype == (*vl)->dtype &&
        kt->supports(AX_KOP_MATMUL, (*ql)->dtype))
        return true;
    ax_tensor *tmp[] = {*ql, *kl, *vl};
    ax_free_n(tmp, 3);
    *ql = *kl = *vl = NULL;
    return false;
}

static ax_status ax_sdpa_composite(ax_tensor **out, const ax_tensor *q, const ax_tensor *k, const ax_tensor *v,
                                   const ax_tensor *attn_mask, bool is_causal, double scale, int64_t L, int64_t S) {
    ax_tensor *qs = NULL, *kt = NULL, *s = NULL, *ninf = NULL, *cm = NULL, *mf = NULL, *sm = NULL, *p = NULL;
    ax_status st = ax_mul_scalar(&qs, q, scale);
    if (st == AX_OK) st = ax_tensor_transpose(&kt, k, -2, -1);
    if (st == AX_OK) st = ax_matmul(&s, qs, kt);
    if (st == AX_OK) st = ax_const_like(&ninf, -INFINITY, s->dtype, q);
    if (st == AX_OK && is_causal) {
        st = ax_causal_mask(&cm, L, S, q);
        if (st == AX_OK) st = ax_where(&sm, cm, s, ninf);
    } else if (st == AX_OK && attn_mask && attn_mask->dtype == AX_DTYPE_U8) {
        st = ax_where(&sm, attn_mask, s, ninf);
    } else if (st == AX_OK && attn_mask) {
        /* additive bias, possibly learned: the cast is recorded */
        st = attn_mask->dtype == s->dtype ? (mf = ax_tensor_retain((ax_tensor *)attn_mask), AX_OK)
                                          : ax_tensor_to_dtype(&mf, attn_mask, s->dtype);
        if (st == AX_OK) st = ax_add(&sm, s, mf);
    } else if (st == AX_OK) {
        sm = ax_tensor_retain(s);
    }
    /* without a mask no row can be all -inf (a causal row always sees key 0) */
    if (st == AX_OK) st = attn_mask ? ax_safe_softmax(&p, sm, ninf) : ax_softmax(&p, sm, -1);
    if (st == AX_OK) st = ax_matmul(out, p, v);
    ax_tensor *tmp[] = {qs, kt, s, ninf, cm, mf, sm, p};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

ax_status ax_scaled_dot_product_attention(ax_tensor **out, const ax_tensor *q, const ax_tensor *k,
                                          const ax_tensor *v, const ax_tensor *attn_mask, bool is_causal,
                                          double scale) {
    const char *fn = "ax_scaled_dot_product_attention";
    int nds = 0;
    int64_t sshape[AX_MAX_DIMS];
    *out = NULL;
    if (ax_sdpa_check(q, k, v, attn_mask, is_causal, scale, &nds, sshape) != AX_OK) return ax_error_status();
    const int64_t L = sshape[nds - 2], S = sshape[nds - 1], E = q->shape[q->ndim - 1];
    if (scale <= 0) scale = E > 0 ? 1.0 / sqrt((double)E) : 1.0;
    const ax_kernels *kt = ax_op_kernels(q);
    if (!kt) return ax_error_status();
    ax_tensor *ql = NULL, *kl = NULL, *vl = NULL;
    ax_status st = AX_ERR_UNSUPPORTED;
    if (ax_sdpa_fusable(kt, q, k, v, attn_mask, &ql, &kl, &vl)) {
        st = ax_sdpa_fused(kt, out, ql, kl, vl, is_causal, scale, nds - 2, sshape);
        ax_tensor *tmp[] = {ql, kl, vl};
        ax_free_n(tmp, 3);
    }
    /* no fused kernels, or the backend declined the shapes (e.g. a head dim) */
    if (st == AX_ERR_UNSUPPORTED) st = ax_sdpa_composite(out, q, k, v, attn_mask, is_causal, scale, L, S);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

/* ---- rotary position embedding ---------------------------------------------------------- */

static ax_status ax_rope_check_layout(const char *fn, ax_rope_layout layout) {
    if (layout == AX_ROPE_INTERLEAVED || layout == AX_ROPE_HALF) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: unknown layout %d (want AX_ROPE_INTERLEAVED or AX_ROPE_HALF)", fn,
                    (int)layout);
}

ax_status ax_rope3d_tables(ax_tensor **cos_out, ax_tensor **sin_out, const int64_t grid[3], const int64_t ref_grid[3],
                           int64_t head_dim, double theta, ax_rope_layout layout) {
    const char *fn = "ax_rope3d_tables";
    *cos_out = *sin_out = NULL;
    if (ax_rope_check_layout(fn, layout) != AX_OK) return ax_error_status();
    if (!grid) return AX_ERROR(AX_ERR_INVALID, "%s: grid is NULL", fn);
    for (int a = 0; a < 3; a++) {
        if (grid[a] < 1 || (ref_grid && ref_grid[a] < 1))
            return AX_ERROR(AX_ERR_INVALID, "%s: grid [%lld, %lld, %lld] and ref_grid sizes must be >= 1", fn,
                            (long long)grid[0], (long long)grid[1], (long long)grid[2]);
    }
    if (head_dim < 6 || head_dim % 6)
        return AX_ERROR(AX_ERR_INVALID, "%s: head_dim %lld must be a positive multiple of 6 (3 axes x pairs)", fn,
                        (long long)head_dim);
    if (!(theta > 0) || !isfinite(theta)) return AX_ERROR(AX_ERR_INVALID, "%s: theta = %g must be > 0", fn, theta);
    const int64_t nb = head_dim / 6, half = head_dim / 2, T = grid[0] * grid[1] * grid[2];
    ax_tensor *c = NULL, *s = NULL;
    int64_t shape[2] = {T, head_dim};
    ax_status st = ax_tensor_empty(&c, 2, shape, AX_DTYPE_F32);
    if (st == AX_OK) st = ax_tensor_empty(&s, 2, shape, AX_DTYPE_F32);
    if (st != AX_OK) {
        ax_tensor_free(c);
        return st;
    }
    /* f32 arithmetic as timm: bands = 1 / theta^(j / nb), angle = pos * band */
    float *bp = malloc((size_t)nb * sizeof(float));
    if (!bp) {
        ax_tensor_free(c);
        ax_tensor_free(s);
        return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for %lld bands", fn, (long long)nb);
    }
    for (int64_t j = 0; j < nb; j++) bp[j] = 1.0f / powf((float)theta, (float)j / (float)nb);
    float *cd = ax_tensor_data(c), *sd = ax_tensor_data(s);
    for (int64_t t = 0; t < T; t++) {
        int64_t idx[3] = {t / (grid[1] * grid[2]), (t / grid[2]) % grid[1], t % grid[2]};
        float *crow = cd + t * head_dim, *srow = sd + t * head_dim;
        for (int a = 0; a < 3; a++) {
            float pos = (float)idx[a];
            if (ref_grid) pos = pos / (float)grid[a] * (float)ref_grid[a];
            for (int64_t j = 0; j < nb; j++) {
                int64_t k = a * nb + j;
                float ang = pos * bp[j];
                float cv = (float)cos((double)ang), sv = (float)sin((double)ang);
                int64_t i0 = layout == AX_ROPE_INTERLEAVED ? 2 * k : k;
                int64_t i1 = layout == AX_ROPE_INTERLEAVED ? 2 * k + 1 : k + half;
                crow[i0] = crow[i1] = cv;
                srow[i0] = srow[i1] = sv;
            }
        }
    }
    free(bp);
    *cos_out = c;
    *sin_out = s;
    return AX_OK;
}

/* rot(x) for the layout, from views of x and two one-hot selectors that
 * put each half of a pair back in its slot (no cat needed, and exact:
 * v * 1 + w * 0 == v). */
static ax_status ax_rope_rot(ax_tensor **out, const ax_tensor *x, ax_rope_layout layout) {
    const int nd = x->ndim;
    const int64_t Dh = x->shape[nd - 1], P = Dh / 2;
    int64_t rshape[AX_MAX_DIMS + 1], eshape[2];
    memcpy(rshape, x->shape, (size_t)(nd - 1) * sizeof(int64_t));
    int pd; /* the dim of size 2 that tells the halves apart */
    int ne;
    if (layout == AX_ROPE_INTERLEAVED) {
        rshape[nd - 1] = P, rshape[nd] = 2, pd = nd;
        eshape[0] = 2, ne = 1;
    } else {
        rshape[nd - 1] = 2, rshape[nd] = P, pd = nd - 1;
        eshape[0] = 2, eshape[1] = 1, ne = 2;
    }
    static const float e0v[2] = {1.0f, 0.0f}, e1v[2] = {0.0f, 1.0f};
    ax_tensor *xr = NULL, *lo = NULL, *hi = NULL, *e0c = NULL, *e1c = NULL, *e0 = NULL, *e1 = NULL;
    ax_tensor *nhi = NULL, *a = NULL, *b = NULL, *r = NULL;
    ax_status st = ax_tensor_reshape(&xr, x, nd + 1, rshape);
    if (st == AX_OK) st = ax_tensor_narrow(&lo, xr, pd, 0, 1);
    if (st == AX_OK) st = ax_tensor_narrow(&hi, xr, pd, 1, 1);
    if (st == AX_OK) st = ax_tensor_from_buffer(&e0c, ne, eshape, AX_DTYPE_F32, e0v, sizeof e0v);
    if (st == AX_OK) st = ax_tensor_from_buffer(&e1c, ne, eshape, AX_DTYPE_F32, e1v, sizeof e1v);
    if (st == AX_OK) st = ax_onto_device_of(&e0, e0c, x);
    if (st == AX_OK) st = ax_onto_device_of(&e1, e1c, x);
    /* rot = [-hi, lo] */
    if (st == AX_OK) st = ax_neg(&nhi, hi);
    if (st == AX_OK) st = ax_mul(&a, nhi, e0);
    if (st == AX_OK) st = ax_mul(&b, lo, e1);
    if (st == AX_OK) st = ax_add(&r, a, b);
    if (st == AX_OK) st = ax_tensor_view(out, r, nd, x->shape);
    ax_tensor *tmp[] = {xr, lo, hi, e0c, e1c, e0, e1, nhi, a, b, r};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

ax_status ax_rope_apply(ax_tensor **out, const ax_tensor *x, const ax_tensor *cos, const ax_tensor *sin,
                        ax_rope_layout layout) {
    const char *fn = "ax_rope_apply";
    char a[160], b[160];
    *out = NULL;
    if (ax_rope_check_layout(fn, layout) != AX_OK) return ax_error_status();
    if (ax_op_need_float(fn, "x", x) != AX_OK || ax_op_need_float(fn, "cos", cos) != AX_OK ||
        ax_op_need_float(fn, "sin", sin) != AX_OK)
        return ax_error_status();
    if (ax_op_same_device(fn, 3, (const ax_tensor *[]){x, cos, sin}) != AX_OK) return ax_error_status();
    if (x->ndim < 1 || x->shape[x->ndim - 1] % 2)
        return AX_ERROR(AX_ERR_INVALID, "%s: x %s needs an even last dim (pairs of features)", fn,
                        ax_shape_str(a, sizeof a, x->ndim, x->shape));
    if (!ax_tensor_same_shape(cos, sin))
        return AX_ERROR(AX_ERR_INVALID, "%s: cos %s and sin %s differ in shape", fn,
                        ax_shape_str(a, sizeof a, cos->ndim, cos->shape), ax_shape_str(b, sizeof b, sin->ndim, sin->shape));
    if (cos->ndim < 1 || cos->shape[cos->ndim - 1] != x->shape[x->ndim - 1] ||
        !ax_broadcastable_to(cos, x->ndim, x->shape))
        return AX_ERROR(AX_ERR_INVALID, "%s: tables %s do not broadcast to x %s (last dims must match)", fn,
                        ax_shape_str(a, sizeof a, cos->ndim, cos->shape), ax_shape_str(b, sizeof b, x->ndim, x->shape));
    ax_tensor *rot = NULL, *xc = NULL, *rs = NULL, *sum = NULL;
    ax_status st = ax_rope_rot(&rot, x, layout);
    if (st == AX_OK) st = ax_mul(&xc, x, cos);
    if (st == AX_OK) st = ax_mul(&rs, rot, sin);
    if (st == AX_OK) st = ax_add(&sum, xc, rs);
    if (st == AX_OK) {
        if (sum->dtype == x->dtype) {
            *out = sum;
            sum = NULL;
        } else {
            st = ax_tensor_to_dtype(out, sum, x->dtype);
        }
    }
    ax_tensor *tmp[] = {rot, xc, rs, sum};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}
