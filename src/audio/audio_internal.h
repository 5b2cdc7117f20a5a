/* Helpers shared by the files of src/audio (not part of the public API). */
#ifndef AVEMO_AUDIO_INTERNAL_H
#define AVEMO_AUDIO_INTERNAL_H

#include <avemo/audio.h>

/* The upper mel edge actually used: fmax, or sample_rate / 2 when fmax is 0. */
double avemo_audio_fmax(const struct avemo_audio_params *p);

/* The orthonormal DCT-II as an n_out x n_in matrix (first n_out rows). */
void avemo_audio_dct_matrix(int n_out, int n_in, float *dct);

/* FFTW's planner (creating and destroying plans) is not thread-safe: every file of src/audio
 * that plans holds this one lock while it does (extractor.c owns it). */
void audio_fftw_plan_lock(void);
void audio_fftw_plan_unlock(void);

#endif
