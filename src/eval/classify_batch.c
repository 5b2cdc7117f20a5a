/* `avemo classify` over many files, one shard of them: each file's line goes through the
 * shard runner of core (restart, one output per shard, merge). */
#include <avemo/eval.h>

#include <stdlib.h>

struct batch_run {
    avemo_classify_ctx *ctx;
    const struct avemo_classify_batch *b;
    size_t failed;
    struct avemo_prediction pred; /* ~13 KB: here rather than on the stack */
};

static enum avemo_status batch_item(void *user, const char *item, char **line, float **block, struct avemo_error *err)
{
    (void)block;
    struct batch_run *r = user;
    const struct avemo_classify_batch *b = r->b;
    struct avemo_error item_err = {0};
    if (avemo_classify_file(r->ctx, item, b->mode, &r->pred, &item_err)) {
        r->failed++;
        if (b->on_error) b->on_error(b->user, item, &item_err);
        if (b->format_error) *line = b->format_error(b->user, item, &item_err);
        else if (!b->out_path) return AVEMO_OK; /* stdout: the message is all */
        else *line = avemo_item_error_json(item, &item_err);
    } else {
        *line = b->format ? b->format(b->user, &r->pred, item) : avemo_prediction_json(&r->pred, item);
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
    struct avemo_shard_job job = {0};
    job.items = batch->items;
    job.n = batch->n;
    job.shard = batch->shard;
    job.out_path = batch->out_path;
    job.header = batch->header;
    job.fn = batch_item;
    job.user = r;
    enum avemo_status s = avemo_shard_run(&job, stats, err);
    *failed = r->failed;
    free(r);
    return s;
}
