/*
 * The memory budget of one media input, enforced before FFmpeg allocates:
 *   - the stream-info probe is bounded (probesize) and its decoders get max_pixels and
 *     max_samples, so a probe never decodes a frame larger than the limits; in formats without
 *     a header (FLV, MPEG-PS/TS) the streams are found first, so that every stream has them;
 *   - every decoder of a pass gets a get_buffer2 guard that checks each frame's size
 *     before its buffer exists, so a size change in mid-stream is checked again;
 *   - when the probe could not size the video (it refused to decode a frame too large),
 *     the size is read by a decoder whose guard refuses every buffer: nothing is allocated;
 *   - what one decode call holds (samples and frames) is capped by max_decoded_bytes.
 * A refused frame is remembered in media->guard so that the pass ends with TOO_LARGE and
 * the frame's size, whatever error code the decoder turned the refusal into.
 */
#include "media/media_internal.h"

#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>

/* At most this many bytes are read (and buffered) while probing stream information. */
#define MEDIA_PROBE_BYTES 5000000
/* Samples of all channels in one decoded audio frame (a real frame holds a few thousand). */
#define MEDIA_MAX_FRAME_SAMPLES (1 << 22)
/* A pass decoder refuses by itself (ff_set_dimensions, before its per-size tables exist) frames
 * this many times over the pixel limit; the guard names those below it.  Measured: a switch to
 * 7680x4320 H.264 costs the server 28 MB before the guard refuses its first buffer. */
#define MEDIA_DECODER_PIXEL_FACTOR 16
/* Packets of the video stream read to learn a frame size the probe could not give. */
#define MEDIA_PEEK_PACKETS 64
/* Streams a file may declare: clips have one or two, films with dubs and subtitles a dozen.  Each
 * probed stream's decoder keeps its frames until the probe ends, so a file of a thousand video
 * streams would cost gigabytes before any check of ours.  FFmpeg itself stops creating streams
 * at MEDIA_MAX_STREAMS_CREATED (formats that add streams as packets come). */
#define MEDIA_MAX_STREAMS 32
#define MEDIA_MAX_STREAMS_CREATED 64
/* Packets the stream search reads at most besides MEDIA_PROBE_BYTES of them: a window of tiny
 * packets costs time, not memory. */
#define MEDIA_FIND_PACKETS 100000

/* The probe's bytes and the streams FFmpeg may create. */
void media_guard_probe_bounds(AVFormatContext *fmt)
{
    fmt->probesize = MEDIA_PROBE_BYTES;
    fmt->max_streams = MEDIA_MAX_STREAMS_CREATED;
}

/* Formats without a header create their streams as packets come, inside the probe, and
 * avformat_find_stream_info gives the decoders of streams it did not know at its start no
 * options: no max_pixels, so an 8K H.264 FLV was decoded there (+80 MB).  So the packets of
 * the probe window are read first, demuxed but not decoded, and the demuxer goes back to
 * its first packet: the probe then knows every stream. */
enum avemo_status media_guard_find_streams(avemo_media *media, struct avemo_error *err)
{
    AVFormatContext *fmt = media->fmt;
    /* A picture's demuxer has its one stream already, and image2 does not read its file again
     * after the byte seek back (the probe and the size peek then saw no packet: 0x0). */
    if (media->guard.picture) return AVEMO_OK;
    if (!(fmt->ctx_flags & AVFMTCTX_NOHEADER) || (fmt->iformat->flags & AVFMT_NO_BYTE_SEEK) || !fmt->pb ||
        !(fmt->pb->seekable & AVIO_SEEKABLE_NORMAL))
        return AVEMO_OK;
    AVPacket *pkt = av_packet_alloc();
    if (!pkt) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", media->name);
    int64_t bytes = 0;
    /* A read error ends the window, as it ends the probe: the probe meets it again and judges. */
    for (int n = 0; n < MEDIA_FIND_PACKETS && bytes < MEDIA_PROBE_BYTES && av_read_frame(fmt, pkt) >= 0; n++) {
        bytes += pkt->size;
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    /* A byte seek flushes what the demuxer buffered and starts again at its first packet. */
    int rc = av_seek_frame(fmt, -1, 0, AVSEEK_FLAG_BYTE);
    if (rc < 0) return media_fail_av(media, err, rc, "cannot return to the first packet");
    return AVEMO_OK;
}

enum avemo_status media_guard_probe_options(const avemo_media *media, AVDictionary ***out, unsigned *count,
                                            struct avemo_error *err)
{
    unsigned n = media->fmt->nb_streams;
    *out = NULL;
    *count = 0;
    if (n == 0) return AVEMO_OK;
    AVDictionary **opts = av_calloc(n, sizeof *opts);
    if (!opts) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", media->name);
    /* A picture's probe would decode the whole picture only to learn its size and format:
     * refused at once, the size comes from the peek (nothing allocated), and the picture is
     * decoded once, by the pass. */
    int64_t probe_pixels = media->guard.picture ? 1 : media->limits.max_pixels;
    int rc = 0;
    for (unsigned i = 0; i < n && rc >= 0; i++) {
        rc = av_dict_set_int(&opts[i], "max_pixels", probe_pixels, 0);
        if (rc >= 0) rc = av_dict_set_int(&opts[i], "max_samples", MEDIA_MAX_FRAME_SAMPLES, 0);
        if (rc >= 0) rc = av_dict_set(&opts[i], "threads", "1", 0);
    }
    if (rc < 0) {
        media_guard_free_options(&opts, n);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", media->name);
    }
    *out = opts;
    *count = n;
    return AVEMO_OK;
}

/* count: the streams the options were made for (the probe may add streams after). */
void media_guard_free_options(AVDictionary ***opts, unsigned count)
{
    if (!*opts) return;
    for (unsigned i = 0; i < count; i++) av_dict_free(&(*opts)[i]);
    av_freep(opts);
}

int media_frame_fits(const struct avemo_media_limits *lim, int width, int height)
{
    return width <= lim->max_width && height <= lim->max_height && (int64_t)width * height <= lim->max_pixels;
}

enum avemo_status media_frame_size_error(const avemo_media *media, int width, int height, struct avemo_error *err)
{
    const struct avemo_media_limits *lim = &media->limits;
    /* A video's frames are held with their reference frames, so its limit is 1080p-sized; what a
     * user with a 4K phone video can do is said in the message. */
    return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: %s %dx%d exceeds the limit of %dx%d (%lld pixels)%s", media->name,
                      media->guard.picture ? "picture" : "video frame", width, height, lim->max_width,
                      lim->max_height, (long long)lim->max_pixels,
                      media->guard.picture ? "" : "; scale it down first, e.g. ffmpeg -i IN -vf scale=-2:1080 OUT");
}

/* A picture's frame in bytes when its format makes it larger than the picture limit, else 0. */
static int64_t picture_too_many_bytes(const avemo_media *media, const AVFrame *frame)
{
    if (!media->guard.picture || media->limits.max_image_bytes <= 0) return 0;
    int64_t bytes = av_image_get_buffer_size(frame->format, frame->width, frame->height, 1);
    return bytes > media->limits.max_image_bytes ? bytes : 0;
}

/* get_buffer2: the size is known, the buffer does not exist yet. */
static int guard_get_buffer(AVCodecContext *dec, AVFrame *frame, int flags)
{
    avemo_media *media = dec->opaque;
    struct media_guard *g = &media->guard;
    if (dec->codec_type == AVMEDIA_TYPE_VIDEO) {
        int64_t bytes = g->peek ? 0 : picture_too_many_bytes(media, frame);
        if (g->peek || bytes || !media_frame_fits(&media->limits, frame->width, frame->height)) {
            g->width = frame->width;
            g->height = frame->height;
            g->bytes = bytes;
            g->refused = 1;
            return AVERROR(ERANGE);
        }
    }
    return avcodec_default_get_buffer2(dec, frame, flags);
}

/* get_format: the decoders with per-size tables (H.264, HEVC, MPEG-2, VP9, AV1, ...) ask for
 * the pixel format once they know a new size and before they size those tables. */
static enum AVPixelFormat guard_get_format(AVCodecContext *dec, const enum AVPixelFormat *formats)
{
    avemo_media *media = dec->opaque;
    struct media_guard *g = &media->guard;
    int width = dec->coded_width > dec->width ? dec->coded_width : dec->width;
    int height = dec->coded_height > dec->height ? dec->coded_height : dec->height;
    if (width > 0 && height > 0 && (g->peek || !media_frame_fits(&media->limits, width, height))) {
        g->width = width;
        g->height = height;
        g->bytes = 0;
        g->refused = 1;
        return AV_PIX_FMT_NONE;
    }
    return avcodec_default_get_format(dec, formats);
}

void media_guard_decoder(avemo_media *media, AVCodecContext *dec)
{
    dec->opaque = media;
    dec->get_buffer2 = guard_get_buffer;
    dec->get_format = guard_get_format;
    /* One thread (set by the callers): say so, so that FFmpeg does not warn that frame
     * threading would call these callbacks from several threads. */
    dec->thread_type &= ~FF_THREAD_FRAME;
    dec->max_samples = MEDIA_MAX_FRAME_SAMPLES;
    int64_t coarse = media->limits.max_pixels * MEDIA_DECODER_PIXEL_FACTOR;
    /* Not while peeking: the peek must see the size to name it (an image decoder allocates
     * only rows before its frame buffer). */
    if (!media->guard.peek && coarse > 0 && coarse < dec->max_pixels) dec->max_pixels = coarse;
}

enum avemo_status media_guard_check_declared(const avemo_media *media, struct avemo_error *err)
{
    const struct avemo_media_limits *lim = &media->limits;
    if (media->fmt->nb_streams > MEDIA_MAX_STREAMS)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: %u streams, more than the %d avemo reads", media->name,
                          media->fmt->nb_streams, MEDIA_MAX_STREAMS);
    for (unsigned i = 0; i < media->fmt->nb_streams; i++) {
        const AVStream *s = media->fmt->streams[i];
        const AVCodecParameters *par = s->codecpar;
        if (par->codec_type != AVMEDIA_TYPE_VIDEO || (s->disposition & AV_DISPOSITION_ATTACHED_PIC)) continue;
        if (par->width > 0 && par->height > 0 && !media_frame_fits(lim, par->width, par->height))
            return media_frame_size_error(media, par->width, par->height, err);
    }
    return AVEMO_OK;
}

enum avemo_status media_guard_refusal(const avemo_media *media, struct avemo_error *err)
{
    const struct media_guard *g = &media->guard;
    if (g->bytes)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: picture %dx%d takes %lld bytes decoded, over the limit of %lld",
                          media->name, g->width, g->height, (long long)g->bytes,
                          (long long)media->limits.max_image_bytes);
    return media_frame_size_error(media, g->width, g->height, err);
}

enum avemo_status media_guard_hold(avemo_media *media, int64_t release, int64_t take, struct avemo_error *err)
{
    struct media_guard *g = &media->guard;
    int64_t max = media->limits.max_decoded_bytes;
    if (g->held - release + take > max)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: the decoded audio and frames exceed the limit of %lld bytes",
                          media->name, (long long)max);
    g->held += take - release;
    return AVEMO_OK;
}

/* Feed packets of the video stream to a decoder that refuses every buffer: the first
 * refusal names the frame size. */
static void peek_packets(avemo_media *media, AVCodecContext *dec, AVPacket *pkt, AVFrame *frame)
{
    int packets = 0;
    while (!media->guard.refused && packets < MEDIA_PEEK_PACKETS && av_read_frame(media->fmt, pkt) >= 0) {
        if (pkt->stream_index == media->video_stream) {
            packets++;
            if (avcodec_send_packet(dec, pkt) >= 0)
                while (avcodec_receive_frame(dec, frame) >= 0) av_frame_unref(frame);
        }
        av_packet_unref(pkt);
    }
    if (!media->guard.refused && avcodec_send_packet(dec, NULL) >= 0)
        while (avcodec_receive_frame(dec, frame) >= 0) av_frame_unref(frame);
}

void media_guard_peek_size(avemo_media *media)
{
    const AVCodecParameters *par = media->fmt->streams[media->video_stream]->codecpar;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    AVCodecContext *dec = codec ? avcodec_alloc_context3(codec) : NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    if (dec && pkt && frame && avcodec_parameters_to_context(dec, par) >= 0) {
        dec->thread_count = 1;
        media->guard.peek = 1;
        media_guard_decoder(media, dec);
        media->guard.refused = 0;
        if (avcodec_open2(dec, codec, NULL) >= 0) peek_packets(media, dec, pkt, frame);
        media->guard.peek = 0;
        if (media->guard.refused) {
            media->info.width = media->guard.width;
            media->info.height = media->guard.height;
        }
        media->guard.refused = 0;
        media->fmt_fresh = 0; /* packets were read: the next pass reopens the demuxer */
    }
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
}
