/* avemo version (also avemo --version) */
#include "cli/cli.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

static int run_version(int argc, char **argv)
{
    if (argc > 1) return cli_usage_error("version", "takes no argument ('%s')", argv[1]);
    printf("avemo %s\n", avemo_version());
    printf("libavformat %u.%u.%u, libavcodec %u.%u.%u\n", avformat_version() >> 16,
           (avformat_version() >> 8) & 0xff, avformat_version() & 0xff, avcodec_version() >> 16,
           (avcodec_version() >> 8) & 0xff, avcodec_version() & 0xff);
    printf("OpenBLAS kernels: %s\n", avemo_nn_blas_core());
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_version = {
    "version", "print the version of avemo and of the FFmpeg libraries it uses",
    "usage: avemo version   (or avemo --version)", run_version, 0,
};
