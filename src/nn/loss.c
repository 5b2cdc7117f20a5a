/* Softmax cross-entropy with class weights and label smoothing, as
 * torch.nn.CrossEntropyLoss(weight=w, label_smoothing=e, reduction='mean'):
 *   S    = sum_i w[y_i]
 *   loss = 1/S * sum_i [ (1-e) w[y_i] (-log p_i,y_i) + e/C * sum_c w[c] (-log p_i,c) ]
 * and its gradient with respect to the logits:
 *   dz_ij = 1/S * [ (1-e) w[y_i] (p_ij - [j == y_i]) + e/C (p_ij * sum_c w[c] - w[j]) ] */
#include "nn/nn_internal.h"

#include <math.h>

void avemo_nn_softmax(const float *logits, int batch, int classes, float *probs)
{
    for (int n = 0; n < batch; n++) {
        const float *z = logits + (size_t)n * classes;
        float *p = probs + (size_t)n * classes;
        float mx = z[0];
        for (int c = 1; c < classes; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0.0;
        for (int c = 0; c < classes; c++) {
            p[c] = expf(z[c] - mx);
            sum += p[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < classes; c++) p[c] *= inv;
    }
}

float nn_softmax_xent(const float *logits, const int *labels, int B, int C, const float *class_weights,
                      float label_smoothing, float *probs, float *dlogits)
{
    const double e = label_smoothing;
    double wsum_classes = 0.0, S = 0.0, total = 0.0;
    for (int c = 0; c < C; c++) wsum_classes += class_weights ? class_weights[c] : 1.0;
    for (int n = 0; n < B; n++) S += class_weights ? class_weights[labels[n]] : 1.0;
    for (int n = 0; n < B; n++) {
        const float *z = logits + (size_t)n * C;
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0.0;
        for (int c = 0; c < C; c++) sum += exp((double)z[c] - mx);
        double lse = mx + log(sum);
        int y = labels[n];
        double wy = class_weights ? class_weights[y] : 1.0;
        double smooth = 0.0;
        for (int c = 0; c < C; c++) smooth += (class_weights ? class_weights[c] : 1.0) * (lse - z[c]);
        total += (1.0 - e) * wy * (lse - z[y]) + e / C * smooth;
        for (int c = 0; c < C; c++) probs[(size_t)n * C + c] = (float)exp((double)z[c] - lse);
    }
    if (dlogits) {
        for (int n = 0; n < B; n++) {
            int y = labels[n];
            double wy = class_weights ? class_weights[y] : 1.0;
            for (int c = 0; c < C; c++) {
                double p = probs[(size_t)n * C + c];
                double wc = class_weights ? class_weights[c] : 1.0;
                double g = (1.0 - e) * wy * (p - (c == y)) + e / C * (p * wsum_classes - wc);
                dlogits[(size_t)n * C + c] = (float)(g / S);
            }
        }
    }
    return (float)(total / S);
}

/* Cross-entropy against probability targets q (B x C), mean over samples, as
 * torch.nn.CrossEntropyLoss()(z, q):
 *   loss  = 1/B * sum_n sum_c -q_nc log p_nc
 *   dz_nj = 1/B * (p_nj * sum_c q_nc - q_nj)
 * The gradient times scale is ADDED to dlogits (when non-NULL), so that it can join another loss's. */
float nn_softmax_soft_xent(const float *logits, const float *targets, int B, int C, float *probs, float scale,
                           float *dlogits)
{
    double total = 0.0;
    for (int n = 0; n < B; n++) {
        const float *z = logits + (size_t)n * C, *q = targets + (size_t)n * C;
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0.0, qsum = 0.0;
        for (int c = 0; c < C; c++) sum += exp((double)z[c] - mx);
        const double lse = mx + log(sum);
        for (int c = 0; c < C; c++) {
            total += q[c] * (lse - z[c]);
            qsum += q[c];
            probs[(size_t)n * C + c] = (float)exp((double)z[c] - lse);
        }
        if (dlogits)
            for (int c = 0; c < C; c++)
                dlogits[(size_t)n * C + c] += (float)(scale * (probs[(size_t)n * C + c] * qsum - q[c]) / B);
    }
    return (float)(total / B);
}
