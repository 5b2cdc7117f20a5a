/* Features of a media file or memory input: decode, then the fixed-size model input. */
#include <avemo/audio.h>

#include <stdlib.h>

enum avemo_status avemo_audio_features_from_media(avemo_audio_extractor *ex, avemo_media *media, float **features,
                                                  size_t *frames, size_t *valid_frames, struct avemo_error *err)
{
    if (!ex || !media || !features || !frames)
        return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "audio features: NULL argument");
    *features = NULL;
    *frames = 0;
    struct avemo_audio audio = {0};
    enum avemo_status s = avemo_media_decode_audio(media, avemo_audio_extractor_params(ex)->sample_rate, &audio, err);
    if (s != AVEMO_OK) return s;
    if (audio.count == 0) {
        avemo_audio_free(&audio);
        return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: the audio stream decodes to no samples", avemo_media_name(media));
    }
    size_t cols = avemo_audio_output_frames(ex, audio.count), rows = (size_t)avemo_audio_feature_count(ex);
    if (cols > AVEMO_AUDIO_MAX_VALUES / rows) {
        avemo_audio_free(&audio);
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: %zu x %zu feature values exceed the limit of %zu",
                          avemo_media_name(media), rows, cols, AVEMO_AUDIO_MAX_VALUES);
    }
    float *out = malloc(sizeof(float) * rows * cols);
    if (!out) {
        avemo_audio_free(&audio);
        return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory for %zu feature frames", avemo_media_name(media),
                          cols);
    }
    struct avemo_error inner = {0};
    s = avemo_audio_compute_fixed(ex, audio.samples, audio.count, out, cols, valid_frames, &inner);
    avemo_audio_free(&audio);
    if (s != AVEMO_OK) {
        free(out);
        /* Name the input: the extractor's messages only say "audio features". */
        return avemo_fail(err, s, "%s: %s", avemo_media_name(media), inner.message);
    }
    *features = out;
    *frames = cols;
    return AVEMO_OK;
}
