/* The feature extractor: STFT with FFTW (single precision), sparse mel filter
 * bank, dB conversion, DCT, then crop/pad and normalisation for model inputs. */
#include "audio/audio_internal.h"
#include "audio/vec4.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* FFTW's planner (plan creation and destruction) is not thread-safe; executing
 * a plan is.  This lock only serialises planning, never feature computation. */
static pthread_mutex_t fftw_planner_lock = PTHREAD_MUTEX_INITIALIZER;

void audio_fftw_plan_lock(void) { pthread_mutex_lock(&fftw_planner_lock); }
void audio_fftw_plan_unlock(void) { pthread_mutex_unlock(&fftw_planner_lock); }

/* Frames transformed before the mel projection runs over them together
 * (one vector lane each, two vec4). */
#define BLOCK 8

/* Offset of the window in its buffer, in floats (see make_fft_plan). */
#define WINDOW_SKEW 48

/* One mel triangle: its non-zero weights cover bins [first, first + count). */
struct mel_band {
    int first;
    int count;
    size_t offset; /* into mel_weights */
};

struct avemo_audio_extractor {
    struct avemo_audio_params p;
    int n_bins;            /* n_fft / 2 + 1 */
    int n_features;

    /* Read-only after creation. */
    float *window;         /* periodic Hann, n_fft */
    float *window_alloc;
    struct mel_band *bands;
    float *mel_weights;
    float *dct;            /* n_mfcc x n_mels */
    float *stats_mean;     /* AVEMO_NORM_DATASET statistics, n_features each */
    float *stats_std;
    fftwf_plan plan;

    /* Per-call workspace (the reason one extractor serves one thread at a time). */
    float *frame;          /* windowed frame, n_fft (FFTW-aligned), transformed in place */
    fftwf_complex *spectrum; /* = frame */
    float *block;          /* power spectra of BLOCK frames, bin-major: block[k * BLOCK + j] */
    float *mel;            /* n_mels x frames, grows with the longest signal seen */
    size_t mel_cap;
    float *full;           /* n_features x frames for compute_fixed */
    size_t full_cap;
    double *energy;        /* per-frame energy, for the energy crop */
    size_t energy_cap;
    float *scaled;         /* the signal at its normalised loudness (loudness=rms) */
    size_t scaled_cap;
    float *padded;         /* pad=centre: a short signal between zeros */
    size_t padded_cap;
};

/* Periodic Hann (scipy.signal.get_window('hann', N, fftbins=True)). */
static void hann_periodic(float *w, int n)
{
    for (int i = 0; i < n; i++) w[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n));
}

/* Keep only the non-zero run of each triangle: every bin feeds at most two
 * bands, so the mel projection costs ~2 * n_bins multiply-adds per frame
 * instead of n_mels * n_bins. */
static enum avemo_status build_sparse_mel(avemo_audio_extractor *ex, struct avemo_error *err)
{
    int n_mels = ex->p.n_mels, n_bins = ex->n_bins;
    float *dense = malloc(sizeof(float) * (size_t)n_mels * n_bins);
    ex->bands = calloc((size_t)n_mels, sizeof *ex->bands);
    if (!dense || !ex->bands) {
        free(dense);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "audio extractor: out of memory for the mel filter bank");
    }
    enum avemo_status s = avemo_audio_mel_filterbank(&ex->p, dense, err);
    size_t total = 0;
    for (int m = 0; s == AVEMO_OK && m < n_mels; m++) {
        const float *row = dense + (size_t)m * n_bins;
        int first = 0, last = n_bins - 1;
        while (first < n_bins && row[first] == 0.0f) first++;
        while (last >= first && row[last] == 0.0f) last--;
        ex->bands[m].first = first < n_bins ? first : 0;
        ex->bands[m].count = first < n_bins ? last - first + 1 : 0; /* an empty band gives 0 power */
        ex->bands[m].offset = total;
        total += (size_t)ex->bands[m].count;
    }
    if (s == AVEMO_OK) {
        ex->mel_weights = malloc(sizeof(float) * (total ? total : 1));
        if (!ex->mel_weights) s = avemo_fail(err, AVEMO_ERR_NOMEM, "audio extractor: out of memory");
    }
    for (int m = 0; s == AVEMO_OK && m < n_mels; m++)
        memcpy(ex->mel_weights + ex->bands[m].offset, dense + (size_t)m * n_bins + ex->bands[m].first,
               sizeof(float) * (size_t)ex->bands[m].count);
    free(dense);
    return s;
}

static enum avemo_status make_fft_plan(avemo_audio_extractor *ex, struct avemo_error *err)
{
    /* In place: the spectrum overwrites the frame (n_bins complex values hold
     * the n_fft reals); FFTW_ESTIMATE picks a ~12% faster plan in place. */
    ex->frame = fftwf_malloc(sizeof(fftwf_complex) * (size_t)ex->n_bins);
    /* The window sits WINDOW_SKEW floats into its allocation: frame, window
     * and the signal are all large power-of-two strides apart otherwise, and
     * loads that alias a pending store modulo 4 KiB stall the windowing loop. */
    ex->window_alloc = fftwf_malloc(sizeof(float) * ((size_t)ex->p.n_fft + WINDOW_SKEW));
    ex->window = ex->window_alloc ? ex->window_alloc + WINDOW_SKEW : NULL;
    ex->spectrum = (fftwf_complex *)(void *)ex->frame;
    if (!ex->frame || !ex->window)
        return avemo_fail(err, AVEMO_ERR_NOMEM, "audio extractor: out of memory for FFT buffers");
    audio_fftw_plan_lock();
    /* ESTIMATE, not MEASURE: planning takes ~2 ms instead of ~150 ms (the CLI
     * plans once per run) and always picks the same algorithm, so features are
     * bit-for-bit reproducible from run to run; MEASURE's plan is ~20% faster. */
    ex->plan = fftwf_plan_dft_r2c_1d(ex->p.n_fft, ex->frame, ex->spectrum, FFTW_ESTIMATE);
    audio_fftw_plan_unlock();
    if (!ex->plan)
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "audio extractor: FFTW could not plan a %d-point FFT",
                          ex->p.n_fft);
    hann_periodic(ex->window, ex->p.n_fft);
    return AVEMO_OK;
}

enum avemo_status avemo_audio_extractor_create(const struct avemo_audio_params *params,
                                               avemo_audio_extractor **out, struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "audio extractor: no output pointer");
    *out = NULL;
    enum avemo_status s = avemo_audio_params_validate(params, "audio extractor", err);
    if (s != AVEMO_OK) return s;
    avemo_audio_extractor *ex = calloc(1, sizeof *ex);
    if (!ex) return avemo_fail(err, AVEMO_ERR_NOMEM, "audio extractor: out of memory");
    ex->p = *params;
    ex->n_bins = params->n_fft / 2 + 1;
    ex->n_features = avemo_audio_params_feature_count(params);
    ex->block = malloc(sizeof(float) * (size_t)ex->n_bins * BLOCK);
    if (!ex->block) s = avemo_fail(err, AVEMO_ERR_NOMEM, "audio extractor: out of memory");
    if (s == AVEMO_OK) s = make_fft_plan(ex, err);
    if (s == AVEMO_OK && params->feature != AVEMO_AUDIO_SPECTROGRAM) s = build_sparse_mel(ex, err);
    if (s == AVEMO_OK && params->feature == AVEMO_AUDIO_MFCC) {
        ex->dct = malloc(sizeof(float) * (size_t)params->n_mfcc * (size_t)params->n_mels);
        if (!ex->dct) s = avemo_fail(err, AVEMO_ERR_NOMEM, "audio extractor: out of memory");
        else avemo_audio_dct_matrix(params->n_mfcc, params->n_mels, ex->dct);
    }
    if (s != AVEMO_OK) {
        avemo_audio_extractor_free(ex);
        return s;
    }
    *out = ex;
    return AVEMO_OK;
}

void avemo_audio_extractor_free(avemo_audio_extractor *ex)
{
    if (!ex) return;
    if (ex->plan) {
        audio_fftw_plan_lock();
        fftwf_destroy_plan(ex->plan);
        audio_fftw_plan_unlock();
    }
    fftwf_free(ex->frame);
    fftwf_free(ex->window_alloc);
    free(ex->block);
    free(ex->bands);
    free(ex->mel_weights);
    free(ex->dct);
    free(ex->stats_mean);
    free(ex->stats_std);
    free(ex->mel);
    free(ex->full);
    free(ex->energy);
    free(ex->scaled);
    free(ex->padded);
    free(ex);
}

const struct avemo_audio_params *avemo_audio_extractor_params(const avemo_audio_extractor *ex) { return &ex->p; }

int avemo_audio_feature_count(const avemo_audio_extractor *ex) { return ex->n_features; }

size_t avemo_audio_frame_count(const avemo_audio_extractor *ex, size_t n_samples)
{
    /* librosa frames the signal padded by n_fft/2 (rounded down) on each side:
     * 1 + (n + 2 * (n_fft / 2) - n_fft) / hop, i.e. 1 + n / hop for an even
     * n_fft and 1 + (n - 1) / hop for an odd one. */
    size_t pad = 2 * (size_t)(ex->p.n_fft / 2);
    size_t padded = n_samples + pad;
    if (padded < (size_t)ex->p.n_fft) return 1; /* an empty signal: one frame of padding */
    return 1 + (padded - (size_t)ex->p.n_fft) / (size_t)ex->p.hop;
}

size_t avemo_audio_output_frames(const avemo_audio_extractor *ex, size_t n_samples)
{
    return ex->p.frames > 0 ? (size_t)ex->p.frames : avemo_audio_frame_count(ex, n_samples);
}

enum avemo_status avemo_audio_extractor_set_stats(avemo_audio_extractor *ex, const float *mean, const float *std,
                                                  int count, struct avemo_error *err)
{
    if (!ex || !mean || !std) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "audio statistics: NULL argument");
    if (count != ex->n_features)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "audio statistics: %d values for %d %s features", count,
                          ex->n_features, avemo_audio_feature_name(ex->p.feature));
    for (int i = 0; i < count; i++)
        if (!isfinite(mean[i]) || !isfinite(std[i]) || !(std[i] > 0.0f))
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                              "audio statistics: feature %d has mean %g, std %g (std must be finite and > 0)", i,
                              (double)mean[i], (double)std[i]);
    size_t bytes = sizeof(float) * (size_t)count;
    float *m = malloc(bytes), *s = malloc(bytes);
    if (!m || !s) {
        free(m);
        free(s);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "audio statistics: out of memory");
    }
    memcpy(m, mean, bytes);
    memcpy(s, std, bytes);
    free(ex->stats_mean);
    free(ex->stats_std);
    ex->stats_mean = m;
    ex->stats_std = s;
    return AVEMO_OK;
}

/* Grow a workspace to hold at least `count` elements (contents not kept). */
static int reserve_floats(float **buf, size_t *cap, size_t count)
{
    if (*cap >= count) return 1;
    float *p = malloc(count * sizeof(float));
    if (!p) return 0;
    free(*buf);
    *buf = p;
    *cap = count;
    return 1;
}

static int reserve_doubles(double **buf, size_t *cap, size_t count)
{
    if (*cap >= count) return 1;
    double *p = malloc(count * sizeof(double));
    if (!p) return 0;
    free(*buf);
    *buf = p;
    *cap = count;
    return 1;
}

/* Frame t of the centred STFT starts n_fft/2 samples before sample t * hop;
 * samples outside the signal are the zero padding. */
static void load_frame(const avemo_audio_extractor *ex, const float *x, size_t n, size_t t)
{
    int n_fft = ex->p.n_fft;
    float *frame = ex->frame;
    const float *w = ex->window;
    long long start = (long long)(t * (size_t)ex->p.hop) - n_fft / 2;
    if (start >= 0 && (size_t)start + (size_t)n_fft <= n) {
        vec4_mul(frame, x + start, w, (size_t)n_fft);
        return;
    }
    for (int i = 0; i < n_fft; i++) {
        long long idx = start + i;
        frame[i] = idx >= 0 && (size_t)idx < n ? x[idx] * w[i] : 0.0f;
    }
}

/* |X|^2 of the current frame into lane j of the block (bin k at block[k * BLOCK + j]).
 * Four bins at a time: square the interleaved (re, im) pairs, then add the
 * even and odd lanes. */
static void store_power(avemo_audio_extractor *ex, int j)
{
    const float *X = (const float *)ex->spectrum;
    float *dst = ex->block + j;
    int k = 0;
    for (; k + 4 <= ex->n_bins; k += 4) {
        vec4 a = VEC4_LOAD(X + 2 * k), b = VEC4_LOAD(X + 2 * k + 4);
        a *= a;
        b *= b;
        vec4 pw = VEC4_EVEN(a, b) + VEC4_ODD(a, b);
        dst[(size_t)k * BLOCK] = pw[0];
        dst[(size_t)(k + 1) * BLOCK] = pw[1];
        dst[(size_t)(k + 2) * BLOCK] = pw[2];
        dst[(size_t)(k + 3) * BLOCK] = pw[3];
    }
    for (; k < ex->n_bins; k++) dst[(size_t)k * BLOCK] = X[2 * k] * X[2 * k] + X[2 * k + 1] * X[2 * k + 1];
}

/* Energy of each frame of the block: the sum of its power spectrum. */
static void block_energy(const avemo_audio_extractor *ex, double *energy, int count)
{
    vec4 lo = {0}, hi = {0};
    for (int k = 0; k < ex->n_bins; k++) {
        lo += VEC4_LOAD(ex->block + (size_t)k * BLOCK);
        hi += VEC4_LOAD(ex->block + (size_t)k * BLOCK + 4);
    }
    for (int j = 0; j < count; j++) energy[j] = j < 4 ? lo[j] : hi[j - 4];
}

/* Mel bands of the block's frames into columns t0..t0+count-1 of mel (n_mels x frames):
 * eight frames at once, so each weight is two vector multiply-adds. */
static void mel_project_block(const avemo_audio_extractor *ex, float *mel, size_t frames, size_t t0, int count)
{
    for (int m = 0; m < ex->p.n_mels; m++) {
        const struct mel_band *b = &ex->bands[m];
        const float *w = ex->mel_weights + b->offset;
        const float *src = ex->block + (size_t)b->first * BLOCK;
        vec4 lo = {0}, hi = {0};
        for (int i = 0; i < b->count; i++) {
            lo += w[i] * VEC4_LOAD(src + (size_t)i * BLOCK);
            hi += w[i] * VEC4_LOAD(src + (size_t)i * BLOCK + 4);
        }
        float *dst = mel + (size_t)m * frames + t0;
        for (int j = 0; j < count; j++) dst[j] = j < 4 ? lo[j] : hi[j - 4];
    }
}

/* The block's spectra as rows of out (n_bins x frames), for the linear spectrogram. */
static void copy_block(const avemo_audio_extractor *ex, float *out, size_t frames, size_t t0, int count)
{
    for (int k = 0; k < ex->n_bins; k++)
        for (int j = 0; j < count; j++) out[(size_t)k * frames + t0 + j] = ex->block[(size_t)k * BLOCK + j];
}

/* |X| instead of |X|^2 when power = 1. */
static void block_magnitude(avemo_audio_extractor *ex)
{
    for (size_t i = 0; i < (size_t)ex->n_bins * BLOCK; i++) ex->block[i] = sqrtf(ex->block[i]);
}

/* Columns t..t+7 of rows k..k+3 of out = DCT rows k..k+3 times logmel:
 * eight independent accumulators, so the loop is bound by arithmetic
 * throughput rather than by the latency of one running sum.  logmel has
 * `stride` columns (a multiple of 8, the extra ones being padding); out has
 * `frames`, and only its columns below `frames` are written. */
static void dct_4_rows(const float *d, int n_mels, const float *logmel, size_t stride, size_t t, float *out,
                       size_t frames)
{
    /* Written out so that the accumulators stay in registers at -O2. */
    vec4 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
    const float *d0 = d, *d1 = d + n_mels, *d2 = d + 2 * n_mels, *d3 = d + 3 * n_mels;
    for (int m = 0; m < n_mels; m++) {
        vec4 lo = VEC4_LOAD(logmel + (size_t)m * stride + t), hi = VEC4_LOAD(logmel + (size_t)m * stride + t + 4);
        a0 += d0[m] * lo, b0 += d0[m] * hi;
        a1 += d1[m] * lo, b1 += d1[m] * hi;
        a2 += d2[m] * lo, b2 += d2[m] * hi;
        a3 += d3[m] * lo, b3 += d3[m] * hi;
    }
    size_t count = frames - t < 8 ? frames - t : 8;
    const vec4 rows[4][2] = {{a0, b0}, {a1, b1}, {a2, b2}, {a3, b3}};
    for (int r = 0; r < 4; r++) {
        float *dst = out + (size_t)r * frames + t;
        for (size_t j = 0; j < count; j++) dst[j] = j < 4 ? rows[r][0][j] : rows[r][1][j - 4];
    }
}

/* One row: the same, for the n_mfcc % 4 last rows. */
static void dct_1_row(const float *d, int n_mels, const float *logmel, size_t stride, size_t t, float *out,
                      size_t frames)
{
    vec4 lo = {0}, hi = {0};
    for (int m = 0; m < n_mels; m++) {
        lo += d[m] * VEC4_LOAD(logmel + (size_t)m * stride + t);
        hi += d[m] * VEC4_LOAD(logmel + (size_t)m * stride + t + 4);
    }
    size_t count = frames - t < 8 ? frames - t : 8;
    for (size_t j = 0; j < count; j++) out[t + j] = j < 4 ? lo[j] : hi[j - 4];
}

/* out (n_mfcc x frames) = DCT (n_mfcc x n_mels) * logmel (n_mels x stride).
 * Frames outer, rows inner: the 8-column slab of logmel stays in L1 while
 * every DCT row uses it, which matters for long signals. */
static void apply_dct(const avemo_audio_extractor *ex, const float *logmel, size_t stride, float *out, size_t frames)
{
    int n_mels = ex->p.n_mels;
    for (size_t t = 0; t < stride; t += 8) {
        int k = 0;
        for (; k + 4 <= ex->p.n_mfcc; k += 4)
            dct_4_rows(ex->dct + (size_t)k * n_mels, n_mels, logmel, stride, t, out + (size_t)k * frames, frames);
        for (; k < ex->p.n_mfcc; k++)
            dct_1_row(ex->dct + (size_t)k * n_mels, n_mels, logmel, stride, t, out + (size_t)k * frames, frames);
    }
}

static enum avemo_status check_signal(const avemo_audio_extractor *ex, const float *samples, size_t n,
                                      struct avemo_error *err)
{
    if (!ex) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "audio features: no extractor");
    if (!samples || n == 0) return avemo_fail(err, AVEMO_ERR_EMPTY, "audio features: the signal has no samples");
    if (n > AVEMO_AUDIO_MAX_SAMPLES)
        return avemo_fail(err, AVEMO_ERR_TOO_LONG, "audio features: %zu samples exceed the limit of %zu", n,
                          AVEMO_AUDIO_MAX_SAMPLES);
    /* The full matrix (and the MFCC's mel workspace, n_mels rows) must fit the cap. */
    size_t frames = avemo_audio_frame_count(ex, n);
    size_t rows = (size_t)(ex->n_features > ex->p.n_mels ? ex->n_features : ex->p.n_mels);
    if (frames > AVEMO_AUDIO_MAX_VALUES / rows)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE,
                          "audio features: %zu samples give %zu x %zu values, more than the limit of %zu", n, rows,
                          frames, AVEMO_AUDIO_MAX_VALUES);
    if (!vec4_all_finite(samples, n)) {
        size_t bad = 0;
        while (isfinite(samples[bad])) bad++;
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "audio features: sample %zu is not a finite number", bad);
    }
    return AVEMO_OK;
}

/* The samples the features are computed from: x itself, or with loudness=rms a
 * copy scaled to the target level in the extractor's workspace. */
static enum avemo_status leveled_signal(avemo_audio_extractor *ex, const float *x, size_t n, const float **out,
                                        struct avemo_error *err)
{
    *out = x;
    if (ex->p.loudness == AVEMO_LOUDNESS_NONE) return AVEMO_OK;
    float gain = (float)avemo_audio_loudness_gain(&ex->p, x, n);
    if (gain == 1.0f) return AVEMO_OK;
    if (!reserve_floats(&ex->scaled, &ex->scaled_cap, n))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "audio features: out of memory for %zu samples", n);
    for (size_t i = 0; i < n; i++) ex->scaled[i] = x[i] * gain;
    *out = ex->scaled;
    return AVEMO_OK;
}

/* librosa.feature.delta(x, width=9, order, mode='interp') along time, row by row: the
 * Savitzky-Golay derivative of a degree-`order` fit over 9 frames.  At either end 'interp'
 * fits one polynomial to the first (last) 9 frames, whose first or second derivative is a
 * constant: the value of the first (last) full window.  Fewer than 9 frames: the window is
 * clamped to the signal (librosa refuses such a signal; it only occurs for clips under 0.2 s). */
#define DELTA_HALF 4
static void add_delta(const float *x, size_t rows, size_t frames, int order, float *out)
{
    /* Order 1: sum k x[t+k] / sum k^2 (60).  Order 2: 2 sum (k^2 - 20/3) x[t+k] / 308,
     * the second derivative of the least-squares parabola. */
    double c[2 * DELTA_HALF + 1];
    for (int k = -DELTA_HALF; k <= DELTA_HALF; k++)
        c[k + DELTA_HALF] = order == 1 ? k / 60.0 : 2.0 * (k * k - 20.0 / 3.0) / 308.0;
    size_t lo = frames > 2 * DELTA_HALF ? DELTA_HALF : 0, hi = frames > 2 * DELTA_HALF ? frames - 1 - DELTA_HALF : frames - 1;
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * frames;
        float *d = out + r * frames;
        for (size_t t = 0; t < frames; t++) {
            size_t centre = t < lo ? lo : t > hi ? hi : t;
            double sum = 0.0;
            for (int k = -DELTA_HALF; k <= DELTA_HALF; k++) {
                ptrdiff_t at = (ptrdiff_t)centre + k;
                if (at < 0) at = 0;
                if (at > (ptrdiff_t)frames - 1) at = (ptrdiff_t)frames - 1;
                sum += c[k + DELTA_HALF] * row[at];
            }
            d[t] = (float)sum;
        }
    }
}

/* The full feature matrix; energy (may be NULL) receives each frame's energy. */
static enum avemo_status compute_features(avemo_audio_extractor *ex, const float *x, size_t n, float *out,
                                          size_t frames, double *energy, struct avemo_error *err)
{
    const struct avemo_audio_params *p = &ex->p;
    /* MFCC: the log-mel goes to the workspace, its width rounded up to whole
     * blocks for the DCT; the padding columns hold zero power, which changes
     * neither the max (ref=max, top_db) nor any real column. */
    float *mel = NULL;
    size_t stride = frames;
    if (p->feature == AVEMO_AUDIO_MFCC) {
        stride = (frames + BLOCK - 1) / BLOCK * BLOCK;
        if (!reserve_floats(&ex->mel, &ex->mel_cap, (size_t)p->n_mels * stride))
            return avemo_fail(err, AVEMO_ERR_NOMEM, "audio features: out of memory for %zu frames", frames);
        mel = ex->mel;
    } else if (p->feature != AVEMO_AUDIO_SPECTROGRAM) {
        mel = out;
    }
    for (size_t t0 = 0; t0 < frames; t0 += BLOCK) {
        int count = frames - t0 < BLOCK ? (int)(frames - t0) : BLOCK;
        if (count < BLOCK) memset(ex->block, 0, sizeof(float) * (size_t)ex->n_bins * BLOCK);
        for (int j = 0; j < count; j++) {
            load_frame(ex, x, n, t0 + (size_t)j);
            fftwf_execute(ex->plan);
            store_power(ex, j);
        }
        if (energy) block_energy(ex, energy + t0, count);
        if (p->power == 1) block_magnitude(ex);
        if (mel) mel_project_block(ex, mel, stride, t0, stride - t0 < BLOCK ? (int)(stride - t0) : BLOCK);
        else copy_block(ex, out, frames, t0, count);
    }
    size_t rows = (size_t)avemo_audio_params_base_count(p);
    switch (p->feature) {
    case AVEMO_AUDIO_MEL: break;
    case AVEMO_AUDIO_LOGMEL:
    case AVEMO_AUDIO_SPECTROGRAM: avemo_audio_power_to_db(out, rows * frames, p->db_ref, p->amin, p->top_db); break;
    case AVEMO_AUDIO_MFCC:
        avemo_audio_power_to_db(mel, (size_t)p->n_mels * stride, p->db_ref, p->amin, p->top_db);
        apply_dct(ex, mel, stride, out, frames);
        break;
    }
    if (p->deltas >= 1) add_delta(out, rows, frames, 1, out + rows * frames);
    if (p->deltas >= 2) add_delta(out, rows, frames, 2, out + 2 * rows * frames);
    return AVEMO_OK;
}

enum avemo_status avemo_audio_compute(avemo_audio_extractor *ex, const float *samples, size_t n, float *out,
                                      size_t out_frames, struct avemo_error *err)
{
    enum avemo_status s = check_signal(ex, samples, n, err);
    if (s != AVEMO_OK) return s;
    size_t frames = avemo_audio_frame_count(ex, n);
    if (!out || out_frames != frames)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "audio features: %zu samples give %zu frames, the buffer has %zu",
                          n, frames, out ? out_frames : 0);
    const float *x;
    s = leveled_signal(ex, samples, n, &x, err);
    if (s != AVEMO_OK) return s;
    return compute_features(ex, x, n, out, frames, NULL, err);
}

/* The window of `frames` centred on the energy-weighted mean frame, kept inside the signal. */
static size_t centroid_start(size_t total, size_t frames, const double *energy)
{
    double sum = 0.0, moment = 0.0;
    for (size_t t = 0; t < total; t++) {
        sum += energy[t];
        moment += energy[t] * (double)t;
    }
    size_t spare = total - frames;
    if (!(sum > 0.0)) return spare / 2;
    double start = moment / sum - (double)(frames - 1) / 2.0;
    if (start <= 0.0) return 0;
    size_t s = (size_t)(start + 0.5);
    return s < spare ? s : spare;
}

size_t avemo_audio_crop_start(enum avemo_crop crop, size_t total, size_t frames, const double *energy)
{
    if (total <= frames) return 0;
    size_t spare = total - frames;
    if (crop == AVEMO_CROP_CENTRE) return spare / 2;
    if (!energy || (crop != AVEMO_CROP_ENERGY && crop != AVEMO_CROP_CENTROID)) return 0;
    if (crop == AVEMO_CROP_CENTROID) return centroid_start(total, frames, energy);
    /* Sliding sum over windows of `frames` frames; the first maximum wins. */
    double sum = 0.0;
    for (size_t t = 0; t < frames; t++) sum += energy[t];
    double best = sum;
    size_t best_start = 0;
    for (size_t start = 1; start <= spare; start++) {
        sum += energy[start + frames - 1] - energy[start - 1];
        if (sum > best) {
            best = sum;
            best_start = start;
        }
    }
    return best_start;
}

/* Bands with (almost) no spread are only centred: dividing by a tiny std
 * would blow rounding noise up to unit variance. */
#define NORM_MIN_STD 1e-5

void avemo_audio_normalize(float *x, int features, size_t stride, size_t frames, enum avemo_feature_norm norm,
                           const float *mean, const float *std)
{
    if (norm == AVEMO_NORM_NONE || frames == 0) return;
    for (int f = 0; f < features; f++) {
        float *row = x + (size_t)f * stride;
        double mu, sd;
        if (norm == AVEMO_NORM_DATASET) {
            mu = mean[f];
            sd = std[f];
        } else {
            double sum = 0.0, sum2 = 0.0;
            for (size_t t = 0; t < frames; t++) sum += row[t];
            mu = sum / (double)frames;
            for (size_t t = 0; t < frames; t++) sum2 += (row[t] - mu) * (row[t] - mu);
            sd = sqrt(sum2 / (double)frames);
            if (sd < NORM_MIN_STD) sd = 1.0;
        }
        float fmu = (float)mu, inv = (float)(1.0 / sd);
        for (size_t t = 0; t < frames; t++) row[t] = (row[t] - fmu) * inv;
    }
}

/* Silence trimming (trim_db > 0): the first and last frames whose energy is within
 * trim_db of the loudest frame.  Leading and trailing pauses go, so a corpus that
 * records a second of silence around each sentence (RAVDESS) and one cut to the speech
 * (EmoDB) give the network the same kind of input. */
static void trimmed_range(const double *energy, size_t total, double trim_db, size_t *first, size_t *last)
{
    double peak = 0.0;
    for (size_t t = 0; t < total; t++)
        if (energy[t] > peak) peak = energy[t];
    if (!(peak > 0.0)) return; /* silence: keep everything */
    double threshold = peak * pow(10.0, -trim_db / 10.0);
    size_t a = 0, b = total - 1;
    while (a < b && energy[a] < threshold) a++;
    while (b > a && energy[b] < threshold) b--;
    *first = a;
    *last = b;
}

/* pad=centre: a signal shorter than the window, put in the middle of digital silence long
 * enough for the window, after its loudness was set.  Its features then look like those of a
 * corpus that records pauses around each sentence (RAVDESS): the silence sits at the log-mel
 * floor on both sides instead of a sentence starting at frame 0 followed by zero padding. */
static enum avemo_status centred_signal(avemo_audio_extractor *ex, const float **x, size_t *n, size_t want,
                                        struct avemo_error *err)
{
    size_t hop = (size_t)ex->p.hop, total = avemo_audio_frame_count(ex, *n);
    size_t left = (want - total) / 2 * hop, len = (want - 1) * hop;
    if (len < *n + left) len = *n + left;
    if (!reserve_floats(&ex->padded, &ex->padded_cap, len))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "audio features: out of memory for %zu samples", len);
    memset(ex->padded, 0, sizeof(float) * len);
    memcpy(ex->padded + left, *x, sizeof(float) * *n);
    *x = ex->padded;
    *n = len;
    return AVEMO_OK;
}

enum avemo_status avemo_audio_compute_fixed(avemo_audio_extractor *ex, const float *samples, size_t n, float *out,
                                            size_t out_frames, size_t *valid_frames, struct avemo_error *err)
{
    enum avemo_status s = check_signal(ex, samples, n, err);
    if (s != AVEMO_OK) return s;
    size_t total = avemo_audio_frame_count(ex, n), want = avemo_audio_output_frames(ex, n);
    if (!out || out_frames != want)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "audio features: the model input has %zu frames, the buffer %zu",
                          want, out ? out_frames : 0);
    if (ex->p.norm == AVEMO_NORM_DATASET && !ex->stats_mean)
        return avemo_fail(err, AVEMO_ERR_CONFIG,
                          "audio features: norm=dataset but no statistics were given (avemo_audio_extractor_set_stats)");
    size_t rows = (size_t)ex->n_features;
    if (!reserve_floats(&ex->full, &ex->full_cap, rows * total) ||
        !reserve_doubles(&ex->energy, &ex->energy_cap, total))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "audio features: out of memory for %zu frames", total);
    /* Frame energies cost a pass over the spectra: only for the energy crops and trimming. */
    int trim = ex->p.trim_db > 0.0 && ex->p.frames > 0;
    int need_energy = trim || ((ex->p.crop == AVEMO_CROP_ENERGY || ex->p.crop == AVEMO_CROP_CENTROID) && total > want);
    const float *x;
    s = leveled_signal(ex, samples, n, &x, err);
    if (s != AVEMO_OK) return s;
    if (ex->p.pad == AVEMO_PAD_CENTRE && ex->p.frames > 0 && total < want) {
        if ((s = centred_signal(ex, &x, &n, want, err))) return s;
        total = avemo_audio_frame_count(ex, n);
        if (!reserve_floats(&ex->full, &ex->full_cap, rows * total) || !reserve_doubles(&ex->energy, &ex->energy_cap, total))
            return avemo_fail(err, AVEMO_ERR_NOMEM, "audio features: out of memory for %zu frames", total);
        need_energy = trim || ((ex->p.crop == AVEMO_CROP_ENERGY || ex->p.crop == AVEMO_CROP_CENTROID) && total > want);
    }
    s = compute_features(ex, x, n, ex->full, total, need_energy ? ex->energy : NULL, err);
    if (s != AVEMO_OK) return s;
    size_t first = 0, last = total - 1;
    if (trim) trimmed_range(ex->energy, total, ex->p.trim_db, &first, &last);
    size_t kept = last - first + 1;
    size_t start = first + avemo_audio_crop_start(ex->p.crop, kept, want, ex->energy + first);
    size_t valid = last + 1 - start < want ? last + 1 - start : want;
    for (size_t f = 0; f < rows; f++) {
        float *dst = out + f * want;
        memcpy(dst, ex->full + f * total + start, sizeof(float) * valid);
        memset(dst + valid, 0, sizeof(float) * (want - valid));
    }
    /* Dataset statistics apply to every column, padding included: training and `avemo eval`
     * normalise the cached (unnormalised) inputs that way (train/batch.c), so a clip shorter
     * than the window must be given to the network as it was in training.  Per-utterance
     * statistics are computed here in training too, over the signal's own frames. */
    size_t norm_frames = ex->p.norm == AVEMO_NORM_DATASET ? want : valid;
    avemo_audio_normalize(out, (int)rows, want, norm_frames, ex->p.norm, ex->stats_mean, ex->stats_std);
    if (valid_frames) *valid_frames = valid;
    return AVEMO_OK;
}
