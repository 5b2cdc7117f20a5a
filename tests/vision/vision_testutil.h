/* Helpers shared by the vision tests (header-only). */
#ifndef AVEMO_VISION_TESTUTIL_H
#define AVEMO_VISION_TESTUTIL_H

#include "common/testutil.h"

#include <avemo/vision.h>

/* The default cascade and a detector on it, failing the test when either cannot be made. */
static inline void test_default_detector(avemo_cascade **cascade, avemo_detector **detector)
{
    struct avemo_error err = {0};
    assert_int_equal(avemo_cascade_load(AVEMO_DEFAULT_CASCADE, NULL, cascade, &err), AVEMO_OK);
    assert_int_equal(avemo_detector_create(*cascade, detector, &err), AVEMO_OK);
}

#endif
