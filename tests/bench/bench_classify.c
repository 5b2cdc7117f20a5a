/* Bench section "classify": the whole avemo_classify_file path on the demo clip with the
 * shipped audio-visual model (decode, MFCC, faces on 8 frames, network); for the FLV/VP6 demo
 * clip and for its H.264 MP4 copy (keys with _mp4), with the parts of an av classification timed
 * alone (decode, face search); the network and MFCC are the rest.  Every key is the path in one
 * thread (a server's cost per clip), but the _overlap_s keys: the latency `avemo classify`
 * gives, the decoding on a second thread beside the face search and networks (classifier
 * option overlap). */
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

#define FLV_CLIP "cremad/1001_DFA_ANG_XX.flv"
#define MP4_CLIP "media/h264_1001_DFA_ANG_XX.mp4"

/* The median wall time of a classification under key; with cpu_key, its thread CPU time too
 * (one thread only: a second thread's CPU would not count). */
static void time_mode(const struct bench_context *ctx, cJSON *out, enum avemo_mode mode, const char *rel,
                      const char *key, const char *cpu_key, int overlap)
{
    char model[1024], clip[1024];
    if (avemo_default_model(mode, model, sizeof model, NULL)) return;
    snprintf(clip, sizeof clip, "%s/%s", ctx->data_dir, rel);
    avemo_classifier *clf = NULL;
    struct avemo_error err = {0};
    struct classify_arg a = {NULL, clip, mode, 0};
    struct avemo_classifier_options opt = {.overlap = overlap};
    if (avemo_classifier_open(model, &opt, &clf, &err) || avemo_classify_ctx_new(clf, &a.ctx, &err)) {
        fprintf(stderr, "bench classify: %s\n", err.message);
        avemo_classifier_close(clf);
        return;
    }
    double t = bench_median(ctx->repeats, classify_once, &a);
    /* The path is single-threaded, so thread CPU time is its cost on a shared machine too. */
    double cpu = cpu_key ? bench_median_cpu(ctx->repeats, classify_once, &a) : 0;
    if (!a.failed) {
        cJSON_AddNumberToObject(out, key, t);
        if (cpu_key) cJSON_AddNumberToObject(out, cpu_key, cpu);
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

static void time_decode(const struct bench_context *ctx, cJSON *out, const char *rel, const char *suffix)
{
    char clip[1024], key[80];
    snprintf(clip, sizeof clip, "%s/%s", ctx->data_dir, rel);
    struct decode_arg a = {clip, 0};
    double t = bench_median(ctx->repeats, decode_once, &a);
    double cpu = bench_median_cpu(ctx->repeats, decode_once, &a);
    if (a.failed) return;
    snprintf(key, sizeof key, "decode_frames_clip%s_s", suffix);
    cJSON_AddNumberToObject(out, key, t);
    snprintf(key, sizeof key, "decode_frames_clip%s_cpu_s", suffix);
    cJSON_AddNumberToObject(out, key, cpu);
}

/* The face search of an av classification: the 8 decoded gray frames, the av pipeline's
 * [face] settings (min 60 px, search near the previous face first), crops included. */
struct faces_arg {
    avemo_detector *det;
    struct avemo_frames frames;
    struct avemo_face_options fo;
    struct avemo_rect box; /* the previous frame's face, the next frame's hint */
    int failed;
};

static void faces_once(void *p)
{
    struct faces_arg *a = p;
    const struct avemo_rect *hint = NULL;
    for (int i = 0; i < a->frames.count; i++) {
        struct avemo_image img = avemo_image_from_frame(&a->frames.frames[i]);
        struct avemo_face face;
        if (avemo_face_detect_image(a->det, &img, &a->fo, hint, &face, NULL) || !face.face_found) a->failed = 1;
        a->box = face.box;
        hint = &a->box;
        avemo_face_free(&face);
    }
}

static void time_faces(const struct bench_context *ctx, cJSON *out, const char *rel, const char *suffix)
{
    char clip[1024], key[80];
    snprintf(clip, sizeof clip, "%s/%s", ctx->data_dir, rel);
    struct faces_arg a = {0};
    avemo_cascade *cascade = NULL;
    avemo_media *media = NULL;
    avemo_face_options_default(&a.fo);
    a.fo.channels = 1;
    a.fo.track = 1;
    a.fo.detect.min_width = a.fo.detect.min_height = 60;
    if (!avemo_cascade_load(AVEMO_DEFAULT_CASCADE, NULL, &cascade, NULL) &&
        !avemo_detector_create(cascade, &a.det, NULL) && !avemo_media_open_file(clip, NULL, &media, NULL) &&
        !avemo_media_decode_frames(media, 8, AVEMO_PIX_GRAY8, &a.frames, NULL)) {
        double cpu = bench_median_cpu(ctx->repeats, faces_once, &a);
        snprintf(key, sizeof key, "faces_search_clip%s_cpu_s", suffix);
        if (!a.failed) cJSON_AddNumberToObject(out, key, cpu);
    }
    avemo_frames_free(&a.frames);
    avemo_media_close(media);
    avemo_detector_free(a.det);
    avemo_cascade_free(cascade);
}

void bench_classify(const struct bench_context *ctx, cJSON *out);
void bench_classify(const struct bench_context *ctx, cJSON *out)
{
    avemo_nn_set_threads(1, NULL);
    time_decode(ctx, out, FLV_CLIP, "");
    time_faces(ctx, out, FLV_CLIP, "");
    time_mode(ctx, out, AVEMO_MODE_AV, FLV_CLIP, "classify_clip_s", "classify_clip_cpu_s", 0);
    time_mode(ctx, out, AVEMO_MODE_AV, FLV_CLIP, "classify_clip_overlap_s", NULL, 1);
    time_mode(ctx, out, AVEMO_MODE_AUDIO, FLV_CLIP, "classify_audio_clip_s", "classify_audio_clip_cpu_s", 0);
    time_mode(ctx, out, AVEMO_MODE_FACE, FLV_CLIP, "classify_face_clip_s", "classify_face_clip_cpu_s", 0);
    time_decode(ctx, out, MP4_CLIP, "_mp4");
    time_faces(ctx, out, MP4_CLIP, "_mp4");
    time_mode(ctx, out, AVEMO_MODE_AV, MP4_CLIP, "classify_clip_mp4_s", "classify_clip_mp4_cpu_s", 0);
    time_mode(ctx, out, AVEMO_MODE_AV, MP4_CLIP, "classify_clip_mp4_overlap_s", NULL, 1);
}
