"""audio_bandwidth: one recording, one answer, whatever its bandwidth (issue 15).  CREMA-D's clips
carry a 44.1 kHz MP3 track; its WAVs of the same takes were resampled to 16 kHz, like the RAVDESS
copies the voice model learned from, so they hold nothing above 8 kHz.  The shipped audio model
leaves the spectrum above 8 kHz out ([audio] band_limit = 8000), so each FLV's sound and the 16 kHz
WAV of the same take must get the same label, with no class probability apart by more than
MAX_DP.  (Without the band limit the sad take is 0.59 SAD from the FLV and 0.50 from the WAV.)

usage: check_bandwidth.py AVEMO_PROGRAM MODEL WAV_DIR FLV_DIR
Run with Debian's /usr/bin/python3.
"""
import glob
import json
import os
import subprocess
import sys

MAX_DP = 0.05


def classify(avemo, model, path):
    proc = subprocess.run([avemo, "classify", "--json", "--mode", "audio", "--model", model, path],
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(lines) != 1:
        raise SystemExit("%s: avemo classify failed (exit %d): %s" % (path, proc.returncode, proc.stderr))
    return json.loads(lines[0])


def main():
    avemo, model, wav_dir, flv_dir = sys.argv[1:5]
    wavs = sorted(glob.glob(os.path.join(wav_dir, "*.wav")))
    if len(wavs) < 2:
        raise SystemExit("only %d WAV files in %s" % (len(wavs), wav_dir))
    failed = 0
    for wav in wavs:
        flv = os.path.join(flv_dir, os.path.basename(wav)[:-4] + ".flv")
        w, f = classify(avemo, model, wav), classify(avemo, model, flv)
        dp = max(abs(w["probabilities"][k] - f["probabilities"][k]) for k in w["probabilities"])
        bad = w["label"] != f["label"] or dp > MAX_DP
        failed += bad
        print("%-22s 16 kHz WAV %s %.2f, FLV %s %.2f, max |dp| %.3f%s" % (
            os.path.basename(wav)[:-4], w["label"], w["confidence"], f["label"], f["confidence"], dp,
            "   <- DIFFERENT" if bad else ""))
    print("%d of %d takes answered differently" % (failed, len(wavs)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
