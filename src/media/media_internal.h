/* Internal state of an opened media input, shared by the files of src/media. */
#ifndef AVEMO_MEDIA_INTERNAL_H
#define AVEMO_MEDIA_INTERNAL_H

#include <avemo/media.h>

#include <libavformat/avformat.h>

/* A read position over caller memory, for the custom AVIOContext. */
struct media_memory_reader {
    const uint8_t *data;
    size_t size;
    size_t pos;
};

struct avemo_media {
    char *name;                       /* path or memory name, for messages */
    char *path;                       /* NULL for memory input */
    struct media_memory_reader mem;   /* memory input */
    char *format;                     /* forced input format or NULL */
    char *options;                    /* demuxer options or NULL */
    struct avemo_media_limits limits;
    AVFormatContext *fmt;             /* the open demuxer */
    AVIOContext *avio;                /* custom I/O for memory input */
    int fmt_fresh;                    /* 1 until a decode pass has read packets */
    int audio_stream;                 /* index of the best audio stream, -1 if none */
    int video_stream;                 /* index of the best video stream, -1 if none */
    struct avemo_media_info info;
};

/* Open (or reopen, for a second pass) the demuxer of media. */
enum avemo_status media_open_demuxer(avemo_media *media, struct avemo_error *err);
/* Close the demuxer and its custom I/O. */
void media_close_demuxer(avemo_media *media);
/* Make sure the demuxer is positioned at the start: reopens it after a pass. */
enum avemo_status media_rewind(avemo_media *media, struct avemo_error *err);
/* Map an FFmpeg error code to a status with a message naming the media. */
enum avemo_status media_fail_av(const avemo_media *media, struct avemo_error *err, int averr, const char *what);

#endif
