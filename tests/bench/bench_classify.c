/* Bench section "classify": the whole avemo_classify_file path on the demo clip with the
 * shipped audio-visual model (decode, MFCC, faces on 8 frames, network), one thread. */
#include "bench.h"

#include <avemo/eval.h>
#include <avemo/media.h>
#include <avemo/nn.h>
#include <stdio.h>
#include <string.h>

struct classify_arg {
    avemo_classify_ctx *ctx;
    const char *clip;
    enum avemo_mode mode;
    int failed;
};

static void classify_once(void *p)
{
    struct classify_arg *a = p;
    struct avemo_prediction pred;
    if (avemo_classify_file(a->ctx, a->clip, a->mode, &pred, NULL)) a->failed = 1;
}

static void time_mode(const struct bench_context *ctx, cJSON *out, enum avemo_mode mode, const char *key)
{
    char model[1024], clip[1024];
    if (avemo_default_model(mode, model, sizeof model, NULL)) return;
    snprintf(clip, sizeof clip, "%s/cremad/1001_DFA_ANG_XX.flv", ctx->data_dir);
    avemo_classifier *clf = NULL;
    struct avemo_error err = {0};
    struct classify_arg a = {NULL, clip, mode, 0};
    if (avemo_classifier_open(model, NULL, &clf, &err) || avemo_classify_ctx_new(clf, &a.ctx, &err)) {
        fprintf(stderr, "bench classify: %s\n", err.message);
        avemo_classifier_close(clf);
        return;
    }
    double t = bench_median(ctx->repeats, classify_once, &a);
    /* The path is single-threaded, so thread CPU time is its cost on a shared machine too. */
    double cpu = bench_median_cpu(ctx->repeats, classify_once, &a);
    if (!a.failed) {
        char cpu_key[80];
        snprintf(cpu_key, sizeof cpu_key, "%.*s_cpu_s", (int)strlen(key) - 2, key);
        cJSON_AddNumberToObject(out, key, t);
        cJSON_AddNumberToObject(out, cpu_key, cpu);
    }
    avemo_classify_ctx_free(a.ctx);
    avemo_classifier_close(clf);
}

/* The decode part of an av classification: open the clip, one pass for the sound (22,050 Hz)
 * and the 8 sampled frames (gray), as avemo_classify_file does. */
struct decode_arg {
    const char *clip;
    int failed;
};

static void decode_once(void *p)
{
    struct decode_arg *a = p;
    avemo_media *media = NULL;
    struct avemo_audio audio = {0};
    struct avemo_frames frames = {0};
    if (avemo_media_open_file(a->clip, NULL, &media, NULL) ||
        avemo_media_decode_av(media, 22050, &audio, 8, AVEMO_PIX_GRAY8, &frames, NULL) || frames.count != 8)
        a->failed = 1;
    avemo_frames_free(&frames);
    avemo_audio_free(&audio);
    avemo_media_close(media);
}

static void time_decode(const struct bench_context *ctx, cJSON *out)
{
    char clip[1024];
    snprintf(clip, sizeof clip, "%s/cremad/1001_DFA_ANG_XX.flv", ctx->data_dir);
    struct decode_arg a = {clip, 0};
    double t = bench_median(ctx->repeats, decode_once, &a);
    double cpu = bench_median_cpu(ctx->repeats, decode_once, &a);
    if (a.failed) return;
    cJSON_AddNumberToObject(out, "decode_frames_clip_s", t);
    cJSON_AddNumberToObject(out, "decode_frames_clip_cpu_s", cpu);
}

void bench_classify(const struct bench_context *ctx, cJSON *out);
void bench_classify(const struct bench_context *ctx, cJSON *out)
{
    avemo_nn_set_threads(1, NULL);
    time_decode(ctx, out);
    time_mode(ctx, out, AVEMO_MODE_AV, "classify_clip_s");
    time_mode(ctx, out, AVEMO_MODE_AUDIO, "classify_audio_clip_s");
    time_mode(ctx, out, AVEMO_MODE_FACE, "classify_face_clip_s");
}
