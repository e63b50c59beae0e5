/* ax_tensor: creation, views, copies across dtypes, printing, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/half.h"
#include "axon/ops.h"
#include "axon/rng.h"

#define S(...) (int64_t[]){__VA_ARGS__}

static void test_creation(void **state) {
    (void)state;
    ax_tensor *t;
    assert_int_equal(ax_tensor_zeros(&t, 3, S(2, 3, 4), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_numel(t), 24);
    assert_true(ax_tensor_is_contiguous(t));
    assert_int_equal(t->stride[0], 12);
    assert_int_equal(t->stride[2], 1);
    for (int i = 0; i < 24; i++) assert_float_equal(ax_tensor_get(t, i), 0, 0);
    ax_tensor_free(t);

    assert_int_equal(ax_tensor_full(&t, 1, S(5), AX_DTYPE_BF16, 1.5), AX_OK);
    assert_int_equal(ax_tensor_nbytes(t), 10);
    assert_float_equal(ax_tensor_get(t, 4), 1.5, 0);
    ax_tensor_free(t);

    assert_int_equal(ax_tensor_scalar(&t, 7, AX_DTYPE_I64), AX_OK);
    assert_int_equal(t->ndim, 0);
    assert_int_equal(ax_tensor_numel(t), 1);
    assert_float_equal(ax_tensor_get(t, 0), 7, 0);
    ax_tensor_free(t);

    assert_int_equal(ax_tensor_arange(&t, 5, 0, -2, AX_DTYPE_I32), AX_OK);
    assert_int_equal(ax_tensor_numel(t), 3);
    assert_float_equal(ax_tensor_get(t, 2), 1, 0);
    ax_tensor_free(t);

    float buf[6] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(ax_tensor_from_buffer(&t, 2, S(2, 3), AX_DTYPE_F32, buf, sizeof buf), AX_OK);
    assert_float_equal(ax_tensor_get(t, 5), 6, 0);
    ax_tensor_free(t);
    assert_int_equal(ax_tensor_from_buffer(&t, 2, S(2, 2), AX_DTYPE_F32, buf, sizeof buf), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "24 bytes given, shape [2, 2] of f32 needs 16"));
    assert_null(t);

    assert_int_equal(ax_tensor_zeros(&t, 2, S(0, 3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_numel(t), 0);
    ax_tensor_free(t);
    assert_int_equal(ax_tensor_zeros(&t, 2, S(-1, 3), AX_DTYPE_F32), AX_ERR_INVALID);
    assert_int_equal(ax_tensor_zeros(&t, 9, S(1, 1, 1, 1, 1, 1, 1, 1, 1), AX_DTYPE_F32), AX_ERR_INVALID);
    assert_int_equal(ax_tensor_zeros(&t, 1, S(2), (ax_dtype)99), AX_ERR_INVALID);
}

static int ax_released;
static void ax_note_release(void *data, size_t nbytes, void *ctx) {
    (void)data, (void)nbytes;
    ax_released = *(int *)ctx;
}

static void test_wrap_releases_with_last_view(void **state) {
    (void)state;
    static float data[8];
    int tag = 42;
    ax_tensor *t, *v;
    ax_released = 0;
    assert_int_equal(ax_tensor_wrap(&t, 1, S(8), AX_DTYPE_F32, data, sizeof data, ax_note_release, &tag), AX_OK);
    assert_int_equal(ax_tensor_narrow(&v, t, 0, 2, 3), AX_OK);
    ax_tensor_free(t);
    assert_int_equal(ax_released, 0);
    ax_tensor_set(v, 0, 9);
    assert_float_equal(data[2], 9, 0);
    ax_tensor_free(v);
    assert_int_equal(ax_released, 42);
}

static void test_random_is_counter_based(void **state) {
    (void)state;
    ax_tensor *a, *b;
    assert_int_equal(ax_tensor_rand(&a, 2, S(3, 5), AX_DTYPE_F32, 9, 4), AX_OK);
    float want[15];
    ax_rng_fill_uniform(9, 4, 0, 15, want);
    for (int i = 0; i < 15; i++) assert_float_equal(ax_tensor_get(a, i), want[i], 0);
    assert_int_equal(ax_tensor_rand(&b, 1, S(15), AX_DTYPE_F32, 9, 4), AX_OK);
    for (int i = 0; i < 15; i++) assert_float_equal(ax_tensor_get(a, i), ax_tensor_get(b, i), 0);
    ax_tensor_free(a);
    ax_tensor_free(b);
    assert_int_equal(ax_tensor_bernoulli(&a, 1, S(10000), AX_DTYPE_U8, 0.25, 1, 2), AX_OK);
    double s = 0;
    for (int i = 0; i < 10000; i++) s += ax_tensor_get(a, i);
    assert_true(fabs(s / 10000 - 0.25) < 0.02);
    ax_tensor_free(a);
    assert_int_equal(ax_tensor_bernoulli(&a, 1, S(3), AX_DTYPE_U8, 1.5, 1, 2), AX_ERR_INVALID);
    assert_int_equal(ax_tensor_randn(&a, 1, S(20000), AX_DTYPE_F32, 3, 0), AX_OK);
    double m = 0, v = 0;
    for (int i = 0; i < 20000; i++) m += ax_tensor_get(a, i);
    m /= 20000;
    for (int i = 0; i < 20000; i++) v += pow(ax_tensor_get(a, i) - m, 2);
    assert_true(fabs(m) < 0.03 && fabs(v / 20000 - 1) < 0.05);
    ax_tensor_free(a);
}

static void test_views(void **state) {
    (void)state;
    ax_tensor *t, *v, *w;
    assert_int_equal(ax_tensor_arange(&t, 0, 24, 1, AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_view(&v, t, 3, S(2, -1, 4)), AX_OK);
    assert_int_equal(v->shape[1], 3);
    assert_ptr_equal(v->storage, t->storage);

    /* permute: element [i][j][k] of v is at [k][i][j] of w */
    assert_int_equal(ax_tensor_permute(&w, v, (int[]){2, 0, 1}), AX_OK);
    assert_int_equal(w->shape[0], 4);
    assert_false(ax_tensor_is_contiguous(w));
    assert_float_equal(ax_tensor_get(w, 1 * 6 + 1 * 3 + 2), 1 * 12 + 2 * 4 + 1, 0);
    ax_tensor *c;
    assert_int_equal(ax_tensor_contiguous(&c, w), AX_OK);
    assert_true(ax_tensor_is_contiguous(c));
    assert_ptr_not_equal(c->storage, t->storage);
    for (int i = 0; i < 24; i++) assert_float_equal(ax_tensor_get(c, i), ax_tensor_get(w, i), 0);
    /* a non-contiguous view cannot be viewed flat, but can be reshaped */
    ax_tensor *f;
    assert_int_equal(ax_tensor_view(&f, w, 1, S(24)), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "use reshape"));
    assert_int_equal(ax_tensor_reshape(&f, w, 1, S(24)), AX_OK);
    for (int i = 0; i < 24; i++) assert_float_equal(ax_tensor_get(f, i), ax_tensor_get(c, i), 0);
    ax_tensor_free(f);
    ax_tensor_free(c);
    ax_tensor_free(w);

    /* view splitting a dim of a transposed tensor keeps sharing storage */
    ax_tensor *tr, *sp;
    assert_int_equal(ax_tensor_transpose(&tr, v, 0, 2), AX_OK); /* [4, 3, 2] */
    assert_int_equal(ax_tensor_view(&sp, tr, 4, S(2, 2, 3, 2)), AX_OK);
    assert_ptr_equal(sp->storage, t->storage);
    assert_float_equal(ax_tensor_get(sp, 23), ax_tensor_get(tr, 23), 0);
    ax_tensor_free(sp);
    ax_tensor_free(tr);

    /* python-style slices */
    assert_int_equal(ax_tensor_slice(&w, v, 2, 1, -1, 2), AX_OK); /* [:, :, 1:3:2] */
    assert_int_equal(w->shape[2], 1);
    assert_float_equal(ax_tensor_get(w, 0), 1, 0);
    ax_tensor_free(w);
    assert_int_equal(ax_tensor_slice(&w, v, 1, -100, 100, 1), AX_OK);
    assert_int_equal(w->shape[1], 3);
    ax_tensor_free(w);
    assert_int_equal(ax_tensor_narrow(&w, v, 1, 2, 2), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "[2, 4) is outside dim 1 of size 3"));

    /* squeeze / unsqueeze / expand */
    ax_tensor *u, *e;
    assert_int_equal(ax_tensor_unsqueeze(&u, v, 1), AX_OK);
    assert_int_equal(u->ndim, 4);
    assert_int_equal(u->shape[1], 1);
    assert_int_equal(ax_tensor_expand(&e, u, 4, S(-1, 5, -1, -1)), AX_OK);
    assert_int_equal(e->stride[1], 0);
    assert_float_equal(ax_tensor_get(e, 4 * 12 + 7), ax_tensor_get(v, 7), 0);
    assert_int_equal(ax_tensor_expand(&w, v, 3, S(3, 3, 4)), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "cannot expand [2, 3, 4] to [3, 3, 4]"));
    ax_tensor *sq;
    assert_int_equal(ax_tensor_squeeze(&sq, u, 1), AX_OK);
    assert_int_equal(sq->ndim, 3);
    ax_tensor_free(sq);
    assert_int_equal(ax_tensor_squeeze(&sq, u, 0), AX_ERR_INVALID);
    assert_int_equal(ax_tensor_squeeze(&sq, u, AX_ALL_DIMS), AX_OK);
    assert_int_equal(sq->ndim, 3);
    ax_tensor_free(sq);
    ax_tensor_free(e);
    ax_tensor_free(u);
    assert_int_equal(ax_tensor_permute(&w, v, (int[]){0, 0, 1}), AX_ERR_INVALID);
    ax_tensor_free(v);
    ax_tensor_free(t);
}

static void test_dtype_conversions(void **state) {
    (void)state;
    /* bf16 and f16 bits of known values, round-to-nearest-even */
    assert_int_equal(ax_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(ax_f32_to_bf16(ax_bits_f32(0x3f808000u)), 0x3f80); /* tie to even */
    assert_int_equal(ax_f32_to_bf16(ax_bits_f32(0x3f818000u)), 0x3f82);
    assert_true(isnan(ax_bf16_to_f32(ax_f32_to_bf16(NAN))));
    assert_int_equal(ax_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(ax_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(ax_f32_to_f16(65520.0f), 0x7c00);      /* rounds to inf */
    assert_int_equal(ax_f32_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
    assert_int_equal(ax_f32_to_f16(-2.0f), 0xc000);
    assert_float_equal(ax_f16_to_f32(0x3555), 0.33325195f, 0);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite f16 survives a round trip */
        assert_int_equal(ax_f32_to_f16(ax_f16_to_f32((uint16_t)h)), h);

    ax_tensor *t, *h, *back, *i;
    assert_int_equal(ax_tensor_randn(&t, 2, S(4, 5), AX_DTYPE_F32, 1, 0), AX_OK);
    ax_dtype dts[] = {AX_DTYPE_BF16, AX_DTYPE_F16};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(ax_tensor_to_dtype(&h, t, dts[k]), AX_OK);
        assert_int_equal(ax_tensor_to_dtype(&back, h, AX_DTYPE_F32), AX_OK);
        for (int j = 0; j < 20; j++)
            assert_float_equal(ax_tensor_get(back, j), ax_tensor_get(t, j), fabs(ax_tensor_get(t, j)) * 8e-3);
        ax_tensor_free(h);
        ax_tensor_free(back);
    }
    assert_int_equal(ax_tensor_to_dtype(&i, t, AX_DTYPE_I32), AX_OK);
    for (int j = 0; j < 20; j++) assert_float_equal(ax_tensor_get(i, j), trunc(ax_tensor_get(t, j)), 0);
    ax_tensor_free(i);
    ax_tensor_free(t);
    assert_int_equal(ax_dtype_parse("bfloat16"), AX_DTYPE_BF16);
    assert_int_equal(ax_dtype_parse("f64"), 0);
    assert_string_equal(ax_dtype_name(AX_DTYPE_U8), "u8");
}

static void test_copy_broadcast_and_fill(void **state) {
    (void)state;
    ax_tensor *d, *s, *tr;
    assert_int_equal(ax_tensor_zeros(&d, 2, S(3, 4), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_arange(&s, 0, 4, 1, AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_tensor_copy_(d, s), AX_OK); /* [4] broadcast into [3, 4] */
    assert_float_equal(ax_tensor_get(d, 11), 3, 0);
    assert_int_equal(ax_tensor_transpose(&tr, d, 0, 1), AX_OK);
    assert_int_equal(ax_tensor_fill_(tr, -1), AX_OK);
    assert_float_equal(ax_tensor_get(d, 5), -1, 0);
    ax_tensor *big;
    assert_int_equal(ax_tensor_zeros(&big, 1, S(5), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_copy_(d, big), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "cannot copy [5] into [3, 4]"));
    ax_tensor_free(big);
    ax_tensor_free(tr);
    ax_tensor_free(s);
    ax_tensor_free(d);
}

static void test_print(void **state) {
    (void)state;
    ax_tensor *t, *v;
    assert_int_equal(ax_tensor_arange(&t, 0, 6, 1, AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_view(&v, t, 2, S(2, 3)), AX_OK);
    char *s = ax_tensor_to_string(v);
    assert_string_equal(s, "tensor(f32, [2, 3])\n[[0, 1, 2],\n [3, 4, 5]]");
    free(s);
    ax_tensor_free(v);
    ax_tensor_free(t);
    assert_int_equal(ax_tensor_arange(&t, 0, 100, 1, AX_DTYPE_I64), AX_OK);
    s = ax_tensor_to_string(t);
    assert_string_equal(s, "tensor(i64, [100])\n[0, 1, 2, ..., 97, 98, 99]");
    free(s);
    ax_tensor_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creation),
        cmocka_unit_test(test_wrap_releases_with_last_view),
        cmocka_unit_test(test_random_is_counter_based),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_dtype_conversions),
        cmocka_unit_test(test_copy_broadcast_and_fill),
        cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
