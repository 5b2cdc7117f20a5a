/* Argument checks shared by the commands: every usage error names the option, the value and
 * what was expected, and exits 2; standard input ("-") read once, with a cap. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "avemo %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n`avemo %s --help` shows the options.\n", command);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_int_arg(const char *command, const char *option, const char *text, int lo, int hi, int *out)
{
    if (avemo_parse_int(text, lo, hi, out) == AVEMO_OK) return 0;
    cli_usage_error(command, "%s '%s': expected a whole number in %d..%d", option, text, lo, hi);
    return -1;
}

int cli_double_arg(const char *command, const char *option, const char *text, double lo, double hi, double *out)
{
    if (avemo_parse_double(text, lo, hi, out) == AVEMO_OK) return 0;
    cli_usage_error(command, "%s '%s': expected a number in %g..%g", option, text, lo, hi);
    return -1;
}

int cli_duration_arg(const char *command, const char *option, const char *text, double lo, double hi,
                     double *seconds)
{
    if (avemo_parse_duration(text, lo, hi, seconds) == AVEMO_OK) return 0;
    size_t n = strlen(text);
    cli_usage_error(command, "%s '%s': expected a duration in %g..%g s, e.g. 3s, 250ms, 2.5 or 1:30%s", option,
                    text, lo, hi, n && text[n - 1] == 'm' ? " ('m' is no unit: minutes are 1:00, milliseconds ms)" : "");
    return -1;
}

int cli_assignment_arg(const char *command, const char *text)
{
    avemo_cfg *cfg = NULL;
    struct avemo_error err = {0};
    int ok = avemo_cfg_parse("", 16, "--set", &cfg, &err) == AVEMO_OK && avemo_cfg_assign(cfg, text, &err) == AVEMO_OK;
    avemo_cfg_free(cfg);
    if (ok) return 0;
    cli_usage_error(command, "--set: %s", err.message);
    return -1;
}

int cli_quiet(void) { return avemo_log_level() < AVEMO_LOG_INFO; }

int cli_read_stdin(const char *command, uint8_t **data, size_t *size)
{
    if (isatty(STDIN_FILENO))
        return cli_usage_error(command, "'-' reads the file from standard input, which is a terminal "
                               "(pipe a file in: cat clip.flv | avemo %s -)", command);
    struct avemo_media_limits limits;
    avemo_media_limits_default(&limits);
    struct avemo_error err = {0};
    if (avemo_read_stream(stdin, "standard input", (size_t)limits.max_file_bytes, data, size, &err) == AVEMO_OK)
        return CLI_EXIT_OK;
    if (err.status == AVEMO_ERR_TOO_LARGE)
        fprintf(stderr, "avemo %s: standard input: more than %lld MiB, the limit of one input; stopped reading\n",
                command, (long long)(limits.max_file_bytes >> 20));
    else cli_report(&err);
    return CLI_EXIT_FAIL;
}
