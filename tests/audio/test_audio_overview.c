/* avemo_audio_overview_from_media: the waveform columns are the true per-column extremes of the
 * 16 kHz decode scaled to a peak of 127, the log-mel's loudest bin is 255, a clip's duration is
 * the decode's; a file without audio and bad sizes are refused with the reason. */
#include "common/testutil.h"

#include <avemo/audio.h>
#include <avemo/media.h>
#include <math.h>

static avemo_media *open_media(const char *path)
{
    avemo_media *media = NULL;
    struct avemo_error err = {0};
    if (avemo_media_open_file(path, NULL, &media, &err)) fail_msg("%s", err.message);
    return media;
}

static void test_waveform_and_logmel(void **state)
{
    (void)state;
    const char *path = TEST_DATA("audio/1001_DFA_ANG_XX.wav");
    struct avemo_error err = {0};
    /* the reference: the same decode, its extremes per column */
    avemo_media *media = open_media(path);
    struct avemo_audio audio = {0};
    assert_int_equal(avemo_media_decode_audio(media, 16000, &audio, &err), AVEMO_OK);
    avemo_media_close(media);
    media = open_media(path);
    struct avemo_audio_overview ov;
    assert_int_equal(avemo_audio_overview_from_media(media, 100, 64, 4096, &ov, &err), AVEMO_OK);
    avemo_media_close(media);
    assert_int_equal(ov.columns, 100);
    assert_float_equal(ov.duration_s, (double)audio.count / 16000.0, 1e-9);
    float peak = 0.0f;
    for (size_t i = 0; i < audio.count; i++) peak = fmaxf(peak, fabsf(audio.samples[i]));
    assert_float_equal(ov.peak, peak, 0.0);
    int top = 0;
    for (int c = 0; c < ov.columns; c++) {
        size_t a = (size_t)c * audio.count / 100, b = (size_t)(c + 1) * audio.count / 100;
        float lo = 0.0f, hi = 0.0f;
        for (size_t i = a; i < b; i++) lo = fminf(lo, audio.samples[i]), hi = fmaxf(hi, audio.samples[i]);
        assert_int_equal(ov.wave_min[c], (int)lrintf(lo * 127.0f / peak));
        assert_int_equal(ov.wave_max[c], (int)lrintf(hi * 127.0f / peak));
        if (ov.wave_max[c] == 127 || ov.wave_min[c] == -127) top++;
    }
    assert_true(top >= 1);
    /* every frame kept (4096 > frames): the loudest bin is 255, and quiet bins exist */
    assert_int_equal(ov.mel_bands, 64);
    assert_int_equal(ov.mel_frames, (int)(1 + audio.count / 256));
    int max = 0, min = 255;
    for (size_t i = 0; i < (size_t)ov.mel_bands * ov.mel_frames; i++) {
        max = ov.logmel[i] > max ? ov.logmel[i] : max;
        min = ov.logmel[i] < min ? ov.logmel[i] : min;
    }
    assert_int_equal(max, 255);
    assert_true(min < 64);
    avemo_audio_overview_free(&ov);
    avemo_audio_free(&audio);
}

static void test_refusals(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_audio_overview ov;
    avemo_media *media = open_media(TEST_DATA("media/noaudio_1001_DFA_ANG_XX.flv"));
    assert_int_equal(avemo_audio_overview_from_media(media, 100, 64, 100, &ov, &err), AVEMO_ERR_NO_AUDIO);
    assert_non_null(strstr(err.message, "noaudio_1001_DFA_ANG_XX.flv"));
    avemo_media_close(media);
    media = open_media(TEST_DATA("audio/1001_DFA_ANG_XX.wav"));
    assert_int_equal(avemo_audio_overview_from_media(media, 0, 64, 100, &ov, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_audio_overview_from_media(media, 100, 4, 100, &ov, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "mel bands"));
    avemo_media_close(media);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waveform_and_logmel),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
