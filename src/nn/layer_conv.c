/* Conv2D: im2col then one sgemm per sample, forward and backward side by side.
 *
 * Per sample, with K = in_c * k * k and N = out_h * out_w:
 *   col[K][N]  = im2col(in)                    (zeros where the window leaves the image)
 *   out[M][N]  = W[M][K] . col + bias          (M = out_c; see conv_epilogue)
 * Backward:
 *   dW[M][K]  += dout[M][N] . col^T,  db[m] += sum_n dout[m][n]
 *   dcol[K][N] = W^T . dout,  din = col2im(dcol)
 */
#include "nn/nn_internal.h"

#include <assert.h>
#include <cblas.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

size_t nn_conv_col_size(const struct nn_layer *l)
{
    return (size_t)l->in_c * l->k * l->k * l->out_h * l->out_w;
}

/* Whether the column matrix is the input itself (1x1 kernel, stride 1, no padding). */
static int conv_is_pointwise(const struct nn_layer *l)
{
    return l->k == 1 && l->stride == 1 && l->pad_t == 0 && l->pad_l == 0;
}

/* The output columns [ow_lo, ow_hi) whose input column ow*s - pad + kj lies inside [0, W). */
static void valid_range(int pad, int kj, int s, int in_w, int out_w, int *lo, int *hi)
{
    int a = pad - kj; /* need ow*s >= a */
    int first = a <= 0 ? 0 : (a + s - 1) / s;
    int b = in_w + pad - kj; /* need ow*s < b */
    int last = b <= 0 ? 0 : (b + s - 1) / s;
    if (first > out_w) first = out_w;
    if (last > out_w) last = out_w;
    if (last < first) last = first;
    *lo = first;
    *hi = last;
}

static void im2col(const struct nn_layer *l, const float *in, float *col)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h, Wo = l->out_w, k = l->k, s = l->stride;
    for (int c = 0; c < l->in_c; c++) {
        const float *plane = in + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * Ho * Wo;
                int lo, hi;
                valid_range(l->pad_l, kj, s, W, Wo, &lo, &hi);
                for (int oh = 0; oh < Ho; oh++) {
                    float *dst = row + (size_t)oh * Wo;
                    int ih = oh * s - l->pad_t + ki;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, sizeof(float) * (size_t)Wo);
                        continue;
                    }
                    const float *src = plane + (size_t)ih * W - l->pad_l + kj;
                    for (int ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    if (s == 1) memcpy(dst + lo, src + lo, sizeof(float) * (size_t)(hi - lo));
                    else
                        for (int ow = lo; ow < hi; ow++) dst[ow] = src[ow * s];
                    for (int ow = hi; ow < Wo; ow++) dst[ow] = 0.0f;
                }
            }
        }
    }
}

/* The adjoint of im2col: adds every column entry back to the input pixel it came from. */
static void col2im(const struct nn_layer *l, const float *col, float *in)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h, Wo = l->out_w, k = l->k, s = l->stride;
    memset(in, 0, sizeof(float) * nn_in_size(l));
    for (int c = 0; c < l->in_c; c++) {
        float *plane = in + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                const float *row = col + ((size_t)(c * k + ki) * k + kj) * Ho * Wo;
                int lo, hi;
                valid_range(l->pad_l, kj, s, W, Wo, &lo, &hi);
                for (int oh = 0; oh < Ho; oh++) {
                    int ih = oh * s - l->pad_t + ki;
                    if (ih < 0 || ih >= H) continue;
                    const float *src = row + (size_t)oh * Wo;
                    float *dst = plane + (size_t)ih * W - l->pad_l + kj;
                    if (s == 1) nn_vec_add(dst + lo, src + lo, (size_t)(hi - lo));
                    else
                        for (int ow = lo; ow < hi; ow++) dst[ow * s] += src[ow];
                }
            }
        }
    }
}

/* The per-channel epilogue, one pass over the product: scale and shift (bias, or bias and a
 * folded batch norm), and the ReLU.  SSE does four at a time (the compiler's -O2 would not). */
static void conv_epilogue(float *y, int M, int N, const float *scale, const float *shift, int relu)
{
    for (int m = 0; m < M; m++) {
        float *row = y + (size_t)m * N;
        const float s = scale ? scale[m] : 1.0f, t = shift[m];
        int j = 0;
#if defined(__SSE2__)
        const __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), zero = _mm_setzero_ps();
        for (; j + 4 <= N; j += 4) {
            __m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(row + j), vs), vt);
            _mm_storeu_ps(row + j, relu ? _mm_max_ps(v, zero) : v);
        }
#endif
        for (; j < N; j++) row[j] = relu ? nn_relu_value(row[j] * s + t) : row[j] * s + t;
    }
}

void nn_conv_forward(const struct nn_layer *l, const float *w, const float *in, float *out, int B, float *col,
                     const float *scale, const float *shift, int relu)
{
    const int M = l->out_c, N = l->out_h * l->out_w, K = l->in_c * l->k * l->k;
    const size_t in_size = nn_in_size(l), out_size = nn_out_size(l);
    for (int n = 0; n < B; n++) {
        const float *x = in + n * in_size;
        float *y = out + n * out_size;
        const float *cols = x;
        if (!conv_is_pointwise(l)) {
            im2col(l, x, col);
            cols = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, w, K, cols, N, 0.0f, y, N);
        conv_epilogue(y, M, N, scale, shift, relu);
    }
}

void nn_conv_backward(const struct nn_layer *l, const float *w, float *dw, float *db, const float *in,
                      const float *dout, float *din, int B, float *col, float *dcol)
{
    const int M = l->out_c, N = l->out_h * l->out_w, K = l->in_c * l->k * l->k;
    const size_t in_size = nn_in_size(l), out_size = nn_out_size(l);
    for (int n = 0; n < B; n++) {
        const float *x = in + n * in_size;
        const float *dy = dout + n * out_size;
        const float *cols = x;
        if (!conv_is_pointwise(l)) {
            im2col(l, x, col);
            cols = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, dy, N, cols, N, 1.0f, dw, K);
        for (int m = 0; m < M; m++) db[m] += (float)nn_vec_sum(dy + (size_t)m * N, (size_t)N);
        if (!din) continue;
        float *dx = din + n * in_size;
        if (conv_is_pointwise(l)) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, w, K, dy, N, 0.0f, dx, N);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, w, K, dy, N, 0.0f, dcol, N);
            col2im(l, dcol, dx);
        }
    }
}

/* --- the conv row of the layer table: conv FILTERS KERNEL [same|valid] [stride S] --- */

static int conv_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    int same = 1, f, k;
    l->stride = 1;
    if (nt < 3 || !nn_parse_int(tok[1], 1, AVEMO_NN_MAX_DIM, &f) ||
        !nn_parse_int(tok[2], 1, AVEMO_NN_MAX_KERNEL, &k)) {
        snprintf(msg, msgsize, "expected 'conv FILTERS KERNEL [same|valid] [stride S]' with FILTERS in 1..%d and "
                 "KERNEL in 1..%d", AVEMO_NN_MAX_DIM, AVEMO_NN_MAX_KERNEL);
        return 0;
    }
    for (int i = 3; i < nt; i++) {
        if (strcmp(tok[i], "same") == 0) same = 1;
        else if (strcmp(tok[i], "valid") == 0) same = 0;
        else if (strcmp(tok[i], "stride") == 0 && i + 1 < nt && nn_parse_int(tok[i + 1], 1, 8, &l->stride)) i++;
        else {
            snprintf(msg, msgsize, "unexpected '%s' (same, valid or stride 1..8)", tok[i]);
            return 0;
        }
    }
    l->k = k;
    l->out_c = f;
    int s = l->stride;
    if (same) {
        /* TensorFlow's 'same' (PyTorch's for stride 1): out = ceil(in / s), the extra pixel
         * of an odd total padding goes to the bottom / right. */
        l->out_h = (l->in_h + s - 1) / s;
        l->out_w = (l->in_w + s - 1) / s;
        int th = (l->out_h - 1) * s + k - l->in_h, tw = (l->out_w - 1) * s + k - l->in_w;
        l->pad_t = th > 0 ? th / 2 : 0;
        l->pad_l = tw > 0 ? tw / 2 : 0;
    } else {
        if (l->in_h < k || l->in_w < k) {
            snprintf(msg, msgsize, "input %dx%d is smaller than the kernel %d", l->in_h, l->in_w, k);
            return 0;
        }
        l->out_h = (l->in_h - k) / s + 1;
        l->out_w = (l->in_w - k) / s + 1;
    }
    l->w_n = (size_t)f * l->in_c * k * k;
    l->b_n = (size_t)f;
    return 1;
}

static const float *conv_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    assert(nn_conv_col_size(l) <= a->ctx->col_size && a->y); /* im2col scratch and output sized by the context */
    nn_conv_forward(l, a->w, a->in, a->y, a->B, a->ctx->col, NULL, a->b, 0);
    return a->y;
}

static void conv_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    assert(nn_conv_col_size(l) <= a->ctx->col_size);
    nn_conv_backward(l, a->w, a->dw, a->db, a->in, a->dout, a->din, a->B, a->ctx->col, a->ctx->dcol);
}

/* Inference contexts run conv, bn, relu as one pass that writes the last layer's buffer. */
static int conv_needs_output(const struct nn_layer *l, const struct nn_layer *next, int training)
{
    (void)l;
    return training || !next || (next->op != NN_BN && next->op != NN_RELU);
}

static void conv_buffers(const struct nn_layer *l, int B, int training, struct nn_buffers *b)
{
    (void)B;
    (void)training;
    b->col = nn_conv_col_size(l);
}

static void conv_fans(const struct nn_layer *l, double *fan_in, double *fan_out)
{
    *fan_in = (double)l->in_c * l->k * l->k;
    *fan_out = (double)l->out_c * l->k * l->k;
}

const struct nn_layer_type nn_layer_conv = {
    .name = "conv", .min_words = 1, .max_words = 8, .takes_seq = 0, .has_params = 1,
    .parse = conv_parse, .forward = conv_forward, .backward = conv_backward,
    .needs_output = conv_needs_output, .buffers = conv_buffers, .fans = conv_fans,
};
