/*
 * `avemo faces CLIP --frames 8 --json --out DIR`: 8 sampled frames, each with a
 * face box of about 120-140 px (the actor's face in the 480x360 CREMA-D frame),
 * and 8 JPEG crops of 64x64 in DIR.  Bad options fail with the usage or a message.
 */
#include "common/testutil.h"

#include <avemo/vision.h>
#include <cjson/cJSON.h>

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

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/avemo_vision_cli_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faces_json_and_crops),
        cmocka_unit_test(test_faces_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
