/*
 * avemo vision: the face branch's input.
 *
 *   - Viola-Jones face detection that evaluates OpenCV's cascade files
 *     (the XML format of opencv_traincascade: Haar features, tilted ones
 *     included, and LBP features) and reproduces the detections of
 *     cv::CascadeClassifier::detectMultiScale: the image is scaled down by
 *     successive factors, a fixed-size window slides over each scaled image,
 *     and overlapping windows are grouped as cv::groupRectangles does (eps 0.2).
 *   - square face crops with a margin, resampled to 64x64 (area filter when
 *     shrinking, bilinear when enlarging), gray or RGB;
 *   - JPEG read and write with libjpeg.
 *
 * Threads: an avemo_cascade is read-only once loaded and may be shared by any
 * number of threads; each thread uses its own avemo_detector (the workspace:
 * scaled images, integral images, candidate windows).
 */
#ifndef AVEMO_VISION_H
#define AVEMO_VISION_H

#include <avemo/core.h>
#include <avemo/media.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The cascade that Debian's opencv-data package installs. */
#define AVEMO_DEFAULT_CASCADE "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"

/* Caps on images that the vision functions accept. */
#define AVEMO_IMAGE_MAX_SIDE 8192
#define AVEMO_IMAGE_MAX_PIXELS ((int64_t)4096 * 4096)

/* An 8-bit image, rows packed (row stride = width * channels); channels 1 (gray) or 3 (RGB). */
struct avemo_image {
    int width, height, channels;
    uint8_t *data;
};

/* Allocate width * height * channels bytes (zeroed); sizes are checked against the caps above. */
enum avemo_status avemo_image_alloc(struct avemo_image *img, int width, int height, int channels,
                                    struct avemo_error *err);
void avemo_image_free(struct avemo_image *img);
/* A view of a decoded frame (no copy; the frame keeps the pixels). */
struct avemo_image avemo_image_from_frame(const struct avemo_frame *frame);

/* A rectangle in pixels. */
struct avemo_rect {
    int x, y, w, h;
};

/* Intersection over union of two rectangles (0 when either is empty). */
double avemo_rect_iou(struct avemo_rect a, struct avemo_rect b);

/* Convert to gray (1 channel) or RGB (3 channels) into a new image.  RGB to gray
 * uses OpenCV's fixed-point BT.601 weights, so it matches cv2.cvtColor. */
enum avemo_status avemo_image_convert(const struct avemo_image *src, int channels, struct avemo_image *dst,
                                      struct avemo_error *err);

/* Resample the region `src_rect` of src (must lie inside src) to a new image of
 * width x height with the same channels: area averaging when shrinking, bilinear
 * when enlarging (each axis on its own). */
enum avemo_status avemo_image_resize(const struct avemo_image *src, struct avemo_rect src_rect, int width,
                                     int height, struct avemo_image *dst, struct avemo_error *err);

/* Contrast normalisation of a face crop, in place.  Histogram equalisation (the
 * cumulative histogram of each channel mapped to 0..255, as cv2.equalizeHist does for
 * gray images): faces from any camera, exposure or corpus reach the network with the
 * same spread of grey levels. */
void avemo_image_equalize(struct avemo_image *img);

/* Draw the outline of r (clipped to the image) in the given color (gray images use color[0]). */
void avemo_image_draw_rect(struct avemo_image *img, struct avemo_rect r, const uint8_t color[3], int thickness);

/* ---- JPEG (libjpeg) ---------------------------------------------------- */

#define AVEMO_JPEG_MAX_BYTES ((size_t)64 << 20)

/* Decode a JPEG.  channels: 0 keeps the file's (1 or 3), 1 gives gray, 3 gives RGB.
 * max_pixels <= 0 means AVEMO_IMAGE_MAX_PIXELS; larger images are refused before decoding. */
enum avemo_status avemo_jpeg_read_file(const char *path, int channels, int64_t max_pixels,
                                       struct avemo_image *out, struct avemo_error *err);
/* name is used in messages. */
enum avemo_status avemo_jpeg_read_memory(const void *data, size_t size, const char *name, int channels,
                                         int64_t max_pixels, struct avemo_image *out, struct avemo_error *err);
/* quality 1..100. */
enum avemo_status avemo_jpeg_write_file(const char *path, const struct avemo_image *img, int quality,
                                        struct avemo_error *err);
/* *data is malloc'ed. */
enum avemo_status avemo_jpeg_write_memory(const struct avemo_image *img, int quality, uint8_t **data,
                                          size_t *size, struct avemo_error *err);

/* ---- Cascade and detector ---------------------------------------------- */

typedef struct avemo_cascade avemo_cascade;
typedef struct avemo_detector avemo_detector;

/* Caps on what a cascade file may make us allocate. */
struct avemo_cascade_limits {
    size_t max_file_bytes;  /* default 32 MiB */
    int max_stages;         /* default 1000 */
    int max_trees;          /* weak classifiers in all stages, default 100000 */
    int max_nodes_per_tree; /* default 64 */
    int max_features;       /* default 100000 */
    int max_window;         /* window width and height, default 256 */
};
void avemo_cascade_limits_default(struct avemo_cascade_limits *limits);

/* Load a cascade in OpenCV's format (opencv_traincascade / OpenCV >= 3 data files).
 * limits may be NULL.  The old "opencv-haar-classifier" format is refused (UNSUPPORTED). */
enum avemo_status avemo_cascade_load(const char *path, const struct avemo_cascade_limits *limits,
                                     avemo_cascade **out, struct avemo_error *err);
enum avemo_status avemo_cascade_load_memory(const void *xml, size_t size, const char *name,
                                            const struct avemo_cascade_limits *limits, avemo_cascade **out,
                                            struct avemo_error *err);
void avemo_cascade_free(avemo_cascade *cascade);

struct avemo_cascade_info {
    int window_width, window_height;
    int is_lbp;        /* 0: Haar features, 1: LBP features */
    int has_tilted;    /* Haar cascade with 45-degree features */
    int stages, trees, features;
};
void avemo_cascade_get_info(const avemo_cascade *cascade, struct avemo_cascade_info *info);

/* The parameters of detectMultiScale. */
struct avemo_detect_params {
    double scale_factor;  /* > 1 (OpenCV's scaleFactor), default 1.1 */
    int min_neighbors;    /* default 5; 0 returns every raw window, as OpenCV does */
    int min_width, min_height;  /* default 30 x 30 */
    int max_width, max_height;  /* 0: the image size */
    int max_candidates;   /* cap on raw windows before grouping, default 100000 */
};
void avemo_detect_params_default(struct avemo_detect_params *params);

/* A per-thread workspace bound to a cascade (which must outlive it). */
enum avemo_status avemo_detector_create(const avemo_cascade *cascade, avemo_detector **out,
                                        struct avemo_error *err);
void avemo_detector_free(avemo_detector *det);

/* Detect objects in img (gray, or RGB converted to gray as cv2.cvtColor does).
 * Writes up to max_out rectangles into out, largest area first, and the total
 * number found into *count (which may exceed max_out). */
enum avemo_status avemo_detect(avemo_detector *det, const struct avemo_image *img,
                               const struct avemo_detect_params *params, struct avemo_rect *out, int max_out,
                               int *count, struct avemo_error *err);

/* ---- Faces -------------------------------------------------------------- */

struct avemo_face_options {
    struct avemo_detect_params detect;
    int size;          /* side of the square crop, default 64 */
    int channels;      /* 3 RGB (default) or 1 gray */
    double margin;     /* border added on each side of the box, as a fraction of its side; default 0.1
                        * (negative: a crop tighter than the box, down to -0.25) */
    double offset_y;   /* the crop's centre moved down by this fraction of the box side (default 0) */
    int track;         /* 1: search near the previous frame's face first (faster, may differ slightly) */
    int center_fallback; /* 1: when no face is found, crop the centre square (face_found stays 0) */
};
void avemo_face_options_default(struct avemo_face_options *opt);

struct avemo_face {
    int64_t frame_index;   /* of the decoded frame (-1 for a still image) */
    double time_s;
    int face_found;        /* 1 when the detector found a face */
    struct avemo_rect box; /* the largest face, in pixels of the frame (when face_found) */
    int faces_in_frame;    /* faces the detector found in the whole frame; 0 when it was not searched
                              whole (opt->track found the previous face near where it was) */
    int has_crop;          /* 1 when crop/image hold a crop (a face, or the centre fallback) */
    struct avemo_rect crop;   /* the square region that was resampled */
    struct avemo_image image; /* size x size x channels */
};
void avemo_face_free(struct avemo_face *face);

/* Find the largest face in a photo or frame and crop it.  hint (may be NULL) is
 * the previous face, searched first when opt->track is set.  Without a face and
 * without the fallback, face->has_crop is 0 and the call still succeeds. */
enum avemo_status avemo_face_detect_image(avemo_detector *det, const struct avemo_image *img,
                                          const struct avemo_face_options *opt, const struct avemo_rect *hint,
                                          struct avemo_face *face, struct avemo_error *err);

/* The same on a JPEG photo (decoded with opt->channels, or RGB when opt is NULL). */
enum avemo_status avemo_face_detect_jpeg(avemo_detector *det, const char *path, const struct avemo_face_options *opt,
                                         struct avemo_face *face, struct avemo_error *err);

/* An already-cropped face (e.g. a 48x48 FER2013 image) to the model input:
 * the centre square resampled to size x size with the given channels, no detection. */
enum avemo_status avemo_face_from_crop(const struct avemo_image *img, int size, int channels,
                                       struct avemo_image *out, struct avemo_error *err);
/* The same from a JPEG file. */
enum avemo_status avemo_face_from_jpeg(const char *path, int size, int channels, struct avemo_image *out,
                                       struct avemo_error *err);

/* ---- still images of any format: JPEG by libjpeg, the others (PNG, BMP, TIFF, WebP ...)
 * by FFmpeg as one picture --------------------------------------------------------- */

/* 1 when the bytes start with a JPEG marker. */
int avemo_image_is_jpeg(const void *data, size_t size);
/* The picture of a still-image media input (avemo_media_is_still_image), as gray (channels 1)
 * or RGB (channels 3, or 0).  AVEMO_ERR_UNSUPPORTED when the media is not a still image. */
enum avemo_status avemo_image_from_media(avemo_media *media, int channels, struct avemo_image *out,
                                         struct avemo_error *err);
/* Read an image file of any format FFmpeg decodes (limits: NULL for the defaults); channels
 * 0 keeps a JPEG's own (1 or 3) and gives RGB for the others. */
enum avemo_status avemo_image_read_file(const char *path, int channels, const struct avemo_media_limits *limits,
                                        struct avemo_image *out, struct avemo_error *err);
/* The largest face in an image file of any format (as avemo_face_detect_jpeg). */
enum avemo_status avemo_face_detect_image_file(avemo_detector *det, const char *path,
                                               const struct avemo_face_options *opt, struct avemo_face *face,
                                               struct avemo_error *err);
/* An already-cropped face image file of any format to the model input (as avemo_face_from_crop). */
enum avemo_status avemo_face_from_image_file(const char *path, int size, int channels, struct avemo_image *out,
                                             struct avemo_error *err);

/* Faces of K frames sampled evenly over a clip. */
struct avemo_clip_faces {
    int count;
    struct avemo_face *faces;
    struct avemo_frames frames; /* the decoded frames, when asked to keep them (else empty) */
};

/* Decode `frames` frames of media (RGB24, or GRAY8 for gray crops), detect and crop.
 * keep_frames: keep the decoded frames in out->frames (e.g. to draw the boxes). */
enum avemo_status avemo_clip_faces(avemo_detector *det, avemo_media *media, int frames,
                                   const struct avemo_face_options *opt, int keep_frames,
                                   struct avemo_clip_faces *out, struct avemo_error *err);
void avemo_clip_faces_free(struct avemo_clip_faces *faces);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_VISION_H */
