/* Ensembles of models: several trained networks of one recipe (e.g. other seeds) in one model
 * file, whose probabilities are averaged (avemo_model_predict_probs).  The networks are stored
 * as members of the first (src/nn/members.c); this file checks that they take the same inputs. */
#include <avemo/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The same features made the same way: members are run on the first model's inputs. */
static enum avemo_status check_same_inputs(const struct avemo_model *a, const struct avemo_model *b,
                                           const char *path, struct avemo_error *err)
{
    const char *what = avemo_pipeline_inputs_differ(&a->p, &b->p);
    char phrase[64];
    if (what) snprintf(phrase, sizeof phrase, "the %s", what), what = phrase;
    else if ((a->mean != NULL) != (b->mean != NULL)) what = "the audio normalisation is";
    else if (a->mean) {
        size_t n = (size_t)avemo_audio_params_feature_count(&a->p.audio);
        if (memcmp(a->mean, b->mean, sizeof(float) * n) != 0 || memcmp(a->std, b->std, sizeof(float) * n) != 0)
            what = "the audio normalisation (audio.mean, audio.std) is";
    }
    if (what) return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: %s not the same as %s's", path, what, a->name);
    return AVEMO_OK;
}

/* A stored temperature back to 1: it belonged to other logits than the new file's. */
static enum avemo_status reset_temperature(avemo_net *net, struct avemo_error *err)
{
    const float one = 1.0f;
    if (!avemo_net_array(net, AVEMO_CALIB_TEMPERATURE, NULL)) return AVEMO_OK;
    return avemo_net_set_array(net, AVEMO_CALIB_TEMPERATURE, &one, 1, err);
}

static int has_entry(const struct avemo_record_entry *e, size_t n, const struct avemo_record_entry *x)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].part == x->part && memcmp(e[i].sha256, x->sha256, AVEMO_SHA256_SIZE) == 0) return 1;
    return 0;
}

/* Every file any member was trained or validated on, so that evaluation leaves all of them out.
 * A member without a record leaves the ensemble without one: a partial union would pass for
 * the whole. */
static enum avemo_status union_records(const struct avemo_model *m, int n, struct avemo_error *err)
{
    for (int i = 0; i < n; i++)
        if (!avemo_net_has_record(m[i].net)) {
            if (i > 0)
                fprintf(stderr, "warning: %s has no training record, so the ensemble has none: avemo eval cannot "
                                "leave out what it learnt from\n", m[i].name);
            avemo_net_clear_record(m[0].net);
            return AVEMO_OK;
        }
    size_t total = 0, count = 0;
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        avemo_net_record(m[i].net, &k);
        total += k;
    }
    struct avemo_record_entry *all = malloc(sizeof *all * (total ? total : 1));
    if (!all) return avemo_fail(err, AVEMO_ERR_NOMEM, "ensemble: out of memory");
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        const struct avemo_record_entry *e = avemo_net_record(m[i].net, &k);
        for (size_t j = 0; j < k; j++)
            if (!has_entry(all, count, &e[j])) all[count++] = e[j];
    }
    enum avemo_status st = avemo_net_set_record(m[0].net, all, count, err);
    free(all);
    return st;
}

enum avemo_status avemo_model_ensemble(const char *const *paths, int n, const char *out_path, int *members,
                                       struct avemo_error *err)
{
    if (n < 2 || n > AVEMO_NN_MAX_MEMBERS)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "ensemble: %d models given, 2 to %d are needed", n,
                          AVEMO_NN_MAX_MEMBERS);
    struct avemo_model m[AVEMO_NN_MAX_MEMBERS];
    memset(m, 0, sizeof m);
    enum avemo_status st = AVEMO_OK;
    int opened = 0;
    for (; !st && opened < n; opened++) {
        st = avemo_model_open(paths[opened], NULL, 0, &m[opened], err);
        if (!st && opened) st = check_same_inputs(&m[0], &m[opened], paths[opened], err);
        if (!st && opened) st = avemo_net_add_member(m[0].net, m[opened].net, err);
    }
    if (!st) st = union_records(m, n, err);
    /* A member's temperature was fitted to its own logits, not to the average. */
    if (!st) st = reset_temperature(m[0].net, err);
    if (!st) st = avemo_net_save(m[0].net, out_path, err);
    if (!st && members) *members = avemo_net_member_count(m[0].net);
    for (int i = 0; i < opened; i++) avemo_model_close(&m[i]);
    return st;
}

enum avemo_status avemo_model_ensemble_member(const char *in_path, int k, const char *out_path,
                                              struct avemo_error *err)
{
    struct avemo_model m;
    enum avemo_status st = avemo_model_open(in_path, NULL, 0, &m, err);
    if (st) return st;
    st = avemo_net_keep_member(m.net, k, err);
    if (!st) st = reset_temperature(m.net, err); /* the ensemble's was fitted to the mean */
    if (!st) st = avemo_net_save(m.net, out_path, err);
    avemo_model_close(&m);
    return st;
}

static int audio_params_equal(const struct avemo_audio_params *a, const struct avemo_audio_params *b)
{
    return a->sample_rate == b->sample_rate && a->n_fft == b->n_fft && a->hop == b->hop && a->n_mels == b->n_mels &&
           a->n_mfcc == b->n_mfcc && a->fmin == b->fmin && a->fmax == b->fmax &&
           a->band_limit == b->band_limit && a->mel_scale == b->mel_scale &&
           a->mel_norm == b->mel_norm && a->feature == b->feature && a->power == b->power && a->db_ref == b->db_ref &&
           a->amin == b->amin && a->top_db == b->top_db && a->frames == b->frames && a->crop == b->crop &&
           a->norm == b->norm && a->loudness == b->loudness && a->loudness_db == b->loudness_db &&
           a->max_gain_db == b->max_gain_db && a->trim_db == b->trim_db && a->pad == b->pad && a->deltas == b->deltas;
}

static const char *file_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The settings that decide a face crop: detection (the same cascade file, wherever it is
 * installed) and framing.  Frames per clip, tracking and the mirror test only decide how often
 * a model is asked, so models that differ in them still see the same crops. */
static int face_crops_equal(const struct avemo_face_spec *a, const struct avemo_face_spec *b)
{
    const struct avemo_detect_params *da = &a->detect, *db = &b->detect;
    return a->size == b->size && a->channels == b->channels &&
           strcmp(file_name(a->cascade), file_name(b->cascade)) == 0 && da->scale_factor == db->scale_factor &&
           da->min_neighbors == db->min_neighbors && da->min_width == db->min_width &&
           da->min_height == db->min_height && da->max_width == db->max_width && da->max_height == db->max_height &&
           a->margin == b->margin && a->offset_y == b->offset_y && a->equalize == b->equalize;
}

const char *avemo_pipeline_inputs_differ(const struct avemo_pipeline *a, const struct avemo_pipeline *b)
{
    if (a->mode != b->mode) return "mode is";
    if (!audio_params_equal(&a->audio, &b->audio)) return "[audio] settings are";
    if (!face_crops_equal(&a->face, &b->face)) return "[face] settings are";
    return NULL;
}
