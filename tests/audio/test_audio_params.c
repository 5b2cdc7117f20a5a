/* audio_params: the [audio] section of pipeline INI files, validation and its messages. */
#include <avemo/audio.h>

#include "common/testutil.h"

static void test_defaults_are_librosa_mfcc40(void **state)
{
    (void)state;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    assert_int_equal(p.sample_rate, 22050);
    assert_int_equal(p.n_fft, 2048);
    assert_int_equal(p.hop, 512);
    assert_int_equal(p.n_mels, 128);
    assert_int_equal(p.n_mfcc, 40);
    assert_int_equal(p.frames, 128);
    assert_int_equal(p.feature, AVEMO_AUDIO_MFCC);
    assert_int_equal(p.db_ref, AVEMO_DB_REF_ONE);
    assert_true(p.amin == 1e-10 && p.top_db == 80.0);
    assert_int_equal(p.loudness, AVEMO_LOUDNESS_NONE); /* the samples as librosa sees them */
    assert_int_equal(avemo_audio_params_feature_count(&p), 40);
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_params_validate(&p, "defaults", &err), AVEMO_OK);
}

static void test_ini_reads_only_audio_section(void **state)
{
    (void)state;
    const char *ini = "; a pipeline\n"
                      "[video]\nframes = 16\nsample_rate = oops\n\n"
                      "[audio]\n"
                      "sample_rate = 16000\n"
                      "n_fft=1024\n"
                      "hop = 256 ; inline comment\n"
                      "n_mels = 64\n"
                      "n_mfcc = 13\n"
                      "fmin = 20\n"
                      "fmax = 7600\n"
                      "mel_scale = htk\n"
                      "mel_norm = none\n"
                      "feature = logmel\n"
                      "power = 1\n"
                      "db_ref = max\n"
                      "top_db = none\n"
                      "frames = all\n"
                      "crop = center\n"
                      "norm = utterance\n"
                      "[nn]\nmodel = x.avm\n";
    struct avemo_audio_params p;
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_params_from_ini(ini, "p.ini", &p, &err), AVEMO_OK);
    assert_int_equal(p.sample_rate, 16000);
    assert_int_equal(p.n_fft, 1024);
    assert_int_equal(p.hop, 256);
    assert_int_equal(p.n_mels, 64);
    assert_int_equal(p.n_mfcc, 13);
    assert_true(p.fmin == 20.0 && p.fmax == 7600.0);
    assert_int_equal(p.mel_scale, AVEMO_MEL_HTK);
    assert_int_equal(p.mel_norm, AVEMO_MEL_NORM_NONE);
    assert_int_equal(p.feature, AVEMO_AUDIO_LOGMEL);
    assert_int_equal(p.power, 1);
    assert_int_equal(p.db_ref, AVEMO_DB_REF_MAX);
    assert_true(p.top_db == 0.0);
    assert_int_equal(p.frames, 0);
    assert_int_equal(p.crop, AVEMO_CROP_CENTRE);
    assert_int_equal(p.norm, AVEMO_NORM_UTTERANCE);
    assert_int_equal(avemo_audio_params_feature_count(&p), 64);

    /* No [audio] section: the defaults. */
    assert_int_equal(avemo_audio_params_from_ini("[video]\nframes=8\n", "v.ini", &p, &err), AVEMO_OK);
    struct avemo_audio_params d;
    avemo_audio_params_default(&d);
    assert_memory_equal(&p, &d, sizeof p);
}

/* Parse ini, expect AVEMO_ERR_CONFIG and a message containing every `needles` string. */
static void expect_config_error(const char *ini, const char *const *needles)
{
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.n_fft = 12345; /* must not be half-updated on failure */
    struct avemo_audio_params before = p;
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_params_from_ini(ini, "bad.ini", &p, &err), AVEMO_ERR_CONFIG);
    printf("  %s\n", err.message);
    for (int i = 0; needles[i]; i++)
        if (!strstr(err.message, needles[i])) fail_msg("message '%s' lacks '%s'", err.message, needles[i]);
    assert_memory_equal(&p, &before, sizeof p);
}

static void test_ini_errors_name_file_line_and_cause(void **state)
{
    (void)state;
    expect_config_error("[audio]\nn_fft = 2048\nn_mel = 64\n",
                        (const char *[]){"bad.ini", "line 3", "unknown key 'n_mel'", "n_mels", NULL});
    expect_config_error("[audio]\nfeature = chroma\n",
                        (const char *[]){"bad.ini", "line 2", "'chroma'", "mfcc|logmel|mel|spectrogram", NULL});
    expect_config_error("[audio]\nhop = 51x\n", (const char *[]){"line 2", "hop", "not an integer", NULL});
    expect_config_error("[audio]\nfmin = abc\n", (const char *[]){"fmin", "not a number", NULL});
    expect_config_error("[audio]\nframes = lots\n", (const char *[]){"frames", "'all'", NULL});
    expect_config_error("[audio]\nn_fft = 32768\n", (const char *[]){"bad.ini", "n_fft 32768", "16384", NULL});
    expect_config_error("[audio]\nn_mels = 513\n", (const char *[]){"n_mels 513", "512", NULL});
    expect_config_error("[audio]\nframes = 10001\n", (const char *[]){"frames 10001", "10000", NULL});
    expect_config_error("[audio]\nsample_rate = 999\n", (const char *[]){"sample_rate 999", "1000..192000", NULL});
    expect_config_error("[audio]\nsample_rate = 200000\n", (const char *[]){"sample_rate 200000", NULL});
    expect_config_error("[audio]\nn_mels = 32\nn_mfcc = 40\n", (const char *[]){"n_mfcc 40", NULL});
    expect_config_error("[audio]\nsample_rate = 16000\nfmax = 11025\n", (const char *[]){"fmax 11025", NULL});
    expect_config_error("[audio]\nsample_rate = 16000\nband_limit = 9000\n", (const char *[]){"band_limit 9000", "8000", NULL});
    expect_config_error("[audio]\nfeature = spectrogram\nband_limit = 4000\n", (const char *[]){"band_limit", "spectrogram", NULL});
    expect_config_error("[audio]\nhop = 0\n", (const char *[]){"hop 0", NULL});
    expect_config_error("[audio]\npower = 3\n", (const char *[]){"power 3", NULL});
    expect_config_error("[audio]\nloudness = ebu\n", (const char *[]){"line 2", "'ebu'", "none|rms", NULL});
    expect_config_error("[audio]\nloudness_db = 3\n", (const char *[]){"loudness_db 3", "-100..0", NULL});
    expect_config_error("[audio]\nmax_gain_db = -1\n", (const char *[]){"max_gain_db -1", "0..100", NULL});
    expect_config_error("[audio]\ntrim_db = -5\n", (const char *[]){"trim_db -5", "0..200", NULL});
    expect_config_error("[audio]\ndeltas = 3\n", (const char *[]){"deltas 3", "0..2", NULL});
    expect_config_error("[audio]\npad = both\n", (const char *[]){"line 2", "'both'", "end|centre", NULL});
    expect_config_error("[audio]\nthis line has no equals sign\n", (const char *[]){"line 2", NULL});
}

static void test_set_for_command_line(void **state)
{
    (void)state;
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    struct avemo_error err = {0};
    assert_int_equal(avemo_audio_params_set(&p, "feature", "spectrogram", "cli", &err), AVEMO_OK);
    assert_int_equal(avemo_audio_params_set(&p, "frames", "250", "cli", &err), AVEMO_OK);
    assert_int_equal(p.feature, AVEMO_AUDIO_SPECTROGRAM);
    assert_int_equal(p.frames, 250);
    assert_int_equal(avemo_audio_params_feature_count(&p), 1025);
    /* Delta channels multiply the rows: the features, their delta, their delta-delta. */
    assert_int_equal(avemo_audio_params_set(&p, "deltas", "2", "cli", &err), AVEMO_OK);
    assert_int_equal(avemo_audio_params_channels(&p), 3);
    assert_int_equal(avemo_audio_params_base_count(&p), 1025);
    assert_int_equal(avemo_audio_params_feature_count(&p), 3075);
    p.deltas = 0;
    assert_int_equal(avemo_audio_params_set(&p, "crop", "middle", "cli", &err), AVEMO_ERR_CONFIG);
    assert_non_null(strstr(err.message, "start|centre|energy|centroid"));
    assert_int_equal(avemo_audio_params_set(&p, "crop", "centroid", "cli", &err), AVEMO_OK);
    assert_int_equal(p.crop, AVEMO_CROP_CENTROID);
    assert_string_equal(avemo_crop_name(AVEMO_CROP_CENTROID), "centroid");
    assert_int_equal(avemo_audio_params_set(&p, "loudness", "rms", "cli", &err), AVEMO_OK);
    assert_int_equal(avemo_audio_params_set(&p, "loudness_db", "-23", "cli", &err), AVEMO_OK);
    assert_int_equal(avemo_audio_params_set(&p, "max_gain_db", "30", "cli", &err), AVEMO_OK);
    assert_true(p.loudness == AVEMO_LOUDNESS_RMS && p.loudness_db == -23.0 && p.max_gain_db == 30.0);
    assert_string_equal(avemo_audio_feature_name(AVEMO_AUDIO_LOGMEL), "logmel");
    assert_string_equal(avemo_crop_name(AVEMO_CROP_ENERGY), "energy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_librosa_mfcc40),
        cmocka_unit_test(test_ini_reads_only_audio_section),
        cmocka_unit_test(test_ini_errors_name_file_line_and_cause),
        cmocka_unit_test(test_set_for_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
