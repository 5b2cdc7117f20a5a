/* Vector loops of the elementwise layers, four floats at a time with SSE (x86-64 always has it;
 * other machines get the plain loops).  The library builds at -O2, where GCC does not vectorise,
 * and these loops run over every activation, so they matter as much as the matrix products.
 * Sums accumulate in four float lanes over one plane (at most a few thousand values) and are
 * returned in double, which the callers add across planes. */
#include "nn/nn_internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>

static double hsum(__m128 v)
{
    float lanes[4];
    _mm_storeu_ps(lanes, v);
    return ((double)lanes[0] + lanes[1]) + ((double)lanes[2] + lanes[3]);
}
#endif

double nn_vec_sum(const float *x, size_t n)
{
    size_t i = 0;
    double total = 0.0;
#if defined(__SSE2__)
    __m128 acc = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) acc = _mm_add_ps(acc, _mm_loadu_ps(x + i));
    total = hsum(acc);
#endif
    for (; i < n; i++) total += x[i];
    return total;
}

double nn_vec_sum_sq_dev(const float *x, size_t n, float mean)
{
    size_t i = 0;
    double total = 0.0;
#if defined(__SSE2__)
    __m128 acc = _mm_setzero_ps(), m = _mm_set1_ps(mean);
    for (; i + 4 <= n; i += 4) {
        __m128 d = _mm_sub_ps(_mm_loadu_ps(x + i), m);
        acc = _mm_add_ps(acc, _mm_mul_ps(d, d));
    }
    total = hsum(acc);
#endif
    for (; i < n; i++) total += (double)(x[i] - mean) * (x[i] - mean);
    return total;
}

double nn_vec_dot_dev(const float *a, const float *x, size_t n, float mean)
{
    size_t i = 0;
    double total = 0.0;
#if defined(__SSE2__)
    __m128 acc = _mm_setzero_ps(), m = _mm_set1_ps(mean);
    for (; i + 4 <= n; i += 4)
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(a + i), _mm_sub_ps(_mm_loadu_ps(x + i), m)));
    total = hsum(acc);
#endif
    for (; i < n; i++) total += (double)a[i] * (x[i] - mean);
    return total;
}

void nn_vec_scale_shift(const float *x, float *y, size_t n, float s, float t, int relu)
{
    size_t i = 0;
#if defined(__SSE2__)
    __m128 vs = _mm_set1_ps(s), vt = _mm_set1_ps(t), zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(x + i), vs), vt);
        _mm_storeu_ps(y + i, relu ? _mm_max_ps(v, zero) : v);
    }
#endif
    for (; i < n; i++) y[i] = relu ? nn_relu_value(x[i] * s + t) : x[i] * s + t;
}

/* dx = g * (dy - a - (x - mean) * k): batch norm's input gradient (layer_bn.c). */
void nn_vec_bn_dx(const float *dy, const float *x, float *dx, size_t n, float g, float a, float mean, float k)
{
    size_t i = 0;
#if defined(__SSE2__)
    __m128 vg = _mm_set1_ps(g), va = _mm_set1_ps(a), vm = _mm_set1_ps(mean), vk = _mm_set1_ps(k);
    for (; i + 4 <= n; i += 4) {
        __m128 dev = _mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(x + i), vm), vk);
        _mm_storeu_ps(dx + i, _mm_mul_ps(vg, _mm_sub_ps(_mm_sub_ps(_mm_loadu_ps(dy + i), va), dev)));
    }
#endif
    for (; i < n; i++) dx[i] = g * (dy[i] - a - (x[i] - mean) * k);
}

void nn_vec_relu(const float *x, float *y, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(y + i, _mm_max_ps(_mm_loadu_ps(x + i), zero));
#endif
    for (; i < n; i++) y[i] = nn_relu_value(x[i]);
}

/* din = dout where out > 0, else 0. */
void nn_vec_relu_grad(const float *out, const float *dout, float *din, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(din + i, _mm_and_ps(_mm_loadu_ps(dout + i), _mm_cmpgt_ps(_mm_loadu_ps(out + i), zero)));
#endif
    for (; i < n; i++) {
        uint32_t o, g;
        memcpy(&o, &out[i], 4);
        memcpy(&g, &dout[i], 4);
        g &= 0u - (uint32_t)(o != 0); /* ReLU outputs are +0 or positive */
        memcpy(&din[i], &g, 4);
    }
}

void nn_vec_add(float *y, const float *x, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(y + i, _mm_add_ps(_mm_loadu_ps(y + i), _mm_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] += x[i];
}
