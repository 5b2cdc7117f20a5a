/* libFuzzer harness: JPEG decoding from memory (face images and thumbnails come from
 * outside), in each of the channel modes, with a pixel cap like a server's. */
#include <avemo/vision.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int channels[] = {0, 1, 3};
    for (int i = 0; i < 3; i++) {
        struct avemo_error err = {0};
        struct avemo_image img = {0};
        if (fuzz_check(avemo_jpeg_read_memory(data, size, "fuzz.jpg", channels[i], (int64_t)1024 * 1024, &img, &err),
                       &err))
            continue;
        if (img.width <= 0 || img.height <= 0 || !img.data) abort(); /* success must give pixels */
        avemo_image_free(&img);
    }
    return 0;
}
