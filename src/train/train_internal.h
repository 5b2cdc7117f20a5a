/* Internal helpers shared by the files of src/train. */
#ifndef AVEMO_TRAIN_INTERNAL_H
#define AVEMO_TRAIN_INTERNAL_H

#include <avemo/model.h>
#include <avemo/nn.h>
#include <avemo/train.h>

#include <pthread.h>

/* Augment a waveform at `rate` Hz into out (capacity cap); returns the new length. */
size_t train_augment_wave(const float *in, size_t n, float *out, size_t cap, int rate, const struct avemo_augment *a,
                          struct avemo_rng *rng);
/* 1 when a turns on any waveform augmentation (training then keeps the decoded waves). */
int train_augment_uses_wave(const struct avemo_augment *a);
/* With augment.codec on: every codec it draws from works in this FFmpeg at `rate` (else an
 * error naming the missing encoder, before any epoch runs). */
enum avemo_status train_check_codecs(const struct avemo_augment *a, int rate, struct avemo_error *err);
/* SpecAugment: zero random time and frequency bands of a rows x cols matrix. */
void train_spec_augment(float *x, int rows, int cols, const struct avemo_augment *a, struct avemo_rng *rng);
/* The same with random flip, shift/scale/rotation jitter and brightness/contrast. */
void train_face_augment(const uint8_t *crop, int size, int channels, float *out, const struct avemo_augment *a,
                        struct avemo_rng *rng);

/* --init MODEL[:prefix,...]: the model file's path into path; returns the prefixes ("" for all). */
const char *train_init_spec(const char *spec, char *path, size_t size);
/* The training record of a model trained on ds with these parts (and started from the --init
 * models, taught by the teacher: their records are added) into net; counts[0] training,
 * counts[1] validation files.  Items with a failure (failure[i] != NULL: unreadable, reported
 * and skipped) were not learnt from and are not hashed. */
enum avemo_status train_set_record(avemo_net *net, const struct avemo_dataset *ds, const signed char *part,
                                   char *const *failure, const char *const *init, int ninit, const char *teacher,
                                   size_t counts[2], struct avemo_error *err);

/* ---- batches made one ahead by a producer thread (prefetch.c) ---- */
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

/* ---- distillation: a teacher model's probabilities for each batch (teacher.c) ---- */
struct train_teacher {
    struct avemo_model model;
    int open;
    avemo_nn_ctx *ctx;        /* used by one thread at a time: the batch producer */
    float weight;             /* train.distill */
    const float *mean, *std;  /* the student's audio normalisation (NULL: none) */
    size_t rows, cols;        /* audio features of one item */
    float *audio;             /* a batch's audio in the teacher's normalisation (NULL: not needed) */
    int mirror;               /* the teacher averages each face with its mirror image */
};
/* Open the teacher at path for a student trained with pipeline p into net student; mean and std
 * are the student's audio normalisation (rows x cols features).  Refused by name
 * (AVEMO_ERR_MISMATCH) when the teacher makes its inputs otherwise or has other classes. */
enum avemo_status train_teacher_open(struct train_teacher *t, const char *path, const struct avemo_pipeline *p,
                                     const avemo_net *student, const float *mean, const float *std, int rows,
                                     int cols, int batch, struct avemo_error *err);
/* The teacher's probabilities (b x classes) for a student batch (face is mirrored and restored). */
enum avemo_status train_teacher_probs(struct train_teacher *t, const float *audio, float *face, int b,
                                      float *probs, struct avemo_error *err);
void train_teacher_close(struct train_teacher *t);
/* The checks that need only the teacher's file (inputs, late fusion; avemo_model_open checks the rest), made before
 * the student's features are extracted so a wrong teacher is refused at once. */
enum avemo_status train_teacher_check(const char *path, const struct avemo_pipeline *p, struct avemo_error *err);

#endif
