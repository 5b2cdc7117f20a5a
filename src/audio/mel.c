/* Mel filter bank, power_to_db and the orthonormal DCT-II matrix, following
 * librosa 0.9.2's definitions (filters.mel, core.power_to_db, feature.mfcc). */
#include "audio/audio_internal.h"
#include "audio/vec4.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above. */
#define SLANEY_F_SP (200.0 / 3.0)
#define SLANEY_MIN_LOG_HZ 1000.0
#define SLANEY_MIN_LOG_MEL (SLANEY_MIN_LOG_HZ / SLANEY_F_SP)

static double slaney_logstep(void) { return log(6.4) / 27.0; }

static double hz_to_mel(double hz, enum avemo_mel_scale scale)
{
    if (scale == AVEMO_MEL_HTK) return 2595.0 * log10(1.0 + hz / 700.0);
    if (hz >= SLANEY_MIN_LOG_HZ) return SLANEY_MIN_LOG_MEL + log(hz / SLANEY_MIN_LOG_HZ) / slaney_logstep();
    return hz / SLANEY_F_SP;
}

static double mel_to_hz(double mel, enum avemo_mel_scale scale)
{
    if (scale == AVEMO_MEL_HTK) return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
    if (mel >= SLANEY_MIN_LOG_MEL) return SLANEY_MIN_LOG_HZ * exp(slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL));
    return SLANEY_F_SP * mel;
}

double avemo_audio_fmax(const struct avemo_audio_params *p)
{
    return p->fmax > 0.0 ? p->fmax : p->sample_rate / 2.0;
}

/* Band edges: n_mels + 2 frequencies evenly spaced on the mel scale, spaced
 * as numpy.linspace does (start + i * step, the last one exactly the end). */
static void mel_band_edges(const struct avemo_audio_params *p, double *hz)
{
    int count = p->n_mels + 2;
    double lo = hz_to_mel(p->fmin, p->mel_scale), hi = hz_to_mel(avemo_audio_fmax(p), p->mel_scale);
    double step = (hi - lo) / (count - 1);
    for (int i = 0; i < count; i++) hz[i] = mel_to_hz(i == count - 1 ? hi : lo + i * step, p->mel_scale);
}

enum avemo_status avemo_audio_mel_filterbank(const struct avemo_audio_params *p, float *weights,
                                             struct avemo_error *err)
{
    enum avemo_status s = avemo_audio_params_validate(p, "mel filter bank", err);
    if (s != AVEMO_OK) return s;
    int n_bins = p->n_fft / 2 + 1;
    double *edges = malloc(sizeof(double) * (size_t)(p->n_mels + 2));
    if (!edges) return avemo_fail(err, AVEMO_ERR_NOMEM, "mel filter bank: out of memory");
    mel_band_edges(p, edges);
    /* Bin k is at k * sr / n_fft Hz, computed as numpy.fft.rfftfreq does. */
    double bin_hz = 1.0 / (p->n_fft * (1.0 / p->sample_rate));
    /* With a band limit, the bins above it weigh nothing: their power never reaches a band. */
    int n_used = p->band_limit > 0.0 ? (int)floor(p->band_limit / bin_hz) + 1 : n_bins;
    if (n_used > n_bins) n_used = n_bins;
    for (int m = 0; m < p->n_mels; m++) {
        double rise = edges[m + 1] - edges[m], fall = edges[m + 2] - edges[m + 1];
        /* Slaney normalisation gives every triangle unit area (2 / width). */
        double enorm = p->mel_norm == AVEMO_MEL_NORM_SLANEY ? 2.0 / (edges[m + 2] - edges[m]) : 1.0;
        for (int k = 0; k < n_bins; k++) {
            double f = k * bin_hz;
            double lower = -(edges[m] - f) / rise, upper = (edges[m + 2] - f) / fall;
            double w = fmax(0.0, fmin(lower, upper));
            /* librosa stores the triangle in float32, then scales the float32 row. */
            weights[(size_t)m * n_bins + k] = k < n_used ? (float)((double)(float)w * enorm) : 0.f;
        }
    }
    free(edges);
    return AVEMO_OK;
}

/* 10 / ln(10): 10*log10(x) as a multiple of the natural log. */
#define DB_PER_NEPER 4.342944819032518f

/* 10*log10(max(x, amin)) - ref_db over four values; returns them. */
static inline vec4 db4(vec4 v, float amin, float ref_db)
{
    /* The clamp to FLT_MAX keeps an infinite power (from samples near the
     * float limit) inside the log's domain. */
    v = vec4_min(vec4_max(v, (vec4){amin, amin, amin, amin}), (vec4){FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX});
    return DB_PER_NEPER * vec4_log(v) - ref_db;
}

void avemo_audio_power_to_db(float *x, size_t n, enum avemo_db_ref db_ref, double amin, double top_db)
{
    if (n == 0) return;
    float famin = (float)amin;
    float ref_db = 0.0f;
    if (db_ref == AVEMO_DB_REF_MAX) {
        float ref = x[0];
        size_t i = 0;
        vec4 ref4 = {ref, ref, ref, ref};
        for (; i + 4 <= n; i += 4) ref4 = vec4_max(ref4, VEC4_LOAD(x + i));
        for (; i < n; i++) ref = x[i] > ref ? x[i] : ref;
        ref = fmaxf(fmaxf(ref, fmaxf(ref4[0], ref4[1])), fmaxf(ref4[2], ref4[3]));
        ref_db = (float)(10.0 * log10(fmin(fmax(amin, (double)ref), FLT_MAX)));
    }
    vec4 top4 = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        vec4 db = db4(VEC4_LOAD(x + i), famin, ref_db);
        VEC4_STORE(x + i, db);
        top4 = vec4_max(top4, db);
    }
    if (i < n) {
        /* The last 1-3 values through the same vector code, padded with amin. */
        float tail[4] = {famin, famin, famin, famin};
        memcpy(tail, x + i, sizeof(float) * (n - i));
        vec4 db = db4(VEC4_LOAD(tail), famin, ref_db);
        top4 = vec4_max(top4, db);
        VEC4_STORE(tail, db);
        memcpy(x + i, tail, sizeof(float) * (n - i));
    }
    if (top_db > 0.0) {
        float top = fmaxf(fmaxf(top4[0], top4[1]), fmaxf(top4[2], top4[3]));
        float floor_db = top - (float)top_db;
        vec4 floor4 = {floor_db, floor_db, floor_db, floor_db};
        for (i = 0; i + 4 <= n; i += 4) VEC4_STORE(x + i, vec4_max(VEC4_LOAD(x + i), floor4));
        for (; i < n; i++) x[i] = x[i] < floor_db ? floor_db : x[i];
    }
}

void avemo_audio_dct_matrix(int n_out, int n_in, float *dct)
{
    /* scipy.fftpack.dct(type=2, norm='ortho'): row k is
     * s_k * cos(pi * k * (2n + 1) / (2N)), s_0 = sqrt(1/N), s_k = sqrt(2/N). */
    for (int k = 0; k < n_out; k++) {
        double scale = k == 0 ? sqrt(1.0 / n_in) : sqrt(2.0 / n_in);
        for (int i = 0; i < n_in; i++)
            dct[(size_t)k * n_in + i] = (float)(scale * cos(M_PI * k * (2.0 * i + 1.0) / (2.0 * n_in)));
    }
}
