/* Linear convolution by FFT (FFTW, single precision): training's synthetic rooms convolve
 * a few seconds of speech with an impulse response of up to a second, which would take
 * ~10^9 multiply-adds directly and takes a few milliseconds this way. */
#include "audio/audio_internal.h"

#include <fftw3.h>
#include <string.h>

/* 2^24 samples (17 minutes at 16 kHz): far beyond a clip, small enough for the FFT buffers. */
#define CONVOLVE_MAX ((size_t)1 << 24)

struct convolution {
    size_t size;          /* FFT length: a power of two >= n + m - 1 */
    float *a, *b;         /* size floats each: x, then h, zero-padded; a gets the result */
    fftwf_complex *fa, *fb; /* size / 2 + 1 bins each */
    fftwf_plan fwd_a, fwd_b, inv;
};

static void convolution_free(struct convolution *c)
{
    audio_fftw_plan_lock();
    if (c->fwd_a) fftwf_destroy_plan(c->fwd_a);
    if (c->fwd_b) fftwf_destroy_plan(c->fwd_b);
    if (c->inv) fftwf_destroy_plan(c->inv);
    audio_fftw_plan_unlock();
    fftwf_free(c->a);
    fftwf_free(c->b);
    fftwf_free(c->fa);
    fftwf_free(c->fb);
}

static enum avemo_status convolution_plan(struct convolution *c, size_t n, size_t m, struct avemo_error *err)
{
    c->size = 1;
    while (c->size < n + m - 1) c->size <<= 1;
    size_t bins = c->size / 2 + 1;
    c->a = fftwf_malloc(sizeof(float) * c->size);
    c->b = fftwf_malloc(sizeof(float) * c->size);
    c->fa = fftwf_malloc(sizeof(fftwf_complex) * bins);
    c->fb = fftwf_malloc(sizeof(fftwf_complex) * bins);
    if (!c->a || !c->b || !c->fa || !c->fb)
        return avemo_fail(err, AVEMO_ERR_NOMEM, "convolution: out of memory for a %zu-point FFT", c->size);
    /* ESTIMATE: planning must not overwrite the inputs, and it is cheap. */
    audio_fftw_plan_lock();
    c->fwd_a = fftwf_plan_dft_r2c_1d((int)c->size, c->a, c->fa, FFTW_ESTIMATE);
    c->fwd_b = fftwf_plan_dft_r2c_1d((int)c->size, c->b, c->fb, FFTW_ESTIMATE);
    c->inv = fftwf_plan_dft_c2r_1d((int)c->size, c->fa, c->a, FFTW_ESTIMATE);
    audio_fftw_plan_unlock();
    if (!c->fwd_a || !c->fwd_b || !c->inv)
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "convolution: FFTW could not plan a %zu-point FFT", c->size);
    return AVEMO_OK;
}

enum avemo_status avemo_audio_convolve(const float *x, size_t n, const float *h, size_t m, float *out,
                                       struct avemo_error *err)
{
    if (!x || !h || !out || n == 0 || m == 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "convolution: empty signal or impulse response");
    if (n > CONVOLVE_MAX || m > CONVOLVE_MAX)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "convolution: %zu and %zu samples (at most %zu each)", n, m,
                          CONVOLVE_MAX);
    struct convolution c = {0};
    enum avemo_status st = convolution_plan(&c, n, m, err);
    if (!st) {
        memset(c.a, 0, sizeof(float) * c.size);
        memset(c.b, 0, sizeof(float) * c.size);
        memcpy(c.a, x, sizeof(float) * n);
        memcpy(c.b, h, sizeof(float) * m);
        fftwf_execute(c.fwd_a);
        fftwf_execute(c.fwd_b);
        /* Multiply the spectra; FFTW's inverse is unnormalised, so scale by 1 / size here. */
        float scale = 1.0f / (float)c.size;
        for (size_t k = 0; k < c.size / 2 + 1; k++) {
            float re = c.fa[k][0] * c.fb[k][0] - c.fa[k][1] * c.fb[k][1];
            float im = c.fa[k][0] * c.fb[k][1] + c.fa[k][1] * c.fb[k][0];
            c.fa[k][0] = re * scale;
            c.fa[k][1] = im * scale;
        }
        fftwf_execute(c.inv);
        memcpy(out, c.a, sizeof(float) * n);
    }
    convolution_free(&c);
    return st;
}
