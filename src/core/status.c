/* Status codes and error messages shared by every module. */
#include <avemo/core.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
    [AVEMO_ERR_TIMEOUT] = {"timeout", "time limit exceeded"},
    [AVEMO_ERR_SILENT] = {"silent", "the audio is silent"},
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

static int utf8_continuation(char c) { return ((unsigned char)c & 0xc0) == 0x80; }

/* A message longer than the buffer keeps its head (the file it names) and its tail (the cause:
 * "No such file or directory", "File name too long") and loses the middle, so that a long path
 * is shortened rather than the cause cut off.  Cuts fall between UTF-8 characters. */
static void fit_message(char *out, size_t cap, const char *text, size_t len)
{
    static const char gap[] = "...";
    if (len < cap) {
        memcpy(out, text, len + 1);
        return;
    }
    size_t room = cap - sizeof gap; /* bytes of the text that are kept */
    size_t head = room / 4;
    while (head > 0 && utf8_continuation(text[head])) head--;
    size_t tail = len - (room - head);
    while (tail < len && utf8_continuation(text[tail])) tail++;
    memcpy(out, text, head);
    memcpy(out + head, gap, sizeof gap - 1);
    memcpy(out + head + sizeof gap - 1, text + tail, len - tail);
    out[head + sizeof gap - 1 + len - tail] = '\0';
}

enum avemo_status avemo_fail(struct avemo_error *err, enum avemo_status status, const char *fmt, ...)
{
    if (!err) return status;
    err->status = status;
    char buf[4 * AVEMO_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) { /* longer still: keep the tail of the formatted text */
        char *big = malloc((size_t)n + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            fit_message(err->message, sizeof err->message, big, (size_t)n);
            free(big);
            return status;
        }
        n = (int)sizeof buf - 1; /* out of memory: drop the last, maybe partial, character */
        while (n > 0 && utf8_continuation(buf[n - 1])) n--;
        if (n > 0) n--;
        buf[n] = '\0';
    }
    fit_message(err->message, sizeof err->message, buf, (size_t)n);
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
