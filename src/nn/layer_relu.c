/* ReLU: out = max(in, 0) elementwise, any shape (C x H x W, or T x F x 1 after seq); the
 * output has the input's shape.  The backward uses the output: the gradient passes where out > 0.
 * net.c applies a ReLU that follows a batch norm in the normalising pass (and conv + bn + relu as
 * one convolution in inference); this row runs the others. */
#include "nn/nn_internal.h"

void nn_relu_forward(const float *in, float *out, size_t n) { nn_vec_relu(in, out, n); }

/* Uses the output: out > 0 exactly where in > 0. */
void nn_relu_backward(const float *out, const float *dout, float *din, size_t n)
{
    nn_vec_relu_grad(out, dout, din, n);
}

/* --- the row: relu (no arguments) --- */

static int no_args(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    (void)l, (void)tok, (void)nt, (void)msg, (void)msgsize;
    return 1;
}

static const float *relu_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    nn_relu_forward(a->in, a->y, (size_t)a->B * nn_out_size(l));
    return a->y;
}

static void relu_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    if (a->din) nn_relu_backward(a->ctx->out[a->i], a->dout, a->din, (size_t)a->B * nn_out_size(l));
}

const struct nn_layer_type nn_layer_relu = {
    .name = "relu", .min_words = 1, .max_words = 1, .takes_seq = 1,
    .parse = no_args, .forward = relu_forward, .backward = relu_backward,
};
