/* Counters of the service and their Prometheus text exposition (GET /metrics).
 * Everything lives in the server's struct serve_metrics behind one mutex: an update is
 * a few additions, far cheaper than the request it counts. */
#include "serve/serve_internal.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const endpoint_names[SERVE_EP_COUNT] = {
    "predict", "models", "history", "history_item", "healthz", "readyz", "metrics", "web", "other", "openapi",
    "model_card",
};

/* HTTP statuses the server answers; anything else is counted in the last slot. */
static const unsigned status_slots[SERVE_STATUS_SLOTS - 1] = {200, 204, 400, 401, 404, 405, 408,
                                                               413, 415, 422, 500, 503};

static const double latency_bounds[SERVE_LATENCY_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                             0.25,  0.5,   1,    2.5,   5,    10};

const char *serve_endpoint_name(enum serve_endpoint ep)
{
    return (unsigned)ep < SERVE_EP_COUNT ? endpoint_names[ep] : "other";
}

void serve_metrics_init(struct serve_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void serve_metrics_destroy(struct serve_metrics *m) { pthread_mutex_destroy(&m->lock); }

static int status_slot(unsigned status)
{
    for (int i = 0; i < SERVE_STATUS_SLOTS - 1; i++)
        if (status_slots[i] == status) return i;
    return SERVE_STATUS_SLOTS - 1;
}

void serve_metrics_request(struct serve_metrics *m, enum serve_endpoint ep, unsigned status, double seconds)
{
    if ((unsigned)ep >= SERVE_EP_COUNT) ep = SERVE_EP_OTHER;
    int b = 0;
    while (b < SERVE_LATENCY_BUCKETS && seconds > latency_bounds[b]) b++;
    pthread_mutex_lock(&m->lock);
    m->requests[ep][status_slot(status)]++;
    if (b < SERVE_LATENCY_BUCKETS) m->latency_le[ep][b]++;
    else m->latency_inf[ep]++;
    m->latency_sum[ep] += seconds;
    if (status == 503) m->rejected_busy++;
    pthread_mutex_unlock(&m->lock);
}

static void histogram_add(struct serve_histogram *h, double seconds)
{
    int b = 0;
    while (b < SERVE_LATENCY_BUCKETS && seconds > latency_bounds[b]) b++;
    if (b < SERVE_LATENCY_BUCKETS) h->le[b]++;
    else h->inf++;
    h->sum += seconds;
}

void serve_metrics_work(struct serve_metrics *m, double queue_wait_s, double inference_s)
{
    pthread_mutex_lock(&m->lock);
    histogram_add(&m->queue_wait, queue_wait_s);
    histogram_add(&m->inference, inference_s);
    pthread_mutex_unlock(&m->lock);
}

/* The slot of the answering model, added with its labels the first time; -1 when full. */
static int answer_slot(struct serve_metrics *m, const struct avemo_prediction *pred)
{
    char name[sizeof pred->model + 1];
    snprintf(name, sizeof name, "%.*s", (int)sizeof pred->model, pred->model);
    for (int i = 0; i < SERVE_ANSWER_MODELS; i++) {
        if (m->answer_model[i][0] == '\0') {
            snprintf(m->answer_model[i], sizeof m->answer_model[i], "%s", name);
            m->answer_classes[i] = pred->num_classes;
            for (int k = 0; k < pred->num_classes; k++)
                snprintf(m->answer_labels[i][k], sizeof m->answer_labels[i][k], "%.*s", (int)sizeof pred->labels[k],
                         pred->labels[k]);
            return i;
        }
        if (strcmp(m->answer_model[i], name) == 0) return i;
    }
    return -1;
}

void serve_metrics_prediction(struct serve_metrics *m, const struct avemo_prediction *pred)
{
    if ((unsigned)pred->mode_used > 2 || pred->label < 0 || pred->label >= pred->num_classes ||
        pred->num_classes > AVEMO_MAX_CLASSES || !pred->model[0])
        return;
    pthread_mutex_lock(&m->lock);
    int slot = answer_slot(m, pred);
    if (slot >= 0 && m->answer_classes[slot] == pred->num_classes) m->predictions[slot][pred->mode_used][pred->label]++;
    pthread_mutex_unlock(&m->lock);
}

/* A growing text buffer; on allocation failure it stays failed and the caller answers 500. */
struct text {
    char *buf;
    size_t len, cap;
    int failed;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 8192;
        while (cap <= t->len + (size_t)n) cap *= 2;
        char *bigger = realloc(t->buf, cap);
        if (!bigger) {
            t->failed = 1;
            return;
        }
        t->buf = bigger;
        t->cap = cap;
    }
}

static void status_label(unsigned slot, char out[8])
{
    if (slot < SERVE_STATUS_SLOTS - 1) snprintf(out, 8, "%u", status_slots[slot]);
    else snprintf(out, 8, "other");
}

static void render_requests(struct text *t, const struct serve_metrics *m)
{
    text_printf(t, "# HELP avemo_http_requests_total HTTP requests answered, by endpoint and status.\n"
                   "# TYPE avemo_http_requests_total counter\n");
    for (int ep = 0; ep < SERVE_EP_COUNT; ep++)
        for (int s = 0; s < SERVE_STATUS_SLOTS; s++) {
            if (!m->requests[ep][s]) continue;
            char status[8];
            status_label((unsigned)s, status);
            text_printf(t, "avemo_http_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n", endpoint_names[ep],
                        status, (unsigned long long)m->requests[ep][s]);
        }
    text_printf(t, "# HELP avemo_http_request_duration_seconds Time from the request's headers to its answer.\n"
                   "# TYPE avemo_http_request_duration_seconds histogram\n");
    for (int ep = 0; ep < SERVE_EP_COUNT; ep++) {
        uint64_t cumulative = 0;
        for (int b = 0; b < SERVE_LATENCY_BUCKETS; b++) cumulative += m->latency_le[ep][b];
        if (cumulative + m->latency_inf[ep] == 0) continue;
        cumulative = 0;
        for (int b = 0; b < SERVE_LATENCY_BUCKETS; b++) {
            cumulative += m->latency_le[ep][b];
            text_printf(t, "avemo_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
                        endpoint_names[ep], latency_bounds[b], (unsigned long long)cumulative);
        }
        cumulative += m->latency_inf[ep];
        text_printf(t, "avemo_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
                    endpoint_names[ep], (unsigned long long)cumulative);
        text_printf(t, "avemo_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", endpoint_names[ep],
                    m->latency_sum[ep]);
        text_printf(t, "avemo_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", endpoint_names[ep],
                    (unsigned long long)cumulative);
    }
}

static void render_predictions(struct text *t, const struct serve_metrics *m)
{
    text_printf(t, "# HELP avemo_predictions_total Predictions answered, by the model that answered (an extra "
                   "model after a fallback), mode used and label.\n"
                   "# TYPE avemo_predictions_total counter\n");
    for (int i = 0; i < SERVE_ANSWER_MODELS && m->answer_model[i][0]; i++)
        for (int mode = 0; mode < 3; mode++)
            for (int k = 0; k < m->answer_classes[i]; k++)
                if (m->predictions[i][mode][k])
                    text_printf(t, "avemo_predictions_total{model=\"%s\",mode=\"%s\",label=\"%s\"} %llu\n",
                                m->answer_model[i], avemo_mode_name((enum avemo_mode)mode), m->answer_labels[i][k],
                                (unsigned long long)m->predictions[i][mode][k]);
}

static void render_histogram(struct text *t, const char *name, const char *help, const struct serve_histogram *h)
{
    text_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (int b = 0; b < SERVE_LATENCY_BUCKETS; b++) {
        cumulative += h->le[b];
        text_printf(t, "%s_bucket{le=\"%g\"} %llu\n", name, latency_bounds[b], (unsigned long long)cumulative);
    }
    cumulative += h->inf;
    text_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                (unsigned long long)cumulative, name, h->sum, name, (unsigned long long)cumulative);
}

/* Constant 1 with the versions as labels (the Prometheus convention for build facts). */
static void render_build_info(struct text *t)
{
    unsigned f = avformat_version(), c = avcodec_version();
    text_printf(t, "# HELP avemo_build_info avemo's version and the FFmpeg libraries it runs with.\n"
                   "# TYPE avemo_build_info gauge\n"
                   "avemo_build_info{version=\"%s\",libavformat=\"%u.%u.%u\",libavcodec=\"%u.%u.%u\"} 1\n",
                avemo_version(), f >> 16, (f >> 8) & 0xff, f & 0xff, c >> 16, (c >> 8) & 0xff, c & 0xff);
}

char *serve_metrics_text(struct avemo_server *srv)
{
    struct text t = {0};
    struct serve_metrics *m = &srv->metrics;
    pthread_mutex_lock(&m->lock);
    render_requests(&t, m);
    render_predictions(&t, m);
    render_histogram(&t, "avemo_queue_wait_seconds", "Time an upload waited in the queue for a worker.",
                     &m->queue_wait);
    render_histogram(&t, "avemo_inference_duration_seconds",
                     "A worker's time for one upload: decoding, features, faces and the network.", &m->inference);
    uint64_t rejected = m->rejected_busy;
    pthread_mutex_unlock(&m->lock);

    pthread_mutex_lock(&srv->qlock);
    int depth = srv->qcount, busy = srv->busy, workers = srv->num_workers;
    pthread_mutex_unlock(&srv->qlock);
    render_build_info(&t);
    text_printf(&t,
                "# HELP avemo_queue_depth Uploads waiting for an inference worker.\n"
                "# TYPE avemo_queue_depth gauge\navemo_queue_depth %d\n"
                "# HELP avemo_queue_capacity Uploads that may wait before the server answers 503.\n"
                "# TYPE avemo_queue_capacity gauge\navemo_queue_capacity %d\n"
                "# HELP avemo_workers_busy Inference workers running a prediction.\n"
                "# TYPE avemo_workers_busy gauge\navemo_workers_busy %d\n"
                "# HELP avemo_workers Inference workers.\n"
                "# TYPE avemo_workers gauge\navemo_workers %d\n"
                "# HELP avemo_http_unavailable_total Requests answered 503 (queue full, not ready, decode time limit).\n"
                "# TYPE avemo_http_unavailable_total counter\navemo_http_unavailable_total %llu\n"
                "# HELP avemo_http_deadline_cut_total Connections shut down at the request deadline.\n"
                "# TYPE avemo_http_deadline_cut_total counter\navemo_http_deadline_cut_total %llu\n"
                "# HELP avemo_ready 1 when a model is loaded and the workers run.\n"
                "# TYPE avemo_ready gauge\navemo_ready %d\n",
                depth, srv->qcap, busy, workers, (unsigned long long)rejected,
                (unsigned long long)serve_deadlines_cut(srv), atomic_load(&srv->ready));
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
