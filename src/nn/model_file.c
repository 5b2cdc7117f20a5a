/* Model files (.avm), little-endian:
 *
 *   "AVEMOMDL"                      8 bytes magic
 *   u32 version (2), u32 reserved
 *   u64 file size                   (detects truncation before anything else is read)
 *   u32 n, n bytes                  the pipeline text the network was built from
 *   u32 n, n x (u32 len, bytes)     labels (0 or one per class)
 *   u32 n, n x (u32 len, name, u64 count, count x f32)   feature arrays ("audio.mean", ...)
 *   u32 has_record (0 or 1), u64 n,  the training record (version 2 only): the files the model
 *   n x (u8 part, 32 bytes SHA-256,  was trained (part 0) and validated (part 1) on, by the
 *        u32 len, name)              SHA-256 of their bytes and their name relative to the --data
 *                                    they came from; has_record 0 (and n 0): nothing is known
 *   u64 n, n x f32                  parameters (avemo's flat order)
 *   u64 n, n x f32                  batch-norm running statistics
 *   u32 crc32 of every byte before it
 *
 * Written and read with the binary writer and reader of core (avemo_binw / avemo_binr):
 * little-endian whatever the host; the CRC is zlib's CRC-32 (FFmpeg's av_crc).  Files are
 * written in version 2; version 1 (the same without the training record) is still read, as a
 * model without a record.  A file of another version is AVEMO_ERR_VERSION.
 */
#include "nn/nn_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AVM_MAGIC "AVEMOMDL"
#define AVM_VERSION 2u
#define AVM_OLDEST_VERSION 1u
#define AVM_HEADER 24
#define AVM_MAX_BYTES ((size_t)1 << 30)

/* ---- writing (through the binary writer of core: little-endian, CRC, PATH.tmp + rename) ---- */

/* The file's size, stored in its header so that truncation is seen before anything is read. */
static uint64_t file_size(const avemo_net *net)
{
    uint64_t n = AVM_HEADER + 4 + strlen(net->pipeline) + 4;
    for (int i = 0; net->labels && i < net->classes; i++) n += 4 + strlen(net->labels[i]);
    n += 4;
    for (int i = 0; i < net->narrays; i++) n += 4 + strlen(net->arrays[i].name) + 8 + 4 * (uint64_t)net->arrays[i].count;
    n += 4 + 8;
    for (size_t i = 0; i < net->nrecord; i++) n += 1 + AVEMO_SHA256_SIZE + 4 + strlen(net->record[i].name);
    return n + 8 + 4 * (uint64_t)net->nparams + 8 + 4 * (uint64_t)net->nstats + 4;
}

enum avemo_status avemo_net_save(const avemo_net *net, const char *path, struct avemo_error *err)
{
    if (net->record_skipped)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: loaded without its training record (for inference only): "
                          "not saved to %s", net->name, path);
    avemo_binw *w;
    enum avemo_status st = avemo_binw_create(path, &w, err);
    if (st) return st;
    avemo_binw_bytes(w, AVM_MAGIC, 8);
    avemo_binw_u32(w, AVM_VERSION);
    avemo_binw_u32(w, 0);
    avemo_binw_u64(w, file_size(net));
    avemo_binw_str(w, net->pipeline, strlen(net->pipeline));
    avemo_binw_u32(w, net->labels ? (uint32_t)net->classes : 0);
    for (int i = 0; net->labels && i < net->classes; i++) avemo_binw_str(w, net->labels[i], strlen(net->labels[i]));
    avemo_binw_u32(w, (uint32_t)net->narrays);
    for (int i = 0; i < net->narrays; i++) {
        avemo_binw_str(w, net->arrays[i].name, strlen(net->arrays[i].name));
        avemo_binw_u64(w, net->arrays[i].count);
        avemo_binw_f32(w, net->arrays[i].data, net->arrays[i].count);
    }
    avemo_binw_u32(w, (uint32_t)net->has_record);
    avemo_binw_u64(w, net->nrecord);
    for (size_t i = 0; i < net->nrecord; i++) {
        avemo_binw_u8(w, (uint8_t)net->record[i].part);
        avemo_binw_bytes(w, net->record[i].sha256, AVEMO_SHA256_SIZE);
        avemo_binw_str(w, net->record[i].name, strlen(net->record[i].name));
    }
    avemo_binw_u64(w, net->nparams);
    avemo_binw_f32(w, net->params, net->nparams);
    avemo_binw_u64(w, net->nstats);
    avemo_binw_f32(w, net->stats, net->nstats);
    assert(avemo_binw_offset(w) + 4 == file_size(net)); /* the header's size is the file's */
    return avemo_binw_finish(w, err);
}

/* ---- reading: the binary reader of core over the file in memory ---- */

/* A string of at most max bytes, copied into a NUL-terminated buffer (malloc'ed). */
static char *take_str(struct avemo_binr *r, size_t max)
{
    uint32_t n = avemo_binr_u32(r);
    if (r->bad || n > max) {
        r->bad = 1;
        return NULL;
    }
    const char *p = avemo_binr_take(r, n);
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
static enum avemo_status check_container(const char *path, const uint8_t *data, size_t size, uint32_t *version,
                                         struct avemo_error *err)
{
    if (size < 8 || memcmp(data, AVM_MAGIC, 8) != 0)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: not an avemo model file (wrong magic)", path);
    if (size < AVM_HEADER)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated model file (%zu bytes, the header alone is %d)",
                          path, size, AVM_HEADER);
    struct avemo_binr r;
    avemo_binr_memory(&r, data + 8, AVM_HEADER - 8);
    *version = avemo_binr_u32(&r);
    avemo_binr_u32(&r); /* reserved */
    uint64_t declared = avemo_binr_u64(&r);
    if (*version < AVM_OLDEST_VERSION || *version > AVM_VERSION)
        return avemo_fail(err, AVEMO_ERR_VERSION, "%s: model file version %u, this build reads versions %u to %u", path,
                          *version, AVM_OLDEST_VERSION, AVM_VERSION);
    if (declared > size)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: truncated model file (%zu of %llu bytes)", path, size,
                          (unsigned long long)declared);
    if (declared < size || declared < AVM_HEADER + 4)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: model file has %zu bytes but its header says %llu", path,
                          size, (unsigned long long)declared);
    avemo_binr_memory(&r, data + size - 4, 4);
    uint32_t stored = avemo_binr_u32(&r);
    uint32_t crc = avemo_crc32(0, data, size - 4);
    if (crc != stored)
        return avemo_fail(err, AVEMO_ERR_CHECKSUM, "%s: model file is corrupt (CRC32 %08x, expected %08x)", path, crc,
                          stored);
    return AVEMO_OK;
}

/* One record entry's fields, name not copied (*name points into the file, len bytes). */
static void take_entry(struct avemo_binr *r, int *part, const uint8_t **sha, const char **name, uint32_t *len)
{
    *part = avemo_binr_u8(r);
    *sha = avemo_binr_take(r, AVEMO_SHA256_SIZE);
    *len = avemo_binr_u32(r);
    *name = r->bad || *len > AVEMO_RECORD_NAME_MAX ? NULL : (const char *)avemo_binr_take(r, *len);
    if (!*sha || *part > 1 || !*name || memchr(*name, 0, *len)) r->bad = 1;
}

/* The training record (version 2), handed to the net when the section is sound.  Two passes:
 * the first checks the entries and sizes the names, the second copies them into one block. */
static enum avemo_status read_record(struct avemo_binr *r, avemo_net *net, const char *path, struct avemo_error *err)
{
    uint32_t has = avemo_binr_u32(r);
    uint64_t n = avemo_binr_u64(r);
    /* Each entry takes at least 37 bytes: a count the rest of the file cannot hold is refused
     * before anything is allocated for it. */
    if (r->bad || has > 1 || (!has && n) || n > AVEMO_RECORD_MAX_ITEMS ||
        n > (r->size - r->pos) / (1 + AVEMO_SHA256_SIZE + 4)) {
        r->bad = 1;
        return AVEMO_OK;
    }
    size_t start = r->pos, bytes = 1;
    int part;
    const uint8_t *sha;
    const char *name;
    uint32_t len;
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        take_entry(r, &part, &sha, &name, &len);
        bytes += (size_t)len + 1;
    }
    if (r->bad || !has) return AVEMO_OK;
    struct avemo_record_entry *e = avemo_alloc_large(sizeof *e * (n ? n : 1)); /* filled below */
    char *names = avemo_alloc_large(bytes);
    if (!e || !names) {
        free(e);
        free(names);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    }
    r->pos = start;
    for (size_t i = 0, at = 0; i < n; i++, at += (size_t)len + 1) {
        take_entry(r, &e[i].part, &sha, &name, &len);
        memcpy(e[i].sha256, sha, AVEMO_SHA256_SIZE);
        e[i].name = memcpy(names + at, name, len);
        e[i].name[len] = 0;
    }
    assert(!r->bad); /* the second pass reads what the first checked */
    enum avemo_status st = nn_record_adopt(net, e, (size_t)n, names, err);
    if (st) {
        free(e);
        free(names);
    }
    return st;
}

/* The record not read: the parameters and statistics, whose sizes the pipeline gives, end the
 * sections, so the reader goes straight to them (the file's CRC was checked whole). */
static void skip_record(struct avemo_binr *r, avemo_net *net)
{
    uint64_t tail = 8 + 4 * (uint64_t)net->nparams + 8 + 4 * (uint64_t)net->nstats;
    if (r->bad || tail > r->size - r->pos) {
        r->bad = 1;
        return;
    }
    r->pos = r->size - (size_t)tail;
    net->record_skipped = 1;
}

static enum avemo_status parse_model(const char *path, const uint8_t *data, size_t size, uint32_t version,
                                     int keep_record, avemo_net **out, struct avemo_error *err)
{
    struct avemo_binr r; /* the sections between the header and the CRC (checked by check_container) */
    avemo_binr_memory_checked(&r, data + AVM_HEADER, size - 4 - AVM_HEADER);
    avemo_net *net = NULL;
    char *pipeline = take_str(&r, AVEMO_NN_MAX_PIPELINE_BYTES);
    if (!pipeline) return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: bad pipeline text in the model file", path);
    enum avemo_status st = avemo_net_create(pipeline, path, &net, err);
    free(pipeline);
    if (st) return st;
    uint32_t nlabels = avemo_binr_u32(&r);
    if (nlabels && nlabels != (uint32_t)net->classes) r.bad = 1;
    char *labels[AVEMO_MAX_CLASSES];
    uint32_t got = 0;
    for (; !r.bad && got < nlabels; got++) {
        labels[got] = take_str(&r, 64);
        if (!labels[got]) break;
    }
    if (!r.bad && nlabels) st = avemo_net_set_labels(net, (const char *const *)labels, (int)nlabels, err);
    for (uint32_t i = 0; i < got; i++) free(labels[i]);
    uint32_t narrays = avemo_binr_u32(&r);
    if (narrays > NN_MAX_ARRAYS) r.bad = 1;
    for (uint32_t i = 0; !st && !r.bad && i < narrays; i++) {
        char *name = take_str(&r, sizeof net->arrays[0].name - 1);
        uint64_t count = avemo_binr_u64(&r);
        float *copy = count <= AVEMO_NN_MAX_ACT ? avemo_alloc_large(sizeof(float) * (count + 1)) : NULL;
        if (count <= AVEMO_NN_MAX_ACT && !copy) st = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
        else if (!name || !copy || !*name || !avemo_binr_f32(&r, copy, (size_t)count)) r.bad = 1;
        else {
            st = nn_net_adopt_array(net, name, copy, (size_t)count, err); /* the net's now */
            copy = NULL;
        }
        free(copy);
        free(name);
    }
    if (!st && !r.bad && version >= 2) {
        if (keep_record) st = read_record(&r, net, path, err);
        else skip_record(&r, net);
    }
    if (st) {
        avemo_net_free(net);
        return st;
    }
    uint64_t nparams = avemo_binr_u64(&r);
    if (!r.bad && nparams != net->nparams) {
        st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: %llu parameters stored but its network has %zu", path,
                        (unsigned long long)nparams, net->nparams);
        avemo_net_free(net);
        return st;
    }
    avemo_binr_f32(&r, net->params, net->nparams);
    uint64_t nstats = avemo_binr_u64(&r);
    if (!r.bad && nstats != net->nstats) r.bad = 1;
    avemo_binr_f32(&r, net->stats, net->nstats);
    if (r.bad || r.pos != r.size) {
        avemo_net_free(net);
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: inconsistent model file (sections do not add up)", path);
    }
    *out = net;
    return AVEMO_OK;
}

static enum avemo_status load(const char *path, int keep_record, avemo_net **out, struct avemo_error *err)
{
    uint8_t *data;
    size_t size;
    *out = NULL;
    enum avemo_status st = avemo_read_file(path, AVM_MAX_BYTES, &data, &size, err);
    if (st) return st;
    uint32_t version = 0;
    st = check_container(path, data, size, &version, err);
    if (!st) st = parse_model(path, data, size, version, keep_record, out, err);
    free(data);
    return st;
}

enum avemo_status avemo_net_load(const char *path, avemo_net **out, struct avemo_error *err)
{
    return load(path, 1, out, err);
}

enum avemo_status avemo_net_load_inference(const char *path, avemo_net **out, struct avemo_error *err)
{
    return load(path, 0, out, err);
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
            nn_net_unprepare(net);
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
