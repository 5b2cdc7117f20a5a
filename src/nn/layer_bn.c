/* Batch normalisation over the channels of NCHW data (BatchNorm2d), or over the features of
 * [N][F] data (BatchNorm1d: H = W = 1).  Training uses the batch statistics and updates the
 * running averages as PyTorch does (momentum 0.1 unless the context sets another, unbiased
 * running variance); inference uses
 * the running statistics.  running = mean[C] then var[C].  A ReLU that follows is applied in the
 * normalising pass (one pass over memory less; its backward only needs its own output), and in
 * training a 2x2 max pool after that ReLU too, plane by plane (struct nn_bn_pool). */
#include "nn/nn_internal.h"

#include <assert.h>
#include <math.h>
#include <string.h>

struct bn_task {
    const struct nn_layer *l;
    const float *gamma, *beta, *in, *dout, *relu_out, *mean_in, *rstd_in;
    const struct nn_bn_pool *bn_pool;
    const struct nn_layer *pool_l;
    float *pool_y;
    float *const *scratch;
    float *running, *out, *mean, *rstd, *dgamma, *dbeta, *din;
    float momentum;
    int B, relu, train;
};

/* One item per channel: each channel's statistics are those of the whole batch, computed
 * as with one worker (same order, same result). */
static void bn_forward_channel(void *arg, size_t c, int worker)
{
    const struct bn_task *t = arg;
    const int C = t->l->in_c, B = t->B;
    const size_t hw = (size_t)t->l->in_h * t->l->in_w, chw = (size_t)C * hw;
    const double count = (double)B * (double)hw;
    const float *in = t->in + c * hw;
    double sum = 0.0, sq = 0.0;
    for (int n = 0; n < B; n++) sum += nn_vec_sum(in + n * chw, hw);
    const float m = (float)(sum / count);
    for (int n = 0; n < B; n++) sq += nn_vec_sum_sq_dev(in + n * chw, hw, m);
    const double var = sq / count;
    const float r = (float)(1.0 / sqrt(var + NN_BN_EPS));
    t->mean[c] = m;
    t->rstd[c] = r;
    const float scale = t->gamma[c] * r, shift = t->beta[c] - m * scale;
    for (int n = 0; n < B; n++) {
        const struct nn_layer *p = t->pool_l;
        float *y = p ? t->scratch[worker] : t->out + n * chw + c * hw;
        nn_vec_scale_shift(in + n * chw, y, hw, scale, shift, t->relu);
        if (p) nn_maxpool2_plane(y, p->in_w, t->pool_y + ((size_t)n * C + c) * p->out_h * p->out_w, p->out_h, p->out_w);
    }
    if (t->running) {
        const double unbiased = count > 1 ? var * count / (count - 1) : var;
        float *running = t->running;
        const float mom = t->momentum;
        running[c] = (1.0f - mom) * running[c] + mom * m;
        running[C + c] = (1.0f - mom) * running[C + c] + mom * (float)unbiased;
    }
}

void nn_bn_forward_train(const struct nn_layer *l, const float *gamma, const float *beta, float *running,
                         float momentum, const float *in, float *out, int B, float *mean, float *rstd, int relu,
                         const struct nn_layer *pool_l, float *pool_y, float *const *scratch, struct nn_pool *pool)
{
    assert(pool_l ? relu && pool_y && scratch && !out && pool_l->k == 2 && pool_l->in_c == l->in_c &&
                        pool_l->in_h == l->in_h && pool_l->in_w == l->in_w
                  : out != NULL);
    struct bn_task t = {.l = l, .gamma = gamma, .beta = beta, .running = running, .momentum = momentum, .in = in,
                        .out = out, .B = B, .mean = mean, .rstd = rstd, .relu = relu, .pool_l = pool_l,
                        .pool_y = pool_y, .scratch = scratch};
    nn_pool_for(pool, (size_t)l->in_c, bn_forward_channel, &t);
}

void nn_bn_forward_eval(const struct nn_layer *l, const float *gamma, const float *beta, const float *running,
                        const float *in, float *out, int B, int relu)
{
    const int C = l->in_c;
    const size_t hw = (size_t)l->in_h * l->in_w, chw = (size_t)C * hw;
    for (int c = 0; c < C; c++) {
        const float r = 1.0f / sqrtf(running[C + c] + NN_BN_EPS);
        const float scale = gamma[c] * r, shift = beta[c] - running[c] * scale;
        for (int n = 0; n < B; n++) nn_vec_scale_shift(in + n * chw + c * hw, out + n * chw + c * hw, hw, scale, shift, relu);
    }
}

/* Plane (n, c) of the ReLU's output (NULL without a ReLU): kept by the forward, or made again in
 * the worker's scratch from the input with the forward's scale and shift (the same operations on
 * the same numbers, so the same values). */
static const float *bn_plane_relu(const struct bn_task *t, int n, size_t c, int worker)
{
    const size_t hw = (size_t)t->l->in_h * t->l->in_w, at = ((size_t)n * t->l->in_c + c) * hw;
    if (!t->relu) return NULL;
    if (t->relu_out) return t->relu_out + at;
    float *y = t->bn_pool->scratch[worker] + hw;
    const float r = t->rstd_in[c], scale = t->gamma[c] * r, shift = t->beta[c] - t->mean_in[c] * scale;
    nn_vec_scale_shift(t->in + at, y, hw, scale, shift, 1);
    return y;
}

/* The gradient reaching plane (n, c) of the ReLU's output: dout's, or the following pool's
 * backward of that plane (relu its input plane), made in the worker's scratch (the same values
 * its own pass would write). */
static const float *bn_plane_dout(const struct bn_task *t, const float *relu, int n, size_t c, int worker)
{
    const size_t hw = (size_t)t->l->in_h * t->l->in_w, at = ((size_t)n * t->l->in_c + c) * hw;
    if (!t->bn_pool) return t->dout + at;
    const struct nn_layer *p = t->bn_pool->l;
    const size_t pat = ((size_t)n * p->in_c + c) * p->out_h * p->out_w;
    float *dy = t->bn_pool->scratch[worker];
    nn_maxpool2_backward_plane(relu, t->bn_pool->out + pat, t->dout + pat, dy, p->in_h, p->in_w, p->out_h, p->out_w);
    if (t->bn_pool->keep) memcpy(t->bn_pool->keep + at, dy, sizeof(float) * hw);
    return dy;
}

/* mean/rstd: the statistics the forward normalised with (batch ones in training, running ones
 * in inference).  With xhat = (x - mean) * rstd:
 *   dgamma = sum dy xhat,  dbeta = sum dy,
 *   dx = gamma rstd (dy - dbeta / count - xhat dgamma / count)   in training, where the batch
 *        statistics depend on x too; with fixed statistics simply dx = gamma rstd dy. */
static void bn_backward_channel(void *arg, size_t c, int worker)
{
    const struct bn_task *t = arg;
    const int C = t->l->in_c, B = t->B;
    const size_t hw = (size_t)t->l->in_h * t->l->in_w, chw = (size_t)C * hw;
    const float count = (float)B * (float)hw;
    const float m = t->mean_in[c], r = t->rstd_in[c];
    double sum_dy = 0.0, sum_dy_dev = 0.0;
    for (int n = 0; n < B; n++) {
        const size_t at = n * chw + c * hw;
        const float *relu = bn_plane_relu(t, n, c, worker);
        nn_vec_bn_sums(bn_plane_dout(t, relu, n, c, worker), relu, t->in + at, hw, m, &sum_dy, &sum_dy_dev);
    }
    const double sum_dy_xhat = sum_dy_dev * r;
    t->dgamma[c] += (float)sum_dy_xhat;
    t->dbeta[c] += (float)sum_dy;
    if (!t->din) return;
    const float g = t->gamma[c] * r;
    const float a = t->train ? (float)sum_dy / count : 0.0f;
    const float k = t->train ? r * (float)(sum_dy_xhat / count) : 0.0f;
    for (int n = 0; n < B; n++) {
        const size_t at = n * chw + c * hw;
        const float *relu = bn_plane_relu(t, n, c, worker);
        nn_vec_bn_dx(bn_plane_dout(t, relu, n, c, worker), relu, t->in + at, t->din + at, hw, g, a, m, k);
    }
}

void nn_bn_backward(const struct nn_layer *l, const float *gamma, const float *beta, float *dgamma, float *dbeta,
                    const float *in, const float *dout, int relu, const float *relu_out,
                    const struct nn_bn_pool *bn_pool, float *din, int B, const float *mean, const float *rstd,
                    int train, struct nn_pool *pool)
{
    assert(!bn_pool || (relu && bn_pool->l->k == 2 && bn_pool->l->in_c == l->in_c && bn_pool->l->in_h == l->in_h &&
                        bn_pool->l->in_w == l->in_w));
    assert(!relu || relu_out || bn_pool); /* a ReLU output that was not kept is made again on the pool's path */
    struct bn_task t = {.l = l, .gamma = gamma, .beta = beta, .dgamma = dgamma, .dbeta = dbeta, .in = in,
                        .dout = dout, .relu = relu, .relu_out = relu_out, .bn_pool = bn_pool, .din = din, .B = B,
                        .mean_in = mean, .rstd_in = rstd, .train = train};
    nn_pool_for(pool, (size_t)l->in_c, bn_backward_channel, &t);
}

/* --- the bn row of the layer table ------------------------------------------------ */

static int bn_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    (void)tok, (void)nt, (void)msg, (void)msgsize;
    l->w_n = l->b_n = (size_t)l->in_c;
    return 1;
}

static const float *bn_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    avemo_nn_ctx *ctx = a->ctx;
    const struct avemo_net *net = a->net;
    if (a->train) {
        nn_bn_forward_train(l, a->w, a->b, a->stats ? a->stats + l->s_off : NULL, ctx->bn_momentum, a->in, a->y, a->B,
                            ctx->bn_mean + l->s_off / 2, ctx->bn_rstd + l->s_off / 2, a->relu,
                            a->pool_y ? l + 2 : NULL, a->pool_y, ctx->work.dcol, ctx->work.pool);
    } else {
        nn_bn_forward_eval(l, a->w, a->b, net->stats + l->s_off, a->in, a->y, a->B, a->relu);
        for (int c = 0; c < l->in_c; c++) { /* kept for a backward in inference mode */
            ctx->bn_mean[l->s_off / 2 + c] = net->stats[l->s_off + c];
            ctx->bn_rstd[l->s_off / 2 + c] = 1.0f / sqrtf(net->stats[l->s_off + l->in_c + c] + NN_BN_EPS);
        }
    }
    return a->y;
}

static void bn_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    const avemo_nn_ctx *ctx = a->ctx;
    const struct nn_bn_pool bn_pool = {.l = l + 2, .out = a->pool_out, .scratch = ctx->work.dcol, .keep = a->relu_keep};
    assert(!a->pool_out || 2 * (size_t)l->in_h * l->in_w <= ctx->work.col_size); /* bn_buffers */
    nn_bn_backward(l, a->w, a->net->params + l->b_off, a->dw, a->db, a->in, a->dout, a->relu, a->relu_out,
                   a->pool_out ? &bn_pool : NULL, a->din, a->B, ctx->bn_mean + l->s_off / 2,
                   ctx->bn_rstd + l->s_off / 2, ctx->last_train, ctx->work.pool);
}

/* A following ReLU runs in the batch norm's pass and writes the ReLU's buffer. */
static int bn_needs_output(const struct nn_layer *l, const struct nn_layer *next, int training)
{
    (void)l;
    (void)training;
    return !(next && next->op == NN_RELU);
}

/* Training: two planes of scratch per worker for a 2x2 max pool after the ReLU (struct nn_bn_pool;
 * the convolution before asks for more anyway). */
static void bn_buffers(const struct nn_layer *l, int B, int training, struct nn_buffers *b)
{
    (void)B;
    if (training) b->col = 2 * (size_t)l->in_h * l->in_w;
}

/* gamma 1, beta 0, running mean 0 and variance 1 (PyTorch's defaults). */
static void bn_init(const struct nn_layer *l, float *w, float *b, float *stats, struct avemo_rng *rng)
{
    (void)rng;
    for (int c = 0; c < l->in_c; c++) {
        w[c] = 1.0f;
        b[c] = 0.0f;
        stats[l->s_off + c] = 0.0f;
        stats[l->s_off + l->in_c + c] = 1.0f;
    }
}

const struct nn_layer_type nn_layer_bn = {
    .name = "bn", .min_words = 1, .max_words = 1, .takes_seq = 1, .has_params = 1,
    .parse = bn_parse, .forward = bn_forward, .backward = bn_backward,
    .needs_output = bn_needs_output, .buffers = bn_buffers, .init = bn_init,
};
