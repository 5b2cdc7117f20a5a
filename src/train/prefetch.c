/* Batches made one ahead: a producer thread fills batch k + 1 (features, augmentation, mixup)
 * while the network trains on batch k, in two slots used in turn.  The producer is the only
 * user of the epoch's random generator and fills the batches in order, so the batches (and the
 * trained model) are the same as when they are made in the training loop itself; only the
 * time changes.  When the thread cannot be started the batches are made on demand. */
#include "train/train_internal.h"

#include <string.h>

static void *producer_main(void *arg)
{
    struct train_prefetch *pf = arg;
    for (size_t k = 0; k < pf->count; k++) {
        pthread_mutex_lock(&pf->mu);
        while (k >= pf->released + 2 && !pf->stop) pthread_cond_wait(&pf->cv, &pf->mu);
        int stop = pf->stop;
        pthread_mutex_unlock(&pf->mu);
        if (stop) break;
        pf->fill(pf->arg, k, (int)(k % 2));
        pthread_mutex_lock(&pf->mu);
        pf->produced = k + 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
    }
    return NULL;
}

void train_prefetch_start(struct train_prefetch *pf, size_t count, void (*fill)(void *arg, size_t k, int slot),
                          void *arg)
{
    memset(pf, 0, sizeof *pf);
    pf->count = count;
    pf->fill = fill;
    pf->arg = arg;
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    pf->threaded = count > 1 && pthread_create(&pf->tid, NULL, producer_main, pf) == 0;
}

int train_prefetch_wait(struct train_prefetch *pf, size_t k)
{
    if (!pf->threaded) {
        pf->fill(pf->arg, k, (int)(k % 2));
        return (int)(k % 2);
    }
    pthread_mutex_lock(&pf->mu);
    while (pf->produced <= k) pthread_cond_wait(&pf->cv, &pf->mu);
    pthread_mutex_unlock(&pf->mu);
    return (int)(k % 2);
}

void train_prefetch_release(struct train_prefetch *pf, size_t k)
{
    pthread_mutex_lock(&pf->mu);
    pf->released = k + 1;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

void train_prefetch_finish(struct train_prefetch *pf)
{
    if (pf->threaded) {
        pthread_mutex_lock(&pf->mu);
        pf->stop = 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        pthread_join(pf->tid, NULL);
    }
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
}
