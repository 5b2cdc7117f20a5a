/*
 * Binary files: one writer and one reader for every avemo format (model, optimiser state,
 * feature cache, weight average, cascade cache).  Little-endian fields whatever the host, CRC-32 trailers
 * computed with zlib's crc32 (the same numbers as FFmpeg's av_crc with AV_CRC_32_IEEE_LE, which
 * earlier versions used: zlib's is several times faster), and writes that replace
 * a file only once it is complete (PATH.tmpPID, then rename).
 */
#include <avemo/core.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

uint32_t avemo_crc32(uint32_t crc, const void *data, size_t size)
{
    return (uint32_t)crc32_z(crc, data, size);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_LE 0
#else
#define HOST_LE 1
#endif

/* Reverse each width-byte element of buf in place (big-endian hosts only). */
static void swap_elements(void *buf, size_t count, size_t width)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < count; i++, p += width)
        for (size_t a = 0, b = width - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* --- writing ------------------------------------------------------------------------ */

struct avemo_binw {
    FILE *f;
    char *path, *tmp;
    uint32_t crc;             /* of the current section */
    uint64_t offset;
    int failed;               /* errno of the first failure, or -1 for out of memory */
};

enum avemo_status avemo_binw_create(const char *path, avemo_binw **out, struct avemo_error *err)
{
    *out = NULL;
    avemo_binw *w = calloc(1, sizeof *w);
    size_t len = strlen(path);
    if (w) w->path = strdup(path);
    if (w) w->tmp = malloc(len + 32);
    if (!w || !w->path || !w->tmp) {
        if (w) free(w->path);
        free(w);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    }
    /* The process id keeps two runs that write the same file (a shared cache) apart. */
    snprintf(w->tmp, len + 32, "%s.tmp%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        enum avemo_status st = avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(w->path);
        free(w->tmp);
        free(w);
        return st;
    }
    *out = w;
    return AVEMO_OK;
}

void avemo_binw_bytes(avemo_binw *w, const void *data, size_t n)
{
    if (w->failed || n == 0) return;
    if (fwrite(data, 1, n, w->f) != n) {
        w->failed = errno ? errno : EIO;
        return;
    }
    w->crc = avemo_crc32(w->crc, data, n);
    w->offset += n;
}

void avemo_binw_u8(avemo_binw *w, uint8_t v) { avemo_binw_bytes(w, &v, 1); }

void avemo_binw_u32(avemo_binw *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    avemo_binw_bytes(w, b, 4);
}

void avemo_binw_u64(avemo_binw *w, uint64_t v)
{
    avemo_binw_u32(w, (uint32_t)v);
    avemo_binw_u32(w, (uint32_t)(v >> 32));
}

/* Arrays of floats or doubles: written as they are on little-endian hosts, in chunks swapped
 * through a small buffer otherwise. */
static void put_array(avemo_binw *w, const void *x, size_t count, size_t width)
{
    if (HOST_LE) {
        avemo_binw_bytes(w, x, count * width);
        return;
    }
    uint8_t chunk[4096];
    const uint8_t *p = x;
    for (size_t left = count * width; left > 0;) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        memcpy(chunk, p, n);
        swap_elements(chunk, n / width, width);
        avemo_binw_bytes(w, chunk, n);
        p += n;
        left -= n;
    }
}

void avemo_binw_f32(avemo_binw *w, const float *x, size_t n) { put_array(w, x, n, 4); }
void avemo_binw_f64(avemo_binw *w, const double *x, size_t n) { put_array(w, x, n, 8); }
void avemo_binw_words32(avemo_binw *w, const void *x, size_t n) { put_array(w, x, n, 4); }

void avemo_binw_str(avemo_binw *w, const char *s, size_t n)
{
    avemo_binw_u32(w, (uint32_t)n);
    avemo_binw_bytes(w, s, n);
}

void avemo_binw_crc(avemo_binw *w)
{
    uint32_t crc = w->crc;
    avemo_binw_u32(w, crc);
    w->crc = 0;
}

uint64_t avemo_binw_offset(const avemo_binw *w) { return w->offset; }

static void binw_free(avemo_binw *w)
{
    free(w->path);
    free(w->tmp);
    free(w);
}

enum avemo_status avemo_binw_finish(avemo_binw *w, struct avemo_error *err)
{
    avemo_binw_crc(w);
    int failed = w->failed;
    if (fclose(w->f) != 0 && !failed) failed = errno ? errno : EIO;
    if (!failed && rename(w->tmp, w->path) != 0) failed = errno ? errno : EIO;
    enum avemo_status st = AVEMO_OK;
    if (failed) {
        remove(w->tmp);
        st = avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", w->path, strerror(failed));
    }
    binw_free(w);
    return st;
}

void avemo_binw_abort(avemo_binw *w)
{
    if (!w) return;
    fclose(w->f);
    remove(w->tmp);
    binw_free(w);
}

/* --- reading ------------------------------------------------------------------------ */

void avemo_binr_memory(struct avemo_binr *r, const void *data, size_t size)
{
    memset(r, 0, sizeof *r);
    r->data = data;
    r->size = size;
}

void avemo_binr_memory_checked(struct avemo_binr *r, const void *data, size_t size)
{
    avemo_binr_memory(r, data, size);
    r->checked = 1;
}

enum avemo_status avemo_binr_open(struct avemo_binr *r, const char *path, struct avemo_error *err)
{
    memset(r, 0, sizeof *r);
    r->file = fopen(path, "rb");
    if (!r->file) return avemo_fail(err, AVEMO_ERR_NOT_FOUND, "%s: cannot open: %s", path, strerror(errno));
    return AVEMO_OK;
}

void avemo_binr_close(struct avemo_binr *r)
{
    if (r->file) fclose(r->file);
    r->file = NULL;
}

const void *avemo_binr_take(struct avemo_binr *r, size_t n)
{
    if (r->bad || !r->data || n > r->size - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const void *p = r->data + r->pos;
    if (!r->checked) r->crc = avemo_crc32(r->crc, p, n);
    r->pos += n;
    return p;
}

int avemo_binr_bytes(struct avemo_binr *r, void *out, size_t n)
{
    if (r->bad) return 0;
    if (r->data) {
        const void *p = avemo_binr_take(r, n);
        if (p && out) memcpy(out, p, n);
        return p != NULL;
    }
    uint8_t chunk[4096];
    for (uint8_t *o = out; n > 0;) { /* skipped bytes go through chunk to keep the CRC */
        size_t step = out ? n : n < sizeof chunk ? n : sizeof chunk;
        uint8_t *dst = out ? o : chunk;
        if (!r->file || fread(dst, 1, step, r->file) != step) {
            r->bad = 1;
            return 0;
        }
        r->crc = avemo_crc32(r->crc, dst, step);
        r->pos += step;
        n -= step;
        if (out) o += step;
    }
    return 1;
}

uint8_t avemo_binr_u8(struct avemo_binr *r)
{
    uint8_t b = 0;
    return avemo_binr_bytes(r, &b, 1) ? b : 0;
}

uint32_t avemo_binr_u32(struct avemo_binr *r)
{
    uint8_t b[4];
    if (!avemo_binr_bytes(r, b, 4)) return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

uint64_t avemo_binr_u64(struct avemo_binr *r)
{
    uint64_t lo = avemo_binr_u32(r);
    return lo | (uint64_t)avemo_binr_u32(r) << 32;
}

static int get_array(struct avemo_binr *r, void *out, size_t count, size_t width)
{
    if (count > SIZE_MAX / width) {
        r->bad = 1;
        return 0;
    }
    if (!avemo_binr_bytes(r, out, count * width)) return 0;
    if (!HOST_LE && out) swap_elements(out, count, width);
    return 1;
}

int avemo_binr_f32(struct avemo_binr *r, float *out, size_t n) { return get_array(r, out, n, 4); }
int avemo_binr_f64(struct avemo_binr *r, double *out, size_t n) { return get_array(r, out, n, 8); }
int avemo_binr_words32(struct avemo_binr *r, void *out, size_t n) { return get_array(r, out, n, 4); }

int avemo_binr_crc(struct avemo_binr *r)
{
    assert(!r->checked); /* a checked reader keeps no running CRC */
    uint32_t want = r->crc;
    uint32_t stored = avemo_binr_u32(r);
    if (r->bad || stored != want) {
        r->bad = 1;
        return 0;
    }
    r->crc = 0;
    return 1;
}
