/*
 * avemo model: a trained model as the rest of the system sees it.
 *
 * A model file (.avm, format in src/nn/model_file.c) holds a network and the
 * pipeline text it was trained with.  This module turns that into something a
 * program can use: the pipeline as a typed structure, the network's inputs
 * checked against it, face crops turned into network tensors, and predictions
 * (class probabilities, optionally averaged with the mirror image of the faces).
 * It also holds what both training and evaluation report with: metrics and plots.
 *
 *   avemo_model_open()           load a .avm, parse and check its pipeline
 *   avemo_model_face_input()     a face crop (HWC bytes) -> CHW floats in [0, 1]
 *   avemo_model_predict_probs()  probabilities of a forward pass (with mirroring)
 *   avemo_model_close()
 *
 * classify, serve, eval and train depend on this module; it depends on core,
 * audio, vision and nn only.
 */
#ifndef AVEMO_MODEL_H
#define AVEMO_MODEL_H

#include <avemo/audio.h>
#include <avemo/core.h>
#include <avemo/nn.h>
#include <avemo/vision.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- modes: which inputs a model takes ---- */
enum avemo_mode { AVEMO_MODE_AV = 0, AVEMO_MODE_AUDIO = 1, AVEMO_MODE_FACE = 2, AVEMO_MODE_COUNT = 3 };
/* The one table of mode names, indexed by enum avemo_mode, NULL-terminated. */
extern const char *const avemo_mode_names[AVEMO_MODE_COUNT + 1];
const char *avemo_mode_name(enum avemo_mode mode);                 /* "av", "audio", "face" */
enum avemo_status avemo_mode_parse(const char *text, enum avemo_mode *mode, struct avemo_error *err);

/* ---- labels: canonical codes mapped onto the classes of a model ---- */
#define AVEMO_LABEL_MAX 8      /* bytes of a code, with its NUL */
#define AVEMO_LABEL_MAP_MAX 16 /* map and drop entries */

struct avemo_label_map {
    int num_classes;
    char classes[AVEMO_MAX_CLASSES][AVEMO_LABEL_MAX];
    int num_map;
    char map_from[AVEMO_LABEL_MAP_MAX][AVEMO_LABEL_MAX], map_to[AVEMO_LABEL_MAP_MAX][AVEMO_LABEL_MAX];
    int num_drop;
    char drop[AVEMO_LABEL_MAP_MAX][AVEMO_LABEL_MAX];
};

/* The six CREMA-D classes, calm merged into NEU, surprise dropped. */
void avemo_label_map_default(struct avemo_label_map *map);
/* Read [labels] from a pipeline text (defaults for absent keys). */
enum avemo_status avemo_label_map_from_ini(const char *ini_text, const char *name, struct avemo_label_map *map,
                                           struct avemo_error *err);
enum avemo_status avemo_label_map_from_cfg(const avemo_cfg *cfg, struct avemo_label_map *map, struct avemo_error *err);
/* Class index of a canonical code: >= 0 a class, -1 dropped, -2 unknown. */
int avemo_label_map_apply(const struct avemo_label_map *map, const char *code);

/* How [train] split divides a dataset (the split itself is made by the train module). */
enum avemo_split_kind {
    AVEMO_SPLIT_GROUPS = 0,  /* actor-independent: groups assigned to train/val/test */
    AVEMO_SPLIT_RANDOM,      /* stratified random 70:15:15 (same actors in train and test: warns) */
    AVEMO_SPLIT_FOLDERS,     /* the corpus' own train/validation/test folders */
    AVEMO_SPLIT_ALL,         /* every item trains (tiny corpora, final models after cross-validation) */
};

/* ---- pipelines: one INI file per recipe ----
 *   [pipeline] name, mode = av|audio|face
 *   [audio]    feature parameters (see avemo_audio_params_from_ini)
 *   [face]     size, channels, frames, cascade, scale_factor, min_neighbors, min_size, margin, track,
 *              mirror_test
 *   [labels]   classes, map, drop
 *   [network], [branch.*], [head]   the network (docs/nn.md)
 *   [train]    epochs batch lr optimizer weight_decay clip_norm patience plateau_patience
 *              plateau_factor min_lr class_weights label_smoothing seed split folds fold dropout
 *              bn_recalibrate swa_start validation distill
 *   [augment]  noise_snr_db gain_db dither shift speed time_mask freq_mask masks
 *              flip face_shift face_scale face_rotate brightness contrast
 */
struct avemo_face_spec {
    int size;                 /* crop side (64) */
    int channels;             /* 1 gray, 3 RGB */
    int frames;               /* frames sampled per clip (8) */
    char cascade[512];        /* cascade XML path */
    struct avemo_detect_params detect;
    double margin;            /* border around the detector's box, fraction of its side (may be < 0) */
    double offset_y;          /* crop centre moved down by this fraction of the box side */
    int equalize;             /* 1: histogram-equalise every crop (training and inference) */
    int track;
    int mirror_test;          /* 1: predictions average each face and its mirror image (eval, classify) */
};

struct avemo_train_config {
    int epochs;               /* maximum (100) */
    int batch;                /* 32 */
    float lr;                 /* 1e-3 */
    int optimizer;            /* enum avemo_optim_kind */
    float weight_decay, clip_norm;
    int patience;             /* early stopping on validation loss (10) */
    int plateau_patience;     /* reduce lr after this many epochs without improvement (4) */
    float plateau_factor;     /* 0.5 */
    float min_lr;             /* 1e-5 */
    int class_weights;        /* 1: balanced (n / (k * count)) */
    float label_smoothing;
    uint64_t seed;
    enum avemo_split_kind split;
    int folds, fold;
    int validation;           /* 1: a validation part; 0: it trains too (fixed epochs, e.g. with SWA) */
    int dropout;              /* 1: dropout on while training */
    int bn_recalibrate;       /* 1: recompute batch-norm statistics with dropout off each epoch */
    int swa_start;            /* > 0: average the weights of this and every later epoch (SWA) */
    float distill;            /* with a teacher (avemo train --teacher): the weight of its probabilities
                                 in the loss, 0..1 (0.5) */
    int threads;              /* feature extraction and network threads (0: all cores; the
                                 network uses at most 8; results depend on it slightly) */
    int nrepeat;              /* entries in repeat (0: every corpus once) */
    int repeat[32];           /* training items of the k-th --data appear repeat[k] times an epoch,
                                 so a small corpus (CK+) is not drowned by a large one (FER2013) */
};

struct avemo_augment {
    float noise_snr_db;       /* > 0: add white noise at a random SNR of [snr, snr + 20] dB */
    float gain_db;            /* random gain in [-g, g] dB */
    float shift;              /* random circular time shift up to this fraction of the signal */
    float speed;              /* random speed (and pitch) change in [1 - s, 1 + s] */
    int time_mask, freq_mask; /* SpecAugment: mask widths (frames, bands) */
    int masks;                /* masks of each kind per sample */
    int flip;                 /* faces: random horizontal flip */
    float face_shift, face_scale; /* random crop jitter (fraction of the side) */
    float face_rotate;        /* random in-plane rotation of the crop in [-r, r] degrees */
    float brightness, contrast;   /* random brightness offset / contrast factor ranges */
    float mixup;              /* > 0: mix each batch with a shuffled copy of itself, weight ~ Beta(a, a) */
    float dither;             /* > 0: add uniform noise of +-dither 16-bit steps (1: +-1 LSB, what
                               * re-converting a recording adds), after gain and noise */
    float room;               /* > 0: this fraction of samples gets a synthetic room (reverberation
                               * 0.15-0.9 s, direct-to-reverberant -3..12 dB), before gain and noise */
    float codec;              /* > 0: this fraction of samples passes a lossy codec (MP3 24/48 kbit/s,
                               * Opus 8/16 kbit/s or GSM, through FFmpeg), after the noise */
};

struct avemo_pipeline {
    char name[64];
    int mode;                 /* enum avemo_mode */
    struct avemo_audio_params audio;
    struct avemo_face_spec face;
    struct avemo_label_map labels;
    struct avemo_train_config train;
    struct avemo_augment augment;
};

void avemo_pipeline_default(struct avemo_pipeline *p);
/* Parse every section but the network's (nn parses those); name is used in messages.
 * avemo_pipeline_parse reads the text into an avemo_cfg and calls avemo_pipeline_from_cfg. */
enum avemo_status avemo_pipeline_from_cfg(const avemo_cfg *cfg, struct avemo_pipeline *p, struct avemo_error *err);
enum avemo_status avemo_pipeline_parse(const char *ini_text, const char *name, struct avemo_pipeline *p,
                                       struct avemo_error *err);
/* Set one key as `section.key=value` (command-line overrides such as train.epochs=5). */
enum avemo_status avemo_pipeline_set(struct avemo_pipeline *p, const char *section, const char *key,
                                     const char *value, const char *name, struct avemo_error *err);
/* A copy of the pipeline text with SEC.KEY=VALUE overrides applied (malloc'ed in *out). */
enum avemo_status avemo_pipeline_override(const char *text, const char *const *overrides, int n, char **out,
                                          struct avemo_error *err);
/* Read a pipeline file, apply SEC.KEY=VALUE overrides and parse it.  *text (malloc'ed) is the
 * final pipeline text, stored in the model. */
enum avemo_status avemo_pipeline_load(const char *path, const char *const *overrides, int n, char **text,
                                      struct avemo_pipeline *p, struct avemo_error *err);

/* ---- a trained model ---- */
struct avemo_model {
    char name[64];               /* file name without directory and .avm */
    avemo_net *net;
    struct avemo_pipeline p;     /* the pipeline stored in the model (with overrides applied) */
    int audio_input, face_input; /* network input indices, -1 when unused */
    const float *mean, *std;     /* dataset normalisation of the audio features (norm = dataset), or NULL */
    int members;                 /* networks whose probabilities are averaged: 1, or an ensemble's */
    avemo_net *member[AVEMO_NN_MAX_MEMBERS]; /* member[0] is net; the others are built from its file */
};

/* Load a model file, apply SEC.KEY=VALUE overrides to its stored pipeline (they may change how
 * inputs are made, e.g. face.mirror_test, never the network), and check that the network's inputs
 * and classes match the pipeline.  On failure *m holds nothing to free. */
enum avemo_status avemo_model_open(const char *path, const char *const *overrides, int noverrides,
                                   struct avemo_model *m, struct avemo_error *err);
/* The same for a model that only runs (the classifier): without its training record
 * (avemo_net_load_inference). */
enum avemo_status avemo_model_open_inference(const char *path, const char *const *overrides, int noverrides,
                                             struct avemo_model *m, struct avemo_error *err);
void avemo_model_close(struct avemo_model *m);
/* Make every member network ready to run (avemo_net_prepare): for a model whose parameters no
 * longer change (classify, evaluate, a teacher).  The answers are the same bits. */
enum avemo_status avemo_model_prepare(struct avemo_model *m, struct avemo_error *err);
/* Save the network with the pipeline text it holds (avemo_net_save). */
enum avemo_status avemo_model_save(const avemo_net *net, const char *path, struct avemo_error *err);

/* An ensemble of the models in paths (n >= 2) written to out_path: the first model's file with
 * the others' parameters as its members (avemo_net_add_member).  Every model must have the same
 * network, labels, inputs (the [audio] and [face] settings that make them) and audio
 * normalisation; the first difference is AVEMO_ERR_MISMATCH naming the file.  The training
 * record is the union of theirs; a stored temperature is reset to 1 (fit the ensemble's own
 * with avemo calibrate).  *members receives the ensemble's size. */
enum avemo_status avemo_model_ensemble(const char *const *paths, int n, const char *out_path, int *members,
                                       struct avemo_error *err);
/* Member k (0..count-1) of the ensemble in in_path as a model file of its own at out_path: the
 * same pipeline, arrays and training record with member k's weights (avemo_net_keep_member);
 * the ensemble's temperature, fitted to the mean of its members, is reset to 1. */
enum avemo_status avemo_model_ensemble_member(const char *in_path, int k, const char *out_path,
                                              struct avemo_error *err);

/* NULL when pipelines a and b make their inputs the same way (mode, every [audio] setting, the
 * [face] settings that decide a crop: size, channels, cascade file name, detection, margin,
 * offset_y, equalize), else what differs, worded to follow "the" or "its": "mode is",
 * "[audio] settings are", "[face] settings are".  Frames, track and mirror_test may differ. */
const char *avemo_pipeline_inputs_differ(const struct avemo_pipeline *a, const struct avemo_pipeline *b);
/* Check that the network's inputs match the pipeline's features; fills the input indices. */
enum avemo_status avemo_model_check_inputs(const avemo_net *net, const struct avemo_pipeline *p, int *audio_input,
                                           int *face_input, struct avemo_error *err);
/* A size x size x channels crop (HWC bytes) to a CHW float input in [0, 1]. */
void avemo_model_face_input(const uint8_t *crop, int size, int channels, float *out);
/* Mirror n network face inputs (NCHW floats) left to right, in place. */
void avemo_model_face_mirror(float *faces, int n, int size, int channels);
/* Class probabilities (batch x classes) of a forward pass of every member (ctx: a context of
 * m->net); with mirror, each member's pass on the faces and on their mirror images (face_in is
 * mirrored and restored).  The probabilities are the mean over these passes of
 * softmax(logits / T).  shared_inputs as avemo_net_forward_shared. */
enum avemo_status avemo_model_predict_probs(const struct avemo_model *m, avemo_nn_ctx *ctx, const float *const *inputs,
                                            int batch, unsigned shared_inputs, float *face_in, int face_size,
                                            int face_channels, int mirror, float *probs, struct avemo_error *err);

/* ---- metrics ---- */

struct avemo_metrics {
    int num_classes;
    char labels[AVEMO_MAX_CLASSES][8];
    size_t n;
    size_t confusion[AVEMO_MAX_CLASSES][AVEMO_MAX_CLASSES]; /* [true][predicted] */
    double accuracy;
    double unweighted_accuracy;        /* mean of per-class recall (balanced accuracy) */
    double precision[AVEMO_MAX_CLASSES], recall[AVEMO_MAX_CLASSES], f1[AVEMO_MAX_CLASSES];
    size_t support[AVEMO_MAX_CLASSES];
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
};

/* Metrics of predictions against the truth (labels may be NULL: "0", "1", ...).
 * Entries outside 0..num_classes-1 are an error. */
enum avemo_status avemo_metrics_compute(const int *truth, const int *pred, size_t n, int num_classes,
                                        const char *const *labels, struct avemo_metrics *m, struct avemo_error *err);
/* `avemo eval --json`: accuracy, unweighted_accuracy, per_class, macro, weighted, confusion, n (malloc'ed). */
char *avemo_metrics_json(const struct avemo_metrics *m);
/* A classification report (precision, recall, F1, support per class; accuracy, macro
 * and weighted averages) and the confusion matrix, as text (malloc'ed). */
char *avemo_metrics_report(const struct avemo_metrics *m);

/* McNemar's exact test of two classifiers on the same items: the two-sided binomial
 * p-value of the discordant pairs.  *only_a / *only_b (may be NULL) receive how many
 * items only a / only b got right. */
double avemo_mcnemar(const int *truth, const int *pred_a, const int *pred_b, size_t n, size_t *only_a,
                     size_t *only_b);
/* Percentile bootstrap 95% interval of the accuracy (iterations resamples, seeded). */
void avemo_bootstrap_accuracy(const int *truth, const int *pred, size_t n, int iterations, uint64_t seed,
                              double *low, double *high);

/* ---- plots (PNG via cairo) ---- */
enum avemo_status avemo_plot_confusion(const struct avemo_metrics *m, const char *title, const char *png_path,
                                       struct avemo_error *err);
/* Curves of one or more series over epochs, e.g. train and validation loss. */
struct avemo_series {
    const char *name;
    const double *values;
    int count;
};
enum avemo_status avemo_plot_curves(const char *title, const char *y_label, const struct avemo_series *series,
                                    int nseries, const char *png_path, struct avemo_error *err);

/* ---- explanations (src/model/gradcam.c, heatmap.c) ----
 * Grad-CAM (Selvaraju et al., 2017) of each branch: the feature maps A_k of a layer (by default
 * the output of the branch's last convolution block, after its batch norm and ReLU) weighted by
 * alpha_k, the mean over the map of d score / d A_k, summed and rectified:
 * cam = ReLU(sum_k alpha_k A_k).  The score is the logit of class `target` (before the softmax),
 * summed over the batch: each sample's map answers for its own logit, and an input shared by the
 * batch (its sample repeated in every row, bit i of shared_inputs) gets one map for the sum. */
struct avemo_gradcam {
    int input;          /* network input explained */
    int layer;          /* whose feature maps are weighted; -1: the branch has no convolution */
    int shared;         /* one map for the whole batch */
    int maps, h, w;     /* maps x h x w: the layer's spatial size */
    float *cam;         /* not normalised (malloc'ed) */
};
/* The default layer of branch `input`, -1 when it has no convolution. */
int avemo_gradcam_default_layer(const avemo_net *net, int input);
/* One forward and one backward on ctx (a training context of at least `batch`, see nn.h);
 * cams[i] for each input i (layers[i] >= 0 overrides the layer, layers may be NULL).  Free
 * each with avemo_gradcam_free. */
enum avemo_status avemo_gradcam_run(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs, int batch,
                                    int target, unsigned shared_inputs, const int *layers, struct avemo_gradcam *cams,
                                    struct avemo_error *err);
void avemo_gradcam_free(struct avemo_gradcam *cam);
/* Bilinear resize as PyTorch's F.interpolate(mode="bilinear", align_corners=False). */
void avemo_heatmap_resize(const float *map, int h, int w, float *out, int oh, int ow);
/* Divide by the largest value (when > 0), which is returned. */
float avemo_heatmap_normalise(float *map, size_t n);

/* Each branch's share of the decision.  v(S) is the target's probability (averaged over the
 * batch) when the branches outside S are occluded: their pooled features, the head's input, set
 * to 0.  Zero, not a training mean: every shipped branch ends in a ReLU, so its features are
 * non-negative and 0 is "this branch reports nothing"; a model file holds no training mean of
 * them, and a mean of other data would move with that data.  contribution[i] is input i's
 * Shapley value (the contributions sum to prob_all - prob_none); share[i] = |contribution[i]| /
 * sum |contribution| (shares sum to 1; a single-input network's input has share 1). */
struct avemo_modality_shares {
    int inputs;
    float prob_all, prob_none;                  /* v(every branch), v(none) */
    float contribution[AVEMO_NN_MAX_INPUTS];
    float share[AVEMO_NN_MAX_INPUTS];
};
/* 2^inputs head forwards after one forward on ctx (any context of at least `batch`). */
enum avemo_status avemo_modality_shares(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs,
                                        int batch, int target, struct avemo_modality_shares *out,
                                        struct avemo_error *err);

/* A heat map over an input: the face crop or the audio features, drawn as PNG (cairo). */
struct avemo_heatmap {
    int width, height, channels;  /* the input: 64x64 face (1 or 3 channels), 128 frames x 40 rows */
    const float *image;           /* channels x height x width: a crop in [0, 1], or features (any range) */
    const float *heat;            /* height x width in [0, 1] */
    int flip;                     /* 1: row 0 at the bottom (features: low coefficients down) */
    int scale;                    /* pixels per input value (0: 4) */
};
/* The PNG is width*scale x height*scale: the image in grey (features scaled to their range)
 * blended half and half with the heat in a blue-to-red colour map.  *png is malloc'ed. */
enum avemo_status avemo_heatmap_png(const struct avemo_heatmap *map, uint8_t **png, size_t *size,
                                    struct avemo_error *err);
enum avemo_status avemo_heatmap_write_png(const struct avemo_heatmap *map, const char *path, struct avemo_error *err);

/* ---- calibration and late fusion (src/model/calib.c, src/model/plot_reliability.c) ----
 * Named arrays of a model file (absent: off).  Logits are stored raw; the temperature is applied
 * by avemo_model_predict_probs, so classify, eval and serve all give calibrated probabilities. */
#define AVEMO_CALIB_TEMPERATURE "calib.temperature"   /* [T]: probabilities = softmax(logits / T) */
#define AVEMO_CALIB_UNCERTAIN "calib.uncertain_below" /* [p]: a top probability below p is "uncertain" */
#define AVEMO_FUSION_WEIGHTS "fusion.late"               /* [w_audio, w_face, selected] of an av model */
#define AVEMO_TRAIN_PRIOR "train.prior"   /* [k]: class shares a model learnt (uniform: class-weighted loss) */
#define AVEMO_FUSION_PRIOR "fusion.prior" /* [2k]: the audio and face models' priors late fusion divides out */
#define AVEMO_CALIB_T_MIN 0.05f
#define AVEMO_CALIB_T_MAX 20.0f
#define AVEMO_UNCERTAIN_DEFAULT 0.5f                  /* when the model stores no threshold */
#define AVEMO_RELIABILITY_MAX_BINS 50

/* The stored temperature (1 when absent or out of range) and uncertainty threshold. */
float avemo_model_temperature(const avemo_net *net);
float avemo_model_uncertain_below(const avemo_net *net);
/* The stored late-fusion weights: -1 none, 0 stored but not selected, 1 selected. */
int avemo_model_late_fusion(const avemo_net *net, float *w_audio, float *w_face);
/* The class prior stored under name for k classes (AVEMO_TRAIN_PRIOR: k values; AVEMO_FUSION_PRIOR:
 * 2k, the audio model's then the face model's), each block of k normalised to sum 1.  Returns 1,
 * or 0 with uniform shares when it is absent or not k (2k) values > 0; 0 and nothing written when
 * k is not 1..AVEMO_MAX_CLASSES. */
int avemo_model_prior(const avemo_net *net, const char *name, int k, float *prior);
/* Class shares of counts (k values >= 0, not all 0); 0, or -1 when they are not. */
int avemo_prior_from_counts(const double *counts, int k, float *prior);

/* softmax(logits / temperature) of one row of k. */
void avemo_softmax_temperature(const float *logits, int k, float temperature, float *probs);
/* logits: rows x n x k (rows = 2 when each unit was also seen mirrored); probs: n x k, the mean
 * over rows of softmax(logits / T), as avemo_model_predict_probs computes them. */
void avemo_calib_probs(const float *logits, int rows, size_t n, int k, float temperature, float *probs);
/* Mean negative log-likelihood of the truth under avemo_calib_probs. */
double avemo_calib_nll(const float *logits, int rows, const int *truth, size_t n, int k, float temperature);
/* The temperature in [AVEMO_CALIB_T_MIN, AVEMO_CALIB_T_MAX] minimising the NLL (1 when nothing
 * beats it); *nll_before (T = 1) and *nll_after may be NULL. */
float avemo_calib_fit_temperature(const float *logits, int rows, const int *truth, size_t n, int k, double *nll_before,
                                  double *nll_after);

/* Expected calibration error over `bins` equal-width confidence bins of [0, 1] (a confidence of
 * exactly 1 falls in the last): ECE = sum_b n_b / n * |accuracy_b - confidence_b|, where
 * confidence is the top probability and accuracy whether the top class is the truth. */
struct avemo_reliability {
    int bins;
    size_t n;
    size_t count[AVEMO_RELIABILITY_MAX_BINS];
    double confidence[AVEMO_RELIABILITY_MAX_BINS], accuracy[AVEMO_RELIABILITY_MAX_BINS]; /* means per bin */
    double ece, mce;               /* expected and maximum calibration error */
    double nll;                    /* mean negative log-likelihood of the truth */
    double accuracy_all, confidence_all;
};
enum avemo_status avemo_reliability_compute(const float *probs, const int *truth, size_t n, int k, int bins,
                                            struct avemo_reliability *r, struct avemo_error *err);
/* The reliability diagram: accuracy per confidence bin against the diagonal, gaps shaded,
 * the share of answers per bin below, ECE in the title (PNG). */
enum avemo_status avemo_plot_reliability(const struct avemo_reliability *r, const char *title, const char *png_path,
                                         struct avemo_error *err);

/* Late fusion over k classes:
 *   out = softmax(w_audio * log(p_audio / prior_a) + w_face * log(p_face / prior_f))
 * prior (2k: prior_a then prior_f, the class shares each model learnt, AVEMO_FUSION_PRIOR) or NULL
 * (uniform).  Each model's posterior carries its training prior; divided out, a class rare in one
 * corpus (disgust in FER2013) is not counted against once per model. */
struct avemo_late_fusion {
    float w_audio, w_face;
    const float *prior; /* 2k or NULL */
};
void avemo_fuse_late(const float *p_audio, const float *p_face, int k, const struct avemo_late_fusion *f, float *out);
/* The weights in [0, 3] (grid 0.05, then 0.005) minimising the fused NLL of n units (rows of k),
 * with f->prior kept; written to f->w_audio and f->w_face.  Returns that NLL. */
double avemo_fusion_fit(const float *p_audio, const float *p_face, const int *truth, size_t n, int k,
                        struct avemo_late_fusion *f);

/* Copy the model file in_path to out_path (may be the same) with these named arrays set
 * (replaced when present): how `avemo calibrate` stores a temperature or fusion weights. */
enum avemo_status avemo_model_store_arrays(const char *in_path, const char *out_path, int n, const char *const *names,
                                           const float *const *values, const size_t *counts, struct avemo_error *err);
/* The same, with SEC.KEY=VALUE overrides of inference settings (e.g. face.mirror_test=no) written
 * into the stored pipeline: `avemo calibrate --set` keeps the settings its temperature was fitted
 * with.  An override that would change the network is refused (AVEMO_ERR_MISMATCH). */
enum avemo_status avemo_model_store(const char *in_path, const char *out_path, const char *const *overrides,
                                    int noverrides, int n, const char *const *names, const float *const *values,
                                    const size_t *counts, struct avemo_error *err);

/* The raw logits of the passes: rows x batch x k into logits, member by member (with mirror two
 * rows each: the faces', then their mirror images'); *rows receives avemo_model_logit_rows.
 * avemo_model_predict_probs is avemo_calib_probs of these with the model's stored temperature. */
int avemo_model_logit_rows(const struct avemo_model *m, int mirror); /* members x (mirror ? 2 : 1) */
enum avemo_status avemo_model_predict_logits(const struct avemo_model *m, avemo_nn_ctx *ctx, const float *const *inputs,
                                             int batch, unsigned shared_inputs, float *face_in, int face_size,
                                             int face_channels, int mirror, float *logits, int *rows,
                                             struct avemo_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_MODEL_H */
