/*
 * Smoke training on the six real CREMA-D clips: the audio-visual path end to
 * end (decode, MFCC, face detection, dual-stream CNN, Adam).  The model must
 * fit its six clips, save, load, and then classify each clip correctly.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/model.h>
#include <avemo/nn.h>

#include <math.h>
#include <avemo/train.h>

static char dir[64];

/* Options for a quiet run of a tests/train pipeline on one --data. */
static struct avemo_train_options smoke_options(const char *pipeline, const char *const *data, const char *out,
                                                const char *cache, const char *const *overrides, int noverrides)
{
    struct avemo_train_options opt = {0};
    opt.pipeline_path = pipeline;
    opt.data = data;
    opt.ndata = 1;
    opt.out_path = out;
    opt.cache_path = cache;
    opt.overrides = overrides;
    opt.noverrides = noverrides;
    opt.quiet = 1;
    return opt;
}

static void test_smoke_av_fits_six_clips(void **state)
{
    (void)state;
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "smoke"), 0);
    char model[128], cache[128];
    snprintf(model, sizeof model, "%s/smoke.avm", dir);
    snprintf(cache, sizeof cache, "%s/features.cache", dir);
    const char *data[1] = {TEST_DATA("cremad")};
    struct avemo_train_options opt =
        smoke_options(AVEMO_SOURCE_DIR "/tests/train/smoke-av.ini", data, model, cache, NULL, 0);
    struct avemo_train_result res;
    struct avemo_error err = {0};
    enum avemo_status st = avemo_train_run(&opt, &res, &err);
    if (st) fail_msg("%s", err.message);
    printf("  %d epochs (best %d), train accuracy %.3f, %.1f s\n", res.epochs_run, res.best_epoch, res.train_acc, res.seconds);
    assert_int_equal(res.n_train, 6);
    assert_int_equal(res.skipped, 0);
    assert_true(res.train_acc == 1.0);
    /* The model records the six clips it learnt from, and evaluation refuses to score it on them. */
    assert_int_equal(res.recorded[0] + res.recorded[1], 6);
    struct avemo_eval_options eo = {0};
    const char *models[1] = {model};
    struct avemo_eval_set set;
    eo.data = data;
    eo.ndata = 1;
    assert_int_equal(avemo_evaluate(models, 1, &eo, &set, &err), AVEMO_ERR_EMPTY);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "every test item is a file the model(s) were trained or validated on (6"));

    /* The saved model classifies each clip as its file name says. */
    avemo_classifier *clf = NULL;
    avemo_classify_ctx *ctx = NULL;
    st = avemo_classifier_open(model, NULL, &clf, &err);
    if (st) fail_msg("%s", err.message);
    assert_int_equal(avemo_classify_ctx_new(clf, &ctx, &err), AVEMO_OK);
    static const char *const emotions[6] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};
    for (int i = 0; i < 6; i++) {
        char clip[512];
        snprintf(clip, sizeof clip, "%s/cremad/1001_DFA_%s_XX.flv", AVEMO_TEST_DATA, emotions[i]);
        struct avemo_prediction pred;
        st = avemo_classify_file(ctx, clip, AVEMO_MODE_AV, &pred, &err);
        if (st) fail_msg("%s", err.message);
        printf("  %s -> %s %.2f (faces %d/%d)\n", emotions[i], pred.labels[pred.label], (double)pred.confidence,
               pred.frames_used, pred.frames_sampled);
        assert_string_equal(pred.labels[pred.label], emotions[i]);
        assert_true(pred.face_found);
        assert_int_equal(pred.mode_used, AVEMO_MODE_AV);
    }
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);

    /* Clean up the model, its log, curves and cache. */
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

/* A run on the six clips with other epochs and weight averaging; returns its result. */
static struct avemo_train_result run(const char *out, int resume, const char *epochs, const char *swa_start)
{
    char cache[128];
    snprintf(cache, sizeof cache, "%s/features.cache", dir);
    const char *data[1] = {TEST_DATA("cremad")};
    const char *overrides[2] = {epochs, swa_start};
    struct avemo_train_options opt =
        smoke_options(AVEMO_SOURCE_DIR "/tests/train/smoke-av.ini", data, out, cache, overrides, 2);
    opt.resume = resume;
    struct avemo_train_result res;
    struct avemo_error err = {0};
    if (avemo_train_run(&opt, &res, &err)) fail_msg("%s", err.message);
    return res;
}

/* The parameters of a model or checkpoint file (caller frees). */
static float *params_of(const char *path, size_t *n)
{
    avemo_net *net;
    struct avemo_error err;
    if (avemo_net_load(path, &net, &err)) fail_msg("%s", err.message);
    const float *p = avemo_net_params(net, n);
    float *copy = malloc(sizeof(float) * *n);
    memcpy(copy, p, sizeof(float) * *n);
    avemo_net_free(net);
    return copy;
}

static void assert_average(const float *got, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) assert_float_equal(got[i], 0.5f * (a[i] + b[i]), 1e-5 * (1 + fabsf(a[i])));
}

/* Weight averaging: with train.swa_start = 3 a 4-epoch run's model is the mean of the weights
 * after epochs 3 and 4 (runs are deterministic, so separate 3- and 4-epoch runs give those),
 * also when the run stops after epoch 3 and resumes (the sum is in the checkpoint). */
static void test_swa_averages_epochs(void **state)
{
    (void)state;
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "swa"), 0);
    char e3[128], e4[128], swa[128], resumed[128], ckpt[160];
    snprintf(e3, sizeof e3, "%s/e3.avm", dir);
    snprintf(e4, sizeof e4, "%s/e4.avm", dir);
    snprintf(swa, sizeof swa, "%s/swa.avm", dir);
    snprintf(resumed, sizeof resumed, "%s/resumed.avm", dir);
    run(e3, 0, "train.epochs=3", "train.swa_start=0");
    run(e4, 0, "train.epochs=4", "train.swa_start=0");
    struct avemo_train_result res = run(swa, 0, "train.epochs=4", "train.swa_start=3");
    assert_int_equal(res.swa_epochs, 2);
    assert_int_equal(res.epochs_run, 4);
    size_t n3, n4, ns;
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", e3);
    float *p3 = params_of(ckpt, &n3);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", e4);
    float *p4 = params_of(ckpt, &n4);
    float *ps = params_of(swa, &ns);
    assert_true(n3 == n4 && n4 == ns);
    assert_memory_not_equal(p3, p4, sizeof(float) * n3);
    assert_average(ps, p3, p4, ns);
    free(ps);
    free(p4);

    /* Stopped after epoch 3, resumed to 4: the mean of epoch 3 and the resumed epoch 4. */
    run(resumed, 0, "train.epochs=3", "train.swa_start=3");
    res = run(resumed, 1, "train.epochs=4", "train.swa_start=3");
    assert_int_equal(res.swa_epochs, 2);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", resumed);
    p4 = params_of(ckpt, &n4);
    ps = params_of(resumed, &ns);
    assert_average(ps, p3, p4, ns);
    free(ps);
    free(p4);
    free(p3);
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

/* A manifest of the six clips labelled as given (NULL: as their names say), then extra if any. */
static void write_clip_manifest(const char *path, const char *const *labels, const char *extra)
{
    static const char *const emotions[6] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "path,label,group\n");
    for (int i = 0; i < 6; i++)
        fprintf(f, "%s/cremad/1001_DFA_%s_XX.flv,%s,1001\n", AVEMO_TEST_DATA, emotions[i], labels ? labels[i] : emotions[i]);
    if (extra) fputs(extra, f);
    fclose(f);
}

/* One epoch of smoke-audio.ini on all of a manifest, with one more setting if given. */
static struct avemo_train_result train_manifest(const char *manifest, const char *out, const char *setting)
{
    const char *data[1] = {manifest}, *overrides[3] = {"train.split=all", "train.epochs=1", setting};
    struct avemo_train_options opt =
        smoke_options(AVEMO_SOURCE_DIR "/tests/train/smoke-audio.ini", data, out, NULL, overrides, setting ? 3 : 2);
    struct avemo_train_result res;
    struct avemo_error err = {0};
    if (avemo_train_run(&opt, &res, &err)) fail_msg("%s", err.message);
    return res;
}

/* A manifest naming a file that is not there: the file is reported and skipped, the run ends
 * with a model, and its training record holds the six real clips (the missing file was never
 * learnt from; hashing it had stopped the run). */
static void test_missing_file_is_skipped(void **state)
{
    (void)state;
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "missing"), 0);
    char manifest[128], out[128], missing[160];
    snprintf(manifest, sizeof manifest, "%s/manifest.csv", dir);
    snprintf(out, sizeof out, "%s/model.avm", dir);
    snprintf(missing, sizeof missing, "%s/not-there_ANG.wav,ANG,1001\n", dir);
    write_clip_manifest(manifest, NULL, missing);
    struct avemo_train_result res = train_manifest(manifest, out, NULL);
    assert_int_equal(res.skipped, 1);
    assert_int_equal(res.recorded[0], 6);
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

/* The model stores the class shares it learnt (train.prior, which late fusion divides out): an
 * epoch's shares of each label (a class without samples gets half of one), or uniform when the
 * loss weighs classes equally.  Six clips labelled 3 ANG, 1 HAP, 1 NEU, 1 SAD. */
static void test_train_prior_stored(void **state)
{
    (void)state;
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "prior"), 0);
    char manifest[128], out[128];
    snprintf(manifest, sizeof manifest, "%s/manifest.csv", dir);
    snprintf(out, sizeof out, "%s/model.avm", dir);
    static const char *const labels[6] = {"ANG", "ANG", "ANG", "HAP", "NEU", "SAD"};
    write_clip_manifest(manifest, labels, NULL);
    const double want[2][6] = {{3 / 7.0, 0.5 / 7, 0.5 / 7, 1 / 7.0, 1 / 7.0, 1 / 7.0},
                               {1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0}};
    const char *weights[2] = {"train.class_weights=none", "train.class_weights=balanced"};
    for (int w = 0; w < 2; w++) {
        train_manifest(manifest, out, weights[w]);
        avemo_net *net;
        struct avemo_error err = {0};
        if (avemo_net_load(out, &net, &err)) fail_msg("%s", err.message);
        float prior[6];
        assert_int_equal(avemo_model_prior(net, AVEMO_TRAIN_PRIOR, 6, prior), 1);
        for (int c = 0; c < 6; c++) assert_float_equal(prior[c], want[w][c], 1e-6);
        avemo_net_free(net);
    }
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smoke_av_fits_six_clips),
        cmocka_unit_test(test_swa_averages_epochs),
        cmocka_unit_test(test_missing_file_is_skipped),
        cmocka_unit_test(test_train_prior_stored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
