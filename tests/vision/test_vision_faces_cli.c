/*
 * `avemo faces CLIP --frames 8 --json --out DIR`: 8 sampled frames, each with a
 * face box of about 120-140 px (the actor's face in the 480x360 CREMA-D frame),
 * and 8 JPEG crops of 64x64 in DIR.  Bad options fail with the usage or a message.
 */
#include "vision/vision_testutil.h"

#include <avemo/vision.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define AVEMO_BIN AVEMO_BINARY_DIR "/avemo"
#define CLIP TEST_DATA("cremad/1001_DFA_ANG_XX.flv")

static char tmpdir[64];

static void test_faces_json_and_crops(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s faces %s --frames 8 --json --out %s --draw", AVEMO_BIN, CLIP, tmpdir);
    size_t size = 0;
    uint8_t *out = test_run_capture(cmd, &size);
    assert_non_null(out);
    out = realloc(out, size + 1);
    out[size] = 0;
    cJSON *root = cJSON_Parse((const char *)out);
    assert_non_null(root);
    const cJSON *frames = cJSON_GetObjectItem(root, "frames");
    assert_int_equal(cJSON_GetArraySize(frames), 8);
    double last_time = -1;
    const cJSON *f;
    cJSON_ArrayForEach(f, frames)
    {
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(f, "face_found")));
        const cJSON *box = cJSON_GetObjectItem(f, "box");
        assert_int_equal(cJSON_GetArraySize(box), 4);
        int x = cJSON_GetArrayItem(box, 0)->valueint, y = cJSON_GetArrayItem(box, 1)->valueint;
        int w = cJSON_GetArrayItem(box, 2)->valueint, h = cJSON_GetArrayItem(box, 3)->valueint;
        double t = cJSON_GetObjectItem(f, "time_s")->valuedouble;
        printf("  frame %d at %.3f s: [%d, %d, %d, %d]\n", cJSON_GetObjectItem(f, "index")->valueint, t, x, y, w, h);
        assert_in_range(w, 120, 140);
        assert_in_range(h, 120, 140);
        /* the face is in the upper middle of the 480x360 frame */
        assert_in_range(x + w / 2, 160, 320);
        assert_in_range(y + h / 2, 80, 200);
        assert_true(t > last_time);
        last_time = t;
    }
    cJSON_Delete(root);
    free(out);
    /* the crops: 8 JPEGs of 64x64 RGB, and the drawn frames of 480x360 */
    struct avemo_error err = {0};
    for (int i = 0; i < 8; i++) {
        char path[256];
        struct avemo_image img;
        snprintf(path, sizeof path, "%s/face_%03d.jpg", tmpdir, i);
        assert_int_equal(avemo_jpeg_read_file(path, 0, 0, &img, &err), AVEMO_OK);
        assert_int_equal(img.width, 64);
        assert_int_equal(img.height, 64);
        assert_int_equal(img.channels, 3);
        avemo_image_free(&img);
        snprintf(path, sizeof path, "%s/frame_%03d.jpg", tmpdir, i);
        assert_int_equal(avemo_jpeg_read_file(path, 0, 0, &img, &err), AVEMO_OK);
        assert_int_equal(img.width, 480);
        assert_int_equal(img.height, 360);
        avemo_image_free(&img);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/face_008.jpg", tmpdir);
    assert_null(fopen(path, "rb"));
}

static void test_faces_errors(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s faces %s --cascade /nonexistent.xml 2>&1", AVEMO_BIN, CLIP);
    FILE *p = popen(cmd, "r");
    char buf[1024] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    int rc = pclose(p);
    assert_int_equal(WEXITSTATUS(rc), 1);
    assert_non_null(strstr(buf, "/nonexistent.xml"));
    snprintf(cmd, sizeof cmd, "%s faces %s --frames 0 2>/dev/null", AVEMO_BIN, CLIP);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s faces /nonexistent.flv 2>/dev/null", AVEMO_BIN);
    assert_int_equal(WEXITSTATUS(system(cmd)), 1);
}

/* The library call behind the command: tracking finds the same faces (near the
 * previous box first), gray crops have one channel, kept frames are the decoded ones. */
static void test_clip_faces_track_and_gray(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    avemo_detector *d = NULL;
    test_default_detector(&c, &d);
    struct avemo_clip_faces full = {0}, tracked = {0};
    struct avemo_face_options opt;
    avemo_face_options_default(&opt);
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_HAP_XX.flv"), NULL, &m, &err), AVEMO_OK);
    assert_int_equal(avemo_clip_faces(d, m, 8, &opt, 0, &full, &err), AVEMO_OK);
    avemo_media_close(m);
    opt.track = 1;
    opt.channels = 1;
    assert_int_equal(avemo_media_open_file(TEST_DATA("cremad/1001_DFA_HAP_XX.flv"), NULL, &m, &err), AVEMO_OK);
    assert_int_equal(avemo_clip_faces(d, m, 8, &opt, 1, &tracked, &err), AVEMO_OK);
    avemo_media_close(m);
    assert_int_equal(full.count, 8);
    assert_int_equal(tracked.count, 8);
    assert_int_equal(full.frames.count, 0);
    assert_int_equal(tracked.frames.count, 8);
    for (int i = 0; i < 8; i++) {
        const struct avemo_face *a = &full.faces[i], *b = &tracked.faces[i];
        double iou = avemo_rect_iou(a->box, b->box);
        printf("  frame %lld: full [%d %d %d %d], tracked [%d %d %d %d], IoU %.2f\n", (long long)a->frame_index,
               a->box.x, a->box.y, a->box.w, a->box.h, b->box.x, b->box.y, b->box.w, b->box.h, iou);
        assert_true(a->face_found && b->face_found);
        assert_true(iou >= 0.8);
        assert_int_equal(a->image.channels, 3);
        assert_int_equal(b->image.channels, 1);
        assert_int_equal(b->image.width, 64);
        assert_int_equal(tracked.frames.frames[i].channels, 1);
        assert_int_equal(b->frame_index, a->frame_index);
        /* the crop contains the box */
        assert_true(a->crop.x <= a->box.x && a->crop.y <= a->box.y && a->crop.x + a->crop.w >= a->box.x + a->box.w &&
                    a->crop.y + a->crop.h >= a->box.y + a->box.h);
    }
    avemo_clip_faces_free(&full);
    avemo_clip_faces_free(&tracked);
    avemo_detector_free(d);
    avemo_cascade_free(c);
}

/* A phone's portrait video (pictures stored on their side, a display matrix turning them
 * upright): the frames are searched upright, so the face is found in each, where the stored
 * pictures have none the cascade can see. */
static void test_portrait_video_faces(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    avemo_detector *d = NULL;
    test_default_detector(&c, &d);
    struct avemo_face_options opt;
    avemo_face_options_default(&opt);
    struct avemo_clip_faces faces = {0};
    avemo_media *m = NULL;
    assert_int_equal(avemo_media_open_file(TEST_DATA("media/portrait_1001_DFA_HAP_XX.mp4"), NULL, &m, &err),
                     AVEMO_OK);
    assert_int_equal(avemo_clip_faces(d, m, 8, &opt, 0, &faces, &err), AVEMO_OK);
    avemo_media_close(m);
    assert_int_equal(faces.count, 8);
    for (int i = 0; i < 8; i++) {
        const struct avemo_face *f = &faces.faces[i];
        printf("  frame %lld: face %d [%d %d %d %d]\n", (long long)f->frame_index, f->face_found, f->box.x, f->box.y,
               f->box.w, f->box.h);
        assert_true(f->face_found);
        assert_true(f->box.w > 60 && f->box.y < 180); /* the upright frame is 480x360: the face is high */
    }
    avemo_clip_faces_free(&faces);
    avemo_detector_free(d);
    avemo_cascade_free(c);
}

/* Framing: a negative margin crops inside the detector's box and offset_y moves the crop
 * down by that fraction of the box side (the box itself does not change). */
static void test_crop_margin_and_offset(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    avemo_detector *d = NULL;
    test_default_detector(&c, &d);
    avemo_media *m = NULL;
    struct avemo_frames fr = {0};
    assert_int_equal(avemo_media_open_file(CLIP, NULL, &m, &err), AVEMO_OK);
    assert_int_equal(avemo_media_decode_frames(m, 1, AVEMO_PIX_GRAY8, &fr, &err), AVEMO_OK);
    avemo_media_close(m);
    struct avemo_image img = avemo_image_from_frame(&fr.frames[0]);
    struct avemo_face_options opt;
    avemo_face_options_default(&opt);
    opt.channels = 1;
    struct avemo_face plain, framed;
    assert_int_equal(avemo_face_detect_image(d, &img, &opt, NULL, &plain, &err), AVEMO_OK);
    opt.margin = -0.1;
    opt.offset_y = 0.2;
    assert_int_equal(avemo_face_detect_image(d, &img, &opt, NULL, &framed, &err), AVEMO_OK);
    assert_true(plain.face_found && framed.face_found);
    struct avemo_rect b = framed.box, r = framed.crop;
    printf("  box [%d %d %d %d], margin 0.1: [%d %d %d %d], margin -0.1 offset 0.2: [%d %d %d %d]\n", b.x, b.y, b.w, b.h,
           plain.crop.x, plain.crop.y, plain.crop.w, plain.crop.h, r.x, r.y, r.w, r.h);
    assert_memory_equal(&plain.box, &framed.box, sizeof b);
    assert_int_equal(r.w, (int)lrint(b.w * 0.8));
    assert_true(r.w < b.w && r.x > b.x && r.x + r.w < b.x + b.w);
    double cy = r.y + r.h / 2.0, want = b.y + b.h / 2.0 + 0.2 * b.h;
    assert_true(fabs(cy - want) <= 1.0);
    assert_int_equal(framed.image.width, 64);
    avemo_face_free(&plain);
    avemo_face_free(&framed);
    /* out of range: named */
    opt.margin = -0.3;
    assert_int_equal(avemo_face_detect_image(d, &img, &opt, NULL, &framed, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "margin"));
    opt.margin = 0;
    opt.offset_y = 0.6;
    assert_int_equal(avemo_face_detect_image(d, &img, &opt, NULL, &framed, &err), AVEMO_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "offset"));
    avemo_frames_free(&fr);
    avemo_detector_free(d);
    avemo_cascade_free(c);
}

static int setup(void **state)
{
    (void)state;
    return test_make_tmpdir(tmpdir, sizeof tmpdir, "vision_cli");
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tmpdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faces_json_and_crops),
        cmocka_unit_test(test_crop_margin_and_offset),
        cmocka_unit_test(test_faces_errors),
        cmocka_unit_test(test_clip_faces_track_and_gray),
        cmocka_unit_test(test_portrait_video_faces),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
