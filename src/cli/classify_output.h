/* The machine-readable output of `avemo classify` in one place (classify_output.c): JSON lines
 * and CSV rows for predictions, windows and failed files.  The CSV row is made from the JSON
 * object of the prediction, so both always carry the same values. */
#ifndef AVEMO_CLI_CLASSIFY_OUTPUT_H
#define AVEMO_CLI_CLASSIFY_OUTPUT_H

#include <avemo/eval.h>

enum cli_format { CLI_FORMAT_TEXT, CLI_FORMAT_JSON, CLI_FORMAT_CSV };

struct cli_classify_output {
    enum cli_format format;
    int windows;                       /* rows of --window: start_s and end_s first */
    int num_classes;                   /* the probability columns of a CSV */
    char labels[AVEMO_MAX_CLASSES][8];
};

void cli_classify_output_init(struct cli_classify_output *o, enum cli_format format, int windows,
                              const avemo_classifier *clf);
/* The CSV header line (malloc'ed, no newline), NULL for the other formats. */
char *cli_classify_header(const struct cli_classify_output *o);
/* One prediction's JSON line or CSV row (malloc'ed; user is the output): an avemo_prediction_format_fn. */
char *cli_classify_line(void *user, const struct avemo_prediction *pred, const char *file);
/* A window's JSON line or CSV row. */
char *cli_classify_window_line(const struct cli_classify_output *o, const struct avemo_prediction *pred,
                               const char *file, double start_s, double end_s);
/* A failed file's JSON line ({"file", "error": {"code", "message"}}) or CSV row (the error column
 * filled, the others empty); NULL for text (the message on stderr is all). */
char *cli_classify_error_line(void *user, const char *file, const struct avemo_error *err);

#endif
