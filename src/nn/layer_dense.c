/* Dense (fully connected): out[B][O] = in[B][I] . W^T + b, W stored [O][I] like torch.nn.Linear. */
#include "nn/nn_internal.h"

#include <cblas.h>

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
