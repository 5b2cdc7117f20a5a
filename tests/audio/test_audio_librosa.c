/* audio_librosa: the features equal librosa 0.9.2's on the golden cases of
 * tests/data/audio_ref (see tests/data/SOURCES.md), within the bounds:
 *   mel filter banks      max |diff| <= 1e-6
 *   mel power spectra     relative L2 error <= 1e-4
 *   log-mel (ref 1.0)     max |diff| <= 0.01 dB
 *   MFCC 40               relative L2 error <= 1e-4
 *   log-mel ref=max 16 kHz max |diff| <= 0.01 dB
 * The measured errors are printed for every case. */
#include <avemo/audio.h>

#include "common/testutil.h"

#include <math.h>

#define REF_DIR TEST_DATA("audio_ref")

#define FILTERBANK_MAX_ABS 1e-6
#define MEL_MAX_REL_L2 1e-4
#define LOGMEL_MAX_ABS_DB 0.01
#define MFCC_MAX_REL_L2 1e-4

struct golden_case {
    const char *name;
    int has_16k; /* the real clips also have the 16 kHz ref=max log-mel */
};

/* Every case copied into tests/data/audio_ref: the synthetic edge cases and three real clips. */
static const struct golden_case cases[] = {
    {"silence_1s", 0},      {"noise_2s", 0},        {"sweep_3s", 0},         {"short_300ms", 0},
    {"cremad_1001_ANG", 1}, {"cremad_1002_ANG_wav", 1}, {"ravdess_01_angry", 1},
};

/* A raw little-endian float32 file (x86 and ARM are little-endian). */
static float *read_f32(const char *name, const char *suffix, size_t *count)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s%s", REF_DIR, name, suffix);
    size_t bytes;
    uint8_t *data = test_read_file(path, &bytes);
    assert_int_equal(bytes % 4, 0);
    *count = bytes / 4;
    return (float *)data;
}

static double rel_l2(const float *a, const float *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

static double max_abs(const float *a, const float *ref, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

/* Compute `feature` of the case's signal at `rate` and compare it with the golden file. */
static double compare_feature(const char *name, int rate, enum avemo_audio_feature feature, enum avemo_db_ref ref,
                              const char *golden_suffix, int use_rel_l2)
{
    size_t n, golden_count;
    float *pcm = read_f32(name, rate == 22050 ? ".pcm22050.f32" : ".pcm16000.f32", &n);
    float *golden = read_f32(name, golden_suffix, &golden_count);
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.sample_rate = rate;
    p.feature = feature;
    p.db_ref = ref;
    p.frames = 0;
    avemo_audio_extractor *ex = NULL;
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_extractor_create(&p, &ex, &err), AVEMO_OK);
    size_t rows = (size_t)avemo_audio_feature_count(ex), frames = avemo_audio_frame_count(ex, n);
    assert_int_equal(frames, 1 + n / 512);
    /* The golden matrix has the shape librosa gave. */
    assert_int_equal(golden_count, rows * frames);
    float *out = malloc(sizeof(float) * rows * frames);
    assert_non_null(out);
    if (avemo_audio_compute(ex, pcm, n, out, frames, &err) != AVEMO_OK) fail_msg("%s", err.message);
    double e = use_rel_l2 ? rel_l2(out, golden, rows * frames) : max_abs(out, golden, rows * frames);
    printf("  %-22s %5d Hz %-8s %3zux%-4zu %s = %.3g\n", name, rate, golden_suffix + 1, rows, frames,
           use_rel_l2 ? "rel L2 " : "max abs", e);
    free(out);
    avemo_audio_extractor_free(ex);
    free(pcm);
    free(golden);
    return e;
}

static void test_mel_filterbanks(void **state)
{
    (void)state;
    static const int rates[] = {22050, 16000};
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "mel_filterbank_%d_2048_128", rates[i]);
        size_t count;
        float *golden = read_f32(name, ".f32", &count);
        assert_int_equal(count, 128 * 1025);
        struct avemo_audio_params p;
        avemo_audio_params_default(&p);
        p.sample_rate = rates[i];
        float *w = malloc(sizeof(float) * count);
        assert_non_null(w);
        struct avemo_error err = {0};
        assert_int_equal(avemo_audio_mel_filterbank(&p, w, &err), AVEMO_OK);
        double e = max_abs(w, golden, count);
        printf("  %-32s max abs = %.3g\n", name, e);
        assert_true(e <= FILTERBANK_MAX_ABS);
        free(w);
        free(golden);
    }
}

static void test_mel_power(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_true(compare_feature(cases[i].name, 22050, AVEMO_AUDIO_MEL, AVEMO_DB_REF_ONE, ".mel_power.f32", 1) <=
                    MEL_MAX_REL_L2);
}

static void test_logmel(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_true(compare_feature(cases[i].name, 22050, AVEMO_AUDIO_LOGMEL, AVEMO_DB_REF_ONE, ".logmel.f32", 0) <=
                    LOGMEL_MAX_ABS_DB);
}

static void test_mfcc40(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_true(compare_feature(cases[i].name, 22050, AVEMO_AUDIO_MFCC, AVEMO_DB_REF_ONE, ".mfcc40.f32", 1) <=
                    MFCC_MAX_REL_L2);
}

static void test_logmel_refmax_16k(void **state)
{
    (void)state;
    int tested = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cases[i].has_16k) continue;
        assert_true(compare_feature(cases[i].name, 16000, AVEMO_AUDIO_LOGMEL, AVEMO_DB_REF_MAX,
                                    ".logmel_refmax_16k.f32", 0) <= LOGMEL_MAX_ABS_DB);
        tested++;
    }
    assert_int_equal(tested, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mel_filterbanks),
        cmocka_unit_test(test_mel_power),
        cmocka_unit_test(test_logmel),
        cmocka_unit_test(test_mfcc40),
        cmocka_unit_test(test_logmel_refmax_16k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
