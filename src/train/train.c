/*
 * avemo_train_run: dataset -> features -> split -> network -> epochs of Adam
 * with early stopping on the validation loss, reduce-on-plateau, class weights,
 * augmentation, checkpoints, a CSV log and curves; the best epoch's model is saved.
 */
#include "train/train_internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* --- a training session's state ---------------------------------------------- */

/* One training batch: inputs, labels and how its loss is weighed (mixup, a teacher's
 * probabilities); st and err say when the producer could not make it. */
struct train_batch {
    float *audio, *face;
    int *labels, *mix_labels;
    float *soft;
    int b;
    struct avemo_nn_loss lo;
    enum avemo_status st;
    struct avemo_error err;
};

struct session {
    const struct avemo_train_options *opt;
    struct avemo_pipeline p;
    char *pipeline_text;
    struct avemo_dataset ds;
    struct avemo_feature_set fs;
    struct avemo_split split;
    struct avemo_train_data td;
    avemo_net *net;
    avemo_nn_ctx *ctx, *eval_ctx;
    avemo_optim *optim;
    size_t *idx[AVEMO_PART_COUNT];
    size_t n[AVEMO_PART_COUNT];
    float *audio_in, *face_in;
    int *labels;
    float *mix_in;            /* mixup: a copy of one input's batch */
    int *mix_labels;
    struct train_batch slot[2]; /* training batches made one ahead (slot 0 uses the buffers above) */
    float class_weights[AVEMO_MAX_CLASSES];
    float *mean, *std;
    float *best_params, *best_stats;
    struct train_teacher teacher; /* --teacher: distillation */
    double *swa_sum;          /* stochastic weight averaging: sum of the averaged epochs' weights */
    int swa_count;
    FILE *log;
};

static void session_free(struct session *s)
{
    free(s->pipeline_text);
    avemo_dataset_free(&s->ds);
    avemo_features_free(&s->fs);
    avemo_split_free(&s->split);
    avemo_train_data_free(&s->td);
    avemo_nn_ctx_free(s->ctx);
    avemo_nn_ctx_free(s->eval_ctx);
    avemo_optim_free(s->optim);
    avemo_net_free(s->net);
    for (int k = 0; k < 3; k++) free(s->idx[k]);
    free(s->audio_in);
    free(s->face_in);
    free(s->labels);
    free(s->mix_in);
    free(s->mix_labels);
    free(s->slot[1].audio);
    free(s->slot[1].face);
    free(s->slot[1].labels);
    free(s->slot[1].mix_labels);
    free(s->slot[0].soft);
    free(s->slot[1].soft);
    train_teacher_close(&s->teacher);
    free(s->mean);
    free(s->std);
    free(s->best_params);
    free(s->best_stats);
    free(s->swa_sum);
    if (s->log) fclose(s->log);
}

static void say(const struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct session *s, const char *fmt, ...)
{
    if (s->opt->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* --- steps ----------------------------------------------------------------------- */

static enum avemo_status load_data(struct session *s, struct avemo_error *err)
{
    if (s->opt->ndata < 1) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "train: no --data given");
    for (int i = 0; i < s->opt->ndata; i++) {
        enum avemo_status st = avemo_dataset_add(&s->ds, s->opt->data[i], &s->p.labels, err);
        if (st) return st;
    }
    char dropped[256];
    avemo_dataset_dropped_text(&s->ds, dropped, sizeof dropped);
    say(s, "data: %zu labelled files (%zu dropped by [labels]%s%s)\n", s->ds.count, s->ds.dropped, *dropped ? ": " : "",
        dropped);
    return AVEMO_OK;
}

static enum avemo_status extract(struct session *s, struct avemo_error *err)
{
    const struct avemo_augment *a = &s->p.augment;
    struct avemo_extract_options eo = {0};
    eo.need_audio = s->p.mode != AVEMO_MODE_FACE;
    eo.need_faces = s->p.mode != AVEMO_MODE_AUDIO;
    eo.keep_wave = eo.need_audio && train_augment_uses_wave(a);
    if (eo.need_audio) { /* before the extraction, which can take minutes */
        enum avemo_status st = train_check_codecs(a, s->p.audio.sample_rate, err);
        if (st) return st;
    }
    eo.threads = s->p.train.threads;
    eo.cache_path = s->opt->cache_path;
    eo.progress = s->opt->progress;
    /* Dataset statistics are applied per batch, so the cache holds unnormalised features. */
    struct avemo_pipeline feat = s->p;
    if (feat.audio.norm == AVEMO_NORM_DATASET) feat.audio.norm = AVEMO_NORM_NONE;
    enum avemo_status st = avemo_features_extract(&feat, &s->ds, &eo, &s->fs, err);
    if (st) return st;
    s->td.need_audio = eo.need_audio;
    s->td.need_face = eo.need_faces;
    if (s->fs.failed) {
        say(s, "skipped %zu files:\n", s->fs.failed);
        for (size_t i = 0; i < s->ds.count; i++)
            if (s->fs.failure[i]) say(s, "  %s\n", s->fs.failure[i]);
    }
    return AVEMO_OK;
}

/* train.repeat: the training items of the k-th --data listed repeat[k] times (an epoch
 * then sees a small corpus as often as asked; shuffling mixes the copies). */
static enum avemo_status repeat_sources(struct session *s, struct avemo_error *err)
{
    const struct avemo_train_config *t = &s->p.train;
    /* The recipe names the corpora it was made for; run on fewer, the counts left over are
     * unused (the first --data takes the first count), said so rather than refused. */
    if (t->nrepeat > s->ds.nsources)
        fprintf(stderr, "warning: train.repeat has %d counts for %d --data; the last %d are not used\n", t->nrepeat,
                s->ds.nsources, t->nrepeat - s->ds.nsources);
    size_t n = s->n[AVEMO_PART_TRAIN], total = 0;
    const size_t *idx = s->idx[AVEMO_PART_TRAIN];
    for (size_t j = 0; j < n; j++) {
        int src = s->ds.items[idx[j]].source;
        total += src < t->nrepeat ? (size_t)t->repeat[src] : 1;
    }
    if (total == n) return AVEMO_OK;
    size_t *out = malloc(sizeof *out * total);
    if (!out) return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        int src = s->ds.items[idx[j]].source, times = src < t->nrepeat ? t->repeat[src] : 1;
        for (int r = 0; r < times; r++) out[m++] = idx[j];
    }
    free(s->idx[AVEMO_PART_TRAIN]);
    s->idx[AVEMO_PART_TRAIN] = out;
    s->n[AVEMO_PART_TRAIN] = total;
    say(s, "train.repeat: %zu training samples become %zu\n", n, total);
    return AVEMO_OK;
}

static enum avemo_status make_split(struct session *s, struct avemo_error *err)
{
    const struct avemo_train_config *t = &s->p.train;
    enum avemo_status st = s->opt->split_in ? avemo_split_load(&s->ds, s->opt->split_in, &s->split, err)
                                            : avemo_split_for_pipeline(&s->ds, t, &s->split, err);
    if (st) return st;
    if (t->split == AVEMO_SPLIT_RANDOM && !s->opt->split_in)
        fprintf(stderr, "warning: a random split puts the same actors in training and test; "
                        "its accuracy overstates what unseen speakers get\n");
    if (s->opt->split_out && (st = avemo_split_save(&s->ds, &s->split, s->opt->split_out, err))) return st;
    st = avemo_train_data_init(&s->td, &s->p, &s->ds, &s->fs, s->split.part, t->seed, err);
    if (st) return st;
    size_t unusable = 0;
    for (int k = 0; k < 3; k++) {
        s->idx[k] = avemo_split_indices(&s->split, k, &s->n[k]);
        if (!s->idx[k]) return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
        size_t m = 0;
        for (size_t j = 0; j < s->n[k]; j++) {
            if (avemo_train_data_usable(&s->td, s->idx[k][j])) s->idx[k][m++] = s->idx[k][j];
            else unusable++;
        }
        s->n[k] = m;
    }
    say(s, "split: %zu train, %zu validation, %zu test samples (%zu items are not samples of this mode)\n", s->n[0],
        s->n[1], s->n[2], unusable);
    if ((st = repeat_sources(s, err))) return st;
    if (s->n[AVEMO_PART_TRAIN] == 0) return avemo_fail(err, AVEMO_ERR_EMPTY, "train: no usable training samples");
    if (s->n[AVEMO_PART_VALIDATION] == 0 && !(t->validation == 0 && t->swa_start > 0)) {
        /* A tiny corpus (e.g. six clips): validate on the training data so training still stops.
         * (Weight averaging without validation runs its fixed epochs, as asked.) */
        fprintf(stderr, "warning: no validation samples; early stopping watches the training loss\n");
    }
    return AVEMO_OK;
}

static void compute_class_weights(struct session *s)
{
    size_t counts[AVEMO_MAX_CLASSES] = {0};
    avemo_dataset_class_counts(&s->ds, s->idx[AVEMO_PART_TRAIN], s->n[AVEMO_PART_TRAIN], counts);
    int k = s->ds.num_classes;
    for (int c = 0; c < k; c++)
        s->class_weights[c] = s->p.train.class_weights && counts[c]
                                  ? (float)((double)s->n[AVEMO_PART_TRAIN] / ((double)k * (double)counts[c]))
                                  : 1.0f;
}

/* The class shares the model learns (train.prior, which late fusion divides out): uniform when
 * the loss weighs classes equally, else the shares of the training samples of an epoch (after
 * train.repeat).  A teacher's soft labels are not counted: its hard labels' shares stand for them. */
static enum avemo_status store_train_prior(struct session *s, struct avemo_error *err)
{
    size_t counts[AVEMO_MAX_CLASSES] = {0};
    double shares[AVEMO_MAX_CLASSES];
    float prior[AVEMO_MAX_CLASSES];
    int k = s->ds.num_classes;
    avemo_dataset_class_counts(&s->ds, s->idx[AVEMO_PART_TRAIN], s->n[AVEMO_PART_TRAIN], counts);
    for (int c = 0; c < k; c++) /* a class with no sample gets half of one: never a share of 0 */
        shares[c] = s->p.train.class_weights ? 1.0 : counts[c] ? (double)counts[c] : 0.5;
    if (avemo_prior_from_counts(shares, k, prior) != 0) return AVEMO_OK; /* no training samples: no prior */
    return avemo_net_set_array(s->net, AVEMO_TRAIN_PRIOR, prior, (size_t)k, err);
}

/* Per-band mean and standard deviation over the training features (norm = dataset). */
static enum avemo_status compute_stats(struct session *s, struct avemo_error *err)
{
    if (s->p.audio.norm != AVEMO_NORM_DATASET || !s->td.need_audio) return AVEMO_OK;
    int rows = s->fs.audio_rows, cols = s->fs.audio_cols;
    s->mean = calloc((size_t)rows, sizeof(float));
    s->std = calloc((size_t)rows, sizeof(float));
    double *sum = calloc((size_t)rows, sizeof(double)), *sq = calloc((size_t)rows, sizeof(double));
    enum avemo_status st = s->mean && s->std && sum && sq ? AVEMO_OK : avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    size_t count = 0;
    for (size_t j = 0; !st && j < s->n[AVEMO_PART_TRAIN]; j++) {
        const float *x = s->fs.audio + s->idx[AVEMO_PART_TRAIN][j] * s->td.audio_floats;
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < cols; t++) {
                sum[r] += x[r * cols + t];
                sq[r] += (double)x[r * cols + t] * x[r * cols + t];
            }
        count += (size_t)cols;
    }
    for (int r = 0; !st && r < rows; r++) {
        double m = sum[r] / (double)count, v = sq[r] / (double)count - m * m;
        s->mean[r] = (float)m;
        s->std[r] = (float)sqrt(v > 1e-8 ? v : 1e-8);
    }
    free(sum);
    free(sq);
    if (st) return st;
    s->td.mean = s->mean;
    s->td.std = s->std;
    if ((st = avemo_net_set_array(s->net, "audio.mean", s->mean, (size_t)rows, err))) return st;
    return avemo_net_set_array(s->net, "audio.std", s->std, (size_t)rows, err);
}

/* --init MODEL[:prefix,prefix]: copy the named layers of another model. */
const char *train_init_spec(const char *spec, char *path, size_t size)
{
    snprintf(path, size, "%s", spec);
    char *colon = strrchr(path, ':');
    if (!colon || strchr(colon, '/')) return "";
    *colon = 0;
    return spec + (colon - path) + 1;
}

static enum avemo_status init_from(struct session *s, const char *spec, struct avemo_error *err)
{
    char path[4096];
    const char *prefixes = train_init_spec(spec, path, sizeof path);
    char list[512];
    snprintf(list, sizeof list, "%s", prefixes);
    int copied = 0;
    char *save = NULL, *tok = strtok_r(list, ",", &save);
    do {
        int n = 0;
        enum avemo_status st = avemo_net_load_params(s->net, path, tok ? tok : "", &n, err);
        if (st) return st;
        copied += n;
    } while (tok && (tok = strtok_r(NULL, ",", &save)));
    say(s, "init: %d layers from %s%s%s\n", copied, path, prefixes[0] ? " matching " : "", prefixes);
    if (copied == 0)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: no layer matches the network of %s", path, s->opt->pipeline_path);
    return AVEMO_OK;
}

/* --teacher: its probabilities for every training batch (src/train/teacher.c). */
static enum avemo_status open_teacher(struct session *s, struct avemo_error *err)
{
    const int batch = s->p.train.batch, k = s->ds.num_classes;
    enum avemo_status st = train_teacher_open(&s->teacher, s->opt->teacher, &s->p, s->net, s->td.mean, s->td.std,
                                              s->fs.audio_rows, s->fs.audio_cols, batch, err);
    if (st) return st;
    for (int i = 0; i < 2; i++)
        if (!(s->slot[i].soft = malloc(sizeof(float) * (size_t)batch * (size_t)k)))
            return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    say(s, "teacher: %s (%d network%s), weight %g\n", s->opt->teacher, s->teacher.model.members,
        s->teacher.model.members > 1 ? "s" : "", (double)s->teacher.weight);
    return AVEMO_OK;
}

static enum avemo_status build_net(struct session *s, struct avemo_error *err)
{
    enum avemo_status st = avemo_net_create(s->pipeline_text, s->opt->pipeline_path, &s->net, err);
    if (!st) st = avemo_model_check_inputs(s->net, &s->p, &s->td.audio_input, &s->td.face_input, err);
    if (st) return st;
    if (avemo_net_classes(s->net) != s->ds.num_classes)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: the network has %d outputs but [labels] has %d classes",
                          s->opt->pipeline_path, avemo_net_classes(s->net), s->ds.num_classes);
    avemo_net_init(s->net, AVEMO_NN_INIT_DEFAULT, s->p.train.seed);
    const char *labels[AVEMO_MAX_CLASSES];
    for (int c = 0; c < s->ds.num_classes; c++) labels[c] = s->ds.classes[c];
    if ((st = avemo_net_set_labels(s->net, labels, s->ds.num_classes, err))) return st;
    for (int i = 0; i < s->opt->ninit; i++)
        if ((st = init_from(s, s->opt->init[i], err))) return st;
    if ((st = compute_stats(s, err))) return st;
    int batch = s->p.train.batch;
    if ((st = avemo_nn_ctx_create(s->net, batch, 1, s->p.train.seed + 1, &s->ctx, err))) return st;
    if ((st = avemo_nn_ctx_create(s->net, batch, 0, 0, &s->eval_ctx, err))) return st;
    avemo_nn_ctx_set_dropout(s->ctx, s->p.train.dropout);
    struct avemo_optim_config oc = {0};
    oc.kind = (enum avemo_optim_kind)s->p.train.optimizer;
    oc.lr = s->p.train.lr;
    oc.weight_decay = s->p.train.weight_decay;
    oc.clip_norm = s->p.train.clip_norm;
    if ((st = avemo_optim_create(s->net, &oc, &s->optim, err))) return st;
    if (s->opt->freeze) {
        char list[256];
        snprintf(list, sizeof list, "%s", s->opt->freeze);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
            if ((st = avemo_optim_freeze(s->optim, s->net, tok, 1, err))) return st;
    }
    s->audio_in = malloc(sizeof(float) * s->td.audio_floats * (size_t)batch + 1);
    s->face_in = malloc(sizeof(float) * s->td.face_floats * (size_t)batch + 1);
    s->labels = malloc(sizeof(int) * (size_t)batch);
    size_t widest = s->td.audio_floats > s->td.face_floats ? s->td.audio_floats : s->td.face_floats;
    s->mix_in = malloc(sizeof(float) * widest * (size_t)batch + 1);
    s->mix_labels = malloc(sizeof(int) * (size_t)batch);
    s->slot[0] = (struct train_batch){.audio = s->audio_in, .face = s->face_in, .labels = s->labels,
                                      .mix_labels = s->mix_labels};
    s->slot[1].audio = malloc(sizeof(float) * s->td.audio_floats * (size_t)batch + 1);
    s->slot[1].face = malloc(sizeof(float) * s->td.face_floats * (size_t)batch + 1);
    s->slot[1].labels = malloc(sizeof(int) * (size_t)batch);
    s->slot[1].mix_labels = malloc(sizeof(int) * (size_t)batch);
    if (!s->audio_in || !s->face_in || !s->labels || !s->mix_in || !s->mix_labels || !s->slot[1].audio ||
        !s->slot[1].face || !s->slot[1].labels || !s->slot[1].mix_labels)
        return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    if (s->opt->teacher && s->p.train.distill == 0.0f)
        fprintf(stderr, "warning: train.distill = 0: the teacher's probabilities would not count; it is not run\n");
    else if (s->opt->teacher && (st = open_teacher(s, err)))
        return st;
    if (s->td.need_audio && (st = avemo_audio_extractor_create(&s->p.audio, &s->td.ex, err))) return st;
    if (s->td.ex && s->p.audio.norm == AVEMO_NORM_DATASET) {
        /* Augmented features must come out unnormalised, like the cached ones. */
        struct avemo_audio_params raw = s->p.audio;
        raw.norm = AVEMO_NORM_NONE;
        avemo_audio_extractor_free(s->td.ex);
        s->td.ex = NULL;
        if ((st = avemo_audio_extractor_create(&raw, &s->td.ex, err))) return st;
    }
    return AVEMO_OK;
}

static const float *const *slot_inputs(const struct session *s, const struct train_batch *tb, const float *inputs[2])
{
    int k = 0;
    for (int i = 0; i < avemo_net_input_count(s->net); i++)
        inputs[k++] = i == s->td.audio_input ? tb->audio : tb->face;
    return inputs;
}

static const float *const *batch_inputs(struct session *s, const float *inputs[2])
{
    return slot_inputs(s, &s->slot[0], inputs);
}

/* Loss, accuracy and (optionally) predictions of a part in eval mode. */
static enum avemo_status evaluate(struct session *s, const size_t *idx, size_t n, double *loss, double *acc, int *pred,
                                  int *truth, struct avemo_error *err)
{
    struct avemo_nn_loss lo = {.class_weights = s->class_weights};
    double total = 0;
    size_t correct = 0;
    int batch = s->p.train.batch, k = s->ds.num_classes;
    for (size_t at = 0; at < n; at += (size_t)batch) {
        int b = n - at < (size_t)batch ? (int)(n - at) : batch;
        avemo_train_data_batch(&s->td, idx + at, b, 0, NULL, s->audio_in, s->face_in, s->labels);
        const float *inputs[2], *logits;
        float l;
        enum avemo_status st = avemo_net_forward(s->net, s->eval_ctx, batch_inputs(s, inputs), b, &logits, err);
        if (!st) st = avemo_net_loss(s->net, s->eval_ctx, s->labels, &lo, &l, err);
        if (st) return st;
        total += (double)l * b;
        for (int j = 0; j < b; j++) {
            int best = 0;
            for (int c = 1; c < k; c++)
                if (logits[j * k + c] > logits[j * k + best]) best = c;
            correct += best == s->labels[j];
            if (pred) pred[at + (size_t)j] = best;
            if (truth) truth[at + (size_t)j] = s->labels[j];
        }
    }
    *loss = n ? total / (double)n : NAN;
    *acc = n ? (double)correct / (double)n : NAN;
    return AVEMO_OK;
}

/* --- mixup (Zhang et al., 2018) ------------------------------------------------------
 * Each training batch is blended with a shuffled copy of itself, x = l x_i + (1 - l) x_j, and
 * the loss is l loss(y_i) + (1 - l) loss(y_j), with l ~ Beta(a, a).  It teaches the network
 * to be linear between examples, a strong regulariser when a corpus has a few hundred clips. */

/* Beta(a, a) for 0 < a <= 1 by Johnk's rejection method (accepts often for such a). */
static float beta_sample(struct avemo_rng *rng, float a)
{
    for (int tries = 0; tries < 1000; tries++) {
        double x = pow(avemo_rng_uniform(rng), 1.0 / a), y = pow(avemo_rng_uniform(rng), 1.0 / a);
        if (x + y <= 1.0 && x + y > 0.0) return (float)(x / (x + y));
    }
    return 0.5f;
}

static void mix_input(float *in, float *copy, size_t floats, const int *perm, int b, float lam)
{
    memcpy(copy, in, sizeof(float) * floats * (size_t)b);
    for (int i = 0; i < b; i++) {
        float *x = in + (size_t)i * floats;
        const float *y = copy + (size_t)perm[i] * floats;
        for (size_t k = 0; k < floats; k++) x[k] = lam * x[k] + (1.0f - lam) * y[k];
    }
}

/* Mixes the batch in place and says how its loss is weighed. */
static void mixup_batch(struct session *s, struct avemo_rng *rng, struct train_batch *tb)
{
    int perm[1024], b = tb->b;
    for (int i = 0; i < b; i++) perm[i] = i;
    for (int i = b; i > 1; i--) {
        int j = (int)avemo_rng_below(rng, (uint32_t)i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    float lam = beta_sample(rng, s->p.augment.mixup);
    if (s->td.need_audio) mix_input(tb->audio, s->mix_in, s->td.audio_floats, perm, b, lam);
    if (s->td.need_face) mix_input(tb->face, s->mix_in, s->td.face_floats, perm, b, lam);
    for (int i = 0; i < b; i++) tb->mix_labels[i] = tb->labels[perm[i]];
    tb->lo.mix_labels = tb->mix_labels;
    tb->lo.mix_lambda = lam;
}

/* What the producer of an epoch's batches needs (train_prefetch). */
struct epoch_batches {
    struct session *s;
    const size_t *order;
    size_t n;
    struct avemo_rng *rng;
};

/* Batch k of the epoch into slot: inputs, labels, augmentation and mixup. */
static void fill_batch(void *arg, size_t k, int slot)
{
    const struct epoch_batches *e = arg;
    struct session *s = e->s;
    struct train_batch *tb = &s->slot[slot];
    const size_t batch = (size_t)s->p.train.batch, at = k * batch;
    tb->b = e->n - at < batch ? (int)(e->n - at) : (int)batch;
    avemo_train_data_batch(&s->td, e->order + at, tb->b, 1, e->rng, tb->audio, tb->face, tb->labels);
    tb->lo = (struct avemo_nn_loss){.class_weights = s->class_weights, .label_smoothing = s->p.train.label_smoothing};
    if (s->p.augment.mixup > 0.0f) mixup_batch(s, e->rng, tb);
    tb->st = AVEMO_OK;
    if (s->teacher.open) { /* on the inputs the student sees: augmented and mixed */
        tb->st = train_teacher_probs(&s->teacher, tb->audio, tb->face, tb->b, tb->soft, &tb->err);
        tb->lo.soft_targets = tb->soft;
        tb->lo.soft_weight = s->teacher.weight;
    }
}

static enum avemo_status train_epoch(struct session *s, struct avemo_rng *rng, double *loss, double *acc,
                                     struct avemo_error *err)
{
    size_t n = s->n[AVEMO_PART_TRAIN];
    size_t *order = s->idx[AVEMO_PART_TRAIN];
    for (size_t i = n; i > 1; i--) {
        size_t j = avemo_rng_below(rng, (uint32_t)i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    const size_t batch = (size_t)s->p.train.batch;
    size_t batches = (n + batch - 1) / batch;
    /* A batch of one has no batch statistics worth normalising with: a last one is left out. */
    if (n > 1 && batch < 2) batches = 0;
    else if (n > 1 && n % batch == 1) batches--;
    const int k = s->ds.num_classes;
    double total = 0;
    size_t correct = 0, seen = 0;
    struct epoch_batches eb = {s, order, n, rng};
    struct train_prefetch pf;
    train_prefetch_start(&pf, batches, fill_batch, &eb);
    enum avemo_status st = AVEMO_OK;
    for (size_t at = 0; !st && at < batches; at++) {
        const struct train_batch *tb = &s->slot[train_prefetch_wait(&pf, at)];
        const int b = tb->b;
        if ((st = tb->st)) {
            if (err) *err = tb->err;
            break;
        }
        const float *inputs[2], *logits;
        float l;
        st = avemo_net_forward_train(s->net, s->ctx, slot_inputs(s, tb, inputs), b, &logits, err);
        if (!st) st = avemo_net_backward(s->net, s->ctx, tb->labels, &tb->lo, &l, err);
        if (!st) st = avemo_optim_step(s->optim, s->net, s->ctx, NULL, err);
        if (!st && !isfinite(l)) st = avemo_fail(err, AVEMO_ERR_INTERNAL, "train: the loss became %f (lower train.lr?)", l);
        if (st) break;
        total += (double)l * b;
        seen += (size_t)b;
        for (int j = 0; j < b; j++) {
            int best = 0;
            for (int c = 1; c < k; c++)
                if (logits[j * k + c] > logits[j * k + best]) best = c;
            correct += best == tb->labels[j];
        }
        train_prefetch_release(&pf, at);
    }
    train_prefetch_finish(&pf);
    if (st) return st;
    *loss = seen ? total / (double)seen : NAN;
    *acc = seen ? (double)correct / (double)seen : NAN;
    return AVEMO_OK;
}

/* Dropout in front of a batch norm makes the running statistics gathered while training
 * describe dropped-out activations, which inference never sees (the "variance shift").
 * This pass recomputes them as the plain mean over the training batches with dropout off
 * and without augmentation, as torch.optim.swa_utils.update_bn does; the weights stay. */
static enum avemo_status recalibrate_bn(struct session *s, struct avemo_error *err)
{
    const size_t n = s->n[AVEMO_PART_TRAIN];
    const int batch = s->p.train.batch;
    /* Batches drawn in a shuffled order of their own: the training order is the dataset's
     * (one class, one corpus after another) when no epoch has shuffled it yet, e.g. a run
     * resumed after its last epoch, and batches of one class give too small a variance. */
    size_t *order = malloc(sizeof *order * (n ? n : 1));
    if (!order) return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    memcpy(order, s->idx[AVEMO_PART_TRAIN], sizeof *order * n);
    struct avemo_rng rng;
    avemo_rng_seed(&rng, s->p.train.seed, 0xb17);
    for (size_t i = n; i > 1; i--) {
        size_t j = avemo_rng_below(&rng, (uint32_t)i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    enum avemo_status st = AVEMO_OK;
    avemo_nn_ctx_set_dropout(s->ctx, 0);
    int k = 0;
    for (size_t at = 0; at < n && !st; at += (size_t)batch) {
        int b = n - at < (size_t)batch ? (int)(n - at) : batch;
        if (b < 2 && n > 1) break;
        avemo_train_data_batch(&s->td, order + at, b, 0, NULL, s->audio_in, s->face_in, s->labels);
        const float *inputs[2], *logits;
        avemo_nn_ctx_set_bn_momentum(s->ctx, 1.0f / (float)++k);
        st = avemo_net_forward_train(s->net, s->ctx, batch_inputs(s, inputs), b, &logits, err);
    }
    avemo_nn_ctx_set_bn_momentum(s->ctx, 0);
    avemo_nn_ctx_set_dropout(s->ctx, s->p.train.dropout);
    free(order);
    return st;
}

static enum avemo_status remember_best(struct session *s, struct avemo_error *err)
{
    size_t np, ns;
    float *params = avemo_net_params(s->net, &np), *stats = avemo_net_stats(s->net, &ns);
    if (!s->best_params) {
        s->best_params = malloc(sizeof(float) * (np ? np : 1));
        s->best_stats = malloc(sizeof(float) * (ns ? ns : 1));
        if (!s->best_params || !s->best_stats) return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    }
    memcpy(s->best_params, params, sizeof(float) * np);
    memcpy(s->best_stats, stats, sizeof(float) * ns);
    return AVEMO_OK;
}

static void restore_best(struct session *s)
{
    size_t np, ns;
    float *params = avemo_net_params(s->net, &np), *stats = avemo_net_stats(s->net, &ns);
    if (!s->best_params) return;
    memcpy(params, s->best_params, sizeof(float) * np);
    memcpy(stats, s->best_stats, sizeof(float) * ns);
}

/* --- stochastic weight averaging ------------------------------------------------------
 * The run goes to train.epochs (no early stopping); from epoch train.swa_start on, the
 * learning rate stays where it is and each epoch's weights join a running sum.  Averaging weights that wander around
 * a wide minimum lands nearer its centre, which generalises better than any single epoch
 * (Izmailov et al., 2018) and costs one forward pass at the end: batch-norm statistics must
 * be recomputed for the averaged weights. */

static int swa_active(const struct session *s, int epoch)
{
    return s->p.train.swa_start > 0 && epoch >= s->p.train.swa_start;
}

static enum avemo_status swa_add(struct session *s, struct avemo_error *err)
{
    size_t np;
    const float *params = avemo_net_params(s->net, &np);
    if (!s->swa_sum && !(s->swa_sum = calloc(np ? np : 1, sizeof(double))))
        return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    for (size_t i = 0; i < np; i++) s->swa_sum[i] += params[i];
    s->swa_count++;
    return AVEMO_OK;
}

/* Puts the averaged weights into the network, with fresh batch-norm statistics. */
static enum avemo_status swa_finish(struct session *s, struct avemo_error *err)
{
    size_t np;
    float *params = avemo_net_params(s->net, &np);
    for (size_t i = 0; i < np; i++) params[i] = (float)(s->swa_sum[i] / s->swa_count);
    return recalibrate_bn(s, err);
}

/* The weight average of a checkpoint (OUT.ckpt.swa), little-endian through the binary writer and
 * reader of core (avemo_binw / avemo_binr):
 *   "AVEMOSWA"  8 bytes magic
 *   u32 version (2), u32 epochs averaged so far (1..100000)
 *   u64 n, n x f64   the sum of those epochs' parameters
 *   u32 crc32 of every byte before it
 * Version 1 (a u32 "SWA1" magic, host-endian, no CRC) is refused with a message that says so. */
#define SWA_MAGIC "AVEMOSWA"
#define SWA_VERSION 2u

static enum avemo_status swa_save(const struct session *s, const char *path, struct avemo_error *err)
{
    size_t np;
    avemo_net_params(s->net, &np);
    avemo_binw *w;
    enum avemo_status st = avemo_binw_create(path, &w, err);
    if (st) return st;
    avemo_binw_bytes(w, SWA_MAGIC, 8);
    avemo_binw_u32(w, SWA_VERSION);
    avemo_binw_u32(w, (uint32_t)s->swa_count);
    avemo_binw_u64(w, np);
    avemo_binw_f64(w, s->swa_sum, np);
    return avemo_binw_finish(w, err);
}

static enum avemo_status swa_load(struct session *s, const char *path, struct avemo_error *err)
{
    size_t np;
    avemo_net_params(s->net, &np);
    struct avemo_binr r;
    if (avemo_binr_open(&r, path, NULL))
        return avemo_fail(err, AVEMO_ERR_NOT_FOUND, "%s: the weight average to resume is missing (%s)", path, strerror(errno));
    free(s->swa_sum);
    s->swa_sum = calloc(np ? np : 1, sizeof(double));
    char magic[8] = {0};
    avemo_binr_bytes(&r, magic, 8);
    uint32_t version = avemo_binr_u32(&r), count = avemo_binr_u32(&r);
    uint64_t n = avemo_binr_u64(&r);
    int ok = s->swa_sum && memcmp(magic, SWA_MAGIC, 8) == 0 && version == SWA_VERSION && count > 0 && count <= 100000 &&
             n == np && avemo_binr_f64(&r, s->swa_sum, np) && avemo_binr_crc(&r);
    avemo_binr_close(&r);
    if (!ok && memcmp(magic, "SWA1", 4) == 0)
        return avemo_fail(err, AVEMO_ERR_VERSION, "%s: weight average in the old format (without a checksum): delete "
                          "it and train again without --resume, or resume from an epoch before swa_start", path);
    if (!ok) return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: damaged weight average (or another network's)", path);
    s->swa_count = (int)count;
    return AVEMO_OK;
}

/* --- checkpoints: the model so far plus a small state file ------------------------------
 * OUT.ckpt        a model file (nn/model_file.c)
 * OUT.ckpt.optim  the optimiser state (nn/optim.c)
 * OUT.ckpt.state  one text line: epoch best_epoch bad_epochs plateau_epochs best_loss best_acc lr
 * OUT.ckpt.swa    the weight average, when weight averaging has started (above) */

struct progress_state {
    int epoch, best_epoch, bad_epochs, plateau_epochs;
    double best_loss, best_acc;
    float lr;
};

static enum avemo_status save_checkpoint(struct session *s, const struct progress_state *ps, struct avemo_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.ckpt", s->opt->out_path);
    enum avemo_status st = avemo_net_save(s->net, path, err);
    if (st) return st;
    snprintf(path, sizeof path, "%s.ckpt.optim", s->opt->out_path);
    if ((st = avemo_optim_save(s->optim, path, err))) return st;
    snprintf(path, sizeof path, "%s.ckpt.state", s->opt->out_path);
    FILE *f = fopen(path, "w");
    if (!f) return avemo_fail(err, AVEMO_ERR_IO, "%s: %s", path, strerror(errno));
    fprintf(f, "%d %d %d %d %.17g %.17g %.9g\n", ps->epoch, ps->best_epoch, ps->bad_epochs, ps->plateau_epochs,
            ps->best_loss, ps->best_acc, (double)ps->lr);
    if (fclose(f) != 0) return avemo_fail(err, AVEMO_ERR_IO, "%s: write failed", path);
    snprintf(path, sizeof path, "%s.ckpt.swa", s->opt->out_path);
    return s->swa_count ? swa_save(s, path, err) : AVEMO_OK;
}

static enum avemo_status load_checkpoint(struct session *s, struct progress_state *ps, struct avemo_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.ckpt.state", s->opt->out_path);
    FILE *f = fopen(path, "r");
    if (!f) return avemo_fail(err, AVEMO_ERR_NOT_FOUND, "%s: no checkpoint to resume (%s)", path, strerror(errno));
    double lr;
    int n = fscanf(f, "%d %d %d %d %lf %lf %lf", &ps->epoch, &ps->best_epoch, &ps->bad_epochs, &ps->plateau_epochs,
                   &ps->best_loss, &ps->best_acc, &lr);
    fclose(f);
    if (n != 7 || ps->epoch < 0 || ps->epoch > 100000 || !(lr > 0))
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: damaged checkpoint state", path);
    ps->lr = (float)lr;
    snprintf(path, sizeof path, "%s.ckpt", s->opt->out_path);
    int copied = 0;
    enum avemo_status st = avemo_net_load_params(s->net, path, "", &copied, err);
    if (st) return st;
    snprintf(path, sizeof path, "%s.ckpt.optim", s->opt->out_path);
    FILE *optim_file = fopen(path, "rb");
    if (optim_file) {
        fclose(optim_file);
        if ((st = avemo_optim_load(s->optim, path, err))) return st;
    } else {
        /* A checkpoint written before optimiser states were saved: Adam starts afresh. */
        fprintf(stderr, "warning: %s is missing; the optimiser's moment estimates start from zero\n", path);
    }
    avemo_optim_set_lr(s->optim, ps->lr);
    snprintf(path, sizeof path, "%s.ckpt.swa", s->opt->out_path);
    if (swa_active(s, ps->epoch) && (st = swa_load(s, path, err))) return st;
    /* The best parameters so far are in the model file written at that epoch. */
    st = remember_best(s, err);
    if (!st && ps->best_epoch > 0) {
        avemo_net *best = NULL;
        if (avemo_net_load(s->opt->out_path, &best, NULL) == AVEMO_OK) {
            size_t np, ns;
            float *bp = avemo_net_params(best, &np), *bs = avemo_net_stats(best, &ns);
            size_t mp, ms;
            avemo_net_params(s->net, &mp);
            avemo_net_stats(s->net, &ms);
            if (np == mp && ns == ms) {
                memcpy(s->best_params, bp, sizeof(float) * np);
                memcpy(s->best_stats, bs, sizeof(float) * ns);
            }
            avemo_net_free(best);
        }
    }
    say(s, "resumed after epoch %d (best epoch %d, lr %g)\n", ps->epoch, ps->best_epoch, (double)ps->lr);
    return st;
}

/* --- log and curves -------------------------------------------------------------- */

static void plot_curves(struct session *s, const char *csv_path)
{
    FILE *f = fopen(csv_path, "r");
    if (!f) return;
    double tl[2048], vl[2048], ta[2048], va[2048];
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f) && n < 2048) {
        int e;
        double lr, sec;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf", &e, &tl[n], &ta[n], &vl[n], &va[n], &lr, &sec) == 7) n++;
    }
    fclose(f);
    if (n == 0) return;
    char path[4200];
    const char *base = s->opt->plot_png ? s->opt->plot_png : s->opt->out_path;
    /* Without a validation part the second curve is the training data in inference mode. */
    int on_train = s->n[AVEMO_PART_VALIDATION] == 0;
    struct avemo_series loss[2] = {{"train loss", tl, n},
                                   {on_train ? "train loss, inference mode" : "validation loss", vl, n}};
    struct avemo_series acc[2] = {{"train accuracy", ta, n},
                                  {on_train ? "train accuracy, inference mode" : "validation accuracy", va, n}};
    snprintf(path, sizeof path, "%s-loss.png", base);
    avemo_plot_curves("loss", "cross-entropy", loss, 2, path, NULL);
    snprintf(path, sizeof path, "%s-accuracy.png", base);
    avemo_plot_curves("accuracy", "accuracy", acc, 2, path, NULL);
}

/* --- the loop ------------------------------------------------------------------------ */

/* Without a validation part each epoch is watched on training samples in inference mode.  All
 * of them would cost a forward pass per sample, a quarter of a large corpus' epoch (29,288 face
 * samples: 150 s an epoch, ~35 s of it this pass), for a figure that only plots the curve and,
 * before weight averaging starts, halves the rate on a plateau.  At most this many, spread
 * evenly over the samples in index order (the same ones every epoch and after --resume); a
 * smaller corpus is watched whole, as before. */
#define TRAIN_WATCH_MAX 4096

static int cmp_index(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The samples that watch the epochs: the validation part, or (above) training samples in *watch
 * (owned by the caller when not NULL). */
static enum avemo_status watch_samples(const struct session *s, size_t **watch, const size_t **idx, size_t *n,
                                       struct avemo_error *err)
{
    *watch = NULL;
    *idx = s->idx[AVEMO_PART_VALIDATION];
    *n = s->n[AVEMO_PART_VALIDATION];
    if (*n) return AVEMO_OK;
    const size_t total = s->n[AVEMO_PART_TRAIN];
    *idx = s->idx[AVEMO_PART_TRAIN];
    *n = total;
    if (total <= TRAIN_WATCH_MAX) return AVEMO_OK;
    size_t *sorted = malloc(sizeof *sorted * total);
    if (!sorted) return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    memcpy(sorted, s->idx[AVEMO_PART_TRAIN], sizeof *sorted * total);
    qsort(sorted, total, sizeof *sorted, cmp_index);
    for (size_t i = 0; i < TRAIN_WATCH_MAX; i++) sorted[i] = sorted[i * total / TRAIN_WATCH_MAX];
    *watch = sorted;
    *idx = sorted;
    *n = TRAIN_WATCH_MAX;
    return AVEMO_OK;
}

/* After an epoch watched at va_loss: keep it if it is the best so far (on disk too), else count
 * it towards early stopping and the plateau that lowers the learning rate. */
static enum avemo_status note_epoch(struct session *s, struct progress_state *ps, int epoch, double va_loss,
                                    double va_acc, struct avemo_error *err)
{
    const struct avemo_train_config *t = &s->p.train;
    ps->epoch = epoch;
    if (va_loss < ps->best_loss - 1e-4) {
        ps->best_loss = va_loss;
        ps->best_acc = va_acc;
        ps->best_epoch = epoch;
        ps->bad_epochs = ps->plateau_epochs = 0;
        enum avemo_status st = remember_best(s, err);
        /* The best model so far is always on disk. */
        return st ? st : avemo_net_save(s->net, s->opt->out_path, err);
    }
    ps->bad_epochs++;
    if (++ps->plateau_epochs >= t->plateau_patience && ps->lr > t->min_lr && !swa_active(s, epoch + 1)) {
        ps->lr = ps->lr * t->plateau_factor < t->min_lr ? t->min_lr : ps->lr * t->plateau_factor;
        avemo_optim_set_lr(s->optim, ps->lr);
        ps->plateau_epochs = 0;
    }
    return AVEMO_OK;
}

static enum avemo_status run_epochs(struct session *s, struct avemo_train_result *res, struct avemo_error *err)
{
    const struct avemo_train_config *t = &s->p.train;
    struct progress_state ps = {0, 0, 0, 0, DBL_MAX, 0, t->lr};
    enum avemo_status st = AVEMO_OK;
    if (s->opt->resume && (st = load_checkpoint(s, &ps, err))) return st;
    /* Without a validation part, early stopping watches the training data itself. */
    const size_t *vidx;
    size_t vn, *watch;
    if ((st = watch_samples(s, &watch, &vidx, &vn, err))) return st;
    char csv[4200];
    if (s->opt->log_csv) snprintf(csv, sizeof csv, "%s", s->opt->log_csv);
    else snprintf(csv, sizeof csv, "%s.csv", s->opt->out_path);
    s->log = fopen(csv, s->opt->resume ? "a" : "w");
    if (!s->log) {
        free(watch);
        return avemo_fail(err, AVEMO_ERR_IO, "%s: %s", csv, strerror(errno));
    }
    if (!s->opt->resume) fprintf(s->log, "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n");
    struct avemo_rng rng;
    avemo_rng_seed(&rng, t->seed + (uint64_t)ps.epoch * 7919, 0x7a1);
    for (int epoch = ps.epoch + 1; epoch <= t->epochs; epoch++) {
        double t0 = avemo_now(), tr_loss = NAN, tr_acc = NAN, va_loss = NAN, va_acc = NAN;
        if ((st = train_epoch(s, &rng, &tr_loss, &tr_acc, err))) break;
        if (t->bn_recalibrate && (st = recalibrate_bn(s, err))) break;
        if ((st = evaluate(s, vidx, vn, &va_loss, &va_acc, NULL, NULL, err))) break;
        double sec = avemo_now() - t0;
        fprintf(s->log, "%d,%.6f,%.6f,%.6f,%.6f,%.3g,%.2f\n", epoch, tr_loss, tr_acc, va_loss, va_acc, (double)ps.lr, sec);
        fflush(s->log);
        say(s, "epoch %3d  train loss %.4f acc %.3f  val loss %.4f acc %.3f  lr %.2g  %.1fs%s\n", epoch, tr_loss, tr_acc,
            va_loss, va_acc, (double)ps.lr, sec, va_loss < ps.best_loss - 1e-4 ? "  *" : "");
        if ((st = note_epoch(s, &ps, epoch, va_loss, va_acc, err))) break;
        if (swa_active(s, epoch) && (st = swa_add(s, err))) break;
        if ((st = save_checkpoint(s, &ps, err))) break;
        if (ps.bad_epochs >= t->patience && t->swa_start == 0) {
            say(s, "early stop: no validation improvement for %d epochs\n", t->patience);
            break;
        }
    }
    fclose(s->log);
    s->log = NULL;
    plot_curves(s, csv);
    res->epochs_run = ps.epoch;
    res->best_epoch = ps.best_epoch;
    res->best_val_loss = ps.best_loss;
    res->best_val_acc = ps.best_acc;
    if (!st && s->swa_count > 0) {
        /* The average replaces the early-stopping choice: it is the model. */
        res->swa_epochs = s->swa_count;
        if (!(st = swa_finish(s, err))) st = evaluate(s, vidx, vn, &res->best_val_loss, &res->best_val_acc, NULL, NULL, err);
        if (!st) st = remember_best(s, err);
        if (!st) say(s, "weights averaged over %d epochs: val loss %.4f acc %.3f\n", s->swa_count, res->best_val_loss,
                     res->best_val_acc);
    }
    free(watch);
    return st;
}

static enum avemo_status final_report(struct session *s, struct avemo_train_result *res, struct avemo_error *err)
{
    restore_best(s);
    enum avemo_status st = avemo_net_save(s->net, s->opt->out_path, err);
    double loss;
    if (!st) st = evaluate(s, s->idx[AVEMO_PART_TRAIN], s->n[AVEMO_PART_TRAIN], &loss, &res->train_acc, NULL, NULL, err);
    if (st || s->n[AVEMO_PART_TEST] == 0) return st;
    int *pred = malloc(sizeof(int) * s->n[AVEMO_PART_TEST]), *truth = malloc(sizeof(int) * s->n[AVEMO_PART_TEST]);
    if (!pred || !truth) st = avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory");
    if (!st) st = evaluate(s, s->idx[AVEMO_PART_TEST], s->n[AVEMO_PART_TEST], &loss, &res->test_acc, pred, truth, err);
    struct avemo_metrics m;
    const char *labels[AVEMO_MAX_CLASSES];
    for (int c = 0; c < s->ds.num_classes; c++) labels[c] = s->ds.classes[c];
    if (!st) st = avemo_metrics_compute(truth, pred, s->n[AVEMO_PART_TEST], s->ds.num_classes, labels, &m, err);
    if (!st) {
        res->has_test = 1;
        res->test_uar = m.unweighted_accuracy;
    }
    free(pred);
    free(truth);
    return st;
}

static int online_cores(void)
{
    int n = avemo_usable_cpus();
    return n > 8 ? 8 : n;
}

enum avemo_status avemo_train_run(const struct avemo_train_options *opt, struct avemo_train_result *res,
                                  struct avemo_error *err)
{
    memset(res, 0, sizeof *res);
    if (!opt->pipeline_path || !opt->out_path)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "train: a pipeline and --out are required");
    double t0 = avemo_now();
    struct session s;
    memset(&s, 0, sizeof s);
    s.td.audio_input = s.td.face_input = -1;
    s.opt = opt;
    enum avemo_status st =
        avemo_pipeline_load(opt->pipeline_path, opt->overrides, opt->noverrides, &s.pipeline_text, &s.p, err);
    /* The network's workers: train.threads, or every core (the setting is process-wide; the
     * caller's is restored at the end). */
    const int nn_threads_before = avemo_nn_threads();
    if (!st) st = avemo_nn_set_threads(s.p.train.threads > 0 ? s.p.train.threads : online_cores(), err);
    if (!st && opt->teacher) st = train_teacher_check(opt->teacher, &s.p, err);
    if (!st) st = load_data(&s, err);
    if (!st) st = extract(&s, err);
    if (!st) st = make_split(&s, err);
    if (!st) {
        res->n_train = s.n[0];
        res->n_val = s.n[1];
        res->n_test = s.n[2];
        res->skipped = s.fs.failed;
        compute_class_weights(&s);
        st = build_net(&s, err);
        if (!st) st = store_train_prior(&s, err);
    }
    /* What the model learnt from goes into its file, for avemo eval to leave out. */
    if (!st) st = train_set_record(s.net, &s.ds, s.split.part, s.fs.failure, opt->init, opt->ninit, opt->teacher, res->recorded, err);
    if (!st) st = run_epochs(&s, res, err);
    if (!st) st = final_report(&s, res, err);
    res->seconds = avemo_now() - t0;
    session_free(&s);
    avemo_nn_set_threads(nn_threads_before, NULL);
    return st;
}
