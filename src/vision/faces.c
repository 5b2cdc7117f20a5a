/* Faces: the largest detected face of a photo or of K frames of a clip, cropped
 * square with a margin and resampled to the model's input size. */
#include "vision/vision_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FACE_MIN_SIZE 8
#define FACE_MAX_SIZE 1024
#define CLIP_MAX_FRAMES 10000
/* Tracking: the previous box grown by this fraction of its side on each side. */
#define TRACK_GROW 0.5
#define TRACK_MIN_SCALE 0.7
#define TRACK_MAX_SCALE 1.5

void avemo_face_options_default(struct avemo_face_options *opt)
{
    avemo_detect_params_default(&opt->detect);
    opt->size = 64;
    opt->channels = 3;
    opt->margin = 0.1;
    opt->offset_y = 0;
    opt->track = 0;
    opt->center_fallback = 0;
}

void avemo_face_free(struct avemo_face *face)
{
    if (face) avemo_image_free(&face->image);
}

/* Checks the caller's options, or fills defaults and points *opt at them when there are none. */
static enum avemo_status check_options(const struct avemo_face_options **optp, struct avemo_face_options *defaults,
                                       struct avemo_error *err)
{
    if (!*optp) {
        avemo_face_options_default(defaults);
        *optp = defaults;
    }
    const struct avemo_face_options *opt = *optp;
    if (opt->size < FACE_MIN_SIZE || opt->size > FACE_MAX_SIZE)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: crop size %d not in %d..%d", opt->size, FACE_MIN_SIZE,
                          FACE_MAX_SIZE);
    if (opt->channels != 1 && opt->channels != 3)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: %d channels (1 or 3 expected)", opt->channels);
    if (!(opt->margin >= -0.25 && opt->margin <= 2))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: margin %g not in -0.25..2", opt->margin);
    if (!(opt->offset_y >= -0.5 && opt->offset_y <= 0.5))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: vertical offset %g not in -0.5..0.5", opt->offset_y);
    return AVEMO_OK;
}

/* The square around box grown by margin on each side (shrunk when it is negative), its
 * centre moved down by offset_y of the box side, moved (and if needed shrunk) to lie
 * inside the image. */
static struct avemo_rect square_around(struct avemo_rect box, double margin, double offset_y, int w, int h)
{
    int side0 = box.w > box.h ? box.w : box.h;
    int side = (int)lrint(side0 * (1 + 2 * margin));
    if (side > w) side = w;
    if (side > h) side = h;
    if (side < 1) side = 1;
    int x = (int)lrint(box.x + box.w * 0.5 - side * 0.5);
    int y = (int)lrint(box.y + box.h * 0.5 + side0 * offset_y - side * 0.5);
    if (x > w - side) x = w - side;
    if (y > h - side) y = h - side;
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    struct avemo_rect r = {x, y, side, side};
    return r;
}

static struct avemo_rect centre_square(int w, int h)
{
    int side = w < h ? w : h;
    struct avemo_rect r = {(w - side) / 2, (h - side) / 2, side, side};
    return r;
}

/* Resample region r of img to size x size and convert to the wanted channels. */
static enum avemo_status crop_to(const struct avemo_image *img, struct avemo_rect r, int size, int channels,
                                 struct avemo_image *out, struct avemo_error *err)
{
    struct avemo_image tmp;
    enum avemo_status rc = avemo_image_resize(img, r, size, size, &tmp, err);
    if (rc) return rc;
    if (tmp.channels == channels) {
        *out = tmp;
        return AVEMO_OK;
    }
    rc = avemo_image_convert(&tmp, channels, out, err);
    avemo_image_free(&tmp);
    return rc;
}

/* Look for the face near the previous one: a cheap search of a small region at
 * scales close to the previous size.  Sets *found. */
static enum avemo_status search_near(avemo_detector *det, const struct avemo_image *img,
                                     const struct avemo_face_options *opt, struct avemo_rect hint,
                                     struct avemo_rect *box, int *found, struct avemo_error *err)
{
    *found = 0;
    int grow = (int)lrint((hint.w > hint.h ? hint.w : hint.h) * TRACK_GROW);
    int x0 = hint.x - grow, y0 = hint.y - grow, x1 = hint.x + hint.w + grow, y1 = hint.y + hint.h + grow;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->width) x1 = img->width;
    if (y1 > img->height) y1 = img->height;
    struct avemo_detect_params p = opt->detect;
    int minw = (int)(hint.w * TRACK_MIN_SCALE), minh = (int)(hint.h * TRACK_MIN_SCALE);
    if (minw > p.min_width) p.min_width = minw;
    if (minh > p.min_height) p.min_height = minh;
    p.max_width = (int)(hint.w * TRACK_MAX_SCALE);
    p.max_height = (int)(hint.h * TRACK_MAX_SCALE);
    if (x1 - x0 < p.min_width || y1 - y0 < p.min_height || p.max_width < p.min_width || p.max_height < p.min_height)
        return AVEMO_OK;
    struct avemo_rect roi = {x0, y0, x1 - x0, y1 - y0};
    struct avemo_image sub;
    enum avemo_status rc = avemo_image_alloc(&sub, roi.w, roi.h, img->channels, err);
    if (rc) return rc;
    size_t rowbytes = (size_t)roi.w * (size_t)img->channels;
    for (int y = 0; y < roi.h; y++)
        memcpy(sub.data + (size_t)y * rowbytes,
               img->data + ((size_t)(roi.y + y) * (size_t)img->width + (size_t)roi.x) * (size_t)img->channels, rowbytes);
    int count = 0;
    struct avemo_rect best;
    rc = avemo_detect(det, &sub, &p, &best, 1, &count, err);
    avemo_image_free(&sub);
    if (rc) return rc;
    if (count > 0) {
        best.x += roi.x;
        best.y += roi.y;
        *box = best;
        *found = 1;
    }
    return AVEMO_OK;
}

enum avemo_status avemo_face_detect_image(avemo_detector *det, const struct avemo_image *img,
                                          const struct avemo_face_options *opt, const struct avemo_rect *hint,
                                          struct avemo_face *face, struct avemo_error *err)
{
    if (!det || !face) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL argument");
    memset(face, 0, sizeof *face);
    face->frame_index = -1;
    struct avemo_face_options defaults;
    enum avemo_status rc = check_options(&opt, &defaults, err);
    if (rc) return rc;
    if (!img || !img->data || img->width < 1 || img->height < 1)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "faces: empty image");
    int found = 0;
    struct avemo_rect box = {0, 0, 0, 0};
    if (opt->track && hint && hint->w > 0 && hint->h > 0) {
        rc = search_near(det, img, opt, *hint, &box, &found, err);
        if (rc) return rc;
    }
    if (!found) {
        int count = 0;
        rc = avemo_detect(det, img, &opt->detect, &box, 1, &count, err);
        if (rc) return rc;
        found = count > 0;
        face->faces_in_frame = count;
    }
    struct avemo_rect region;
    if (found) {
        face->face_found = 1;
        face->box = box;
        region = square_around(box, opt->margin, opt->offset_y, img->width, img->height);
    } else if (opt->center_fallback) {
        region = centre_square(img->width, img->height);
    } else {
        return AVEMO_OK;
    }
    rc = crop_to(img, region, opt->size, opt->channels, &face->image, err);
    if (rc) return rc;
    face->crop = region;
    face->has_crop = 1;
    return AVEMO_OK;
}

enum avemo_status avemo_face_detect_jpeg(avemo_detector *det, const char *path, const struct avemo_face_options *opt,
                                         struct avemo_face *face, struct avemo_error *err)
{
    if (!face) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL output");
    memset(face, 0, sizeof *face);
    face->frame_index = -1;
    struct avemo_image img;
    enum avemo_status rc = avemo_jpeg_read_file(path, opt ? opt->channels : 3, 0, &img, err);
    if (rc) return rc;
    rc = avemo_face_detect_image(det, &img, opt, NULL, face, err);
    avemo_image_free(&img);
    return rc;
}

enum avemo_status avemo_face_from_crop(const struct avemo_image *img, int size, int channels, struct avemo_image *out,
                                       struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL output");
    memset(out, 0, sizeof *out);
    if (!img || !img->data || img->width < 1 || img->height < 1)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "faces: empty image");
    if (img->channels != 1 && img->channels != 3)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: %d channels (1 or 3 expected)", img->channels);
    if (size < FACE_MIN_SIZE || size > FACE_MAX_SIZE)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: crop size %d not in %d..%d", size, FACE_MIN_SIZE,
                          FACE_MAX_SIZE);
    if (channels != 1 && channels != 3)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: %d channels (1 or 3 expected)", channels);
    return crop_to(img, centre_square(img->width, img->height), size, channels, out, err);
}

enum avemo_status avemo_face_from_jpeg(const char *path, int size, int channels, struct avemo_image *out,
                                       struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL output");
    memset(out, 0, sizeof *out);
    struct avemo_image img;
    enum avemo_status rc = avemo_jpeg_read_file(path, 0, 0, &img, err);
    if (rc) return rc;
    rc = avemo_face_from_crop(&img, size, channels, out, err);
    avemo_image_free(&img);
    return rc;
}

void avemo_clip_faces_free(struct avemo_clip_faces *cf)
{
    if (!cf) return;
    for (int i = 0; i < cf->count; i++) avemo_face_free(&cf->faces[i]);
    free(cf->faces);
    avemo_frames_free(&cf->frames);
    memset(cf, 0, sizeof *cf);
}

enum avemo_status avemo_clip_faces(avemo_detector *det, avemo_media *media, int frames,
                                   const struct avemo_face_options *opt, int keep_frames,
                                   struct avemo_clip_faces *out, struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL output");
    memset(out, 0, sizeof *out);
    if (!det || !media) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "faces: NULL detector or media");
    struct avemo_face_options defaults;
    enum avemo_status rc = check_options(&opt, &defaults, err);
    if (rc) return rc;
    if (frames < 1 || frames > CLIP_MAX_FRAMES)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: %d frames asked (1..%d)", avemo_media_name(media), frames,
                          CLIP_MAX_FRAMES);
    struct avemo_frames fr = {0};
    rc = avemo_media_decode_frames(media, frames, opt->channels == 1 ? AVEMO_PIX_GRAY8 : AVEMO_PIX_RGB24, &fr, err);
    if (rc) return rc;
    out->faces = calloc((size_t)(fr.count > 0 ? fr.count : 1), sizeof *out->faces);
    if (!out->faces) {
        avemo_frames_free(&fr);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", avemo_media_name(media));
    }
    const struct avemo_rect *hint = NULL;
    for (int i = 0; i < fr.count; i++) {
        struct avemo_image img = avemo_image_from_frame(&fr.frames[i]);
        rc = avemo_face_detect_image(det, &img, opt, hint, &out->faces[i], err);
        if (rc) {
            avemo_frames_free(&fr);
            avemo_clip_faces_free(out);
            return rc;
        }
        out->count = i + 1;
        out->faces[i].frame_index = fr.frames[i].index;
        out->faces[i].time_s = fr.frames[i].time_s;
        if (out->faces[i].face_found) hint = &out->faces[i].box;
    }
    if (keep_frames) out->frames = fr;
    else avemo_frames_free(&fr);
    return AVEMO_OK;
}
