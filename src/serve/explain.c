/* POST /v1/predict?explain=1: the library's explanation of the upload (eval.h), its heat maps
 * drawn as PNG (model.h) and sent inline as data: URLs, so that an answer stands on its own
 * (nothing to fetch later, nothing kept on the server). */
#include "serve/serve_internal.h"

#include <stdlib.h>
#include <string.h>

/* Pixels per input value of the maps sent: 128x128 for a 64x64 face, 256x80 for 128x40 MFCC. */
#define SERVE_HEATMAP_SCALE 2

enum avemo_status serve_explain(avemo_classify_ctx *ctx, const struct serve_request *req,
                                struct avemo_prediction *pred, struct avemo_explanation **ex, struct avemo_error *err)
{
    *ex = malloc(sizeof **ex);
    if (!*ex) return avemo_fail(err, AVEMO_ERR_NOMEM, "explain: out of memory");
    enum avemo_status s = avemo_explain_memory(ctx, req->data, req->size, req->file_name, req->mode, *ex, err);
    if (s) {
        free(*ex);
        *ex = NULL;
        return s;
    }
    *pred = (*ex)->pred;
    return AVEMO_OK;
}

void serve_explanation_free(struct avemo_explanation *ex)
{
    if (!ex) return;
    avemo_explanation_free(ex);
    free(ex);
}

/* "data:image/png;base64,..." of a heat map (malloc'ed), or NULL. */
static char *map_url(struct avemo_heatmap *map)
{
    uint8_t *png;
    size_t size;
    map->scale = SERVE_HEATMAP_SCALE;
    if (avemo_heatmap_png(map, &png, &size, NULL)) return NULL;
    char *url = serve_data_url("image/png", png, size);
    free(png);
    return url;
}

char *serve_explanation_json(const struct avemo_explanation *ex, const char *file)
{
    char *faces[AVEMO_EXPLAIN_MAX_FACES] = {0}, *audio = NULL;
    struct avemo_heatmap map;
    int ok = 1;
    for (int i = 0; i < ex->nfaces; i++) {
        avemo_explanation_face_map(ex, i, &map);
        ok &= (faces[i] = map_url(&map)) != NULL;
    }
    if (ex->has_audio) {
        avemo_explanation_audio_map(ex, &map);
        ok &= (audio = map_url(&map)) != NULL;
    }
    char *text = ok ? avemo_explanation_json(ex, file, (const char *const *)faces, audio) : NULL;
    for (int i = 0; i < ex->nfaces; i++) free(faces[i]);
    free(audio);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "explanation");
    if (!e) {
        cJSON_Delete(o);
        return NULL;
    }
    /* the crop the answer's face_crop shows is the middle one of those used (eval's choice) */
    if (ex->nfaces) cJSON_AddNumberToObject(e, "face_crop_index", ex->nfaces / 2);
    else cJSON_AddNullToObject(e, "face_crop_index");
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
