/* Global average pooling: C x H x W -> C x 1 x 1, the mean of each channel's plane.  The
 * backward spreads each channel's gradient evenly over its H * W inputs. */
#include "nn/nn_internal.h"

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

/* --- the row: gap (no arguments) --- */

static int gap_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    (void)tok, (void)nt, (void)msg, (void)msgsize;
    l->out_h = l->out_w = 1;
    return 1;
}

static const float *gap_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    nn_gap_forward(l, a->in, a->y, a->B);
    return a->y;
}

static void gap_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    if (a->din) nn_gap_backward(l, a->dout, a->din, a->B);
}

const struct nn_layer_type nn_layer_gap = {
    .name = "gap", .min_words = 1, .max_words = 1, .takes_seq = 0,
    .parse = gap_parse, .forward = gap_forward, .backward = gap_backward,
};
