/* avemo help [COMMAND] */
#include "cli/cli.h"

void cli_print_command_list(FILE *stream);

static int run_help(int argc, char **argv)
{
    if (argc < 2) {
        cli_print_command_list(stdout);
        return CLI_EXIT_OK;
    }
    const struct cli_command *cmd = cli_find_command(argv[1]);
    if (!cmd) {
        fprintf(stderr, "avemo: unknown command '%s'\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    cli_print_usage(stdout, cmd);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_help = {
    "help", "show the commands, or one command's options",
    "usage: avemo help [COMMAND]", run_help,
};
