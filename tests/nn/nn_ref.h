/* Reading PyTorch's reference tensors and comparing with them: shared by the nn parity tests. */
#ifndef AVEMO_TEST_NN_REF_H
#define AVEMO_TEST_NN_REF_H

#include "common/testutil.h"

#include <avemo/core.h>
#include <avemo/nn.h>
#include <math.h>

/* dir/name.npy as a flat float array (malloc'ed), failing the test when it cannot be read. */
static inline float *nn_ref_load(const char *dir, const char *name, size_t *count)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    float *data;
    int ndim;
    size_t shape[4];
    struct avemo_error err;
    if (avemo_read_npy(path, &data, &ndim, shape, &err) != AVEMO_OK) fail_msg("%s", err.message);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    *count = n;
    return data;
}

/* Largest |a - b| must be within tol times the largest |b| (plus a floor for tensors whose
 * true value is zero, such as the bias of a convolution followed by batch norm). */
static inline void nn_ref_assert_close(const char *what, const float *a, const float *b, size_t n, double tol,
                                       double floor)
{
    double maxdiff = 0.0, maxref = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= maxdiff)) { /* also catches NaN */
            maxdiff = d;
            worst = i;
        }
        if (fabs(b[i]) > maxref) maxref = fabs(b[i]);
    }
    if (!(maxdiff <= tol * maxref + floor))
        fail_msg("%s: max diff %.3g at %zu (avemo %.7g, torch %.7g), max |torch| %.3g, tolerance %.3g", what, maxdiff,
                 worst, (double)a[worst], (double)b[worst], maxref, tol * maxref + floor);
}

/* B samples of input `input` of net drawn from N(0, 1) with a seeded generator (malloc'ed). */
static inline float *nn_random_batch(const avemo_net *net, int input, int B, uint64_t seed)
{
    struct avemo_rng rng;
    avemo_rng_seed(&rng, seed, 7);
    size_t n = (size_t)B * avemo_net_input_shape(net, input, NULL, NULL, NULL, NULL);
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = avemo_rng_normal(&rng);
    return x;
}

#endif
