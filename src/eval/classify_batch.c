/* `avemo classify` over many files, one shard of them: each file's line goes through the
 * shard runner of core (restart, one output per shard, merge).
 *
 * With more than one worker, helper threads (each with its own context) classify the files
 * that follow while the runner's thread classifies one: in rounds of `workers` files, the
 * runner's thread takes the first and the helpers the others, and the runner writes each file's
 * line in order, as without helpers.  The lines are the same: every file is classified alone, by
 * the same models.  The format and error callbacks run on the runner's thread only. */
#include "eval/eval_internal.h"

#include <stdlib.h>
#include <string.h>

#define BATCH_MAX_WORKERS 8

enum helper_state { HELPER_IDLE, HELPER_WORKING, HELPER_DONE };

struct helper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    avemo_classify_ctx *ctx;
    const struct avemo_classify_batch *b;
    enum helper_state state;
    int quit;
    size_t index;                 /* the item it works on or has done */
    enum avemo_status status;
    struct avemo_error err;
    struct avemo_prediction pred; /* ~13 KB */
};

struct batch_run {
    avemo_classify_ctx *ctx;
    const struct avemo_classify_batch *b;
    size_t failed, end;           /* end: the shard's end (an index into b->items) */
    struct helper *helpers;
    int nhelpers;
    struct avemo_prediction pred; /* ~13 KB: here rather than on the stack */
};

/* --- helpers ------------------------------------------------------------------------ */

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (h->state != HELPER_WORKING && !h->quit) pthread_cond_wait(&h->cond, &h->lock);
        if (h->quit) break;
        const char *item = h->b->items[h->index];
        pthread_mutex_unlock(&h->lock);
        struct avemo_error err = {0};
        enum avemo_status st = avemo_classify_file(h->ctx, item, h->b->mode, &h->pred, &err);
        pthread_mutex_lock(&h->lock);
        h->status = st;
        h->err = err;
        h->state = HELPER_DONE;
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* Wait until helper h has finished what it was given; its state then (DONE or IDLE). */
static enum helper_state helper_wait(struct helper *h)
{
    pthread_mutex_lock(&h->lock);
    while (h->state == HELPER_WORKING) pthread_cond_wait(&h->cond, &h->lock);
    enum helper_state state = h->state;
    pthread_mutex_unlock(&h->lock);
    return state;
}

static void helper_release(struct helper *h)
{
    pthread_mutex_lock(&h->lock);
    h->state = HELPER_IDLE;
    pthread_mutex_unlock(&h->lock);
}

static int helper_idle(struct helper *h)
{
    pthread_mutex_lock(&h->lock);
    int idle = h->state == HELPER_IDLE;
    pthread_mutex_unlock(&h->lock);
    return idle;
}

static void helper_give(struct helper *h, size_t index)
{
    pthread_mutex_lock(&h->lock);
    h->index = index;
    h->state = HELPER_WORKING;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

/* Up to workers - 1 helpers, each with a context of ctx's classifier; fewer when one cannot be
 * made (the batch still runs, slower). */
static void start_helpers(struct batch_run *r, int workers)
{
    if (workers <= 1) return;
    r->helpers = calloc((size_t)workers - 1, sizeof *r->helpers);
    if (!r->helpers) return;
    for (int i = 0; i < workers - 1; i++) {
        struct helper *h = &r->helpers[i];
        h->b = r->b;
        if (avemo_classify_ctx_new(classify_ctx_classifier(r->ctx), &h->ctx, NULL)) break;
        avemo_classify_ctx_set_overlap(h->ctx, 0); /* the cores are busy with files already */
        pthread_mutex_init(&h->lock, NULL);
        pthread_cond_init(&h->cond, NULL);
        if (pthread_create(&h->thread, NULL, helper_main, h) != 0) {
            pthread_mutex_destroy(&h->lock);
            pthread_cond_destroy(&h->cond);
            avemo_classify_ctx_free(h->ctx);
            break;
        }
        r->nhelpers++;
    }
}

static void stop_helpers(struct batch_run *r)
{
    for (int i = 0; i < r->nhelpers; i++) {
        struct helper *h = &r->helpers[i];
        pthread_mutex_lock(&h->lock);
        h->quit = 1;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->cond);
        avemo_classify_ctx_free(h->ctx);
    }
    free(r->helpers);
}

/* --- one item ------------------------------------------------------------------------ */

/* The helper that has item index (waited for), or NULL; helpers holding items the runner has
 * passed (done by an earlier run of the shard) are waited for and freed. */
static struct helper *helper_with(struct batch_run *r, size_t index)
{
    struct helper *found = NULL;
    for (int i = 0; i < r->nhelpers; i++) {
        struct helper *h = &r->helpers[i];
        /* index is the runner's thread's to write (helper_give): read it without the lock */
        if (helper_wait(h) == HELPER_IDLE || h->index > index) continue;
        if (h->index == index) found = h;
        else helper_release(h);
    }
    return found;
}

/* Classify item index: a helper's answer, or here, after the helpers got the items after it. */
static enum avemo_status classify_item(struct batch_run *r, size_t index, const struct avemo_prediction **pred,
                                       struct avemo_error *err)
{
    struct helper *h = helper_with(r, index);
    if (h) {
        helper_release(h); /* given nothing new before the runner has written its line */
        *pred = &h->pred;
        *err = h->err;
        return h->status;
    }
    size_t next = index + 1;
    for (int i = 0; i < r->nhelpers && next < r->end; i++)
        if (helper_idle(&r->helpers[i])) helper_give(&r->helpers[i], next++);
    *pred = &r->pred;
    return avemo_classify_file(r->ctx, r->b->items[index], r->b->mode, &r->pred, err);
}

static enum avemo_status batch_item(void *user, size_t index, const char *item, char **line, float **block,
                                    struct avemo_error *err)
{
    (void)block;
    struct batch_run *r = user;
    const struct avemo_classify_batch *b = r->b;
    struct avemo_error item_err = {0};
    const struct avemo_prediction *pred = &r->pred;
    enum avemo_status st = classify_item(r, index, &pred, &item_err);
    if (st) {
        r->failed++;
        if (b->on_error) b->on_error(b->user, item, &item_err);
        if (b->format_error) *line = b->format_error(b->user, item, &item_err);
        else if (!b->out_path) return AVEMO_OK; /* stdout: the message is all */
        else *line = avemo_item_error_json(item, &item_err);
    } else {
        *line = b->format ? b->format(b->user, pred, item) : avemo_prediction_json(pred, item);
    }
    return *line ? AVEMO_OK : avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", item);
}

enum avemo_status avemo_classify_batch(avemo_classify_ctx *ctx, const struct avemo_classify_batch *batch,
                                       struct avemo_shard_stats *stats, size_t *failed, struct avemo_error *err)
{
    struct batch_run *r = calloc(1, sizeof *r);
    if (!r) return avemo_fail(err, AVEMO_ERR_NOMEM, "classify: out of memory");
    r->ctx = ctx;
    r->b = batch;
    size_t begin;
    avemo_shard_range(&batch->shard, batch->n, &begin, &r->end);
    int workers = batch->workers > 0 ? batch->workers : avemo_usable_cpus();
    if (workers > BATCH_MAX_WORKERS) workers = BATCH_MAX_WORKERS;
    if ((size_t)workers > r->end - begin) workers = (int)(r->end - begin);
    /* several files at once keep the cores busy: no second thread inside one file */
    int overlap = workers > 1 ? avemo_classify_ctx_set_overlap(ctx, 0) : -1;
    start_helpers(r, workers);
    struct avemo_shard_job job = {0};
    job.items = batch->items;
    job.n = batch->n;
    job.shard = batch->shard;
    job.out_path = batch->out_path;
    job.header = batch->header;
    job.fn = batch_item;
    job.user = r;
    enum avemo_status s = avemo_shard_run(&job, stats, err);
    stop_helpers(r);
    if (overlap >= 0) avemo_classify_ctx_set_overlap(ctx, overlap);
    *failed = r->failed;
    free(r);
    return s;
}
