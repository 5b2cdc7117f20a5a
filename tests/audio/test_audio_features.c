/* audio_features: the extractor beyond the golden comparisons: fixed-size model
 * inputs (pad, crop policies, normalisation), the linear spectrogram, the HTK
 * and fmin/fmax filter banks, error handling and use from several threads. */
#include <avemo/audio.h>

#include "common/testutil.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define REF_DIR TEST_DATA("audio_ref")

static float *read_f32(const char *file, size_t *count)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", REF_DIR, file);
    size_t bytes;
    uint8_t *data = test_read_file(path, &bytes);
    *count = bytes / 4;
    return (float *)data;
}

static avemo_audio_extractor *make_extractor(const struct avemo_audio_params *p)
{
    avemo_audio_extractor *ex = NULL;
    struct avemo_error err = {0};
    if (avemo_audio_extractor_create(p, &ex, &err) != AVEMO_OK) fail_msg("%s", err.message);
    return ex;
}

/* Full features (all frames) of x; *frames receives their count. */
static float *full_features(avemo_audio_extractor *ex, const float *x, size_t n, size_t *frames)
{
    *frames = avemo_audio_frame_count(ex, n);
    float *out = malloc(sizeof(float) * (size_t)avemo_audio_feature_count(ex) * *frames);
    assert_non_null(out);
    struct avemo_error err = {0};
    if (avemo_audio_compute(ex, x, n, out, *frames, &err) != AVEMO_OK) fail_msg("%s", err.message);
    return out;
}

static void test_pad_short_clip(void **state)
{
    (void)state;
    size_t n;
    float *x = read_f32("short_300ms.pcm22050.f32", &n);
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.frames = 0;
    avemo_audio_extractor *ex_all = make_extractor(&p);
    size_t total;
    float *full = full_features(ex_all, x, n, &total);
    assert_int_equal(total, 13);

    p.frames = 128;
    avemo_audio_extractor *ex = make_extractor(&p);
    assert_int_equal(avemo_audio_output_frames(ex, n), 128);
    float *fixed = malloc(sizeof(float) * 40 * 128);
    size_t valid = 0;
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, fixed, 128, &valid, &err), AVEMO_OK);
    assert_int_equal(valid, 13);
    for (int f = 0; f < 40; f++) {
        assert_memory_equal(fixed + f * 128, full + f * 13, sizeof(float) * 13);
        for (int t = 13; t < 128; t++) assert_true(fixed[f * 128 + t] == 0.0f);
    }
    /* A buffer of the wrong width is refused. */
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, fixed, 98, NULL, &err), AVEMO_ERR_MISMATCH);
    free(fixed);
    free(full);
    free(x);
    avemo_audio_extractor_free(ex);
    avemo_audio_extractor_free(ex_all);
}

/* Sum over the 40 rows of |column a - column b| of a 40 x 128 matrix. */
static double column_distance(const float *x, int a, int b)
{
    double d = 0.0;
    for (int f = 0; f < 40; f++) d += fabs((double)x[f * 128 + a] - (double)x[f * 128 + b]);
    return d;
}

/* pad = centre: the 13-frame clip in the middle of digital silence, i.e. the features of the
 * signal with 57 hops of zeros before it and zeros after it up to 128 frames. */
static void test_pad_centre(void **state)
{
    (void)state;
    size_t n;
    float *x = read_f32("short_300ms.pcm22050.f32", &n);
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.top_db = 50;
    p.pad = AVEMO_PAD_CENTRE;
    size_t left = (128 - 13) / 2 * 512, len = 127 * 512;
    assert_true(n + left <= len);
    float *padded = calloc(len, sizeof(float));
    assert_non_null(padded);
    memcpy(padded + left, x, sizeof(float) * n);
    p.frames = 0;
    avemo_audio_extractor *ex_all = make_extractor(&p);
    size_t total;
    float *full = full_features(ex_all, padded, len, &total);
    assert_int_equal(total, 128);

    p.frames = 128;
    avemo_audio_extractor *ex = make_extractor(&p);
    float *fixed = malloc(sizeof(float) * 40 * 128);
    size_t valid = 0;
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, fixed, 128, &valid, &err), AVEMO_OK);
    assert_int_equal(valid, 128);
    assert_memory_equal(fixed, full, sizeof(float) * 40 * 128);
    /* Both ends are silence at the log-mel floor (equal columns), the middle is the tone. */
    for (int f = 0; f < 40; f++) assert_true(fixed[f * 128] == fixed[f * 128 + 127]);
    printf("  centred tone: column 64 vs silence %.1f, columns 0 vs 127 %.1f\n", column_distance(fixed, 64, 0),
           column_distance(fixed, 0, 127));
    assert_true(column_distance(fixed, 64, 0) > 50.0);
    /* A signal as long as the window is not moved. */
    float *y = calloc(len, sizeof(float));
    assert_non_null(y);
    memcpy(y, x, sizeof(float) * n);
    assert_int_equal(avemo_audio_compute_fixed(ex, y, len, fixed, 128, &valid, &err), AVEMO_OK);
    printf("  tone at the start: columns 0 vs 127 %.1f\n", column_distance(fixed, 0, 127));
    assert_true(column_distance(fixed, 0, 127) > 50.0);
    free(y);
    free(fixed);
    free(full);
    free(padded);
    free(x);
    avemo_audio_extractor_free(ex);
    avemo_audio_extractor_free(ex_all);
}

/* Crop the 167-frame RAVDESS clip to 40 frames and compare with the full matrix's columns. */
static void check_crop(enum avemo_crop crop, size_t expected_start)
{
    size_t n;
    float *x = read_f32("ravdess_01_angry.pcm22050.f32", &n);
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.feature = AVEMO_AUDIO_LOGMEL;
    p.frames = 0;
    avemo_audio_extractor *ex_all = make_extractor(&p);
    size_t total;
    float *full = full_features(ex_all, x, n, &total);
    assert_int_equal(total, 167);
    p.frames = 40;
    p.crop = crop;
    avemo_audio_extractor *ex = make_extractor(&p);
    float *fixed = malloc(sizeof(float) * 128 * 40);
    size_t valid = 0;
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, fixed, 40, &valid, &err), AVEMO_OK);
    assert_int_equal(valid, 40);
    for (int f = 0; f < 128; f++)
        assert_memory_equal(fixed + f * 40, full + f * total + expected_start, sizeof(float) * 40);
    free(fixed);
    free(full);
    free(x);
    avemo_audio_extractor_free(ex);
    avemo_audio_extractor_free(ex_all);
}

static void test_crop_start_and_centre(void **state)
{
    (void)state;
    check_crop(AVEMO_CROP_START, 0);
    check_crop(AVEMO_CROP_CENTRE, (167 - 40) / 2);
}

static void test_crop_most_energetic_window(void **state)
{
    (void)state;
    const double energy[] = {1, 1, 5, 5, 1, 9, 1, 1};
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_ENERGY, 8, 2, energy), 2);
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_ENERGY, 8, 1, energy), 5);
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_ENERGY, 8, 3, energy), 3);
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_ENERGY, 8, 8, energy), 0);
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_CENTRE, 9, 4, NULL), 2);

    /* 10 s of quiet noise with a loud 1 s tone starting at 6 s: a 40-frame
     * window (0.93 s) must lie inside the tone. */
    size_t n = 220500;
    float *x = malloc(sizeof(float) * n);
    uint32_t seed = 12345;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = 0.001f * ((float)(seed >> 8) / 16777216.0f - 0.5f);
        if (i >= 132300 && i < 154350) x[i] += 0.5f * sinf(2.0f * (float)M_PI * 440.0f * (float)i / 22050.0f);
    }
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.frames = 40;
    p.crop = AVEMO_CROP_ENERGY;
    avemo_audio_extractor *ex = make_extractor(&p);
    float *fixed = malloc(sizeof(float) * 40 * 40);
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, fixed, 40, NULL, &err), AVEMO_OK);
    p.frames = 0;
    avemo_audio_extractor *ex_all = make_extractor(&p);
    size_t total;
    float *full = full_features(ex_all, x, n, &total);
    /* Find which window the output is. */
    long found = -1;
    for (size_t s = 0; s + 40 <= total && found < 0; s++)
        if (memcmp(fixed, full + s, sizeof(float) * 40) == 0 &&
            memcmp(fixed + 39 * 40, full + 39 * total + s, sizeof(float) * 40) == 0)
            found = (long)s;
    printf("  energy crop chose frames %ld..%ld (tone: frames 258..301)\n", found, found + 39);
    /* Frame t is centred on sample 512 t: the tone covers frames ~258..301. */
    assert_true(found >= 258 && found + 39 <= 302);
    free(full);
    free(fixed);
    free(x);
    avemo_audio_extractor_free(ex);
    avemo_audio_extractor_free(ex_all);
}

/* crop=centroid: the window centred on the energy-weighted mean frame, and the same
 * window when every frame gets a little noise (where crop=energy, breaking a tie
 * between windows that all hold the whole burst, jumps). */
static void test_crop_centroid(void **state)
{
    (void)state;
    double energy[20] = {0};
    for (int t = 8; t < 12; t++) energy[t] = 1.0; /* centroid 9.5 */
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_CENTROID, 20, 6, energy), 7);   /* frames 7..12 */
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_ENERGY, 20, 6, energy), 6);     /* first of the ties */
    double noisy[20];
    for (int t = 0; t < 20; t++) noisy[t] = energy[t] + (t == 13 ? 1e-9 : 0.0);
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_CENTROID, 20, 6, noisy), 7);
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_ENERGY, 20, 6, noisy), 8);      /* jumped */
    energy[19] = 100.0; /* near the end: the window stays inside the signal */
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_CENTROID, 20, 6, energy), 14);
    double silent[20] = {0};
    assert_int_equal(avemo_audio_crop_start(AVEMO_CROP_CENTROID, 20, 6, silent), 7); /* centre */
}

/* The level that tells a voice from silence: the loudest 50 ms block's RMS in dBFS. */
static void test_audio_level(void **state)
{
    (void)state;
    size_t n = 22050; /* one second */
    float *x = calloc(n, sizeof(float));
    assert_true(avemo_audio_level_db(x, n, 22050) == AVEMO_AUDIO_LEVEL_FLOOR_DB); /* digital silence */
    assert_true(avemo_audio_level_db(NULL, 0, 22050) == AVEMO_AUDIO_LEVEL_FLOOR_DB);
    /* +-1 LSB of 16-bit dither: about -90 dBFS, silent */
    for (size_t i = 0; i < n; i++) x[i] = (i * 2654435761u >> 16) % 3 == 0 ? 0.0f : (i & 1 ? 1.0f : -1.0f) / 32768.0f;
    double dither = avemo_audio_level_db(x, n, 22050);
    assert_true(dither > -100 && dither < -85 && dither < AVEMO_AUDIO_SILENT_DB);
    /* A quiet voice-like tone for 100 ms of the second (amplitude 0.01: -43 dBFS) is audible;
     * the rest of the second does not lower the level. */
    memset(x, 0, n * sizeof(float));
    for (size_t i = 11025; i < 11025 + 2205; i++) x[i] = 0.01f * sinf(2.0f * (float)M_PI * 200.0f * (float)i / 22050.0f);
    double tone = avemo_audio_level_db(x, n, 22050);
    assert_true(fabs(tone - -43.0) < 0.5 && tone > AVEMO_AUDIO_SILENT_DB);
    /* One full-scale click in silence: spread over its block, -33 dBFS */
    memset(x, 0, n * sizeof(float));
    x[500] = 1.0f;
    assert_true(fabs(avemo_audio_level_db(x, n, 22050) - 10 * log10(1.0 / 1102)) < 0.01);
    free(x);
}

/* loudness=rms: a tone with long pauses and the same tone without them reach the same
 * level (the loudest quarter counts, not the pauses); the gain is capped; silence stays silence;
 * and features of a quiet and a loud copy of one signal are the same. */
static void test_loudness_rms(void **state)
{
    (void)state;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.loudness = AVEMO_LOUDNESS_RMS;
    p.loudness_db = -20.0;
    size_t n = 44100;
    float *x = calloc(n, sizeof(float)), *y = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float tone = 0.01f * sinf(2.0f * (float)M_PI * 220.0f * (float)i / 22050.0f);
        x[i] = tone;
        y[i] = i < n / 3 ? tone : 0.0f; /* two thirds pause: the loudest quarter is tone */
    }
    double gx = avemo_audio_loudness_gain(&p, x, n), gy = avemo_audio_loudness_gain(&p, y, n);
    /* A sine of amplitude 0.01 has mean square 5e-5 (-43 dB): +23 dB to reach -20. */
    printf("  gain %.2f dB (continuous), %.2f dB (with pauses)\n", 20 * log10(gx), 20 * log10(gy));
    assert_true(fabs(20 * log10(gx) - 23.01) < 0.1); /* blocks are not whole periods */
    assert_true(fabs(20 * log10(gy) - 20 * log10(gx)) < 0.3);
    p.max_gain_db = 10.0;
    assert_true(fabs(20 * log10(avemo_audio_loudness_gain(&p, x, n)) - 10.0) < 1e-9);
    memset(y, 0, n * sizeof(float));
    assert_true(avemo_audio_loudness_gain(&p, y, n) == 1.0);
    p.loudness = AVEMO_LOUDNESS_NONE;
    assert_true(avemo_audio_loudness_gain(&p, x, n) == 1.0);

    p.loudness = AVEMO_LOUDNESS_RMS;
    p.max_gain_db = 40.0;
    for (size_t i = 0; i < n; i++) y[i] = x[i] * 0.25f; /* 12 dB quieter: +35 dB, under the cap */
    avemo_audio_extractor *ex = make_extractor(&p);
    float *a = malloc(sizeof(float) * 40 * 128), *b = malloc(sizeof(float) * 40 * 128);
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, a, 128, NULL, &err), AVEMO_OK);
    assert_int_equal(avemo_audio_compute_fixed(ex, y, n, b, 128, NULL, &err), AVEMO_OK);
    double worst = 0.0;
    for (size_t i = 0; i < 40 * 128; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    printf("  MFCC of a copy 12 dB quieter: max |difference| %.3g\n", worst);
    assert_true(worst < 0.5); /* float rounding near the 80 dB floor; c0 is about -300 */
    free(a);
    free(b);
    free(x);
    free(y);
    avemo_audio_extractor_free(ex);
}

/* trim_db: a 0.5 s tone between 1 s pauses keeps about the tone's frames, the rest is
 * padding; without trimming the pauses fill the window. */
static void test_trim_silence(void **state)
{
    (void)state;
    size_t n = 55125; /* 2.5 s */
    float *x = calloc(n, sizeof(float));
    for (size_t i = 22050; i < 33075; i++) x[i] = 0.3f * sinf(2.0f * (float)M_PI * 330.0f * (float)i / 22050.0f);
    for (size_t i = 0; i < n; i++) x[i] += (i % 2 ? 1.0f : -1.0f) / 32768.0f; /* +-1 LSB in the pauses */
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.crop = AVEMO_CROP_CENTROID;
    float *out = malloc(sizeof(float) * 40 * 128);
    struct avemo_error err = {0};
    size_t valid_all = 0, valid_trim = 0;
    avemo_audio_extractor *ex = make_extractor(&p);
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, out, 128, &valid_all, &err), AVEMO_OK);
    avemo_audio_extractor_free(ex);
    p.trim_db = 30.0;
    ex = make_extractor(&p);
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, out, 128, &valid_trim, &err), AVEMO_OK);
    printf("  valid frames: %zu untrimmed, %zu trimmed (the tone spans ~22)\n", valid_all, valid_trim);
    assert_int_equal(valid_all, 108); /* 1 + 55125 / 512 */
    assert_true(valid_trim >= 21 && valid_trim <= 26);
    for (size_t t = valid_trim; t < 128; t++) assert_true(out[t] == 0.0f); /* padding */
    free(out);
    free(x);
    avemo_audio_extractor_free(ex);
}

static void test_normalisation(void **state)
{
    (void)state;
    size_t n;
    float *x = read_f32("short_300ms.pcm22050.f32", &n);
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.frames = 20;
    avemo_audio_extractor *ex_raw = make_extractor(&p);
    float raw[40 * 20], out[40 * 20];
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex_raw, x, n, raw, 20, NULL, &err), AVEMO_OK);

    /* Per utterance: every band has mean 0, std 1 over the 13 real frames; padding stays 0. */
    p.norm = AVEMO_NORM_UTTERANCE;
    avemo_audio_extractor *ex = make_extractor(&p);
    size_t valid;
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, out, 20, &valid, &err), AVEMO_OK);
    assert_int_equal(valid, 13);
    for (int f = 0; f < 40; f++) {
        double sum = 0, sum2 = 0;
        for (int t = 0; t < 13; t++) sum += out[f * 20 + t], sum2 += (double)out[f * 20 + t] * out[f * 20 + t];
        assert_true(fabs(sum / 13) < 1e-4);
        assert_true(fabs(sqrt(sum2 / 13) - 1.0) < 1e-3);
        for (int t = 13; t < 20; t++) assert_true(out[f * 20 + t] == 0.0f);
    }
    avemo_audio_extractor_free(ex);

    /* Dataset statistics from the caller. */
    p.norm = AVEMO_NORM_DATASET;
    ex = make_extractor(&p);
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, out, 20, NULL, &err), AVEMO_ERR_CONFIG);
    float mean[40], sd[40];
    for (int f = 0; f < 40; f++) mean[f] = (float)(f - 20), sd[f] = 2.0f + (float)f;
    assert_int_equal(avemo_audio_extractor_set_stats(ex, mean, sd, 39, &err), AVEMO_ERR_MISMATCH);
    sd[3] = 0.0f;
    assert_int_equal(avemo_audio_extractor_set_stats(ex, mean, sd, 40, &err), AVEMO_ERR_INVALID_ARG);
    sd[3] = 5.0f;
    assert_int_equal(avemo_audio_extractor_set_stats(ex, mean, sd, 40, &err), AVEMO_OK);
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, out, 20, NULL, &err), AVEMO_OK);
    for (int f = 0; f < 40; f++)
        for (int t = 0; t < 13; t++) {
            float want = (raw[f * 20 + t] - mean[f]) / sd[f];
            assert_true(fabsf(out[f * 20 + t] - want) <= 1e-5f * (1.0f + fabsf(want)));
        }
    avemo_audio_extractor_free(ex);
    avemo_audio_extractor_free(ex_raw);
    free(x);
}

/* The linear spectrogram, back to power and projected with librosa's filter
 * bank, gives librosa's mel power spectrogram. */
static void test_spectrogram_matches_librosa_through_filterbank(void **state)
{
    (void)state;
    size_t n, nfb, ngold;
    float *x = read_f32("cremad_1001_ANG.pcm22050.f32", &n);
    float *fb = read_f32("mel_filterbank_22050_2048_128.f32", &nfb);
    float *gold = read_f32("cremad_1001_ANG.mel_power.f32", &ngold);
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.feature = AVEMO_AUDIO_SPECTROGRAM;
    p.frames = 0;
    p.top_db = 0.0;
    p.amin = 1e-30;
    avemo_audio_extractor *ex = make_extractor(&p);
    assert_int_equal(avemo_audio_feature_count(ex), 1025);
    size_t T;
    float *spec = full_features(ex, x, n, &T);
    assert_int_equal(ngold, 128 * T);
    double num = 0, den = 0;
    for (size_t m = 0; m < 128; m++)
        for (size_t t = 0; t < T; t++) {
            double acc = 0;
            for (size_t k = 0; k < 1025; k++) acc += fb[m * 1025 + k] * pow(10.0, spec[k * T + t] / 10.0);
            double g = gold[m * T + t];
            num += (acc - g) * (acc - g);
            den += g * g;
        }
    double e = sqrt(num / den);
    printf("  spectrogram -> librosa filter bank vs mel_power: rel L2 = %.3g\n", e);
    assert_true(e <= 1e-4);

    /* power = 1 gives the magnitude: its dB are half the power's. */
    p.power = 1;
    avemo_audio_extractor *ex_mag = make_extractor(&p);
    float *mag = full_features(ex_mag, x, n, &T);
    double worst = 0;
    for (size_t i = 0; i < 1025 * T; i++)
        if (spec[i] > -200.0f) worst = fmax(worst, fabs(2.0 * mag[i] - spec[i]));
    printf("  power=1 vs power=2: max |2 dB(|X|) - dB(|X|^2)| = %.3g\n", worst);
    assert_true(worst < 1e-3);
    free(mag);
    free(spec);
    free(gold);
    free(fb);
    free(x);
    avemo_audio_extractor_free(ex);
    avemo_audio_extractor_free(ex_mag);
}

static double htk_hz_to_mel(double hz) { return 2595.0 * log10(1.0 + hz / 700.0); }
static double htk_mel_to_hz(double mel) { return 700.0 * (pow(10.0, mel / 2595.0) - 1.0); }

static void test_htk_and_band_limits(void **state)
{
    (void)state;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.sample_rate = 16000;
    p.n_fft = 1024;
    p.n_mels = 40;
    p.fmin = 300;
    p.fmax = 3400;
    p.mel_scale = AVEMO_MEL_HTK;
    p.mel_norm = AVEMO_MEL_NORM_NONE;
    float w[40 * 513];
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_mel_filterbank(&p, w, &err), AVEMO_OK);
    double bin_hz = 16000.0 / 1024, lo = htk_hz_to_mel(300), hi = htk_hz_to_mel(3400);
    for (int m = 0; m < 40; m++) {
        double left = htk_mel_to_hz(lo + (hi - lo) * m / 41), centre = htk_mel_to_hz(lo + (hi - lo) * (m + 1) / 41),
               right = htk_mel_to_hz(lo + (hi - lo) * (m + 2) / 41);
        int peak = 0;
        for (int k = 0; k < 513; k++) {
            double f = k * bin_hz, v = w[m * 513 + k];
            /* Zero outside the triangle, the triangle's value inside (unnormalised: height 1). */
            double want = f <= left || f >= right ? 0.0 : f <= centre ? (f - left) / (centre - left)
                                                                       : (right - f) / (right - centre);
            if (fabs(v - want) > 1e-6) fail_msg("band %d bin %d: %g, want %g", m, k, v, want);
            if (v > w[m * 513 + peak]) peak = k;
        }
        assert_true(fabs(peak * bin_hz - centre) <= bin_hz);
    }

    /* Slaney normalisation: each triangle has unit area (2 / width Hz height);
     * checked on bands wide enough for the bins to sample the area well. */
    p.mel_scale = AVEMO_MEL_SLANEY;
    p.mel_norm = AVEMO_MEL_NORM_SLANEY;
    p.fmin = 0;
    p.fmax = 0;
    p.n_mels = 20;
    p.n_mfcc = 20;
    assert_int_equal(avemo_audio_mel_filterbank(&p, w, &err), AVEMO_OK);
    for (int m = 10; m < 20; m++) {
        double area = 0;
        for (int k = 0; k < 513; k++) area += w[m * 513 + k] * bin_hz;
        assert_true(fabs(area - 1.0) < 0.01);
    }
}

/* Largest |a - b| over n values. */
static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* MFCC of a golden input (all frames) through the shipped voice model's front end (loudness
 * -20 dBFS, log-mel floored 50 dB below its peak), with or without a band limit. */
static float *mfcc_of(const char *pcm_file, double band_limit, size_t *values)
{
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.frames = 0;
    p.loudness = AVEMO_LOUDNESS_RMS;
    p.top_db = 50;
    p.band_limit = band_limit;
    size_t n, frames;
    float *x = read_f32(pcm_file, &n);
    avemo_audio_extractor *ex = make_extractor(&p);
    float *f = full_features(ex, x, n, &frames);
    *values = frames * (size_t)avemo_audio_feature_count(ex);
    avemo_audio_extractor_free(ex);
    free(x);
    return f;
}

/* band_limit: the filter bank ignores the bins above the limit and is unchanged below it, so a
 * recording made at 16 kHz (nothing above 8 kHz) keeps its features while a wideband one (the
 * CREMA-D clip's 44.1 kHz MP3 track) loses what lies above 8 kHz. */
static void test_band_limit(void **state)
{
    (void)state;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    static float full[128 * 1025], limited[128 * 1025];
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_mel_filterbank(&p, full, &err), AVEMO_OK);
    p.band_limit = 8000;
    assert_int_equal(avemo_audio_mel_filterbank(&p, limited, &err), AVEMO_OK);
    double bin_hz = 22050.0 / 2048;
    int above = 0;
    for (int m = 0; m < 128; m++)
        for (int k = 0; k < 1025; k++) {
            float want = k * bin_hz <= 8000 ? full[m * 1025 + k] : 0.f;
            if (limited[m * 1025 + k] != want) fail_msg("band %d bin %d: %g, want %g", m, k, limited[m * 1025 + k], want);
            above += k * bin_hz > 8000 && full[m * 1025 + k] > 0;
        }
    assert_true(above > 100); /* the full bank does reach above 8 kHz */

    size_t n1, n2;
    float *a = mfcc_of("ravdess_01_angry.pcm22050.f32", 0, &n1), *b = mfcc_of("ravdess_01_angry.pcm22050.f32", 8000, &n2);
    assert_true(n1 == n2 && n1 > 0);
    double narrow = max_abs_diff(a, b, n1);
    free(a);
    free(b);
    a = mfcc_of("cremad_1001_ANG.pcm22050.f32", 0, &n1);
    b = mfcc_of("cremad_1001_ANG.pcm22050.f32", 8000, &n2);
    assert_true(n1 == n2 && n1 > 0);
    double wide = max_abs_diff(a, b, n1);
    free(a);
    free(b);
    print_message("band_limit 8000: MFCC moves by %.3f on a 16 kHz recording, %.3f on a wideband one\n", narrow, wide);
    assert_true(narrow < 0.01);
    assert_true(wide > 2.0);

    p.band_limit = 12000; /* above Nyquist */
    assert_int_equal(avemo_audio_params_validate(&p, "t", &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "band_limit 12000"));
}

/* power_to_db against 10*log10 in double over 40 decades, ref 1 and ref max,
 * with and without clipping (n not a multiple of 4 on purpose). */
static void test_power_to_db(void **state)
{
    (void)state;
    enum { N = 4003 };
    static float x[N], ref[N];
    for (int i = 0; i < N; i++) ref[i] = x[i] = (float)pow(10.0, -12.0 + 24.0 * i / (N - 1) + 1e-3 * (i % 7));
    x[17] = 0.0f;
    ref[17] = 0.0f;
    avemo_audio_power_to_db(x, N, AVEMO_DB_REF_ONE, 1e-10, 0.0);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double want = 10.0 * log10(fmax(1e-10, (double)ref[i]));
        worst = fmax(worst, fabs(x[i] - want));
    }
    printf("  power_to_db ref=1: max |error| = %.3g dB\n", worst);
    assert_true(worst < 1e-4);
    double top = -INFINITY;
    for (int i = 0; i < N; i++) top = fmax(top, 10.0 * log10((double)ref[i]));
    memcpy(x, ref, sizeof x);
    avemo_audio_power_to_db(x, N, AVEMO_DB_REF_MAX, 1e-10, 80.0);
    worst = 0.0;
    for (int i = 0; i < N; i++) {
        double want = fmax(10.0 * log10(fmax(1e-10, (double)ref[i])) - top, -80.0);
        worst = fmax(worst, fabs(x[i] - want));
    }
    printf("  power_to_db ref=max top_db=80: max |error| = %.3g dB\n", worst);
    assert_true(worst < 1e-4);
    float lo = x[0], hi = x[0];
    for (int i = 1; i < N; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    assert_true(fabsf(hi) < 1e-4f && fabsf(lo - (hi - 80.0f)) < 1e-4f);
}

static void test_bad_signals(void **state)
{
    (void)state;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    avemo_audio_extractor *ex = make_extractor(&p);
    float x[4096] = {0}, out[40 * 128];
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex, x, 0, out, 128, NULL, &err), AVEMO_ERR_EMPTY);
    x[1000] = NAN;
    assert_int_equal(avemo_audio_compute_fixed(ex, x, 4096, out, 128, NULL, &err), AVEMO_ERR_CORRUPT);
    assert_non_null(strstr(err.message, "sample 1000"));
    x[1000] = INFINITY;
    assert_int_equal(avemo_audio_compute(ex, x, 4096, out, 9, &err), AVEMO_ERR_CORRUPT);
    x[1000] = 0.0f;
    assert_int_equal(avemo_audio_compute(ex, x, 4096, out, 8, &err), AVEMO_ERR_MISMATCH);
    assert_int_equal(avemo_audio_compute(ex, x, 4096, out, 9, &err), AVEMO_OK);
    avemo_audio_extractor_free(ex);
    /* A hop of 1 sample on a long signal would make a huge matrix: refused before allocating. */
    p.hop = 1;
    p.feature = AVEMO_AUDIO_SPECTROGRAM;
    ex = make_extractor(&p);
    size_t n_long = 300000; /* 300001 frames x 1025 bins > 2^28 values */
    float *silence = calloc(n_long, sizeof(float)), *spec = malloc(sizeof(float) * 1025 * 128);
    assert_int_equal(avemo_audio_compute_fixed(ex, silence, n_long, spec, 128, NULL, &err), AVEMO_ERR_TOO_LARGE);
    printf("  %s\n", err.message);
    free(spec);
    free(silence);
    avemo_audio_extractor_free(ex);
    avemo_audio_params_default(&p);
    p.n_fft = 100000;
    assert_int_equal(avemo_audio_extractor_create(&p, &ex, &err), AVEMO_ERR_CONFIG);
    assert_null(ex);
}

/* Each thread creates its own extractor (planning concurrently) and computes
 * the same clip repeatedly; every result must equal the single-thread one. */
struct thread_job {
    const float *x;
    size_t n;
    const float *expected;
    int mismatches;
};

static void *thread_main(void *arg)
{
    struct thread_job *job = arg;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    avemo_audio_extractor *ex = NULL;
    if (avemo_audio_extractor_create(&p, &ex, NULL) != AVEMO_OK) {
        job->mismatches = -1;
        return NULL;
    }
    float out[40 * 128];
    for (int i = 0; i < 30; i++) {
        if (avemo_audio_compute_fixed(ex, job->x, job->n, out, 128, NULL, NULL) != AVEMO_OK ||
            memcmp(out, job->expected, sizeof out) != 0)
            job->mismatches++;
    }
    avemo_audio_extractor_free(ex);
    return NULL;
}

static void test_threads_with_own_extractors(void **state)
{
    (void)state;
    size_t n;
    float *x = read_f32("cremad_1001_ANG.pcm22050.f32", &n);
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    avemo_audio_extractor *ex = make_extractor(&p);
    float expected[40 * 128];
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_compute_fixed(ex, x, n, expected, 128, NULL, &err), AVEMO_OK);
    avemo_audio_extractor_free(ex);
    enum { THREADS = 4 };
    pthread_t tid[THREADS];
    struct thread_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct thread_job){x, n, expected, 0};
        assert_int_equal(pthread_create(&tid[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(jobs[i].mismatches, 0);
    }
    free(x);
}

/* FFT convolution equals the direct sum (random signal and response of awkward lengths), a
 * delayed unit impulse delays, and out may be the input. */
static void test_convolve(void **state)
{
    (void)state;
    enum { N = 3001, M = 517 };
    static float x[N], h[M], out[N];
    unsigned seed = 12345;
    for (int i = 0; i < N; i++) x[i] = (float)((seed = seed * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1;
    for (int i = 0; i < M; i++) h[i] = (float)((seed = seed * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1;
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_convolve(x, N, h, M, out, &err), AVEMO_OK);
    double worst = 0;
    for (int t = 0; t < N; t++) {
        double direct = 0;
        for (int k = 0; k < M && k <= t; k++) direct += (double)h[k] * x[t - k];
        worst = fmax(worst, fabs(direct - out[t]));
    }
    printf("  %d x %d: max |fft - direct| = %.2g\n", N, M, worst);
    assert_true(worst < 1e-3); /* sums of ~500 terms of size ~1 in float */
    float delay[4] = {0, 0, 0, 1};
    static float y[N];
    memcpy(y, x, sizeof x);
    assert_int_equal(avemo_audio_convolve(y, N, delay, 4, y, &err), AVEMO_OK);
    for (int t = 0; t < 3; t++) assert_true(fabsf(y[t]) < 1e-5f);
    for (int t = 3; t < N; t++) assert_true(fabsf(y[t] - x[t - 3]) < 1e-5f);
    assert_int_equal(avemo_audio_convolve(x, 0, h, M, out, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_audio_convolve(x, (size_t)1 << 25, h, M, out, &err), AVEMO_ERR_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pad_short_clip),
        cmocka_unit_test(test_pad_centre),
        cmocka_unit_test(test_crop_start_and_centre),
        cmocka_unit_test(test_crop_most_energetic_window),
        cmocka_unit_test(test_crop_centroid),
        cmocka_unit_test(test_loudness_rms),
        cmocka_unit_test(test_audio_level),
        cmocka_unit_test(test_trim_silence),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_spectrogram_matches_librosa_through_filterbank),
        cmocka_unit_test(test_htk_and_band_limits),
        cmocka_unit_test(test_band_limit),
        cmocka_unit_test(test_power_to_db),
        cmocka_unit_test(test_bad_signals),
        cmocka_unit_test(test_threads_with_own_extractors),
        cmocka_unit_test(test_convolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
