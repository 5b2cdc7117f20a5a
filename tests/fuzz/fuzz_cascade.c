/* libFuzzer harness: the OpenCV cascade XML loader from memory (a cascade named in a
 * pipeline is a file from outside).  A loaded cascade also builds a detector and
 * scans one small gray image, which walks every stored feature rectangle. */
#include <avemo/vision.h>

#include "fuzz_common.h"

static void detect_once(const avemo_cascade *cascade)
{
    struct avemo_error err = {0};
    struct avemo_image img = {0};
    if (fuzz_check(avemo_image_alloc(&img, 48, 48, 1, &err), &err)) return;
    for (int i = 0; i < 48 * 48; i++) img.data[i] = (uint8_t)(i * 7 + (i / 48) * 13);
    avemo_detector *det = NULL;
    if (!fuzz_check(avemo_detector_create(cascade, &det, &err), &err)) {
        struct avemo_detect_params params;
        avemo_detect_params_default(&params);
        params.min_width = params.min_height = 1;
        params.min_neighbors = 0;
        params.max_candidates = 1000;
        struct avemo_rect found[8];
        int count = 0;
        fuzz_check(avemo_detect(det, &img, &params, found, 8, &count, &err), &err);
        avemo_detector_free(det);
    }
    avemo_image_free(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct avemo_cascade_limits limits;
    avemo_cascade_limits_default(&limits);
    /* Keep one input fast: a real cascade fits these easily. */
    limits.max_stages = 64;
    limits.max_trees = 4096;
    limits.max_features = 8192;
    limits.max_window = 64;
    struct avemo_error err = {0};
    avemo_cascade *cascade = NULL;
    if (fuzz_check(avemo_cascade_load_memory(data, size, "fuzz.xml", &limits, &cascade, &err), &err)) return 0;
    struct avemo_cascade_info info;
    avemo_cascade_get_info(cascade, &info);
    detect_once(cascade);
    avemo_cascade_free(cascade);
    return 0;
}
