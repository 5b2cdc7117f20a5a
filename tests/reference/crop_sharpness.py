"""Share of a 64x64 face crop's spectral power above 0.375 cycles/pixel (FER2013, CK+, and CREMA-D crops
cut by: for c in ANG DIS FEA HAP NEU SAD; do avemo faces tests/data/cremad/1001_DFA_${c}_XX.flv --size 256 --gray
--margin 0 --track --out /tmp/crops/$c; done); docs/results.md, "Session 26". /usr/bin/python3."""
import cv2, numpy as np, glob, sys, random
def hf(img64):
    f = np.fft.fft2(img64.astype(np.float64) - img64.mean())
    p = np.abs(f)**2
    fy = np.fft.fftfreq(64)[:, None]; fx = np.fft.fftfreq(64)[None, :]
    r = np.maximum(np.abs(fy), np.abs(fx))
    return p[r > 0.375].sum() / p.sum()
def up(img48):  # training faces: 48 -> 64 bilinear
    return cv2.resize(img48, (64, 64), interpolation=cv2.INTER_LINEAR)
random.seed(1)
fer = random.sample(glob.glob('/work/shared/data/fer2013/validation/*/*'), 500)
ck = glob.glob('/work/shared/data/ckplus/*/*.png')
for name, files in (('FER val', fer), ('CK+', ck)):
    v = [hf(up(cv2.imread(f, 0))) for f in files]
    print(name, 'median %.4f q90 %.4f' % (np.median(v), np.quantile(v, .9)))
crops = [cv2.imread(f, 0) for f in glob.glob('/tmp/crops/*/face_*.jpg')]
d = [hf(cv2.resize(c, (64, 64), interpolation=cv2.INTER_AREA)) for c in crops]
v48 = [hf(up(cv2.resize(c, (48, 48), interpolation=cv2.INTER_AREA))) for c in crops]
print('video crops direct median %.4f q10 %.4f' % (np.median(d), np.quantile(d, .1)))
print('video crops via 48 median %.4f q90 %.4f' % (np.median(v48), np.quantile(v48, .9)))
