"""audio_numpy_params: `avemo features` with non-default parameters against a float64
numpy transcription of librosa 0.9.2's definitions (filters.mel, stft with center=True
and zero padding, power_to_db, DCT-II ortho).

The transcription is first checked against the librosa golden files of
tests/data/audio_ref (default parameters), so that it is known to be librosa's recipe;
then it is the reference for the settings the golden files do not cover: 16 kHz speech
front ends (n_fft 512 or 400, hop 160), HTK mel scale, no normalisation, fmin/fmax,
an odd n_fft, power 1, the linear spectrogram, ref = max; and the delta channels
(deltas = 2) against a least-squares fit, scipy's savgol_filter that librosa.feature.delta calls.

usage: check_numpy_reference.py AVEMO_PROGRAM TEST_DATA_DIR WORK_DIR   (Debian /usr/bin/python3)
"""
import os
import subprocess
import sys

import numpy as np

avemo, data, work = sys.argv[1], sys.argv[2], sys.argv[3]
ref_dir = os.path.join(data, "audio_ref")
os.makedirs(work, exist_ok=True)
failures = []


def check(label, ok, detail):
    print("%-62s %s  %s" % (label, "ok  " if ok else "FAIL", detail))
    if not ok:
        failures.append(label)


# ---- librosa 0.9.2's definitions, in float64 ----
def hz_to_mel(f, htk):
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(m, htk):
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm):
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(edges)
    ramps = np.subtract.outer(edges, freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    if slaney_norm:
        w *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return w


def stft_power(y, n_fft, hop, power):
    y = np.pad(y.astype(np.float64), n_fft // 2)
    frames = 1 + (len(y) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(y[idx] * window, axis=1)).T  # bins x frames
    return spec ** power


def power_to_db(s, ref_max, amin=1e-10, top_db=80.0):
    ref = np.max(s) if ref_max else 1.0
    db = 10.0 * np.log10(np.maximum(amin, s)) - 10.0 * np.log10(max(amin, ref))
    if top_db:
        db = np.maximum(db, db.max() - top_db)
    return db


def dct_ortho(x, n_out):
    n = x.shape[0]
    k = np.arange(n_out)[:, None]
    basis = np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis @ x


def reference(y, cfg):
    sr, n_fft, hop = cfg["sample_rate"], cfg["n_fft"], cfg["hop"]
    power = cfg.get("power", 2)
    s = stft_power(y, n_fft, hop, power)
    feature = cfg.get("feature", "mfcc")
    ref_max = cfg.get("db_ref", "one") == "max"
    if feature == "spectrogram":
        return power_to_db(s, ref_max)
    fb = mel_filterbank(sr, n_fft, cfg.get("n_mels", 128), cfg.get("fmin", 0.0), cfg.get("fmax", sr / 2.0),
                        cfg.get("mel_scale", "slaney") == "htk", cfg.get("mel_norm", "slaney") == "slaney")
    if cfg.get("band_limit"):  # the bins above the limit reach no band
        fb[:, np.arange(fb.shape[1]) * sr / n_fft > cfg["band_limit"]] = 0
    mel = fb @ s
    if feature == "mel":
        return mel
    logmel = power_to_db(mel, ref_max)
    if feature == "logmel":
        return logmel
    return dct_ortho(logmel, cfg.get("n_mfcc", 40))


def pcm(name):
    return np.fromfile(os.path.join(ref_dir, name), dtype="<f4")


def rel_l2(x, g):
    return float(np.sqrt(((x - g) ** 2).sum() / (g ** 2).sum()))


# ---- 1. The transcription is librosa's recipe: compare it with the golden files. ----
for case in ["cremad_1001_ANG", "sweep_3s", "short_300ms"]:
    y = pcm(case + ".pcm22050.f32")
    cfg = {"sample_rate": 22050, "n_fft": 2048, "hop": 512}
    mel = reference(y, dict(cfg, feature="mel"))
    golden = np.fromfile(os.path.join(ref_dir, case + ".mel_power.f32"), dtype="<f4").reshape(128, -1)
    ok = mel.shape == golden.shape
    e = rel_l2(mel, golden) if ok else float("inf")
    check("numpy reference = librosa mel power (%s)" % case, ok and e <= 1e-5, "rel L2 %.3g" % e)
    mfcc = reference(y, cfg)
    golden = np.fromfile(os.path.join(ref_dir, case + ".mfcc40.f32"), dtype="<f4").reshape(40, -1)
    e = rel_l2(mfcc, golden)
    check("numpy reference = librosa mfcc40 (%s)" % case, e <= 1e-5, "rel L2 %.3g" % e)

# ---- 2. avemo with other parameters against the reference. ----
configs = [
    ("16 kHz MFCC 13, n_fft 512, hop 160, 40 HTK bands 20-7600 Hz, no norm",
     dict(sample_rate=16000, n_fft=512, hop=160, n_mels=40, n_mfcc=13, fmin=20.0, fmax=7600.0, mel_scale="htk",
          mel_norm="none", feature="mfcc")),
    ("16 kHz log-mel 64, n_fft 400 (not a power of 2), ref=max",
     dict(sample_rate=16000, n_fft=400, hop=160, n_mels=64, feature="logmel", db_ref="max")),
    ("16 kHz spectrogram, odd n_fft 401, hop 128",
     dict(sample_rate=16000, n_fft=401, hop=128, feature="spectrogram")),
    ("16 kHz magnitude (power 1) mel 80, n_fft 1024, hop 256, fmin 50",
     dict(sample_rate=16000, n_fft=1024, hop=256, n_mels=80, fmin=50.0, power=1, feature="mel")),
    ("16 kHz MFCC 40 from 128 Slaney bands, hop 512 (the speech-paper input)",
     dict(sample_rate=16000, n_fft=2048, hop=512, feature="mfcc")),
    ("16 kHz log-mel 64, n_fft 1024, band limit 5000 Hz (the bins above it dropped)",
     dict(sample_rate=16000, n_fft=1024, hop=256, n_mels=64, band_limit=5000.0, feature="logmel")),
]
y16 = pcm("ravdess_01_angry.pcm16000.f32")
# The whole clip, and the clip cut to a multiple of 128 samples, where an odd n_fft gives
# 1 + (n - 1) / hop frames, one fewer than 1 + n / hop.
inputs = [("ravdess_01_angry.pcm16000.f32", y16)]
cut = (len(y16) // 128) * 128
cut_path = os.path.join(work, "ravdess_cut.f32")
y16[:cut].astype("<f4").tofile(cut_path)
inputs.append((cut_path, y16[:cut]))

for label, cfg in configs:
    ini = os.path.join(work, "cfg.ini")
    with open(ini, "w") as f:
        f.write("[audio]\n" + "".join("%s = %s\n" % kv for kv in cfg.items()) + "frames = all\n")
    for path, y in inputs:
        if not os.path.isabs(path):
            path = os.path.join(ref_dir, path)
        out = os.path.join(work, "out.npy")
        proc = subprocess.run([avemo, "features", path, "--input-format", "f32le", "--input-rate", "16000",
                               "--pipeline", ini, "--out", out], capture_output=True, text=True)
        if proc.returncode != 0:
            check(label, False, proc.stderr.strip())
            continue
        x = np.load(out).astype(np.float64)
        r = reference(y, cfg)
        tag = "%s [%d samples]" % (label, len(y))
        if x.shape != r.shape:
            check(tag, False, "shape %s, reference %s" % (x.shape, r.shape))
            continue
        if cfg["feature"] in ("logmel", "spectrogram"):
            e = float(np.abs(x - r).max())
            check(tag, e <= 0.01, "%s max abs %.3g dB" % (str(x.shape), e))
        else:
            e = rel_l2(x, r)
            check(tag, e <= 1e-4, "%s rel L2 %.3g" % (str(x.shape), e))

# ---- 3. deltas = 2: librosa.feature.delta(width=9, mode='interp') of the MFCC rows, orders 1
# and 2 (scipy's savgol_filter: a least-squares polynomial of that degree over 9 frames, its
# derivative; at the ends the polynomial fitted to the first or last 9 frames). ----
def delta_reference(x, order):
    t_count = x.shape[1]
    k = np.arange(-4, 5)
    out = np.zeros_like(x)
    for t in range(t_count):
        c = min(max(t, 4), t_count - 5)
        fit = np.polyfit(k, x[:, c - 4:c + 5].T, order)  # (order + 1) x rows, highest power first
        out[:, t] = fit[0] * (1.0 if order == 1 else 2.0)
    return out


ini = os.path.join(work, "deltas.ini")
with open(ini, "w") as f:
    f.write("[audio]\ndeltas = 2\nframes = all\n")
out = os.path.join(work, "deltas.npy")
y = pcm("cremad_1001_ANG.pcm22050.f32")
proc = subprocess.run([avemo, "features", os.path.join(ref_dir, "cremad_1001_ANG.pcm22050.f32"), "--input-format",
                       "f32le", "--input-rate", "22050", "--pipeline", ini, "--out", out], capture_output=True, text=True)
if proc.returncode != 0:
    check("deltas = 2", False, proc.stderr.strip())
else:
    x = np.load(out).astype(np.float64)
    mfcc = reference(y, {"sample_rate": 22050, "n_fft": 2048, "hop": 512})
    ok = x.shape == (120, mfcc.shape[1])
    check("deltas = 2: 120 rows (MFCC, delta, delta-delta)", ok, "shape %s" % (x.shape,))
    if ok:
        e = rel_l2(x[:40], mfcc)
        check("deltas = 2: rows 0-39 are the MFCC", e <= 1e-4, "rel L2 %.3g" % e)
        for order in (1, 2):
            r = delta_reference(x[:40], order)
            e = rel_l2(x[40 * order:40 * (order + 1)], r)
            check("deltas = 2: rows of order %d = librosa.feature.delta" % order, e <= 1e-5, "rel L2 %.3g" % e)

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
