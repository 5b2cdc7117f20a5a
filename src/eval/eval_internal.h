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
 * model's inputs, their (calibrated) probabilities and the fusion weights; else -1. */
struct classify_late_inputs {
    struct classify_inputs audio, face;
    const float *p_audio, *p_face;
    float w_audio, w_face;
};
int classify_last_late_inputs(const avemo_classify_ctx *ctx, struct classify_late_inputs *in);
#include <avemo/train.h>

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
