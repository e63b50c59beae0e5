/* axon/half.h — bf16 and f16 conversions shared by every backend.
 *
 * Round-to-nearest-even in both directions, NaN kept NaN, overflow to inf,
 * f16 subnormals handled. Plain inline C so the CUDA backend's host code and
 * the CPU kernels use the same bits (and CI tests them on the CPU).
 *
 *     uint16_t h = ax_f32_to_bf16(1.5f);   float f = ax_bf16_to_f32(h);
 */
#ifndef AXON_HALF_H
#define AXON_HALF_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define AX_HD __host__ __device__
#else
#define AX_HD
#endif

static inline AX_HD uint32_t ax_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline AX_HD float ax_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline AX_HD uint16_t ax_f32_to_bf16(float f) {
    uint32_t u = ax_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline AX_HD float ax_bf16_to_f32(uint16_t h) { return ax_bits_f32((uint32_t)h << 16); }

static inline AX_HD uint16_t ax_f32_to_f16(float f) {
    uint32_t u = ax_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);     /* NaN */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);    /* rounds to >= 65520: inf */
    if (absu < 0x38800000u) {                                      /* below 2^-14: subnormal or 0 */
        if (absu < 0x33000000u) return (uint16_t)sign;             /* below half the smallest: 0 */
        uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(absu >> 23); /* value = v * 2^-24 */
        uint32_t v = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (v & 1u))) v++;
        return (uint16_t)(sign | v);
    }
    uint32_t v = ((absu - 0x38000000u) >> 13);                     /* rebias 127 -> 15 */
    uint32_t rem = absu & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) v++;
    return (uint16_t)(sign | v);
}

static inline AX_HD float ax_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        if (m == 0) return ax_bits_f32(sign);
        /* subnormal: m * 2^-24 */
        float f = (float)m * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (e == 31) return ax_bits_f32(sign | 0x7f800000u | (m << 13));
    return ax_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

#endif
