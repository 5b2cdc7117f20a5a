/* FFmpeg's own log routed to the program's: FFmpeg calls one process-wide callback, without
 * a user pointer, for every av_log() of every thread.  The route below is therefore the one
 * mutable global of libavemo: written by avemo_log_route() at start-up, before any thread, and
 * only read afterwards (plus the per-thread line being assembled, below). */
#include <avemo/core.h>

#include <libavutil/log.h>
#include <string.h>

static struct {
    avemo_log_fn fn;
    void *user;
    enum avemo_log_level max_level;
} route = {NULL, NULL, AVEMO_LOG_INFO};

/* FFmpeg writes some lines in pieces ("Packet corrupt (...)", then ".\n"): the pieces of the
 * line a thread is writing wait here until its newline.  Per thread, as av_log is called from
 * any thread; like the route, this is forced by the callback API (FFmpeg's own default
 * callback keeps the same state in a static). */
static _Thread_local struct {
    char text[1024];
    size_t n;
} pending;

/* One line, without FFmpeg's "@ 0x55..." object address (it tells a user nothing and makes
 * every line different). */
static void ffmpeg_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_INFO || !route.fn || route.max_level < AVEMO_LOG_VERBOSE) return;
    if (pending.n < sizeof pending.text - 1) vsnprintf(pending.text + pending.n, sizeof pending.text - pending.n, fmt, vl);
    pending.n = strlen(pending.text);
    if (pending.n == 0 || (pending.text[pending.n - 1] != '\n' && pending.n < sizeof pending.text - 1)) return;
    while (pending.n && (pending.text[pending.n - 1] == '\n' || pending.text[pending.n - 1] == '\r'))
        pending.text[--pending.n] = '\0';
    const AVClass *cls = avcl ? *(const AVClass *const *)avcl : NULL;
    char line[1200];
    if (cls && cls->item_name) snprintf(line, sizeof line, "[%s] %s", cls->item_name(avcl), pending.text);
    else snprintf(line, sizeof line, "%s", pending.text);
    pending.n = 0;
    pending.text[0] = '\0';
    if (line[0]) route.fn(route.user, AVEMO_LOG_VERBOSE, line);
}

void avemo_log_route(enum avemo_log_level max_level, avemo_log_fn fn, void *user)
{
    route.fn = fn;
    route.user = user;
    route.max_level = max_level;
    av_log_set_callback(ffmpeg_callback);
}

enum avemo_log_level avemo_log_level(void) { return route.max_level; }
