/* The whole-request deadline.  libmicrohttpd's connection timeout only fires on silence: a
 * client that sends one header byte every few seconds (slowloris) keeps its connection, and
 * enough of them keep everybody else out.  So every connection has a deadline, armed when it
 * opens and again after each answer (for the next request on a kept-alive connection), and
 * disarmed once its request is complete (waiting for a worker is the server's time, not the
 * client's).  A thread shuts down the socket of a connection past its deadline, which
 * libmicrohttpd then sees as closed and frees.  There is no answer: libmicrohttpd 0.9.75 can
 * queue one only before the body is read or after all of it (MHD_queue_response refuses in
 * between), and a client past its deadline has not sent all of it.
 *
 * Connections are tracked from MHD's NOTIFY_STARTED to NOTIFY_CLOSED, which MHD calls before it
 * closes the socket, so the reaper never shuts down a descriptor that was reused. */
#include "serve/serve_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/* The reaper looks at least this often, and at the earliest deadline. */
#define DEADLINE_TICK_S 0.5

struct serve_conn {
    struct serve_conn *prev, *next;
    MHD_socket fd;
    double deadline;   /* avemo_now() seconds; 0 when not armed */
};

static void wait_until(struct serve_deadlines *d, double when)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double wait = when - avemo_now();
    if (wait < 0.001) wait = 0.001;
    ts.tv_sec += (time_t)wait;
    ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&d->cond, &d->lock, &ts);
}

static void *reaper_main(void *arg)
{
    struct serve_deadlines *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        double now = avemo_now(), next = now + DEADLINE_TICK_S;
        for (struct serve_conn *c = d->head; c; c = c->next) {
            if (c->deadline <= 0) continue;
            if (c->deadline <= now) {
                shutdown(c->fd, SHUT_RDWR); /* MHD reads the end of the stream and closes it */
                c->deadline = 0;
                d->cut++;
            } else if (c->deadline < next) {
                next = c->deadline;
            }
        }
        wait_until(d, next);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

enum avemo_status serve_deadlines_start(struct serve_deadlines *d, double limit_s, struct avemo_error *err)
{
    d->limit_s = limit_s;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, &attr);
    pthread_condattr_destroy(&attr);
    d->ready = 1;
    if (pthread_create(&d->thread, NULL, reaper_main, d) != 0)
        return avemo_fail(err, AVEMO_ERR_NOMEM, "serve: cannot start the request-deadline thread");
    d->started = 1;
    return AVEMO_OK;
}

void serve_deadlines_stop(struct serve_deadlines *d)
{
    if (!d->ready) return;
    if (d->started) {
        pthread_mutex_lock(&d->lock);
        d->stop = 1;
        pthread_cond_signal(&d->cond);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
    }
    /* MHD has stopped: every connection was reported closed, the list is empty. */
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    d->ready = 0;
}

void serve_deadline_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    struct serve_deadlines *d = &((struct avemo_server *)cls)->deadlines;
    struct serve_conn *c = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info || !(c = calloc(1, sizeof *c))) return; /* out of memory: only the idle timeout applies */
        c->fd = info->connect_fd;
        pthread_mutex_lock(&d->lock);
        c->deadline = avemo_now() + d->limit_s;
        c->next = d->head;
        if (d->head) d->head->prev = c;
        d->head = c;
        pthread_mutex_unlock(&d->lock);
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && c) {
        pthread_mutex_lock(&d->lock);
        if (c->prev) c->prev->next = c->next;
        else d->head = c->next;
        if (c->next) c->next->prev = c->prev;
        pthread_mutex_unlock(&d->lock);
        free(c);
        *socket_context = NULL;
    }
}

static struct serve_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

void serve_deadline_arm(struct avemo_server *srv, struct MHD_Connection *conn, int armed)
{
    struct serve_conn *c = conn_of(conn);
    if (!c) return;
    pthread_mutex_lock(&srv->deadlines.lock);
    c->deadline = armed ? avemo_now() + srv->deadlines.limit_s : 0;
    pthread_mutex_unlock(&srv->deadlines.lock);
}

uint64_t serve_deadlines_cut(struct avemo_server *srv)
{
    pthread_mutex_lock(&srv->deadlines.lock);
    uint64_t cut = srv->deadlines.cut;
    pthread_mutex_unlock(&srv->deadlines.lock);
    return cut;
}
