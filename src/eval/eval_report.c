/* Reports of an evaluation over several --data: the whole, then each corpus on its own
 * (cross-corpus evaluation), with the files that could not be read named and the labels
 * the model's classes leave out counted. */
#include <avemo/eval.h>

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "calibration": ECE over AVEMO_EVAL_ECE_BINS equal-width bins, NLL, mean confidence and the
 * reliability table (absent for merged shards, which keep no probabilities). */
static void add_calibration_json(cJSON *o, const struct avemo_eval_set *set, int r)
{
    struct avemo_reliability rel;
    if (avemo_eval_reliability(set, r, AVEMO_EVAL_ECE_BINS, &rel, NULL) != AVEMO_OK) return;
    cJSON *c = cJSON_AddObjectToObject(o, "calibration");
    cJSON_AddNumberToObject(c, "ece", rel.ece);
    cJSON_AddNumberToObject(c, "mce", rel.mce);
    cJSON_AddNumberToObject(c, "bins", rel.bins);
    cJSON_AddStringToObject(c, "binning", "equal-width over [0, 1] of the top probability");
    cJSON_AddNumberToObject(c, "nll", rel.nll);
    cJSON_AddNumberToObject(c, "mean_confidence", rel.confidence_all);
    const struct avemo_eval_result *res = &set->results[r];
    if (res->w_audio > 0 || res->w_face > 0) {
        cJSON_AddNumberToObject(c, "w_audio", res->w_audio);
        cJSON_AddNumberToObject(c, "w_face", res->w_face);
    }
    if (res->has_prior) { /* the class shares each model learnt, divided out before fusing */
        cJSON_AddItemToObject(c, "prior_audio", cJSON_CreateFloatArray(res->prior, set->num_classes));
        cJSON_AddItemToObject(c, "prior_face", cJSON_CreateFloatArray(res->prior + set->num_classes, set->num_classes));
    }
    cJSON *bins = cJSON_AddArrayToObject(c, "reliability");
    for (int b = 0; b < rel.bins; b++) {
        cJSON *one = cJSON_CreateObject();
        cJSON_AddNumberToObject(one, "low", (double)b / rel.bins);
        cJSON_AddNumberToObject(one, "high", (double)(b + 1) / rel.bins);
        cJSON_AddNumberToObject(one, "n", (double)rel.count[b]);
        cJSON_AddNumberToObject(one, "confidence", rel.confidence[b]);
        cJSON_AddNumberToObject(one, "accuracy", rel.accuracy[b]);
        cJSON_AddItemToArray(bins, one);
    }
}

/* What the training records left out: "left_out_trained" (count), "no_training_record" (the
 * models that could not be checked) and the sentence of avemo_eval_record_note. */
static void add_record_fields(cJSON *o, const struct avemo_eval_set *set)
{
    char note[700];
    avemo_eval_record_note(set, note, sizeof note);
    cJSON_AddNumberToObject(o, "left_out_trained", (double)set->trained_on);
    cJSON_AddNumberToObject(o, "kept_same_name", (double)set->same_name);
    cJSON *missing = cJSON_AddArrayToObject(o, "no_training_record");
    char list[sizeof set->unchecked];
    snprintf(list, sizeof list, "%s", set->unchecked);
    char *save = NULL;
    for (char *name = strtok_r(list, ", ", &save); name; name = strtok_r(NULL, ", ", &save))
        cJSON_AddItemToArray(missing, cJSON_CreateString(name));
    cJSON_AddStringToObject(o, "training_record", note);
}

char *avemo_eval_set_json(const struct avemo_eval_set *set, int r)
{
    if (!set || r < 0 || r >= set->nresults) return NULL;
    char *whole = avemo_metrics_json(&set->results[r].metrics);
    cJSON *o = whole ? cJSON_Parse(whole) : NULL;
    free(whole);
    if (!o) return NULL;
    /* what was measured: the file, or late(AUDIO,FACE) when the answers are late fusion's */
    cJSON_AddStringToObject(o, "model", set->results[r].model);
    cJSON_AddNumberToObject(o, "skipped", (double)set->skipped);
    cJSON *files = cJSON_AddArrayToObject(o, "skipped_files");
    for (size_t i = 0; i < set->nfailures; i++) cJSON_AddItemToArray(files, cJSON_CreateString(set->failures[i]));
    cJSON_AddStringToObject(o, "dropped_labels", set->dropped);
    add_calibration_json(o, set, r);
    add_record_fields(o, set);
    cJSON *per = cJSON_AddArrayToObject(o, "per_data");
    for (int s = 0; s < set->nsources; s++) {
        struct avemo_metrics m;
        cJSON *one = NULL;
        if (avemo_eval_source_metrics(set, r, s, &m, NULL) == AVEMO_OK && m.n) {
            char *text = avemo_metrics_json(&m);
            one = text ? cJSON_Parse(text) : NULL;
            free(text);
        }
        if (!one) {
            one = cJSON_CreateObject();
            cJSON_AddNumberToObject(one, "n", 0);
        }
        cJSON_AddStringToObject(one, "data", set->source_path[s]);
        cJSON_AddStringToObject(one, "corpus", set->source_corpus[s]);
        cJSON_AddItemToArray(per, one);
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

/* Append printf-style text to a growing buffer; returns 0 when out of memory. */
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return 0;
    if (*len + (size_t)need + 1 > *cap) {
        size_t bigger = (*cap ? *cap * 2 : 1024) + (size_t)need;
        char *b = realloc(*buf, bigger);
        if (!b) return 0;
        *buf = b;
        *cap = bigger;
    }
    va_start(ap, fmt);
    vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)need;
    return 1;
}

char *avemo_eval_set_report(const struct avemo_eval_set *set, int r)
{
    if (!set || r < 0 || r >= set->nresults) return NULL;
    const struct avemo_eval_result *res = &set->results[r];
    char *whole = avemo_metrics_report(&res->metrics);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char note[700];
    avemo_eval_record_note(set, note, sizeof note);
    int ok = whole && append(&buf, &len, &cap, "model: %s (%zu test units, %zu items skipped)\n%s%s\n%s", res->model,
                             set->n, set->skipped, note, note[0] ? "\n" : "", whole);
    free(whole);
    struct avemo_reliability rel;
    if (ok && avemo_eval_reliability(set, r, AVEMO_EVAL_ECE_BINS, &rel, NULL) == AVEMO_OK)
        ok = append(&buf, &len, &cap, "\ncalibration: ECE %.3f (%d equal-width bins), NLL %.3f, mean confidence %.1f%%\n",
                    rel.ece, rel.bins, rel.nll, 100 * rel.confidence_all);
    if (ok && set->dropped[0]) ok = append(&buf, &len, &cap, "\nlabels without a class, left out: %s\n", set->dropped);
    if (ok && set->nsources > 1) {
        ok = append(&buf, &len, &cap, "\nper data:\n  %-50s %-9s %6s %9s %11s\n", "data", "corpus", "n", "accuracy",
                    "unweighted");
        for (int s = 0; ok && s < set->nsources; s++) {
            struct avemo_metrics m;
            if (avemo_eval_source_metrics(set, r, s, &m, NULL) != AVEMO_OK) continue;
            if (m.n)
                ok = append(&buf, &len, &cap, "  %-50s %-9s %6zu %8.1f%% %10.1f%%\n", set->source_path[s],
                            set->source_corpus[s], m.n, 100 * m.accuracy, 100 * m.unweighted_accuracy);
            else
                ok = append(&buf, &len, &cap, "  %-50s %-9s %6d %9s %11s\n", set->source_path[s], set->source_corpus[s], 0,
                            "-", "-");
        }
    }
    for (size_t i = 0; ok && i < set->nfailures; i++)
        ok = append(&buf, &len, &cap, "%sskipped %s\n", i ? "" : "\n", set->failures[i]);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}
