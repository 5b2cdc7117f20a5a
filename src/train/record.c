/* The training record of a model (avemo_net_set_record, nn.h): the files of the training and
 * validation parts by name and SHA-256 (FFmpeg's av_hash, avemo_sha256_file).  `avemo train`
 * writes it into the model; avemo_record_attach gives one to a model trained before records
 * existed, from its data and split; `avemo eval` and `avemo compare` leave those files out. */
#include "train/train_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void avemo_record_free(struct avemo_record_entry *entries, size_t n)
{
    for (size_t i = 0; entries && i < n; i++) free(entries[i].name);
    free(entries);
}

/* An item's name in the record: its path below the --data it came from, under that folder's
 * own name ("ravdess/Actor_01/03-01-05-01-01-01-01.wav"; a manifest's items are named below
 * the manifest's folder); the file name when the path is elsewhere. */
static void record_name(const struct avemo_dataset *ds, const struct avemo_item *it, char *out, size_t size)
{
    char root[sizeof ds->source_path[0]] = "";
    if (it->source >= 0 && it->source < ds->nsources) snprintf(root, sizeof root, "%s", ds->source_path[it->source]);
    size_t n = strlen(root);
    if (n > 4 && strcmp(root + n - 4, ".csv") == 0) { /* a manifest: its folder */
        char *slash = strrchr(root, '/');
        *(slash ? slash : root) = 0;
    }
    for (n = strlen(root); n > 1 && root[n - 1] == '/'; n--) root[n - 1] = 0;
    const char *label = strrchr(root, '/') ? strrchr(root, '/') + 1 : root;
    const char *base = strrchr(it->path, '/') ? strrchr(it->path, '/') + 1 : it->path;
    if (n == 0 || strncmp(it->path, root, n) != 0 || it->path[n] != '/') snprintf(out, size, "%s", base);
    else if (strcmp(label, ".") == 0 || strcmp(label, "..") == 0) snprintf(out, size, "%s", it->path + n + 1);
    else snprintf(out, size, "%s/%s", label, it->path + n + 1);
}

enum avemo_status avemo_record_from_split(const struct avemo_dataset *ds, const signed char *part,
                                          struct avemo_record_entry **out, size_t *n, struct avemo_error *err)
{
    *out = NULL;
    *n = 0;
    size_t count = 0;
    for (size_t i = 0; i < ds->count; i++) count += part[i] == AVEMO_PART_TRAIN || part[i] == AVEMO_PART_VALIDATION;
    struct avemo_record_entry *e = calloc(count ? count : 1, sizeof *e);
    if (!e) return avemo_fail(err, AVEMO_ERR_NOMEM, "record: out of memory");
    enum avemo_status st = AVEMO_OK;
    size_t k = 0;
    for (size_t i = 0; !st && i < ds->count; i++) {
        if (part[i] != AVEMO_PART_TRAIN && part[i] != AVEMO_PART_VALIDATION) continue;
        char name[AVEMO_RECORD_NAME_MAX + 1];
        record_name(ds, &ds->items[i], name, sizeof name);
        e[k].part = part[i];
        st = avemo_sha256_file(ds->items[i].path, e[k].sha256, err);
        if (!st && !(e[k].name = strdup(name))) st = avemo_fail(err, AVEMO_ERR_NOMEM, "record: out of memory");
        k++;
    }
    if (st) {
        avemo_record_free(e, k);
        return st;
    }
    *out = e;
    *n = k;
    return AVEMO_OK;
}

static int cmp_sha(const void *a, const void *b)
{
    return memcmp(((const struct avemo_record_entry *)a)->sha256, ((const struct avemo_record_entry *)b)->sha256,
                  AVEMO_SHA256_SIZE);
}

/* Append the record of the model file at path (if it has one) to *e, then keep one entry per
 * content: a model started from another's weights has also learnt from that one's files. */
enum avemo_status avemo_record_merge_model(const char *path, struct avemo_record_entry **e, size_t *n,
                                           struct avemo_error *err)
{
    avemo_net *net = NULL;
    enum avemo_status st = avemo_net_load(path, &net, err);
    if (st) return st;
    size_t more;
    const struct avemo_record_entry *r = avemo_net_record(net, &more);
    struct avemo_record_entry *all = realloc(*e, sizeof *all * (*n + more + 1));
    if (!all) st = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    else *e = all;
    for (size_t i = 0; !st && i < more; i++) {
        all[*n] = r[i];
        if (!(all[*n].name = strdup(r[i].name))) st = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
        else (*n)++;
    }
    avemo_net_free(net);
    if (st) return st;
    /* One entry per content; qsort is not stable, so the part kept for a file in both is the
     * lower one (training) by the tie-break below. */
    qsort(all, *n, sizeof *all, cmp_sha);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (k && memcmp(all[k - 1].sha256, all[i].sha256, AVEMO_SHA256_SIZE) == 0) {
            if (all[i].part < all[k - 1].part) all[k - 1].part = all[i].part;
            free(all[i].name);
            continue;
        }
        all[k++] = all[i];
    }
    *n = k;
    return AVEMO_OK;
}

/* The number of train and validation lines of a split file, to see that the data matched them all. */
static enum avemo_status count_split_lines(const char *path, size_t *lines, struct avemo_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return avemo_fail(err, errno == ENOENT ? AVEMO_ERR_NOT_FOUND : AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    char line[4200];
    *lines = 0;
    while (fgets(line, sizeof line, f))
        *lines += strncmp(line, "train ", 6) == 0 || strncmp(line, "validation ", 11) == 0;
    fclose(f);
    return AVEMO_OK;
}

/* The split a model was trained with: the split file, every one of whose training and
 * validation files must be in the data, or the one its stored pipeline makes. */
static enum avemo_status model_split(const char *model_path, const struct avemo_model *m, const struct avemo_dataset *ds,
                                     const char *split_path, struct avemo_split *sp, struct avemo_error *err)
{
    if (!split_path) return avemo_split_for_pipeline(ds, &m->p.train, sp, err);
    size_t lines = 0, matched = 0;
    enum avemo_status st = count_split_lines(split_path, &lines, err);
    if (!st) st = avemo_split_load(ds, split_path, sp, err);
    for (size_t i = 0; !st && i < ds->count; i++)
        matched += sp->part[i] == AVEMO_PART_TRAIN || sp->part[i] == AVEMO_PART_VALIDATION;
    if (!st && matched < lines)
        st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: %zu of its %zu training and validation files are not in the --data "
                        "given (or %s's labels drop them): the record of %s would be incomplete",
                        split_path, lines - matched, lines, model_path, model_path);
    return st;
}

enum avemo_status avemo_record_attach(const char *model_path, const char *const *data, int ndata,
                                      const char *split_path, const char *const *from_models, int nfrom,
                                      size_t counts[2], struct avemo_error *err)
{
    counts[0] = counts[1] = 0;
    if (ndata < 1) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: no --data to make the record from", model_path);
    struct avemo_model m;
    struct avemo_dataset ds = {0};
    struct avemo_split sp = {0};
    struct avemo_record_entry *e = NULL;
    size_t n = 0;
    enum avemo_status st = avemo_model_open(model_path, NULL, 0, &m, err);
    if (st) return st;
    for (int i = 0; !st && i < ndata; i++) st = avemo_dataset_add(&ds, data[i], &m.p.labels, err);
    if (!st) st = model_split(model_path, &m, &ds, split_path, &sp, err);
    if (!st) st = avemo_record_from_split(&ds, sp.part, &e, &n, err);
    for (int i = 0; !st && i < nfrom; i++) st = avemo_record_merge_model(from_models[i], &e, &n, err);
    if (!st) st = avemo_net_set_record(m.net, e, n, err);
    if (!st) st = avemo_model_save(m.net, model_path, err);
    for (size_t i = 0; !st && i < n; i++) counts[e[i].part == AVEMO_PART_VALIDATION]++;
    avemo_record_free(e, n);
    avemo_split_free(&sp);
    avemo_dataset_free(&ds);
    avemo_model_close(&m);
    return st;
}

/* avemo_record_merge_model, and *complete = 0 (with a warning) for a model without a record:
 * what it learnt from is unknown, so the new model gets no record rather than a partial one. */
static enum avemo_status merge_known_record(const char *path, struct avemo_record_entry **e, size_t *n,
                                            int *complete, struct avemo_error *err)
{
    avemo_net *net = NULL;
    enum avemo_status st = avemo_net_load(path, &net, err);
    if (st) return st;
    int has = avemo_net_has_record(net);
    avemo_net_free(net);
    if (has) return avemo_record_merge_model(path, e, n, err);
    if (*complete)
        fprintf(stderr, "warning: %s has no training record, so this model has none either: avemo eval cannot "
                        "leave out what it learnt from\n", path);
    *complete = 0;
    return AVEMO_OK;
}

enum avemo_status train_set_record(avemo_net *net, const struct avemo_dataset *ds, const signed char *part,
                                   char *const *failure, const char *const *init, int ninit, const char *teacher,
                                   size_t counts[2], struct avemo_error *err)
{
    struct avemo_record_entry *e = NULL;
    size_t n = 0;
    counts[0] = counts[1] = 0;
    signed char *learnt = malloc(ds->count ? ds->count : 1);
    if (!learnt) return avemo_fail(err, AVEMO_ERR_NOMEM, "record: out of memory");
    for (size_t i = 0; i < ds->count; i++) learnt[i] = failure && failure[i] ? -1 : part[i];
    enum avemo_status st = avemo_record_from_split(ds, learnt, &e, &n, err);
    free(learnt);
    int complete = 1;
    for (int i = 0; !st && i < ninit; i++) {
        char path[4096];
        train_init_spec(init[i], path, sizeof path);
        st = merge_known_record(path, &e, &n, &complete, err);
    }
    if (!st && teacher) st = merge_known_record(teacher, &e, &n, &complete, err);
    if (!st && complete) st = avemo_net_set_record(net, e, n, err);
    for (size_t i = 0; !st && complete && i < n; i++) counts[e[i].part == AVEMO_PART_VALIDATION]++;
    avemo_record_free(e, n);
    return st;
}
