/*
 * Cascade files and detector parameters: the Debian cascades load with the
 * counts they state; malformed files (truncated XML, wrong structure, absurd
 * counts and indices) and absurd detection parameters return errors that name
 * the cause, never crash (this test also runs under AddressSanitizer).
 */
#include "common/testutil.h"

#include <avemo/vision.h>
#include "vision/vision_internal.h"

#include <stdlib.h>
#include <unistd.h>

#define CASCADE AVEMO_DEFAULT_CASCADE

/* A tiny valid Haar cascade (one stage, one stump) to mutate. */
static const char tiny_cascade[] =
    "<?xml version=\"1.0\"?>\n<opencv_storage>\n<cascade type_id=\"opencv-cascade-classifier\">\n"
    "<stageType>BOOST</stageType><featureType>HAAR</featureType><height>24</height><width>24</width>\n"
    "<featureParams><maxCatCount>0</maxCatCount></featureParams><stageNum>1</stageNum>\n"
    "<stages><_><maxWeakCount>1</maxWeakCount><stageThreshold>-1.0</stageThreshold><weakClassifiers>\n"
    "<_><internalNodes>0 -1 0 %s</internalNodes><leafValues>%s</leafValues></_>\n"
    "</weakClassifiers></_></stages>\n"
    "<features><_><rects><_>%s</_><_>6 7 12 3 3.</_></rects></_></features>\n"
    "</cascade>\n</opencv_storage>\n";

static enum avemo_status load_tiny(const char *thr, const char *leaves, const char *rect, struct avemo_error *err)
{
    char xml[2048];
    snprintf(xml, sizeof xml, tiny_cascade, thr, leaves, rect);
    avemo_cascade *c = NULL;
    enum avemo_status st = avemo_cascade_load_memory(xml, strlen(xml), "tiny.xml", NULL, &c, err);
    if (st == AVEMO_OK) assert_non_null(c);
    else assert_null(c);
    avemo_cascade_free(c);
    return st;
}

static void expect_bad(enum avemo_status got, enum avemo_status want, const struct avemo_error *err, const char *needle)
{
    printf("  -> %s: %s\n", avemo_status_name(got), err->message);
    assert_int_equal(got, want);
    assert_non_null(strstr(err->message, needle));
}

static void test_debian_cascades_load(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    assert_int_equal(avemo_cascade_load(CASCADE, NULL, &c, &err), AVEMO_OK);
    struct avemo_cascade_info info;
    avemo_cascade_get_info(c, &info);
    /* haarcascade_frontalface_default: 25 stages, 2913 stumps, 24x24, no tilted features */
    assert_int_equal(info.window_width, 24);
    assert_int_equal(info.window_height, 24);
    assert_int_equal(info.stages, 25);
    assert_int_equal(info.trees, 2913);
    assert_int_equal(info.is_lbp, 0);
    assert_int_equal(info.has_tilted, 0);
    avemo_cascade_free(c);

    assert_int_equal(avemo_cascade_load("/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml", NULL,
                                        &c, &err), AVEMO_OK);
    avemo_cascade_get_info(c, &info);
    assert_int_equal(info.is_lbp, 1);
    avemo_cascade_free(c);

    assert_int_equal(avemo_cascade_load("/usr/share/opencv4/haarcascades/haarcascade_eye_tree_eyeglasses.xml", NULL,
                                        &c, &err), AVEMO_OK);
    avemo_cascade_get_info(c, &info);
    assert_int_equal(info.has_tilted, 1);
    avemo_cascade_free(c);
}

static void test_tiny_cascade_is_valid(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    assert_int_equal(load_tiny("0.5", "1. -1.", "6 4 12 9 -1.", &err), AVEMO_OK);
}

static void test_missing_and_empty(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    expect_bad(avemo_cascade_load("/nonexistent/cascade.xml", NULL, &c, &err), AVEMO_ERR_NOT_FOUND, &err,
               "/nonexistent/cascade.xml");
    expect_bad(avemo_cascade_load_memory("", 0, "empty.xml", NULL, &c, &err), AVEMO_ERR_EMPTY, &err, "empty.xml");
    expect_bad(avemo_cascade_load(TEST_DATA("faces/angry_PublicTest_10813312.jpg"), NULL, &c, &err),
               AVEMO_ERR_CORRUPT, &err, "not a valid XML");
}

static void test_truncated_xml(void **state)
{
    (void)state;
    size_t size;
    uint8_t *xml = test_read_file(CASCADE, &size);
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    /* Cut the file at several places: never a crash, always CORRUPT. */
    const double cuts[] = {0.01, 0.3, 0.5, 0.9, 0.999};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t n = (size_t)(size * cuts[i]);
        expect_bad(avemo_cascade_load_memory(xml, n, "cut.xml", NULL, &c, &err), AVEMO_ERR_CORRUPT, &err, "cut.xml");
        assert_null(c);
    }
    free(xml);
}

static void test_wrong_structure(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    const char *not_storage = "<?xml version=\"1.0\"?><html><body/></html>";
    expect_bad(avemo_cascade_load_memory(not_storage, strlen(not_storage), "x.xml", NULL, &c, &err),
               AVEMO_ERR_CORRUPT, &err, "opencv_storage");
    const char *no_stages =
        "<opencv_storage><cascade><stageType>BOOST</stageType><featureType>HAAR</featureType>"
        "<height>24</height><width>24</width><features/></cascade></opencv_storage>";
    expect_bad(avemo_cascade_load_memory(no_stages, strlen(no_stages), "x.xml", NULL, &c, &err), AVEMO_ERR_CORRUPT,
               &err, "stages");
    const char *hog = "<opencv_storage><cascade><stageType>BOOST</stageType><featureType>HOG</featureType>"
                      "</cascade></opencv_storage>";
    expect_bad(avemo_cascade_load_memory(hog, strlen(hog), "x.xml", NULL, &c, &err), AVEMO_ERR_UNSUPPORTED, &err,
               "HAAR");
    /* The old format (Debian still ships one file in it). */
    expect_bad(avemo_cascade_load("/usr/share/opencv4/haarcascades/haarcascade_licence_plate_rus_16stages.xml", NULL,
                                  &c, &err),
               AVEMO_ERR_UNSUPPORTED, &err, "old-format");
}

static void test_absurd_values(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    /* threshold not a number, missing leaf, extra leaf */
    expect_bad(load_tiny("abc", "1. -1.", "6 4 12 9 -1.", &err), AVEMO_ERR_CORRUPT, &err, "internalNodes");
    expect_bad(load_tiny("0.5", "1.", "6 4 12 9 -1.", &err), AVEMO_ERR_CORRUPT, &err, "leafValues");
    expect_bad(load_tiny("0.5", "1. -1. 2.", "6 4 12 9 -1.", &err), AVEMO_ERR_CORRUPT, &err, "leafValues");
    /* rect outside the 24x24 window, negative size, non-integral coordinates */
    expect_bad(load_tiny("0.5", "1. -1.", "20 4 12 9 -1.", &err), AVEMO_ERR_CORRUPT, &err, "outside the window");
    expect_bad(load_tiny("0.5", "1. -1.", "6 4 -12 9 -1.", &err), AVEMO_ERR_CORRUPT, &err, "outside the window");
    expect_bad(load_tiny("0.5", "1. -1.", "6.5 4 12 9 -1.", &err), AVEMO_ERR_CORRUPT, &err, "non-integral");
    expect_bad(load_tiny("0.5", "1. -1.", "6 4 12 9", &err), AVEMO_ERR_CORRUPT, &err, "x y w h weight");

    /* a node naming feature 99999999, and a child index pointing outside the tree */
    char xml[2048];
    avemo_cascade *c = NULL;
    snprintf(xml, sizeof xml, tiny_cascade, "0.5", "1. -1.", "6 4 12 9 -1.");
    char *nodes = strstr(xml, "0 -1 0 0.5");
    assert_non_null(nodes);
    char bad[2048];
    snprintf(bad, sizeof bad, "%.*s0 -1 99999999 0.5%s", (int)(nodes - xml), xml, nodes + strlen("0 -1 0 0.5"));
    expect_bad(avemo_cascade_load_memory(bad, strlen(bad), "x.xml", NULL, &c, &err), AVEMO_ERR_CORRUPT, &err,
               "feature index");
    snprintf(bad, sizeof bad, "%.*s7 -1 0 0.5%s", (int)(nodes - xml), xml, nodes + strlen("0 -1 0 0.5"));
    expect_bad(avemo_cascade_load_memory(bad, strlen(bad), "x.xml", NULL, &c, &err), AVEMO_ERR_CORRUPT, &err,
               "child index");
    /* an absurd window size */
    char *h = strstr(xml, "<height>24</height>");
    snprintf(bad, sizeof bad, "%.*s<height>100000</height>%s", (int)(h - xml), xml, h + strlen("<height>24</height>"));
    expect_bad(avemo_cascade_load_memory(bad, strlen(bad), "x.xml", NULL, &c, &err), AVEMO_ERR_CORRUPT, &err,
               "window");
}

static void test_limits(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    struct avemo_cascade_limits lim;
    avemo_cascade_limits_default(&lim);
    lim.max_stages = 5;
    expect_bad(avemo_cascade_load(CASCADE, &lim, &c, &err), AVEMO_ERR_TOO_LARGE, &err, "stages");
    avemo_cascade_limits_default(&lim);
    lim.max_features = 100;
    assert_int_not_equal(avemo_cascade_load(CASCADE, &lim, &c, &err), AVEMO_OK);
    avemo_cascade_limits_default(&lim);
    lim.max_file_bytes = 1000;
    expect_bad(avemo_cascade_load(CASCADE, &lim, &c, &err), AVEMO_ERR_TOO_LARGE, &err, CASCADE);
}

static void test_absurd_detect_params(void **state)
{
    (void)state;
    struct avemo_error err = {0};
    avemo_cascade *c = NULL;
    avemo_detector *d = NULL;
    assert_int_equal(avemo_cascade_load(CASCADE, NULL, &c, &err), AVEMO_OK);
    assert_int_equal(avemo_detector_create(c, &d, &err), AVEMO_OK);
    struct avemo_image img;
    assert_int_equal(avemo_image_alloc(&img, 100, 80, 1, &err), AVEMO_OK);
    struct avemo_rect r[4];
    int n = -1;
    struct avemo_detect_params p;

    avemo_detect_params_default(&p);
    assert_int_equal(avemo_detect(d, &img, &p, r, 4, &n, &err), AVEMO_OK); /* flat image: no face */
    assert_int_equal(n, 0);

    const double factors[] = {1.0, 0.5, -2, 1.00001, 100};
    for (size_t i = 0; i < sizeof factors / sizeof factors[0]; i++) {
        avemo_detect_params_default(&p);
        p.scale_factor = factors[i];
        expect_bad(avemo_detect(d, &img, &p, r, 4, &n, &err), AVEMO_ERR_INVALID_ARG, &err, "scale factor");
    }
    avemo_detect_params_default(&p);
    p.min_width = p.min_height = 200;
    expect_bad(avemo_detect(d, &img, &p, r, 4, &n, &err), AVEMO_ERR_INVALID_ARG, &err, "minimum size");
    avemo_detect_params_default(&p);
    p.max_width = p.max_height = 10;
    expect_bad(avemo_detect(d, &img, &p, r, 4, &n, &err), AVEMO_ERR_INVALID_ARG, &err, "maximum size");
    avemo_detect_params_default(&p);
    p.min_neighbors = -1;
    expect_bad(avemo_detect(d, &img, &p, r, 4, &n, &err), AVEMO_ERR_INVALID_ARG, &err, "min_neighbors");

    /* zero-size and missing images */
    avemo_detect_params_default(&p);
    struct avemo_image empty = {0, 0, 1, img.data};
    expect_bad(avemo_detect(d, &empty, &p, r, 4, &n, &err), AVEMO_ERR_EMPTY, &err, "empty");
    struct avemo_image nodata = {100, 80, 1, NULL};
    expect_bad(avemo_detect(d, &nodata, &p, r, 4, &n, &err), AVEMO_ERR_EMPTY, &err, "empty");
    struct avemo_image twoch = {100, 80, 2, img.data};
    expect_bad(avemo_detect(d, &twoch, &p, r, 4, &n, &err), AVEMO_ERR_INVALID_ARG, &err, "channels");
    struct avemo_image huge = {100000, 80, 1, img.data};
    expect_bad(avemo_detect(d, &huge, &p, r, 4, &n, &err), AVEMO_ERR_TOO_LARGE, &err, "limit");
    /* an image smaller than the window: nothing to scan, no error */
    struct avemo_image tiny = {20, 20, 1, img.data};
    p.min_width = p.min_height = 0;
    assert_int_equal(avemo_detect(d, &tiny, &p, r, 4, &n, &err), AVEMO_OK);
    assert_int_equal(n, 0);

    /* face options */
    struct avemo_face_options fo;
    struct avemo_face face;
    avemo_face_options_default(&fo);
    fo.size = 0;
    expect_bad(avemo_face_detect_image(d, &img, &fo, NULL, &face, &err), AVEMO_ERR_INVALID_ARG, &err, "crop size");
    avemo_face_options_default(&fo);
    fo.margin = -1;
    expect_bad(avemo_face_detect_image(d, &img, &fo, NULL, &face, &err), AVEMO_ERR_INVALID_ARG, &err, "margin");
    /* no face: face_found = 0 and no crop, unless the centre fallback is asked */
    avemo_face_options_default(&fo);
    assert_int_equal(avemo_face_detect_image(d, &img, &fo, NULL, &face, &err), AVEMO_OK);
    assert_int_equal(face.face_found, 0);
    assert_int_equal(face.has_crop, 0);
    fo.center_fallback = 1;
    assert_int_equal(avemo_face_detect_image(d, &img, &fo, NULL, &face, &err), AVEMO_OK);
    assert_int_equal(face.face_found, 0);
    assert_int_equal(face.has_crop, 1);
    assert_int_equal(face.crop.w, 80);
    assert_int_equal(face.crop.x, 10);
    assert_int_equal(face.image.width, 64);
    assert_int_equal(face.image.channels, 3);
    avemo_face_free(&face);

    avemo_image_free(&img);
    avemo_detector_free(d);
    avemo_cascade_free(c);
}


/* The same cascade from the XML and from the binary cache: every array equal. */
static void assert_same_cascade(const avemo_cascade *a, const avemo_cascade *b)
{
    assert_int_equal(a->nstages, b->nstages);
    assert_int_equal(a->ntrees, b->ntrees);
    assert_int_equal(a->nnodes, b->nnodes);
    assert_int_equal(a->nleaves, b->nleaves);
    assert_int_equal(a->nfeatures, b->nfeatures);
    assert_int_equal(a->win_w, b->win_w);
    assert_int_equal(a->stumps_only, b->stumps_only);
    assert_int_equal(a->has_tilted, b->has_tilted);
    assert_memory_equal(a->stages, b->stages, sizeof *a->stages * (size_t)a->nstages);
    assert_memory_equal(a->trees, b->trees, sizeof *a->trees * (size_t)a->ntrees);
    assert_memory_equal(a->nodes, b->nodes, sizeof *a->nodes * (size_t)a->nnodes);
    assert_memory_equal(a->leaves, b->leaves, sizeof *a->leaves * (size_t)a->nleaves);
    assert_memory_equal(a->features, b->features, sizeof *a->features * (size_t)a->nfeatures);
}

static void load_both(const char *path, const avemo_cascade *xml_only)
{
    struct avemo_error err;
    avemo_cascade *c = NULL;
    if (avemo_cascade_load(path, NULL, &c, &err)) fail_msg("%s", err.message);
    assert_same_cascade(xml_only, c);
    avemo_cascade_free(c);
}

/* avemo_cascade_load writes a binary cache and reads it back as the same cascade; a damaged
 * cache (a flipped byte) or one whose CRC is right but whose node names a missing feature is
 * ignored: the XML is parsed again and the cache rewritten. */
static void test_binary_cache(void **state)
{
    (void)state;
    char dir[] = "/tmp/avemo-cascade-cache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("AVEMO_CACHE_DIR", dir, 1);
    uint8_t *xml;
    size_t size;
    struct avemo_error err;
    if (avemo_read_file(CASCADE, (size_t)32 << 20, &xml, &size, &err)) fail_msg("%s", err.message);
    avemo_cascade *ref = NULL;
    if (avemo_cascade_load_memory(xml, size, CASCADE, NULL, &ref, &err)) fail_msg("%s", err.message);
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cascade-%08x-%zu.bin", dir, (unsigned)avemo_crc32(0, xml, size), size);
    free(xml);
    load_both(CASCADE, ref); /* parses, writes the cache */
    uint8_t *bin;
    size_t bin_size;
    if (avemo_read_file(cache, (size_t)64 << 20, &bin, &bin_size, &err)) fail_msg("%s", err.message);
    load_both(CASCADE, ref); /* from the cache */
    /* A flipped byte: the CRC fails. */
    bin[bin_size / 2] ^= 0x40;
    FILE *f = fopen(cache, "wb");
    assert_non_null(f);
    fwrite(bin, 1, bin_size, f);
    fclose(f);
    load_both(CASCADE, ref);
    /* A node naming feature nfeatures, with a CRC that matches: the checks refuse it. */
    bin[bin_size / 2] ^= 0x40;
    size_t node0 = bin_size - 4 - sizeof *ref->features * (size_t)ref->nfeatures - sizeof(float) * (size_t)ref->nleaves -
                   sizeof *ref->nodes * (size_t)ref->nnodes;
    struct cascade_node nd;
    memcpy(&nd, bin + node0, sizeof nd);
    nd.feature = ref->nfeatures;
    memcpy(bin + node0, &nd, sizeof nd);
    uint32_t crc = avemo_crc32(0, bin, bin_size - 4);
    memcpy(bin + bin_size - 4, &crc, 4);
    f = fopen(cache, "wb");
    assert_non_null(f);
    fwrite(bin, 1, bin_size, f);
    fclose(f);
    avemo_cascade *c = NULL;
    if (avemo_cascade_load(CASCADE, NULL, &c, &err)) fail_msg("%s", err.message);
    assert_same_cascade(ref, c);
    struct avemo_cascade_limits lim;
    avemo_cascade_limits_default(&lim);
    assert_true(vision_cascade_check(c, &lim));
    c->nodes[0].feature = ref->nfeatures;
    assert_false(vision_cascade_check(c, &lim));
    avemo_cascade_free(c);
    free(bin);
    avemo_cascade_free(ref);
    remove(cache);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debian_cascades_load),
        cmocka_unit_test(test_binary_cache),
        cmocka_unit_test(test_tiny_cascade_is_valid),
        cmocka_unit_test(test_missing_and_empty),
        cmocka_unit_test(test_truncated_xml),
        cmocka_unit_test(test_wrong_structure),
        cmocka_unit_test(test_absurd_values),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_absurd_detect_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
