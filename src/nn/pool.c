/* The worker threads of one context: the calling thread plus threads - 1 helpers that run the
 * same task on their share of the work (a range of samples, channels or planes), then wait
 * for the next one.  A layer kernel hands its loop to nn_pool_run and returns when every
 * worker is done, so the layers stay sequential and only their inner loops are shared.
 *
 * Why not OpenBLAS's threads: the network's matrix products are per sample and small
 * (e.g. 64 x 1280 x 288), OpenBLAS gains little on them and serialises concurrent threaded
 * calls; and the memory-bound passes between products (batch norm, pooling, im2col) would
 * stay on one core.  Splitting whole samples gives each core big, independent products.
 *
 * A task waits for its helpers by spinning briefly, then on a condition variable: a layer's
 * share of work is 0.1-10 ms, so a wake-up through the kernel (tens of microseconds) is
 * small, and spinning longer would steal the core from other work on a shared machine. */
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
    nn_task_fn fn;
    void *arg;
    atomic_uint generation;   /* incremented per task */
    atomic_int pending;       /* helpers still running the current task */
    int stop;
    struct pool_helper helpers[NN_MAX_WORKERS];
};

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
        nn_task_fn fn = p->fn;
        void *task = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(task, h->index, p->threads);
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
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
    atomic_init(&p->pending, 0);
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

void nn_pool_run(struct nn_pool *p, nn_task_fn fn, void *arg)
{
    if (!p) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->threads - 1);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->threads);
    for (int i = 0; i < POOL_SPINS && atomic_load(&p->pending) > 0; i++) continue;
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Scratch for `threads` workers: col_size floats of im2col (and of its gradient in training)
 * each, and for helpers a private convolution gradient of grad_size floats. */
int nn_work_init(struct nn_work *work, int threads, size_t col_size, size_t grad_size, int training)
{
    memset(work, 0, sizeof *work);
    work->pool = nn_pool_create(threads);
    work->workers = nn_pool_threads(work->pool);
    work->col_size = col_size;
    work->grad_size = grad_size;
    for (int i = 0; i < work->workers; i++) {
        work->col[i] = malloc(sizeof(float) * (col_size ? col_size : 1));
        if (!work->col[i]) return -1;
        if (!training) continue;
        work->dcol[i] = malloc(sizeof(float) * (col_size ? col_size : 1));
        if (i > 0) work->grad[i] = malloc(sizeof(float) * (grad_size ? grad_size : 1));
        if (!work->dcol[i] || (i > 0 && !work->grad[i])) return -1;
    }
    return 0;
}

void nn_work_free(struct nn_work *work)
{
    nn_pool_free(work->pool);
    for (int i = 0; i < NN_MAX_WORKERS; i++) {
        free(work->col[i]);
        free(work->dcol[i]);
        free(work->grad[i]);
    }
    memset(work, 0, sizeof *work);
}
