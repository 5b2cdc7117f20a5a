/*
 * Decode passes over an opened media input, following FFmpeg's
 * doc/examples/demux_decode.c: read packets, send them to the decoder of their
 * stream, receive frames.  Audio goes through libswresample to mono float32 at
 * the requested rate (the same defaults as the ffmpeg program's auto-inserted
 * resampler, so the samples equal `ffmpeg -ac 1 -ar RATE -f f32le`); picked video
 * frames go through libswscale to RGB24 or GRAY8 at their native size.
 */
#include "media/media_internal.h"

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
#include <stdlib.h>
#include <string.h>

/* A decoded stream is judged truncated when it covers less than this part of
 * the duration its container declares. */
#define MEDIA_TRUNCATED_FRACTION 0.5
/* Give up on a stream after this many packets the decoder rejects. */
#define MEDIA_MAX_BAD_PACKETS 64
/* Decoded sound may run this far past max_duration_s: a clip declared at the limit can decode
 * a little longer (a codec's padding, a last frame past the declared end). */
#define MEDIA_DURATION_SLACK_S 0.5
/* The highest output rate a caller may ask for (8x 48 kHz). */
#define MEDIA_MAX_SAMPLE_RATE 384000

struct audio_pass {
    int stream;
    int out_rate;
    AVCodecContext *dec;
    SwrContext *swr;
    int in_format, in_rate, in_channels; /* what swr was set up for */
    float *buf;
    size_t count, cap;
    size_t handed;            /* samples already given to the sink (streaming), no longer in buf */
    avemo_audio_sink sink;    /* NULL: the pass keeps the whole sound in buf */
    void *sink_user;
    int stopped;              /* the sink asked to stop */
    int64_t max_samples;
    int bad_packets;
};

struct video_pass {
    int stream;
    int want;                 /* frames requested (0: all) */
    enum avemo_pixel_format format;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVFrame *converted;       /* swscale's output, with FFmpeg's aligned and padded rows */
    struct media_gray_lut gray;   /* GRAY8 output without a swscale pass per frame */
    int64_t *targets;         /* sorted frame indices to keep */
    int ntargets;
    int next;                 /* next target to reach */
    int64_t decoded;          /* frames decoded so far */
    struct avemo_frames *out;
    int bad_packets;
    int done;
    struct media_plan plan;   /* packets that may be skipped (media_plan.c) */
    int plan_failed;          /* the plan did not hold: decode again without one */
};

/* --- decoders -------------------------------------------------------------- */

static enum avemo_status open_decoder(avemo_media *media, int stream, AVCodecContext **out, struct avemo_error *err)
{
    const AVCodecParameters *par = media->fmt->streams[stream]->codecpar;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: no decoder for codec '%s'", media->name,
                          avcodec_get_name(par->codec_id));
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    if (!dec) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate a decoder", media->name);
    int rc = avcodec_parameters_to_context(dec, par);
    /* One thread per decoder: the service runs requests in parallel already,
     * and a single thread gives the same frames as the ffmpeg program. */
    dec->thread_count = 1;
    dec->pkt_timebase = media->fmt->streams[stream]->time_base;
    media_guard_decoder(media, dec); /* every frame's size is checked before its buffer exists */
    if (rc >= 0) rc = avcodec_open2(dec, codec, NULL);
    if (rc < 0) {
        avcodec_free_context(&dec);
        return media_fail_av(media, err, rc, "cannot open the decoder");
    }
    *out = dec;
    return AVEMO_OK;
}

/* --- audio ----------------------------------------------------------------- */

static enum avemo_status audio_reserve(avemo_media *media, struct audio_pass *a, size_t extra, struct avemo_error *err)
{
    size_t need = a->count + extra;
    if ((int64_t)need > a->max_samples)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: decoded audio exceeds the limit of %lld samples",
                          media->name, (long long)a->max_samples);
    if (need <= a->cap) return AVEMO_OK;
    size_t cap = a->cap ? a->cap : 65536;
    while (cap < need) cap *= 2;
    enum avemo_status st =
        media_guard_hold(media, (int64_t)(a->cap * sizeof(float)), (int64_t)(cap * sizeof(float)), err);
    if (st) return st;
    float *bigger = realloc(a->buf, cap * sizeof(float));
    if (!bigger) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %zu samples", media->name, cap);
    a->buf = bigger;
    a->cap = cap;
    return AVEMO_OK;
}

/* swresample's own limit (SWR_CH_MAX) */
#define AUDIO_MAX_CHANNELS 64

static enum avemo_status audio_setup_resampler(avemo_media *media, struct audio_pass *a, const AVFrame *frame,
                                               struct avemo_error *err)
{
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    /* Zeroed: av_channel_layout_copy first uninits its destination, which frees the map of a
     * custom layout (stack garbage made it free a wild pointer; seen by fuzz_media_replay). */
    AVChannelLayout in_layout = {0};
    /* Some decoders leave the layout unspecified: take the default for the channel count. */
    if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in_layout, frame->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&in_layout, &frame->ch_layout) < 0)
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", media->name);
    if (a->out_rate == 0) a->out_rate = frame->sample_rate;
    int rc = swr_alloc_set_opts2(&a->swr, &mono, AV_SAMPLE_FMT_FLT, a->out_rate, &in_layout, frame->format,
                                 frame->sample_rate, 0, NULL);
    int channels = in_layout.nb_channels, unordered = in_layout.order == AV_CHANNEL_ORDER_UNSPEC;
    av_channel_layout_uninit(&in_layout);
    if (rc >= 0 && unordered && channels > 1) {
        /* No known layout for this many channels (a WAV may declare 33): FFmpeg cannot
         * derive a downmix, so every channel counts equally. */
        if (channels > AUDIO_MAX_CHANNELS)
            return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: audio with %d channels (at most %d)", media->name,
                              channels, AUDIO_MAX_CHANNELS);
        double weights[AUDIO_MAX_CHANNELS];
        for (int c = 0; c < channels; c++) weights[c] = 1.0 / channels;
        rc = swr_set_matrix(a->swr, weights, channels);
    }
    if (rc >= 0) rc = swr_init(a->swr);
    if (rc == AVERROR(EINVAL))
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: cannot mix %d audio channels at %d Hz down to mono",
                          media->name, channels, frame->sample_rate);
    if (rc < 0) return media_fail_av(media, err, rc, "cannot set up the audio resampler");
    return AVEMO_OK;
}

/* max_duration_s bounds the sound a decode returns too: a file that understates its duration
 * (FLV metadata, a WAV header) would else be decoded up to max_samples (653 s at 22050 Hz). */
static enum avemo_status audio_check_duration(const avemo_media *media, const struct audio_pass *a,
                                              struct avemo_error *err)
{
    double limit = media->limits.max_duration_s;
    if (!(a->out_rate > 0) || (double)(a->handed + a->count) <= (limit + MEDIA_DURATION_SLACK_S) * a->out_rate)
        return AVEMO_OK;
    return avemo_fail(err, AVEMO_ERR_TOO_LONG, "%s: the audio runs past the limit of %.1f s (the file declares %.1f s)",
                      media->name, limit, media->info.duration_s);
}

/* Streaming: what buf holds goes to the sink, and buf starts again.  The sink's time is the
 * caller's, not the file's, so the decode deadline moves by it. */
static enum avemo_status audio_hand_over(avemo_media *media, struct audio_pass *a, struct avemo_error *err)
{
    if (!a->sink || a->count == 0 || a->stopped) return AVEMO_OK;
    double t0 = avemo_now();
    enum avemo_status st = a->sink(a->sink_user, a->buf, a->count, &a->stopped, err);
    media->decode_deadline += avemo_now() - t0;
    a->handed += a->count;
    a->count = 0;
    return st;
}

/* Resample `frame` (NULL: drain the resampler) onto the end of a->buf. */
static enum avemo_status audio_resample(avemo_media *media, struct audio_pass *a, const AVFrame *frame,
                                        struct avemo_error *err)
{
    if (!a->swr) return AVEMO_OK;
    int in = frame ? frame->nb_samples : 0;
    int64_t room = swr_get_out_samples(a->swr, in);
    if (room < 0) return media_fail_av(media, err, (int)room, "audio resampler");
    enum avemo_status st = audio_reserve(media, a, (size_t)room + 1, err);
    if (st) return st;
    uint8_t *outp = (uint8_t *)(a->buf + a->count);
    int got = swr_convert(a->swr, &outp, (int)room + 1, frame ? (const uint8_t **)frame->extended_data : NULL, in);
    if (got < 0) return media_fail_av(media, err, got, "audio resampling failed");
    a->count += (size_t)got;
    st = audio_check_duration(media, a, err);
    return st ? st : audio_hand_over(media, a, err);
}

static enum avemo_status audio_take_frame(avemo_media *media, struct audio_pass *a, const AVFrame *frame,
                                          struct avemo_error *err)
{
    if (!a->swr) {
        enum avemo_status st = audio_setup_resampler(media, a, frame, err);
        if (st) return st;
        a->in_format = frame->format, a->in_rate = frame->sample_rate;
        a->in_channels = frame->ch_layout.nb_channels;
    }
    /* swresample reads the planes it was set up for: a frame of another shape (a damaged or
     * hostile stream that changes format mid-way) would make it read past them. */
    if (frame->format != a->in_format || frame->sample_rate != a->in_rate ||
        frame->ch_layout.nb_channels != a->in_channels)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: the audio changes format mid-stream (%d Hz, %d channels, then "
                          "%d Hz, %d channels)", media->name, a->in_rate, a->in_channels, frame->sample_rate,
                          frame->ch_layout.nb_channels);
    return audio_resample(media, a, frame, err);
}

/* --- video ----------------------------------------------------------------- */

static enum avemo_status video_check_size(avemo_media *media, const AVFrame *f, struct avemo_error *err)
{
    const struct avemo_media_limits *lim = &media->limits;
    if (f->width <= 0 || f->height <= 0)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: decoded a frame of size %dx%d", media->name, f->width,
                          f->height);
    if (!media_frame_fits(lim, f->width, f->height)) return media_frame_size_error(media, f->width, f->height, err);
    return AVEMO_OK;
}

/* swscale's SIMD writes whole blocks of pixels: past the end of a row whose width is not a
 * multiple of the block (a 360-pixel-wide video), past the end of a packed buffer on the last
 * row.  So it writes into a frame FFmpeg allocates with aligned, padded rows, as the ffmpeg
 * program does, and the rows are copied out packed. */
static enum avemo_status video_convert(avemo_media *media, struct video_pass *v, const AVFrame *f,
                                       enum AVPixelFormat dst_fmt, uint8_t *data, struct avemo_error *err)
{
    AVFrame *c = v->converted;
    if (!c || c->width != f->width || c->height != f->height || c->format != dst_fmt) {
        av_frame_free(&v->converted);
        c = v->converted = av_frame_alloc();
        if (!c) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", media->name);
        c->width = f->width;
        c->height = f->height;
        c->format = dst_fmt;
        int rc = av_frame_get_buffer(c, 0);
        if (rc < 0) return media_fail_av(media, err, rc, "cannot allocate a frame");
    }
    sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, c->data, c->linesize);
    size_t row = (size_t)f->width * (dst_fmt == AV_PIX_FMT_RGB24 ? 3 : 1);
    for (int y = 0; y < f->height; y++) memcpy(data + (size_t)y * row, c->data[0] + (size_t)y * c->linesize[0], row);
    return AVEMO_OK;
}

static enum avemo_status video_store_frame(avemo_media *media, struct video_pass *v, const AVFrame *f,
                                           struct avemo_error *err)
{
    enum avemo_status st = video_check_size(media, f, err);
    if (st) return st;
    int channels = v->format == AVEMO_PIX_RGB24 ? 3 : 1;
    enum AVPixelFormat dst_fmt = v->format == AVEMO_PIX_RGB24 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_GRAY8;
    /* Bicubic, as the ffmpeg program's default scaler, so frames match its -pix_fmt output. */
    v->sws = sws_getCachedContext(v->sws, f->width, f->height, f->format, f->width, f->height, dst_fmt, SWS_BICUBIC,
                                  NULL, NULL, NULL);
    if (!v->sws)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: cannot convert pixel format '%s'", media->name,
                          av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
    size_t bytes = (size_t)f->width * (size_t)f->height * (size_t)channels;
    if ((st = media_guard_hold(media, 0, (int64_t)bytes, err))) return st;
    uint8_t *data = malloc(bytes);
    if (!data) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate a %dx%d frame", media->name, f->width,
                                 f->height);
    if (v->format == AVEMO_PIX_GRAY8 && media_gray_lut_ready(&v->gray, v->sws, f))
        media_gray_lut_apply(&v->gray, f, data);
    else if ((st = video_convert(media, v, f, dst_fmt, data, err))) {
        free(data);
        return st;
    }

    struct avemo_frames *out = v->out;
    struct avemo_frame *fr = &out->frames[out->count++];
    const AVStream *s = media->fmt->streams[v->stream];
    int64_t start = s->start_time == AV_NOPTS_VALUE ? 0 : s->start_time;
    int64_t pts = f->best_effort_timestamp;
    fr->width = f->width;
    fr->height = f->height;
    fr->channels = channels;
    fr->index = v->decoded;
    fr->time_s = pts == AV_NOPTS_VALUE ? 0 : (double)(pts - start) * av_q2d(s->time_base);
    fr->data = data;
    st = media_turn_frame(media, fr, media_frame_rotation(f, media->info.rotation), err);
    if (!st && media->sink) st = media->sink(media->sink_user, media->sink_pass, out->count - 1, fr, err);
    return st;
}

static enum avemo_status video_take_frame(avemo_media *media, struct video_pass *v, const AVFrame *f,
                                          struct avemo_error *err)
{
    enum avemo_status st = AVEMO_OK;
    if (v->want == 0) {
        if (v->out->count >= media->limits.max_frames)
            return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %d video frames", media->name,
                              media->limits.max_frames);
        st = video_store_frame(media, v, f, err);
    } else {
        if (v->plan.skipping) {
            /* Skipped pictures never come out: a frame's index is the rank of its time. */
            int64_t rank = media_plan_rank(&v->plan, f->pts);
            if (rank < v->decoded) {
                v->plan_failed = 1;
                return AVEMO_ERR_INTERNAL;
            }
            v->decoded = rank;
        }
        /* Several targets may name one frame when the clip has fewer frames than asked. */
        while (!st && v->next < v->ntargets && v->targets[v->next] == v->decoded) {
            st = video_store_frame(media, v, f, err);
            v->next++;
        }
        if (v->next >= v->ntargets) v->done = 1;
    }
    v->decoded++;
    return st;
}

/* --- the pass -------------------------------------------------------------- */

/* Send one packet (NULL: flush) to dec and hand every decoded frame to the sink. */
static enum avemo_status decode_packet(avemo_media *media, AVCodecContext *dec, const AVPacket *pkt, AVFrame *frame,
                                       int *bad_packets, struct audio_pass *a, struct video_pass *v,
                                       struct avemo_error *err)
{
    int rc = avcodec_send_packet(dec, pkt);
    /* The guard refused a frame: whatever the decoder made of that, the answer is its size. */
    if (media->guard.refused) return media_guard_refusal(media, err);
    if (rc == AVERROR_INVALIDDATA) {
        /* Like the ffmpeg program, skip a damaged packet, but not forever. */
        if (++*bad_packets > MEDIA_MAX_BAD_PACKETS)
            return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: too many undecodable packets", media->name);
        return AVEMO_OK;
    }
    if (rc < 0 && rc != AVERROR_EOF) return media_fail_av(media, err, rc, "decoding failed");
    for (;;) {
        rc = avcodec_receive_frame(dec, frame);
        if (media->guard.refused) return media_guard_refusal(media, err);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return AVEMO_OK;
        if (rc == AVERROR_INVALIDDATA) {
            if (++*bad_packets > MEDIA_MAX_BAD_PACKETS)
                return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: too many undecodable frames", media->name);
            continue;
        }
        if (rc < 0) return media_fail_av(media, err, rc, "decoding failed");
        enum avemo_status st = a ? audio_take_frame(media, a, frame, err) : video_take_frame(media, v, frame, err);
        av_frame_unref(frame);
        if (st) return st;
    }
}

static enum avemo_status run_pass(avemo_media *media, struct audio_pass *a, struct video_pass *v,
                                  struct avemo_error *err)
{
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    if (!pkt || !frame) {
        av_packet_free(&pkt);
        av_frame_free(&frame);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", media->name);
    }
    media->fmt_fresh = 0;
    enum avemo_status st = AVEMO_OK;
    int audio_open = a->stream >= 0, keep, rc = 0;
    while (!st && !a->stopped && !(!audio_open && (v->stream < 0 || v->done)) &&
           (rc = media_plan_next(media, &v->plan, pkt, &keep)) >= 0) {
        if (avemo_now() > media->decode_deadline) /* TIMEOUT, not TOO_LARGE: it depends on the load */
            st = avemo_fail(err, AVEMO_ERR_TIMEOUT, "%s: decoding takes more than %g s (media limit max_decode_s)",
                            media->name, media->limits.max_decode_s);
        else if (audio_open && pkt->stream_index == a->stream) {
            st = decode_packet(media, a->dec, pkt, frame, &a->bad_packets, a, NULL, err);
        } else if (v->stream >= 0 && !v->done && pkt->stream_index == v->stream) {
            v->dec->skip_frame = keep ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
            st = decode_packet(media, v->dec, pkt, frame, &v->bad_packets, NULL, v, err);
        }
        av_packet_unref(pkt);
    }
    /* A read that failed is not the end of the clip: the part before it would pass for the whole
     * (the truncation check after the pass catches only less than half). */
    if (!st && (rc = media_read_error(media, rc)) < 0) st = media_fail_av(media, err, rc, "cannot read packets");
    /* Drain what the decoders and the resampler still hold. */
    if (!st && audio_open && !a->stopped) st = decode_packet(media, a->dec, NULL, frame, &a->bad_packets, a, NULL, err);
    if (!st && audio_open && !a->stopped) st = audio_resample(media, a, NULL, err);
    if (!st && v->stream >= 0 && !v->done) st = decode_packet(media, v->dec, NULL, frame, &v->bad_packets, NULL, v, err);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    return st;
}

/* --- checks after a pass --------------------------------------------------- */

static enum avemo_status check_audio_result(avemo_media *media, const struct audio_pass *a, struct avemo_error *err)
{
    if (a->stopped) return AVEMO_OK; /* the sink had what it wanted */
    size_t total = a->handed + a->count;
    if (total == 0)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: no audio could be decoded from the %s stream", media->name,
                          media->info.audio_codec);
    double got = (double)total / a->out_rate;
    double declared = media->info.audio_duration_s > 0 ? media->info.audio_duration_s : media->info.duration_s;
    if (declared > 0.2 && got < MEDIA_TRUNCATED_FRACTION * declared)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated: decoded %.2f s of audio of the %.2f s declared",
                          media->name, got, declared);
    return AVEMO_OK;
}

static enum avemo_status check_video_result(avemo_media *media, const struct video_pass *v, struct avemo_error *err)
{
    /* FFmpeg's WebP decoder reads animated WebP only from libavcodec 61.19 (FFmpeg 7.1) on; before,
     * an animation (a sticker, a GIF converted by a website) decodes to nothing at all. */
    int old_webp = LIBAVCODEC_VERSION_INT < AV_VERSION_INT(61, 19, 100) && strcmp(media->info.video_codec, "webp") == 0;
    if (v->decoded == 0)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: no video frame could be decoded from the %s stream%s", media->name,
                          media->info.video_codec,
                          old_webp ? " (this FFmpeg decodes still WebP pictures, not animated ones: convert it to GIF or MP4)" : "");
    int64_t declared = media->info.frame_count;
    if (declared > 4 && v->decoded < MEDIA_TRUNCATED_FRACTION * (double)declared && !v->done)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated: decoded %lld video frames of the %lld declared",
                          media->name, (long long)v->decoded, (long long)declared);
    return AVEMO_OK;
}

/* --- public API ------------------------------------------------------------ */

void avemo_media_pick_frames(int64_t total, int count, int64_t *index)
{
    for (int i = 0; i < count; i++) {
        int64_t k = (int64_t)(((double)i + 0.5) * (double)total / count);
        index[i] = k < total ? k : total - 1;
    }
}

void avemo_audio_free(struct avemo_audio *audio)
{
    if (!audio) return;
    free(audio->samples);
    audio->samples = NULL;
    audio->count = 0;
}

void avemo_frames_free(struct avemo_frames *frames)
{
    if (!frames) return;
    for (int i = 0; i < frames->count; i++) free(frames->frames[i].data);
    free(frames->frames);
    frames->frames = NULL;
    frames->count = 0;
}

static void release_pass(struct audio_pass *a, struct video_pass *v)
{
    avcodec_free_context(&a->dec);
    swr_free(&a->swr);
    free(a->buf);
    avcodec_free_context(&v->dec);
    sws_freeContext(v->sws);
    av_frame_free(&v->converted);
    free(v->targets);
    media_plan_free(&v->plan);
    a->buf = NULL;
    v->targets = NULL;
    v->sws = NULL;
}

static enum avemo_status prepare_video(avemo_media *media, struct video_pass *v, int count, int64_t total,
                                       struct avemo_error *err)
{
    int slots = count ? count : media->limits.max_frames;
    avemo_frames_free(v->out);
    v->out->frames = calloc((size_t)slots, sizeof(struct avemo_frame));
    if (count) v->targets = malloc(sizeof(int64_t) * (size_t)count);
    if (!v->out->frames || (count && !v->targets))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %d frames", media->name, slots);
    if (count) avemo_media_pick_frames(total, count, v->targets);
    v->ntargets = count;
    v->want = count;
    return AVEMO_OK;
}

/* From the start of the file, with a decoder for each stream the pass reads. */
static enum avemo_status begin_pass(avemo_media *media, struct audio_pass *a, struct video_pass *v,
                                    struct avemo_error *err)
{
    a->max_samples = media->limits.max_samples;
    media->guard.held = 0;
    media->guard.refused = 0;
    media->sink_pass++;
    enum avemo_status st = media_rewind(media, err);
    if (!st && a->stream >= 0) st = open_decoder(media, a->stream, &a->dec, err);
    if (!st && v->stream >= 0) st = open_decoder(media, v->stream, &v->dec, err);
    return st;
}

/* One decode pass with the given requests; fills audio and/or frames.  With may_plan, frames
 * that are not sampled may be skipped (media_plan.c); *plan_failed says when that did not hold
 * and the pass has to be made again without. */
static enum avemo_status decode_once(avemo_media *media, int sample_rate, struct avemo_audio *audio, int count,
                                     enum avemo_pixel_format format, struct avemo_frames *frames, int64_t total,
                                     int may_plan, int *plan_failed, int *short_of_frames, struct avemo_error *err)
{
    struct audio_pass a = {.stream = audio ? media->audio_stream : -1, .out_rate = sample_rate};
    struct video_pass v = {.stream = frames ? media->video_stream : -1, .format = format, .out = frames};
    enum avemo_status st = begin_pass(media, &a, &v, err);
    if (!st && v.stream >= 0) st = prepare_video(media, &v, count, total, err);
    if (!st && may_plan && media_plan_eligible(media, v.stream, count))
        media_plan_build(media, v.stream, v.targets, v.ntargets, &v.plan);
    if (!st) st = run_pass(media, &a, &v, err);
    /* A plan must give every sampled frame, in order; else the caller decodes without one. */
    *plan_failed = v.plan_failed || (!st && v.plan.skipping && !v.done);
    if (*plan_failed) {
        release_pass(&a, &v);
        return AVEMO_OK;
    }
    if (!st && a.stream >= 0) st = check_audio_result(media, &a, err);
    if (!st && v.stream >= 0) st = check_video_result(media, &v, err);
    *short_of_frames = !st && v.stream >= 0 && count && !v.done ? (int)v.decoded : 0;
    if (!st && audio) {
        audio->samples = a.buf;
        audio->count = a.count;
        audio->sample_rate = a.out_rate;
        a.buf = NULL;
    }
    release_pass(&a, &v);
    return st;
}

static enum avemo_status check_rate(const avemo_media *media, int sample_rate, struct avemo_error *err)
{
    if (sample_rate >= 0 && sample_rate <= MEDIA_MAX_SAMPLE_RATE) return AVEMO_OK;
    return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: sample rate %d out of range", media->name, sample_rate);
}

static enum avemo_status no_audio_stream(const avemo_media *media, struct avemo_error *err)
{
    return avemo_fail(err, AVEMO_ERR_NO_AUDIO, "%s: no audio stream (the file has %s video only)", media->name,
                      media->info.video_codec);
}

enum avemo_status avemo_media_decode_av(avemo_media *media, int sample_rate, struct avemo_audio *audio, int count,
                                        enum avemo_pixel_format format, struct avemo_frames *frames,
                                        struct avemo_error *err)
{
    if (audio) memset(audio, 0, sizeof *audio);
    if (frames) memset(frames, 0, sizeof *frames);
    enum avemo_status st = check_rate(media, sample_rate, err);
    if (st) return st;
    if (frames && (count < 0 || count > media->limits.max_frames))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: frame count %d out of range 0..%d", media->name, count,
                          media->limits.max_frames);
    if (frames && format != AVEMO_PIX_RGB24 && format != AVEMO_PIX_GRAY8)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: unknown pixel format %d", media->name, (int)format);
    if (audio && media->audio_stream < 0) return no_audio_stream(media, err);
    if (frames && media->video_stream < 0)
        return avemo_fail(err, AVEMO_ERR_NO_VIDEO, "%s: no video stream (the file has %s audio only)", media->name,
                          media->info.audio_codec);
    int short_of = 0, plan_failed = 0;
    media->decode_deadline = avemo_now() + media->limits.max_decode_s;
    st = decode_once(media, sample_rate, audio, count, format, frames, media->info.frame_count, 1, &plan_failed,
                     &short_of, err);
    if (!st && plan_failed) {
        avemo_frames_free(frames);
        st = decode_once(media, sample_rate, audio, count, format, frames, media->info.frame_count, 0, &plan_failed,
                         &short_of, err);
    }
    if (!st && short_of > 0) {
        /* The container overstated its frame count: pick again over the frames that exist. */
        avemo_audio_free(audio);
        st = decode_once(media, sample_rate, audio, count, format, frames, short_of, 0, &plan_failed, &short_of, err);
    }
    if (st) {
        avemo_audio_free(audio);
        avemo_frames_free(frames);
    }
    return st;
}

void avemo_media_set_frame_sink(avemo_media *media, avemo_frame_sink sink, void *user)
{
    media->sink = sink;
    media->sink_user = user;
}

enum avemo_status avemo_media_decode_audio(avemo_media *media, int sample_rate, struct avemo_audio *audio,
                                           struct avemo_error *err)
{
    return avemo_media_decode_av(media, sample_rate, audio, 0, AVEMO_PIX_RGB24, NULL, err);
}

enum avemo_status avemo_media_decode_frames(avemo_media *media, int count, enum avemo_pixel_format format,
                                            struct avemo_frames *frames, struct avemo_error *err)
{
    return avemo_media_decode_av(media, 0, NULL, count, format, frames, err);
}

enum avemo_status avemo_media_stream_audio(avemo_media *media, int sample_rate, avemo_audio_sink sink, void *user,
                                           struct avemo_error *err)
{
    if (!sink) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no sink for the sound", media->name);
    enum avemo_status st = check_rate(media, sample_rate, err);
    if (st) return st;
    if (media->audio_stream < 0) return no_audio_stream(media, err);
    media->decode_deadline = avemo_now() + media->limits.max_decode_s;
    struct audio_pass a = {.stream = media->audio_stream, .out_rate = sample_rate, .sink = sink, .sink_user = user};
    struct video_pass v = {.stream = -1};
    st = begin_pass(media, &a, &v, err);
    if (!st) st = run_pass(media, &a, &v, err);
    if (!st) st = check_audio_result(media, &a, err);
    release_pass(&a, &v);
    return st;
}
