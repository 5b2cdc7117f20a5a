/* The models of the service: loaded once at start, read-only afterwards, and described
 * by GET /v1/models together with the figures of their model card (models/<name>.md). */
#define _GNU_SOURCE /* strcasestr */
#include "serve/serve_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>

#define CARD_MAX_BYTES (1u << 20)
#define CARD_MAX_LINES 16
#define CARD_MAX_NUMBERS 8
#define CARD_LINE_MAX 200
#define CARD_CAVEAT_MAX 600
#define CARD_MAX_CAVEATS 8

/* The card next to the model: "dir/name.avm" -> "dir/name.md". */
static int card_path(const char *model_path, char *out, size_t size)
{
    size_t n = strlen(model_path);
    const char *dot = strrchr(model_path, '.');
    const char *slash = strrchr(model_path, '/');
    if (dot && (!slash || dot > slash)) n = (size_t)(dot - model_path);
    return snprintf(out, size, "%.*s.md", (int)n, model_path) < (int)size ? 0 : -1;
}

/* Numbers on one line of text, e.g. "| test accuracy | 0.712 | 71.2 % |" -> [0.712, 71.2]. */
static cJSON *line_numbers(const char *line)
{
    cJSON *values = cJSON_CreateArray();
    int count = 0;
    for (const char *p = line; values && *p && count < CARD_MAX_NUMBERS;) {
        int starts_number = isdigit((unsigned char)*p) ||
                            (*p == '.' && isdigit((unsigned char)p[1]));
        /* skip digits that are part of a word such as "F1" or "cremad6" */
        if (starts_number && p > line && (isalpha((unsigned char)p[-1]) || p[-1] == '_')) starts_number = 0;
        if (!starts_number) {
            p++;
            continue;
        }
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p) {
            p++;
            continue;
        }
        cJSON_AddItemToArray(values, cJSON_CreateNumber(v));
        count++;
        p = end;
    }
    return values;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The bullets of the card's "## Limitations" (or "Caveats") section, one string each
 * (continuation lines joined), so that clients can show them next to a prediction. */
static cJSON *card_caveats(const char *text)
{
    cJSON *list = cJSON_CreateArray();
    const char *p = strstr(text, "\n## Limitations");
    if (!p) p = strstr(text, "\n## Caveats");
    if (!p || !list) return list;
    p = strchr(p + 1, '\n');
    char item[CARD_CAVEAT_MAX + 1] = "";
    size_t len = 0;
    int count = 0;
    while (p && *p && count < CARD_MAX_CAVEATS) {
        const char *line = p + 1, *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n >= 3 && strncmp(line, "## ", 3) == 0) break; /* the next section */
        int bullet = n >= 2 && line[0] == '-' && line[1] == ' ';
        if ((bullet || n == 0) && len) { /* an item ends */
            cJSON_AddItemToArray(list, cJSON_CreateString(item));
            count++;
            len = 0;
            item[0] = '\0';
        }
        const char *words = bullet ? line + 2 : line;
        size_t wn = n - (size_t)(words - line);
        while (wn && (*words == ' ' || *words == '\t')) words++, wn--;
        if (wn && len < CARD_CAVEAT_MAX) {
            len += (size_t)snprintf(item + len, sizeof item - len, "%s%.*s", len ? " " : "", (int)wn, words);
            if (len > CARD_CAVEAT_MAX) len = CARD_CAVEAT_MAX;
        }
        p = end;
    }
    if (len && count < CARD_MAX_CAVEATS) cJSON_AddItemToArray(list, cJSON_CreateString(item));
    return list;
}

/* The card's file name, its caveats and its lines that mention accuracy, with the numbers
 * found on them.  No directory: the server's disk layout is not the clients' business. */
static cJSON *read_card(const char *model_path)
{
    char path[1100];
    if (card_path(model_path, path, sizeof path)) return NULL;
    uint8_t *text = NULL;
    size_t size = 0;
    if (avemo_read_file(path, CARD_MAX_BYTES, &text, &size, NULL)) return NULL;
    cJSON *card = cJSON_CreateObject();
    cJSON *lines = cJSON_CreateArray();
    cJSON_AddStringToObject(card, "file", base_name(path));
    cJSON_AddItemToObject(card, "caveats", card_caveats((const char *)text));
    int found = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)text, "\n", &save); line && found < CARD_MAX_LINES;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strcasestr(line, "accuracy")) continue;
        while (*line == ' ' || *line == '\t' || *line == '|' || *line == '-' || *line == '*') line++;
        char shown[CARD_LINE_MAX + 1];
        snprintf(shown, sizeof shown, "%s", line);
        for (char *c = shown; *c; c++)
            if ((unsigned char)*c < 0x20) *c = ' ';
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "text", shown);
        cJSON_AddItemToObject(item, "values", line_numbers(shown));
        cJSON_AddItemToArray(lines, item);
        found++;
    }
    cJSON_AddItemToObject(card, "accuracy", lines);
    free(text);
    return card;
}

/* The extra models for one main model: all of them but the main model's own file. */
static int extras_for(const struct avemo_serve_options *opt, const char *main_path, const char **extras)
{
    char main_real[PATH_MAX], real[PATH_MAX];
    int have_main = realpath(main_path, main_real) != NULL, n = 0;
    for (int i = 0; i < opt->num_extra_models && i < AVEMO_SERVE_MAX_MODELS; i++) {
        const char *path = opt->extra_models[i];
        if (!path) continue;
        if (have_main && realpath(path, real) && strcmp(real, main_real) == 0) continue;
        extras[n++] = path;
    }
    return n;
}

enum avemo_status serve_models_load(struct avemo_server *srv, struct avemo_error *err)
{
    for (int i = 0; i < srv->opt.num_models; i++) {
        const char *path = srv->opt.models[i];
        if (!path || strlen(path) >= sizeof srv->models[i].path)
            return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "serve: model path %d is empty or too long", i + 1);
        const char *extras[AVEMO_SERVE_MAX_MODELS];
        struct avemo_classifier_options copt = {0};
        copt.extra_models = extras;
        copt.n_extra_models = extras_for(&srv->opt, path, extras);
        copt.uncertain_below = srv->opt.uncertain_below;
        enum avemo_status s = avemo_classifier_open(path, &copt, &srv->models[i].clf, err);
        if (s) return s;
        srv->num_models = i + 1;
        snprintf(srv->models[i].path, sizeof srv->models[i].path, "%s", path);
        srv->models[i].card = read_card(path);
        for (int j = 0; j < i; j++)
            if (strcmp(avemo_classifier_name(srv->models[j].clf), avemo_classifier_name(srv->models[i].clf)) == 0)
                return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "%s: a model named '%s' is already loaded", path,
                                  avemo_classifier_name(srv->models[i].clf));
    }
    return AVEMO_OK;
}

void serve_models_free(struct avemo_server *srv)
{
    for (int i = 0; i < srv->num_models; i++) {
        avemo_classifier_close(srv->models[i].clf);
        cJSON_Delete(srv->models[i].card);
        srv->models[i].clf = NULL;
        srv->models[i].card = NULL;
    }
    srv->num_models = 0;
}

cJSON *serve_models_json(const struct avemo_server *srv)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "models");
    for (int i = 0; i < srv->num_models; i++) {
        const avemo_classifier *clf = srv->models[i].clf;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", avemo_classifier_name(clf));
        cJSON_AddStringToObject(m, "file", base_name(srv->models[i].path));
        cJSON_AddBoolToObject(m, "default", i == 0);
        cJSON_AddStringToObject(m, "default_mode", avemo_mode_name(avemo_classifier_default_mode(clf)));
        cJSON *modes = cJSON_AddArrayToObject(m, "modes");
        for (int mode = 0; mode < 3; mode++)
            if (avemo_classifier_supports(clf, (enum avemo_mode)mode))
                cJSON_AddItemToArray(modes, cJSON_CreateString(avemo_mode_name((enum avemo_mode)mode)));
        cJSON *labels = cJSON_AddArrayToObject(m, "labels");
        for (int k = 0; k < avemo_classifier_num_classes(clf); k++)
            cJSON_AddItemToArray(labels, cJSON_CreateString(avemo_classifier_label(clf, k)));
        cJSON *card = srv->models[i].card ? cJSON_Duplicate(srv->models[i].card, 1) : NULL;
        if (card) {
            char url[128];
            snprintf(url, sizeof url, "/v1/models/%s/card", avemo_classifier_name(clf));
            cJSON_AddStringToObject(card, "url", url);
            cJSON_AddItemToObject(m, "card", card);
        } else {
            cJSON_AddNullToObject(m, "card");
        }
        cJSON_AddItemToArray(list, m);
    }
    return root;
}

char *serve_model_card_text(const struct avemo_server *srv, const char *name)
{
    for (int i = 0; i < srv->num_models; i++) {
        if (strcmp(avemo_classifier_name(srv->models[i].clf), name) != 0) continue;
        char path[1100];
        uint8_t *text = NULL;
        size_t size = 0;
        if (card_path(srv->models[i].path, path, sizeof path) ||
            avemo_read_file(path, CARD_MAX_BYTES, &text, &size, NULL))
            return NULL;
        return (char *)text; /* avemo_read_file ends it with a NUL */
    }
    return NULL;
}
