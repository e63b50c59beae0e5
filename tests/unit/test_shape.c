/* cat, stack, split, chunk, gather, scatter_add, index_select, masked_fill
 * and embedding: forward values against naive loops written here,
 * finite-difference gradients (non-contiguous inputs, negative dims,
 * repeated indices), split/chunk edge cases, the error of each bad
 * argument, bit-identical scatters for any thread count, and PyTorch
 * parity on the fixture from tests/fixtures/shape/make_shape.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/kernels.h"
#include "axon/safetensors.h"
#include "axon/shape.h"
#include "gradcheck.h"

#define S(...) (int64_t[]){__VA_ARGS__}

/* ---- helpers ------------------------------------------------------------------ */

static ax_tensor *ax_idx(int ndim, const int64_t *shape, const int64_t *vals) {
    ax_tensor *t;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    assert_int_equal(ax_tensor_from_buffer(&t, ndim, shape, AX_DTYPE_I64, vals, (size_t)n * sizeof(int64_t)), AX_OK);
    return t;
}

/* i64 tensor of `shape` with pseudo-random values in [0, high). */
static ax_tensor *ax_rand_idx(int ndim, const int64_t *shape, int64_t high, uint64_t seed) {
    ax_tensor *t;
    assert_int_equal(ax_tensor_zeros(&t, ndim, shape, AX_DTYPE_I64), AX_OK);
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ax_tensor_set(t, i, (double)((s >> 33) % (uint64_t)high));
    }
    return t;
}

static ax_tensor *ax_rnd(int ndim, const int64_t *shape, uint64_t seed) {
    ax_tensor *t = ax_test_randn(ndim, shape, seed, 1, 0, false);
    assert_non_null(t);
    return t;
}

static void ax_unravel(int64_t i, int ndim, const int64_t *shape, int64_t *c) {
    for (int d = ndim - 1; d >= 0; d--) {
        c[d] = shape[d] ? i % shape[d] : 0;
        i = shape[d] ? i / shape[d] : 0;
    }
}

static int64_t ax_ravel(const int64_t *c, int ndim, const int64_t *shape) {
    int64_t i = 0;
    for (int d = 0; d < ndim; d++) i = i * shape[d] + c[d];
    return i;
}

static void ax_expect_shape(const ax_tensor *t, int ndim, const int64_t *shape) {
    assert_int_equal(t->ndim, ndim);
    for (int d = 0; d < ndim; d++) assert_int_equal(t->shape[d], shape[d]);
}

/* st failed with a message containing `want`. */
static void ax_expect_error(ax_status st, const char *want) {
    if (st == AX_OK) {
        fprintf(stderr, "expected an error containing \"%s\", got AX_OK\n", want);
        fail();
    }
    if (!strstr(ax_error_message(), want)) {
        fprintf(stderr, "error message:  %s\nshould contain: %s\n", ax_error_message(), want);
        fail();
    }
}

/* t as a fresh f32 leaf of its own (a copy). */
static ax_tensor *ax_leaf_copy(const ax_tensor *t, bool grad) {
    ax_tensor *c;
    assert_int_equal(ax_tensor_to_dtype(&c, t, AX_DTYPE_F32), AX_OK);
    if (grad) assert_int_equal(ax_tensor_set_requires_grad(c, true), AX_OK);
    return c;
}

/* ---- one runner for the gradient checks ----------------------------------------- */

typedef enum { G_CAT, G_CAT_WIDE, G_STACK, G_SPLIT, G_CHUNK, G_GATHER, G_SCATTER, G_ISEL, G_MFILL, G_EMBED } ax_gop;

typedef struct ax_gctx {
    ax_gop op;
    int dim;
    const ax_tensor *index; /* index, or the mask for G_MFILL */
    bool transpose;         /* feed a transposed view of input 0 (dims 0 and -1) */
    bool transpose_src;     /* the same for input 1 (scatter_add's src) */
    double value;
    int piece, split; /* split/chunk: which piece, split_size or chunks */
} ax_gctx;

static ax_status ax_grun(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const ax_gctx *c = vctx;
    ax_tensor *x = in[0], *t = NULL, *s = NULL, *src = NULL;
    ax_status st = AX_OK;
    if (c->transpose) {
        if (ax_tensor_transpose(&t, in[0], 0, -1) != AX_OK) return ax_error_status();
        x = t;
    }
    if (c->op == G_SCATTER) {
        src = in[1];
        if (c->transpose_src) {
            if (ax_tensor_transpose(&s, in[1], 0, -1) != AX_OK) {
                ax_tensor_free(t);
                return ax_error_status();
            }
            src = s;
        }
    }
    switch (c->op) {
    case G_CAT: st = ax_cat(out, 3, (const ax_tensor *[]){x, in[1], in[2]}, c->dim); break;
    case G_CAT_WIDE:
        st = ax_cat(out, 6, (const ax_tensor *[]){x, in[1], in[2], in[3], in[4], in[5]}, c->dim);
        break;
    case G_STACK: st = ax_stack(out, 3, (const ax_tensor *[]){x, in[1], in[2]}, c->dim); break;
    case G_SPLIT:
    case G_CHUNK: {
        ax_tensor *parts[8];
        int n = 0;
        st = c->op == G_SPLIT ? ax_split(parts, &n, 8, x, c->split, c->dim) : ax_chunk(parts, &n, 8, x, c->split, c->dim);
        if (st == AX_OK) {
            /* one piece (a view), scaled so the check sees a real op on it */
            st = ax_mul_scalar(out, parts[c->piece], 2.0);
            for (int i = 0; i < n; i++) ax_tensor_free(parts[i]);
        }
        break;
    }
    case G_GATHER: st = ax_gather(out, x, c->dim, c->index); break;
    case G_SCATTER: st = ax_scatter_add(out, x, c->dim, c->index, src); break;
    case G_ISEL: st = ax_index_select(out, x, c->dim, c->index); break;
    case G_MFILL: st = ax_masked_fill(out, x, c->index, c->value); break;
    case G_EMBED: st = ax_embedding(out, x, c->index); break;
    }
    ax_tensor_free(t);
    ax_tensor_free(s);
    return st;
}

/* gradcheck c on fresh random leaves of the given shapes */
static void ax_gcheck(const ax_gctx *c, int n, const int *ndims, const int64_t *const *shapes) {
    ax_tensor *in[6] = {NULL};
    for (int k = 0; k < n; k++) {
        in[k] = ax_test_randn(ndims[k], shapes[k], 200 + (uint64_t)k, 1, 0, true);
        assert_non_null(in[k]);
    }
    bool ok = ax_gradcheck(ax_grun, n, in, (void *)c, &AX_GC_DEFAULT);
    if (!ok) fprintf(stderr, "  (op %d, dim %d, transpose %d)\n", (int)c->op, c->dim, (int)c->transpose);
    for (int k = 0; k < n; k++) ax_tensor_free(in[k]);
    assert_true(ok);
}

/* ---- cat / stack ---------------------------------------------------------------------- */

/* cat of ts along dim d compared element by element with its inputs. */
static void ax_check_cat_values(const ax_tensor *out, int n, const ax_tensor *const *ts, int d) {
    int64_t c[AX_MAX_DIMS];
    for (int64_t i = 0; i < ax_tensor_numel(out); i++) {
        ax_unravel(i, out->ndim, out->shape, c);
        int k = 0;
        while (c[d] >= ts[k]->shape[d]) c[d] -= ts[k++]->shape[d];
        double want = ax_tensor_get(ts[k], ax_ravel(c, ts[k]->ndim, ts[k]->shape));
        if (ax_tensor_get(out, i) != want) {
            fprintf(stderr, "cat element %lld: got %g want %g\n", (long long)i, ax_tensor_get(out, i), want);
            fail();
        }
    }
}

static void test_cat_forward(void **state) {
    (void)state;
    ax_tensor *a = ax_rnd(3, S(2, 3, 4), 1), *b = ax_rnd(3, S(2, 1, 4), 2), *c = ax_rnd(3, S(2, 2, 4), 3);
    const ax_tensor *ts[3] = {a, b, c};
    ax_tensor *o;
    assert_int_equal(ax_cat(&o, 3, ts, 1), AX_OK);
    ax_expect_shape(o, 3, S(2, 6, 4));
    ax_check_cat_values(o, 3, ts, 1);
    ax_tensor_free(o);
    assert_int_equal(ax_cat(&o, 3, ts, -2), AX_OK); /* negative dim */
    ax_check_cat_values(o, 3, ts, 1);
    ax_tensor_free(o);

    /* non-contiguous inputs: transposed views, cat on the last dim */
    ax_tensor *at, *ct, *c2 = ax_rnd(3, S(2, 2, 4), 5);
    assert_int_equal(ax_tensor_transpose(&at, a, 1, 2), AX_OK); /* [2, 4, 3] */
    ax_tensor *d = ax_rnd(3, S(2, 4, 5), 4);
    assert_int_equal(ax_tensor_transpose(&ct, c2, 1, 2), AX_OK); /* [2, 4, 2] */
    const ax_tensor *ts2[3] = {at, d, ct};
    assert_int_equal(ax_cat(&o, 3, ts2, -1), AX_OK);
    ax_expect_shape(o, 3, S(2, 4, 10));
    ax_check_cat_values(o, 3, ts2, 2);
    ax_tensor_free(o);

    /* dim 0 */
    ax_tensor *e = ax_rnd(3, S(3, 3, 4), 6);
    const ax_tensor *ts3[2] = {a, e};
    assert_int_equal(ax_cat(&o, 2, ts3, 0), AX_OK);
    ax_expect_shape(o, 3, S(5, 3, 4));
    ax_check_cat_values(o, 2, ts3, 0);
    ax_tensor_free(o);

    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(c);
    ax_tensor_free(d);
    ax_tensor_free(e);
    ax_tensor_free(at);
    ax_tensor_free(ct);
    ax_tensor_free(c2);
}

static void test_cat_single_and_empty(void **state) {
    (void)state;
    ax_tensor *a = ax_rnd(3, S(2, 3, 4), 1), *o;
    /* one tensor: a copy, not a view */
    assert_int_equal(ax_cat(&o, 1, (const ax_tensor *[]){a}, 1), AX_OK);
    ax_expect_shape(o, 3, S(2, 3, 4));
    assert_ptr_not_equal(o->storage, a->storage);
    assert_true(ax_allclose("cat single", o, a, 0, 0));
    ax_tensor_free(o);

    /* zero-size dims: in the cat dim, and everywhere */
    ax_tensor *z0, *z1, *z2;
    assert_int_equal(ax_tensor_empty(&z0, 3, S(2, 0, 4), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_cat(&o, 3, (const ax_tensor *[]){z0, a, z0}, 1), AX_OK);
    ax_expect_shape(o, 3, S(2, 3, 4));
    assert_true(ax_allclose("cat with empty", o, a, 0, 0));
    ax_tensor_free(o);
    assert_int_equal(ax_cat(&o, 2, (const ax_tensor *[]){z0, z0}, 1), AX_OK);
    ax_expect_shape(o, 3, S(2, 0, 4));
    ax_tensor_free(o);
    assert_int_equal(ax_tensor_empty(&z1, 2, S(0, 3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_empty(&z2, 2, S(0, 5), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_cat(&o, 2, (const ax_tensor *[]){z1, z2}, 1), AX_OK);
    ax_expect_shape(o, 2, S(0, 8));
    ax_tensor_free(o);

    /* gradient reaches an empty input (empty) and the others */
    ax_tensor *ag = ax_leaf_copy(a, true), *zg = ax_leaf_copy(z0, true), *s;
    assert_int_equal(ax_cat(&o, 2, (const ax_tensor *[]){zg, ag}, 1), AX_OK);
    assert_int_equal(ax_sum(&s, o, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    assert_non_null(ag->grad);
    assert_non_null(zg->grad);
    ax_expect_shape(zg->grad, 3, S(2, 0, 4));
    for (int64_t i = 0; i < 24; i++) assert_true(ax_tensor_get(ag->grad, i) == 1.0);
    ax_tensor_free(s);
    ax_tensor_free(o);
    ax_tensor_free(ag);
    ax_tensor_free(zg);
    ax_tensor_free(z0);
    ax_tensor_free(z1);
    ax_tensor_free(z2);
    ax_tensor_free(a);
}

static void test_cat_dtypes(void **state) {
    (void)state;
    ax_tensor *i1 = ax_idx(2, S(2, 2), S(1, 2, 3, 4)), *i2 = ax_idx(2, S(2, 1), S(-5, 9)), *o;
    assert_int_equal(ax_cat(&o, 2, (const ax_tensor *[]){i1, i2}, 1), AX_OK);
    assert_int_equal(o->dtype, AX_DTYPE_I64);
    const double want[] = {1, 2, -5, 3, 4, 9};
    for (int i = 0; i < 6; i++) assert_true(ax_tensor_get(o, i) == want[i]);
    ax_tensor_free(o);

    ax_tensor *a = ax_rnd(2, S(2, 3), 1), *b = ax_rnd(2, S(2, 3), 2), *ah, *bh, *oh;
    assert_int_equal(ax_tensor_to_dtype(&ah, a, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_to_dtype(&bh, b, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_cat(&oh, 2, (const ax_tensor *[]){ah, bh}, 0), AX_OK);
    assert_int_equal(oh->dtype, AX_DTYPE_BF16);
    ax_check_cat_values(oh, 2, (const ax_tensor *[]){ah, bh}, 0);
    ax_tensor_free(oh);

    /* bf16 with f32 promotes to f32 (torch.cat), the U-Net decoder's
     * upsampled half meeting its f32 skip under autocast; gradients come
     * back in each input's dtype */
    ax_tensor *ag, *bg = ax_leaf_copy(b, true), *s;
    assert_int_equal(ax_tensor_to_dtype(&ag, ah, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_set_requires_grad(ag, true), AX_OK);
    assert_int_equal(ax_cat(&oh, 2, (const ax_tensor *[]){ag, bg}, 1), AX_OK);
    assert_int_equal(oh->dtype, AX_DTYPE_F32);
    ax_expect_shape(oh, 2, S(2, 6));
    for (int64_t r = 0; r < 2; r++)
        for (int64_t c = 0; c < 3; c++) {
            assert_true(ax_tensor_get(oh, r * 6 + c) == ax_tensor_get(ah, r * 3 + c));
            assert_true(ax_tensor_get(oh, r * 6 + 3 + c) == ax_tensor_get(b, r * 3 + c));
        }
    assert_int_equal(ax_sum(&s, oh, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    assert_int_equal(ag->grad->dtype, AX_DTYPE_BF16);
    assert_int_equal(bg->grad->dtype, AX_DTYPE_F32);
    for (int64_t i = 0; i < 6; i++) assert_true(ax_tensor_get(ag->grad, i) == 1.0 && ax_tensor_get(bg->grad, i) == 1.0);
    ax_tensor_free(s);
    ax_tensor_free(oh);
    ax_tensor_free(ag);
    ax_tensor_free(bg);
    ax_tensor_free(ah);
    ax_tensor_free(bh);
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(i1);
    ax_tensor_free(i2);
}

static void test_cat_grad(void **state) {
    (void)state;
    ax_gctx c = {.op = G_CAT, .dim = 1};
    ax_gcheck(&c, 3, (int[]){3, 3, 3}, (const int64_t *const[]){S(2, 3, 4), S(2, 1, 4), S(2, 2, 4)});
    c.dim = -1;
    ax_gcheck(&c, 3, (int[]){2, 2, 2}, (const int64_t *const[]){S(3, 2), S(3, 5), S(3, 1)});
    c.dim = 0;
    ax_gcheck(&c, 3, (int[]){2, 2, 2}, (const int64_t *const[]){S(2, 3), S(1, 3), S(4, 3)});
    /* non-contiguous first input: a [4, 3, 2] leaf seen as [2, 3, 4] */
    c = (ax_gctx){.op = G_CAT, .dim = -2, .transpose = true};
    ax_gcheck(&c, 3, (int[]){3, 3, 3}, (const int64_t *const[]){S(4, 3, 2), S(2, 2, 4), S(2, 1, 4)});
    /* with an empty input */
    c = (ax_gctx){.op = G_CAT, .dim = 1};
    ax_gcheck(&c, 3, (int[]){2, 2, 2}, (const int64_t *const[]){S(2, 3), S(2, 0), S(2, 2)});
    /* more trainable inputs than one autograd node has edges */
    c = (ax_gctx){.op = G_CAT_WIDE, .dim = 1, .transpose = true};
    ax_gcheck(&c, 6, (int[]){2, 2, 2, 2, 2, 2},
              (const int64_t *const[]){S(2, 3), S(3, 1), S(3, 3), S(3, 2), S(3, 1), S(3, 4)});
}

static void test_cat_wide_forward(void **state) {
    (void)state;
    /* 9 trainable inputs: the grouped path, values and gradients */
    ax_tensor *ts[9], *o, *w, *p, *s;
    for (int i = 0; i < 9; i++) ts[i] = ax_test_randn(2, S(2, 1 + i % 3), 10 + (uint64_t)i, 1, 0, true);
    assert_int_equal(ax_cat(&o, 9, (const ax_tensor *const *)ts, 1), AX_OK);
    ax_expect_shape(o, 2, S(2, 18));
    ax_check_cat_values(o, 9, (const ax_tensor *const *)ts, 1);
    w = ax_rnd(2, S(2, 18), 99);
    assert_int_equal(ax_mul(&p, o, w), AX_OK);
    assert_int_equal(ax_sum(&s, p, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    int64_t col = 0;
    for (int i = 0; i < 9; i++) {
        assert_non_null(ts[i]->grad);
        for (int64_t r = 0; r < 2; r++)
            for (int64_t j = 0; j < ts[i]->shape[1]; j++)
                assert_true(ax_tensor_get(ts[i]->grad, r * ts[i]->shape[1] + j) == ax_tensor_get(w, r * 18 + col + j));
        col += ts[i]->shape[1];
    }
    ax_tensor_free(o);
    ax_tensor_free(w);
    ax_tensor_free(p);
    ax_tensor_free(s);
    for (int i = 0; i < 9; i++) ax_tensor_free(ts[i]);
}

static void test_stack(void **state) {
    (void)state;
    ax_tensor *a = ax_rnd(2, S(3, 4), 1), *b = ax_rnd(2, S(3, 4), 2), *o;
    const ax_tensor *ts[2] = {a, b};
    const int dims[] = {0, 1, 2, -1, -3};
    const int64_t shapes[][3] = {{2, 3, 4}, {3, 2, 4}, {3, 4, 2}, {3, 4, 2}, {2, 3, 4}};
    for (int k = 0; k < 5; k++) {
        int d = dims[k] < 0 ? dims[k] + 3 : dims[k];
        assert_int_equal(ax_stack(&o, 2, ts, dims[k]), AX_OK);
        ax_expect_shape(o, 3, shapes[k]);
        int64_t c[3], ci[2];
        for (int64_t i = 0; i < 24; i++) {
            ax_unravel(i, 3, o->shape, c);
            for (int q = 0, j = 0; q < 3; q++)
                if (q != d) ci[j++] = c[q];
            assert_true(ax_tensor_get(o, i) == ax_tensor_get(ts[c[d]], ci[0] * 4 + ci[1]));
        }
        ax_tensor_free(o);
    }
    /* a single tensor */
    assert_int_equal(ax_stack(&o, 1, ts, 0), AX_OK);
    ax_expect_shape(o, 3, S(1, 3, 4));
    ax_tensor_free(o);

    ax_gctx c = {.op = G_STACK, .dim = 1};
    ax_gcheck(&c, 3, (int[]){2, 2, 2}, (const int64_t *const[]){S(3, 4), S(3, 4), S(3, 4)});
    c.dim = -1;
    ax_gcheck(&c, 3, (int[]){2, 2, 2}, (const int64_t *const[]){S(3, 4), S(3, 4), S(3, 4)});
    c = (ax_gctx){.op = G_STACK, .dim = 0, .transpose = true};
    ax_gcheck(&c, 3, (int[]){2, 2, 2}, (const int64_t *const[]){S(4, 3), S(3, 4), S(3, 4)});
    ax_tensor_free(a);
    ax_tensor_free(b);
}

/* ---- split / chunk ---------------------------------------------------------------------- */

static void ax_expect_pieces(ax_tensor **outs, int n, int want_n, const int64_t *sizes, const ax_tensor *x, int d) {
    assert_int_equal(n, want_n);
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(outs[i]->shape[d], sizes[i]);
        assert_ptr_equal(outs[i]->storage, x->storage); /* a view */
        ax_tensor *ref;
        assert_int_equal(ax_tensor_narrow(&ref, x, d, start, sizes[i]), AX_OK);
        assert_true(ax_allclose("piece", outs[i], ref, 0, 0));
        ax_tensor_free(ref);
        start += sizes[i];
    }
}

static void ax_free_pieces(ax_tensor **outs, int n) {
    for (int i = 0; i < n; i++) {
        ax_tensor_free(outs[i]);
        outs[i] = NULL;
    }
}

static void test_split(void **state) {
    (void)state;
    ax_tensor *x = ax_rnd(3, S(2, 5, 3), 1), *outs[8], *e;
    int n;
    assert_int_equal(ax_split(outs, &n, 8, x, 2, 1), AX_OK); /* uneven */
    ax_expect_pieces(outs, n, 3, S(2, 2, 1), x, 1);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_split(outs, &n, 8, x, 7, -2), AX_OK); /* larger than the dim */
    ax_expect_pieces(outs, n, 1, S(5), x, 1);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_split(outs, &n, 8, x, 1, -1), AX_OK);
    ax_expect_pieces(outs, n, 3, S(1, 1, 1), x, 2);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_split(outs, &n, 2, x, 1, 0), AX_OK); /* exactly max_out */
    ax_expect_pieces(outs, n, 2, S(1, 1), x, 0);
    ax_free_pieces(outs, n);

    /* an empty dim: one empty piece, for any split_size (even 0) */
    assert_int_equal(ax_tensor_empty(&e, 2, S(3, 0), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_split(outs, &n, 8, e, 2, 1), AX_OK);
    ax_expect_pieces(outs, n, 1, S(0), e, 1);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_split(outs, &n, 8, e, 0, 1), AX_OK);
    assert_int_equal(n, 1);
    ax_free_pieces(outs, n);

    assert_int_equal(ax_split_sizes(outs, x, 3, S(1, 0, 4), 1), AX_OK);
    ax_expect_pieces(outs, 3, 3, S(1, 0, 4), x, 1);
    ax_free_pieces(outs, 3);

    /* gradients through one piece, and a non-contiguous x */
    ax_gctx c = {.op = G_SPLIT, .dim = 1, .split = 2, .piece = 1};
    ax_gcheck(&c, 1, (int[]){3}, (const int64_t *const[]){S(2, 5, 3)});
    c = (ax_gctx){.op = G_SPLIT, .dim = -1, .split = 2, .piece = 1, .transpose = true};
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(5, 3)});
    ax_tensor_free(e);
    ax_tensor_free(x);
}

static void test_chunk(void **state) {
    (void)state;
    ax_tensor *outs[8], *x5, *x6, *x2, *e;
    int n;
    x5 = ax_rnd(2, S(5, 2), 1);
    x6 = ax_rnd(2, S(2, 6), 2);
    x2 = ax_rnd(1, S(2), 3);
    assert_int_equal(ax_tensor_empty(&e, 1, S(0), AX_DTYPE_F32), AX_OK);
    /* torch.chunk: pieces of ceil(S / chunks), possibly fewer of them */
    assert_int_equal(ax_chunk(outs, &n, 8, x5, 3, 0), AX_OK);
    ax_expect_pieces(outs, n, 3, S(2, 2, 1), x5, 0);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_chunk(outs, &n, 8, x5, 4, 0), AX_OK); /* 4 asked, 3 given */
    ax_expect_pieces(outs, n, 3, S(2, 2, 1), x5, 0);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_chunk(outs, &n, 8, x6, 4, -1), AX_OK);
    ax_expect_pieces(outs, n, 3, S(2, 2, 2), x6, 1);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_chunk(outs, &n, 8, x2, 5, 0), AX_OK); /* chunks > size */
    ax_expect_pieces(outs, n, 2, S(1, 1), x2, 0);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_chunk(outs, &n, 8, x6, 1, 1), AX_OK);
    ax_expect_pieces(outs, n, 1, S(6), x6, 1);
    ax_free_pieces(outs, n);
    assert_int_equal(ax_chunk(outs, &n, 8, e, 3, 0), AX_OK); /* empty: `chunks` empty pieces */
    ax_expect_pieces(outs, n, 3, S(0, 0, 0), e, 0);
    ax_free_pieces(outs, n);

    ax_gctx c = {.op = G_CHUNK, .dim = 0, .split = 3, .piece = 2};
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(5, 2)});
    c = (ax_gctx){.op = G_CHUNK, .dim = 0, .split = 2, .piece = 0, .transpose = true};
    ax_gcheck(&c, 1, (int[]){3}, (const int64_t *const[]){S(3, 2, 5)});
    ax_tensor_free(x5);
    ax_tensor_free(x6);
    ax_tensor_free(x2);
    ax_tensor_free(e);
}

/* ---- gather / scatter_add ------------------------------------------------------------------ */

static void ax_ref_gather(const ax_tensor *out, const ax_tensor *x, int d, const ax_tensor *index) {
    int64_t c[AX_MAX_DIMS];
    assert_true(ax_tensor_same_shape(out, index));
    for (int64_t i = 0; i < ax_tensor_numel(index); i++) {
        ax_unravel(i, index->ndim, index->shape, c);
        c[d] = (int64_t)ax_tensor_get(index, i);
        double want = ax_tensor_get(x, ax_ravel(c, x->ndim, x->shape));
        if (ax_tensor_get(out, i) != want) {
            fprintf(stderr, "gather element %lld: got %g want %g\n", (long long)i, ax_tensor_get(out, i), want);
            fail();
        }
    }
}

static void test_gather_forward(void **state) {
    (void)state;
    ax_tensor *x = ax_rnd(3, S(3, 4, 5), 1), *o;
    ax_tensor *i1 = ax_rand_idx(3, S(3, 7, 2), 4, 11); /* larger than x in dim, smaller elsewhere */
    assert_int_equal(ax_gather(&o, x, 1, i1), AX_OK);
    ax_expect_shape(o, 3, S(3, 7, 2));
    ax_ref_gather(o, x, 1, i1);
    ax_tensor_free(o);
    ax_tensor *i2 = ax_rand_idx(3, S(2, 4, 3), 5, 12);
    assert_int_equal(ax_gather(&o, x, -1, i2), AX_OK);
    ax_ref_gather(o, x, 2, i2);
    ax_tensor_free(o);
    ax_tensor *i0 = ax_rand_idx(3, S(5, 4, 5), 3, 13);
    assert_int_equal(ax_gather(&o, x, 0, i0), AX_OK);
    ax_ref_gather(o, x, 0, i0);
    ax_tensor_free(o);

    /* non-contiguous x and index */
    ax_tensor *xt, *it, *ic = ax_rand_idx(3, S(2, 3, 3), 5, 14);
    assert_int_equal(ax_tensor_permute(&xt, x, (int[]){2, 0, 1}), AX_OK); /* [5, 3, 4] */
    assert_int_equal(ax_tensor_transpose(&it, ic, 0, 2), AX_OK);          /* [3, 3, 2] */
    assert_int_equal(ax_gather(&o, xt, 0, it), AX_OK);
    ax_ref_gather(o, xt, 0, it);
    ax_tensor_free(o);

    /* other dtypes: i64 and bf16 data are copied as they are */
    ax_tensor *xi = ax_idx(2, S(2, 3), S(10, 11, 12, 13, 14, 15)), *ii = ax_idx(2, S(2, 2), S(2, 0, 1, 1)), *xb;
    assert_int_equal(ax_gather(&o, xi, 1, ii), AX_OK);
    assert_int_equal(o->dtype, AX_DTYPE_I64);
    const double want[] = {12, 10, 14, 14};
    for (int i = 0; i < 4; i++) assert_true(ax_tensor_get(o, i) == want[i]);
    ax_tensor_free(o);
    assert_int_equal(ax_tensor_to_dtype(&xb, x, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_gather(&o, xb, 1, i1), AX_OK);
    assert_int_equal(o->dtype, AX_DTYPE_BF16);
    ax_ref_gather(o, xb, 1, i1);
    ax_tensor_free(o);

    /* an empty index gives an empty result */
    ax_tensor *ie;
    assert_int_equal(ax_tensor_empty(&ie, 3, S(3, 0, 5), AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_gather(&o, x, 1, ie), AX_OK);
    ax_expect_shape(o, 3, S(3, 0, 5));
    ax_tensor_free(o);

    ax_tensor *to_free[] = {x, i1, i2, i0, xt, it, ic, xi, ii, xb, ie};
    for (size_t k = 0; k < sizeof to_free / sizeof *to_free; k++) ax_tensor_free(to_free[k]);
}

static void test_gather_grad(void **state) {
    (void)state;
    ax_tensor *i1 = ax_rand_idx(3, S(3, 6, 2), 4, 21); /* repeats: gradients accumulate */
    ax_gctx c = {.op = G_GATHER, .dim = 1, .index = i1};
    ax_gcheck(&c, 1, (int[]){3}, (const int64_t *const[]){S(3, 4, 5)});
    c.dim = -2;
    ax_gcheck(&c, 1, (int[]){3}, (const int64_t *const[]){S(3, 4, 5)});
    c.transpose = true; /* a [5, 4, 3] leaf seen as [3, 4, 5] */
    ax_gcheck(&c, 1, (int[]){3}, (const int64_t *const[]){S(5, 4, 3)});
    ax_tensor *i2 = ax_rand_idx(2, S(2, 7), 3, 22);
    c = (ax_gctx){.op = G_GATHER, .dim = -1, .index = i2};
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(4, 3)});
    ax_tensor_free(i1);
    ax_tensor_free(i2);
}

/* x.clone().scatter_add_(d, index, src), naively in double */
static ax_tensor *ax_ref_scatter(const ax_tensor *x, int d, const ax_tensor *index, const ax_tensor *src) {
    ax_tensor *r = ax_leaf_copy(x, false);
    int64_t c[AX_MAX_DIMS];
    for (int64_t i = 0; i < ax_tensor_numel(index); i++) {
        ax_unravel(i, index->ndim, index->shape, c);
        double v = ax_tensor_get(src, ax_ravel(c, src->ndim, src->shape));
        c[d] = (int64_t)ax_tensor_get(index, i);
        int64_t j = ax_ravel(c, x->ndim, x->shape);
        ax_tensor_set(r, j, ax_tensor_get(r, j) + v);
    }
    return r;
}

static void test_scatter_add_forward(void **state) {
    (void)state;
    ax_tensor *x = ax_rnd(2, S(3, 5), 1), *src = ax_rnd(2, S(3, 4), 2), *o, *r;
    ax_tensor *i1 = ax_rand_idx(2, S(3, 4), 5, 31);
    assert_int_equal(ax_scatter_add(&o, x, 1, i1, src), AX_OK);
    r = ax_ref_scatter(x, 1, i1, src);
    assert_true(ax_allclose("scatter_add dim 1", o, r, 1e-6, 1e-6));
    ax_tensor_free(o);
    ax_tensor_free(r);
    assert_int_equal(ax_scatter_add(&o, x, -1, i1, src), AX_OK); /* negative dim */
    r = ax_ref_scatter(x, 1, i1, src);
    assert_true(ax_allclose("scatter_add dim -1", o, r, 1e-6, 1e-6));
    ax_tensor_free(o);
    ax_tensor_free(r);

    /* dim 0, index smaller than src and x outside dim */
    ax_tensor *x3 = ax_rnd(3, S(4, 3, 2), 3), *s3 = ax_rnd(3, S(7, 3, 3), 4), *i3 = ax_rand_idx(3, S(6, 2, 2), 4, 32);
    assert_int_equal(ax_scatter_add(&o, x3, 0, i3, s3), AX_OK);
    r = ax_ref_scatter(x3, 0, i3, s3);
    assert_true(ax_allclose("scatter_add dim 0", o, r, 1e-6, 1e-6));
    ax_tensor_free(o);
    ax_tensor_free(r);

    /* non-contiguous x, src and index */
    ax_tensor *xt, *st, *it, *ic = ax_rand_idx(2, S(4, 3), 5, 33);
    ax_tensor *xc = ax_rnd(2, S(5, 3), 5), *sc = ax_rnd(2, S(4, 3), 6);
    assert_int_equal(ax_tensor_transpose(&xt, xc, 0, 1), AX_OK);
    assert_int_equal(ax_tensor_transpose(&st, sc, 0, 1), AX_OK);
    assert_int_equal(ax_tensor_transpose(&it, ic, 0, 1), AX_OK);
    assert_int_equal(ax_scatter_add(&o, xt, 1, it, st), AX_OK);
    r = ax_ref_scatter(xt, 1, it, st);
    assert_true(ax_allclose("scatter_add strided", o, r, 1e-6, 1e-6));
    ax_tensor_free(o);
    ax_tensor_free(r);

    /* bf16: summed in f32, rounded once */
    ax_tensor *xb, *sb, *ob;
    assert_int_equal(ax_tensor_to_dtype(&xb, x, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_to_dtype(&sb, src, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_scatter_add(&ob, xb, 1, i1, sb), AX_OK);
    assert_int_equal(ob->dtype, AX_DTYPE_BF16);
    r = ax_ref_scatter(xb, 1, i1, sb);
    assert_true(ax_allclose("scatter_add bf16", ob, r, 1e-2, 1e-2));
    ax_tensor_free(ob);
    ax_tensor_free(r);

    ax_tensor *to_free[] = {x, src, i1, x3, s3, i3, xt, st, it, ic, xc, sc, xb, sb};
    for (size_t k = 0; k < sizeof to_free / sizeof *to_free; k++) ax_tensor_free(to_free[k]);
}

static void test_scatter_add_grad(void **state) {
    (void)state;
    ax_tensor *i1 = ax_rand_idx(2, S(3, 4), 5, 41);
    ax_gctx c = {.op = G_SCATTER, .dim = 1, .index = i1};
    ax_gcheck(&c, 2, (int[]){2, 2}, (const int64_t *const[]){S(3, 5), S(3, 4)});
    c.dim = -1;
    ax_gcheck(&c, 2, (int[]){2, 2}, (const int64_t *const[]){S(3, 5), S(3, 4)});
    /* transposed x [5, 3] -> [3, 5] and src [4, 3] -> [3, 4] */
    c.transpose = c.transpose_src = true;
    ax_gcheck(&c, 2, (int[]){2, 2}, (const int64_t *const[]){S(5, 3), S(4, 3)});
    /* src larger than index: its extra elements get zero gradient */
    ax_tensor *i2 = ax_rand_idx(3, S(5, 2, 2), 3, 42);
    c = (ax_gctx){.op = G_SCATTER, .dim = 0, .index = i2};
    ax_gcheck(&c, 2, (int[]){3, 3}, (const int64_t *const[]){S(3, 3, 2), S(6, 2, 3)});
    ax_tensor_free(i1);
    ax_tensor_free(i2);
}

/* ---- index_select / embedding / masked_fill -------------------------------------------------- */

static void ax_ref_isel(const ax_tensor *out, const ax_tensor *x, int d, const ax_tensor *index) {
    int64_t c[AX_MAX_DIMS];
    for (int64_t i = 0; i < ax_tensor_numel(out); i++) {
        ax_unravel(i, out->ndim, out->shape, c);
        c[d] = (int64_t)ax_tensor_get(index, c[d]);
        double want = ax_tensor_get(x, ax_ravel(c, x->ndim, x->shape));
        if (ax_tensor_get(out, i) != want) {
            fprintf(stderr, "index_select element %lld: got %g want %g\n", (long long)i, ax_tensor_get(out, i), want);
            fail();
        }
    }
}

static void test_index_select(void **state) {
    (void)state;
    ax_tensor *x = ax_rnd(3, S(4, 3, 2), 1), *o;
    ax_tensor *i5 = ax_idx(1, S(5), S(2, 0, 2, 1, 2));
    const int dims[] = {0, 1, 2, -1, -3};
    const int64_t sizes[] = {4, 3, 2, 2, 4};
    for (int k = 0; k < 5; k++) {
        int d = dims[k] < 0 ? dims[k] + 3 : dims[k];
        ax_tensor *ik = ax_rand_idx(1, S(6), sizes[k], 50 + (uint64_t)k);
        assert_int_equal(ax_index_select(&o, x, dims[k], ik), AX_OK);
        assert_int_equal(o->shape[d], 6);
        ax_ref_isel(o, x, d, ik);
        ax_tensor_free(o);
        ax_tensor_free(ik);
    }
    assert_int_equal(ax_index_select(&o, x, 1, i5), AX_OK);
    ax_expect_shape(o, 3, S(4, 5, 2));
    ax_ref_isel(o, x, 1, i5);
    ax_tensor_free(o);

    /* non-contiguous x and index; a 0-dim index; an empty index */
    ax_tensor *xt, *ib = ax_idx(1, S(6), S(1, 9, 0, 9, 3, 9)), *is, *i0, *ie;
    assert_int_equal(ax_tensor_permute(&xt, x, (int[]){2, 0, 1}), AX_OK);
    assert_int_equal(ax_tensor_slice(&is, ib, 0, 0, 6, 2), AX_OK); /* {1, 0, 3} */
    assert_int_equal(ax_index_select(&o, xt, 1, is), AX_OK);
    ax_expect_shape(o, 3, S(2, 3, 3));
    ax_ref_isel(o, xt, 1, is);
    ax_tensor_free(o);
    assert_int_equal(ax_tensor_scalar(&i0, 2, AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_index_select(&o, x, 0, i0), AX_OK);
    ax_expect_shape(o, 3, S(1, 3, 2));
    ax_ref_isel(o, x, 0, i0);
    ax_tensor_free(o);
    assert_int_equal(ax_tensor_empty(&ie, 1, S(0), AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_index_select(&o, x, 2, ie), AX_OK);
    ax_expect_shape(o, 3, S(4, 3, 0));
    ax_tensor_free(o);

    /* integer data */
    ax_tensor *xi = ax_idx(2, S(3, 2), S(1, 2, 3, 4, 5, 6)), *i2 = ax_idx(1, S(1), S(2));
    assert_int_equal(ax_index_select(&o, xi, 0, i2), AX_OK);
    assert_int_equal(o->dtype, AX_DTYPE_I64);
    assert_true(ax_tensor_get(o, 0) == 5 && ax_tensor_get(o, 1) == 6);
    ax_tensor_free(o);
    ax_tensor_free(i2);

    ax_gctx c = {.op = G_ISEL, .dim = 1, .index = i5};
    ax_gcheck(&c, 1, (int[]){3}, (const int64_t *const[]){S(4, 3, 2)});
    c.dim = -2;
    c.transpose = true;
    ax_gcheck(&c, 1, (int[]){3}, (const int64_t *const[]){S(2, 3, 4)});
    c = (ax_gctx){.op = G_ISEL, .dim = 0, .index = i5};
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(3, 4)});

    ax_tensor *to_free[] = {x, i5, xt, ib, is, i0, ie, xi};
    for (size_t k = 0; k < sizeof to_free / sizeof *to_free; k++) ax_tensor_free(to_free[k]);
}

static void test_embedding(void **state) {
    (void)state;
    ax_tensor *w = ax_rnd(2, S(7, 3), 1), *o;
    ax_tensor *ind = ax_idx(2, S(2, 4), S(6, 0, 3, 3, 1, 6, 6, 2));
    assert_int_equal(ax_embedding(&o, w, ind), AX_OK);
    ax_expect_shape(o, 3, S(2, 4, 3));
    for (int64_t p = 0; p < 8; p++)
        for (int64_t j = 0; j < 3; j++)
            assert_true(ax_tensor_get(o, p * 3 + j) == ax_tensor_get(w, (int64_t)ax_tensor_get(ind, p) * 3 + j));
    ax_tensor_free(o);

    /* non-contiguous indices, and a 0-dim one: out [D] */
    ax_tensor *it, *i0;
    assert_int_equal(ax_tensor_transpose(&it, ind, 0, 1), AX_OK);
    assert_int_equal(ax_embedding(&o, w, it), AX_OK);
    ax_expect_shape(o, 3, S(4, 2, 3));
    for (int64_t p = 0; p < 8; p++)
        for (int64_t j = 0; j < 3; j++)
            assert_true(ax_tensor_get(o, p * 3 + j) == ax_tensor_get(w, (int64_t)ax_tensor_get(it, p) * 3 + j));
    ax_tensor_free(o);
    assert_int_equal(ax_tensor_scalar(&i0, 5, AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_embedding(&o, w, i0), AX_OK);
    ax_expect_shape(o, 1, S(3));
    ax_tensor_free(o);

    ax_gctx c = {.op = G_EMBED, .index = ind};
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(7, 3)});
    c.transpose = true; /* a [3, 7] leaf seen as weight [7, 3] */
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(3, 7)});
    ax_tensor_free(w);
    ax_tensor_free(ind);
    ax_tensor_free(it);
    ax_tensor_free(i0);
}

static void test_masked_fill(void **state) {
    (void)state;
    ax_tensor *x = ax_rnd(2, S(3, 4), 1), *o;
    ax_tensor *m;
    assert_int_equal(ax_tensor_from_buffer(&m, 2, S(1, 4), AX_DTYPE_U8, (uint8_t[]){1, 0, 0, 1}, 4), AX_OK);
    assert_int_equal(ax_masked_fill(&o, x, m, -2.5), AX_OK);
    ax_expect_shape(o, 2, S(3, 4));
    for (int64_t i = 0; i < 12; i++)
        assert_true(ax_tensor_get(o, i) == ((i % 4 == 0 || i % 4 == 3) ? -2.5 : ax_tensor_get(x, i)));
    ax_tensor_free(o);

    /* the mask broadcasts the result up, like torch.masked_fill */
    ax_tensor *x1 = ax_rnd(1, S(4), 2), *m2;
    assert_int_equal(ax_tensor_from_buffer(&m2, 2, S(2, 1), AX_DTYPE_U8, (uint8_t[]){0, 1}, 2), AX_OK);
    assert_int_equal(ax_masked_fill(&o, x1, m2, 3), AX_OK);
    ax_expect_shape(o, 2, S(2, 4));
    for (int64_t i = 0; i < 8; i++) assert_true(ax_tensor_get(o, i) == (i >= 4 ? 3.0 : ax_tensor_get(x1, i)));
    ax_tensor_free(o);

    /* integers: the value is converted to x's dtype */
    ax_tensor *xi = ax_idx(1, S(4), S(1, 2, 3, 4));
    assert_int_equal(ax_masked_fill(&o, xi, m, 9), AX_OK);
    assert_int_equal(o->dtype, AX_DTYPE_I64);
    ax_expect_shape(o, 2, S(1, 4));
    const double want[] = {9, 2, 3, 9};
    for (int i = 0; i < 4; i++) assert_true(ax_tensor_get(o, i) == want[i]);
    ax_tensor_free(o);

    ax_gctx c = {.op = G_MFILL, .index = m, .value = -2.5};
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(3, 4)});
    c.transpose = true;
    ax_gcheck(&c, 1, (int[]){2}, (const int64_t *const[]){S(4, 3)});
    c = (ax_gctx){.op = G_MFILL, .index = m2, .value = 1};
    ax_gcheck(&c, 1, (int[]){1}, (const int64_t *const[]){S(4)});
    ax_tensor_free(x);
    ax_tensor_free(x1);
    ax_tensor_free(xi);
    ax_tensor_free(m);
    ax_tensor_free(m2);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_errors_cat_split(void **state) {
    (void)state;
    ax_tensor *a = ax_rnd(3, S(2, 3, 4), 1), *b = ax_rnd(3, S(2, 3, 5), 2), *o = (ax_tensor *)1, *ab, *s0, *outs[4];
    int n;
    assert_int_equal(ax_tensor_to_dtype(&ab, a, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_scalar(&s0, 1, AX_DTYPE_F32), AX_OK);
    ax_expect_error(ax_cat(&o, 0, (const ax_tensor *[]){a}, 0), "ax_cat: needs at least one tensor, got 0");
    assert_null(o);
    ax_expect_error(ax_cat(&o, 2, (const ax_tensor *[]){a, NULL}, 0), "ax_cat: ts[1] is NULL");
    ax_tensor *ai;
    assert_int_equal(ax_tensor_to_dtype(&ai, a, AX_DTYPE_I64), AX_OK);
    ax_expect_error(ax_cat(&o, 2, (const ax_tensor *[]){a, ai}, 0),
                    "ax_cat: ts[1] is i64 but ts[0] is f32 (only float dtypes promote: convert first)");
    ax_tensor_free(ai);
    ax_expect_error(ax_cat(&o, 2, (const ax_tensor *[]){a, b}, 1),
                    "ax_cat: ts[1] [2, 3, 5] does not match ts[0] [2, 3, 4] outside dim 1");
    ax_expect_error(ax_cat(&o, 2, (const ax_tensor *[]){a, s0}, 0), "ax_cat: ts[1] [] does not match ts[0] [2, 3, 4]");
    ax_expect_error(ax_cat(&o, 2, (const ax_tensor *[]){a, b}, 3), "ax_cat: dim 3 out of range for ts[0] [2, 3, 4]");
    ax_expect_error(ax_cat(&o, 2, (const ax_tensor *[]){a, b}, -4), "ax_cat: dim -4 out of range");
    ax_expect_error(ax_cat(&o, 1, (const ax_tensor *[]){s0}, 0), "ax_cat: ts[0] must have at least 1 dim");
    assert_null(o);

    ax_expect_error(ax_stack(&o, 2, (const ax_tensor *[]){a, b}, 0),
                    "ax_stack: ts[1] [2, 3, 5] != ts[0] [2, 3, 4]: stacked tensors need one shape");
    ax_expect_error(ax_stack(&o, 2, (const ax_tensor *[]){a, a}, 4),
                    "ax_stack: dim 4 out of range for stacking ts[0] [2, 3, 4]");
    ax_expect_error(ax_stack(&o, 2, (const ax_tensor *[]){a, a}, -5), "ax_stack: dim -5 out of range");
    assert_int_equal(ax_tensor_to_dtype(&ai, a, AX_DTYPE_U8), AX_OK);
    ax_expect_error(ax_stack(&o, 2, (const ax_tensor *[]){a, ai}, 0), "ax_stack: ts[1] is u8 but ts[0] is f32");
    ax_tensor_free(ai);
    ax_expect_error(ax_stack(&o, 0, NULL, 0), "ax_stack: needs at least one tensor");
    assert_null(o);

    ax_expect_error(ax_split(outs, &n, 4, a, 0, 1), "ax_split: split_size 0 must be >= 1 for dim 1 of size 3");
    ax_expect_error(ax_split(outs, &n, 4, a, -2, 1), "ax_split: split_size -2 must be >= 1");
    ax_expect_error(ax_split(outs, &n, 2, a, 1, 2),
                    "ax_split: 4 pieces along dim 2 of x [2, 3, 4] do not fit in max_out 2");
    assert_int_equal(n, 0);
    assert_null(outs[0]);
    ax_expect_error(ax_split(outs, &n, 4, a, 1, 3), "ax_split: dim 3 out of range for x [2, 3, 4]");
    ax_expect_error(ax_split(outs, &n, 4, s0, 1, 0), "ax_split: x must have at least 1 dim");
    ax_expect_error(ax_split_sizes(outs, a, 2, S(1, 1), 1),
                    "ax_split_sizes: sizes add up to 2, not to dim 1 of x [2, 3, 4]");
    ax_expect_error(ax_split_sizes(outs, a, 2, S(4, -1), 1), "ax_split_sizes: sizes[1] = -1 is negative");
    ax_expect_error(ax_split_sizes(outs, a, 0, S(0), 1), "ax_split_sizes: needs at least one size, got 0");
    ax_expect_error(ax_chunk(outs, &n, 4, a, 0, 0), "ax_chunk: chunks 0 must be >= 1");
    ax_expect_error(ax_chunk(outs, &n, 2, a, 4, -1),
                    "ax_chunk: 4 pieces along dim 2 of x [2, 3, 4] do not fit in max_out 2");
    ax_expect_error(ax_chunk(outs, &n, 4, a, 2, -4), "ax_chunk: dim -4 out of range for x [2, 3, 4]");
    assert_int_equal(n, 0);

    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(ab);
    ax_tensor_free(s0);
}

static void test_errors_index(void **state) {
    (void)state;
    ax_tensor *x = ax_rnd(2, S(2, 5), 1), *o = (ax_tensor *)1;
    ax_tensor *bad = ax_idx(2, S(2, 2), S(0, 1, 2, 7)), *neg = ax_idx(2, S(2, 2), S(0, -1, 2, 3));
    ax_tensor *i32, *i3d = ax_idx(3, S(1, 1, 1), S(0)), *wide = ax_idx(2, S(3, 1), S(0, 0, 0));
    assert_int_equal(ax_tensor_to_dtype(&i32, neg, AX_DTYPE_I32), AX_OK);
    /* the brief's message, exactly */
    ax_expect_error(ax_gather(&o, x, 1, bad), "ax_gather: index 7 at position 3 is out of range for dim 1 of size 5");
    assert_string_equal(ax_error_message(), "ax_gather: index 7 at position 3 is out of range for dim 1 of size 5");
    assert_null(o);
    ax_expect_error(ax_gather(&o, x, -1, neg), "ax_gather: index -1 at position 1 is out of range for dim 1 of size 5");
    ax_expect_error(ax_gather(&o, x, 0, bad), "ax_gather: index 2 at position 2 is out of range for dim 0 of size 2");
    ax_expect_error(ax_gather(&o, x, 1, i32), "ax_gather: index must be i64, got i32");
    ax_expect_error(ax_gather(&o, x, 1, i3d), "ax_gather: index [1, 1, 1] must have x's 2 dims (x [2, 5])");
    ax_expect_error(ax_gather(&o, x, 1, wide),
                    "ax_gather: index [3, 1] is larger than x [2, 5] in dim 0 (only dim 1 may be)");
    ax_expect_error(ax_gather(&o, x, 2, bad), "ax_gather: dim 2 out of range for x [2, 5]");

    ax_tensor *src = ax_rnd(2, S(2, 2), 2), *srcb, *xi = ax_idx(2, S(2, 5), S(0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    ax_tensor *small = ax_rnd(2, S(2, 1), 3);
    assert_int_equal(ax_tensor_to_dtype(&srcb, src, AX_DTYPE_BF16), AX_OK);
    ax_expect_error(ax_scatter_add(&o, x, 1, bad, src),
                    "ax_scatter_add: index 7 at position 3 is out of range for dim 1 of size 5");
    ax_expect_error(ax_scatter_add(&o, x, 1, i32, src), "ax_scatter_add: index must be i64, got i32");
    ax_expect_error(ax_scatter_add(&o, x, 1, neg, srcb), "ax_scatter_add: src is bf16 but x is f32 (they must match)");
    ax_expect_error(ax_scatter_add(&o, xi, 1, neg, xi), "ax_scatter_add: x must be a floating tensor, got i64");
    ax_expect_error(ax_scatter_add(&o, x, 1, neg, small), "ax_scatter_add: index [2, 2] is larger than src [2, 1] in dim 1");
    ax_expect_error(ax_scatter_add(&o, x, 1, wide, src), "ax_scatter_add: index [3, 1] is larger than x [2, 5] in dim 0");
    ax_expect_error(ax_scatter_add(&o, x, 1, i3d, src), "ax_scatter_add: index [1, 1, 1] must have x's 2 dims");
    ax_expect_error(ax_scatter_add(&o, x, -3, neg, src), "ax_scatter_add: dim -3 out of range for x [2, 5]");
    assert_null(o);

    ax_tensor *v = ax_idx(1, S(4), S(4, 0, 5, 9));
    ax_expect_error(ax_index_select(&o, x, 1, v), "ax_index_select: index 5 at position 2 is out of range for dim 1 of size 5");
    assert_string_equal(ax_error_message(), "ax_index_select: index 5 at position 2 is out of range for dim 1 of size 5");
    ax_expect_error(ax_index_select(&o, x, 0, v), "ax_index_select: index 4 at position 0 is out of range for dim 0 of size 2");
    ax_expect_error(ax_index_select(&o, x, 0, bad), "ax_index_select: index [2, 2] must be 1-D");
    ax_expect_error(ax_index_select(&o, x, 0, i32), "ax_index_select: index must be i64, got i32");
    ax_expect_error(ax_index_select(&o, x, 2, v), "ax_index_select: dim 2 out of range for x [2, 5]");
    assert_null(o);

    ax_tensor *w = ax_rnd(2, S(10, 4), 4), *ind = ax_idx(2, S(2, 2), S(1, 2, 12, 0)), *w1 = ax_rnd(1, S(10), 5);
    ax_expect_error(ax_embedding(&o, w, ind), "ax_embedding: indices [2, 2] into weight [10, 4]: ");
    ax_expect_error(ax_embedding(&o, w, ind), "index 12 at position 2 is out of range for dim 0 of size 10");
    ax_expect_error(ax_embedding(&o, w1, ind), "ax_embedding: weight [10] must be 2-D [V, D]");
    ax_expect_error(ax_embedding(&o, w, i32), "ax_embedding: indices must be i64, got i32");
    assert_null(o);

    ax_tensor *mf, *m3;
    assert_int_equal(ax_tensor_zeros(&mf, 2, S(2, 5), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_zeros(&m3, 1, S(3), AX_DTYPE_U8), AX_OK);
    ax_expect_error(ax_masked_fill(&o, x, mf, 0), "ax_masked_fill: mask must be u8 (a comparison's result), got f32");
    ax_expect_error(ax_masked_fill(&o, x, m3, 0), "ax_masked_fill: cannot broadcast mask [3] with x [2, 5]");
    assert_null(o);

    ax_tensor *to_free[] = {x, bad, neg, i32, i3d, wide, src, srcb, xi, small, v, w, ind, w1, mf, m3};
    for (size_t k = 0; k < sizeof to_free / sizeof *to_free; k++) ax_tensor_free(to_free[k]);
}

/* The kernels check indices themselves and write nothing when one is bad. */
static void test_kernel_bounds(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    ax_tensor *x = ax_rnd(2, S(3, 4), 1), *out, *bad = ax_idx(2, S(2, 2), S(1, 2, 3, 4)), *src = ax_rnd(2, S(2, 2), 2);
    ax_tensor *v = ax_idx(1, S(3), S(0, 3, -7));
    assert_int_equal(ax_tensor_full(&out, 2, S(2, 2), AX_DTYPE_F32, 42), AX_OK);
    ax_expect_error(k->gather(out, x, 1, bad), "ax_gather: index 4 at position 3 is out of range for dim 1 of size 4");
    for (int i = 0; i < 4; i++) assert_true(ax_tensor_get(out, i) == 42);
    ax_tensor *acc;
    assert_int_equal(ax_tensor_full(&acc, 2, S(3, 4), AX_DTYPE_F32, 42), AX_OK);
    ax_expect_error(k->scatter_add(acc, 1, bad, src), "ax_scatter_add: index 4 at position 3");
    ax_expect_error(k->scatter_add(acc, 0, bad, src), "ax_scatter_add: index 3 at position 2 is out of range for dim 0 of size 3");
    ax_tensor *isrc;
    assert_int_equal(ax_tensor_ones(&isrc, 2, S(3, 3), AX_DTYPE_F32), AX_OK);
    ax_expect_error(k->index_add(acc, 1, v, isrc), "ax_index_add: index -7 at position 2 is out of range for dim 1 of size 4");
    for (int i = 0; i < 12; i++) assert_true(ax_tensor_get(acc, i) == 42);
    ax_tensor *sel;
    assert_int_equal(ax_tensor_full(&sel, 2, S(3, 3), AX_DTYPE_F32, 42), AX_OK);
    ax_expect_error(k->index_select(sel, x, 1, v), "ax_index_select: index -7 at position 2");
    for (int i = 0; i < 9; i++) assert_true(ax_tensor_get(sel, i) == 42);
    /* shape rules too: an index larger than x outside dim */
    ax_tensor *big = ax_idx(2, S(4, 1), S(0, 0, 0, 0)), *o4;
    assert_int_equal(ax_tensor_empty(&o4, 2, S(4, 1), AX_DTYPE_F32), AX_OK);
    ax_expect_error(k->gather(o4, x, 1, big), "ax_gather: index [4, 1] does not fit in x [3, 4] outside dim");
    ax_tensor *to_free[] = {x, out, bad, src, v, acc, isrc, sel, big, o4};
    for (size_t j = 0; j < sizeof to_free / sizeof *to_free; j++) ax_tensor_free(to_free[j]);
}

/* ---- determinism -------------------------------------------------------------------------------- */

static bool ax_bits_equal(const ax_tensor *a, const ax_tensor *b) {
    return ax_tensor_same_shape(a, b) && a->dtype == b->dtype &&
           !memcmp(ax_tensor_data(a), ax_tensor_data(b), ax_tensor_nbytes(a));
}

/* Scatters with many collisions, big enough to run in parallel: every
 * thread count gives the bits of a sequential sum in index order. */
static void test_scatter_determinism(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    int64_t V = 16, D = 1024, N = 400;
    ax_tensor *idx = ax_rand_idx(1, S(N), V, 61), *src = ax_rnd(2, S(N, D), 62);
    /* reference: index_add in float, k ascending */
    float *ref = calloc((size_t)(V * D), sizeof(float));
    const float *s = ax_tensor_data(src);
    const int64_t *iv = ax_tensor_data(idx);
    for (int64_t q = 0; q < N; q++)
        for (int64_t j = 0; j < D; j++) ref[iv[q] * D + j] += s[q * D + j];
    ax_tensor *sidx = ax_rand_idx(2, S(64, 512), 8, 63), *ssrc = ax_rnd(2, S(64, 512), 64);
    ax_tensor *first_ia = NULL, *first_sa = NULL;
    int saved = ax_num_threads();
    const int threads[] = {1, 2, 3, 8};
    for (int t = 0; t < 4; t++) {
        ax_set_num_threads(threads[t]);
        ax_tensor *ia, *sa;
        assert_int_equal(ax_tensor_zeros(&ia, 2, S(V, D), AX_DTYPE_F32), AX_OK);
        assert_int_equal(k->index_add(ia, 0, idx, src), AX_OK);
        assert_memory_equal(ax_tensor_data(ia), ref, (size_t)(V * D) * sizeof(float));
        assert_int_equal(ax_tensor_zeros(&sa, 2, S(8, 512), AX_DTYPE_F32), AX_OK);
        assert_int_equal(k->scatter_add(sa, 0, sidx, ssrc), AX_OK);
        if (!first_ia) {
            first_ia = ia;
            first_sa = sa;
            continue;
        }
        assert_true(ax_bits_equal(ia, first_ia));
        assert_true(ax_bits_equal(sa, first_sa));
        ax_tensor_free(ia);
        ax_tensor_free(sa);
    }
    ax_set_num_threads(saved);
    free(ref);
    ax_tensor *to_free[] = {idx, src, sidx, ssrc, first_ia, first_sa};
    for (size_t j = 0; j < sizeof to_free / sizeof *to_free; j++) ax_tensor_free(to_free[j]);
}

/* ---- PyTorch parity ---------------------------------------------------------------------------------- */

static ax_tensor *ax_fx(const ax_safetensors *f, const char *c, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", c, what);
    ax_tensor *t;
    if (ax_safetensors_get(f, name, &t) != AX_OK) {
        fprintf(stderr, "fixture: %s\n", ax_error_message());
        fail();
    }
    return t;
}

/* Run case c (inputs named in[], f32 leaves with grad), compare out and
 * every input's gradient for the fixture's upstream gradient. */
static void ax_parity_case(const ax_safetensors *f, const char *c, int n, const char *const *names) {
    ax_tensor *raw[4], *in[4], *out = NULL, *idx = NULL;
    for (int i = 0; i < n; i++) {
        raw[i] = ax_fx(f, c, names[i]);
        in[i] = ax_leaf_copy(raw[i], true);
    }
    ax_status st;
    if (!strncmp(c, "cat", 3)) {
        st = ax_cat(&out, n, (const ax_tensor *const *)in, c[3] == '0' ? 1 : -1);
    } else if (!strncmp(c, "stack", 5)) {
        st = ax_stack(&out, n, (const ax_tensor *const *)in, c[5] == '0' ? 1 : -1);
    } else if (!strncmp(c, "gather", 6)) {
        idx = ax_fx(f, c, "index");
        st = ax_gather(&out, in[0], c[6] == '0' ? 1 : -1, idx);
    } else if (!strncmp(c, "scatter", 7)) {
        idx = ax_fx(f, c, "index");
        st = ax_scatter_add(&out, in[0], c[7] == '1' ? 0 : 1, idx, in[1]);
    } else if (!strncmp(c, "isel", 4)) {
        idx = ax_fx(f, c, "index");
        st = ax_index_select(&out, in[0], c[4] == '0' ? 1 : 0, idx);
    } else if (!strncmp(c, "mfill", 5)) {
        idx = ax_fx(f, c, "mask");
        st = ax_masked_fill(&out, in[0], idx, c[5] == '0' ? -2.5 : 7.0);
    } else {
        idx = ax_fx(f, c, "indices");
        st = ax_embedding(&out, in[0], idx);
    }
    if (st != AX_OK) fprintf(stderr, "%s: %s\n", c, ax_error_message());
    assert_int_equal(st, AX_OK);
    ax_tensor *want = ax_fx(f, c, "out"), *gout = ax_fx(f, c, "gout");
    char what[64];
    snprintf(what, sizeof what, "%s out", c);
    bool ok = ax_allclose(what, out, want, 1e-6, 1e-6);
    assert_int_equal(ax_backward(out, gout), AX_OK);
    for (int i = 0; i < n; i++) {
        char gname[32];
        snprintf(gname, sizeof gname, "g%s", names[i]);
        ax_tensor *gw = ax_fx(f, c, gname);
        snprintf(what, sizeof what, "%s d%s", c, names[i]);
        assert_non_null(in[i]->grad);
        ok = ax_allclose(what, in[i]->grad, gw, 1e-5, 1e-5) && ok;
        ax_tensor_free(gw);
    }
    ax_tensor_free(want);
    ax_tensor_free(gout);
    ax_tensor_free(out);
    ax_tensor_free(idx);
    for (int i = 0; i < n; i++) {
        ax_tensor_free(raw[i]);
        ax_tensor_free(in[i]);
    }
    assert_true(ok);
}

static void test_torch_parity(void **state) {
    (void)state;
    ax_safetensors *f;
    if (ax_safetensors_open(&f, AX_TEST_FIXTURES "/shape/shape.safetensors") != AX_OK) {
        fprintf(stderr, "%s\n", ax_error_message());
        fail();
    }
    const char *abc[] = {"a", "b", "c"}, *x[] = {"x"}, *xs[] = {"x", "src"}, *w[] = {"weight"};
    ax_parity_case(f, "cat0", 3, abc);
    ax_parity_case(f, "cat1", 2, abc);
    ax_parity_case(f, "stack0", 3, abc);
    ax_parity_case(f, "stack1", 2, abc);
    ax_parity_case(f, "gather0", 1, x);
    ax_parity_case(f, "gather1", 1, x);
    ax_parity_case(f, "scatter0", 2, xs);
    ax_parity_case(f, "scatter1", 2, xs);
    ax_parity_case(f, "scatter2", 2, xs);
    ax_parity_case(f, "isel0", 1, x);
    ax_parity_case(f, "isel1", 1, x);
    ax_parity_case(f, "mfill0", 1, x);
    ax_parity_case(f, "mfill1", 1, x);
    ax_parity_case(f, "embed0", 1, w);
    ax_parity_case(f, "embed1", 1, w);
    ax_safetensors_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cat_forward),
        cmocka_unit_test(test_cat_single_and_empty),
        cmocka_unit_test(test_cat_dtypes),
        cmocka_unit_test(test_cat_grad),
        cmocka_unit_test(test_cat_wide_forward),
        cmocka_unit_test(test_stack),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_chunk),
        cmocka_unit_test(test_gather_forward),
        cmocka_unit_test(test_gather_grad),
        cmocka_unit_test(test_scatter_add_forward),
        cmocka_unit_test(test_scatter_add_grad),
        cmocka_unit_test(test_index_select),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_masked_fill),
        cmocka_unit_test(test_errors_cat_split),
        cmocka_unit_test(test_errors_index),
        cmocka_unit_test(test_kernel_bounds),
        cmocka_unit_test(test_scatter_determinism),
        cmocka_unit_test(test_torch_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
