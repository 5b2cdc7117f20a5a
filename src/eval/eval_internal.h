/* What the files of the eval module share and nobody else sees. */
#ifndef AVEMO_EVAL_INTERNAL_H
#define AVEMO_EVAL_INTERNAL_H

#include <avemo/eval.h>

/* The network inputs of a context's last successful classification (classify.c), for the
 * explanations (explain.c): the model that answered and what it was given. */
struct classify_inputs {
    const struct avemo_model *model;
    const float *audio;      /* one sample of audio features (the model's audio input), or NULL */
    const float *faces;      /* batch face inputs (CHW floats in [0, 1]), or NULL */
    int batch;               /* faces (1 for an audio model) */
};
/* 0 and *in filled, or -1 when the context has classified nothing yet. */
int classify_last_inputs(const avemo_classify_ctx *ctx, struct classify_inputs *in);
/* When the last classification was av by late fusion: 0 with the audio model's and the face
 * model's inputs, their (calibrated) probabilities and the fusion (weights, priors); else -1. */
struct classify_late_inputs {
    struct classify_inputs audio, face;
    const float *p_audio, *p_face;
    struct avemo_late_fusion fusion;
};
int classify_last_late_inputs(const avemo_classify_ctx *ctx, struct classify_late_inputs *in);
/* The classifier a context serves. */
const avemo_classifier *classify_ctx_classifier(const avemo_classify_ctx *ctx);
#include <avemo/train.h>

#include <pthread.h>

/* decode_thread.c: a clip decoded (avemo_media_decode_av) on a second thread, its sampled frames
 * handed over as they come. */
#define DECODE_THREAD_MAX_FRAMES 32
struct decode_thread {
    const char *name;
    avemo_media *media;
    int sample_rate, count_wanted;
    enum avemo_pixel_format format;
    struct avemo_audio *audio;           /* NULL: no sound wanted */
    void (*after)(void *user);           /* run on the thread after a decoding that succeeded */
    void *after_user;
    struct avemo_frames out;             /* what the decoding returned */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started, finished, cancelled;
    enum avemo_status status;
    struct avemo_error err;
    struct avemo_frame frames[DECODE_THREAD_MAX_FRAMES]; /* copies of this pass's frames; data NULL once taken */
    int count, pass;                     /* frames handed over in the newest pass (-1: none yet) */
    int taken, pass_taken;               /* what the caller took, of which pass */
};
/* Start decoding count frames (and the sound when audio is not NULL) of media on a thread; when
 * that succeeds, after(after_user) runs on the thread too (NULL: nothing), before the end shows. */
enum avemo_status decode_thread_start(struct decode_thread *t, avemo_media *media, int sample_rate,
                                      struct avemo_audio *audio, int count, enum avemo_pixel_format format,
                                      void (*after)(void *user), void *after_user, struct avemo_error *err);
/* The next frame, waiting for it: 1 and *frame (its data the caller's to free), or 0 when the
 * decoding has finished.  *restart = 1: a new pass began; drop what was made of earlier frames. */
int decode_thread_next(struct decode_thread *t, struct avemo_frame *frame, int *restart);
/* Stop the decoding at its next frame (the caller has failed and will not take more). */
void decode_thread_cancel(struct decode_thread *t);
/* Wait for the end; the decoding's status, and its frames into frames (NULL: freed). */
enum avemo_status decode_thread_join(struct decode_thread *t, struct avemo_frames *frames, struct avemo_error *err);

/* The training records of the models evaluated together: every content they list, sorted. */
struct eval_record {
    uint8_t (*sha)[AVEMO_SHA256_SIZE];
    size_t n;
    char **stems;              /* the entries' file names without extension, sorted */
    size_t nstems;
};
/* Read the records of the model files into rec; the names of the models that have none go
 * into unchecked ("a.avm, b.avm"; "" when every model has one). */
enum avemo_status eval_record_load(const char *const *paths, int n, struct eval_record *rec, char *unchecked,
                                   size_t size, struct avemo_error *err);
void eval_record_free(struct eval_record *rec);
/* Every test item (part AVEMO_PART_TEST) whose file's SHA-256 is in rec leaves the test part
 * (part -1) and gets trained[i] = 1; one with another content but the name of a recorded file
 * (extension aside) stays and gets trained[i] = 2.  Files that cannot be read are left to the
 * feature extraction, which names them. */
void eval_leave_out_trained(const struct avemo_dataset *ds, signed char *part, const struct eval_record *rec,
                            unsigned char *trained);

/* The shipped models' file names per mode: "avemo-av.avm", "avemo-audio.avm", "avemo-face.avm". */
extern const char *const eval_shipped_model[3];
/* 1 when dir/file is a readable file; its path into path. */
int eval_model_in(const char *dir, const char *file, char *path, size_t size);
/* The companion of the model at main_path for a unimodal mode: the shipped name in main_path's
 * folder, else the shipped model (avemo_default_model); not main_path itself.  1 when found. */
int eval_companion_path(const char *main_path, enum avemo_mode mode, char *path, size_t size);

#endif
