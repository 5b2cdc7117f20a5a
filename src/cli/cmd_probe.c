/* avemo probe FILE [--json] [--format FMT] [--options K=V:K=V] */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char probe_usage[] =
    "usage: avemo probe FILE|- [--json] [--format FMT] [--options K=V:...]\n"
    "  Print a media file's container, duration, audio and video streams (- reads standard input).\n"
    "  --json         one JSON object\n"
    "  --format FMT   force the input format (like ffmpeg -f), e.g. f32le\n"
    "  --options OPT  demuxer options, e.g. sample_rate=22050:ch_layout=mono";

static void print_text(const struct avemo_media_info *in)
{
    printf("container: %s (%s)\n", in->container, in->container_long);
    printf("duration:  %.3f s\nsize:      %lld bytes\n", in->duration_s, (long long)in->size_bytes);
    if (in->has_audio)
        printf("audio:     %s, %d Hz, %d channel(s)\n", in->audio_codec, in->sample_rate, in->channels);
    else
        printf("audio:     none\n");
    if (in->has_video)
        printf("video:     %s, %dx%d, %.3f fps, %lld frames%s%s\n", in->video_codec, in->width, in->height, in->fps,
               (long long)in->frame_count, in->frame_count_exact ? "" : " (estimated)",
               in->rotation == 90 ? ", shown turned 90 degrees clockwise"
               : in->rotation == 180 ? ", shown upside down"
               : in->rotation == 270 ? ", shown turned 90 degrees counter-clockwise" : "");
    else
        printf("video:     none\n");
}

static int run_probe(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"format", required_argument, NULL, 'f'},
        {"options", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    struct avemo_media_open_options opt = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "jf:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'f': opt.format = optarg; break;
        case 'o': opt.options = optarg; break;
        default: fprintf(stderr, "%s\n", probe_usage); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("probe", optind == argc ? "no FILE given" : "one FILE at a time (%d given)", argc - optind);
    struct avemo_error err = {0};
    avemo_media *media = NULL;
    uint8_t *data = NULL; /* standard input's bytes, for "-" */
    size_t size = 0;
    int rc = strcmp(argv[optind], "-") == 0 ? cli_read_stdin("probe", &data, &size) : CLI_EXIT_OK;
    opt.name = "standard input";
    if (!rc && (data ? avemo_media_open_memory(data, size, &opt, &media, &err)
                     : avemo_media_open_file(argv[optind], &opt, &media, &err)))
        rc = cli_report(&err);
    if (rc) {
        free(data);
        return rc;
    }
    if (json) {
        char *text = NULL;
        if (avemo_media_info_json(media, &text, &err)) rc = cli_report(&err);
        else printf("%s\n", text);
        free(text);
    } else {
        struct avemo_media_info info;
        avemo_media_get_info(media, &info);
        print_text(&info);
    }
    avemo_media_close(media);
    free(data);
    return rc;
}

const struct cli_command cli_cmd_probe = {
    "probe", "print a media file's container, duration and streams", probe_usage, run_probe, CLI_ONE_SHOT,
};
