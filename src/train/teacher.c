/* Distillation (avemo train --teacher MODEL.avm): a trained model, often an ensemble, gives its
 * calibrated probabilities for every training batch (after augmentation and mixup, the inputs
 * the student sees), and the student's loss is
 *   (1 - w) * cross-entropy(labels) + w * cross-entropy(teacher's probabilities),  w = train.distill
 * (Hinton et al., 2015, with the teacher softened by its stored temperature, e.g. one fitted by
 * avemo calibrate).  One network then answers about as an ensemble does, at one pass per clip.
 *
 * The teacher must make its inputs as the student does ([audio] and [face] settings, mode, class
 * labels); only the audio normalisation may differ (each model has the statistics of its own
 * training part), so the student's batch is carried over into the teacher's. */
#include "train/train_internal.h"

#include <stdlib.h>
#include <string.h>

/* What the teacher's file alone decides: the same inputs made the same way and an answer of its
 * own network (not late fusion with companion models). */
static enum avemo_status teacher_usable(const struct avemo_model *m, const struct avemo_pipeline *p, const char *path,
                                        struct avemo_error *err)
{
    const char *what = avemo_pipeline_inputs_differ(&m->p, p);
    if (what)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: its %s not the student's (the teacher must see the same inputs)",
                          path, what);
    float w_audio, w_face;
    if (avemo_model_late_fusion(m->net, &w_audio, &w_face) == 1)
        return avemo_fail(err, AVEMO_ERR_MISMATCH,
                          "%s: it answers by late fusion with the voice and face models beside it, which a teacher "
                          "cannot do per batch (only its learned head would teach)",
                          path);
    return AVEMO_OK;
}

static enum avemo_status teacher_matches(const struct train_teacher *t, const struct avemo_pipeline *p,
                                         const avemo_net *student, const char *path, struct avemo_error *err)
{
    const struct avemo_model *m = &t->model;
    enum avemo_status st = teacher_usable(m, p, path, err);
    if (st) return st;
    const char *what = NULL;
    if (avemo_net_classes(m->net) != avemo_net_classes(student)) what = "number of classes is";
    for (int c = 0; !what && c < avemo_net_classes(student); c++) {
        const char *a = avemo_net_label(m->net, c), *b = avemo_net_label(student, c);
        if (!a || !b || strcmp(a, b) != 0) what = "class labels are";
    }
    if (what) return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: its %s not the student's", path, what);
    return AVEMO_OK;
}

enum avemo_status train_teacher_check(const char *path, const struct avemo_pipeline *p, struct avemo_error *err)
{
    struct avemo_model m;
    enum avemo_status st = avemo_model_open(path, NULL, 0, &m, err);
    if (st) return st;
    st = teacher_usable(&m, p, path, err);
    avemo_model_close(&m);
    return st;
}

enum avemo_status train_teacher_open(struct train_teacher *t, const char *path, const struct avemo_pipeline *p,
                                     const avemo_net *student, const float *mean, const float *std, int rows,
                                     int cols, int batch, struct avemo_error *err)
{
    memset(t, 0, sizeof *t);
    enum avemo_status st = avemo_model_open(path, NULL, 0, &t->model, err);
    if (st) return st;
    t->open = 1;
    if ((st = avemo_model_prepare(&t->model, err))) return st; /* it runs on every training batch */
    t->weight = p->train.distill;
    t->mean = mean;
    t->std = std;
    t->rows = (size_t)rows;
    t->cols = (size_t)cols;
    t->mirror = t->model.face_input >= 0 && t->model.p.face.mirror_test;
    if ((st = teacher_matches(t, p, student, path, err))) return st;
    if ((st = avemo_nn_ctx_create(t->model.net, batch, 0, 0, &t->ctx, err))) return st;
    if (t->model.audio_input >= 0 && t->model.mean) {
        t->audio = malloc(sizeof(float) * t->rows * t->cols * (size_t)batch + 1);
        if (!t->audio) return avemo_fail(err, AVEMO_ERR_NOMEM, "train: out of memory for the teacher's inputs");
    }
    return AVEMO_OK;
}

/* The student's normalised audio batch (b x rows x cols) in the teacher's normalisation. */
static const float *teacher_audio(const struct train_teacher *t, const float *audio, int b)
{
    if (!t->audio) return audio;
    const float *ms = t->mean, *ss = t->std, *mt = t->model.mean, *st = t->model.std;
    for (size_t r = 0; r < t->rows; r++) {
        /* x_t = (x_s * s_s + m_s - m_t) / s_t, as one scale and shift per band */
        const float scale = (ss ? ss[r] : 1.0f) / st[r], shift = ((ms ? ms[r] : 0.0f) - mt[r]) / st[r];
        for (int n = 0; n < b; n++) {
            const float *x = audio + ((size_t)n * t->rows + r) * t->cols;
            float *y = t->audio + ((size_t)n * t->rows + r) * t->cols;
            for (size_t k = 0; k < t->cols; k++) y[k] = x[k] * scale + shift;
        }
    }
    return t->audio;
}

enum avemo_status train_teacher_probs(struct train_teacher *t, const float *audio, float *face, int b,
                                      float *probs, struct avemo_error *err)
{
    const struct avemo_model *m = &t->model;
    const float *inputs[2] = {NULL, NULL};
    if (m->audio_input >= 0) inputs[m->audio_input] = teacher_audio(t, audio, b);
    if (m->face_input >= 0) inputs[m->face_input] = face;
    return avemo_model_predict_probs(m, t->ctx, inputs, b, 0, face, m->p.face.size, m->p.face.channels, t->mirror,
                                     probs, err);
}

void train_teacher_close(struct train_teacher *t)
{
    if (!t->open) return;
    avemo_nn_ctx_free(t->ctx);
    free(t->audio);
    avemo_model_close(&t->model);
    memset(t, 0, sizeof *t);
}
