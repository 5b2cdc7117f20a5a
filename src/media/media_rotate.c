/* Frames shown turned: phones store a portrait video as landscape pictures with a display
 * matrix saying "turn by 90 degrees", and players (and the ffmpeg program) turn them.  Faces in
 * the stored pictures lie on their side, where a face cascade finds none, so decoded frames
 * are turned upright here, as a player shows them; so are photos whose JPEG Exif data says how
 * to turn them (FFmpeg's decoder gives that as the frame's matrix).  Only quarter turns: a matrix that also
 * mirrors or shears is rare and is used as its nearest quarter turn, as ffmpeg 5.1 does. */
#include "media/media_internal.h"

#include <assert.h>
#include <libavutil/display.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int matrix_rotation(const uint8_t *matrix, size_t size)
{
    if (!matrix || size < 9 * sizeof(int32_t)) return 0;
    int32_t m[9];
    memcpy(m, matrix, sizeof m); /* side data need not be aligned */
    double degrees = av_display_rotation_get(m); /* counter-clockwise; NaN for a degenerate matrix */
    if (isnan(degrees)) return 0;
    long clockwise = lround(-degrees / 90.0) * 90;
    return (int)(((clockwise % 360) + 360) % 360);
}

int media_stream_rotation(const AVStream *s)
{
    size_t size = 0;
    const uint8_t *matrix = av_stream_get_side_data(s, AV_PKT_DATA_DISPLAYMATRIX, &size);
    return matrix_rotation(matrix, size);
}

int media_frame_rotation(const AVFrame *f, int stream_rotation)
{
    /* A JPEG's Exif orientation comes with the frame (FFmpeg's decoder turns it into a matrix). */
    const AVFrameSideData *sd = av_frame_get_side_data(f, AV_FRAME_DATA_DISPLAYMATRIX);
    return sd ? matrix_rotation(sd->data, sd->size) : stream_rotation;
}

/* dst[r][c] of the turned picture (dw x dh) from src (sw x sh), `channels` bytes a pixel. */
static void turn(const uint8_t *src, int sw, int sh, int channels, int rotation, uint8_t *dst)
{
    int dw = rotation == 180 ? sw : sh;
    int dh = rotation == 180 ? sh : sw;
    for (int r = 0; r < dh; r++) {
        for (int c = 0; c < dw; c++) {
            int sr, sc;
            if (rotation == 90) sr = sh - 1 - c, sc = r;            /* clockwise */
            else if (rotation == 270) sr = c, sc = sw - 1 - r;      /* counter-clockwise */
            else sr = sh - 1 - r, sc = sw - 1 - c;                  /* half turn */
            memcpy(dst + ((size_t)r * dw + c) * channels, src + ((size_t)sr * sw + sc) * channels, channels);
        }
    }
}

enum avemo_status media_turn_frame(const avemo_media *media, struct avemo_frame *fr, int rotation,
                                   struct avemo_error *err)
{
    assert(rotation == 0 || rotation == 90 || rotation == 180 || rotation == 270);
    if (rotation == 0) return AVEMO_OK;
    size_t bytes = (size_t)fr->width * fr->height * fr->channels;
    uint8_t *turned = malloc(bytes);
    if (!turned) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate a %dx%d frame", media->name,
                                   fr->width, fr->height);
    turn(fr->data, fr->width, fr->height, fr->channels, rotation, turned);
    free(fr->data);
    fr->data = turned;
    if (rotation != 180) {
        int w = fr->width;
        fr->width = fr->height;
        fr->height = w;
    }
    return AVEMO_OK;
}
