/*
 * Classify a clip, an audio file or a face image.  A classifier holds up to
 * three read-only models (the main one and unimodal extras) and the face
 * cascade; each thread uses its own context (network workspace, feature
 * extractor, face detector).  In av mode a clip without sound or without a
 * face falls back to the unimodal model and says why.
 */
#include "eval/eval_internal.h"

#include <avemo/model.h>
#include <avemo/nn.h>
#include <avemo/vision.h>

#include "eval/eval_internal.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLF_MAX_MODELS 3
#define CLF_MAX_FRAMES 32
/* Overlap: crops the face model runs together while the clip decodes.  Measured on the demo clip
 * (docs/performance.md): 2 and 4 beat 1 (a batch of one costs more per crop) and 8 (the whole
 * batch waits for the last frame). */
#define CLF_EARLY_BATCH 2

struct avemo_classifier {
    struct avemo_model models[CLF_MAX_MODELS];
    int nmodels;
    int slot[3];              /* model serving each mode, -1 when none */
    avemo_cascade *cascade;
    struct avemo_media_limits limits;
    int frames;
    int late;                 /* av answers: late fusion of the audio and face models */
    float w_audio, w_face;    /* its weights */
    int has_prior;            /* the av model stores the priors to divide out (fusion.prior) */
    float prior[2 * AVEMO_MAX_CLASSES];
    float uncertain_below;    /* the option (0: each model's own threshold) */
    int overlap;              /* the option: decode on a second thread while faces are searched */
};

struct avemo_model_ctx {
    avemo_nn_ctx *nn;
    avemo_audio_extractor *ex;
};

struct avemo_classify_ctx {
    const avemo_classifier *clf;
    struct avemo_model_ctx m[CLF_MAX_MODELS];
    avemo_detector *det;
    float *audio_in, *face_in;
    size_t audio_cap, face_cap;
    int last_model, last_batch; /* what the last run_model ran (classify_last_inputs), -1 / 0: none */
    /* the last answer's late fusion (classify_last_late_inputs): the audio model's run, both
     * models' probabilities; late_audio_model -1 when the last answer was not late fusion */
    int late_audio_model, late_audio_batch;
    float late_pa[AVEMO_MAX_CLASSES], late_pf[AVEMO_MAX_CLASSES];
    int overlap;                /* the classifier's option, unless classify_ctx_set_overlap said otherwise */
};

/* --- loading ----------------------------------------------------------------------- */

/* Late fusion or the learned head for av answers: the option, else what the av model file says. */
static enum avemo_status choose_fusion(avemo_classifier *clf, const char *path, const struct avemo_classifier_options *opt,
                                       struct avemo_error *err)
{
    enum avemo_fusion want = opt ? opt->fusion : AVEMO_FUSION_AUTO;
    int selected = avemo_model_late_fusion(clf->models[0].net, &clf->w_audio, &clf->w_face);
    if (selected < 0) clf->w_audio = clf->w_face = 1; /* no fitted weights: the plain product of the two */
    const avemo_net *av_net = clf->models[0].net;
    clf->has_prior = avemo_model_prior(av_net, AVEMO_FUSION_PRIOR, avemo_net_classes(av_net), clf->prior);
    int both = clf->slot[AVEMO_MODE_AUDIO] >= 0 && clf->slot[AVEMO_MODE_FACE] >= 0;
    int av = clf->models[0].p.mode == AVEMO_MODE_AV;
    if (want == AVEMO_FUSION_LATE && !both)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: late fusion needs an audio model and a face model beside it", path);
    clf->late = want == AVEMO_FUSION_LATE || (want == AVEMO_FUSION_AUTO && av && both && selected == 1);
    return AVEMO_OK;
}

/* Same classes in the same order: a companion answers in the main model's terms. */
static int same_labels(const struct avemo_model *a, const struct avemo_model *b)
{
    int k = avemo_net_classes(a->net);
    if (avemo_net_classes(b->net) != k) return 0;
    for (int c = 0; c < k; c++) {
        const char *x = avemo_net_label(a->net, c), *y = avemo_net_label(b->net, c);
        if (!x || !y || strcmp(x, y) != 0) return 0;
    }
    return 1;
}

/* The unimodal models for the modes the main model cannot serve, found as the CLI's users
 * expect without passing them: beside the main model, then the shipped ones
 * (eval_companion_path).  One that cannot be read or has other classes is not used: the main
 * model still works, only without that fallback. */
static void open_companions(avemo_classifier *clf, const char *model_path)
{
    for (int mode = AVEMO_MODE_AUDIO; mode <= AVEMO_MODE_FACE && clf->nmodels < CLF_MAX_MODELS; mode++) {
        char path[4096];
        if (clf->slot[mode] >= 0 || !eval_companion_path(model_path, (enum avemo_mode)mode, path, sizeof path)) continue;
        struct avemo_model *m = &clf->models[clf->nmodels];
        if (avemo_model_open_inference(path, NULL, 0, m, NULL) != AVEMO_OK) continue;
        if (m->p.mode != mode || !same_labels(&clf->models[0], m)) {
            avemo_model_close(m);
            continue;
        }
        clf->slot[mode] = clf->nmodels++;
    }
}

/* The networks the classifier will run, made ready once (avemo_model_prepare): not the av
 * network when late fusion answers for it (it never runs, and a one-clip process would pay
 * for it at start-up). */
static enum avemo_status prepare_models(avemo_classifier *clf, struct avemo_error *err)
{
    enum avemo_status st = AVEMO_OK;
    for (int i = 0; !st && i < clf->nmodels; i++) {
        int unused = clf->late && i == 0 && clf->models[0].p.mode == AVEMO_MODE_AV;
        if (!unused) st = avemo_model_prepare(&clf->models[i], err);
    }
    return st;
}

enum avemo_status avemo_classifier_open(const char *model_path, const struct avemo_classifier_options *opt,
                                        avemo_classifier **out, struct avemo_error *err)
{
    *out = NULL;
    avemo_classifier *clf = calloc(1, sizeof *clf);
    if (!clf) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", model_path);
    clf->slot[0] = clf->slot[1] = clf->slot[2] = -1;
    if (opt && opt->limits) clf->limits = *opt->limits;
    else avemo_media_limits_default(&clf->limits);
    int nextra = opt && opt->extra_models ? opt->n_extra_models : 0;
    if (nextra > CLF_MAX_MODELS - 1) nextra = CLF_MAX_MODELS - 1;
    enum avemo_status st = AVEMO_OK;
    for (int i = 0; !st && i <= nextra; i++) {
        const char *path = i == 0 ? model_path : opt->extra_models[i - 1];
        struct avemo_model *m = &clf->models[clf->nmodels];
        st = avemo_model_open_inference(path, NULL, 0, m, err);
        clf->nmodels++;
        /* The main model serves its mode; extras fill the modes still free. */
        if (!st && clf->slot[m->p.mode] < 0) clf->slot[m->p.mode] = clf->nmodels - 1;
    }
    if (!st && !(opt && (opt->extra_models || opt->no_companions))) open_companions(clf, model_path);
    const struct avemo_model *face_model = NULL;
    for (int i = 0; !st && i < clf->nmodels; i++)
        if (clf->models[i].face_input >= 0 && !face_model) face_model = &clf->models[i];
    clf->frames = opt && opt->frames > 0 ? opt->frames : face_model ? face_model->p.face.frames : 8;
    if (clf->frames > CLF_MAX_FRAMES) clf->frames = CLF_MAX_FRAMES;
    if (!st && face_model) {
        const char *cascade = opt && opt->cascade_path ? opt->cascade_path : face_model->p.face.cascade;
        st = avemo_cascade_load(cascade, NULL, &clf->cascade, err);
    }
    if (!st) st = choose_fusion(clf, model_path, opt, err);
    if (!st) st = prepare_models(clf, err);
    clf->uncertain_below = opt ? opt->uncertain_below : 0;
    clf->overlap = opt ? opt->overlap : 0;
    if (st) {
        avemo_classifier_close(clf);
        return st;
    }
    *out = clf;
    return AVEMO_OK;
}

/* The classifier's late fusion: its weights and, when its av model stores them, the priors. */
static struct avemo_late_fusion fusion_of(const avemo_classifier *clf)
{
    return (struct avemo_late_fusion){clf->w_audio, clf->w_face, clf->has_prior ? clf->prior : NULL};
}

int avemo_classifier_late_fusion(const avemo_classifier *clf, struct avemo_late_fusion *f)
{
    if (f) *f = fusion_of(clf);
    return clf->late;
}

void avemo_classifier_close(avemo_classifier *clf)
{
    if (!clf) return;
    for (int i = 0; i < clf->nmodels; i++) avemo_model_close(&clf->models[i]);
    avemo_cascade_free(clf->cascade);
    free(clf);
}

const char *avemo_classifier_name(const avemo_classifier *clf) { return clf->models[0].name; }
int avemo_classifier_num_classes(const avemo_classifier *clf) { return avemo_net_classes(clf->models[0].net); }
const char *avemo_classifier_label(const avemo_classifier *clf, int k) { return avemo_net_label(clf->models[0].net, k); }
int avemo_classifier_supports(const avemo_classifier *clf, enum avemo_mode mode)
{
    return (int)mode >= 0 && mode <= AVEMO_MODE_FACE && clf->slot[mode] >= 0;
}
enum avemo_mode avemo_classifier_default_mode(const avemo_classifier *clf) { return (enum avemo_mode)clf->models[0].p.mode; }

/* --- contexts ---------------------------------------------------------------------- */

enum avemo_status avemo_classify_ctx_new(const avemo_classifier *clf, avemo_classify_ctx **out, struct avemo_error *err)
{
    *out = NULL;
    avemo_classify_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return avemo_fail(err, AVEMO_ERR_NOMEM, "classify: out of memory");
    ctx->clf = clf;
    ctx->last_model = -1;
    ctx->late_audio_model = -1;
    ctx->overlap = clf->overlap;
    enum avemo_status st = AVEMO_OK;
    for (int i = 0; !st && i < clf->nmodels; i++) {
        const struct avemo_model *m = &clf->models[i];
        size_t af = m->audio_input >= 0 ? (size_t)avemo_audio_params_feature_count(&m->p.audio) * (size_t)m->p.audio.frames : 0;
        size_t ff = m->face_input >= 0 ? (size_t)m->p.face.size * m->p.face.size * m->p.face.channels : 0;
        if (af > ctx->audio_cap) ctx->audio_cap = af; /* one sample: the audio branch runs once per clip */
        if (ff * (size_t)clf->frames > ctx->face_cap) ctx->face_cap = ff * (size_t)clf->frames;
    }
    if (!st && clf->cascade) st = avemo_detector_create(clf->cascade, &ctx->det, err);
    if (!st) {
        ctx->audio_in = malloc(sizeof(float) * (ctx->audio_cap + 1));
        ctx->face_in = malloc(sizeof(float) * (ctx->face_cap + 1));
        if (!ctx->audio_in || !ctx->face_in) st = avemo_fail(err, AVEMO_ERR_NOMEM, "classify: out of memory");
    }
    if (st) {
        avemo_classify_ctx_free(ctx);
        return st;
    }
    *out = ctx;
    return AVEMO_OK;
}

void avemo_classify_ctx_free(avemo_classify_ctx *ctx)
{
    if (!ctx) return;
    for (int i = 0; i < CLF_MAX_MODELS; i++) {
        avemo_nn_ctx_free(ctx->m[i].nn);
        avemo_audio_extractor_free(ctx->m[i].ex);
    }
    avemo_detector_free(ctx->det);
    free(ctx->audio_in);
    free(ctx->face_in);
    free(ctx);
}

/* --- one request -------------------------------------------------------------------- */

/* What a request decoded: sound, face crops (model-ready), and facts for the answer. */
struct request {
    const char *name;
    avemo_media *media;          /* NULL for a still image */
    struct avemo_image still;    /* the picture of a still image (JPEG, PNG, BMP, TIFF, WebP ...) */
    struct avemo_audio audio;
    struct avemo_face faces[CLF_MAX_FRAMES];
    int nfaces, ncrops, frames_sampled;
    const struct avemo_rect *hint; /* the last face found: where the next frame's search starts */
    /* Overlap: the face model run on each crop as it was found (model early_model, -1: none);
     * early_crops crops' probabilities in crop_probs, in the order run_model batches them. */
    int early_model, early_crops, early_queued; /* crops run, crops whose inputs wait for a batch */
    double early_network_s;
    float crop_probs[CLF_MAX_FRAMES * AVEMO_MAX_CLASSES];
    /* Overlap: late fusion's audio model run on the decoding thread (hear_early) */
    struct early_audio {
        int ready, model;
        float probs[AVEMO_MAX_CLASSES];
        double audio_s, audio_heard_s, t_features_s, t_network_s;
    } early_audio;
};

/* Forget the faces found (and what the face model made of them). */
static void forget_faces(struct request *r)
{
    for (int i = 0; i < r->nfaces; i++) avemo_face_free(&r->faces[i]);
    r->nfaces = r->ncrops = r->early_crops = r->early_queued = 0;
    r->early_model = -1;
    r->hint = NULL;
    r->early_network_s = 0;
}

static void request_free(struct request *r)
{
    avemo_image_free(&r->still);
    avemo_audio_free(&r->audio);
    forget_faces(r);
}

static enum avemo_status decode_audio(avemo_classify_ctx *ctx, struct request *r, const struct avemo_model *m,
                                      struct avemo_prediction *pred, struct avemo_error *err)
{
    (void)ctx;
    if (r->audio.samples && r->audio.sample_rate == m->p.audio.sample_rate) return AVEMO_OK;
    avemo_audio_free(&r->audio);
    r->early_audio.ready = 0;
    if (!r->media) return avemo_fail(err, AVEMO_ERR_NO_AUDIO, "%s: a still image has no audio", r->name);
    double t0 = avemo_now();
    enum avemo_status st = avemo_media_decode_audio(r->media, m->p.audio.sample_rate, &r->audio, err);
    pred->t_decode_s += avemo_now() - t0;
    return st;
}

static void face_options(const struct avemo_model *m, struct avemo_face_options *fo)
{
    avemo_face_options_default(fo);
    fo->detect = m->p.face.detect;
    fo->size = m->p.face.size;
    fo->channels = m->p.face.channels;
    fo->margin = m->p.face.margin;
    fo->offset_y = m->p.face.offset_y;
    fo->track = m->p.face.track;
}

static enum avemo_status queue_face_crop(avemo_classify_ctx *ctx, struct request *r, int mi, const struct avemo_face *f,
                                         struct avemo_error *err);
static enum avemo_status run_early_crops(avemo_classify_ctx *ctx, struct request *r, struct avemo_error *err);
struct early_audio_job {
    avemo_classify_ctx *ctx;
    struct request *r;
    int model;
};
static void hear_early(void *user);

/* The face of one sampled frame, searched near the last one found; with an early model (not
 * -1), that model runs on the crop at once. */
static enum avemo_status face_of_frame(avemo_classify_ctx *ctx, struct request *r, const struct avemo_face_options *fo,
                                       const struct avemo_frame *frame, int early, struct avemo_error *err)
{
    if (r->nfaces >= CLF_MAX_FRAMES) return AVEMO_OK;
    struct avemo_image img = avemo_image_from_frame(frame);
    struct avemo_face *f = &r->faces[r->nfaces];
    /* A frame smaller than the smallest face searched has no face to find. */
    if (img.width < fo->detect.min_width || img.height < fo->detect.min_height) {
        memset(f, 0, sizeof *f);
        r->nfaces++;
        return AVEMO_OK;
    }
    enum avemo_status st = avemo_face_detect_image(ctx->det, &img, fo, r->hint, f, err);
    if (st) return st;
    r->nfaces++;
    if (!f->face_found) return AVEMO_OK;
    r->ncrops++;
    r->hint = &f->box;
    return early >= 0 ? queue_face_crop(ctx, r, early, f, err) : AVEMO_OK;
}

/* The face of a still image: searched for, or the whole picture when it is a face crop already. */
static enum avemo_status face_of_still(avemo_classify_ctx *ctx, struct request *r, const struct avemo_face_options *fo,
                                       struct avemo_error *err)
{
    const struct avemo_image img = r->still;
    enum avemo_status st = AVEMO_OK;
    /* An image smaller than the smallest face searched is taken to be the face itself. */
    int searchable = img.width >= fo->detect.min_width && img.height >= fo->detect.min_height;
    if (searchable) st = avemo_face_detect_image(ctx->det, &img, fo, NULL, &r->faces[0], err);
    if (!st && !r->faces[0].has_crop) {
        /* A face image as FER2013's is already the crop: use it whole. */
        st = avemo_face_from_crop(&img, fo->size, fo->channels, &r->faces[0].image, err);
        r->faces[0].has_crop = st == AVEMO_OK;
    }
    /* A picture too small to search is the face itself (FER2013, CK+): the answer says so. */
    if (!searchable) r->faces[0].face_found = r->faces[0].has_crop;
    r->nfaces = r->frames_sampled = 1;
    r->ncrops = r->faces[0].has_crop;
    return st;
}

/* One pass over the file gives the sampled frames and, when audio is not NULL, the sound (the
 * same samples as a pass for the sound alone: the same packets reach the same decoder); the
 * frames are searched for faces after it. */
static enum avemo_status faces_after_decoding(avemo_classify_ctx *ctx, struct request *r, const struct avemo_face_options *fo,
                                              int audio_rate, struct avemo_audio *audio, struct avemo_prediction *pred,
                                              struct avemo_error *err)
{
    double t0 = avemo_now();
    struct avemo_frames frames = {0};
    enum avemo_status st = avemo_media_decode_av(r->media, audio_rate, audio, ctx->clf->frames,
                                                 fo->channels == 1 ? AVEMO_PIX_GRAY8 : AVEMO_PIX_RGB24, &frames, err);
    pred->t_decode_s += avemo_now() - t0;
    t0 = avemo_now();
    for (int i = 0; !st && i < frames.count; i++) st = face_of_frame(ctx, r, fo, &frames.frames[i], -1, err);
    r->frames_sampled = frames.count;
    avemo_frames_free(&frames);
    pred->t_faces_s += avemo_now() - t0;
    return st;
}

/* The same, with the decoding on a second thread: each frame is searched (and the early model
 * run on its crop) as soon as it is out.  The time waited for frames counts as decoding. */
static enum avemo_status faces_while_decoding(avemo_classify_ctx *ctx, struct request *r, const struct avemo_face_options *fo,
                                              int audio_rate, struct avemo_audio *audio, int early,
                                              struct avemo_prediction *pred, struct avemo_error *err)
{
    double t0 = avemo_now(), busy = 0;
    struct decode_thread t;
    /* late fusion: the voice model runs on the decoding thread once the sound is out */
    int ma = ctx->clf->slot[AVEMO_MODE_AUDIO];
    struct early_audio_job job = {ctx, r, ma};
    int hear = audio && early >= 0 && ctx->clf->late && ma >= 0 && ctx->clf->models[ma].p.audio.sample_rate == audio_rate;
    enum avemo_status st = decode_thread_start(&t, r->media, audio_rate, audio, ctx->clf->frames,
                                               fo->channels == 1 ? AVEMO_PIX_GRAY8 : AVEMO_PIX_RGB24,
                                               hear ? hear_early : NULL, &job, err);
    if (st) return st;
    struct avemo_frame frame;
    int restart;
    while (decode_thread_next(&t, &frame, &restart)) {
        if (restart) forget_faces(r); /* a pass made again: its frames may be others */
        double t1 = avemo_now();
        if (!st && (st = face_of_frame(ctx, r, fo, &frame, early, err))) decode_thread_cancel(&t);
        busy += avemo_now() - t1;
        free(frame.data);
    }
    double t1 = avemo_now();
    if (!st) st = run_early_crops(ctx, r, err); /* the last crops, fewer than a batch */
    busy += avemo_now() - t1;
    struct avemo_frames frames;
    struct avemo_error decode_err = {0};
    enum avemo_status decoded = decode_thread_join(&t, &frames, &decode_err);
    if (decoded && !st && err) *err = decode_err;
    if (!decoded && !st && r->nfaces != frames.count && r->nfaces < CLF_MAX_FRAMES) {
        /* not the frames the decoding returned (cannot happen by the sink's contract): search those */
        forget_faces(r);
        for (int i = 0; !st && i < frames.count; i++) st = face_of_frame(ctx, r, fo, &frames.frames[i], -1, err);
    }
    r->frames_sampled = frames.count;
    avemo_frames_free(&frames);
    busy -= r->early_network_s;
    pred->t_faces_s += busy;
    pred->t_decode_s += avemo_now() - t0 - busy - r->early_network_s;
    return st ? st : decoded; /* a failed search stopped the decoding: its own error is the cause */
}

/* Faces of the clip's sampled frames, or of the still image.  audio_rate > 0: the request needs
 * the sound too, at that rate (the av model's, or late fusion's audio model's). */
static enum avemo_status find_faces(avemo_classify_ctx *ctx, struct request *r, const struct avemo_model *m,
                                    int audio_rate, struct avemo_prediction *pred, struct avemo_error *err)
{
    struct avemo_face_options fo;
    face_options(m, &fo);
    forget_faces(r);
    if (!r->media) {
        double t0 = avemo_now();
        enum avemo_status st = face_of_still(ctx, r, &fo, err);
        pred->t_faces_s += avemo_now() - t0;
        return st;
    }
    struct avemo_media_info info;
    avemo_media_get_info(r->media, &info);
    int with_audio = audio_rate > 0 && info.has_audio && !r->audio.samples;
    struct avemo_audio *audio = with_audio ? &r->audio : NULL;
    if (!ctx->overlap) return faces_after_decoding(ctx, r, &fo, with_audio ? audio_rate : 0, audio, pred, err);
    /* A face model (no sound input) can run on each crop as it comes; an av network needs the sound. */
    int early = m->audio_input < 0 ? (int)(m - ctx->clf->models) : -1;
    return faces_while_decoding(ctx, r, &fo, with_audio ? audio_rate : 0, audio, early, pred, err);
}

/* One crop as the model's input; a model trained on equalised crops gets an equalised copy
 * (the crop itself stays as found: other models of the request may read it). */
static enum avemo_status face_input(const struct avemo_model *m, const struct avemo_face *f, float *dst,
                                    struct avemo_error *err)
{
    if (!m->p.face.equalize) {
        avemo_model_face_input(f->image.data, m->p.face.size, m->p.face.channels, dst);
        return AVEMO_OK;
    }
    struct avemo_image eq;
    enum avemo_status st = avemo_image_convert(&f->image, f->image.channels, &eq, err);
    if (st) return st;
    avemo_image_equalize(&eq);
    avemo_model_face_input(eq.data, m->p.face.size, m->p.face.channels, dst);
    avemo_image_free(&eq);
    return AVEMO_OK;
}

/* Model mi's network context and feature extractor, made on its first use: a model a context
 * never runs (the av network when late fusion answers) costs nothing. */
static enum avemo_status model_ctx(avemo_classify_ctx *ctx, int mi, struct avemo_error *err)
{
    const struct avemo_model *m = &ctx->clf->models[mi];
    /* One sample for a model without faces (run_model): its activations then take 1/8 of the
     * memory a batch of face crops needs, and a first request touches no more than that. */
    int max_batch = m->face_input >= 0 ? ctx->clf->frames : 1;
    enum avemo_status st = AVEMO_OK;
    if (!ctx->m[mi].nn) st = avemo_nn_ctx_create(m->net, max_batch, 0, 0, &ctx->m[mi].nn, err);
    if (!st && m->audio_input >= 0 && !ctx->m[mi].ex) {
        st = avemo_audio_extractor_create(&m->p.audio, &ctx->m[mi].ex, err);
        if (!st && m->mean)
            st = avemo_audio_extractor_set_stats(ctx->m[mi].ex, m->mean, m->std,
                                                 avemo_audio_feature_count(ctx->m[mi].ex), err);
        if (st) { /* half made: made again next time */
            avemo_audio_extractor_free(ctx->m[mi].ex);
            ctx->m[mi].ex = NULL;
        }
    }
    return st;
}

/* Overlap: the early model's queued crops as one batch, their probabilities into crop_probs. */
static enum avemo_status run_early_crops(avemo_classify_ctx *ctx, struct request *r, struct avemo_error *err)
{
    if (r->early_queued == 0) return AVEMO_OK;
    const struct avemo_model *m = &ctx->clf->models[r->early_model];
    double t0 = avemo_now();
    size_t ff = (size_t)m->p.face.size * m->p.face.size * m->p.face.channels;
    float *in = ctx->face_in + (size_t)r->early_crops * ff;
    const float *inputs[1] = {in};
    int k = avemo_net_classes(m->net);
    assert(m->face_input == 0 && avemo_net_input_count(m->net) == 1);
    assert(r->early_crops + r->early_queued <= ctx->clf->frames);
    enum avemo_status st = avemo_model_predict_probs(m, ctx->m[r->early_model].nn, inputs, r->early_queued, 0, in,
                                                     m->p.face.size, m->p.face.channels, m->p.face.mirror_test,
                                                     r->crop_probs + (size_t)r->early_crops * k, err);
    r->early_crops += r->early_queued;
    r->early_queued = 0;
    r->early_network_s += avemo_now() - t0;
    return st;
}

/* Overlap: face model mi's input for a crop as it is found, at its place in the batch run_model
 * would make (classify_last_inputs reads the same); every CLF_EARLY_BATCH crops run together
 * (the rest at the end): a batch of one costs more per crop than a few together. */
static enum avemo_status queue_face_crop(avemo_classify_ctx *ctx, struct request *r, int mi, const struct avemo_face *f,
                                         struct avemo_error *err)
{
    const struct avemo_model *m = &ctx->clf->models[mi];
    enum avemo_status st = model_ctx(ctx, mi, err);
    if (st) return st;
    assert(r->early_model == -1 || r->early_model == mi);
    r->early_model = mi;
    size_t ff = (size_t)m->p.face.size * m->p.face.size * m->p.face.channels;
    int at = r->early_crops + r->early_queued;
    if (at >= ctx->clf->frames) return AVEMO_OK; /* more crops than the batch holds: run_model runs them all */
    if ((st = face_input(m, f, ctx->face_in + (size_t)at * ff, err))) return st;
    return ++r->early_queued >= CLF_EARLY_BATCH ? run_early_crops(ctx, r, err) : AVEMO_OK;
}

/* Model mi's inputs: the sound's features, the face crops (*batch of them; 1 without faces). */
static enum avemo_status model_inputs(avemo_classify_ctx *ctx, struct request *r, int mi, struct avemo_prediction *pred,
                                      int *batch, struct avemo_error *err)
{
    const struct avemo_model *m = &ctx->clf->models[mi];
    enum avemo_status st = model_ctx(ctx, mi, err);
    if (st) return st;
    double t0 = avemo_now();
    if (m->audio_input >= 0) {
        st = avemo_audio_compute_fixed(ctx->m[mi].ex, r->audio.samples, r->audio.count, ctx->audio_in,
                                       (size_t)m->p.audio.frames, NULL, err);
        if (st) return st;
        pred->audio_s = (double)r->audio.count / r->audio.sample_rate;
        double window_s = (double)m->p.audio.frames * m->p.audio.hop / m->p.audio.sample_rate;
        pred->audio_heard_s = pred->audio_s < window_s ? pred->audio_s : window_s;
    }
    pred->t_features_s += avemo_now() - t0;
    *batch = 1;
    if (m->face_input < 0) return AVEMO_OK;
    size_t ff = (size_t)m->p.face.size * m->p.face.size * m->p.face.channels;
    *batch = 0;
    for (int i = 0; i < r->nfaces; i++) {
        const struct avemo_face *f = &r->faces[i];
        if (!f->has_crop || (r->media && !f->face_found)) continue;
        if ((st = face_input(m, f, ctx->face_in + (size_t)*batch * ff, err))) return st;
        ++*batch;
    }
    if (*batch == 0) return avemo_fail(err, AVEMO_ERR_NO_FACE, "%s: no face found in %d frames", r->name, r->frames_sampled);
    pred->frames_used = *batch;
    return AVEMO_OK;
}

/* Model mi's network on the inputs model_inputs made: batch x classes probabilities. */
static enum avemo_status model_network(avemo_classify_ctx *ctx, int mi, int batch, float *probs,
                                       struct avemo_prediction *pred, struct avemo_error *err)
{
    const struct avemo_model *m = &ctx->clf->models[mi];
    const float *inputs[2];
    for (int i = 0; i < avemo_net_input_count(m->net); i++) inputs[i] = i == m->audio_input ? ctx->audio_in : ctx->face_in;
    double t0 = avemo_now();
    /* The same sound goes with every face: the audio branch runs once for the clip. */
    unsigned shared = m->audio_input >= 0 ? 1u << m->audio_input : 0u;
    assert(batch >= 1 && batch <= CLF_MAX_FRAMES && avemo_net_classes(m->net) <= AVEMO_MAX_CLASSES);
    enum avemo_status st = avemo_model_predict_probs(m, ctx->m[mi].nn, inputs, batch, shared,
                                                     m->face_input >= 0 ? ctx->face_in : NULL, m->p.face.size,
                                                     m->p.face.channels, m->p.face.mirror_test, probs, err);
    pred->t_network_s += avemo_now() - t0;
    return st;
}

/* Overlap, on the decoding thread once the sound is out: late fusion's audio model on it, its
 * answer kept for run_model (it touches the audio model's context only, never the faces). */
static void hear_early(void *user)
{
    struct early_audio_job *job = user;
    struct request *r = job->r;
    struct avemo_prediction heard = {0};
    struct avemo_error ignored = {0}; /* a failure shows again when run_model does the work itself */
    int batch;
    if (model_inputs(job->ctx, r, job->model, &heard, &batch, &ignored) ||
        model_network(job->ctx, job->model, batch, r->early_audio.probs, &heard, &ignored))
        return;
    r->early_audio.audio_s = heard.audio_s;
    r->early_audio.audio_heard_s = heard.audio_heard_s;
    r->early_audio.t_features_s = heard.t_features_s;
    r->early_audio.t_network_s = heard.t_network_s;
    r->early_audio.model = job->model;
    r->early_audio.ready = 1;
}

/* Fill the network inputs for model mi and run it (or take what the overlap ran already);
 * probabilities are averaged over the face crops. */
static enum avemo_status run_model(avemo_classify_ctx *ctx, struct request *r, int mi, struct avemo_prediction *pred,
                                   struct avemo_error *err)
{
    const struct avemo_model *m = &ctx->clf->models[mi];
    int k = avemo_net_classes(m->net), batch = 1;
    float probs[CLF_MAX_FRAMES * AVEMO_MAX_CLASSES];
    enum avemo_status st = AVEMO_OK;
    if (r->early_audio.ready && r->early_audio.model == mi && r->audio.samples) {
        const struct early_audio *e = &r->early_audio;
        memcpy(probs, e->probs, sizeof(float) * (size_t)k);
        pred->audio_s = e->audio_s;
        pred->audio_heard_s = e->audio_heard_s;
        pred->t_features_s += e->t_features_s;
        pred->t_network_s += e->t_network_s;
    } else if ((st = model_inputs(ctx, r, mi, pred, &batch, err))) {
        return st;
    } else if (r->early_model == mi && r->early_crops == batch) { /* run while the clip decoded */
        memcpy(probs, r->crop_probs, sizeof(float) * (size_t)batch * k);
        pred->t_network_s += r->early_network_s;
    } else if ((st = model_network(ctx, mi, batch, probs, pred, err))) {
        return st;
    }
    memset(pred->probs, 0, sizeof pred->probs);
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < k; c++) pred->probs[c] += probs[b * k + c] / (float)batch;
    pred->num_classes = k;
    pred->label = 0;
    for (int c = 0; c < k; c++) {
        snprintf(pred->labels[c], sizeof pred->labels[c], "%s", avemo_net_label(m->net, c));
        if (pred->probs[c] > pred->probs[pred->label]) pred->label = c;
    }
    pred->confidence = pred->probs[pred->label];
    snprintf(pred->model, sizeof pred->model, "%s", m->name);
    ctx->last_model = mi;
    ctx->last_batch = batch;
    return AVEMO_OK;
}

const avemo_classifier *classify_ctx_classifier(const avemo_classify_ctx *ctx) { return ctx->clf; }

int avemo_classify_ctx_set_overlap(avemo_classify_ctx *ctx, int overlap)
{
    int was = ctx->overlap;
    ctx->overlap = overlap;
    return was;
}

int classify_last_inputs(const avemo_classify_ctx *ctx, struct classify_inputs *in)
{
    if (ctx->last_model < 0) return -1;
    const struct avemo_model *m = &ctx->clf->models[ctx->last_model];
    in->model = m;
    in->audio = m->audio_input >= 0 ? ctx->audio_in : NULL;
    in->faces = m->face_input >= 0 ? ctx->face_in : NULL;
    in->batch = ctx->last_batch;
    return 0;
}

int classify_last_late_inputs(const avemo_classify_ctx *ctx, struct classify_late_inputs *in)
{
    if (ctx->late_audio_model < 0 || classify_last_inputs(ctx, &in->face)) return -1;
    const struct avemo_model *ma = &ctx->clf->models[ctx->late_audio_model];
    in->audio = (struct classify_inputs){ma, ctx->audio_in, NULL, ctx->late_audio_batch};
    in->p_audio = ctx->late_pa;
    in->p_face = ctx->late_pf;
    in->fusion = fusion_of(ctx->clf);
    return 0;
}

/* The top class of pred->probs, its confidence and the runner-up. */
static void set_top_two(struct avemo_prediction *pred)
{
    pred->label = 0;
    for (int c = 1; c < pred->num_classes; c++)
        if (pred->probs[c] > pred->probs[pred->label]) pred->label = c;
    pred->second = pred->label == 0 && pred->num_classes > 1 ? 1 : 0;
    for (int c = 0; c < pred->num_classes; c++)
        if (c != pred->label && pred->probs[c] > pred->probs[pred->second]) pred->second = c;
    pred->confidence = pred->probs[pred->label];
}

/* av by late fusion: the audio model on the sound, the face model on the faces (found with the
 * face model's settings; each model with its own temperature), their log-probabilities weighted
 * and summed. */
static enum avemo_status run_late_fusion(avemo_classify_ctx *ctx, struct request *r, struct avemo_prediction *pred,
                                         struct avemo_error *err)
{
    const avemo_classifier *clf = ctx->clf;
    int ma = clf->slot[AVEMO_MODE_AUDIO], mf = clf->slot[AVEMO_MODE_FACE];
    float pa[AVEMO_MAX_CLASSES];
    enum avemo_status st = decode_audio(ctx, r, &clf->models[ma], pred, err);
    if (!st) st = run_model(ctx, r, ma, pred, err);
    if (st) return st;
    memcpy(pa, pred->probs, sizeof pa);
    int k = pred->num_classes, audio_batch = ctx->last_batch;
    if ((st = run_model(ctx, r, mf, pred, err))) return st;
    if (pred->num_classes != k)
        return avemo_fail(err, AVEMO_ERR_MISMATCH, "%s: the audio model has %d classes, the face model %d", r->name, k,
                          pred->num_classes);
    /* the face model has no audio input: ctx->audio_in still holds the audio model's features */
    ctx->late_audio_model = ma;
    ctx->late_audio_batch = audio_batch;
    memcpy(ctx->late_pa, pa, sizeof pa);
    memcpy(ctx->late_pf, pred->probs, sizeof ctx->late_pf);
    float fused[AVEMO_MAX_CLASSES];
    struct avemo_late_fusion f = fusion_of(clf);
    avemo_fuse_late(pa, pred->probs, k, &f, fused);
    memcpy(pred->probs, fused, sizeof(float) * (size_t)k);
    set_top_two(pred);
    pred->late_fusion = 1;
    snprintf(pred->model, sizeof pred->model, "%s", clf->models[0].name);
    return AVEMO_OK;
}

/* Uncertain when the top probability is below the option's threshold or the model's own. */
static void mark_uncertain(const avemo_classifier *clf, const struct avemo_model *m, struct avemo_prediction *pred)
{
    set_top_two(pred);
    float t = clf->uncertain_below != 0 ? clf->uncertain_below : avemo_model_uncertain_below(m->net);
    if (t < 0) t = 0; /* the option asked for never */
    pred->uncertain_below = t;
    pred->uncertain = pred->num_classes > 1 && pred->confidence < t;
}

static void keep_face_for_page(const struct request *r, const struct avemo_model *m, struct avemo_prediction *pred)
{
    int used[CLF_MAX_FRAMES], n = 0;
    for (int i = 0; i < r->nfaces; i++)
        if (r->faces[i].has_crop && (r->faces[i].face_found || !r->media)) used[n++] = i;
    if (!n || m->p.face.size != 64) return;
    const struct avemo_image *img = &r->faces[used[n / 2]].image;
    for (int p = 0; p < 64 * 64; p++)
        for (int c = 0; c < 3; c++) pred->face_rgb[p * 3 + c] = img->data[p * img->channels + (img->channels == 3 ? c : 0)];
}

static void fall_back(const avemo_classifier *clf, enum avemo_mode to, const char *why, int *mi, struct avemo_prediction *pred)
{
    snprintf(pred->fallback_reason, sizeof pred->fallback_reason, "%s: used the %s model", why, avemo_mode_name(to));
    *mi = clf->slot[to];
    pred->mode_used = to;
}

/* "-72.3 dBFS", or "digital silence" when every sample is 0. */
static void describe_level(double db, char *text, size_t size)
{
    if (db <= AVEMO_AUDIO_LEVEL_FLOOR_DB) snprintf(text, size, "digital silence");
    else snprintf(text, size, "%.1f dBFS", db);
}

/* The level of the sound at the rate of model ma (decoded now unless the face pass did it). */
static enum avemo_status hear_audio(avemo_classify_ctx *ctx, struct request *r, const struct avemo_model *ma,
                                    struct avemo_prediction *pred, struct avemo_error *err)
{
    enum avemo_status st = decode_audio(ctx, r, ma, pred, err);
    if (st) return st;
    pred->audio_heard = 1;
    pred->audio_level_db = avemo_audio_level_db(r->audio.samples, r->audio.count, r->audio.sample_rate);
    return AVEMO_OK;
}

/* An answer that would rest on a silent sound (a muted phone video, a screen recording, an empty
 * voice memo): the models never heard silence, so what they say of it is noise (the shipped voice
 * model calls digital silence NEU 0.67, and in av it outweighed an angry face).  av answers by the
 * faces alone; an answer by the voice alone is refused. */
static enum avemo_status mind_silence(avemo_classify_ctx *ctx, struct request *r, int *mi, int *late,
                                      struct avemo_prediction *pred, struct avemo_error *err)
{
    const avemo_classifier *clf = ctx->clf;
    const struct avemo_model *ma = *late ? &clf->models[clf->slot[AVEMO_MODE_AUDIO]] : &clf->models[*mi];
    if (pred->mode_used == AVEMO_MODE_FACE || ma->audio_input < 0) return AVEMO_OK;
    enum avemo_status st = hear_audio(ctx, r, ma, pred, err);
    if (st || pred->audio_level_db >= AVEMO_AUDIO_SILENT_DB) return st;
    char level[32], why[96];
    describe_level(pred->audio_level_db, level, sizeof level);
    if (pred->mode_used == AVEMO_MODE_AV && r->ncrops > 0 && clf->slot[AVEMO_MODE_FACE] >= 0) {
        snprintf(why, sizeof why, "the audio is silent (%s)", level);
        fall_back(clf, AVEMO_MODE_FACE, why, mi, pred);
        if (*late) {
            *late = 0; /* the faces were found with the face model's framing */
            return AVEMO_OK;
        }
        /* an av network's framing may differ from the face model's: find the faces again */
        for (int i = 0; i < r->nfaces; i++) avemo_face_free(&r->faces[i]);
        r->nfaces = r->ncrops = 0;
        return find_faces(ctx, r, &clf->models[*mi], 0, pred, err);
    }
    /* av fell back to the voice: say why too ("no face found in 8 frames") */
    int why_len = (int)strcspn(pred->fallback_reason, ":");
    return avemo_fail(err, AVEMO_ERR_SILENT, "%s: the audio is silent (its loudest 50 ms: %s, below %.0f dBFS)%s%.*s: there is no voice to classify",
                      r->name, level, AVEMO_AUDIO_SILENT_DB, why_len ? " and " : "", why_len, pred->fallback_reason);
}

/* Append a sentence to the answer's note ("; " between sentences). */
static void add_note(struct avemo_prediction *pred, const char *text)
{
    size_t n = strlen(pred->note);
    snprintf(pred->note + n, sizeof pred->note - n, "%s%s", n ? "; " : "", text);
}

/* Several people in the picture: the answer is about one face, and the page's crop shows which. */
static void note_group(const struct avemo_model *m, struct avemo_prediction *pred)
{
    if (pred->faces_in_frame_max < 2 || pred->frames_used == 0) return;
    char text[160];
    if (pred->frames_sampled <= 1)
        snprintf(text, sizeof text, "%d faces in the picture: the answer is about the largest", pred->faces_in_frame_max);
    else
        snprintf(text, sizeof text, "%d faces in one frame: the answer is about the largest face %s",
                 pred->faces_in_frame_max, m->p.face.track ? "of the first frame, followed from frame to frame" : "of each frame");
    add_note(pred, text);
}

/* A recording much longer than the voice model's input is answered from one part of it: say
 * which, and how to follow the whole (a 1-minute memo is not one emotion). */
static void note_long_recording(const struct avemo_model *ma, struct avemo_prediction *pred)
{
    if (!(pred->audio_s > 2 * pred->audio_heard_s) || pred->audio_heard_s <= 0) return;
    enum avemo_crop crop = ma->p.audio.crop;
    char heard[64];
    if (crop == AVEMO_CROP_CENTROID) snprintf(heard, sizeof heard, "%.1f s around its energy centre", pred->audio_heard_s);
    else
        snprintf(heard, sizeof heard, "the %s %.1f s",
                 crop == AVEMO_CROP_START ? "first" : crop == AVEMO_CROP_CENTRE ? "middle" : "loudest", pred->audio_heard_s);
    char text[256];
    snprintf(text, sizeof text,
             "a %.1f s recording: the voice model hears %s; windows of %.0f s follow the whole (avemo classify --window)",
             pred->audio_s, heard, ceil(pred->audio_heard_s));
    add_note(pred, text);
}

static enum avemo_status classify_request(avemo_classify_ctx *ctx, struct request *r, enum avemo_mode mode,
                                          struct avemo_prediction *pred, struct avemo_error *err)
{
    const avemo_classifier *clf = ctx->clf;
    if ((int)mode < 0 || mode > AVEMO_MODE_FACE || clf->slot[mode] < 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: model %s cannot classify in %s mode (load a %s model)", r->name,
                          clf->models[0].name, avemo_mode_name(mode), avemo_mode_name(mode));
    pred->mode_requested = pred->mode_used = mode;
    int mi = clf->slot[mode];
    struct avemo_media_info info = {0};
    if (r->media) avemo_media_get_info(r->media, &info);
    else info.has_video = 1; /* a still image stands for a frame */
    if (mode == AVEMO_MODE_AV && !(r->media ? info.has_audio : 0) && clf->slot[AVEMO_MODE_FACE] >= 0)
        fall_back(clf, AVEMO_MODE_FACE, r->media ? "no audio stream" : "a still image has no audio", &mi, pred);
    else if (mode == AVEMO_MODE_AV && !info.has_video && clf->slot[AVEMO_MODE_AUDIO] >= 0)
        fall_back(clf, AVEMO_MODE_AUDIO, "no video stream", &mi, pred);
    const struct avemo_model *m = &clf->models[mi];
    enum avemo_status st = AVEMO_OK;
    /* Late fusion frames faces as the face model it runs was trained to see them. */
    int late = pred->mode_used == AVEMO_MODE_AV && clf->late;
    if (late) m = &clf->models[clf->slot[AVEMO_MODE_FACE]];
    if (m->face_input >= 0) {
        if (!ctx->det) return avemo_fail(err, AVEMO_ERR_INTERNAL, "%s: no face detector", r->name);
        if (r->media && !info.has_video)
            return avemo_fail(err, AVEMO_ERR_NO_VIDEO, "%s: no video stream for the face model", r->name);
        /* the sound of this answer: the av model's, or late fusion's audio model's */
        const struct avemo_model *ma = late ? &clf->models[clf->slot[AVEMO_MODE_AUDIO]] : m;
        st = find_faces(ctx, r, m, ma->audio_input >= 0 ? ma->p.audio.sample_rate : 0, pred, err);
        if (st) return st;
        pred->face_found = 0;
        for (int i = 0; i < r->nfaces; i++) {
            pred->face_found |= r->faces[i].face_found;
            if (r->faces[i].faces_in_frame > pred->faces_in_frame_max) pred->faces_in_frame_max = r->faces[i].faces_in_frame;
        }
        pred->frames_sampled = r->frames_sampled;
        if (r->ncrops == 0 && pred->mode_used == AVEMO_MODE_AV && clf->slot[AVEMO_MODE_AUDIO] >= 0) {
            char why[64];
            snprintf(why, sizeof why, "no face found in %d frames", r->frames_sampled);
            fall_back(clf, AVEMO_MODE_AUDIO, why, &mi, pred);
            m = &clf->models[mi];
            late = 0;
        } else if (r->ncrops == 0) {
            return avemo_fail(err, AVEMO_ERR_NO_FACE, "%s: no face found in %d frames", r->name, r->frames_sampled);
        }
    }
    if ((st = mind_silence(ctx, r, &mi, &late, pred, err))) return st;
    if (!late) m = &clf->models[mi];
    if (m->audio_input >= 0 && (st = decode_audio(ctx, r, m, pred, err))) return st;
    if (late) st = run_late_fusion(ctx, r, pred, err);
    else st = run_model(ctx, r, mi, pred, err);
    if (st) return st;
    if (m->face_input >= 0) keep_face_for_page(r, m, pred);
    if (m->face_input >= 0) note_group(m, pred);
    if (pred->audio_heard_s > 0) note_long_recording(late ? &clf->models[clf->slot[AVEMO_MODE_AUDIO]] : m, pred);
    mark_uncertain(clf, &clf->models[pred->late_fusion ? 0 : mi], pred);
    return AVEMO_OK;
}

static enum avemo_status classify_common(avemo_classify_ctx *ctx, struct request *r, const void *data, size_t size,
                                         const char *path, enum avemo_mode mode, struct avemo_prediction *pred,
                                         struct avemo_error *err)
{
    memset(pred, 0, sizeof *pred);
    ctx->last_model = -1;
    ctx->late_audio_model = -1;
    double t0 = avemo_now();
    enum avemo_status st = AVEMO_OK;
    struct avemo_media_open_options mo = {.name = r->name, .limits = &ctx->clf->limits};
    uint8_t *file = NULL;
    if (path) {
        /* Peek for a JPEG: FFmpeg reads it as one video frame, libjpeg reads it better. */
        uint8_t head[3] = {0};
        FILE *f = NULL;
        st = avemo_open_regular(path, &f, err); /* a FIFO is refused here, not waited on */
        size_t got = f ? fread(head, 1, 3, f) : 0;
        if (f) fclose(f);
        if (!st && avemo_image_is_jpeg(head, got)) {
            st = avemo_read_file(path, AVEMO_JPEG_MAX_BYTES, &file, &size, err);
            data = file;
        }
    }
    double td = avemo_now();
    if (!st && data && avemo_image_is_jpeg(data, size)) {
        st = avemo_jpeg_read_memory(data, size, r->name, 0, 0, &r->still, err);
    } else if (!st) {
        st = path ? avemo_media_open_file(path, &mo, &r->media, err) : avemo_media_open_memory(data, size, &mo, &r->media, err);
        if (st == AVEMO_ERR_TOO_LONG && err && ctx->clf->slot[AVEMO_MODE_AUDIO] >= 0) {
            char said[AVEMO_ERROR_MESSAGE_MAX];
            snprintf(said, sizeof said, "%s", err->message);
            avemo_fail(err, st, "%s (a longer recording is followed in windows: avemo classify --window 3s)", said);
        }
        /* Any other picture (PNG, BMP, TIFF, WebP) is one image, not an 8-frame clip. */
        if (!st && avemo_media_is_still_image(r->media)) {
            st = avemo_image_from_media(r->media, 3, &r->still, err);
            avemo_media_close(r->media);
            r->media = NULL;
        }
    }
    pred->t_decode_s += avemo_now() - td;
    if (!st) st = classify_request(ctx, r, mode, pred, err);
    request_free(r);
    avemo_media_close(r->media);
    free(file);
    pred->t_total_s = avemo_now() - t0;
    return st;
}

enum avemo_status avemo_classify_file(avemo_classify_ctx *ctx, const char *path, enum avemo_mode mode,
                                      struct avemo_prediction *pred, struct avemo_error *err)
{
    struct request r = {.name = path};
    return classify_common(ctx, &r, NULL, 0, path, mode, pred, err);
}

enum avemo_status avemo_classify_memory(avemo_classify_ctx *ctx, const void *data, size_t size, const char *name,
                                        enum avemo_mode mode, struct avemo_prediction *pred, struct avemo_error *err)
{
    struct request r = {.name = name ? name : "<upload>"};
    if (!data || size == 0) {
        memset(pred, 0, sizeof *pred);
        return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: the upload is empty (0 bytes)", r.name);
    }
    return classify_common(ctx, &r, data, size, NULL, mode, pred, err);
}

/* --- JSON ---------------------------------------------------------------------------- */

static const char *emotion_name(const char *code)
{
    for (int i = 0; i < AVEMO_NUM_EMOTIONS; i++)
        if (strcmp(code, avemo_emotion_codes[i]) == 0) return avemo_emotion_names[i];
    return code;
}

static void add_times(cJSON *o, const struct avemo_prediction *pred)
{
    cJSON *t = cJSON_AddObjectToObject(o, "time_ms");
    cJSON_AddNumberToObject(t, "decode", 1e3 * pred->t_decode_s);
    cJSON_AddNumberToObject(t, "features", 1e3 * pred->t_features_s);
    cJSON_AddNumberToObject(t, "faces", 1e3 * pred->t_faces_s);
    cJSON_AddNumberToObject(t, "network", 1e3 * pred->t_network_s);
    cJSON_AddNumberToObject(t, "total", 1e3 * pred->t_total_s);
}

/* The sound's level to 0.1 dB and whether it is silent, when the answer heard it. */
static void add_level(cJSON *o, const struct avemo_prediction *pred)
{
    if (!pred->audio_heard) return;
    cJSON_AddNumberToObject(o, "audio_level_db", round(pred->audio_level_db * 10) / 10);
    cJSON_AddBoolToObject(o, "silent", pred->audio_level_db < AVEMO_AUDIO_SILENT_DB);
}

/* A silent window: no label and no probabilities, only that it is silent and how quiet. */
static void add_silent_fields(cJSON *o, const struct avemo_prediction *pred)
{
    cJSON_AddNullToObject(o, "label");
    add_level(o, pred);
    cJSON_AddStringToObject(o, "mode", avemo_mode_name(pred->mode_used));
    cJSON_AddStringToObject(o, "mode_requested", avemo_mode_name(pred->mode_requested));
    cJSON_AddStringToObject(o, "model", pred->model);
    cJSON_AddNumberToObject(o, "audio_s", pred->audio_s);
    add_times(o, pred);
}

/* The fields of a prediction, added to o. */
static void add_prediction_fields(cJSON *o, const struct avemo_prediction *pred, const char *file)
{
    if (file) cJSON_AddStringToObject(o, "file", file);
    if (pred->silent) {
        add_silent_fields(o, pred);
        return;
    }
    cJSON_AddStringToObject(o, "label", pred->labels[pred->label]);
    cJSON_AddStringToObject(o, "emotion", emotion_name(pred->labels[pred->label]));
    cJSON_AddNumberToObject(o, "confidence", pred->confidence);
    /* Not confident: say so, with the runner-up, rather than a bare top answer. */
    cJSON_AddBoolToObject(o, "uncertain", pred->uncertain);
    cJSON_AddNumberToObject(o, "uncertain_below", pred->uncertain_below);
    cJSON *second = cJSON_AddObjectToObject(o, "second");
    cJSON_AddStringToObject(second, "label", pred->labels[pred->second]);
    cJSON_AddStringToObject(second, "emotion", emotion_name(pred->labels[pred->second]));
    cJSON_AddNumberToObject(second, "confidence", pred->probs[pred->second]);
    cJSON *probs = cJSON_AddObjectToObject(o, "probabilities");
    for (int c = 0; c < pred->num_classes; c++) cJSON_AddNumberToObject(probs, pred->labels[c], pred->probs[c]);
    cJSON_AddStringToObject(o, "mode", avemo_mode_name(pred->mode_used));
    cJSON_AddStringToObject(o, "mode_requested", avemo_mode_name(pred->mode_requested));
    if (pred->fallback_reason[0]) cJSON_AddStringToObject(o, "fallback", pred->fallback_reason);
    else cJSON_AddNullToObject(o, "fallback");
    cJSON_AddStringToObject(o, "model", pred->model);
    if (pred->mode_used == AVEMO_MODE_AV) cJSON_AddStringToObject(o, "fusion", pred->late_fusion ? "late" : "head");
    cJSON_AddBoolToObject(o, "face_found", pred->face_found);
    cJSON_AddNumberToObject(o, "frames_used", pred->frames_used);
    cJSON_AddNumberToObject(o, "frames_sampled", pred->frames_sampled);
    cJSON_AddNumberToObject(o, "faces_in_frame_max", pred->faces_in_frame_max);
    cJSON_AddNumberToObject(o, "audio_s", pred->audio_s);
    add_level(o, pred);
    if (pred->note[0]) cJSON_AddStringToObject(o, "note", pred->note);
    else cJSON_AddNullToObject(o, "note");
    add_times(o, pred);
}

char *avemo_prediction_json(const struct avemo_prediction *pred, const char *file)
{
    cJSON *o = cJSON_CreateObject();
    add_prediction_fields(o, pred, file);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

char *avemo_window_json(const struct avemo_prediction *pred, const char *file, double start_s, double end_s)
{
    cJSON *o = cJSON_CreateObject();
    /* rounded to the millisecond, as the text output prints them */
    cJSON_AddNumberToObject(o, "start_s", round(start_s * 1e3) / 1e3);
    cJSON_AddNumberToObject(o, "end_s", round(end_s * 1e3) / 1e3);
    add_prediction_fields(o, pred, file);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* --- shipped models ------------------------------------------------------------------ */

enum avemo_status avemo_default_model(enum avemo_mode mode, char *path, size_t size, struct avemo_error *err)
{
    if ((int)mode < 0 || mode > AVEMO_MODE_FACE) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "unknown mode %d", (int)mode);
    char data[4096] = "";
    const char *env = getenv("AVEMO_MODEL_DIR");
    if (env && env[0] && eval_model_in(env, eval_shipped_model[mode], path, size)) return AVEMO_OK;
    int have_data = avemo_data_dir(data, sizeof data, NULL) == AVEMO_OK;
    if (have_data && strlen(data) + 8 < sizeof data) strcat(data, "/models");
    if (have_data && eval_model_in(data, eval_shipped_model[mode], path, size)) return AVEMO_OK;
    return avemo_fail(err, AVEMO_ERR_NOT_FOUND, "no shipped %s model (%s) in %s%s%s", avemo_mode_name(mode),
                      eval_shipped_model[mode], env && env[0] ? "$AVEMO_MODEL_DIR or " : "",
                      have_data ? data : "avemo's data folder", have_data ? "" : " (not found: set AVEMO_DATA_DIR)");
}

/* --- windows over a long recording ----------------------------------------------------- */

/* A recording is followed as it is decoded (avemo_media_stream_audio): the sound passes through
 * a buffer that holds one window and the block being added, so a recording may run for hours
 * (CLF_WINDOW_MAX_S) while memory stays one window.  The decode-time cap keeps the pace the
 * classifier's limits ask of a whole clip (max_decode_s per max_duration_s of sound). */
#define CLF_WINDOW_MAX_S (12 * 3600.0)
#define CLF_WINDOW_MAX_FILE_BYTES ((int64_t)8 << 30)

struct window_walk {
    avemo_classify_ctx *ctx;
    struct request *r;
    int mi;
    size_t rate, win, hop;
    size_t at;               /* the next window's first sample, counted from the start */
    size_t base, count, cap; /* buf holds samples [base, base + count) */
    size_t received;         /* samples decoded so far */
    float *buf;
    double since;            /* avemo_now() when the last window was answered (or the start) */
    avemo_window_fn on_window;
    void *user;
    int stopped;
};

/* Answer the window of n samples at w->at, which buf holds. */
static enum avemo_status window_answer(struct window_walk *w, size_t n, struct avemo_error *err)
{
    const avemo_classifier *clf = w->ctx->clf;
    const struct avemo_model *m = &clf->models[w->mi];
    struct avemo_prediction pred;
    memset(&pred, 0, sizeof pred);
    pred.mode_requested = pred.mode_used = AVEMO_MODE_AUDIO;
    double tw = avemo_now();
    pred.t_decode_s = tw - w->since; /* decoding since the last window: what this one waited for */
    w->r->audio = (struct avemo_audio){w->buf + (w->at - w->base), n, (int)w->rate}; /* a view, not a copy */
    pred.audio_heard = 1;
    pred.audio_level_db = avemo_audio_level_db(w->r->audio.samples, n, (int)w->rate);
    /* a pause is a silent window, not an emotion (see mind_silence) */
    pred.silent = pred.audio_level_db < AVEMO_AUDIO_SILENT_DB;
    enum avemo_status st = AVEMO_OK;
    if (pred.silent) {
        snprintf(pred.model, sizeof pred.model, "%s", m->name);
        pred.audio_s = (double)n / (double)w->rate;
    } else {
        st = run_model(w->ctx, w->r, w->mi, &pred, err);
    }
    w->r->audio = (struct avemo_audio){0};
    pred.t_total_s = avemo_now() - tw + pred.t_decode_s;
    if (!st && !pred.silent) mark_uncertain(clf, m, &pred);
    if (!st && w->on_window(w->user, (double)w->at / (double)w->rate, (double)(w->at + n) / (double)w->rate, &pred))
        w->stopped = 1;
    w->since = avemo_now();
    return st;
}

/* The next window starts one hop later: what lies before it leaves the buffer. */
static void window_advance(struct window_walk *w)
{
    w->at += w->hop;
    size_t drop = w->at - w->base < w->count ? w->at - w->base : w->count;
    memmove(w->buf, w->buf + drop, sizeof(float) * (w->count - drop));
    w->base += drop;
    w->count -= drop;
}

/* avemo_audio_sink: keep the samples from the next window's start on, answer every window
 * they complete. */
static enum avemo_status window_take(void *user, const float *samples, size_t n, int *stop, struct avemo_error *err)
{
    struct window_walk *w = user;
    size_t first = w->received;
    w->received += n;
    size_t skip = w->at > first ? (w->at - first < n ? w->at - first : n) : 0; /* before the next window */
    if (w->count == 0) w->base = first + skip;
    if (w->count + (n - skip) > w->cap) {
        size_t cap = w->win + n; /* one window and this block: the most it holds */
        float *bigger = realloc(w->buf, sizeof(float) * cap);
        if (!bigger) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory for a %zu-sample window", w->r->name, cap);
        w->buf = bigger;
        w->cap = cap;
    }
    memcpy(w->buf + w->count, samples + skip, sizeof(float) * (n - skip));
    w->count += n - skip;
    enum avemo_status st = AVEMO_OK;
    while (!st && !w->stopped && w->base + w->count >= w->at + w->win) {
        st = window_answer(w, w->win, err);
        window_advance(w);
    }
    *stop = w->stopped;
    return st;
}

/* At the end of the sound: the last windows, shorter, down to half a window. */
static enum avemo_status window_finish(struct window_walk *w, struct avemo_error *err)
{
    enum avemo_status st = AVEMO_OK;
    while (!st && !w->stopped && (w->at == 0 || w->at + w->win / 2 <= w->received)) {
        /* the buffer runs to the last sample decoded, and the next window starts inside it */
        assert(w->base + w->count == w->received && w->at >= w->base && w->at < w->received);
        size_t n = w->received - w->at < w->win ? w->received - w->at : w->win;
        st = window_answer(w, n, err);
        window_advance(w);
    }
    return st;
}

/* The classifier's limits for a recording followed in windows: hours instead of minutes. */
static struct avemo_media_limits window_limits(const avemo_classifier *clf)
{
    struct avemo_media_limits lim = clf->limits;
    double pace = lim.max_duration_s > 0 ? lim.max_decode_s / lim.max_duration_s : 0;
    lim.max_duration_s = CLF_WINDOW_MAX_S;
    if (pace > 0) lim.max_decode_s = pace * CLF_WINDOW_MAX_S;
    if (lim.max_file_bytes < CLF_WINDOW_MAX_FILE_BYTES) lim.max_file_bytes = CLF_WINDOW_MAX_FILE_BYTES;
    return lim;
}

enum avemo_status avemo_classify_windows(avemo_classify_ctx *ctx, const char *path, double window_s, double hop_s,
                                         avemo_window_fn on_window, void *user, struct avemo_error *err)
{
    const avemo_classifier *clf = ctx->clf;
    int mi = clf->slot[AVEMO_MODE_AUDIO];
    if (mi < 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: --window needs an audio model (%s is %s)", path,
                          clf->models[0].name, avemo_mode_name((enum avemo_mode)clf->models[0].p.mode));
    if (!(window_s >= 0.1 && window_s <= 600) || !(hop_s >= 0.05 && hop_s <= 600))
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: window %.3g s and hop %.3g s must be within 0.1..600 s", path,
                          window_s, hop_s);
    const struct avemo_model *m = &clf->models[mi];
    struct request r = {.name = path};
    struct avemo_media_limits lim = window_limits(clf);
    size_t rate = (size_t)m->p.audio.sample_rate;
    struct window_walk w = {.ctx = ctx, .r = &r, .mi = mi, .rate = rate, .win = (size_t)(window_s * (double)rate),
                            .hop = (size_t)(hop_s * (double)rate), .on_window = on_window, .user = user,
                            .since = avemo_now()};
    enum avemo_status st = avemo_media_open_file(path, &(struct avemo_media_open_options){.limits = &lim}, &r.media, err);
    if (!st) st = avemo_media_stream_audio(r.media, (int)rate, window_take, &w, err);
    if (!st) st = window_finish(&w, err);
    free(w.buf);
    request_free(&r);
    avemo_media_close(r.media);
    return st;
}
