/*
 * Evaluation metrics: accuracy, unweighted (balanced) accuracy, per-class
 * precision/recall/F1 with support, macro and weighted averages, confusion
 * matrix; McNemar's exact test and bootstrap intervals for comparisons.
 */
#include <avemo/model.h>
#include <avemo/nn.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

enum avemo_status avemo_metrics_compute(const int *truth, const int *pred, size_t n, int num_classes,
                                        const char *const *labels, struct avemo_metrics *m, struct avemo_error *err)
{
    memset(m, 0, sizeof *m);
    if (num_classes < 2 || num_classes > AVEMO_MAX_CLASSES)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "metrics: %d classes (2..%d)", num_classes, AVEMO_MAX_CLASSES);
    m->num_classes = num_classes;
    for (int k = 0; k < num_classes; k++) {
        if (labels && labels[k]) snprintf(m->labels[k], sizeof m->labels[k], "%s", labels[k]);
        else snprintf(m->labels[k], sizeof m->labels[k], "%d", k);
    }
    for (size_t i = 0; i < n; i++) {
        if (truth[i] < 0 || truth[i] >= num_classes || pred[i] < 0 || pred[i] >= num_classes)
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "metrics: item %zu has class %d/%d outside 0..%d", i, truth[i],
                              pred[i], num_classes - 1);
        m->confusion[truth[i]][pred[i]]++;
    }
    m->n = n;
    size_t correct = 0;
    int present = 0;
    for (int k = 0; k < num_classes; k++) {
        size_t tp = m->confusion[k][k], predicted = 0, actual = 0;
        for (int j = 0; j < num_classes; j++) {
            predicted += m->confusion[j][k];
            actual += m->confusion[k][j];
        }
        correct += tp;
        m->support[k] = actual;
        m->precision[k] = ratio((double)tp, (double)predicted);
        m->recall[k] = ratio((double)tp, (double)actual);
        m->f1[k] = ratio(2 * m->precision[k] * m->recall[k], m->precision[k] + m->recall[k]);
        if (actual) {
            /* Averages over the classes present in the truth, as scikit-learn's report. */
            present++;
            m->unweighted_accuracy += m->recall[k];
            m->macro_precision += m->precision[k];
            m->macro_recall += m->recall[k];
            m->macro_f1 += m->f1[k];
        }
        m->weighted_precision += m->precision[k] * (double)actual;
        m->weighted_recall += m->recall[k] * (double)actual;
        m->weighted_f1 += m->f1[k] * (double)actual;
    }
    m->accuracy = ratio((double)correct, (double)n);
    m->unweighted_accuracy = ratio(m->unweighted_accuracy, present);
    m->macro_precision = ratio(m->macro_precision, present);
    m->macro_recall = ratio(m->macro_recall, present);
    m->macro_f1 = ratio(m->macro_f1, present);
    m->weighted_precision = ratio(m->weighted_precision, (double)n);
    m->weighted_recall = ratio(m->weighted_recall, (double)n);
    m->weighted_f1 = ratio(m->weighted_f1, (double)n);
    return AVEMO_OK;
}

static cJSON *prf_object(double p, double r, double f1)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "precision", p);
    cJSON_AddNumberToObject(o, "recall", r);
    cJSON_AddNumberToObject(o, "f1", f1);
    return o;
}

char *avemo_metrics_json(const struct avemo_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)m->n);
    cJSON_AddNumberToObject(o, "accuracy", m->accuracy);
    cJSON_AddNumberToObject(o, "unweighted_accuracy", m->unweighted_accuracy);
    cJSON *labels = cJSON_AddArrayToObject(o, "labels");
    cJSON *per = cJSON_AddObjectToObject(o, "per_class");
    cJSON *conf = cJSON_AddArrayToObject(o, "confusion");
    for (int k = 0; k < m->num_classes; k++) {
        cJSON_AddItemToArray(labels, cJSON_CreateString(m->labels[k]));
        cJSON *c = prf_object(m->precision[k], m->recall[k], m->f1[k]);
        cJSON_AddNumberToObject(c, "support", (double)m->support[k]);
        cJSON_AddItemToObject(per, m->labels[k], c);
        cJSON *row = cJSON_CreateArray();
        for (int j = 0; j < m->num_classes; j++) cJSON_AddItemToArray(row, cJSON_CreateNumber((double)m->confusion[k][j]));
        cJSON_AddItemToArray(conf, row);
    }
    cJSON_AddItemToObject(o, "macro", prf_object(m->macro_precision, m->macro_recall, m->macro_f1));
    cJSON_AddItemToObject(o, "weighted", prf_object(m->weighted_precision, m->weighted_recall, m->weighted_f1));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

/* A growing text buffer for the report. */
struct text {
    char *buf;
    size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
    if (!t->buf && t->cap) return; /* an earlier allocation failed */
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int need = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (need < 0) return;
        if (t->buf && t->len + (size_t)need < t->cap) {
            t->len += (size_t)need;
            return;
        }
        size_t cap = (t->cap ? t->cap : 1024) * 2 + (size_t)need;
        char *bigger = realloc(t->buf, cap);
        if (!bigger) {
            free(t->buf);
            t->buf = NULL;
            t->cap = 1;
            return;
        }
        t->buf = bigger;
        t->cap = cap;
    }
}

char *avemo_metrics_report(const struct avemo_metrics *m)
{
    struct text t = {0};
    text_add(&t, "%12s %10s %10s %10s %10s\n\n", "", "precision", "recall", "f1-score", "support");
    for (int k = 0; k < m->num_classes; k++)
        text_add(&t, "%12s %10.2f %10.2f %10.2f %10zu\n", m->labels[k], m->precision[k], m->recall[k], m->f1[k],
                 m->support[k]);
    text_add(&t, "\n%12s %10s %10s %10.2f %10zu\n", "accuracy", "", "", m->accuracy, m->n);
    text_add(&t, "%12s %10s %10s %10.2f %10zu\n", "unweighted", "", "", m->unweighted_accuracy, m->n);
    text_add(&t, "%12s %10.2f %10.2f %10.2f %10zu\n", "macro avg", m->macro_precision, m->macro_recall, m->macro_f1, m->n);
    text_add(&t, "%12s %10.2f %10.2f %10.2f %10zu\n", "weighted avg", m->weighted_precision, m->weighted_recall,
             m->weighted_f1, m->n);
    text_add(&t, "\nconfusion matrix (rows: true, columns: predicted)\n%6s", "");
    for (int j = 0; j < m->num_classes; j++) text_add(&t, " %6s", m->labels[j]);
    text_add(&t, "\n");
    for (int k = 0; k < m->num_classes; k++) {
        text_add(&t, "%6s", m->labels[k]);
        for (int j = 0; j < m->num_classes; j++) text_add(&t, " %6zu", m->confusion[k][j]);
        text_add(&t, "\n");
    }
    return t.buf;
}

/* log of the binomial coefficient C(n, k). */
static double log_choose(size_t n, size_t k) { return lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1); }

double avemo_mcnemar(const int *truth, const int *pred_a, const int *pred_b, size_t n, size_t *only_a, size_t *only_b)
{
    size_t b = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        int ra = pred_a[i] == truth[i], rb = pred_b[i] == truth[i];
        b += ra && !rb;
        c += rb && !ra;
    }
    if (only_a) *only_a = b;
    if (only_b) *only_b = c;
    size_t d = b + c, lo = b < c ? b : c;
    if (d == 0) return 1.0;
    /* Exact: under H0 the discordant pairs split as Binomial(d, 1/2). */
    double p = 0;
    for (size_t k = 0; k <= lo; k++) p += exp(log_choose(d, k) - (double)d * log(2.0));
    p *= 2;
    return p > 1 ? 1 : p;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

void avemo_bootstrap_accuracy(const int *truth, const int *pred, size_t n, int iterations, uint64_t seed, double *low,
                              double *high)
{
    *low = *high = 0;
    if (n == 0 || iterations < 10) return;
    double *acc = malloc(sizeof(double) * (size_t)iterations);
    if (!acc) return;
    struct avemo_rng rng;
    avemo_rng_seed(&rng, seed, 0xb007);
    for (int it = 0; it < iterations; it++) {
        size_t correct = 0;
        for (size_t i = 0; i < n; i++) {
            size_t j = avemo_rng_below(&rng, (uint32_t)n);
            correct += truth[j] == pred[j];
        }
        acc[it] = (double)correct / (double)n;
    }
    qsort(acc, (size_t)iterations, sizeof(double), cmp_double);
    *low = acc[(size_t)(0.025 * (iterations - 1) + 0.5)];
    *high = acc[(size_t)(0.975 * (iterations - 1) + 0.5)];
    free(acc);
}
