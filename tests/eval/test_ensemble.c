/*
 * Ensembles (avemo_model_ensemble, `avemo ensemble`): the first network of the shipped voice model
 * (itself an ensemble of two seeds, taken apart by avemo_model_ensemble_member) and a copy with
 * other weights joined in one file answer a real clip with the mean of the two models'
 * probabilities; evaluation sees one logit row per member; a stored temperature is reset; the
 * training record is the union; models that take other inputs or have another network are
 * refused by name; a member taken out of an ensemble answers as that network alone.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/model.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char shipped[1024], face[1024], tmp[64], base[1100], a_path[1100], b_path[1100], e_path[1100];

/* b: the shipped model with every weight moved by up to 20%, deterministically (another member's
 * answers and maps: not a scaled copy, whose normalised Grad-CAM maps would be the same). */
static int make_other_member(const char *in, const char *out)
{
    struct avemo_error err = {0};
    avemo_net *net;
    if (avemo_net_load(in, &net, &err)) return fprintf(stderr, "%s\n", err.message), -1;
    size_t n = 0;
    float *p = avemo_net_params(net, &n);
    for (size_t i = 0; i < n; i++) p[i] *= 1.0f + 0.2f * sinf((float)i);
    int rc = avemo_net_save(net, out, &err) == AVEMO_OK ? 0 : -1;
    avemo_net_free(net);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    if (avemo_default_model(AVEMO_MODE_AUDIO, shipped, sizeof shipped, &err) ||
        avemo_default_model(AVEMO_MODE_FACE, face, sizeof face, &err) || test_make_tmpdir(tmp, sizeof tmp, "ensemble"))
        return -1;
    snprintf(base, sizeof base, "%s/base.avm", tmp);
    snprintf(a_path, sizeof a_path, "%s/a.avm", tmp);
    snprintf(b_path, sizeof b_path, "%s/b.avm", tmp);
    snprintf(e_path, sizeof e_path, "%s/e.avm", tmp);
    /* base: the shipped model's first network with a temperature of its own; a: the same
     * without one, so that the mean of the members' probabilities is the ensemble's. */
    const char *names[1] = {AVEMO_CALIB_TEMPERATURE};
    const float one = 1.0f, t = 1.5f, *values[1] = {&t}, *ones[1] = {&one};
    const size_t counts[1] = {1};
    if (avemo_model_ensemble_member(shipped, 0, base, &err) ||
        avemo_model_store_arrays(base, base, 1, names, values, counts, &err) ||
        avemo_model_store_arrays(base, a_path, 1, names, ones, counts, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    return make_other_member(a_path, b_path);
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tmpdir(tmp);
}

static void classify_audio(const char *model, struct avemo_prediction *pred)
{
    struct avemo_error err = {0};
    avemo_classifier *clf;
    avemo_classify_ctx *ctx;
    if (avemo_classifier_open(model, NULL, &clf, &err) || avemo_classify_ctx_new(clf, &ctx, &err)) fail_msg("%s", err.message);
    if (avemo_classify_file(ctx, TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), AVEMO_MODE_AUDIO, pred, &err))
        fail_msg("%s", err.message);
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
}

/* The ensemble at whole answers the clip with the mean of the answers of x and y, which differ. */
static void expect_mean_of(const char *whole, const char *x, const char *y)
{
    struct avemo_prediction pw, px, py;
    classify_audio(whole, &pw);
    classify_audio(x, &px);
    classify_audio(y, &py);
    float apart = 0;
    for (int c = 0; c < pw.num_classes; c++) {
        assert_float_equal(pw.probs[c], 0.5f * (px.probs[c] + py.probs[c]), 1e-5);
        apart = fmaxf(apart, fabsf(px.probs[c] - py.probs[c]));
    }
    assert_true(apart > 0.01f); /* the members answer differently */
}

static void test_mean_of_members(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    const char *members[2] = {a_path, b_path};
    int n = 0;
    assert_int_equal(avemo_model_ensemble(members, 2, e_path, &n, &err), AVEMO_OK);
    assert_int_equal(n, 2);
    expect_mean_of(e_path, a_path, b_path);
    struct avemo_model m;
    assert_int_equal(avemo_model_open(e_path, NULL, 0, &m, &err), AVEMO_OK);
    assert_int_equal(m.members, 2);
    assert_int_equal(avemo_model_logit_rows(&m, 0), 2);
    assert_int_equal(avemo_model_logit_rows(&m, 1), 4);
    avemo_model_close(&m);
}

/* A member's temperature belongs to it alone; the record is the union (same files here). */
static void test_temperature_and_record(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    const char *members[2] = {base, b_path};
    assert_int_equal(avemo_model_ensemble(members, 2, e_path, NULL, &err), AVEMO_OK);
    avemo_net *s, *e;
    assert_int_equal(avemo_net_load(base, &s, &err), AVEMO_OK);
    assert_int_equal(avemo_net_load(e_path, &e, &err), AVEMO_OK);
    assert_true(avemo_model_temperature(s) > 1.1f);
    assert_float_equal(avemo_model_temperature(e), 1.0f, 0);
    size_t ns = 0, ne = 0;
    avemo_net_record(s, &ns);
    avemo_net_record(e, &ne);
    assert_true(ns > 100);
    assert_int_equal(ne, ns);
    assert_int_equal(avemo_net_member_count(e), 2);
    avemo_net_free(s);
    avemo_net_free(e);
}

/* Grad-CAM of member path for class target on the audio features x (rows x frames). */
static float *member_cam(const char *path, const float *x, int target, int *h, int *w)
{
    struct avemo_error err = {0};
    struct avemo_model m;
    avemo_nn_ctx *nn;
    struct avemo_gradcam cams[AVEMO_NN_MAX_INPUTS];
    const float *inputs[1] = {x};
    if (avemo_model_open(path, NULL, 0, &m, &err) || avemo_nn_ctx_create(m.net, 1, 1, 0, &nn, &err) ||
        avemo_gradcam_run(m.net, nn, inputs, 1, target, 0, NULL, cams, &err))
        fail_msg("%s", err.message);
    float *cam = cams[0].cam;
    *h = cams[0].h;
    *w = cams[0].w;
    cams[0].cam = NULL;
    avemo_gradcam_free(&cams[0]);
    avemo_nn_ctx_free(nn);
    avemo_model_close(&m);
    return cam;
}

/* The ensemble's audio heat map is the mean of its members' Grad-CAM maps, resized and normalised. */
static void test_explain_mean_of_members(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    const char *members[2] = {a_path, b_path};
    assert_int_equal(avemo_model_ensemble(members, 2, e_path, NULL, &err), AVEMO_OK);
    /* a temperature, which every member's share of the answer must use */
    const char *names[1] = {AVEMO_CALIB_TEMPERATURE};
    const float two = 2.0f, *values[1] = {&two};
    const size_t counts[1] = {1};
    assert_int_equal(avemo_model_store_arrays(e_path, e_path, 1, names, values, counts, &err), AVEMO_OK);
    avemo_classifier *clf;
    avemo_classify_ctx *ctx;
    struct avemo_explanation ex;
    if (avemo_classifier_open(e_path, NULL, &clf, &err) || avemo_classify_ctx_new(clf, &ctx, &err) ||
        avemo_explain_file(ctx, TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), AVEMO_MODE_AUDIO, &ex, &err))
        fail_msg("%s", err.message);
    assert_true(fabsf(ex.prob_all - ex.pred.probs[ex.pred.label]) < 1e-5f);
    int h, w, h2, w2;
    float *ca = member_cam(a_path, ex.audio_image, ex.pred.label, &h, &w);
    float *cb = member_cam(b_path, ex.audio_image, ex.pred.label, &h2, &w2);
    assert_true(h == h2 && w == w2);
    const size_t n = (size_t)ex.audio_rows * ex.audio_frames;
    float *want = malloc(sizeof(float) * n), *only_a = malloc(sizeof(float) * n);
    assert_non_null(want);
    assert_non_null(only_a);
    avemo_heatmap_resize(ca, h, w, only_a, ex.audio_rows, ex.audio_frames);
    avemo_heatmap_normalise(only_a, n);
    for (int i = 0; i < h * w; i++) ca[i] = 0.5f * (ca[i] + cb[i]);
    avemo_heatmap_resize(ca, h, w, want, ex.audio_rows, ex.audio_frames);
    avemo_heatmap_normalise(want, n);
    float worst = 0, apart = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmaxf(worst, fabsf(ex.audio_heat[i] - want[i]));
        apart = fmaxf(apart, fabsf(only_a[i] - want[i]));
    }
    assert_true(worst < 1e-4f);
    assert_true(apart > 1e-2f); /* member a's map alone would not pass */
    free(want);
    free(only_a);
    free(ca);
    free(cb);
    avemo_explanation_free(&ex);
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
}

static void test_refused(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    const char *other_net[2] = {a_path, face};
    assert_int_equal(avemo_model_ensemble(other_net, 2, e_path, NULL, &err), AVEMO_ERR_MISMATCH);
    assert_non_null(strstr(err.message, face));
    const char *one[1] = {a_path};
    assert_int_equal(avemo_model_ensemble(one, 1, e_path, NULL, &err), AVEMO_ERR_INVALID_ARG);
    /* an ensemble may grow, but not be a later member */
    const char *pair[2] = {a_path, b_path};
    char e2[1200];
    snprintf(e2, sizeof e2, "%s/e2.avm", tmp);
    assert_int_equal(avemo_model_ensemble(pair, 2, e2, NULL, &err), AVEMO_OK);
    const char *nested[2] = {a_path, e2};
    assert_int_equal(avemo_model_ensemble(nested, 2, e_path, NULL, &err), AVEMO_ERR_UNSUPPORTED);
    const char *grow[2] = {e2, a_path};
    int n = 0;
    assert_int_equal(avemo_model_ensemble(grow, 2, e_path, &n, &err), AVEMO_OK);
    assert_int_equal(n, 3);
}

/* The shipped voice ensemble taken apart: its answer (temperature 1) is the mean of its two
 * members' answers, each member keeps the record and none has members; a member it does not
 * have is refused by number. */
static void test_member_taken_out(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    char whole[1200], m0[1200], m1[1200];
    snprintf(whole, sizeof whole, "%s/whole.avm", tmp);
    snprintf(m0, sizeof m0, "%s/m0.avm", tmp);
    snprintf(m1, sizeof m1, "%s/m1.avm", tmp);
    const char *names[1] = {AVEMO_CALIB_TEMPERATURE};
    const float one = 1.0f, *values[1] = {&one};
    const size_t counts[1] = {1};
    assert_int_equal(avemo_model_store_arrays(shipped, whole, 1, names, values, counts, &err), AVEMO_OK);
    assert_int_equal(avemo_model_ensemble_member(shipped, 0, m0, &err), AVEMO_OK);
    assert_int_equal(avemo_model_ensemble_member(shipped, 1, m1, &err), AVEMO_OK);
    expect_mean_of(whole, m0, m1); /* two seeds, two answers */
    avemo_net *s, *m;
    assert_int_equal(avemo_net_load(shipped, &s, &err), AVEMO_OK);
    assert_int_equal(avemo_net_load(m1, &m, &err), AVEMO_OK);
    assert_int_equal(avemo_net_member_count(s), 2);
    assert_int_equal(avemo_net_member_count(m), 1);
    size_t ns = 0, nm = 0;
    avemo_net_record(s, &ns);
    avemo_net_record(m, &nm);
    assert_true(ns > 100 && nm == ns);
    avemo_net_free(s);
    avemo_net_free(m);
    assert_int_equal(avemo_model_ensemble_member(shipped, 2, m1, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "member 2"));
}

/* A member without a training record leaves the ensemble without one (a partial union would
 * let avemo eval test on what that member learnt from), wherever the member stands. */
static void test_member_without_record(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    char bare[1200];
    snprintf(bare, sizeof bare, "%s/bare.avm", tmp);
    avemo_net *net;
    if (avemo_net_load(b_path, &net, &err)) fail_msg("%s", err.message);
    assert_true(avemo_net_has_record(net));
    avemo_net_clear_record(net);
    if (avemo_net_save(net, bare, &err)) fail_msg("%s", err.message);
    avemo_net_free(net);
    const char *orders[2][2] = {{a_path, bare}, {bare, a_path}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(avemo_model_ensemble(orders[i], 2, e_path, NULL, &err), AVEMO_OK);
        if (avemo_net_load(e_path, &net, &err)) fail_msg("%s", err.message);
        assert_false(avemo_net_has_record(net));
        avemo_net_free(net);
    }
}

/* Which pipeline differences make other inputs: every [audio] setting and the [face] settings
 * that decide a crop; not how often a model is asked (frames, track, mirror test) nor where the
 * same cascade file is installed. */
static void expect_differs(const struct avemo_pipeline *a, const struct avemo_pipeline *b, const char *want)
{
    const char *what = avemo_pipeline_inputs_differ(a, b);
    if (!what) fail_msg("no difference found; expected \"%s\"", want);
    assert_string_equal(what, want);
}

static void test_inputs_differ(void **state)
{
    (void)state;
    struct avemo_pipeline a, b;
    avemo_pipeline_default(&a);
    b = a;
    assert_null(avemo_pipeline_inputs_differ(&a, &b));
    b.face.frames = 16, b.face.track = !a.face.track, b.face.mirror_test = !a.face.mirror_test;
    snprintf(b.face.cascade, sizeof b.face.cascade, "/opt/elsewhere/haarcascade_frontalface_default.xml");
    assert_null(avemo_pipeline_inputs_differ(&a, &b));
    b.face.margin = a.face.margin + 0.05;
    expect_differs(&a, &b, "[face] settings are");
    b = a;
    snprintf(b.face.cascade, sizeof b.face.cascade, "/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt.xml");
    expect_differs(&a, &b, "[face] settings are");
    b = a;
    b.face.detect.min_width = a.face.detect.min_width + 8;
    expect_differs(&a, &b, "[face] settings are");
    b = a;
    b.audio.hop = a.audio.hop / 2;
    expect_differs(&a, &b, "[audio] settings are");
    b = a;
    b.audio.deltas = a.audio.deltas ? 0 : 2;
    expect_differs(&a, &b, "[audio] settings are");
    b = a;
    b.mode = a.mode == AVEMO_MODE_AV ? AVEMO_MODE_AUDIO : AVEMO_MODE_AV;
    expect_differs(&a, &b, "mode is");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mean_of_members),
        cmocka_unit_test(test_temperature_and_record),
        cmocka_unit_test(test_explain_mean_of_members),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_inputs_differ),
        cmocka_unit_test(test_member_without_record),
        cmocka_unit_test(test_member_taken_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
