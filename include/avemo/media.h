/*
 * avemo media: open a clip, an audio file or an image with FFmpeg's
 * libraries in process, from a path or from memory, and decode
 *   - the best audio stream to mono float32 at a requested sample rate;
 *   - K video frames evenly spaced over the clip (or all frames) as RGB24 or GRAY8.
 *
 * Every size that comes from the file is checked against struct avemo_media_limits.
 * A struct avemo_media is used by one thread at a time; open one per request.
 */
#ifndef AVEMO_MEDIA_H
#define AVEMO_MEDIA_H

#include <avemo/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on what a file may make us allocate or decode. */
struct avemo_media_limits {
    int64_t max_file_bytes;   /* input size in bytes (default 512 MiB) */
    double max_duration_s;    /* container or stream duration, and the sound a decode returns
                               * (default 300 s; a file that declares less and runs longer is
                               * refused with AVEMO_ERR_TOO_LONG at 0.5 s past the limit) */
    int max_width;            /* video frame width (default 2048) */
    int max_height;           /* video frame height (default 2048) */
    int64_t max_pixels;       /* width * height (default 1920 * 1088) */
    int max_image_side;       /* a still picture's width and height (default 8192) and */
    int64_t max_image_pixels; /* ... width * height (default 4096 * 4096, as avemo's JPEG reader):
                               * a picture opened by one of FFmpeg's image demuxers (PNG, WebP,
                               * BMP, TIFF ...) is one frame with nothing decoded before it, so
                               * it may be as large as a phone photo or a screenshot; 0: the
                               * video frame limits above */
    int64_t max_image_bytes;  /* ... and its decoded frame in bytes (default 64 MiB: 16-bit and
                               * float formats take 2-4x the bytes of 8-bit RGBA) */
    int64_t max_samples;      /* decoded audio samples after resampling (default 300 s at 48 kHz) */
    int max_frames;           /* frames returned by one decode (default 10000) */
    int64_t max_decoded_bytes; /* audio samples and frames one decode call holds (default 256 MiB;
                                * 0: the default) */
    double max_decode_s;      /* wall-clock seconds one decode call may take (default 60; 0: the
                               * default): a small file can hold many frames that cost time
                               * (a sample table pointing at the same bytes again and again).
                               * Past it the call fails with AVEMO_ERR_TIMEOUT, not TOO_LARGE:
                               * the time depends on the machine's load as much as on the file */
};

void avemo_media_limits_default(struct avemo_media_limits *limits);

/* Options for opening.  All fields may be zero/NULL. */
struct avemo_media_open_options {
    const char *format;      /* forced input format, e.g. "f32le" (like ffmpeg -f) */
    const char *options;     /* demuxer options "key=value:key=value", e.g. "sample_rate=22050:ch_layout=mono" */
    const char *name;        /* the name used in messages for a memory input */
    const struct avemo_media_limits *limits; /* NULL: defaults */
};

typedef struct avemo_media avemo_media;

enum avemo_status avemo_media_open_file(const char *path, const struct avemo_media_open_options *opt,
                                        avemo_media **out, struct avemo_error *err);
/* The memory must stay valid until avemo_media_close(). */
enum avemo_status avemo_media_open_memory(const void *data, size_t size,
                                          const struct avemo_media_open_options *opt,
                                          avemo_media **out, struct avemo_error *err);
void avemo_media_close(avemo_media *media);

/* The name used in messages (the path, or the memory input's name). */
const char *avemo_media_name(const avemo_media *media);

struct avemo_media_info {
    char container[64];      /* demuxer name, e.g. "flv" */
    char container_long[128];
    double duration_s;       /* 0 when unknown */
    int64_t size_bytes;
    int64_t bit_rate;
    int has_audio;
    char audio_codec[64];
    int sample_rate;
    int channels;
    double audio_duration_s;
    int has_video;
    char video_codec[64];
    int width;               /* the stored pictures' size; frames come out turned by rotation */
    int height;
    int rotation;            /* clockwise degrees (0, 90, 180, 270) that show the video upright,
                              * from its display matrix (a phone's portrait video): decoded frames
                              * come out turned, as a player shows them */
    double fps;              /* average frame rate, 0 when unknown */
    int64_t frame_count;     /* from the container, or estimated from duration * fps */
    int frame_count_exact;   /* 1 when the container states it */
};

enum avemo_status avemo_media_get_info(const avemo_media *media, struct avemo_media_info *info);

/* Decoded audio: mono float32 samples in [-1, 1]. */
struct avemo_audio {
    float *samples;
    size_t count;
    int sample_rate;
};

/* Decode the best audio stream, downmixed to mono and resampled to sample_rate
 * (0: the stream's own rate) exactly as `ffmpeg -ac 1 -ar RATE -f f32le` does. */
enum avemo_status avemo_media_decode_audio(avemo_media *media, int sample_rate,
                                           struct avemo_audio *audio, struct avemo_error *err);
void avemo_audio_free(struct avemo_audio *audio);

/* Told of each stretch of sound avemo_media_stream_audio decodes, in order: `count` mono float32
 * samples at the pass's rate, valid during the call only.  Setting *stop ends the pass early
 * (it then returns AVEMO_OK); a status other than AVEMO_OK ends it with that failure. */
typedef enum avemo_status (*avemo_audio_sink)(void *user, const float *samples, size_t count, int *stop,
                                              struct avemo_error *err);
/* Decode the best audio stream as avemo_media_decode_audio does (the same samples), handing
 * it to sink as it comes instead of returning it whole: what it holds stays one decoded
 * frame's worth whatever the length, so a caller that follows a long recording opens it with
 * a larger max_duration_s (which still bounds the sound) without holding it all.  The time the
 * sink takes does not count towards max_decode_s. */
enum avemo_status avemo_media_stream_audio(avemo_media *media, int sample_rate, avemo_audio_sink sink, void *user,
                                           struct avemo_error *err);

enum avemo_pixel_format { AVEMO_PIX_RGB24 = 0, AVEMO_PIX_GRAY8 = 1 };

struct avemo_frame {
    int width, height, channels;   /* channels: 3 for RGB24, 1 for GRAY8 */
    int64_t index;                 /* 0-based index of the frame in decode order */
    double time_s;                 /* presentation time from the stream start */
    uint8_t *data;                 /* height * width * channels bytes, rows packed */
};

struct avemo_frames {
    struct avemo_frame *frames;
    int count;
};

/* Decode `count` frames evenly spaced over the clip (frame i is the one nearest
 * to the middle of the i-th of `count` equal parts), or every frame when count
 * is 0.  Decoding stops after the last frame needed. */
enum avemo_status avemo_media_decode_frames(avemo_media *media, int count,
                                            enum avemo_pixel_format format,
                                            struct avemo_frames *frames, struct avemo_error *err);
void avemo_frames_free(struct avemo_frames *frames);

/* Decode audio and frames in one pass over the file (what `avemo classify`
 * needs): cheaper than two passes for interleaved clips.  Either request may be
 * skipped by passing NULL for its output. */
enum avemo_status avemo_media_decode_av(avemo_media *media, int sample_rate, struct avemo_audio *audio,
                                        int count, enum avemo_pixel_format format,
                                        struct avemo_frames *frames, struct avemo_error *err);

/* Told of each frame avemo_media_decode_av keeps (the sampled ones; every one for count 0) as
 * soon as it has it, in order, on the thread that decodes: what lets a caller search early frames
 * for faces while later ones decode.  A pass made again (a skip plan that did not hold, a
 * container that overstated its frame count) starts from slot 0 with a higher pass number: what
 * the sink kept of an earlier pass no longer holds.  The frame stays the decoder's: copy what is
 * kept.  A status other than AVEMO_OK (with err set) stops the decoding with it.  A NULL sink:
 * none (the default). */
typedef enum avemo_status (*avemo_frame_sink)(void *user, int pass, int slot, const struct avemo_frame *frame,
                                              struct avemo_error *err);
void avemo_media_set_frame_sink(avemo_media *media, avemo_frame_sink sink, void *user);

/* Indices of `count` frames spread evenly over `total` frames (shared by the
 * decoder and the tests): index[i] = floor((i + 0.5) * total / count). */
void avemo_media_pick_frames(int64_t total, int count, int64_t *index);

/* What a recording sounds like after a lossy codec: encode n mono float samples at `rate` with
 * FFmpeg's audio encoder `encoder` ("libmp3lame", "libopus", "libgsm", ...) at bit_rate bit/s
 * (0: the encoder's default) and decode them back to float at `rate`.  The encoder runs at
 * `rate` when it takes it, else at the nearest rate it takes (GSM: 8 kHz).  Its priming samples
 * are cut, so the output lines up with the input; out receives at most cap samples, *out_n
 * says how many.  AVEMO_ERR_UNSUPPORTED names an encoder this FFmpeg lacks.  Training's codec
 * augmentation (augment.codec) calls it; nothing touches the disk. */
enum avemo_status avemo_media_codec_roundtrip(const float *in, size_t n, int rate, const char *encoder, int bit_rate,
                                              float *out, size_t cap, size_t *out_n, struct avemo_error *err);

/* 1 when the input is one still picture (PNG, BMP, TIFF, WebP, JPEG ... opened by one of
 * FFmpeg's image demuxers, with no sound): decode it as one frame, not as a clip. */
int avemo_media_is_still_image(const avemo_media *media);

/* Whole-clip facts as a JSON text (malloc'ed), as `avemo probe --json` prints. */
enum avemo_status avemo_media_info_json(const avemo_media *media, char **json, struct avemo_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_MEDIA_H */
