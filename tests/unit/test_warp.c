/* ax_warp_f32 / ax_warp_u8 / ax_gaussian_blur_f32: exact cases (identity,
 * integer shifts), an analytic check (trilinear reproduces a linear ramp
 * under any in-bounds map), and parity with scipy.ndimage.map_coordinates
 * from tests/fixtures/augs/make_warp.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"

static float *ax_random(size_t n, uint64_t stream) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    ax_rng_fill_normal(7, stream, 0, n, x);
    return x;
}

/* The identity map copies every channel bit for bit, in both modes. */
static void test_identity_exact(void **state) {
    (void)state;
    int32_t shape[3] = {5, 6, 7};
    size_t vox = 5 * 6 * 7;
    float *in = ax_random(3 * vox, 1), *out = malloc(3 * vox * sizeof *out);
    uint8_t lab[5 * 6 * 7], lout[5 * 6 * 7];
    for (size_t i = 0; i < vox; i++) lab[i] = (uint8_t)(i * 37 % 251);
    for (int interp = AX_INTERP_NEAREST; interp <= AX_INTERP_TRILINEAR; interp++)
        for (int border = 0; border < 2; border++) {
            ax_warp w = ax_warp_identity();
            w.interp = (ax_interp_mode)interp;
            w.border = (ax_warp_border)border;
            w.fill = NAN; /* must never be read */
            memset(out, 0, 3 * vox * sizeof *out);
            assert_int_equal(ax_warp_f32(out, shape, in, shape, 3, &w), AX_OK);
            assert_memory_equal(out, in, 3 * vox * sizeof *out);
            w.fill = 3;
            assert_int_equal(ax_warp_u8(lout, shape, lab, shape, &w), AX_OK);
            assert_memory_equal(lout, lab, sizeof lab);
        }
    free(in);
    free(out);
}

/* A shift by whole voxels moves values exactly; what comes from outside
 * reads fill (FILL) or the edge voxel (EDGE). */
static void test_integer_shift_exact(void **state) {
    (void)state;
    enum { D = 6, H = 5, W = 9 };
    int32_t in_shape[3] = {D, H, W}, out_shape[3] = {4, 7, 8};
    int shift[3] = {2, -1, 3};
    float *in = ax_random(2 * D * H * W, 2), out[2 * 4 * 7 * 8];
    uint8_t lab[D * H * W], lout[4 * 7 * 8];
    for (int i = 0; i < D * H * W; i++) lab[i] = (uint8_t)(i % 200 + 1);
    for (int border = 0; border < 2; border++)
        for (int interp = AX_INTERP_NEAREST; interp <= AX_INTERP_TRILINEAR; interp++) {
            ax_warp w = ax_warp_identity();
            for (int a = 0; a < 3; a++) w.matrix[a][3] = shift[a];
            w.fill = -2.5f;
            w.interp = (ax_interp_mode)interp;
            w.border = (ax_warp_border)border;
            assert_int_equal(ax_warp_f32(out, out_shape, in, in_shape, 2, &w), AX_OK);
            assert_int_equal(ax_warp_u8(lout, out_shape, lab, in_shape, &w), AX_OK);
            for (int c = 0; c < 2; c++)
                for (int z = 0; z < 4; z++)
                    for (int y = 0; y < 7; y++)
                        for (int x = 0; x < 8; x++) {
                            int p[3] = {z + shift[0], y + shift[1], x + shift[2]}, inside = 1;
                            for (int a = 0; a < 3; a++) {
                                if (p[a] < 0 || p[a] >= in_shape[a]) inside = 0;
                                if (border == AX_WARP_BORDER_EDGE)
                                    p[a] = p[a] < 0 ? 0 : p[a] >= in_shape[a] ? in_shape[a] - 1 : p[a];
                            }
                            float got = out[((c * 4 + z) * 7 + y) * 8 + x];
                            int src = (p[0] * H + p[1]) * W + p[2];
                            if (inside || border == AX_WARP_BORDER_EDGE) {
                                assert_float_equal(got, in[c * D * H * W + src], 0);
                                if (c == 0) assert_int_equal(lout[(z * 7 + y) * 8 + x], lab[src]);
                            } else if (interp == AX_INTERP_NEAREST) {
                                assert_float_equal(got, -2.5f, 0);
                                if (c == 0) assert_int_equal(lout[(z * 7 + y) * 8 + x], 0); /* -2.5 -> 0 */
                            }
                        }
        }
    free(in);
}

/* Trilinear interpolation is exact on linear functions: under a rotation,
 * a zoom and a displacement, every sample of a ramp whose stencil lies
 * inside equals the ramp at the sampled point. */
static void test_linear_ramp(void **state) {
    (void)state;
    enum { D = 20, H = 24, W = 22 };
    int32_t in_shape[3] = {D, H, W}, out_shape[3] = {17, 19, 23};
    const double g[3] = {0.5, -0.25, 0.125}, g0 = 3.0;
    float *in = malloc(D * H * W * sizeof *in), *out = malloc(17 * 19 * 23 * sizeof *out);
    float *disp = malloc(3 * 17 * 19 * 23 * sizeof *disp);
    for (int z = 0; z < D; z++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) in[(z * H + y) * W + x] = (float)(g0 + g[0] * z + g[1] * y + g[2] * x);
    ax_rng_fill_uniform(3, 0, 0, 3 * 17 * 19 * 23, disp);
    for (int i = 0; i < 3 * 17 * 19 * 23; i++) disp[i] = 2.0f * disp[i] - 1.0f;
    double ca = cos(0.6), sa = sin(0.6), cb = cos(-0.3), sb = sin(-0.3);
    double a[3][3] = {{ca * 0.8, -sa * 0.8, 0}, {sa * 0.8 * cb, ca * 0.8 * cb, -sb * 0.8}, {sa * sb * 0.8, ca * sb * 0.8, cb * 0.8}};
    for (int with_disp = 0; with_disp < 2; with_disp++) {
        ax_warp w = ax_warp_identity();
        ax_warp_centred(&w, a, out_shape, in_shape);
        w.disp = with_disp ? disp : NULL;
        w.fill = 1e6f;
        assert_int_equal(ax_warp_f32(out, out_shape, in, in_shape, 1, &w), AX_OK);
        size_t checked = 0, ovox = 17 * 19 * 23;
        for (int z = 0; z < 17; z++)
            for (int y = 0; y < 19; y++)
                for (int x = 0; x < 23; x++) {
                    size_t o = ((size_t)z * 19 + y) * 23 + x;
                    double p[3], v = g0;
                    int inside = 1;
                    for (int k = 0; k < 3; k++) {
                        p[k] = w.matrix[k][0] * z + w.matrix[k][1] * y + w.matrix[k][2] * x + w.matrix[k][3];
                        if (with_disp) p[k] += disp[k * ovox + o];
                        if (p[k] < 0 || p[k] > in_shape[k] - 1) inside = 0;
                        v += g[k] * p[k];
                    }
                    if (!inside) continue;
                    assert_float_equal(out[o], v, 1e-4);
                    checked++;
                }
        assert_true(checked > ovox / 3); /* the check covered most of the patch */
    }
    free(in);
    free(out);
    free(disp);
}

/* A 90 degree rotation about D through the centre lands on the grid: image
 * (trilinear) and labels (nearest) move exactly, voxel for voxel. */
static void test_rotation_90_exact(void **state) {
    (void)state;
    enum { D = 4, N = 6 };
    int32_t shape[3] = {D, N, N};
    float *in = ax_random(D * N * N, 4), out[D * N * N];
    uint8_t lab[D * N * N], lout[D * N * N];
    for (int i = 0; i < D * N * N; i++) lab[i] = (uint8_t)(i % 11);
    double a[3][3] = {{1, 0, 0}, {0, 0, -1}, {0, 1, 0}}; /* p_h = -(w - c), p_w = h - c, about c */
    ax_warp w = ax_warp_identity();
    ax_warp_centred(&w, a, shape, shape);
    w.fill = NAN;
    assert_int_equal(ax_warp_f32(out, shape, in, shape, 1, &w), AX_OK);
    assert_int_equal(ax_warp_u8(lout, shape, lab, shape, &w), AX_OK);
    for (int z = 0; z < D; z++)
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++) {
                int src = (z * N + (N - 1 - x)) * N + y, dst = (z * N + y) * N + x;
                assert_float_equal(out[dst], in[src], 0);
                assert_int_equal(lout[dst], lab[src]);
            }
    free(in);
}

/* Nearest on labels never invents a value: under a rotation every output
 * label is one of the input's or the fill. */
static void test_nearest_labels(void **state) {
    (void)state;
    int32_t shape[3] = {16, 16, 16};
    uint8_t in[16 * 16 * 16], out[16 * 16 * 16];
    for (int i = 0; i < 16 * 16 * 16; i++) in[i] = (uint8_t)((i / 256) < 8 ? 2 : 5);
    double c = cos(0.7), s = sin(0.7);
    double a[3][3] = {{c, -s, 0}, {s, c, 0}, {0, 0, 1}};
    ax_warp w = ax_warp_identity();
    ax_warp_centred(&w, a, shape, shape);
    w.fill = 9;
    assert_int_equal(ax_warp_u8(out, shape, in, shape, &w), AX_OK);
    int seen[3] = {0, 0, 0};
    for (int i = 0; i < 16 * 16 * 16; i++) {
        assert_true(out[i] == 2 || out[i] == 5 || out[i] == 9);
        seen[out[i] == 2 ? 0 : out[i] == 5 ? 1 : 2]++;
    }
    for (int k = 0; k < 3; k++) assert_true(seen[k] > 0);
}

static const struct {
    const char *name;
    int u8, interp, border, channels;
    float fill;
} ax_warp_cases[] = {
    {"zoom", 0, AX_INTERP_TRILINEAR, AX_WARP_BORDER_EDGE, 2, 0.0f},
    {"affine_fill", 0, AX_INTERP_TRILINEAR, AX_WARP_BORDER_FILL, 2, 0.5f},
    {"affine_edge", 0, AX_INTERP_TRILINEAR, AX_WARP_BORDER_EDGE, 2, 0.0f},
    {"disp_fill", 0, AX_INTERP_TRILINEAR, AX_WARP_BORDER_FILL, 2, 0.5f},
    {"nearest_f32", 0, AX_INTERP_NEAREST, AX_WARP_BORDER_FILL, 2, 0.5f},
    {"nearest_u8", 1, AX_INTERP_NEAREST, AX_WARP_BORDER_FILL, 1, 0.0f},
    {"nearest_u8_edge", 1, AX_INTERP_NEAREST, AX_WARP_BORDER_EDGE, 1, 0.0f},
};

static ax_tensor *ax_get(ax_safetensors *f, const char *name, const char *suffix, int required) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", name, suffix);
    ax_tensor *t = NULL;
    if (ax_safetensors_get(f, key, &t) != AX_OK) {
        if (required) fail_msg("%s: %s", key, ax_error_message());
        return NULL;
    }
    return t;
}

static void test_scipy_parity(void **state) {
    (void)state;
    ax_safetensors *f;
    const char *path = AX_TEST_FIXTURES "/augs/warp.safetensors";
    if (ax_safetensors_open(&f, path) != AX_OK) fail_msg("%s", ax_error_message());
    for (size_t k = 0; k < sizeof ax_warp_cases / sizeof ax_warp_cases[0]; k++) {
        const char *name = ax_warp_cases[k].name;
        ax_tensor *in = ax_get(f, name, "in", 1), *m = ax_get(f, name, "matrix", 1);
        ax_tensor *ref = ax_get(f, name, "out", 1), *disp = ax_get(f, name, "disp", 0);
        int off = ax_warp_cases[k].u8 ? 0 : 1;
        int32_t in_shape[3], out_shape[3];
        for (int a = 0; a < 3; a++) {
            in_shape[a] = (int32_t)in->shape[a + off];
            out_shape[a] = (int32_t)ref->shape[a + off];
        }
        ax_warp w = ax_warp_identity();
        const float *mv = ax_tensor_data(m);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) w.matrix[i][j] = mv[i * 4 + j];
        w.disp = disp ? ax_tensor_data(disp) : NULL;
        w.interp = (ax_interp_mode)ax_warp_cases[k].interp;
        w.border = (ax_warp_border)ax_warp_cases[k].border;
        w.fill = ax_warp_cases[k].fill;
        size_t n = (size_t)ax_tensor_numel(ref);
        if (ax_warp_cases[k].u8) {
            uint8_t *out = malloc(n);
            assert_int_equal(ax_warp_u8(out, out_shape, ax_tensor_data(in), in_shape, &w), AX_OK);
            const uint8_t *r = ax_tensor_data(ref);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) bad += out[i] != r[i];
            if (bad) fail_msg("%s: %zu of %zu labels differ", name, bad, n);
            free(out);
        } else {
            float *out = malloc(n * sizeof *out);
            assert_int_equal(ax_warp_f32(out, out_shape, ax_tensor_data(in), in_shape, ax_warp_cases[k].channels, &w),
                             AX_OK);
            const float *r = ax_tensor_data(ref);
            for (size_t i = 0; i < n; i++)
                if (fabsf(out[i] - r[i]) > 1e-5f) fail_msg("%s[%zu]: axon %g scipy %g", name, i, out[i], r[i]);
            free(out);
        }
        ax_tensor_free(in);
        ax_tensor_free(m);
        ax_tensor_free(ref);
        ax_tensor_free(disp);
    }
    ax_safetensors_close(f);
}

/* Points at NaN/huge coordinates read fill (no crash, no UB). */
static void test_wild_coordinates(void **state) {
    (void)state;
    int32_t shape[3] = {3, 3, 3}, one[3] = {1, 1, 3};
    float in[27], out[3], disp[9] = {NAN, 1e30f, -1e30f, 0, 0, 0, 0, 0, INFINITY};
    for (int i = 0; i < 27; i++) in[i] = (float)i;
    ax_warp w = ax_warp_identity();
    w.disp = disp;
    w.fill = -1;
    assert_int_equal(ax_warp_f32(out, one, in, shape, 1, &w), AX_OK);
    for (int i = 0; i < 3; i++) assert_float_equal(out[i], -1, 0);
    w.border = AX_WARP_BORDER_EDGE;
    assert_int_equal(ax_warp_f32(out, one, in, shape, 1, &w), AX_OK);
    for (int i = 0; i < 3; i++) assert_true(out[i] >= 0 && out[i] <= 26);
    w.interp = AX_INTERP_NEAREST;
    assert_int_equal(ax_warp_f32(out, one, in, shape, 1, &w), AX_OK);
    for (int i = 0; i < 3; i++) assert_true(out[i] >= 0 && out[i] <= 26);
    /* a huge but finite matrix */
    ax_warp h = ax_warp_identity();
    h.matrix[2][2] = 1e300;
    h.matrix[0][3] = -1e-300;
    assert_int_equal(ax_warp_f32(out, one, in, shape, 1, &h), AX_OK);
    assert_float_equal(out[0], 0, 0); /* w = 0 hits voxel 0 (weight on -1e-300 side is 0) */
}

static void test_errors(void **state) {
    (void)state;
    int32_t shape[3] = {2, 2, 2}, bad[3] = {2, 0, 2};
    float in[8] = {0}, out[8];
    ax_warp w = ax_warp_identity();
    assert_int_equal(ax_warp_f32(out, bad, in, shape, 1, &w), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "shapes must be >= 1"));
    assert_int_equal(ax_warp_f32(out, shape, in, shape, 0, &w), AX_ERR_INVALID);
    assert_int_equal(ax_warp_f32(NULL, shape, in, shape, 1, &w), AX_ERR_INVALID);
    w.matrix[1][3] = NAN;
    assert_int_equal(ax_warp_f32(out, shape, in, shape, 1, &w), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "matrix[1][3]"));
    w = ax_warp_identity();
    w.interp = (ax_interp_mode)7;
    assert_int_equal(ax_warp_f32(out, shape, in, shape, 1, &w), AX_ERR_INVALID);
    w = ax_warp_identity();
    w.interp = (ax_interp_mode)0; /* ignored by the u8 path, which is always nearest */
    uint8_t lab[8] = {0}, lout[8];
    assert_int_equal(ax_warp_u8(lout, shape, lab, shape, &w), AX_OK);
    w.border = (ax_warp_border)9;
    assert_int_equal(ax_warp_u8((uint8_t *)out, shape, (uint8_t *)in, shape, &w), AX_ERR_INVALID);
    double sigma[3] = {1, -1, 1};
    assert_int_equal(ax_gaussian_blur_f32(in, shape, sigma, AX_BLUR_REFLECT), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "sigma[1]"));
}

/* Blur keeps a constant (REFLECT), keeps the sum of an interior impulse,
 * matches the kernel's variance, and is separable-symmetric. */
static void test_gaussian_blur(void **state) {
    (void)state;
    enum { N = 33 };
    int32_t shape[3] = {N, N, N};
    size_t vox = (size_t)N * N * N;
    float *x = malloc(vox * sizeof *x);
    for (size_t i = 0; i < vox; i++) x[i] = 2.5f;
    double sigma[3] = {1.0, 0.7, 2.0};
    assert_int_equal(ax_gaussian_blur_f32(x, shape, sigma, AX_BLUR_REFLECT), AX_OK);
    for (size_t i = 0; i < vox; i++) assert_float_equal(x[i], 2.5f, 1e-5);
    memset(x, 0, vox * sizeof *x);
    int c = N / 2;
    x[((size_t)c * N + c) * N + c] = 1.0f;
    assert_int_equal(ax_gaussian_blur_f32(x, shape, sigma, AX_BLUR_ZERO), AX_OK);
    double sum = 0, var[3] = {0, 0, 0};
    for (int z = 0; z < N; z++)
        for (int y = 0; y < N; y++)
            for (int xx = 0; xx < N; xx++) {
                double v = x[((size_t)z * N + y) * N + xx];
                sum += v;
                var[0] += v * (z - c) * (z - c);
                var[1] += v * (y - c) * (y - c);
                var[2] += v * (xx - c) * (xx - c);
            }
    assert_float_equal(sum, 1.0, 1e-5);
    for (int a = 0; a < 3; a++) assert_float_equal(var[a], sigma[a] * sigma[a], 0.03 * sigma[a] * sigma[a] + 1e-3);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_exact),  cmocka_unit_test(test_integer_shift_exact),
        cmocka_unit_test(test_linear_ramp),     cmocka_unit_test(test_rotation_90_exact),
        cmocka_unit_test(test_nearest_labels),
        cmocka_unit_test(test_scipy_parity),    cmocka_unit_test(test_wild_coordinates),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_gaussian_blur),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
