/*
 * Ensembles (avemo_model_ensemble, `avemo ensemble`): the shipped voice model and a copy with other
 * weights joined in one file answer a real clip with the mean of the two models' probabilities;
 * evaluation sees one logit row per member; a stored temperature is reset; the training record is
 * the union; models that take other inputs or have another network are refused by name.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/model.h>
#include <math.h>
#include <string.h>

static char shipped[1024], face[1024], tmp[64], a_path[1100], b_path[1100], e_path[1100];

/* b: the shipped model with the last dense layer's weights halved (another member's answers). */
static int make_other_member(const char *in, const char *out)
{
    struct avemo_error err = {0};
    avemo_net *net;
    if (avemo_net_load(in, &net, &err)) return fprintf(stderr, "%s\n", err.message), -1;
    size_t offset = 0, n = 0;
    for (int l = avemo_net_layer_count(net) - 1; l >= 0 && !n; l--)
        if (strcmp(avemo_net_layer_type(net, l), "dense") == 0) n = avemo_net_layer_params(net, l, &offset);
    float *p = avemo_net_params(net, NULL);
    for (size_t i = 0; i < n; i++) p[offset + i] *= 0.5f;
    int rc = n && avemo_net_save(net, out, &err) == AVEMO_OK ? 0 : -1;
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
    snprintf(a_path, sizeof a_path, "%s/a.avm", tmp);
    snprintf(b_path, sizeof b_path, "%s/b.avm", tmp);
    snprintf(e_path, sizeof e_path, "%s/e.avm", tmp);
    /* Members without a temperature, so that the mean of their probabilities is the ensemble's. */
    const char *names[1] = {AVEMO_CALIB_TEMPERATURE};
    const float one = 1.0f, *values[1] = {&one};
    const size_t counts[1] = {1};
    if (avemo_model_store_arrays(shipped, a_path, 1, names, values, counts, &err)) return -1;
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

static void test_mean_of_members(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    const char *members[2] = {a_path, b_path};
    int n = 0;
    assert_int_equal(avemo_model_ensemble(members, 2, e_path, &n, &err), AVEMO_OK);
    assert_int_equal(n, 2);
    struct avemo_prediction pa, pb, pe;
    classify_audio(a_path, &pa);
    classify_audio(b_path, &pb);
    classify_audio(e_path, &pe);
    float apart = 0;
    for (int c = 0; c < pe.num_classes; c++) {
        assert_float_equal(pe.probs[c], 0.5f * (pa.probs[c] + pb.probs[c]), 1e-5);
        apart = fmaxf(apart, fabsf(pa.probs[c] - pb.probs[c]));
    }
    assert_true(apart > 0.01f); /* the members answer differently */
    struct avemo_model m;
    assert_int_equal(avemo_model_open(e_path, NULL, 0, &m, &err), AVEMO_OK);
    assert_int_equal(m.members, 2);
    assert_int_equal(avemo_model_logit_rows(&m, 0), 2);
    assert_int_equal(avemo_model_logit_rows(&m, 1), 4);
    avemo_model_close(&m);
}

/* The shipped model's temperature belongs to it alone; the record is the union (same files here). */
static void test_temperature_and_record(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    const char *members[2] = {shipped, b_path};
    assert_int_equal(avemo_model_ensemble(members, 2, e_path, NULL, &err), AVEMO_OK);
    avemo_net *s, *e;
    assert_int_equal(avemo_net_load(shipped, &s, &err), AVEMO_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mean_of_members),
        cmocka_unit_test(test_temperature_and_record),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
