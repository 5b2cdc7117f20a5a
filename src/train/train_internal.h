/* Internal helpers shared by the files of src/train and by src/eval. */
#ifndef AVEMO_TRAIN_INTERNAL_H
#define AVEMO_TRAIN_INTERNAL_H

#include <avemo/nn.h>
#include <avemo/train.h>

/* Augment a waveform into out (capacity cap); returns the new length. */
size_t train_augment_wave(const float *in, size_t n, float *out, size_t cap, const struct avemo_augment *a,
                          struct avemo_rng *rng);
/* SpecAugment: zero random time and frequency bands of a rows x cols matrix. */
void train_spec_augment(float *x, int rows, int cols, const struct avemo_augment *a, struct avemo_rng *rng);
/* A size x size x channels crop (HWC bytes) to a CHW float input in [0, 1]. */
void train_face_input(const uint8_t *crop, int size, int channels, float *out);
/* Mirror n network face inputs (NCHW floats) left to right, in place. */
void train_face_mirror(float *faces, int n, int size, int channels);
/* Class probabilities (batch x classes) of a forward pass; with mirror, the average of the
 * faces' and their mirror images' probabilities (face_in is mirrored and restored).
 * shared_inputs as avemo_net_forward_shared. */
enum avemo_status train_predict_probs(const avemo_net *net, avemo_nn_ctx *ctx, const float *const *inputs, int batch,
                                      unsigned shared_inputs, float *face_in, int face_size, int face_channels,
                                      int mirror, float *probs, struct avemo_error *err);
/* The same with random flip, shift/scale jitter and brightness/contrast. */
void train_face_augment(const uint8_t *crop, int size, int channels, float *out, const struct avemo_augment *a,
                        struct avemo_rng *rng);

/* Read a pipeline file, append `section.key=value` overrides as INI lines, and parse it.
 * *text (malloc'ed) is the final pipeline text, stored in the model. */
/* A copy of the pipeline text with SEC.KEY=VALUE overrides applied (malloc'ed in *out). */
enum avemo_status train_pipeline_override(const char *text, const char *const *overrides, int n, char **out,
                                          struct avemo_error *err);
enum avemo_status train_load_pipeline(const char *path, const char *const *overrides, int n, char **text,
                                      struct avemo_pipeline *p, struct avemo_error *err);
/* Check that the network's inputs match the pipeline's features; fills the input indices. */
enum avemo_status train_check_inputs(const avemo_net *net, const struct avemo_pipeline *p, int *audio_input,
                                     int *face_input, struct avemo_error *err);

#endif

/* ---- batches: what the network sees for a set of items ---- */
struct train_data {
    const struct avemo_pipeline *p;
    const struct avemo_dataset *ds;
    const struct avemo_feature_set *fs;
    int need_audio, need_face;
    int audio_input, face_input;     /* net input indices, -1 when unused */
    const signed char *part;         /* split part of each item */
    /* av mode without own faces: images of the same label and part ("label-matched pairs") */
    size_t *pool[3][16];
    size_t pool_n[3][16];
    size_t *partner;                 /* fixed partner crop index for evaluation, per item */
    const float *mean, *std;         /* dataset normalisation of the audio features, or NULL */
    avemo_audio_extractor *ex;       /* for waveform augmentation */
    float *wave_buf;
    size_t wave_cap;
    float *feat_buf;                 /* one item's full features */
    size_t audio_floats, face_floats;/* per sample */
};

/* Set up pools and fixed partners once the split is known; returns how many items are usable
 * (listed in *usable) and reports the others' reasons into skipped (count). */
enum avemo_status train_data_init(struct train_data *td, const struct avemo_pipeline *p, const struct avemo_dataset *ds,
                                  const struct avemo_feature_set *fs, const signed char *part, uint64_t seed,
                                  struct avemo_error *err);
void train_data_free(struct train_data *td);
/* 1 when item i can be a sample (has what the mode needs). */
int train_data_usable(const struct train_data *td, size_t i);
/* Fill the inputs and labels of n items; augment = 1 for training batches. */
void train_data_batch(struct train_data *td, const size_t *items, int n, int augment, struct avemo_rng *rng,
                      float *audio_in, float *face_in, int *labels);

/* ---- batches made one ahead by a producer thread (prefetch.c) ---- */
#include <pthread.h>
struct train_prefetch {
    size_t count;                 /* batches in the epoch */
    void (*fill)(void *arg, size_t k, int slot);
    void *arg;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t produced, released;    /* batches filled / given back by the consumer */
    int stop, threaded;
};
/* Starts filling batches 0..count-1 into slots k % 2 with fill(arg, k, slot). */
void train_prefetch_start(struct train_prefetch *pf, size_t count, void (*fill)(void *arg, size_t k, int slot),
                          void *arg);
/* The slot holding batch k once it is filled (batches are taken in order). */
int train_prefetch_wait(struct train_prefetch *pf, size_t k);
/* Batch k's slot may be refilled. */
void train_prefetch_release(struct train_prefetch *pf, size_t k);
/* Stops the producer (also early, after an error) and frees the thread. */
void train_prefetch_finish(struct train_prefetch *pf);
