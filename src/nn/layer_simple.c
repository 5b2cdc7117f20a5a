/* The parameter-free layers: ReLU, max pooling, global average pooling, flatten, dropout, and the
 * concatenation of the branches. */
#include "nn/nn_internal.h"

#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void nn_relu_forward(const float *in, float *out, size_t n) { nn_vec_relu(in, out, n); }

/* Uses the output: out > 0 exactly where in > 0. */
void nn_relu_backward(const float *out, const float *dout, float *din, size_t n)
{
    nn_vec_relu_grad(out, dout, din, n);
}

/* Inference 2 x 2 pooling of one plane: no index to keep, so SSE's max needs no branch. */
static void maxpool2_plane(const float *x, int W, float *y, int Ho, int Wo)
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
    for (size_t p = n * l->in_c; p < (n + 1) * l->in_c; p++) maxpool2_plane(t->in + p * hw, l->in_w, t->y + p * ohw, l->out_h, l->out_w);
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
static void maxpool2_backward_plane(const float *x, const float *y, const float *dy, float *dx, int H, int W, int Ho,
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
        maxpool2_backward_plane(t->in + p * hw, t->out + p * ohw, t->dout + p * ohw, t->din + p * hw, l->in_h,
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

void nn_concat_forward(int count, const float *const *in, const size_t *sizes, unsigned repeat, float *out, int B)
{
    size_t total = 0;
    for (int i = 0; i < count; i++) total += sizes[i];
    for (int n = 0; n < B; n++) {
        float *row = out + n * total;
        for (int i = 0; i < count; i++) {
            size_t sample = repeat >> i & 1u ? 0 : (size_t)n; /* a repeated input has one sample */
            memcpy(row, in[i] + sample * sizes[i], sizeof(float) * sizes[i]);
            row += sizes[i];
        }
    }
}

/* --- rows of the layer table: relu, maxpool [K], gap, flatten, dropout P ------------ */

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
