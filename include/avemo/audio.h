/*
 * avemo audio: the speech features that the published speech-emotion models
 * were trained on, computed exactly as librosa 0.9.2 computes them:
 *
 *   STFT      periodic Hann window, frames centred (n_fft/2 zeros on both
 *             sides), |X|^2 (or |X|), FFTW single precision
 *   mel       Slaney (default) or HTK mel scale, Slaney area normalisation or none
 *   dB        10*log10(max(S, amin)) - 10*log10(ref), ref 1.0 or max(S),
 *             clipped below at max - top_db
 *   MFCC      DCT-II with orthonormal scaling of the log-mel bands, first n_mfcc rows
 *
 * Before the STFT the signal may be brought to a fixed loudness (loudness=rms,
 * off by default): not librosa's, but it makes the features independent of a
 * corpus' recording level, and with a raised amin the log-mel of near-silence
 * independent of +-1 LSB of noise (docs/results.md, issue 15).
 *
 * Matrices are row-major, features first: out[f * frames + t], like librosa's
 * (n_features, n_frames).  A signal of n samples gives 1 + n / hop frames
 * (1 + (n - 1) / hop for an odd n_fft, as librosa).
 *
 * An avemo_audio_extractor owns the FFTW plan, the window, the filter bank, the
 * DCT matrix and its workspaces.  It is used by one thread at a time: give each
 * worker thread its own (creating one takes about 1 ms).  After the first
 * signal, computing features for signals no longer than the longest seen so
 * far allocates nothing.  Results are bit-for-bit reproducible on a machine
 * (FFTW plans are made with FFTW_ESTIMATE, whose choice does not vary).
 */
#ifndef AVEMO_AUDIO_H
#define AVEMO_AUDIO_H

#include <avemo/core.h>
#include <avemo/media.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on parameters (they may come from a pipeline file). */
#define AVEMO_AUDIO_MIN_SAMPLE_RATE 1000
#define AVEMO_AUDIO_MAX_SAMPLE_RATE 192000
#define AVEMO_AUDIO_MIN_N_FFT 16
#define AVEMO_AUDIO_MAX_N_FFT 16384
#define AVEMO_AUDIO_MAX_HOP 16384
#define AVEMO_AUDIO_MAX_N_MELS 512
#define AVEMO_AUDIO_MAX_FRAMES 10000
/* Longest signal one call accepts: 30 minutes at 48 kHz. */
#define AVEMO_AUDIO_MAX_SAMPLES ((size_t)48000 * 1800)
/* Largest full feature matrix (features x frames) one call computes: 1 GiB of floats. */
#define AVEMO_AUDIO_MAX_VALUES ((size_t)1 << 28)

enum avemo_audio_feature {
    AVEMO_AUDIO_MFCC = 0,        /* n_mfcc rows: DCT of the log-mel spectrogram */
    AVEMO_AUDIO_LOGMEL,          /* n_mels rows: power_to_db of the mel spectrogram */
    AVEMO_AUDIO_MEL,             /* n_mels rows: the mel power spectrogram, no log */
    AVEMO_AUDIO_SPECTROGRAM,     /* n_fft/2+1 rows: power_to_db of the linear-frequency spectrogram */
};

enum avemo_mel_scale { AVEMO_MEL_SLANEY = 0, AVEMO_MEL_HTK };
enum avemo_mel_norm { AVEMO_MEL_NORM_SLANEY = 0, AVEMO_MEL_NORM_NONE };
enum avemo_db_ref { AVEMO_DB_REF_ONE = 0, AVEMO_DB_REF_MAX };

/* Which window of `frames` frames a longer signal keeps. */
enum avemo_crop {
    AVEMO_CROP_START = 0,        /* the first frames */
    AVEMO_CROP_CENTRE,           /* the middle frames */
    AVEMO_CROP_ENERGY,           /* the window with the most signal energy */
    AVEMO_CROP_CENTROID,         /* the window centred on the energy-weighted mean frame: unlike
                                    ENERGY it does not jump when tiny noise breaks a tie between
                                    windows that all hold the whole utterance */
};

/* Level of the waveform before the features. */
enum avemo_loudness {
    AVEMO_LOUDNESS_NONE = 0,     /* the samples as they are (librosa) */
    AVEMO_LOUDNESS_RMS,          /* scaled so that the loudest quarter has loudness_db dBFS RMS */
};

/* Where a signal shorter than the model's window sits. */
enum avemo_pad {
    AVEMO_PAD_END = 0,           /* at frame 0, zero feature frames after it */
    AVEMO_PAD_CENTRE,            /* in the middle, digital silence (samples of 0) on both sides */
};

/* Normalisation of a fixed-size feature matrix, band by band. */
enum avemo_feature_norm {
    AVEMO_NORM_NONE = 0,
    AVEMO_NORM_UTTERANCE,        /* (x - mean) / std over this signal's frames */
    AVEMO_NORM_DATASET,          /* (x - mean[f]) / std[f] with the caller's statistics */
};

struct avemo_audio_params {
    int sample_rate;             /* Hz of the samples given to the extractor (22050) */
    int n_fft;                   /* FFT and window length (2048) */
    int hop;                     /* hop length in samples (512) */
    int n_mels;                  /* mel bands (128) */
    int n_mfcc;                  /* MFCC rows kept, <= n_mels (40) */
    double fmin;                 /* lowest mel edge in Hz (0) */
    double fmax;                 /* highest mel edge in Hz; 0: sample_rate / 2 */
    double band_limit;           /* Hz: the spectrum above it is left out of the mel bands, so that a
                                    wideband recording looks like band-limited ones (16 kHz corpora
                                    carry nothing above 8 kHz; mel-based features only); 0: the
                                    whole spectrum (0) */
    enum avemo_mel_scale mel_scale;
    enum avemo_mel_norm mel_norm;
    enum avemo_audio_feature feature;
    int power;                   /* 2: power spectrum (librosa's default), 1: magnitude */
    enum avemo_db_ref db_ref;
    double amin;                 /* floor before the log (1e-10) */
    double top_db;               /* dynamic range kept below the max; 0: no clipping (80) */
    int frames;                  /* fixed output width; 0: all frames of the signal (128) */
    enum avemo_crop crop;
    enum avemo_feature_norm norm;
    enum avemo_loudness loudness;
    double loudness_db;          /* target level of the loudest quarter, dBFS: 10*log10(mean square) (-20) */
    double max_gain_db;          /* cap on the gain loudness=rms applies (40) */
    double trim_db;              /* model inputs (frames > 0) drop the leading and trailing frames more
                                    than trim_db below the loudest frame; 0: no trimming (0) */
    enum avemo_pad pad;          /* a signal shorter than `frames`: end or centre (end) */
    int deltas;                  /* extra channels after the features: 1 their delta, 2 delta and
                                    delta-delta (librosa.feature.delta, width 9, mode interp, over the
                                    full matrix before the crop); 0: none (0) */
};

/* librosa's defaults, the 40 x 128 MFCC input at 22050 Hz. */
void avemo_audio_params_default(struct avemo_audio_params *params);

/* Check every field against the caps above; name is used in messages. */
enum avemo_status avemo_audio_params_validate(const struct avemo_audio_params *params, const char *name,
                                              struct avemo_error *err);

/* Fill params with the defaults, then with the keys of the [audio] section of a
 * pipeline INI text (other sections are ignored), then validate.  Keys:
 *   sample_rate n_fft hop n_mels n_mfcc fmin fmax band_limit power amin top_db  (numbers)
 *   mel_scale=slaney|htk  mel_norm=slaney|none  db_ref=one|max
 *   feature=mfcc|logmel|mel|spectrogram  frames=N|all  crop=start|centre|energy
 *   norm=none|utterance|dataset  loudness=none|rms  loudness_db max_gain_db trim_db (numbers)  deltas=0|1|2
 *   pad=end|centre
 * An unknown key or value is an AVEMO_ERR_CONFIG naming the file and line;
 * on any failure params is left unchanged. */
enum avemo_status avemo_audio_params_from_ini(const char *ini_text, const char *name_for_errors,
                                              struct avemo_audio_params *params, struct avemo_error *err);
/* The same from a parsed configuration (its [audio] section). */
enum avemo_status avemo_audio_params_from_cfg(const avemo_cfg *cfg, struct avemo_audio_params *params,
                                              struct avemo_error *err);

/* Names used in INI files and messages ("mfcc", "start", ...). */
const char *avemo_audio_feature_name(enum avemo_audio_feature feature);
const char *avemo_crop_name(enum avemo_crop crop);

/* Parse one value of a key as the INI reader does (for command-line options). */
enum avemo_status avemo_audio_params_set(struct avemo_audio_params *params, const char *key, const char *value,
                                         const char *name_for_errors, struct avemo_error *err);

/* Rows of the output: the base rows times the channels (channel-major, so the rows are the
 * network's channels x base rows). */
int avemo_audio_params_feature_count(const struct avemo_audio_params *params);
/* Rows of the chosen feature: n_mfcc, n_mels or n_fft/2+1. */
int avemo_audio_params_base_count(const struct avemo_audio_params *params);
/* 1 + deltas: the features, then their delta and delta-delta. */
int avemo_audio_params_channels(const struct avemo_audio_params *params);

/* The mel filter bank (n_mels x (n_fft/2+1), row-major), built in double
 * precision and rounded to float32 as librosa.filters.mel does. */
enum avemo_status avemo_audio_mel_filterbank(const struct avemo_audio_params *params, float *weights,
                                             struct avemo_error *err);

/* librosa.power_to_db in place over n values: 10*log10(max(x, amin)) - ref_db,
 * with ref the max of x when db_ref is AVEMO_DB_REF_MAX, then clipped below
 * at (max - top_db) when top_db > 0. */
void avemo_audio_power_to_db(float *x, size_t n, enum avemo_db_ref db_ref, double amin, double top_db);

typedef struct avemo_audio_extractor avemo_audio_extractor;

/* Validate params and build everything the features need.  FFTW planning is
 * serialised internally, so extractors may be created from several threads. */
enum avemo_status avemo_audio_extractor_create(const struct avemo_audio_params *params,
                                               avemo_audio_extractor **out, struct avemo_error *err);
void avemo_audio_extractor_free(avemo_audio_extractor *ex);

const struct avemo_audio_params *avemo_audio_extractor_params(const avemo_audio_extractor *ex);
/* Rows of the output (see avemo_audio_params_feature_count). */
int avemo_audio_feature_count(const avemo_audio_extractor *ex);
/* Frames of the full feature matrix of n samples: 1 + n / hop (even n_fft). */
size_t avemo_audio_frame_count(const avemo_audio_extractor *ex, size_t n_samples);
/* Frames of the fixed-size output: params.frames, or all frames when it is 0. */
size_t avemo_audio_output_frames(const avemo_audio_extractor *ex, size_t n_samples);

/* Statistics for AVEMO_NORM_DATASET: count must equal the feature count and
 * every std must be > 0.  The arrays are copied. */
enum avemo_status avemo_audio_extractor_set_stats(avemo_audio_extractor *ex, const float *mean,
                                                  const float *std, int count, struct avemo_error *err);

/* The full feature matrix of n samples (at params.sample_rate) into out, which
 * holds feature_count x out_frames floats; out_frames must equal
 * avemo_audio_frame_count(ex, n).  No crop, no normalisation. */
enum avemo_status avemo_audio_compute(avemo_audio_extractor *ex, const float *samples, size_t n,
                                      float *out, size_t out_frames, struct avemo_error *err);

/* The model input: the full features (dB reference and clipping over the whole
 * signal, as librosa), then trimmed of leading and trailing silence (trim_db), then cropped to params.frames by params.crop or padded
 * with zero frames at the end, then normalised by params.norm (utterance: statistics
 * over the signal's own frames, padding frames stay zero; dataset: every frame, padding
 * included, as training normalises its inputs).  out holds
 * feature_count x out_frames floats, out_frames = avemo_audio_output_frames(ex, n).
 * *valid_frames (may be NULL) receives how many leading frames come from the
 * signal, the rest being padding. */
enum avemo_status avemo_audio_compute_fixed(avemo_audio_extractor *ex, const float *samples, size_t n,
                                            float *out, size_t out_frames, size_t *valid_frames,
                                            struct avemo_error *err);

/* The first n samples of the linear convolution of x (n samples) with h (m samples), by FFT,
 * into out (n floats; out may be x).  Training's synthetic rooms (augment.room) use it. */
enum avemo_status avemo_audio_convolve(const float *x, size_t n, const float *h, size_t m, float *out,
                                       struct avemo_error *err);

/* Decode the best audio stream of media at params.sample_rate (mono) and
 * compute the model input as avemo_audio_compute_fixed does.  *features is
 * malloc'ed (feature_count x *frames floats); valid_frames may be NULL. */
enum avemo_status avemo_audio_features_from_media(avemo_audio_extractor *ex, avemo_media *media, float **features,
                                                  size_t *frames, size_t *valid_frames, struct avemo_error *err);

/* First frame of the window of `frames` frames that `crop` keeps out of `total`
 * (0 when total <= frames); energy[total] is needed for AVEMO_CROP_ENERGY and _CENTROID. */
size_t avemo_audio_crop_start(enum avemo_crop crop, size_t total, size_t frames, const double *energy);

/* The gain loudness=rms gives n samples (1.0 with loudness=none or a silent signal):
 * the signal is cut into blocks of params.hop samples, the mean square of the
 * loudest quarter of the blocks is the level, and the gain brings it to loudness_db,
 * at most max_gain_db up.  Pauses do not count, so a clip with long silences
 * and one without end at the same speech level; +-1 LSB of noise moves the
 * gain by a negligible amount. */
double avemo_audio_loudness_gain(const struct avemo_audio_params *params, const float *samples, size_t n);

/* Below this level a recording is taken to hold no voice (avemo_audio_level_db): the quietest
 * clip of the training corpora (RAVDESS, EmoDB, CREMA-D) is a sad sentence at -56 dBFS, so
 * -70 leaves a margin under real quiet speech, while a muted track (digital zero) or a 16-bit
 * recording's +-1 LSB noise floor (near -90 dBFS) falls well below it. */
#define AVEMO_AUDIO_SILENT_DB (-70.0)
/* Floor of avemo_audio_level_db: digital silence (every sample 0). */
#define AVEMO_AUDIO_LEVEL_FLOOR_DB (-200.0)

/* Level of n samples at sample_rate: the RMS of the loudest 50 ms block, in dBFS (a full-scale
 * square wave is 0), AVEMO_AUDIO_LEVEL_FLOOR_DB for digital silence or no samples.  One loud
 * syllable makes a recording audible; a single click does not count much (its power is spread
 * over the block). */
double avemo_audio_level_db(const float *samples, size_t n, int sample_rate);

/* Band-by-band normalisation of the first `frames` columns of a features x
 * stride matrix.  mean/std are used for AVEMO_NORM_DATASET only. */
void avemo_audio_normalize(float *x, int features, size_t stride, size_t frames, enum avemo_feature_norm norm,
                           const float *mean, const float *std);

/* `avemo features` over many files, one shard of them (see avemo_shard_run in core.h):
 * out_dir/features-IIIII-of-NNNNN.npy (items x feature_count x frames, float32; NaN rows
 * for a file that failed) and .jsonl (one line per item, in the same order:
 * {"file":...,"valid_frames":V} or {"file":...,"error":{...}}).  Needs a fixed width
 * (params.frames > 0).  A restarted shard skips the items already written. */
struct avemo_audio_batch {
    const char *const *items;
    size_t n;
    struct avemo_shard shard;
    const struct avemo_media_open_options *media_options; /* may be NULL */
    const char *out_dir;
};
enum avemo_status avemo_audio_features_batch(avemo_audio_extractor *ex, const struct avemo_audio_batch *batch,
                                             struct avemo_shard_stats *stats, size_t *failed,
                                             struct avemo_error *err);
/* ---- a picture of a recording, for displays ---- */
struct avemo_audio_overview {
    int sample_rate;           /* of the decode the overview comes from (16000) */
    double duration_s;
    float peak;                /* the largest |sample| (1.0 = full scale) */
    int columns;               /* waveform: per column the lowest and highest sample, */
    int8_t *wave_min, *wave_max; /* scaled so that the peak is +-127 (normalised) */
    int mel_bands, mel_frames; /* log-mel: bands x frames, row 0 = lowest band, */
    double mel_hop_s;          /* seconds per frame; */
    uint8_t *logmel;           /* 0 = 80 dB or more below the loudest bin, 255 = the loudest */
};
/* Decode media's audio (any format FFmpeg reads) and draw its overview: `columns` waveform
 * columns (1..4096, fewer when there are fewer samples), a log-mel of mel_bands (8..128) bands
 * averaged down to at most mel_frames (1..4096) frames. */
enum avemo_status avemo_audio_overview_from_media(avemo_media *media, int columns, int mel_bands, int mel_frames,
                                                  struct avemo_audio_overview *ov, struct avemo_error *err);
void avemo_audio_overview_free(struct avemo_audio_overview *ov);

#ifdef __cplusplus
}
#endif
#endif /* AVEMO_AUDIO_H */
