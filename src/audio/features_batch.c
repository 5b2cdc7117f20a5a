/* `avemo features` over many files, one shard of them: each file's features become one
 * block of the shard's .npy and one line of its index, through the shard runner of core. */
#include <avemo/audio.h>

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct features_run {
    avemo_audio_extractor *ex;
    const struct avemo_audio_batch *b;
    size_t rows, frames;
    size_t failed;
};

static enum avemo_status features_item(void *user, size_t index, const char *item, char **line, float **block,
                                       struct avemo_error *err)
{
    (void)index;
    struct features_run *r = user;
    struct avemo_error item_err = {0};
    avemo_media *media = NULL;
    float *x = NULL;
    size_t cols = 0, valid = 0;
    if (!avemo_media_open_file(item, r->b->media_options, &media, &item_err))
        avemo_audio_features_from_media(r->ex, media, &x, &cols, &valid, &item_err);
    avemo_media_close(media);
    if (x && cols != r->frames) { /* not expected with a fixed width */
        free(x);
        x = NULL;
        avemo_fail(&item_err, AVEMO_ERR_MISMATCH, "%s: %zu frames, expected %zu", item, cols, r->frames);
    }
    if (!x) {
        r->failed++;
        fprintf(stderr, "avemo: %s\n", item_err.message);
        *line = avemo_item_error_json(item, &item_err);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", item);
        cJSON_AddNumberToObject(o, "valid_frames", (double)valid);
        *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        *block = x;
    }
    return *line ? AVEMO_OK : avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", item);
}

enum avemo_status avemo_audio_features_batch(avemo_audio_extractor *ex, const struct avemo_audio_batch *batch,
                                             struct avemo_shard_stats *stats, size_t *failed,
                                             struct avemo_error *err)
{
    const struct avemo_audio_params *p = avemo_audio_extractor_params(ex);
    *failed = 0;
    memset(stats, 0, sizeof *stats);
    if (p->frames <= 0)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "features: many files need a fixed width (frames=N, not all)");
    struct features_run r = {ex, batch, (size_t)avemo_audio_feature_count(ex), (size_t)p->frames, 0};
    char lines[4200], npy[4200];
    enum avemo_status s = avemo_shard_path(batch->out_dir, "features", &batch->shard, ".jsonl", lines, sizeof lines, err);
    if (!s) s = avemo_shard_path(batch->out_dir, "features", &batch->shard, ".npy", npy, sizeof npy, err);
    if (s) return s;
    struct avemo_shard_job job = {0};
    job.items = batch->items;
    job.n = batch->n;
    job.shard = batch->shard;
    job.out_path = lines;
    job.npy_path = npy;
    job.block_ndim = 2;
    job.block_shape[0] = r.rows;
    job.block_shape[1] = r.frames;
    job.fn = features_item;
    job.user = &r;
    s = avemo_shard_run(&job, stats, err);
    *failed = r.failed;
    return s;
}
