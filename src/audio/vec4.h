/* Four-float vectors (GCC/Clang vector extensions) for the hot loops of the
 * audio features.  The build uses -O2 without -march, where GCC vectorises only
 * trivially countable loops; writing the vectors out makes the mel projection,
 * window, DCT and input check loops SIMD on every target: 16 bytes is the
 * native width of the baseline (SSE2 on x86-64, NEON on arm64).  Loads and
 * stores are macros so that vectors never cross a function boundary. */
#ifndef AVEMO_AUDIO_VEC4_H
#define AVEMO_AUDIO_VEC4_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef float vec4 __attribute__((vector_size(16)));
typedef uint32_t vec4u __attribute__((vector_size(16)));
typedef int32_t vec4i __attribute__((vector_size(16)));
/* The same vectors at any 4-byte aligned address. */
typedef float vec4_unaligned __attribute__((vector_size(16), aligned(4), may_alias));
typedef uint32_t vec4u_unaligned __attribute__((vector_size(16), aligned(4), may_alias));

#define VEC4_LOAD(p) (*(const vec4_unaligned *)(const void *)(p))
#define VEC4_STORE(p, v) (*(vec4_unaligned *)(void *)(p) = (v))

/* Lanes i0..i3 of the eight lanes of a then b (a[0..3], b[0..3] = 4..7). */
#if defined(__clang__)
#define VEC4_SHUFFLE(a, b, i0, i1, i2, i3) __builtin_shufflevector((a), (b), i0, i1, i2, i3)
#else
#define VEC4_SHUFFLE(a, b, i0, i1, i2, i3) __builtin_shuffle((a), (b), (vec4i){i0, i1, i2, i3})
#endif
/* Lanes 0, 2 (even) or 1, 3 (odd) of a then of b. */
#define VEC4_EVEN(a, b) VEC4_SHUFFLE(a, b, 0, 2, 4, 6)
#define VEC4_ODD(a, b) VEC4_SHUFFLE(a, b, 1, 3, 5, 7)

/* dst[i] += c * src[i] for i < n. */
static inline void vec4_axpy(float *dst, float c, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        VEC4_STORE(dst + i, VEC4_LOAD(dst + i) + c * VEC4_LOAD(src + i));
        VEC4_STORE(dst + i + 4, VEC4_LOAD(dst + i + 4) + c * VEC4_LOAD(src + i + 4));
    }
    for (; i < n; i++) dst[i] += c * src[i];
}

/* dst[i] = a[i] * b[i] for i < n. */
static inline void vec4_mul(float *dst, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) VEC4_STORE(dst + i, VEC4_LOAD(a + i) * VEC4_LOAD(b + i));
    for (; i < n; i++) dst[i] = a[i] * b[i];
}

/* 1 when every value is finite: no float of x has an all-ones exponent. */
static inline int vec4_all_finite(const float *x, size_t n)
{
    const uint32_t exponent = 0x7f800000u;
    vec4i bad = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        vec4u bits = *(const vec4u_unaligned *)(const void *)(x + i);
        bad |= (bits & exponent) == exponent;
    }
    int any = bad[0] | bad[1] | bad[2] | bad[3];
    for (; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        any |= (b & exponent) == exponent;
    }
    return !any;
}

/* Lane-wise max / min (C has no vector ?:, so select with the compare mask). */
static inline vec4 vec4_max(vec4 a, vec4 b)
{
    vec4i m = a > b;
    return (vec4)(((vec4i)a & m) | ((vec4i)b & ~m));
}

static inline vec4 vec4_min(vec4 a, vec4 b)
{
    vec4i m = a < b;
    return (vec4)(((vec4i)a & m) | ((vec4i)b & ~m));
}

/* Natural log of positive, normal, finite floats.  x = 2^e * m with m in
 * [sqrt(1/2), sqrt(2)); ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172,
 * by its series up to s^9 (the next term is below 1e-9): about 2 ulp,
 * i.e. < 1e-5 dB, far inside the 0.01 dB of the librosa comparison. */
static inline vec4 vec4_log(vec4 x)
{
    vec4u bits = (vec4u)x;
    vec4i e = (vec4i)((bits >> 23) & 0xffu) - 127;
    vec4 m = (vec4)((bits & 0x007fffffu) | 0x3f800000u); /* [1, 2) */
    vec4i big = m > 1.41421356f;
    m = (vec4)(((vec4i)(m * 0.5f) & big) | ((vec4i)m & ~big));
    e -= big; /* big is -1 where m was halved */
    vec4 s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    vec4 series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
    return __builtin_convertvector(e, vec4) * 0.693147180559945f + 2.0f * s * series;
}

#endif
