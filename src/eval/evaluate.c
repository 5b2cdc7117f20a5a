/*
 * Evaluating one or more models on the same labelled units, for `avemo eval`
 * and `avemo compare`.  Inputs are built exactly as in training's evaluation
 * (avemo_train_data_batch without augmentation): the middle frame's face of a clip,
 * or a fixed label-matched face image for audio without video.
 */
#include "eval/eval_internal.h"

#include <avemo/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct eval_model {
    struct avemo_model model;
    struct avemo_dataset ds;
    struct avemo_feature_set fs;
    struct avemo_train_data td;
    signed char *part;
    unsigned char *own;        /* with a shard: 1 for the items of its block; NULL: every item */
    int tested;                /* the split's part evaluated (AVEMO_PART_TEST unless options say) */
    unsigned char *trained;    /* 1 for the test items a model trained on (left out), or NULL */
};

static void eval_model_free(struct eval_model *m)
{
    avemo_model_close(&m->model);
    avemo_dataset_free(&m->ds);
    avemo_features_free(&m->fs);
    avemo_train_data_free(&m->td);
    free(m->part);
    free(m->own);
    free(m->trained);
}

/* The items evaluated: every item, or a shard's block (they give its units, skipped items and
 * failures; m->own).  Only their test items and those items' label-matched partners, which
 * the whole list decides, are read (*only). */
static enum avemo_status items_to_read(struct eval_model *m, const struct avemo_shard *shard, uint64_t seed,
                                       unsigned char **only, struct avemo_error *err)
{
    size_t n = m->ds.count ? m->ds.count : 1, b = 0, e = m->ds.count;
    size_t *partner = malloc(sizeof(size_t) * n);
    *only = calloc(n, 1);
    if (shard) m->own = calloc(n, 1);
    enum avemo_status st = partner && *only && (!shard || m->own) ? AVEMO_OK
                                                                  : avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    if (!st) st = avemo_pair_items(&m->ds, m->part, seed, partner, err);
    if (shard) avemo_shard_range(shard, m->ds.count, &b, &e);
    for (size_t i = b; !st && i < e; i++) {
        if (m->own) m->own[i] = 1;
        if (m->part[i] != m->tested) continue; /* not evaluated */
        (*only)[i] = 1;
        if (partner[i] != (size_t)-1) (*only)[partner[i]] = 1;
    }
    free(partner);
    return st;
}

/* The split's parts, or every item in the test part. */
static enum avemo_status load_parts(struct eval_model *m, const char *path, const struct avemo_eval_options *opt,
                                    struct avemo_error *err)
{
    m->part = malloc(m->ds.count ? m->ds.count : 1);
    if (!m->part) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    m->tested = opt->part == AVEMO_EVAL_VALIDATION ? AVEMO_PART_VALIDATION
                : opt->part == AVEMO_EVAL_TRAIN    ? AVEMO_PART_TRAIN
                                                   : AVEMO_PART_TEST;
    if (!opt->split_path) {
        if (opt->part != AVEMO_EVAL_TEST)
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: evaluating a validation or training part needs a split file", path);
        memset(m->part, AVEMO_PART_TEST, m->ds.count);
        return AVEMO_OK;
    }
    struct avemo_split sp;
    enum avemo_status st = avemo_split_load(&m->ds, opt->split_path, &sp, err);
    if (st) return st;
    memcpy(m->part, sp.part, m->ds.count);
    avemo_split_free(&sp);
    return AVEMO_OK;
}

/* Load the model, read the data with its label map, extract features for both modalities. */
static enum avemo_status prepare(const char *path, const struct avemo_eval_options *opt, const struct eval_record *rec,
                                 struct eval_model *m, struct avemo_error *err)
{
    enum avemo_status st = avemo_model_open(path, opt->overrides, opt->noverrides, &m->model, err);
    if (!st) st = avemo_model_prepare(&m->model, err);
    if (st) return st;
    struct avemo_pipeline *p = &m->model.p;
    avemo_net *net = m->model.net;
    m->td.audio_input = m->model.audio_input;
    m->td.face_input = m->model.face_input;
    for (int i = 0; !st && i < opt->ndata; i++) st = avemo_dataset_add(&m->ds, opt->data[i], &p->labels, err);
    if (st) return st;
    if (avemo_net_classes(net) != m->ds.num_classes)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: %d outputs but its [labels] has %d classes", path,
                          avemo_net_classes(net), m->ds.num_classes);
    unsigned char *only = NULL;
    if ((st = load_parts(m, path, opt, err))) return st;
    /* Before the pairs are drawn, so that no training file is a partner either. */
    if (rec->n && !(m->trained = calloc(m->ds.count ? m->ds.count : 1, 1)))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", path);
    if (rec->n) eval_leave_out_trained(&m->ds, m->part, rec, m->trained);
    if ((st = items_to_read(m, opt->shard, opt->seed, &only, err))) {
        free(only);
        return st;
    }
    struct avemo_extract_options eo = {1, 1, 0, opt->threads, opt->cache_path, opt->progress, only};
    struct avemo_pipeline feat = *p;
    if (feat.audio.norm == AVEMO_NORM_DATASET) feat.audio.norm = AVEMO_NORM_NONE;
    if (feat.audio.frames <= 0) feat.audio.frames = 128;
    st = avemo_features_extract(&feat, &m->ds, &eo, &m->fs, err);
    free(only);
    if (st) return st;
    /* Both modalities are prepared so that every model sees the same units. */
    m->td.need_audio = 1;
    m->td.need_face = 1;
    st = avemo_train_data_init(&m->td, p, &m->ds, &m->fs, m->part, opt->seed, err);
    /* avemo_model_open checked that the statistics exist and match the feature rows. */
    m->td.mean = m->model.mean;
    m->td.std = m->model.std;
    return st;
}

/* A test item of this evaluation (of its block, for a shard). */
static int is_own_test(const struct eval_model *m, size_t i)
{
    return m->part[i] == m->tested && (!m->own || m->own[i]);
}

/* A unit: a test item with sound (and a face, own or matched), or a face item when no
 * item has sound. */
static int is_unit(const struct eval_model *m, size_t i, int data_has_audio, int pairs)
{
    if (!is_own_test(m, i) || m->fs.failure[i]) return 0;
    if (!data_has_audio) return m->fs.face_count[i] > 0;
    struct avemo_train_data td = m->td;
    /* Beside an av model, every model takes the av units (sound and a face, own or matched),
     * so that unimodal models and their late fusion are measured on the same pairs. */
    if (pairs) return avemo_train_data_usable(&td, i);
    /* A face model takes every face, from a clip or an image, when the data mixes both. */
    if (m->td.audio_input < 0) return m->fs.face_count[i] > 0;
    return avemo_train_data_usable(&td, i) || (m->fs.has_audio[i] && m->td.audio_input >= 0 && m->td.face_input < 0);
}

/* Raw logits (rows x n x k, r->logit_rows) and the model's probabilities (n x k) of the units. */
static enum avemo_status predict(struct eval_model *m, const size_t *units, size_t n, int *pred, int *truth,
                                 struct avemo_eval_result *r, struct avemo_error *err)
{
    const int batch = 32;
    avemo_nn_ctx *ctx = NULL;
    enum avemo_status st = avemo_nn_ctx_create(m->model.net, batch, 0, 0, &ctx, err);
    float *ain = malloc(sizeof(float) * (m->td.audio_floats * batch + 1));
    float *fin = malloc(sizeof(float) * (m->td.face_floats * batch + 1));
    int labels[32];
    int k = avemo_net_classes(m->model.net);
    int mirror = m->td.face_input >= 0 && m->model.p.face.mirror_test, rows = 1;
    r->logit_rows = avemo_model_logit_rows(&m->model, mirror);
    float *logits = malloc(sizeof(float) * (size_t)r->logit_rows * (size_t)batch * (size_t)k);
    r->logits = malloc(sizeof(float) * (size_t)r->logit_rows * (n ? n : 1) * (size_t)k);
    r->probs = malloc(sizeof(float) * (n ? n : 1) * (size_t)k);
    if (!st && (!ain || !fin || !logits || !r->logits || !r->probs)) st = avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    /* Units were chosen with both modalities prepared, but only the model's own inputs are
     * built: an audio model's unit may have no face at all, neither its own nor a matched one. */
    struct avemo_train_data td = m->td;
    td.need_audio = m->td.audio_input >= 0;
    td.need_face = m->td.face_input >= 0;
    for (size_t at = 0; !st && at < n; at += batch) {
        int b = n - at < (size_t)batch ? (int)(n - at) : batch;
        avemo_train_data_batch(&td, units + at, b, 0, NULL, ain, fin, labels);
        const float *inputs[2];
        for (int i = 0; i < avemo_net_input_count(m->model.net); i++) inputs[i] = i == m->td.audio_input ? ain : fin;
        st = avemo_model_predict_logits(&m->model, ctx, inputs, b, 0, fin, m->fs.face_size, m->fs.face_channels,
                                        mirror, logits, &rows, err);
        for (int row = 0; !st && row < rows; row++)
            memcpy(r->logits + ((size_t)row * n + at) * (size_t)k, logits + (size_t)row * (size_t)b * (size_t)k,
                   sizeof(float) * (size_t)b * (size_t)k);
        for (int j = 0; !st && j < b; j++) truth[at + (size_t)j] = labels[j];
    }
    /* The probabilities the model gives (its stored temperature applied), and their top class. */
    if (!st) avemo_calib_probs(r->logits, r->logit_rows, n, k, avemo_model_temperature(m->model.net), r->probs);
    for (size_t u = 0; !st && u < n; u++) {
        const float *p = r->probs + u * (size_t)k;
        int best = 0;
        for (int c = 1; c < k; c++)
            if (p[c] > p[best]) best = c;
        pred[u] = best;
    }
    avemo_nn_ctx_free(ctx);
    free(ain);
    free(fin);
    free(logits);
    return st;
}

/* Each --data's path and corpus, the test files that could not be read (by name) and the
 * labels the map left out, so that reports say what was not measured. */
static enum avemo_status record_sources_and_failures(const struct eval_model *m, const struct avemo_eval_options *opt,
                                                     struct avemo_eval_set *set, struct avemo_error *err)
{
    set->nsources = opt->ndata < AVEMO_EVAL_MAX_SOURCES ? opt->ndata : AVEMO_EVAL_MAX_SOURCES;
    for (int s = 0; s < set->nsources; s++) {
        snprintf(set->source_path[s], sizeof set->source_path[s], "%s", opt->data[s]);
        snprintf(set->source_corpus[s], sizeof set->source_corpus[s], "%s",
                 avemo_corpus_name(avemo_dataset_source_corpus(&m->ds, s)));
    }
    avemo_dataset_dropped_text(&m->ds, set->dropped, sizeof set->dropped);
    size_t nfail = 0;
    for (size_t i = 0; i < m->ds.count; i++) nfail += is_own_test(m, i) && m->fs.failure[i];
    if (!nfail) return AVEMO_OK;
    set->failures = calloc(nfail, sizeof(char *));
    if (!set->failures) return avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    for (size_t i = 0; i < m->ds.count; i++) {
        if (!is_own_test(m, i) || !m->fs.failure[i]) continue;
        const char *path = m->ds.items[i].path, *why = m->fs.failure[i];
        char **slot = &set->failures[set->nfailures];
        /* Feature errors usually name the file already; otherwise it is put first. */
        size_t size = strlen(path) + strlen(why) + 3;
        if (strstr(why, path)) *slot = strdup(why);
        else if ((*slot = malloc(size))) snprintf(*slot, size, "%s: %s", path, why);
        if (!*slot) return avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
        set->nfailures++;
    }
    return AVEMO_OK;
}

enum avemo_status avemo_eval_source_metrics(const struct avemo_eval_set *set, int r, int source,
                                            struct avemo_metrics *m, struct avemo_error *err)
{
    memset(m, 0, sizeof *m);
    if (r < 0 || r >= set->nresults || source < 0 || source >= set->nsources)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "eval: no result %d or data %d", r, source);
    size_t cap = set->n ? set->n : 1;
    int *truth = malloc(sizeof(int) * cap), *pred = malloc(sizeof(int) * cap);
    enum avemo_status st = truth && pred ? AVEMO_OK : avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    size_t n = 0;
    for (size_t u = 0; !st && u < set->n; u++)
        if (set->source[u] == source) {
            truth[n] = set->truth[u];
            pred[n++] = set->results[r].pred[u];
        }
    const char *labels[AVEMO_MAX_CLASSES];
    for (int c = 0; c < set->num_classes; c++) labels[c] = set->labels[c];
    if (!st && n) st = avemo_metrics_compute(truth, pred, n, set->num_classes, labels, m, err);
    free(truth);
    free(pred);
    return st;
}

/* Why nothing can be measured: every test item was a training file (the command refuses to
 * score a model on what it learnt from), or the items do not suit the model(s). */
static enum avemo_status no_units_error(const struct eval_model *m, size_t trained_on, struct avemo_error *err)
{
    size_t tests = 0;
    for (size_t i = 0; i < m->ds.count; i++) tests += is_own_test(m, i);
    if (trained_on && tests == 0)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "eval: every test item is a file the model(s) were trained or validated "
                          "on (%zu, by the SHA-256 in the training record): nothing left to measure; evaluate the test "
                          "part of the model's split (--split) or other data", trained_on);
    if (trained_on)
        return avemo_fail(err, AVEMO_ERR_EMPTY, "eval: no test item is usable by the model(s) (and %zu were left out as "
                          "files they were trained or validated on)", trained_on);
    return avemo_fail(err, AVEMO_ERR_EMPTY, "eval: no test item is usable by the model(s)");
}

enum avemo_status avemo_evaluate(const char *const *model_paths, int nmodels, const struct avemo_eval_options *opt,
                                 struct avemo_eval_set *set, struct avemo_error *err)
{
    memset(set, 0, sizeof *set);
    if (nmodels < 1 || nmodels > 8) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "eval: 1 to 8 models, not %d", nmodels);
    if (opt->ndata < 1) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "eval: no --data given");
    struct eval_model *models = calloc((size_t)nmodels, sizeof *models);
    set->results = calloc((size_t)nmodels, sizeof *set->results);
    if (!models || !set->results) {
        free(models);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    }
    set->nresults = nmodels;
    struct eval_record rec;
    enum avemo_status st = eval_record_load(model_paths, nmodels, &rec, set->unchecked, sizeof set->unchecked, err);
    for (int i = 0; !st && i < nmodels; i++) {
        models[i].td.audio_input = models[i].td.face_input = -1;
        st = prepare(model_paths[i], opt, &rec, &models[i], err);
        if (!st && i > 0 && models[i].ds.count != models[0].ds.count)
            st = avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: its label map keeps %zu items, %s keeps %zu: compare needs the same classes",
                            model_paths[i], models[i].ds.count, model_paths[0], models[0].ds.count);
    }
    size_t count = st ? 0 : models[0].ds.count;
    size_t *units = malloc(sizeof(size_t) * (count ? count : 1));
    if (!st && !units) st = avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    /* Whether the data has sound is read from the item list, the same for every shard. */
    int has_audio = 0;
    for (size_t i = 0; !st && i < count; i++) has_audio |= (models[0].ds.items[i].kind & AVEMO_ITEM_AUDIO) != 0;
    size_t n = 0;
    int pairs = 0;
    for (int mi = 0; !st && mi < nmodels; mi++) pairs |= models[mi].model.p.mode == AVEMO_MODE_AV;
    for (size_t i = 0; !st && i < count; i++) {
        int ok = 1, tested = is_own_test(&models[0], i);
        for (int mi = 0; mi < nmodels; mi++) ok &= is_unit(&models[mi], i, has_audio, pairs);
        if (ok) units[n++] = i;
        else if (tested && (has_audio || !(models[0].ds.items[i].kind & AVEMO_ITEM_AUDIO))) set->skipped++;
        int mine = models[0].trained && (!models[0].own || models[0].own[i]);
        set->trained_on += mine && models[0].trained[i] == 1;
        set->same_name += mine && models[0].trained[i] == 2;
    }
    if (!st) st = record_sources_and_failures(&models[0], opt, set, err);
    /* A shard without units still reports its skipped items and failures. */
    if (!st && n == 0 && !opt->shard) st = no_units_error(&models[0], set->trained_on, err);
    if (!st) {
        set->n = n;
        set->truth = malloc(sizeof(int) * (n + 1));
        set->paths = calloc(n + 1, sizeof(char *));
        if (!set->truth || !set->paths) st = avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
        set->source = malloc(sizeof(int) * (n + 1));
        if (!st && !set->source) st = avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
        for (size_t u = 0; !st && u < n; u++) {
            set->source[u] = models[0].ds.items[units[u]].source;
            if (!(set->paths[u] = strdup(models[0].ds.items[units[u]].path))) st = AVEMO_ERR_NOMEM;
        }
        set->num_classes = models[0].ds.num_classes;
        for (int c = 0; c < set->num_classes; c++) snprintf(set->labels[c], sizeof set->labels[c], "%s", models[0].ds.classes[c]);
    }
    for (int mi = 0; !st && n > 0 && mi < nmodels; mi++) {
        struct avemo_eval_result *r = &set->results[mi];
        const char *base = strrchr(model_paths[mi], '/');
        snprintf(r->model, sizeof r->model, "%s", base ? base + 1 : model_paths[mi]);
        r->mode = models[mi].model.p.mode;
        r->pred = malloc(sizeof(int) * n);
        int *truth = malloc(sizeof(int) * n);
        if (!r->pred || !truth) st = avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
        if (!st) st = predict(&models[mi], units, n, r->pred, truth, r, err);
        if (!st) memcpy(set->truth, truth, sizeof(int) * n);
        const char *labels[AVEMO_MAX_CLASSES];
        for (int c = 0; c < set->num_classes; c++) labels[c] = set->labels[c];
        if (!st) st = avemo_metrics_compute(set->truth, r->pred, n, set->num_classes, labels, &r->metrics, err);
        free(truth);
    }
    for (int i = 0; i < nmodels; i++) eval_model_free(&models[i]);
    eval_record_free(&rec);
    free(models);
    free(units);
    if (st) avemo_eval_free(set);
    return st;
}

void avemo_eval_free(struct avemo_eval_set *set)
{
    if (!set) return;
    for (size_t i = 0; set->paths && i < set->n; i++) free(set->paths[i]);
    for (int i = 0; set->results && i < set->nresults; i++) {
        free(set->results[i].pred);
        free(set->results[i].probs);
        free(set->results[i].logits);
    }
    for (size_t i = 0; set->failures && i < set->nfailures; i++) free(set->failures[i]);
    free(set->failures);
    free(set->source);
    free(set->paths);
    free(set->truth);
    free(set->results);
    memset(set, 0, sizeof *set);
}
