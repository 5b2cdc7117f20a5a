/* Status codes and error messages shared by every module. */
#include <avemo/core.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct status_text {
    const char *name;
    const char *text;
};

/* Indexed by enum avemo_status; keep in the enum's order. */
static const struct status_text status_texts[AVEMO_STATUS_COUNT] = {
    [AVEMO_OK] = {"ok", "success"},
    [AVEMO_ERR_INVALID_ARG] = {"invalid_argument", "invalid argument"},
    [AVEMO_ERR_NOMEM] = {"out_of_memory", "out of memory"},
    [AVEMO_ERR_IO] = {"io_error", "input/output error"},
    [AVEMO_ERR_NOT_FOUND] = {"not_found", "not found"},
    [AVEMO_ERR_EMPTY] = {"empty", "empty input"},
    [AVEMO_ERR_UNSUPPORTED] = {"unsupported", "unsupported format"},
    [AVEMO_ERR_CORRUPT] = {"corrupt", "corrupt or truncated data"},
    [AVEMO_ERR_NO_AUDIO] = {"no_audio", "no audio stream"},
    [AVEMO_ERR_NO_VIDEO] = {"no_video", "no video stream"},
    [AVEMO_ERR_TOO_LARGE] = {"too_large", "size limit exceeded"},
    [AVEMO_ERR_TOO_LONG] = {"too_long", "duration limit exceeded"},
    [AVEMO_ERR_CONFIG] = {"bad_config", "invalid configuration"},
    [AVEMO_ERR_VERSION] = {"bad_version", "unsupported file version"},
    [AVEMO_ERR_CHECKSUM] = {"bad_checksum", "checksum mismatch"},
    [AVEMO_ERR_MISMATCH] = {"mismatch", "shape or parameter mismatch"},
    [AVEMO_ERR_NO_FACE] = {"no_face", "no face found"},
    [AVEMO_ERR_BUSY] = {"busy", "resource busy"},
    [AVEMO_ERR_INTERNAL] = {"internal", "internal error"},
};

const char *avemo_strerror(enum avemo_status status)
{
    if ((int)status < 0 || status >= AVEMO_STATUS_COUNT) return "unknown status";
    return status_texts[status].text;
}

const char *avemo_status_name(enum avemo_status status)
{
    if ((int)status < 0 || status >= AVEMO_STATUS_COUNT) return "unknown";
    return status_texts[status].name;
}

enum avemo_status avemo_fail(struct avemo_error *err, enum avemo_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

void avemo_error_clear(struct avemo_error *err)
{
    if (!err) return;
    err->status = AVEMO_OK;
    err->message[0] = '\0';
}

const char *avemo_version(void) { return AVEMO_VERSION_STRING; }

const char *const avemo_emotion_codes[AVEMO_NUM_EMOTIONS] = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"};
const char *const avemo_emotion_names[AVEMO_NUM_EMOTIONS] = {"anger", "disgust", "fear",
                                                              "happy", "neutral", "sad"};
