/*
 * Calibration and late fusion: the temperature fitted on real faces the model never saw (the
 * CREMA-D clips of actor 1001) lowers their NLL and, stored in a model file, is what evaluation
 * then applies; the ECE of a case worked out by hand; the reliability diagram is a PNG that decodes; classify says "uncertain"
 * with the top two when the top probability is under the threshold, and not otherwise; late
 * fusion is the weighted sum of the two models' log-probabilities, in classify and in eval.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/model.h>
#include <cairo.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <unistd.h>

static char paths[3][1024], tmp[64];

static int setup(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    for (int m = 0; m < 3; m++)
        if (avemo_default_model((enum avemo_mode)m, paths[m], sizeof paths[m], &err)) {
            fprintf(stderr, "%s\n", err.message);
            return -1;
        }
    return test_make_tmpdir(tmp, sizeof tmp, "calibration");
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tmpdir(tmp);
}

/* The shipped face model on the faces of the six CREMA-D clips of actor 1001 (the middle
 * frame's face), a person no shipped model trains on.  Not the CK+ or FER fixtures: the shipped
 * face model trained on every CK+ subject and on FER2013's validation faces, so evaluation
 * leaves those out by its training record. */
static void eval_unseen_faces(const char *model, struct avemo_eval_set *set)
{
    const char *data[1] = {TEST_DATA("cremad")};
    struct avemo_eval_options opt = {.data = data, .ndata = 1, .threads = 1, .seed = 1};
    struct avemo_error err = {0};
    if (avemo_evaluate(&model, 1, &opt, set, &err)) fail_msg("%s", err.message);
    assert_int_equal(set->n, 6);
    assert_int_equal(set->trained_on, 0);
}

/* The shipped face model's face.mirror_test (each face averaged with its mirror image) and its
 * networks (an ensemble's members each give their own logits). */
static int face_mirror_test(int *members)
{
    struct avemo_model m;
    struct avemo_error err = {0};
    if (avemo_model_open(paths[AVEMO_MODE_FACE], NULL, 0, &m, &err)) fail_msg("%s", err.message);
    int mirror = m.p.face.mirror_test;
    *members = avemo_net_member_count(m.net);
    avemo_model_close(&m);
    return mirror;
}

static void test_temperature_lowers_nll(void **state)
{
    (void)state;
    struct avemo_eval_set set;
    eval_unseen_faces(paths[AVEMO_MODE_FACE], &set);
    const struct avemo_eval_result *r = &set.results[0];
    int members;
    int looks = face_mirror_test(&members) ? 2 : 1; /* with the mirror image: two looks */
    assert_int_equal(r->logit_rows, looks * members);
    double before, after;
    float t = avemo_calib_fit_temperature(r->logits, r->logit_rows, set.truth, set.n, 6, &before, &after);
    printf("  CREMA-D faces: T %.3f, NLL %.3f -> %.3f\n", (double)t, before, after);
    /* The fit moved T and lowered the NLL: the face model trained on every face, right on half
     * of these, softens (2.01, 1.723 -> 1.582); on the CK+ fixtures, session 6's model softened
     * (2.31) and session 8's, right on all ten, sharpened to the range's lower edge (0.05). */
    assert_true(t != 1.0f && after < before);
    assert_true(fabs(before - avemo_calib_nll(r->logits, r->logit_rows, set.truth, set.n, 6, 1.0f)) < 1e-9);
    /* A minimum: a tenth either way inside the searched range is no better (a model right on
     * every face with a margin gains from any sharpening, so its fit ends at AVEMO_CALIB_T_MIN). */
    if (t * 1.1f <= AVEMO_CALIB_T_MAX)
        assert_true(avemo_calib_nll(r->logits, r->logit_rows, set.truth, set.n, 6, t * 1.1f) >= after);
    if (t / 1.1f >= AVEMO_CALIB_T_MIN)
        assert_true(avemo_calib_nll(r->logits, r->logit_rows, set.truth, set.n, 6, t / 1.1f) >= after);
    else
        assert_true(after < 0.5 * before); /* at the edge of the range: sharpening helped a lot */

    /* Stored in a model file, the temperature is what evaluation applies to the same raw logits. */
    char cal[128];
    snprintf(cal, sizeof cal, "%s/face-cal.avm", tmp);
    const char *names[1] = {AVEMO_CALIB_TEMPERATURE};
    const float *values[1] = {&t};
    size_t counts[1] = {1};
    struct avemo_error err = {0};
    if (avemo_model_store_arrays(paths[AVEMO_MODE_FACE], cal, 1, names, values, counts, &err)) fail_msg("%s", err.message);
    struct avemo_eval_set again;
    eval_unseen_faces(cal, &again);
    assert_memory_equal(again.results[0].logits, r->logits, sizeof(float) * (size_t)r->logit_rows * set.n * 6);
    struct avemo_reliability rel;
    assert_int_equal(avemo_eval_reliability(&again, 0, 15, &rel, &err), AVEMO_OK);
    assert_true(fabs(rel.nll - after) < 1e-4);
    assert_memory_equal(again.results[0].pred, r->pred, sizeof(int) * set.n); /* only probabilities change */
    avemo_eval_free(&again);
    avemo_eval_free(&set);
}

/* `avemo calibrate --set`: an inference setting goes into the stored pipeline with the
 * temperature (the model then opens and evaluates with it); one that would change the network,
 * or is not a valid value, is refused and nothing is written. */
static void test_settings_stored(void **state)
{
    (void)state;
    struct avemo_model m;
    struct avemo_error err = {0};
    int members;
    int mirror = face_mirror_test(&members);
    const char *flip[1] = {mirror ? "face.mirror_test=no" : "face.mirror_test=yes"};
    const float t = 1.5f;
    const char *names[1] = {AVEMO_CALIB_TEMPERATURE};
    const float *values[1] = {&t};
    size_t counts[1] = {1};
    char out[128];
    snprintf(out, sizeof out, "%s/face-set.avm", tmp);
    if (avemo_model_store(paths[AVEMO_MODE_FACE], out, flip, 1, 1, names, values, counts, &err))
        fail_msg("%s", err.message);
    if (avemo_model_open(out, NULL, 0, &m, &err)) fail_msg("%s", err.message);
    assert_int_equal(m.p.face.mirror_test, !mirror);
    size_t n = 0;
    const float *stored = avemo_net_array(m.net, AVEMO_CALIB_TEMPERATURE, &n);
    assert_true(stored && n == 1 && stored[0] == t);
    avemo_model_close(&m);
    struct avemo_eval_set set;
    eval_unseen_faces(out, &set);
    assert_int_equal(set.results[0].logit_rows, (mirror ? 1 : 2) * members); /* the mirror image as now stored */
    avemo_eval_free(&set);

    char refused[128];
    snprintf(refused, sizeof refused, "%s/face-refused.avm", tmp);
    const char *network[1] = {"head.layers=dense 6, softmax"};
    assert_int_equal(avemo_model_store(paths[AVEMO_MODE_FACE], refused, network, 1, 0, NULL, NULL, NULL, &err),
                     AVEMO_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "another network"));
    const char *bad[1] = {"face.mirror_test=maybe"};
    assert_int_not_equal(avemo_model_store(paths[AVEMO_MODE_FACE], refused, bad, 1, 0, NULL, NULL, NULL, &err), AVEMO_OK);
    assert_non_null(strstr(err.message, "mirror_test"));
    assert_int_equal(access(refused, F_OK), -1);
}

/* Four answers over two classes, 10 bins:
 *   [0.9 0.1] truth 0: right, confidence 0.9 (bin 9)    [0.8 0.2] truth 1: wrong, 0.8 (bin 8)
 *   [0.6 0.4] truth 0: right, 0.6 (bin 6)               [0.3 0.7] truth 1: right, 0.7 (bin 7)
 * gaps 0.1, 0.8, 0.4, 0.3, one answer each: ECE = 1.6 / 4 = 0.4, MCE 0.8. */
static void test_ece_by_hand(void **state)
{
    (void)state;
    const float probs[] = {0.9f, 0.1f, 0.8f, 0.2f, 0.6f, 0.4f, 0.3f, 0.7f};
    const int truth[] = {0, 1, 0, 1};
    struct avemo_reliability r;
    struct avemo_error err = {0};
    assert_int_equal(avemo_reliability_compute(probs, truth, 4, 2, 10, &r, &err), AVEMO_OK);
    assert_true(fabs(r.ece - 0.4) < 1e-6);
    assert_true(fabs(r.mce - 0.8) < 1e-6);
    assert_int_equal(r.count[9] + r.count[8] + r.count[7] + r.count[6], 4);
    assert_true(fabs(r.accuracy_all - 0.75) < 1e-9);
    assert_true(fabs(r.confidence_all - 0.75) < 1e-6); /* right on average, wrong per bin: ECE sees it */
    double nll = -(log(0.9) + log(0.2) + log(0.6) + log(0.7)) / 4;
    assert_true(fabs(r.nll - nll) < 1e-6);
    /* A confidence of exactly 1 falls in the last bin; a label that is no class is an error. */
    const float sure[] = {1.0f, 0.0f};
    assert_int_equal(avemo_reliability_compute(sure, truth, 1, 2, 15, &r, &err), AVEMO_OK);
    assert_int_equal(r.count[14], 1);
    assert_true(r.ece < 1e-9);
    const int bad[] = {5};
    assert_int_equal(avemo_reliability_compute(sure, bad, 1, 2, 15, &r, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_reliability_compute(sure, truth, 1, 2, 0, &r, &err), AVEMO_ERR_INVALID_ARG);
}

static void test_reliability_png(void **state)
{
    (void)state;
    struct avemo_eval_set set;
    eval_unseen_faces(paths[AVEMO_MODE_FACE], &set);
    struct avemo_reliability rel;
    struct avemo_error err = {0};
    char png[128];
    snprintf(png, sizeof png, "%s/reliability.png", tmp);
    assert_int_equal(avemo_eval_reliability(&set, 0, AVEMO_EVAL_ECE_BINS, &rel, &err), AVEMO_OK);
    if (avemo_plot_reliability(&rel, "CREMA-D faces", png, &err)) fail_msg("%s", err.message);
    cairo_surface_t *s = cairo_image_surface_create_from_png(png);
    assert_int_equal(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
    assert_int_equal(cairo_image_surface_get_width(s), 520);
    assert_true(cairo_image_surface_get_height(s) > 400);
    cairo_surface_destroy(s);
    /* The JSON report carries the ECE of the same bins. */
    char *json = avemo_eval_set_json(&set, 0);
    cJSON *o = cJSON_Parse(json), *c = cJSON_GetObjectItem(o, "calibration");
    assert_non_null(c);
    assert_true(fabs(cJSON_GetObjectItem(c, "ece")->valuedouble - rel.ece) < 1e-9);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "reliability")), AVEMO_EVAL_ECE_BINS);
    cJSON_Delete(o);
    free(json);
    /* Nothing to plot is an error naming the file, not an empty picture. */
    struct avemo_reliability none = {.bins = 15};
    assert_int_equal(avemo_plot_reliability(&none, "x", png, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, png));
    avemo_eval_free(&set);
}

/* A classifier of the shipped av model with the audio and face models beside it. */
static void open_classifier(const struct avemo_classifier_options *base, avemo_classifier **clf, avemo_classify_ctx **ctx)
{
    const char *extra[2] = {paths[AVEMO_MODE_AUDIO], paths[AVEMO_MODE_FACE]};
    struct avemo_classifier_options opt = *base;
    opt.extra_models = extra;
    opt.n_extra_models = 2;
    struct avemo_error err = {0};
    if (avemo_classifier_open(paths[AVEMO_MODE_AV], &opt, clf, &err) || avemo_classify_ctx_new(*clf, ctx, &err))
        fail_msg("%s", err.message);
}

static void classify(const struct avemo_classifier_options *opt, const char *file, enum avemo_mode mode,
                     struct avemo_prediction *p)
{
    avemo_classifier *clf;
    avemo_classify_ctx *ctx;
    struct avemo_error err = {0};
    open_classifier(opt, &clf, &ctx);
    if (avemo_classify_file(ctx, file, mode, p, &err)) fail_msg("%s", err.message);
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
}

static void test_uncertain(void **state)
{
    (void)state;
    struct avemo_prediction p;
    const char *clip = TEST_DATA("cremad/1001_DFA_SAD_XX.flv");
    /* Above every top probability of six classes but 1: uncertain, with the runner-up. */
    classify(&(struct avemo_classifier_options){.uncertain_below = 0.999f}, clip, AVEMO_MODE_AV, &p);
    assert_true(p.uncertain);
    assert_int_not_equal(p.second, p.label);
    for (int c = 0; c < p.num_classes; c++)
        if (c != p.label) assert_true(p.probs[c] <= p.probs[p.second]);
    char *json = avemo_prediction_json(&p, "x.flv");
    cJSON *o = cJSON_Parse(json);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "uncertain")));
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "second"), "label")->valuestring, p.labels[p.second]);
    cJSON_Delete(o);
    free(json);
    /* Never (a negative option), and the default: the model's threshold or 0.5. */
    classify(&(struct avemo_classifier_options){.uncertain_below = -1}, clip, AVEMO_MODE_AV, &p);
    assert_false(p.uncertain);
    classify(&(struct avemo_classifier_options){0}, clip, AVEMO_MODE_AUDIO, &p);
    assert_true(p.uncertain_below > 0 && p.uncertain_below < 1);
    assert_int_equal(p.uncertain, p.confidence < p.uncertain_below);
}

/* Late fusion in classify: softmax(w_a log p_audio + w_f log p_face) of the audio and face
 * modes' answers on the same clip; the head answers otherwise. */
static void test_late_fusion_classify(void **state)
{
    (void)state;
    const char *clip = TEST_DATA("cremad/1001_DFA_ANG_XX.flv");
    struct avemo_prediction late, audio, face, head;
    struct avemo_classifier_options opt = {.fusion = AVEMO_FUSION_LATE, .uncertain_below = -1};
    classify(&opt, clip, AVEMO_MODE_AV, &late);
    classify(&opt, clip, AVEMO_MODE_AUDIO, &audio);
    classify(&opt, clip, AVEMO_MODE_FACE, &face);
    assert_true(late.late_fusion);
    assert_int_equal(late.mode_used, AVEMO_MODE_AV);
    avemo_classifier *clf;
    avemo_classify_ctx *ctx;
    open_classifier(&opt, &clf, &ctx);
    struct avemo_late_fusion fu;
    float want[AVEMO_MAX_CLASSES], prior[12];
    assert_true(avemo_classifier_late_fusion(clf, &fu));
    for (int c = 0; c < 12; c++) prior[c] = fu.prior ? fu.prior[c] : 1.0f / 6; /* the av model's, else none */
    fu.prior = fu.prior ? prior : NULL;
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    double z[AVEMO_MAX_CLASSES], sum = 0;
    for (int c = 0; c < 6; c++)
        sum += z[c] = pow(audio.probs[c] / prior[c], fu.w_audio) * pow(face.probs[c] / prior[6 + c], fu.w_face);
    for (int c = 0; c < 6; c++) assert_true(fabs(late.probs[c] - z[c] / sum) < 1e-5);
    avemo_fuse_late(audio.probs, face.probs, 6, &fu, want);
    for (int c = 0; c < 6; c++) assert_true(fabsf(late.probs[c] - want[c]) < 1e-6f);
    opt.fusion = AVEMO_FUSION_HEAD;
    classify(&opt, clip, AVEMO_MODE_AV, &head);
    assert_false(head.late_fusion);
    assert_true(memcmp(head.probs, late.probs, sizeof head.probs) != 0);
}

/* Late fusion in eval: the unimodal models take the av model's units (the six CREMA-D clips),
 * and the added result is the fusion of their probabilities, unit by unit. */
static void test_late_fusion_eval(void **state)
{
    (void)state;
    const char *models[3] = {paths[AVEMO_MODE_AV], paths[AVEMO_MODE_AUDIO], paths[AVEMO_MODE_FACE]};
    const char *data[1] = {TEST_DATA("cremad")};
    struct avemo_eval_options opt = {.data = data, .ndata = 1, .threads = 1, .seed = 1};
    struct avemo_eval_set set;
    struct avemo_error err = {0};
    if (avemo_evaluate(models, 3, &opt, &set, &err)) fail_msg("%s", err.message);
    assert_int_equal(set.n, 6);
    struct avemo_late_fusion plain_product = {1, 1, NULL}, weighted = {0.8f, 0.3f, NULL};
    assert_int_equal(avemo_eval_add_late_fusion(&set, 0, 2, &plain_product, &err), AVEMO_ERR_INVALID_ARG); /* 0 is av */
    assert_int_equal(avemo_eval_add_late_fusion(&set, 1, 2, &weighted, &err), AVEMO_OK);
    assert_int_equal(set.nresults, 4);
    const struct avemo_eval_result *f = &set.results[3];
    assert_int_equal(f->metrics.n, 6);
    for (size_t u = 0; u < set.n; u++) {
        float want[6];
        avemo_fuse_late(set.results[1].probs + u * 6, set.results[2].probs + u * 6, 6, &weighted, want);
        assert_memory_equal(f->probs + u * 6, want, sizeof want);
    }
    /* Fitted weights give a fused NLL no worse than the plain product's. */
    struct avemo_reliability plain;
    assert_int_equal(avemo_eval_add_late_fusion(&set, 1, 2, &plain_product, &err), AVEMO_OK);
    avemo_eval_reliability(&set, 4, 15, &plain, &err);
    struct avemo_late_fusion fitted_fusion = {0, 0, NULL};
    double fitted = avemo_fusion_fit(set.results[1].probs, set.results[2].probs, set.truth, set.n, 6, &fitted_fusion);
    assert_true(fitted <= plain.nll + 1e-9);
    avemo_eval_free(&set);
}

/* Late fusion with the models' class priors divided out: by hand, softmax(w_a log(p_a / prior_a)
 * + w_f log(p_f / prior_f)); uniform priors change nothing; a stored prior is read normalised,
 * and one with a share of 0 or of the wrong length is not used. */
static void test_late_fusion_prior(void **state)
{
    (void)state;
    const float pa[6] = {0.05f, 0.49f, 0.03f, 0.09f, 0.17f, 0.17f}, pf[6] = {0.51f, 0.02f, 0.16f, 0.12f, 0.08f, 0.11f};
    float prior[12] = {1, 1, 1, 1, 1, 1, 0.159f, 0.051f, 0.156f, 0.287f, 0.170f, 0.177f}, uniform[12], out[6], plain[6];
    for (int c = 0; c < 12; c++) uniform[c] = 1.0f / 6;
    for (int c = 0; c < 6; c++) prior[c] = 1.0f / 6;
    struct avemo_late_fusion with = {1.035f, 0.895f, prior}, none = {1.035f, 0.895f, NULL}, flat = {1.035f, 0.895f, uniform};
    avemo_fuse_late(pa, pf, 6, &with, out);
    double z[6], sum = 0;
    for (int c = 0; c < 6; c++) sum += z[c] = pow(pa[c] / prior[c], 1.035) * pow(pf[c] / prior[6 + c], 0.895);
    for (int c = 0; c < 6; c++) assert_float_equal(out[c], z[c] / sum, 1e-6);
    assert_true(out[1] > out[0]); /* disgust, rare among the faces, is no longer outweighed by anger */
    avemo_fuse_late(pa, pf, 6, &none, plain);
    assert_true(plain[0] > plain[1]);
    avemo_fuse_late(pa, pf, 6, &flat, out);
    for (int c = 0; c < 6; c++) assert_float_equal(out[c], plain[c], 1e-6);

    struct avemo_model m;
    struct avemo_error err = {0};
    if (avemo_model_open(paths[AVEMO_MODE_FACE], NULL, 0, &m, &err)) fail_msg("%s", err.message);
    const float counts[6] = {4655, 1486, 4577, 8415, 4965, 5190}, zero[6] = {1, 0, 1, 1, 1, 1};
    float got[12];
    assert_int_equal(avemo_net_set_array(m.net, AVEMO_TRAIN_PRIOR, counts, 6, &err), AVEMO_OK);
    assert_int_equal(avemo_model_prior(m.net, AVEMO_TRAIN_PRIOR, 6, got), 1);
    assert_float_equal(got[1], 1486.0 / 29288, 1e-6);
    assert_int_equal(avemo_model_prior(m.net, AVEMO_FUSION_PRIOR, 6, got), 0); /* absent */
    assert_float_equal(got[7], 1.0 / 6, 1e-7);
    assert_int_equal(avemo_net_set_array(m.net, AVEMO_FUSION_PRIOR, counts, 6, &err), AVEMO_OK); /* 6, not 12 */
    assert_int_equal(avemo_model_prior(m.net, AVEMO_FUSION_PRIOR, 6, got), 0);
    assert_int_equal(avemo_net_set_array(m.net, AVEMO_TRAIN_PRIOR, zero, 6, &err), AVEMO_OK);
    assert_int_equal(avemo_model_prior(m.net, AVEMO_TRAIN_PRIOR, 6, got), 0);
    assert_float_equal(got[0], 1.0 / 6, 1e-7);
    avemo_model_close(&m);
    const double bad[3] = {1, -1, 2}, empty[3] = {0, 0, 0};
    assert_int_equal(avemo_prior_from_counts(bad, 3, got), -1);
    assert_int_equal(avemo_prior_from_counts(empty, 3, got), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_temperature_lowers_nll), cmocka_unit_test(test_settings_stored),
        cmocka_unit_test(test_ece_by_hand),
        cmocka_unit_test(test_reliability_png),        cmocka_unit_test(test_uncertain),
        cmocka_unit_test(test_late_fusion_classify),   cmocka_unit_test(test_late_fusion_eval),
        cmocka_unit_test(test_late_fusion_prior),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
