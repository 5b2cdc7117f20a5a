/*
 * A clip decoded on a second thread while the caller works on the frames already out: the
 * latency of one classification on two cores (decoding a VP6 clip is half of it).  The media's
 * frame sink hands each sampled frame over as a copy; the caller takes them in order with
 * decode_thread_next and owns what it takes.  A decode pass made again (avemo_frame_sink) shows
 * as *restart: what the caller made of earlier frames no longer holds.
 */
#include "eval/eval_internal.h"

#include <stdlib.h>
#include <string.h>

/* Frame sink, on the decoding thread: a copy of the frame into its slot. */
static enum avemo_status hand_over(void *user, int pass, int slot, const struct avemo_frame *frame,
                                   struct avemo_error *err)
{
    struct decode_thread *t = user;
    size_t bytes = (size_t)frame->width * (size_t)frame->height * (size_t)frame->channels;
    uint8_t *copy = malloc(bytes ? bytes : 1);
    if (!copy) return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: cannot copy a %dx%d frame", t->name, frame->width, frame->height);
    memcpy(copy, frame->data, bytes);
    pthread_mutex_lock(&t->lock);
    if (t->cancelled) { /* the caller has failed: decoding further is wasted */
        pthread_mutex_unlock(&t->lock);
        free(copy);
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "%s: decoding stopped: the frames are no longer wanted", t->name);
    }
    if (pass != t->pass) { /* a new pass: the frames of the last one not yet taken go */
        for (int i = 0; i < t->count; i++) free(t->frames[i].data);
        memset(t->frames, 0, sizeof t->frames);
        t->count = 0;
        t->pass = pass;
    }
    enum avemo_status st = AVEMO_OK;
    if (slot != t->count || slot >= DECODE_THREAD_MAX_FRAMES) { /* the sink's contract: in order, from 0 */
        free(copy);
        st = avemo_fail(err, AVEMO_ERR_INTERNAL, "%s: frame %d came out of order", t->name, slot);
    } else {
        t->frames[slot] = *frame;
        t->frames[slot].data = copy;
        t->count++;
        pthread_cond_signal(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}

static void *decode_main(void *arg)
{
    struct decode_thread *t = arg;
    struct avemo_error err = {0};
    enum avemo_status st = avemo_media_decode_av(t->media, t->sample_rate, t->audio, t->count_wanted, t->format,
                                                 &t->out, &err);
    if (!st && t->after) t->after(t->after_user);
    pthread_mutex_lock(&t->lock);
    t->status = st;
    t->err = err;
    t->finished = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

enum avemo_status decode_thread_start(struct decode_thread *t, avemo_media *media, int sample_rate,
                                      struct avemo_audio *audio, int count, enum avemo_pixel_format format,
                                      void (*after)(void *user), void *after_user, struct avemo_error *err)
{
    memset(t, 0, sizeof *t);
    t->name = avemo_media_name(media);
    if (count < 1 || count > DECODE_THREAD_MAX_FRAMES)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: %d frames to decode on a thread (1..%d)", t->name, count,
                          DECODE_THREAD_MAX_FRAMES);
    t->media = media;
    t->sample_rate = sample_rate;
    t->audio = audio;
    t->count_wanted = count;
    t->format = format;
    t->after = after;
    t->after_user = after_user;
    t->pass = t->pass_taken = -1;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    avemo_media_set_frame_sink(media, hand_over, t);
    if (pthread_create(&t->thread, NULL, decode_main, t) != 0) {
        avemo_media_set_frame_sink(media, NULL, NULL);
        pthread_mutex_destroy(&t->lock);
        pthread_cond_destroy(&t->cond);
        return avemo_fail(err, AVEMO_ERR_INTERNAL, "%s: cannot start a decoding thread", t->name);
    }
    t->started = 1;
    return AVEMO_OK;
}

int decode_thread_next(struct decode_thread *t, struct avemo_frame *frame, int *restart)
{
    *restart = 0;
    pthread_mutex_lock(&t->lock);
    while (!t->finished && t->pass == t->pass_taken && t->taken == t->count) pthread_cond_wait(&t->cond, &t->lock);
    if (t->pass != t->pass_taken) {
        *restart = t->pass_taken != -1;
        t->pass_taken = t->pass;
        t->taken = 0;
    }
    int got = t->taken < t->count;
    if (got) {
        *frame = t->frames[t->taken];
        t->frames[t->taken++].data = NULL; /* the caller's now */
    }
    pthread_mutex_unlock(&t->lock);
    return got;
}

void decode_thread_cancel(struct decode_thread *t)
{
    pthread_mutex_lock(&t->lock);
    t->cancelled = 1;
    pthread_mutex_unlock(&t->lock);
}

enum avemo_status decode_thread_join(struct decode_thread *t, struct avemo_frames *frames, struct avemo_error *err)
{
    if (!t->started) return AVEMO_OK;
    pthread_join(t->thread, NULL);
    t->started = 0;
    avemo_media_set_frame_sink(t->media, NULL, NULL);
    for (int i = 0; i < t->count; i++) free(t->frames[i].data);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    if (frames) *frames = t->out;
    else avemo_frames_free(&t->out);
    if (t->status && err) *err = t->err;
    return t->status;
}
