/* The avemo program: one file per command, each only parses its arguments and calls libavemo. */
#ifndef AVEMO_CLI_H
#define AVEMO_CLI_H

#include <avemo/avemo.h>
#include <stdio.h>

struct cli_command {
    const char *name;
    const char *summary;  /* one line for `avemo help` */
    const char *usage;    /* full usage for `avemo help NAME` and `avemo NAME --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    int one_shot; /* CLI_ONE_SHOT: a short run over a few files, whose start-up is most of its time */
};
enum { CLI_ONE_SHOT = 1 };

/* Exit codes: 0 success, 1 the work failed (bad input, ...), 2 bad usage. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Print "avemo: <message>" for a failed library call and return CLI_EXIT_FAIL. */
int cli_report(const struct avemo_error *err);
/* Print the usage of a command to stream. */
void cli_print_usage(FILE *stream, const struct cli_command *cmd);
/* Look up a command by name; NULL when unknown. */
const struct cli_command *cli_find_command(const char *name);
/* 1 when argv contains -h or --help. */
int cli_wants_help(int argc, char **argv);

/* ---- shared argument checks (cli_args.c): a usage error says why and exits 2 ---- */
/* Print "avemo COMMAND: <reason>" and where the options are; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A number (avemo_parse_int/_double) or a duration (avemo_parse_duration: 3s, 250ms, 2.5) given
 * to option: 0, or -1 after printing "avemo COMMAND: OPTION 'TEXT': expected ...". */
int cli_int_arg(const char *command, const char *option, const char *text, int lo, int hi, int *out);
int cli_double_arg(const char *command, const char *option, const char *text, double lo, double hi, double *out);
int cli_duration_arg(const char *command, const char *option, const char *text, double lo, double hi,
                     double *seconds);
/* A --set SECTION.KEY=VALUE: 0, or -1 after saying why its shape is wrong (checked by the
 * configuration's own avemo_cfg_assign; the value itself is checked where it is used). */
int cli_assignment_arg(const char *command, const char *text);
/* --quiet: notes and summaries are not printed (main() takes --quiet and --verbose for every
 * command and routes FFmpeg's log: avemo_log_route). */
int cli_quiet(void);
/* "-": standard input into memory (a pipe or a file, not a terminal), at most
 * avemo_media_limits' max_file_bytes; CLI_EXIT_OK or the exit status after the message. */
int cli_read_stdin(const char *command, uint8_t **data, size_t *size);
/* --fusion auto|head|late (eval_common.c): 0, or -1 after a usage error that names the value. */
int cli_parse_fusion(const char *command, const char *text, enum avemo_fusion *fusion);

/* The commands (each in cmd_<name>.c). */
extern const struct cli_command cli_cmd_help;
extern const struct cli_command cli_cmd_version;
extern const struct cli_command cli_cmd_probe;
extern const struct cli_command cli_cmd_features;
extern const struct cli_command cli_cmd_faces;
extern const struct cli_command cli_cmd_classify;
extern const struct cli_command cli_cmd_train;
extern const struct cli_command cli_cmd_eval;
extern const struct cli_command cli_cmd_compare;
extern const struct cli_command cli_cmd_split;
extern const struct cli_command cli_cmd_serve;
extern const struct cli_command cli_cmd_merge;
extern const struct cli_command cli_cmd_export;
extern const struct cli_command cli_cmd_explain;
extern const struct cli_command cli_cmd_calibrate;
extern const struct cli_command cli_cmd_ensemble;

#endif
