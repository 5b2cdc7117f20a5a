/* Still images among media inputs: FFmpeg opens a PNG, BMP, TIFF or WebP file with one of
 * its image demuxers (png_pipe, image2, ...) as a one-frame "video".  Callers that sample
 * frames over a clip ask here first, so that a picture is used once, as a picture. */
#include <avemo/media.h>

#include <string.h>

static int is_image_demuxer(const char *name)
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
    return info.has_video && !info.has_audio && is_image_demuxer(info.container);
}
