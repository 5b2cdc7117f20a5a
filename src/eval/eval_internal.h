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

#endif
