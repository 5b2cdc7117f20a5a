/*
 * avemo eval: classify a clip, an audio file or a face image with a trained
 * model, and measure models on labelled data (accuracy, unweighted accuracy,
 * per-class precision/recall/F1, confusion matrix, McNemar, bootstrap).
 *
 * A struct avemo_classifier is loaded once and is read-only afterwards: any
 * number of threads may share it, each with its own struct avemo_classify_ctx.
 */
#ifndef AVEMO_EVAL_H
#define AVEMO_EVAL_H

#include <avemo/core.h>
#include <avemo/media.h>
#include <avemo/model.h>

#ifdef __cplusplus
extern "C" {
#endif

struct avemo_classifier_options {
    const char *cascade_path;      /* NULL: the pipeline's or /usr/share/opencv4/... default */
    int frames;                    /* video frames sampled for faces (0: the pipeline's, default 8) */
    const struct avemo_media_limits *limits; /* NULL: defaults */
    /* Unimodal models used when the main model cannot serve a mode: `--mode audio` with an
     * audio-visual model, or the fallback of av on a clip without a face or without sound. */
    const char *const *extra_models;
    int n_extra_models;
};

typedef struct avemo_classifier avemo_classifier;
typedef struct avemo_classify_ctx avemo_classify_ctx;

/* Load a model file (.avm).  Its pipeline says which modes it supports. */
enum avemo_status avemo_classifier_open(const char *model_path, const struct avemo_classifier_options *opt,
                                        avemo_classifier **out, struct avemo_error *err);
void avemo_classifier_close(avemo_classifier *clf);
/* The main model's name (file name without directory and .avm), labels and modes
 * (a mode is supported when the main model or an extra model serves it). */
const char *avemo_classifier_name(const avemo_classifier *clf);
int avemo_classifier_num_classes(const avemo_classifier *clf);
const char *avemo_classifier_label(const avemo_classifier *clf, int k);
int avemo_classifier_supports(const avemo_classifier *clf, enum avemo_mode mode);
enum avemo_mode avemo_classifier_default_mode(const avemo_classifier *clf);

/* Where the shipped model for a mode is: $AVEMO_MODEL_DIR, the source tree's models/,
 * then the install prefix's share/avemo/models.  AVEMO_ERR_NOT_FOUND when none exists. */
enum avemo_status avemo_default_model(enum avemo_mode mode, char *path, size_t size, struct avemo_error *err);

/* Per-thread workspace over a shared classifier. */
enum avemo_status avemo_classify_ctx_new(const avemo_classifier *clf, avemo_classify_ctx **out,
                                         struct avemo_error *err);
void avemo_classify_ctx_free(avemo_classify_ctx *ctx);

struct avemo_prediction {
    char model[64];                     /* name of the model that answered */
    int label;                          /* index of the most probable class */
    float confidence;                   /* its probability */
    int num_classes;
    float probs[AVEMO_MAX_CLASSES];
    char labels[AVEMO_MAX_CLASSES][8];  /* class codes, e.g. "ANG" */
    enum avemo_mode mode_requested;
    enum avemo_mode mode_used;          /* differs when av fell back to one modality */
    char fallback_reason[160];          /* why, when it fell back; "" otherwise */
    int face_found;                     /* a face was found in at least one frame (face/av) */
    int frames_used;                    /* frames whose face went into the network */
    int frames_sampled;
    double audio_s;                     /* duration of the audio used */
    double t_decode_s, t_features_s, t_faces_s, t_network_s, t_total_s;
    /* The face crop of the middle frame used (64x64 RGB), for the web page; valid when face_found. */
    uint8_t face_rgb[64 * 64 * 3];
};

/* Classify a file, or memory (an upload: `name` is used in messages). */
enum avemo_status avemo_classify_file(avemo_classify_ctx *ctx, const char *path, enum avemo_mode mode,
                                      struct avemo_prediction *pred, struct avemo_error *err);
enum avemo_status avemo_classify_memory(avemo_classify_ctx *ctx, const void *data, size_t size, const char *name,
                                        enum avemo_mode mode, struct avemo_prediction *pred,
                                        struct avemo_error *err);

/* Follow a long recording over time (audio mode): one prediction per window of window_s
 * seconds, every hop_s seconds (the last window may be shorter, but at least half a window).
 * on_window is called for each window in order with its start and end time; a non-zero
 * return stops early.  The model must serve the audio mode. */
typedef int (*avemo_window_fn)(void *user, double start_s, double end_s, const struct avemo_prediction *pred);
enum avemo_status avemo_classify_windows(avemo_classify_ctx *ctx, const char *path, double window_s, double hop_s,
                                         avemo_window_fn on_window, void *user, struct avemo_error *err);

/* The prediction as the JSON object `avemo classify --json` prints (malloc'ed text);
 * `file` may be NULL. */
char *avemo_prediction_json(const struct avemo_prediction *pred, const char *file);

/* ---- evaluating models on labelled data ---- */

struct avemo_eval_options {
    const char *const *data;   /* folders or manifests */
    int ndata;
    const char *split_path;    /* evaluate the test part of this split file; NULL: every item */
    const char *cache_path;    /* feature cache (NULL: none) */
    int threads;               /* feature extraction threads (0: all cores) */
    int progress;
    uint64_t seed;             /* choice of label-matched face partners */
    /* SEC.KEY=VALUE changes to each model's stored pipeline for this evaluation, e.g.
     * "face.mirror_test=yes" or "face.frames=16" (the network itself cannot change). */
    const char *const *overrides;
    int noverrides;
};

/* What one model predicted for the evaluation units. */
struct avemo_eval_result {
    char model[64];
    int mode;                  /* of the model: 0 av, 1 audio, 2 face */
    struct avemo_metrics metrics;
    int *pred;                 /* per unit */
};

/* The units are the test items with sound (each paired with its own face, or a face image
 * of the same label: "label-matched pairs"), or the face items when the data has no sound;
 * every model is evaluated on the same units, taking the input(s) its mode needs.
 * truth (malloc'ed, n units), paths (malloc'ed array of pointers into an internal copy: free
 * with avemo_eval_free). */
struct avemo_eval_set {
    size_t n;
    int *truth;
    char **paths;
    size_t skipped;            /* items that failed or lack what a model needs */
    int num_classes;
    char labels[AVEMO_MAX_CLASSES][8];
    struct avemo_eval_result *results;
    int nresults;
};
enum avemo_status avemo_evaluate(const char *const *model_paths, int nmodels, const struct avemo_eval_options *opt,
                                 struct avemo_eval_set *set, struct avemo_error *err);
void avemo_eval_free(struct avemo_eval_set *set);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_EVAL_H */
