/* Still images of any format: JPEG through libjpeg (as before), every other picture
 * format FFmpeg decodes (PNG, BMP, TIFF, WebP, PGM ...) through its image demuxers, one
 * frame.  Used by datasets (face folders such as CK+'s PNGs), `avemo classify face.png`
 * and the server, so that a picture is never sampled as an 8-frame clip. */
#include "vision/vision_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int avemo_image_is_jpeg(const void *data, size_t size)
{
    const uint8_t *d = data;
    return d && size >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff;
}

enum avemo_status avemo_image_from_media(avemo_media *media, int channels, struct avemo_image *out,
                                         struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "image: NULL output");
    memset(out, 0, sizeof *out);
    if (!avemo_media_is_still_image(media))
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not a still image", media ? avemo_media_name(media) : "(null)");
    struct avemo_frames frames = {0};
    enum avemo_status st =
        avemo_media_decode_frames(media, 1, channels == 1 ? AVEMO_PIX_GRAY8 : AVEMO_PIX_RGB24, &frames, err);
    if (!st && frames.count < 1) st = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: no picture decoded", avemo_media_name(media));
    if (!st) {
        const struct avemo_frame *f = &frames.frames[0];
        st = avemo_image_alloc(out, f->width, f->height, f->channels, err);
        if (!st) memcpy(out->data, f->data, (size_t)f->width * f->height * f->channels);
    }
    avemo_frames_free(&frames);
    return st;
}

enum avemo_status avemo_image_read_file(const char *path, int channels, const struct avemo_media_limits *limits,
                                        struct avemo_image *out, struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "image: NULL output");
    memset(out, 0, sizeof *out);
    uint8_t head[3] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (avemo_image_is_jpeg(head, got))
        return avemo_jpeg_read_file(path, channels, limits ? limits->max_image_pixels : 0, out, err);
    struct avemo_media_open_options mo = {.limits = limits};
    avemo_media *media = NULL;
    enum avemo_status st = avemo_media_open_file(path, &mo, &media, err);
    if (!st) st = avemo_image_from_media(media, channels, out, err);
    avemo_media_close(media);
    return st;
}

enum avemo_status avemo_face_from_image_file(const char *path, int size, int channels, struct avemo_image *out,
                                             struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL output");
    memset(out, 0, sizeof *out);
    struct avemo_image img;
    enum avemo_status st = avemo_image_read_file(path, 0, NULL, &img, err);
    if (st) return st;
    st = avemo_face_from_crop(&img, size, channels, out, err);
    avemo_image_free(&img);
    return st;
}

enum avemo_status avemo_face_detect_image_file(avemo_detector *det, const char *path,
                                               const struct avemo_face_options *opt, struct avemo_face *face,
                                               struct avemo_error *err)
{
    if (!face) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL output");
    memset(face, 0, sizeof *face);
    face->frame_index = -1;
    struct avemo_image img;
    enum avemo_status st = avemo_image_read_file(path, opt ? opt->channels : 3, NULL, &img, err);
    if (st) return st;
    st = avemo_face_detect_image(det, &img, opt, NULL, face, err);
    avemo_image_free(&img);
    return st;
}
