/* Reading OpenCV cascade files (the XML written by opencv_traincascade) with libxml2.
 *
 * Layout: <opencv_storage><cascade> with stageType BOOST, featureType HAAR or LBP,
 * width/height of the window, featureParams/maxCatCount, stages (each: stageThreshold
 * and weakClassifiers of internalNodes + leafValues) and features (Haar: rects of
 * "x y w h weight" and an optional tilted flag; LBP: one rect "x y w h").
 * Every count and index read from the file is checked before it is used. */
#include "vision/vision_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

void avemo_cascade_limits_default(struct avemo_cascade_limits *limits)
{
    limits->max_file_bytes = (size_t)32 << 20;
    limits->max_stages = 1000;
    limits->max_trees = 100000;
    limits->max_nodes_per_tree = 64;
    limits->max_features = 100000;
    limits->max_window = 256;
}

/* Growing arrays while the file is read. */
struct cascade_builder {
    const char *name;
    const struct avemo_cascade_limits *lim;
    struct avemo_cascade *c;
    int cap_stages, cap_trees, cap_nodes, cap_leaves, cap_subsets;
    int nsubsets;
    int node_step; /* numbers per node in internalNodes: 4 (Haar) or 3 + 8 (LBP) */
};

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 1;
    int n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *p = realloc(*arr, (size_t)n * elem);
    if (!p) return 0;
    *arr = p;
    *cap = n;
    return 1;
}

static xmlNode *child(xmlNode *parent, const char *name)
{
    for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0) return n;
    return NULL;
}

static xmlNode *first_element(xmlNode *n)
{
    for (; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE) return n;
    return NULL;
}

static xmlNode *next_element(xmlNode *n)
{
    return n ? first_element(n->next) : NULL;
}

static int count_elements(xmlNode *parent)
{
    int n = 0;
    for (xmlNode *e = first_element(parent->children); e; e = next_element(e)) n++;
    return n;
}

/* Parse up to max numbers from the text of node; returns how many, -1 on a malformed one. */
static int parse_numbers(xmlNode *node, double *out, int max)
{
    /* An element holding one text node (every number list of a cascade) is read in place;
     * anything else through a copy of its whole content. */
    if (!node) return 0; /* a missing element has no numbers (the caller says which) */
    xmlNode *only = node->children;
    int in_place = only && !only->next && only->type == XML_TEXT_NODE && only->content;
    xmlChar *text = in_place ? only->content : xmlNodeGetContent(node);
    if (!text) return 0;
    const char *p = (const char *)text;
    int n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(v) || n == max) {
            n = -1;
            break;
        }
        out[n++] = v;
        p = end;
    }
    if (!in_place) xmlFree(text);
    return n;
}

static int parse_one(xmlNode *node, double *v)
{
    return node && parse_numbers(node, v, 1) == 1;
}

static int as_int(double v, int lo, int hi, int *out)
{
    if (!(v >= lo && v <= hi) || v != floor(v)) return 0;
    *out = (int)v;
    return 1;
}

static enum avemo_status corrupt(struct cascade_builder *b, struct avemo_error *err, const char *what)
{
    return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: malformed cascade: %s", b->name, what);
}

static enum avemo_status too_large(struct cascade_builder *b, struct avemo_error *err, const char *what, int limit)
{
    return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: cascade has more %s than the limit of %d", b->name, what,
                      limit);
}

static enum avemo_status nomem(struct cascade_builder *b, struct avemo_error *err)
{
    return avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory reading the cascade", b->name);
}

/* One weak classifier: nodes "left right feature threshold" (Haar) or
 * "left right feature subset[8]" (LBP), then node_count + 1 leaf values. */
static enum avemo_status read_tree(struct cascade_builder *b, xmlNode *weak, struct avemo_error *err)
{
    struct avemo_cascade *c = b->c;
    xmlNode *in = child(weak, "internalNodes"), *lv = child(weak, "leafValues");
    if (!in || !lv) return corrupt(b, err, "a weak classifier lacks internalNodes or leafValues");
    int max_nodes = b->lim->max_nodes_per_tree;
    double nums[64 * (3 + LBP_SUBSET_WORDS)];
    double leaves[65];
    if (max_nodes > 64) max_nodes = 64;
    int nn = parse_numbers(in, nums, max_nodes * b->node_step);
    if (nn < 0) return corrupt(b, err, "internalNodes has a bad number or too many nodes");
    if (nn == 0 || nn % b->node_step) return corrupt(b, err, "internalNodes has an incomplete node");
    int nodes = nn / b->node_step;
    int nl = parse_numbers(lv, leaves, nodes + 1);
    if (nl != nodes + 1) return corrupt(b, err, "leafValues does not have one more value than nodes");
    if (c->ntrees >= b->lim->max_trees) return too_large(b, err, "weak classifiers", b->lim->max_trees);
    if (!grow((void **)&c->trees, &b->cap_trees, c->ntrees + 1, sizeof *c->trees) ||
        !grow((void **)&c->nodes, &b->cap_nodes, c->nnodes + nodes, sizeof *c->nodes) ||
        !grow((void **)&c->leaves, &b->cap_leaves, c->nleaves + nl, sizeof *c->leaves) ||
        (c->is_lbp && !grow((void **)&c->subsets, &b->cap_subsets, b->nsubsets + nodes * LBP_SUBSET_WORDS,
                            sizeof *c->subsets)))
        return nomem(b, err);
    struct cascade_tree *t = &c->trees[c->ntrees++];
    t->first_node = c->nnodes;
    t->node_count = nodes;
    t->first_leaf = c->nleaves;
    for (int i = 0; i < nodes; i++) {
        const double *v = nums + i * b->node_step;
        struct cascade_node *nd = &c->nodes[c->nnodes++];
        /* A child is a later node (> i) or a leaf (<= 0, leaf -child): no cycles. */
        if (!as_int(v[0], -nodes, nodes - 1, &nd->left) || !as_int(v[1], -nodes, nodes - 1, &nd->right) ||
            (nd->left > 0 && nd->left <= i) || (nd->right > 0 && nd->right <= i))
            return corrupt(b, err, "a tree node has a child index out of range");
        if (!as_int(v[2], 0, INT32_MAX - 1, &nd->feature)) /* checked against the features at the end */
            return corrupt(b, err, "a tree node has a feature index out of range");
        if (c->is_lbp) {
            nd->threshold = 0.f;
            for (int k = 0; k < LBP_SUBSET_WORDS; k++) {
                if (!(v[3 + k] >= INT32_MIN && v[3 + k] <= INT32_MAX) || v[3 + k] != floor(v[3 + k]))
                    return corrupt(b, err, "an LBP subset word is not a 32-bit integer");
                c->subsets[b->nsubsets++] = (int32_t)v[3 + k];
            }
        } else {
            nd->threshold = (float)v[3];
        }
    }
    for (int i = 0; i < nl; i++) c->leaves[c->nleaves++] = (float)leaves[i];
    if (nodes != 1) c->stumps_only = 0;
    return AVEMO_OK;
}

static enum avemo_status read_stages(struct cascade_builder *b, xmlNode *stages, struct avemo_error *err)
{
    struct avemo_cascade *c = b->c;
    for (xmlNode *s = first_element(stages->children); s; s = next_element(s)) {
        if (c->nstages >= b->lim->max_stages) return too_large(b, err, "stages", b->lim->max_stages);
        double thr;
        if (!parse_one(child(s, "stageThreshold"), &thr)) return corrupt(b, err, "a stage lacks stageThreshold");
        xmlNode *weaks = child(s, "weakClassifiers");
        if (!weaks) return corrupt(b, err, "a stage lacks weakClassifiers");
        if (!grow((void **)&c->stages, &b->cap_stages, c->nstages + 1, sizeof *c->stages)) return nomem(b, err);
        struct cascade_stage *st = &c->stages[c->nstages++];
        st->first_tree = c->ntrees;
        st->threshold = (float)thr - CASCADE_THRESHOLD_EPS;
        for (xmlNode *w = first_element(weaks->children); w; w = next_element(w)) {
            enum avemo_status rc = read_tree(b, w, err);
            if (rc) return rc;
        }
        st->tree_count = c->ntrees - st->first_tree;
        if (st->tree_count == 0) return corrupt(b, err, "a stage has no weak classifier");
    }
    if (c->nstages == 0) return corrupt(b, err, "no stages");
    return AVEMO_OK;
}

/* Check that the rectangles of a feature stay inside the window, so that no
 * window can read outside its integral image. */
static int feature_inside(const struct avemo_cascade *c, const struct cascade_feature *f)
{
    for (int i = 0; i < f->nrects; i++) {
        const struct cascade_rect *r = &f->rect[i];
        if (r->x < 0 || r->y < 0 || r->w < 0 || r->h < 0) return 0;
        if (c->is_lbp) {
            if (r->w < 1 || r->h < 1 || r->x + 3 * r->w > c->win_w || r->y + 3 * r->h > c->win_h) return 0;
        } else if (f->tilted) {
            /* A tilted rect spans columns x - h .. x + w and rows y .. y + w + h. */
            if (r->x - r->h < 0 || r->x + r->w > c->win_w || r->y + r->w + r->h > c->win_h) return 0;
        } else if (r->x + r->w > c->win_w || r->y + r->h > c->win_h) {
            return 0;
        }
    }
    return 1;
}

static enum avemo_status read_features(struct cascade_builder *b, xmlNode *features, struct avemo_error *err)
{
    struct avemo_cascade *c = b->c;
    int n = count_elements(features);
    if (n == 0) return corrupt(b, err, "no features");
    if (n > b->lim->max_features) return too_large(b, err, "features", b->lim->max_features);
    c->features = calloc((size_t)n, sizeof *c->features);
    if (!c->features) return nomem(b, err);
    c->nfeatures = n;
    int i = 0;
    for (xmlNode *fe = first_element(features->children); fe; fe = next_element(fe), i++) {
        struct cascade_feature *f = &c->features[i];
        double v[5];
        if (c->is_lbp) {
            if (parse_numbers(child(fe, "rect"), v, 4) != 4) return corrupt(b, err, "an LBP feature needs rect x y w h");
            struct cascade_rect *r = &f->rect[0];
            if (!as_int(v[0], 0, 4096, &r->x) || !as_int(v[1], 0, 4096, &r->y) || !as_int(v[2], 0, 4096, &r->w) ||
                !as_int(v[3], 0, 4096, &r->h))
                return corrupt(b, err, "an LBP feature rect is not integral");
            f->nrects = 1;
        } else {
            xmlNode *rects = child(fe, "rects");
            if (!rects) return corrupt(b, err, "a Haar feature lacks rects");
            for (xmlNode *r = first_element(rects->children); r; r = next_element(r)) {
                if (f->nrects == HAAR_MAX_RECTS) return corrupt(b, err, "a Haar feature has more than 3 rects");
                if (parse_numbers(r, v, 5) != 5) return corrupt(b, err, "a Haar rect needs x y w h weight");
                struct cascade_rect *cr = &f->rect[f->nrects++];
                if (!as_int(v[0], -4096, 4096, &cr->x) || !as_int(v[1], -4096, 4096, &cr->y) ||
                    !as_int(v[2], -4096, 4096, &cr->w) || !as_int(v[3], -4096, 4096, &cr->h))
                    return corrupt(b, err, "a Haar rect has non-integral coordinates");
                cr->weight = (float)v[4];
            }
            if (f->nrects < 1) return corrupt(b, err, "a Haar feature has no rect");
            xmlNode *t = child(fe, "tilted");
            double tv = 0;
            if (t && !parse_one(t, &tv)) return corrupt(b, err, "a tilted flag is not a number");
            f->tilted = tv != 0;
            if (f->tilted) c->has_tilted = 1;
        }
        if (!feature_inside(c, f)) return corrupt(b, err, "a feature rect lies outside the window");
    }
    for (int k = 0; k < c->nnodes; k++)
        if (c->nodes[k].feature >= c->nfeatures) return corrupt(b, err, "a node's feature index names no feature");
    return AVEMO_OK;
}

static enum avemo_status read_header(struct cascade_builder *b, xmlNode *root, struct avemo_error *err)
{
    struct avemo_cascade *c = b->c;
    xmlNode *st = child(root, "stageType"), *ft = child(root, "featureType");
    if (!st || !ft) return corrupt(b, err, "stageType or featureType is missing");
    xmlChar *stype = xmlNodeGetContent(st), *ftype = xmlNodeGetContent(ft);
    int boost = stype && strstr((const char *)stype, "BOOST") != NULL;
    int haar = ftype && strstr((const char *)ftype, "HAAR") != NULL;
    int lbp = ftype && strstr((const char *)ftype, "LBP") != NULL;
    xmlFree(stype);
    xmlFree(ftype);
    if (!boost) return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: only BOOST cascades are supported", b->name);
    if (!haar && !lbp)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED, "%s: only HAAR and LBP features are supported", b->name);
    c->is_lbp = lbp;
    double w, h;
    if (!parse_one(child(root, "width"), &w) || !parse_one(child(root, "height"), &h))
        return corrupt(b, err, "width or height is missing");
    if (!as_int(w, 1, b->lim->max_window, &c->win_w) || !as_int(h, 1, b->lim->max_window, &c->win_h) ||
        (!lbp && (c->win_w < 3 || c->win_h < 3)))
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: malformed cascade: window %gx%g not in 3..%d", b->name, w, h,
                          b->lim->max_window);
    double cats = 0;
    xmlNode *fp = child(root, "featureParams");
    if (fp && child(fp, "maxCatCount") && !parse_one(child(fp, "maxCatCount"), &cats))
        return corrupt(b, err, "maxCatCount is not a number");
    if (lbp != (cats > 0) || (lbp && cats != LBP_CATEGORIES))
        return corrupt(b, err, "maxCatCount must be 256 for LBP and 0 for Haar");
    b->node_step = lbp ? 3 + LBP_SUBSET_WORDS : 4;
    return AVEMO_OK;
}

void avemo_cascade_free(avemo_cascade *c)
{
    if (!c) return;
    free(c->name);
    free(c->stages);
    free(c->trees);
    free(c->nodes);
    free(c->leaves);
    free(c->subsets);
    free(c->features);
    free(c);
}

static enum avemo_status read_cascade(struct cascade_builder *b, xmlDoc *doc, struct avemo_error *err)
{
    xmlNode *top = xmlDocGetRootElement(doc);
    if (!top || strcmp((const char *)top->name, "opencv_storage") != 0)
        return corrupt(b, err, "the root element is not opencv_storage");
    xmlNode *root = first_element(top->children);
    if (!root) return corrupt(b, err, "opencv_storage is empty");
    xmlChar *type = xmlGetProp(root, (const xmlChar *)"type_id");
    int old = type && strcmp((const char *)type, "opencv-haar-classifier") == 0;
    xmlFree(type);
    if (old)
        return avemo_fail(err, AVEMO_ERR_UNSUPPORTED,
                          "%s: old-format Haar cascade (opencv-haar-classifier); convert it with OpenCV >= 3", b->name);
    enum avemo_status rc = read_header(b, root, err);
    if (rc) return rc;
    xmlNode *stages = child(root, "stages"), *features = child(root, "features");
    if (!stages || !features) return corrupt(b, err, "stages or features is missing");
    rc = read_stages(b, stages, err);
    if (rc) return rc;
    return read_features(b, features, err);
}

enum avemo_status avemo_cascade_load_memory(const void *xml, size_t size, const char *name,
                                            const struct avemo_cascade_limits *limits, avemo_cascade **out,
                                            struct avemo_error *err)
{
    if (!out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "avemo_cascade_load: NULL output");
    *out = NULL;
    if (!name) name = "cascade";
    struct avemo_cascade_limits lim;
    if (limits) lim = *limits;
    else avemo_cascade_limits_default(&lim);
    if (!xml || size == 0) return avemo_fail(err, AVEMO_ERR_EMPTY, "%s: empty cascade file", name);
    if (size > lim.max_file_bytes || size > INT32_MAX)
        return avemo_fail(err, AVEMO_ERR_TOO_LARGE, "%s: cascade file of %zu bytes exceeds the limit of %zu", name,
                          size, lim.max_file_bytes);
    /* No network, no entity expansion, no DTD loading: the file is data only. */
    /* NOBLANKS drops the whitespace between elements (half the nodes of a pretty-printed
     * cascade) and COMPACT keeps short texts inside their nodes: fewer allocations. */
    xmlDoc *doc = xmlReadMemory(xml, (int)size, NULL, NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS |
                                    XML_PARSE_COMPACT);
    if (!doc) {
        const xmlError *xe = xmlGetLastError();
        const char *msg = xe && xe->message ? xe->message : "parse error";
        return avemo_fail(err, AVEMO_ERR_CORRUPT, "%s: not a valid XML file (line %d: %.*s)", name, xe ? xe->line : 0,
                          (int)strcspn(msg, "\n"), msg);
    }
    struct avemo_cascade *c = calloc(1, sizeof *c);
    struct cascade_builder b = {name, &lim, c, 0, 0, 0, 0, 0, 0, 0};
    enum avemo_status rc = AVEMO_OK;
    if (!c || !(c->name = strdup(name))) rc = avemo_fail(err, AVEMO_ERR_NOMEM, "%s: out of memory", name);
    if (!rc) {
        c->stumps_only = 1;
        rc = read_cascade(&b, doc, err);
    }
    xmlFreeDoc(doc);
    if (rc) {
        avemo_cascade_free(c);
        return rc;
    }
    *out = c;
    return AVEMO_OK;
}

enum avemo_status avemo_cascade_load(const char *path, const struct avemo_cascade_limits *limits,
                                     avemo_cascade **out, struct avemo_error *err)
{
    if (!path || !out) return avemo_fail(err, AVEMO_ERR_INVALID_ARG, "avemo_cascade_load: NULL argument");
    *out = NULL;
    struct avemo_cascade_limits lim;
    if (limits) lim = *limits;
    else avemo_cascade_limits_default(&lim);
    uint8_t *data;
    size_t size;
    enum avemo_status rc = avemo_read_file(path, lim.max_file_bytes, &data, &size, err);
    if (rc) return rc;
    const uint32_t crc = avemo_crc32(0, data, size);
    *out = vision_cascade_cache_load(path, crc, size, &lim);
    if (*out) {
        free(data);
        return AVEMO_OK;
    }
    rc = avemo_cascade_load_memory(data, size, path, &lim, out, err);
    if (!rc) vision_cascade_cache_save(*out, crc, size);
    free(data);
    return rc;
}

/* What read_tree, read_stages and read_features guarantee, checked on a finished cascade
 * (one from the binary cache). */
static int tree_ok(const struct avemo_cascade *c, const struct cascade_tree *t, int first_node, int first_leaf,
                   const struct avemo_cascade_limits *lim)
{
    const int n = t->node_count;
    if (t->first_node != first_node || t->first_leaf != first_leaf || n < 1 || n > lim->max_nodes_per_tree ||
        n > c->nnodes - first_node)
        return 0;
    for (int i = 0; i < n; i++) {
        const struct cascade_node *nd = &c->nodes[first_node + i];
        if (nd->left < -n || nd->left > n - 1 || nd->right < -n || nd->right > n - 1 ||
            (nd->left > 0 && nd->left <= i) || (nd->right > 0 && nd->right <= i) || nd->feature < 0 ||
            nd->feature >= c->nfeatures || !isfinite(nd->threshold))
            return 0;
    }
    for (int i = 0; i <= n; i++)
        if (!isfinite(c->leaves[first_leaf + i])) return 0;
    return 1;
}

int vision_cascade_check(const struct avemo_cascade *c, const struct avemo_cascade_limits *lim)
{
    if (c->win_w < 1 || c->win_w > lim->max_window || c->win_h < 1 || c->win_h > lim->max_window ||
        (!c->is_lbp && (c->win_w < 3 || c->win_h < 3)))
        return 0;
    int tree = 0, node = 0, leaf = 0, stumps = 1, tilted = 0;
    for (int s = 0; s < c->nstages; s++) {
        const struct cascade_stage *st = &c->stages[s];
        if (st->first_tree != tree || st->tree_count < 1 || st->tree_count > c->ntrees - tree || !isfinite(st->threshold))
            return 0;
        for (int t = tree; t < tree + st->tree_count; t++) {
            if (!tree_ok(c, &c->trees[t], node, leaf, lim)) return 0;
            node += c->trees[t].node_count;
            leaf += c->trees[t].node_count + 1;
            stumps &= c->trees[t].node_count == 1;
        }
        tree += st->tree_count;
    }
    if (tree != c->ntrees || node != c->nnodes || leaf != c->nleaves || stumps != c->stumps_only) return 0;
    for (int i = 0; i < c->nfeatures; i++) {
        const struct cascade_feature *f = &c->features[i];
        if (f->nrects < 1 || f->nrects > (c->is_lbp ? 1 : HAAR_MAX_RECTS) || (c->is_lbp && f->tilted) ||
            !feature_inside(c, f))
            return 0;
        for (int r = 0; r < f->nrects; r++)
            if (!isfinite(f->rect[r].weight) || f->rect[r].w > 4096 || f->rect[r].h > 4096 || f->rect[r].x > 4096 ||
                f->rect[r].y > 4096)
                return 0;
        tilted |= f->tilted != 0;
    }
    return tilted == (c->has_tilted != 0);
}

void avemo_cascade_get_info(const avemo_cascade *c, struct avemo_cascade_info *info)
{
    memset(info, 0, sizeof *info);
    if (!c) return;
    info->window_width = c->win_w;
    info->window_height = c->win_h;
    info->is_lbp = c->is_lbp;
    info->has_tilted = c->has_tilted;
    info->stages = c->nstages;
    info->trees = c->ntrees;
    info->features = c->nfeatures;
}
