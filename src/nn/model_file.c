/* Model files (.avm), little-endian:
 *
 *   "AVEMOMDL"                      8 bytes magic
 *   u32 version (1), u32 reserved   
 *   u64 file size                   (detects truncation before anything else is read)
 *   u32 n, n bytes                  the pipeline text the network was built from
 *   u32 n, n x (u32 len, bytes)     labels (0 or one per class)
 *   u32 n, n x (u32 len, name, u64 count, count x f32)   feature arrays ("audio.mean", ...)
 *   u64 n, n x f32                  parameters (avemo's flat order)
 *   u64 n, n x f32                  batch-norm running statistics
 *   u32 crc32 of every byte before it
 */
#include "nn/nn_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AVM_MAGIC "AVEMOMDL"
#define AVM_VERSION 1u
#define AVM_HEADER 24
#define AVM_MAX_BYTES ((size_t)1 << 30)

/* ---- writing: a growing buffer ---- */

struct wbuf {
    uint8_t *data;
    size_t len, cap;
    int failed;
};

static void put(struct wbuf *b, const void *src, size_t n)
{
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->failed = 1;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void put_u32(struct wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct wbuf *b, const char *s)
{
    put_u32(b, (uint32_t)strlen(s));
    put(b, s, strlen(s));
}

enum avemo_status avemo_net_save(const avemo_net *net, const char *path, struct avemo_error *err)
{
    struct wbuf b = {0};
    put(&b, AVM_MAGIC, 8);
    put_u32(&b, AVM_VERSION);
    put_u32(&b, 0);
    put_u64(&b, 0); /* file size, patched below */
    put_str(&b, net->pipeline);
    put_u32(&b, net->labels ? (uint32_t)net->classes : 0);
    for (int i = 0; net->labels && i < net->classes; i++) put_str(&b, net->labels[i]);
    put_u32(&b, (uint32_t)net->narrays);
    for (int i = 0; i < net->narrays; i++) {
        put_str(&b, net->arrays[i].name);
        put_u64(&b, net->arrays[i].count);
        put(&b, net->arrays[i].data, sizeof(float) * net->arrays[i].count);
    }
    put_u64(&b, net->nparams);
    put(&b, net->params, sizeof(float) * net->nparams);
    put_u64(&b, net->nstats);
    put(&b, net->stats, sizeof(float) * net->nstats);
    if (b.failed) {
        free(b.data);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory while writing the model", path);
    }
    uint64_t total = b.len + 4;
    memcpy(b.data + 16, &total, 8);
    uint32_t crc = avemo_crc32(0, b.data, b.len);
    put_u32(&b, crc);
    /* Write beside the target and rename, so a reader never sees half a model. */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(b.data);
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(b.data);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    int ok = !b.failed && fwrite(b.data, 1, b.len, f) == b.len;
    if (fclose(f) != 0) ok = 0;
    free(b.data);
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return AVEMO_OK;
}

/* ---- reading: a cursor that refuses to run past the end ---- */

struct rbuf {
    const uint8_t *data;
    size_t pos, len;
    int bad;
};

static const void *take(struct rbuf *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const void *p = r->data + r->pos;
    r->pos += n;
    return p;
}

static uint32_t take_u32(struct rbuf *r)
{
    uint32_t v = 0;
    const void *p = take(r, 4);
    if (p) memcpy(&v, p, 4);
    return v;
}

static uint64_t take_u64(struct rbuf *r)
{
    uint64_t v = 0;
    const void *p = take(r, 8);
    if (p) memcpy(&v, p, 8);
    return v;
}

/* A string of at most max bytes, copied into a NUL-terminated buffer (malloc'ed). */
static char *take_str(struct rbuf *r, size_t max)
{
    uint32_t n = take_u32(r);
    if (r->bad || n > max) {
        r->bad = 1;
        return NULL;
    }
    const char *p = take(r, n);
    if (!p || memchr(p, 0, n)) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* The checks on the container: magic, version, size, checksum, each with its own status. */
static enum avemo_status check_container(const char *path, const uint8_t *data, size_t size, struct avemo_error *err)
{
    if (size < 8 || memcmp(data, AVM_MAGIC, 8) != 0)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not an avemo model file (wrong magic)", path);
    if (size < AVM_HEADER)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated model file (%zu bytes, the header alone is %d)",
                          path, size, AVM_HEADER);
    uint32_t version;
    uint64_t declared;
    memcpy(&version, data + 8, 4);
    memcpy(&declared, data + 16, 8);
    if (version != AVM_VERSION)
        return avemo_fail(err, AVEMO_ERR_VERSION, "%s: model file version %u, this build reads version %u", path,
                          version, AVM_VERSION);
    if (declared > size)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated model file (%zu of %llu bytes)", path, size,
                          (unsigned long long)declared);
    if (declared < size || declared < AVM_HEADER + 4)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: model file has %zu bytes but its header says %llu", path,
                          size, (unsigned long long)declared);
    uint32_t stored;
    memcpy(&stored, data + size - 4, 4);
    uint32_t crc = avemo_crc32(0, data, size - 4);
    if (crc != stored)
        return avemo_fail(err, AVEMO_ERR_CHECKSUM, "%s: model file is corrupt (CRC32 %08x, expected %08x)", path, crc,
                          stored);
    return AVEMO_OK;
}

static enum avemo_status parse_model(const char *path, const uint8_t *data, size_t size, avemo_net **out,
                                     struct avemo_error *err)
{
    struct rbuf r = {data, AVM_HEADER, size - 4, 0};
    avemo_net *net = NULL;
    char *pipeline = take_str(&r, AVEMO_NN_MAX_PIPELINE_BYTES);
    if (!pipeline) return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: bad pipeline text in the model file", path);
    enum avemo_status st = avemo_net_create(pipeline, path, &net, err);
    free(pipeline);
    if (st) return st;
    uint32_t nlabels = take_u32(&r);
    if (nlabels && nlabels != (uint32_t)net->classes) r.bad = 1;
    char *labels[AVEMO_MAX_CLASSES];
    uint32_t got = 0;
    for (; !r.bad && got < nlabels; got++) {
        labels[got] = take_str(&r, 64);
        if (!labels[got]) break;
    }
    if (!r.bad && nlabels) st = avemo_net_set_labels(net, (const char *const *)labels, (int)nlabels, err);
    for (uint32_t i = 0; i < got; i++) free(labels[i]);
    uint32_t narrays = take_u32(&r);
    if (narrays > NN_MAX_ARRAYS) r.bad = 1;
    for (uint32_t i = 0; !st && !r.bad && i < narrays; i++) {
        char *name = take_str(&r, sizeof net->arrays[0].name - 1);
        uint64_t count = take_u64(&r);
        const void *floats = count <= AVEMO_NN_MAX_ACT ? take(&r, count * sizeof(float)) : NULL;
        if (!name || !floats || !*name) r.bad = 1;
        else {
            float *copy = malloc(sizeof(float) * (count + 1));
            if (copy) memcpy(copy, floats, sizeof(float) * count);
            st = copy ? avemo_net_set_array(net, name, copy, (size_t)count, err)
                      : avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
            free(copy);
        }
        free(name);
    }
    if (st) {
        avemo_net_free(net);
        return st;
    }
    uint64_t nparams = take_u64(&r);
    if (!r.bad && nparams != net->nparams) {
        st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: %llu parameters stored but its network has %zu", path,
                        (unsigned long long)nparams, net->nparams);
        avemo_net_free(net);
        return st;
    }
    const void *params = take(&r, net->nparams * sizeof(float));
    uint64_t nstats = take_u64(&r);
    if (!r.bad && nstats != net->nstats) r.bad = 1;
    const void *stats = take(&r, net->nstats * sizeof(float));
    if (r.bad || r.pos != r.len) {
        avemo_net_free(net);
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: inconsistent model file (sections do not add up)", path);
    }
    memcpy(net->params, params, net->nparams * sizeof(float));
    memcpy(net->stats, stats, net->nstats * sizeof(float));
    *out = net;
    return AVEMO_OK;
}

enum avemo_status avemo_net_load(const char *path, avemo_net **out, struct avemo_error *err)
{
    uint8_t *data;
    size_t size;
    *out = NULL;
    enum avemo_status st = avemo_read_file(path, AVM_MAX_BYTES, &data, &size, err);
    if (st) return st;
    st = check_container(path, data, size, err);
    if (!st) st = parse_model(path, data, size, out, err);
    free(data);
    return st;
}

static const struct nn_layer *find_layer(const avemo_net *net, const char *name)
{
    for (int i = 0; i < net->nlayers; i++)
        if (strcmp(net->layers[i].name, name) == 0) return &net->layers[i];
    return NULL;
}

enum avemo_status avemo_net_load_params(avemo_net *net, const char *path, const char *prefix, int *copied,
                                        struct avemo_error *err)
{
    avemo_net *src;
    if (copied) *copied = 0;
    enum avemo_status st = avemo_net_load(path, &src, err);
    if (st) return st;
    size_t plen = strlen(prefix);
    int n = 0;
    /* Check every matching layer first so that a mismatch leaves net unchanged. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < net->nlayers; i++) {
            struct nn_layer *l = &net->layers[i];
            if (strncmp(l->name, prefix, plen) != 0 || !nn_layer_has_params(l)) continue;
            const struct nn_layer *s = find_layer(src, l->name);
            if (!s) {
                st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: has no layer %s", path, l->name);
                goto done;
            }
            if (s->op != l->op || s->w_n != l->w_n || s->b_n != l->b_n || s->in_c != l->in_c ||
                s->out_c != l->out_c || s->k != l->k) {
                st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: layer %s is '%s' there but '%s' here", path, l->name,
                                s->spec, l->spec);
                goto done;
            }
            if (pass == 0) continue;
            memcpy(net->params + l->w_off, src->params + s->w_off, sizeof(float) * (l->w_n + l->b_n));
            if (l->op == NN_BN) memcpy(net->stats + l->s_off, src->stats + s->s_off, sizeof(float) * 2 * l->in_c);
            n++;
        }
    }
    if (n == 0) st = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "%s: no layer with parameters named '%s...'", path, prefix);
    if (copied) *copied = n;
done:
    avemo_net_free(src);
    return st;
}
