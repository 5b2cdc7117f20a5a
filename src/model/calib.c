/*
 * Calibration: temperature scaling of a model's logits, the expected calibration error with
 * its reliability table, and late fusion of two calibrated models' probabilities.
 *
 * What a model file stores for this (named float arrays, src/nn/model_file.c; absent = off):
 *   "calib.temperature"      1 float T > 0: probabilities are softmax(logits / T)
 *   "calib.uncertain_below"  1 float in [0, 1]: an answer whose top probability is below it is
 *                            "uncertain" (classify shows the top two)
 *   "fusion.late"            3 floats (w_audio, w_face, selected): an av model's weights of the
 *                            audio and face models' log-probabilities; selected = 1 makes late
 *                            fusion the av answer of a classifier that has both models
 *   "fusion.prior"           2k floats > 0: the class shares the audio model, then the face model,
 *                            learnt; late fusion divides them out (absent: uniform, nothing divided)
 *   "train.prior"            k floats > 0: the class shares a model learnt (written by training:
 *                            per-epoch shares, uniform when the loss weighs classes equally)
 * Fitting uses the raw logits (the network's output before any stored temperature), so a model
 * can be re-calibrated on new data.
 */
#include <avemo/model.h>

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PROB_FLOOR 1e-12 /* log(0) of a class the model is sure against would be -inf */

static float stored_value(const avemo_net *net, const char *name, size_t index, float lo, float hi, float fallback)
{
    size_t n = 0;
    const float *v = avemo_net_array(net, name, &n);
    if (!v || n <= index || !(v[index] >= lo && v[index] <= hi)) return fallback;
    return v[index];
}

float avemo_model_temperature(const avemo_net *net)
{
    return stored_value(net, AVEMO_CALIB_TEMPERATURE, 0, AVEMO_CALIB_T_MIN, AVEMO_CALIB_T_MAX, 1.0f);
}

float avemo_model_uncertain_below(const avemo_net *net)
{
    return stored_value(net, AVEMO_CALIB_UNCERTAIN, 0, 0.0f, 1.0f, AVEMO_UNCERTAIN_DEFAULT);
}

int avemo_model_late_fusion(const avemo_net *net, float *w_audio, float *w_face)
{
    size_t n = 0;
    const float *v = avemo_net_array(net, AVEMO_FUSION_WEIGHTS, &n);
    if (!v || n < 3 || !(v[0] >= 0 && v[0] <= 100) || !(v[1] >= 0 && v[1] <= 100)) return -1;
    *w_audio = v[0];
    *w_face = v[1];
    return v[2] > 0.5f;
}

int avemo_model_prior(const avemo_net *net, const char *name, int k, float *prior)
{
    if (k < 1 || k > AVEMO_MAX_CLASSES) return 0;
    size_t n = 0;
    const float *v = avemo_net_array(net, name, &n);
    int blocks = strcmp(name, AVEMO_FUSION_PRIOR) == 0 ? 2 : 1, ok = v && n == (size_t)(blocks * k);
    for (size_t i = 0; ok && i < n; i++) ok = v[i] > 0 && v[i] <= 1e9f;
    for (int b = 0; b < blocks; b++) {
        double sum = 0;
        for (int c = 0; ok && c < k; c++) sum += v[b * k + c];
        for (int c = 0; c < k; c++) prior[b * k + c] = ok ? (float)(v[b * k + c] / sum) : 1.0f / (float)k;
    }
    return ok;
}

int avemo_prior_from_counts(const double *counts, int k, float *prior)
{
    double sum = 0;
    for (int c = 0; c < k; c++) {
        if (!(counts[c] >= 0 && counts[c] <= 1e15)) return -1;
        sum += counts[c];
    }
    if (!(sum > 0)) return -1;
    for (int c = 0; c < k; c++) prior[c] = (float)(counts[c] / sum);
    return 0;
}

/* --- temperature ------------------------------------------------------------------- */

void avemo_softmax_temperature(const float *logits, int k, float temperature, float *probs)
{
    double max = -INFINITY, sum = 0, inv = 1.0 / temperature;
    for (int c = 0; c < k; c++) max = fmax(max, logits[c] * inv);
    for (int c = 0; c < k; c++) sum += exp(logits[c] * inv - max);
    for (int c = 0; c < k; c++) probs[c] = (float)(exp(logits[c] * inv - max) / sum);
}

void avemo_calib_probs(const float *logits, int rows, size_t n, int k, float temperature, float *probs)
{
    float row[AVEMO_MAX_CLASSES];
    assert(k >= 1 && k <= AVEMO_MAX_CLASSES && rows >= 1);
    for (size_t i = 0; i < n; i++) {
        float *p = probs + i * (size_t)k;
        memset(p, 0, sizeof(float) * (size_t)k);
        for (int r = 0; r < rows; r++) {
            avemo_softmax_temperature(logits + ((size_t)r * n + i) * (size_t)k, k, temperature, row);
            for (int c = 0; c < k; c++) p[c] += row[c] / (float)rows;
        }
    }
}

double avemo_calib_nll(const float *logits, int rows, const int *truth, size_t n, int k, float temperature)
{
    float row[AVEMO_MAX_CLASSES];
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double p = 0;
        for (int r = 0; r < rows; r++) {
            avemo_softmax_temperature(logits + ((size_t)r * n + i) * (size_t)k, k, temperature, row);
            p += row[truth[i]] / (double)rows;
        }
        sum -= log(fmax(p, PROB_FLOOR));
    }
    return n ? sum / (double)n : 0;
}

/* The NLL is unimodal in log T (convex for one row): golden-section search over log T. */
float avemo_calib_fit_temperature(const float *logits, int rows, const int *truth, size_t n, int k, double *nll_before,
                                  double *nll_after)
{
    const double g = (sqrt(5.0) - 1) / 2;
    double a = log(AVEMO_CALIB_T_MIN), b = log(AVEMO_CALIB_T_MAX);
    double x1 = b - g * (b - a), x2 = a + g * (b - a);
    double f1 = avemo_calib_nll(logits, rows, truth, n, k, (float)exp(x1));
    double f2 = avemo_calib_nll(logits, rows, truth, n, k, (float)exp(x2));
    for (int it = 0; it < 60 && b - a > 1e-5; it++) {
        if (f1 < f2) {
            b = x2, x2 = x1, f2 = f1;
            x1 = b - g * (b - a);
            f1 = avemo_calib_nll(logits, rows, truth, n, k, (float)exp(x1));
        } else {
            a = x1, x1 = x2, f1 = f2;
            x2 = a + g * (b - a);
            f2 = avemo_calib_nll(logits, rows, truth, n, k, (float)exp(x2));
        }
    }
    float t = (float)exp((a + b) / 2);
    double before = avemo_calib_nll(logits, rows, truth, n, k, 1.0f), after = avemo_calib_nll(logits, rows, truth, n, k, t);
    if (after > before) t = 1.0f, after = before; /* never worse than no scaling */
    if (nll_before) *nll_before = before;
    if (nll_after) *nll_after = after;
    return t;
}

/* --- expected calibration error -------------------------------------------------------- */

enum avemo_status avemo_reliability_compute(const float *probs, const int *truth, size_t n, int k, int bins,
                                            struct avemo_reliability *r, struct avemo_error *err)
{
    memset(r, 0, sizeof *r);
    if (bins < 1 || bins > AVEMO_RELIABILITY_MAX_BINS || k < 1 || k > AVEMO_MAX_CLASSES)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "reliability: %d bins (1 to %d) and %d classes", bins,
                          AVEMO_RELIABILITY_MAX_BINS, k);
    r->bins = bins;
    r->n = n;
    double conf_sum[AVEMO_RELIABILITY_MAX_BINS] = {0}, right[AVEMO_RELIABILITY_MAX_BINS] = {0};
    for (size_t i = 0; i < n; i++) {
        const float *p = probs + i * (size_t)k;
        int top = 0;
        for (int c = 1; c < k; c++)
            if (p[c] > p[top]) top = c;
        if (truth[i] < 0 || truth[i] >= k)
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "reliability: label %d of unit %zu is not a class", truth[i], i);
        if (!(p[top] >= 0.0f && p[top] <= 1.0f)) /* also NaN */
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "reliability: unit %zu has no probability (%g)", i,
                              (double)p[top]);
        int b = (int)(p[top] * bins); /* equal-width bins over [0, 1]; a confidence of 1 goes to the last */
        if (b >= bins) b = bins - 1;
        if (b < 0) b = 0;
        r->count[b]++;
        conf_sum[b] += p[top];
        right[b] += top == truth[i];
        r->nll -= log(fmax(p[truth[i]], PROB_FLOOR));
        r->accuracy_all += top == truth[i];
        r->confidence_all += p[top];
    }
    for (int b = 0; b < bins && n; b++) {
        if (!r->count[b]) continue;
        r->confidence[b] = conf_sum[b] / (double)r->count[b];
        r->accuracy[b] = right[b] / (double)r->count[b];
        double gap = fabs(r->accuracy[b] - r->confidence[b]);
        r->ece += (double)r->count[b] / (double)n * gap;
        r->mce = fmax(r->mce, gap);
    }
    if (n) {
        r->nll /= (double)n;
        r->accuracy_all /= (double)n;
        r->confidence_all /= (double)n;
    }
    return AVEMO_OK;
}

/* --- late fusion ---------------------------------------------------------------------- */

void avemo_fuse_late(const float *p_audio, const float *p_face, int k, const struct avemo_late_fusion *f, float *out)
{
    float z[AVEMO_MAX_CLASSES];
    assert(k >= 1 && k <= AVEMO_MAX_CLASSES);
    for (int c = 0; c < k; c++) {
        double la = log(fmax(p_audio[c], PROB_FLOOR)), lf = log(fmax(p_face[c], PROB_FLOOR));
        if (f->prior) la -= log(fmax(f->prior[c], PROB_FLOOR)), lf -= log(fmax(f->prior[k + c], PROB_FLOOR));
        z[c] = (float)(f->w_audio * la + f->w_face * lf);
    }
    avemo_softmax_temperature(z, k, 1.0f, out);
}

static double fused_nll(const float *pa, const float *pf, const int *truth, size_t n, int k, const struct avemo_late_fusion *f)
{
    float p[AVEMO_MAX_CLASSES];
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        avemo_fuse_late(pa + i * (size_t)k, pf + i * (size_t)k, k, f, p);
        sum -= log(fmax(p[truth[i]], PROB_FLOOR));
    }
    return n ? sum / (double)n : 0;
}

/* A grid over [0, 3] x [0, 3] in steps of 0.05, then a finer one around the best point:
 * two weights do not need more, and a grid has no local minimum to get stuck in. */
double avemo_fusion_fit(const float *p_audio, const float *p_face, const int *truth, size_t n, int k,
                        struct avemo_late_fusion *f)
{
    struct avemo_late_fusion best_f = {1, 1, f->prior}, at = best_f;
    double best = fused_nll(p_audio, p_face, truth, n, k, &best_f);
    for (int pass = 0; pass < 2; pass++) {
        float step = pass ? 0.005f : 0.05f, ca = best_f.w_audio, cf = best_f.w_face;
        int lo = pass ? -10 : 0, hi = pass ? 10 : 60;
        for (int i = lo; i <= hi; i++)
            for (int j = lo; j <= hi; j++) {
                at.w_audio = (pass ? ca : 0) + step * (float)i, at.w_face = (pass ? cf : 0) + step * (float)j;
                if (at.w_audio < 0 || at.w_face < 0 || at.w_audio + at.w_face <= 0) continue;
                double v = fused_nll(p_audio, p_face, truth, n, k, &at);
                if (v < best) best = v, best_f = at;
            }
    }
    f->w_audio = best_f.w_audio;
    f->w_face = best_f.w_face;
    return best;
}

/* --- storing calibration in a model file --------------------------------------------- */

/* The stored pipeline text with SEC.KEY=VALUE overrides, checked as a model's pipeline is when
 * it is opened (every value valid; the network itself unchanged: avemo_net_set_pipeline). */
static enum avemo_status store_settings(avemo_net *net, const char *path, const char *const *overrides, int noverrides,
                                        struct avemo_error *err)
{
    char *text = NULL;
    struct avemo_pipeline p;
    enum avemo_status st = avemo_pipeline_override(avemo_net_pipeline(net), overrides, noverrides, &text, err);
    if (!st) st = avemo_pipeline_parse(text, path, &p, err);
    if (!st) st = avemo_net_set_pipeline(net, text, err);
    free(text);
    return st;
}

enum avemo_status avemo_model_store(const char *in_path, const char *out_path, const char *const *overrides,
                                    int noverrides, int n, const char *const *names, const float *const *values,
                                    const size_t *counts, struct avemo_error *err)
{
    avemo_net *net = NULL;
    enum avemo_status st = avemo_net_load(in_path, &net, err);
    if (!st && noverrides > 0) st = store_settings(net, in_path, overrides, noverrides, err);
    for (int i = 0; !st && i < n; i++) st = avemo_net_set_array(net, names[i], values[i], counts[i], err);
    if (!st) st = avemo_net_save(net, out_path, err);
    avemo_net_free(net);
    return st;
}

enum avemo_status avemo_model_store_arrays(const char *in_path, const char *out_path, int n, const char *const *names,
                                           const float *const *values, const size_t *counts, struct avemo_error *err)
{
    return avemo_model_store(in_path, out_path, NULL, 0, n, names, values, counts, err);
}
