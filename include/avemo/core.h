/*
 * avemo core: status codes, error messages, version and small shared helpers.
 *
 * Every fallible avemo function returns an enum avemo_status and, when the
 * caller passes a non-NULL struct avemo_error, fills it with a message that
 * names the file (or object) and the cause.  The library never exits.
 */
#ifndef AVEMO_CORE_H
#define AVEMO_CORE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AVEMO_VERSION_MAJOR 0
#define AVEMO_VERSION_MINOR 1
#define AVEMO_VERSION_PATCH 0
#define AVEMO_VERSION_STRING "0.1.0"

/* One status enum for the whole library.  Values are stable: they are part
 * of the API and appear in JSON errors of the service. */
enum avemo_status {
    AVEMO_OK = 0,
    AVEMO_ERR_INVALID_ARG,   /* a parameter is out of range or NULL */
    AVEMO_ERR_NOMEM,         /* an allocation failed */
    AVEMO_ERR_IO,            /* the operating system refused a read or write */
    AVEMO_ERR_NOT_FOUND,     /* a file or item does not exist */
    AVEMO_ERR_EMPTY,         /* the input has no bytes or no content */
    AVEMO_ERR_UNSUPPORTED,   /* not a format or codec we can read */
    AVEMO_ERR_CORRUPT,       /* recognised, but the data is damaged or truncated */
    AVEMO_ERR_NO_AUDIO,      /* the media has no audio stream */
    AVEMO_ERR_NO_VIDEO,      /* the media has no video stream */
    AVEMO_ERR_TOO_LARGE,     /* a size limit (bytes, pixels, samples) is exceeded */
    AVEMO_ERR_TOO_LONG,      /* the duration limit is exceeded */
    AVEMO_ERR_CONFIG,        /* a pipeline / configuration file is invalid */
    AVEMO_ERR_VERSION,       /* a file has a version this build cannot read */
    AVEMO_ERR_CHECKSUM,      /* a checksum did not match */
    AVEMO_ERR_MISMATCH,      /* shapes or parameters do not agree */
    AVEMO_ERR_NO_FACE,       /* no face was found where one is required */
    AVEMO_ERR_BUSY,          /* a queue or resource is full */
    AVEMO_ERR_INTERNAL,      /* a bug or an unexpected library failure */
    AVEMO_ERR_TIMEOUT,       /* an operation ran past its time limit */
    AVEMO_ERR_SILENT,        /* the audio holds no voice where one is required */
    AVEMO_STATUS_COUNT
};

/* Short, stable description of a status ("no audio stream"). */
const char *avemo_strerror(enum avemo_status status);
/* Stable machine-readable name of a status ("no_audio"). */
const char *avemo_status_name(enum avemo_status status);

#define AVEMO_ERROR_MESSAGE_MAX 512

/* The most classes a model may have: every per-class array (predictions, metrics, label
 * maps, training pools) is sized by it. */
#define AVEMO_MAX_CLASSES 16

/* Filled by failing calls: the status and a full message such as
 * "clip.flv: no video stream (the file has 1 audio stream)". */
struct avemo_error {
    enum avemo_status status;
    char message[AVEMO_ERROR_MESSAGE_MAX];
};

/* Record a failure in err (may be NULL) and return status, so that callers can
 * write `return avemo_fail(err, AVEMO_ERR_IO, "%s: %s", path, strerror(errno));` */
enum avemo_status avemo_fail(struct avemo_error *err, enum avemo_status status,
                             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Reset err to AVEMO_OK with an empty message. */
void avemo_error_clear(struct avemo_error *err);

/* Version of the library actually linked. */
const char *avemo_version(void);

/* Open a regular file for reading: a FIFO, a directory or a device is refused at once (the
 * open never blocks), with a message naming its type. */
enum avemo_status avemo_open_regular(const char *path, FILE **out, struct avemo_error *err);
/* "a FIFO", "a directory", ... for a struct stat st_mode. */
const char *avemo_file_type_name(unsigned mode);

/* A large buffer (model files, network parameters, activations), freed with free(): from 256 KB
 * on it is rounded up to whole 2 MB pages, aligned to 2 MB and advised to use transparent huge
 * pages, so that filling it takes a few page faults instead of one per 4 kB page (a few
 * microseconds each in a virtual machine: 16 MB of models cost ~80 ms of faults at start-up).
 * NULL when out of memory. */
void *avemo_alloc_large(size_t bytes);

/* Read a whole file into memory, refusing files larger than max_bytes.
 * The buffer (avemo_alloc_large) gets one extra NUL byte past *size (handy for text). */
enum avemo_status avemo_read_file(const char *path, size_t max_bytes, uint8_t **data,
                                  size_t *size, struct avemo_error *err);

/* Read a whole stream (a pipe: standard input) into memory, as avemo_read_file; a stream
 * longer than max_bytes is refused with AVEMO_ERR_TOO_LARGE naming name and the limit. */
enum avemo_status avemo_read_stream(FILE *f, const char *name, size_t max_bytes, uint8_t **data, size_t *size,
                                    struct avemo_error *err);

/* ---- FFmpeg's own log (src/core/log.c) ----
 * FFmpeg prints its lines ("[flv @ 0x55..] Packet corrupt") through one process-wide callback
 * that has no user pointer (av_log_set_callback).  avemo_log_route() sends its errors, warnings
 * and notes (up to AV_LOG_INFO, what the ffmpeg program shows) to fn as "[flv] Packet corrupt"
 * at AVEMO_LOG_VERBOSE, when max_level is at least that (a program shows them on request only:
 * `avemo --verbose`); fn NULL drops them.  Because FFmpeg's callback API is
 * process-wide, so is the route: {fn, user, max_level} is the one mutable global of libavemo.
 * Set it once, at start-up, before any thread runs. */
enum avemo_log_level {
    AVEMO_LOG_QUIET = 0,     /* nothing */
    AVEMO_LOG_ERROR,         /* only what made the work fail */
    AVEMO_LOG_INFO,          /* notes and summaries (a program's default) */
    AVEMO_LOG_VERBOSE,       /* also FFmpeg's errors, warnings and notes */
};
typedef void (*avemo_log_fn)(void *user, enum avemo_log_level level, const char *line);
void avemo_log_route(enum avemo_log_level max_level, avemo_log_fn fn, void *user);
/* The route's max_level (AVEMO_LOG_INFO before avemo_log_route is called); a program's
 * own notes are printed when it is at least AVEMO_LOG_INFO. */
enum avemo_log_level avemo_log_level(void);

/* Write a float32 array as a NumPy .npy file (C order).  ndim <= 4. */
enum avemo_status avemo_write_npy(const char *path, const float *data, int ndim,
                                  const size_t *shape, struct avemo_error *err);

/* Read a float32 .npy file written by avemo or by numpy (little-endian '<f4',
 * C order).  *data is malloc'ed; shape receives up to 4 dimensions. */
enum avemo_status avemo_read_npy(const char *path, float **data, int *ndim, size_t shape[4],
                                 struct avemo_error *err);

/* ---- numbers from text: one parser for configuration files, the CLI and the server ----
 * The whole text must be the number (no blanks, no trailing characters); integers are
 * decimal digits with a '-' only when lo < 0.  AVEMO_ERR_INVALID_ARG without a message
 * when the text is not a number in [lo, hi]. */
enum avemo_status avemo_parse_long(const char *text, long lo, long hi, long *out);
enum avemo_status avemo_parse_int(const char *text, int lo, int hi, int *out);
enum avemo_status avemo_parse_double(const char *text, double lo, double hi, double *out);
/* A duration in seconds, written as FFmpeg's av_parse_time reads one: "2.5" or "3s" (seconds),
 * "250ms", "10us", or "[HH:]MM:SS[.m]" ("1:30" is 90 s), starting with a digit (no sign, no
 * blank).  Anything else is refused: "1m"
 * (minutes or milliseconds?) and "abc" give AVEMO_ERR_INVALID_ARG, as does a value outside
 * [lo, hi] seconds. */
enum avemo_status avemo_parse_duration(const char *text, double lo, double hi, double *seconds);

/* ---- configuration: an INI text read once (libinih) into ordered entries ----
 * Like darknet's read_cfg + option_find_int: the text is parsed once, every reader asks
 * for its section's keys, and SECTION.KEY=VALUE changes (`--set`) edit the entries, not
 * the text.  A multi-line value (indented continuation lines) is one entry per line, in
 * order, as libinih reports them.  Typed getters leave *out unchanged when the key is
 * absent and fail with one message format:
 *   "NAME:LINE: [SECTION] KEY = 'VALUE': expected a whole number in LO..HI" */
typedef struct avemo_cfg avemo_cfg;
/* Parse text (at most max_bytes; name is used in messages). */
enum avemo_status avemo_cfg_parse(const char *text, size_t max_bytes, const char *name, avemo_cfg **out,
                                  struct avemo_error *err);
void avemo_cfg_free(avemo_cfg *cfg);
const char *avemo_cfg_name(const avemo_cfg *cfg);
/* The value of [section] key (its first line when it has several), NULL when absent. */
const char *avemo_cfg_get(const avemo_cfg *cfg, const char *section, const char *key);
/* Replace every line of [section] key by one value, or add it at the end of its section
 * (a new section at the end). */
enum avemo_status avemo_cfg_set(avemo_cfg *cfg, const char *section, const char *key, const char *value,
                                struct avemo_error *err);
/* The same from "SECTION.KEY=VALUE" (the last dot before '=' ends the section: branch.audio.layers). */
enum avemo_status avemo_cfg_assign(avemo_cfg *cfg, const char *assignment, struct avemo_error *err);
/* Call fn for every entry in order; fn returns 0 to stop.  Returns 0, or the line of the
 * entry that stopped (as ini_parse does). */
typedef int (*avemo_cfg_handler)(void *user, const char *section, const char *key, const char *value);
int avemo_cfg_each(const avemo_cfg *cfg, avemo_cfg_handler fn, void *user);
/* The configuration as INI text (malloc'ed): sections in order, "key = value" lines,
 * continuation lines indented. */
char *avemo_cfg_text(const avemo_cfg *cfg);
/* Typed getters with ranges. */
enum avemo_status avemo_cfg_int(const avemo_cfg *cfg, const char *section, const char *key, int lo, int hi, int *out,
                                struct avemo_error *err);
enum avemo_status avemo_cfg_double(const avemo_cfg *cfg, const char *section, const char *key, double lo, double hi,
                                   double *out, struct avemo_error *err);
/* One of choices (NULL-terminated, case-insensitive); *out is its index. */
enum avemo_status avemo_cfg_choice(const avemo_cfg *cfg, const char *section, const char *key,
                                   const char *const *choices, int *out, struct avemo_error *err);
/* The same checks on a value already in hand (a handler's), with the same message; where
 * names it ("pipe.ini:12: [train] epochs"). */
enum avemo_status avemo_value_int(const char *value, int lo, int hi, int *out, const char *where,
                                  struct avemo_error *err);
enum avemo_status avemo_value_double(const char *value, double lo, double hi, double *out, const char *where,
                                     struct avemo_error *err);
enum avemo_status avemo_value_choice(const char *value, const char *const *choices, int *out, const char *where,
                                     struct avemo_error *err);

/* Monotonic time in seconds, for the timings that avemo reports. */
double avemo_now(void);

/* The CPUs this process may run on (its affinity mask: a Slurm allocation or a container's
 * cpuset, else the online ones), at least 1: the default of every "one per core" choice. */
int avemo_usable_cpus(void);

/* CRC-32 (IEEE 802.3, as zlib's crc32(crc, data, size)), computed with FFmpeg's av_crc. */
uint32_t avemo_crc32(uint32_t crc, const void *data, size_t size);
/* SHA-256 of a file's bytes, computed with FFmpeg's hash API (av_hash): the content key of
 * the training record of a model (nn.h). */
#define AVEMO_SHA256_SIZE 32
enum avemo_status avemo_sha256_file(const char *path, uint8_t out[AVEMO_SHA256_SIZE], struct avemo_error *err);

/* avemo's data folder (models/, pipelines/): $AVEMO_DATA_DIR, else <prefix>/share/avemo of the
 * install prefix of the library (or the program) that runs, found at run time from where it
 * was loaded (a build tree's build/share/avemo links to the source tree's folders).
 * AVEMO_ERR_NOT_FOUND when there is none. */
enum avemo_status avemo_data_dir(char *path, size_t size, struct avemo_error *err);

/* ---- binary files: the one writer and reader of every avemo file format ----
 * Each format is documented at the top of the file that defines it (model_file.c, optim.c,
 * features.c, train.c, vision/cascade_cache.c).  They share these conventions: an 8-byte magic and a version first,
 * little-endian integers and IEEE floats, and CRC-32 trailers (avemo_crc32): a u32 CRC of every
 * byte since the previous CRC, written by avemo_binw_crc() and at the end by avemo_binw_finish(),
 * so a file always ends with the CRC of its last section.
 *
 * The writer streams to PATH.tmpPID and renames it over PATH when complete, so a reader never sees
 * half a file; errors are sticky and reported once by avemo_binw_finish(). */
typedef struct avemo_binw avemo_binw;
enum avemo_status avemo_binw_create(const char *path, avemo_binw **out, struct avemo_error *err);
void avemo_binw_bytes(avemo_binw *w, const void *data, size_t n);
void avemo_binw_u8(avemo_binw *w, uint8_t v);
void avemo_binw_u32(avemo_binw *w, uint32_t v);
void avemo_binw_u64(avemo_binw *w, uint64_t v);
void avemo_binw_f32(avemo_binw *w, const float *x, size_t n);
void avemo_binw_f64(avemo_binw *w, const double *x, size_t n);
/* n 4-byte fields (int32_t, uint32_t or float, mixed): a struct made only of such fields, or an
 * array of them, is written field by field in little-endian order. */
void avemo_binw_words32(avemo_binw *w, const void *x, size_t n);
void avemo_binw_str(avemo_binw *w, const char *s, size_t n); /* u32 length n, then the bytes */
void avemo_binw_crc(avemo_binw *w);                        /* u32 CRC of the section so far */
uint64_t avemo_binw_offset(const avemo_binw *w);           /* bytes written so far */
/* Write the final CRC, close and rename into place (or remove the temporary file on failure). */
enum avemo_status avemo_binw_finish(avemo_binw *w, struct avemo_error *err);
void avemo_binw_abort(avemo_binw *w);                      /* drop the file */

/* The reader: over memory, or streaming a file.  Reading past the end or a failed CRC check sets
 * bad (sticky); values read then are 0. */
struct avemo_binr {
    const uint8_t *data;      /* memory source, or NULL */
    size_t size, pos;
    void *file;               /* FILE * of a streaming reader */
    uint32_t crc;             /* running CRC of the current section */
    int checked;              /* the caller checked the whole buffer's CRC: no running CRC */
    int bad;
};
void avemo_binr_memory(struct avemo_binr *r, const void *data, size_t size);
/* The same over a buffer whose checksum the caller has verified already (a model file's CRC
 * covers the whole file): no CRC is computed a second time; avemo_binr_crc is not used. */
void avemo_binr_memory_checked(struct avemo_binr *r, const void *data, size_t size);
enum avemo_status avemo_binr_open(struct avemo_binr *r, const char *path, struct avemo_error *err);
void avemo_binr_close(struct avemo_binr *r);
/* n bytes into out (out NULL: skipped, still checksummed); 1 on success. */
int avemo_binr_bytes(struct avemo_binr *r, void *out, size_t n);
/* Memory readers only: a pointer to the next n bytes (NULL past the end). */
const void *avemo_binr_take(struct avemo_binr *r, size_t n);
uint8_t avemo_binr_u8(struct avemo_binr *r);
uint32_t avemo_binr_u32(struct avemo_binr *r);
uint64_t avemo_binr_u64(struct avemo_binr *r);
int avemo_binr_f32(struct avemo_binr *r, float *out, size_t n);  /* out NULL: skipped */
int avemo_binr_f64(struct avemo_binr *r, double *out, size_t n);
int avemo_binr_words32(struct avemo_binr *r, void *out, size_t n); /* as avemo_binw_words32 wrote them */
/* Read a u32 CRC and compare it with the section's; 1 when they match (a new section starts). */
int avemo_binr_crc(struct avemo_binr *r);

/* The six classes of the CREMA-D models, in the order of the network's outputs. */
#define AVEMO_NUM_EMOTIONS 6
extern const char *const avemo_emotion_codes[AVEMO_NUM_EMOTIONS]; /* "ANG", ... */
extern const char *const avemo_emotion_names[AVEMO_NUM_EMOTIONS]; /* "anger", ... */

/* ---- batch work in shards (src/core/shard.c): Slurm job arrays, Kubernetes Indexed Jobs ----
 *
 * The items (files) of a run are split into N contiguous blocks; shard I does block I and
 * writes its own output, so the outputs of shards 0..N-1 put together in order are exactly
 * the output of one process.  A restarted shard keeps the complete lines it already wrote
 * and goes on with the next item.
 *
 *   struct avemo_shard s;  avemo_shard_from_env(&s, &err);     // or avemo_shard_parse("2/4", ...)
 *   struct avemo_items items;  avemo_items_expand(inputs, n, &items, &err);
 *   struct avemo_shard_job job = {items.paths, items.n, s, "out/classify-00002-of-00004.jsonl", ...};
 *   avemo_shard_run(&job, &stats, &err);   ...   avemo_merge(shard_files, 4, "all.jsonl", &err);
 */
struct avemo_shard {
    int index;               /* 0 .. count-1 */
    int count;               /* 1: the whole run */
};
#define AVEMO_SHARD_MAX 100000

/* "I/N" with 0 <= I < N <= AVEMO_SHARD_MAX. */
enum avemo_status avemo_shard_parse(const char *text, struct avemo_shard *out, struct avemo_error *err);
/* This task's shard from the environment: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
 * SLURM_ARRAY_TASK_COUNT (a Slurm job array), or JOB_COMPLETION_INDEX of AVEMO_SHARD_COUNT
 * (a Kubernetes Indexed Job: the count is not in its environment, set it in the manifest);
 * {0, 1} when neither is set. */
enum avemo_status avemo_shard_from_env(struct avemo_shard *out, struct avemo_error *err);
/* The items of shard s among n: [*begin, *end). */
void avemo_shard_range(const struct avemo_shard *s, size_t n, size_t *begin, size_t *end);
/* "<dir>/<stem>-IIIII-of-NNNNN<ext>" (five digits: the names sort in shard order). */
enum avemo_status avemo_shard_path(const char *dir, const char *stem, const struct avemo_shard *s, const char *ext,
                                   char *out, size_t size, struct avemo_error *err);

/* The inputs of a batch run, in order: a folder gives its media files (recursively, sorted
 * by path), a manifest (*.txt, *.list: one path per line, '#' comments, relative paths
 * from the manifest's folder) its paths, anything else is itself. */
struct avemo_items {
    char **paths;
    size_t n;
};
enum avemo_status avemo_items_expand(const char *const *inputs, int n, struct avemo_items *out,
                                     struct avemo_error *err);
/* Append the paths of a manifest given as text (as a *.txt manifest: one path per line, '#'
 * comments; relative paths are taken from dir, NULL: as they are); name is used in messages.
 * `classify --manifest FILE` reads any file, or standard input, this way. */
enum avemo_status avemo_items_add_manifest(struct avemo_items *items, const char *text, const char *dir,
                                           const char *name, struct avemo_error *err);
void avemo_items_free(struct avemo_items *items);

/* One item of a shard, items[index] of the job: *line (malloc'ed, no newline; NULL: nothing to
 * write, allowed only without an output file) and, for jobs with an .npy, *block (malloc'ed,
 * block_floats floats; NULL writes NaNs for a failed item).  A status other than AVEMO_OK stops
 * the run. */
typedef enum avemo_status (*avemo_shard_item_fn)(void *user, size_t index, const char *item, char **line,
                                                 float **block, struct avemo_error *err);

struct avemo_shard_job {
    const char *const *items;    /* every item of the run, in order */
    size_t n;
    struct avemo_shard shard;
    const char *out_path;        /* the shard's lines (JSON lines or CSV); NULL: stdout, no restart */
    const char *header;          /* first line of a CSV output, or NULL */
    const char *npy_path;        /* NULL, or the shard's .npy: one block per item, shape (items, block_shape) */
    int block_ndim;              /* 1..3 */
    size_t block_shape[3];
    avemo_shard_item_fn fn;
    void *user;
};
struct avemo_shard_stats {
    size_t items;                /* in this shard */
    size_t skipped;              /* done by an earlier run of the shard */
    size_t done;                 /* by this run */
};
enum avemo_status avemo_shard_run(const struct avemo_shard_job *job, struct avemo_shard_stats *stats,
                                  struct avemo_error *err);

/* The line of a failed item in a shard's JSON lines: {"file":...,"error":{"code":...,"message":...}}
 * (malloc'ed, NULL when out of memory). */
char *avemo_item_error_json(const char *file, const struct avemo_error *err);

/* Join shard outputs into out_path: JSON lines and text are put one after the other, a CSV
 * keeps the first file's header (the others must have the same), .npy files are stacked
 * along their first axis.  Inputs named "...-IIIII-of-NNNNN..." are put in shard order and
 * must be complete (every shard once). */
enum avemo_status avemo_merge(const char *const *inputs, int n, const char *out_path, struct avemo_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_CORE_H */
