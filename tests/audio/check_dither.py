"""audio_dither_invariance: +-1 LSB of dither must not change what the audio model answers
(issue 15).  Every 16-bit PCM WAV under the given folders is copied with uniform integer
dither in {-1, 0, +1} added to each sample (seeded, so the copies are the same on every run): 
COPIES dithered versions of each, all classified with `avemo classify --json --mode audio`, and any
label that differs from the clean file's is a failure.  The largest change of a class probability is printed as well.

usage: check_dither.py AVEMO_PROGRAM MODEL WORK_DIR FOLDER...
Run with Debian's /usr/bin/python3 (numpy).
"""
import glob
import json
import os
import subprocess
import sys
import wave

import numpy as np

SEED = 15
COPIES = 3  # one realisation of the dither may miss a fragile clip


def wav_files(folders):
    files = []
    for folder in folders:
        files += sorted(glob.glob(os.path.join(folder, "**", "*.wav"), recursive=True))
    return files


def write_dithered(src, dst, rng):
    """Copy src with +-1 LSB dither; returns how many samples changed."""
    with wave.open(src, "rb") as w:
        params = w.getparams()
        if params.sampwidth != 2:
            raise SystemExit("%s: not 16-bit PCM" % src)
        x = np.frombuffer(w.readframes(params.nframes), dtype="<i2").astype(np.int32)
    y = np.clip(x + rng.integers(-1, 2, size=x.shape), -32768, 32767)
    with wave.open(dst, "wb") as w:
        w.setparams(params)
        w.writeframes(y.astype("<i2").tobytes())
    return int(np.count_nonzero(y != x))


def classify(avemo, model, files):
    proc = subprocess.run([avemo, "classify", "--json", "--mode", "audio", "--model", model, *files],
                          capture_output=True, text=True)
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(answers) != len(files):
        raise SystemExit("avemo classify answered %d of %d files (exit %d): %s" %
                         (len(answers), len(files), proc.returncode, proc.stderr))
    return answers


def main():
    avemo, model, work, folders = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    files = wav_files(folders)
    if len(files) < 5:
        raise SystemExit("only %d WAV files under %s" % (len(files), " ".join(folders)))
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(SEED)
    dithered = []
    for i, src in enumerate(files):
        for k in range(COPIES):
            dst = os.path.join(work, "%02d_%d_%s" % (i, k, os.path.basename(src)))
            if write_dithered(src, dst, rng) == 0:
                raise SystemExit("%s: the dither changed no sample" % src)
            dithered.append(dst)
    before, after = classify(avemo, model, files), classify(avemo, model, dithered)
    changed = 0
    for i, (src, b) in enumerate(zip(files, before)):
        copies = after[i * COPIES:(i + 1) * COPIES]
        dp = max(abs(b["probabilities"][k] - a["probabilities"][k]) for a in copies for k in b["probabilities"])
        labels = " ".join(a["label"] for a in copies)
        moved = sum(a["label"] != b["label"] for a in copies)
        changed += moved
        print("%-28s %s -> %s  max |dp| %.4f%s" % (os.path.basename(src), b["label"], labels, dp,
                                                    "   <- CHANGED" if moved else ""))
    print("%d of %d dithered copies (%d files) change the prediction" % (changed, len(dithered), len(files)))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
