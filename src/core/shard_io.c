/* A shard's run (its output, resumed after a restart) and the merge of shard outputs.
 * shard.c says which items a shard does and describes the files. */
#include <avemo/core.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINES_MAX_BYTES ((size_t)1 << 30)  /* a shard's lines: 1 GiB (about a million items) */
#define NPY_MAX_BYTES ((size_t)1 << 32)    /* = avemo_read_npy's limit, so that merge can read it */

/* ---- resuming ---- */

/* The complete lines already in path (0 when there is no file); a partial last line is cut
 * off.  With a header, the first line must be it and is not counted.  keep: keep only this
 * many item lines (cut the file after them). */
static enum avemo_status lines_done(const char *path, const char *header, size_t keep, size_t *done,
                                    struct avemo_error *err)
{
    *done = 0;
    struct stat st;
    if (stat(path, &st) != 0) return AVEMO_OK; /* a first run */
    uint8_t *text = NULL;
    size_t size = 0;
    enum avemo_status s = avemo_read_file(path, LINES_MAX_BYTES, &text, &size, err);
    if (s) return s;
    size_t lines = 0, cut = 0, header_len = header ? strlen(header) : 0;
    for (size_t i = 0; i < size; i++) {
        if (text[i] != '\n') continue;
        if (header && lines == 0 && (i != header_len || memcmp(text, header, header_len) != 0)) {
            free(text);
            return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: its first line is not the header of this output: "
                                                       "another job's file? (remove it to start over)", path);
        }
        if (lines - (header ? 1 : 0) == keep && (!header || lines > 0)) break;
        lines++;
        cut = i + 1;
    }
    free(text);
    if (cut != size && truncate(path, (off_t)cut) != 0)
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot cut the unfinished line: %s", path, strerror(errno));
    *done = header && lines > 0 ? lines - 1 : lines;
    return AVEMO_OK;
}

static enum avemo_status write_all(FILE *f, const void *data, size_t size, const char *path, struct avemo_error *err)
{
    if (size && fwrite(data, 1, size, f) != size)
        return avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return AVEMO_OK;
}

/* mkdir -p of the folder of path; many tasks may make it at once (EEXIST is fine). */
static enum avemo_status make_parents(const char *path, struct avemo_error *err)
{
    char dir[4200];
    if (strlen(path) >= sizeof dir) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: the path is too long", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *last = strrchr(dir, '/');
    if (!last || last == dir) return AVEMO_OK;
    *last = '\0';
    for (char *p = dir + 1; p <= last; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
        *p = saved;
    }
    return AVEMO_OK;
}

struct shard_out {
    FILE *lines, *part;
    char part_path[4200];
    size_t block_floats;
};

/* Open the outputs, cut them to the items both hold, and tell how many those are. */
static enum avemo_status shard_out_open(const struct avemo_shard_job *job, struct shard_out *o, size_t items,
                                        size_t *done, struct avemo_error *err)
{
    *done = 0;
    o->block_floats = 1;
    for (int d = 0; d < job->block_ndim; d++) o->block_floats *= job->block_shape[d];
    if (!job->out_path) {
        o->lines = stdout;
        return AVEMO_OK;
    }
    enum avemo_status s = make_parents(job->out_path, err);
    if (s) return s;
    s = lines_done(job->out_path, job->header, (size_t)-1, done, err);
    if (!s && *done > items)
        s = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: %zu lines but the shard has %zu items: another job's output? "
                                                "(other inputs or another N; remove it to start over)",
                       job->out_path, *done, items);
    if (!s && job->npy_path) {
        struct stat st;
        snprintf(o->part_path, sizeof o->part_path, "%s.part", job->npy_path);
        size_t block_bytes = o->block_floats * sizeof(float);
        size_t blocks = stat(o->part_path, &st) == 0 ? (size_t)st.st_size / block_bytes : 0;
        if (*done == items && blocks == 0 && stat(job->npy_path, &st) == 0) blocks = items; /* finished before */
        if (blocks < *done) s = lines_done(job->out_path, job->header, blocks, done, err);
        if (!s && stat(o->part_path, &st) == 0 && truncate(o->part_path, (off_t)(*done * block_bytes)) != 0)
            s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", o->part_path, strerror(errno));
        if (!s && *done < items && !(o->part = fopen(o->part_path, "ab")))
            s = avemo_fail(err, AVEMO_ERR_IO, "%s: cannot open: %s", o->part_path, strerror(errno));
    }
    if (s) return s;
    int fresh = access(job->out_path, F_OK) != 0;
    if (!(o->lines = fopen(job->out_path, "ab")))
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot open: %s", job->out_path, strerror(errno));
    if (fresh && job->header) {
        if ((s = write_all(o->lines, job->header, strlen(job->header), job->out_path, err))) return s;
        s = write_all(o->lines, "\n", 1, job->out_path, err);
    }
    return s;
}

/* The shard's .npy from its .part, once every item is there. */
static enum avemo_status shard_npy_finish(const struct avemo_shard_job *job, struct shard_out *o, size_t items,
                                          struct avemo_error *err)
{
    if (access(o->part_path, F_OK) != 0) return AVEMO_OK; /* written by an earlier run */
    uint8_t *data = NULL;
    size_t size = 0;
    enum avemo_status s = avemo_read_file(o->part_path, NPY_MAX_BYTES, &data, &size, err);
    if (s) return s;
    size_t shape[4] = {items, job->block_shape[0], job->block_shape[1], job->block_shape[2]};
    if (size != items * o->block_floats * sizeof(float))
        s = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: %zu bytes, expected %zu", o->part_path, size,
                       items * o->block_floats * sizeof(float));
    if (!s) s = avemo_write_npy(job->npy_path, (const float *)data, 1 + job->block_ndim, shape, err);
    free(data);
    if (!s && unlink(o->part_path) != 0) s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", o->part_path, strerror(errno));
    return s;
}

static enum avemo_status shard_item(const struct avemo_shard_job *job, struct shard_out *o, size_t index,
                                    struct avemo_error *err)
{
    const char *item = job->items[index];
    char *line = NULL;
    float *block = NULL;
    enum avemo_status s = job->fn(job->user, index, item, &line, o->part ? &block : NULL, err);
    const char *name = job->out_path ? job->out_path : "stdout";
    if (!s && !line && job->out_path)
        s = avemo_fail(err, AVEMO_ERR_INTERNAL, "%s: no output line for %s", job->out_path, item);
    if (!s && o->part) {
        if (!block && (block = malloc(o->block_floats * sizeof(float)))) /* a failed item: NaNs keep rows aligned */
            for (size_t j = 0; j < o->block_floats; j++) block[j] = NAN;
        if (!block) s = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", item);
        if (!s) s = write_all(o->part, block, o->block_floats * sizeof(float), o->part_path, err);
        if (!s && fflush(o->part) != 0) s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", o->part_path, strerror(errno));
    }
    /* the line last: a line means the item (and its block) is done */
    if (!s && line) s = write_all(o->lines, line, strlen(line), name, err);
    if (!s && line) s = write_all(o->lines, "\n", 1, name, err);
    if (!s && fflush(o->lines) != 0) s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", name, strerror(errno));
    free(line);
    free(block);
    return s;
}

enum avemo_status avemo_shard_run(const struct avemo_shard_job *job, struct avemo_shard_stats *stats,
                                  struct avemo_error *err)
{
    memset(stats, 0, sizeof *stats);
    if (!job->fn || (job->npy_path && (!job->out_path || job->block_ndim < 1 || job->block_ndim > 3)))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "shard: a job with an .npy needs a lines file and 1..3 dims");
    size_t begin, end;
    avemo_shard_range(&job->shard, job->n, &begin, &end);
    stats->items = end - begin;
    struct shard_out o = {0};
    enum avemo_status s = shard_out_open(job, &o, stats->items, &stats->skipped, err);
    for (size_t i = begin + stats->skipped; !s && i < end; i++) {
        s = shard_item(job, &o, i, err);
        if (!s) stats->done++;
    }
    if (o.part && fclose(o.part) != 0 && !s) s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", o.part_path, strerror(errno));
    if (o.lines && o.lines != stdout && fclose(o.lines) != 0 && !s)
        s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", job->out_path, strerror(errno));
    if (!s && job->npy_path) s = shard_npy_finish(job, &o, stats->items, err);
    return s;
}

/* ---- merging ---- */

/* The shard numbers in a name "...-IIIII-of-NNNNN...", or -1. */
static int shard_of_name(const char *path, int *index, int *count)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (const char *p = strstr(base, "-of-"); p; p = strstr(p + 1, "-of-")) {
        const char *q = p;
        while (q > base && q[-1] >= '0' && q[-1] <= '9') q--;
        if (q == p || q == base || q[-1] != '-') continue;
        *index = atoi(q);
        *count = atoi(p + 4);
        if (*count > 0 && *index >= 0 && *index < *count) return 0;
    }
    return -1;
}

/* Put the inputs in shard order and check that each shard is there once. */
static enum avemo_status merge_order(const char *const *inputs, int n, const char **ordered, struct avemo_error *err)
{
    int named = 0, index, count = 0, first_count = -1;
    for (int i = 0; i < n; i++) {
        ordered[i] = NULL;
        named += shard_of_name(inputs[i], &index, &count) == 0;
    }
    if (named == 0) {
        memcpy(ordered, inputs, sizeof *ordered * (size_t)n);
        return AVEMO_OK;
    }
    for (int i = 0; i < n; i++) {
        if (shard_of_name(inputs[i], &index, &count) != 0)
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "merge: %s is not named like a shard (-I-of-N)", inputs[i]);
        if (first_count < 0) first_count = count;
        if (count != first_count || count != n)
            return avemo_fail(err, AVEMO_ERR_MISMATCH, "merge: %d files given, %s says %d shards", n, inputs[i], count);
        if (ordered[index])
            return avemo_fail(err, AVEMO_ERR_MISMATCH, "merge: shard %d given twice (%s, %s)", index, ordered[index],
                              inputs[i]);
        ordered[index] = inputs[i];
    }
    return AVEMO_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Lines files: one after the other; a CSV's header once (the others must have the same). */
static enum avemo_status merge_lines(const char *const *in, int n, FILE *out, const char *out_path, int csv,
                                     struct avemo_error *err)
{
    char *header = NULL;
    enum avemo_status s = AVEMO_OK;
    for (int i = 0; !s && i < n; i++) {
        uint8_t *text = NULL;
        size_t size = 0;
        if ((s = avemo_read_file(in[i], LINES_MAX_BYTES, &text, &size, err))) break;
        const char *body = (const char *)text;
        if (size && text[size - 1] != '\n')
            s = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: ends in the middle of a line: is its shard finished?", in[i]);
        const char *nl = csv ? strchr(body, '\n') : NULL;
        if (!s && csv && nl) {
            size_t hl = (size_t)(nl - body) + 1;
            if (!header) header = strndup(body, hl);
            if (!header) s = avemo_fail(err, AVEMO_ERR_NOMEM, "merge: out of memory");
            else if (i > 0 && (strlen(header) != hl || memcmp(header, body, hl) != 0))
                s = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: its CSV header differs from %s's", in[i], in[0]);
            else if (i > 0) body = nl + 1;
        }
        if (!s) s = write_all(out, body, size - (size_t)(body - (const char *)text), out_path, err);
        free(text);
    }
    free(header);
    return s;
}

/* .npy files: stacked along the first axis; the other dimensions must agree. */
static enum avemo_status merge_npy(const char *const *in, int n, const char *out_path, struct avemo_error *err)
{
    float *all = NULL;
    size_t total = 0, rows = 0, shape0[4] = {0};
    int ndim0 = 0;
    enum avemo_status s = AVEMO_OK;
    for (int i = 0; !s && i < n; i++) {
        float *data = NULL;
        int ndim;
        size_t shape[4] = {1, 1, 1, 1};
        if ((s = avemo_read_npy(in[i], &data, &ndim, shape, err))) break;
        size_t per_row = 1;
        for (int d = 1; d < ndim; d++) per_row *= shape[d];
        if (i == 0) {
            ndim0 = ndim;
            memcpy(shape0, shape, sizeof shape0);
        } else if (ndim != ndim0 || memcmp(shape + 1, shape0 + 1, sizeof(size_t) * 3) != 0) {
            s = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: its rows have another shape than %s's", in[i], in[0]);
        }
        float *bigger = s ? NULL : realloc(all, sizeof(float) * (total + shape[0] * per_row + 1));
        if (!s && !bigger) s = avemo_fail(err, AVEMO_ERR_NOMEM, "merge: out of memory");
        if (!s) {
            all = bigger;
            memcpy(all + total, data, sizeof(float) * shape[0] * per_row);
            total += shape[0] * per_row;
            rows += shape[0];
        }
        free(data);
    }
    shape0[0] = rows;
    if (!s) s = avemo_write_npy(out_path, all, ndim0, shape0, err);
    free(all);
    return s;
}

enum avemo_status avemo_merge(const char *const *inputs, int n, const char *out_path, struct avemo_error *err)
{
    if (n < 1 || n > AVEMO_SHARD_MAX) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "merge: 1 to %d inputs", AVEMO_SHARD_MAX);
    const char **ordered = malloc(sizeof *ordered * (size_t)n);
    if (!ordered) return avemo_fail(err, AVEMO_ERR_NOMEM, "merge: out of memory");
    enum avemo_status s = merge_order(inputs, n, ordered, err);
    char tmp[4200];
    if (!s && (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= sizeof tmp)
        s = avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: the path is too long", out_path);
    if (!s && ends_with(out_path, ".npy")) {
        s = merge_npy(ordered, n, tmp, err);
    } else if (!s) {
        FILE *out = fopen(tmp, "wb");
        if (!out) s = avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        if (!s) s = merge_lines(ordered, n, out, tmp, ends_with(out_path, ".csv"), err);
        if (out && fclose(out) != 0 && !s) s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    /* the result appears whole or not at all */
    if (!s && rename(tmp, out_path) != 0) s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", out_path, strerror(errno));
    if (s) unlink(tmp);
    free(ordered);
    return s;
}
