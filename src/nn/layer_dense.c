/* Dense (fully connected): out[B][O] = in[B][I] . W^T + b, W stored [O][I] like torch.nn.Linear. */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <stdio.h>

void nn_dense_forward(const struct nn_layer *l, const float *w, const float *b, const float *in, float *out,
                      int B)
{
    const int nin = (int)nn_in_size(l), nout = l->out_c;
    for (int n = 0; n < B; n++)
        for (int o = 0; o < nout; o++) out[(size_t)n * nout + o] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, nout, nin, 1.0f, in, nin, w, nin, 1.0f, out, nout);
}

/* dW[O][I] += dout^T . in,  db += column sums of dout,  din[B][I] = dout . W */
void nn_dense_backward(const struct nn_layer *l, const float *w, float *dw, float *db, const float *in,
                       const float *dout, float *din, int B)
{
    const int nin = (int)nn_in_size(l), nout = l->out_c;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, nin, B, 1.0f, dout, nout, in, nin, 1.0f, dw, nin);
    for (int n = 0; n < B; n++)
        for (int o = 0; o < nout; o++) db[o] += dout[(size_t)n * nout + o];
    if (din) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, nin, nout, 1.0f, dout, nout, w, nin, 0.0f, din, nin);
}

/* --- the dense row of the layer table: dense UNITS ---------------------------------- */

static int dense_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    (void)nt;
    if (!nn_parse_int(tok[1], 1, AVEMO_NN_MAX_DIM, &l->out_c)) {
        snprintf(msg, msgsize, "units '%s' not in 1..%d", tok[1], AVEMO_NN_MAX_DIM);
        return 0;
    }
    l->out_h = l->out_w = 1;
    l->out_seq = 0;
    l->w_n = (size_t)l->out_c * nn_in_size(l);
    l->b_n = (size_t)l->out_c;
    return 1;
}

static const float *dense_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    nn_dense_forward(l, a->w, a->b, a->in, a->y, a->B);
    return a->y;
}

static void dense_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    nn_dense_backward(l, a->w, a->dw, a->db, a->in, a->dout, a->din, a->B);
}

static void dense_fans(const struct nn_layer *l, double *fan_in, double *fan_out)
{
    *fan_in = (double)nn_in_size(l);
    *fan_out = (double)l->out_c;
}

const struct nn_layer_type nn_layer_dense = {
    .name = "dense", .min_words = 2, .max_words = 2, .takes_seq = 1, .has_params = 1,
    .parse = dense_parse, .forward = dense_forward, .backward = dense_backward, .fans = dense_fans,
};
