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
    /* How an av answer is made when the main model is av and the audio and face models are
     * there too: AUTO follows the av model file ("fusion.late" selected: late fusion, else its
     * learned head), HEAD its network, LATE late fusion with its stored weights (1, 1 without). */
    enum avemo_fusion { AVEMO_FUSION_AUTO = 0, AVEMO_FUSION_HEAD, AVEMO_FUSION_LATE } fusion;
    /* An answer whose top probability is below this is "uncertain": 0 = the answering model's
     * stored calib.uncertain_below, else AVEMO_UNCERTAIN_DEFAULT; negative = never uncertain. */
    float uncertain_below;
    /* Without extra_models, the companions are found: for each mode the main model cannot serve,
     * the shipped unimodal model (avemo-audio.avm, avemo-face.avm) beside the main model, else the
     * shipped one (avemo_default_model), when it has the main model's classes.  1: none. */
    int no_companions;
    /* 1: a clip decodes on a second thread while this one searches the frames already out for
     * faces and runs the face model on each crop: one answer's latency on two cores, for the same
     * CPU time give or take the thread.  A server whose requests already keep the cores busy
     * gains nothing from it; 0 (the default) does all in the calling thread. */
    int overlap;
};

typedef struct avemo_classifier avemo_classifier;
typedef struct avemo_classify_ctx avemo_classify_ctx;

/* Load a model file (.avm).  Its pipeline says which modes it supports; the extra models or,
 * without them, the companions found beside it or shipped serve the others (opt may be NULL). */
enum avemo_status avemo_classifier_open(const char *model_path, const struct avemo_classifier_options *opt,
                                        avemo_classifier **out, struct avemo_error *err);
void avemo_classifier_close(avemo_classifier *clf);
/* The main model's name (file name without directory and .avm), labels and modes
 * (a mode is supported when the main model or an extra model serves it). */
const char *avemo_classifier_name(const avemo_classifier *clf);
int avemo_classifier_num_classes(const avemo_classifier *clf);
const char *avemo_classifier_label(const avemo_classifier *clf, int k);
int avemo_classifier_supports(const avemo_classifier *clf, enum avemo_mode mode);
/* 1 when av answers come from late fusion (options and the av model decide), with its weights and
 * priors (f may be NULL; f->prior points into clf, or is NULL when the av model stores none). */
int avemo_classifier_late_fusion(const avemo_classifier *clf, struct avemo_late_fusion *f);
enum avemo_mode avemo_classifier_default_mode(const avemo_classifier *clf);

/* Where the shipped model for a mode is: $AVEMO_MODEL_DIR, then the models/ of avemo's data
 * folder (avemo_data_dir: <prefix>/share/avemo/models of the install prefix, or the build
 * tree's).  AVEMO_ERR_NOT_FOUND when none exists. */
enum avemo_status avemo_default_model(enum avemo_mode mode, char *path, size_t size, struct avemo_error *err);

/* Per-thread workspace over a shared classifier. */
enum avemo_status avemo_classify_ctx_new(const avemo_classifier *clf, avemo_classify_ctx **out,
                                         struct avemo_error *err);
void avemo_classify_ctx_free(avemo_classify_ctx *ctx);
/* This context's overlap (avemo_classifier_options.overlap), apart from its classifier's: e.g.
 * on for a request that has the machine to itself, off while others keep the cores busy.
 * Returns the value it had. */
int avemo_classify_ctx_set_overlap(avemo_classify_ctx *ctx, int overlap);

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
    int late_fusion;                    /* 1: av by late fusion of the audio and face models */
    int uncertain;                      /* 1: confidence below the threshold: show the top two */
    int second;                         /* index of the second most probable class */
    float uncertain_below;              /* the threshold applied */
    int face_found;                     /* a face was found in at least one frame (face/av) */
    int frames_used;                    /* frames whose face went into the network */
    int frames_sampled;
    int faces_in_frame_max;             /* the most faces found in one frame searched whole (2+: a group) */
    double audio_s;                     /* duration of the audio given */
    double audio_heard_s;               /* of it, how much the network's input holds (at most its frames) */
    char note[320];                     /* what the answer is about when it is not the whole input; "" */
    int audio_heard;                    /* 1: the sound was decoded and its level measured */
    double audio_level_db;              /* its level (avemo_audio_level_db), when audio_heard */
    int silent;                         /* 1: a window below AVEMO_AUDIO_SILENT_DB: no answer, no label */
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
 * on_window is called for each window in order with its start and end time, as soon as the
 * sound is decoded that far; a non-zero return stops early.  The model must serve the audio
 * mode.  The recording may last 12 hours (the classifier's duration limit is for whole clips):
 * it is streamed (avemo_media_stream_audio) and one window is held at a time. */
typedef int (*avemo_window_fn)(void *user, double start_s, double end_s, const struct avemo_prediction *pred);
enum avemo_status avemo_classify_windows(avemo_classify_ctx *ctx, const char *path, double window_s, double hop_s,
                                         avemo_window_fn on_window, void *user, struct avemo_error *err);

/* The prediction as the JSON object `avemo classify --json` prints (malloc'ed text);
 * `file` may be NULL. */
char *avemo_prediction_json(const struct avemo_prediction *pred, const char *file);
/* One window of avemo_classify_windows as `classify --window --json` prints it: start_s and end_s
 * (seconds, to the millisecond) followed by the prediction's fields (malloc'ed text). */
char *avemo_window_json(const struct avemo_prediction *pred, const char *file, double start_s, double end_s);

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
    /* NULL, or evaluate only the units of this shard's block of the items (avemo_eval_shard):
     * the label-matched partners are still those of the whole item list. */
    const struct avemo_shard *shard;
    /* The split's part evaluated: its test part (default), or its validation part (what
     * `avemo calibrate` fits on); a part other than test needs split_path. */
    enum avemo_eval_part { AVEMO_EVAL_TEST = 0, AVEMO_EVAL_VALIDATION, AVEMO_EVAL_TRAIN } part;
};

/* What one model predicted for the evaluation units. */
struct avemo_eval_result {
    char model[64];
    int mode;                  /* of the model: 0 av, 1 audio, 2 face */
    struct avemo_metrics metrics;
    int *pred;                 /* per unit */
    float *probs;              /* per unit: num_classes probabilities (the model's temperature applied) */
    float *logits;             /* raw logits, logit_rows x n x num_classes (rows: 2 with the mirror test) */
    int logit_rows;
    float w_audio, w_face;     /* a late-fusion result (avemo_eval_add_late_fusion): its weights, else 0 */
    int has_prior;             /* ... and the priors it divided out (audio's k, then face's k) */
    float prior[2 * AVEMO_MAX_CLASSES];
};

/* The units are the test items with sound (each paired with its own face, or a face image
 * of the same label: "label-matched pairs"), or the face items when the data has no sound;
 * every model is evaluated on the same units, taking the input(s) its mode needs.
 * truth (malloc'ed, n units), paths (malloc'ed array of pointers into an internal copy: free
 * with avemo_eval_free). */
#define AVEMO_EVAL_MAX_SOURCES 32

struct avemo_eval_set {
    size_t n;
    int *truth;
    char **paths;
    size_t skipped;            /* items that failed or lack what a model needs */
    int num_classes;
    char labels[AVEMO_MAX_CLASSES][8];
    struct avemo_eval_result *results;
    int nresults;
    /* Where each unit came from, for per-corpus reports (cross-corpus evaluation). */
    int *source;               /* per unit: index of the --data (opt->data) it came from */
    int nsources;              /* = opt->ndata */
    char source_path[AVEMO_EVAL_MAX_SOURCES][256];  /* each --data as given */
    char source_corpus[AVEMO_EVAL_MAX_SOURCES][16]; /* the corpus its files are named after */
    char **failures;           /* "path: cause" of each test file that could not be read */
    size_t nfailures;
    char dropped[256];         /* items left out by the label map, per code: "45 BOR, 39 CON" */
    /* Test items left out because a model was trained or validated on them (the file's SHA-256
     * is in the model's training record, nn.h), and the models without a record, which could
     * not be checked ("a.avm, b.avm"; "" when every model has one). */
    size_t trained_on;
    char unchecked[256];
    /* Test items kept that have the name of a training file (extension aside) but other bytes:
     * perhaps the same recording encoded anew, which the content cannot show. */
    size_t same_name;
};
enum avemo_status avemo_evaluate(const char *const *model_paths, int nmodels, const struct avemo_eval_options *opt,
                                 struct avemo_eval_set *set, struct avemo_error *err);
void avemo_eval_free(struct avemo_eval_set *set);
/* The metrics of result r over the units of one --data (m->n = 0 when it gave none). */
enum avemo_status avemo_eval_source_metrics(const struct avemo_eval_set *set, int r, int source,
                                            struct avemo_metrics *m, struct avemo_error *err);
/* `avemo eval --json` of result r: avemo_metrics_json's object plus "skipped", "skipped_files"
 * (each "path: cause"), "dropped_labels", "left_out_trained", "kept_same_name",
 * "no_training_record" (model names), "training_record" (avemo_eval_record_note) and "per_data"
 * (one metrics object per --data, with "data" and "corpus"); malloc'ed. */
char *avemo_eval_set_json(const struct avemo_eval_set *set, int r);
/* The text report of result r: the whole, labels left out, a table per --data when there
 * are several, the skipped files by name; malloc'ed. */
char *avemo_eval_set_report(const struct avemo_eval_set *set, int r);
/* One line on the training records: how many test items were left out, or that none was a
 * training file, and which models had no record to check (no newline). */
void avemo_eval_record_note(const struct avemo_eval_set *set, char *buf, size_t size);

/* ---- calibration of evaluated results (src/eval/eval_calib.c) ---- */
#define AVEMO_EVAL_ECE_BINS 15 /* equal-width confidence bins of the ECE that eval reports */
/* The reliability (ECE, per-bin accuracy and confidence, NLL) of result r's probabilities. */
enum avemo_status avemo_eval_reliability(const struct avemo_eval_set *set, int r, int bins, struct avemo_reliability *rel,
                                         struct avemo_error *err);
/* Append a result: late fusion (avemo_fuse_late) of an audio model's result and a face model's
 * result on the same units, with these weights; its model name is "late(AUDIO,FACE)". */
enum avemo_status avemo_eval_add_late_fusion(struct avemo_eval_set *set, int r_audio, int r_face,
                                             const struct avemo_late_fusion *fusion, struct avemo_error *err);

/* ---- many files in shards (src/eval/classify_batch.c): `avemo classify` ----
 * One line per item of the shard (see avemo_shard_run in core.h): format's text, or the
 * JSON of avemo_prediction_json() when format is NULL.  A file that cannot be classified
 * is reported to on_error (may be NULL) and counted in *failed; it gets the line of
 * format_error, or without format_error, in an output file only, the line
 * {"file":...,"error":{"code":...,"message":...}} (avemo_item_error_json), so that a restarted
 * shard knows it was done.  Items already in out_path (a restart) are skipped. */
typedef char *(*avemo_prediction_format_fn)(void *user, const struct avemo_prediction *pred, const char *file);
typedef void (*avemo_item_error_fn)(void *user, const char *file, const struct avemo_error *err);
typedef char *(*avemo_item_error_format_fn)(void *user, const char *file, const struct avemo_error *err);
struct avemo_classify_batch {
    const char *const *items;
    size_t n;
    struct avemo_shard shard;
    enum avemo_mode mode;
    const char *out_path;                /* NULL: stdout */
    const char *header;                  /* first line of a CSV out_path, or NULL */
    avemo_prediction_format_fn format;   /* NULL: JSON */
    avemo_item_error_format_fn format_error; /* a failed file's line (malloc'ed); NULL: as above */
    avemo_item_error_fn on_error;
    void *user;
    /* Files classified at once, each by its own thread and context (the lines stay in order):
     * 0 = one per CPU the process may use (at most 8), 1 = one at a time (then a file decodes
     * on a second thread if the classifier's option overlap says so). */
    int workers;
};
enum avemo_status avemo_classify_batch(avemo_classify_ctx *ctx, const struct avemo_classify_batch *batch,
                                       struct avemo_shard_stats *stats, size_t *failed, struct avemo_error *err);

/* ---- evaluation in shards (src/eval/eval_shard.c): `avemo eval --shard I/N --out DIR` ----
 * The data's items (in the order --data lists them) are split into N blocks; shard I
 * evaluates the units of its block and writes DIR/eval-IIIII-of-NNNNN.jsonl: a first line
 * {"model":...,"labels":[...],"skipped":N,"skipped_files":[...],"dropped_labels":"...",
 *  "left_out_trained":N,"kept_same_name":N,"no_training_record":"...",
 *  "data":[{"data":...,"corpus":...}]} and one line per unit
 * {"file":...,"truth":"ANG","pred":"HAP","data":I} (I: the index of its --data)
 * (written whole, then renamed: a restarted shard whose file is there is done).
 * avemo_eval_merge() computes the metrics of all the shards' units: those of the one-process
 * `avemo eval`, label-matched pairs included (the partners are drawn over the whole item list,
 * avemo_pair_items, and read by the shard that needs them).  A killed shard is redone. */
enum avemo_status avemo_eval_shard(const char *model_path, const struct avemo_eval_options *opt,
                                   const struct avemo_shard *shard, const char *out_dir, int *already_done,
                                   struct avemo_error *err);
/* The merged set has one result (the shards' model) with no unit paths: avemo_eval_set_json gives
 * what one-process `avemo eval --json` prints (per_data, skipped and dropped labels included).
 * Free it with avemo_eval_free. */
enum avemo_status avemo_eval_merge(const char *const *inputs, int n, struct avemo_eval_set *set,
                                   struct avemo_error *err);

/* ---- explanations (src/eval/explain.c): `avemo explain`, /v1/predict?explain=1 ----
 * A file is classified as avemo_classify_file does, then the model that answered is explained:
 * Grad-CAM maps of the predicted class over each face crop that went into the network and over
 * the audio features (model.h: the score is the class's logit summed over the crops, so the
 * audio map, shared by every crop, answers for the decision of the whole clip), and each
 * modality's share of the decision (avemo_modality_shares: branches occluded with zeros).
 * A unimodal model (or a fallback to one) gives its modality the share 1 and the other 0.
 * With face.mirror_test the classification averages each crop with its mirror image; the
 * explanation is of the crops as they are.
 * Needs a training context of the network for the one backward: about 50 MB more for 8 frames. */
#define AVEMO_EXPLAIN_MAX_FACES 32  /* face crops of one file (the frames searched are at most 32) */
struct avemo_explanation {
    struct avemo_prediction pred;  /* what was explained: its label is the class of the maps */
    int nfaces;                    /* face crops (maps), 0 without a face model */
    int face_size, face_channels;
    float *face_images;            /* nfaces x channels x size x size, the crops in [0, 1] */
    float *face_heat;              /* nfaces x size x size in [0, 1], each map divided by its maximum */
    char face_layer[32];           /* the layer explained, e.g. "face.10" */
    int has_audio;
    int audio_rows, audio_frames;  /* the features: rows (MFCC coefficients or mel bands) x frames */
    char audio_feature[16];        /* "mfcc", "logmel", ... */
    float *audio_image;            /* rows x frames, the normalised features the network took */
    float *audio_heat;             /* rows x frames in [0, 1] */
    char audio_layer[32];
    float audio_share, face_share; /* sum to 1 */
    float audio_contribution, face_contribution; /* Shapley values of the probability */
    float prob_all, prob_none;     /* the class's probability with both branches, with none */
    char audio_model[64], face_model[64]; /* the model each map comes from: the one that answered,
                                           * or under late fusion (pred.late_fusion) the audio model
                                           * and the face model, the shares then being those of the
                                           * two models in the fused probability */
};
enum avemo_status avemo_explain_file(avemo_classify_ctx *ctx, const char *path, enum avemo_mode mode,
                                     struct avemo_explanation *ex, struct avemo_error *err);
enum avemo_status avemo_explain_memory(avemo_classify_ctx *ctx, const void *data, size_t size, const char *name,
                                       enum avemo_mode mode, struct avemo_explanation *ex, struct avemo_error *err);
void avemo_explanation_free(struct avemo_explanation *ex);
/* Face crop i's / the audio's heat map, to draw (avemo_heatmap_png); the audio is drawn with
 * low rows at the bottom. */
void avemo_explanation_face_map(const struct avemo_explanation *ex, int i, struct avemo_heatmap *map);
void avemo_explanation_audio_map(const struct avemo_explanation *ex, struct avemo_heatmap *map);
/* The JSON of `avemo explain --json`: avemo_prediction_json's object plus "explanation":
 * {"class", "score", "occlusion" ("zero": a branch left out is zeros; "model": late fusion, a
 *  model left out is uniform), "probability_all", "probability_none",
 *  "modalities": {"audio": {"share", "contribution"}, "face": {...}},
 *  "audio": {"model", "layer", "feature", "rows", "frames", "heatmap"} or null,
 *  "faces": [{"model", "layer", "size", "heatmap"}, ...]}
 * where each "heatmap" is the caller's string for that map (a file path or a data: URL; null
 * when NULL).  face_maps has nfaces entries or is NULL.  malloc'ed. */
char *avemo_explanation_json(const struct avemo_explanation *ex, const char *file, const char *const *face_maps,
                             const char *audio_map);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_EVAL_H */
