/* Section "vision": Haar face detection (single thread, medians) against OpenCV
 * measured in the same run by tests/bench/opencv_haar_bench.py (key omitted when
 * the script cannot run).  Figures go to docs/performance.md ("Faces"). */
#include "bench.h"

#include <avemo/vision.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_CLIP "cremad/1001_DFA_ANG_XX.flv"

struct vision_job {
    avemo_detector *det;
    struct avemo_image frame;
    struct avemo_detect_params params;
    char clip[4096];
    int failed;
};

static void run_frame(void *arg)
{
    struct vision_job *job = arg;
    struct avemo_rect box;
    int count = 0;
    if (avemo_detect(job->det, &job->frame, &job->params, &box, 1, &count, NULL) || count < 1) job->failed = 1;
}

static void run_clip(void *arg)
{
    struct vision_job *job = arg;
    avemo_media *media = NULL;
    struct avemo_clip_faces cf = {0};
    if (avemo_media_open_file(job->clip, NULL, &media, NULL) ||
        avemo_clip_faces(job->det, media, 8, NULL, 0, &cf, NULL) || cf.count != 8)
        job->failed = 1;
    avemo_clip_faces_free(&cf);
    avemo_media_close(media);
}

static void add_timing(cJSON *out, const char *key, const struct bench_context *ctx, void (*fn)(void *),
                       struct vision_job *job)
{
    job->failed = 0;
    double t = bench_median(ctx->repeats, fn, job);
    if (job->failed) {
        fprintf(stderr, "avemo-bench: vision: %s failed\n", key);
        cJSON_AddNullToObject(out, key);
    } else {
        cJSON_AddNumberToObject(out, key, t);
    }
}

/* The middle frame of the clip as gray. */
static int load_frame(const char *clip, struct avemo_image *img)
{
    avemo_media *media = NULL;
    struct avemo_frames fr = {0};
    int ok = !avemo_media_open_file(clip, NULL, &media, NULL) &&
             !avemo_media_decode_frames(media, 1, AVEMO_PIX_GRAY8, &fr, NULL) && fr.count == 1;
    if (ok) {
        struct avemo_image view = avemo_image_from_frame(&fr.frames[0]);
        ok = !avemo_image_convert(&view, 1, img, NULL);
    }
    avemo_frames_free(&fr);
    avemo_media_close(media);
    return ok;
}

/* OpenCV on the same frame, written as PGM for the script; returns -1 on failure. */
static double opencv_frame_time(const struct avemo_image *img, int repeats)
{
    char pgm[] = "/tmp/avemo-bench-vision-XXXXXX";
    int fd = mkstemp(pgm);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(pgm);
        return -1;
    }
    fprintf(f, "P5\n%d %d\n255\n", img->width, img->height);
    int ok = fwrite(img->data, 1, (size_t)img->width * (size_t)img->height, f) ==
             (size_t)img->width * (size_t)img->height;
    ok = fclose(f) == 0 && ok;
    double t = -1;
    if (ok) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/bench/opencv_haar_bench.py %s %s %d 2>/dev/null",
                 AVEMO_SOURCE_DIR, AVEMO_DEFAULT_CASCADE, pgm, repeats);
        FILE *p = popen(cmd, "r");
        char buf[512] = "";
        if (p) {
            size_t n = fread(buf, 1, sizeof buf - 1, p);
            buf[n] = 0;
            if (pclose(p) == 0) {
                cJSON *j = cJSON_Parse(buf);
                cJSON *m = cJSON_GetObjectItem(j, "median_s");
                if (cJSON_IsNumber(m)) t = m->valuedouble;
                cJSON_Delete(j);
            }
        }
    }
    unlink(pgm);
    return t;
}

void bench_vision(const struct bench_context *ctx, cJSON *out);
void bench_vision(const struct bench_context *ctx, cJSON *out)
{
    struct vision_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.clip, sizeof job.clip, "%s/%s", ctx->data_dir, BENCH_CLIP);
    avemo_detect_params_default(&job.params); /* 1.1, 5, 30x30: as the OpenCV script */
    avemo_cascade *cascade = NULL;
    struct avemo_error err;
    if (avemo_cascade_load(AVEMO_DEFAULT_CASCADE, NULL, &cascade, &err) ||
        avemo_detector_create(cascade, &job.det, &err)) {
        fprintf(stderr, "avemo-bench: vision: %s\n", err.message);
        avemo_cascade_free(cascade);
        return;
    }
    if (!load_frame(job.clip, &job.frame)) {
        fprintf(stderr, "avemo-bench: vision: cannot decode %s\n", job.clip);
    } else {
        add_timing(out, "haar_frame_s", ctx, run_frame, &job);
        add_timing(out, "faces_clip_s", ctx, run_clip, &job);
        double t = opencv_frame_time(&job.frame, ctx->repeats);
        if (t >= 0) cJSON_AddNumberToObject(out, "opencv_haar_frame_s", t);
        else fprintf(stderr, "avemo-bench: vision: the OpenCV script failed, opencv_haar_frame_s omitted\n");
    }
    avemo_image_free(&job.frame);
    avemo_detector_free(job.det);
    avemo_cascade_free(cascade);
}
