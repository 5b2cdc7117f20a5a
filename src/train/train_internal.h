/* Internal helpers shared by the files of src/train. */
#ifndef AVEMO_TRAIN_INTERNAL_H
#define AVEMO_TRAIN_INTERNAL_H

#include <avemo/nn.h>
#include <avemo/train.h>

/* Augment a waveform into out (capacity cap); returns the new length. */
size_t train_augment_wave(const float *in, size_t n, float *out, size_t cap, const struct avemo_augment *a,
                          struct avemo_rng *rng);
/* SpecAugment: zero random time and frequency bands of a rows x cols matrix. */
void train_spec_augment(float *x, int rows, int cols, const struct avemo_augment *a, struct avemo_rng *rng);
/* The same with random flip, shift/scale jitter and brightness/contrast. */
void train_face_augment(const uint8_t *crop, int size, int channels, float *out, const struct avemo_augment *a,
                        struct avemo_rng *rng);

#endif
