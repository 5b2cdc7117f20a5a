"""Share of a clip's power above 8 kHz (2048-point Hann frames at 22.05 kHz), per corpus of ../shared:
docs/results.md, "Session 26". Run with /usr/bin/python3 from the repository root."""
import numpy as np, subprocess, glob, random, sys
def pcm(path):
    out = subprocess.run(['ffmpeg','-v','error','-i',path,'-ac','1','-ar','22050','-f','f32le','-'],capture_output=True).stdout
    return np.frombuffer(out, np.float32)
def share_above(x, hz=8000, sr=22050):
    n=2048; hop=512
    if len(x) < n: return float('nan')
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    p = (np.abs(np.fft.rfft(frames, axis=1))**2).sum(0)
    f = np.fft.rfftfreq(n, 1/sr)
    return p[f > hz].sum() / p.sum()
random.seed(1)
sets = {
 'RAVDESS (16k copies)': random.sample(glob.glob('/work/shared/data/ravdess/Actor_*/*.wav'), 40),
 'EmoDB': random.sample(glob.glob('/work/shared/data/emodb/wav/*.wav'), 40),
 'CREMA-D 1002 mp3': glob.glob('/work/shared/data/crema-d/AudioMP3/*.mp3'),
 'CREMA-D 1001 flv': glob.glob('/work/shared/data/crema-d/VideoFlash/*.flv'),
}
for k, files in sets.items():
    v = [share_above(pcm(f)) for f in files]
    print('%-22s n=%3d  median %.2e  min %.2e  max %.2e' % (k, len(v), np.median(v), np.min(v), np.max(v)))
