/*
 * A decode plan for sampled frames of H.264 in MP4/MOV: which packets may be skipped.
 *
 * To sample frames k1 < k2 < ... of a clip, every frame up to the last one has to be
 * decoded, because later frames are predicted from earlier ones.  Not all of them:
 * H.264 marks the pictures that no other picture refers to (nal_ref_idc 0, typically
 * most B-frames of an x264 encode), and libavcodec skips exactly those when skip_frame is
 * AVDISCARD_NONREF.  Skipping a picture that is not sampled changes no other picture.
 *
 * Frames are sampled by their position in display order, packets arrive in decode order.
 * The plan reads the clip's packets first (the file is small: see PLAN_MAX_BYTES), ranks
 * each video packet by its presentation time among all of them (its display index), and
 * marks the packets whose frame is sampled.  The pass then replays the same packets in the
 * same order, with skip_frame set for the others; a decoded frame's index is the rank of
 * its time.  Sound is decoded from the same packets as without a plan.
 *
 * The plan is used only when every video packet has a distinct presentation time; if a
 * decoded frame's time is not one of them, or comes out of order, or a sampled frame does
 * not come out, the pass says so and the caller decodes again without a plan, so a plan
 * never changes which frames are returned or their pixels.
 */
#include "media/media_internal.h"

#include <stdlib.h>
#include <string.h>

/* Clips up to this size are read whole before decoding (the packets are held in memory). */
#define PLAN_MAX_BYTES ((int64_t)32 << 20)
#define PLAN_MAX_PACKETS 200000

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int media_plan_eligible(const avemo_media *media, int stream, int count)
{
    if (stream < 0 || count <= 0) return 0;
    const AVCodecParameters *par = media->fmt->streams[stream]->codecpar;
    const char *demuxer = media->fmt->iformat->name;
    int64_t size = media->info.size_bytes;
    return par->codec_id == AV_CODEC_ID_H264 && strncmp(demuxer, "mov,", 4) == 0 && size > 0 &&
           size <= PLAN_MAX_BYTES;
}

void media_plan_free(struct media_plan *plan)
{
    for (int i = 0; i < plan->npackets; i++) av_packet_free(&plan->packets[i]);
    free(plan->packets);
    free(plan->sorted_pts);
    free(plan->keep);
    memset(plan, 0, sizeof *plan);
}

/* Read the packets of the input into plan->packets, to the end (plan->ended: a pass reads
 * nothing more) or as many as fit; 1 when all were read. */
static int read_all(avemo_media *media, struct media_plan *plan)
{
    int cap = 0;
    /* The packets' bytes are no more than the file's, unless a sample table points many
     * samples at the same bytes: then they could fill the memory, so the plan gives up. */
    int64_t bytes = 0;
    for (;;) {
        if (plan->npackets == cap) {
            if (cap >= PLAN_MAX_PACKETS) return 0;
            int bigger = cap ? 2 * cap : 256;
            AVPacket **p = realloc(plan->packets, sizeof *p * (size_t)bigger);
            if (!p) return 0;
            plan->packets = p;
            cap = bigger;
        }
        AVPacket *pkt = av_packet_alloc();
        if (!pkt) return 0;
        int rc = av_read_frame(media->fmt, pkt);
        if (rc < 0) {
            av_packet_free(&pkt);
            plan->ended = 1;
            plan->end_rc = rc; /* a read error reaches the pass after the packets read before it */
            return 1;
        }
        plan->packets[plan->npackets++] = pkt;
        if ((bytes += pkt->size) > PLAN_MAX_BYTES) return 0;
    }
}

/* Rank the video packets by presentation time and mark those whose display index is a target. */
static int mark_targets(struct media_plan *plan, int stream, const int64_t *targets, int ntargets)
{
    int n = 0;
    for (int i = 0; i < plan->npackets; i++) n += plan->packets[i]->stream_index == stream;
    plan->nvideo = n;
    plan->sorted_pts = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    plan->keep = calloc(plan->npackets > 0 ? (size_t)plan->npackets : 1, 1);
    if (!plan->sorted_pts || !plan->keep) return 0;
    for (int i = 0, k = 0; i < plan->npackets; i++) {
        const AVPacket *p = plan->packets[i];
        if (p->stream_index != stream) continue;
        if (p->pts == AV_NOPTS_VALUE) return 0;
        plan->sorted_pts[k++] = p->pts;
    }
    qsort(plan->sorted_pts, (size_t)n, sizeof(int64_t), cmp_i64);
    for (int i = 1; i < n; i++)
        if (plan->sorted_pts[i] == plan->sorted_pts[i - 1]) return 0;
    for (int i = 0; i < plan->npackets; i++) {
        const AVPacket *p = plan->packets[i];
        if (p->stream_index != stream) continue;
        int64_t rank = media_plan_rank(plan, p->pts);
        for (int t = 0; t < ntargets; t++) plan->keep[i] |= targets[t] == rank;
    }
    return 1;
}

void media_plan_build(avemo_media *media, int stream, const int64_t *targets, int ntargets, struct media_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    /* Packets read before a failure are replayed all the same, and the pass reads on from there. */
    plan->skipping = read_all(media, plan) && mark_targets(plan, stream, targets, ntargets);
}

int media_plan_next(avemo_media *media, struct media_plan *plan, AVPacket *pkt, int *keep)
{
    *keep = 1;
    if (plan->next < plan->npackets) {
        av_packet_move_ref(pkt, plan->packets[plan->next]);
        *keep = !plan->skipping || plan->keep[plan->next];
        plan->next++;
        return 0;
    }
    if (plan->ended) return plan->end_rc;
    return av_read_frame(media->fmt, pkt);
}

int64_t media_plan_rank(const struct media_plan *plan, int64_t pts)
{
    int lo = 0, hi = plan->nvideo - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (plan->sorted_pts[mid] == pts) return mid;
        if (plan->sorted_pts[mid] < pts) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}
