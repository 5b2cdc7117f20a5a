/* Evaluation in shards: a block of the data's items per task (avemo_evaluate with the shard:
 * the whole item list is read and paired, only the block and its partners are extracted),
 * one JSON-lines file of per-unit answers per shard, and the metrics of all the shards'
 * units together. */
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

static cJSON *head_line(const struct avemo_eval_set *set, const char *model)
{
    cJSON *head = cJSON_CreateObject();
    cJSON *labels = cJSON_AddArrayToObject(head, "labels");
    cJSON_AddStringToObject(head, "model", model);
    for (int c = 0; c < set->num_classes; c++) cJSON_AddItemToArray(labels, cJSON_CreateString(set->labels[c]));
    cJSON_AddNumberToObject(head, "skipped", (double)set->skipped);
    cJSON *files = cJSON_AddArrayToObject(head, "skipped_files");
    for (size_t i = 0; i < set->nfailures; i++) cJSON_AddItemToArray(files, cJSON_CreateString(set->failures[i]));
    cJSON_AddStringToObject(head, "dropped_labels", set->dropped);
    cJSON_AddNumberToObject(head, "left_out_trained", (double)set->trained_on);
    cJSON_AddNumberToObject(head, "kept_same_name", (double)set->same_name);
    cJSON_AddStringToObject(head, "no_training_record", set->unchecked);
    cJSON *data = cJSON_AddArrayToObject(head, "data");
    for (int d = 0; d < set->nsources; d++) {
        cJSON *one = cJSON_CreateObject();
        cJSON_AddStringToObject(one, "data", set->source_path[d]);
        cJSON_AddStringToObject(one, "corpus", set->source_corpus[d]);
        cJSON_AddItemToArray(data, one);
    }
    return head;
}

static char *unit_lines(const struct avemo_eval_set *set, const char *model)
{
    char *text = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&text, &size);
    if (!m) return NULL;
    cJSON *head = head_line(set, model);
    char *line = cJSON_PrintUnformatted(head);
    fprintf(m, "%s\n", line ? line : "{}");
    free(line);
    cJSON_Delete(head);
    for (size_t u = 0; set->results && set->results[0].pred && u < set->n; u++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", set->paths[u]);
        cJSON_AddStringToObject(o, "truth", set->labels[set->truth[u]]);
        cJSON_AddStringToObject(o, "pred", set->labels[set->results[0].pred[u]]);
        cJSON_AddNumberToObject(o, "data", set->source[u]);
        /* The probabilities, so that the merged report has the calibration of one process
         * (cJSON prints a float's value so that it reads back to the same float). */
        const float *pu = set->results[0].probs ? set->results[0].probs + u * (size_t)set->num_classes : NULL;
        cJSON *probs = pu ? cJSON_AddArrayToObject(o, "probs") : NULL;
        for (int c = 0; probs && c < set->num_classes; c++) cJSON_AddItemToArray(probs, cJSON_CreateNumber(pu[c]));
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
    char out[4200];
    *already_done = 0;
    enum avemo_status s = avemo_shard_path(out_dir, "eval", shard, ".jsonl", out, sizeof out, err);
    if (s) return s;
    if (access(out, F_OK) == 0) {
        *already_done = 1;
        return AVEMO_OK;
    }
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return avemo_fail(err, AVEMO_ERR_IO, "%s: cannot create: %s", out_dir, strerror(errno));
    struct avemo_eval_options o = *opt;
    struct avemo_eval_set set = {0};
    o.shard = shard;
    s = avemo_evaluate(&model_path, 1, &o, &set, err);
    char *text = s ? NULL : unit_lines(&set, model_path);
    if (!s && !text) s = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", out);
    if (!s) s = write_atomically(out, text, err);
    free(text);
    avemo_eval_free(&set);
    return s;
}

static int label_index(const cJSON *labels, const char *code)
{
    int n = cJSON_GetArraySize(labels);
    for (int c = 0; code && c < n; c++) {
        const cJSON *label = cJSON_GetArrayItem(labels, c);
        if (cJSON_IsString(label) && strcmp(label->valuestring, code) == 0) return c;
    }
    return -1;
}

/* The merged units and what the shards' first lines say. */
struct unit_list {
    int *truth, *pred, *source;
    float *probs;              /* n x classes, while every unit line has them; NULL once one lacks them */
    int with_probs;
    char **files;              /* each unit's file and the input it came from: a unit given */
    int *input;                /* twice (a shard or a fold passed twice) would count twice */
    size_t n, cap;
    cJSON *data;               /* the first shard's --data list, which every shard must share */
    char (*models)[64];        /* the models that answered, each once (folds of a cross-validation) */
    int nmodels;
    struct avemo_eval_set *set;
};

static enum avemo_status grow_units(struct unit_list *u, const char *path, struct avemo_error *err)
{
    size_t cap = u->cap ? 2 * u->cap : 1024;
    int *tt = realloc(u->truth, cap * sizeof *tt);
    if (tt) u->truth = tt;
    int *pp = tt ? realloc(u->pred, cap * sizeof *pp) : NULL;
    if (pp) u->pred = pp;
    int *dd = pp ? realloc(u->source, cap * sizeof *dd) : NULL;
    if (dd) u->source = dd;
    int *ii = dd ? realloc(u->input, cap * sizeof *ii) : NULL;
    if (ii) u->input = ii;
    char **ff = ii ? realloc(u->files, cap * sizeof *ff) : NULL;
    if (ff) u->files = ff;
    float *pr = ff ? realloc(u->probs, cap * AVEMO_MAX_CLASSES * sizeof *pr) : NULL;
    if (!pr) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    u->probs = pr;
    u->cap = cap;
    return AVEMO_OK;
}

static enum avemo_status add_unit(struct unit_list *u, int t, int p, int d, const char *file, int input,
                                  const char *path, struct avemo_error *err)
{
    enum avemo_status s = u->n == u->cap ? grow_units(u, path, err) : AVEMO_OK;
    if (s) return s;
    if (!(u->files[u->n] = strdup(file ? file : "")))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    u->truth[u->n] = t;
    u->pred[u->n] = p;
    u->input[u->n] = input;
    u->source[u->n++] = d;
    return AVEMO_OK;
}

/* The model of a shard, kept once: shards of one run share it, the folds of a cross-validation
 * pooled by the merge each bring their own. */
static enum avemo_status note_model(struct unit_list *u, const cJSON *o, const char *path, struct avemo_error *err)
{
    const char *model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "model"));
    const char *base = model ? strrchr(model, '/') : NULL;
    char name[64];
    snprintf(name, sizeof name, "%s", base ? base + 1 : model ? model : "");
    for (int m = 0; m < u->nmodels; m++)
        if (strcmp(u->models[m], name) == 0) return AVEMO_OK;
    char(*more)[64] = realloc(u->models, (size_t)(u->nmodels + 1) * sizeof *more);
    if (!more) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    u->models = more;
    memcpy(u->models[u->nmodels++], name, sizeof name);
    return AVEMO_OK;
}

/* Every shard must have evaluated the same --data list: a unit's "data" is an index into it. */
static enum avemo_status check_same_data(struct unit_list *u, const cJSON *o, const char *path,
                                         struct avemo_error *err)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    if (!u->data) {
        u->data = data ? cJSON_Duplicate(data, 1) : cJSON_CreateArray();
        return u->data ? AVEMO_OK : avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    }
    int same = data ? cJSON_Compare(data, u->data, 1) : cJSON_GetArraySize(u->data) == 0;
    if (same) return AVEMO_OK;
    return avemo_fail(err, AVEMO_ERR_MISMATCH,
                      "%s: evaluated another --data list than the first shard (give every fold or shard the same "
                      "--data, in the same order)",
                      path);
}

/* A count of the head line (files skipped, left out...) added to *into; absent is 0.  More than
 * any data set holds is a damaged file. */
#define SHARD_COUNT_MAX 1e12
static enum avemo_status add_count(const cJSON *o, const char *key, size_t *into, const char *path,
                                   struct avemo_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return AVEMO_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= SHARD_COUNT_MAX))
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: \"%s\" is not a count", path, key);
    *into += (size_t)v->valuedouble;
    return AVEMO_OK;
}

/* A shard's first line: the classes (those of the first shard), its skipped items and files;
 * the --data list and the dropped labels are the whole data's, taken from the first shard. */
static enum avemo_status merge_head(const cJSON *o, const char *path, cJSON **labels, struct unit_list *u,
                                    struct avemo_error *err)
{
    struct avemo_eval_set *set = u->set;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "labels");
    if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) < 2 || cJSON_GetArraySize(l) > AVEMO_MAX_CLASSES)
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: not the output of avemo eval --shard", path);
    const cJSON *label;
    cJSON_ArrayForEach(label, l)
        if (!cJSON_IsString(label) || strlen(label->valuestring) >= AVEMO_LABEL_MAX)
            return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: a class label is not a short text", path);
    if (*labels && !cJSON_Compare(l, *labels, 1))
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: other classes than the first shard", path);
    enum avemo_status s = check_same_data(u, o, path, err);
    if (!s) s = note_model(u, o, path, err);
    if (!s) s = add_count(o, "skipped", &set->skipped, path, err);
    if (!s) s = add_count(o, "left_out_trained", &set->trained_on, path, err);
    if (!s) s = add_count(o, "kept_same_name", &set->same_name, path, err);
    if (s) return s;
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(o, "skipped_files")) {
        char **more = cJSON_IsString(f) ? realloc(set->failures, (set->nfailures + 1) * sizeof *more) : NULL;
        if (more) set->failures = more;
        if (!more || !(set->failures[set->nfailures] = strdup(f->valuestring)))
            return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
        set->nfailures++;
    }
    if (*labels) return AVEMO_OK;
    *labels = cJSON_Duplicate(l, 1);
    snprintf(set->results[0].model, sizeof set->results[0].model, "%s", u->models[0]); /* see note_model */
    const char *dropped = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "dropped_labels"));
    snprintf(set->dropped, sizeof set->dropped, "%s", dropped ? dropped : "");
    const char *unchecked = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "no_training_record"));
    /* Shards written before training records were checked: the model counts as unchecked. */
    snprintf(set->unchecked, sizeof set->unchecked, "%s", unchecked ? unchecked : set->results[0].model);
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(o, "data")) {
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "data"));
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "corpus"));
        if (set->nsources == AVEMO_EVAL_MAX_SOURCES) break;
        snprintf(set->source_path[set->nsources], sizeof set->source_path[0], "%s", d ? d : "");
        snprintf(set->source_corpus[set->nsources++], sizeof set->source_corpus[0], "%s", c ? c : "");
    }
    return AVEMO_OK;
}

/* The unit's probabilities (the last one added); a line without them (an older shard) leaves
 * the merged set without probabilities, and its report without calibration.  A value that is
 * no probability (out of [0, 1], or not finite) is a damaged file, refused by line. */
static enum avemo_status take_probs(struct unit_list *u, const cJSON *probs, int k, const char *path, int lineno,
                                    struct avemo_error *err)
{
    if (u->n == 1) u->with_probs = 1;
    if (!cJSON_IsArray(probs) || cJSON_GetArraySize(probs) != k) u->with_probs = 0;
    for (int c = 0; u->with_probs && c < k; c++) {
        const cJSON *v = cJSON_GetArrayItem(probs, c);
        if (!cJSON_IsNumber(v)) {
            u->with_probs = 0;
        } else {
            if (!(v->valuedouble >= 0.0 && v->valuedouble <= 1.0))
                return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s:%d: a probability is not between 0 and 1", path, lineno);
            u->probs[(u->n - 1) * (size_t)k + (size_t)c] = (float)v->valuedouble;
        }
    }
    return AVEMO_OK;
}

/* One shard's lines into u; its labels must be those of the first shard (*labels). */
static enum avemo_status merge_one(const char *path, int input, cJSON **labels, struct unit_list *u,
                                   struct avemo_error *err)
{
    uint8_t *text = NULL;
    size_t size = 0;
    enum avemo_status s = avemo_read_file(path, SHARD_LINES_MAX_BYTES, &text, &size, err);
    int lineno = 0;
    for (char *line = (char *)text, *next; !s && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        cJSON *o = cJSON_Parse(line);
        lineno++;
        if (lineno == 1) {
            s = merge_head(o, path, labels, u, err);
        } else {
            int t = label_index(*labels, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "truth")));
            int p = label_index(*labels, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "pred")));
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
            int di = cJSON_IsNumber(d) ? d->valueint : 0;
            if (t < 0 || p < 0 || di < 0 || (u->set->nsources > 0 && di >= u->set->nsources))
                s = avemo_fail(err, AVEMO_ERR_CORRUPT, "%s:%d: not a unit line", path, lineno);
            const char *file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "file"));
            if (!s) s = add_unit(u, t, p, di, file, input, path, err);
            if (!s) s = take_probs(u, cJSON_GetObjectItemCaseSensitive(o, "probs"), cJSON_GetArraySize(*labels), path,
                                   lineno, err);
        }
        cJSON_Delete(o);
    }
    if (!s && lineno == 0) s = avemo_fail(err, AVEMO_ERR_EMPTY, "%s: empty", path);
    free(text);
    return s;
}

struct named_unit {
    const char *file;
    int input;
};

static int by_file(const void *a, const void *b)
{
    return strcmp(((const struct named_unit *)a)->file, ((const struct named_unit *)b)->file);
}

/* A unit in two inputs (one fold's output given twice, or folds whose test parts overlap) would be
 * counted twice: refused, naming the file and both inputs.  Units without a file name (shards of
 * older builds) are not compared. */
static enum avemo_status check_units_once(const struct unit_list *u, const char *const *inputs,
                                          struct avemo_error *err)
{
    struct named_unit *order = malloc((u->n ? u->n : 1) * sizeof *order);
    if (!order) return avemo_fail(err, AVEMO_ERR_NOMEM, "merge: out of memory");
    for (size_t i = 0; i < u->n; i++) order[i] = (struct named_unit){u->files[i], u->input[i]};
    qsort(order, u->n, sizeof *order, by_file);
    enum avemo_status s = AVEMO_OK;
    for (size_t k = 1; !s && k < u->n; k++)
        if (order[k].file[0] && strcmp(order[k - 1].file, order[k].file) == 0)
            s = avemo_fail(err, AVEMO_ERR_MISMATCH,
                           "merge: %s is a unit of %s and of %s (an output given twice, or folds whose test "
                           "parts overlap)",
                           order[k].file, inputs[order[k - 1].input], inputs[order[k].input]);
    free(order);
    return s;
}

/* The merged result's model: the shards' one, or the first of the pooled folds' and how many more. */
static void name_pooled_model(const struct unit_list *u, struct avemo_eval_set *set)
{
    if (u->nmodels > 1)
        snprintf(set->results[0].model, sizeof set->results[0].model, "%.30s and %d other model%s", u->models[0],
                 u->nmodels - 1, u->nmodels > 2 ? "s" : "");
}

static void free_unit_extras(struct unit_list *u)
{
    for (size_t i = 0; i < u->n; i++) free(u->files[i]);
    free(u->files);
    free(u->input);
    free(u->models);
    free(u->probs);
    cJSON_Delete(u->data);
}

enum avemo_status avemo_eval_merge(const char *const *inputs, int n, struct avemo_eval_set *set,
                                   struct avemo_error *err)
{
    memset(set, 0, sizeof *set);
    cJSON *labels = NULL;
    struct unit_list u = {.set = set};
    set->results = calloc(1, sizeof *set->results);
    enum avemo_status s = set->results ? AVEMO_OK : avemo_fail(err, AVEMO_ERR_NOMEM, "merge: out of memory");
    if (!s) set->nresults = 1;
    for (int i = 0; !s && i < n; i++) s = merge_one(inputs[i], i, &labels, &u, err);
    if (!s && u.n == 0) s = avemo_fail(err, AVEMO_ERR_EMPTY, "merge: no unit in the %d shard(s)", n);
    if (!s) s = check_units_once(&u, inputs, err);
    const char *names[AVEMO_MAX_CLASSES];
    if (!s) {
        name_pooled_model(&u, set);
        set->num_classes = cJSON_GetArraySize(labels);
        for (int c = 0; c < set->num_classes; c++) {
            names[c] = cJSON_GetArrayItem(labels, c)->valuestring;
            snprintf(set->labels[c], sizeof set->labels[c], "%s", names[c]);
        }
        s = avemo_metrics_compute(u.truth, u.pred, u.n, set->num_classes, names, &set->results[0].metrics, err);
    }
    set->n = u.n;
    set->truth = u.truth;
    if (set->results) set->results[0].pred = u.pred;
    else free(u.pred);
    /* The probabilities were stored with the classes' stride; kept when every unit had them. */
    if (set->results && u.with_probs && u.n) {
        set->results[0].probs = u.probs;
        u.probs = NULL;
    }
    free_unit_extras(&u);
    set->source = u.source;
    cJSON_Delete(labels);
    if (s) avemo_eval_free(set);
    return s;
}
