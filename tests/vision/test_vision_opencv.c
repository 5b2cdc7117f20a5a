/*
 * avemo's detector against OpenCV's (Debian python3-opencv) on the same gray
 * images: 10 frames of each of the six CREMA-D clips (decoded by avemo media)
 * and the ten FER2013 faces upscaled 4x.  detectMultiScale(gray, 1.1, 5,
 * minSize=(30, 30)) on both sides; the largest boxes must overlap with
 * IoU >= 0.9 on at least 95% of the images, and avemo must find a face on every
 * image where OpenCV finds one.  The vector paths (AVX-512, AVX2, SSE2) and the scalar
 * path give identical boxes, and other cascades (LBP; Haar trees with tilted
 * features) give OpenCV's raw windows (min_neighbors 0) on some frames.
 */
#include "vision/vision_testutil.h"

#include <avemo/vision.h>
#include <cjson/cJSON.h>

#include "vision/vision_internal.h"

#define FRAMES_PER_CLIP 10
#define MAX_IMAGES 128

static const char *const clips[] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};
static const char *const fer[] = {
    "angry_PublicTest_10813312.jpg", "angry_PublicTest_10116449.jpg", "disgust_PublicTest_11387162.jpg",
    "fear_PublicTest_10150476.jpg",  "fear_PublicTest_10640936.jpg",  "happy_PublicTest_10181609.jpg",
    "happy_PublicTest_10130075.jpg", "neutral_PublicTest_10262886.jpg", "sad_PublicTest_11285899.jpg",
    "surprise_PublicTest_10754294.jpg",
};

struct sample {
    char path[256];
    struct avemo_image img;
};

static struct sample samples[MAX_IMAGES];
static int nsamples;
static char tmpdir[64];

static void add_sample(const struct avemo_image *img)
{
    assert_true(nsamples < MAX_IMAGES);
    struct sample *s = &samples[nsamples];
    snprintf(s->path, sizeof s->path, "%s/img_%03d.pgm", tmpdir, nsamples);
    struct avemo_error err = {0};
    assert_int_equal(avemo_image_convert(img, 1, &s->img, &err), AVEMO_OK);
    FILE *f = fopen(s->path, "wb");
    assert_non_null(f);
    fprintf(f, "P5\n%d %d\n255\n", s->img.width, s->img.height);
    assert_int_equal(fwrite(s->img.data, 1, (size_t)s->img.width * s->img.height, f),
                     (size_t)s->img.width * s->img.height);
    fclose(f);
    nsamples++;
}

static void collect_images(void)
{
    struct avemo_error err = {0};
    for (size_t c = 0; c < sizeof clips / sizeof clips[0]; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/cremad/1001_DFA_%s_XX.flv", AVEMO_TEST_DATA, clips[c]);
        avemo_media *m = NULL;
        struct avemo_frames fr = {0};
        assert_int_equal(avemo_media_open_file(path, NULL, &m, &err), AVEMO_OK);
        assert_int_equal(avemo_media_decode_frames(m, FRAMES_PER_CLIP, AVEMO_PIX_GRAY8, &fr, &err), AVEMO_OK);
        assert_int_equal(fr.count, FRAMES_PER_CLIP);
        for (int i = 0; i < fr.count; i++) {
            struct avemo_image img = avemo_image_from_frame(&fr.frames[i]);
            add_sample(&img);
        }
        avemo_frames_free(&fr);
        avemo_media_close(m);
    }
    for (size_t i = 0; i < sizeof fer / sizeof fer[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/faces/%s", AVEMO_TEST_DATA, fer[i]);
        struct avemo_image g, big;
        assert_int_equal(avemo_jpeg_read_file(path, 1, 0, &g, &err), AVEMO_OK);
        struct avemo_rect all = {0, 0, g.width, g.height};
        assert_int_equal(avemo_image_resize(&g, all, 4 * g.width, 4 * g.height, &big, &err), AVEMO_OK);
        add_sample(&big);
        avemo_image_free(&g);
        avemo_image_free(&big);
    }
}

/* OpenCV's boxes for every sample, as one JSON object keyed by path. */
static cJSON *run_opencv(const char *cascade, int min_neighbors, int count)
{
    size_t len = 4096 + (size_t)nsamples * 300;
    char *cmd = malloc(len);
    assert_non_null(cmd);
    int n = snprintf(cmd, len, "%s %s/tests/vision/opencv_detect.py %s 1.1 %d 30", AVEMO_PYTHON, AVEMO_SOURCE_DIR,
                     cascade, min_neighbors);
    for (int i = 0; i < count; i++) n += snprintf(cmd + n, len - (size_t)n, " %s", samples[i].path);
    size_t size = 0;
    uint8_t *out = test_run_capture(cmd, &size);
    free(cmd);
    if (!out) fail_msg("the OpenCV reference script failed");
    out = realloc(out, size + 1);
    out[size] = 0;
    cJSON *j = cJSON_Parse((const char *)out);
    free(out);
    assert_non_null(j);
    return j;
}

/* The largest box of OpenCV's list (first one on ties, as avemo sorts stably). */
static int largest_opencv(const cJSON *list, struct avemo_rect *best)
{
    int found = 0;
    long best_area = -1;
    const cJSON *b;
    cJSON_ArrayForEach(b, list)
    {
        struct avemo_rect r = {cJSON_GetArrayItem(b, 0)->valueint, cJSON_GetArrayItem(b, 1)->valueint,
                               cJSON_GetArrayItem(b, 2)->valueint, cJSON_GetArrayItem(b, 3)->valueint};
        if ((long)r.w * r.h > best_area) {
            best_area = (long)r.w * r.h;
            *best = r;
            found = 1;
        }
    }
    return found;
}

static void test_same_faces_as_opencv(void **state)
{
    (void)state;
    collect_images();
    cJSON *ref = run_opencv(AVEMO_DEFAULT_CASCADE, 5, nsamples);
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    avemo_detector *d = NULL;
    test_default_detector(&c, &d);
    struct avemo_detect_params p;
    avemo_detect_params_default(&p); /* 1.1, 5, 30x30 */
    int agree = 0, exact = 0, cv_found = 0, missed = 0, same_count = 0;
    for (int i = 0; i < nsamples; i++) {
        struct avemo_rect mine[64], theirs = {0, 0, 0, 0};
        int n = 0;
        assert_int_equal(avemo_detect(d, &samples[i].img, &p, mine, 64, &n, &err), AVEMO_OK);
        const cJSON *list = cJSON_GetObjectItem(ref, samples[i].path);
        assert_non_null(list);
        int found = largest_opencv(list, &theirs);
        same_count += n == cJSON_GetArraySize(list);
        cv_found += found;
        if (found && n == 0) missed++;
        double iou = found && n ? avemo_rect_iou(mine[0], theirs) : (!found && !n ? 1.0 : 0.0);
        agree += iou >= 0.9;
        exact += (found && n && memcmp(&mine[0], &theirs, sizeof theirs) == 0) || (!found && !n);
        if (iou < 0.9)
            printf("  %s: avemo %d box(es) [%d %d %d %d], OpenCV %d [%d %d %d %d]\n", samples[i].path, n,
                   n ? mine[0].x : 0, n ? mine[0].y : 0, n ? mine[0].w : 0, n ? mine[0].h : 0,
                   cJSON_GetArraySize(list), theirs.x, theirs.y, theirs.w, theirs.h);
    }
    printf("  %d images, OpenCV found a face on %d; IoU >= 0.9 on %d, identical largest box on %d, "
           "same number of boxes on %d; avemo missed %d\n",
           nsamples, cv_found, agree, exact, same_count, missed);
    assert_int_equal(nsamples, 6 * FRAMES_PER_CLIP + 10);
    assert_true(cv_found >= 6 * FRAMES_PER_CLIP); /* every CREMA-D frame shows a face */
    assert_int_equal(missed, 0);
    assert_true(agree * 100 >= 95 * nsamples);
    cJSON_Delete(ref);
    avemo_detector_free(d);
    avemo_cascade_free(c);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/avemo_vision_opencv_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < nsamples; i++) avemo_image_free(&samples[i].img);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

/* Every box of every image, with the detector at a given vector width. */
static int detect_all(const avemo_cascade *c, int simd, int min_neighbors, int count, struct avemo_rect *boxes,
                      int *counts, int max_per_image)
{
    avemo_detector *d = NULL;
    struct avemo_error err = {0};
    assert_int_equal(avemo_detector_create(c, &d, &err), AVEMO_OK);
    int level = vision_detector_set_simd(d, simd);
    struct avemo_detect_params p;
    avemo_detect_params_default(&p);
    p.min_neighbors = min_neighbors;
    for (int i = 0; i < count; i++) {
        assert_int_equal(avemo_detect(d, &samples[i].img, &p, boxes + i * max_per_image, max_per_image, &counts[i], &err),
                         AVEMO_OK);
        assert_true(counts[i] <= max_per_image);
    }
    avemo_detector_free(d);
    return level;
}

static void test_vector_paths_agree(void **state)
{
    (void)state;
    assert_true(nsamples > 0); /* filled by the first test */
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    assert_int_equal(avemo_cascade_load(AVEMO_DEFAULT_CASCADE, NULL, &c, &err), AVEMO_OK);
    enum { PER = 1024 };
    static struct avemo_rect boxes[4][MAX_IMAGES * PER];
    static int counts[4][MAX_IMAGES];
    int levels[4];
    for (int l = 0; l < 4; l++) levels[l] = detect_all(c, 3 - l, 0, nsamples, boxes[l], counts[l], PER);
    printf("  vector levels used: %d %d %d %d\n", levels[0], levels[1], levels[2], levels[3]);
    assert_int_equal(levels[3], 0);
    for (int l = 1; l < 4; l++)
        for (int i = 0; i < nsamples; i++) {
            assert_int_equal(counts[l][i], counts[0][i]);
            assert_memory_equal(boxes[l] + i * PER, boxes[0] + i * PER, sizeof(struct avemo_rect) * (size_t)counts[0][i]);
        }
    avemo_cascade_free(c);
}

/* Raw windows (no grouping) of other cascade kinds equal OpenCV's, as sets. */
static int cmp_rect(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct avemo_rect));
}

static void check_raw_windows(const char *cascade_path, int count)
{
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    assert_int_equal(avemo_cascade_load(cascade_path, NULL, &c, &err), AVEMO_OK);
    cJSON *ref = run_opencv(cascade_path, 0, count);
    enum { PER = 4096 };
    static struct avemo_rect theirs[PER], got[PER];
    avemo_detector *d = NULL;
    assert_int_equal(avemo_detector_create(c, &d, &err), AVEMO_OK);
    struct avemo_detect_params p;
    avemo_detect_params_default(&p);
    p.min_neighbors = 0;
    long total = 0;
    for (int i = 0; i < count; i++) {
        int n = 0;
        assert_int_equal(avemo_detect(d, &samples[i].img, &p, got, PER, &n, &err), AVEMO_OK);
        assert_true(n <= PER);
        const cJSON *list = cJSON_GetObjectItem(ref, samples[i].path);
        assert_int_equal(cJSON_GetArraySize(list), n);
        int k = 0;
        const cJSON *b;
        cJSON_ArrayForEach(b, list)
        {
            struct avemo_rect r = {cJSON_GetArrayItem(b, 0)->valueint, cJSON_GetArrayItem(b, 1)->valueint,
                                   cJSON_GetArrayItem(b, 2)->valueint, cJSON_GetArrayItem(b, 3)->valueint};
            theirs[k++] = r;
        }
        qsort(theirs, (size_t)n, sizeof theirs[0], cmp_rect);
        qsort(got, (size_t)n, sizeof got[0], cmp_rect);
        assert_memory_equal(theirs, got, sizeof got[0] * (size_t)n);
        total += n;
    }
    printf("  %s: %ld raw windows on %d images, all equal to OpenCV's\n", strrchr(cascade_path, '/') + 1, total, count);
    assert_true(total > 0);
    avemo_detector_free(d);
    cJSON_Delete(ref);
    avemo_cascade_free(c);
}

static void test_other_cascades_raw_windows(void **state)
{
    (void)state;
    assert_true(nsamples >= 12);
    check_raw_windows("/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml", 12);
    check_raw_windows("/usr/share/opencv4/haarcascades/haarcascade_eye_tree_eyeglasses.xml", 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_faces_as_opencv),
        cmocka_unit_test(test_vector_paths_agree),
        cmocka_unit_test(test_other_cascades_raw_windows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
