/* Internal structures of the nn engine: the layer table, the model and the context.
 * Every layer file holds its forward and its backward side by side (llm.c style). */
#ifndef AVEMO_NN_INTERNAL_H
#define AVEMO_NN_INTERNAL_H

#include <avemo/nn.h>

#include <assert.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <string.h>

/* Layer kinds: the index of the layer's row in nn_layer_types (layers.c). */
enum nn_op { NN_CONV, NN_BN, NN_RELU, NN_MAXPOOL, NN_GAP, NN_FLATTEN, NN_DENSE, NN_DROPOUT, NN_SEQ, NN_LSTM, NN_OP_COUNT };

struct nn_layer {
    enum nn_op op;
    char name[AVEMO_NN_NAME_MAX];   /* "audio.0" */
    char spec[48];                  /* the description's item, e.g. "conv 32 3 same" */
    int in_c, in_h, in_w;           /* per-sample input shape */
    int out_c, out_h, out_w;        /* per-sample output shape */
    int k, stride, pad_t, pad_l;    /* conv kernel / stride / padding; pool size in k */
    float p;                        /* dropout probability */
    int hidden, dirs, seq_out;      /* LSTM: hidden size, 1 or 2 directions, whole sequence out */
    int in_seq, out_seq;            /* input / output is a sequence: T steps x F features x 1 */
    size_t w_off, w_n, b_off, b_n;  /* weight and bias in the flat parameters */
    size_t s_off;                   /* batch-norm running mean at s_off, var at s_off + C */
    size_t a_off;                   /* offset of the per-layer saved state in the context (see net.c) */
    int first_of_stage;             /* its input is a network input or the concat buffer */
};

static inline size_t nn_in_size(const struct nn_layer *l) { return (size_t)l->in_c * l->in_h * l->in_w; }
static inline size_t nn_out_size(const struct nn_layer *l) { return (size_t)l->out_c * l->out_h * l->out_w; }

/* A stage is a branch (one per input) or the head (last). */
struct nn_stage {
    char name[AVEMO_NN_NAME_MAX];
    int c, h, w;          /* input shape of the stage */
    int first, count;     /* layers [first, first + count) */
};

struct nn_array {
    char name[AVEMO_NN_NAME_MAX * 2];
    float *data;
    size_t count;
};

#define NN_MAX_ARRAYS 32

struct avemo_net {
    char *pipeline;                 /* text it was built from */
    char name[256];                 /* for messages */
    int ninputs;
    struct nn_stage stages[AVEMO_NN_MAX_INPUTS + 1]; /* branches then the head */
    struct nn_layer *layers;
    int nlayers;
    int classes;
    size_t concat_size;             /* head input floats per sample */
    float *params;
    size_t nparams;
    float *stats;
    size_t nstats;
    char **labels;                  /* classes entries or NULL */
    struct nn_array arrays[NN_MAX_ARRAYS];
    int narrays;
    int params_borrowed;            /* params and stats are another network's arrays (an ensemble
                                       member: nn_net_create_borrowing), not freed with this one */
    struct avemo_record_entry *record; /* the training record (record.c), NULL when none */
    char *record_names;             /* every entry's name, packed in one block (a record lists
                                       up to tens of thousands of files: one allocation, not one
                                       per name) */
    size_t nrecord;
    int has_record;
    int record_skipped;             /* loaded by avemo_net_load_inference: the file's record unread */
    /* avemo_net_prepare: per layer, the Winograd transform of its 3x3 kernels (NULL for other
     * layers), all in one block; dropped (nn_net_unprepare) by whatever may change params. */
    float *prepared_block;
    const float **prepared;
};
/* Drop what avemo_net_prepare made: the parameters are about to change. */
void nn_net_unprepare(avemo_net *net);
void nn_record_free(avemo_net *net);
/* avemo_net_set_array without the copy: the net takes data (from avemo_alloc_large or malloc,
 * count + 1 floats), also when it refuses it. */
enum avemo_status nn_net_adopt_array(avemo_net *net, const char *name, float *data, size_t count,
                                     struct avemo_error *err);
/* A network of pipeline_text whose parameters and statistics are params and stats, read in
 * place (they must outlive it; it is never trained): an ensemble member's, without a copy. */
enum avemo_status nn_net_create_borrowing(const char *pipeline_text, const char *name, const float *params,
                                          const float *stats, avemo_net **out, struct avemo_error *err);
/* avemo_net_set_record without the copy: on success the net owns entries and names, the block
 * their names (none NULL) point into: the model reader's; on failure the caller does. */
enum avemo_status nn_record_adopt(avemo_net *net, struct avemo_record_entry *entries, size_t n, char *names,
                                  struct avemo_error *err);

/* Worker threads of a context (pool.c).  nn_pool_for runs fn(arg, item, worker) for every item
 * in [0, items), each once, on whichever worker claims it (worker 0 is the caller; a worker
 * index names the worker's scratch); it returns when all are done.  A NULL pool runs the items
 * in order on worker 0. */
#define NN_MAX_WORKERS 8
#define NN_CHUNKS_PER_WORKER 4 /* a chunk late on a busy core holds the others up less */
struct nn_pool;
typedef void (*nn_item_fn)(void *arg, size_t item, int worker);
struct nn_pool *nn_pool_create(int threads); /* NULL for threads <= 1 */
void nn_pool_free(struct nn_pool *pool);
int nn_pool_threads(const struct nn_pool *pool);
void nn_pool_for(struct nn_pool *pool, size_t items, nn_item_fn fn, void *arg);

/* Part `part` of `parts` takes items [*lo, *hi) of n: contiguous, balanced shares. */
static inline void nn_share(size_t n, size_t part, size_t parts, size_t *lo, size_t *hi)
{
    *lo = n * part / parts;
    *hi = n * (part + 1) / parts;
}

/* What the layer kernels share out: the pool, each worker's scratch (im2col buffers), and the
 * convolution gradients of the chunks of samples after the first, summed in chunk order. */
struct nn_work {
    struct nn_pool *pool;
    int workers, chunks;
    size_t col_size, grad_size;
    float *col[NN_MAX_WORKERS], *dcol[NN_MAX_WORKERS], *grad[NN_MAX_WORKERS * NN_CHUNKS_PER_WORKER];
};
/* 0, or -1 when out of memory (nn_work_free cleans up either way). */
int nn_work_init(struct nn_work *work, int threads, size_t col_size, size_t grad_size, int training);
void nn_work_free(struct nn_work *work);

struct avemo_nn_ctx {
    const struct avemo_net *net;
    struct nn_work work;
    int max_batch, training, dropout, batch, last_train;
    float bn_momentum;      /* weight of a batch in the running statistics (NN_BN_MOMENTUM) */
    float *block;           /* the float buffers below, carved from one allocation (net.c) */
    float **act;            /* per layer output, max_batch * out_size (NULL when not needed: see
                               layer_needs_buffer in net.c) */
    const float **out;      /* per layer output pointer of the last forward */
    const float *inputs[AVEMO_NN_MAX_INPUTS];
    float *concat;          /* head input */
    float *bn_mean, *bn_rstd;       /* per batch-norm layer, C each (offset by s_off / 2); the
                                       folded scale and shift in inference contexts */
    int32_t **pool_idx;     /* per max-pool layer other than 2x2 (training) */
    uint8_t **drop_mask;    /* per dropout layer (training) */
    float **lstm_state;     /* per LSTM layer: saved gates, cells, hidden states (layer_lstm.c) */
    float *grads;           /* nparams */
    float *dbuf[2];         /* ping-pong activation gradients, dbuf_size floats each */
    size_t dbuf_size;
    float *dconcat;
    float *probs;
    struct avemo_rng rng;
    /* What the last forward computed (inspect.c): the batch each stage ran with (1 for a shared
     * input, 0 when stale: a head-only forward leaves the branches' outputs behind). */
    int stage_batch[AVEMO_NN_MAX_INPUTS + 1];
    unsigned last_shared;   /* shared_inputs of the last forward (a backward cannot follow one) */
    float **keep_grad;      /* per layer: its output's gradient kept by each backward, or NULL */
    int grad_valid;         /* the kept gradients belong to the last forward */
};

/* ---- the table of layer types (layers.c; docs/nn.md "adding a layer") ----
 * Each layer file defines its row next to its forward and backward; net.c and graph.c only
 * go through the table. */

/* One forward call of layer i (filled by net.c). */
struct nn_fwd {
    const struct avemo_net *net;
    avemo_nn_ctx *ctx;
    int i, B;                  /* layer index, batch */
    int train;                 /* batch statistics and dropout (training forward) */
    int relu;                  /* batch norm: apply the following ReLU in the same pass */
    float *pool_y;             /* batch norm + ReLU (training): also the 2x2 max pool after them (layer
                                  i + 2), written to pool_y from each plane while it is in cache; the
                                  ReLU's output is then not kept (y NULL) */
    const float *in, *w, *b;   /* input, the layer's weight and bias in the parameters */
    float *y;                  /* output buffer, NULL when the layer has none (see needs_output) */
    float *stats;              /* running statistics to update (training), or NULL */
};

/* One backward call of layer i: din is NULL when the input's gradient is not needed. */
struct nn_bwd {
    const struct avemo_net *net;
    avemo_nn_ctx *ctx;
    int i, B;
    const float *in, *w, *dout;
    int relu;                  /* batch norm: dout is the gradient of the following ReLU... */
    const float *relu_out;     /* ...whose output this is (NULL when the forward did not keep it) */
    const float *pool_out;     /* batch norm + ReLU: dout is the gradient of the 2x2 max pool after them
                                  (pool_out, layer i + 2); see struct nn_bn_pool */
    float *relu_keep;          /* with pool_out: where to keep the ReLU's output gradient, or NULL */
    float *dw, *db, *din;
};

/* Scratch a layer needs in a context of batch B, beyond its output. */
struct nn_buffers {
    size_t col;                /* im2col floats per worker (shared by all layers: the largest is allocated) */
    size_t grad;               /* floats of a chunk's parameter gradient (conv; the largest is allocated) */
    size_t idx;                /* int32 indices (max-pool arg-max) */
    size_t mask;               /* bytes (dropout mask) */
    size_t state;              /* floats kept from forward to backward (LSTM) */
};

struct nn_layer_type {
    const char *name;          /* first word of the layer's item ("conv") */
    int min_words, max_words;  /* words of the item, the name included */
    int takes_seq;             /* may follow a sequence (T steps x F features) */
    int has_params;            /* weight and bias in the flat parameters */
    /* Shape and parameters from the item's words (tok[0] is the name) and l's input shape;
     * out_* start equal to in_*.  0 with a message on error. */
    int (*parse)(struct nn_layer *l, char **tok, int nt, char *msg, size_t msgsize);
    /* Returns the output: a->y, or a->in for a layer that passes its input through. */
    const float *(*forward)(const struct nn_layer *l, const struct nn_fwd *a);
    void (*backward)(const struct nn_layer *l, const struct nn_bwd *a);
    /* Does the layer need its own output buffer?  next is the following layer of the stage or
     * NULL.  NULL: always. */
    int (*needs_output)(const struct nn_layer *l, const struct nn_layer *next, int training);
    /* Scratch for batch B (NULL: none). */
    void (*buffers)(const struct nn_layer *l, int B, int training, struct nn_buffers *b);
    /* Initial parameters: fans for He / Glorot initialisation of the weight (bias 0)... */
    void (*fans)(const struct nn_layer *l, double *fan_in, double *fan_out);
    /* ...or the layer's own initialisation (batch norm, LSTM).  Both NULL: no parameters. */
    void (*init)(const struct nn_layer *l, float *w, float *b, float *stats, struct avemo_rng *rng);
};

extern const struct nn_layer_type nn_layer_conv, nn_layer_bn, nn_layer_relu, nn_layer_maxpool, nn_layer_gap,
    nn_layer_flatten, nn_layer_dense, nn_layer_dropout, nn_layer_seq, nn_layer_lstm;
/* Indexed by enum nn_op. */
extern const struct nn_layer_type *const nn_layer_types[NN_OP_COUNT];
/* The row of a layer (asserts that its op is in the table). */
const struct nn_layer_type *nn_layer_type_of(const struct nn_layer *l);
/* The op (row index) of the type named name, or -1. */
int nn_layer_op_find(const char *name);
/* Layer items' numbers, checked (graph.c and the layers' parse functions). */
static inline int nn_parse_int(const char *s, int lo, int hi, int *out) { return avemo_parse_int(s, lo, hi, out) == AVEMO_OK; }

/* Layers (src/nn/layer_*.c).  B = batch size; work holds the workers and their scratch.
 * out = conv(in) * scale[c] + shift[c], then ReLU when relu != 0.  A plain convolution passes
 * scale NULL and shift = bias; inference folds a following batch norm into scale and shift.
 * wg_ready: w's Winograd transform made beforehand (nn_winograd_transform_weights, for a layer
 * nn_winograd_fits takes; avemo_net_prepare), or NULL to make it here. */
void nn_conv_forward(const struct nn_layer *l, const float *w, const float *wg_ready, const float *in, float *out,
                     int B, const struct nn_work *work, const float *scale, const float *shift, int relu);
void nn_conv_backward(const struct nn_layer *l, const float *w, float *dw, float *db, const float *in,
                      const float *dout, float *din, int B, const struct nn_work *work);
size_t nn_conv_col_size(const struct nn_layer *l);
/* Winograd F(2x2, 3x3) (conv_winograd.c): the layers it takes (3x3, stride 1, "same", at least
 * NN_WINOGRAD_MIN_IN_C input channels: below that the im2col product is as cheap), the scratch
 * floats it needs in each worker's buffer (U in worker 0's), and the forward, with
 * nn_conv_forward's arguments (shift may be NULL: no bias). */
#define NN_WINOGRAD_MIN_IN_C 8
/* Floats from one Winograd point's matrix to the next in the scratch (n = channels x tiles of
 * the block, or out_c x in_c), plus one cache line.  Without it the matrices lie a power of two
 * apart (8 KB for 64 channels of 32 tiles) and the transforms, which read or write one row of
 * every point for each tile row, keep evicting their own lines from one set of the L1 cache. */
#define NN_WINOGRAD_SKEW 16
static inline size_t nn_winograd_point_step(size_t n) { return n + NN_WINOGRAD_SKEW; }
int nn_winograd_fits(const struct nn_layer *l);
size_t nn_winograd_scratch(const struct nn_layer *l);
void nn_conv_forward_winograd(const struct nn_layer *l, const float *w, const float *U_ready, const float *in,
                              float *out, int B, const struct nn_work *work, const float *scale, const float *shift,
                              int relu);
/* The kernels' transform U[16][out_c][in_c] (nn_winograd_weights_size floats) that the forward
 * makes from w when U_ready is NULL; tmp: NN_WINOGRAD_POINTS in_c floats. */
#define NN_WINOGRAD_POINTS 16
size_t nn_winograd_weights_size(const struct nn_layer *l);
void nn_winograd_transform_weights(const struct nn_layer *l, const float *w, float *U, float *tmp);
/* Winograd F(4x4, 3x3) (conv_winograd4.c), inference contexts only: the layers nn_winograd_fits
 * takes that have at least NN_WINOGRAD4_MIN_TILES 4x4 tiles per image; the same functions as
 * F(2x2, 3x3)'s above, with U[36][out_c][in_c] and tmp NN_WINOGRAD4_POINTS in_c floats. */
#define NN_WINOGRAD4_POINTS 36
#define NN_WINOGRAD4_MIN_TILES 16
int nn_winograd4_fits(const struct nn_layer *l);
size_t nn_winograd4_scratch(const struct nn_layer *l);
size_t nn_winograd4_weights_size(const struct nn_layer *l);
void nn_winograd4_transform_weights(const struct nn_layer *l, const float *w, float *U, float *tmp);
void nn_conv_forward_winograd4(const struct nn_layer *l, const float *w, const float *U_ready, const float *in,
                               float *out, int B, const struct nn_work *work, const float *scale, const float *shift,
                               int relu);
/* The forward of an inference context: F(4x4, 3x3) where it takes the layer, else as
 * nn_conv_forward.  wg_ready: the kernels' transform for the path taken, made by
 * nn_conv_prepare_weights (nn_conv_prepared_size floats, tmp nn_conv_prepare_tmp floats; both
 * 0 when no path uses one), or NULL. */
void nn_conv_infer(const struct nn_layer *l, const float *w, const float *wg_ready, const float *in, float *out,
                   int B, const struct nn_work *work, const float *scale, const float *shift, int relu);
size_t nn_conv_prepared_size(const struct nn_layer *l);
size_t nn_conv_prepare_tmp(const struct nn_layer *l);
void nn_conv_prepare_weights(const struct nn_layer *l, const float *w, float *U, float *tmp);
#if defined(__SSE2__)
/* x[i .. i+3] of a row of W floats, zero where outside it (the Winograd transforms' padding).
 * At an edge the row's first or last four values are loaded and shifted into place: a vector
 * built from single floats in memory would make its load wait for their stores. */
static inline __m128 nn_load4_padded(const float *x, int i, int W)
{
    if (i >= 0 && i + 3 < W) return _mm_loadu_ps(x + i);
    if (i >= W || i + 3 < 0) return _mm_setzero_ps();
    if (W < 4)
        return _mm_set_ps(i + 3 >= 0 && i + 3 < W ? x[i + 3] : 0.0f, i + 2 >= 0 && i + 2 < W ? x[i + 2] : 0.0f,
                          i + 1 >= 0 && i + 1 < W ? x[i + 1] : 0.0f, i >= 0 ? x[i] : 0.0f);
    if (i < 0) { /* -3 .. -1: x[0 .. 3] moved up by -i lanes */
        __m128i v = _mm_castps_si128(_mm_loadu_ps(x));
        v = i == -1 ? _mm_slli_si128(v, 4) : i == -2 ? _mm_slli_si128(v, 8) : _mm_slli_si128(v, 12);
        return _mm_castsi128_ps(v);
    }
    __m128i v = _mm_castps_si128(_mm_loadu_ps(x + W - 4)); /* x[W-4 .. W-1] moved down by i+4-W lanes */
    const int s = i + 4 - W;
    v = s == 1 ? _mm_srli_si128(v, 4) : s == 2 ? _mm_srli_si128(v, 8) : _mm_srli_si128(v, 12);
    return _mm_castsi128_ps(v);
}

/* (a[1], a[2], a[3], n[0]): a row of four tiles' values moved on by one tile, n being the next
 * four tiles' row. */
static inline __m128 nn_next_tile(__m128 a, __m128 n)
{
    const __m128 t = _mm_move_ss(a, n);
    return _mm_shuffle_ps(t, t, _MM_SHUFFLE(0, 3, 2, 1));
}
#endif

/* Four floats as one value (GCC's vector extension: + - * / lane by lane, each rounded as the
 * same scalar operation). */
typedef float nn_vec4 __attribute__((vector_size(16)));

/* U[xi][m][c] = (G g G^T)[xi] for every kernel g = w[m][c][3][3] of a layer, for a Winograd
 * transform of n x n points (4: F(2x2, 3x3), 6: F(4x4, 3x3)) whose G is g_of (the n values of
 * G times a kernel column, or of a row of G g).  Four kernels (input channels) at a time, one
 * per lane: F(4x4, 3x3)'s G divides by 6, 12 and 24, and four divisions cost one.  One output
 * channel goes through tmp[xi][c] (n n C floats, in cache), so that U is written row by row.
 * Inline so that g_of is inlined too: training transforms the kernels at every step. */
static inline void nn_winograd_kernels(const struct nn_layer *l, const float *w, int n,
                                       void (*g_of)(nn_vec4, nn_vec4, nn_vec4, nn_vec4 *), float *U, float *tmp)
{
    const int M = l->out_c, C = l->in_c;
    assert(n == 4 || n == 6);
    for (int m = 0; m < M; m++) {
        for (int c = 0; c < C; c += 4) {
            const int lanes = C - c < 4 ? C - c : 4;
            const float *g = w + ((size_t)m * C + c) * 9;
            nn_vec4 k[9], t[3][6], u[6]; /* k[e]: element e of the four kernels; t[j]: G times column j */
            for (int e = 0; e < 9; e++)
                k[e] = (nn_vec4){g[e], lanes > 1 ? g[9 + e] : 0.0f, lanes > 2 ? g[18 + e] : 0.0f,
                                 lanes > 3 ? g[27 + e] : 0.0f};
            for (int j = 0; j < 3; j++) g_of(k[j], k[3 + j], k[6 + j], t[j]);
            for (int i = 0; i < n; i++) { /* row i of G g, times G^T */
                g_of(t[0][i], t[1][i], t[2][i], u);
                for (int j = 0; j < n; j++) memcpy(tmp + (size_t)(i * n + j) * C + c, &u[j], sizeof(float) * lanes);
            }
        }
        for (int xi = 0; xi < n * n; xi++)
            memcpy(U + ((size_t)xi * M + m) * C, tmp + (size_t)xi * C, sizeof(float) * (size_t)C);
    }
}
/* dw += the weight gradient of samples [lo, hi) (F(3x3, 2x2)); scratch: nn_winograd_scratch floats. */
void nn_conv_weight_grad_winograd(const struct nn_layer *l, const float *in, const float *dout, size_t lo, size_t hi,
                                  float *dw, float *scratch);

/* relu != 0: a following ReLU is applied in the same pass (out is then the ReLU's output);
 * pool_l != NULL: the 2x2 max pool after the ReLU too, into pool_y, and the ReLU's output is
 * not kept (out NULL): each plane goes through the worker's scratch (hw floats) to the pool. */
void nn_bn_forward_train(const struct nn_layer *l, const float *gamma, const float *beta, float *running,
                         float momentum, const float *in, float *out, int B, float *mean, float *rstd, int relu,
                         const struct nn_layer *pool_l, float *pool_y, float *const *scratch, struct nn_pool *pool);
void nn_bn_forward_eval(const struct nn_layer *l, const float *gamma, const float *beta, const float *running,
                        const float *in, float *out, int B, int relu);
/* A 2x2 max pool after a batch norm and its ReLU, whose backward runs inside the batch norm's
 * (training contexts): dout is then the pool's output gradient.  The pool's input gradient is made
 * one plane at a time in the worker's scratch, where the batch norm reads it at once, instead of
 * a pass that writes it for the whole batch and two that read it back. */
struct nn_bn_pool {
    const struct nn_layer *l;  /* the max-pool layer (k = 2) */
    const float *out;          /* its output */
    float *const *scratch;     /* per worker, at least 2 * l->in_h * l->in_w floats */
    float *keep;               /* the ReLU's output gradient, kept for inspection, or NULL */
};
/* relu != 0: dout is the gradient of the following ReLU's output (relu_out), whose backward is
 * done on the fly; with bn_pool != NULL too, dout is the gradient of that pool's output, and
 * relu_out may be NULL: a training forward does not keep it, it is made again from in. */
void nn_bn_backward(const struct nn_layer *l, const float *gamma, const float *beta, float *dgamma, float *dbeta,
                    const float *in, const float *dout, int relu, const float *relu_out,
                    const struct nn_bn_pool *bn_pool, float *din, int B, const float *mean, const float *rstd,
                    int train, struct nn_pool *pool);
#define NN_BN_EPS 1e-5f
#define NN_BN_MOMENTUM 0.1f

/* max(v, 0) without a branch: ReLU inputs have random signs, which a branch mispredicts half
 * the time (5x slower here).  Clearing values whose sign bit is set also maps -0 to +0. */
static inline float nn_relu_value(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits &= 0u - ((bits >> 31) ^ 1u);
    memcpy(&v, &bits, 4);
    return v;
}
void nn_relu_forward(const float *in, float *out, size_t n);

/* Vector loops (vec.c). */
double nn_vec_sum(const float *x, size_t n);
double nn_vec_sum_sq_dev(const float *x, size_t n, float mean);            /* sum (x - mean)^2 */
void nn_vec_scale_shift(const float *x, float *y, size_t n, float s, float t, int relu); /* y = x s + t */
void nn_vec_bn_sums(const float *dy, const float *relu_out, const float *x, size_t n, float mean, double *sum_dy,
                    double *sum_dy_dev);
void nn_vec_bn_dx(const float *dy, const float *relu_out, const float *x, float *dx, size_t n, float g, float a,
                  float mean, float k);
void nn_vec_relu(const float *x, float *y, size_t n);
void nn_vec_relu_grad(const float *out, const float *dout, float *din, size_t n);
void nn_vec_add(float *y, const float *x, size_t n);
void nn_vec_fill(float *y, float v, size_t n);
void nn_relu_backward(const float *out, const float *dout, float *din, size_t n);

void nn_maxpool_forward(const struct nn_layer *l, const float *in, float *out, int32_t *idx, int B,
                        struct nn_pool *pool);
void nn_maxpool_backward(const struct nn_layer *l, const float *in, const float *out, const int32_t *idx,
                         const float *dout, float *din, int B, struct nn_pool *pool);
/* 2x2 forward of one plane: x has rows of W, y is Ho x Wo. */
void nn_maxpool2_plane(const float *x, int W, float *y, int Ho, int Wo);
/* 2x2 backward of one plane: x (H x W) the input, y and dy (Ho x Wo) the output and its gradient. */
void nn_maxpool2_backward_plane(const float *x, const float *y, const float *dy, float *dx, int H, int W, int Ho,
                                int Wo);

void nn_gap_forward(const struct nn_layer *l, const float *in, float *out, int B);
void nn_gap_backward(const struct nn_layer *l, const float *dout, float *din, int B);

void nn_dense_forward(const struct nn_layer *l, const float *w, const float *b, const float *in, float *out,
                      int B);
void nn_dense_backward(const struct nn_layer *l, const float *w, float *dw, float *db, const float *in,
                       const float *dout, float *din, int B);

void nn_dropout_forward(const struct nn_layer *l, struct avemo_rng *rng, const float *in, float *out,
                        uint8_t *mask, size_t n);
void nn_dropout_backward(const struct nn_layer *l, const uint8_t *mask, const float *dout, float *din,
                         size_t n);

/* LSTM (layer_lstm.c): w is the layer's parameters (per direction weight_ih, weight_hh, bias_ih,
 * bias_hh); state holds nn_lstm_state_size floats. */
size_t nn_lstm_dir_params(int inputs, int hidden);
size_t nn_lstm_state_size(const struct nn_layer *l, int B, int training);
void nn_lstm_forward(const struct nn_layer *l, const float *w, const float *in, float *out, int B, float *state);
void nn_lstm_backward(const struct nn_layer *l, const float *w, float *dw, const float *in, const float *dout,
                      float *din, int B, float *state);
/* seq: C x F x T feature map -> T steps of C * F features. */
void nn_seq_forward(const struct nn_layer *l, const float *in, float *out, int B);
void nn_seq_backward(const struct nn_layer *l, const float *dout, float *din, int B);

/* Softmax cross-entropy (loss.c): returns the loss, writes dlogits when non-NULL. */
float nn_softmax_xent(const float *logits, const int *labels, int B, int C, const float *class_weights,
                      float label_smoothing, float *probs, float *dlogits);
/* Cross-entropy against probability targets; adds scale x its gradient into dlogits. */
float nn_softmax_soft_xent(const float *logits, const float *targets, int B, int C, float *probs, float scale,
                           float *dlogits);

/* graph.c */
enum avemo_status nn_parse_network(struct avemo_net *net, const char *text, struct avemo_error *err);
/* layers.c: the layer's row has parameters. */
int nn_layer_has_params(const struct nn_layer *l);

/* net.c */
void nn_threads_default(void);
/* inspect.c: free the kept gradients of a context. */
void nn_keep_free(avemo_nn_ctx *ctx);

#endif
