/* Fine-tuning pieces that need no data: the learning-rate schedules
 * (nnssl's warm-up + poly and the sawtooth's two warm-ups), the PNG encoder
 * (decoded back with zlib) and Base64 (RFC 4648 test vectors). The runner,
 * prediction and the report run end to end in tests/sh/finetune.sh and
 * tests/sh/report.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "report.h"
#include "train_finetune.h"

static void test_warmup_poly(void **state) {
    (void)state;
    /* 100 steps, 5 warm-up, base 1e-2 */
    const double lr = 1e-2;
    assert_float_equal(ax_finetune_lr(AX_FINETUNE_WARMUP_POLY, lr, 100, 5, 0, 0), lr / 5, 1e-15);
    assert_float_equal(ax_finetune_lr(AX_FINETUNE_WARMUP_POLY, lr, 100, 5, 0, 4), lr, 1e-15);
    /* PolyLRScheduler_offset: lr (1 - (s - 5) / 95)^0.9 */
    assert_float_equal(ax_finetune_lr(AX_FINETUNE_WARMUP_POLY, lr, 100, 5, 0, 5), lr, 1e-15);
    assert_float_equal(ax_finetune_lr(AX_FINETUNE_WARMUP_POLY, lr, 100, 5, 0, 50), lr * pow(1 - 45.0 / 95, 0.9), 1e-15);
    assert_float_equal(ax_finetune_lr(AX_FINETUNE_WARMUP_POLY, lr, 100, 5, 0, 99), lr * pow(1 - 94.0 / 95, 0.9), 1e-15);
    /* no warm-up: plain poly */
    assert_float_equal(ax_finetune_lr(AX_FINETUNE_WARMUP_POLY, lr, 100, 0, 0, 0), lr, 1e-15);
}

static void test_sawtooth(void **state) {
    (void)state;
    /* nnssl's PretrainedTrainer_sawtooth scaled to steps: decoder 10, whole-net warm-up 10, 100 in all */
    const double lr = 1e-3;
    double v[100];
    for (int s = 0; s < 100; s++)
        v[s] = ax_finetune_lr(AX_FINETUNE_SAWTOOTH, lr, 100, 10, 10, s);
    /* decoder warm-up over 5 steps */
    assert_float_equal(v[0], lr / 5, 1e-15);
    assert_float_equal(v[4], lr, 1e-15);
    /* decoder poly from step 5 to 10 */
    assert_float_equal(v[5], lr, 1e-15);
    assert_float_equal(v[7], lr * pow(1 - 2.0 / 5, 0.9), 1e-15);
    /* whole network: warm-up again from lr / 10 (the sawtooth tooth) */
    assert_float_equal(v[10], lr / 10, 1e-15);
    assert_float_equal(v[19], lr, 1e-15);
    /* then poly to the end */
    assert_float_equal(v[20], lr, 1e-15);
    assert_float_equal(v[60], lr * pow(1 - 40.0 / 80, 0.9), 1e-15);
    for (int s = 21; s < 100; s++)
        assert_true(v[s] < v[s - 1]);
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_png_roundtrip(void **state) {
    (void)state;
    const int w = 7, h = 5;
    uint8_t px[7 * 5 * 3];
    for (int i = 0; i < w * h * 3; i++)
        px[i] = (uint8_t)(i * 37 + 11);
    uint8_t *png = NULL;
    size_t n = 0;
    assert_int_equal(ax_png_encode(px, w, h, 3, &png, &n), AX_OK);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_memory_equal(png, sig, 8);
    /* IHDR */
    assert_int_equal(be32(png + 8), 13);
    assert_memory_equal(png + 12, "IHDR", 4);
    assert_int_equal(be32(png + 16), (uint32_t)w);
    assert_int_equal(be32(png + 20), (uint32_t)h);
    assert_int_equal(png[24], 8);
    assert_int_equal(png[25], 2);
    assert_int_equal(be32(png + 29), (uint32_t)crc32(crc32(0, NULL, 0), png + 12, 17));
    /* IDAT: the filtered rows */
    const uint8_t *idat = png + 33;
    uint32_t zlen = be32(idat);
    assert_memory_equal(idat + 4, "IDAT", 4);
    uint8_t raw[5 * (7 * 3 + 1)];
    uLongf rn = sizeof raw;
    assert_int_equal(uncompress(raw, &rn, idat + 8, zlen), Z_OK);
    assert_int_equal(rn, sizeof raw);
    for (int y = 0; y < h; y++) {
        assert_int_equal(raw[y * (w * 3 + 1)], 0);
        assert_memory_equal(raw + y * (w * 3 + 1) + 1, px + y * w * 3, (size_t)w * 3);
    }
    /* IEND closes the file */
    const uint8_t *end = idat + 12 + zlen;
    assert_int_equal((size_t)(end + 12 - png), n);
    assert_memory_equal(end + 4, "IEND", 4);
    free(png);
    /* grey, and bad sizes */
    assert_int_equal(ax_png_encode(px, 3, 2, 1, &png, &n), AX_OK);
    assert_int_equal(png[25], 0);
    free(png);
    assert_int_equal(ax_png_encode(px, 0, 2, 1, &png, &n), AX_ERR_INVALID);
    assert_int_equal(ax_png_encode(px, 2, 2, 4, &png, &n), AX_ERR_INVALID);
}

static void test_base64(void **state) {
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *s = ax_base64((const uint8_t *)in[i], strlen(in[i]));
        assert_non_null(s);
        assert_string_equal(s, want[i]);
        free(s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup_poly),
        cmocka_unit_test(test_sawtooth),
        cmocka_unit_test(test_png_roundtrip),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
