/* Loudness normalisation of the waveform (loudness=rms): the level of the loudest
 * quarter of a recording, and the gain that brings it to a fixed dBFS.
 *
 * Why the loudest quarter: an utterance's overall RMS depends on how much of it is
 * pause (RAVDESS clips are 40-60% near-digital silence, EmoDB's 2 s cuts almost
 * none); the loudest quarter is voiced speech in both.  The quartile block level is
 * found with a histogram, so the computation needs no allocation and is
 * deterministic. */
#include <avemo/audio.h>

#include <math.h>

/* Histogram of block levels: 0.1 dB bins from LEVEL_MIN_DB up to LEVEL_MAX_DB.
 * A float sample's block power is below +20 dBFS unless the signal is far out of
 * range, and blocks below -200 dBFS (silence) all fall into the first bin. */
#define LEVEL_MIN_DB (-200.0)
#define LEVEL_MAX_DB 40.0
#define LEVEL_BINS 2400

static double block_power(const float *x, size_t n, size_t start, size_t len)
{
    if (start + len > n) len = n - start;
    double sum = 0.0;
    for (size_t i = 0; i < len; i++) sum += (double)x[start + i] * x[start + i];
    return sum / (double)len;
}

static int level_bin(double power)
{
    double db = power > 0.0 ? 10.0 * log10(power) : LEVEL_MIN_DB;
    double pos = (db - LEVEL_MIN_DB) * (LEVEL_BINS / (LEVEL_MAX_DB - LEVEL_MIN_DB));
    if (!(pos > 0.0)) return 0;
    return pos >= LEVEL_BINS - 1 ? LEVEL_BINS - 1 : (int)pos;
}

/* Mean square of the loudest quarter of the blocks of `len` samples. */
static double loud_quarter_power(const float *x, size_t n, size_t len)
{
    unsigned hist[LEVEL_BINS] = {0};
    size_t blocks = (n + len - 1) / len;
    for (size_t b = 0; b < blocks; b++) hist[level_bin(block_power(x, n, b * len, len))]++;
    /* The lowest bin that the loudest quarter (rounded up) reaches from the top. */
    size_t want = (blocks + 3) / 4, seen = 0;
    int threshold = LEVEL_BINS - 1;
    for (; threshold > 0; threshold--) {
        seen += hist[threshold];
        if (seen >= want) break;
    }
    double sum = 0.0;
    size_t count = 0;
    for (size_t b = 0; b < blocks; b++) {
        double pw = block_power(x, n, b * len, len);
        if (level_bin(pw) >= threshold) {
            sum += pw;
            count++;
        }
    }
    return count ? sum / (double)count : 0.0;
}

double avemo_audio_loudness_gain(const struct avemo_audio_params *p, const float *x, size_t n)
{
    if (!p || !x || n == 0 || p->loudness != AVEMO_LOUDNESS_RMS || p->hop < 1) return 1.0;
    double power = loud_quarter_power(x, n, (size_t)p->hop);
    if (!(power > 0.0)) return 1.0; /* digital silence: nothing to scale */
    double gain_db = p->loudness_db - 10.0 * log10(power);
    if (gain_db > p->max_gain_db) gain_db = p->max_gain_db;
    return pow(10.0, gain_db / 20.0);
}

double avemo_audio_level_db(const float *x, size_t n, int sample_rate)
{
    if (!x || n == 0 || sample_rate < 1) return AVEMO_AUDIO_LEVEL_FLOOR_DB;
    size_t len = (size_t)sample_rate / 20;
    if (len < 1) len = 1;
    double loudest = 0.0;
    for (size_t start = 0; start < n; start += len) {
        double pw = block_power(x, n, start, len);
        if (pw > loudest) loudest = pw;
    }
    double db = loudest > 0.0 ? 10.0 * log10(loudest) : AVEMO_AUDIO_LEVEL_FLOOR_DB;
    return db < AVEMO_AUDIO_LEVEL_FLOOR_DB ? AVEMO_AUDIO_LEVEL_FLOOR_DB : db;
}
