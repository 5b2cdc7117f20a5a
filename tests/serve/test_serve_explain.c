/* POST /v1/predict?explain=1 against `avemo serve` with the shipped models (a process on a free
 * 127.0.0.1 port, curl as the client): the answer's explanation is the library's for the same
 * bytes (class, shares, number of maps), every heat map is a PNG data: URL that decodes at the
 * documented size, the shares follow the modalities, and a wrong value is a 400.
 * Exits 77 (skipped) while models/avemo-av.avm does not exist. */
#include "serve_test.h"

#include <avemo/eval.h>
#include <avemo/media.h>
#include <avemo/vision.h>
#include <libavutil/base64.h>
#include <math.h>

#define MODEL(name) AVEMO_SOURCE_DIR "/models/" name
#define LOG_FILE "serve_explain.log"

struct state {
    struct serve_process server;
    avemo_classifier *clf; /* the reference: the library on the same files */
    avemo_classify_ctx *ctx;
    char db[300];
};

static const char *const extras[] = {MODEL("avemo-audio.avm"), MODEL("avemo-face.avm")};

static int group_setup(void **state)
{
    struct state *s = calloc(1, sizeof *s);
    struct avemo_classifier_options copt = {.extra_models = extras, .n_extra_models = 2};
    struct avemo_error err = {0};
    if (avemo_classifier_open(MODEL("avemo-av.avm"), &copt, &s->clf, &err) ||
        avemo_classify_ctx_new(s->clf, &s->ctx, &err)) {
        fprintf(stderr, "reference classifier: %s\n", err.message);
        return -1;
    }
    snprintf(s->db, sizeof s->db, "%s/serve_explain_%d.sqlite", AVEMO_BINARY_DIR, (int)getpid());
    const char *const args[] = {"--model", MODEL("avemo-av.avm"), "--extra-model", extras[0], "--extra-model",
                                extras[1], "--db", s->db, NULL};
    s->server = serve_spawn(LOG_FILE, args);
    *state = s;
    return 0;
}

static int group_teardown(void **state)
{
    struct state *s = *state;
    if (s->server.pid) serve_stop(&s->server);
    avemo_classify_ctx_free(s->ctx);
    avemo_classifier_close(s->clf);
    char path[320];
    const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", s->db, suffixes[i]);
        unlink(path);
    }
    free(s);
    return 0;
}

/* A "data:image/png;base64,..." URL decoded by FFmpeg: width x height. */
static void check_png_url(const char *url, int width, int height)
{
    static const char prefix[] = "data:image/png;base64,";
    assert_non_null(url);
    assert_int_equal(strncmp(url, prefix, sizeof prefix - 1), 0);
    const char *b64 = url + sizeof prefix - 1;
    size_t cap = strlen(b64);
    uint8_t *png = malloc(cap);
    int n = av_base64_decode(png, b64, (int)cap);
    assert_true(n > 8);
    avemo_media *media;
    struct avemo_image img;
    struct avemo_error err;
    if (avemo_media_open_memory(png, (size_t)n, NULL, &media, &err) || avemo_image_from_media(media, 3, &img, &err))
        fail_msg("%s", err.message);
    assert_int_equal(img.width, width);
    assert_int_equal(img.height, height);
    avemo_image_free(&img);
    avemo_media_close(media);
    free(png);
}

static cJSON *field(const cJSON *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) fail_msg("no \"%s\" in the answer", key);
    return v;
}

static void test_clip_explained_as_the_library_does(void **state)
{
    struct state *s = *state;
    const char *clip = TEST_DATA("cremad/1001_DFA_ANG_XX.flv");
    struct http_reply r = http_run(s->server.port, "-F 'file=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv") "'",
                                   "/v1/predict?explain=1");
    expect_status(&r, 200, NULL);
    struct avemo_explanation ex;
    struct avemo_error err;
    if (avemo_explain_file(s->ctx, clip, AVEMO_MODE_AV, &ex, &err)) fail_msg("%s", err.message);
    cJSON *e = field(r.json, "explanation");
    assert_string_equal(json_string(e, "class"), ex.pred.labels[ex.pred.label]);
    assert_string_equal(json_string(r.json, "label"), json_string(e, "class"));
    cJSON *mod = field(e, "modalities");
    double audio = json_number(field(mod, "audio"), "share"), face = json_number(field(mod, "face"), "share");
    assert_true(fabs(audio + face - 1.0) < 1e-6);
    assert_true(fabs(audio - ex.audio_share) < 1e-5 && fabs(face - ex.face_share) < 1e-5);
    cJSON *faces = field(e, "faces");
    assert_int_equal(cJSON_GetArraySize(faces), ex.nfaces);
    assert_int_equal(ex.nfaces, (int)json_number(r.json, "frames_used"));
    assert_int_equal((int)json_number(e, "face_crop_index"), ex.nfaces / 2);
    for (int i = 0; i < ex.nfaces; i++) check_png_url(json_string(cJSON_GetArrayItem(faces, i), "heatmap"), 128, 128);
    cJSON *a = field(e, "audio");
    assert_string_equal(json_string(a, "feature"), "mfcc");
    check_png_url(json_string(a, "heatmap"), 2 * 128, 2 * 40);
    avemo_explanation_free(&ex);
    http_reply_free(&r);
    /* not asked: no explanation */
    r = http_run(s->server.port, "-F 'file=@" TEST_DATA("cremad/1001_DFA_ANG_XX.flv") "'", "/v1/predict");
    expect_status(&r, 200, NULL);
    assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "explanation"));
    http_reply_free(&r);
}

/* A sound file falls back to the audio model: its share is 1, there are no face maps. */
static void test_sound_file_is_all_audio(void **state)
{
    struct state *s = *state;
    struct http_reply r = http_run(s->server.port, "-F 'file=@" TEST_DATA("audio/1001_DFA_ANG_XX.wav") "'",
                                   "/v1/predict?explain=true");
    expect_status(&r, 200, NULL);
    cJSON *e = field(r.json, "explanation"), *mod = field(e, "modalities");
    assert_true(json_number(field(mod, "audio"), "share") == 1.0);
    assert_true(json_number(field(mod, "face"), "share") == 0.0);
    assert_int_equal(cJSON_GetArraySize(field(e, "faces")), 0);
    assert_true(cJSON_IsNull(field(e, "face_crop_index")));
    assert_string_equal(json_string(r.json, "mode"), "audio");
    http_reply_free(&r);
}

static void test_bad_value_is_400(void **state)
{
    struct state *s = *state;
    struct http_reply r = http_run(s->server.port, "-F 'file=@" TEST_DATA("audio/1001_DFA_ANG_XX.wav") "'",
                                   "/v1/predict?explain=yes");
    expect_status(&r, 400, "bad_request");
    assert_non_null(strstr(r.body, "explain must be"));
    http_reply_free(&r);
}

int main(void)
{
    if (!file_exists(MODEL("avemo-av.avm"))) return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clip_explained_as_the_library_does),
        cmocka_unit_test(test_sound_file_is_all_audio),
        cmocka_unit_test(test_bad_value_is_400),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
