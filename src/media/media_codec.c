/*
 * Codec round trip: encode mono float samples with one of FFmpeg's audio encoders and decode
 * them back (avemo_media_codec_roundtrip).  Training uses it to let a model hear what a
 * recording sounds like after MP3, Opus or GSM; nothing is written to disk.
 *
 * The path: float at `rate` -> swresample -> the encoder's sample format and a rate it supports
 * -> encoder -> packets -> the codec's decoder -> swresample -> float at `rate`.  The decoder
 * drops the encoder's priming samples (they travel as skip-samples side data), so the output
 * lines up with the input.
 */
#include "media/media_internal.h"

#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>

/* 10 minutes at 48 kHz: a training clip is seconds long, so anything longer is a caller bug. */
#define CODEC_MAX_SAMPLES ((size_t)48000 * 600)
/* One decoded frame after resampling: codecs' frames are a few thousand samples. */
#define CODEC_MAX_FRAME (1 << 20)

struct codec_trip {
    const char *name;              /* the encoder's name, for messages */
    AVCodecContext *enc, *dec;
    SwrContext *to_enc, *from_dec;
    AVFrame *frame;
    AVPacket *pkt;
    int rate;                      /* the caller's sample rate */
    float *out;                    /* the caller's buffer: cap samples */
    size_t cap, n;                 /* filled so far */
    float *tmp;                    /* one decoded frame at `rate` */
    size_t tmp_cap;
};

static enum avemo_status trip_fail(const struct codec_trip *t, struct avemo_error *err, int averr, const char *what)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, buf, sizeof buf);
    enum avemo_status st = averr == AVERROR(ENOMEM) ? AVEMO_ERR_NOMEM : AVEMO_ERR_INTERNAL;
    return avemo_fail(err, st, "codec %s: %s: %s", t->name, what, buf);
}

/* The encoder's rate: `rate` when it takes it, else the lowest supported rate above it, else
 * its highest.  Telephone codecs run at 8 kHz without saying so in supported_samplerates. */
static int encoder_rate(const AVCodec *codec, int rate)
{
    static const enum AVCodecID narrowband[] = {AV_CODEC_ID_GSM, AV_CODEC_ID_GSM_MS, AV_CODEC_ID_ADPCM_G726,
                                                AV_CODEC_ID_ADPCM_G726LE, AV_CODEC_ID_AMR_NB, AV_CODEC_ID_CODEC2};
    for (size_t i = 0; i < sizeof narrowband / sizeof narrowband[0]; i++)
        if (codec->id == narrowband[i]) return 8000;
    const int *r = codec->supported_samplerates;
    if (!r) return rate;
    int above = 0, highest = 0;
    for (; *r; r++) {
        if (*r == rate) return rate;
        if (*r > rate && (!above || *r < above)) above = *r;
        if (*r > highest) highest = *r;
    }
    return above ? above : highest;
}

static enum avemo_status open_encoder(struct codec_trip *t, const AVCodec *codec, int bit_rate,
                                      struct avemo_error *err)
{
    t->enc = avcodec_alloc_context3(codec);
    if (!t->enc) return avemo_fail(err, AVEMO_ERR_NOMEM, "codec %s: out of memory", t->name);
    av_channel_layout_default(&t->enc->ch_layout, 1);
    t->enc->sample_rate = encoder_rate(codec, t->rate);
    t->enc->sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLT;
    t->enc->time_base = (AVRational){1, t->enc->sample_rate};
    if (bit_rate > 0) t->enc->bit_rate = bit_rate;
    int rc = avcodec_open2(t->enc, codec, NULL);
    if (rc < 0) return trip_fail(t, err, rc, "cannot open the encoder for mono audio");
    return AVEMO_OK;
}

static enum avemo_status open_decoder(struct codec_trip *t, struct avemo_error *err)
{
    const AVCodec *codec = avcodec_find_decoder(t->enc->codec_id);
    if (!codec) return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "codec %s: this FFmpeg has no decoder for it", t->name);
    t->dec = avcodec_alloc_context3(codec);
    if (!t->dec) return avemo_fail(err, AVEMO_ERR_NOMEM, "codec %s: out of memory", t->name);
    int rc = av_channel_layout_copy(&t->dec->ch_layout, &t->enc->ch_layout);
    t->dec->sample_rate = t->enc->sample_rate;
    t->dec->pkt_timebase = t->enc->time_base; /* lets it drop the priming without a warning */
    if (rc >= 0 && t->enc->extradata_size > 0) {
        t->dec->extradata = av_mallocz((size_t)t->enc->extradata_size + AV_INPUT_BUFFER_PADDING_SIZE);
        if (!t->dec->extradata) rc = AVERROR(ENOMEM);
        else {
            memcpy(t->dec->extradata, t->enc->extradata, (size_t)t->enc->extradata_size);
            t->dec->extradata_size = t->enc->extradata_size;
        }
    }
    if (rc >= 0) rc = avcodec_open2(t->dec, codec, NULL);
    if (rc < 0) return trip_fail(t, err, rc, "cannot open the decoder");
    return AVEMO_OK;
}

/* A mono resampler between (fmt_in, rate_in) and (fmt_out, rate_out). */
static enum avemo_status open_resampler(struct codec_trip *t, SwrContext **swr, enum AVSampleFormat fmt_in,
                                        int rate_in, enum AVSampleFormat fmt_out, int rate_out,
                                        struct avemo_error *err)
{
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int rc = swr_alloc_set_opts2(swr, &mono, fmt_out, rate_out, &mono, fmt_in, rate_in, 0, NULL);
    if (rc >= 0) rc = swr_init(*swr);
    if (rc < 0) return trip_fail(t, err, rc, "cannot set up the resampler");
    return AVEMO_OK;
}

/* Append decoded samples (frame NULL: drain the resampler) to the output.  The decoder has
 * already dropped the encoder's priming (the skip-samples side data of its first packet). */
static enum avemo_status take_decoded(struct codec_trip *t, const AVFrame *frame, struct avemo_error *err)
{
    if (!t->from_dec) {
        if (!frame) return AVEMO_OK;
        enum avemo_status st = open_resampler(t, &t->from_dec, frame->format, frame->sample_rate, AV_SAMPLE_FMT_FLT,
                                              t->rate, err);
        if (st) return st;
    }
    int in_n = frame ? frame->nb_samples : 0;
    int room = swr_get_out_samples(t->from_dec, in_n);
    if (room < 0) return trip_fail(t, err, room, "resampling the decoded audio");
    if (room > CODEC_MAX_FRAME)
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "codec %s: a decoded frame of %d samples", t->name, room);
    if ((size_t)room > t->tmp_cap) {
        float *grown = av_realloc(t->tmp, (size_t)room * sizeof(float));
        if (!grown) return avemo_fail(err, AVEMO_ERR_NOMEM, "codec %s: out of memory", t->name);
        t->tmp = grown;
        t->tmp_cap = (size_t)room;
    }
    uint8_t *outp = (uint8_t *)t->tmp;
    int got = swr_convert(t->from_dec, &outp, room, frame ? (const uint8_t **)frame->extended_data : NULL, in_n);
    if (got < 0) return trip_fail(t, err, got, "resampling the decoded audio");
    for (int i = 0; i < got && t->n < t->cap; i++) t->out[t->n++] = t->tmp[i];
    return AVEMO_OK;
}

/* Decode one packet (NULL: flush the decoder) and take every frame it gives. */
static enum avemo_status decode_packet(struct codec_trip *t, const AVPacket *pkt, struct avemo_error *err)
{
    int rc = avcodec_send_packet(t->dec, pkt);
    if (rc < 0 && rc != AVERROR_EOF) return trip_fail(t, err, rc, "decoding");
    for (;;) {
        rc = avcodec_receive_frame(t->dec, t->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return AVEMO_OK;
        if (rc < 0) return trip_fail(t, err, rc, "decoding");
        enum avemo_status st = take_decoded(t, t->frame, err);
        av_frame_unref(t->frame);
        if (st) return st;
    }
}

/* Encode one frame (NULL: flush the encoder) and decode every packet it gives. */
static enum avemo_status encode_frame(struct codec_trip *t, const AVFrame *frame, struct avemo_error *err)
{
    int rc = avcodec_send_frame(t->enc, frame);
    if (rc < 0) return trip_fail(t, err, rc, "encoding");
    for (;;) {
        rc = avcodec_receive_packet(t->enc, t->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return AVEMO_OK;
        if (rc < 0) return trip_fail(t, err, rc, "encoding");
        enum avemo_status st = decode_packet(t, t->pkt, err);
        av_packet_unref(t->pkt);
        if (st) return st;
    }
}

/* Resample the whole input to the encoder's format and rate; mono has one plane either way.
 * *buf (av_malloc'ed) receives *count samples. */
static enum avemo_status resample_for_encoder(struct codec_trip *t, const float *in, size_t n, uint8_t **buf,
                                              int *count, struct avemo_error *err)
{
    int bps = av_get_bytes_per_sample(t->enc->sample_fmt);
    int room = swr_get_out_samples(t->to_enc, (int)n);
    if (room < 0) return trip_fail(t, err, room, "resampling for the encoder");
    room += 1024; /* the resampler's tail, drained below */
    *buf = av_malloc((size_t)room * (size_t)bps);
    if (!*buf) return avemo_fail(err, AVEMO_ERR_NOMEM, "codec %s: out of memory", t->name);
    const uint8_t *src = (const uint8_t *)in;
    *count = 0;
    for (int pass = 0; pass < 2; pass++) { /* pass 0: the input; pass 1: the drain */
        uint8_t *dst = *buf + (size_t)*count * (size_t)bps;
        int got = swr_convert(t->to_enc, &dst, room - *count, pass ? NULL : &src, pass ? 0 : (int)n);
        if (got < 0) return trip_fail(t, err, got, "resampling for the encoder");
        *count += got;
    }
    return AVEMO_OK;
}

/* Encode buf (count samples of the encoder's format) in frame_size pieces, then flush
 * encoder, decoder and the output resampler. */
static enum avemo_status encode_all(struct codec_trip *t, const uint8_t *buf, int count, struct avemo_error *err)
{
    int bps = av_get_bytes_per_sample(t->enc->sample_fmt);
    int frame_size = t->enc->frame_size > 0 ? t->enc->frame_size : 1024;
    enum avemo_status st = AVEMO_OK;
    for (int pos = 0; pos < count && !st; pos += frame_size) {
        t->frame->nb_samples = count - pos < frame_size ? count - pos : frame_size;
        t->frame->format = t->enc->sample_fmt;
        t->frame->sample_rate = t->enc->sample_rate;
        int rc = av_channel_layout_copy(&t->frame->ch_layout, &t->enc->ch_layout);
        if (rc >= 0) rc = av_frame_get_buffer(t->frame, 0);
        if (rc < 0) return trip_fail(t, err, rc, "allocating a frame");
        memcpy(t->frame->data[0], buf + (size_t)pos * (size_t)bps, (size_t)t->frame->nb_samples * (size_t)bps);
        t->frame->pts = pos;
        st = encode_frame(t, t->frame, err);
        av_frame_unref(t->frame);
    }
    if (!st) st = encode_frame(t, NULL, err);
    if (!st) st = decode_packet(t, NULL, err);
    if (!st) st = take_decoded(t, NULL, err);
    return st;
}

static void trip_free(struct codec_trip *t)
{
    avcodec_free_context(&t->enc);
    avcodec_free_context(&t->dec);
    swr_free(&t->to_enc);
    swr_free(&t->from_dec);
    av_frame_free(&t->frame);
    av_packet_free(&t->pkt);
    av_free(t->tmp);
}

static enum avemo_status trip_open(struct codec_trip *t, const AVCodec *codec, int bit_rate, struct avemo_error *err)
{
    t->frame = av_frame_alloc();
    t->pkt = av_packet_alloc();
    if (!t->frame || !t->pkt) return avemo_fail(err, AVEMO_ERR_NOMEM, "codec %s: out of memory", t->name);
    enum avemo_status st = open_encoder(t, codec, bit_rate, err);
    if (!st) st = open_decoder(t, err);
    if (!st)
        st = open_resampler(t, &t->to_enc, AV_SAMPLE_FMT_FLT, t->rate, t->enc->sample_fmt, t->enc->sample_rate, err);
    return st;
}

enum avemo_status avemo_media_codec_roundtrip(const float *in, size_t n, int rate, const char *encoder, int bit_rate,
                                              float *out, size_t cap, size_t *out_n, struct avemo_error *err)
{
    if (out_n) *out_n = 0;
    if (!in || !out || !out_n || !encoder || n == 0 || rate <= 0 || bit_rate < 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "codec round trip: no samples, rate or encoder");
    if (n > CODEC_MAX_SAMPLES || rate > 384000)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "codec %s: %zu samples at %d Hz (at most %zu at 384 kHz)",
                          encoder, n, rate, CODEC_MAX_SAMPLES);
    const AVCodec *codec = avcodec_find_encoder_by_name(encoder);
    if (!codec || codec->type != AVMEDIA_TYPE_AUDIO)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "codec %s: this FFmpeg has no audio encoder of that name",
                          encoder);
    struct codec_trip t = {.name = encoder, .rate = rate, .out = out, .cap = cap};
    uint8_t *buf = NULL;
    int count = 0;
    enum avemo_status st = trip_open(&t, codec, bit_rate, err);
    if (!st) st = resample_for_encoder(&t, in, n, &buf, &count, err);
    if (!st) st = encode_all(&t, buf, count, err);
    av_free(buf);
    trip_free(&t);
    if (!st) *out_n = t.n;
    return st;
}
