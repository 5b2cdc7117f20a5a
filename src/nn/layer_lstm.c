/* LSTM over a batch_first sequence (PyTorch's nn.LSTM, one layer, optionally bidirectional), and
 * the `seq` layer that turns a C x F x T feature map into a T-step sequence of C*F features.
 *
 * A sequence of T steps of F features is stored per sample as [T][F] (shape T x F x 1).
 * Per direction the parameters are weight_ih [4H][I], weight_hh [4H][H], bias_ih [4H],
 * bias_hh [4H], gates in PyTorch's order i, f, g, o (the reverse direction's four follow):
 *
 *   gates_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
 *   c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),   h_t = sigmoid(o) tanh(c_t)
 *
 * The input projection of every step is one sgemm; each step then adds h_{t-1} W_hh^T (one
 * sgemm over the batch).  The backward is back-propagation through time with the same shape:
 * per step, the gate gradients and the next h gradient (one sgemm); then the weight and input
 * gradients of all steps at once.
 *
 * Saved state (per layer, in the context): per direction the gate activations [B][T][4H], the
 * cells [B][T][H] and the hidden states [B][T][H]; training contexts add the gate gradients
 * [B][T][4H] and two [B][H] carries (dh and dc from the step processed next). */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

size_t nn_lstm_dir_params(int inputs, int hidden)
{
    return (size_t)4 * hidden * ((size_t)inputs + hidden + 2);
}

size_t nn_lstm_state_size(const struct nn_layer *l, int B, int training)
{
    const size_t T = (size_t)l->in_c, H = (size_t)l->hidden, BT = (size_t)B * T;
    size_t n = (size_t)l->dirs * BT * 6 * H;
    if (training) n += BT * 4 * H + 2 * (size_t)B * H;
    return n;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* The time of a direction's s-th step (the reverse direction starts at the end). */
static inline int step_time(int s, int T, int reverse) { return reverse ? T - 1 - s : s; }

/* One direction over the whole sequence: in [B][T][I] -> gates (activated), cs, hs [B][T][..]. */
static void lstm_dir_forward(const struct nn_layer *l, const float *p, const float *in, int B, int reverse,
                             float *gates, float *cs, float *hs)
{
    const int T = l->in_c, NI = l->in_h /* I is complex.h's macro */, H = l->hidden, G = 4 * H;
    const float *wih = p, *whh = p + (size_t)G * NI, *bih = whh + (size_t)G * H, *bhh = bih + G;
    const size_t BT = (size_t)B * T;
    for (size_t r = 0; r < BT; r++)
        for (int g = 0; g < G; g++) gates[r * G + g] = bih[g] + bhh[g];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)BT, G, NI, 1.0f, in, NI, wih, NI, 1.0f, gates, G);
    for (int s = 0; s < T; s++) {
        const int t = step_time(s, T, reverse), tp = reverse ? t + 1 : t - 1;
        if (s > 0) /* gates_t += h_{t-1} W_hh^T for the whole batch: rows n * T + t, stride T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G, H, 1.0f, hs + (size_t)tp * H, T * H, whh, H,
                        1.0f, gates + (size_t)t * G, T * G);
        for (int n = 0; n < B; n++) {
            float *g = gates + ((size_t)n * T + t) * G;
            float *c = cs + ((size_t)n * T + t) * H, *h = hs + ((size_t)n * T + t) * H;
            const float *cprev = s > 0 ? cs + ((size_t)n * T + tp) * H : NULL;
            for (int j = 0; j < H; j++) {
                const float ig = sigmoid(g[j]), fg = sigmoid(g[H + j]), gg = tanhf(g[2 * H + j]),
                            og = sigmoid(g[3 * H + j]);
                const float cv = ig * gg + (cprev ? fg * cprev[j] : 0.0f);
                g[j] = ig;
                g[H + j] = fg;
                g[2 * H + j] = gg;
                g[3 * H + j] = og;
                c[j] = cv;
                h[j] = og * tanhf(cv);
            }
        }
    }
}

void nn_lstm_forward(const struct nn_layer *l, const float *w, const float *in, float *out, int B, float *state)
{
    const int T = l->in_c, H = l->hidden, OH = l->dirs * H;
    const size_t BT = (size_t)B * T, per_dir = BT * 6 * (size_t)H;
    for (int d = 0; d < l->dirs; d++) {
        float *gates = state + d * per_dir, *cs = gates + BT * 4 * H, *hs = cs + BT * H;
        lstm_dir_forward(l, w + d * nn_lstm_dir_params(l->in_h, H), in, B, d, gates, cs, hs);
        for (int n = 0; n < B; n++) {
            if (l->seq_out) {
                for (int t = 0; t < T; t++)
                    memcpy(out + ((size_t)n * T + t) * OH + d * H, hs + ((size_t)n * T + t) * H, sizeof(float) * H);
            } else { /* h_n: the state after the direction's last step (t = 0 for the reverse one) */
                const int t = step_time(T - 1, T, d);
                memcpy(out + (size_t)n * OH + d * H, hs + ((size_t)n * T + t) * H, sizeof(float) * H);
            }
        }
    }
}

/* Back-propagation through time of one direction.  dout holds OH = dirs * H features per step
 * (seq_out) or per sample (last), this direction's at offset off.  Accumulates into dp (this
 * direction's parameter gradients); din (may be NULL) is set (add = 0) or added to (add = 1). */
static void lstm_dir_backward(const struct nn_layer *l, const float *p, float *dp, const float *in, const float *dout,
                              int off, int B, int reverse, const float *gates, const float *cs, const float *hs,
                              float *dg, float *carry, float *din, int add)
{
    const int T = l->in_c, NI = l->in_h, H = l->hidden, G = 4 * H, OH = l->dirs * H;
    const float *wih = p, *whh = p + (size_t)G * NI;
    float *dwih = dp, *dwhh = dp + (size_t)G * NI, *dbih = dwhh + (size_t)G * H, *dbhh = dbih + G;
    float *dh_next = carry, *dc = carry + (size_t)B * H; /* from the step processed after this one */
    memset(carry, 0, sizeof(float) * 2 * (size_t)B * H);
    for (int s = T - 1; s >= 0; s--) {
        const int t = step_time(s, T, reverse), tp = reverse ? t + 1 : t - 1;
        for (int n = 0; n < B; n++) {
            const size_t row = (size_t)n * T + t;
            const float *g = gates + row * G, *c = cs + row * H;
            const float *cprev = s > 0 ? cs + ((size_t)n * T + tp) * H : NULL;
            const float *up = l->seq_out ? dout + row * OH + off : s == T - 1 ? dout + (size_t)n * OH + off : NULL;
            float *dgr = dg + row * G, *dhn = dh_next + (size_t)n * H, *dcn = dc + (size_t)n * H;
            for (int j = 0; j < H; j++) {
                const float ig = g[j], fg = g[H + j], gg = g[2 * H + j], og = g[3 * H + j];
                const float tc = tanhf(c[j]);
                const float dh = (up ? up[j] : 0.0f) + (s < T - 1 ? dhn[j] : 0.0f);
                const float dcv = dcn[j] + dh * og * (1.0f - tc * tc);
                dgr[j] = dcv * gg * ig * (1.0f - ig);
                dgr[H + j] = (cprev ? dcv * cprev[j] : 0.0f) * fg * (1.0f - fg);
                dgr[2 * H + j] = dcv * ig * (1.0f - gg * gg);
                dgr[3 * H + j] = dh * tc * og * (1.0f - og);
                dcn[j] = dcv * fg;
            }
        }
        if (s > 0) /* dh_{t-1} = dgates_t W_hh */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G, 1.0f, dg + (size_t)t * G, T * G, whh, H,
                        0.0f, dh_next, H);
    }
    const int BT = B * T;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, NI, BT, 1.0f, dg, G, in, NI, 1.0f, dwih, NI);
    if (T > 1) { /* dW_hh = sum over steps with a previous state of dgates_t^T h_prev */
        for (int n = 0; n < B; n++) {
            const float *a = dg + ((size_t)n * T + (reverse ? 0 : 1)) * G;
            const float *b = hs + ((size_t)n * T + (reverse ? 1 : 0)) * H;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, T - 1, 1.0f, a, G, b, H, 1.0f, dwhh, H);
        }
    }
    for (int k = 0; k < G; k++) { /* both biases enter every step's gates once */
        float sum = 0.0f;
        for (size_t r = 0; r < (size_t)BT; r++) sum += dg[r * G + k];
        dbih[k] += sum;
        dbhh[k] += sum;
    }
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BT, NI, G, 1.0f, dg, G, wih, NI, add ? 1.0f : 0.0f, din,
                    NI);
}

void nn_lstm_backward(const struct nn_layer *l, const float *w, float *dw, const float *in, const float *dout,
                      float *din, int B, float *state)
{
    const int T = l->in_c, H = l->hidden;
    const size_t BT = (size_t)B * T, per_dir = BT * 6 * (size_t)H, np = nn_lstm_dir_params(l->in_h, H);
    float *dg = state + l->dirs * per_dir, *carry = dg + BT * 4 * H;
    for (int d = 0; d < l->dirs; d++) {
        const float *gates = state + d * per_dir, *cs = gates + BT * 4 * H, *hs = cs + BT * H;
        lstm_dir_backward(l, w + d * np, dw + d * np, in, dout, d * H, B, d, gates, cs, hs, dg, carry, din, d > 0);
    }
}

/* seq: in [C][F][T] -> out [T][C * F], i.e. x.permute(0, 3, 1, 2).reshape(B, T, C * F). */
void nn_seq_forward(const struct nn_layer *l, const float *in, float *out, int B)
{
    const size_t CF = (size_t)l->in_c * l->in_h, T = (size_t)l->in_w;
    for (int n = 0; n < B; n++) {
        const float *x = in + n * CF * T;
        float *y = out + n * CF * T;
        for (size_t cf = 0; cf < CF; cf++)
            for (size_t t = 0; t < T; t++) y[t * CF + cf] = x[cf * T + t];
    }
}

void nn_seq_backward(const struct nn_layer *l, const float *dout, float *din, int B)
{
    const size_t CF = (size_t)l->in_c * l->in_h, T = (size_t)l->in_w;
    for (int n = 0; n < B; n++) {
        const float *dy = dout + n * CF * T;
        float *dx = din + n * CF * T;
        for (size_t cf = 0; cf < CF; cf++)
            for (size_t t = 0; t < T; t++) dx[cf * T + t] = dy[t * CF + cf];
    }
}

/* --- the seq and lstm rows of the layer table ------------------------------------- */

/* seq: C x F x T -> T steps of C * F features (x.permute(0, 3, 1, 2).reshape(B, T, C * F)) */
static int seq_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    (void)tok, (void)nt, (void)msg, (void)msgsize;
    l->out_c = l->in_w;
    l->out_h = l->in_c * l->in_h;
    l->out_w = 1;
    l->out_seq = 1;
    return 1;
}

static const float *seq_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    nn_seq_forward(l, a->in, a->y, a->B);
    return a->y;
}

static void seq_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    if (a->din) nn_seq_backward(l, a->dout, a->din, a->B);
}

const struct nn_layer_type nn_layer_seq = {
    .name = "seq", .min_words = 1, .max_words = 1, .takes_seq = 0,
    .parse = seq_parse, .forward = seq_forward, .backward = seq_backward,
};

/* lstm HIDDEN [seq] [bidirectional]: tok[0] is "lstm". */
static int lstm_parse(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize)
{
    l->op = NN_LSTM;
    l->dirs = 1;
    if (!nn_parse_int(tok[1], 1, AVEMO_NN_MAX_DIM, &l->hidden)) {
        snprintf(msg, msgsize, "expected 'lstm HIDDEN [seq] [bidirectional]' with HIDDEN in 1..%d", AVEMO_NN_MAX_DIM);
        return 0;
    }
    for (int i = 2; i < nt; i++) {
        if (strcmp(tok[i], "seq") == 0) l->seq_out = 1;
        else if (strcmp(tok[i], "bidirectional") == 0) l->dirs = 2;
        else {
            snprintf(msg, msgsize, "unexpected '%s' (seq or bidirectional)", tok[i]);
            return 0;
        }
    }
    if (!l->in_seq) {
        snprintf(msg, msgsize, "the input %dx%dx%d is not a sequence: put 'seq' (or 'lstm N seq') before it", l->in_c,
                 l->in_h, l->in_w);
        return 0;
    }
    if (l->in_h > AVEMO_NN_MAX_DIM * 16) {
        snprintf(msg, msgsize, "%d input features per step (limit %d)", l->in_h, AVEMO_NN_MAX_DIM * 16);
        return 0;
    }
    const int out = l->dirs * l->hidden;
    l->out_c = l->seq_out ? l->in_c : out;
    l->out_h = l->seq_out ? out : 1;
    l->out_w = 1;
    l->out_seq = l->seq_out;
    l->w_n = (size_t)l->dirs * nn_lstm_dir_params(l->in_h, l->hidden); /* all four tensors per direction */
    l->b_n = 0;
    if (nn_lstm_state_size(l, 1, 1) > 4 * AVEMO_NN_MAX_ACT) { /* every step's gates, cells and states */
        snprintf(msg, msgsize, "%d steps of %d x %d hidden units keep more than %zu floats per sample", l->in_c,
                 l->dirs, l->hidden, 4 * AVEMO_NN_MAX_ACT);
        return 0;
    }
    return 1;
}

static const float *lstm_forward(const struct nn_layer *l, const struct nn_fwd *a)
{
    nn_lstm_forward(l, a->w, a->in, a->y, a->B, a->ctx->lstm_state[a->i]);
    return a->y;
}

static void lstm_backward(const struct nn_layer *l, const struct nn_bwd *a)
{
    nn_lstm_backward(l, a->w, a->dw, a->in, a->dout, a->din, a->B, a->ctx->lstm_state[a->i]);
}

static void lstm_buffers(const struct nn_layer *l, int B, int training, struct nn_buffers *b)
{
    b->state = nn_lstm_state_size(l, B, training);
}

/* PyTorch's nn.LSTM default: every tensor U(-1/sqrt(H), 1/sqrt(H)). */
static void lstm_init(const struct nn_layer *l, float *w, float *b, float *stats, struct avemo_rng *rng)
{
    (void)b;
    (void)stats;
    const float k = 1.0f / sqrtf((float)l->hidden);
    for (size_t j = 0; j < l->w_n; j++) w[j] = (2.0f * avemo_rng_uniform(rng) - 1.0f) * k;
}

const struct nn_layer_type nn_layer_lstm = {
    .name = "lstm", .min_words = 2, .max_words = 8, .takes_seq = 1, .has_params = 1,
    .parse = lstm_parse, .forward = lstm_forward, .backward = lstm_backward,
    .buffers = lstm_buffers, .init = lstm_init,
};
