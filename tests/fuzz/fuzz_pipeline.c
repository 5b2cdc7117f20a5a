/* libFuzzer harness: a pipeline INI text (an uploaded or hand-edited recipe) through
 * every parser that reads one: the pipeline sections, the audio parameters, the
 * labels and the network description. */
#include <avemo/audio.h>
#include <avemo/nn.h>
#include <avemo/train.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The loaders refuse larger pipeline files before parsing. */
    if (size > AVEMO_NN_MAX_PIPELINE_BYTES) return 0;
    char *text = fuzz_text(data, size);
    if (!text) return 0;
    struct avemo_error err = {0};

    struct avemo_pipeline pipeline;
    avemo_pipeline_default(&pipeline);
    fuzz_check(avemo_pipeline_parse(text, "fuzz.ini", &pipeline, &err), &err);

    struct avemo_audio_params params;
    avemo_audio_params_default(&params);
    fuzz_check(avemo_audio_params_from_ini(text, "fuzz.ini", &params, &err), &err);

    struct avemo_label_map labels;
    avemo_label_map_default(&labels);
    if (!fuzz_check(avemo_label_map_from_ini(text, "fuzz.ini", &labels, &err), &err))
        avemo_label_map_apply(&labels, "ANG");

    avemo_net *net = NULL;
    if (!fuzz_check(avemo_net_create(text, "fuzz.ini", &net, &err), &err)) avemo_net_free(net);
    free(text);
    return 0;
}
