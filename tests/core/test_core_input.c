/* What the program's inputs go through in core: the one duration parser (av_parse_time with a
 * range), a stream read whole with a cap (standard input), manifests given as text, and the
 * route of FFmpeg's log. */
#include "common/testutil.h"

#include <avemo/core.h>
#include <libavutil/log.h>

static void test_durations(void **state)
{
    (void)state;
    double s = -1;
    assert_int_equal(avemo_parse_duration("3s", 0, 600, &s), AVEMO_OK);
    assert_true(s == 3.0);
    assert_int_equal(avemo_parse_duration("250ms", 0, 600, &s), AVEMO_OK);
    assert_true(s == 0.25);
    assert_int_equal(avemo_parse_duration("2.5", 0, 600, &s), AVEMO_OK);
    assert_true(s == 2.5);
    assert_int_equal(avemo_parse_duration("1:30", 0, 600, &s), AVEMO_OK);
    assert_true(s == 90.0);
    /* refused, and *seconds untouched: "1m" is never 1 s, nor is anything that is not a duration */
    const char *const bad[] = {"1m", "abc", "", " 3", "3 ", "3S", "inf", "nan", "0x10", "1e3", "--1", "3s ", NULL};
    for (int i = 0; bad[i]; i++) {
        s = -7;
        assert_int_equal(avemo_parse_duration(bad[i], 0, 1e6, &s), AVEMO_ERR_INVALID_ARG);
        assert_true(s == -7);
    }
    assert_int_equal(avemo_parse_duration("601", 0, 600, &s), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_parse_duration("-1", 0, 600, &s), AVEMO_ERR_INVALID_ARG);
    assert_int_equal(avemo_parse_duration(NULL, 0, 600, &s), AVEMO_ERR_INVALID_ARG);
}

/* A stream of exactly the limit is read; one byte more is refused with the limit named. */
static void test_read_stream_cap(void **state)
{
    (void)state;
    char bytes[100];
    memset(bytes, 'x', sizeof bytes);
    struct avemo_error err = {0};
    uint8_t *data = NULL;
    size_t size = 0;
    FILE *f = fmemopen(bytes, sizeof bytes, "rb");
    assert_int_equal(avemo_read_stream(f, "standard input", 100, &data, &size, &err), AVEMO_OK);
    assert_int_equal(size, 100);
    assert_int_equal(data[100], 0);
    assert_memory_equal(data, bytes, 100);
    free(data);
    fclose(f);
    f = fmemopen(bytes, sizeof bytes, "rb");
    assert_int_equal(avemo_read_stream(f, "standard input", 99, &data, &size, &err), AVEMO_ERR_TOO_LARGE);
    assert_null(data);
    assert_non_null(strstr(err.message, "standard input"));
    assert_non_null(strstr(err.message, "99"));
    fclose(f);
    /* an empty stream is read as 0 bytes (the caller says what that means) */
    f = fmemopen(bytes, 0, "rb");
    if (f) {
        assert_int_equal(avemo_read_stream(f, "empty", 10, &data, &size, &err), AVEMO_OK);
        assert_int_equal(size, 0);
        free(data);
        fclose(f);
    }
}

static void test_manifest_text(void **state)
{
    (void)state;
    struct avemo_items items = {0};
    struct avemo_error err = {0};
    const char *inputs[] = {"first.flv"};
    assert_int_equal(avemo_items_expand(inputs, 1, &items, &err), AVEMO_OK);
    assert_int_equal(avemo_items_add_manifest(&items, "# clips\na.flv\r\n\n/abs/b.wav  \nsub/c.png", "lists", "m", &err),
                     AVEMO_OK);
    assert_int_equal(items.n, 4);
    assert_string_equal(items.paths[0], "first.flv");
    assert_string_equal(items.paths[1], "lists/a.flv");
    assert_string_equal(items.paths[2], "/abs/b.wav");
    assert_string_equal(items.paths[3], "lists/sub/c.png");
    /* without a folder (a list on standard input), paths are as written */
    assert_int_equal(avemo_items_add_manifest(&items, "d.flv\n", NULL, "standard input", &err), AVEMO_OK);
    assert_string_equal(items.paths[4], "d.flv");
    avemo_items_free(&items);
}

struct captured {
    int lines;
    char last[256];
};

static void capture(void *user, enum avemo_log_level level, const char *line)
{
    struct captured *c = user;
    assert_int_equal(level, AVEMO_LOG_VERBOSE);
    c->lines++;
    snprintf(c->last, sizeof c->last, "%s", line);
}

/* FFmpeg's lines reach the route only when it asks for AVEMO_LOG_VERBOSE, a line written in
 * pieces arrives whole, and FFmpeg's debug lines never come. */
static void test_ffmpeg_log_route(void **state)
{
    (void)state;
    struct captured c = {0};
    avemo_log_route(AVEMO_LOG_INFO, capture, &c);
    assert_int_equal(avemo_log_level(), AVEMO_LOG_INFO);
    av_log(NULL, AV_LOG_ERROR, "Packet corrupt\n");
    assert_int_equal(c.lines, 0);
    avemo_log_route(AVEMO_LOG_VERBOSE, capture, &c);
    av_log(NULL, AV_LOG_ERROR, "Packet corrupt (stream = %d)", 1);
    assert_int_equal(c.lines, 0);
    av_log(NULL, AV_LOG_ERROR, ".\n");
    assert_int_equal(c.lines, 1);
    assert_string_equal(c.last, "Packet corrupt (stream = 1).");
    av_log(NULL, AV_LOG_DEBUG, "debug detail\n");
    assert_int_equal(c.lines, 1);
    avemo_log_route(AVEMO_LOG_INFO, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_read_stream_cap),
        cmocka_unit_test(test_manifest_text),
        cmocka_unit_test(test_ffmpeg_log_route),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
