/*
 * Ingest against the ffmpeg program built from the same libraries:
 * decoded audio must equal `ffmpeg -ac 1 -ar 22050 -f f32le` sample by sample,
 * frames must equal `ffmpeg -fps_mode passthrough -pix_fmt rgb24` frames.
 */
#include "common/testutil.h"

#include <avemo/media.h>
#include <math.h>

#include "media/media_internal.h"

static const char *const clips[] = {
    "cremad/1001_DFA_ANG_XX.flv", "cremad/1001_DFA_DIS_XX.flv", "cremad/1001_DFA_FEA_XX.flv",
    "cremad/1001_DFA_HAP_XX.flv", "cremad/1001_DFA_NEU_XX.flv", "cremad/1001_DFA_SAD_XX.flv",
    "audio/1002_DFA_ANG_XX.mp3",  "audio/1001_DFA_ANG_XX.wav",
};

#define H264_CLIP "media/h264_1001_DFA_ANG_XX.mp4"
/* A phone's portrait video: pictures stored turned a quarter clockwise, a display matrix that
 * turns them back. */
#define PORTRAIT_CLIP "media/portrait_1001_DFA_HAP_XX.mp4"

static void test_probe_facts(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), NULL, &m, &err), AVEMO_OK);
    struct avemo_media_info in;
    avemo_media_get_info(m, &in);
    assert_string_equal(in.container, "flv");
    assert_true(in.duration_s > 2.2 && in.duration_s < 2.3);
    assert_true(in.has_audio);
    assert_string_equal(in.audio_codec, "mp3");
    assert_int_equal(in.sample_rate, 44100);
    assert_int_equal(in.channels, 1);
    assert_true(in.has_video);
    assert_int_equal(in.width, 480);
    assert_int_equal(in.height, 360);
    assert_true(fabs(in.fps - 29.97) < 0.01);
    avemo_media_close(m);
    /* A JPEG by path (FFmpeg's image2 demuxer) is sized too: it was 0x0 before session 19. */
    assert_int_equal(avemo_media_open_file(TEST_DATA("media/exif6_1001_DFA_HAP_XX.jpg"), NULL, &m, &err), AVEMO_OK);
    avemo_media_get_info(m, &in);
    assert_string_equal(in.container, "image2");
    assert_int_equal(in.width, 360);
    assert_int_equal(in.height, 480);
    avemo_media_close(m);
}

/* ffmpeg's samples for a file at 22050 Hz mono float32. */
static float *ffmpeg_audio(const char *path, size_t *count)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -nostdin -v error -i '%s' -ac 1 -ar 22050 -f f32le -", AVEMO_FFMPEG, path);
    size_t bytes = 0;
    float *pcm = (float *)test_run_capture(cmd, &bytes);
    assert_non_null(pcm);
    *count = bytes / sizeof(float);
    return pcm;
}

static void compare_audio_with_ffmpeg(const char *rel, int from_memory)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", AVEMO_TEST_DATA, rel);
    size_t ref_n;
    float *ref = ffmpeg_audio(path, &ref_n);
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    uint8_t *file = NULL;
    if (from_memory) {
        size_t size;
        file = test_read_file(path, &size);
        struct avemo_media_open_options opt = {.name = rel};
        assert_int_equal(avemo_media_open_memory(file, size, &opt, &m, &err), AVEMO_OK);
    } else {
        assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
    }
    struct avemo_audio a;
    enum avemo_status st = avemo_media_decode_audio(m, 22050, &a, &err);
    if (st) fail_msg("%s", err.message);
    assert_int_equal(a.sample_rate, 22050);
    assert_int_equal(a.count, ref_n);
    double max_diff = 0;
    for (size_t i = 0; i < ref_n; i++) max_diff = fmax(max_diff, fabs((double)a.samples[i] - ref[i]));
    printf("  %s (%s): %zu samples, max |avemo - ffmpeg| = %.3g\n", rel, from_memory ? "memory" : "file", ref_n,
           max_diff);
    assert_true(max_diff <= 1e-6);
    avemo_audio_free(&a);
    avemo_media_close(m);
    free(file);
    free(ref);
}

static void test_audio_equals_ffmpeg(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof clips / sizeof clips[0]; i++) compare_audio_with_ffmpeg(clips[i], 0);
}

static void test_audio_from_memory_equals_ffmpeg(void **state)
{
    (void)state;
    compare_audio_with_ffmpeg(clips[0], 1);
    compare_audio_with_ffmpeg(clips[6], 1);
}

/* Every frame of a clip as ffmpeg decodes it, one after the other, rgb24. */
static uint8_t *ffmpeg_frames(const char *path, size_t *bytes)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' -nostdin -v error -i '%s' -an -fps_mode passthrough -pix_fmt rgb24 -f rawvideo -", AVEMO_FFMPEG,
             path);
    uint8_t *raw = test_run_capture(cmd, bytes);
    assert_non_null(raw);
    return raw;
}

static void compare_frames_with_ffmpeg(const char *rel, int count)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", AVEMO_TEST_DATA, rel);
    size_t bytes = 0;
    uint8_t *ref = ffmpeg_frames(path, &bytes);
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
    struct avemo_frames fr;
    enum avemo_status st = avemo_media_decode_frames(m, count, AVEMO_PIX_RGB24, &fr, &err);
    if (st) fail_msg("%s", err.message);
    size_t frame_bytes = (size_t)fr.frames[0].width * fr.frames[0].height * 3;
    size_t ref_frames = bytes / frame_bytes;
    if (count == 0) assert_int_equal(fr.count, ref_frames);
    else assert_int_equal(fr.count, count);
    int worst = 0;
    double last_time = -1;
    for (int i = 0; i < fr.count; i++) {
        const struct avemo_frame *f = &fr.frames[i];
        assert_int_equal(f->channels, 3);
        assert_true(f->index >= 0 && (size_t)f->index < ref_frames);
        assert_true(f->time_s >= last_time);
        last_time = f->time_s;
        const uint8_t *r = ref + (size_t)f->index * frame_bytes;
        for (size_t k = 0; k < frame_bytes; k++) {
            int d = abs((int)f->data[k] - (int)r[k]);
            if (d > worst) worst = d;
        }
    }
    printf("  %s: %d frames of %zu, max channel difference %d\n", rel, fr.count, ref_frames, worst);
    assert_true(worst <= 2);
    avemo_frames_free(&fr);
    avemo_media_close(m);
    free(ref);
}

static void test_frames_equal_ffmpeg(void **state)
{
    (void)state;
    for (int i = 0; i < 6; i++) compare_frames_with_ffmpeg(clips[i], 8);
    compare_frames_with_ffmpeg(clips[0], 0);
}

/* Every frame of a clip as ffmpeg converts it to gray (swscale, bicubic, as avemo asks). */
static uint8_t *ffmpeg_gray_frames(const char *path, size_t *bytes)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' -nostdin -v error -i '%s' -an -fps_mode passthrough -pix_fmt gray -f rawvideo -", AVEMO_FFMPEG,
             path);
    uint8_t *raw = test_run_capture(cmd, bytes);
    assert_non_null(raw);
    return raw;
}

/* Gray frames are byte for byte swscale's (avemo converts through a table learnt from it). */
static void compare_gray_with_ffmpeg(const char *rel, int count)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", AVEMO_TEST_DATA, rel);
    size_t bytes = 0;
    uint8_t *ref = ffmpeg_gray_frames(path, &bytes);
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
    struct avemo_frames fr;
    enum avemo_status st = avemo_media_decode_frames(m, count, AVEMO_PIX_GRAY8, &fr, &err);
    if (st) fail_msg("%s", err.message);
    size_t frame_bytes = (size_t)fr.frames[0].width * fr.frames[0].height;
    size_t ref_frames = bytes / frame_bytes;
    if (count == 0) assert_int_equal(fr.count, ref_frames);
    for (int i = 0; i < fr.count; i++) {
        assert_true(fr.frames[i].index >= 0 && (size_t)fr.frames[i].index < ref_frames);
        assert_memory_equal(fr.frames[i].data, ref + (size_t)fr.frames[i].index * frame_bytes, frame_bytes);
    }
    printf("  %s: %d gray frames of %zu equal ffmpeg's\n", rel, fr.count, ref_frames);
    avemo_frames_free(&fr);
    avemo_media_close(m);
    free(ref);
}

static void test_gray_equals_ffmpeg(void **state)
{
    (void)state;
    for (int i = 0; i < 6; i++) compare_gray_with_ffmpeg(clips[i], 0);
    compare_gray_with_ffmpeg(H264_CLIP, 0);
}

/* Frames come out turned as the display matrix says, as the ffmpeg program (and a player)
 * shows them: the stored 360x480 pictures as 480x360, byte for byte ffmpeg's.  (A width of 360
 * is not a multiple of swscale's SIMD block: the RGB frames overran their buffer before the
 * conversion wrote into padded rows, and glibc aborted this test in a Release build.) */
static void test_display_rotation(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA(PORTRAIT_CLIP), NULL, &m, &err), AVEMO_OK);
    struct avemo_media_info in;
    avemo_media_get_info(m, &in);
    assert_int_equal(in.width, 360);
    assert_int_equal(in.height, 480);
    assert_int_equal(in.rotation, 270);
    struct avemo_frames fr;
    assert_int_equal(avemo_media_decode_frames(m, 3, AVEMO_PIX_GRAY8, &fr, &err), AVEMO_OK);
    assert_int_equal(fr.frames[0].width, 480);
    assert_int_equal(fr.frames[0].height, 360);
    avemo_frames_free(&fr);
    avemo_media_close(m);
    compare_gray_with_ffmpeg(PORTRAIT_CLIP, 0);
    compare_frames_with_ffmpeg(PORTRAIT_CLIP, 8);
    assert_int_equal(avemo_media_open_file(TEST_DATA(H264_CLIP), NULL, &m, &err), AVEMO_OK);
    avemo_media_get_info(m, &in);
    assert_int_equal(in.rotation, 0);
    avemo_media_close(m);
}

/* H.264 in MP4 with B-frames: 8 sampled frames skip the pictures nothing refers to
 * (media_plan.c), and are still exactly the frames ffmpeg decodes at those indices, in
 * gray and RGB; the sound of the same pass equals a pass for the sound alone. */
static void test_h264_sampled_frames_exact(void **state)
{
    (void)state;
    compare_gray_with_ffmpeg(H264_CLIP, 8);
    compare_gray_with_ffmpeg(H264_CLIP, 20);
    compare_frames_with_ffmpeg(H264_CLIP, 8);
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA(H264_CLIP), NULL, &m, &err), AVEMO_OK);
    struct avemo_audio a1, a2;
    struct avemo_frames f1;
    assert_int_equal(avemo_media_decode_av(m, 22050, &a1, 8, AVEMO_PIX_GRAY8, &f1, &err), AVEMO_OK);
    assert_int_equal(avemo_media_decode_audio(m, 22050, &a2, &err), AVEMO_OK);
    assert_int_equal(a1.count, a2.count);
    assert_memory_equal(a1.samples, a2.samples, a1.count * sizeof(float));
    int64_t want[8];
    avemo_media_pick_frames(68, 8, want);
    for (int i = 0; i < 8; i++) assert_int_equal(f1.frames[i].index, want[i]);
    avemo_audio_free(&a1);
    avemo_audio_free(&a2);
    avemo_frames_free(&f1);
    avemo_media_close(m);
}

/* The plan behind it: the MP4's 68 video packets are ranked, the 8 sampled ones kept, and a
 * VP6 clip in FLV (every picture a reference) gets no plan. */
static void test_h264_plan(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA(H264_CLIP), NULL, &m, &err), AVEMO_OK);
    assert_true(media_plan_eligible(m, m->video_stream, 8));
    assert_false(media_plan_eligible(m, m->video_stream, 0));
    int64_t want[8];
    avemo_media_pick_frames(68, 8, want);
    struct media_plan plan;
    media_plan_build(m, m->video_stream, want, 8, &plan);
    assert_true(plan.skipping && plan.ended);
    assert_int_equal(plan.nvideo, 68);
    int kept = 0;
    for (int i = 0; i < plan.npackets; i++) kept += plan.packets[i]->stream_index == m->video_stream && plan.keep[i];
    assert_int_equal(kept, 8);
    media_plan_free(&plan);
    avemo_media_close(m);
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), NULL, &m, &err), AVEMO_OK);
    assert_false(media_plan_eligible(m, m->video_stream, 8));
    avemo_media_close(m);
}

static void test_frames_evenly_spaced(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), NULL, &m, &err), AVEMO_OK);
    struct avemo_frames fr;
    assert_int_equal(avemo_media_decode_frames(m, 8, AVEMO_PIX_GRAY8, &fr, &err), AVEMO_OK);
    int64_t want[8];
    avemo_media_pick_frames(67, 8, want);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(fr.frames[i].index, want[i]);
        assert_int_equal(fr.frames[i].channels, 1);
        assert_int_equal(fr.frames[i].width, 480);
        /* 29.97 fps: the time follows the index. */
        assert_true(fabs(fr.frames[i].time_s - want[i] / 29.97) < 0.04);
    }
    avemo_frames_free(&fr);
    /* The same media object decodes again (a second pass reopens the demuxer). */
    struct avemo_audio a;
    assert_int_equal(avemo_media_decode_audio(m, 16000, &a, &err), AVEMO_OK);
    assert_true(a.count > 35000 && a.count < 37000);
    avemo_audio_free(&a);
    avemo_media_close(m);
}

/* One pass for both: the same samples and frames as two passes. */
static void test_decode_av_one_pass(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_HAP_XX.flv"), NULL, &m, &err), AVEMO_OK);
    struct avemo_audio a1, a2;
    struct avemo_frames f1, f2;
    assert_int_equal(avemo_media_decode_av(m, 22050, &a1, 8, AVEMO_PIX_RGB24, &f1, &err), AVEMO_OK);
    assert_int_equal(avemo_media_decode_audio(m, 22050, &a2, &err), AVEMO_OK);
    assert_int_equal(avemo_media_decode_frames(m, 8, AVEMO_PIX_RGB24, &f2, &err), AVEMO_OK);
    assert_int_equal(a1.count, a2.count);
    assert_memory_equal(a1.samples, a2.samples, a1.count * sizeof(float));
    assert_int_equal(f1.count, f2.count);
    for (int i = 0; i < f1.count; i++) {
        assert_int_equal(f1.frames[i].index, f2.frames[i].index);
        assert_memory_equal(f1.frames[i].data, f2.frames[i].data, 480 * 360 * 3);
    }
    avemo_audio_free(&a1);
    avemo_audio_free(&a2);
    avemo_frames_free(&f1);
    avemo_frames_free(&f2);
    avemo_media_close(m);
}

/* A raw float32 file read with a forced f32le format comes back sample-exact. */
static void test_raw_f32le_exact(void **state)
{
    (void)state;
    enum { N = 22050 };
    static float signal[N];
    for (int i = 0; i < N; i++) signal[i] = (float)(0.5 * sin(i * 0.01) + 1e-7 * (i % 13));
    char path[] = "/tmp/avemo_test_raw_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_int_equal(fwrite(signal, sizeof(float), N, f), N);
    fclose(f);
    struct avemo_media_open_options opt = {.format = "f32le", .options = "sample_rate=22050:ch_layout=mono"};
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    enum avemo_status st = avemo_media_open_file(path, &opt, &m, &err);
    if (st) fail_msg("%s", err.message);
    struct avemo_audio a;
    assert_int_equal(avemo_media_decode_audio(m, 22050, &a, &err), AVEMO_OK);
    assert_int_equal(a.count, N);
    assert_memory_equal(a.samples, signal, sizeof signal);
    avemo_audio_free(&a);
    avemo_media_close(m);
    remove(path);
}

static void test_pick_frames(void **state)
{
    (void)state;
    int64_t idx[4];
    avemo_media_pick_frames(8, 4, idx);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    assert_int_equal(idx[2], 5);
    assert_int_equal(idx[3], 7);
    avemo_media_pick_frames(2, 4, idx); /* fewer frames than asked: repeats */
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[3], 1);
}

/* avemo_media_stream_audio: the sink gathers the stretches it is handed. */
struct gathered {
    float *samples;
    size_t count, calls, stop_after;
    int fail;
};

static enum avemo_status gather(void *user, const float *samples, size_t n, int *stop, struct avemo_error *err)
{
    struct gathered *g = user;
    if (g->fail) return avemo_fail(err, AVEMO_ERR_INTERNAL, "the sink failed on purpose");
    g->samples = realloc(g->samples, sizeof(float) * (g->count + n));
    assert_non_null(g->samples);
    memcpy(g->samples + g->count, samples, sizeof(float) * n);
    g->count += n;
    g->calls++;
    *stop = g->stop_after && g->count >= g->stop_after;
    return AVEMO_OK;
}

/* Streamed, a file gives the same samples as decoded whole, in many stretches, each small:
 * a cap on decoded samples that refuses the whole sound (max_samples) lets the stream through.
 * A sink may stop the pass early or fail it with its own error. */
static void test_stream_audio(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    for (size_t i = 0; i < sizeof clips / sizeof clips[0]; i++) {
        avemo_media *m = NULL;
        struct avemo_audio whole;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", AVEMO_TEST_DATA, clips[i]);
        assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
        assert_int_equal(avemo_media_decode_audio(m, 22050, &whole, &err), AVEMO_OK);
        struct gathered g = {0};
        assert_int_equal(avemo_media_stream_audio(m, 22050, gather, &g, &err), AVEMO_OK);
        assert_int_equal(g.count, whole.count);
        assert_memory_equal(g.samples, whole.samples, sizeof(float) * whole.count);
        assert_true(g.calls > 10);
        avemo_media_close(m);
        free(g.samples);
        struct avemo_media_limits lim;
        avemo_media_limits_default(&lim);
        lim.max_samples = 8192;
        assert_int_equal(avemo_media_open_file(path, &(struct avemo_media_open_options){.limits = &lim},
                                               &m, &err), AVEMO_OK);
        struct avemo_audio refused;
        assert_int_equal(avemo_media_decode_audio(m, 22050, &refused, &err), AVEMO_ERR_TOO_LARGE);
        g = (struct gathered){.stop_after = 10000};
        assert_int_equal(avemo_media_stream_audio(m, 22050, gather, &g, &err), AVEMO_OK);
        assert_true(g.count >= 10000 && g.count < whole.count);
        assert_memory_equal(g.samples, whole.samples, sizeof(float) * g.count);
        free(g.samples);
        g = (struct gathered){.fail = 1};
        assert_int_equal(avemo_media_stream_audio(m, 22050, gather, &g, &err), AVEMO_ERR_INTERNAL);
        assert_string_equal(err.message, "the sink failed on purpose");
        avemo_media_close(m);
        avemo_audio_free(&whole);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_facts),
        cmocka_unit_test(test_audio_equals_ffmpeg),
        cmocka_unit_test(test_audio_from_memory_equals_ffmpeg),
        cmocka_unit_test(test_frames_equal_ffmpeg),
        cmocka_unit_test(test_gray_equals_ffmpeg),
        cmocka_unit_test(test_display_rotation),
        cmocka_unit_test(test_h264_sampled_frames_exact),
        cmocka_unit_test(test_h264_plan),
        cmocka_unit_test(test_frames_evenly_spaced),
        cmocka_unit_test(test_decode_av_one_pass),
        cmocka_unit_test(test_raw_f32le_exact),
        cmocka_unit_test(test_pick_frames),
        cmocka_unit_test(test_stream_audio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
