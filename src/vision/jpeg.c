/* JPEG read and write with libjpeg.  libjpeg reports errors by calling error_exit,
 * which must not return: we longjmp back with the message.  Everything that the
 * cleanup needs lives in a struct whose address is taken, so it is never in a
 * register that longjmp could clobber. */
#include "vision/vision_internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

struct jpeg_failure {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void on_error_exit(j_common_ptr cinfo)
{
    struct jpeg_failure *f = (struct jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, f->message);
    longjmp(f->jump, 1);
}

/* Warnings (e.g. "premature end of data") are not fatal for libjpeg but mean a damaged file. */
static void on_emit_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->num_warnings++ == 0) {
        struct jpeg_failure *f = (struct jpeg_failure *)cinfo->err;
        cinfo->err->format_message(cinfo, f->message);
    }
}

/* A progressive JPEG is decoded scan by scan, and a scan of a few bytes may visit every block
 * of the image: a small file of many tiny scans would hold a service worker for minutes.
 * Encoders write a few dozen scans at most (libjpeg's simple progression: 6 gray, 10 colour). */
#define JPEG_MAX_SCANS 100

static void on_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor || ((j_decompress_ptr)cinfo)->input_scan_number <= JPEG_MAX_SCANS) return;
    struct jpeg_failure *f = (struct jpeg_failure *)cinfo->err;
    snprintf(f->message, sizeof f->message, "more than %d scans", JPEG_MAX_SCANS);
    longjmp(f->jump, 1);
}

struct jpeg_reader {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_failure fail;
    struct jpeg_progress_mgr progress;
    uint8_t *pixels;
    int exif;                         /* the file has Exif data: read it again through FFmpeg */
    int gray;                         /* it has one component */
};

/* 1 when one of the APP1 markers libjpeg kept holds Exif data. */
static int has_exif(j_decompress_ptr ci)
{
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) return 1;
    return 0;
}

static enum avemo_status decode(struct jpeg_reader *r, const void *data, size_t size, const char *name, int channels,
                                int64_t max_pixels, struct avemo_image *out, struct avemo_error *err)
{
    struct jpeg_decompress_struct *ci = &r->cinfo;
    if (setjmp(r->fail.jump)) {
        free(r->pixels);
        r->pixels = NULL;
        jpeg_destroy_decompress(ci);
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: bad JPEG: %s", name, r->fail.message);
    }
    jpeg_create_decompress(ci);
    r->progress.progress_monitor = on_progress;
    ci->progress = &r->progress;
    jpeg_mem_src(ci, (const unsigned char *)data, (unsigned long)size);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(ci, TRUE);
    int comps = ci->num_components;
    r->exif = has_exif(ci);
    r->gray = comps == 1;
    if (comps != 1 && comps != 3) {
        jpeg_destroy_decompress(ci);
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: JPEG with %d components (gray or colour expected)", name,
                          comps);
    }
    int w = (int)ci->image_width, h = (int)ci->image_height;
    if (w > AVEMO_IMAGE_MAX_SIDE || h > AVEMO_IMAGE_MAX_SIDE || (int64_t)w * h > max_pixels) {
        jpeg_destroy_decompress(ci);
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: JPEG of %dx%d exceeds the limit of %lld pixels", name, w, h,
                          (long long)max_pixels);
    }
    int outc = channels ? channels : comps;
    ci->out_color_space = outc == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(ci);
    if ((int)ci->output_components != outc || (int)ci->output_width != w || (int)ci->output_height != h) {
        jpeg_destroy_decompress(ci);
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: cannot convert this JPEG to %d channels", name, outc);
    }
    r->pixels = malloc((size_t)w * (size_t)h * (size_t)outc);
    if (!r->pixels) {
        jpeg_destroy_decompress(ci);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %dx%d", name, w, h);
    }
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = r->pixels + (size_t)ci->output_scanline * (size_t)w * (size_t)outc;
        jpeg_read_scanlines(ci, &row, 1);
    }
    jpeg_finish_decompress(ci);
    int warnings = (int)r->fail.mgr.num_warnings;
    jpeg_destroy_decompress(ci);
    if (warnings) {
        free(r->pixels);
        r->pixels = NULL;
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: damaged JPEG: %s", name, r->fail.message);
    }
    out->width = w;
    out->height = h;
    out->channels = outc;
    out->data = r->pixels;
    r->pixels = NULL;
    return AVEMO_OK;
}

/* A JPEG with Exif data, decoded by FFmpeg as a picture: turned upright as its orientation says. */
static enum avemo_status decode_through_media(const void *data, size_t size, const char *name, int channels,
                                              int64_t max_pixels, struct avemo_image *out, struct avemo_error *err)
{
    struct avemo_media_limits limits;
    avemo_media_limits_default(&limits);
    limits.max_image_side = AVEMO_IMAGE_MAX_SIDE;
    limits.max_image_pixels = max_pixels;
    struct avemo_media_open_options mo = {.name = name, .format = "jpeg_pipe", .limits = &limits};
    avemo_media *media = NULL;
    enum avemo_status st = avemo_media_open_memory(data, size, &mo, &media, err);
    if (!st) st = avemo_image_from_media(media, channels, out, err);
    avemo_media_close(media);
    return st;
}

enum avemo_status avemo_jpeg_read_memory(const void *data, size_t size, const char *name, int channels,
                                         int64_t max_pixels, struct avemo_image *out, struct avemo_error *err)
{
    if (!name) name = "jpeg";
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: NULL output", name);
    memset(out, 0, sizeof *out);
    if (channels != 0 && channels != 1 && channels != 3)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: %d channels asked (0, 1 or 3)", name, channels);
    if (!data || size == 0) return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: empty JPEG data", name);
    if (size > AVEMO_JPEG_MAX_BYTES)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: %zu bytes exceeds the JPEG limit", name, size);
    const uint8_t *b = data;
    if (size < 4 || b[0] != 0xFF || b[1] != 0xD8)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not a JPEG file (no SOI marker)", name);
    if (max_pixels <= 0 || max_pixels > AVEMO_IMAGE_MAX_PIXELS) max_pixels = AVEMO_IMAGE_MAX_PIXELS;
    struct jpeg_reader *r = calloc(1, sizeof *r);
    if (!r) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    r->cinfo.err = jpeg_std_error(&r->fail.mgr);
    r->fail.mgr.error_exit = on_error_exit;
    r->fail.mgr.emit_message = on_emit_message;
    enum avemo_status rc = decode(r, data, size, name, channels, max_pixels, out, err);
    if (!rc && r->exif) {
        /* A photo's Exif data may say that it is shown turned (a phone held upright): libjpeg
         * does not read it, FFmpeg's decoder does.  libjpeg has decoded the file first, so its
         * limits (size, scans) hold for FFmpeg's pass too. */
        avemo_image_free(out);
        rc = decode_through_media(data, size, name, channels ? channels : r->gray ? 1 : 3, max_pixels, out, err);
    }
    free(r);
    return rc;
}

enum avemo_status avemo_jpeg_read_file(const char *path, int channels, int64_t max_pixels, struct avemo_image *out,
                                       struct avemo_error *err)
{
    if (!path || !out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "avemo_jpeg_read_file: NULL argument");
    memset(out, 0, sizeof *out);
    uint8_t *data;
    size_t size;
    enum avemo_status rc = avemo_read_file(path, AVEMO_JPEG_MAX_BYTES, &data, &size, err);
    if (rc) return rc;
    rc = avemo_jpeg_read_memory(data, size, path, channels, max_pixels, out, err);
    free(data);
    return rc;
}

struct jpeg_writer {
    struct jpeg_compress_struct cinfo;
    struct jpeg_failure fail;
    unsigned char *buf;
    unsigned long size;
};

static enum avemo_status encode(struct jpeg_writer *w, const struct avemo_image *img, int quality,
                                struct avemo_error *err)
{
    struct jpeg_compress_struct *ci = &w->cinfo;
    if (setjmp(w->fail.jump)) {
        jpeg_destroy_compress(ci);
        free(w->buf);
        w->buf = NULL;
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "jpeg: cannot encode: %s", w->fail.message);
    }
    jpeg_create_compress(ci);
    jpeg_mem_dest(ci, &w->buf, &w->size);
    ci->image_width = (JDIMENSION)img->width;
    ci->image_height = (JDIMENSION)img->height;
    ci->input_components = img->channels;
    ci->in_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality, TRUE);
    jpeg_start_compress(ci, TRUE);
    while (ci->next_scanline < ci->image_height) {
        JSAMPROW row = img->data + (size_t)ci->next_scanline * (size_t)img->width * (size_t)img->channels;
        jpeg_write_scanlines(ci, &row, 1);
    }
    jpeg_finish_compress(ci);
    jpeg_destroy_compress(ci);
    return AVEMO_OK;
}

enum avemo_status avemo_jpeg_write_memory(const struct avemo_image *img, int quality, uint8_t **data, size_t *size,
                                          struct avemo_error *err)
{
    if (!data || !size) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "jpeg: NULL output");
    *data = NULL;
    *size = 0;
    if (!img || !img->data || img->width < 1 || img->height < 1)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "jpeg: empty image");
    if (img->channels != 1 && img->channels != 3)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "jpeg: %d channels (1 or 3 expected)", img->channels);
    if (img->width > 65500 || img->height > 65500)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "jpeg: %dx%d is too large for JPEG", img->width, img->height);
    if (quality < 1 || quality > 100) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "jpeg: quality %d not in 1..100", quality);
    struct jpeg_writer *w = calloc(1, sizeof *w);
    if (!w) return avemo_fail(err, AVEMO_ERR_NOMEM, "jpeg: out of memory");
    w->cinfo.err = jpeg_std_error(&w->fail.mgr);
    w->fail.mgr.error_exit = on_error_exit;
    enum avemo_status rc = encode(w, img, quality, err);
    if (!rc) {
        /* libjpeg allocated the buffer with malloc; hand it over as is. */
        *data = w->buf;
        *size = w->size;
    }
    free(w);
    return rc;
}

enum avemo_status avemo_jpeg_write_file(const char *path, const struct avemo_image *img, int quality,
                                        struct avemo_error *err)
{
    if (!path) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "jpeg: NULL path");
    uint8_t *data;
    size_t size;
    enum avemo_status rc = avemo_jpeg_write_memory(img, quality, &data, &size, err);
    if (rc) {
        char why[AVEMO_ERROR_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", err ? err->message : "cannot encode");
        return avemo_fail(err, rc, "%s: %s", path, why);
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        int e = errno;
        free(data);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create the file: %s", path, strerror(e));
    }
    int ok = fwrite(data, 1, size, f) == size;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    free(data);
    if (!ok) return avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", path, strerror(e));
    return AVEMO_OK;
}
