/*
 * The classifier option overlap (a clip decoded on a second thread while the faces of the frames
 * already out are searched and the face model runs on each crop) gives the answers of the
 * one-thread path: the same label, probabilities, frames and fallbacks on every fixture clip,
 * the same errors on a broken one, and the same frames when a decode pass has to be made again
 * (a container that overstates its frame count), which the frame sink shows as a new pass.
 * And a batch of files classified by several workers (avemo_classify_batch's workers) gives the
 * lines of one worker, in the same order.  Also run under ThreadSanitizer (.ci/run).
 */
#include "common/testutil.h"

#include <avemo/eval.h>
#include <avemo/media.h>
#include <math.h>

static avemo_classifier *clf[2];   /* [0]: one thread, [1]: overlap */
static avemo_classify_ctx *ctx[2];

static int setup(void **state)
{
    (void)state;
    char model[1024];
    struct avemo_error err = {0};
    if (avemo_default_model(AVEMO_MODE_AV, model, sizeof model, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        struct avemo_classifier_options opt = {.overlap = i};
        if (avemo_classifier_open(model, &opt, &clf[i], &err) || avemo_classify_ctx_new(clf[i], &ctx[i], &err)) {
            fprintf(stderr, "%s\n", err.message);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        avemo_classify_ctx_free(ctx[i]);
        avemo_classifier_close(clf[i]);
    }
    return 0;
}

/* Both paths on one input (a file, or data/size in memory): the same status and answer. */
static void expect_same(const char *path, const void *data, size_t size, enum avemo_mode mode)
{
    struct avemo_prediction p[2];
    struct avemo_error err[2] = {{0}, {0}};
    enum avemo_status st[2];
    for (int i = 0; i < 2; i++)
        st[i] = data ? avemo_classify_memory(ctx[i], data, size, path, mode, &p[i], &err[i])
                     : avemo_classify_file(ctx[i], path, mode, &p[i], &err[i]);
    printf("  %s (%s): %s %s %.6f, overlap %s %.6f, frames %d/%d\n", path, avemo_mode_name(mode), avemo_status_name(st[0]),
           st[0] ? err[0].message : p[0].labels[p[0].label], st[0] ? 0 : p[0].confidence,
           st[1] ? err[1].message : p[1].labels[p[1].label], st[1] ? 0 : p[1].confidence, p[1].frames_used, p[1].frames_sampled);
    assert_int_equal(st[1], st[0]);
    if (st[0]) {
        assert_string_equal(err[1].message, err[0].message);
        return;
    }
    assert_int_equal(p[1].label, p[0].label);
    assert_int_equal(p[1].num_classes, p[0].num_classes);
    for (int c = 0; c < p[0].num_classes; c++) assert_true(fabsf(p[1].probs[c] - p[0].probs[c]) < 1e-5f);
    assert_int_equal(p[1].mode_used, p[0].mode_used);
    assert_int_equal(p[1].late_fusion, p[0].late_fusion);
    assert_int_equal(p[1].face_found, p[0].face_found);
    assert_int_equal(p[1].frames_used, p[0].frames_used);
    assert_int_equal(p[1].frames_sampled, p[0].frames_sampled);
    assert_string_equal(p[1].fallback_reason, p[0].fallback_reason);
    assert_string_equal(p[1].note, p[0].note);
    assert_memory_equal(p[1].face_rgb, p[0].face_rgb, sizeof p[0].face_rgb);
}

static void test_fixtures_same_answers(void **state)
{
    (void)state;
    const char *emotions[6] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};
    char path[1024];
    for (int e = 0; e < 6; e++) {
        snprintf(path, sizeof path, "%s/cremad/1001_DFA_%s_XX.flv", AVEMO_TEST_DATA, emotions[e]);
        expect_same(path, NULL, 0, AVEMO_MODE_AV);
    }
    /* H.264 with a skip plan, display rotation, a muted sound, no sound, an animation */
    const char *media[5] = {"h264_1001_DFA_ANG_XX.mp4", "portrait_1001_DFA_HAP_XX.mp4", "muted_1001_DFA_ANG_XX.mp4",
                            "noaudio_1001_DFA_ANG_XX.flv", "anim_testsrc.webp"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/media/%s", AVEMO_TEST_DATA, media[i]);
        expect_same(path, NULL, 0, AVEMO_MODE_AV);
    }
    expect_same(TEST_DATA("cremad/1001_DFA_FEA_XX.flv"), NULL, 0, AVEMO_MODE_FACE);
    expect_same(TEST_DATA("media/h264_1001_DFA_ANG_XX.mp4"), NULL, 0, AVEMO_MODE_FACE);
}

/* The demo clip with its FLV metadata's duration set to seconds (an AMF double after "duration"). */
static uint8_t *clip_with_duration(double seconds, size_t *size)
{
    uint8_t *clip = test_read_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), size);
    assert_int_equal(test_flv_set_duration(clip, *size, seconds), 0);
    return clip;
}

struct sink_log {
    int passes, last_pass, slots[4];    /* slots handed over per pass */
    uint8_t *copies[8];                 /* the last pass's frames */
    size_t bytes;
};

static enum avemo_status log_frame(void *user, int pass, int slot, const struct avemo_frame *frame, struct avemo_error *err)
{
    (void)err;
    struct sink_log *log = user;
    if (pass != log->last_pass) {
        assert_int_equal(slot, 0); /* a pass starts from its first frame */
        assert_true(pass > log->last_pass);
        assert_true(log->passes < 4);
        log->passes++;
        log->last_pass = pass;
    }
    assert_int_equal(slot, log->slots[log->passes - 1]++);
    assert_true(slot < 8);
    log->bytes = (size_t)frame->width * frame->height * frame->channels;
    free(log->copies[slot]);
    log->copies[slot] = malloc(log->bytes);
    memcpy(log->copies[slot], frame->data, log->bytes);
    return AVEMO_OK;
}

/* 3.0 s declared for 2.3 s: the frames picked near the end do not exist, the pass is made again
 * over the frames that do; the sink sees both passes and the second one's frames are returned. */
static void test_overstated_clip_second_pass(void **state)
{
    (void)state;
    size_t size;
    uint8_t *clip = clip_with_duration(3.0, &size);
    avemo_media *m = NULL;
    struct avemo_error err = {0};
    struct avemo_media_open_options opt = {.name = "overstated.flv"};
    assert_int_equal(avemo_media_open_memory(clip, size, &opt, &m, &err), AVEMO_OK);
    struct sink_log log = {0};
    avemo_media_set_frame_sink(m, log_frame, &log);
    struct avemo_audio audio;
    struct avemo_frames frames;
    if (avemo_media_decode_av(m, 22050, &audio, 8, AVEMO_PIX_GRAY8, &frames, &err)) fail_msg("%s", err.message);
    printf("  overstated.flv: %d passes, %d then %d frames\n", log.passes, log.slots[0], log.slots[1]);
    assert_int_equal(log.passes, 2);
    assert_true(log.slots[0] < 8);
    assert_int_equal(log.slots[1], 8);
    assert_int_equal(frames.count, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal((size_t)frames.frames[i].width * frames.frames[i].height, log.bytes);
        assert_memory_equal(frames.frames[i].data, log.copies[i], log.bytes);
        free(log.copies[i]);
    }
    avemo_frames_free(&frames);
    avemo_audio_free(&audio);
    avemo_media_close(m);
    /* and the classifier's two paths agree on it */
    expect_same("overstated.flv", clip, size, AVEMO_MODE_AV);
    expect_same("overstated.flv", clip, size, AVEMO_MODE_FACE);
    free(clip);
}

/* A clip cut short: the same error either way (and nothing leaks or races: ASan, TSan). */
static void test_truncated_same_error(void **state)
{
    (void)state;
    size_t size;
    uint8_t *clip = test_read_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), &size);
    expect_same("cut.flv", clip, 40 * 1024, AVEMO_MODE_AV);
    expect_same("cut.flv", clip, 10 * 1024, AVEMO_MODE_FACE);
    free(clip);
}

/* A line without times: the label and probabilities, or the error. */
static char *answer_line(void *user, const struct avemo_prediction *p, const char *file)
{
    (void)user;
    char *line = malloc(512);
    int n = snprintf(line, 512, "%s %s %d/%d", strrchr(file, '/') + 1, p->labels[p->label], p->frames_used, p->frames_sampled);
    for (int c = 0; c < p->num_classes; c++) n += snprintf(line + n, 512 - (size_t)n, " %.6f", (double)p->probs[c]);
    return line;
}

static char *error_line(void *user, const char *file, const struct avemo_error *err)
{
    (void)user;
    char *line = malloc(1024);
    snprintf(line, 1024, "%s error %s", strrchr(file, '/') + 1, err->message);
    return line;
}

/* The lines of a batch run by `workers` workers (mode av): the file's bytes, malloc'ed. */
static char *run_batch(avemo_classify_ctx *c, const char *const *items, size_t n, int workers, const char *out,
                       size_t *failed)
{
    struct avemo_classify_batch b = {.items = items, .n = n, .shard = {0, 1}, .mode = AVEMO_MODE_AV, .out_path = out,
                                     .format = answer_line, .format_error = error_line, .workers = workers};
    struct avemo_shard_stats stats;
    struct avemo_error err = {0};
    unlink(out);
    if (avemo_classify_batch(c, &b, &stats, failed, &err)) fail_msg("%s", err.message);
    assert_int_equal(stats.done, n);
    size_t size;
    uint8_t *text = test_read_file(out, &size);
    char *lines = malloc(size + 1);
    memcpy(lines, text, size);
    lines[size] = 0;
    free(text);
    return lines;
}

static void test_batch_workers_same_lines(void **state)
{
    (void)state;
    const char *emotions[6] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};
    char paths[9][1024];
    const char *items[9];
    for (int i = 0; i < 9; i++) {
        if (i < 6) snprintf(paths[i], sizeof paths[i], "%s/cremad/1001_DFA_%s_XX.flv", AVEMO_TEST_DATA, emotions[i]);
        items[i] = paths[i];
    }
    snprintf(paths[6], sizeof paths[6], "%s/media/h264_1001_DFA_ANG_XX.mp4", AVEMO_TEST_DATA);
    snprintf(paths[7], sizeof paths[7], "%s/cremad/no_such_clip.flv", AVEMO_TEST_DATA); /* fails: named in its line */
    snprintf(paths[8], sizeof paths[8], "%s/media/noaudio_1001_DFA_ANG_XX.flv", AVEMO_TEST_DATA);
    char out[64];
    snprintf(out, sizeof out, "/tmp/avemo-batch-%d.txt", (int)getpid());
    size_t failed_one, failed_three;
    char *one = run_batch(ctx[0], items, 9, 1, out, &failed_one);     /* one thread */
    char *three = run_batch(ctx[1], items, 9, 3, out, &failed_three); /* three workers (overlap off in each) */
    printf("%s", three);
    assert_string_equal(three, one);
    assert_int_equal(failed_one, 1);
    assert_int_equal(failed_three, 1);
    assert_non_null(strstr(three, "no_such_clip.flv error"));
    unlink(out);
    free(one);
    free(three);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_same_answers),
        cmocka_unit_test(test_overstated_clip_second_pass),
        cmocka_unit_test(test_truncated_same_error),
        cmocka_unit_test(test_batch_workers_same_lines),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
