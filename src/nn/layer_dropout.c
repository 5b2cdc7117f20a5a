/* Dropout: any shape, output shape = input shape.  Training zeroes each value with probability
 * p and scales the others (mask: one byte per value, kept for the backward); inference passes
 * the input through.  Item: dropout P, P in [0, 1). */
#include "nn/nn_internal.h"

#include <stdio.h>
#include <string.h>

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

/* --- the row: dropout P --- */

static int dropout_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    (void)nt;
    double p;
    if (avemo_parse_double(tok[1], 0.0, 1.0, &p) != AVEMO_OK || !(p < 1.0)) {
        snprintf(msg, msgsize, "probability '%s' not in [0, 1)", tok[1]);
        return 0;
    }
    l->p = (float)p;
    return 1;
}

static const float *dropout_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    size_t n = (size_t)a->B * nn_out_size(l);
    if (a->train && a->ctx->dropout && l->p > 0.0f) {
        nn_dropout_forward(l, &a->ctx->rng, a->in, a->y, a->ctx->drop_mask[a->i], n);
        return a->y;
    }
    if (!a->y) return a->in;
    memcpy(a->y, a->in, sizeof(float) * n); /* training context with dropout off */
    return a->y;
}

static void dropout_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    size_t n = (size_t)a->B * nn_out_size(l);
    if (!a->din) return;
    if (a->ctx->last_train && a->ctx->dropout && l->p > 0.0f)
        nn_dropout_backward(l, a->ctx->drop_mask[a->i], a->dout, a->din, n);
    else
        memcpy(a->din, a->dout, sizeof(float) * n);
}

/* Inference passes the input through. */
static int dropout_needs_output(const struct nn_layer *l, const struct nn_layer *next, int training)
{
    (void)next;
    return training && l->p != 0.0f;
}

static void dropout_buffers(const struct nn_layer *l, int B, int training, struct nn_buffers *b)
{
    if (training) b->mask = (size_t)B * nn_out_size(l);
}

const struct nn_layer_type nn_layer_dropout = {
    .name = "dropout", .min_words = 2, .max_words = 2, .takes_seq = 1,
    .parse = dropout_parse, .forward = dropout_forward, .backward = dropout_backward,
    .needs_output = dropout_needs_output, .buffers = dropout_buffers,
};
