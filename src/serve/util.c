/* Small helpers of the service: SHA-256 (libavutil), base64, the face crop as a JPEG data URL
 * (written by the vision module's JPEG writer). */
#include "serve/serve_internal.h"

#include <avemo/vision.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/sha.h>

void avemo_sha256_hex(const void *data, size_t size, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t digest[32] = {0};
    struct AVSHA *sha = av_sha_alloc();
    if (sha && av_sha_init(sha, 256) == 0) {
        /* av_sha_update takes an unsigned int length (size_t from FFmpeg 7): feed in slices. */
        const uint8_t *p = data;
        while (size > 0) {
            size_t n = size > (1u << 30) ? (1u << 30) : size;
            av_sha_update(sha, p, (unsigned)n);
            p += n;
            size -= n;
        }
        av_sha_final(sha, digest);
    }
    av_free(sha);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

char *serve_base64(const uint8_t *data, size_t size)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out_len = 4 * ((size + 2) / 3);
    char *out = malloc(out_len + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < size) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < size) v |= data[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < size ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < size ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

char *serve_face_data_url(const uint8_t *rgb, int width, int height)
{
    struct avemo_image img = {width, height, 3, (uint8_t *)rgb};
    uint8_t *jpeg = NULL;
    size_t jpeg_size = 0;
    if (avemo_jpeg_write_memory(&img, 92, &jpeg, &jpeg_size, NULL)) return NULL;
    char *b64 = serve_base64(jpeg, jpeg_size);
    free(jpeg);
    if (!b64) return NULL;
    static const char prefix[] = "data:image/jpeg;base64,";
    size_t n = strlen(b64);
    char *url = malloc(sizeof prefix + n);
    if (url) {
        memcpy(url, prefix, sizeof prefix - 1);
        memcpy(url + sizeof prefix - 1, b64, n + 1);
    }
    free(b64);
    return url;
}

int serve_parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    long v; /* 64 bits on the platforms avemo builds for */
    if (avemo_parse_long(text, (long)lo, (long)hi, &v)) return -1;
    *out = v;
    return 0;
}
