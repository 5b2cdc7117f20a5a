/* Still images among media inputs: FFmpeg opens a PNG, BMP, TIFF or WebP file with one of
 * its image demuxers (png_pipe, image2, ...) as a one-frame "video".  Callers that sample
 * frames over a clip ask here first, so that a picture is used once, as a picture.  A picture
 * also gets its own size limits: it is one frame with no reference frames before it, and
 * users bring screenshots and photos larger than any video frame the limits allow. */
#include "media/media_internal.h"

#include <string.h>

int media_is_image_demuxer(const char *name)
{
    size_t n = strlen(name);
    if (strcmp(name, "image2") == 0 || strcmp(name, "image2pipe") == 0) return 1;
    /* png_pipe, bmp_pipe, tiff_pipe, webp_pipe, jpeg_pipe, pgm_pipe ...: one picture each */
    return n > 5 && strcmp(name + n - 5, "_pipe") == 0;
}

int avemo_media_is_still_image(const avemo_media *media)
{
    struct avemo_media_info info;
    if (!media || avemo_media_get_info(media, &info) != AVEMO_OK) return 0;
    return info.has_video && !info.has_audio && media_is_image_demuxer(info.container);
}

void media_use_picture_limits(avemo_media *media)
{
    struct avemo_media_limits *lim = &media->limits;
    if (!media->fmt || !media->fmt->iformat || !media_is_image_demuxer(media->fmt->iformat->name)) return;
    if (lim->max_image_side <= 0 || lim->max_image_pixels <= 0) return;
    media->guard.picture = 1;
    /* Only raised: a reopen (second pass) applies it again to the same numbers. */
    if (lim->max_image_side > lim->max_width) lim->max_width = lim->max_image_side;
    if (lim->max_image_side > lim->max_height) lim->max_height = lim->max_image_side;
    if (lim->max_image_pixels > lim->max_pixels) lim->max_pixels = lim->max_image_pixels;
}
