/*
 * Data augmentation and network inputs: waveform (speed, shift, gain, noise),
 * SpecAugment masks on feature matrices, and face crops (flip, shift/scale
 * jitter, brightness/contrast) turned into CHW float inputs.
 */
#include "train/train_internal.h"

#include <math.h>
#include <string.h>

static float uniform(struct avemo_rng *rng, float lo, float hi) { return lo + (hi - lo) * avemo_rng_uniform(rng); }

size_t train_augment_wave(const float *in, size_t n, float *out, size_t cap, const struct avemo_augment *a,
                          struct avemo_rng *rng)
{
    if (n == 0 || cap == 0) return 0;
    /* Speed: read the signal at a random rate (changes tempo and pitch together). */
    double rate = a->speed > 0 ? uniform(rng, 1 - a->speed, 1 + a->speed) : 1.0;
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
    /* Shift: rotate by up to shift * length, so no sound is lost. */
    if (a->shift > 0 && m > 1) {
        size_t by = avemo_rng_below(rng, (uint32_t)((double)m * a->shift) + 1);
        if (by) {
            float tmp[4096];
            /* Rotate right in chunks through a small buffer: three reversals would need no buffer
             * but this keeps the code obvious. */
            for (size_t done = 0; done < by;) {
                size_t step = by - done < 4096 ? by - done : 4096;
                memcpy(tmp, out + m - step, step * sizeof(float));
                memmove(out + step, out, (m - step) * sizeof(float));
                memcpy(out, tmp, step * sizeof(float));
                done += step;
            }
        }
    }
    float gain = a->gain_db > 0 ? powf(10.0f, uniform(rng, -a->gain_db, a->gain_db) / 20.0f) : 1.0f;
    double energy = 0;
    for (size_t i = 0; i < m; i++) {
        out[i] *= gain;
        energy += (double)out[i] * out[i];
    }
    if (a->noise_snr_db > 0) {
        double rms = sqrt(energy / (double)m);
        double snr = uniform(rng, a->noise_snr_db, a->noise_snr_db + 20);
        float std = (float)(rms / pow(10.0, snr / 20.0));
        for (size_t i = 0; i < m; i++) out[i] += std * avemo_rng_normal(rng);
    }
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
    float bright = a->brightness > 0 ? uniform(rng, -a->brightness, a->brightness) : 0;
    float contrast = a->contrast > 0 ? uniform(rng, 1 - a->contrast, 1 + a->contrast) : 1;
    float centre = (size - 1) / 2.0f;
    size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            /* Output pixel -> source pixel: undo the scale about the centre, then the shift. */
            float sx = (x - centre) / scale + centre + dx, sy = (y - centre) / scale + centre + dy;
            if (flip) sx = (float)(size - 1) - sx;
            for (int c = 0; c < channels; c++) {
                float v = sample(crop, size, channels, c, sx, sy) * (1.0f / 255.0f);
                v = (v - 0.5f) * contrast + 0.5f + bright;
                out[c * plane + (size_t)y * size + x] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
        }
}
