/*
 * Waveform augmentation that imitates other recordings: a synthetic room adds a decaying
 * tail after every sound and keeps the level; a codec keeps the sound and its length; both
 * are drawn for the asked fraction of samples.  Face crops: no jitter gives the crop itself, a
 * rotation turns the face by no more than the asked angle.
 */
#include "common/testutil.h"

#include "train/train_internal.h"

#include <math.h>

#define RATE 16000

/* A click at 0.25 s through a room: nothing before it, the click itself is the largest
 * sample, a tail of about the drawn reverberation time follows, and the level is kept. */
static void test_room_adds_a_tail(void **state)
{
    (void)state;
    enum { N = RATE * 2, CLICK = RATE / 4 };
    static float in[N], out[N];
    in[CLICK] = 0.5f;
    struct avemo_augment a = {0};
    a.room = 1;
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 3, 1);
    for (int trial = 0; trial < 5; trial++) {
        assert_int_equal(train_augment_wave(in, N, out, N, RATE, &a, &rng), N);
        double before = 0, e = 0, e_late = 0, peak = 0;
        int peak_at = -1;
        for (int i = 0; i < N; i++) {
            if (i < CLICK) before = fmax(before, fabs(out[i]));
            e += (double)out[i] * out[i];
            if (i > CLICK + RATE / 20) e_late += (double)out[i] * out[i]; /* after 50 ms */
            if (fabs(out[i]) > peak) peak = fabs(out[i]), peak_at = i;
        }
        printf("  room %d: peak at %d, energy %.4f (dry 0.25), %.1f%% of it after 50 ms\n", trial, peak_at, e,
               100 * e_late / e);
        assert_true(before < 1e-6);
        assert_int_equal(peak_at, CLICK);
        assert_true(fabs(e - 0.25) < 0.25 * 1e-3);
        assert_true(e_late > 0.01 * e); /* a tail of more than 50 ms: a room, not an echo */
        assert_true(e_late < 0.8 * e);
    }
}

/* A 440 Hz tone through codecs: the length stays, the tone stays (correlation with the dry
 * tone), the samples change. */
static void test_codec_keeps_the_sound(void **state)
{
    (void)state;
    enum { N = RATE * 2 };
    static float in[N], out[N];
    for (int i = 0; i < N; i++) in[i] = 0.3f * sinf(2 * (float)M_PI * 440 * (float)i / RATE);
    struct avemo_error err = {0};
    struct avemo_augment a = {0};
    a.codec = 1;
    assert_int_equal(train_check_codecs(&a, RATE, &err), AVEMO_OK);
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 5, 1);
    for (int trial = 0; trial < 6; trial++) {
        assert_int_equal(train_augment_wave(in, N, out, N, RATE, &a, &rng), N);
        double xy = 0, xx = 0, yy = 0, changed = 0;
        for (int i = RATE / 4; i < N - RATE / 4; i++) {
            xy += (double)in[i] * out[i], xx += (double)in[i] * in[i], yy += (double)out[i] * out[i];
            changed = fmax(changed, fabs((double)out[i] - in[i]));
        }
        double corr = xy / sqrt(xx * yy);
        printf("  codec %d: correlation %.3f, max change %.4f\n", trial, corr, changed);
        assert_true(corr > 0.9);
        assert_true(changed > 1e-4);
    }
}

/* room = 0.3: about 30% of 200 samples get a room (a dry sample comes out unchanged). */
static void test_fraction_of_samples(void **state)
{
    (void)state;
    enum { N = 4000 };
    static float in[N], out[N];
    for (int i = 0; i < N; i++) in[i] = (i % 400 == 0) ? 0.5f : 0.0f;
    struct avemo_augment a = {0};
    a.room = 0.3f;
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 9, 1);
    int wet = 0;
    for (int k = 0; k < 200; k++) {
        train_augment_wave(in, N, out, N, RATE, &a, &rng);
        wet += fabsf(out[1]) > 1e-6f; /* only a room puts sound right after the first click */
    }
    printf("  room = 0.3: %d of 200 samples wet\n", wet);
    assert_true(wet >= 40 && wet <= 80);
}

/* The orientation in degrees of the bright pixels (> 0.5) of a size x size image: the main
 * axis of their second moments. */
static double bright_axis_degrees(const float *img, int size)
{
    double n = 0, mx = 0, my = 0, cxx = 0, cyy = 0, cxy = 0;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            if (img[y * size + x] > 0.5f) n++, mx += x, my += y;
    mx /= n, my /= n;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            if (img[y * size + x] > 0.5f)
                cxx += (x - mx) * (x - mx), cyy += (y - my) * (y - my), cxy += (x - mx) * (y - my);
    return 0.5 * atan2(2 * cxy, cxx - cyy) * 180 / M_PI;
}

/* A horizontal bar through a 64x64 crop: without jitter the crop comes out as it is (scaled
 * to [0, 1]); with face_rotate = 15 the bar turns by at most 15 degrees, both ways. */
static void test_face_rotation(void **state)
{
    (void)state;
    enum { S = 64 };
    static uint8_t crop[S * S];
    static float out[S * S];
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) crop[y * S + x] = (y >= 30 && y <= 33) ? 255 : (uint8_t)(x / 2);
    struct avemo_augment a = {0};
    struct avemo_rng rng;
    avemo_rng_seed(&rng, 11, 1);
    train_face_augment(crop, S, 1, out, &a, &rng);
    for (int i = 0; i < S * S; i++) assert_float_equal(out[i], crop[i] / 255.0f, 1e-6);
    a.face_rotate = 15;
    double lo = 90, hi = -90;
    for (int trial = 0; trial < 40; trial++) {
        train_face_augment(crop, S, 1, out, &a, &rng);
        double angle = bright_axis_degrees(out, S);
        lo = fmin(lo, angle), hi = fmax(hi, angle);
        assert_true(fabs(angle) <= 15.5);
    }
    printf("  face_rotate = 15: the bar at %.1f to %.1f degrees over 40 crops\n", lo, hi);
    assert_true(lo < -7 && hi > 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_adds_a_tail),
        cmocka_unit_test(test_codec_keeps_the_sound),
        cmocka_unit_test(test_fraction_of_samples),
        cmocka_unit_test(test_face_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
