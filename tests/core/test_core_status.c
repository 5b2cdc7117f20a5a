/* The status table (src/core/status.c): every status of the enum has a name and a text, and
 * the names are distinct, since the service sends them as the stable `code` of its errors. */
#include "common/testutil.h"

#include <avemo/core.h>

static void test_every_status_named(void **state)
{
    (void)state;
    for (int i = 0; i < AVEMO_STATUS_COUNT; i++) {
        const char *name = avemo_status_name((enum avemo_status)i);
        const char *text = avemo_strerror((enum avemo_status)i);
        if (!name || !name[0] || strcmp(name, "unknown") == 0) fail_msg("status %d has no name", i);
        if (!text || !text[0] || strcmp(text, "unknown status") == 0) fail_msg("status %d has no text", i);
        for (int j = 0; j < i; j++)
            if (strcmp(name, avemo_status_name((enum avemo_status)j)) == 0)
                fail_msg("statuses %d and %d are both named %s", j, i, name);
    }
    assert_string_equal(avemo_status_name(AVEMO_STATUS_COUNT), "unknown");
}

/* Values are API: a new status goes at the end, so the old ones keep their numbers. */
static void test_stable_values(void **state)
{
    (void)state;
    assert_int_equal(AVEMO_ERR_INTERNAL, 18);
    assert_int_equal(AVEMO_ERR_TIMEOUT, 19);
    assert_string_equal(avemo_status_name(AVEMO_ERR_TIMEOUT), "timeout");
    assert_string_equal(avemo_strerror(AVEMO_ERR_TIMEOUT), "time limit exceeded");
    assert_int_equal(AVEMO_ERR_SILENT, 20);
    assert_string_equal(avemo_status_name(AVEMO_ERR_SILENT), "silent");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_status_named),
        cmocka_unit_test(test_stable_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
