#!/usr/bin/python3
"""How many predictions +-1 LSB of dither changes (issue 15: a prediction must not change).

    /usr/bin/python3 tests/reference/dither_flips.py --avemo build/avemo --model M.avm \
        --split models/avemo-audio.split --root ../shared/data/ravdess [--part test] [--seed 1]

Takes the 16-bit PCM WAV files of one part of a split file, writes a copy of each with uniform
integer dither in {-1, 0, +1} added to every sample (seeded), classifies both copies with
`avemo classify --json --mode audio` and prints how many labels differ.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave

import numpy as np


def clips_of_part(split, root, part):
    """Paths under root of the split's lines of this part (matched on the last two components)."""
    out = []
    for line in open(split):
        fields = line.split(maxsplit=1)
        if len(fields) == 2 and fields[0] == part:
            out.append(os.path.join(root, *fields[1].strip().split("/")[-2:]))
    return out


def write_dithered(src, dst, rng):
    with wave.open(src, "rb") as w:
        params = w.getparams()
        if params.sampwidth != 2:
            sys.exit("%s: not 16-bit PCM" % src)
        x = np.frombuffer(w.readframes(params.nframes), dtype="<i2").astype(np.int32)
    y = np.clip(x + rng.integers(-1, 2, size=x.shape), -32768, 32767).astype("<i2")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with wave.open(dst, "wb") as w:
        w.setparams(params)
        w.writeframes(y.tobytes())


def labels(avemo, model, files):
    out = subprocess.run([avemo, "classify", "--json", "--mode", "audio", "--model", model, *files],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["label"] for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--avemo", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--part", default="test")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    clips = clips_of_part(a.split, a.root, a.part)
    if not clips:
        sys.exit("%s: no %s lines" % (a.split, a.part))
    rng = np.random.default_rng(a.seed)
    with tempfile.TemporaryDirectory(prefix="avemo-dither-") as tmp:
        dithered = [os.path.join(tmp, *c.split("/")[-2:]) for c in clips]
        for src, dst in zip(clips, dithered):
            write_dithered(src, dst, rng)
        before, after = labels(a.avemo, a.model, clips), labels(a.avemo, a.model, dithered)
    if len(before) != len(clips) or len(after) != len(clips):
        sys.exit("classify answered %d and %d of %d files" % (len(before), len(after), len(clips)))
    changed = sum(b != c for b, c in zip(before, after))
    print("%s: %d of %d predictions change with +-1 LSB dither" % (a.model, changed, len(clips)))


if __name__ == "__main__":
    main()
