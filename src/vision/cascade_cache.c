/* A binary cache of parsed cascades, so that a process classifying one clip does not parse
 * OpenCV's 930 KB XML every time (20-30 ms of libxml2 and strtod, against ~1 ms here).
 *
 * Where: $AVEMO_CACHE_DIR, else $XDG_CACHE_HOME/avemo, else $HOME/.cache/avemo (created
 * 0700); AVEMO_CACHE_DIR=none turns the cache off.  One file per cascade content:
 * cascade-<CRC-32 of the XML>-<XML size>.bin.  The XML is still read (and its CRC taken) on
 * every load, so an edited cascade file never meets a stale cache.  Writing is best effort:
 * an unwritable directory only means the next process parses the XML again.
 *
 * File format (this machine's byte order and struct layout, which the header records):
 *   "AVEMOCAS", u32 version 1, u32 XML CRC-32, u64 XML size,
 *   u32 sizeof of stage, tree, node, feature and rect structs,
 *   i32 is_lbp, win_w, win_h, has_tilted, stumps_only, nstages, ntrees, nnodes, nleaves,
 *   nfeatures, nsubsets,
 *   stages, trees, nodes, leaves (f32), subsets (i32), features: raw arrays,
 *   u32 CRC-32 of everything before.
 * A cache file is checked as strictly as the XML (counts against the limits, every index and
 * rectangle: cascade_check in cascade.c); one that fails is ignored and rewritten. */
#include "vision/vision_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "AVEMOCAS"
#define CACHE_VERSION 1u

struct cache_header {
    char magic[8];
    uint32_t version, source_crc;
    uint64_t source_size;
    uint32_t sizes[5];
    int32_t is_lbp, win_w, win_h, has_tilted, stumps_only, nstages, ntrees, nnodes, nleaves, nfeatures, nsubsets;
};

static void layout_sizes(uint32_t sizes[5])
{
    sizes[0] = sizeof(struct cascade_stage);
    sizes[1] = sizeof(struct cascade_tree);
    sizes[2] = sizeof(struct cascade_node);
    sizes[3] = sizeof(struct cascade_feature);
    sizes[4] = sizeof(struct cascade_rect);
}

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
    size_t bytes;
};

static void cache_parts(const struct avemo_cascade *c, struct cache_part parts[6])
{
    const size_t nsub = c->is_lbp ? (size_t)c->nnodes * LBP_SUBSET_WORDS : 0;
    parts[0] = (struct cache_part){c->stages, sizeof *c->stages * (size_t)c->nstages};
    parts[1] = (struct cache_part){c->trees, sizeof *c->trees * (size_t)c->ntrees};
    parts[2] = (struct cache_part){c->nodes, sizeof *c->nodes * (size_t)c->nnodes};
    parts[3] = (struct cache_part){c->leaves, sizeof *c->leaves * (size_t)c->nleaves};
    parts[4] = (struct cache_part){c->subsets, sizeof *c->subsets * nsub};
    parts[5] = (struct cache_part){c->features, sizeof *c->features * (size_t)c->nfeatures};
}

void vision_cascade_cache_save(const struct avemo_cascade *c, uint32_t xml_crc, size_t xml_size)
{
    char path[4096], tmp[4200];
    if (!cache_path(xml_crc, xml_size, path, sizeof path)) return;
    struct cache_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CACHE_MAGIC, 8);
    h.version = CACHE_VERSION;
    h.source_crc = xml_crc;
    h.source_size = xml_size;
    layout_sizes(h.sizes);
    h.is_lbp = c->is_lbp;
    h.win_w = c->win_w;
    h.win_h = c->win_h;
    h.has_tilted = c->has_tilted;
    h.stumps_only = c->stumps_only;
    h.nstages = c->nstages;
    h.ntrees = c->ntrees;
    h.nnodes = c->nnodes;
    h.nleaves = c->nleaves;
    h.nfeatures = c->nfeatures;
    h.nsubsets = c->is_lbp ? c->nnodes * LBP_SUBSET_WORDS : 0;
    struct cache_part parts[6];
    cache_parts(c, parts);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    uint32_t crc = avemo_crc32(0, &h, sizeof h);
    int ok = fwrite(&h, sizeof h, 1, f) == 1;
    for (int i = 0; i < 6; i++) {
        if (!parts[i].bytes) continue;
        crc = avemo_crc32(crc, parts[i].data, parts[i].bytes);
        ok = ok && fwrite(parts[i].data, parts[i].bytes, 1, f) == 1;
    }
    ok = ok && fwrite(&crc, 4, 1, f) == 1;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) remove(tmp); /* the file appears whole or not at all */
}

/* The header's counts against the limits, before anything is allocated from them. */
static int header_usable(const struct cache_header *h, uint32_t xml_crc, size_t xml_size,
                         const struct avemo_cascade_limits *lim, size_t file_size)
{
    uint32_t sizes[5];
    layout_sizes(sizes);
    if (memcmp(h->magic, CACHE_MAGIC, 8) != 0 || h->version != CACHE_VERSION || h->source_crc != xml_crc ||
        h->source_size != xml_size || memcmp(h->sizes, sizes, sizeof sizes) != 0)
        return 0;
    if (h->nstages < 1 || h->nstages > lim->max_stages || h->ntrees < 1 || h->ntrees > lim->max_trees ||
        h->nfeatures < 1 || h->nfeatures > lim->max_features || h->nnodes < h->ntrees ||
        (int64_t)h->nnodes > (int64_t)h->ntrees * lim->max_nodes_per_tree || h->nleaves != h->nnodes + h->ntrees ||
        h->nsubsets != (h->is_lbp ? h->nnodes * LBP_SUBSET_WORDS : 0))
        return 0;
    const size_t want = sizeof *h + sizeof(struct cascade_stage) * (size_t)h->nstages +
                        sizeof(struct cascade_tree) * (size_t)h->ntrees +
                        sizeof(struct cascade_node) * (size_t)h->nnodes + sizeof(float) * (size_t)h->nleaves +
                        sizeof(int32_t) * (size_t)h->nsubsets +
                        sizeof(struct cascade_feature) * (size_t)h->nfeatures + 4;
    return file_size == want;
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
    struct cache_header h;
    struct avemo_cascade *c = NULL;
    uint32_t crc;
    if (size < sizeof h + 4) goto done;
    memcpy(&h, data, sizeof h);
    memcpy(&crc, data + size - 4, 4);
    if (!header_usable(&h, xml_crc, xml_size, lim, size) || crc != avemo_crc32(0, data, size - 4)) goto done;
    c = calloc(1, sizeof *c);
    if (!c) goto done;
    c->is_lbp = h.is_lbp != 0;
    c->win_w = h.win_w;
    c->win_h = h.win_h;
    c->has_tilted = h.has_tilted;
    c->stumps_only = h.stumps_only;
    c->nstages = h.nstages;
    c->ntrees = h.ntrees;
    c->nnodes = h.nnodes;
    c->nleaves = h.nleaves;
    c->nfeatures = h.nfeatures;
    c->name = strdup(name);
    c->stages = malloc(sizeof *c->stages * (size_t)c->nstages);
    c->trees = malloc(sizeof *c->trees * (size_t)c->ntrees);
    c->nodes = malloc(sizeof *c->nodes * (size_t)c->nnodes);
    c->leaves = malloc(sizeof *c->leaves * (size_t)c->nleaves);
    c->subsets = h.nsubsets ? malloc(sizeof *c->subsets * (size_t)h.nsubsets) : NULL;
    c->features = malloc(sizeof *c->features * (size_t)c->nfeatures);
    if (!c->name || !c->stages || !c->trees || !c->nodes || !c->leaves || (h.nsubsets && !c->subsets) ||
        !c->features) {
        avemo_cascade_free(c);
        c = NULL;
        goto done;
    }
    struct cache_part parts[6];
    cache_parts(c, parts);
    const uint8_t *at = data + sizeof h;
    for (int i = 0; i < 6; i++) {
        if (parts[i].bytes) memcpy(parts[i].data, at, parts[i].bytes);
        at += parts[i].bytes;
    }
    if (!vision_cascade_check(c, lim)) {
        avemo_cascade_free(c);
        c = NULL;
    }
done:
    free(data);
    return c;
}
