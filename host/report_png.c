/* A minimal PNG encoder (8-bit grey or RGB, no interlace, filter "none"
 * per row, zlib stream from compress2) and Base64 for data: URIs. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "report.h"

static void ax_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* length, type, data, CRC over type + data */
static uint8_t *ax_png_chunk(uint8_t *p, const char type[4], const uint8_t *data, uint32_t len) {
    ax_be32(p, len);
    memcpy(p + 4, type, 4);
    if (len) memcpy(p + 8, data, len);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, p + 4, len + 4);
    ax_be32(p + 8 + len, (uint32_t)crc);
    return p + 12 + len;
}

ax_status ax_png_encode(const uint8_t *pixels, int w, int h, int channels, uint8_t **png, size_t *n) {
    *png = NULL;
    *n = 0;
    if (w < 1 || h < 1 || (channels != 1 && channels != 3) || w > (1 << 20) || h > (1 << 20))
        return AX_ERROR(AX_ERR_INVALID, "png: bad image %dx%d with %d channels", w, h, channels);
    size_t row = (size_t)w * (size_t)channels + 1;
    size_t raw_n = row * (size_t)h;
    uint8_t *raw = malloc(raw_n);
    uLongf z_n = compressBound((uLong)raw_n);
    uint8_t *z = malloc(z_n);
    if (!raw || !z) {
        free(raw), free(z);
        return AX_ERROR(AX_ERR_NOMEM, "png: out of memory");
    }
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * row] = 0; /* filter: none */
        memcpy(raw + (size_t)y * row + 1, pixels + (size_t)y * (row - 1), row - 1);
    }
    int zr = compress2(z, &z_n, raw, (uLong)raw_n, 6);
    free(raw);
    if (zr != Z_OK) {
        free(z);
        return AX_ERROR(AX_ERR_INTERNAL, "png: zlib compress2 failed (%d)", zr);
    }
    size_t total = 8 + (12 + 13) + (12 + z_n) + 12;
    uint8_t *out = malloc(total);
    if (!out) {
        free(z);
        return AX_ERROR(AX_ERR_NOMEM, "png: out of memory");
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    uint8_t ihdr[13];
    ax_be32(ihdr, (uint32_t)w);
    ax_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;                        /* bit depth */
    ihdr[9] = channels == 3 ? 2 : 0;    /* colour type: RGB or grey */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    uint8_t *p = ax_png_chunk(out + 8, "IHDR", ihdr, 13);
    p = ax_png_chunk(p, "IDAT", z, (uint32_t)z_n);
    p = ax_png_chunk(p, "IEND", NULL, 0);
    free(z);
    *png = out;
    *n = (size_t)(p - out);
    return AX_OK;
}

char *ax_base64(const uint8_t *d, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = malloc(4 * ((n + 2) / 3) + 1), *o = s;
    if (!s) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return s;
}
