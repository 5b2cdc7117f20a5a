/* Conv2D: im2col then one sgemm per sample, forward and backward side by side.  3x3 "same"
 * layers with 8 or more input channels take Winograd F(2x2, 3x3) instead (conv_winograd.c):
 * the forward, the input gradient and the weight gradient.  In inference contexts those of
 * them on planes of 16 or more 4x4 tiles take F(4x4, 3x3) (conv_winograd4.c, nn_conv_infer).
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
#include <stddef.h>
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

/* The output rows [lo, hi) whose input row oh*s - pad + ki lies inside [0, H) (the same
 * computation as for columns). */
#define valid_rows valid_range

/* Stride 1 and an output as wide as the input ("same" padding): a kernel tap's column row is
 * the input plane shifted by a constant, so it is one contiguous copy from the first valid
 * element to the last; the few entries in between that belong to the padding (the wrapped ends
 * of rows) and the invalid rows are then zeroed.  About 10x fewer, longer copies than row by row. */
static int conv_is_flat(const struct nn_layer *l) { return l->stride == 1 && l->out_w == l->in_w; }

static void im2col_flat_tap(const struct nn_layer *l, const float *plane, float *row, int ki, int kj)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h;
    int lo, hi, rlo, rhi;
    valid_range(l->pad_l, kj, 1, W, W, &lo, &hi);
    valid_rows(l->pad_t, ki, 1, H, Ho, &rlo, &rhi);
    if (rlo >= rhi || lo >= hi) {
        memset(row, 0, sizeof(float) * (size_t)Ho * W);
        return;
    }
    const size_t first = (size_t)rlo * W + lo, last = (size_t)(rhi - 1) * W + hi; /* [first, last) */
    const ptrdiff_t shift = (ptrdiff_t)(ki - l->pad_t) * W + (kj - l->pad_l);
    memset(row, 0, sizeof(float) * first);
    memcpy(row + first, plane + (ptrdiff_t)first + shift, sizeof(float) * (last - first));
    memset(row + last, 0, sizeof(float) * ((size_t)Ho * W - last));
    for (int oh = rlo; oh < rhi; oh++) {
        float *r = row + (size_t)oh * W;
        for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
        for (int ow = hi; ow < W; ow++) r[ow] = 0.0f;
    }
}

static void im2col(const struct nn_layer *l, const float *in, float *col)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h, Wo = l->out_w, k = l->k, s = l->stride;
    for (int c = 0; c < l->in_c; c++) {
        const float *plane = in + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * Ho * Wo;
                if (conv_is_flat(l)) {
                    im2col_flat_tap(l, plane, row, ki, kj);
                    continue;
                }
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

/* col2im of one tap for flat layers: the padding entries of the tap's rows are cleared in the
 * scratch column buffer, so that the whole valid span adds into the plane in one pass. */
static void col2im_flat_tap(const struct nn_layer *l, float *row, float *plane, int ki, int kj)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h;
    int lo, hi, rlo, rhi;
    valid_range(l->pad_l, kj, 1, W, W, &lo, &hi);
    valid_rows(l->pad_t, ki, 1, H, Ho, &rlo, &rhi);
    if (rlo >= rhi || lo >= hi) return;
    for (int oh = rlo; oh < rhi; oh++) {
        float *r = row + (size_t)oh * W;
        for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
        for (int ow = hi; ow < W; ow++) r[ow] = 0.0f;
    }
    const size_t first = (size_t)rlo * W + lo, last = (size_t)(rhi - 1) * W + hi;
    const ptrdiff_t shift = (ptrdiff_t)(ki - l->pad_t) * W + (kj - l->pad_l);
    nn_vec_add(plane + (ptrdiff_t)first + shift, row + first, last - first);
}

/* The adjoint of im2col: adds every column entry back to the input pixel it came from.
 * col is scratch: the flat path clears its padding entries. */
static void col2im(const struct nn_layer *l, float *col, float *in)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h, Wo = l->out_w, k = l->k, s = l->stride;
    memset(in, 0, sizeof(float) * nn_in_size(l));
    for (int c = 0; c < l->in_c; c++) {
        float *plane = in + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * Ho * Wo;
                if (conv_is_flat(l)) {
                    col2im_flat_tap(l, row, plane, ki, kj);
                    continue;
                }
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

/* One sample's output rows [m0, m1): y = W . im2col(x), then the epilogue. */
static void conv_forward_rows(const struct nn_layer *l, const float *w, const float *cols, float *y, int m0, int m1,
                              const float *scale, const float *shift, int relu)
{
    const int N = l->out_h * l->out_w, K = l->in_c * l->k * l->k;
    if (m1 <= m0) return;
    float *rows = y + (size_t)m0 * N;
    if (!scale && !relu) { /* a plain bias: start from it (no zeroing pass, no epilogue pass) */
        for (int m = m0; m < m1; m++) nn_vec_fill(y + (size_t)m * N, shift[m], (size_t)N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m1 - m0, N, K, 1.0f, w + (size_t)m0 * K, K, cols, N,
                    1.0f, rows, N);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m1 - m0, N, K, 1.0f, w + (size_t)m0 * K, K, cols, N, 0.0f,
                rows, N);
    conv_epilogue(rows, m1 - m0, N, scale ? scale + m0 : NULL, shift + m0, relu);
}

struct conv_task {
    const struct nn_layer *l;
    const float *w, *in, *dout, *scale, *shift, *cols;
    float *out, *dw, *db, *din;
    int B, relu, sample;
    const struct nn_work *work;
};

/* One item per sample, with the column buffer of the worker that runs it. */
static void conv_forward_sample(void *arg, size_t n, int worker)
{
    const struct conv_task *t = arg;
    const struct nn_layer *l = t->l;
    const float *x = t->in + n * nn_in_size(l), *cols = x;
    if (!conv_is_pointwise(l)) {
        im2col(l, x, t->work->col[worker]);
        cols = t->work->col[worker];
    }
    conv_forward_rows(l, t->w, cols, t->out + n * nn_out_size(l), 0, l->out_c, t->scale, t->shift, t->relu);
}

/* Fewer samples than workers (inference of one clip): items are shares of the output channels. */
static void conv_forward_channels(void *arg, size_t part, int worker)
{
    (void)worker;
    const struct conv_task *t = arg;
    size_t lo, hi;
    nn_share((size_t)t->l->out_c, part, (size_t)t->work->workers, &lo, &hi);
    conv_forward_rows(t->l, t->w, t->cols, t->out + (size_t)t->sample * nn_out_size(t->l), (int)lo, (int)hi,
                      t->scale, t->shift, t->relu);
}

void nn_conv_forward(const struct nn_layer *l, const float *w, const float *wg_ready, const float *in, float *out,
                     int B, const struct nn_work *work, const float *scale, const float *shift, int relu)
{
    struct conv_task t = {.l = l, .w = w, .in = in, .out = out, .B = B, .work = work, .scale = scale,
                          .shift = shift, .relu = relu};
    if (nn_winograd_fits(l)) {
        nn_conv_forward_winograd(l, w, wg_ready, in, out, B, work, scale, shift, relu);
        return;
    }
    if (B >= work->workers) {
        nn_pool_for(work->pool, (size_t)B, conv_forward_sample, &t);
        return;
    }
    for (t.sample = 0; t.sample < B; t.sample++) {
        const float *x = in + (size_t)t.sample * nn_in_size(l);
        t.cols = x;
        if (!conv_is_pointwise(l)) {
            im2col(l, x, work->col[0]);
            t.cols = work->col[0];
        }
        nn_pool_for(work->pool, (size_t)work->workers, conv_forward_channels, &t);
    }
}

/* dW += sum over samples [lo, hi) of dout . im2col(in)^T. */
static void conv_weight_grad_im2col(const struct nn_layer *l, const float *in, const float *dout, size_t lo, size_t hi,
                                    float *dw, float *col)
{
    const int M = l->out_c, N = l->out_h * l->out_w, K = l->in_c * l->k * l->k;
    for (size_t n = lo; n < hi; n++) {
        const float *cols = in + n * nn_in_size(l);
        if (!conv_is_pointwise(l)) {
            im2col(l, cols, col);
            cols = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, dout + n * nn_out_size(l), N, cols, N,
                    1.0f, dw, K);
    }
}

/* One item per chunk of samples (work->chunks of them); chunk 0 adds to dw and db, the others
 * to their own gradient buffer, which nn_conv_backward sums into dw and db in chunk order: the
 * result does not depend on which worker ran which chunk. */
static void conv_backward_chunk(void *arg, size_t chunk, int worker)
{
    const struct conv_task *t = arg;
    const struct nn_layer *l = t->l;
    const int M = l->out_c, N = l->out_h * l->out_w, K = l->in_c * l->k * l->k;
    const size_t in_size = nn_in_size(l), out_size = nn_out_size(l);
    float *dw = t->dw, *db = t->db, *col = t->work->col[worker], *dcol = t->work->dcol[worker];
    if (chunk > 0) {
        dw = t->work->grad[chunk];
        db = dw + l->w_n;
        memset(dw, 0, sizeof(float) * (l->w_n + l->b_n));
    }
    size_t lo, hi;
    nn_share((size_t)t->B, chunk, (size_t)t->work->chunks, &lo, &hi);
    if (nn_winograd_fits(l)) nn_conv_weight_grad_winograd(l, t->in, t->dout, lo, hi, dw, col);
    else conv_weight_grad_im2col(l, t->in, t->dout, lo, hi, dw, col);
    for (size_t n = lo; n < hi; n++) {
        const float *dy = t->dout + n * out_size;
        for (int m = 0; m < M; m++) db[m] += (float)nn_vec_sum(dy + (size_t)m * N, (size_t)N);
        if (!t->din) continue; /* none asked, or made by conv_backward_input_winograd */
        float *dx = t->din + n * in_size;
        if (conv_is_pointwise(l)) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, t->w, K, dy, N, 0.0f, dx, N);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, t->w, K, dy, N, 0.0f, dcol, N);
            col2im(l, dcol, dx);
        }
    }
}

/* The input gradient of a 3x3 "same" convolution is itself one: of dout (out_c channels) with
 * each kernel turned half a turn and input and output channels swapped, wt[c][m] = w[m][c]
 * rotated, same padding.  So it takes the Winograd forward; wt is kept in worker 0's dcol. */
static struct nn_layer conv_transposed(const struct nn_layer *l)
{
    struct nn_layer lt = *l;
    lt.in_c = l->out_c;
    lt.out_c = l->in_c;
    return lt;
}

static int conv_backward_input_winograd(const struct nn_layer *l, const float *w, const float *dout, float *din,
                                        int B, const struct nn_work *work)
{
    const struct nn_layer lt = conv_transposed(l);
    if (!din || !nn_winograd_fits(l) || !nn_winograd_fits(&lt)) return 0;
    assert(l->w_n <= work->col_size && nn_winograd_scratch(&lt) <= work->col_size); /* conv_buffers */
    float *wt = work->dcol[0];
    const int M = l->out_c, C = l->in_c;
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < 9; k++) wt[((size_t)c * M + m) * 9 + (8 - k)] = w[((size_t)m * C + c) * 9 + k];
    nn_conv_forward_winograd(&lt, wt, NULL, dout, din, B, work, NULL, NULL, 0);
    return 1;
}

void nn_conv_backward(const struct nn_layer *l, const float *w, float *dw, float *db, const float *in,
                      const float *dout, float *din, int B, const struct nn_work *work)
{
    struct conv_task t = {.l = l, .w = w, .in = in, .dout = dout, .dw = dw, .db = db, .din = din, .B = B,
                          .work = work};
    if (conv_backward_input_winograd(l, w, dout, din, B, work)) t.din = NULL;
    nn_pool_for(work->pool, (size_t)work->chunks, conv_backward_chunk, &t);
    for (int i = 1; i < work->chunks; i++) {
        nn_vec_add(dw, work->grad[i], l->w_n);
        nn_vec_add(db, work->grad[i] + l->w_n, l->b_n);
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
    assert(nn_conv_col_size(l) <= a->ctx->work.col_size && a->y); /* im2col scratch and output sized by the context */
    nn_conv_forward(l, a->w, NULL, a->in, a->y, a->B, &a->ctx->work, NULL, a->b, 0);
    return a->y;
}

void nn_conv_infer(const struct nn_layer *l, const float *w, const float *wg_ready, const float *in, float *out,
                   int B, const struct nn_work *work, const float *scale, const float *shift, int relu)
{
    if (nn_winograd4_fits(l))
        nn_conv_forward_winograd4(l, w, wg_ready, in, out, B, work, scale, shift, relu);
    else
        nn_conv_forward(l, w, wg_ready, in, out, B, work, scale, shift, relu);
}

size_t nn_conv_prepared_size(const struct nn_layer *l)
{
    return nn_winograd4_fits(l) ? nn_winograd4_weights_size(l) : nn_winograd_fits(l) ? nn_winograd_weights_size(l) : 0;
}

size_t nn_conv_prepare_tmp(const struct nn_layer *l)
{
    return nn_winograd4_fits(l)  ? (size_t)NN_WINOGRAD4_POINTS * l->in_c
           : nn_winograd_fits(l) ? (size_t)NN_WINOGRAD_POINTS * l->in_c
                                 : 0;
}

void nn_conv_prepare_weights(const struct nn_layer *l, const float *w, float *U, float *tmp)
{
    assert(nn_conv_prepared_size(l) > 0);
    if (nn_winograd4_fits(l))
        nn_winograd4_transform_weights(l, w, U, tmp);
    else
        nn_winograd_transform_weights(l, w, U, tmp);
}

static void conv_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    assert(nn_conv_col_size(l) <= a->ctx->work.col_size && l->w_n + l->b_n <= a->ctx->work.grad_size);
    nn_conv_backward(l, a->w, a->dw, a->db, a->in, a->dout, a->din, a->B, &a->ctx->work);
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
    b->col = nn_conv_col_size(l);
    if (nn_winograd_fits(l)) { /* the forward, and in training the input gradient (its transpose) */
        const struct nn_layer lt = conv_transposed(l);
        if (nn_winograd_scratch(l) > b->col) b->col = nn_winograd_scratch(l);
        if (training && nn_winograd_scratch(&lt) > b->col) b->col = nn_winograd_scratch(&lt);
        if (training && l->w_n > b->col) b->col = l->w_n; /* the turned kernels, in dcol[0] */
    }
    if (!training && nn_winograd4_fits(l) && nn_winograd4_scratch(l) > b->col) b->col = nn_winograd4_scratch(l);
    b->grad = l->w_n + l->b_n; /* per chunk of samples after the first (struct nn_work) */
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
