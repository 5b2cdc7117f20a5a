/* Internal structures of the vision module, shared by its files. */
#ifndef AVEMO_VISION_INTERNAL_H
#define AVEMO_VISION_INTERNAL_H

#include <avemo/vision.h>

/* OpenCV subtracts this from every stage threshold when it reads a cascade. */
#define CASCADE_THRESHOLD_EPS 1e-5f
/* Haar features have at most three weighted rectangles. */
#define HAAR_MAX_RECTS 3
/* LBP features compare 8 blocks with the centre one: 256 categories in 8 words. */
#define LBP_CATEGORIES 256
#define LBP_SUBSET_WORDS 8

struct cascade_rect {
    int x, y, w, h;
    float weight;
};

struct cascade_feature {
    struct cascade_rect rect[HAAR_MAX_RECTS]; /* Haar: up to 3 rects; LBP: rect[0] is the block */
    int nrects;
    int tilted;
};

/* A decision-tree node: go left when value < threshold (Haar) or when the LBP code
 * is in the subset; a child index <= 0 names the leaf -index of the tree. */
struct cascade_node {
    int left, right, feature;
    float threshold;
};

struct cascade_tree {
    int first_node, node_count, first_leaf;
};

struct cascade_stage {
    int first_tree, tree_count;
    float threshold; /* already lowered by CASCADE_THRESHOLD_EPS */
};

struct avemo_cascade {
    char *name;
    int is_lbp;
    int win_w, win_h;
    int has_tilted;
    int stumps_only;          /* every tree has one node */
    int nstages, ntrees, nnodes, nleaves, nfeatures;
    struct cascade_stage *stages;
    struct cascade_tree *trees;
    struct cascade_node *nodes;
    float *leaves;
    int32_t *subsets;         /* LBP: LBP_SUBSET_WORDS per node */
    struct cascade_feature *features;
};

/* The binary cache of parsed cascades (cascade_cache.c); xml_crc and xml_size identify the
 * XML the cascade was parsed from.  Load returns NULL when there is no usable cache file. */
void vision_cascade_cache_save(const struct avemo_cascade *c, uint32_t xml_crc, size_t xml_size);
avemo_cascade *vision_cascade_cache_load(const char *name, uint32_t xml_crc, size_t xml_size,
                                         const struct avemo_cascade_limits *lim);
/* 1 when every count, index, rectangle and value of c is as the XML reader guarantees. */
int vision_cascade_check(const struct avemo_cascade *c, const struct avemo_cascade_limits *lim);

/* Scaled image size as OpenCV computes it: cvRound(size / (float)scale). */
int vision_round_div(int size, float scale);

/* Resize gray src (sw x sh) to dst (dw x dh) exactly as OpenCV's INTER_LINEAR_EXACT. */
void vision_resize_linear_exact(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh,
                                int32_t *xwork, uint16_t *hrows);

/* Gray conversion of packed RGB with OpenCV's fixed-point weights. */
void vision_rgb_to_gray(const uint8_t *rgb, size_t pixels, uint8_t *gray);

/* Lower the detector's vector width (2 AVX2, 1 SSE2, 0 none) for tests; never raises
 * it above what the CPU runs.  Returns the level in use. */
int vision_detector_set_simd(avemo_detector *det, int level);

#endif
