/*
 * Distillation (avemo train --teacher) on real clips.  A teacher taught that the angry CREMA-D
 * clip is disgust (label map ANG:DIS) passes that answer on to a student trained with
 * train.distill = 1, while the same student without the teacher learns the file's label.  The
 * teacher also saw six RAVDESS clips, so its audio normalisation differs from the student's
 * and the student's batches must be carried over into it.  The student's training record holds
 * the teacher's files; a teacher that makes other inputs, answers by late fusion or has a broken
 * audio normalisation is refused by name.
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/nn.h>
#include <avemo/train.h>

static char dir[64];
static const char *const emotions[6] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};

static enum avemo_status train(const char *out, const char *const *data, int ndata, const char *teacher,
                               const char *const *overrides, int noverrides, struct avemo_train_result *res,
                               struct avemo_error *err)
{
    struct avemo_train_options opt = {0};
    opt.pipeline_path = AVEMO_SOURCE_DIR "/tests/train/smoke-audio.ini";
    opt.data = data;
    opt.ndata = ndata;
    opt.out_path = out;
    opt.teacher = teacher;
    opt.overrides = overrides;
    opt.noverrides = noverrides;
    opt.quiet = 1;
    return avemo_train_run(&opt, res, err);
}

/* Copies of a good teacher that must be refused, each naming the copy and why: one that answers
 * by late fusion (only its head would teach) and one with a zero audio deviation (refused by
 * avemo_model_open, for every use of the file). */
static void check_broken_copies_refused(const char *teacher)
{
    char copy[128], out[128];
    snprintf(copy, sizeof copy, "%s/copy.avm", dir);
    snprintf(out, sizeof out, "%s/refused.avm", dir);
    const char *cremad[1] = {TEST_DATA("cremad")};
    const float fusion[3] = {1.0f, 1.0f, 1.0f}, zero_std[40] = {0};
    static const struct {
        const char *array, *why;
        size_t count;
    } cases[] = {
        {AVEMO_FUSION_WEIGHTS, "late fusion", 3},
        {"audio.std", "audio.mean or audio.std of band 0 is not usable", 40},
    };
    for (int i = 0; i < 2; i++) {
        struct avemo_error err = {0};
        const char *names[1] = {cases[i].array};
        const float *values[1] = {i == 0 ? fusion : zero_std};
        const size_t counts[1] = {cases[i].count};
        if (avemo_model_store_arrays(teacher, copy, 1, names, values, counts, &err)) fail_msg("%s", err.message);
        struct avemo_train_result res;
        assert_int_equal(train(out, cremad, 1, copy, NULL, 0, &res, &err), i == 0 ? AVEMO_ERR_MISMATCH : AVEMO_ERR_CORRUPT);
        printf("  %s\n", err.message);
        assert_non_null(strstr(err.message, copy));
        assert_non_null(strstr(err.message, cases[i].why));
    }
}

/* A teacher without a training record: the student gets none either (a record of its own files
 * alone would let avemo eval test on what the teacher learnt from). */
static void check_teacher_without_record(const char *teacher)
{
    char bare[128], out[128];
    snprintf(bare, sizeof bare, "%s/bare-teacher.avm", dir);
    snprintf(out, sizeof out, "%s/student-of-bare.avm", dir);
    struct avemo_error err = {0};
    avemo_net *net;
    if (avemo_net_load(teacher, &net, &err)) fail_msg("%s", err.message);
    avemo_net_clear_record(net);
    if (avemo_net_save(net, bare, &err)) fail_msg("%s", err.message);
    avemo_net_free(net);
    const char *cremad[1] = {TEST_DATA("cremad")}, *one_epoch[1] = {"train.epochs=1"};
    struct avemo_train_result res;
    if (train(out, cremad, 1, bare, one_epoch, 1, &res, &err)) fail_msg("%s", err.message);
    assert_int_equal(res.recorded[0], 0);
    if (avemo_net_load(out, &net, &err)) fail_msg("%s", err.message);
    assert_false(avemo_net_has_record(net));
    avemo_net_free(net);
}

/* The model's answer (class code) for each of the six clips of actor 1001, in audio mode. */
static void answers(const char *model, const char *out[6])
{
    struct avemo_error err = {0};
    avemo_classifier *clf = NULL;
    avemo_classify_ctx *ctx = NULL;
    if (avemo_classifier_open(model, NULL, &clf, &err) || avemo_classify_ctx_new(clf, &ctx, &err))
        fail_msg("%s", err.message);
    for (int i = 0; i < 6; i++) {
        char clip[512];
        snprintf(clip, sizeof clip, "%s/cremad/1001_DFA_%s_XX.flv", AVEMO_TEST_DATA, emotions[i]);
        struct avemo_prediction pred;
        if (avemo_classify_file(ctx, clip, AVEMO_MODE_AUDIO, &pred, &err)) fail_msg("%s", err.message);
        out[i] = emotions[pred.label];
        printf("  %s: %s -> %s %.2f\n", model + strlen(dir) + 1, emotions[i], out[i], (double)pred.confidence);
    }
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
}

static void test_student_learns_the_teachers_answers(void **state)
{
    (void)state;
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "distill"), 0);
    char teacher[128], student[128], plain[128];
    snprintf(teacher, sizeof teacher, "%s/teacher.avm", dir);
    snprintf(student, sizeof student, "%s/student.avm", dir);
    snprintf(plain, sizeof plain, "%s/plain.avm", dir);
    const char *both[2] = {TEST_DATA("cremad"), TEST_DATA("ravdess")}, *cremad[1] = {TEST_DATA("cremad")};
    const char *swap[1] = {"labels.map=ANG:DIS"}, *distill[1] = {"train.distill=1"};
    struct avemo_train_result res;
    struct avemo_error err = {0};
    if (train(teacher, both, 2, NULL, swap, 1, &res, &err)) fail_msg("%s", err.message);
    assert_int_equal(res.recorded[0], 12);
    const char *t[6], *s[6], *p[6];
    answers(teacher, t);
    assert_string_equal(t[0], "DIS"); /* what it was taught */
    check_broken_copies_refused(teacher);
    check_teacher_without_record(teacher);

    if (train(student, cremad, 1, teacher, distill, 1, &res, &err)) fail_msg("%s", err.message);
    assert_int_equal(res.recorded[0], 12); /* its own 6 clips are among the teacher's 12 */
    answers(student, s);
    for (int i = 0; i < 6; i++) assert_string_equal(s[i], t[i]);

    if (train(plain, cremad, 1, NULL, distill, 1, &res, &err)) fail_msg("%s", err.message);
    assert_int_equal(res.recorded[0], 6);
    answers(plain, p);
    for (int i = 0; i < 6; i++) assert_string_equal(p[i], emotions[i]);
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

/* A teacher whose inputs are made otherwise is refused before any epoch, naming the file. */
static void test_teacher_with_other_inputs_is_refused(void **state)
{
    (void)state;
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "distill"), 0);
    char out[128];
    snprintf(out, sizeof out, "%s/student.avm", dir);
    const char *cremad[1] = {TEST_DATA("cremad")};
    static const struct {
        const char *teacher, *why;
    } cases[] = {
        {AVEMO_SOURCE_DIR "/models/avemo-face.avm", "its mode is not the student's"},
        {AVEMO_SOURCE_DIR "/models/avemo-audio.avm", "its [audio] settings are not the student's"},
    };
    for (int i = 0; i < 2; i++) {
        struct avemo_train_result res;
        struct avemo_error err = {0};
        assert_int_equal(train(out, cremad, 1, cases[i].teacher, NULL, 0, &res, &err), AVEMO_ERR_MISMATCH);
        printf("  %s\n", err.message);
        assert_non_null(strstr(err.message, cases[i].teacher));
        assert_non_null(strstr(err.message, cases[i].why));
    }
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_student_learns_the_teachers_answers),
        cmocka_unit_test(test_teacher_with_other_inputs_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
