/* Explanations (issue 18): Grad-CAM maps and modality shares of the shipped models on fixture
 * files (and of untrained networks of other shapes on random inputs), against PyTorch (tests/reference/gradcam_torch.py with the same weights and inputs),
 * the PNGs they are drawn as, and how the shares follow the modalities a file has. */
#include "common/testutil.h"
#include "nn/nn_ref.h"

#include <avemo/eval.h>
#include <avemo/media.h>
#include <avemo/model.h>
#include <avemo/nn.h>
#include <avemo/vision.h>
#include <math.h>
#include <sys/stat.h>

#define MODEL(name) AVEMO_SOURCE_DIR "/models/" name

struct opened {
    avemo_classifier *clf;
    avemo_classify_ctx *ctx;
};

/* A classifier of `model` with the shipped unimodal models as fallbacks (as the CLI opens it). */
static void open_classifier(struct opened *o, const char *model, int fallbacks)
{
    static const char *const extra[] = {MODEL("avemo-audio.avm"), MODEL("avemo-face.avm")};
    struct avemo_classifier_options opt = {.extra_models = extra, .n_extra_models = fallbacks ? 2 : 0};
    struct avemo_error err;
    if (avemo_classifier_open(model, &opt, &o->clf, &err) || avemo_classify_ctx_new(o->clf, &o->ctx, &err))
        fail_msg("%s", err.message);
}

static void close_classifier(struct opened *o)
{
    avemo_classify_ctx_free(o->ctx);
    avemo_classifier_close(o->clf);
}

static void explain(struct opened *o, const char *file, enum avemo_mode mode, struct avemo_explanation *ex)
{
    struct avemo_error err;
    if (avemo_explain_file(o->ctx, file, mode, ex, &err)) fail_msg("%s", err.message);
}

static void write_npy(const char *dir, const char *name, const float *data, size_t n)
{
    char path[600];
    struct avemo_error err;
    snprintf(path, sizeof path, "%.256s/%.64s.npy", dir, name);
    if (avemo_write_npy(path, data, 1, &n, &err)) fail_msg("%s", err.message);
}

/* The network inputs the explanation ran: faces as classified, the audio in every row. */
static void inputs_of(const struct avemo_model *m, const struct avemo_explanation *ex, float **audio_rows,
                      const float *inputs[2], int *batch)
{
    *batch = ex->nfaces > 0 ? ex->nfaces : 1;
    *audio_rows = NULL;
    if (m->face_input >= 0) inputs[m->face_input] = ex->face_images;
    if (m->audio_input < 0) return;
    size_t af = (size_t)ex->audio_rows * ex->audio_frames;
    *audio_rows = malloc(sizeof(float) * af * (size_t)*batch);
    for (int b = 0; b < *batch; b++) memcpy(*audio_rows + b * af, ex->audio_image, sizeof(float) * af);
    inputs[m->audio_input] = *audio_rows;
}

/* Weights, statistics, inputs and what to explain, for the reference script. */
static void export_case(const char *dir, avemo_net *net, const float *const *inputs, int batch, int target,
                        unsigned shared, const struct avemo_gradcam *cams)
{
    char path[600];
    snprintf(path, sizeof path, "%.256s/pipeline.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(avemo_net_pipeline(net), f);
    fclose(f);
    size_t n;
    float *p = avemo_net_params(net, &n);
    write_npy(dir, "params", p, n);
    p = avemo_net_stats(net, &n);
    write_npy(dir, "stats", p, n);
    float meta[2 + AVEMO_NN_MAX_INPUTS] = {(float)target, (float)shared};
    for (int i = 0; i < avemo_net_input_count(net); i++) {
        const char *name;
        size_t per = avemo_net_input_shape(net, i, &name, NULL, NULL, NULL);
        char file[64];
        snprintf(file, sizeof file, "in_%s", name);
        write_npy(dir, file, inputs[i], per * (size_t)batch);
        const char *layer = cams[i].layer >= 0 ? avemo_net_layer_name(net, cams[i].layer) : NULL;
        meta[2 + i] = layer ? (float)atoi(strchr(layer, '.') + 1) : -1.0f;
    }
    write_npy(dir, "meta", meta, 2 + (size_t)avemo_net_input_count(net));
    float t = avemo_model_temperature(net); /* the shares are of the calibrated probability */
    write_npy(dir, "temperature", &t, 1);
}

/* Raw maps to 1e-3 of their largest value (each network's, against PyTorch's on its weights). */
static float *compare_raw(const char *dir, const char *name, const struct avemo_gradcam *cam)
{
    size_t n;
    char file[64], what[96];
    snprintf(file, sizeof file, "cam_%s", name);
    float *ref = nn_ref_load(dir, file, &n);
    assert_int_equal(n, (size_t)cam->maps * cam->h * cam->w);
    snprintf(what, sizeof what, "Grad-CAM of %s (%d maps of %dx%d)", name, cam->maps, cam->h, cam->w);
    nn_ref_assert_close(what, cam->cam, ref, n, 1e-3, 1e-7);
    return ref;
}

/* The explanation's normalised maps to 2e-3: PyTorch's own resized maps for one network; for an
 * ensemble, the mean of the members' PyTorch maps resized and normalised the same way. */
static void compare_heat(const char *dir, const char *name, const struct avemo_gradcam *cam, const float *torch_mean,
                         int members, const float *heat, size_t heat_n, int out_h, int out_w)
{
    size_t n;
    char file[64], what[96];
    snprintf(file, sizeof file, "heat_%s", name);
    float *ref = nn_ref_load(dir, file, &n);
    assert_int_equal(n, heat_n);
    const size_t in_plane = (size_t)cam->h * cam->w, out_plane = (size_t)out_h * out_w;
    for (int i = 0; members > 1 && i < cam->maps; i++) {
        avemo_heatmap_resize(torch_mean + i * in_plane, cam->h, cam->w, ref + i * out_plane, out_h, out_w);
        avemo_heatmap_normalise(ref + i * out_plane, out_plane);
    }
    snprintf(what, sizeof what, "heat map of %s at the input's size", name);
    nn_ref_assert_close(what, heat, ref, n, 2e-3, 0);
    free(ref);
}

/* Shapley values are linear in the game: an ensemble's are the means of its members' (sums in v, phi). */
static void add_shares(const char *dir, float *v, float *phi, int *ni, int members)
{
    size_t n, nv;
    float *vk = nn_ref_load(dir, "values", &nv);
    float *pk = nn_ref_load(dir, "shapley", &n);
    *ni = (int)n;
    for (size_t i = 0; i < nv; i++) v[i] += vk[i] / (float)members;
    for (size_t i = 0; i < n; i++) phi[i] += pk[i] / (float)members;
    free(vk);
    free(pk);
}

static void compare_shares(const float *v, const float *phi, int ni, const struct avemo_model *m,
                           const struct avemo_explanation *ex)
{
    assert_true(fabs(ex->prob_all - v[(1 << ni) - 1]) < 1e-4);
    assert_true(fabs(ex->prob_none - v[0]) < 1e-4);
    if (m->audio_input >= 0) assert_true(fabs(ex->audio_contribution - phi[m->audio_input]) < 1e-4);
    if (m->face_input >= 0) assert_true(fabs(ex->face_contribution - phi[m->face_input]) < 1e-4);
}

/* Member k's raw Grad-CAM through the public API, checked against PyTorch's on its weights;
 * PyTorch's maps are added into sums (their mean over members, by input), the maps' shapes
 * kept in shapes. */
static void check_member(const struct avemo_model *m, int k, const float *const *inputs, int batch, int target,
                         unsigned shared, const char *tag, float **sums, struct avemo_gradcam *shapes, float *v,
                         float *phi, int *ni)
{
    struct avemo_error err;
    avemo_nn_ctx *nn;
    struct avemo_gradcam cams[AVEMO_NN_MAX_INPUTS];
    if (avemo_nn_ctx_create(m->net, batch, 1, 0, &nn, &err) ||
        avemo_gradcam_run(m->member[k], nn, inputs, batch, target, shared, NULL, cams, &err))
        fail_msg("%s", err.message);
    char dir[256], cmd[1200];
    snprintf(dir, sizeof dir, "explain_torch_%s_%d", tag, k);
    mkdir(dir, 0777); /* may exist from an earlier run */
    export_case(dir, m->member[k], inputs, batch, target, shared, cams);
    snprintf(cmd, sizeof cmd, "%s %s/tests/reference/gradcam_torch.py %s", AVEMO_PYTHON, AVEMO_SOURCE_DIR, dir);
    if (system(cmd) != 0) fail_msg("reference script failed: %s", cmd);
    for (int i = 0; i < avemo_net_input_count(m->net); i++) {
        if (cams[i].layer < 0) continue;
        float *ref = compare_raw(dir, i == m->face_input ? "face" : "audio", &cams[i]);
        size_t n = (size_t)cams[i].maps * cams[i].h * cams[i].w;
        if (!sums[i]) sums[i] = calloc(n, sizeof(float));
        assert_non_null(sums[i]);
        for (size_t j = 0; j < n; j++) sums[i][j] += ref[j] / (float)m->members;
        free(ref);
        shapes[i] = cams[i];
        shapes[i].cam = NULL; /* the shape only */
    }
    add_shares(dir, v, phi, ni, m->members);
    for (int i = 0; i < avemo_net_input_count(m->net); i++) avemo_gradcam_free(&cams[i]);
    avemo_nn_ctx_free(nn);
}

/* The explanation of `file` by `model` (an ensemble: the mean of its members), each network's
 * raw Grad-CAM recomputed through the public API, all compared with PyTorch's on the same
 * weights and inputs. */
static void check_against_torch(const char *model, const char *file, enum avemo_mode mode, const char *tag)
{
    struct opened o;
    struct avemo_explanation ex;
    struct avemo_model m;
    struct avemo_error err;
    open_classifier(&o, model, 0);
    explain(&o, file, mode, &ex);
    if (avemo_model_open(model, NULL, 0, &m, &err)) fail_msg("%s", err.message);
    float *audio_rows;
    const float *inputs[2] = {0};
    int batch, ni = 0;
    inputs_of(&m, &ex, &audio_rows, inputs, &batch);
    unsigned shared = m.audio_input >= 0 ? 1u << m.audio_input : 0;
    float *sums[AVEMO_NN_MAX_INPUTS] = {0}, v[1 << AVEMO_NN_MAX_INPUTS] = {0}, phi[AVEMO_NN_MAX_INPUTS] = {0};
    struct avemo_gradcam shapes[AVEMO_NN_MAX_INPUTS];
    for (int k = 0; k < m.members; k++)
        check_member(&m, k, inputs, batch, ex.pred.label, shared, tag, sums, shapes, v, phi, &ni);
    char dir[256];
    snprintf(dir, sizeof dir, "explain_torch_%s_0", tag);
    if (m.face_input >= 0)
        compare_heat(dir, "face", &shapes[m.face_input], sums[m.face_input], m.members, ex.face_heat,
                     (size_t)ex.nfaces * ex.face_size * ex.face_size, ex.face_size, ex.face_size);
    if (m.audio_input >= 0)
        compare_heat(dir, "audio", &shapes[m.audio_input], sums[m.audio_input], m.members, ex.audio_heat,
                     (size_t)ex.audio_rows * ex.audio_frames, ex.audio_rows, ex.audio_frames);
    compare_shares(v, phi, ni, &m, &ex);
    for (int i = 0; i < AVEMO_NN_MAX_INPUTS; i++) free(sums[i]);
    free(audio_rows);
    avemo_model_close(&m);
    avemo_explanation_free(&ex);
    close_classifier(&o);
}

static void test_gradcam_av_matches_torch(void **state)
{
    (void)state;
    check_against_torch(MODEL("avemo-av.avm"), TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), AVEMO_MODE_AV, "av");
}

static void test_gradcam_audio_matches_torch(void **state)
{
    (void)state;
    check_against_torch(MODEL("avemo-audio.avm"), TEST_DATA("audio/1002_DFA_SAD_XX.wav"), AVEMO_MODE_AUDIO, "audio");
}

static void test_gradcam_face_matches_torch(void **state)
{
    (void)state;
    check_against_torch(MODEL("avemo-face.avm"), TEST_DATA("faces/happy_PublicTest_10130075.jpg"), AVEMO_MODE_FACE,
                        "face");
}

/* Untrained networks of other shapes (log-mel 128x128 with valid convolutions and flatten; MFCC
 * convolutions feeding an LSTM), two random samples, each sample its own map. */
static void check_pipeline_against_torch(const char *pipeline, const char *tag)
{
    struct avemo_error err;
    avemo_net *net;
    char path[512], dir[256], cmd[1200];
    snprintf(path, sizeof path, "%s/pipelines/%s.ini", AVEMO_SOURCE_DIR, pipeline);
    if (avemo_net_create_file(path, &net, &err)) fail_msg("%s", err.message);
    avemo_net_init(net, AVEMO_NN_INIT_DEFAULT, 3);
    enum { BATCH = 2 };
    float *x = nn_random_batch(net, 0, BATCH, 11);
    const float *inputs[1] = {x};
    avemo_nn_ctx *nn;
    struct avemo_gradcam cam;
    if (avemo_nn_ctx_create(net, BATCH, 1, 0, &nn, &err) ||
        avemo_gradcam_run(net, nn, inputs, BATCH, 2, 0, NULL, &cam, &err))
        fail_msg("%s", err.message);
    assert_true(cam.layer >= 0 && cam.maps == BATCH);
    int c, h, w;
    avemo_net_input_shape(net, 0, NULL, &c, &h, &w);
    float *heat = malloc(sizeof(float) * BATCH * h * w);
    for (int b = 0; b < BATCH; b++) {
        avemo_heatmap_resize(cam.cam + (size_t)b * cam.h * cam.w, cam.h, cam.w, heat + (size_t)b * h * w, h, w);
        avemo_heatmap_normalise(heat + (size_t)b * h * w, (size_t)h * w);
    }
    struct avemo_modality_shares sh;
    if (avemo_modality_shares(net, nn, inputs, BATCH, 2, &sh, &err)) fail_msg("%s", err.message);
    assert_true(sh.inputs == 1 && sh.share[0] == 1.0f);
    snprintf(dir, sizeof dir, "explain_torch_%s", tag);
    mkdir(dir, 0777);
    export_case(dir, net, inputs, BATCH, 2, 0, &cam);
    snprintf(cmd, sizeof cmd, "%s %s/tests/reference/gradcam_torch.py %s", AVEMO_PYTHON, AVEMO_SOURCE_DIR, dir);
    if (system(cmd) != 0) fail_msg("reference script failed: %s", cmd);
    free(compare_raw(dir, "audio", &cam));
    compare_heat(dir, "audio", &cam, NULL, 1, heat, (size_t)BATCH * h * w, h, w);
    size_t n;
    float *v = nn_ref_load(dir, "values", &n);
    assert_int_equal(n, 2);
    assert_true(fabsf(sh.prob_all - v[1]) < 1e-4f && fabsf(sh.prob_none - v[0]) < 1e-4f);
    free(v);
    free(heat);
    free(x);
    avemo_gradcam_free(&cam);
    avemo_nn_ctx_free(nn);
    avemo_net_free(net);
}

static void test_gradcam_logmel_cnn_matches_torch(void **state)
{
    (void)state;
    check_pipeline_against_torch("ser-melspec-cnn", "melspec");
}

static void test_gradcam_cnn_lstm_matches_torch(void **state)
{
    (void)state;
    check_pipeline_against_torch("ser-mfcc-cnnlstm", "cnnlstm");
}

/* A PNG of avemo_heatmap_png decoded by FFmpeg: its size, and the colour at the map's hottest
 * point is red (the colour map's top) more than blue. */
static void check_png(const struct avemo_heatmap *map, int width, int height)
{
    uint8_t *png;
    size_t size;
    struct avemo_error err;
    avemo_media *media;
    struct avemo_image img;
    if (avemo_heatmap_png(map, &png, &size, &err)) fail_msg("%s", err.message);
    assert_true(size > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    if (avemo_media_open_memory(png, size, NULL, &media, &err) || avemo_image_from_media(media, 3, &img, &err))
        fail_msg("%s", err.message);
    assert_int_equal(img.width, width);
    assert_int_equal(img.height, height);
    int hot = 0;
    for (int p = 1; p < map->width * map->height; p++)
        if (map->heat[p] > map->heat[hot]) hot = p;
    assert_true(map->heat[hot] == 1.0f); /* normalised */
    int x = hot % map->width, y = hot / map->width, scale = width / map->width;
    if (map->flip) y = map->height - 1 - y;
    const uint8_t *px = img.data + ((size_t)(y * scale + scale / 2) * img.width + x * scale + scale / 2) * 3;
    assert_true(px[0] > px[2] + 40);
    avemo_image_free(&img);
    avemo_media_close(media);
    free(png);
}

static void test_pngs_decode_with_their_size(void **state)
{
    (void)state;
    struct opened o;
    struct avemo_explanation ex;
    open_classifier(&o, MODEL("avemo-av.avm"), 0);
    explain(&o, TEST_DATA("cremad/1001_DFA_HAP_XX.flv"), AVEMO_MODE_AV, &ex);
    assert_true(ex.nfaces >= 1 && ex.has_audio);
    struct avemo_heatmap map;
    for (int i = 0; i < ex.nfaces; i++) {
        avemo_explanation_face_map(&ex, i, &map);
        check_png(&map, 4 * ex.face_size, 4 * ex.face_size); /* 256 x 256 */
    }
    avemo_explanation_audio_map(&ex, &map);
    check_png(&map, 4 * ex.audio_frames, 4 * ex.audio_rows); /* 512 x 160 */
    assert_int_equal(ex.audio_frames * 4, 512);
    assert_int_equal(ex.audio_rows * 4, 160);
    char dir[64], path[128];
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "explain"), 0);
    snprintf(path, sizeof path, "%s/nodir/audio.png", dir);
    struct avemo_error err;
    assert_int_equal(avemo_heatmap_write_png(&map, path, &err), AVEMO_ERR_IO);
    assert_non_null(strstr(err.message, path)); /* the error names the file */
    snprintf(path, sizeof path, "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
    avemo_explanation_free(&ex);
    close_classifier(&o);
}

/* Shares sum to 1 and follow what the file has: both branches for a clip; the answering unimodal
 * model's modality alone for a sound file, a photo or a clip without sound. */
static void test_shares_follow_the_modalities(void **state)
{
    (void)state;
    struct opened o;
    struct avemo_explanation ex;
    open_classifier(&o, MODEL("avemo-av.avm"), 1);
    explain(&o, TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), AVEMO_MODE_AV, &ex);
    assert_int_equal(ex.pred.mode_used, AVEMO_MODE_AV);
    assert_true(fabsf(ex.audio_share + ex.face_share - 1.0f) < 1e-6f);
    assert_true(ex.audio_share > 0.0f && ex.face_share > 0.0f);
    /* Shapley values add up to what both branches together change */
    assert_true(fabsf(ex.audio_contribution + ex.face_contribution - (ex.prob_all - ex.prob_none)) < 1e-5f);
    /* with nothing occluded the head gives the classification's own probability (no mirroring) */
    assert_true(fabsf(ex.prob_all - ex.pred.confidence) < 1e-5f);
    assert_true(ex.nfaces == ex.pred.frames_used && ex.has_audio);
    avemo_explanation_free(&ex);

    static const struct {
        const char *file;
        enum avemo_mode used;
    } unimodal[] = {
        {TEST_DATA("audio/1001_DFA_ANG_XX.wav"), AVEMO_MODE_AUDIO},
        {TEST_DATA("faces/happy_PublicTest_10130075.jpg"), AVEMO_MODE_FACE},
        {TEST_DATA("media/noaudio_1001_DFA_ANG_XX.flv"), AVEMO_MODE_FACE},
    };
    for (size_t i = 0; i < sizeof unimodal / sizeof unimodal[0]; i++) {
        explain(&o, unimodal[i].file, AVEMO_MODE_AV, &ex);
        assert_int_equal(ex.pred.mode_used, unimodal[i].used);
        int audio = unimodal[i].used == AVEMO_MODE_AUDIO;
        assert_true(ex.audio_share == (audio ? 1.0f : 0.0f) && ex.face_share == (audio ? 0.0f : 1.0f));
        assert_int_equal(ex.has_audio, audio);
        assert_int_equal(ex.nfaces > 0, !audio);
        avemo_explanation_free(&ex);
    }
    close_classifier(&o);
}

/* The class's probability from one model at its late-fusion weight, the other left out (uniform). */
static float alone(const float *p, int k, float w, const float *prior, int is_audio, int c)
{
    float uniform[AVEMO_MAX_CLASSES], out[AVEMO_MAX_CLASSES];
    for (int i = 0; i < k; i++) uniform[i] = 1.0f / (float)k;
    struct avemo_late_fusion f = {is_audio ? w : 0, is_audio ? 0 : w, prior};
    avemo_fuse_late(is_audio ? p : uniform, is_audio ? uniform : p, k, &f, out);
    return out[c];
}

static void classify_with(const char *model, const char *file, enum avemo_mode mode, struct avemo_prediction *pred)
{
    struct opened o;
    struct avemo_error err;
    open_classifier(&o, model, 0);
    if (avemo_classify_file(o.ctx, file, mode, pred, &err)) fail_msg("%s", err.message);
    close_classifier(&o);
}

/* The shipped av model answers by late fusion: the explanation is of what answered, the audio
 * model's map and the face model's maps, and the shares are the two models' Shapley values in
 * the fused probability (recomputed here from each model's own classification). */
static void test_late_fusion_explains_both_models(void **state)
{
    (void)state;
    const char *clip = TEST_DATA("cremad/1001_DFA_ANG_XX.flv");
    struct opened o;
    struct avemo_explanation ex;
    struct avemo_late_fusion fu;
    open_classifier(&o, MODEL("avemo-av.avm"), 1);
    if (avemo_classifier_late_fusion(o.clf, &fu) != 1) skip(); /* the shipped av model selects its head */
    explain(&o, clip, AVEMO_MODE_AV, &ex);
    assert_int_equal(ex.pred.late_fusion, 1);
    assert_string_equal(ex.audio_model, "avemo-audio");
    assert_string_equal(ex.face_model, "avemo-face");
    assert_true(ex.has_audio && ex.nfaces == ex.pred.frames_used);
    struct avemo_prediction pa, pf;
    classify_with(MODEL("avemo-audio.avm"), clip, AVEMO_MODE_AUDIO, &pa);
    classify_with(MODEL("avemo-face.avm"), clip, AVEMO_MODE_FACE, &pf);
    const int k = ex.pred.num_classes, c = ex.pred.label;
    float va = alone(pa.probs, k, fu.w_audio, fu.prior, 1, c), vf = alone(pf.probs, k, fu.w_face, fu.prior, 0, c);
    float none = 1.0f / (float)k;
    assert_float_equal(ex.prob_none, none, 1e-6);
    assert_float_equal(ex.prob_all, ex.pred.confidence, 1e-6);
    assert_float_equal(ex.audio_contribution, 0.5f * ((va - none) + (ex.prob_all - vf)), 1e-5);
    assert_float_equal(ex.face_contribution, 0.5f * ((vf - none) + (ex.prob_all - va)), 1e-5);
    assert_float_equal(ex.audio_share + ex.face_share, 1.0f, 1e-6);
    char *json = avemo_explanation_json(&ex, clip, NULL, NULL);
    assert_non_null(strstr(json, "\"occlusion\":\"model\""));
    assert_non_null(strstr(json, "\"model\":\"avemo-audio\""));
    free(json);
    avemo_explanation_free(&ex);
    close_classifier(&o);
}

/* --fusion head on a calibrated av model: the shares are of the probability the answer reports
 * (softmax of the logits over the model's temperature), not of the raw softmax. */
static void test_head_shares_use_the_temperature(void **state)
{
    (void)state;
    static const char *const extra[] = {MODEL("avemo-audio.avm"), MODEL("avemo-face.avm")};
    struct avemo_classifier_options opt = {.extra_models = extra, .n_extra_models = 2, .fusion = AVEMO_FUSION_HEAD};
    struct opened o;
    struct avemo_error err;
    struct avemo_explanation ex;
    if (avemo_classifier_open(MODEL("avemo-av.avm"), &opt, &o.clf, &err) || avemo_classify_ctx_new(o.clf, &o.ctx, &err))
        fail_msg("%s", err.message);
    explain(&o, TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), AVEMO_MODE_AV, &ex);
    assert_int_equal(ex.pred.late_fusion, 0);
    assert_string_equal(ex.audio_model, "avemo-av");
    assert_float_equal(ex.prob_all, ex.pred.confidence, 1e-5);
    assert_float_equal(ex.audio_contribution + ex.face_contribution, ex.prob_all - ex.prob_none, 1e-5);
    avemo_explanation_free(&ex);
    close_classifier(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcam_av_matches_torch),
        cmocka_unit_test(test_late_fusion_explains_both_models),
        cmocka_unit_test(test_head_shares_use_the_temperature),
        cmocka_unit_test(test_gradcam_audio_matches_torch),
        cmocka_unit_test(test_gradcam_face_matches_torch),
        cmocka_unit_test(test_gradcam_logmel_cnn_matches_torch),
        cmocka_unit_test(test_gradcam_cnn_lstm_matches_torch),
        cmocka_unit_test(test_pngs_decode_with_their_size),
        cmocka_unit_test(test_shares_follow_the_modalities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
