/*
 * Images and JPEG: the resampler keeps flat images flat and averages blocks
 * exactly; JPEG read/write round-trips; damaged or foreign data is refused;
 * FER2013 faces become 64x64 model inputs; a detector per thread over one
 * shared cascade gives the same boxes as a single thread.
 */
#include "vision/vision_testutil.h"

#include <avemo/vision.h>
#include <jpeglib.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define FER_FACE TEST_DATA("faces/happy_PublicTest_10181609.jpg")

static void test_resize_area_and_bilinear(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_image src, dst;
    assert_int_equal(avemo_image_alloc(&src, 8, 6, 1, &err), AVEMO_OK);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++) src.data[y * 8 + x] = (uint8_t)(x < 4 ? 40 : 200);
    /* 2x shrink: each output is the mean of a 2x2 block */
    struct avemo_rect all = {0, 0, 8, 6};
    assert_int_equal(avemo_image_resize(&src, all, 4, 3, &dst, &err), AVEMO_OK);
    for (int i = 0; i < 12; i++) assert_int_equal(dst.data[i], i % 4 < 2 ? 40 : 200);
    avemo_image_free(&dst);
    /* 3x enlarge of a region inside one flat half stays flat */
    struct avemo_rect left = {0, 0, 4, 6};
    assert_int_equal(avemo_image_resize(&src, left, 12, 18, &dst, &err), AVEMO_OK);
    for (int i = 0; i < 12 * 18; i++) assert_int_equal(dst.data[i], 40);
    avemo_image_free(&dst);
    /* 8 -> 3: area weights with fractions; the middle output mixes both halves */
    assert_int_equal(avemo_image_resize(&src, all, 3, 1, &dst, &err), AVEMO_OK);
    assert_int_equal(dst.data[0], 40);
    assert_int_equal(dst.data[1], 120);
    assert_int_equal(dst.data[2], 200);
    avemo_image_free(&dst);
    struct avemo_rect outside = {5, 0, 4, 6};
    assert_int_equal(avemo_image_resize(&src, outside, 4, 4, &dst, &err), AVEMO_ERR_INVALID_ARG);
    avemo_image_free(&src);
}

/* Histogram equalisation as cv2.equalizeHist: the lowest grey level present goes to 0 and the
 * cumulative histogram above it is stretched over 0..255; one grey level stays as it is. */
static void test_equalize(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_image img;
    assert_int_equal(avemo_image_alloc(&img, 3, 2, 1, &err), AVEMO_OK);
    const uint8_t in[6] = {10, 10, 10, 20, 30, 40}, want[6] = {0, 0, 0, 85, 170, 255};
    memcpy(img.data, in, 6);
    avemo_image_equalize(&img);
    assert_memory_equal(img.data, want, 6);
    memset(img.data, 77, 6);
    avemo_image_equalize(&img);
    for (int i = 0; i < 6; i++) assert_int_equal(img.data[i], 77);
    avemo_image_free(&img);
    /* A real face: the full range is used and the order of grey levels is kept. */
    struct avemo_image face, eq;
    assert_int_equal(avemo_jpeg_read_file(FER_FACE, 1, 0, &face, &err), AVEMO_OK);
    assert_int_equal(avemo_image_convert(&face, 1, &eq, &err), AVEMO_OK);
    avemo_image_equalize(&eq);
    int lo = 255, hi = 0;
    size_t n = (size_t)face.width * (size_t)face.height;
    for (size_t i = 0; i < n; i++) {
        lo = eq.data[i] < lo ? eq.data[i] : lo;
        hi = eq.data[i] > hi ? eq.data[i] : hi;
        for (size_t j = i + 1; j < n; j += 97)
            if (face.data[i] < face.data[j]) assert_true(eq.data[i] <= eq.data[j]);
    }
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 255);
    avemo_image_free(&face);
    avemo_image_free(&eq);
}

static void test_jpeg_read_fer(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_image g, rgb;
    assert_int_equal(avemo_jpeg_read_file(FER_FACE, 0, 0, &g, &err), AVEMO_OK);
    assert_int_equal(g.width, 48);
    assert_int_equal(g.height, 48);
    assert_int_equal(g.channels, 1);
    assert_int_equal(avemo_jpeg_read_file(FER_FACE, 3, 0, &rgb, &err), AVEMO_OK);
    assert_int_equal(rgb.channels, 3);
    for (int i = 0; i < 48 * 48; i++) {
        assert_int_equal(rgb.data[3 * i], g.data[i]);
        assert_int_equal(rgb.data[3 * i + 2], g.data[i]);
    }
    /* not flat: a real face */
    int lo = 255, hi = 0;
    for (int i = 0; i < 48 * 48; i++) {
        if (g.data[i] < lo) lo = g.data[i];
        if (g.data[i] > hi) hi = g.data[i];
    }
    assert_true(hi - lo > 100);

    /* write (gray and RGB) to memory and read back: same size, close pixels */
    for (int pass = 0; pass < 2; pass++) {
        struct avemo_image *src = pass ? &rgb : &g;
        uint8_t *jpg = NULL;
        size_t n = 0;
        assert_int_equal(avemo_jpeg_write_memory(src, 95, &jpg, &n, &err), AVEMO_OK);
        assert_true(n > 100);
        struct avemo_image back;
        assert_int_equal(avemo_jpeg_read_memory(jpg, n, "mem.jpg", 0, 0, &back, &err), AVEMO_OK);
        assert_int_equal(back.width, 48);
        assert_int_equal(back.channels, src->channels);
        double diff = 0;
        for (int i = 0; i < 48 * 48 * src->channels; i++) diff += abs(back.data[i] - src->data[i]);
        printf("  round trip %d channel(s): mean abs diff %.2f\n", src->channels, diff / (48 * 48 * src->channels));
        assert_true(diff / (48 * 48 * src->channels) < 3.0);
        avemo_image_free(&back);
        free(jpg);
    }
    avemo_image_free(&g);
    avemo_image_free(&rgb);
}

/* A phone's portrait photo: pixels stored on their side, Exif orientation 6 ("turn a quarter
 * clockwise to show").  It is read upright, byte for byte as the ffmpeg program shows it, and
 * the face is found in it. */
static void test_jpeg_exif_orientation(void **state)
{
    (void)state;
    const char *path = TEST_DATA("media/exif6_1001_DFA_HAP_XX.jpg");
    struct avemo_error err = {0};
    struct avemo_image img;
    assert_int_equal(avemo_jpeg_read_file(path, 1, 0, &img, &err), AVEMO_OK);
    assert_int_equal(img.width, 480);
    assert_int_equal(img.height, 360);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -nostdin -v error -i '%s' -pix_fmt gray -f rawvideo -", AVEMO_FFMPEG, path);
    size_t bytes = 0;
    uint8_t *ref = test_run_capture(cmd, &bytes);
    assert_non_null(ref);
    assert_int_equal(bytes, 480 * 360);
    assert_memory_equal(img.data, ref, bytes);
    free(ref);
    avemo_image_free(&img);
    avemo_cascade *c = NULL;
    avemo_detector *d = NULL;
    test_default_detector(&c, &d);
    struct avemo_face_options opt;
    avemo_face_options_default(&opt);
    struct avemo_face face;
    assert_int_equal(avemo_face_detect_image_file(d, path, &opt, &face, &err), AVEMO_OK);
    printf("  %s: face %d [%d %d %d %d]\n", path, face.face_found, face.box.x, face.box.y, face.box.w, face.box.h);
    assert_true(face.face_found);
    assert_true(face.box.w > 60 && face.box.y < 180);
    avemo_face_free(&face);
    avemo_detector_free(d);
    avemo_cascade_free(c);
}

static void test_jpeg_bad_input(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_image img;
    size_t size;
    uint8_t *jpg = test_read_file(FER_FACE, &size);
    /* truncated inside the entropy-coded data, and inside the header */
    assert_int_equal(avemo_jpeg_read_memory(jpg, size / 2, "half.jpg", 0, 0, &img, &err), AVEMO_ERR_CORRUPT);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "half.jpg"));
    assert_int_equal(avemo_jpeg_read_memory(jpg, 40, "head.jpg", 0, 0, &img, &err), AVEMO_ERR_CORRUPT);
    printf("  %s\n", err.message);
    /* size cap before decoding */
    assert_int_equal(avemo_jpeg_read_memory(jpg, size, "big.jpg", 0, 1000, &img, &err), AVEMO_ERR_TOO_LARGE);
    /* not a JPEG, empty, bad channels */
    const char text[] = "hello, this is not a jpeg";
    assert_int_equal(avemo_jpeg_read_memory(text, sizeof text, "t.txt", 0, 0, &img, &err), AVEMO_ERR_UNSUPPORTED);
    assert_int_equal(avemo_jpeg_read_memory(jpg, 0, "e.jpg", 0, 0, &img, &err), AVEMO_ERR_EMPTY);
    assert_int_equal(avemo_jpeg_read_memory(jpg, size, "c.jpg", 2, 0, &img, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_jpeg_read_file("/nonexistent.jpg", 0, 0, &img, &err), AVEMO_ERR_NOT_FOUND);
    /* corrupt bytes in the middle: an error or a decoded image, never a crash */
    for (size_t i = size / 3; i < size / 3 + 40 && i < size; i++) jpg[i] ^= 0x5A;
    if (avemo_jpeg_read_memory(jpg, size, "flip.jpg", 0, 0, &img, &err) == AVEMO_OK) avemo_image_free(&img);
    free(jpg);
    /* writing: empty image, bad quality */
    struct avemo_image empty = {0};
    uint8_t *out;
    size_t n;
    assert_int_equal(avemo_jpeg_write_memory(&empty, 90, &out, &n, &err), AVEMO_ERR_EMPTY);
    struct avemo_image one;
    assert_int_equal(avemo_image_alloc(&one, 4, 4, 1, &err), AVEMO_OK);
    assert_int_equal(avemo_jpeg_write_memory(&one, 0, &out, &n, &err), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_jpeg_write_file("/nonexistent/dir/x.jpg", &one, 90, &err), AVEMO_ERR_IO);
    avemo_image_free(&one);
}

/* A progressive gray JPEG (libjpeg's simple progression: 6 scans) of a w x h gradient. */
static uint8_t *progressive_jpeg(int w, int h, size_t *size)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &buf, &n);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = 1, c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w; x++) row[x] = (uint8_t)((x * 7 + (int)c.next_scanline * 3) & 0xff);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    *size = n;
    return buf;
}

/* Many tiny scans (the last scan of a progressive file repeated 300 times) are refused after
 * the 100th, by name, instead of being decoded one after another. */
static void test_jpeg_too_many_scans(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_image img;
    size_t size;
    uint8_t *jpg = progressive_jpeg(256, 256, &size);
    assert_int_equal(avemo_jpeg_read_memory(jpg, size, "progressive.jpg", 0, 0, &img, &err), AVEMO_OK);
    assert_int_equal(img.width, 256);
    avemo_image_free(&img);
    size_t last = 0; /* the last SOS marker: entropy-coded 0xFF bytes are followed by 0x00 */
    for (size_t i = 0; i + 1 < size; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) last = i;
    assert_true(last > 0 && jpg[size - 2] == 0xFF && jpg[size - 1] == 0xD9);
    const size_t scan = size - 2 - last, copies = 300;
    uint8_t *many = malloc(size + copies * scan);
    memcpy(many, jpg, size - 2);
    for (size_t k = 0; k < copies; k++) memcpy(many + size - 2 + k * scan, jpg + last, scan);
    memcpy(many + size - 2 + copies * scan, jpg + size - 2, 2);
    assert_int_equal(avemo_jpeg_read_memory(many, size + copies * scan, "scans.jpg", 0, 0, &img, &err),
                     AVEMO_ERR_CORRUPT);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "scans.jpg: bad JPEG: more than 100 scans"));
    free(many);
    free(jpg);
}

static void test_fer_face_to_model_input(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_image face, g;
    assert_int_equal(avemo_face_from_jpeg(FER_FACE, 64, 1, &face, &err), AVEMO_OK);
    assert_int_equal(face.width, 64);
    assert_int_equal(face.height, 64);
    assert_int_equal(face.channels, 1);
    /* bilinear 48 -> 64 keeps the mean brightness */
    assert_int_equal(avemo_jpeg_read_file(FER_FACE, 1, 0, &g, &err), AVEMO_OK);
    double m0 = 0, m1 = 0;
    for (int i = 0; i < 48 * 48; i++) m0 += g.data[i];
    for (int i = 0; i < 64 * 64; i++) m1 += face.data[i];
    m0 /= 48 * 48;
    m1 /= 64 * 64;
    printf("  mean 48x48 %.2f, 64x64 %.2f\n", m0, m1);
    assert_true(fabs(m0 - m1) < 1.5);
    avemo_image_free(&face);
    assert_int_equal(avemo_face_from_jpeg(FER_FACE, 64, 3, &face, &err), AVEMO_OK);
    assert_int_equal(face.channels, 3);
    avemo_image_free(&face);
    assert_int_equal(avemo_face_from_crop(&g, 4, 1, &face, &err), AVEMO_ERR_INVALID_ARG);
    /* detection on a photo: a CREMA-D frame saved as JPEG */
    avemo_cascade *c = NULL;
    avemo_detector *d = NULL;
    test_default_detector(&c, &d);
    avemo_media *m = NULL;
    struct avemo_frames fr = {0};
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_NEU_XX.flv"), NULL, &m, &err), AVEMO_OK);
    assert_int_equal(avemo_media_decode_frames(m, 1, AVEMO_PIX_RGB24, &fr, &err), AVEMO_OK);
    char jpg[] = "/tmp/avemo_vision_photo_XXXXXX";
    int fd = mkstemp(jpg);
    assert_true(fd >= 0);
    close(fd);
    struct avemo_image frame = avemo_image_from_frame(&fr.frames[0]);
    assert_int_equal(avemo_jpeg_write_file(jpg, &frame, 95, &err), AVEMO_OK);
    struct avemo_face f;
    assert_int_equal(avemo_face_detect_jpeg(d, jpg, NULL, &f, &err), AVEMO_OK);
    unlink(jpg);
    printf("  photo: face [%d, %d, %d, %d]\n", f.box.x, f.box.y, f.box.w, f.box.h);
    assert_true(f.face_found);
    assert_in_range(f.box.w, 110, 150);
    assert_int_equal(f.image.width, 64);
    assert_int_equal(f.image.channels, 3);
    assert_int_equal(f.frame_index, -1);
    avemo_face_free(&f);
    assert_int_equal(avemo_face_detect_jpeg(d, "/nonexistent.jpg", NULL, &f, &err), AVEMO_ERR_NOT_FOUND);
    avemo_frames_free(&fr);
    avemo_media_close(m);
    avemo_detector_free(d);
    avemo_cascade_free(c);
    avemo_image_free(&g);
}

/* RGB to gray equals cv2.cvtColor(COLOR_RGB2GRAY) (so RGB frames detect like OpenCV's gray). */
static void test_gray_matches_opencv(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    struct avemo_image rgb, gray;
    assert_int_equal(avemo_image_alloc(&rgb, 64, 48, 3, &err), AVEMO_OK);
    uint32_t seed = 12345;
    for (int i = 0; i < 64 * 48 * 3; i++) {
        seed = seed * 1664525u + 1013904223u;
        rgb.data[i] = (uint8_t)(seed >> 24);
    }
    assert_int_equal(avemo_image_convert(&rgb, 1, &gray, &err), AVEMO_OK);
    char ppm[] = "/tmp/avemo_vision_gray_XXXXXX";
    int fd = mkstemp(ppm);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fprintf(f, "P6\n64 48\n255\n");
    assert_int_equal(fwrite(rgb.data, 1, 64 * 48 * 3, f), 64 * 48 * 3);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s -c \"import cv2,sys; b=cv2.imread(sys.argv[1]); "
             "sys.stdout.buffer.write(cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).tobytes())\" %s",
             AVEMO_PYTHON, ppm);
    size_t n = 0;
    uint8_t *ref = test_run_capture(cmd, &n);
    unlink(ppm);
    assert_non_null(ref);
    assert_int_equal(n, 64 * 48);
    /* cv2.imread gives BGR; BGR2GRAY of it is RGB2GRAY of our pixels */
    assert_memory_equal(ref, gray.data, 64 * 48);
    free(ref);
    avemo_image_free(&rgb);
    avemo_image_free(&gray);
}

/* Threads: one cascade, one detector per thread, same boxes. */
struct thread_job {
    const avemo_cascade *cascade;
    const struct avemo_image *img;
    struct avemo_rect box;
    int count;
    enum avemo_status st;
};

static void *detect_thread(void *arg)
{
    struct thread_job *job = arg;
    avemo_detector *d = NULL;
    job->st = avemo_detector_create(job->cascade, &d, NULL);
    for (int i = 0; i < 3 && job->st == AVEMO_OK; i++) {
        struct avemo_detect_params p;
        avemo_detect_params_default(&p);
        job->st = avemo_detect(d, job->img, &p, &job->box, 1, &job->count, NULL);
    }
    avemo_detector_free(d);
    return NULL;
}

static void test_threads_share_cascade(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    assert_int_equal(avemo_cascade_load(AVEMO_DEFAULT_CASCADE, NULL, &c, &err), AVEMO_OK);
    struct avemo_image g, big;
    assert_int_equal(avemo_jpeg_read_file(FER_FACE, 1, 0, &g, &err), AVEMO_OK);
    struct avemo_rect all = {0, 0, 48, 48};
    assert_int_equal(avemo_image_resize(&g, all, 192, 192, &big, &err), AVEMO_OK);
    struct thread_job jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (struct thread_job){c, &big, {0, 0, 0, 0}, 0, AVEMO_OK};
        assert_int_equal(pthread_create(&th[i], NULL, detect_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(jobs[i].st, AVEMO_OK);
        assert_int_equal(jobs[i].count, 1);
        assert_memory_equal(&jobs[i].box, &jobs[0].box, sizeof jobs[0].box);
    }
    printf("  face [%d, %d, %d, %d] in every thread\n", jobs[0].box.x, jobs[0].box.y, jobs[0].box.w, jobs[0].box.h);
    assert_true(jobs[0].box.w > 96);
    avemo_image_free(&g);
    avemo_image_free(&big);
    avemo_cascade_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_area_and_bilinear),
        cmocka_unit_test(test_equalize),
        cmocka_unit_test(test_jpeg_read_fer),
        cmocka_unit_test(test_jpeg_exif_orientation),
        cmocka_unit_test(test_jpeg_bad_input),
        cmocka_unit_test(test_jpeg_too_many_scans),
        cmocka_unit_test(test_fer_face_to_model_input),
        cmocka_unit_test(test_gray_matches_opencv),
        cmocka_unit_test(test_threads_share_cascade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
