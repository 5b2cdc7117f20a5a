/* avemo help [COMMAND] */
#include "cli/cli.h"

#include <string.h>

void cli_print_command_list(FILE *stream);

static int run_help(int argc, char **argv)
{
    if (argc < 2) {
        cli_print_command_list(stdout);
        return CLI_EXIT_OK;
    }
    const struct cli_command *cmd = cli_find_command(argv[1]);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) cmd = &cli_cmd_help;
    if (!cmd) return cli_usage_error("help", "unknown command '%s' (`avemo help` lists them)", argv[1]);
    cli_print_usage(stdout, cmd);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_help = {
    "help", "show the commands, or one command's options",
    "usage: avemo help [COMMAND]", run_help, 0,
};
