/* Vector loops of the elementwise layers, four floats at a time with SSE (x86-64 always has it;
 * other machines get the plain loops).  The library builds at -O2, where GCC does not vectorise,
 * and these loops run over every activation, so they matter as much as the matrix products.
 * Sums accumulate in four float lanes over one plane (at most a few thousand values) and are
 * returned in double, which the callers add across planes.  Each sum runs four independent
 * accumulators (16 values per step): with one, every addition waits for the previous one (4
 * cycles), which made these passes latency-bound at a quarter of the core's load bandwidth. */
#include "nn/nn_internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>

static double hsum(__m128 v)
{
    float lanes[4];
    _mm_storeu_ps(lanes, v);
    return ((double)lanes[0] + lanes[1]) + ((double)lanes[2] + lanes[3]);
}

/* The four accumulators of a sum, added in a fixed order. */
static double hsum4(const __m128 acc[4])
{
    return hsum(_mm_add_ps(_mm_add_ps(acc[0], acc[1]), _mm_add_ps(acc[2], acc[3])));
}
#endif

double nn_vec_sum(const float *x, size_t n)
{
    size_t i = 0;
    double total = 0.0;
#if defined(__SSE2__)
    __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (; i + 16 <= n; i += 16)
        for (int a = 0; a < 4; a++) acc[a] = _mm_add_ps(acc[a], _mm_loadu_ps(x + i + 4 * a));
    for (; i + 4 <= n; i += 4) acc[0] = _mm_add_ps(acc[0], _mm_loadu_ps(x + i));
    total = hsum4(acc);
#endif
    for (; i < n; i++) total += x[i];
    return total;
}

double nn_vec_sum_sq_dev(const float *x, size_t n, float mean)
{
    size_t i = 0;
    double total = 0.0;
#if defined(__SSE2__)
    const __m128 m = _mm_set1_ps(mean);
    __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (; i + 16 <= n; i += 16) {
        for (int a = 0; a < 4; a++) {
            __m128 d = _mm_sub_ps(_mm_loadu_ps(x + i + 4 * a), m);
            acc[a] = _mm_add_ps(acc[a], _mm_mul_ps(d, d));
        }
    }
    for (; i + 4 <= n; i += 4) {
        __m128 d = _mm_sub_ps(_mm_loadu_ps(x + i), m);
        acc[0] = _mm_add_ps(acc[0], _mm_mul_ps(d, d));
    }
    total = hsum4(acc);
#endif
    for (; i < n; i++) total += (double)(x[i] - mean) * (x[i] - mean);
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

/* The gradient reaching a batch norm, through its ReLU when relu_out is not NULL: dy where the
 * ReLU's output is positive, else 0. */
#if defined(__SSE2__)
static inline __m128 masked_dy(const float *dy, const float *relu_out, size_t i)
{
    __m128 g = _mm_loadu_ps(dy + i);
    return relu_out ? _mm_and_ps(g, _mm_cmpgt_ps(_mm_loadu_ps(relu_out + i), _mm_setzero_ps())) : g;
}
#endif

static inline float masked_dy1(const float *dy, const float *relu_out, size_t i)
{
    return relu_out && !(relu_out[i] > 0.0f) ? 0.0f : dy[i];
}

/* Batch norm backward sums in one pass: sum dy and sum dy (x - mean). */
void nn_vec_bn_sums(const float *dy, const float *relu_out, const float *x, size_t n, float mean, double *sum_dy,
                    double *sum_dy_dev)
{
    size_t i = 0;
    double s1 = 0.0, s2 = 0.0;
#if defined(__SSE2__)
    const __m128 m = _mm_set1_ps(mean);
    __m128 a1[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    __m128 a2[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (; i + 16 <= n; i += 16) {
        for (int a = 0; a < 4; a++) {
            __m128 g = masked_dy(dy, relu_out, i + 4 * a);
            a1[a] = _mm_add_ps(a1[a], g);
            a2[a] = _mm_add_ps(a2[a], _mm_mul_ps(g, _mm_sub_ps(_mm_loadu_ps(x + i + 4 * a), m)));
        }
    }
    for (; i + 4 <= n; i += 4) {
        __m128 g = masked_dy(dy, relu_out, i);
        a1[0] = _mm_add_ps(a1[0], g);
        a2[0] = _mm_add_ps(a2[0], _mm_mul_ps(g, _mm_sub_ps(_mm_loadu_ps(x + i), m)));
    }
    s1 = hsum4(a1);
    s2 = hsum4(a2);
#endif
    for (; i < n; i++) {
        float g = masked_dy1(dy, relu_out, i);
        s1 += g;
        s2 += (double)g * (x[i] - mean);
    }
    *sum_dy += s1;
    *sum_dy_dev += s2;
}

/* dx = g * (dy - a - (x - mean) * k): batch norm's input gradient (layer_bn.c). */
void nn_vec_bn_dx(const float *dy, const float *relu_out, const float *x, float *dx, size_t n, float g, float a,
                  float mean, float k)
{
    size_t i = 0;
#if defined(__SSE2__)
    __m128 vg = _mm_set1_ps(g), va = _mm_set1_ps(a), vm = _mm_set1_ps(mean), vk = _mm_set1_ps(k);
    for (; i + 4 <= n; i += 4) {
        __m128 dev = _mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(x + i), vm), vk);
        _mm_storeu_ps(dx + i, _mm_mul_ps(vg, _mm_sub_ps(_mm_sub_ps(masked_dy(dy, relu_out, i), va), dev)));
    }
#endif
    for (; i < n; i++) dx[i] = g * (masked_dy1(dy, relu_out, i) - a - (x[i] - mean) * k);
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


void nn_vec_fill(float *y, float v, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 vv = _mm_set1_ps(v);
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(y + i, vv);
#endif
    for (; i < n; i++) y[i] = v;
}
