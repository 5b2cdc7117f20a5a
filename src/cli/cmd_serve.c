/* avemo serve [--model M]... [--host H] [--port P] [--db FILE] [--threads N] ... */
#include "cli/cli.h"

#include <avemo/eval.h>
#include <avemo/serve.h>

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char serve_usage[] =
    "usage: avemo serve [--model M]... [--host 127.0.0.1] [--port 8080] [--db history.sqlite]\n"
    "                   [--threads N] [--max-upload-mb 50] [--api-key KEY] [options]\n"
    "  Run the classifier as an HTTP service until SIGINT or SIGTERM (docs/http-api.md).\n"
    "  --model M            a model file (.avm), repeatable; the first is the default\n"
    "                       (default: the shipped avemo-av.avm, see AVEMO_MODEL_DIR)\n"
    "  --extra-model M      a unimodal model used when a model cannot serve a mode, repeatable\n"
    "                       (default: the shipped avemo-audio.avm and avemo-face.avm, if present)\n"
    "  --host H             address to listen on (default 127.0.0.1)\n"
    "  --port P             port (default 8080; 0 picks a free port, printed on stdout)\n"
    "  --db FILE|URI        prediction history: an SQLite file (default history.sqlite), or\n"
    "                       postgresql://user@host:port/dbname shared by replicas (docs/scale-out.md)\n"
    "  --threads N          inference workers (default 2)\n"
    "  --http-threads N     connection threads (default 2)\n"
    "  --queue N            uploads that may wait for a worker before 503 (default 4 * threads)\n"
    "  --max-upload-mb N    largest accepted upload in MiB (default 50)\n"
    "  --api-key KEY        require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' on /v1/\n"
    "                       (or set AVEMO_API_KEY, which keeps the key out of `ps`)\n"
    "  --timeout S          close connections idle for S (default 30s; a duration: 30, 30s, 1:00)\n"
    "  --request-timeout S  a request's headers and body must arrive within S (default 60s)\n"
    "  --max-connections N  simultaneous connections (default 64)\n"
    "  --max-connections-per-client N  from one IP address (default: half of --max-connections;\n"
    "                       behind a reverse proxy, set it to --max-connections)\n"
    "  --cors ORIGIN        let web pages from ORIGIN (e.g. https://app.example, or *) call the API\n"
    "  --uncertain-below P  answers whose top probability is below P say \"uncertain\" with the top\n"
    "                       two (default: the model's stored threshold, else 0.5; 0: never)\n"
    "  --quiet              no access log on stderr";

static int parse_count(const char *text, int lo, int hi, int *out)
{
    return avemo_parse_int(text, lo, hi, out) == AVEMO_OK ? 0 : -1;
}

/* A duration (30, 30s, 1:00, 500ms rounded up) in whole seconds. */
static int parse_seconds(const char *text, int lo, int hi, int *out)
{
    double s;
    if (avemo_parse_duration(text, 1e-3, hi, &s) != AVEMO_OK || ceil(s) < lo) return -1;
    *out = (int)ceil(s);
    return 0;
}

static int usage_error(const char *what, const char *value)
{
    fprintf(stderr, "avemo serve: bad %s '%s'\n%s\n", what, value, serve_usage);
    return CLI_EXIT_USAGE;
}

/* The options of the command line (and AVEMO_API_KEY); CLI_EXIT_OK or a usage error. */
static int parse_serve_options(int argc, char **argv, struct avemo_serve_options *opt)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},        {"extra-model", required_argument, NULL, 'x'},
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},         {"db", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},      {"http-threads", required_argument, NULL, 'T'},
        {"queue", required_argument, NULL, 'q'},        {"max-upload-mb", required_argument, NULL, 'u'},
        {"api-key", required_argument, NULL, 'k'},      {"timeout", required_argument, NULL, 'o'},
        {"max-connections", required_argument, NULL, 'c'},
        {"request-timeout", required_argument, NULL, 'R'}, {"max-connections-per-client", required_argument, NULL, 'C'},
        {"quiet", no_argument, NULL, 'Q'},              {"cors", required_argument, NULL, 'O'},
        {"uncertain-below", required_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    avemo_serve_options_default(opt);
    opt->api_key = getenv("AVEMO_API_KEY");
    opt->quiet = cli_quiet(); /* --quiet is taken by main() */
    int c, upload_mb = 50;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:x:H:p:d:t:T:q:u:k:o:c:R:C:QO:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (opt->num_models == AVEMO_SERVE_MAX_MODELS) return usage_error("(too many) --model", optarg);
            opt->models[opt->num_models++] = optarg;
            break;
        case 'x':
            if (opt->num_extra_models == AVEMO_SERVE_MAX_MODELS) return usage_error("(too many) --extra-model", optarg);
            opt->extra_models[opt->num_extra_models++] = optarg;
            break;
        case 'H': opt->host = optarg; break;
        case 'p': if (parse_count(optarg, 0, 65535, &opt->port)) return usage_error("--port", optarg); break;
        case 'd': opt->db_path = optarg; break;
        case 't': if (parse_count(optarg, 1, 64, &opt->threads)) return usage_error("--threads", optarg); break;
        case 'T':
            if (parse_count(optarg, 1, 64, &opt->http_threads)) return usage_error("--http-threads", optarg);
            break;
        case 'q': if (parse_count(optarg, 1, 4096, &opt->queue_capacity)) return usage_error("--queue", optarg); break;
        case 'u': if (parse_count(optarg, 1, 1024, &upload_mb)) return usage_error("--max-upload-mb", optarg); break;
        case 'k': opt->api_key = optarg; break;
        case 'o':
            if (parse_seconds(optarg, 1, 3600, &opt->connection_timeout_s)) return usage_error("--timeout", optarg);
            break;
        case 'c':
            if (parse_count(optarg, 1, 10000, &opt->max_connections)) return usage_error("--max-connections", optarg);
            break;
        case 'R':
            if (parse_seconds(optarg, 1, 3600, &opt->request_timeout_s)) return usage_error("--request-timeout", optarg);
            break;
        case 'C':
            if (parse_count(optarg, 1, 10000, &opt->max_connections_per_client))
                return usage_error("--max-connections-per-client", optarg);
            break;
        case 'Q': opt->quiet = 1; break;
        case 'B': {
            double t;
            if (avemo_parse_double(optarg, 0, 1, &t)) return usage_error("--uncertain-below", optarg);
            opt->uncertain_below = t > 0 ? (float)t : -1.0f; /* 0: never uncertain */
            break;
        }
        case 'O':
            if (!*optarg || strpbrk(optarg, "\r\n ,")) return usage_error("--cors origin", optarg);
            opt->cors_origin = optarg;
            break;
        default: fprintf(stderr, "%s\n", serve_usage); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc) return usage_error("argument", argv[optind]);
    if (opt->api_key && !*opt->api_key) { /* --api-key "" is caught by main(); this is the variable */
        fprintf(stderr, "avemo serve: AVEMO_API_KEY is set but empty: set a key or unset it\n%s\n", serve_usage);
        return CLI_EXIT_USAGE;
    }
    opt->max_upload_bytes = (size_t)upload_mb << 20;
    return CLI_EXIT_OK;
}

/* The shipped models when none are named; paths point into shipped. */
static void add_shipped_models(struct avemo_serve_options *opt, char shipped[3][1024])
{
    if (opt->num_models == 0) {
        if (avemo_default_model(AVEMO_MODE_AV, shipped[0], sizeof shipped[0], NULL) == AVEMO_OK)
            opt->models[opt->num_models++] = shipped[0];
        else
            fprintf(stderr, "avemo serve: no model found: /readyz and /v1/predict answer 503 (use --model)\n");
    }
    if (opt->num_extra_models == 0) {
        if (avemo_default_model(AVEMO_MODE_AUDIO, shipped[1], sizeof shipped[1], NULL) == AVEMO_OK)
            opt->extra_models[opt->num_extra_models++] = shipped[1];
        if (avemo_default_model(AVEMO_MODE_FACE, shipped[2], sizeof shipped[2], NULL) == AVEMO_OK)
            opt->extra_models[opt->num_extra_models++] = shipped[2];
    }
}

static int run_serve(int argc, char **argv)
{
    struct avemo_serve_options opt;
    int rc = parse_serve_options(argc, argv, &opt);
    if (rc != CLI_EXIT_OK) return rc;
    char shipped[3][1024];
    add_shipped_models(&opt, shipped);

    /* SIGINT/SIGTERM are taken by sigwait below: block them before any thread starts. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct avemo_error err = {0};
    avemo_server *srv = NULL;
    if (avemo_server_start(&opt, &srv, &err)) return cli_report(&err);
    int v6 = strchr(opt.host, ':') != NULL; /* an IPv6 address goes in brackets in a URL */
    printf("avemo serve: listening on http://%s%s%s:%d/ (%d model%s, %d workers, history %s)\n", v6 ? "[" : "",
           opt.host, v6 ? "]" : "", avemo_server_port(srv), opt.num_models, opt.num_models == 1 ? "" : "s",
           opt.threads, avemo_server_history_name(srv));
    fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "avemo serve: %s, finishing the queued predictions\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    avemo_server_stop(srv);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_serve = {
    "serve", "run the classifier as an HTTP service with a web page", serve_usage, run_serve, 0,
};
