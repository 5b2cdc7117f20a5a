/* avemo features FILE [--pipeline P.ini] [--feature ..] [--sr ..] [--n-mfcc ..] [--frames N|all] ... --out OUT.npy */
#include "cli/cli.h"

#include <avemo/audio.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char features_usage[] =
    "usage: avemo features FILE|- [options] [--out OUT.npy]\n"
    "       avemo features FILE|DIR|LIST.txt... [options] [--shard I/N] --out DIR\n"
    "  Compute the audio features of a model input (librosa-equal MFCC, log-mel or\n"
    "  spectrogram) and write them as a float32 .npy of shape features x frames.\n"
    "  Without --out, print the shape and a few statistics.  FILE - reads standard input.\n"
    "  --pipeline P.ini       read the [audio] section of a pipeline file\n"
    "  --feature F            mfcc | logmel | mel | spectrogram\n"
    "  --sr HZ                sample rate the audio is resampled to (default 22050)\n"
    "  --n-mfcc N             MFCC rows (default 40)\n"
    "  --n-mels N             mel bands (default 128)\n"
    "  --frames N|all         pad or crop to N frames (default 128), or keep all\n"
    "  --crop C               start | centre | energy | centroid: which frames a long clip keeps\n"
    "  --db-ref R             one | max: the 0 dB reference\n"
    "  --norm N               none | utterance: per-band normalisation (a pipeline's\n"
    "                         norm = dataset needs a model's statistics, so it writes none)\n"
    "  --input-format FMT     force the input format, e.g. f32le for raw samples\n"
    "  --input-rate HZ        sample rate of a raw input (with --input-format)\n"
    "  --out OUT.npy          output file\n"
    "  --shard I/N            many files (a folder, a .txt/.list manifest, several FILEs): do the\n"
    "                         I-th of N blocks (default: from SLURM_ARRAY_TASK_ID/..._COUNT or\n"
    "                         JOB_COMPLETION_INDEX/AVEMO_SHARD_COUNT) into DIR/features-IIIII-of-NNNNN.npy\n"
    "                         (files x features x frames) and .jsonl (the files, in order); a\n"
    "                         restarted shard skips the files done; `avemo merge` joins the shards\n"
    "  Options override the pipeline file.";

/* Command-line options that map to [audio] keys, applied after the pipeline file. */
struct override {
    const char *key;
    const char *value;
    const char *option;   /* its long option's name, for messages */
};

#define MAX_OVERRIDES 16
#define PIPELINE_MAX_BYTES (1 << 20)

/* A bad option value is a usage error (exit 2) that names the option; 0 when all are good. */
static int check_overrides(const struct override *ov, int n_ov)
{
    struct avemo_audio_params p;
    struct avemo_error err = {0};
    avemo_audio_params_default(&p);
    for (int i = 0; i < n_ov; i++) {
        char where[64];
        snprintf(where, sizeof where, "--%s", ov[i].option);
        if (avemo_audio_params_set(&p, ov[i].key, ov[i].value, where, &err))
            return cli_usage_error("features", "%s", err.message);
    }
    return CLI_EXIT_OK;
}

static int load_params(const char *pipeline, const struct override *ov, int n_ov, struct avemo_audio_params *p,
                       struct avemo_error *err)
{
    avemo_audio_params_default(p);
    if (pipeline) {
        uint8_t *text = NULL;
        size_t size = 0;
        if (avemo_read_file(pipeline, PIPELINE_MAX_BYTES, &text, &size, err)) return 0;
        enum avemo_status s = avemo_audio_params_from_ini((const char *)text, pipeline, p, err);
        free(text);
        if (s) return 0;
    }
    for (int i = 0; i < n_ov; i++)
        if (avemo_audio_params_set(p, ov[i].key, ov[i].value, "command line", err)) return 0;
    /* The training set's statistics live in a trained model, not in the pipeline: a pipeline
     * with norm = dataset still gives its features, unnormalised, as the network's stats
     * would be applied to them. */
    if (p->norm == AVEMO_NORM_DATASET) {
        fprintf(stderr, "avemo features: %s: norm = dataset uses a trained model's statistics; "
                        "writing unnormalised features\n", pipeline ? pipeline : "command line");
        p->norm = AVEMO_NORM_NONE;
    }
    return avemo_audio_params_validate(p, "command line", err) == AVEMO_OK;
}

static void print_summary(const char *file, const struct avemo_audio_params *p, const float *x, size_t rows,
                          size_t cols, size_t valid)
{
    double sum = 0.0, sum2 = 0.0, lo = INFINITY, hi = -INFINITY;
    size_t n = rows * cols;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        sum2 += (double)x[i] * x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    double mean = sum / (double)n;
    double var = sum2 / (double)n - mean * mean;
    printf("%s: %s %zu x %zu (%zu frames from the signal, %zu padding), %d Hz\n", file,
           avemo_audio_feature_name(p->feature), rows, cols, valid, cols - valid, p->sample_rate);
    printf("min %.4f  max %.4f  mean %.4f  std %.4f\n", lo, hi, mean, sqrt(var > 0.0 ? var : 0.0));
}

/* Many files, or this task's shard of them, into out_dir. */
static int features_batch(const struct avemo_audio_params *params, const struct avemo_media_open_options *media_opt,
                          const char *shard_text, const char *out_dir, char **inputs, int ninputs)
{
    struct avemo_error err = {0};
    struct avemo_audio_batch b = {0};
    struct avemo_items items = {0};
    avemo_audio_extractor *ex = NULL;
    struct avemo_shard_stats stats;
    size_t failed = 0;
    int rc = CLI_EXIT_OK;
    if ((shard_text ? avemo_shard_parse(shard_text, &b.shard, &err) : avemo_shard_from_env(&b.shard, &err)) ||
        avemo_items_expand((const char *const *)inputs, ninputs, &items, &err) ||
        avemo_audio_extractor_create(params, &ex, &err)) {
        rc = cli_report(&err);
    } else {
        b.items = (const char *const *)items.paths;
        b.n = items.n;
        b.media_options = media_opt;
        b.out_dir = out_dir;
        if (avemo_audio_features_batch(ex, &b, &stats, &failed, &err)) rc = cli_report(&err);
        else if (!cli_quiet())
            fprintf(stderr, "avemo features: shard %d/%d: %zu files, %zu done before, %zu now (%zu failed) in %s\n",
                    b.shard.index, b.shard.count, stats.items, stats.skipped, stats.done, failed, out_dir);
    }
    avemo_audio_extractor_free(ex);
    avemo_items_free(&items);
    return rc != CLI_EXIT_OK || failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* One file (or "-", standard input): its features to out_path, or a summary on stdout. */
static int features_one(const struct avemo_audio_params *params, struct avemo_media_open_options *opt,
                        const char *file, const char *out_path)
{
    struct avemo_error err = {0};
    avemo_audio_extractor *ex = NULL;
    avemo_media *media = NULL;
    float *x = NULL;
    size_t cols = 0, valid = 0;
    uint8_t *data = NULL; /* standard input's bytes, for "-" */
    size_t size = 0;
    int rc = strcmp(file, "-") == 0 ? cli_read_stdin("features", &data, &size) : CLI_EXIT_OK;
    opt->name = "standard input";
    if (rc) return rc;
    if (avemo_audio_extractor_create(params, &ex, &err) ||
        (data ? avemo_media_open_memory(data, size, opt, &media, &err) : avemo_media_open_file(file, opt, &media, &err)) ||
        avemo_audio_features_from_media(ex, media, &x, &cols, &valid, &err)) {
        rc = cli_report(&err);
    } else {
        size_t rows = (size_t)avemo_audio_feature_count(ex);
        if (out_path) {
            size_t shape[2] = {rows, cols};
            if (avemo_write_npy(out_path, x, 2, shape, &err)) rc = cli_report(&err);
        } else {
            print_summary(file, params, x, rows, cols, valid);
        }
    }
    free(x);
    avemo_media_close(media);
    free(data);
    avemo_audio_extractor_free(ex);
    return rc;
}

static int run_features(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"pipeline", required_argument, NULL, 'p'},  {"feature", required_argument, NULL, 'F'},
        {"sr", required_argument, NULL, 'r'},        {"n-mfcc", required_argument, NULL, 'c'},
        {"n-mels", required_argument, NULL, 'm'},    {"frames", required_argument, NULL, 'n'},
        {"crop", required_argument, NULL, 'C'},      {"db-ref", required_argument, NULL, 'd'},
        {"norm", required_argument, NULL, 'N'},     {"input-format", required_argument, NULL, 'f'},
        {"input-rate", required_argument, NULL, 'R'},
        {"out", required_argument, NULL, 'o'},       {"shard", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    struct override ov[MAX_OVERRIDES];
    int n_ov = 0, c;
    const char *pipeline = NULL, *out_path = NULL, *input_format = NULL, *input_rate = NULL, *shard_text = NULL;
    optind = 1;
    int longindex = 0;
    while ((c = getopt_long(argc, argv, "o:", longopts, &longindex)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'p': pipeline = optarg; break;
        case 'F': key = "feature"; break;
        case 'r': key = "sample_rate"; break;
        case 'c': key = "n_mfcc"; break;
        case 'm': key = "n_mels"; break;
        case 'n': key = "frames"; break;
        case 'C': key = "crop"; break;
        case 'd': key = "db_ref"; break;
        case 'N': key = "norm"; break;
        case 'f': input_format = optarg; break;
        case 'R': input_rate = optarg; break;
        case 'o': out_path = optarg; break;
        case 's': shard_text = optarg; break;
        default: fprintf(stderr, "%s\n", features_usage); return CLI_EXIT_USAGE;
        }
        if (key && n_ov == MAX_OVERRIDES) {
            fprintf(stderr, "avemo features: too many options\n");
            return CLI_EXIT_USAGE;
        }
        if (key) ov[n_ov++] = (struct override){key, optarg, longopts[longindex].name};
    }
    struct stat st;
    int batch = shard_text || argc - optind > 1 || (optind < argc && stat(argv[optind], &st) == 0 && S_ISDIR(st.st_mode));
    if ((batch ? optind >= argc || !out_path : optind != argc - 1) || (input_rate && !input_format)) {
        fprintf(stderr, "%s\n", features_usage);
        return CLI_EXIT_USAGE;
    }
    const char *file = argv[optind];
    struct avemo_error err = {0};
    struct avemo_audio_params params;
    int rate;
    if (input_rate && cli_int_arg("features", "--input-rate", input_rate, 1, 768000, &rate)) return CLI_EXIT_USAGE;
    if (check_overrides(ov, n_ov)) return CLI_EXIT_USAGE;
    if (!load_params(pipeline, ov, n_ov, &params, &err)) return cli_report(&err);

    /* A raw input needs its rate and layout, like ffmpeg -f f32le -ar HZ -ac 1. */
    char demux_options[96];
    struct avemo_media_open_options opt = {0};
    opt.format = input_format;
    if (input_rate) {
        snprintf(demux_options, sizeof demux_options, "sample_rate=%d:ch_layout=mono", rate);
        opt.options = demux_options;
    }
    if (batch) return features_batch(&params, &opt, shard_text, out_path, argv + optind, argc - optind);
    return features_one(&params, &opt, file, out_path);
}

const struct cli_command cli_cmd_features = {
    "features", "compute MFCC / log-mel / spectrogram features (.npy)", features_usage, run_features, CLI_ONE_SHOT,
};
