/* Section "vision": Haar face detection (single thread, medians) against OpenCV
 * measured in the same run by tests/bench/opencv_haar_bench.py (keys omitted when
 * the script cannot run).  The *_cpu_s keys are thread CPU time, which a machine
 * shared with other jobs disturbs less than wall time.  Figures go to
 * docs/performance.md ("Faces"). */
#include "bench.h"

#include <avemo/vision.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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



/* Median thread CPU time of fn (after one warm-up run); -1 when it failed. */
static double cpu_median(int repeats, void (*fn)(void *), struct vision_job *job)
{
    job->failed = 0;
    double m = bench_median_cpu(repeats, fn, job);
    return job->failed ? -1 : m;
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

/* OpenCV on the same frame, written as PGM for the script: wall and CPU medians; 0 on failure. */
static int opencv_frame_time(const struct avemo_image *img, int repeats, double *wall, double *cpu)
{
    char pgm[] = "/tmp/avemo-bench-vision-XXXXXX";
    int fd = mkstemp(pgm);
    if (fd < 0) return 0;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(pgm);
        return 0;
    }
    fprintf(f, "P5\n%d %d\n255\n", img->width, img->height);
    int ok = fwrite(img->data, 1, (size_t)img->width * (size_t)img->height, f) ==
             (size_t)img->width * (size_t)img->height;
    ok = fclose(f) == 0 && ok;
    int got = 0;
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
                cJSON *m = cJSON_GetObjectItem(j, "median_s"), *c = cJSON_GetObjectItem(j, "median_cpu_s");
                if (cJSON_IsNumber(m) && cJSON_IsNumber(c)) {
                    *wall = m->valuedouble;
                    *cpu = c->valuedouble;
                    got = 1;
                }
                cJSON_Delete(j);
            }
        }
    }
    unlink(pgm);
    return got;
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
        double wall, cpu, mine = cpu_median(ctx->repeats, run_frame, &job);
        if (mine >= 0) cJSON_AddNumberToObject(out, "haar_frame_cpu_s", mine);
        if (opencv_frame_time(&job.frame, ctx->repeats, &wall, &cpu)) {
            cJSON_AddNumberToObject(out, "opencv_haar_frame_s", wall);
            cJSON_AddNumberToObject(out, "opencv_haar_frame_cpu_s", cpu);
        } else {
            fprintf(stderr, "avemo-bench: vision: the OpenCV script failed, opencv_haar_frame_s omitted\n");
        }
    }
    avemo_image_free(&job.frame);
    avemo_detector_free(job.det);
    avemo_cascade_free(cascade);
}
