/* The worker threads of one context: the calling thread plus threads - 1 helpers.  A layer
 * kernel hands its loop to nn_pool_for as items (samples, channels, chunks of samples); the
 * workers claim items one at a time from a shared counter and nn_pool_for returns when every
 * item is done, so the layers stay sequential and only their inner loops are shared.
 *
 * Why not OpenBLAS's threads: the network's matrix products are per sample and small
 * (e.g. 64 x 1280 x 288), OpenBLAS gains little on them and serialises concurrent threaded
 * calls; and the memory-bound passes between products (batch norm, pooling, im2col) would
 * stay on one core.  Whole samples per worker give each core big, independent products.
 *
 * Why items are claimed rather than dealt out: on a machine shared with other jobs a helper
 * can be descheduled for a whole time slice; the caller then takes the remaining items itself
 * instead of waiting for it, and waits only for items already started.  A helper that wakes
 * late finds no item left: the claim counter carries the loop's generation, so it can never
 * take an item of a later loop with an earlier loop's function.  What a worker computes for an
 * item does not depend on which worker runs it (reductions go to per-item buffers, summed in
 * item order by the kernel), so results do not depend on the scheduling.
 *
 * Workers wait by polling briefly, then on a condition variable: an item is 0.1-10 ms, so a
 * wake-up through the kernel (tens of microseconds) is small, and polling longer would take
 * the core from other work on a shared machine. */
#include "nn/nn_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define POOL_SPINS 4000 /* ~10-40 us of polling before sleeping */

struct pool_helper {
    struct nn_pool *pool;
    int index;
    pthread_t tid;
};

struct nn_pool {
    int threads;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    int stop;
    /* the current loop, published under mu with a new generation */
    nn_item_fn fn;
    void *arg;
    size_t items;
    atomic_uint generation;
    atomic_uint_fast64_t claim; /* generation << 32 | next unclaimed item */
    atomic_size_t finished;     /* items of the current loop done */
    struct pool_helper helpers[NN_MAX_WORKERS];
};

/* Claims and runs items of loop `gen` until none is left. */
static void run_items(struct nn_pool *p, unsigned gen, nn_item_fn fn, void *arg, size_t items, int worker)
{
    for (;;) {
        uint_fast64_t v = atomic_load(&p->claim);
        if ((unsigned)(v >> 32) != gen || (v & 0xffffffffu) >= items) return;
        if (!atomic_compare_exchange_weak(&p->claim, &v, v + 1)) continue;
        fn(arg, (size_t)(v & 0xffffffffu), worker);
        if (atomic_fetch_add(&p->finished, 1) + 1 == items) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *helper_main(void *arg)
{
    struct pool_helper *h = arg;
    struct nn_pool *p = h->pool;
    unsigned seen = 0;
    for (;;) {
        for (int i = 0; i < POOL_SPINS && atomic_load(&p->generation) == seen; i++) continue;
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->generation) == seen && !p->stop) pthread_cond_wait(&p->start, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = atomic_load(&p->generation);
        nn_item_fn fn = p->fn;
        void *task = p->arg;
        size_t items = p->items;
        pthread_mutex_unlock(&p->mu);
        run_items(p, seen, fn, task, items, h->index);
    }
}

struct nn_pool *nn_pool_create(int threads)
{
    if (threads <= 1) return NULL;
    if (threads > NN_MAX_WORKERS) threads = NN_MAX_WORKERS;
    struct nn_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->claim, 0);
    atomic_init(&p->finished, 0);
    for (int i = 1; i < threads; i++) {
        p->helpers[i].pool = p;
        p->helpers[i].index = i;
        if (pthread_create(&p->helpers[i].tid, NULL, helper_main, &p->helpers[i]) != 0) {
            p->threads = i; /* run with the helpers that did start */
            break;
        }
    }
    if (p->threads == 1) {
        nn_pool_free(p);
        return NULL;
    }
    return p;
}

void nn_pool_free(struct nn_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++) pthread_join(p->helpers[i].tid, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p);
}

int nn_pool_threads(const struct nn_pool *p) { return p ? p->threads : 1; }

void nn_pool_for(struct nn_pool *p, size_t items, nn_item_fn fn, void *arg)
{
    if (!p || items <= 1) {
        for (size_t i = 0; i < items; i++) fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    const unsigned gen = atomic_load(&p->generation) + 1;
    p->fn = fn;
    p->arg = arg;
    p->items = items;
    atomic_store(&p->finished, 0);
    atomic_store(&p->claim, (uint_fast64_t)gen << 32);
    atomic_store(&p->generation, gen);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    run_items(p, gen, fn, arg, items, 0);
    for (int i = 0; i < POOL_SPINS && atomic_load(&p->finished) < items; i++) continue;
    if (atomic_load(&p->finished) < items) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->finished) < items) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Scratch for `threads` workers: col_size floats of im2col (and of its gradient in training)
 * each, and per chunk of samples but the first a convolution gradient of grad_size floats. */
int nn_work_init(struct nn_work *work, int threads, size_t col_size, size_t grad_size, int training)
{
    memset(work, 0, sizeof *work);
    work->pool = nn_pool_create(threads);
    work->workers = nn_pool_threads(work->pool);
    work->col_size = col_size;
    work->grad_size = grad_size;
    for (int i = 0; i < work->workers; i++) {
        work->col[i] = avemo_alloc_large(sizeof(float) * (col_size ? col_size : 1));
        if (!work->col[i]) return -1;
        if (!training) continue;
        work->dcol[i] = avemo_alloc_large(sizeof(float) * (col_size ? col_size : 1));
        if (!work->dcol[i]) return -1;
    }
    /* Convolution gradients are summed per chunk of samples (chunk 0 straight into the
     * gradient): NN_CHUNKS_PER_WORKER chunks per worker when there are helpers. */
    work->chunks = work->workers > 1 ? work->workers * NN_CHUNKS_PER_WORKER : 1;
    for (int i = 1; training && i < work->chunks; i++) {
        work->grad[i] = malloc(sizeof(float) * (grad_size ? grad_size : 1));
        if (!work->grad[i]) return -1;
    }
    return 0;
}

void nn_work_free(struct nn_work *work)
{
    nn_pool_free(work->pool);
    for (int i = 0; i < NN_MAX_WORKERS; i++) {
        free(work->col[i]);
        free(work->dcol[i]);
    }
    for (int i = 0; i < NN_MAX_WORKERS * NN_CHUNKS_PER_WORKER; i++) free(work->grad[i]);
    memset(work, 0, sizeof *work);
}
