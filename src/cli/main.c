/* avemo: the command-line program.  Dispatches to one command per file. */
#include "cli/cli.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Every command the program knows, in the order `avemo help` lists them. */
static const struct cli_command *const commands[] = {
    &cli_cmd_help,
    &cli_cmd_version,
    &cli_cmd_probe,
    &cli_cmd_features,
    &cli_cmd_faces,
    &cli_cmd_classify,
    &cli_cmd_explain,
    &cli_cmd_train,
    &cli_cmd_eval,
    &cli_cmd_compare,
    &cli_cmd_calibrate,
    &cli_cmd_ensemble,
    &cli_cmd_split,
    &cli_cmd_serve,
    &cli_cmd_merge,
    &cli_cmd_export,
};

/* A command that reads a few files and exits: its process touches ~100 MB of fresh memory
 * (models, activations, the decoder's buffers), and on the virtual machines we measure on each
 * 4 kB page fault costs ~14 us.  So its heap is set up once, large and on transparent huge
 * pages: allocations below 32 MB come from it and freed memory stays for reuse.  Measured: 6 ms
 * off a one-clip `avemo classify` (docs/performance.md).  Long-running commands (serve, train,
 * eval) keep glibc's defaults, whose memory use the service's load test measures. */
static void heap_for_one_run(const struct cli_command *cmd)
{
    if (!cmd->one_shot) return;
    const size_t pad = (size_t)160 << 20, huge = (size_t)2 << 20;
    if (!mallopt(M_MMAP_THRESHOLD, 32 << 20) || !mallopt(M_TRIM_THRESHOLD, 512 << 20) ||
        !mallopt(M_TOP_PAD, (int)pad))
        return;
    uintptr_t old_top = (uintptr_t)sbrk(0);
    free(malloc((size_t)1 << 20)); /* the heap grows by the pad and keeps it */
    uintptr_t top = (uintptr_t)sbrk(0), start = (old_top + huge - 1) & ~(uintptr_t)(huge - 1);
    if (top > start) (void)madvise((void *)start, top - start, MADV_HUGEPAGE); /* advice: THP may be off */
}

const struct cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    return NULL;
}

int cli_report(const struct avemo_error *err)
{
    fprintf(stderr, "avemo: %s\n", err->message[0] ? err->message : avemo_strerror(err->status));
    return CLI_EXIT_FAIL;
}

void cli_print_usage(FILE *stream, const struct cli_command *cmd)
{
    fprintf(stream, "%s\n", cmd->usage);
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    return 0;
}

/* Called by `avemo help` with no argument. */
void cli_print_command_list(FILE *stream);
void cli_print_command_list(FILE *stream)
{
    fprintf(stream, "usage: avemo COMMAND [ARGS] [--quiet | --verbose]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(stream, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(stream, "\n`avemo help COMMAND` or `avemo COMMAND --help` shows a command's options.\n"
                    "Every command takes --quiet (errors and results only: no notes, summaries or progress)\n"
                    "and --verbose (also FFmpeg's own messages, e.g. about damaged packets).\n"
                    "Exit status: 0 success, 1 the work failed, 2 a usage error (the message says why).\n");
}

/* --quiet and --verbose, taken by every command, anywhere before "--": removed from argv
 * so that the command's own parser never sees them.  Returns the log level they ask for. */
static enum avemo_log_level take_log_options(int *argc, char **argv)
{
    enum avemo_log_level level = AVEMO_LOG_INFO;
    int out = 1;
    for (int i = 1, options = 1; i < *argc; i++) {
        if (options && strcmp(argv[i], "--") == 0) options = 0;
        if (options && strcmp(argv[i], "--quiet") == 0) level = AVEMO_LOG_ERROR;
        else if (options && strcmp(argv[i], "--verbose") == 0) level = AVEMO_LOG_VERBOSE;
        else argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    return level;
}

/* Where FFmpeg's lines go with --verbose: stderr, marked as FFmpeg's. */
static void log_to_stderr(void *user, enum avemo_log_level level, const char *line)
{
    (void)user;
    (void)level;
    fprintf(stderr, "avemo: ffmpeg: %s\n", line);
}

/* An empty argument is never a valid value (a path, a key, a number): it is what
 * `--api-key "$KEY"` gives when KEY is unset, and must not mean "none".  Names the option. */
static int empty_argument(const char *command, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        int inline_empty = n > 3 && argv[i][0] == '-' && argv[i][1] == '-' && argv[i][n - 1] == '=';
        if (n > 0 && !inline_empty) continue;
        if (inline_empty) fprintf(stderr, "avemo %s: empty value for %.*s\n", command, (int)(n - 1), argv[i]);
        else if (i > 1 && argv[i - 1][0] == '-')
            fprintf(stderr, "avemo %s: empty value for %s (an unset variable?)\n", command, argv[i - 1]);
        else fprintf(stderr, "avemo %s: argument %d is empty\n", command, i - 1);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    avemo_nn_init(); /* first: OpenBLAS's thread pool spins from load time until this */
    avemo_log_route(take_log_options(&argc, argv), log_to_stderr, NULL);
    if (argc < 2) {
        cli_print_command_list(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) name = "version";
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    const struct cli_command *cmd = cli_find_command(name);
    if (!cmd) {
        fprintf(stderr, "avemo: unknown command '%s'\n", argv[1]);
        cli_print_command_list(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cmd != &cli_cmd_help && cli_wants_help(argc - 1, argv + 1)) {
        cli_print_usage(stdout, cmd);
        return CLI_EXIT_OK;
    }
    if (empty_argument(cmd->name, argc, argv)) {
        fprintf(stderr, "`avemo help %s` shows its options.\n", cmd->name);
        return CLI_EXIT_USAGE;
    }
    heap_for_one_run(cmd);
    return cmd->run(argc - 1, argv + 1);
}
