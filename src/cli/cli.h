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
};

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

/* --fusion auto|head|late (cmd_calibrate.c); prints the problem and returns -1 when unknown. */
int cli_parse_fusion(const char *text, enum avemo_fusion *fusion);

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
extern const struct cli_command cli_cmd_calibrate;

#endif
