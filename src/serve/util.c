/* Small helpers of the service: SHA-256 and base64 (libavutil), the face crop as a JPEG data URL
 * (written by the vision module's JPEG writer). */
#include "serve/serve_internal.h"

#include <avemo/vision.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/base64.h>
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
    if (size > (size_t)(INT_MAX / 4 * 3 - 3)) return NULL; /* av_base64_encode takes int sizes */
    const int out_size = (int)AV_BASE64_SIZE(size);
    char *out = malloc((size_t)out_size);
    if (out && !av_base64_encode(out, out_size, data, (int)size)) {
        free(out);
        out = NULL;
    }
    return out;
}

char *serve_data_url(const char *mime, const uint8_t *data, size_t size)
{
    char *b64 = serve_base64(data, size);
    if (!b64) return NULL;
    size_t n = strlen(mime) + strlen(b64) + sizeof "data:;base64,";
    char *url = malloc(n);
    if (url) snprintf(url, n, "data:%s;base64,%s", mime, b64);
    free(b64);
    return url;
}

char *serve_face_data_url(const uint8_t *rgb, int width, int height)
{
    struct avemo_image img = {width, height, 3, (uint8_t *)rgb};
    uint8_t *jpeg = NULL;
    size_t jpeg_size = 0;
    if (avemo_jpeg_write_memory(&img, 92, &jpeg, &jpeg_size, NULL)) return NULL;
    char *url = serve_data_url("image/jpeg", jpeg, jpeg_size);
    free(jpeg);
    return url;
}

int serve_content_length(struct MHD_Connection *conn, uint64_t *out)
{
    const char *text = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!text) return 0;
    if (!*text) return -1;
    uint64_t v = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        unsigned digit = (unsigned)(*c - '0');
        v = v > (UINT64_MAX - digit) / 10 ? UINT64_MAX : v * 10 + digit;
    }
    *out = v;
    return 1;
}

int serve_parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    long v; /* 64 bits on the platforms avemo builds for */
    if (avemo_parse_long(text, (long)lo, (long)hi, &v)) return -1;
    *out = v;
    return 0;
}

/* ---- UTF-8: whatever bytes a request held, what we send is valid UTF-8 ---- */

int serve_utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    int len = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return 0;
    uint32_t c = p[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < least[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0; /* overlong, surrogate */
    *cp = c;
    return len;
}

int serve_is_bidi_control(uint32_t cp)
{
    return cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* 1 when the bytes left could still begin a valid character that the end of the text cut. */
static int cut_character(const unsigned char *p, size_t n)
{
    int len = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || (size_t)len <= n) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return 1;
}

size_t serve_utf8_clean(const char *in, char *out, size_t cap, int drop_bidi)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)in;
    size_t n = strlen(in), o = 0;
    while (n > 0) {
        uint32_t cp = 0;
        int len = serve_utf8_char(p, n, &cp);
        if (len == 0 && cut_character(p, n)) break; /* a character cut by a truncation: drop it */
        const char *piece = len ? (const char *)p : replacement;
        size_t size = len ? (size_t)len : sizeof replacement - 1;
        if (o + size >= cap) break;
        if (!(len && drop_bidi && serve_is_bidi_control(cp))) {
            memcpy(out + o, piece, size);
            o += size;
        }
        p += len ? (size_t)len : 1;
        n -= len ? (size_t)len : 1;
    }
    if (cap) out[o] = '\0';
    return o;
}

char *serve_utf8_dup(const char *in, int drop_bidi)
{
    size_t cap = 3 * strlen(in) + 1; /* every byte may become U+FFFD */
    char *out = malloc(cap);
    if (out) serve_utf8_clean(in, out, cap, drop_bidi);
    return out;
}
