/* Max pooling: C x H x W -> C x (H / k) x (W / k), k x k windows with stride k (PyTorch's
 * MaxPool2d(k), floor mode: a rim that fills no window is dropped).  Item: maxpool [K], K in 2..8,
 * default 2. */
#include "nn/nn_internal.h"

#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Inference 2 x 2 pooling of one plane: no index to keep, so SSE's max needs no branch. */
void nn_maxpool2_plane(const float *x, int W, float *y, int Ho, int Wo)
{
    for (int oh = 0; oh < Ho; oh++) {
        const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
        float *dst = y + (size_t)oh * Wo;
        int ow = 0;
#if defined(__SSE2__)
        for (; ow + 4 <= Wo; ow += 4) { /* 8 columns of two rows -> 4 outputs */
            __m128 a = _mm_max_ps(_mm_loadu_ps(r0 + 2 * ow), _mm_loadu_ps(r1 + 2 * ow));
            __m128 b = _mm_max_ps(_mm_loadu_ps(r0 + 2 * ow + 4), _mm_loadu_ps(r1 + 2 * ow + 4));
            __m128 even = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            __m128 odd = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            _mm_storeu_ps(dst + ow, _mm_max_ps(even, odd));
        }
#endif
        for (; ow < Wo; ow++) {
            float m0 = r0[2 * ow] > r0[2 * ow + 1] ? r0[2 * ow] : r0[2 * ow + 1];
            float m1 = r1[2 * ow] > r1[2 * ow + 1] ? r1[2 * ow] : r1[2 * ow + 1];
            dst[ow] = m0 > m1 ? m0 : m1;
        }
    }
}

/* k x k windows with stride k (PyTorch's MaxPool2d(k), floor mode).  For k = 2 nothing is
 * kept: the backward finds the winner again by comparing with the output.  Other sizes keep,
 * per output, the index of the winning input inside the sample in idx (training contexts). */
struct pool_task {
    const struct nn_layer *l;
    const float *in, *out, *dout;
    float *y, *din;
};

/* One item per sample: its planes. */
static void maxpool2_forward_sample(void *arg, size_t n, int worker)
{
    (void)worker;
    const struct pool_task *t = arg;
    const struct nn_layer *l = t->l;
    const size_t hw = (size_t)l->in_h * l->in_w, ohw = (size_t)l->out_h * l->out_w;
    for (size_t p = n * l->in_c; p < (n + 1) * l->in_c; p++) nn_maxpool2_plane(t->in + p * hw, l->in_w, t->y + p * ohw, l->out_h, l->out_w);
}

void nn_maxpool_forward(const struct nn_layer *l, const float *in, float *out, int32_t *idx, int B,
                        struct nn_pool *pool)
{
    const int H = l->in_h, W = l->in_w, Ho = l->out_h, Wo = l->out_w, k = l->k;
    const size_t in_size = nn_in_size(l), out_size = nn_out_size(l);
    if (k == 2) {
        struct pool_task t = {.l = l, .in = in, .y = out};
        nn_pool_for(pool, (size_t)B, maxpool2_forward_sample, &t);
        return;
    }
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
                            if (x[at] > v) { /* the first maximum wins, as in PyTorch */
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

/* 2 x 2 backward of one plane: the gradient goes to the first of the four inputs that equals
 * the output (the forward's winner), computed with 0/1 factors since the winner's position is
 * random and a branch would mispredict. */
void nn_maxpool2_backward_plane(const float *x, const float *y, const float *dy, float *dx, int H, int W, int Ho,
                                int Wo)
{
    if (H != 2 * Ho || W != 2 * Wo) memset(dx, 0, sizeof(float) * (size_t)H * W); /* floor mode leaves a rim */
    for (int oh = 0; oh < Ho; oh++) {
        const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
        float *d0 = dx + (size_t)(2 * oh) * W, *d1 = d0 + W;
        int ow = 0;
#if defined(__SSE2__)
        for (; ow + 4 <= Wo; ow += 4) { /* 4 windows: the same masks, four at a time */
            const __m128 m = _mm_loadu_ps(y + oh * Wo + ow), g = _mm_loadu_ps(dy + oh * Wo + ow);
            const __m128 a0 = _mm_loadu_ps(r0 + 2 * ow), a1 = _mm_loadu_ps(r0 + 2 * ow + 4);
            const __m128 b0 = _mm_loadu_ps(r1 + 2 * ow), b1 = _mm_loadu_ps(r1 + 2 * ow + 4);
            const __m128 ta = _mm_cmpeq_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), m);
            const __m128 tb = _mm_andnot_ps(ta, _mm_cmpeq_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), m));
            const __m128 ab = _mm_or_ps(ta, tb);
            const __m128 tc = _mm_andnot_ps(ab, _mm_cmpeq_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), m));
            const __m128 td = _mm_andnot_ps(_mm_or_ps(ab, tc), _mm_castsi128_ps(_mm_set1_epi32(-1)));
            const __m128 ga = _mm_and_ps(ta, g), gb = _mm_and_ps(tb, g), gc = _mm_and_ps(tc, g), gd = _mm_and_ps(td, g);
            _mm_storeu_ps(d0 + 2 * ow, _mm_unpacklo_ps(ga, gb));
            _mm_storeu_ps(d0 + 2 * ow + 4, _mm_unpackhi_ps(ga, gb));
            _mm_storeu_ps(d1 + 2 * ow, _mm_unpacklo_ps(gc, gd));
            _mm_storeu_ps(d1 + 2 * ow + 4, _mm_unpackhi_ps(gc, gd));
        }
#endif
        for (; ow < Wo; ow++) {
            const float m = y[oh * Wo + ow], g = dy[oh * Wo + ow];
            const int a = r0[2 * ow] == m;
            const int b = !a & (r0[2 * ow + 1] == m);
            const int c = !(a | b) & (r1[2 * ow] == m);
            const int d = !(a | b | c);
            d0[2 * ow] = g * (float)a;
            d0[2 * ow + 1] = g * (float)b;
            d1[2 * ow] = g * (float)c;
            d1[2 * ow + 1] = g * (float)d;
        }
    }
}

static void maxpool2_backward_sample(void *arg, size_t n, int worker)
{
    (void)worker;
    const struct pool_task *t = arg;
    const struct nn_layer *l = t->l;
    const size_t hw = (size_t)l->in_h * l->in_w, ohw = (size_t)l->out_h * l->out_w;
    for (size_t p = n * l->in_c; p < (n + 1) * l->in_c; p++)
        nn_maxpool2_backward_plane(t->in + p * hw, t->out + p * ohw, t->dout + p * ohw, t->din + p * hw, l->in_h,
                                l->in_w, l->out_h, l->out_w);
}

void nn_maxpool_backward(const struct nn_layer *l, const float *in, const float *out, const int32_t *idx,
                         const float *dout, float *din, int B, struct nn_pool *pool)
{
    const size_t in_size = nn_in_size(l), out_size = nn_out_size(l);
    if (l->k == 2) {
        struct pool_task t = {.l = l, .in = in, .out = out, .dout = dout, .din = din};
        nn_pool_for(pool, (size_t)B, maxpool2_backward_sample, &t);
        return;
    }
    memset(din, 0, sizeof(float) * in_size * (size_t)B);
    for (int n = 0; n < B; n++) {
        float *dx = din + n * in_size;
        const float *dy = dout + n * out_size;
        const int32_t *ix = idx + n * out_size;
        for (size_t i = 0; i < out_size; i++) dx[ix[i]] += dy[i];
    }
}

/* --- the row: maxpool [K] --- */

static int maxpool_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    l->k = 2;
    if (nt == 2 && !nn_parse_int(tok[1], 2, 8, &l->k)) {
        snprintf(msg, msgsize, "pool size '%s' not in 2..8", tok[1]);
        return 0;
    }
    if (l->in_h < l->k || l->in_w < l->k) {
        snprintf(msg, msgsize, "input %dx%d is smaller than the pool %d", l->in_h, l->in_w, l->k);
        return 0;
    }
    l->stride = l->k;
    l->out_h = l->in_h / l->k;
    l->out_w = l->in_w / l->k;
    return 1;
}

static const float *maxpool_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    nn_maxpool_forward(l, a->in, a->y, a->ctx->pool_idx[a->i], a->B, a->ctx->work.pool);
    return a->y;
}

static void maxpool_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    if (a->din) nn_maxpool_backward(l, a->in, a->ctx->out[a->i], a->ctx->pool_idx[a->i], a->dout, a->din, a->B,
                                   a->ctx->work.pool);
}

/* 2x2 pooling finds the arg-max again in its backward; other sizes keep it. */
static void maxpool_buffers(const struct nn_layer *l, int B, int training, struct nn_buffers *b)
{
    if (training && l->k != 2) b->idx = (size_t)B * nn_out_size(l);
}

const struct nn_layer_type nn_layer_maxpool = {
    .name = "maxpool", .min_words = 1, .max_words = 2, .takes_seq = 0,
    .parse = maxpool_parse, .forward = maxpool_forward, .backward = maxpool_backward, .buffers = maxpool_buffers,
};
