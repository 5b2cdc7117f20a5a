/* Internal state of an opened media input, shared by the files of src/media. */
#ifndef AVEMO_MEDIA_INTERNAL_H
#define AVEMO_MEDIA_INTERNAL_H

#include <avemo/media.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

/* A read position over caller memory, for the custom AVIOContext. */
struct media_memory_reader {
    const uint8_t *data;
    size_t size;
    size_t pos;
};

/* The memory budget of one input (media_guard.c). */
struct media_guard {
    int peek;                         /* 1: refuse every video buffer, only learn the size */
    int refused;                      /* a decoder asked for a frame the limits refuse */
    int width, height;                /* ... of this size */
    int64_t bytes;                    /* ... of this many bytes, when its format made it too large */
    int picture;                      /* the input is a still picture (the picture limits apply) */
    int64_t held;                     /* bytes of samples and frames the current decode holds */
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
    struct media_guard guard;
    double decode_deadline;           /* avemo_now() past which the current decode call fails */
    avemo_frame_sink sink;            /* told of each sampled frame (avemo_media_set_frame_sink) */
    void *sink_user;
    int sink_pass;                    /* decode passes made: a retried pass starts the sink again */
};

/* Open (or reopen, for a second pass) the demuxer of media. */
enum avemo_status media_open_demuxer(avemo_media *media, struct avemo_error *err);
/* Close the demuxer and its custom I/O. */
void media_close_demuxer(avemo_media *media);
/* Make sure the demuxer is positioned at the start: reopens it after a pass. */
enum avemo_status media_rewind(avemo_media *media, struct avemo_error *err);
/* Map an FFmpeg error code to a status with a message naming the media. */
enum avemo_status media_fail_av(const avemo_media *media, struct avemo_error *err, int averr, const char *what);
/* The read error behind av_read_frame's answer rc, or 0 when it is a packet or the end of the input. */
int media_read_error(const avemo_media *media, int rc);

/* media_guard.c: bounds of the stream-info probe and options for its decoders (one
 * dictionary per stream, freed with media_guard_free_options). */
void media_guard_probe_bounds(AVFormatContext *fmt);
/* Create the streams of a format without a header before the probe (they get its options). */
enum avemo_status media_guard_find_streams(avemo_media *media, struct avemo_error *err);
enum avemo_status media_guard_probe_options(const avemo_media *media, AVDictionary ***opts, unsigned *count,
                                            struct avemo_error *err);
void media_guard_free_options(AVDictionary ***opts, unsigned count);
/* The frame sizes the container's headers declare, checked before the probe decodes anything
 * (cover art excepted: it is not the video). */
enum avemo_status media_guard_check_declared(const avemo_media *media, struct avemo_error *err);
/* Install the frame-size guard on a decoder of media (before avcodec_open2). */
void media_guard_decoder(avemo_media *media, AVCodecContext *dec);
/* 1 when a frame of width x height is within the limits' frame size. */
int media_frame_fits(const struct avemo_media_limits *lim, int width, int height);
/* The TOO_LARGE error of a frame of width x height over the frame size limits. */
enum avemo_status media_frame_size_error(const avemo_media *media, int width, int height, struct avemo_error *err);
/* The TOO_LARGE error of a frame the guard refused. */
enum avemo_status media_guard_refusal(const avemo_media *media, struct avemo_error *err);
/* Account for a decode holding `take` more bytes and `release` fewer; TOO_LARGE over the cap. */
enum avemo_status media_guard_hold(avemo_media *media, int64_t release, int64_t take, struct avemo_error *err);
/* The video size the probe could not give, read without allocating a frame (into info). */
void media_guard_peek_size(avemo_media *media);

/* media_still.c: 1 when the demuxer `name` reads still pictures (png_pipe, image2 ...). */
int media_is_image_demuxer(const char *name);
/* After the demuxer is open: a still picture gets the limits' picture sizes in place of a
 * video frame's (media->guard.picture says so). */
void media_use_picture_limits(avemo_media *media);

/* media_rotate.c: the clockwise quarter turn (0, 90, 180, 270) that shows the stream's frames
 * upright, from its display matrix; media_turn_frame turns a decoded frame by it. */
int media_stream_rotation(const AVStream *s);
/* ... of a decoded frame: its own display matrix (a JPEG's Exif orientation), else the stream's. */
int media_frame_rotation(const AVFrame *f, int stream_rotation);
enum avemo_status media_turn_frame(const avemo_media *media, struct avemo_frame *fr, int rotation,
                                   struct avemo_error *err);

/* media_plan.c: which packets of a sampling pass may be skipped (H.264 in MP4/MOV: pictures
 * no other picture refers to, when they are not sampled).  The packets are read first and
 * replayed; plan->skipping says whether the pass skips and indexes frames by rank. */
struct media_plan {
    AVPacket **packets;               /* read ahead, replayed in order */
    int npackets, next;
    int ended;                        /* the demuxer has nothing more */
    int end_rc;                       /* ... and said so with this (AVERROR_EOF or a read error) */
    int skipping;                     /* 1: keep[] and the ranks are valid */
    uint8_t *keep;                    /* per packet: 1 when it must be decoded fully */
    int64_t *sorted_pts;              /* the video packets' presentation times, sorted */
    int nvideo;
};
/* 1 when a pass sampling count frames of this stream should build a plan. */
int media_plan_eligible(const avemo_media *media, int stream, int count);
void media_plan_build(avemo_media *media, int stream, const int64_t *targets, int ntargets, struct media_plan *plan);
/* The next packet of the pass (replayed, then read); *keep 0 when it may be skipped. */
int media_plan_next(avemo_media *media, struct media_plan *plan, AVPacket *pkt, int *keep);
/* The display index of the video frame with this presentation time, or -1. */
int64_t media_plan_rank(const struct media_plan *plan, int64_t pts);
void media_plan_free(struct media_plan *plan);

/* media_gray.c: GRAY8 frames from the luma plane through a table learnt from swscale (the
 * same bytes as sws_scale, without its per-frame pass), for 8-bit planar YUV input. */
struct SwsContext;
struct media_gray_lut {
    int state;                        /* 0 not learnt, 1 usable, -1 use swscale */
    int width, height, format;        /* the frames it was learnt for */
    int linesize[AV_NUM_DATA_POINTERS];
    uint8_t map[256];
};
/* 1 when frames like f can be converted with the table (learning it through sws if needed). */
int media_gray_lut_ready(struct media_gray_lut *lut, struct SwsContext *sws, const AVFrame *f);
void media_gray_lut_apply(const struct media_gray_lut *lut, const AVFrame *f, uint8_t *dst);

#endif
