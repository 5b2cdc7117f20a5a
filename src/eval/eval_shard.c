/* Evaluation in shards: a block of the data's items per task (a CSV manifest of them goes to
 * avemo_evaluate), one JSON-lines file of per-unit answers per shard, and the metrics of
 * all the shards' units together. */
#include <avemo/eval.h>
#include <avemo/nn.h>
#include <avemo/train.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHARD_LINES_MAX_BYTES ((size_t)1 << 30)

/* The items of --data as the model's label map keeps them. */
static enum avemo_status load_items(const char *model_path, const struct avemo_eval_options *opt,
                                    struct avemo_dataset *ds, struct avemo_error *err)
{
    avemo_net *net = NULL;
    struct avemo_label_map map;
    enum avemo_status s = avemo_net_load(model_path, &net, err);
    if (!s) s = avemo_label_map_from_ini(avemo_net_pipeline(net), model_path, &map, err);
    avemo_net_free(net);
    for (int i = 0; !s && i < opt->ndata; i++) s = avemo_dataset_add(ds, opt->data[i], &map, err);
    return s;
}

/* The block's items as a manifest path,label,group,split (absolute paths). */
static enum avemo_status write_manifest(const struct avemo_dataset *ds, size_t b, size_t e, const char *path,
                                        struct avemo_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    enum avemo_status s = AVEMO_OK;
    for (size_t i = b; !s && i < e; i++) {
        const struct avemo_item *it = &ds->items[i];
        char *abs = realpath(it->path, NULL);
        if (!abs) s = avemo_fail(err, AVEMO_ERR_NOT_FOUND, "%s: %s", it->path, strerror(errno));
        else if (strpbrk(abs, ",\n\r") || strpbrk(it->group, ",\n\r"))
            s = avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: a comma in the path: cannot shard it", abs);
        else fprintf(f, "%s,%s,%s,%s\n", abs, it->code, it->group, it->split);
        free(abs);
    }
    if (fclose(f) != 0 && !s) s = avemo_fail(err, AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    return s;
}

static char *unit_lines(const struct avemo_eval_set *set, const char *model)
{
    char *text = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&text, &size);
    if (!m) return NULL;
    cJSON *head = cJSON_CreateObject();
    cJSON *labels = cJSON_AddArrayToObject(head, "labels");
    cJSON_AddStringToObject(head, "model", model);
    for (int c = 0; c < set->num_classes; c++) cJSON_AddItemToArray(labels, cJSON_CreateString(set->labels[c]));
    char *line = cJSON_PrintUnformatted(head);
    fprintf(m, "%s\n", line ? line : "{}");
    free(line);
    cJSON_Delete(head);
    for (size_t u = 0; set->results && u < set->n; u++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", set->paths[u]);
        cJSON_AddStringToObject(o, "truth", set->labels[set->truth[u]]);
        cJSON_AddStringToObject(o, "pred", set->labels[set->results[0].pred[u]]);
        line = cJSON_PrintUnformatted(o);
        fprintf(m, "%s\n", line ? line : "{}");
        free(line);
        cJSON_Delete(o);
    }
    if (fclose(m) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static enum avemo_status write_atomically(const char *path, const char *text, struct avemo_error *err)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return AVEMO_OK;
}

enum avemo_status avemo_eval_shard(const char *model_path, const struct avemo_eval_options *opt,
                                   const struct avemo_shard *shard, const char *out_dir, int *already_done,
                                   struct avemo_error *err)
{
    char out[4200], manifest[4300];
    *already_done = 0;
    enum avemo_status s = avemo_shard_path(out_dir, "eval", shard, ".jsonl", out, sizeof out, err);
    if (s) return s;
    if (access(out, F_OK) == 0) {
        *already_done = 1;
        return AVEMO_OK;
    }
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", out_dir, strerror(errno));
    snprintf(manifest, sizeof manifest, "%.4200s.items.csv", out);
    struct avemo_dataset ds = {0};
    struct avemo_eval_set set = {0};
    size_t b, e;
    s = load_items(model_path, opt, &ds, err);
    if (!s) {
        avemo_shard_range(shard, ds.count, &b, &e);
        s = write_manifest(&ds, b, e, manifest, err);
    }
    if (!s && e > b) {
        struct avemo_eval_options o = *opt;
        const char *data[1] = {manifest};
        o.data = data;
        o.ndata = 1;
        s = avemo_evaluate(&model_path, 1, &o, &set, err);
        if (s == AVEMO_ERR_EMPTY) s = AVEMO_OK; /* no usable unit in this block: an empty shard */
    }
    if (!s && !set.results) { /* the labels still head the file */
        set.num_classes = ds.num_classes;
        for (int c = 0; c < ds.num_classes; c++) snprintf(set.labels[c], sizeof set.labels[c], "%s", ds.classes[c]);
    }
    char *text = s ? NULL : unit_lines(&set, model_path);
    if (!s && !text) s = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", out);
    if (!s) s = write_atomically(out, text, err);
    free(text);
    unlink(manifest);
    avemo_eval_free(&set);
    avemo_dataset_free(&ds);
    return s;
}

static int label_index(const cJSON *labels, const char *code)
{
    int n = cJSON_GetArraySize(labels);
    for (int c = 0; code && c < n; c++)
        if (strcmp(cJSON_GetArrayItem(labels, c)->valuestring, code) == 0) return c;
    return -1;
}

struct unit_list {
    int *truth, *pred;
    size_t n, cap;
};

/* One shard's lines into u; its labels must be those of the first shard (*labels). */
static enum avemo_status merge_one(const char *path, cJSON **labels, struct unit_list *u, struct avemo_error *err)
{
    uint8_t *text = NULL;
    size_t size = 0;
    enum avemo_status s = avemo_read_file(path, SHARD_LINES_MAX_BYTES, &text, &size, err);
    int lineno = 0;
    for (char *line = (char *)text, *next; !s && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        cJSON *o = cJSON_Parse(line);
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "labels");
        lineno++;
        if (lineno == 1) {
            if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) < 2 || cJSON_GetArraySize(l) > AVEMO_MAX_CLASSES)
                s = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: not the output of avemo eval --shard", path);
            else if (!*labels) *labels = cJSON_Duplicate(l, 1);
            else if (!cJSON_Compare(l, *labels, 1))
                s = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: other classes than the first shard", path);
        } else {
            int t = label_index(*labels, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "truth")));
            int p = label_index(*labels, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "pred")));
            if (t < 0 || p < 0) s = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s:%d: not a unit line", path, lineno);
            if (!s && u->n == u->cap) {
                size_t cap = u->cap ? 2 * u->cap : 1024;
                int *tt = realloc(u->truth, cap * sizeof *tt), *pp = tt ? realloc(u->pred, cap * sizeof *pp) : NULL;
                if (tt) u->truth = tt;
                if (pp) u->pred = pp;
                if (!tt || !pp) s = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
                else u->cap = cap;
            }
            if (!s) {
                u->truth[u->n] = t;
                u->pred[u->n++] = p;
            }
        }
        cJSON_Delete(o);
    }
    if (!s && lineno == 0) s = avemo_fail(err, AVEMO_ERR_EMPTY, "%s: empty", path);
    free(text);
    return s;
}

enum avemo_status avemo_eval_merge(const char *const *inputs, int n, struct avemo_metrics *m, struct avemo_error *err)
{
    cJSON *labels = NULL;
    struct unit_list u = {0};
    enum avemo_status s = AVEMO_OK;
    for (int i = 0; !s && i < n; i++) s = merge_one(inputs[i], &labels, &u, err);
    if (!s && u.n == 0) s = avemo_fail(err, AVEMO_ERR_EMPTY, "merge: no unit in the %d shard(s)", n);
    if (!s) {
        const char *names[AVEMO_MAX_CLASSES];
        int k = cJSON_GetArraySize(labels);
        for (int c = 0; c < k; c++) names[c] = cJSON_GetArrayItem(labels, c)->valuestring;
        s = avemo_metrics_compute(u.truth, u.pred, u.n, k, names, m, err);
    }
    cJSON_Delete(labels);
    free(u.truth);
    free(u.pred);
    return s;
}
