/*
 * Opening media from a path or from memory, the limits checked at open, and
 * the facts that `avemo probe` prints.  The decode passes are in media_decode.c.
 */
#include "media/media_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MEDIA_IO_BUFFER_SIZE 65536

void avemo_media_limits_default(struct avemo_media_limits *limits)
{
    limits->max_file_bytes = (int64_t)512 << 20;
    limits->max_duration_s = 300.0;
    limits->max_width = 2048;
    limits->max_height = 2048;
    limits->max_pixels = (int64_t)1920 * 1088;
    limits->max_image_side = 8192;
    limits->max_image_pixels = (int64_t)4096 * 4096;
    limits->max_image_bytes = (int64_t)64 << 20;
    limits->max_samples = (int64_t)300 * 48000;
    limits->max_frames = 10000;
    limits->max_decoded_bytes = (int64_t)256 << 20;
    limits->max_decode_s = 60.0;
}

enum avemo_status media_fail_av(const avemo_media *media, struct avemo_error *err, int averr, const char *what)
{
    char text[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, text, sizeof text);
    if (averr == AVERROR(ENOMEM)) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: %s: out of memory", media->name, what);
    if (averr == AVERROR_INVALIDDATA)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: %s: invalid data (%s)", media->name, what, text);
    if (averr == AVERROR(ENOENT)) return avemo_fail(err, AVEMO_ERR_NOT_FOUND, "%s: %s: %s", media->name, what, text);
    /* Only a file can fail to be read; anything else FFmpeg refuses (EINVAL from a demuxer, a
     * missing decoder, ...) is a property of the data: uploads get "bad media", never "internal".
     * Out of file descriptors is not the file's fault (a feature cache would keep it as such). */
    int io = media->path && (averr == AVERROR(EIO) || averr == AVERROR(EACCES) || averr == AVERROR(EPERM) ||
                             averr == AVERROR(EISDIR) || averr == AVERROR(EMFILE) || averr == AVERROR(ENFILE));
    if (!io) return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: %s: %s", media->name, what, text);
    return avemo_fail(err, AVEMO_ERR_IO, "%s: %s: %s", media->name, what, text);
}

int media_read_error(const avemo_media *media, int rc)
{
    if (rc >= 0) return 0;
    if (rc != AVERROR_EOF) return rc;
    /* A demuxer may answer a failed read with AVERROR_EOF; the I/O context keeps the cause. */
    const AVIOContext *pb = media->fmt ? media->fmt->pb : NULL;
    return pb && pb->error < 0 && pb->error != AVERROR_EOF ? pb->error : 0;
}

/* --- custom I/O over a memory buffer ------------------------------------ */

static int memory_read(void *opaque, uint8_t *buf, int size)
{
    struct media_memory_reader *r = opaque;
    size_t left = r->size - r->pos;
    if (left == 0) return AVERROR_EOF;
    size_t n = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return (int)n;
}

static int64_t memory_seek(void *opaque, int64_t offset, int whence)
{
    struct media_memory_reader *r = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return (int64_t)r->size;
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)r->pos; break;
    case SEEK_END: base = (int64_t)r->size; break;
    default: return AVERROR(EINVAL);
    }
    int64_t pos = base + offset;
    if (pos < 0 || pos > (int64_t)r->size) return AVERROR(EINVAL);
    r->pos = (size_t)pos;
    return pos;
}

/* --- demuxer --------------------------------------------------------------- */

void media_close_demuxer(avemo_media *media)
{
    avformat_close_input(&media->fmt);
    if (media->avio) {
        av_freep(&media->avio->buffer);
        avio_context_free(&media->avio);
    }
}

/* Attached pictures (cover art in an mp3) are not video. */
static int best_stream(AVFormatContext *fmt, enum AVMediaType type)
{
    int best = av_find_best_stream(fmt, type, -1, -1, NULL, 0);
    if (best >= 0 && (fmt->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        best = -1;
        for (unsigned i = 0; i < fmt->nb_streams; i++)
            if (fmt->streams[i]->codecpar->codec_type == type &&
                !(fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
                best = (int)i;
                break;
            }
    }
    return best < 0 ? -1 : best;
}

/* A hint for the message only: the first bytes are printable text. */
static int media_looks_like_text(const avemo_media *media)
{
    uint8_t head[512];
    size_t n = 0;
    if (media->path) {
        FILE *f = fopen(media->path, "rb");
        if (!f) return 0;
        n = fread(head, 1, sizeof head, f);
        fclose(f);
    } else {
        n = media->mem.size < sizeof head ? media->mem.size : sizeof head;
        memcpy(head, media->mem.data, n);
    }
    for (size_t i = 0; i < n; i++)
        if (head[i] < 0x20 && head[i] != '\n' && head[i] != '\r' && head[i] != '\t') return 0;
    return n > 0;
}

static enum avemo_status open_input(avemo_media *media, struct avemo_error *err)
{
    const AVInputFormat *ifmt = NULL;
    if (media->format && !(ifmt = av_find_input_format(media->format)))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: unknown input format '%s'", media->name, media->format);
    AVDictionary *opts = NULL;
    if (media->options && av_dict_parse_string(&opts, media->options, "=", ":", 0) < 0) {
        av_dict_free(&opts);
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: cannot parse input options '%s'", media->name,
                          media->options);
    }
    media->fmt = avformat_alloc_context();
    if (!media->fmt) {
        av_dict_free(&opts);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate a demuxer", media->name);
    }
    media_guard_probe_bounds(media->fmt);
    if (!media->path) {
        uint8_t *buffer = av_malloc(MEDIA_IO_BUFFER_SIZE);
        media->mem.pos = 0;
        media->avio = buffer ? avio_alloc_context(buffer, MEDIA_IO_BUFFER_SIZE, 0, &media->mem, memory_read, NULL,
                                                  memory_seek)
                             : NULL;
        if (!media->avio) {
            av_free(buffer);
            av_dict_free(&opts);
            return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate an I/O context", media->name);
        }
        media->fmt->pb = media->avio;
        media->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
        /* An upload must not make a demuxer open other files or URLs (an ffconcat script or
         * an HLS playlist naming local files or internal hosts): no protocol is allowed. */
        media->fmt->protocol_whitelist = av_strdup("none");
        if (!media->fmt->protocol_whitelist) {
            av_dict_free(&opts);
            return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", media->name);
        }
    }
    int rc = avformat_open_input(&media->fmt, media->path ? media->path : "", ifmt, &opts);
    int unused_options = av_dict_count(opts);
    av_dict_free(&opts);
    if (rc < 0) {
        /* From memory nothing but the bytes can be at fault: a probe that picked a demuxer
         * which then gave up (noise taken for mp3, a playlist) is not a media file either. */
        if (rc == AVERROR_INVALIDDATA || !media->path)
            return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not a media format that FFmpeg recognises%s",
                              media->name, media_looks_like_text(media) ? " (it is a text file)" : "");
        return media_fail_av(media, err, rc, "cannot open");
    }
    if (unused_options)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: input options '%s' not understood by the %s demuxer",
                          media->name, media->options, media->fmt->iformat->name);
    media_use_picture_limits(media);
    /* The streams and the sizes the headers declare first; then the probe decodes a few frames,
     * with the limits' pixel cap, never one too large. */
    enum avemo_status st = media_guard_find_streams(media, err);
    if (!st) st = media_guard_check_declared(media, err);
    if (st) return st;
    AVDictionary **probe_opts = NULL;
    unsigned probed = 0;
    st = media_guard_probe_options(media, &probe_opts, &probed, err);
    if (st) return st;
    rc = avformat_find_stream_info(media->fmt, probe_opts);
    media_guard_free_options(&probe_opts, probed);
    if (rc < 0) return media_fail_av(media, err, rc, "cannot read stream information");
    return AVEMO_OK;
}

enum avemo_status media_open_demuxer(avemo_media *media, struct avemo_error *err)
{
    media_close_demuxer(media);
    enum avemo_status st = open_input(media, err);
    if (st) {
        media_close_demuxer(media);
        return st;
    }
    media->audio_stream = best_stream(media->fmt, AVMEDIA_TYPE_AUDIO);
    media->video_stream = best_stream(media->fmt, AVMEDIA_TYPE_VIDEO);
    media->fmt_fresh = 1;
    return AVEMO_OK;
}

enum avemo_status media_rewind(avemo_media *media, struct avemo_error *err)
{
    if (media->fmt && media->fmt_fresh) return AVEMO_OK;
    /* Reopening is cheap for clips and works for every demuxer, seekable or not. */
    return media_open_demuxer(media, err);
}

/* --- facts and limits ---------------------------------------------------- */

static double stream_duration(const AVStream *s)
{
    if (s->duration > 0 && s->duration != AV_NOPTS_VALUE) return (double)s->duration * av_q2d(s->time_base);
    return 0;
}

static void fill_info(avemo_media *media)
{
    struct avemo_media_info *in = &media->info;
    const AVFormatContext *fmt = media->fmt;
    snprintf(in->container, sizeof in->container, "%s", fmt->iformat->name);
    snprintf(in->container_long, sizeof in->container_long, "%s",
             fmt->iformat->long_name ? fmt->iformat->long_name : fmt->iformat->name);
    in->duration_s = fmt->duration > 0 ? (double)fmt->duration / AV_TIME_BASE : 0;
    in->bit_rate = fmt->bit_rate;
    if (media->audio_stream >= 0) {
        const AVStream *s = fmt->streams[media->audio_stream];
        in->has_audio = 1;
        snprintf(in->audio_codec, sizeof in->audio_codec, "%s", avcodec_get_name(s->codecpar->codec_id));
        in->sample_rate = s->codecpar->sample_rate;
        in->channels = s->codecpar->ch_layout.nb_channels;
        in->audio_duration_s = stream_duration(s);
        if (in->duration_s == 0) in->duration_s = in->audio_duration_s;
    }
    if (media->video_stream >= 0) {
        const AVStream *s = fmt->streams[media->video_stream];
        in->has_video = 1;
        snprintf(in->video_codec, sizeof in->video_codec, "%s", avcodec_get_name(s->codecpar->codec_id));
        in->width = s->codecpar->width;
        in->height = s->codecpar->height;
        in->rotation = media_stream_rotation(s);
        AVRational rate = s->avg_frame_rate.num ? s->avg_frame_rate : s->r_frame_rate;
        in->fps = rate.den ? av_q2d(rate) : 0;
        double dur = stream_duration(s) > 0 ? stream_duration(s) : in->duration_s;
        if (s->nb_frames > 0) {
            in->frame_count = s->nb_frames;
            in->frame_count_exact = 1;
        } else {
            in->frame_count = (int64_t)(dur * in->fps + 0.5);
            if (in->frame_count < 1) in->frame_count = 1;
        }
    }
}

static enum avemo_status check_limits(const avemo_media *media, struct avemo_error *err)
{
    const struct avemo_media_info *in = &media->info;
    const struct avemo_media_limits *lim = &media->limits;
    if (!in->has_audio && !in->has_video)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: no audio or video stream (container %s)", media->name,
                          in->container);
    if (in->duration_s > lim->max_duration_s)
        return avemo_fail(err, AVEMO_ERR_TOO_LONG, "%s: duration %.1f s exceeds the limit of %.1f s", media->name,
                          in->duration_s, lim->max_duration_s);
    if (in->has_video && !media_frame_fits(lim, in->width, in->height))
        return media_frame_size_error(media, in->width, in->height, err);
    if (in->has_audio && (in->sample_rate <= 0 || in->sample_rate > 768000 || in->channels <= 0 || in->channels > 64))
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: implausible audio stream (%d Hz, %d channels)", media->name,
                          in->sample_rate, in->channels);
    return AVEMO_OK;
}

/* --- public open / close ------------------------------------------------- */

static enum avemo_status media_new(const char *name, const struct avemo_media_open_options *opt, avemo_media **out,
                                   struct avemo_error *err)
{
    avemo_media *m = calloc(1, sizeof *m);
    if (!m) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    m->audio_stream = m->video_stream = -1;
    m->name = strdup(name);
    if (opt && opt->limits) m->limits = *opt->limits;
    else avemo_media_limits_default(&m->limits);
    if (m->limits.max_decoded_bytes <= 0) m->limits.max_decoded_bytes = (int64_t)256 << 20;
    if (!(m->limits.max_decode_s > 0)) m->limits.max_decode_s = 60.0;
    if (opt && opt->format) m->format = strdup(opt->format);
    if (opt && opt->options) m->options = strdup(opt->options);
    if (!m->name || (opt && opt->format && !m->format) || (opt && opt->options && !m->options)) {
        avemo_media_close(m);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    }
    *out = m;
    return AVEMO_OK;
}

static enum avemo_status media_finish_open(avemo_media *m, int64_t size, avemo_media **out, struct avemo_error *err)
{
    enum avemo_status st = media_open_demuxer(m, err);
    if (!st) {
        fill_info(m);
        m->info.size_bytes = size;
        /* The probe refused to decode a frame too large to size the video: learn its size
         * without a buffer, so that the limits below name it. */
        if (m->info.has_video && (m->info.width <= 0 || m->info.height <= 0)) media_guard_peek_size(m);
        st = check_limits(m, err);
    }
    if (st) {
        avemo_media_close(m);
        return st;
    }
    *out = m;
    return AVEMO_OK;
}

static enum avemo_status check_size(const char *name, int64_t size, const struct avemo_media_limits *lim,
                                    struct avemo_error *err)
{
    if (size == 0) return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: the file is empty (0 bytes)", name);
    if (size > lim->max_file_bytes)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: %lld bytes exceeds the limit of %lld bytes", name,
                          (long long)size, (long long)lim->max_file_bytes);
    return AVEMO_OK;
}

enum avemo_status avemo_media_open_file(const char *path, const struct avemo_media_open_options *opt,
                                        avemo_media **out, struct avemo_error *err)
{
    *out = NULL;
    if (!path || !*path) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "no media path given");
    struct stat st;
    if (stat(path, &st) != 0)
        return avemo_fail(err, errno == ENOENT ? AVEMO_ERR_NOT_FOUND : AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return avemo_fail(err, AVEMO_ERR_IO, "%s: not a regular file (%s)", path, avemo_file_type_name(st.st_mode));
    avemo_media *m;
    enum avemo_status rc = media_new(path, opt, &m, err);
    if (rc) return rc;
    if ((rc = check_size(path, st.st_size, &m->limits, err))) {
        avemo_media_close(m);
        return rc;
    }
    if (!(m->path = strdup(path))) {
        avemo_media_close(m);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    }
    return media_finish_open(m, st.st_size, out, err);
}

enum avemo_status avemo_media_open_memory(const void *data, size_t size, const struct avemo_media_open_options *opt,
                                          avemo_media **out, struct avemo_error *err)
{
    *out = NULL;
    const char *name = opt && opt->name ? opt->name : "<memory>";
    if (!data && size) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: NULL data", name);
    avemo_media *m;
    enum avemo_status rc = media_new(name, opt, &m, err);
    if (rc) return rc;
    if ((rc = check_size(name, (int64_t)size, &m->limits, err))) {
        avemo_media_close(m);
        return rc;
    }
    m->mem.data = data;
    m->mem.size = size;
    return media_finish_open(m, (int64_t)size, out, err);
}

void avemo_media_close(avemo_media *media)
{
    if (!media) return;
    media_close_demuxer(media);
    free(media->name);
    free(media->path);
    free(media->format);
    free(media->options);
    free(media);
}

const char *avemo_media_name(const avemo_media *media) { return media->name; }

enum avemo_status avemo_media_get_info(const avemo_media *media, struct avemo_media_info *info)
{
    *info = media->info;
    return AVEMO_OK;
}

enum avemo_status avemo_media_info_json(const avemo_media *media, char **json, struct avemo_error *err)
{
    const struct avemo_media_info *in = &media->info;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", media->name);
    cJSON_AddStringToObject(o, "container", in->container);
    cJSON_AddStringToObject(o, "container_long", in->container_long);
    cJSON_AddNumberToObject(o, "duration_s", in->duration_s);
    cJSON_AddNumberToObject(o, "size_bytes", (double)in->size_bytes);
    cJSON_AddNumberToObject(o, "bit_rate", (double)in->bit_rate);
    if (in->has_audio) {
        cJSON *a = cJSON_AddObjectToObject(o, "audio");
        cJSON_AddStringToObject(a, "codec", in->audio_codec);
        cJSON_AddNumberToObject(a, "sample_rate", in->sample_rate);
        cJSON_AddNumberToObject(a, "channels", in->channels);
        cJSON_AddNumberToObject(a, "duration_s", in->audio_duration_s);
    } else {
        cJSON_AddNullToObject(o, "audio");
    }
    if (in->has_video) {
        cJSON *v = cJSON_AddObjectToObject(o, "video");
        cJSON_AddStringToObject(v, "codec", in->video_codec);
        cJSON_AddNumberToObject(v, "width", in->width);
        cJSON_AddNumberToObject(v, "height", in->height);
        cJSON_AddNumberToObject(v, "rotation", in->rotation);
        cJSON_AddNumberToObject(v, "fps", in->fps);
        cJSON_AddNumberToObject(v, "frame_count", (double)in->frame_count);
        cJSON_AddBoolToObject(v, "frame_count_exact", in->frame_count_exact);
    } else {
        cJSON_AddNullToObject(o, "video");
    }
    *json = cJSON_Print(o);
    cJSON_Delete(o);
    if (!*json) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot build JSON", media->name);
    return AVEMO_OK;
}
