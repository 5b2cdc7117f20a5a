/* Section "audio": MFCC 40 timings (single thread, medians), compared in
 * docs/performance.md with librosa's 9.7 ms for the 2.3 s clip. */
#include "bench.h"

#include <avemo/audio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct audio_job {
    avemo_audio_extractor *ex;
    const float *samples;
    size_t n;
    float *out;
    size_t out_frames;
    const char *path;
    int failed;
};

static void run_fixed(void *arg)
{
    struct audio_job *job = arg;
    if (avemo_audio_compute_fixed(job->ex, job->samples, job->n, job->out, job->out_frames, NULL, NULL))
        job->failed = 1;
}

static void run_decode_and_features(void *arg)
{
    struct audio_job *job = arg;
    avemo_media *media = NULL;
    float *x = NULL;
    size_t frames = 0;
    if (avemo_media_open_file(job->path, NULL, &media, NULL) ||
        avemo_audio_features_from_media(job->ex, media, &x, &frames, NULL, NULL) || frames != 128)
        job->failed = 1;
    free(x);
    avemo_media_close(media);
}

static void run_create(void *arg)
{
    struct audio_job *job = arg;
    avemo_audio_extractor *ex = NULL;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    if (avemo_audio_extractor_create(&p, &ex, NULL)) job->failed = 1;
    avemo_audio_extractor_free(ex);
}

static void add_timing(cJSON *out, const char *key, const struct bench_context *ctx, void (*fn)(void *),
                       struct audio_job *job)
{
    job->failed = 0;
    double t = bench_median(ctx->repeats, fn, job);
    if (job->failed) {
        fprintf(stderr, "avemo-bench: audio: %s failed\n", key);
        cJSON_AddNullToObject(out, key);
    } else {
        cJSON_AddNumberToObject(out, key, t);
    }
}

void bench_audio(const struct bench_context *ctx, cJSON *out);
void bench_audio(const struct bench_context *ctx, cJSON *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/cremad/1001_DFA_ANG_XX.flv", ctx->data_dir);
    struct avemo_error err = {0};
    struct avemo_audio_params p;
    avemo_audio_params_default(&p); /* 22050 Hz, MFCC 40, 128 frames */
    avemo_audio_extractor *ex = NULL, *ex_all = NULL;
    avemo_media *media = NULL;
    struct avemo_audio audio = {0};
    float *long_signal = NULL, *out_clip = NULL, *out_long = NULL;
    if (avemo_audio_extractor_create(&p, &ex, &err) || avemo_media_open_file(path, NULL, &media, &err) ||
        avemo_media_decode_audio(media, p.sample_rate, &audio, &err)) {
        fprintf(stderr, "avemo-bench: audio: %s\n", err.message);
        goto done;
    }
    p.frames = 0; /* the 60 s signal: every frame */
    if (avemo_audio_extractor_create(&p, &ex_all, &err)) {
        fprintf(stderr, "avemo-bench: audio: %s\n", err.message);
        goto done;
    }
    /* 60 s: the clip repeated. */
    size_t n_long = (size_t)60 * 22050;
    long_signal = malloc(sizeof(float) * n_long);
    size_t long_frames = avemo_audio_frame_count(ex_all, n_long);
    out_clip = malloc(sizeof(float) * 40 * 128);
    out_long = malloc(sizeof(float) * 40 * long_frames);
    if (!long_signal || !out_clip || !out_long) goto done;
    for (size_t i = 0; i < n_long; i++) long_signal[i] = audio.samples[i % audio.count];

    struct audio_job clip = {ex, audio.samples, audio.count, out_clip, 128, path, 0};
    add_timing(out, "mfcc40_clip_s", ctx, run_fixed, &clip);
    struct audio_job minute = {ex_all, long_signal, n_long, out_long, long_frames, path, 0};
    add_timing(out, "mfcc40_60s_s", ctx, run_fixed, &minute);
    add_timing(out, "decode_mfcc40_clip_s", ctx, run_decode_and_features, &clip);
    add_timing(out, "audio_extractor_create_s", ctx, run_create, &clip);
    cJSON_AddNumberToObject(out, "mfcc40_clip_samples", (double)audio.count);
done:
    free(long_signal);
    free(out_clip);
    free(out_long);
    avemo_audio_free(&audio);
    avemo_media_close(media);
    avemo_audio_extractor_free(ex);
    avemo_audio_extractor_free(ex_all);
}
