/*
 * Calibration of evaluated results: the reliability of a result's probabilities (ECE), and
 * late fusion of an audio model's and a face model's results on the same units (label-matched
 * pairs), added to the set as one more result.
 */
#include <avemo/eval.h>
#include <avemo/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum avemo_status avemo_eval_reliability(const struct avemo_eval_set *set, int r, int bins, struct avemo_reliability *rel,
                                         struct avemo_error *err)
{
    memset(rel, 0, sizeof *rel);
    if (r < 0 || r >= set->nresults || !set->results[r].probs)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "eval: result %d has no probabilities (merged shards keep none)", r);
    return avemo_reliability_compute(set->results[r].probs, set->truth, set->n, set->num_classes, bins, rel, err);
}

static int result_mode(const struct avemo_eval_set *set, int r) { return r >= 0 && r < set->nresults ? set->results[r].mode : -1; }

enum avemo_status avemo_eval_add_late_fusion(struct avemo_eval_set *set, int r_audio, int r_face,
                                             const struct avemo_late_fusion *fusion, struct avemo_error *err)
{
    if (result_mode(set, r_audio) != 1 || result_mode(set, r_face) != 2)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "late fusion needs an audio model's and a face model's results");
    if (!set->results[r_audio].probs || !set->results[r_face].probs)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "late fusion: the results have no probabilities");
    struct avemo_eval_result *grown = realloc(set->results, sizeof *grown * (size_t)(set->nresults + 1));
    if (!grown) return avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    set->results = grown;
    struct avemo_eval_result *out = &set->results[set->nresults], *a = &set->results[r_audio], *f = &set->results[r_face];
    memset(out, 0, sizeof *out);
    int k = set->num_classes;
    out->pred = malloc(sizeof(int) * (set->n + 1));
    out->probs = malloc(sizeof(float) * (set->n + 1) * (size_t)k);
    if (!out->pred || !out->probs) {
        free(out->pred);
        free(out->probs);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "eval: out of memory");
    }
    set->nresults++;
    char name[sizeof out->model];
    snprintf(name, sizeof name, "late(%.20s,%.20s)", a->model, f->model);
    memcpy(out->model, name, sizeof name);
    out->mode = AVEMO_MODE_AV;
    out->w_audio = fusion->w_audio;
    out->w_face = fusion->w_face;
    out->has_prior = fusion->prior != NULL;
    if (fusion->prior) memcpy(out->prior, fusion->prior, sizeof(float) * 2 * (size_t)k);
    for (size_t u = 0; u < set->n; u++) {
        float *p = out->probs + u * (size_t)k;
        avemo_fuse_late(a->probs + u * (size_t)k, f->probs + u * (size_t)k, k, fusion, p);
        int best = 0;
        for (int c = 1; c < k; c++)
            if (p[c] > p[best]) best = c;
        out->pred[u] = best;
    }
    const char *labels[AVEMO_MAX_CLASSES];
    for (int c = 0; c < k; c++) labels[c] = set->labels[c];
    return avemo_metrics_compute(set->truth, out->pred, set->n, k, labels, &out->metrics, err);
}
