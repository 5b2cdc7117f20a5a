/* Batch normalisation over the channels of NCHW data (BatchNorm2d), or over the features of
 * [N][F] data (BatchNorm1d: H = W = 1).  Training uses the batch statistics and updates the
 * running averages as PyTorch does (momentum 0.1, unbiased running variance); inference uses
 * the running statistics.  running = mean[C] then var[C]. */
#include "nn/nn_internal.h"

#include <math.h>

void nn_bn_forward_train(const struct nn_layer *l, const float *gamma, const float *beta, float *running,
                         const float *in, float *out, int B, float *mean, float *rstd)
{
    const int C = l->in_c;
    const size_t hw = (size_t)l->in_h * l->in_w, chw = (size_t)C * hw;
    const double count = (double)B * (double)hw;
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + n * chw + c * hw;
            for (size_t i = 0; i < hw; i++) sum += x[i];
        }
        double mu = sum / count, sq = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + n * chw + c * hw;
            for (size_t i = 0; i < hw; i++) {
                double d = x[i] - mu;
                sq += d * d;
            }
        }
        double var = sq / count;
        float m = (float)mu, r = (float)(1.0 / sqrt(var + NN_BN_EPS));
        mean[c] = m;
        rstd[c] = r;
        float scale = gamma[c] * r, shift = beta[c] - m * scale;
        for (int n = 0; n < B; n++) {
            const float *x = in + n * chw + c * hw;
            float *y = out + n * chw + c * hw;
            for (size_t i = 0; i < hw; i++) y[i] = x[i] * scale + shift;
        }
        if (running) {
            double unbiased = count > 1 ? var * count / (count - 1) : var;
            running[c] = (1.0f - NN_BN_MOMENTUM) * running[c] + NN_BN_MOMENTUM * m;
            running[C + c] = (1.0f - NN_BN_MOMENTUM) * running[C + c] + NN_BN_MOMENTUM * (float)unbiased;
        }
    }
}

void nn_bn_forward_eval(const struct nn_layer *l, const float *gamma, const float *beta, const float *running,
                        const float *in, float *out, int B)
{
    const int C = l->in_c;
    const size_t hw = (size_t)l->in_h * l->in_w, chw = (size_t)C * hw;
    for (int c = 0; c < C; c++) {
        float r = 1.0f / sqrtf(running[C + c] + NN_BN_EPS);
        float scale = gamma[c] * r, shift = beta[c] - running[c] * scale;
        for (int n = 0; n < B; n++) {
            const float *x = in + n * chw + c * hw;
            float *y = out + n * chw + c * hw;
            for (size_t i = 0; i < hw; i++) y[i] = x[i] * scale + shift;
        }
    }
}

/* mean/rstd: the statistics the forward normalised with (batch ones in training, running ones
 * in inference).  In training the batch statistics depend on the input, which adds the two
 * mean terms of dx; with fixed statistics dx is simply dy * gamma * rstd. */
void nn_bn_backward(const struct nn_layer *l, const float *gamma, float *dgamma, float *dbeta, const float *in,
                    const float *dout, float *din, int B, const float *mean, const float *rstd, int train)
{
    const int C = l->in_c;
    const size_t hw = (size_t)l->in_h * l->in_w, chw = (size_t)C * hw;
    const float count = (float)B * (float)hw;
    for (int c = 0; c < C; c++) {
        const float m = mean[c], r = rstd[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int n = 0; n < B; n++) {
            const float *x = in + n * chw + c * hw;
            const float *dy = dout + n * chw + c * hw;
            for (size_t i = 0; i < hw; i++) {
                sum_dy += dy[i];
                sum_dy_xhat += dy[i] * ((x[i] - m) * r);
            }
        }
        dgamma[c] += (float)sum_dy_xhat;
        dbeta[c] += (float)sum_dy;
        if (!din) continue;
        const float g = gamma[c] * r;
        const float a = train ? (float)sum_dy / count : 0.0f, bcoef = train ? (float)sum_dy_xhat / count : 0.0f;
        for (int n = 0; n < B; n++) {
            const float *x = in + n * chw + c * hw;
            const float *dy = dout + n * chw + c * hw;
            float *dx = din + n * chw + c * hw;
            for (size_t i = 0; i < hw; i++) dx[i] = g * (dy[i] - a - (x[i] - m) * r * bcoef);
        }
    }
}
