#!/usr/bin/python3
"""How far +-1 LSB of dither moves the model input under several [audio] settings (issue 15).

    /usr/bin/python3 tests/reference/dither_features.py build/avemo WORKDIR \
        'base:' 'new:loudness=rms,top_db=50,crop=centroid' ...

Takes 44 RAVDESS clips (every 4th of actors 05 and 07) and 26 EmoDB clips (every 12th) from
../shared/data (or $AVEMO_SHARED), writes a seeded +-1 LSB dithered copy of each, computes the 40x128 MFCC input
of both with `avemo features --pipeline` (the settings after the colon, on top of feature=mfcc,
frames=128, crop=energy) and prints per corpus the mean and the largest change in units of each
coefficient's standard deviation over the clips: a proxy that needs no trained model."""
import glob, json, os, subprocess, sys, wave
import numpy as np
avemo, out = sys.argv[1], sys.argv[2]
SHARED = os.environ.get('AVEMO_SHARED', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/data'))
rng = np.random.default_rng(1)
rav = sorted(glob.glob(os.path.join(SHARED, 'ravdess/Actor_0[57]/*.wav')))[::4]
emo = sorted(glob.glob(os.path.join(SHARED, 'emodb/wav/*.wav')))[::12]
clips = rav + emo
os.makedirs(out + '/d', exist_ok=True)
dith = []
for c in clips:
    d = out + '/d/' + os.path.basename(c)
    if not os.path.exists(d):
        with wave.open(c, 'rb') as w:
            p = w.getparams(); x = np.frombuffer(w.readframes(p.nframes), '<i2').astype(np.int32)
        y = np.clip(x + rng.integers(-1, 2, size=x.shape), -32768, 32767).astype('<i2')
        with wave.open(d, 'wb') as w:
            w.setparams(p); w.writeframes(y.tobytes())
    dith.append(d)
open(out + '/a.txt', 'w').write('\n'.join(clips) + '\n')
open(out + '/b.txt', 'w').write('\n'.join(dith) + '\n')
for spec in sys.argv[3:]:
    name, kv = spec.split(':', 1)
    ini = out + '/' + name + '.ini'
    with open(ini, 'w') as f:
        f.write('[audio]\nfeature = mfcc\nn_mfcc = 40\nframes = 128\ncrop = energy\n')
        for e in filter(None, kv.split(',')):
            f.write(e.replace('=', ' = ') + '\n')
    res = {}
    for tag in 'ab':
        od = out + '/' + name + '-' + tag
        subprocess.run([avemo, 'features', out + '/' + tag + '.txt', '--pipeline', ini, '--shard', '0/1', '--out', od],
                       check=True, capture_output=True)
        res[tag] = np.load(glob.glob(od + '/*.npy')[0])
    a, b = res['a'], res['b']
    sd = a.reshape(len(clips), 40, -1).transpose(1, 0, 2).reshape(40, -1).std(axis=1)[None, :, None]
    z = np.abs(a - b) / sd
    nr = len(rav)
    print('%-10s %-60s rav: mean|dz| %.4f max %.2f  emodb: mean %.4f max %.2f  c0 mean rav %.1f emo %.1f' % (
        name, kv, z[:nr].mean(), z[:nr].max(), z[nr:].mean(), z[nr:].max(), a[:nr, 0].mean(), a[nr:, 0].mean()))
