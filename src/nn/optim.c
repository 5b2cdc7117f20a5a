/* Optimisers with PyTorch's exact update rules (torch.optim.Adam, AdamW, SGD in 1.13):
 *   Adam:  g += wd * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *          p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW: p *= 1 - lr * wd, then Adam without the L2 term
 *   SGD:   g += wd * p;  buf = g at the first step, else momentum * buf + g;  p -= lr * buf
 * Gradient clipping as torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when < 1.
 * Frozen layers (transfer learning) are neither clipped, counted in the norm, nor updated. */
#include "nn/nn_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct avemo_optim {
    struct avemo_optim_config cfg;
    const struct avemo_net *net;
    float *m, *v;       /* Adam moments, or SGD momentum buffer in m */
    long step;
    uint8_t *frozen;    /* per layer */
};

enum avemo_status avemo_optim_create(const avemo_net *net, const struct avemo_optim_config *cfg, avemo_optim **out,
                                     struct avemo_error *err)
{
    *out = NULL;
    struct avemo_optim_config c = *cfg;
    if (c.beta1 == 0.0f && c.beta2 == 0.0f) {
        c.beta1 = 0.9f;
        c.beta2 = 0.999f;
    }
    if (c.eps == 0.0f) c.eps = 1e-8f;
    if ((int)c.kind < 0 || c.kind > AVEMO_OPTIM_SGD || !(c.lr > 0.0f) || !(c.beta1 >= 0.0f && c.beta1 < 1.0f) ||
        !(c.beta2 >= 0.0f && c.beta2 < 1.0f) || !(c.weight_decay >= 0.0f) || !(c.momentum >= 0.0f) ||
        !(c.clip_norm >= 0.0f))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG,
                          "%s: optimiser settings out of range (lr > 0, betas in [0, 1), decay, momentum, clip >= 0)",
                          net->name);
    struct avemo_optim *opt = calloc(1, sizeof *opt);
    if (!opt) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", net->name);
    opt->cfg = c;
    opt->net = net;
    opt->m = calloc(net->nparams + 1, sizeof(float));
    opt->v = calloc(net->nparams + 1, sizeof(float));
    opt->frozen = calloc((size_t)net->nlayers + 1, 1);
    if (!opt->m || !opt->v || !opt->frozen) {
        avemo_optim_free(opt);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot allocate optimiser state", net->name);
    }
    *out = opt;
    return AVEMO_OK;
}

void avemo_optim_free(avemo_optim *opt)
{
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    free(opt->frozen);
    free(opt);
}

void avemo_optim_set_lr(avemo_optim *opt, float lr) { opt->cfg.lr = lr; }

enum avemo_status avemo_optim_freeze(avemo_optim *opt, const avemo_net *net, const char *prefix, int frozen,
                                     struct avemo_error *err)
{
    int matched = 0;
    size_t len = strlen(prefix);
    for (int i = 0; i < net->nlayers; i++) {
        if (strncmp(net->layers[i].name, prefix, len) == 0 && nn_layer_has_params(&net->layers[i])) {
            opt->frozen[i] = frozen != 0;
            matched++;
        }
    }
    if (!matched)
        return avemo_fail(err, AVEMO_ERR_NOT_FOUND, "%s: no layer with parameters is named '%s...'", net->name, prefix);
    return AVEMO_OK;
}

#if defined(__SSE2__)
/* Adam without weight decay on the first n - n % 4 values (returned), with SSE's IEEE sqrt and
 * division: every lane gives the scalar loop's result exactly. */
static size_t adam_update_sse(float b1, float b2, float eps, float step_size, float bc2_sqrt, float *p, const float *g,
                              float *m, float *v, size_t n)
{
    const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), va1 = _mm_set1_ps(1.0f - b1),
                 va2 = _mm_set1_ps(1.0f - b2), veps = _mm_set1_ps(eps), vstep = _mm_set1_ps(step_size),
                 vbc2 = _mm_set1_ps(bc2_sqrt);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m128 grad = _mm_loadu_ps(g + i);
        const __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), vb1), _mm_mul_ps(va1, grad));
        const __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), vb2), _mm_mul_ps(_mm_mul_ps(va2, grad), grad));
        const __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), vbc2), veps);
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_sub_ps(_mm_loadu_ps(p + i), _mm_mul_ps(vstep, _mm_div_ps(mi, denom))));
    }
    return i;
}
#endif

static void adam_update(const struct avemo_optim_config *c, long step, float *p, const float *g, float *m, float *v,
                        size_t n)
{
    const int decoupled = c->kind == AVEMO_OPTIM_ADAMW;
    const float b1 = c->beta1, b2 = c->beta2, wd = c->weight_decay;
    const float step_size = (float)(c->lr / (1.0 - pow(c->beta1, (double)step)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)step));
    const float shrink = 1.0f - c->lr * wd;
    size_t i = 0;
#if defined(__SSE2__)
    if (!decoupled && wd == 0.0f) /* the usual case, four at a time: the same operations in the same order */
        i = adam_update_sse(b1, b2, c->eps, step_size, bc2_sqrt, p, g, m, v, n);
#endif
    for (; i < n; i++) {
        float grad = g[i];
        if (decoupled) p[i] *= shrink;
        else if (wd != 0.0f) grad += wd * p[i];
        m[i] = m[i] * b1 + (1.0f - b1) * grad;
        v[i] = v[i] * b2 + (1.0f - b2) * grad * grad;
        float denom = sqrtf(v[i]) / bc2_sqrt + c->eps;
        p[i] -= step_size * (m[i] / denom);
    }
}

static void sgd_update(const struct avemo_optim_config *c, long step, float *p, const float *g, float *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + c->weight_decay * p[i];
        if (c->momentum != 0.0f) {
            buf[i] = step == 1 ? d : c->momentum * buf[i] + d;
            d = buf[i];
        }
        p[i] -= c->lr * d;
    }
}

enum avemo_status avemo_optim_step(avemo_optim *opt, avemo_net *net, avemo_nn_ctx *ctx, float *grad_norm,
                                   struct avemo_error *err)
{
    if (opt->net != net || ctx->net != net || !ctx->grads)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: optimiser, context and network do not belong together",
                          net->name);
    double sq = 0.0;
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        if (opt->frozen[i]) continue;
        const float *g = ctx->grads + l->w_off;
        for (size_t j = 0; j < l->w_n + l->b_n; j++) sq += (double)g[j] * g[j];
    }
    float norm = (float)sqrt(sq);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm))
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "%s: the gradient is not finite (diverged training?)", net->name);
    float scale = 1.0f;
    if (opt->cfg.clip_norm > 0.0f) {
        float coef = opt->cfg.clip_norm / (norm + 1e-6f);
        if (coef < 1.0f) scale = coef;
    }
    opt->step++;
    nn_net_unprepare(net);
    for (int i = 0; i < net->nlayers; i++) {
        const struct nn_layer *l = &net->layers[i];
        size_t n = l->w_n + l->b_n;
        if (opt->frozen[i] || n == 0) continue;
        float *g = ctx->grads + l->w_off;
        if (scale != 1.0f)
            for (size_t j = 0; j < n; j++) g[j] *= scale;
        float *p = net->params + l->w_off, *m = opt->m + l->w_off, *v = opt->v + l->w_off;
        if (opt->cfg.kind == AVEMO_OPTIM_SGD) sgd_update(&opt->cfg, opt->step, p, g, m, n);
        else adam_update(&opt->cfg, opt->step, p, g, m, v, n);
    }
    return AVEMO_OK;
}

/* ---- optimiser state files ----
 *   "AVEMOOPT"   8 bytes magic
 *   u32 version (1), u32 optimiser kind (enum avemo_optim_kind)
 *   u64 step, u64 n (parameters)
 *   n x f32 first moments m, n x f32 second moments v
 *   u32 crc32 of every byte before it
 * Little-endian, written and read with the binary writer and reader of core (avemo_binw /
 * avemo_binr).  Another kind, parameter count or version is refused with its own status. */

#define OPT_MAGIC "AVEMOOPT"
#define OPT_VERSION 1u
#define OPT_HEADER 32

enum avemo_status avemo_optim_save(const avemo_optim *opt, const char *path, struct avemo_error *err)
{
    const size_t n = opt->net->nparams;
    avemo_binw *w;
    enum avemo_status st = avemo_binw_create(path, &w, err);
    if (st) return st;
    avemo_binw_bytes(w, OPT_MAGIC, 8);
    avemo_binw_u32(w, OPT_VERSION);
    avemo_binw_u32(w, (uint32_t)opt->cfg.kind);
    avemo_binw_u64(w, (uint64_t)opt->step);
    avemo_binw_u64(w, n);
    avemo_binw_f32(w, opt->m, n);
    avemo_binw_f32(w, opt->v, n);
    return avemo_binw_finish(w, err);
}

/* The stored CRC (the last 4 bytes) against the bytes before it: checked before anything is used. */
static int crc_matches(const uint8_t *buf, size_t size)
{
    struct avemo_binr r;
    avemo_binr_memory(&r, buf + size - 4, 4);
    return avemo_binr_u32(&r) == avemo_crc32(0, buf, size - 4);
}

enum avemo_status avemo_optim_load(avemo_optim *opt, const char *path, struct avemo_error *err)
{
    const size_t n = opt->net->nparams, want = OPT_HEADER + 8 * n + 4;
    uint8_t *buf;
    size_t size;
    enum avemo_status st = avemo_read_file(path, want + 1, &buf, &size, err);
    if (st == AVEMO_ERR_TOO_LARGE)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: larger than the state of a %zu-parameter network", path, n);
    if (st) return st;
    uint32_t version = 0, kind = 0;
    uint64_t step = 0, count = 0;
    struct avemo_binr r;
    avemo_binr_memory_checked(&r, buf, size); /* its CRC: crc_matches, below */
    if (size >= OPT_HEADER) {
        avemo_binr_bytes(&r, NULL, 8); /* the magic, checked below */
        version = avemo_binr_u32(&r);
        kind = avemo_binr_u32(&r);
        step = avemo_binr_u64(&r);
        count = avemo_binr_u64(&r);
    }
    if (size < 8 || memcmp(buf, OPT_MAGIC, 8) != 0)
        st = avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not an avemo optimiser state (wrong magic)", path);
    else if (size < OPT_HEADER)
        st = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated optimiser state (%zu bytes)", path, size);
    else if (version != OPT_VERSION)
        st = avemo_fail(err, AVEMO_ERR_VERSION, "%s: optimiser state version %u, this build reads %u", path, version,
                        OPT_VERSION);
    else if (count != n || kind != (uint32_t)opt->cfg.kind)
        st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: state of optimiser kind %u with %llu parameters, expected kind %d "
                        "with %zu", path, kind, (unsigned long long)count, (int)opt->cfg.kind, n);
    else if (size != want)
        st = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated optimiser state (%zu of %zu bytes)", path, size, want);
    else if (!crc_matches(buf, size))
        st = avemo_fail(err, AVEMO_ERR_CHECKSUM, "%s: optimiser state is corrupt (CRC32 mismatch)", path);
    else if (step > (uint64_t)1 << 40)
        st = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: step count %llu out of range", path, (unsigned long long)step);
    if (!st) {
        opt->step = (long)step;
        avemo_binr_f32(&r, opt->m, n);
        avemo_binr_f32(&r, opt->v, n);
    }
    free(buf);
    return st;
}
