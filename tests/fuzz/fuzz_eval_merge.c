/* libFuzzer harness: an `avemo eval --shard` output (JSON lines: a head line with the classes
 * and the --data list, then one line per unit) through `avemo merge --metrics` and its
 * reports, alone and given twice (a repeated unit is refused).  The merge reads files, so
 * the input goes through a file of this process. */
#include <avemo/eval.h>

#include "fuzz_common.h"

#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/avemo-fuzz-merge-%ld.jsonl", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t written = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || written != size) return 0;
    struct avemo_error err = {0};
    struct avemo_eval_set set;
    const char *inputs[2] = {path, path};
    for (int n = 1; n <= 2; n++) {
        enum avemo_status st = avemo_eval_merge(inputs, n, &set, &err);
        if (fuzz_check(st, &err)) continue;
        char *json = avemo_eval_set_json(&set, 0);
        char *report = avemo_eval_set_report(&set, 0);
        free(json);
        free(report);
        avemo_eval_free(&set);
    }
    unlink(path);
    return 0;
}
