/* The model (struct avemo_net) and the per-thread context: creation, initialisation,
 * the forward pass in both modes and the backward pass over the layer table. */
#include "nn/nn_internal.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- threads ---- */

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

/* The number of workers a new context gets (pool.c).  A process-wide setting like OpenBLAS's
 * own, which it replaces: OpenBLAS always runs one thread, because the workers split whole
 * samples and call it from each (a server runs one context per request thread). */
static atomic_int nn_thread_setting = 1;

/* OpenBLAS's fork handler, exported by its pthread build but not declared in cblas.h: it joins
 * the library's thread pool.  Weak, so that the serial and OpenMP builds link too. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

/* OpenBLAS starts with one thread per core; applied once, when a context is created or threads
 * set.  The pthread build (Debian's default) starts its pool when the library loads, and each
 * pool thread then spins in sched_yield for about 0.1 s (OPENBLAS_THREAD_TIMEOUT): up to 150 ms
 * of CPU in every `avemo classify` process, taken from the second worker; setting one thread
 * does not stop it (and restarts a pool that was shut down).  avemo never gives OpenBLAS more
 * than one thread, so the pool goes (avemo_nn_init: as early as a program can). */
static void set_one_thread(void)
{
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

void nn_threads_default(void) { pthread_once(&threads_once, set_one_thread); }

void avemo_nn_init(void) { nn_threads_default(); }

enum avemo_status avemo_nn_set_threads(int threads, struct avemo_error *err)
{
    if (threads < 1 || threads > 256)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "nn threads: %d not in 1..256", threads);
    nn_threads_default();
    atomic_store(&nn_thread_setting, threads > NN_MAX_WORKERS ? NN_MAX_WORKERS : threads);
    return AVEMO_OK;
}

int avemo_nn_threads(void)
{
    nn_threads_default();
    return atomic_load(&nn_thread_setting);
}

/* ---- the model ---- */

/* The network of pipeline_text; with_params 0 leaves params and stats to the caller (an
 * ensemble member reading its ensemble's arrays: nn_net_create_borrowing). */
static enum avemo_status net_create(const char *pipeline_text, const char *name, int with_params, avemo_net **out,
                                    struct avemo_error *err)
{
    *out = NULL;
    if (!name) name = "network";
    if (!pipeline_text) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no pipeline text", name);
    size_t len = strlen(pipeline_text);
    if (len > AVEMO_NN_MAX_PIPELINE_BYTES)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: pipeline text is %zu bytes, the limit is %d", name, len,
                          AVEMO_NN_MAX_PIPELINE_BYTES);
    struct avemo_net *net = calloc(1, sizeof *net);
    if (!net) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    snprintf(net->name, sizeof net->name, "%s", name);
    net->pipeline = strdup(pipeline_text);
    if (!net->pipeline) {
        avemo_net_free(net);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    }
    enum avemo_status st = nn_parse_network(net, pipeline_text, err);
    if (st) {
        avemo_net_free(net);
        return st;
    }
    if (!with_params) {
        net->params_borrowed = 1;
        *out = net;
        return AVEMO_OK;
    }
    net->params = avemo_alloc_large(sizeof(float) * (net->nparams + 1));
    if (net->params) memset(net->params, 0, sizeof(float) * (net->nparams + 1));
    net->stats = calloc(net->nstats + 1, sizeof(float));
    if (!net->params || !net->stats) {
        avemo_net_free(net);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate %zu parameters", name, net->nparams);
    }
    for (int i = 0; i < net->nlayers; i++) { /* running variance starts at 1, as in PyTorch */
        const struct nn_layer *l = &net->layers[i];
        if (l->op == NN_BN)
            for (int c = 0; c < l->in_c; c++) net->stats[l->s_off + l->in_c + c] = 1.0f;
    }
    *out = net;
    return AVEMO_OK;
}

enum avemo_status avemo_net_create(const char *pipeline_text, const char *name, avemo_net **out,
                                   struct avemo_error *err)
{
    return net_create(pipeline_text, name, 1, out, err);
}

enum avemo_status nn_net_create_borrowing(const char *pipeline_text, const char *name, const float *params,
                                          const float *stats, avemo_net **out, struct avemo_error *err)
{
    enum avemo_status st = net_create(pipeline_text, name, 0, out, err);
    if (st) return st;
    /* Read only: a borrowing network is run, never trained or loaded into. */
    (*out)->params = (float *)params;
    (*out)->stats = (float *)stats;
    return AVEMO_OK;
}

enum avemo_status avemo_net_create_file(const char *pipeline_path, avemo_net **out, struct avemo_error *err)
{
    uint8_t *text;
    size_t size;
    *out = NULL;
    enum avemo_status st = avemo_read_file(pipeline_path, AVEMO_NN_MAX_PIPELINE_BYTES, &text, &size, err);
    if (st) return st;
    if (memchr(text, 0, size)) {
        free(text);
        return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: not a text file (contains NUL bytes)", pipeline_path);
    }
    st = avemo_net_create((const char *)text, pipeline_path, out, err);
    free(text);
    return st;
}

void nn_net_unprepare(avemo_net *net)
{
    free(net->prepared_block);
    free(net->prepared);
    net->prepared_block = NULL;
    net->prepared = NULL;
}

enum avemo_status avemo_net_prepare(avemo_net *net, struct avemo_error *err)
{
    nn_net_unprepare(net);
    size_t total = 0, tmp = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        total += nn_conv_prepared_size(l);
        if (nn_conv_prepare_tmp(l) > tmp) tmp = nn_conv_prepare_tmp(l);
    }
    if (total == 0) return AVEMO_OK; /* nothing to make ahead */
    net->prepared = calloc((size_t)net->nlayers, sizeof *net->prepared);
    net->prepared_block = avemo_alloc_large(sizeof(float) * (total + tmp));
    if (!net->prepared || !net->prepared_block) {
        nn_net_unprepare(net);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory for %zu prepared kernel floats", net->name, total);
    }
    float *U = net->prepared_block, *scratch = net->prepared_block + total;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (!nn_conv_prepared_size(l)) continue;
        nn_conv_prepare_weights(l, net->params + l->w_off, U, scratch);
        net->prepared[i] = U;
        U += nn_conv_prepared_size(l);
    }
    return AVEMO_OK;
}

void avemo_net_free(avemo_net *net)
{
    if (!net) return;
    nn_net_unprepare(net);
    free(net->pipeline);
    free(net->layers);
    if (!net->params_borrowed) {
        free(net->params);
        free(net->stats);
    }
    if (net->labels)
        for (int i = 0; i < net->classes; i++) free(net->labels[i]);
    free(net->labels);
    for (int i = 0; i < net->narrays; i++) free(net->arrays[i].data);
    nn_record_free(net);
    free(net);
}

void avemo_net_init(avemo_net *net, enum avemo_nn_init scheme, uint64_t seed)
{
    nn_net_unprepare(net);
    struct avemo_rng rng;
    avemo_rng_seed(&rng, seed, 0x6176656d6fULL);
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        const struct nn_layer_type *type = nn_layer_type_of(l);
        float *w = net->params + l->w_off, *b = net->params + l->b_off;
        if (type->init) { /* the layer's own scheme (batch norm, LSTM) */
            type->init(l, w, b, net->stats, &rng);
            continue;
        }
        if (!type->fans) continue; /* no parameters */
        double fan_in, fan_out;
        type->fans(l, &fan_in, &fan_out);
        int glorot = scheme == AVEMO_NN_INIT_GLOROT || (scheme == AVEMO_NN_INIT_DEFAULT && i == net->nlayers - 1);
        if (glorot) {
            float limit = (float)sqrt(6.0 / (fan_in + fan_out));
            for (size_t j = 0; j < l->w_n; j++) w[j] = (2.0f * avemo_rng_uniform(&rng) - 1.0f) * limit;
        } else {
            float std = (float)sqrt(2.0 / fan_in);
            for (size_t j = 0; j < l->w_n; j++) w[j] = avemo_rng_normal(&rng) * std;
        }
        memset(b, 0, sizeof(float) * l->b_n);
    }
}

int avemo_net_input_count(const avemo_net *net) { return net->ninputs; }

size_t avemo_net_input_shape(const avemo_net *net, int i, const char **name, int *c, int *h, int *w)
{
    if (i < 0 || i >= net->ninputs) return 0;
    const struct nn_stage *st = &net->stages[i];
    if (name) *name = st->name;
    if (c) *c = st->c;
    if (h) *h = st->h;
    if (w) *w = st->w;
    return (size_t)st->c * st->h * st->w;
}

int avemo_net_input_index(const avemo_net *net, const char *name)
{
    for (int i = 0; i < net->ninputs; i++)
        if (strcmp(net->stages[i].name, name) == 0) return i;
    return -1;
}

int avemo_net_classes(const avemo_net *net) { return net->classes; }
const char *avemo_net_pipeline(const avemo_net *net) { return net->pipeline; }

float *avemo_net_params(avemo_net *net, size_t *count)
{
    nn_net_unprepare(net); /* the caller may write them */
    if (count) *count = net->nparams;
    return net->params;
}

float *avemo_net_stats(avemo_net *net, size_t *count)
{
    if (count) *count = net->nstats;
    return net->stats;
}

int avemo_net_layer_count(const avemo_net *net) { return net->nlayers; }

const char *avemo_net_layer_name(const avemo_net *net, int layer)
{
    return layer >= 0 && layer < net->nlayers ? net->layers[layer].name : NULL;
}

void avemo_net_layer_describe(const avemo_net *net, int layer, char *buf, size_t size)
{
    if (layer < 0 || layer >= net->nlayers) {
        snprintf(buf, size, "?");
        return;
    }
    const struct nn_layer *l = &net->layers[layer];
    snprintf(buf, size, "%s -> %dx%dx%d", l->spec, l->out_c, l->out_h, l->out_w);
}

size_t avemo_net_layer_params(const avemo_net *net, int layer, size_t *offset)
{
    if (layer < 0 || layer >= net->nlayers) return 0;
    if (offset) *offset = net->layers[layer].w_off;
    return net->layers[layer].w_n + net->layers[layer].b_n;
}

/* Replace the pipeline text the network carries (its inference settings), provided the new
 * text builds the same network: same inputs, layers, parameters and classes.  The weights are
 * the old text's, so a text describing another network would make a model file that lies. */
enum avemo_status avemo_net_set_pipeline(avemo_net *net, const char *text, struct avemo_error *err)
{
    avemo_net *other = NULL;
    enum avemo_status st = avemo_net_create(text, net->name, &other, err);
    if (st) return st;
    int same = other->ninputs == net->ninputs && other->nlayers == net->nlayers && other->classes == net->classes &&
               other->nparams == net->nparams && other->nstats == net->nstats;
    char a[256], b[256];
    for (int i = 0; same && i < net->nlayers; i++) {
        avemo_net_layer_describe(net, i, a, sizeof a);
        avemo_net_layer_describe(other, i, b, sizeof b);
        same = strcmp(a, b) == 0;
    }
    char *copy = same ? strdup(text) : NULL;
    avemo_net_free(other);
    if (!same)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: the new pipeline text builds another network "
                          "(only settings outside [network], [branch.*] and [head] may change)", net->name);
    if (!copy) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    free(net->pipeline);
    net->pipeline = copy;
    return AVEMO_OK;
}

enum avemo_status avemo_net_set_labels(avemo_net *net, const char *const *labels, int count,
                                       struct avemo_error *err)
{
    if (count != net->classes)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: %d labels for %d classes", net->name, count, net->classes);
    char **copy = calloc((size_t)count, sizeof *copy);
    if (!copy) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    for (int i = 0; i < count; i++) {
        size_t len = strlen(labels[i]);
        copy[i] = len >= 1 && len <= 64 ? strdup(labels[i]) : NULL;
        if (!copy[i]) {
            for (int j = 0; j < i; j++) free(copy[j]);
            free(copy);
            return avemo_fail(err, len >= 1 && len <= 64 ? AVEMO_ERR_NOMEM : AVEMO_ERR_INVALID_ARG,
                              "%s: label %d must have 1 to 64 characters", net->name, i);
        }
    }
    if (net->labels)
        for (int i = 0; i < net->classes; i++) free(net->labels[i]);
    free(net->labels);
    net->labels = copy;
    return AVEMO_OK;
}

const char *avemo_net_label(const avemo_net *net, int class_index)
{
    if (!net->labels || class_index < 0 || class_index >= net->classes) return NULL;
    return net->labels[class_index];
}

enum avemo_status nn_net_adopt_array(avemo_net *net, const char *name, float *data, size_t count,
                                     struct avemo_error *err)
{
    size_t len = strlen(name);
    enum avemo_status st = AVEMO_OK;
    int slot = -1;
    for (int i = 0; i < net->narrays; i++)
        if (strcmp(net->arrays[i].name, name) == 0) slot = i;
    if (len == 0 || len >= sizeof net->arrays[0].name)
        st = avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: array name '%s' must have 1 to %zu characters", net->name,
                        name, sizeof net->arrays[0].name - 1);
    else if (count > AVEMO_NN_MAX_ACT)
        st = avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: array '%s' has %zu floats (limit %zu)", net->name, name, count,
                        AVEMO_NN_MAX_ACT);
    else if (slot < 0 && net->narrays == NN_MAX_ARRAYS)
        st = avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: more than %d arrays", net->name, NN_MAX_ARRAYS);
    if (st) {
        free(data);
        return st;
    }
    if (slot < 0) slot = net->narrays++;
    else free(net->arrays[slot].data);
    snprintf(net->arrays[slot].name, sizeof net->arrays[slot].name, "%s", name);
    net->arrays[slot].data = data;
    net->arrays[slot].count = count;
    return AVEMO_OK;
}

enum avemo_status avemo_net_set_array(avemo_net *net, const char *name, const float *data, size_t count,
                                      struct avemo_error *err)
{
    if (count > AVEMO_NN_MAX_ACT)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: array '%s' has %zu floats (limit %zu)", net->name, name,
                          count, AVEMO_NN_MAX_ACT);
    float *copy = avemo_alloc_large(sizeof(float) * (count + 1));
    if (!copy) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    if (count) memcpy(copy, data, sizeof(float) * count);
    return nn_net_adopt_array(net, name, copy, count, err);
}

const float *avemo_net_array(const avemo_net *net, const char *name, size_t *count)
{
    for (int i = 0; i < net->narrays; i++) {
        if (strcmp(net->arrays[i].name, name) == 0) {
            if (count) *count = net->arrays[i].count;
            return net->arrays[i].data;
        }
    }
    if (count) *count = 0;
    return NULL;
}

/* ---- contexts ---- */

void avemo_nn_ctx_free(avemo_nn_ctx *ctx)
{
    if (!ctx) return;
    if (ctx->pool_idx)
        for (int i = 0; i < ctx->net->nlayers; i++) free(ctx->pool_idx[i]);
    if (ctx->drop_mask)
        for (int i = 0; i < ctx->net->nlayers; i++) free(ctx->drop_mask[i]);
    free(ctx->lstm_state);
    free(ctx->act);
    free(ctx->out);
    free(ctx->pool_idx);
    free(ctx->drop_mask);
    nn_work_free(&ctx->work);
    free(ctx->block); /* every float buffer: ctx_layout */
    nn_keep_free(ctx);
    free(ctx);
}

/* Whether layer i needs an output buffer: not when its output is its input (flatten, dropout
 * in inference), nor when a fused pass writes into the buffer of a later layer (a batch norm
 * followed by a ReLU; in inference contexts a convolution followed by batch norm or ReLU). */
static int layer_needs_buffer(const struct avemo_net *net, int i, int training)
{
    const struct nn_layer *l = &net->layers[i];
    const struct nn_layer *next = i + 1 < net->nlayers && !net->layers[i + 1].first_of_stage ? l + 1 : NULL;
    const struct nn_layer_type *type = nn_layer_type_of(l);
    return !type->needs_output || type->needs_output(l, next, training);
}

/* A context's float buffers are carved from one block, allocated once (avemo_alloc_large: on
 * huge pages when large): a new context then costs a few page faults instead of one per 4 KiB
 * touched, and a fault costs ~14 us on the virtual machines we measure on (docs/performance.md). */
struct ctx_block {
    float *base; /* NULL while sizing */
    size_t used; /* floats */
};
#define CTX_ALIGN_FLOATS 16 /* every buffer starts on a 64-byte line */

static float *block_take(struct ctx_block *b, size_t n)
{
    float *p = b->base ? b->base + b->used : NULL;
    b->used += (n + CTX_ALIGN_FLOATS - 1) / CTX_ALIGN_FLOATS * CTX_ALIGN_FLOATS;
    return p;
}

/* Points every float buffer of ctx into b, or only sizes them (b->base NULL). */
static void ctx_layout(avemo_nn_ctx *ctx, struct ctx_block *b)
{
    const struct avemo_net *net = ctx->net;
    const size_t B = (size_t)ctx->max_batch;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (layer_needs_buffer(net, i, ctx->training)) ctx->act[i] = block_take(b, B * nn_out_size(l));
        struct nn_buffers nb = {0};
        const struct nn_layer_type *type = nn_layer_type_of(l);
        if (type->buffers) type->buffers(l, ctx->max_batch, ctx->training, &nb);
        if (nb.state) ctx->lstm_state[i] = block_take(b, nb.state);
    }
    ctx->concat = block_take(b, B * net->concat_size);
    ctx->bn_mean = block_take(b, net->nstats / 2);
    ctx->bn_rstd = block_take(b, net->nstats / 2);
    ctx->probs = block_take(b, B * (size_t)net->classes);
    if (!ctx->training) return;
    ctx->grads = block_take(b, net->nparams);
    ctx->dbuf[0] = block_take(b, ctx->dbuf_size);
    ctx->dbuf[1] = block_take(b, ctx->dbuf_size);
    ctx->dconcat = block_take(b, B * net->concat_size);
}

static int ctx_alloc_block(avemo_nn_ctx *ctx)
{
    struct ctx_block b = {0};
    ctx_layout(ctx, &b);
    if (!(b.base = avemo_alloc_large(sizeof(float) * b.used))) return 0;
    ctx->block = b.base;
    b.used = 0;
    ctx_layout(ctx, &b);
    if (ctx->training) memset(ctx->grads, 0, sizeof(float) * ctx->net->nparams);
    return 1;
}

enum avemo_status avemo_nn_ctx_create(const avemo_net *net, int max_batch, int training, uint64_t seed,
                                      avemo_nn_ctx **out, struct avemo_error *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > AVEMO_NN_MAX_BATCH)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: batch size %d not in 1..%d", net->name, max_batch,
                          AVEMO_NN_MAX_BATCH);
    nn_threads_default();
    struct avemo_nn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    ctx->net = net;
    ctx->max_batch = max_batch;
    ctx->training = training != 0;
    ctx->dropout = 1;
    ctx->bn_momentum = NN_BN_MOMENTUM;
    avemo_nn_ctx_seed(ctx, seed);
    const size_t B = (size_t)max_batch;
    int ok = 1, L = net->nlayers;
    ctx->act = calloc((size_t)L, sizeof *ctx->act);
    ctx->out = calloc((size_t)L, sizeof *ctx->out);
    ctx->pool_idx = calloc((size_t)L, sizeof *ctx->pool_idx);
    ctx->drop_mask = calloc((size_t)L, sizeof *ctx->drop_mask);
    ctx->lstm_state = calloc((size_t)L, sizeof *ctx->lstm_state);
    if (!ctx->act || !ctx->out || !ctx->pool_idx || !ctx->drop_mask || !ctx->lstm_state) ok = 0;
    size_t col = 1, dmax = 1, conv_grad = 1;
    for (int i = 0; ok && i < L; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (nn_in_size(l) > dmax) dmax = nn_in_size(l);
        if (nn_out_size(l) > dmax) dmax = nn_out_size(l);
        struct nn_buffers nb = {0};
        const struct nn_layer_type *type = nn_layer_type_of(l);
        if (type->buffers) type->buffers(l, max_batch, ctx->training, &nb);
        if (nb.col > col) col = nb.col;
        if (nb.grad > conv_grad) conv_grad = nb.grad;
        if (nb.idx && !(ctx->pool_idx[i] = malloc(sizeof(int32_t) * nb.idx))) ok = 0;
        if (nb.mask && !(ctx->drop_mask[i] = malloc(nb.mask))) ok = 0;
    }
    ctx->dbuf_size = B * dmax;
    if (ok && nn_work_init(&ctx->work, avemo_nn_threads(), col, conv_grad, ctx->training)) ok = 0;
    if (ok) ok = ctx_alloc_block(ctx);
    if (!ok) {
        avemo_nn_ctx_free(ctx);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate a context for batch %d", net->name, max_batch);
    }
    *out = ctx;
    return AVEMO_OK;
}

void avemo_nn_ctx_seed(avemo_nn_ctx *ctx, uint64_t seed) { avemo_rng_seed(&ctx->rng, seed, 0x64726f706f7574ULL); }

void avemo_nn_ctx_set_dropout(avemo_nn_ctx *ctx, int enabled) { ctx->dropout = enabled != 0; }

void avemo_nn_ctx_set_bn_momentum(avemo_nn_ctx *ctx, float momentum)
{
    ctx->bn_momentum = momentum > 0.0f && momentum <= 1.0f ? momentum : NN_BN_MOMENTUM;
}

float *avemo_nn_ctx_grads(avemo_nn_ctx *ctx, size_t *count)
{
    if (count) *count = ctx->grads ? ctx->net->nparams : 0;
    return ctx->grads;
}

/* ---- forward ---- */

/* The input of layer i of stage s: the stage input for its first layer, else the previous output. */
static const float *layer_input(const avemo_nn_ctx *ctx, int s, int i)
{
    const struct nn_stage *st = &ctx->net->stages[s];
    if (i > st->first) return ctx->out[i - 1];
    return s < ctx->net->ninputs ? ctx->inputs[s] : ctx->concat;
}

static const float *stage_output(const avemo_nn_ctx *ctx, int s)
{
    const struct nn_stage *st = &ctx->net->stages[s];
    return st->count ? ctx->out[st->first + st->count - 1] : layer_input(ctx, s, st->first);
}

/* Forward of layer i; relu != 0 (batch norm only) applies the following ReLU in the same pass,
 * pool != 0 the 2x2 max pool after the ReLU too. */
static void layer_forward(const struct avemo_net *net, float *stats, avemo_nn_ctx *ctx, int s, int i, int train,
                          int B, int relu, int pool)
{
    const struct nn_layer *l = &net->layers[i];
    const struct nn_fwd a = {
        .net = net, .ctx = ctx, .i = i, .B = B, .train = train, .relu = relu,
        .in = layer_input(ctx, s, i), .w = net->params + l->w_off, .b = net->params + l->b_off,
        .y = pool ? NULL : ctx->act[relu ? i + 1 : i], .stats = stats, .pool_y = pool ? ctx->act[i + 2] : NULL,
    };
    assert(!relu || (l->op == NN_BN && i + 1 < net->nlayers && net->layers[i + 1].op == NN_RELU));
    assert(!pool || (relu && train && net->layers[i + 2].op == NN_MAXPOOL && ctx->act[i + 2]));
    assert(l->first_of_stage || nn_in_size(l) == nn_out_size(l - 1)); /* shapes chain within a stage */
    assert(B >= 1 && B <= ctx->max_batch);
    const float *y = nn_layer_type_of(l)->forward(l, &a);
    ctx->out[i] = y;
    if (relu) ctx->out[i + 1] = y; /* NULL with the pool: not kept (made again by the backward) */
    if (pool) ctx->out[i + 2] = a.pool_y;
}

/* Batch norm then ReLU: the ReLU runs inside the batch norm's pass, in every context. */
static int bn_relu_pair(const struct avemo_net *net, int i, int end)
{
    return net->layers[i].op == NN_BN && i + 1 < end && net->layers[i + 1].op == NN_RELU;
}

/* Batch norm, ReLU and a 2x2 max pool from layer i: in training, the pool reads each plane of
 * the ReLU's output right after the batch norm wrote it, instead of in a pass of its own. */
static int bn_relu_pool_run(const struct avemo_net *net, int i, int end)
{
    return bn_relu_pair(net, i, end) && i + 2 < end && net->layers[i + 2].op == NN_MAXPOOL &&
           net->layers[i + 2].k == 2;
}

/* Inference-only contexts run "conv, bn, relu" as one convolution: the batch norm's running
 * statistics fold into a per-channel scale and shift, and the ReLU joins the same pass over the
 * output.  The intermediate outputs are not kept, which is why training contexts (whose
 * backward needs them) never fuse.  Returns the number of layers done. */
static int forward_fused_conv(const struct avemo_net *net, avemo_nn_ctx *ctx, int s, int i, int end, int B)
{
    const struct nn_layer *l = &net->layers[i];
    const float *scale = NULL, *shift = net->params + l->b_off;
    int j = i + 1;
    if (j < end && net->layers[j].op == NN_BN) {
        const struct nn_layer *bn = &net->layers[j];
        float *sc = ctx->bn_mean + bn->s_off / 2, *sh = ctx->bn_rstd + bn->s_off / 2; /* free in inference */
        const float *gamma = net->params + bn->w_off, *beta = net->params + bn->b_off;
        const float *mean = net->stats + bn->s_off, *var = mean + bn->in_c;
        for (int c = 0; c < bn->in_c; c++) {
            sc[c] = gamma[c] / sqrtf(var[c] + NN_BN_EPS);
            sh[c] = (shift[c] - mean[c]) * sc[c] + beta[c];
        }
        scale = sc;
        shift = sh;
        j++;
    }
    int relu = j < end && net->layers[j].op == NN_RELU;
    if (relu) j++;
    float *y = ctx->act[j - 1];
    const float *wg_ready = net->prepared ? net->prepared[i] : NULL;
    nn_conv_infer(l, net->params + l->w_off, wg_ready, layer_input(ctx, s, i), y, B, &ctx->work, scale, shift, relu);
    for (int k = i; k < j; k++) ctx->out[k] = y;
    return j - i;
}

static void stage_forward(const struct avemo_net *net, float *stats, avemo_nn_ctx *ctx, int s, int train, int B)
{
    const struct nn_stage *st = &net->stages[s];
    const int end = st->first + st->count;
    for (int i = st->first; i < end;) {
        if (!ctx->training && net->layers[i].op == NN_CONV) {
            i += forward_fused_conv(net, ctx, s, i, end, B);
        } else if (train && bn_relu_pool_run(net, i, end)) {
            layer_forward(net, stats, ctx, s, i, train, B, 1, 1);
            i += 3;
        } else if (bn_relu_pair(net, i, end)) {
            layer_forward(net, stats, ctx, s, i, train, B, 1, 0);
            i += 2;
        } else {
            layer_forward(net, stats, ctx, s, i, train, B, 0, 0);
            i++;
        }
    }
}

/* Rows of the branch outputs side by side; bit i of repeat: in[i] has one row, used for every n. */
static void concat_forward(int count, const float *const *in, const size_t *sizes, unsigned repeat, float *out, int B)
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

/* The context is net's and batch fits it. */
static enum avemo_status check_ctx_batch(const struct avemo_net *net, const avemo_nn_ctx *ctx, int batch,
                                         struct avemo_error *err)
{
    /* The same pipeline text gives the same layers: a context holds no parameters, only scratch. */
    if (ctx->net != net && strcmp(ctx->net->pipeline, net->pipeline) != 0)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: the context was created for another network", net->name);
    if (batch < 1 || batch > ctx->max_batch)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: batch %d not in 1..%d (the context's size)", net->name,
                          batch, ctx->max_batch);
    return AVEMO_OK;
}

static enum avemo_status run_forward(const struct avemo_net *net, float *stats, avemo_nn_ctx *ctx,
                                     const float *const *inputs, int batch, unsigned shared, int train,
                                     const float **logits, struct avemo_error *err)
{
    enum avemo_status bad = check_ctx_batch(net, ctx, batch, err);
    if (bad) return bad;
    for (int s = 0; s < net->ninputs; s++) {
        if (!inputs || !inputs[s])
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: input '%s' is missing", net->name,
                              net->stages[s].name);
        ctx->inputs[s] = inputs[s];
    }
    if (train) {
        for (int i = 0; i < net->nlayers; i++) {
            const struct nn_layer *l = &net->layers[i];
            if (l->op == NN_BN && (size_t)batch * l->in_h * l->in_w < 2)
                return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                                  "%s: layer %s (batch norm) needs more than one value per channel in training; "
                                  "use a batch of at least 2", net->name, l->name);
        }
    }
    ctx->batch = batch;
    ctx->last_train = train;
    ctx->last_shared = shared;
    ctx->grad_valid = 0;
    const float *branch_out[AVEMO_NN_MAX_INPUTS];
    size_t sizes[AVEMO_NN_MAX_INPUTS];
    for (int s = 0; s < net->ninputs; s++) {
        const struct nn_stage *st = &net->stages[s];
        ctx->stage_batch[s] = shared >> s & 1u ? 1 : batch;
        stage_forward(net, stats, ctx, s, train, ctx->stage_batch[s]);
        branch_out[s] = stage_output(ctx, s);
        sizes[s] = st->count ? nn_out_size(&net->layers[st->first + st->count - 1]) : (size_t)st->c * st->h * st->w;
    }
    concat_forward(net->ninputs, branch_out, sizes, shared, ctx->concat, batch);
    const int head = net->ninputs;
    ctx->stage_batch[head] = batch;
    stage_forward(net, stats, ctx, head, train, batch);
    *logits = stage_output(ctx, head);
    return AVEMO_OK;
}

enum avemo_status avemo_net_forward_head(const avemo_net *net, avemo_nn_ctx *ctx, const float *head_input, int batch,
                                         const float **logits, struct avemo_error *err)
{
    enum avemo_status bad = check_ctx_batch(net, ctx, batch, err);
    if (bad) return bad;
    if (head_input != ctx->concat) memmove(ctx->concat, head_input, sizeof(float) * batch * net->concat_size);
    ctx->batch = batch;
    ctx->last_train = 0;
    ctx->last_shared = 0;
    ctx->grad_valid = 0;
    for (int s = 0; s < net->ninputs; s++) ctx->stage_batch[s] = 0; /* the branches did not run */
    ctx->stage_batch[net->ninputs] = batch;
    stage_forward(net, NULL, ctx, net->ninputs, 0, batch);
    *logits = stage_output(ctx, net->ninputs);
    return AVEMO_OK;
}

enum avemo_status avemo_net_forward(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs, int batch,
                                    const float **logits, struct avemo_error *err)
{
    return run_forward(net, NULL, ctx, inputs, batch, 0, 0, logits, err);
}

enum avemo_status avemo_net_forward_shared(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                           int batch, unsigned shared_inputs, const float **logits,
                                           struct avemo_error *err)
{
    if (shared_inputs >> net->ninputs)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: shared input mask 0x%x names inputs the network lacks",
                          net->name, shared_inputs);
    return run_forward(net, NULL, ctx, inputs, batch, shared_inputs, 0, logits, err);
}

enum avemo_status avemo_net_forward_train(avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                          int batch, const float **logits, struct avemo_error *err)
{
    if (!ctx->training)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: training forward on an inference-only context",
                          net->name);
    return run_forward(net, net->stats, ctx, inputs, batch, 0, 1, logits, err);
}

/* ---- loss and backward ---- */

/* Labels in range and class weights that do not sum to 0 over the batch. */
static enum avemo_status check_label_array(const avemo_net *net, const avemo_nn_ctx *ctx, const int *labels,
                                           const struct avemo_nn_loss *opt, struct avemo_error *err)
{
    for (int n = 0; n < ctx->batch; n++)
        if (labels[n] < 0 || labels[n] >= net->classes)
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: label %d of sample %d not in 0..%d", net->name,
                              labels[n], n, net->classes - 1);
    if (opt && opt->class_weights) {
        double sum = 0.0;
        for (int n = 0; n < ctx->batch; n++) sum += opt->class_weights[labels[n]];
        for (int c = 0; c < net->classes; c++)
            if (!(opt->class_weights[c] >= 0.0f))
                return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: class weight %d is negative", net->name, c);
        if (!(sum > 0.0))
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: the batch's class weights sum to 0", net->name);
    }
    return AVEMO_OK;
}

/* Distillation targets: a weight in [0, 1] and finite, non-negative probabilities. */
static enum avemo_status check_soft_targets(const avemo_net *net, const avemo_nn_ctx *ctx,
                                            const struct avemo_nn_loss *opt, struct avemo_error *err)
{
    if (!(opt->soft_weight >= 0.0f && opt->soft_weight <= 1.0f))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: soft-target weight %g not in [0, 1]", net->name,
                          (double)opt->soft_weight);
    for (size_t i = 0; i < (size_t)ctx->batch * net->classes; i++)
        /* 1 + 1e-5: an average of several probabilities of exactly 1 may round just above it */
        if (!(opt->soft_targets[i] >= 0.0f && opt->soft_targets[i] <= 1.0f + 1e-5f))
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: soft target %.9g of sample %zu is not a probability",
                              net->name, (double)opt->soft_targets[i], i / (size_t)net->classes);
    return AVEMO_OK;
}

static enum avemo_status check_labels(const avemo_net *net, const avemo_nn_ctx *ctx, const int *labels,
                                      const struct avemo_nn_loss *opt, struct avemo_error *err)
{
    if (ctx->batch < 1)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: loss before any forward", net->name);
    if (opt && !(opt->label_smoothing >= 0.0f && opt->label_smoothing <= 1.0f))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: label smoothing %g not in [0, 1]", net->name,
                          (double)opt->label_smoothing);
    if (opt && opt->mix_labels && !(opt->mix_lambda >= 0.0f && opt->mix_lambda <= 1.0f))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: mixup weight %g not in [0, 1]", net->name,
                          (double)opt->mix_lambda);
    enum avemo_status st = check_label_array(net, ctx, labels, opt, err);
    if (!st && opt && opt->mix_labels) st = check_label_array(net, ctx, opt->mix_labels, opt, err);
    if (!st && opt && opt->soft_targets) st = check_soft_targets(net, ctx, opt, err);
    return st;
}

/* The loss of the last forward, with its gradient in dlogits (NULL: none; scratch then too). */
static float loss_of(const avemo_net *net, avemo_nn_ctx *ctx, const int *labels, const struct avemo_nn_loss *opt,
                     float *dlogits, float *scratch)
{
    const float *logits = stage_output(ctx, net->ninputs);
    const float *w = opt ? opt->class_weights : NULL;
    const float e = opt ? opt->label_smoothing : 0.0f;
    const int B = ctx->batch, C = net->classes;
    float value = nn_softmax_xent(logits, labels, B, C, w, e, ctx->probs, dlogits);
    if (opt && opt->mix_labels) {
        const float lam = opt->mix_lambda;
        float other = nn_softmax_xent(logits, opt->mix_labels, B, C, w, e, ctx->probs, scratch);
        if (dlogits)
            for (size_t i = 0; i < (size_t)B * C; i++) dlogits[i] = lam * dlogits[i] + (1.0f - lam) * scratch[i];
        value = lam * value + (1.0f - lam) * other;
    }
    if (!opt || !opt->soft_targets) return value;
    const float sw = opt->soft_weight;
    if (dlogits)
        for (size_t i = 0; i < (size_t)B * C; i++) dlogits[i] *= 1.0f - sw;
    float soft = nn_softmax_soft_xent(logits, opt->soft_targets, B, C, ctx->probs, sw, dlogits);
    return (1.0f - sw) * value + sw * soft;
}

enum avemo_status avemo_net_loss(const avemo_net *net, avemo_nn_ctx *ctx, const int *labels,
                                 const struct avemo_nn_loss *opt, float *loss, struct avemo_error *err)
{
    enum avemo_status st = check_labels(net, ctx, labels, opt, err);
    if (st) return st;
    *loss = loss_of(net, ctx, labels, opt, NULL, NULL);
    return AVEMO_OK;
}

/* Backward of layer i: dout is the gradient of its output; din (NULL when not needed)
 * receives the gradient of its input.  relu_out (batch norm only): dout is the gradient of the
 * following ReLU, whose backward is folded in. */
static void layer_backward(const struct avemo_net *net, avemo_nn_ctx *ctx, int s, int i, const float *dout,
                           int relu, const float *pool_out, float *din)
{
    const struct nn_layer *l = &net->layers[i];
    const struct nn_bwd a = {
        .net = net, .ctx = ctx, .i = i, .B = ctx->batch,
        .in = layer_input(ctx, s, i), .w = net->params + l->w_off, .dout = dout, .relu = relu,
        .relu_out = relu ? ctx->out[i + 1] : NULL, .pool_out = pool_out,
        .relu_keep = pool_out && ctx->keep_grad ? ctx->keep_grad[i + 1] : NULL,
        .dw = ctx->grads + l->w_off, .db = ctx->grads + l->b_off, .din = din,
    };
    nn_layer_type_of(l)->backward(l, &a);
}

/* Batch norm, ReLU, then a 2x2 max pool ending at layer i: one backward pass (struct nn_bn_pool,
 * whose scratch bn_buffers sized). */
static int bn_relu_pool_triple(const struct avemo_net *net, int first, int i, int end)
{
    return i - 2 >= first && bn_relu_pool_run(net, i - 2, end);
}

/* Runs the layers of stage s backwards from dout (in one of the ping-pong buffers);
 * the gradient of the stage input goes to din_stage (NULL for a network input). */
static void stage_backward(const struct avemo_net *net, avemo_nn_ctx *ctx, int s, const float *dout,
                           float *din_stage)
{
    const struct nn_stage *st = &net->stages[s];
    const int end = st->first + st->count;
    for (int i = end - 1; i >= st->first;) {
        /* A batch norm + ReLU pair (fused in the forward too) in one backward pass, with the 2x2
         * max pool after them if there is one. */
        const int triple = bn_relu_pool_triple(net, st->first, i, end);
        const int pair = triple || (i > st->first && bn_relu_pair(net, i - 1, end));
        const int first = triple ? i - 2 : pair ? i - 1 : i;
        float *din = first == st->first ? din_stage : (dout == ctx->dbuf[0] ? ctx->dbuf[1] : ctx->dbuf[0]);
        if (ctx->keep_grad && ctx->keep_grad[i]) /* dout is the gradient of layer i's output */
            memcpy(ctx->keep_grad[i], dout, sizeof(float) * ctx->batch * nn_out_size(&net->layers[i]));
        layer_backward(net, ctx, s, first, dout, pair, triple ? ctx->out[i] : NULL, din);
        dout = din;
        i = first - 1;
    }
}

static void backward_from_dbuf(const avemo_net *net, avemo_nn_ctx *ctx);

enum avemo_status avemo_net_backward(const avemo_net *net, avemo_nn_ctx *ctx, const int *labels,
                                     const struct avemo_nn_loss *opt, float *loss, struct avemo_error *err)
{
    if (!ctx->training)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: backward on an inference-only context", net->name);
    if (ctx->batch >= 1 && ctx->stage_batch[0] == 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: backward after a head-only forward", net->name);
    enum avemo_status st = check_labels(net, ctx, labels, opt, err);
    if (st) return st;
    memset(ctx->grads, 0, sizeof(float) * net->nparams);
    /* dbuf[1] is free until the head's backward starts. */
    float value = loss_of(net, ctx, labels, opt, ctx->dbuf[0], ctx->dbuf[1]);
    if (loss) *loss = value;
    backward_from_dbuf(net, ctx);
    return AVEMO_OK;
}

/* The backward of the last forward from the gradient of the logits in dbuf[0]. */
static void backward_from_dbuf(const avemo_net *net, avemo_nn_ctx *ctx)
{
    const int B = ctx->batch;
    stage_backward(net, ctx, net->ninputs, ctx->dbuf[0], ctx->dconcat);
    size_t sizes[AVEMO_NN_MAX_INPUTS];
    for (int s = 0; s < net->ninputs; s++) {
        const struct nn_stage *bs = &net->stages[s];
        sizes[s] = bs->count ? nn_out_size(&net->layers[bs->first + bs->count - 1]) : (size_t)bs->c * bs->h * bs->w;
    }
    size_t offset = 0;
    for (int s = 0; s < net->ninputs; s++) {
        /* The slice of the head's input gradient that belongs to branch s. */
        for (int n = 0; n < B; n++)
            memcpy(ctx->dbuf[0] + n * sizes[s], ctx->dconcat + n * net->concat_size + offset, sizeof(float) * sizes[s]);
        offset += sizes[s];
        stage_backward(net, ctx, s, ctx->dbuf[0], NULL);
    }
    ctx->grad_valid = 1;
}

enum avemo_status avemo_net_backward_logits(const avemo_net *net, avemo_nn_ctx *ctx, const float *dlogits,
                                            struct avemo_error *err)
{
    if (!ctx->training)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: backward on an inference-only context", net->name);
    if (ctx->batch < 1 || ctx->stage_batch[0] == 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: backward without a whole forward before it", net->name);
    if (ctx->last_shared)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                          "%s: backward after a forward with shared inputs (repeat the shared sample instead)",
                          net->name);
    memcpy(ctx->dbuf[0], dlogits, sizeof(float) * ctx->batch * net->classes);
    memset(ctx->grads, 0, sizeof(float) * net->nparams);
    backward_from_dbuf(net, ctx);
    return AVEMO_OK;
}
