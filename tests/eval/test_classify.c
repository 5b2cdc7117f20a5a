/*
 * Classify with the shipped models (models/avemo-{av,audio,face}.avm): every mode, the
 * fallbacks of av mode, memory and file input giving the same answer, windows over a long
 * recording, and bad input.  Accuracy is measured by `avemo eval`, not asserted here.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <cjson/cJSON.h>
#include <math.h>

static avemo_classifier *clf;
static avemo_classify_ctx *ctx;
static char paths[3][1024];

static int setup(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    for (int m = 0; m < 3; m++)
        if (avemo_default_model((enum avemo_mode)m, paths[m], sizeof paths[m], &err)) {
            fprintf(stderr, "%s\n", err.message);
            return -1;
        }
    const char *extra[2] = {paths[AVEMO_MODE_AUDIO], paths[AVEMO_MODE_FACE]};
    struct avemo_classifier_options opt = {.extra_models = extra, .n_extra_models = 2};
    if (avemo_classifier_open(paths[AVEMO_MODE_AV], &opt, &clf, &err) || avemo_classify_ctx_new(clf, &ctx, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    return 0;
}

static void check_prediction(const struct avemo_prediction *p)
{
    assert_int_equal(p->num_classes, 6);
    float sum = 0;
    for (int c = 0; c < 6; c++) {
        assert_true(p->probs[c] >= 0 && p->probs[c] <= 1);
        sum += p->probs[c];
        assert_true(p->probs[c] <= p->confidence);
    }
    assert_true(fabsf(sum - 1) < 1e-4f);
    assert_true(p->confidence == p->probs[p->label]);
    assert_true(p->t_total_s > 0 && p->t_total_s >= p->t_network_s);
}

static void test_av_on_every_clip(void **state)
{
    (void)state;
    assert_true(avemo_classifier_supports(clf, AVEMO_MODE_AV));
    assert_true(avemo_classifier_supports(clf, AVEMO_MODE_AUDIO));
    assert_true(avemo_classifier_supports(clf, AVEMO_MODE_FACE));
    static const char *const emo[6] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};
    for (int i = 0; i < 6; i++) {
        char clip[512];
        snprintf(clip, sizeof clip, "%s/cremad/1001_DFA_%s_XX.flv", AVEMO_TEST_DATA, emo[i]);
        struct avemo_prediction p;
        struct avemo_error err = {0};
        if (avemo_classify_file(ctx, clip, AVEMO_MODE_AV, &p, &err)) fail_msg("%s", err.message);
        check_prediction(&p);
        printf("  %s: %s %.2f, faces %d/%d, %.0f ms\n", emo[i], p.labels[p.label], (double)p.confidence, p.frames_used,
               p.frames_sampled, 1e3 * p.t_total_s);
        assert_int_equal(p.mode_used, AVEMO_MODE_AV);
        assert_true(p.face_found);
        assert_int_equal(p.frames_sampled, 8);
        assert_true(p.frames_used >= 6); /* OpenCV finds the face in every frame of these clips */
        assert_string_equal(p.fallback_reason, "");
        assert_true(p.audio_s > 1.8 && p.audio_s < 2.5);
    }
}

static void test_unimodal_modes(void **state)
{
    (void)state;
    struct avemo_prediction p;
    struct avemo_error err = {0};
    if (avemo_classify_file(ctx, TEST_DATA("audio/1002_DFA_ANG_XX.mp3"), AVEMO_MODE_AUDIO, &p, &err)) fail_msg("%s", err.message);
    check_prediction(&p);
    assert_int_equal(p.mode_used, AVEMO_MODE_AUDIO);
    assert_int_equal(p.frames_used, 0);
    if (avemo_classify_file(ctx, TEST_DATA("cremad/1001_DFA_HAP_XX.flv"), AVEMO_MODE_FACE, &p, &err)) fail_msg("%s", err.message);
    check_prediction(&p);
    assert_int_equal(p.mode_used, AVEMO_MODE_FACE);
    assert_true(p.face_found);
    /* A FER2013 face image (48x48, already a crop) in face mode. */
    if (avemo_classify_file(ctx, TEST_DATA("faces/happy_PublicTest_10130075.jpg"), AVEMO_MODE_FACE, &p, &err)) fail_msg("%s", err.message);
    check_prediction(&p);
    assert_int_equal(p.frames_sampled, 1);
}

static void test_av_fallbacks(void **state)
{
    (void)state;
    struct avemo_prediction p;
    struct avemo_error err = {0};
    /* No video: the audio model answers and says why. */
    if (avemo_classify_file(ctx, TEST_DATA("audio/1002_DFA_HAP_XX.mp3"), AVEMO_MODE_AV, &p, &err)) fail_msg("%s", err.message);
    assert_int_equal(p.mode_requested, AVEMO_MODE_AV);
    assert_int_equal(p.mode_used, AVEMO_MODE_AUDIO);
    assert_non_null(strstr(p.fallback_reason, "no video stream"));
    /* No sound: the face model answers. */
    if (avemo_classify_file(ctx, TEST_DATA("media/noaudio_1001_DFA_ANG_XX.flv"), AVEMO_MODE_AV, &p, &err)) fail_msg("%s", err.message);
    assert_int_equal(p.mode_used, AVEMO_MODE_FACE);
    assert_non_null(strstr(p.fallback_reason, "no audio stream"));
    /* A still image has no sound either. */
    if (avemo_classify_file(ctx, TEST_DATA("faces/happy_PublicTest_10130075.jpg"), AVEMO_MODE_AV, &p, &err)) fail_msg("%s", err.message);
    assert_int_equal(p.mode_used, AVEMO_MODE_FACE);
    /* The JSON says it too. */
    char *json = avemo_prediction_json(&p, "x.jpg");
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "mode")->valuestring, "face");
    assert_string_equal(cJSON_GetObjectItem(o, "mode_requested")->valuestring, "av");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "fallback")));
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "probabilities"), "SAD"));
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "time_ms"), "network"));
    cJSON_Delete(o);
    free(json);
}

/* A silent sound track (a muted phone video): av answers by the face alone, exactly as face mode
 * does, and says why; the voice model alone refuses rather than call silence an emotion. */
static void test_silent_audio(void **state)
{
    (void)state;
    struct avemo_prediction p, face;
    struct avemo_error err = {0};
    const char *muted = TEST_DATA("media/muted_1001_DFA_ANG_XX.mp4");
    if (avemo_classify_file(ctx, muted, AVEMO_MODE_AV, &p, &err)) fail_msg("%s", err.message);
    assert_int_equal(p.mode_used, AVEMO_MODE_FACE);
    assert_non_null(strstr(p.fallback_reason, "the audio is silent (digital silence)"));
    assert_true(p.audio_heard);
    assert_true(p.audio_level_db <= AVEMO_AUDIO_LEVEL_FLOOR_DB);
    if (avemo_classify_file(ctx, muted, AVEMO_MODE_FACE, &face, &err)) fail_msg("%s", err.message);
    assert_int_equal(p.label, face.label);
    for (int c = 0; c < p.num_classes; c++) assert_float_equal(p.probs[c], face.probs[c], 1e-6);
    assert_int_equal(avemo_classify_file(ctx, muted, AVEMO_MODE_AUDIO, &p, &err), AVEMO_ERR_SILENT);
    assert_non_null(strstr(err.message, "muted_1001_DFA_ANG_XX.mp4: the audio is silent"));
    /* The same clip with its sound: a level is measured and the voice is heard. */
    if (avemo_classify_file(ctx, TEST_DATA("media/h264_1001_DFA_ANG_XX.mp4"), AVEMO_MODE_AV, &p, &err))
        fail_msg("%s", err.message);
    assert_int_equal(p.mode_used, AVEMO_MODE_AV);
    assert_true(p.audio_heard && p.audio_level_db > -30 && p.audio_level_db < 0);
    char *json = avemo_prediction_json(&p, "x.mp4");
    cJSON *o = cJSON_Parse(json);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "audio_level_db")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "silent")));
    cJSON_Delete(o);
    free(json);
}

/* A WAV file (malloc'ed) of `copies` times the 16-bit samples of a WAV fixture: a long memo. */
static uint8_t *repeated_wav(const char *path, int copies, size_t *size)
{
    size_t n;
    uint8_t *wav = test_read_file(path, &n), *data = NULL;
    uint32_t len = 0;
    for (size_t i = 12; i + 8 <= n; i += 8 + len + (len & 1)) { /* RIFF chunks after "WAVE" */
        len = (uint32_t)wav[i + 4] | (uint32_t)wav[i + 5] << 8 | (uint32_t)wav[i + 6] << 16 | (uint32_t)wav[i + 7] << 24;
        if (memcmp(wav + i, "data", 4) == 0) {
            data = wav + i + 8;
            break;
        }
    }
    assert_non_null(data);
    size_t head = (size_t)(data - wav), body = (size_t)len * (size_t)copies;
    uint8_t *out = malloc(head + body);
    memcpy(out, wav, head);
    for (int c = 0; c < copies; c++) memcpy(out + head + (size_t)c * len, data, len);
    uint32_t riff = (uint32_t)(head + body - 8), dlen = (uint32_t)body;
    for (int b = 0; b < 4; b++) out[4 + b] = (uint8_t)(riff >> (8 * b)), out[head - 4 + b] = (uint8_t)(dlen >> (8 * b));
    free(wav);
    *size = head + body;
    return out;
}

/* A recording much longer than the voice model's 3 s is answered from part of it: the answer
 * says which part and how long; a clip of the model's length gets no note. */
static void test_long_recording_note(void **state)
{
    (void)state;
    struct avemo_prediction p;
    struct avemo_error err = {0};
    size_t size;
    uint8_t *wav = repeated_wav(TEST_DATA("media/pause_1002_DFA_SAD_XX.wav"), 4, &size); /* 17.6 s */
    if (avemo_classify_memory(ctx, wav, size, "memo.wav", AVEMO_MODE_AUDIO, &p, &err)) fail_msg("%s", err.message);
    free(wav);
    assert_true(fabs(p.audio_s - 17.613) < 0.01);
    assert_true(p.audio_heard_s > 2.9 && p.audio_heard_s < 3.1);
    if (!strstr(p.note, "a 17.6 s recording: the voice model hears 3.0 s")) fail_msg("note: '%s'", p.note);
    if (avemo_classify_file(ctx, TEST_DATA("audio/1002_DFA_SAD_XX.wav"), AVEMO_MODE_AUDIO, &p, &err))
        fail_msg("%s", err.message);
    assert_string_equal(p.note, "");
    char *json = avemo_prediction_json(&p, "x.wav");
    assert_non_null(strstr(json, "\"note\":null"));
    free(json);
}

/* Two people side by side: the answer says it is about one of them; one person: no note. */
static void test_group_note(void **state)
{
    (void)state;
    struct avemo_prediction p;
    struct avemo_error err = {0};
    if (avemo_classify_file(ctx, TEST_DATA("media/two_1001_ANG_HAP.jpg"), AVEMO_MODE_FACE, &p, &err)) fail_msg("%s", err.message);
    assert_int_equal(p.faces_in_frame_max, 2);
    assert_string_equal(p.note, "2 faces in the picture: the answer is about the largest");
    if (avemo_classify_file(ctx, TEST_DATA("cremad/1001_DFA_SAD_XX.flv"), AVEMO_MODE_AV, &p, &err)) fail_msg("%s", err.message);
    assert_int_equal(p.faces_in_frame_max, 1);
    assert_string_equal(p.note, "");
}

static void test_memory_equals_file(void **state)
{
    (void)state;
    size_t size;
    uint8_t *data = test_read_file(TEST_DATA("cremad/1001_DFA_FEA_XX.flv"), &size);
    struct avemo_prediction a, b;
    struct avemo_error err = {0};
    assert_int_equal(avemo_classify_file(ctx, TEST_DATA("cremad/1001_DFA_FEA_XX.flv"), AVEMO_MODE_AV, &a, &err), AVEMO_OK);
    assert_int_equal(avemo_classify_memory(ctx, data, size, "upload.flv", AVEMO_MODE_AV, &b, &err), AVEMO_OK);
    assert_memory_equal(a.probs, b.probs, sizeof a.probs);
    assert_int_equal(a.frames_used, b.frames_used);
    free(data);
}

static int count_window(void *user, double start_s, double end_s, const struct avemo_prediction *p)
{
    int *n = user;
    assert_true(fabs(start_s - 0.5 * *n) < 1e-6);
    assert_true(end_s > start_s && end_s - start_s <= 1.0 + 1e-6);
    check_prediction(p);
    (*n)++;
    return 0;
}

static void test_windows(void **state)
{
    (void)state;
    int n = 0;
    struct avemo_error err = {0};
    /* 2.61 s of audio, 1 s windows every 0.5 s: windows start at 0, 0.5, ..., 2.0. */
    if (avemo_classify_windows(ctx, TEST_DATA("audio/1002_DFA_ANG_XX.mp3"), 1.0, 0.5, count_window, &n, &err))
        fail_msg("%s", err.message);
    assert_int_equal(n, 5);
    assert_int_equal(avemo_classify_windows(ctx, TEST_DATA("audio/1002_DFA_ANG_XX.mp3"), 0, 0.5, count_window, &n, &err),
                     AVEMO_ERR_INVALID_ARG);
}

/* Windows with gaps between them (hop longer than the window) and a stop asked by the caller:
 * the sound is streamed, so both are decided while it is decoded. */
struct gap_windows {
    double start[8], end[8];
    int n, stop_at;
};

static int record_gap(void *user, double start_s, double end_s, const struct avemo_prediction *p)
{
    struct gap_windows *g = user;
    check_prediction(p);
    g->start[g->n] = start_s;
    g->end[g->n] = end_s;
    return ++g->n == g->stop_at;
}

static void test_window_gaps_and_stop(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct gap_windows g = {.stop_at = 0};
    /* 2.61 s, 0.5 s windows every 1.2 s: 0-0.5, 1.2-1.7, 2.4-2.61 (0.21 s: less than half) is not one */
    if (avemo_classify_windows(ctx, TEST_DATA("audio/1002_DFA_ANG_XX.mp3"), 0.5, 1.2, record_gap, &g, &err))
        fail_msg("%s", err.message);
    assert_int_equal(g.n, 2);
    assert_true(fabs(g.start[1] - 1.2) < 1e-6 && fabs(g.end[1] - 1.7) < 1e-6);
    g = (struct gap_windows){.stop_at = 2};
    if (avemo_classify_windows(ctx, TEST_DATA("audio/1002_DFA_ANG_XX.mp3"), 1.0, 0.5, record_gap, &g, &err))
        fail_msg("%s", err.message);
    assert_int_equal(g.n, 2); /* of the five the sound holds */
}

struct window_record {
    int n, silent[8];
    char json[8][1024];
};

static int record_window(void *user, double start_s, double end_s, const struct avemo_prediction *pred)
{
    struct window_record *w = user;
    if (w->n >= 8) return 1;
    w->silent[w->n] = pred->silent;
    char *json = avemo_window_json(pred, "pause.wav", start_s, end_s);
    snprintf(w->json[w->n++], sizeof w->json[0], "%s", json);
    free(json);
    return 0;
}

/* 2 s of digital silence, then 2.4 s of speech, in 1 s windows: the pause is two silent
 * windows without a label, the speech gets answers. */
static void test_silent_windows(void **state)
{
    (void)state;
    struct window_record w = {0};
    struct avemo_error err = {0};
    if (avemo_classify_windows(ctx, TEST_DATA("media/pause_1002_DFA_SAD_XX.wav"), 1.0, 1.0, record_window, &w, &err))
        fail_msg("%s", err.message);
    assert_int_equal(w.n, 4); /* 0-1, 1-2, 2-3, 3-4 (4-4.4 is less than half a window) */
    assert_true(w.silent[0] && w.silent[1] && !w.silent[2] && !w.silent[3]);
    cJSON *o = cJSON_Parse(w.json[0]);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "label")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "silent")));
    assert_null(cJSON_GetObjectItem(o, "probabilities"));
    cJSON_Delete(o);
    o = cJSON_Parse(w.json[2]);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "label")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "silent")));
    cJSON_Delete(o);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct avemo_prediction p;
    struct avemo_error err = {0};
    assert_int_equal(avemo_classify_memory(ctx, "", 0, "empty.flv", AVEMO_MODE_AV, &p, &err), AVEMO_ERR_EMPTY);
    assert_non_null(strstr(err.message, "empty.flv"));
    const char text[] = "hello, I am not a video\n";
    assert_int_equal(avemo_classify_memory(ctx, text, sizeof text, "notes.flv", AVEMO_MODE_AV, &p, &err), AVEMO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "notes.flv"));
    assert_int_equal(avemo_classify_file(ctx, "/nonexistent/clip.flv", AVEMO_MODE_AV, &p, &err), AVEMO_ERR_NOT_FOUND);
    /* A face-only request on audio. */
    assert_int_equal(avemo_classify_file(ctx, TEST_DATA("audio/1002_DFA_ANG_XX.mp3"), AVEMO_MODE_FACE, &p, &err),
                     AVEMO_ERR_NO_VIDEO);
    /* A truncated clip. */
    size_t size;
    uint8_t *clip = test_read_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), &size);
    enum avemo_status st = avemo_classify_memory(ctx, clip, 10 * 1024, "cut.flv", AVEMO_MODE_AV, &p, &err);
    assert_int_equal(st, AVEMO_ERR_CORRUPT);
    free(clip);
    /* An audio model without companions cannot answer in face mode. */
    avemo_classifier *audio_only = NULL;
    struct avemo_classifier_options alone = {.no_companions = 1};
    assert_int_equal(avemo_classifier_open(paths[AVEMO_MODE_AUDIO], &alone, &audio_only, &err), AVEMO_OK);
    assert_false(avemo_classifier_supports(audio_only, AVEMO_MODE_FACE));
    avemo_classify_ctx *c2 = NULL;
    assert_int_equal(avemo_classify_ctx_new(audio_only, &c2, &err), AVEMO_OK);
    assert_int_equal(avemo_classify_file(c2, TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), AVEMO_MODE_FACE, &p, &err),
                     AVEMO_ERR_INVALID_ARG);
    avemo_classify_ctx_free(c2);
    avemo_classifier_close(audio_only);
    /* A model file that is not one. */
    assert_int_not_equal(avemo_classifier_open(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), NULL, &audio_only, &err), AVEMO_OK);
    assert_non_null(strstr(err.message, "1001_DFA_ANG_XX.flv"));
}

/* Without extra models the library finds the companions itself, as the CLI's users get them:
 * the shipped av model answers a wav with avemo-audio and a photo with avemo-face. */
static void test_companions(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_prediction p;
    avemo_classifier *av = NULL;
    avemo_classify_ctx *c = NULL;
    if (avemo_classifier_open(paths[AVEMO_MODE_AV], NULL, &av, &err) || avemo_classify_ctx_new(av, &c, &err))
        fail_msg("%s", err.message);
    assert_true(avemo_classifier_supports(av, AVEMO_MODE_AUDIO) && avemo_classifier_supports(av, AVEMO_MODE_FACE));
    if (avemo_classify_file(c, TEST_DATA("audio/1001_DFA_ANG_XX.wav"), AVEMO_MODE_AV, &p, &err)) fail_msg("%s", err.message);
    check_prediction(&p);
    assert_int_equal(p.mode_used, AVEMO_MODE_AUDIO);
    assert_string_equal(p.model, "avemo-audio");
    if (avemo_classify_file(c, TEST_DATA("faces/happy_PublicTest_10130075.jpg"), AVEMO_MODE_AV, &p, &err))
        fail_msg("%s", err.message);
    check_prediction(&p);
    assert_int_equal(p.mode_used, AVEMO_MODE_FACE);
    assert_string_equal(p.model, "avemo-face");
    avemo_classify_ctx_free(c);
    avemo_classifier_close(av);
    /* The same model with companions turned off has nothing to answer a wav with. */
    struct avemo_classifier_options alone = {.no_companions = 1};
    if (avemo_classifier_open(paths[AVEMO_MODE_AV], &alone, &av, &err) || avemo_classify_ctx_new(av, &c, &err))
        fail_msg("%s", err.message);
    assert_false(avemo_classifier_supports(av, AVEMO_MODE_AUDIO));
    enum avemo_status st = avemo_classify_file(c, TEST_DATA("audio/1001_DFA_ANG_XX.wav"), AVEMO_MODE_AV, &p, &err);
    printf("  without companions: %s: %s\n", avemo_status_name(st), err.message);
    assert_int_not_equal(st, AVEMO_OK);
    avemo_classify_ctx_free(c);
    avemo_classifier_close(av);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_av_on_every_clip), cmocka_unit_test(test_unimodal_modes),
        cmocka_unit_test(test_av_fallbacks),     cmocka_unit_test(test_memory_equals_file),
        cmocka_unit_test(test_windows),          cmocka_unit_test(test_window_gaps_and_stop),          cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_companions),       cmocka_unit_test(test_silent_audio),
        cmocka_unit_test(test_silent_windows),   cmocka_unit_test(test_long_recording_note),
        cmocka_unit_test(test_group_note),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
