/*
 * Smoke training on the six real CREMA-D clips: the audio-visual path end to
 * end (decode, MFCC, face detection, dual-stream CNN, Adam).  The model must
 * fit its six clips, save, load, and then classify each clip correctly.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/train.h>

static char dir[64];

static void test_smoke_av_fits_six_clips(void **state)
{
    (void)state;
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "smoke"), 0);
    char model[128], cache[128];
    snprintf(model, sizeof model, "%s/smoke.avm", dir);
    snprintf(cache, sizeof cache, "%s/features.cache", dir);
    const char *data[1] = {TEST_DATA("cremad")};
    struct avemo_train_options opt = {0};
    opt.pipeline_path = AVEMO_SOURCE_DIR "/tests/train/smoke-av.ini";
    opt.data = data;
    opt.ndata = 1;
    opt.out_path = model;
    opt.cache_path = cache;
    opt.quiet = 1;
    struct avemo_train_result res;
    struct avemo_error err = {0};
    enum avemo_status st = avemo_train_run(&opt, &res, &err);
    if (st) fail_msg("%s", err.message);
    printf("  %d epochs (best %d), train accuracy %.3f, %.1f s\n", res.epochs_run, res.best_epoch, res.train_acc, res.seconds);
    assert_int_equal(res.n_train, 6);
    assert_int_equal(res.skipped, 0);
    assert_true(res.train_acc == 1.0);

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smoke_av_fits_six_clips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
