/* `avemo classify --json` and `--csv`: the JSON is the library's (avemo_prediction_json), and a
 * CSV row takes the columns below from that same object.  A field added to the JSON reaches the
 * CSV by naming it in csv_columns. */
#include "cli/classify_output.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CSV columns: JSON keys ("a.b": key b of object a, a column named a); "probabilities"
 * stands for one column per class, named by its label; "error" is filled for failed files only. */
static const char *const csv_columns[] = {
    "file", "label", "emotion", "confidence", "probabilities", "mode", "mode_requested", "fallback", "model",
    "face_found", "frames_used", "frames_sampled", "faces_in_frame_max", "audio_s", "audio_level_db", "silent", "note", "uncertain", "second.label", "fusion", "time_ms.total",
    "error.message",
};
#define NCOLUMNS (sizeof csv_columns / sizeof csv_columns[0])

void cli_classify_output_init(struct cli_classify_output *o, enum cli_format format, int windows,
                              const avemo_classifier *clf)
{
    memset(o, 0, sizeof *o);
    o->format = format;
    o->windows = windows;
    o->num_classes = avemo_classifier_num_classes(clf);
    if (o->num_classes > AVEMO_MAX_CLASSES) o->num_classes = AVEMO_MAX_CLASSES;
    for (int c = 0; c < o->num_classes; c++)
        snprintf(o->labels[c], sizeof o->labels[c], "%s", avemo_classifier_label(clf, c));
}

/* One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *m, const char *text, int first)
{
    if (!first) fputc(',', m);
    if (!strpbrk(text, ",\"\r\n")) {
        fputs(text, m);
        return;
    }
    fputc('"', m);
    for (const char *c = text; *c; c++) {
        if (*c == '"') fputc('"', m);
        fputc(*c, m);
    }
    fputc('"', m);
}

/* A JSON value as CSV text: strings as they are, numbers to 6 digits, null or absent empty. */
static void csv_value(FILE *m, const cJSON *v, int first)
{
    char num[32] = "";
    if (cJSON_IsString(v)) {
        csv_field(m, v->valuestring, first);
        return;
    }
    if (cJSON_IsBool(v)) snprintf(num, sizeof num, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v)) snprintf(num, sizeof num, "%.6g", v->valuedouble);
    csv_field(m, num, first);
}

/* Column spec "a" or "a.b" of object o. */
static const cJSON *column_value(const cJSON *o, const char *column)
{
    const char *dot = strchr(column, '.');
    if (!dot) return cJSON_GetObjectItemCaseSensitive(o, column);
    char head[64];
    snprintf(head, sizeof head, "%.*s", (int)(dot - column), column);
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, head), dot + 1);
}

/* A column's name in the header: the spec up to its dot. */
static void csv_name(FILE *m, const char *column, int first)
{
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(column, "."), column);
    csv_field(m, name, first);
}

/* The header (o NULL) or the row of object o. */
static void csv_row(FILE *m, const struct cli_classify_output *out, const cJSON *o)
{
    static const char *const window_columns[] = {"start_s", "end_s"};
    int first = 1;
    for (int w = 0; out->windows && w < 2; w++, first = 0) {
        if (o) csv_value(m, cJSON_GetObjectItemCaseSensitive(o, window_columns[w]), first);
        else csv_name(m, window_columns[w], first);
    }
    for (size_t k = 0; k < NCOLUMNS; k++) {
        if (strcmp(csv_columns[k], "probabilities") != 0) {
            if (o) csv_value(m, column_value(o, csv_columns[k]), first);
            else csv_name(m, csv_columns[k], first);
            first = 0;
            continue;
        }
        const cJSON *probs = o ? cJSON_GetObjectItemCaseSensitive(o, "probabilities") : NULL;
        for (int c = 0; c < out->num_classes; c++, first = 0) {
            if (o) csv_value(m, cJSON_GetObjectItemCaseSensitive(probs, out->labels[c]), first);
            else csv_field(m, out->labels[c], first);
        }
    }
}

/* The CSV text of object o (NULL: the header), malloc'ed. */
static char *csv_text(const struct cli_classify_output *out, const cJSON *o)
{
    char *text = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&text, &size);
    if (!m) return NULL;
    csv_row(m, out, o);
    if (fclose(m) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

char *cli_classify_header(const struct cli_classify_output *o)
{
    return o->format == CLI_FORMAT_CSV ? csv_text(o, NULL) : NULL;
}

/* A JSON line as it is, or its CSV row. */
static char *json_or_csv(const struct cli_classify_output *o, char *json)
{
    if (!json || o->format != CLI_FORMAT_CSV) return json;
    cJSON *obj = cJSON_Parse(json);
    free(json);
    char *row = obj ? csv_text(o, obj) : NULL;
    cJSON_Delete(obj);
    return row;
}

char *cli_classify_line(void *user, const struct avemo_prediction *pred, const char *file)
{
    return json_or_csv(user, avemo_prediction_json(pred, file));
}

char *cli_classify_window_line(const struct cli_classify_output *o, const struct avemo_prediction *pred,
                               const char *file, double start_s, double end_s)
{
    return json_or_csv(o, avemo_window_json(pred, file, start_s, end_s));
}

char *cli_classify_error_line(void *user, const char *file, const struct avemo_error *err)
{
    const struct cli_classify_output *o = user;
    return o->format == CLI_FORMAT_TEXT ? NULL : json_or_csv(o, avemo_item_error_json(file, err));
}
