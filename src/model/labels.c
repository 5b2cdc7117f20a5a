/* The pipeline's label map ([labels]): canonical codes onto the classes of a model. */
#include <avemo/model.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Codes with no counterpart among the six classes (CK+ contempt, EmoDB boredom, surprise):
 * a label map that neither keeps nor maps them drops them, and the dataset counts them. */
static const char *const codes_without_class[] = {"SUR", "CON", "BOR"};

void avemo_label_map_default(struct avemo_label_map *map)
{
    memset(map, 0, sizeof *map);
    map->num_classes = AVEMO_NUM_EMOTIONS;
    for (int i = 0; i < AVEMO_NUM_EMOTIONS; i++) snprintf(map->classes[i], AVEMO_LABEL_MAX, "%s", avemo_emotion_codes[i]);
    map->num_drop = 2;
    snprintf(map->drop[0], AVEMO_LABEL_MAX, "CAL");
    snprintf(map->drop[1], AVEMO_LABEL_MAX, "SUR");
}

int avemo_label_map_apply(const struct avemo_label_map *map, const char *code)
{
    for (int i = 0; i < map->num_map; i++)
        if (strcmp(code, map->map_from[i]) == 0) code = map->map_to[i];
    for (int i = 0; i < map->num_classes; i++)
        if (strcmp(code, map->classes[i]) == 0) return i;
    for (int i = 0; i < map->num_drop; i++)
        if (strcmp(code, map->drop[i]) == 0) return -1;
    for (size_t i = 0; i < sizeof codes_without_class / sizeof codes_without_class[0]; i++)
        if (strcmp(code, codes_without_class[i]) == 0) return -1;
    return -2;
}

/* --- [labels] section ---------------------------------------------------- */

struct labels_parse {
    struct avemo_label_map *map;
    const char *name;
    struct avemo_error *err;
    enum avemo_status status;
};

/* Split a list of codes separated by spaces or commas into out[max]; returns the count or -1. */
static int split_codes(const char *value, char out[][AVEMO_LABEL_MAX], int max)
{
    int n = 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        size_t len = strcspn(p, " ,\t");
        if (n >= max || len >= AVEMO_LABEL_MAX) return -1;
        memcpy(out[n], p, len);
        out[n][len] = 0;
        n++;
        p += len;
    }
    return n;
}

static int labels_handler(void *user, const char *section, const char *key, const char *value)
{
    struct labels_parse *lp = user;
    if (strcmp(section, "labels") != 0 || lp->status) return 1;
    struct avemo_label_map *m = lp->map;
    if (strcmp(key, "classes") == 0) {
        m->num_classes = split_codes(value, m->classes, AVEMO_MAX_CLASSES);
        if (m->num_classes < 2)
            lp->status = avemo_fail(lp->err, AVEMO_ERR_CONFIG, "%s: [labels] classes needs 2 to %d codes of up to %d characters",
                                    lp->name, AVEMO_MAX_CLASSES, AVEMO_LABEL_MAX - 1);
    } else if (strcmp(key, "drop") == 0) {
        m->num_drop = split_codes(value, m->drop, AVEMO_LABEL_MAP_MAX);
        if (m->num_drop < 0)
            lp->status = avemo_fail(lp->err, AVEMO_ERR_CONFIG, "%s: [labels] drop: too many or too long codes", lp->name);
    } else if (strcmp(key, "map") == 0) {
        /* FROM:TO pairs; each side is a code. */
        const char *p = value;
        m->num_map = 0;
        while (*p && !lp->status) {
            while (*p == ' ' || *p == ',') p++;
            if (!*p) break;
            size_t len = strcspn(p, " ,");
            char pair[64];
            snprintf(pair, sizeof pair, "%.*s", (int)(len < 63 ? len : 63), p);
            char *colon = strchr(pair, ':');
            if (!colon || m->num_map >= AVEMO_LABEL_MAP_MAX || strlen(pair) - strlen(colon) >= AVEMO_LABEL_MAX ||
                strlen(colon + 1) >= AVEMO_LABEL_MAX || !colon[1]) {
                lp->status = avemo_fail(lp->err, AVEMO_ERR_CONFIG, "%s: [labels] map wants FROM:TO pairs, got '%s'",
                                        lp->name, pair);
                break;
            }
            *colon = 0;
            /* Both sides were checked to fit; the precision tells the compiler so. */
            snprintf(m->map_from[m->num_map], AVEMO_LABEL_MAX, "%.*s", AVEMO_LABEL_MAX - 1, pair);
            snprintf(m->map_to[m->num_map], AVEMO_LABEL_MAX, "%.*s", AVEMO_LABEL_MAX - 1, colon + 1);
            m->num_map++;
            p += len;
        }
    } else {
        lp->status = avemo_fail(lp->err, AVEMO_ERR_CONFIG, "%s: unknown key '%s' in [labels] (classes, map, drop)",
                                lp->name, key);
    }
    return 1;
}

enum avemo_status avemo_label_map_from_cfg(const avemo_cfg *cfg, struct avemo_label_map *map, struct avemo_error *err)
{
    const char *name = avemo_cfg_name(cfg);
    avemo_label_map_default(map);
    struct labels_parse lp = {map, name, err, AVEMO_OK};
    avemo_cfg_each(cfg, labels_handler, &lp);
    if (lp.status) return lp.status;
    for (int i = 0; i < map->num_map; i++)
        if (avemo_label_map_apply(map, map->map_to[i]) < 0)
            return avemo_fail(err, AVEMO_ERR_CONFIG, "%s: [labels] map %s:%s targets no class", name, map->map_from[i],
                              map->map_to[i]);
    return AVEMO_OK;
}

enum avemo_status avemo_label_map_from_ini(const char *ini_text, const char *name, struct avemo_label_map *map,
                                           struct avemo_error *err)
{
    avemo_label_map_default(map);
    avemo_cfg *cfg;
    enum avemo_status st = avemo_cfg_parse(ini_text, strlen(ini_text), name, &cfg, err);
    if (st) return st;
    st = avemo_label_map_from_cfg(cfg, map, err);
    avemo_cfg_free(cfg);
    return st;
}
