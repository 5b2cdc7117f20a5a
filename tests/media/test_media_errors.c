/*
 * Bad input: each case returns its own status and a message that names the
 * file; nothing crashes or leaks (this test also runs under AddressSanitizer).
 */
#include "common/testutil.h"

#include <fcntl.h>
#include <math.h>
#include <sys/resource.h>

#include <avemo/media.h>

#include "media/media_internal.h" /* the memory input's reader, to make its reads fail */

static char tmpdir[64];

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (size) assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    return test_make_tmpdir(tmpdir, sizeof tmpdir, "media_errors");
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tmpdir(tmpdir);
}

/* Open `path`, expect `want` at open time; the message must name the file. */
static void expect_open_error(const char *path, enum avemo_status want)
{
    struct avemo_error err = {0};
    avemo_media *m = (avemo_media *)1;
    enum avemo_status st = avemo_media_open_file(path, NULL, &m, &err);
    printf("  %s -> %s: %s\n", path, avemo_status_name(st), err.message);
    assert_int_equal(st, want);
    assert_null(m);
    assert_non_null(strstr(err.message, path));
}

/* The peak resident size of this process in KB after starting it again from the current one
 * (Linux clear_refs), or -1 when it cannot be measured: under a sanitizer RSS says little. */
static long reset_peak_kb(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return -1;
#else
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f || fputs("5", f) < 0) {
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
#endif
}

static long peak_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

/* FLV has no header listing its streams: FFmpeg creates them inside the probe, whose decoders
 * then had no pixel cap and sized an 8K H.264 picture (+80 MB).  Refused by its size, and the
 * probe's decoder stops at the cap like those of MP4 streams (H.264 still sizes its tables). */
static void test_headerless_8k_flv(void **state)
{
    (void)state;
    char path[128], cmd[512];
    snprintf(path, sizeof path, "%s/8k.flv", tmpdir);
    snprintf(cmd, sizeof cmd,
             "%s -v error -y -f lavfi -i color=c=gray:s=7680x4320:r=25 -frames:v 1 -c:v libx264 -preset ultrafast %s",
             AVEMO_FFMPEG, path);
    assert_int_equal(system(cmd), 0);
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    int measured = reset_peak_kb() == 0;
    long before = peak_kb();
    enum avemo_status st = avemo_media_open_file(path, NULL, &m, &err);
    long grown = peak_kb() - before;
    printf("  8K FLV -> %s: %s (peak RSS +%ld KB%s)\n", avemo_status_name(st), err.message, grown,
           measured ? "" : ", not measured");
    assert_int_equal(st, AVEMO_ERR_TOO_LARGE);
    assert_null(m);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "7680x4320"));
    if (measured) assert_true(grown < 48 * 1024);
}

static void test_empty_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/empty.flv", tmpdir);
    write_file(path, "", 0);
    expect_open_error(path, AVEMO_ERR_EMPTY);
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    struct avemo_media_open_options opt = {.name = "upload.bin"};
    assert_int_equal(avemo_media_open_memory("", 0, &opt, &m, &err), AVEMO_ERR_EMPTY);
    assert_non_null(strstr(err.message, "upload.bin"));
}

static void test_missing_file(void **state)
{
    (void)state;
    expect_open_error("/nonexistent/avemo/clip.flv", AVEMO_ERR_NOT_FOUND);
}

static void test_random_bytes(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/random.flv", tmpdir);
    static uint8_t junk[64 * 1024];
    uint32_t x = 2463534242u; /* xorshift32: the same bytes every run */
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk[i] = (uint8_t)x;
    }
    write_file(path, junk, sizeof junk);
    expect_open_error(path, AVEMO_ERR_UNSUPPORTED);
}

static void test_text_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/notes.mp4", tmpdir);
    const char text[] = "These are not the frames you are looking for.\nJust a text file with a media name.\n";
    write_file(path, text, sizeof text - 1);
    expect_open_error(path, AVEMO_ERR_UNSUPPORTED);
}

static void test_truncated_flv(void **state)
{
    (void)state;
    size_t size;
    uint8_t *clip = test_read_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), &size);
    char path[128];
    snprintf(path, sizeof path, "%s/truncated.flv", tmpdir);
    write_file(path, clip, 10 * 1024);
    free(clip);
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    enum avemo_status st = avemo_media_open_file(path, NULL, &m, &err);
    if (st == AVEMO_OK) {
        struct avemo_audio a;
        st = avemo_media_decode_audio(m, 22050, &a, &err);
        assert_null(a.samples);
        struct avemo_frames fr;
        struct avemo_error err2 = {0};
        assert_int_equal(avemo_media_decode_frames(m, 8, AVEMO_PIX_RGB24, &fr, &err2), AVEMO_ERR_CORRUPT);
        assert_int_equal(fr.count, 0);
        avemo_media_close(m);
    }
    printf("  truncated .flv -> %s: %s\n", avemo_status_name(st), err.message);
    assert_int_equal(st, AVEMO_ERR_CORRUPT);
    assert_non_null(strstr(err.message, path));
}

static void test_audio_only_asked_for_frames(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    const char *path = TEST_DATA("audio/1002_DFA_ANG_XX.mp3");
    assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
    struct avemo_frames fr;
    assert_int_equal(avemo_media_decode_frames(m, 8, AVEMO_PIX_RGB24, &fr, &err), AVEMO_ERR_NO_VIDEO);
    assert_non_null(strstr(err.message, path));
    assert_int_equal(fr.count, 0);
    avemo_media_close(m);
}

/* An animated WebP (a sticker): Debian's FFmpeg 5.1 decodes still WebP only, so nothing comes
 * out; the error says why and what to do instead of calling the file damaged without a reason. */
static void test_animated_webp(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    const char *path = TEST_DATA("media/anim_testsrc.webp");
    assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
    struct avemo_frames fr;
    enum avemo_status st = avemo_media_decode_frames(m, 1, AVEMO_PIX_RGB24, &fr, &err);
    if (st == AVEMO_OK) { /* a newer FFmpeg reads the animation: then the first frame is 64x64 */
        assert_int_equal(fr.frames[0].width, 64);
        avemo_frames_free(&fr);
    } else {
        assert_int_equal(st, AVEMO_ERR_CORRUPT);
        assert_non_null(strstr(err.message, path));
        assert_non_null(strstr(err.message, "not animated ones"));
    }
    avemo_media_close(m);
}

/* A WAV with 33 channels and no layout (found by fuzz_multipart: it was an internal error)
 * is mixed down with equal weights: the sine of channel 0 at 1/33 of its amplitude. */
static void test_many_channels_without_layout(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("media/33ch_sine_ch0.wav"), NULL, &m, &err), AVEMO_OK);
    struct avemo_audio a;
    if (avemo_media_decode_audio(m, 8000, &a, &err)) fail_msg("%s", err.message);
    assert_int_equal(a.count, 800);
    float peak = 0;
    for (size_t i = 0; i < a.count; i++) peak = fabsf(a.samples[i]) > peak ? fabsf(a.samples[i]) : peak;
    assert_float_equal(peak, 16000.0f / 32768.0f / 33.0f, 2e-4);
    avemo_audio_free(&a);
    avemo_media_close(m);
}

/* A file declaring 40 streams (each probed stream's decoder holds frames) is refused by name
 * before the probe; one of 2 streams opens. */
static void test_too_many_streams(void **state)
{
    (void)state;
    char dir[64], cmd[2048], path[128];
    assert_int_equal(test_make_tmpdir(dir, sizeof dir, "streams"), 0);
    for (int n = 2; n <= 40; n += 38) {
        int o = snprintf(cmd, sizeof cmd, "%s -v error -y -f lavfi -i sine=duration=0.5", AVEMO_FFMPEG);
        for (int i = 0; i < n; i++) o += snprintf(cmd + o, sizeof cmd - (size_t)o, " -map 0:a");
        snprintf(path, sizeof path, "%s/s%d.mkv", dir, n);
        snprintf(cmd + o, sizeof cmd - (size_t)o, " -c:a pcm_s16le %s", path);
        assert_int_equal(system(cmd), 0);
        struct avemo_error err = {0};
        avemo_media *m = NULL;
        enum avemo_status st = avemo_media_open_file(path, NULL, &m, &err);
        if (n == 2) {
            assert_int_equal(st, AVEMO_OK);
            avemo_media_close(m);
            continue;
        }
        assert_int_equal(st, AVEMO_ERR_TOO_LARGE);
        printf("  %s\n", err.message);
        assert_non_null(strstr(err.message, "s40.mkv: 40 streams, more than the 32 avemo reads"));
    }
    assert_int_equal(test_remove_tmpdir(dir), 0);
}

static void test_video_without_audio_asked_for_audio(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    const char *path = TEST_DATA("media/noaudio_1001_DFA_ANG_XX.flv");
    assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
    struct avemo_audio a;
    assert_int_equal(avemo_media_decode_audio(m, 22050, &a, &err), AVEMO_ERR_NO_AUDIO);
    assert_non_null(strstr(err.message, path));
    struct avemo_frames fr;
    assert_int_equal(avemo_media_decode_frames(m, 4, AVEMO_PIX_GRAY8, &fr, &err), AVEMO_OK);
    assert_int_equal(fr.count, 4);
    avemo_frames_free(&fr);
    avemo_media_close(m);
}

/* Each limit, lowered below the demo clip, stops it with its own status (and a message that
 * names the file and, when given, `mention`). */
static void expect_limit(struct avemo_media_limits lim, enum avemo_status at_open, enum avemo_status at_decode,
                         const char *mention)
{
    struct avemo_media_open_options opt = {.limits = &lim};
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    const char *path = TEST_DATA("cremad/1001_DFA_ANG_XX.flv");
    enum avemo_status st = avemo_media_open_file(path, &opt, &m, &err);
    assert_int_equal(st, at_open);
    if (st == AVEMO_OK) {
        struct avemo_audio a;
        st = avemo_media_decode_audio(m, 22050, &a, &err);
        assert_int_equal(st, at_decode);
        avemo_media_close(m);
    }
    printf("  limit -> %s: %s\n", avemo_status_name(st), err.message);
    assert_non_null(strstr(err.message, path));
    if (mention) assert_non_null(strstr(err.message, mention));
}

static void test_limits(void **state)
{
    (void)state;
    struct avemo_media_limits lim;
    avemo_media_limits_default(&lim);
    struct avemo_media_limits l = lim;
    l.max_file_bytes = 1000;
    expect_limit(l, AVEMO_ERR_TOO_LARGE, AVEMO_OK, NULL);
    l = lim;
    l.max_duration_s = 1.0;
    expect_limit(l, AVEMO_ERR_TOO_LONG, AVEMO_OK, NULL);
    l = lim;
    l.max_width = 320;
    expect_limit(l, AVEMO_ERR_TOO_LARGE, AVEMO_OK, NULL);
    l = lim;
    l.max_samples = 10000;
    expect_limit(l, AVEMO_OK, AVEMO_ERR_TOO_LARGE, NULL);
    l = lim;
    /* Past at the first packet: the budget is checked as packets come.  TIMEOUT, not TOO_LARGE:
     * the time depends on the machine's load, so the file itself is not to blame. */
    l.max_decode_s = 1e-9;
    expect_limit(l, AVEMO_OK, AVEMO_ERR_TIMEOUT, "max_decode_s");
    l.max_decode_s = 0; /* 0 is the default (60 s), not "no time" */
    struct avemo_media_open_options opt = {.limits = &l};
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), &opt, &m, &err), AVEMO_OK);
    struct avemo_audio a;
    assert_int_equal(avemo_media_decode_audio(m, 22050, &a, &err), AVEMO_OK);
    avemo_audio_free(&a);
    avemo_media_close(m);
}

/* Opens the 48x48 gray CK+ picture with lim and decodes its one frame; the status of the
 * step that fails (or AVEMO_OK), and err's message mentions `mention` when given. */
static enum avemo_status open_picture(struct avemo_media_limits lim, const char *mention)
{
    struct avemo_media_open_options opt = {.limits = &lim};
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    enum avemo_status st = avemo_media_open_file(TEST_DATA("ckplus/happy/S026_006_00000011.png"), &opt, &m, &err);
    struct avemo_frames fr = {0};
    if (!st) st = avemo_media_decode_frames(m, 1, AVEMO_PIX_GRAY8, &fr, &err);
    if (!st) assert_int_equal(fr.count, 1);
    avemo_frames_free(&fr);
    avemo_media_close(m);
    printf("  picture -> %s: %s\n", avemo_status_name(st), err.message);
    if (mention) assert_non_null(strstr(err.message, mention));
    return st;
}

/* A still picture has its own size limits (screenshots and photos are larger than the video
 * frames allowed): a picture over the video frame limits opens under the picture limits,
 * and is refused, naming it a picture, over those or over the picture's byte limit. */
static void test_picture_limits(void **state)
{
    (void)state;
    struct avemo_media_limits lim;
    avemo_media_limits_default(&lim);
    lim.max_width = lim.max_height = 32;
    lim.max_pixels = 32 * 32;
    assert_int_equal(open_picture(lim, NULL), AVEMO_OK);
    struct avemo_media_limits l = lim;
    l.max_image_side = 40;
    assert_int_equal(open_picture(l, "picture 48x48 exceeds the limit of 40x40"), AVEMO_ERR_TOO_LARGE);
    l = lim;
    l.max_image_pixels = 47 * 48;
    assert_int_equal(open_picture(l, "picture 48x48 exceeds"), AVEMO_ERR_TOO_LARGE);
    l = lim;
    l.max_image_bytes = 48 * 48 - 1; /* the PNG is 8-bit gray: 2304 bytes decoded */
    assert_int_equal(open_picture(l, "picture 48x48 takes 2304 bytes decoded, over the limit of 2303"),
                     AVEMO_ERR_TOO_LARGE);
    l.max_image_bytes = 48 * 48;
    assert_int_equal(open_picture(l, NULL), AVEMO_OK);
    l = lim;
    l.max_image_side = 0; /* no picture limits: the video frame's apply */
    assert_int_equal(open_picture(l, "video frame 48x48 exceeds the limit of 32x32"), AVEMO_ERR_TOO_LARGE);
}

/* A clip whose metadata understates its duration (0.5 s declared, 2.2 s of sound) passes the
 * open-time check of max_duration_s; its decode stops at the limit with TOO_LONG instead of
 * returning sound up to max_samples. */
static void test_understated_duration(void **state)
{
    (void)state;
    size_t size;
    uint8_t *clip = test_read_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), &size);
    assert_int_equal(test_flv_set_duration(clip, size, 0.5), 0);
    struct avemo_media_limits lim;
    avemo_media_limits_default(&lim);
    lim.max_duration_s = 1.0;
    struct avemo_media_open_options opt = {.name = "understated.flv", .limits = &lim};
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_memory(clip, size, &opt, &m, &err), AVEMO_OK);
    struct avemo_media_info info;
    avemo_media_get_info(m, &info);
    assert_float_equal(info.duration_s, 0.5, 1e-9);
    struct avemo_audio a;
    enum avemo_status st = avemo_media_decode_audio(m, 22050, &a, &err);
    printf("  understated duration -> %s: %s\n", avemo_status_name(st), err.message);
    assert_int_equal(st, AVEMO_ERR_TOO_LONG);
    assert_null(a.samples);
    assert_non_null(strstr(err.message, "understated.flv: the audio runs past the limit of 1.0 s"));
    avemo_media_close(m);
    /* Within the limit the same clip decodes whole. */
    lim.max_duration_s = 3.0;
    assert_int_equal(avemo_media_open_memory(clip, size, &opt, &m, &err), AVEMO_OK);
    if (avemo_media_decode_audio(m, 22050, &a, &err)) fail_msg("%s", err.message);
    assert_true(a.count > 2 * 22050);
    avemo_audio_free(&a);
    avemo_media_close(m);
    free(clip);
}

/* The memory input's read callback, failing with EIO from 3/4 of the bytes on, as a disk can. */
static int failing_read(void *opaque, uint8_t *buf, int size)
{
    struct media_memory_reader *r = opaque;
    size_t fail_at = r->size / 4 * 3;
    if (r->pos >= fail_at) return AVERROR(EIO);
    size_t n = fail_at - r->pos < (size_t)size ? fail_at - r->pos : (size_t)size;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return (int)n;
}

/* A read error in mid-clip fails the decode with its cause; it was taken for the end of the
 * file, and 3/4 of a clip passed for the whole.  Both a plain pass (FLV sound) and a pass that
 * reads its packets ahead (sampled H.264 frames in MP4, media_plan.c) see it. */
static void test_read_error(void **state)
{
    (void)state;
    const char *clips[] = {"cremad/1001_DFA_ANG_XX.flv", "media/h264_1001_DFA_ANG_XX.mp4"};
    for (int k = 0; k < 2; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", AVEMO_TEST_DATA, clips[k]);
        size_t size;
        uint8_t *clip = test_read_file(path, &size);
        struct avemo_media_open_options opt = {.name = clips[k]};
        struct avemo_error err = {0};
        avemo_media *m = NULL;
        assert_int_equal(avemo_media_open_memory(clip, size, &opt, &m, &err), AVEMO_OK);
        m->avio->read_packet = failing_read; /* from here on: the first decode reads on the same input */
        struct avemo_audio a;
        struct avemo_frames fr;
        enum avemo_status st = k == 0 ? avemo_media_decode_audio(m, 22050, &a, &err)
                                      : avemo_media_decode_frames(m, 8, AVEMO_PIX_RGB24, &fr, &err);
        printf("  read error in %s -> %s: %s\n", clips[k], avemo_status_name(st), err.message);
        assert_int_equal(st, AVEMO_ERR_CORRUPT); /* memory input: only a file's read is AVEMO_ERR_IO */
        assert_non_null(strstr(err.message, clips[k]));
        assert_non_null(strstr(err.message, "cannot read packets: Input/output error"));
        avemo_media_close(m);
        free(clip);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    struct avemo_media_open_options opt = {.format = "no-such-format"};
    const char *path = TEST_DATA("cremad/1001_DFA_ANG_XX.flv");
    assert_int_equal(avemo_media_open_file(path, &opt, &m, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
    struct avemo_frames fr;
    assert_int_equal(avemo_media_decode_frames(m, -3, AVEMO_PIX_RGB24, &fr, &err), AVEMO_ERR_INVALID_ARG);
    struct avemo_audio a;
    assert_int_equal(avemo_media_decode_audio(m, -1, &a, &err), AVEMO_ERR_INVALID_ARG);
    avemo_media_close(m);
    /* A directory is not a media file. */
    assert_int_equal(avemo_media_open_file(AVEMO_TEST_DATA, NULL, &m, &err), AVEMO_ERR_IO);
}

/* Out of file descriptors is a failure to read, not bad data (a feature cache keeps bad data). */
static void test_out_of_descriptors(void **state)
{
    (void)state;
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY)) >= 0) n++;
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    enum avemo_status st = avemo_media_open_file(TEST_DATA("cremad/1001_DFA_ANG_XX.flv"), NULL, &m, &err);
    while (n > 0) close(fds[--n]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    avemo_media_close(m);
    assert_int_equal(st, AVEMO_ERR_IO);
    assert_non_null(strstr(err.message, "1001_DFA_ANG_XX.flv"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headerless_8k_flv), /* first: the peak RSS of a fresh heap */
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_text_file),
        cmocka_unit_test(test_truncated_flv),
        cmocka_unit_test(test_audio_only_asked_for_frames),
        cmocka_unit_test(test_many_channels_without_layout),
        cmocka_unit_test(test_animated_webp),
        cmocka_unit_test(test_too_many_streams),
        cmocka_unit_test(test_video_without_audio_asked_for_audio),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_picture_limits),
        cmocka_unit_test(test_understated_duration),
        cmocka_unit_test(test_read_error),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_out_of_descriptors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
