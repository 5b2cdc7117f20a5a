/* Batch normalisation over the channels of NCHW data (BatchNorm2d), or over the features of
 * [N][F] data (BatchNorm1d: H = W = 1).  Training uses the batch statistics and updates the
 * running averages as PyTorch does (momentum 0.1 unless the context sets another, unbiased
 * running variance); inference uses
 * the running statistics.  running = mean[C] then var[C].  A ReLU that follows is applied in the
 * normalising pass (one pass over memory less; its backward only needs its own output). */
#include "nn/nn_internal.h"

#include <math.h>

void nn_bn_forward_train(const struct nn_layer *l, const float *gamma, const float *beta, float *running,
                         float momentum, const float *in, float *out, int B, float *mean, float *rstd, int relu)
{
    const int C = l->in_c;
    const size_t hw = (size_t)l->in_h * l->in_w, chw = (size_t)C * hw;
    const double count = (double)B * (double)hw;
    for (int c = 0; c < C; c++) {
        double sum = 0.0, sq = 0.0;
        for (int n = 0; n < B; n++) sum += nn_vec_sum(in + n * chw + c * hw, hw);
        const float m = (float)(sum / count);
        for (int n = 0; n < B; n++) sq += nn_vec_sum_sq_dev(in + n * chw + c * hw, hw, m);
        const double var = sq / count;
        const float r = (float)(1.0 / sqrt(var + NN_BN_EPS));
        mean[c] = m;
        rstd[c] = r;
        const float scale = gamma[c] * r, shift = beta[c] - m * scale;
        for (int n = 0; n < B; n++) nn_vec_scale_shift(in + n * chw + c * hw, out + n * chw + c * hw, hw, scale, shift, relu);
        if (running) {
            const double unbiased = count > 1 ? var * count / (count - 1) : var;
            running[c] = (1.0f - momentum) * running[c] + momentum * m;
            running[C + c] = (1.0f - momentum) * running[C + c] + momentum * (float)unbiased;
        }
    }
}

void nn_bn_forward_eval(const struct nn_layer *l, const float *gamma, const float *beta, const float *running,
                        const float *in, float *out, int B, int relu)
{
    const int C = l->in_c;
    const size_t hw = (size_t)l->in_h * l->in_w, chw = (size_t)C * hw;
    for (int c = 0; c < C; c++) {
        const float r = 1.0f / sqrtf(running[C + c] + NN_BN_EPS);
        const float scale = gamma[c] * r, shift = beta[c] - running[c] * scale;
        for (int n = 0; n < B; n++) nn_vec_scale_shift(in + n * chw + c * hw, out + n * chw + c * hw, hw, scale, shift, relu);
    }
}

/* mean/rstd: the statistics the forward normalised with (batch ones in training, running ones
 * in inference).  With xhat = (x - mean) * rstd:
 *   dgamma = sum dy xhat,  dbeta = sum dy,
 *   dx = gamma rstd (dy - dbeta / count - xhat dgamma / count)   in training, where the batch
 *        statistics depend on x too; with fixed statistics simply dx = gamma rstd dy. */
void nn_bn_backward(const struct nn_layer *l, const float *gamma, float *dgamma, float *dbeta, const float *in,
                    const float *dout, const float *relu_out, float *din, int B, const float *mean,
                    const float *rstd, int train)
{
    const int C = l->in_c;
    const size_t hw = (size_t)l->in_h * l->in_w, chw = (size_t)C * hw;
    const float count = (float)B * (float)hw;
    for (int c = 0; c < C; c++) {
        const float m = mean[c], r = rstd[c];
        double sum_dy = 0.0, sum_dy_dev = 0.0;
        for (int n = 0; n < B; n++) {
            const size_t at = n * chw + c * hw;
            nn_vec_bn_sums(dout + at, relu_out ? relu_out + at : NULL, in + at, hw, m, &sum_dy, &sum_dy_dev);
        }
        const double sum_dy_xhat = sum_dy_dev * r;
        dgamma[c] += (float)sum_dy_xhat;
        dbeta[c] += (float)sum_dy;
        if (!din) continue;
        const float g = gamma[c] * r;
        const float a = train ? (float)sum_dy / count : 0.0f;
        const float k = train ? r * (float)(sum_dy_xhat / count) : 0.0f;
        for (int n = 0; n < B; n++) {
            const size_t at = n * chw + c * hw;
            nn_vec_bn_dx(dout + at, relu_out ? relu_out + at : NULL, in + at, din + at, hw, g, a, m, k);
        }
    }
}
