/* A binary cache of parsed cascades, so that a process classifying one clip does not parse
 * OpenCV's 930 KB XML every time (20-30 ms of libxml2 and strtod, against ~1 ms here).
 *
 * Where: $AVEMO_CACHE_DIR, else $XDG_CACHE_HOME/avemo, else $HOME/.cache/avemo (created
 * 0700); AVEMO_CACHE_DIR=none turns the cache off.  One file per cascade content:
 * cascade-<CRC-32 of the XML>-<XML size>.bin.  The XML is still read (and its CRC taken) on
 * every load, so an edited cascade file never meets a stale cache.  Writing is best effort:
 * an unwritable directory only means the next process parses the XML again.
 *
 * File format (core/binio.c: little-endian, every field 4 bytes unless said):
 *   "AVEMOCAS"                     8 bytes magic
 *   u32 version                    2 (1 was host-endian raw structs: ignored and rewritten)
 *   u32 XML CRC-32, u64 XML size   the XML the cascade was parsed from
 *   i32 is_lbp, win_w, win_h, has_tilted, stumps_only,
 *       nstages, ntrees, nnodes, nleaves, nfeatures, nsubsets
 *   stages    nstages x {i32 first_tree, tree_count; f32 threshold}
 *   trees     ntrees x {i32 first_node, node_count, first_leaf}
 *   nodes     nnodes x {i32 left, right, feature; f32 threshold}
 *   leaves    nleaves x f32
 *   subsets   nsubsets x i32 (LBP: LBP_SUBSET_WORDS per node; Haar: none)
 *   features  nfeatures x {HAAR_MAX_RECTS x {i32 x, y, w, h; f32 weight}, i32 nrects, tilted}
 *   u32 CRC-32 of every byte before
 * The arrays are the structs of vision_internal.h field by field, so on a little-endian host
 * each is one copy (avemo_binw_words32).  A cache file is checked as strictly as the XML
 * (its size against the counts, counts against the limits, every index and rectangle:
 * cascade_check in cascade.c); one that fails is ignored and rewritten. */
#include "vision/vision_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CACHE_MAGIC "AVEMOCAS"
#define CACHE_VERSION 2u

/* The structs are written as arrays of 4-byte fields: no padding, int is int32_t. */
#define WORDS(type) (sizeof(type) / 4)
_Static_assert(sizeof(int) == 4 && sizeof(float) == 4, "4-byte int and float");
_Static_assert(sizeof(struct cascade_stage) == 3 * 4 && sizeof(struct cascade_tree) == 3 * 4 &&
                   sizeof(struct cascade_node) == 4 * 4 &&
                   sizeof(struct cascade_feature) == (HAAR_MAX_RECTS * 5 + 2) * 4,
               "cascade structs are made of 4-byte fields only");

/* After magic, version, XML CRC and size: the counts, as one array of i32. */
struct cache_header {
    int32_t is_lbp, win_w, win_h, has_tilted, stumps_only, nstages, ntrees, nnodes, nleaves, nfeatures, nsubsets;
};
#define HEADER_BYTES (8 + 4 + 4 + 8 + sizeof(struct cache_header))

/* The cache directory (created), or 0 when there is none. */
static int cache_dir(char *dir, size_t size)
{
    const char *env = getenv("AVEMO_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (env && strcmp(env, "none") == 0) return 0;
    if (env && *env) n = snprintf(dir, size, "%s", env);
    else if (xdg && *xdg) n = snprintf(dir, size, "%s/avemo", xdg);
    else if (home && *home) n = snprintf(dir, size, "%s/.cache/avemo", home);
    else return 0;
    if (n <= 0 || (size_t)n >= size) return 0;
    for (char *p = dir + 1; *p; p++) { /* mkdir -p */
        if (*p != '/') continue;
        *p = 0;
        mkdir(dir, 0700);
        *p = '/';
    }
    return mkdir(dir, 0700) == 0 || errno == EEXIST;
}

static int cache_path(uint32_t crc, size_t xml_size, char *path, size_t size)
{
    char dir[3072];
    if (!cache_dir(dir, sizeof dir)) return 0;
    int n = snprintf(path, size, "%s/cascade-%08x-%zu.bin", dir, (unsigned)crc, xml_size);
    return n > 0 && (size_t)n < size;
}

struct cache_part {
    void *data;
    size_t words; /* 4-byte fields */
};

static void cache_parts(const struct avemo_cascade *c, struct cache_part parts[6])
{
    const size_t nsub = c->is_lbp ? (size_t)c->nnodes * LBP_SUBSET_WORDS : 0;
    parts[0] = (struct cache_part){c->stages, WORDS(*c->stages) * (size_t)c->nstages};
    parts[1] = (struct cache_part){c->trees, WORDS(*c->trees) * (size_t)c->ntrees};
    parts[2] = (struct cache_part){c->nodes, WORDS(*c->nodes) * (size_t)c->nnodes};
    parts[3] = (struct cache_part){c->leaves, (size_t)c->nleaves};
    parts[4] = (struct cache_part){c->subsets, nsub};
    parts[5] = (struct cache_part){c->features, WORDS(*c->features) * (size_t)c->nfeatures};
}

void vision_cascade_cache_save(const struct avemo_cascade *c, uint32_t xml_crc, size_t xml_size)
{
    char path[4096];
    if (!cache_path(xml_crc, xml_size, path, sizeof path)) return;
    const struct cache_header h = {
        .is_lbp = c->is_lbp, .win_w = c->win_w, .win_h = c->win_h, .has_tilted = c->has_tilted,
        .stumps_only = c->stumps_only, .nstages = c->nstages, .ntrees = c->ntrees, .nnodes = c->nnodes,
        .nleaves = c->nleaves, .nfeatures = c->nfeatures, .nsubsets = c->is_lbp ? c->nnodes * LBP_SUBSET_WORDS : 0,
    };
    avemo_binw *w;
    struct avemo_error ignored; /* best effort: a failed write only costs the next process the XML */
    if (avemo_binw_create(path, &w, &ignored)) return;
    avemo_binw_bytes(w, CACHE_MAGIC, 8);
    avemo_binw_u32(w, CACHE_VERSION);
    avemo_binw_u32(w, xml_crc);
    avemo_binw_u64(w, xml_size);
    avemo_binw_words32(w, &h, WORDS(h));
    struct cache_part parts[6];
    cache_parts(c, parts);
    for (int i = 0; i < 6; i++) avemo_binw_words32(w, parts[i].data, parts[i].words);
    avemo_binw_finish(w, &ignored); /* the file appears whole or not at all */
}

/* The header's counts against the limits, before anything is allocated from them. */
static int header_usable(const struct cache_header *h, const struct avemo_cascade_limits *lim, size_t file_size)
{
    if (h->nstages < 1 || h->nstages > lim->max_stages || h->ntrees < 1 || h->ntrees > lim->max_trees ||
        h->nfeatures < 1 || h->nfeatures > lim->max_features || h->nnodes < h->ntrees ||
        (int64_t)h->nnodes > (int64_t)h->ntrees * lim->max_nodes_per_tree || h->nleaves != h->nnodes + h->ntrees ||
        h->nsubsets != (h->is_lbp ? h->nnodes * LBP_SUBSET_WORDS : 0))
        return 0;
    const size_t want = HEADER_BYTES + sizeof(struct cascade_stage) * (size_t)h->nstages +
                        sizeof(struct cascade_tree) * (size_t)h->ntrees +
                        sizeof(struct cascade_node) * (size_t)h->nnodes + sizeof(float) * (size_t)h->nleaves +
                        sizeof(int32_t) * (size_t)h->nsubsets +
                        sizeof(struct cascade_feature) * (size_t)h->nfeatures + 4;
    return file_size == want;
}

/* An empty cascade with the header's counts and its arrays allocated, or NULL. */
static struct avemo_cascade *cascade_alloc(const char *name, const struct cache_header *h)
{
    struct avemo_cascade *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->is_lbp = h->is_lbp != 0;
    c->win_w = h->win_w;
    c->win_h = h->win_h;
    c->has_tilted = h->has_tilted;
    c->stumps_only = h->stumps_only;
    c->nstages = h->nstages;
    c->ntrees = h->ntrees;
    c->nnodes = h->nnodes;
    c->nleaves = h->nleaves;
    c->nfeatures = h->nfeatures;
    c->name = strdup(name);
    c->stages = malloc(sizeof *c->stages * (size_t)c->nstages);
    c->trees = malloc(sizeof *c->trees * (size_t)c->ntrees);
    c->nodes = malloc(sizeof *c->nodes * (size_t)c->nnodes);
    c->leaves = malloc(sizeof *c->leaves * (size_t)c->nleaves);
    c->subsets = h->nsubsets ? malloc(sizeof *c->subsets * (size_t)h->nsubsets) : NULL;
    c->features = malloc(sizeof *c->features * (size_t)c->nfeatures);
    if (!c->name || !c->stages || !c->trees || !c->nodes || !c->leaves || (h->nsubsets && !c->subsets) ||
        !c->features) {
        avemo_cascade_free(c);
        return NULL;
    }
    return c;
}

/* The cascade in a cache file's bytes, or NULL when anything is wrong with them. */
static struct avemo_cascade *cache_parse(const char *name, const uint8_t *data, size_t size, uint32_t xml_crc,
                                         size_t xml_size, const struct avemo_cascade_limits *lim)
{
    struct avemo_binr r;
    avemo_binr_memory(&r, data, size);
    char magic[8] = {0};
    avemo_binr_bytes(&r, magic, 8);
    const uint32_t version = avemo_binr_u32(&r), crc = avemo_binr_u32(&r);
    const uint64_t source_size = avemo_binr_u64(&r);
    struct cache_header h;
    avemo_binr_words32(&r, &h, WORDS(h));
    if (r.bad || memcmp(magic, CACHE_MAGIC, 8) != 0 || version != CACHE_VERSION || crc != xml_crc ||
        source_size != xml_size || !header_usable(&h, lim, size))
        return NULL;
    struct avemo_cascade *c = cascade_alloc(name, &h);
    if (!c) return NULL;
    struct cache_part parts[6];
    cache_parts(c, parts);
    for (int i = 0; i < 6; i++) avemo_binr_words32(&r, parts[i].data, parts[i].words);
    if (!avemo_binr_crc(&r) || r.pos != size || !vision_cascade_check(c, lim)) {
        avemo_cascade_free(c);
        return NULL;
    }
    return c;
}

/* A cascade from the cache, or NULL (absent, stale, damaged or failing the checks). */
avemo_cascade *vision_cascade_cache_load(const char *name, uint32_t xml_crc, size_t xml_size,
                                         const struct avemo_cascade_limits *lim)
{
    char path[4096];
    if (!cache_path(xml_crc, xml_size, path, sizeof path)) return NULL;
    uint8_t *data;
    size_t size;
    if (avemo_read_file(path, (size_t)64 << 20, &data, &size, NULL)) return NULL;
    struct avemo_cascade *c = cache_parse(name, data, size, xml_crc, xml_size, lim);
    free(data);
    return c;
}
