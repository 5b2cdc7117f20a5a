/* Flatten: C x H x W (or T x F x 1) -> (C * H * W) x 1 x 1.  NCHW data is already stored as
 * one row per sample, so the forward returns its input and the backward copies the gradient. */
#include "nn/nn_internal.h"

#include <string.h>

static int flatten_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    (void)tok, (void)nt, (void)msg, (void)msgsize;
    l->out_c = (int)nn_in_size(l);
    l->out_h = l->out_w = 1;
    l->out_seq = 0;
    return 1;
}

/* The output is the input, seen as a vector. */
static const float *flatten_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    (void)l;
    return a->in;
}

static void flatten_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    if (a->din) memcpy(a->din, a->dout, sizeof(float) * (size_t)a->B * nn_out_size(l));
}

static int never(const struct nn_layer *l, const struct nn_layer *next, int training)
{
    (void)l, (void)next, (void)training;
    return 0;
}

const struct nn_layer_type nn_layer_flatten = {
    .name = "flatten", .min_words = 1, .max_words = 1, .takes_seq = 1,
    .parse = flatten_parse, .forward = flatten_forward, .backward = flatten_backward, .needs_output = never,
};
