/*
 * Data augmentation and network inputs: waveform (speed, shift, room, gain, noise, codec, dither),
 * SpecAugment masks on feature matrices, and face crops (flip, shift/scale
 * jitter, brightness/contrast) turned into CHW float inputs.
 */
#include "train/train_internal.h"

#include <avemo/audio.h>
#include <avemo/media.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float uniform(struct avemo_rng *rng, float lo, float hi) { return lo + (hi - lo) * avemo_rng_uniform(rng); }

/* The codecs of augment.codec, one drawn per sample: what phone networks (GSM), calls and
 * voice messages (Opus) and web audio (MP3) do to a voice, at bit rates where they are heard. */
static const struct {
    const char *encoder;
    int bit_rate;
} train_codecs[] = {{"libmp3lame", 24000}, {"libmp3lame", 48000}, {"libopus", 8000}, {"libopus", 16000},
                    {"libgsm", 0}};
#define TRAIN_CODECS (sizeof train_codecs / sizeof train_codecs[0])

/* Synthetic rooms: reverberation times and direct-to-reverberant ratios of offices, living
 * rooms and halls. */
#define ROOM_RT60_MIN 0.15
#define ROOM_RT60_MAX 0.9
#define ROOM_DRR_MIN_DB -3.0
#define ROOM_DRR_MAX_DB 12.0

int train_augment_uses_wave(const struct avemo_augment *a)
{
    return a->noise_snr_db > 0 || a->gain_db > 0 || a->shift > 0 || a->speed > 0 || a->dither > 0 ||
           a->room > 0 || a->codec > 0;
}

enum avemo_status train_check_codecs(const struct avemo_augment *a, int rate, struct avemo_error *err)
{
    if (a->codec <= 0) return AVEMO_OK;
    float tone[1600], out[1600];
    for (int i = 0; i < 1600; i++) tone[i] = 0.1f * sinf(0.3f * (float)i);
    for (size_t k = 0; k < TRAIN_CODECS; k++) {
        size_t got;
        struct avemo_error why = {0};
        enum avemo_status st = avemo_media_codec_roundtrip(tone, 1600, rate, train_codecs[k].encoder,
                                                           train_codecs[k].bit_rate, out, 1600, &got, &why);
        if (st) return avemo_fail(err, st, "augment.codec needs FFmpeg's %s encoder: %s", train_codecs[k].encoder,
                                  why.message);
    }
    return AVEMO_OK;
}

/* Speed: read the signal at a random rate (changes tempo and pitch together). */
static size_t change_speed(const float *in, size_t n, float *out, size_t cap, float speed, struct avemo_rng *rng)
{
    double rate = speed > 0 ? uniform(rng, 1 - speed, 1 + speed) : 1.0;
    size_t m = (size_t)((double)n / rate);
    if (m > cap) m = cap;
    if (m == 0) m = 1;
    for (size_t i = 0; i < m; i++) {
        double pos = (double)i * rate;
        size_t k = (size_t)pos;
        double frac = pos - (double)k;
        float x0 = in[k < n ? k : n - 1], x1 = in[k + 1 < n ? k + 1 : n - 1];
        out[i] = (float)(x0 + frac * (x1 - x0));
    }
    return m;
}

/* Shift: rotate right by up to shift * length, so no sound is lost. */
static void rotate(float *x, size_t m, float shift, struct avemo_rng *rng)
{
    if (shift <= 0 || m < 2) return;
    size_t by = avemo_rng_below(rng, (uint32_t)((double)m * shift) + 1);
    float tmp[4096];
    /* In chunks through a small buffer: three reversals would need none, this is obvious. */
    for (size_t done = 0; done < by;) {
        size_t step = by - done < 4096 ? by - done : 4096;
        memcpy(tmp, x + m - step, step * sizeof(float));
        memmove(x + step, x, (m - step) * sizeof(float));
        memcpy(x, tmp, step * sizeof(float));
        done += step;
    }
}

static double energy(const float *x, size_t m)
{
    double e = 0;
    for (size_t i = 0; i < m; i++) e += (double)x[i] * x[i];
    return e;
}

/* A synthetic room: the direct sound (1 at t = 0) plus a tail of white noise decaying by 60 dB
 * in rt60 seconds, scaled to the drawn direct-to-reverberant ratio; the result keeps the dry
 * signal's level.  Left dry when memory runs out. */
static void add_room(float *x, size_t m, int rate, struct avemo_rng *rng)
{
    double rt60 = uniform(rng, ROOM_RT60_MIN, ROOM_RT60_MAX), drr_db = uniform(rng, ROOM_DRR_MIN_DB, ROOM_DRR_MAX_DB);
    size_t len = (size_t)(rt60 * rate) + 1;
    float *h = malloc(sizeof(float) * len);
    if (!h) return;
    h[0] = 0;
    double decay = pow(10.0, -3.0 / (rt60 * rate)), envelope = 1.0; /* -60 dB after rt60 seconds */
    for (size_t t = 1; t < len; t++) {
        envelope *= decay;
        h[t] = avemo_rng_normal(rng) * (float)envelope;
    }
    double tail = sqrt(pow(10.0, -drr_db / 10.0) / (energy(h, len) + 1e-30));
    for (size_t t = 1; t < len; t++) h[t] *= (float)tail;
    h[0] = 1;
    double before = energy(x, m);
    if (avemo_audio_convolve(x, m, h, len, x, NULL) == AVEMO_OK) {
        float level = (float)sqrt(before / (energy(x, m) + 1e-30));
        for (size_t i = 0; i < m; i++) x[i] *= level;
    }
    free(h);
}

/* A lossy codec drawn from train_codecs; the length stays m.  Left as it was when the codec
 * fails (train_check_codecs made sure every codec exists before training). */
static void pass_codec(float *x, size_t m, int rate, struct avemo_rng *rng)
{
    uint32_t k = avemo_rng_below(rng, (uint32_t)TRAIN_CODECS);
    float *coded = malloc(sizeof(float) * m);
    size_t got = 0;
    if (coded && avemo_media_codec_roundtrip(x, m, rate, train_codecs[k].encoder, train_codecs[k].bit_rate, coded, m,
                                             &got, NULL) == AVEMO_OK) {
        memcpy(x, coded, sizeof(float) * got);
        memset(x + got, 0, sizeof(float) * (m - got));
    }
    free(coded);
}

size_t train_augment_wave(const float *in, size_t n, float *out, size_t cap, int rate, const struct avemo_augment *a,
                          struct avemo_rng *rng)
{
    if (n == 0 || cap == 0) return 0;
    size_t m = change_speed(in, n, out, cap, a->speed, rng);
    rotate(out, m, a->shift, rng);
    /* The order of a recording: the room, the microphone's level and noise, the codec, the
     * re-conversion's dither. */
    if (a->room > 0 && avemo_rng_uniform(rng) < a->room) add_room(out, m, rate, rng);
    float gain = a->gain_db > 0 ? powf(10.0f, uniform(rng, -a->gain_db, a->gain_db) / 20.0f) : 1.0f;
    for (size_t i = 0; i < m; i++) out[i] *= gain;
    if (a->noise_snr_db > 0) {
        double rms = sqrt(energy(out, m) / (double)m);
        double snr = uniform(rng, a->noise_snr_db, a->noise_snr_db + 20);
        float std = (float)(rms / pow(10.0, snr / 20.0));
        for (size_t i = 0; i < m; i++) out[i] += std * avemo_rng_normal(rng);
    }
    if (a->codec > 0 && avemo_rng_uniform(rng) < a->codec) pass_codec(out, m, rate, rng);
    /* Dither: the +-1 LSB of a 16-bit re-conversion, independent of the level. */
    if (a->dither > 0) {
        float lsb = a->dither / 32768.0f;
        for (size_t i = 0; i < m; i++) out[i] += uniform(rng, -lsb, lsb);
    }
    return m;
}

void train_spec_augment(float *x, int rows, int cols, const struct avemo_augment *a, struct avemo_rng *rng)
{
    for (int k = 0; k < a->masks; k++) {
        if (a->time_mask > 0 && cols > 1) {
            int w = (int)avemo_rng_below(rng, (uint32_t)a->time_mask + 1);
            int t0 = (int)avemo_rng_below(rng, (uint32_t)(cols - (w < cols ? w : cols - 1)));
            for (int r = 0; r < rows; r++)
                for (int t = t0; t < t0 + w && t < cols; t++) x[r * cols + t] = 0;
        }
        if (a->freq_mask > 0 && rows > 1) {
            int w = (int)avemo_rng_below(rng, (uint32_t)a->freq_mask + 1);
            int f0 = (int)avemo_rng_below(rng, (uint32_t)(rows - (w < rows ? w : rows - 1)));
            for (int r = f0; r < f0 + w && r < rows; r++) memset(x + (size_t)r * cols, 0, sizeof(float) * (size_t)cols);
        }
    }
}

/* Bilinear sample of channel c at (x, y), clamped to the border. */
static float sample(const uint8_t *img, int size, int channels, int c, float x, float y)
{
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > size - 1) x = (float)(size - 1);
    if (y > size - 1) y = (float)(size - 1);
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < size ? x0 + 1 : x0, y1 = y0 + 1 < size ? y0 + 1 : y0;
    float fx = x - (float)x0, fy = y - (float)y0;
    float a = img[(y0 * size + x0) * channels + c], b = img[(y0 * size + x1) * channels + c];
    float d = img[(y1 * size + x0) * channels + c], e = img[(y1 * size + x1) * channels + c];
    return (a + fx * (b - a)) * (1 - fy) + (d + fx * (e - d)) * fy;
}

void train_face_augment(const uint8_t *crop, int size, int channels, float *out, const struct avemo_augment *a,
                        struct avemo_rng *rng)
{
    int flip = a->flip && (avemo_rng_u32(rng) & 1);
    float scale = a->face_scale > 0 ? uniform(rng, 1 - a->face_scale, 1 + a->face_scale) : 1.0f;
    float dx = a->face_shift > 0 ? uniform(rng, -a->face_shift, a->face_shift) * size : 0;
    float dy = a->face_shift > 0 ? uniform(rng, -a->face_shift, a->face_shift) * size : 0;
    float angle = a->face_rotate > 0 ? uniform(rng, -a->face_rotate, a->face_rotate) * (float)(M_PI / 180) : 0;
    float cos_a = cosf(angle) / scale, sin_a = sinf(angle) / scale;
    float bright = a->brightness > 0 ? uniform(rng, -a->brightness, a->brightness) : 0;
    float contrast = a->contrast > 0 ? uniform(rng, 1 - a->contrast, 1 + a->contrast) : 1;
    float centre = (size - 1) / 2.0f;
    size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            /* Output pixel -> source pixel: undo the rotation and scale about the centre, then
             * the shift (a head tilted by +angle in the output). */
            float ox = x - centre, oy = y - centre;
            float sx = cos_a * ox + sin_a * oy + centre + dx, sy = -sin_a * ox + cos_a * oy + centre + dy;
            if (flip) sx = (float)(size - 1) - sx;
            for (int c = 0; c < channels; c++) {
                float v = sample(crop, size, channels, c, sx, sy) * (1.0f / 255.0f);
                v = (v - 0.5f) * contrast + 0.5f + bright;
                out[c * plane + (size_t)y * size + x] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
        }
}
