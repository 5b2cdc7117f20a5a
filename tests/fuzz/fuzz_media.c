/* libFuzzer harness: media ingest from memory, as the server does with an upload:
 * open, facts, JSON, then audio and a few frames in one pass (and each on its own), and the
 * sound streamed as `classify --window` reads it.
 * Every outcome is a status; the harness only checks that a failure has a message. */
#include <avemo/media.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

/* The caps a server uses, smaller than the defaults so one input stays fast. */
static void fuzz_limits(struct avemo_media_limits *limits)
{
    avemo_media_limits_default(limits);
    limits->max_duration_s = 60;
    limits->max_width = limits->max_height = 1024;
    limits->max_pixels = 640 * 480;
    limits->max_image_side = 1024;
    limits->max_image_pixels = 640 * 480;
    limits->max_samples = 60 * 16000;
    limits->max_frames = 16;
}

/* The streamed sound goes nowhere; its count must be what was handed over. */
static enum avemo_status count_samples(void *user, const float *samples, size_t n, int *stop, struct avemo_error *err)
{
    (void)samples;
    (void)stop;
    (void)err;
    *(size_t *)user += n;
    return AVEMO_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet_ffmpeg();
    struct avemo_media_limits limits;
    fuzz_limits(&limits);
    struct avemo_media_open_options opt = {.name = "fuzz-input", .limits = &limits};
    struct avemo_error err = {0};
    avemo_media *media = NULL;
    if (fuzz_check(avemo_media_open_memory(data, size, &opt, &media, &err), &err)) return 0;

    struct avemo_media_info info;
    avemo_media_get_info(media, &info);
    char *json = NULL;
    if (!fuzz_check(avemo_media_info_json(media, &json, &err), &err)) free(json);

    struct avemo_audio audio = {0};
    struct avemo_frames frames = {0};
    if (!fuzz_check(avemo_media_decode_av(media, 16000, &audio, 4, AVEMO_PIX_RGB24, &frames, &err), &err)) {
        avemo_audio_free(&audio);
        avemo_frames_free(&frames);
    }
    /* The separate passes reopen the demuxer: a second read of the same bytes. */
    if (!fuzz_check(avemo_media_decode_audio(media, 0, &audio, &err), &err)) avemo_audio_free(&audio);
    if (!fuzz_check(avemo_media_decode_frames(media, 2, AVEMO_PIX_GRAY8, &frames, &err), &err))
        avemo_frames_free(&frames);
    size_t streamed = 0;
    fuzz_check(avemo_media_stream_audio(media, 22050, count_samples, &streamed, &err), &err);
    avemo_media_close(media);
    return 0;
}
