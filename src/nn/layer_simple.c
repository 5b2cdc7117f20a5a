/* The parameter-free layers: ReLU, max pooling, global average pooling, dropout, concatenation. */
#include "nn/nn_internal.h"

#include <string.h>

void nn_relu_forward(const float *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

/* Uses the output: out > 0 exactly where in > 0. */
void nn_relu_backward(const float *out, const float *dout, float *din, size_t n)
{
    for (size_t i = 0; i < n; i++) din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

/* k x k windows with stride k (PyTorch's MaxPool2d(k), floor mode).  idx (may be NULL in
 * inference) keeps, per output, the index of the winning input inside the sample; the first
 * maximum wins, as in PyTorch. */
void nn_maxpool_forward(const struct nn_layer *l, const float *in, float *out, int32_t *idx, int B)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h, Wo = l->out_w, k = l->k;
    const size_t in_size = nn_in_size(l), out_size = nn_out_size(l);
    for (int n = 0; n < B; n++) {
        for (int c = 0; c < l->in_c; c++) {
            const float *x = in + n * in_size;
            const size_t plane = (size_t)c * H * W;
            float *y = out + n * out_size + (size_t)c * Ho * Wo;
            int32_t *ix = idx ? idx + n * out_size + (size_t)c * Ho * Wo : NULL;
            for (int oh = 0; oh < Ho; oh++) {
                for (int ow = 0; ow < Wo; ow++) {
                    size_t best = plane + (size_t)(oh * k) * W + (size_t)ow * k;
                    float v = x[best];
                    for (int i = 0; i < k; i++) {
                        for (int j = 0; j < k; j++) {
                            size_t at = plane + (size_t)(oh * k + i) * W + (size_t)ow * k + j;
                            if (x[at] > v) {
                                v = x[at];
                                best = at;
                            }
                        }
                    }
                    y[oh * Wo + ow] = v;
                    if (ix) ix[oh * Wo + ow] = (int32_t)best;
                }
            }
        }
    }
}

void nn_maxpool_backward(const struct nn_layer *l, const int32_t *idx, const float *dout, float *din, int B)
{
    const size_t in_size = nn_in_size(l), out_size = nn_out_size(l);
    memset(din, 0, sizeof(float) * in_size * (size_t)B);
    for (int n = 0; n < B; n++) {
        float *dx = din + n * in_size;
        const float *dy = dout + n * out_size;
        const int32_t *ix = idx + n * out_size;
        for (size_t i = 0; i < out_size; i++) dx[ix[i]] += dy[i];
    }
}

void nn_gap_forward(const struct nn_layer *l, const float *in, float *out, int B)
{
    const size_t hw = (size_t)l->in_h * l->in_w;
    for (int n = 0; n < B; n++) {
        for (int c = 0; c < l->in_c; c++) {
            const float *x = in + ((size_t)n * l->in_c + c) * hw;
            float sum = 0.0f;
            for (size_t i = 0; i < hw; i++) sum += x[i];
            out[(size_t)n * l->in_c + c] = sum / (float)hw;
        }
    }
}

void nn_gap_backward(const struct nn_layer *l, const float *dout, float *din, int B)
{
    const size_t hw = (size_t)l->in_h * l->in_w;
    for (int n = 0; n < B; n++) {
        for (int c = 0; c < l->in_c; c++) {
            float g = dout[(size_t)n * l->in_c + c] / (float)hw;
            float *dx = din + ((size_t)n * l->in_c + c) * hw;
            for (size_t i = 0; i < hw; i++) dx[i] = g;
        }
    }
}

/* Inverted dropout (PyTorch's): kept values are scaled by 1 / (1 - p) in training. */
void nn_dropout_forward(const struct nn_layer *l, struct avemo_rng *rng, const float *in, float *out,
                        uint8_t *mask, size_t n)
{
    const float scale = 1.0f / (1.0f - l->p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = avemo_rng_uniform(rng) >= l->p;
        out[i] = mask[i] ? in[i] * scale : 0.0f;
    }
}

void nn_dropout_backward(const struct nn_layer *l, const uint8_t *mask, const float *dout, float *din, size_t n)
{
    const float scale = 1.0f / (1.0f - l->p);
    for (size_t i = 0; i < n; i++) din[i] = mask[i] ? dout[i] * scale : 0.0f;
}

void nn_concat_forward(int count, const float *const *in, const size_t *sizes, float *out, int B)
{
    size_t total = 0;
    for (int i = 0; i < count; i++) total += sizes[i];
    for (int n = 0; n < B; n++) {
        float *row = out + n * total;
        for (int i = 0; i < count; i++) {
            memcpy(row, in[i] + n * sizes[i], sizeof(float) * sizes[i]);
            row += sizes[i];
        }
    }
}
