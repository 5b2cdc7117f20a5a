"""audio_cli_features: run the built `avemo features` and check its .npy with numpy
against the librosa 0.9.2 golden files of tests/data/audio_ref.

usage: check_cli_features.py AVEMO_PROGRAM TEST_DATA_DIR WORK_DIR
Run with Debian's /usr/bin/python3 (numpy).
"""
import os
import subprocess
import sys

import numpy as np

MFCC_MAX_REL_L2 = 1e-4
LOGMEL_MAX_ABS_DB = 0.01

avemo, data, work = sys.argv[1], sys.argv[2], sys.argv[3]
ref = os.path.join(data, "audio_ref")
os.makedirs(work, exist_ok=True)
failures = []


def golden(name, rows):
    return np.fromfile(os.path.join(ref, name), dtype="<f4").reshape(rows, -1)


def run(args, expect_ok=True):
    proc = subprocess.run([avemo, "features"] + args, capture_output=True, text=True)
    if expect_ok and proc.returncode != 0:
        raise SystemExit("avemo features %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr))
    return proc


def rel_l2(x, g):
    return float(np.sqrt(((x.astype(np.float64) - g) ** 2).sum() / (g.astype(np.float64) ** 2).sum()))


def check(label, ok, detail):
    print("%-58s %s  %s" % (label, "ok  " if ok else "FAIL", detail))
    if not ok:
        failures.append(label)


# 1. The acceptance command: default pipeline (22050 Hz, MFCC 40, 128 frames) on the .flv clip.
out = os.path.join(work, "flv_default.npy")
run([os.path.join(data, "cremad", "1001_DFA_ANG_XX.flv"), "--out", out])
x = np.load(out)
g = golden("cremad_1001_ANG.mfcc40.f32", 40)  # 40 x 98 from ffmpeg-decoded samples
check("flv default: shape, dtype, C order", x.shape == (40, 128) and x.dtype == np.float32 and x.flags.c_contiguous,
      "shape %s %s" % (x.shape, x.dtype))
e = rel_l2(x[:, :98], g)
check("flv default: first 98 frames = librosa mfcc40", e <= MFCC_MAX_REL_L2, "rel L2 %.3g" % e)
check("flv default: frames 98..127 are zero padding", not np.any(x[:, 98:]), "max |x| %.3g" % np.abs(x[:, 98:]).max())

# 2. Raw float32 input (the golden samples themselves), all frames.
out = os.path.join(work, "raw_all.npy")
run([os.path.join(ref, "cremad_1002_ANG_wav.pcm22050.f32"), "--input-format", "f32le", "--input-rate", "22050",
     "--frames", "all", "--out", out])
x = np.load(out)
g = golden("cremad_1002_ANG_wav.mfcc40.f32", 40)
check("f32le input, --frames all: shape", x.shape == g.shape, "shape %s vs %s" % (x.shape, g.shape))
if x.shape == g.shape:
    e = rel_l2(x, g)
    check("f32le input, --frames all: = librosa mfcc40", e <= MFCC_MAX_REL_L2, "rel L2 %.3g" % e)

# 3. The 16 kHz speech-paper input: log-mel with ref = max, through options.
out = os.path.join(work, "raw_logmel16k.npy")
run([os.path.join(ref, "ravdess_01_angry.pcm16000.f32"), "--input-format", "f32le", "--input-rate", "16000",
     "--sr", "16000", "--feature", "logmel", "--db-ref", "max", "--frames", "all", "--out", out])
x = np.load(out)
g = golden("ravdess_01_angry.logmel_refmax_16k.f32", 128)
check("logmel ref=max 16 kHz: shape", x.shape == g.shape, "shape %s vs %s" % (x.shape, g.shape))
if x.shape == g.shape:
    e = float(np.abs(x.astype(np.float64) - g).max())
    check("logmel ref=max 16 kHz: = librosa", e <= LOGMEL_MAX_ABS_DB, "max abs %.3g dB" % e)

# 4. A pipeline file: 20 MFCC, 50 frames cropped at the start (rows of the orthonormal DCT do not
#    depend on how many are kept, so they equal the golden's first 20 rows).
ini = os.path.join(work, "p20.ini")
with open(ini, "w") as f:
    f.write("[video]\nframes=16\n\n[audio]\nsample_rate = 22050\nn_mfcc = 20 ; comment\nframes = 50\ncrop = start\n")
out = os.path.join(work, "pipeline20.npy")
run([os.path.join(ref, "ravdess_01_angry.pcm22050.f32"), "--input-format", "f32le", "--input-rate", "22050",
     "--pipeline", ini, "--out", out])
x = np.load(out)
g = golden("ravdess_01_angry.mfcc40.f32", 40)[:20, :50]
check("pipeline n_mfcc=20 frames=50: shape", x.shape == (20, 50), "shape %s" % (x.shape,))
if x.shape == (20, 50):
    e = rel_l2(x, g)
    check("pipeline n_mfcc=20 frames=50: = librosa rows/frames", e <= MFCC_MAX_REL_L2, "rel L2 %.3g" % e)

# 4b. A pipeline that normalises with a model's training-set statistics (norm = dataset, as the
#     shipped avemo-audio.ini) gives its unnormalised features and says so; --norm utterance
#     gives each band zero mean and unit deviation.
with open(ini, "w") as f:
    f.write("[audio]\nn_mfcc = 40\nframes = all\nnorm = dataset\n")
out = os.path.join(work, "pipeline_dataset.npy")
p = run([os.path.join(ref, "ravdess_01_angry.pcm22050.f32"), "--input-format", "f32le", "--input-rate", "22050",
         "--pipeline", ini, "--out", out])
x = np.load(out)
g = golden("ravdess_01_angry.mfcc40.f32", 40)
e = rel_l2(x, g) if x.shape == g.shape else float("inf")
check("pipeline norm=dataset: unnormalised = librosa", e <= MFCC_MAX_REL_L2 and "unnormalised" in p.stderr,
      "rel L2 %.3g, stderr %r" % (e, p.stderr.strip()))
run([os.path.join(ref, "ravdess_01_angry.pcm22050.f32"), "--input-format", "f32le", "--input-rate", "22050",
     "--pipeline", ini, "--norm", "utterance", "--out", out])
x = np.load(out).astype(np.float64)
dev = max(float(np.abs(x.mean(axis=1)).max()), float(np.abs(x.std(axis=1) - 1).max()))
check("--norm utterance: bands of mean 0, deviation 1", dev < 1e-3, "max deviation %.3g" % dev)

# 5. Errors: an unknown key names the file, the key and the line; a bad value fails too.
with open(ini, "w") as f:
    f.write("[audio]\nn_fft = 2048\nn_mel = 64\n")
p = run([os.path.join(data, "cremad", "1001_DFA_ANG_XX.flv"), "--pipeline", ini], expect_ok=False)
check("unknown [audio] key is an error", p.returncode == 1 and "n_mel" in p.stderr and "line 3" in p.stderr
      and ini in p.stderr, p.stderr.strip())
p = run([os.path.join(data, "cremad", "1001_DFA_ANG_XX.flv"), "--feature", "chroma"], expect_ok=False)
check("unknown --feature value is a usage error (2) naming it", p.returncode == 2 and "--feature" in p.stderr
      and "chroma" in p.stderr, p.stderr.strip())

# 6. Without --out: shape and statistics on stdout.
p = run([os.path.join(data, "cremad", "1001_DFA_ANG_XX.flv")])
check("summary without --out", "40 x 128" in p.stdout and "98 frames" in p.stdout, p.stdout.strip().replace("\n", " | "))

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
