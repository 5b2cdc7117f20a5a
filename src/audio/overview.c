/* A small picture of a recording for displays: the waveform as per-column minima and maxima
 * (scaled so that the loudest sample is 127) and the log-mel spectrogram in 8 bits, both from
 * avemo's own decode, so every format FFmpeg reads gets one (the web page draws them). */
#include <avemo/audio.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OVERVIEW_RATE 16000
#define OVERVIEW_MAX_COLUMNS 4096

void avemo_audio_overview_free(struct avemo_audio_overview *ov)
{
    if (!ov) return;
    free(ov->wave_min);
    free(ov->wave_max);
    free(ov->logmel);
    memset(ov, 0, sizeof *ov);
}

/* Column c covers samples [c * n / columns, (c + 1) * n / columns). */
static void waveform_columns(const float *x, size_t n, struct avemo_audio_overview *ov)
{
    float peak = 0.0f;
    for (size_t i = 0; i < n; i++) peak = fmaxf(peak, fabsf(x[i]));
    ov->peak = peak;
    const float scale = peak > 0.0f ? 127.0f / peak : 0.0f;
    for (int c = 0; c < ov->columns; c++) {
        size_t a = (size_t)c * n / (size_t)ov->columns, b = (size_t)(c + 1) * n / (size_t)ov->columns;
        float lo = 0.0f, hi = 0.0f;
        for (size_t i = a; i < b; i++) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
        }
        ov->wave_min[c] = (int8_t)lrintf(lo * scale);
        ov->wave_max[c] = (int8_t)lrintf(hi * scale);
    }
}

/* Log-mel (dB below the loudest bin, 80 dB range) averaged over groups of frames so that at
 * most ov->mel_frames remain; 0 = 80 dB below the maximum or less, 255 = the maximum. */
static enum avemo_status logmel_image(const float *x, size_t n, int bands, struct avemo_audio_overview *ov,
                                      struct avemo_error *err)
{
    struct avemo_audio_params p;
    avemo_audio_params_default(&p);
    p.sample_rate = OVERVIEW_RATE;
    p.n_fft = 1024;
    p.hop = 256;
    p.n_mels = bands;
    p.feature = AVEMO_AUDIO_LOGMEL;
    p.db_ref = AVEMO_DB_REF_MAX;
    p.frames = 0;
    p.norm = AVEMO_NORM_NONE;
    avemo_audio_extractor *ex = NULL;
    enum avemo_status s = avemo_audio_extractor_create(&p, &ex, err);
    if (s) return s;
    const size_t frames = avemo_audio_frame_count(ex, n);
    float *db = malloc(sizeof(float) * (size_t)bands * frames);
    if (!db) s = avemo_fail(err, AVEMO_ERR_NOMEM, "audio overview: out of memory");
    else s = avemo_audio_compute(ex, x, n, db, frames, err);
    avemo_audio_extractor_free(ex);
    if (s) {
        free(db);
        return s;
    }
    if ((size_t)ov->mel_frames > frames) ov->mel_frames = (int)frames;
    ov->mel_bands = bands;
    ov->mel_hop_s = (double)frames / ov->mel_frames * p.hop / OVERVIEW_RATE;
    for (int f = 0; f < ov->mel_frames; f++) {
        size_t a = (size_t)f * frames / (size_t)ov->mel_frames, b = (size_t)(f + 1) * frames / (size_t)ov->mel_frames;
        for (int m = 0; m < bands; m++) {
            double sum = 0.0;
            for (size_t t = a; t < b; t++) sum += db[(size_t)m * frames + t];
            double v = (sum / (double)(b - a) + 80.0) / 80.0 * 255.0; /* db_ref max: values in [-80, 0] */
            ov->logmel[(size_t)m * ov->mel_frames + f] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrint(v));
        }
    }
    free(db);
    return AVEMO_OK;
}

enum avemo_status avemo_audio_overview_from_media(avemo_media *media, int columns, int mel_bands, int mel_frames,
                                                  struct avemo_audio_overview *ov, struct avemo_error *err)
{
    memset(ov, 0, sizeof *ov);
    if (columns < 1 || columns > OVERVIEW_MAX_COLUMNS || mel_frames < 1 || mel_frames > OVERVIEW_MAX_COLUMNS ||
        mel_bands < 8 || mel_bands > 128)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                          "audio overview: %d columns, %d mel bands, %d mel frames (1..%d, 8..128, 1..%d)", columns,
                          mel_bands, mel_frames, OVERVIEW_MAX_COLUMNS, OVERVIEW_MAX_COLUMNS);
    struct avemo_audio audio = {0};
    enum avemo_status s = avemo_media_decode_audio(media, OVERVIEW_RATE, &audio, err);
    if (s) return s;
    if (audio.count < 2) {
        avemo_audio_free(&audio);
        return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: the audio stream decodes to no samples", avemo_media_name(media));
    }
    ov->sample_rate = OVERVIEW_RATE;
    ov->duration_s = (double)audio.count / OVERVIEW_RATE;
    ov->columns = (size_t)columns > audio.count ? (int)audio.count : columns;
    ov->mel_frames = mel_frames;
    ov->wave_min = malloc((size_t)ov->columns);
    ov->wave_max = malloc((size_t)ov->columns);
    ov->logmel = malloc((size_t)mel_bands * (size_t)mel_frames);
    if (!ov->wave_min || !ov->wave_max || !ov->logmel) {
        s = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory for the audio overview", avemo_media_name(media));
    } else {
        waveform_columns(audio.samples, audio.count, ov);
        s = logmel_image(audio.samples, audio.count, mel_bands, ov, err);
    }
    avemo_audio_free(&audio);
    if (s) avemo_audio_overview_free(ov);
    return s;
}
