/*
 * avemo_media_codec_roundtrip: what comes back from a lossy codec is the input, lined up,
 * changed the way that codec changes sound (GSM keeps only the telephone band), and an
 * unknown or video encoder is refused by name.
 */
#include "common/testutil.h"

#include <avemo/media.h>
#include <math.h>
#include <string.h>

#define RATE 16000

static float *tone(size_t n, double hz)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(0.3 * sin(2 * M_PI * hz * (double)i / RATE));
    return x;
}

static double rms(const float *x, size_t from, size_t to)
{
    double e = 0;
    for (size_t i = from; i < to; i++) e += (double)x[i] * x[i];
    return sqrt(e / (double)(to - from));
}

/* Correlation of x and y over [from, to) with y shifted by lag. */
static double correlation(const float *x, const float *y, size_t from, size_t to, int lag)
{
    double xy = 0, xx = 0, yy = 0;
    for (size_t i = from; i < to; i++) {
        double a = x[i], b = y[(size_t)((long)i + lag)];
        xy += a * b, xx += a * a, yy += b * b;
    }
    return xy / sqrt(xx * yy + 1e-30);
}

/* The real recording (the demo clip's sound, 16 kHz) through `encoder`: the output has the
 * input's length and lines up with it at lag 0 better than at any other small lag. */
static void check_speech_roundtrip(const char *encoder, int bit_rate, double min_corr)
{
    struct avemo_error err = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("audio/1001_DFA_ANG_XX.wav"), NULL, &m, &err), AVEMO_OK);
    struct avemo_audio a;
    assert_int_equal(avemo_media_decode_audio(m, RATE, &a, &err), AVEMO_OK);
    avemo_media_close(m);
    float *out = calloc(a.count + 4096, sizeof *out);
    size_t n = 0;
    enum avemo_status st = avemo_media_codec_roundtrip(a.samples, a.count, RATE, encoder, bit_rate, out,
                                                       a.count + 4096, &n, &err);
    if (st) fail_msg("%s", err.message);
    size_t lo = 2000, hi = a.count - 2000;
    double at0 = correlation(a.samples, out, lo, hi, 0), best_other = 0;
    for (int lag = -200; lag <= 200; lag += 1)
        if (lag < -2 || lag > 2) best_other = fmax(best_other, correlation(a.samples, out, lo, hi, lag));
    double changed = 0;
    for (size_t i = lo; i < hi; i++) changed = fmax(changed, fabs((double)out[i] - a.samples[i]));
    printf("  %s %d bit/s: %zu -> %zu samples, correlation %.3f at lag 0, %.3f at best other, max change %.3f\n",
           encoder, bit_rate, a.count, n, at0, best_other, changed);
    assert_true(n + 1200 >= a.count && n <= a.count + 2400); /* a frame of padding at most */
    assert_true(at0 >= min_corr);
    assert_true(at0 > best_other);
    assert_true(changed > 1e-3); /* a lossy codec changed the sound */
    free(out);
    avemo_audio_free(&a);
}

static void test_mp3_roundtrip_lines_up(void **state)
{
    (void)state;
    check_speech_roundtrip("libmp3lame", 32000, 0.9);
}

static void test_opus_roundtrip_lines_up(void **state)
{
    (void)state;
    check_speech_roundtrip("libopus", 16000, 0.8);
}

/* GSM works at 8 kHz: a 1 kHz tone passes, a 6 kHz tone (above its 4 kHz Nyquist) is gone. */
static void test_gsm_keeps_the_telephone_band(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    size_t n = RATE * 2, got = 0;
    float *out = calloc(n, sizeof *out);
    double hz[2] = {1000, 6000}, ratio[2];
    for (int k = 0; k < 2; k++) {
        float *x = tone(n, hz[k]);
        enum avemo_status st = avemo_media_codec_roundtrip(x, n, RATE, "libgsm", 0, out, n, &got, &err);
        if (st) fail_msg("%s", err.message);
        assert_true(got > n - 1200);
        ratio[k] = rms(out, 4000, got - 4000) / rms(x, 4000, n - 4000);
        printf("  libgsm: %.0f Hz tone keeps %.3f of its level\n", hz[k], ratio[k]);
        free(x);
    }
    assert_true(ratio[0] > 0.5 && ratio[0] < 1.5);
    assert_true(ratio[1] < 0.05);
    free(out);
}

static void test_unknown_encoders_refused(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    float x[1000] = {0}, out[1000];
    size_t n = 7;
    assert_int_equal(avemo_media_codec_roundtrip(x, 1000, RATE, "no-such-codec", 0, out, 1000, &n, &err),
                     AVEMO_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "no-such-codec"));
    assert_int_equal(n, 0);
    assert_int_equal(avemo_media_codec_roundtrip(x, 1000, RATE, "mpeg4", 0, out, 1000, &n, &err),
                     AVEMO_ERR_UNSUPPORTED);
    assert_int_equal(avemo_media_codec_roundtrip(x, 0, RATE, "libgsm", 0, out, 1000, &n, &err),
                     AVEMO_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mp3_roundtrip_lines_up),
        cmocka_unit_test(test_opus_roundtrip_lines_up),
        cmocka_unit_test(test_gsm_keeps_the_telephone_band),
        cmocka_unit_test(test_unknown_encoders_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
